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
//! The Runtime API itself (paths, headers, answers) is `api.rs`; what a function is started
//! with, `function.rs`.

mod api;
mod function;

pub use function::{Function, Output};

use api::{request_id, Answer, Init, Pending};
use bytes::Bytes;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

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
        let (server, queue_tx, init_rx) = api::spawn(listener, function.arn());

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
