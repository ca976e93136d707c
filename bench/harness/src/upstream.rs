//! The services the functions call: chime-local (a child process) and a raw
//! HTTP/1.1 client used to set its faults and to time its CreateAccount call
//! without any SDK in the way (the "chime-local time" subtracted from the
//! function's warm latency).
use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// A free loopback port (bound, read, released).
pub async fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

/// chime-local running as its own process, as in `make dev`.
pub struct ChimeLocal {
    child: Child,
    pub addr: SocketAddr,
}

impl ChimeLocal {
    pub async fn start(program: &Path, log_dir: &Path) -> Result<ChimeLocal> {
        let port = free_port().await?;
        std::fs::create_dir_all(log_dir)?;
        let log = std::fs::File::create(log_dir.join("chime-local.log"))?;
        let child = Command::new(program)
            .args(["--port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", program.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        loop {
            if let Ok(mut client) = RawClient::connect(addr).await {
                if let Ok((200, _)) = client.call(Method::GET, "/_chime-local/stats", None).await {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("chime-local did not answer on {addr} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(ChimeLocal { child, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the added latency (all other faults off).
    pub async fn set_latency(&self, latency_ms: u64) -> Result<()> {
        let mut client = RawClient::connect(self.addr).await?;
        let body = serde_json::json!({ "latency_ms": latency_ms }).to_string();
        let (status, text) = client
            .call(Method::POST, "/_chime-local/faults", Some(body))
            .await?;
        if !(200..300).contains(&status) {
            bail!("setting chime-local faults: {status} {text}");
        }
        Ok(())
    }

    pub async fn stats(&self) -> Result<serde_json::Value> {
        let mut client = RawClient::connect(self.addr).await?;
        let (_, text) = client
            .call(Method::GET, "/_chime-local/stats", None)
            .await?;
        Ok(serde_json::from_str(&text)?)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct RawClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> Result<RawClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(RawClient {
            sender,
            host: addr.to_string(),
        })
    }

    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, String)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("x-amz-date", "20260101T000000Z")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDBENCHMARKONLY000/20260101/us-east-1/chime/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            )
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Times one CreateAccount (`POST /accounts`) as the SDK would send it, minus the SDK.
    pub async fn time_create_account(&mut self, name: &str) -> Result<Duration> {
        let body = serde_json::json!({ "Name": name }).to_string();
        let started = Instant::now();
        let (status, text) = self.call(Method::POST, "/accounts", Some(body)).await?;
        let elapsed = started.elapsed();
        if status != 201 {
            return Err(anyhow!("raw CreateAccount: {status} {text}"));
        }
        Ok(elapsed)
    }
}
