//! moto_server (SQS, DynamoDB) on a free loopback port, one per test binary:
//! the wire the workspace's integration tests talk to.
//!
//! moto_server runs under a shell that kills it when this process's end of
//! the shell's stdin pipe closes, i.e. when the test binary exits, however it
//! exits (a `static` is never dropped).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long moto_server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Moto {
    url: String,
    _child: Child,
}

/// The URL of this process's moto_server, started on first use. `MOTO_SERVER`
/// names the executable, else `default_path` (the workspace's `.venv`).
/// Every caller after a failed start gets the same error.
pub fn shared_url(default_path: &str) -> Result<&'static str, String> {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    MOTO.get_or_init(|| {
        let path = std::env::var("MOTO_SERVER").unwrap_or_else(|_| default_path.to_owned());
        start(&path)
    })
    .as_ref()
    .map(|moto| moto.url.as_str())
    .map_err(Clone::clone)
}

fn start(path: &str) -> Result<Moto, String> {
    if !std::path::Path::new(path).exists() {
        return Err(format!(
            "moto_server not found at {path}: run `make venv` (or set MOTO_SERVER)"
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))?
        .port();
    let script =
        format!("'{path}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; read _; kill $pid");
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting moto_server: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if started.elapsed() > START_TIMEOUT {
            return Err(format!(
                "moto_server did not accept connections on {addr} within {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Moto {
        url: format!("http://{addr}"),
        _child: child,
    })
}
