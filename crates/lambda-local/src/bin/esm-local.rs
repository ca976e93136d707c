//! `esm-local`: a local SQS event source mapping in front of a function binary run under
//! the loopback Runtime API. See the crate docs and `esm-local --help`.

use clap::Parser;
use lambda_local::esm::{self, Counters, KillFaults, Mapping};
use lambda_local::{Function, Output};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Polls an SQS queue and invokes a Lambda function binary with the batches, as Lambda's
/// event source mapping does with ReportBatchItemFailures: deletes what the function did
/// not report failed; an invocation error, crash, timeout or malformed answer returns the
/// whole batch (visible again after the queue's visibility timeout). The queue's
/// RedrivePolicy moves a message to its DLQ. Prints a status line every --status-secs and
/// a summary at the end; stops on SIGINT/SIGTERM or after --max-seconds.
#[derive(Parser, Debug)]
#[command(name = "esm-local", version)]
struct Args {
    /// The source queue URL.
    #[arg(long)]
    queue_url: String,
    /// The SQS endpoint (default: $AWS_ENDPOINT_URL_SQS, then $AWS_ENDPOINT_URL).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The function: a bootstrap executable speaking the Lambda Runtime API.
    #[arg(long)]
    function: PathBuf,
    /// A variable for the function, KEY=VALUE (repeatable; after --env-file).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// A file of KEY=VALUE lines for the function (`#` comments and blank lines skipped).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// The function's name (default: the executable's file name).
    #[arg(long)]
    function_name: Option<String>,
    /// The function's memory size in MB (only reported to it).
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// The function timeout in seconds: an invocation past it is killed.
    #[arg(long, default_value_t = 30.0)]
    timeout_secs: f64,
    /// Messages per batch, 1..=10.
    #[arg(long, default_value_t = 10)]
    batch_size: i32,
    /// Pollers, each with its own execution environment.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Long-poll wait of each ReceiveMessage, 0..=20 seconds.
    #[arg(long, default_value_t = 5)]
    wait_secs: i32,
    /// Probability per invocation of a SIGKILL of the function while it runs.
    #[arg(long, default_value_t = 0.0)]
    kill_rate: f64,
    /// The kill comes after a delay uniform in 0..this many ms from the delivery; an
    /// invocation that ends earlier is not killed (only real kills are counted).
    #[arg(long, default_value_t = 200)]
    kill_window_ms: u64,
    /// Seeds the kill draws (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 12.0 * 3600.0)]
    max_seconds: f64,
    /// Seconds between status lines (0: none).
    #[arg(long, default_value_t = 5.0)]
    status_secs: f64,
    /// Append the function's stdout and stderr to this file (default: ours).
    #[arg(long)]
    function_log: Option<PathBuf>,
    /// Append one JSON line per batch to this file: message ids with their receive
    /// counts, and the outcome (kept ids, or why the whole batch returned).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Write the final counters to this file as JSON.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Start a fresh environment when the --function file changes (after a rebuild).
    #[arg(long)]
    restart_on_rebuild: bool,
    /// The region for SQS requests (default: $AWS_REGION, then us-east-1).
    #[arg(long)]
    region: Option<String>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn read_env_file(path: &PathBuf) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --env-file {}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            parse_pair(l)
                .map(|(key, value)| (key, unquote(&value).to_owned()))
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

/// A dotenv value in matching double or single quotes stands for what is inside
/// (the file is shared with `cargo lambda watch`, which needs quotes around spaces).
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag} must be a positive number of seconds, got {value}"))
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

struct Run {
    mapping: Mapping,
    endpoint: String,
    region: String,
    max: Duration,
    status_every: Option<Duration>,
    summary_json: Option<PathBuf>,
}

fn configure(args: Args) -> Result<Run, String> {
    let endpoint = args
        .endpoint_url
        .or_else(|| env_var("AWS_ENDPOINT_URL_SQS"))
        .or_else(|| env_var("AWS_ENDPOINT_URL"))
        .ok_or("no SQS endpoint: pass --endpoint-url or set AWS_ENDPOINT_URL_SQS")?;
    let mut function = Function::new(&args.function);
    if !args.function.is_file() {
        return Err(format!(
            "--function {}: no such file (build it first, e.g. `cargo build --release`)",
            args.function.display()
        ));
    }
    if let Some(path) = &args.env_file {
        function.env.extend(read_env_file(path)?);
    }
    function.env.extend(args.env);
    if let Some(name) = args.function_name {
        function.name = name;
    }
    function.memory_mb = args.memory_mb;
    function.timeout = seconds(args.timeout_secs, "--timeout-secs")?;
    if let Some(path) = args.function_log {
        function.output = Output::Append(path);
    }
    let region = args
        .region
        .or_else(|| env_var("AWS_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    function.region.clone_from(&region);
    let kill = (args.kill_rate > 0.0).then(|| KillFaults {
        rate: args.kill_rate,
        window: Duration::from_millis(args.kill_window_ms),
    });
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    Ok(Run {
        mapping: Mapping {
            queue_url: args.queue_url,
            batch_size: args.batch_size,
            concurrency: args.concurrency,
            wait_time_secs: args.wait_secs,
            function,
            init_timeout: Duration::from_secs(10),
            kill,
            seed,
            restart_on_rebuild: args.restart_on_rebuild,
            trace: args.trace,
        },
        endpoint,
        region,
        max: seconds(args.max_seconds, "--max-seconds")?,
        status_every: (args.status_secs > 0.0)
            .then(|| seconds(args.status_secs, "--status-secs"))
            .transpose()?,
        summary_json: args.summary_json,
    })
}

fn sqs_client(endpoint: &str, region: &str) -> aws_sdk_sqs::Client {
    use aws_smithy_http_client::tls;
    // Plain HTTP to an emulator, or HTTPS with the platform's roots.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let credentials = aws_sdk_sqs::config::Credentials::new(
        env_var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "testing".into()),
        env_var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "testing".into()),
        env_var("AWS_SESSION_TOKEN"),
        None,
        "esm-local",
    );
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .http_client(http)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Resolves on SIGINT or SIGTERM.
async fn signalled() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn run(run: Run) -> Result<(), String> {
    let sqs = sqs_client(&run.endpoint, &run.region);
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    println!(
        "esm-local: {} -> {} (batch {}, concurrency {}, timeout {:?}{})",
        run.mapping.queue_url,
        run.mapping.function.program.display(),
        run.mapping.batch_size,
        run.mapping.concurrency,
        run.mapping.function.timeout,
        match run.mapping.kill {
            Some(k) => format!(
                ", kill rate {} within {:?}, seed {}",
                k.rate, k.window, run.mapping.seed
            ),
            None => String::new(),
        }
    );
    let mapping = tokio::spawn(esm::run(sqs, run.mapping, Arc::clone(&counters), stop_rx));
    let status = {
        let counters = Arc::clone(&counters);
        let every = run.status_every;
        tokio::spawn(async move {
            let Some(every) = every else { return };
            loop {
                tokio::time::sleep(every).await;
                println!(
                    "esm-local: {:.0}s {}",
                    started.elapsed().as_secs_f64(),
                    counters.snapshot()
                );
            }
        })
    };
    tokio::pin!(mapping);
    let outcome = tokio::select! {
        result = &mut mapping => Some(result),
        () = signalled() => None,
        () = tokio::time::sleep(run.max) => None,
    };
    let outcome = match outcome {
        Some(result) => result,
        None => {
            let _ = stop_tx.send(true);
            mapping.await
        }
    };
    status.abort();
    let summary = counters.snapshot();
    println!(
        "esm-local: done after {:.1}s: {summary}",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = run.summary_json {
        let mut json = summary.to_json();
        json["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
        std::fs::write(&path, json.to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    match outcome {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the mapping stopped abnormally: {e}")),
    }
}

fn main() -> ExitCode {
    let outcome = configure(Args::parse()).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?
            .block_on(run(config))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("esm-local: {message}");
            ExitCode::FAILURE
        }
    }
}
