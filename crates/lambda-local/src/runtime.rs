//! The Lambda Runtime API on loopback, and one execution environment per cold start.
//!
//! [`Environment::start`] binds a fresh Runtime API on `127.0.0.1:0` and spawns the
//! bootstrap executable with the environment Lambda gives it ([`Function`]).
//! [`Environment::wait_init`] waits for its first `GET .../invocation/next` (or an
//! `init/error`, or its exit). [`Environment::invoke`] hands it one event and waits for
//! `POST .../invocation/{id}/response` or `/error`, bounded by the function's timeout;
//! as in Lambda, a function that runs past its deadline is killed and the environment is
//! gone, and so is one whose process exits mid-invocation. Callers start a new
//! (cold) environment then.
//!
//! Paths, headers and status codes follow the Runtime API reference
//! (`2018-06-01/runtime/...`); an `init/error` after init and an unknown request id get
//! the API's `403`/`400` answers, so a misbehaving runtime shows up.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";
const ACCOUNT: &str = "123456789012";

/// How to start one function, and the settings Lambda would give it.
#[derive(Clone, Debug)]
pub struct Function {
    /// The bootstrap executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working directory (default: ours).
    pub cwd: Option<PathBuf>,
    /// Variables of this function (endpoints, settings); they override Lambda's.
    pub env: Vec<(String, String)>,
    /// `AWS_LAMBDA_FUNCTION_NAME`, also in the invoked function ARN.
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_mb: u32,
    /// The function timeout: the deadline of every invocation.
    pub timeout: Duration,
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_LAMBDA_LOG_FORMAT`: `JSON` or `Text`.
    pub log_format: String,
    /// Where the process's stdout and stderr go.
    pub output: Output,
}

/// Where a function's stdout and stderr go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Ours.
    Inherit,
    /// Nowhere.
    Null,
    /// Appended to this file (both streams).
    Append(PathBuf),
    /// Stdout piped (see [`Environment::take_stdout`]), stderr discarded.
    Piped,
}

impl Function {
    /// A function with Lambda's defaults: 128 MB, 30 s timeout, us-east-1, JSON logs,
    /// named after the executable, output inherited.
    pub fn new(program: impl Into<PathBuf>) -> Function {
        let program = program.into();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".into());
        Function {
            program,
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            name,
            memory_mb: 128,
            timeout: Duration::from_secs(30),
            region: "us-east-1".into(),
            log_format: "JSON".into(),
            output: Output::Inherit,
        }
    }

    /// Adds one variable of the function's own.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Function {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The variables Lambda sets, before the function's own.
    fn lambda_env(&self, runtime_api: &str) -> Vec<(String, String)> {
        let name = &self.name;
        let vars = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/01/01/[$LATEST]local".into(),
            ),
            ("AWS_LAMBDA_LOG_FORMAT", self.log_format.clone()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            // Dummy credentials: emulators accept any; nothing real is ever handed out.
            ("AWS_ACCESS_KEY_ID", "AKIDLAMBDALOCAL00000".into()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "lambda/local/not/a/real/key/0000000000".into(),
            ),
            ("AWS_SESSION_TOKEN", "lambda-local-session-token".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("TZ", ":UTC".into()),
        ];
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{ACCOUNT}:function:{}",
            self.region, self.name
        )
    }
}

/// The environment could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding the loopback Runtime API failed.
    #[error("could not bind the Runtime API on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    /// The log file could not be opened.
    #[error("could not open the function log {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The executable could not be spawned.
    #[error("could not start {program}: {source} (is it built and executable?)")]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Init did not reach the first `next`.
#[derive(Debug, thiserror::Error)]
pub enum InitFailure {
    /// The runtime posted `init/error` (its body, usually `{"errorType","errorMessage"}`).
    #[error("init error: {0}")]
    Error(String),
    /// The process exited before asking for an event.
    #[error("the function exited during init ({0})")]
    Exited(ExitStatus),
    /// No `next` within the init timeout (the process is killed).
    #[error("no `next` within {0:?} of the start")]
    Timeout(Duration),
    /// Waiting on the process failed.
    #[error("could not wait for the function: {0}")]
    Wait(std::io::Error),
}

/// What became of one invocation.
#[derive(Debug)]
pub enum Invoked {
    /// `POST .../response`: the body as posted.
    Response {
        /// The response body.
        body: Bytes,
        /// Delivery of the event -> arrival of the whole response.
        latency: Duration,
    },
    /// `POST .../error`: an invocation error (`{"errorType","errorMessage"}`).
    Error {
        /// The error body.
        body: Bytes,
        /// Delivery of the event -> arrival of the error.
        latency: Duration,
    },
    /// The process exited mid-invocation on its own (Lambda's `Runtime.ExitError`).
    Crashed(ExitStatus),
    /// The process was killed mid-invocation on request ([`Environment::invoke_killing_after`]).
    Killed,
    /// No answer by the deadline: the process was killed, as Lambda does.
    TimedOut,
}

impl Invoked {
    /// True when the environment survives this invocation and can take the next one.
    pub fn environment_survives(&self) -> bool {
        matches!(self, Invoked::Response { .. } | Invoked::Error { .. })
    }
}

struct Pending {
    id: String,
    body: Bytes,
    deadline_ms: u128,
    reply: oneshot::Sender<Answer>,
}

struct Answer {
    ok: bool,
    body: Bytes,
    latency: Duration,
}

#[derive(Clone, Debug)]
enum Init {
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

/// One execution environment: a Runtime API server and the process using it.
/// Dropping it kills the process and stops the server.
pub struct Environment {
    child: Child,
    pid: u32,
    spawned_at: Instant,
    timeout: Duration,
    init_rx: watch::Receiver<Init>,
    queue_tx: mpsc::Sender<Pending>,
    server: JoinHandle<()>,
    alive: bool,
    last_request_id: Option<String>,
}

impl Environment {
    /// Binds the API, spawns the process and returns at once (see [`Environment::wait_init`]).
    pub async fn start(function: &Function) -> Result<Environment, StartError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(StartError::Bind)?;
        let port = listener.local_addr().map_err(StartError::Bind)?.port();
        let (queue_tx, queue_rx) = mpsc::channel(8);
        let (init_tx, init_rx) = watch::channel(Init::Pending);
        let api = Arc::new(Api {
            queue: tokio::sync::Mutex::new(queue_rx),
            inflight: Mutex::new(HashMap::new()),
            init: init_tx,
            arn: function.arn(),
        });
        let server = tokio::spawn(serve(listener, api));

        // Absolute, not canonical: a venv's python must keep its own path.
        let program =
            std::path::absolute(&function.program).map_err(|source| StartError::Spawn {
                program: function.program.clone(),
                source,
            })?;
        let mut cmd = Command::new(&program);
        cmd.args(&function.args)
            .env_clear()
            .envs(function.lambda_env(&format!("127.0.0.1:{port}")))
            .envs(function.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match &function.output {
            Output::Inherit => {}
            Output::Null => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
            Output::Piped => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::null());
            }
            Output::Append(path) => {
                let log_error = |source| StartError::Log {
                    path: path.clone(),
                    source,
                };
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(log_error)?;
                let err = log.try_clone().map_err(log_error)?;
                cmd.stdout(Stdio::from(log)).stderr(Stdio::from(err));
            }
        }
        if let Some(dir) = &function.cwd {
            cmd.current_dir(dir);
        }
        let spawned_at = Instant::now();
        let child = cmd.spawn().map_err(|source| StartError::Spawn {
            program: program.clone(),
            source,
        })?;
        Ok(Environment {
            pid: child.id().unwrap_or(0),
            child,
            spawned_at,
            timeout: function.timeout,
            init_rx,
            queue_tx,
            server,
            alive: true,
            last_request_id: None,
        })
    }

    /// Waits for the first `next` call and returns spawn -> first `next`. On failure the
    /// environment is dead (the process is killed if it still runs).
    pub async fn wait_init(&mut self, timeout: Duration) -> Result<Duration, InitFailure> {
        let result = self.init_outcome(timeout).await;
        if result.is_err() {
            self.kill().await;
        }
        result
    }

    async fn init_outcome(&mut self, timeout: Duration) -> Result<Duration, InitFailure> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let state = self.init_rx.borrow_and_update().clone();
            match state {
                Init::Ready(at) => return Ok(at.duration_since(self.spawned_at)),
                Init::Failed(body) => return Err(InitFailure::Error(body)),
                Init::Pending => {}
            }
            tokio::select! {
                changed = self.init_rx.changed() => {
                    if changed.is_err() {
                        return Err(InitFailure::Error("the Runtime API stopped".into()));
                    }
                }
                status = self.child.wait() => {
                    // An init/error is usually followed by the exit: prefer the error.
                    if let Init::Failed(body) = self.init_rx.borrow().clone() {
                        return Err(InitFailure::Error(body));
                    }
                    return Err(status.map_or_else(InitFailure::Wait, InitFailure::Exited));
                }
                () = &mut deadline => return Err(InitFailure::Timeout(timeout)),
            }
        }
    }

    /// Delivers one event and waits for its outcome, at most the function's timeout.
    pub async fn invoke(&mut self, body: impl Into<Bytes>) -> Invoked {
        self.invoke_killing_after(body, None).await
    }

    /// As [`Environment::invoke`], and SIGKILLs the process `kill_after` after the
    /// delivery if the invocation is still running then (fault injection).
    pub async fn invoke_killing_after(
        &mut self,
        body: impl Into<Bytes>,
        kill_after: Option<Duration>,
    ) -> Invoked {
        let body = body.into();
        if !self.alive {
            return Invoked::Killed;
        }
        let (reply, rx) = oneshot::channel();
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d + self.timeout).as_millis())
            .unwrap_or(0);
        let id = request_id();
        self.last_request_id = Some(id.clone());
        let pending = Pending {
            id,
            body,
            deadline_ms,
            reply,
        };
        if self.queue_tx.send(pending).await.is_err() {
            self.alive = false;
            return Invoked::Killed;
        }
        let kill = tokio::time::sleep(kill_after.unwrap_or(Duration::MAX / 4));
        let timeout = tokio::time::sleep(self.timeout);
        tokio::pin!(kill, timeout);
        let outcome = tokio::select! {
            answer = rx => match answer {
                Ok(Answer { ok: true, body, latency }) => Invoked::Response { body, latency },
                Ok(Answer { ok: false, body, latency }) => Invoked::Error { body, latency },
                Err(_) => Invoked::Crashed(self.exit_status().await),
            },
            status = self.child.wait() => match status {
                Ok(status) => Invoked::Crashed(status),
                Err(_) => Invoked::Killed,
            },
            () = &mut kill, if kill_after.is_some() => Invoked::Killed,
            () = &mut timeout => Invoked::TimedOut,
        };
        if !outcome.environment_survives() {
            self.kill().await;
        }
        outcome
    }

    async fn exit_status(&mut self) -> ExitStatus {
        self.kill().await;
        match self.child.try_wait() {
            Ok(Some(status)) => status,
            _ => ExitStatus::default(),
        }
    }

    /// SIGKILLs the process (bounded wait for its exit) and stops the API.
    pub async fn kill(&mut self) {
        self.alive = false;
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.server.abort();
    }

    /// The request id of the latest invocation (`Lambda-Runtime-Aws-Request-Id`).
    pub fn last_request_id(&self) -> Option<&str> {
        self.last_request_id.as_deref()
    }

    /// False once the process died or was killed.
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// The process id (0 if the platform gave none).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Time since the process was spawned.
    pub fn since_spawn(&self) -> Duration {
        self.spawned_at.elapsed()
    }

    /// The process's stdout, once, when started with [`Output::Piped`].
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Peak resident set size so far (`VmHWM` of `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
    }
}

/// A request id shaped like Lambda's (a UUID), unique within this process.
fn request_id() -> String {
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

    #[test]
    fn the_function_arn_and_lambda_variables_follow_the_settings() {
        let mut f = Function::new("/opt/fn/bootstrap");
        f.name = "onboard".into();
        f.memory_mb = 256;
        assert_eq!(
            f.arn(),
            "arn:aws:lambda:us-east-1:123456789012:function:onboard"
        );
        let env: HashMap<_, _> = f.lambda_env("127.0.0.1:9").into_iter().collect();
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "onboard");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(Function::new("/x/bootstrap").name, "bootstrap");
    }
}
