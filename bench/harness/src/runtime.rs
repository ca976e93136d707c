//! One execution environment per cold start, on lambda-local's Runtime API emulator
//! (crates/lambda-local, the repository's one copy), with the timing the benchmarks read.
//!
//! [`Session::start`] spawns the `bootstrap` with Lambda's environment; `wait_init`
//! times spawn -> first `GET .../invocation/next`; [`Session::invoke`] times the
//! delivery of one event -> the arrival of its complete response (or error);
//! [`Session::finish`] reads `VmHWM` from `/proc/<pid>/status`, then kills it.
use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use lambda_local::{Environment, Function, Invoked, Output};
use std::path::PathBuf;
use std::time::Duration;

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

/// One execution environment: a Runtime API server and the process using it.
pub struct Session {
    label: String,
    env: Environment,
}

impl Session {
    /// Binds the API, spawns the process and returns at once (see [`Session::wait_init`]).
    pub async fn start(bootstrap: &Bootstrap) -> Result<Session> {
        std::fs::create_dir_all(&bootstrap.log_dir)?;
        let mut function = Function::new(&bootstrap.program);
        function.name = "chime-onboard-bench".into();
        function.args.clone_from(&bootstrap.args);
        function.cwd.clone_from(&bootstrap.cwd);
        function.env.clone_from(&bootstrap.env);
        // Each call of `invoke` bounds itself; Lambda's maximum is the backstop.
        function.timeout = Duration::from_secs(900);
        function.output =
            Output::Append(bootstrap.log_dir.join(format!("{}.log", bootstrap.label)));
        Ok(Session {
            label: bootstrap.label.clone(),
            env: Environment::start(&function).await?,
        })
    }

    /// Waits for the first `next` call: returns spawn -> first `next`.
    pub async fn wait_init(&mut self, timeout: Duration) -> Result<Duration> {
        self.env
            .wait_init(timeout)
            .await
            .map_err(|e| anyhow!("{}: {e}", self.label))
    }

    /// Time since spawn, for "spawn -> first response".
    pub fn since_spawn(&self) -> Duration {
        self.env.since_spawn()
    }

    /// Delivers one event and waits (bounded) for its response.
    pub async fn invoke(&mut self, body: Bytes, timeout: Duration) -> Result<Outcome> {
        let invoked = tokio::time::timeout(timeout, self.env.invoke(body)).await;
        match invoked {
            Ok(Invoked::Response { body, latency }) => Ok(Outcome {
                ok: true,
                body,
                latency,
            }),
            Ok(Invoked::Error { body, latency }) => Ok(Outcome {
                ok: false,
                body,
                latency,
            }),
            Ok(other) => bail!("{}: invocation ended: {other:?}", self.label),
            Err(_) => bail!("{}: no response within {timeout:?}", self.label),
        }
    }

    /// Reads the peak RSS, then kills the process and stops the API.
    pub async fn finish(mut self) -> Result<u64> {
        let rss = self.env.peak_rss_kib();
        self.env.kill().await;
        rss.ok_or_else(|| anyhow!("{}: no VmHWM for pid {}", self.label, self.env.pid()))
    }
}
