//! The `chime-local` binary: flags → `Config`, `spawn`, print the URL, wait for a signal.

use chime_local::{Config, Credentials, FaultKind, Faults, RateLimit};
use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// A wire-faithful emulator of the Amazon Chime account API (CreateAccount, GetAccount,
/// ListAccounts, UpdateAccount, DeleteAccount), for tests, demos and benchmarks.
///
/// Prints one line, `chime-local listening on http://HOST:PORT`, then serves until
/// SIGINT/SIGTERM. Faults can be changed at run time with `POST /_chime-local/faults`.
#[derive(Debug, Parser)]
#[command(name = "chime-local", version)]
struct Args {
    /// Port to listen on (0: a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Seed for the fault RNG and account ids: the same seed gives the same run.
    #[arg(long)]
    seed: Option<u64>,
    /// Verify SigV4 signatures with this access key id (needs --secret-key).
    #[arg(long, requires = "secret_key")]
    access_key: Option<String>,
    /// The secret key signatures are verified with (needs --access-key).
    #[arg(long, requires = "access_key")]
    secret_key: Option<String>,
    /// AwsAccountId of created accounts.
    #[arg(long, default_value = "111122223333")]
    aws_account_id: String,
    /// Keep accounts in this JSON file across restarts.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Probability (0..1) of ThrottledClientException (429).
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Probability (0..1) of ServiceUnavailableException (503).
    #[arg(long, default_value_t = 0.0)]
    unavailable_rate: f64,
    /// Probability (0..1) of ServiceFailureException (500).
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Latency added to every account-API request, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Extra latency, uniform in 0..=N ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Token-bucket rate limit in requests per second; beyond it, 429.
    #[arg(long)]
    rate_limit_rps: Option<f64>,
    /// Token-bucket size (with --rate-limit-rps).
    #[arg(long, default_value_t = 1, requires = "rate_limit_rps")]
    rate_limit_burst: u32,
    /// Probability (0..1) that a connection is reset instead of answered.
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    /// Probability (0..1), per mutating request that ran, that the change is kept and the
    /// answer is ServiceFailureException (500).
    #[arg(long, default_value_t = 0.0)]
    after_commit_failure_rate: f64,
    /// Likewise, answered ServiceUnavailableException (503).
    #[arg(long, default_value_t = 0.0)]
    after_commit_unavailable_rate: f64,
    /// Likewise, the connection is reset instead of answered.
    #[arg(long, default_value_t = 0.0)]
    after_commit_reset_rate: f64,
    /// Likewise, nothing is sent for --withhold-ms, then the connection is closed unanswered.
    #[arg(long, default_value_t = 0.0)]
    after_commit_withhold_rate: f64,
    /// How long a withheld answer is held back, in ms.
    #[arg(long, default_value_t = chime_local::DEFAULT_WITHHOLD_MS)]
    withhold_ms: u64,
    /// Faults for the next requests, in order, comma-separated
    /// (e.g. ThrottledClientException,ServiceUnavailableException,ConnectionReset;
    /// Committed* kinds wait for the next CreateAccount/UpdateAccount/DeleteAccount).
    #[arg(long, value_delimiter = ',', value_parser = parse_fault_kind)]
    fail_next: Vec<FaultKind>,
    /// Probability (0..=1), per mutating request not otherwise faulted, of a late commit:
    /// the operation runs --late-commit-ms after the request, client or no client.
    #[arg(long, default_value_t = 0.0)]
    late_commit_rate: f64,
    /// How long after the request a late commit happens, in ms.
    #[arg(long, default_value_t = chime_local::DEFAULT_LATE_COMMIT_MS)]
    late_commit_ms: u64,
}

fn parse_fault_kind(s: &str) -> Result<FaultKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown fault {s:?}"))
}

impl Args {
    fn into_config(self) -> Result<Config, String> {
        let faults = Faults {
            throttle_rate: self.throttle_rate,
            unavailable_rate: self.unavailable_rate,
            failure_rate: self.failure_rate,
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            rate_limit: self.rate_limit_rps.map(|rps| RateLimit {
                rps,
                burst: self.rate_limit_burst,
            }),
            reset_rate: self.reset_rate,
            after_commit_failure_rate: self.after_commit_failure_rate,
            after_commit_unavailable_rate: self.after_commit_unavailable_rate,
            after_commit_reset_rate: self.after_commit_reset_rate,
            after_commit_withhold_rate: self.after_commit_withhold_rate,
            withhold_ms: self.withhold_ms,
            fail_next: self.fail_next,
            seed: None,
            late_commit_rate: self.late_commit_rate,
            late_commit_ms: self.late_commit_ms,
        };
        faults.validate()?;
        if self.aws_account_id.len() != 12
            || !self.aws_account_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("--aws-account-id must be 12 digits".to_owned());
        }
        let credentials = match (self.access_key, self.secret_key) {
            (Some(access_key_id), Some(secret_access_key)) => Some(Credentials {
                access_key_id,
                secret_access_key,
            }),
            _ => None,
        };
        Ok(Config {
            port: Some(self.port),
            host: self.host,
            seed: self.seed,
            credentials,
            aws_account_id: self.aws_account_id,
            faults,
            state_file: self.state,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chime-local: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = args.into_config()?;
    let handle = chime_local::spawn(config)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    // The one line scripts wait for (stdout, flushed by println's line buffering).
    println!("chime-local listening on {}", handle.url());
    shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
