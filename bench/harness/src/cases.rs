//! The benchmark cases (see BENCHMARKS.md for what each measures and why).
use crate::fakes::{FakeSqs, TestCa, TlsProxy};
use crate::runtime::{Bootstrap, Session};
use crate::stats::{ratio, round, Samples};
use crate::upstream::{ChimeLocal, RawClient};
use crate::Args;
use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Debian's single-file bundle (what `SSL_CERT_FILE` points at for the one-file lever).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(15);
pub(crate) const INVOKE_TIMEOUT: Duration = Duration::from_secs(15);

static NAMES: AtomicU64 = AtomicU64::new(0);

fn next_name() -> String {
    format!("Bench Account {}", NAMES.fetch_add(1, Ordering::Relaxed))
}

/// An API Gateway HTTP API (v2) `POST /accounts` event with a fresh name.
fn apigw_v2_post_accounts() -> Bytes {
    apigw_v2_post_accounts_keyed(None)
}

/// The same, with an `Idempotency-Key` header when `key` is given.
pub(crate) fn apigw_v2_post_accounts_keyed(key: Option<&str>) -> Bytes {
    let body = json!({ "Name": next_name() }).to_string();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "POST /accounts",
        "rawPath": "/accounts",
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-length": body.len().to_string(),
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "bench-harness",
            "x-forwarded-for": "203.0.113.10",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/accounts",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "bench-harness"
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "POST /accounts",
            "stage": "$default",
            "time": "21/Apr/2020:15:08:21 +0000",
            "timeEpoch": 1587481701067u64
        },
        "isBase64Encoded": false,
        "body": body
    });
    if let (Some(key), Some(headers)) = (key, event.get_mut("headers")) {
        headers["idempotency-key"] = json!(key);
    }
    Bytes::from(event.to_string())
}

/// A standard-queue SQS event of `n` onboarding messages with fresh names.
fn sqs_batch(n: usize) -> Bytes {
    let records: Vec<Value> = (0..n)
        .map(|_| {
            let name = next_name();
            let id = NAMES.fetch_add(1, Ordering::Relaxed);
            json!({
                "messageId": format!("b0000000-0000-4000-8000-{id:012}"),
                "receiptHandle": format!("AQEBbench{id}"),
                "body": json!({ "Name": name, "RequestId": format!("bench-{id}") }).to_string(),
                "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:chime-onboard-requests",
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795753800000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795753800010"
                },
                "messageAttributes": {}
            })
        })
        .collect();
    Bytes::from(json!({ "Records": records }).to_string())
}

pub(crate) fn status_code(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("statusCode")?
        .as_u64()
}

fn batch_failures(body: &[u8]) -> Option<usize> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some(
        v.get("batchItemFailures")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    )
}

/// The three functions under test (and the TLS hello world), with the
/// environment each gets on top of the Lambda-provided variables.
pub(crate) struct Subjects {
    pub(crate) function: Bootstrap,
    pub(crate) hello: Bootstrap,
    pub(crate) hello_tls: Bootstrap,
    /// The SDK floor: one aws-sdk-chime call per invocation, nothing else.
    pub(crate) hello_sdk: Bootstrap,
    pub(crate) python: Bootstrap,
}

pub(crate) fn subjects(args: &Args, chime_url: &str, sqs_url: &str, queue_url: &str) -> Subjects {
    let log_dir = args.log_dir.clone();
    let app_env = vec![
        ("AWS_ENDPOINT_URL_CHIME".to_string(), chime_url.to_string()),
        ("AWS_ENDPOINT_URL_SQS".to_string(), sqs_url.to_string()),
        ("REPLY_QUEUE_URL".to_string(), queue_url.to_string()),
        ("MAX_CONCURRENCY".to_string(), "10".to_string()),
        ("CHIME_TIMEOUT_MS".to_string(), "5000".to_string()),
    ];
    let mut function_env = app_env.clone();
    function_env.extend(args.function_env.iter().cloned());
    let python_dir = std::fs::canonicalize(&args.python_dir).unwrap_or(args.python_dir.clone());
    let mut python_env = app_env.clone();
    python_env.extend([
        (
            "LAMBDA_TASK_ROOT".to_string(),
            python_dir.display().to_string(),
        ),
        ("_HANDLER".to_string(), "handler.handler".to_string()),
        ("PYTHONPATH".to_string(), python_dir.display().to_string()),
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ]);
    Subjects {
        function: Bootstrap {
            label: "chime-onboard".into(),
            program: args.function.clone(),
            args: vec![],
            cwd: None,
            env: function_env,
            log_dir: log_dir.clone(),
        },
        hello: Bootstrap {
            label: "hello".into(),
            program: args.hello.clone(),
            args: vec![],
            cwd: None,
            env: vec![],
            log_dir: log_dir.clone(),
        },
        hello_tls: Bootstrap {
            label: "hello-tls".into(),
            program: args.hello_tls.clone(),
            args: vec![],
            cwd: None,
            env: vec![],
            log_dir: log_dir.clone(),
        },
        hello_sdk: Bootstrap {
            label: "hello-sdk".into(),
            program: args.hello_sdk.clone(),
            args: vec![],
            cwd: None,
            env: app_env.clone(),
            log_dir: log_dir.clone(),
        },
        python: Bootstrap {
            label: "python-peer".into(),
            program: args.python.clone(),
            args: vec!["-m".into(), "awslambdaric".into(), "handler.handler".into()],
            cwd: Some(python_dir),
            env: python_env,
            log_dir,
        },
    }
}

pub(crate) fn with_env(b: &Bootstrap, label: &str, extra: &[(&str, String)]) -> Bootstrap {
    let mut b = b.clone();
    b.label = label.to_string();
    for (k, v) in extra {
        b.env.retain(|(key, _)| key != k);
        b.env.push(((*k).to_string(), v.clone()));
    }
    b
}

/// Per-subject cold-start measurements.
#[derive(Default)]
struct Cold {
    init: Samples,
    first_invoke: Samples,
    first_response: Samples,
    rss_kib: Vec<u64>,
    failures: Vec<String>,
}

/// One cold start: spawn, wait for init, optionally one invocation, peak RSS.
async fn cold_once(
    b: &Bootstrap,
    event: Option<Bytes>,
    expect: Option<u64>,
    into: &mut Cold,
) -> Result<()> {
    let mut session = Session::start(b).await?;
    let init = session.wait_init(INIT_TIMEOUT).await;
    let init = match init {
        Ok(d) => d,
        Err(e) => {
            let _ = session.finish().await;
            return Err(e);
        }
    };
    into.init.push(init);
    if let Some(event) = event {
        match session.invoke(event, INVOKE_TIMEOUT).await {
            Ok(outcome) => {
                into.first_response.push(session.since_spawn());
                into.first_invoke.push(outcome.latency);
                let status = status_code(&outcome.body);
                if !outcome.ok || (expect.is_some() && status != expect) {
                    into.failures.push(format!(
                        "{}: first response {}",
                        b.label,
                        String::from_utf8_lossy(&outcome.body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ));
                }
            }
            Err(e) => into.failures.push(format!("{e:#}")),
        }
    }
    into.rss_kib.push(session.finish().await?);
    Ok(())
}

/// `make bench-quick`: 5 cold starts each of the function and hello world,
/// each answering one `POST /accounts` (the function through chime-local);
/// ratios of the p50 init and of the p50 spawn → first response; fails when
/// either exceeds its threshold.
pub async fn quick(args: &Args) -> Result<bool> {
    let chime = ChimeLocal::start(&args.chime_local, &args.log_dir).await?;
    let s = subjects(
        args,
        &chime.url(),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/123456789012/chime-onboard-replies",
    );
    let mut ours = Cold::default();
    let mut hello = Cold::default();
    // One discarded start each warms the page cache, as a re-used machine would be.
    cold_once(&s.function, None, None, &mut Cold::default()).await?;
    cold_once(&s.hello, None, None, &mut Cold::default()).await?;
    for _ in 0..args.cold_runs {
        let event = Some(apigw_v2_post_accounts());
        cold_once(&s.function, event.clone(), Some(201), &mut ours).await?;
        cold_once(&s.hello, event, Some(200), &mut hello).await?;
    }
    chime.stop().await;
    if let Some(failure) = ours.failures.first() {
        bail!("the function's first response failed: {failure}");
    }
    let mut ok = true;
    for (what, ours, hello, limit) in [
        ("init", &ours.init, &hello.init, args.threshold),
        (
            "spawn -> first response",
            &ours.first_response,
            &hello.first_response,
            args.first_response_threshold,
        ),
    ] {
        let (Some(a), Some(b)) = (ours.p50(), hello.p50()) else {
            bail!("no {what} samples");
        };
        let r = a / b;
        ok &= r <= limit;
        println!(
            "bench-quick: {what} vs hello world {r:.2}x (limit {limit:.1}x; p50 {a:.1} vs {b:.1} ms): {}",
            if r <= limit { "ok" } else { "REGRESSION" }
        );
    }
    println!(
        "bench-quick: {} cold starts each; ratios only, absolute times for information",
        args.cold_runs
    );
    Ok(ok)
}

/// Everything `make bench` reports; `report` turns it into results.json and
/// the BENCHMARKS.md table.
pub struct Results {
    pub top: BTreeMap<&'static str, Value>,
    pub details: Value,
}

pub async fn full(args: &Args) -> Result<Results> {
    let run_started = Instant::now();
    for (what, path) in [
        ("function", &args.function),
        ("hello", &args.hello),
        ("hello-tls", &args.hello_tls),
        ("hello-sdk", &args.hello_sdk),
        ("chime-local", &args.chime_local),
    ] {
        if !path.exists() {
            bail!(
                "{what} binary missing: {} (run `make bench`, which builds it)",
                path.display()
            );
        }
    }
    let python = !args.skip_python && args.python.exists();
    let chime = ChimeLocal::start(&args.chime_local, &args.log_dir).await?;
    let sqs = FakeSqs::start().await?;
    let ca = TestCa::generate(&args.log_dir)?;
    let proxy = TlsProxy::start(chime.addr, &ca, None).await?;
    let s = subjects(args, &chime.url(), &sqs.url(), &sqs.queue_url());
    let mut notes: Vec<String> = Vec::new();
    let mut top: BTreeMap<&'static str, Value> = BTreeMap::new();
    let mut details = serde_json::Map::new();
    let mut variant_summary = serde_json::Map::new();

    if args.wants("cold") {
        // 1. Cold init (latency 0), interleaved so drift hits all three alike.
        chime.set_latency(0).await?;
        eprintln!("bench: case 1, cold init x{}", args.cold_runs);
        let (mut ours, mut hello, mut py) = (Cold::default(), Cold::default(), Cold::default());
        let mut sdk = Cold::default();
        // Root-store levers, by configuration only: one bundle file (no
        // directory scan), and a one-certificate store (as if a few pinned
        // roots were compiled in).
        let (mut ours_bundle, mut ours_small) = (Cold::default(), Cold::default());
        let one_bundle = with_env(
            &s.function,
            "chime-onboard",
            &[("SSL_CERT_FILE", SYSTEM_BUNDLE.to_string())],
        );
        let small = with_env(
            &s.function,
            "chime-onboard",
            &[("SSL_CERT_FILE", proxy.trust.ca_only.display().to_string())],
        );
        // Other builds of the function (`--function-variant`), same environment.
        let variants: Vec<(String, Bootstrap)> = args
            .function_variants
            .iter()
            .filter(|(_, path)| path.exists())
            .map(|(label, path)| {
                let mut b = s.function.clone();
                b.label = format!("chime-onboard-{label}");
                b.program = path.clone();
                (label.clone(), b)
            })
            .collect();
        let mut variant_cold: BTreeMap<String, Cold> = BTreeMap::new();
        cold_once(&s.function, None, None, &mut Cold::default()).await?;
        cold_once(&s.hello, None, None, &mut Cold::default()).await?;
        for _ in 0..args.cold_runs {
            cold_once(
                &s.function,
                Some(apigw_v2_post_accounts()),
                Some(201),
                &mut ours,
            )
            .await?;
            cold_once(
                &s.hello,
                Some(apigw_v2_post_accounts()),
                Some(200),
                &mut hello,
            )
            .await?;
            cold_once(
                &s.hello_sdk,
                Some(apigw_v2_post_accounts()),
                Some(201),
                &mut sdk,
            )
            .await?;
            if python {
                cold_once(
                    &s.python,
                    Some(apigw_v2_post_accounts()),
                    Some(201),
                    &mut py,
                )
                .await?;
            }
            if Path::new(SYSTEM_BUNDLE).exists() {
                cold_once(&one_bundle, None, None, &mut ours_bundle).await?;
            }
            cold_once(&small, None, None, &mut ours_small).await?;
            for (label, b) in &variants {
                let cold = variant_cold.entry(label.clone()).or_default();
                cold_once(b, Some(apigw_v2_post_accounts()), Some(201), cold).await?;
            }
        }
        for (label, c) in &variant_cold {
            notes.extend(c.failures.iter().take(1).cloned());
            variant_summary.insert(
                label.clone(),
                json!({
                    "init_ms": c.init.summary(),
                    "init_ratio_vs_hello": ratio(c.init.p50(), hello.init.p50()),
                    "spawn_to_first_response_ms": c.first_response.summary(),
                    "peak_rss_kib_max_after_one_invocation": c.rss_kib.iter().max(),
                }),
            );
        }
        top.insert(
            "init_one_bundle_file_ms_p50",
            json!(round(ours_bundle.init.p50())),
        );
        top.insert(
            "init_small_roots_ms_p50",
            json!(round(ours_small.init.p50())),
        );
        top.insert(
            "init_small_roots_ratio_vs_hello",
            json!(ratio(ours_small.init.p50(), hello.init.p50())),
        );
        notes.extend(ours.failures.iter().take(3).cloned());
        notes.extend(py.failures.iter().take(3).cloned());
        notes.extend(sdk.failures.iter().take(3).cloned());
        top.insert("sdk_floor_init_ms_p50", json!(round(sdk.init.p50())));
        top.insert(
            "sdk_floor_first_response_ms_p50",
            json!(round(sdk.first_response.p50())),
        );
        top.insert(
            "sdk_floor_first_response_ratio_vs_hello",
            json!(ratio(sdk.first_response.p50(), hello.first_response.p50())),
        );
        top.insert(
            "first_response_ratio_vs_sdk_floor",
            json!(ratio(ours.first_response.p50(), sdk.first_response.p50())),
        );
        top.insert("init_ms_p50", json!(round(ours.init.p50())));
        top.insert("hello_init_ms_p50", json!(round(hello.init.p50())));
        top.insert("python_init_ms_p50", json!(round(py.init.p50())));
        top.insert(
            "init_ratio_vs_hello",
            json!(ratio(ours.init.p50(), hello.init.p50())),
        );
        top.insert(
            "python_init_ratio",
            json!(ratio(py.init.p50(), ours.init.p50())),
        );
        top.insert(
            "first_response_ms_p50",
            json!(round(ours.first_response.p50())),
        );
        top.insert(
            "hello_first_response_ms_p50",
            json!(round(hello.first_response.p50())),
        );
        top.insert(
            "first_response_ratio_vs_hello",
            json!(ratio(ours.first_response.p50(), hello.first_response.p50())),
        );
        top.insert(
            "python_first_response_ms_p50",
            json!(round(py.first_response.p50())),
        );
        details.insert(
        "cold".into(),
        json!({
            "runs": args.cold_runs,
            "chime_latency_ms": 0,
            "init_ms": { "chime-onboard": ours.init.summary(), "hello": hello.init.summary(), "hello-sdk": sdk.init.summary(), "python": py.init.summary(), "chime-onboard/SSL_CERT_FILE=one-bundle-file": ours_bundle.init.summary(), "chime-onboard/SSL_CERT_FILE=one-CA": ours_small.init.summary() },
            "first_invocation_ms": { "chime-onboard": ours.first_invoke.summary(), "hello": hello.first_invoke.summary(), "hello-sdk": sdk.first_invoke.summary(), "python": py.first_invoke.summary() },
            "spawn_to_first_response_ms": { "chime-onboard": ours.first_response.summary(), "hello": hello.first_response.summary(), "hello-sdk": sdk.first_response.summary(), "python": py.first_response.summary() },
            "peak_rss_kib_max_after_one_invocation": {
                "chime-onboard": ours.rss_kib.iter().max(), "hello": hello.rss_kib.iter().max(), "python": py.rss_kib.iter().max()
            },
            "failed_first_responses": { "chime-onboard": ours.failures.len(), "python": py.failures.len() },
        }),
    );
        top.insert(
            "hello_peak_rss_mb",
            json!(hello
                .rss_kib
                .iter()
                .max()
                .map(|k| round(Some(*k as f64 / 1024.0)))),
        );
    }
    if args.wants("warm") {
        // 2. Warm POST /accounts, latency 0, paired with a raw call to chime-local.
        eprintln!("bench: case 2, warm x{}", args.warm);
        let warm = warm_case(&s.function, &chime, args.warm, 50).await?;
        top.insert("warm_overhead_ms_p50", json!(round(warm.overhead.p50())));
        top.insert("warm_overhead_ms_p99", json!(round(warm.overhead.p99())));
        let hello_warm = warm_case(&s.hello, &chime, args.warm, 50).await?;
        let sdk_warm = warm_case(&s.hello_sdk, &chime, args.warm, 50).await?;
        top.insert(
            "sdk_floor_warm_overhead_ms_p50",
            json!(round(sdk_warm.overhead.p50())),
        );
        // What the function adds above one bare SDK call (same method, same run).
        top.insert(
            "warm_overhead_above_sdk_floor_ms_p50",
            json!(round(
                warm.overhead
                    .p50()
                    .zip(sdk_warm.overhead.p50())
                    .map(|(o, f)| o - f)
            )),
        );
        let py_warm = if python {
            Some(warm_case(&s.python, &chime, 200, 10).await?)
        } else {
            None
        };
        chime.set_latency(50).await?;
        let warm50 = warm_case(&s.function, &chime, 100, 5).await?;
        let py_warm50 = if python {
            Some(warm_case(&s.python, &chime, 50, 5).await?)
        } else {
            None
        };
        details.insert(
        "warm".into(),
        json!({
            "method": "overhead_i = total_i - p50(raw): each invocation is preceded by the same CreateAccount sent raw (hyper, keep-alive, no SDK) to chime-local; its median is chime-local's time for the call including loopback. total = event delivered by `next` -> response body received.",
            "chime_latency_0": {
                "invocations": args.warm,
                "total_ms": warm.total.summary(),
                "raw_chime_ms": warm.raw.summary(),
                "overhead_ms": warm.overhead.summary(),
                "hello_total_ms": hello_warm.total.summary(),
                "hello_sdk_total_ms": sdk_warm.total.summary(),
                "hello_sdk_overhead_ms": sdk_warm.overhead.summary(),
                "python_total_ms": py_warm.as_ref().map(|w| w.total.summary()),
                "python_overhead_ms": py_warm.as_ref().map(|w| w.overhead.summary()),
                "non_2xx": warm.errors,
            },
            "chime_latency_50": {
                "total_ms": warm50.total.summary(),
                "raw_chime_ms": warm50.raw.summary(),
                "overhead_ms": warm50.overhead.summary(),
                "python_total_ms": py_warm50.as_ref().map(|w| w.total.summary()),
            },
        }),
    );
        top.insert("hello_warm_ms_p50", json!(round(hello_warm.total.p50())));
        // The handler's share above the Runtime API round trip every function
        // pays (the hello world's whole warm invocation, harness included).
        top.insert(
            "warm_overhead_above_hello_ms_p50",
            json!(round(
                warm.overhead
                    .p50()
                    .zip(hello_warm.total.p50())
                    .map(|(o, h)| o - h)
            )),
        );
        top.insert("warm50_total_ms_p50", json!(round(warm50.total.p50())));
    }
    if args.wants("sqs") {
        // 3 + 4. SQS batch of 10 vs one message at 50 ms; peak RSS after it.
        eprintln!("bench: case 3, SQS batches at 50 ms");
        let batch = batch_case(&s.function, &sqs, 10).await?;
        top.insert(
            "batch10_ratio_vs_single",
            json!(ratio(batch.batch.p50(), batch.single.p50())),
        );
        top.insert(
            "peak_rss_mb",
            json!(round(Some(batch.rss_kib as f64 / 1024.0))),
        );
        let py_batch = if python {
            Some(batch_case(&s.python, &sqs, 4).await?)
        } else {
            None
        };
        top.insert(
            "python_batch10_ratio",
            json!(py_batch
                .as_ref()
                .and_then(|b| ratio(b.batch.p50(), b.single.p50()))),
        );
        top.insert(
            "python_peak_rss_mb",
            json!(py_batch
                .as_ref()
                .map(|b| round(Some(b.rss_kib as f64 / 1024.0)))),
        );
        details.insert(
        "sqs".into(),
        json!({
            "sqs_endpoint": "fake SendMessage endpoint in the harness (see fakes.rs): moto_server's per-call Python time would be counted as the function's",
            "chime_latency_ms": 50,
            "single_ms": batch.single.summary(),
            "batch10_ms": batch.batch.summary(),
            "replies_created": batch.created,
            "replies_expected": batch.expected,
            "batch_item_failures": batch.item_failures,
            "python_single_ms": py_batch.as_ref().map(|b| b.single.summary()),
            "python_batch10_ms": py_batch.as_ref().map(|b| b.batch.summary()),
            "python_replies_created": py_batch.as_ref().map(|b| b.created),
        }),
    );
        if batch.created != batch.expected {
            notes.push(format!(
                "chime-onboard sent {} Created replies for {} messages",
                batch.created, batch.expected
            ));
        }
    }
    // 4. Package size.
    let zip = std::fs::metadata(&args.zip).ok().map(|m| m.len());
    if zip.is_none() {
        notes.push(format!(
            "{} missing: zip_bytes is null (run `make package`)",
            args.zip.display()
        ));
    }
    top.insert("zip_bytes", json!(zip));

    if args.wants("tls") {
        // 5. TLS cold path: chime-local behind a TLS proxy, spawn -> first response.
        eprintln!("bench: case 5, TLS cold path x{}", args.tls_runs);
        chime.set_latency(0).await?;
        let tls = tls_case(args, &s, &proxy, python).await?;
        for (key, label) in [
            ("tls_first_response_ms_p50", "chime-onboard"),
            (
                "tls_small_roots_first_response_ms_p50",
                "chime-onboard/ca-only",
            ),
            ("hello_tls_first_response_ms_p50", "hello-tls"),
            ("sdk_floor_tls_first_response_ms_p50", "hello-sdk"),
            (
                "hello_tls_small_roots_first_response_ms_p50",
                "hello-tls/ca-only",
            ),
            ("python_tls_first_response_ms_p50", "python"),
        ] {
            top.insert(
                key,
                json!(tls.get(label).and_then(|c| round(c.first_response.p50()))),
            );
        }
        let p50 = |label: &str| tls.get(label).and_then(|c| c.first_response.p50());
        top.insert(
            "tls_first_response_ratio_vs_hello",
            json!(ratio(p50("chime-onboard"), p50("hello-tls"))),
        );
        top.insert(
            "tls_first_response_ratio_vs_sdk_floor",
            json!(ratio(p50("chime-onboard"), p50("hello-sdk"))),
        );
        let mut tls_details = serde_json::Map::new();
        for (label, c) in &tls {
            tls_details.insert(
                label.clone(),
                json!({
                    "init_ms": c.init.summary(),
                    "first_invocation_ms": c.first_invoke.summary(),
                    "spawn_to_first_response_ms": c.first_response.summary(),
                    "failures": c.failures.iter().take(2).collect::<Vec<_>>(),
                }),
            );
            notes.extend(c.failures.iter().take(1).cloned());
        }
        details.insert("tls".into(), Value::Object(tls_details));
    }
    if args.wants("deployed") {
        // 6. As deployed: idempotency on, TLS, a network between the function and both upstreams.
        eprintln!(
            "bench: case 6, deployed (RTT {} ms) x{}",
            args.rtt_ms, args.deployed_runs
        );
        chime.set_latency(0).await?;
        let deployed = crate::deployed::run(args, &s, chime.addr, &ca).await?;
        top.extend(deployed.top);
        notes.extend(deployed.notes);
        details.insert("deployed".into(), deployed.details);
    }
    details.insert(
        "chime_local_stats".into(),
        chime.stats().await.unwrap_or(Value::Null),
    );

    proxy.stop();
    sqs.stop();
    chime.stop().await;

    details.insert("function_variants".into(), Value::Object(variant_summary));
    top.insert("machine", json!(machine()));
    details.insert("notes".into(), json!(notes));
    details.insert("run_seconds".into(), json!(run_started.elapsed().as_secs()));
    Ok(Results {
        top,
        details: Value::Object(details),
    })
}

struct Warm {
    total: Samples,
    raw: Samples,
    overhead: Samples,
    errors: usize,
}

/// `n` warm invocations of one environment, each preceded by a raw call.
async fn warm_case(b: &Bootstrap, chime: &ChimeLocal, n: usize, warmup: usize) -> Result<Warm> {
    let mut session = Session::start(b).await?;
    session.wait_init(INIT_TIMEOUT).await?;
    let mut raw_client = RawClient::connect(chime.addr).await?;
    for _ in 0..warmup {
        session
            .invoke(apigw_v2_post_accounts(), INVOKE_TIMEOUT)
            .await?;
        raw_client.time_create_account(&next_name()).await?;
    }
    let (mut total, mut raw) = (Samples::default(), Samples::default());
    let mut totals = Vec::with_capacity(n);
    let mut errors = 0;
    for _ in 0..n {
        raw.push(raw_client.time_create_account(&next_name()).await?);
        let outcome = session
            .invoke(apigw_v2_post_accounts(), INVOKE_TIMEOUT)
            .await?;
        let code = status_code(&outcome.body).unwrap_or(0);
        if !outcome.ok || !(200..300).contains(&code) {
            errors += 1;
        }
        total.push(outcome.latency);
        totals.push(outcome.latency.as_secs_f64() * 1000.0);
    }
    session.finish().await?;
    let raw_p50 = raw.p50().unwrap_or(0.0);
    let mut overhead = Samples::default();
    for t in totals {
        overhead.push_ms(t - raw_p50);
    }
    Ok(Warm {
        total,
        raw,
        overhead,
        errors,
    })
}

struct Batch {
    single: Samples,
    batch: Samples,
    rss_kib: u64,
    created: usize,
    expected: usize,
    item_failures: usize,
}

/// Alternating SQS events of 1 and 10 messages on one warm environment.
async fn batch_case(b: &Bootstrap, sqs: &FakeSqs, rounds: usize) -> Result<Batch> {
    let mut session = Session::start(b).await?;
    session.wait_init(INIT_TIMEOUT).await?;
    for _ in 0..2 {
        session.invoke(sqs_batch(1), INVOKE_TIMEOUT).await?;
    }
    sqs.take_replies();
    let (mut single, mut batch) = (Samples::default(), Samples::default());
    let mut item_failures = 0;
    for _ in 0..rounds {
        let one = session.invoke(sqs_batch(1), INVOKE_TIMEOUT).await?;
        single.push(one.latency);
        item_failures += batch_failures(&one.body).unwrap_or(1);
        let ten = session.invoke(sqs_batch(10), INVOKE_TIMEOUT).await?;
        batch.push(ten.latency);
        item_failures += batch_failures(&ten.body).unwrap_or(10);
    }
    let rss_kib = session.finish().await?;
    let replies = sqs.take_replies();
    let created = replies
        .iter()
        .filter(|r| {
            serde_json::from_str::<Value>(r)
                .ok()
                .and_then(|v| {
                    v.get("Status")
                        .and_then(Value::as_str)
                        .map(|s| s == "Created")
                })
                .unwrap_or(false)
        })
        .count();
    Ok(Batch {
        single,
        batch,
        rss_kib,
        created,
        expected: rounds * 11,
        item_failures,
    })
}

/// Spawn -> first response through the TLS proxy, per subject and root store.
async fn tls_case(
    args: &Args,
    s: &Subjects,
    proxy: &TlsProxy,
    python: bool,
) -> Result<BTreeMap<String, Cold>> {
    let bundle = proxy.trust.bundle.display().to_string();
    let ca_only = proxy.trust.ca_only.display().to_string();
    let https = proxy.url();
    let stats_url = format!("{https}/_chime-local/stats");
    let mut subjects: Vec<(String, Bootstrap, u64)> = vec![
        (
            "chime-onboard".into(),
            with_env(
                &s.function,
                "chime-onboard-tls",
                &[
                    ("AWS_ENDPOINT_URL_CHIME", https.clone()),
                    ("SSL_CERT_FILE", bundle.clone()),
                ],
            ),
            201,
        ),
        (
            "chime-onboard/ca-only".into(),
            with_env(
                &s.function,
                "chime-onboard-tls",
                &[
                    ("AWS_ENDPOINT_URL_CHIME", https.clone()),
                    ("SSL_CERT_FILE", ca_only.clone()),
                ],
            ),
            201,
        ),
        (
            "hello-tls".into(),
            with_env(
                &s.hello_tls,
                "hello-tls",
                &[
                    ("HELLO_TLS_URL", stats_url.clone()),
                    ("SSL_CERT_FILE", bundle.clone()),
                ],
            ),
            200,
        ),
        (
            "hello-tls/ca-only".into(),
            with_env(
                &s.hello_tls,
                "hello-tls",
                &[
                    ("HELLO_TLS_URL", stats_url.clone()),
                    ("SSL_CERT_FILE", ca_only.clone()),
                ],
            ),
            200,
        ),
        (
            "hello-sdk".into(),
            with_env(
                &s.hello_sdk,
                "hello-sdk-tls",
                &[
                    ("AWS_ENDPOINT_URL_CHIME", https.clone()),
                    ("SSL_CERT_FILE", bundle.clone()),
                ],
            ),
            201,
        ),
    ];
    for (label, path) in &args.function_variants {
        if !path.exists() {
            continue;
        }
        let mut b = with_env(
            &s.function,
            "chime-onboard-tls",
            &[
                ("AWS_ENDPOINT_URL_CHIME", https.clone()),
                ("SSL_CERT_FILE", bundle.clone()),
            ],
        );
        b.program = path.clone();
        subjects.push((format!("chime-onboard/{label}"), b, 201));
    }
    for (label, path) in &args.hello_tls_variants {
        if !path.exists() {
            continue;
        }
        let mut b = with_env(
            &s.hello_tls,
            "hello-tls",
            &[
                ("HELLO_TLS_URL", stats_url.clone()),
                ("SSL_CERT_FILE", bundle.clone()),
            ],
        );
        b.program = path.clone();
        subjects.push((format!("hello-tls/{label}"), b, 200));
    }
    if python {
        subjects.push((
            "python".into(),
            with_env(
                &s.python,
                "python-peer-tls",
                &[
                    ("AWS_ENDPOINT_URL_CHIME", https.clone()),
                    ("AWS_CA_BUNDLE", bundle.clone()),
                ],
            ),
            201,
        ));
    }
    let mut out: BTreeMap<String, Cold> = BTreeMap::new();
    for _ in 0..args.tls_runs {
        for (label, b, expect) in &subjects {
            let cold = out.entry(label.clone()).or_default();
            cold_once(b, Some(apigw_v2_post_accounts()), Some(*expect), cold)
                .await
                .with_context(|| format!("TLS case {label}"))?;
        }
    }
    Ok(out)
}

/// CPU model, cores, memory and kernel, from /proc.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| (kib / 1024.0 / 1024.0).round());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem_gib} GiB, Linux {} ({})",
        kernel.trim(),
        std::env::consts::ARCH
    )
}
