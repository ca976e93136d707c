//! bench-harness: runs Lambda `bootstrap` executables against a loopback Runtime
//! API and measures cold init, warm overhead, batch concurrency, memory and the
//! TLS cold path for chime-onboard, a hello-world Rust function and a Python
//! 3 + boto3 peer, in one run, and the function as deployed (idempotency on,
//! TLS, a delayed network: `deployed.rs`). `make bench`, `make bench-quick`
//! and `make bench-deployed` call it.
//!
//! Usage: `bench-harness full|quick|deployed [--key value]...` (see `Args::parse`).
mod cases;
mod delay;
mod deployed;
mod dynamo;
mod expr;
mod fakes;
mod issuer;
mod report;
mod runtime;
mod stats;
mod upstream;

use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;

/// Command-line options; every path has the default `make/bench.mk` uses.
#[derive(Clone, Debug)]
pub struct Args {
    pub quick: bool,
    /// `deployed`: only the deployed case, its numbers to `out` (not results.json).
    pub deployed_only: bool,
    pub function: PathBuf,
    pub hello: PathBuf,
    pub hello_tls: PathBuf,
    /// The SDK floor (bench/hello-sdk): one aws-sdk-chime call per invocation.
    pub hello_sdk: PathBuf,
    /// Extra hello-tls builds to compare, as `label=path`.
    pub hello_tls_variants: Vec<(String, PathBuf)>,
    /// Extra chime-onboard builds for the TLS case, as `label=path`.
    pub function_variants: Vec<(String, PathBuf)>,
    pub chime_local: PathBuf,
    pub python: PathBuf,
    pub python_dir: PathBuf,
    pub zip: PathBuf,
    pub out: PathBuf,
    pub markdown: PathBuf,
    pub log_dir: PathBuf,
    pub cold_runs: usize,
    pub tls_runs: usize,
    pub warm: usize,
    pub threshold: f64,
    /// `quick`: the limit of the spawn → first response ratio.
    pub first_response_threshold: f64,
    pub skip_python: bool,
    /// Extra environment for chime-onboard, as `KEY=value` (lever experiments).
    pub function_env: Vec<(String, String)>,
    pub command: String,
    /// Deployed case: the round-trip time the delaying proxy adds to every upstream.
    pub rtt_ms: f64,
    /// Deployed case: fresh processes of the function and of the SDK floor each.
    pub deployed_runs: usize,
    /// Deployed case: warm invocations after the first, per process.
    pub deployed_warm: usize,
    /// Cases to run (`cold,warm,sqs,tls,deployed`); all when empty.
    pub cases: Vec<String>,
}

impl Args {
    /// Whether the run includes `case`.
    pub fn wants(&self, case: &str) -> bool {
        self.cases.is_empty() || self.cases.iter().any(|c| c == case)
    }
}

impl Args {
    fn parse() -> Result<Args> {
        let mut argv = std::env::args().skip(1);
        let mode = argv.next().unwrap_or_default();
        let (quick, deployed_only) = match mode.as_str() {
            "full" => (false, false),
            "quick" => (true, false),
            "deployed" => (false, true),
            other => {
                bail!("usage: bench-harness full|quick|deployed [--key value]... (got {other:?})")
            }
        };
        let mut args = Args {
            quick,
            deployed_only,
            function: "target/release/chime-onboard".into(),
            hello: "target/release/hello".into(),
            hello_tls: "target/release/hello-tls".into(),
            hello_sdk: "target/release/hello-sdk".into(),
            hello_tls_variants: Vec::new(),
            function_variants: Vec::new(),
            chime_local: "target/release/chime-local".into(),
            python: "bench/.venv-peer/bin/python".into(),
            python_dir: "bench/peers/python".into(),
            zip: "target/lambda/chime-onboard/bootstrap.zip".into(),
            out: if deployed_only {
                "target/bench-logs/deployed.json".into()
            } else {
                "bench/results.json".into()
            },
            markdown: "BENCHMARKS.md".into(),
            log_dir: "target/bench-logs".into(),
            cold_runs: if quick { 5 } else { 30 },
            tls_runs: 15,
            warm: 1000,
            threshold: 3.0,
            first_response_threshold: 3.0,
            skip_python: false,
            function_env: Vec::new(),
            rtt_ms: 2.0,
            deployed_runs: 15,
            deployed_warm: 10,
            cases: Vec::new(),
            command: "make bench".into(),
        };
        while let Some(key) = argv.next() {
            if key == "--skip-python" {
                args.skip_python = true;
                continue;
            }
            let value = argv
                .next()
                .with_context(|| format!("{key} needs a value"))?;
            match key.as_str() {
                "--function" => args.function = value.into(),
                "--hello" => args.hello = value.into(),
                "--hello-tls" => args.hello_tls = value.into(),
                "--hello-sdk" => args.hello_sdk = value.into(),
                "--hello-tls-variant" => {
                    let (label, path) = value
                        .split_once('=')
                        .context("--hello-tls-variant wants label=path")?;
                    args.hello_tls_variants.push((label.into(), path.into()));
                }
                "--function-env" => {
                    let (k, v) = value
                        .split_once('=')
                        .context("--function-env wants KEY=value")?;
                    args.function_env.push((k.into(), v.into()));
                }
                "--cases" => args.cases = value.split(',').map(str::to_string).collect(),
                "--function-variant" => {
                    let (label, path) = value
                        .split_once('=')
                        .context("--function-variant wants label=path")?;
                    args.function_variants.push((label.into(), path.into()));
                }
                "--chime-local" => args.chime_local = value.into(),
                "--python" => args.python = value.into(),
                "--python-dir" => args.python_dir = value.into(),
                "--zip" => args.zip = value.into(),
                "--out" => args.out = value.into(),
                "--markdown" => args.markdown = value.into(),
                "--log-dir" => args.log_dir = value.into(),
                "--cold-runs" => args.cold_runs = value.parse()?,
                "--tls-runs" => args.tls_runs = value.parse()?,
                "--warm" => args.warm = value.parse()?,
                "--rtt-ms" => args.rtt_ms = value.parse()?,
                "--deployed-runs" => args.deployed_runs = value.parse()?,
                "--deployed-warm" => args.deployed_warm = value.parse()?,
                "--threshold" => args.threshold = value.parse()?,
                "--first-response-threshold" => args.first_response_threshold = value.parse()?,
                "--command" => args.command = value,
                other => bail!("unknown option {other}"),
            }
        }
        Ok(args)
    }
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-harness: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let args = Args::parse()?;
        // Every run is bounded: nothing in a full run should take 10 minutes.
        let limit = std::time::Duration::from_secs(if args.quick || args.deployed_only {
            120
        } else {
            540
        });
        match tokio::time::timeout(limit, run(args)).await {
            Ok(r) => r,
            Err(_) => bail!("benchmark exceeded {limit:?}"),
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench-harness: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    if args.quick {
        return cases::quick(&args).await;
    }
    if args.deployed_only {
        return deployed::standalone(&args).await;
    }
    let results = cases::full(&args).await?;
    report::write(&args, &results)?;
    Ok(true)
}
