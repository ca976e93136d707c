//! The Runtime API of one environment, on loopback: `GET .../invocation/next` hands out the
//! queued event, `POST .../invocation/{id}/response` and `/error` answer it, `POST
//! .../init/error` reports a failed init. Paths, headers and status codes follow the Runtime
//! API reference (`2018-06-01/runtime/...`); an `init/error` after init and an unknown
//! request id get the API's `403`/`400` answers, so a misbehaving runtime shows up.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// One event on its way to the function: delivered on the next `next`.
pub(super) struct Pending {
    pub(super) id: String,
    pub(super) body: Bytes,
    pub(super) deadline_ms: u128,
    pub(super) reply: oneshot::Sender<Answer>,
}

/// The function's answer to one event: `response` (`ok`) or `error`.
pub(super) struct Answer {
    pub(super) ok: bool,
    pub(super) body: Bytes,
    pub(super) latency: Duration,
}

/// Where init stands: waiting for the first `next`, reached it (when), or `init/error`.
#[derive(Clone, Debug)]
pub(super) enum Init {
    Pending,
    Ready(Instant),
    Failed(String),
}

struct Api {
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    inflight: Mutex<HashMap<String, (Instant, oneshot::Sender<Answer>)>>,
    init: watch::Sender<Init>,
    arn: String,
}

/// Serves the Runtime API on `listener` for the function `arn`. Returns the server task, the
/// queue events go in by, and the init state.
pub(super) fn spawn(
    listener: TcpListener,
    arn: String,
) -> (JoinHandle<()>, mpsc::Sender<Pending>, watch::Receiver<Init>) {
    let (queue_tx, queue_rx) = mpsc::channel(8);
    let (init_tx, init_rx) = watch::channel(Init::Pending);
    let api = Arc::new(Api {
        queue: tokio::sync::Mutex::new(queue_rx),
        inflight: Mutex::new(HashMap::new()),
        init: init_tx,
        arn,
    });
    (tokio::spawn(serve(listener, api)), queue_tx, init_rx)
}

/// A request id shaped like Lambda's (a UUID), unique within this process.
pub(super) fn request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (epoch >> 32) as u32,
        (epoch >> 16) as u16,
        epoch & 0xfff,
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
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

const ACCEPTED: &str = r#"{"status":"OK"}"#;

async fn route(api: Arc<Api>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "{}"));
    };
    let response = match (req.method(), rest) {
        (&Method::GET, "/invocation/next") => next(&api).await,
        (&Method::POST, "/init/error") => {
            if !matches!(*api.init.borrow(), Init::Pending) {
                return Ok(reply(
                    StatusCode::FORBIDDEN,
                    r#"{"errorType":"InvalidStateTransition"}"#,
                ));
            }
            let body = read_body(req).await;
            let _ = api
                .init
                .send(Init::Failed(String::from_utf8_lossy(&body).into_owned()));
            reply(StatusCode::ACCEPTED, ACCEPTED)
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
                    let _ = tx.send(Answer {
                        ok,
                        body,
                        latency: completed.duration_since(delivered),
                    });
                    reply(StatusCode::ACCEPTED, ACCEPTED)
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
    // Lambda holds `next` open until an event arrives; the environment ends by
    // killing the process, which drops this future with its connection.
    let pending = {
        let mut queue = api.queue.lock().await;
        queue.recv().await
    };
    let Some(pending) = pending else {
        return reply(StatusCode::GONE, "{}");
    };
    let trace = format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        (pending.deadline_ms / 1000) as u32,
        pending.deadline_ms,
        pending.deadline_ms
    );
    let mut response = Response::new(Full::new(pending.body));
    let headers = response.headers_mut();
    let pairs = [
        ("content-type", "application/json".to_string()),
        ("lambda-runtime-aws-request-id", pending.id.clone()),
        (
            "lambda-runtime-deadline-ms",
            pending.deadline_ms.to_string(),
        ),
        ("lambda-runtime-invoked-function-arn", api.arn.clone()),
        ("lambda-runtime-trace-id", trace),
    ];
    for (name, value) in pairs {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    if let Ok(mut inflight) = api.inflight.lock() {
        inflight.insert(pending.id, (Instant::now(), pending.reply));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_uuid_shaped() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        }
    }
}
