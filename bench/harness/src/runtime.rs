//! The Lambda Runtime API on loopback, and one execution environment per cold start.
//!
//! [`Session::start`] binds a fresh Runtime API on `127.0.0.1:0`, spawns the
//! `bootstrap` executable with the environment Lambda gives it, and times
//! spawn -> first `GET /2018-06-01/runtime/invocation/next` (init).
//! [`Session::invoke`] queues one event and times the delivery of that event
//! (the moment the `next` response is handed to hyper) -> the arrival of the
//! complete `POST .../invocation/{id}/response` (or `/error`) body.
//! [`Session::finish`] reads `VmHWM` from `/proc/<pid>/status`, then kills it.
use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:chime-onboard-bench";

/// How to start one function: the program, its arguments, working directory and
/// the environment that is specific to it (endpoints, handler settings).
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub label: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub log_dir: PathBuf,
}

/// The outcome of one invocation as the Runtime API saw it.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub body: Bytes,
    pub latency: Duration,
}

struct Invocation {
    id: String,
    body: Bytes,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Clone, Debug)]
enum Init {
    Pending,
    Ready(Instant),
    Failed(String),
}

struct Api {
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    inflight: Mutex<HashMap<String, (Instant, oneshot::Sender<Outcome>)>>,
    init: watch::Sender<Init>,
}

/// One execution environment: a Runtime API server and the process using it.
pub struct Session {
    label: String,
    child: Child,
    pid: u32,
    spawned_at: Instant,
    init_rx: watch::Receiver<Init>,
    queue_tx: mpsc::Sender<Invocation>,
    server: JoinHandle<()>,
    next_id: AtomicU64,
}

impl Session {
    /// Binds the API, spawns the process and returns at once (see [`Session::wait_init`]).
    pub async fn start(bootstrap: &Bootstrap) -> Result<Session> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (queue_tx, queue_rx) = mpsc::channel(64);
        let (init_tx, init_rx) = watch::channel(Init::Pending);
        let api = Arc::new(Api {
            queue: tokio::sync::Mutex::new(queue_rx),
            inflight: Mutex::new(HashMap::new()),
            init: init_tx,
        });
        let server = tokio::spawn(serve(listener, api));

        std::fs::create_dir_all(&bootstrap.log_dir)?;
        let log_path = bootstrap.log_dir.join(format!("{}.log", bootstrap.label));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        // Absolute, not canonical: a venv's python must keep its own path.
        let program = std::path::absolute(&bootstrap.program)?;
        let mut cmd = Command::new(&program);
        cmd.args(&bootstrap.args)
            .env_clear()
            .envs(lambda_env(port))
            .envs(bootstrap.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(dir) = &bootstrap.cwd {
            cmd.current_dir(dir);
        }
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", bootstrap.program.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("child has no pid"))?;
        Ok(Session {
            label: bootstrap.label.clone(),
            child,
            pid,
            spawned_at,
            init_rx,
            queue_tx,
            server,
            next_id: AtomicU64::new(1),
        })
    }

    /// Waits for the first `next` call: returns spawn -> first `next`.
    pub async fn wait_init(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let state = self.init_rx.borrow_and_update().clone();
            match state {
                Init::Ready(at) => return Ok(at.duration_since(self.spawned_at)),
                Init::Failed(body) => bail!("{}: init error: {body}", self.label),
                Init::Pending => {}
            }
            tokio::select! {
                changed = self.init_rx.changed() => changed?,
                status = self.child.wait() => bail!("{}: exited during init: {:?}", self.label, status?),
                () = &mut deadline => bail!("{}: no `next` within {timeout:?}", self.label),
            }
        }
    }

    /// Time since spawn, for "spawn -> first response".
    pub fn since_spawn(&self) -> Duration {
        self.spawned_at.elapsed()
    }

    /// Delivers one event and waits (bounded) for its response.
    pub async fn invoke(&mut self, body: Bytes, timeout: Duration) -> Result<Outcome> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let (reply, rx) = oneshot::channel();
        self.queue_tx
            .send(Invocation { id, body, reply })
            .await
            .map_err(|_| anyhow!("runtime API gone"))?;
        tokio::select! {
            outcome = rx => outcome.map_err(|_| anyhow!("{}: invocation dropped", self.label)),
            status = self.child.wait() => bail!("{}: exited during an invocation: {:?}", self.label, status?),
            () = tokio::time::sleep(timeout) => bail!("{}: no response within {timeout:?}", self.label),
        }
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmHWM for pid {}", self.pid))
    }

    /// Reads the peak RSS, then kills the process and stops the API.
    pub async fn finish(mut self) -> Result<u64> {
        let rss = self.peak_rss_kib();
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.server.abort();
        rss
    }
}

fn lambda_env(port: u16) -> Vec<(String, String)> {
    let vars = [
        ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
        ("AWS_LAMBDA_FUNCTION_NAME", "chime-onboard-bench".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/chime-onboard-bench".into(),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]bench".into(),
        ),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCHMARKONLY000".into()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "benchmark/secret/not/a/real/key/000000000".into(),
        ),
        ("AWS_SESSION_TOKEN", "benchmark-session-token".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("TZ", ":UTC".into()),
    ];
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

async fn serve(listener: TcpListener, api: Arc<Api>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let service = service_fn(move |req| route(Arc::clone(&api), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn route(api: Arc<Api>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "{}"));
    };
    let response = match (req.method(), rest) {
        (&Method::GET, "/invocation/next") => next(&api).await,
        (&Method::POST, "/init/error") => {
            let body = read_body(req).await;
            let _ = api
                .init
                .send(Init::Failed(String::from_utf8_lossy(&body).into_owned()));
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (&Method::POST, rest) => {
            let Some(rest) = rest.strip_prefix("/invocation/") else {
                return Ok(reply(StatusCode::NOT_FOUND, "{}"));
            };
            let (id, ok) = if let Some(id) = rest.strip_suffix("/response") {
                (id.to_string(), true)
            } else if let Some(id) = rest.strip_suffix("/error") {
                (id.to_string(), false)
            } else {
                return Ok(reply(StatusCode::NOT_FOUND, "{}"));
            };
            let body = read_body(req).await;
            let completed = Instant::now();
            let entry = api.inflight.lock().ok().and_then(|mut m| m.remove(&id));
            match entry {
                Some((delivered, tx)) => {
                    let _ = tx.send(Outcome {
                        ok,
                        body,
                        latency: completed.duration_since(delivered),
                    });
                    reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
                }
                None => reply(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorType":"InvalidRequestID"}"#,
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "{}"),
    };
    Ok(response)
}

async fn read_body(req: Request<Incoming>) -> Bytes {
    match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

async fn next(api: &Api) -> Response<Full<Bytes>> {
    if matches!(*api.init.borrow(), Init::Pending) {
        let _ = api.init.send(Init::Ready(Instant::now()));
    }
    // Lambda holds `next` open until an event arrives; the session ends by
    // killing the process, which drops this future with its connection.
    let invocation = {
        let mut queue = api.queue.lock().await;
        queue.recv().await
    };
    let Some(invocation) = invocation else {
        return reply(StatusCode::GONE, "{}");
    };
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or(0);
    let trace = format!(
        "Root=1-67a1b2c3-{:024x};Parent={:016x};Sampled=0;Lineage=1:abcd:0",
        deadline_ms, deadline_ms
    );
    let mut response = Response::new(Full::new(invocation.body));
    let headers = response.headers_mut();
    let pairs = [
        ("content-type", "application/json".to_string()),
        ("lambda-runtime-aws-request-id", invocation.id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            FUNCTION_ARN.to_string(),
        ),
        ("lambda-runtime-trace-id", trace),
    ];
    for (name, value) in pairs {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    if let Ok(mut inflight) = api.inflight.lock() {
        inflight.insert(invocation.id, (Instant::now(), invocation.reply));
    }
    response
}
