//! The deployed case (issue 23): the function as the template deploys it
//! (`IDEMPOTENCY_TABLE` set) against the fake DynamoDB (`dynamo.rs`) and
//! chime-local, both over TLS (`fakes::TlsProxy`, one generated CA) and both
//! behind the delaying proxy (`delay.rs`), beside the SDK floor behind the
//! same proxy. It measures spawn → first response and counts the sequential
//! round trips of the first invocation of a fresh process (cold, from spawn)
//! and of later ones (warm). A third subject is the function signed in:
//! `AUTH_JWT_ISSUER` set to a stand-in issuer behind the same proxies
//! (`issuer.rs`), each request with a bearer token, so the key fetch is on the
//! cold path. BENCHMARKS.md, "Deployed case", has the method.
use crate::cases::{apigw_v2_post_accounts_keyed, status_code, subjects, with_env, Subjects};
use crate::cases::{INIT_TIMEOUT, INVOKE_TIMEOUT};
use crate::delay::{self, DelayProxy, Kind, Log, RoundTrip};
use crate::dynamo::FakeDynamo;
use crate::fakes::{Tap, TestCa, TlsProxy};
use crate::issuer::{Issuer, AUDIENCE};
use crate::runtime::{Bootstrap, Session};
use crate::stats::{round, Samples};
use crate::upstream::ChimeLocal;
use crate::Args;
use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The idempotency table's name (any name: the fake has every table).
const TABLE: &str = "chime-onboard-idempotency";
/// The goals of issue 23.
pub const COLD_TRIPS_GOAL: f64 = 5.0;
pub const WARM_TRIPS_GOAL: f64 = 3.0;
/// `deployed_first_response_ms_p50 ≤ floor + FIRST_RESPONSE_RTTS × rtt + FIRST_RESPONSE_SLACK_MS`.
pub const FIRST_RESPONSE_RTTS: f64 = 2.0;
pub const FIRST_RESPONSE_SLACK_MS: f64 = 1.0;

/// The signed-in subject's provisioned variant: the first event this long after init.
const PROVISIONED_IDLE: Duration = Duration::from_millis(100);

static KEYS: AtomicU64 = AtomicU64::new(0);

fn next_key() -> String {
    format!("bench-deployed-{}", KEYS.fetch_add(1, Ordering::Relaxed))
}

/// What the case reports: the documented keys and the details.
pub struct Deployed {
    pub top: Vec<(&'static str, Value)>,
    pub details: Value,
    pub notes: Vec<String>,
}

/// The upstreams as the functions see them: TLS behind the delay, and what
/// each TLS proxy decrypted (to name the requests).
struct Network {
    rtt: Duration,
    log: Log,
    taps: Vec<(&'static str, Tap)>,
    dynamo: FakeDynamo,
    issuer: Issuer,
    proxies: Vec<TlsProxy>,
    delays: Vec<DelayProxy>,
}

impl Network {
    async fn start(chime: SocketAddr, ca: &TestCa, rtt: Duration) -> Result<Network> {
        let dynamo = FakeDynamo::start().await?;
        let issuer = Issuer::start().await?;
        let log = Log::default();
        let (mut taps, mut proxies, mut delays) = (Vec::new(), Vec::new(), Vec::new());
        for (name, upstream) in [
            ("dynamodb", dynamo.addr),
            ("chime", chime),
            ("issuer", issuer.addr),
        ] {
            let tap = Tap::default();
            let tls = TlsProxy::start(upstream, ca, Some(tap.clone())).await?;
            delays.push(DelayProxy::start(name, tls.addr, rtt, log.clone())?);
            proxies.push(tls);
            taps.push((name, tap));
        }
        Ok(Network {
            rtt,
            log,
            taps,
            dynamo,
            issuer,
            proxies,
            delays,
        })
    }

    fn url(&self, upstream: &str) -> String {
        self.taps
            .iter()
            .zip(&self.delays)
            .find(|((name, _), _)| *name == upstream)
            .map(|(_, d)| d.url())
            .unwrap_or_default()
    }

    fn trips(&self, from: Instant, to: Instant) -> Vec<RoundTrip> {
        self.log.round_trips(self.rtt, from, to)
    }

    /// The round trips of a window as JSON: each with its offset from `from`,
    /// what it carried and whether it is on the sequential chain.
    fn trace(&self, from: Instant, trips: &[RoundTrip]) -> Value {
        let on_chain = delay::chain(trips);
        let ms = |t: Instant| round(Some(t.saturating_duration_since(from).as_secs_f64() * 1e3));
        // Connections numbered from 0 within the window, in the order opened.
        let mut conns: Vec<usize> = Vec::new();
        let rows: Vec<Value> = trips
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let conn = conns.iter().position(|c| *c == t.conn).unwrap_or_else(|| {
                    conns.push(t.conn);
                    conns.len() - 1
                });
                let what = match t.kind {
                    Kind::Tcp => "TCP handshake".to_string(),
                    Kind::Tls => "TLS handshake".to_string(),
                    Kind::Request => self.requests(&t.upstream, t.start, t.end),
                };
                json!({
                    "upstream": t.upstream, "connection": conn, "what": what,
                    "start_ms": ms(t.start), "end_ms": ms(t.end),
                    "sequential": on_chain.contains(&i),
                })
            })
            .collect();
        Value::Array(rows)
    }

    fn requests(&self, upstream: &str, from: Instant, to: Instant) -> String {
        let seen: Vec<String> = self
            .taps
            .iter()
            .filter(|(name, _)| *name == upstream)
            .flat_map(|(_, tap)| tap.lock().map(|t| t.clone()).unwrap_or_default())
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, line)| line)
            .collect();
        if seen.is_empty() {
            "request".into()
        } else {
            seen.join(" + ")
        }
    }

    fn stop(self) {
        for d in &self.delays {
            d.stop();
        }
        for p in self.proxies {
            p.stop();
        }
        self.dynamo.stop();
        self.issuer.stop();
    }
}

/// One subject's measurements.
#[derive(Default)]
struct Tally {
    init: Samples,
    first_invoke: Samples,
    first_response: Samples,
    warm: Samples,
    cold_trips: Samples,
    cold_trips_total: Samples,
    cold_connections: Samples,
    warm_trips: Samples,
    warm_trips_total: Samples,
    repeat_trips: Samples,
    /// Per process: spawn → first response (ms) and the cold window's trips.
    cold_traces: Vec<(f64, Value)>,
    /// Time with at least one round trip in flight, per window.
    cold_network: Samples,
    warm_network: Samples,
    warm_trace: Option<Value>,
    repeat_trace: Option<Value>,
    failures: Vec<String>,
}

impl Tally {
    fn details(&self) -> Value {
        // The trace of the process whose first response was the median one.
        let mut traces: Vec<&(f64, Value)> = self.cold_traces.iter().collect();
        traces.sort_by(|a, b| a.0.total_cmp(&b.0));
        let cold_trace = traces.get(traces.len().saturating_sub(1) / 2).map(|t| &t.1);
        json!({
            "init_ms": self.init.summary(),
            "first_invocation_ms": self.first_invoke.summary(),
            "spawn_to_first_response_ms": self.first_response.summary(),
            "warm_invocation_ms": self.warm.summary(),
            "cold_round_trips_sequential": self.cold_trips.summary(),
            "cold_round_trips_total": self.cold_trips_total.summary(),
            "cold_connections": self.cold_connections.summary(),
            "warm_round_trips_sequential": self.warm_trips.summary(),
            "warm_round_trips_total": self.warm_trips_total.summary(),
            "repeat_round_trips_sequential": self.repeat_trips.summary(),
            "cold_network_ms": self.cold_network.summary(),
            "warm_network_ms": self.warm_network.summary(),
            "cold_trace": cold_trace,
            "warm_trace": self.warm_trace,
            "repeat_trace": self.repeat_trace,
            "failures": self.failures.iter().take(3).collect::<Vec<_>>(),
        })
    }
}

/// How long at least one round trip was in flight (the union of the trips'
/// spans): the rest of a window is CPU, the function's or the harness's.
fn waiting_ms(trips: &[RoundTrip]) -> f64 {
    let mut spans: Vec<(Instant, Instant)> = trips.iter().map(|t| (t.start, t.end)).collect();
    spans.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total.as_secs_f64() * 1e3
}

/// A keyed `POST /accounts`, with a bearer token when the subject is signed in.
fn event(key: &str, token: Option<&str>) -> Result<bytes::Bytes> {
    let event = apigw_v2_post_accounts_keyed(Some(key));
    let Some(token) = token else {
        return Ok(event);
    };
    let mut value: Value = serde_json::from_slice(&event)?;
    value["headers"]["authorization"] = json!(format!("Bearer {token}"));
    Ok(serde_json::to_vec(&value)?.into())
}

fn account_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let inner: Value = serde_json::from_str(v.get("body")?.as_str()?).ok()?;
    Some(inner.get("AccountId")?.as_str()?.to_string())
}

/// What one fresh process is given.
#[derive(Clone, Copy, Default)]
struct Plan<'a> {
    /// Warm invocations after the first.
    warm: usize,
    /// The first request's key once more, at the end.
    repeat: bool,
    /// A bearer token on every request (the signed-in subject).
    token: Option<&'a str>,
    /// The first event comes this long after init, not at once (provisioned
    /// concurrency): the cold window is then the first invocation alone.
    idle_after_init: Option<Duration>,
}

/// One fresh process: the cold invocation, `plan.warm` more, and (for the
/// function) a repeat of the first request's key, answered from the table.
async fn one_process(
    b: &Bootstrap,
    net: &Network,
    plan: Plan<'_>,
    tally: &mut Tally,
) -> Result<()> {
    let spawned = Instant::now();
    let mut session = Session::start(b).await?;
    let result = drive(&mut session, spawned, net, plan, tally).await;
    session.finish().await?;
    result
}

async fn drive(
    session: &mut Session,
    spawned: Instant,
    net: &Network,
    plan: Plan<'_>,
    tally: &mut Tally,
) -> Result<()> {
    let Plan {
        warm,
        repeat,
        token,
        idle_after_init,
    } = plan;
    tally.init.push(session.wait_init(INIT_TIMEOUT).await?);
    let mut window_start = spawned;
    if let Some(idle) = idle_after_init {
        tokio::time::sleep(idle).await;
        window_start = Instant::now();
    }
    let first_event = event(&next_key(), token)?;
    let first = session.invoke(first_event.clone(), INVOKE_TIMEOUT).await?;
    let answered = Instant::now();
    tally.first_response.push(session.since_spawn());
    tally.first_invoke.push(first.latency);
    if !first.ok || status_code(&first.body) != Some(201) {
        tally.failures.push(format!(
            "first response: {}",
            String::from_utf8_lossy(&first.body)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    let trips = net.trips(window_start, answered);
    tally.cold_trips.push_ms(delay::sequential(&trips) as f64);
    tally.cold_trips_total.push_ms(trips.len() as f64);
    let connections = trips.iter().filter(|t| t.kind == Kind::Tcp).count();
    tally.cold_connections.push_ms(connections as f64);
    tally.cold_network.push_ms(waiting_ms(&trips));
    let ms = answered.duration_since(window_start).as_secs_f64() * 1e3;
    tally
        .cold_traces
        .push((ms, net.trace(window_start, &trips)));
    for _ in 0..warm {
        let from = Instant::now();
        let outcome = session
            .invoke(event(&next_key(), token)?, INVOKE_TIMEOUT)
            .await?;
        let to = Instant::now();
        tally.warm.push(outcome.latency);
        if !outcome.ok || status_code(&outcome.body) != Some(201) {
            tally.failures.push(format!(
                "warm response: {}",
                String::from_utf8_lossy(&outcome.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        let trips = net.trips(from, to);
        tally.warm_trips.push_ms(delay::sequential(&trips) as f64);
        tally.warm_trips_total.push_ms(trips.len() as f64);
        tally.warm_network.push_ms(waiting_ms(&trips));
        if tally.warm_trace.is_none() {
            tally.warm_trace = Some(net.trace(from, &trips));
        }
    }
    if repeat {
        let from = Instant::now();
        let again = session.invoke(first_event, INVOKE_TIMEOUT).await?;
        let to = Instant::now();
        if account_id(&again.body).is_none() || account_id(&again.body) != account_id(&first.body) {
            tally.failures.push(format!(
                "a repeat of the first key answered {}",
                String::from_utf8_lossy(&again.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        let trips = net.trips(from, to);
        tally.repeat_trips.push_ms(delay::sequential(&trips) as f64);
        if tally.repeat_trace.is_none() {
            tally.repeat_trace = Some(net.trace(from, &trips));
        }
    }
    Ok(())
}

/// Runs the case: `args.deployed_runs` fresh processes of the function and of
/// the SDK floor, interleaved, each with `args.deployed_warm` warm invocations.
pub async fn run(args: &Args, s: &Subjects, chime: SocketAddr, ca: &TestCa) -> Result<Deployed> {
    let rtt = Duration::from_secs_f64(args.rtt_ms / 1e3);
    let net = Network::start(chime, ca, rtt).await?;
    let started = Instant::now();
    let ca_only = ca.trust.ca_only.display().to_string();
    let function = with_env(
        &s.function,
        "chime-onboard-deployed",
        &[
            ("AWS_ENDPOINT_URL_CHIME", net.url("chime")),
            ("AWS_ENDPOINT_URL_DYNAMODB", net.url("dynamodb")),
            ("IDEMPOTENCY_TABLE", TABLE.to_string()),
            ("SSL_CERT_FILE", ca_only.clone()),
        ],
    );
    let floor = with_env(
        &s.hello_sdk,
        "hello-sdk-deployed",
        &[
            ("AWS_ENDPOINT_URL_CHIME", net.url("chime")),
            ("SSL_CERT_FILE", ca_only),
        ],
    );
    let issuer_url = net.url("issuer");
    let signed_in = with_env(
        &function,
        "chime-onboard-deployed-signed-in",
        &[
            ("AUTH_JWT_ISSUER", issuer_url.clone()),
            ("AUTH_JWT_AUDIENCE", AUDIENCE.to_string()),
        ],
    );
    let token = net.issuer.token(&issuer_url)?;
    let (mut ours, mut sdk) = (Tally::default(), Tally::default());
    let (mut signed, mut provisioned) = (Tally::default(), Tally::default());
    let plain = Plan {
        warm: args.deployed_warm,
        ..Plan::default()
    };
    let signed_plan = Plan {
        warm: 2,
        token: Some(&token),
        ..Plan::default()
    };
    // One discarded start each warms the page cache.
    one_process(&function, &net, Plan::default(), &mut Tally::default()).await?;
    one_process(&floor, &net, Plan::default(), &mut Tally::default()).await?;
    for _ in 0..args.deployed_runs {
        let repeat = Plan {
            repeat: true,
            ..plain
        };
        one_process(&function, &net, repeat, &mut ours)
            .await
            .context("deployed case, chime-onboard")?;
        one_process(&floor, &net, plain, &mut sdk)
            .await
            .context("deployed case, the SDK floor")?;
        one_process(&signed_in, &net, signed_plan, &mut signed)
            .await
            .context("deployed case, chime-onboard signed in")?;
        let idle = Plan {
            idle_after_init: Some(PROVISIONED_IDLE),
            ..signed_plan
        };
        one_process(&signed_in, &net, idle, &mut provisioned)
            .await
            .context("deployed case, chime-onboard signed in, provisioned")?;
    }
    let calls = net.dynamo.calls_since(started);
    let mut by_op = serde_json::Map::new();
    for (_, op) in &calls {
        let n = by_op.get(op).and_then(Value::as_u64).unwrap_or(0);
        by_op.insert(op.clone(), json!(n + 1));
    }
    let by_status = net.dynamo.count_by("status");
    let mut notes: Vec<String> = ours
        .failures
        .iter()
        .chain(&sdk.failures)
        .chain(&signed.failures)
        .chain(&provisioned.failures)
        .take(3)
        .map(|f| format!("deployed case: {f}"))
        .collect();
    if by_status.get("INPROGRESS").is_some_and(|n| *n > 0) {
        notes.push(format!(
            "deployed case: idempotency records left INPROGRESS: {by_status:?}"
        ));
    }
    let limit = sdk
        .first_response
        .p50()
        .map(|f| f + FIRST_RESPONSE_RTTS * args.rtt_ms + FIRST_RESPONSE_SLACK_MS);
    let top = vec![
        ("rtt_ms", json!(args.rtt_ms)),
        (
            "deployed_first_response_ms_p50",
            json!(round(ours.first_response.p50())),
        ),
        (
            "sdk_floor_rtt_first_response_ms_p50",
            json!(round(sdk.first_response.p50())),
        ),
        ("deployed_cold_round_trips", json!(ours.cold_trips.p50())),
        ("deployed_warm_round_trips", json!(ours.warm_trips.p50())),
        (
            "sdk_floor_rtt_cold_round_trips",
            json!(sdk.cold_trips.p50()),
        ),
        (
            "sdk_floor_rtt_warm_round_trips",
            json!(sdk.warm_trips.p50()),
        ),
        (
            "deployed_signed_in_first_response_ms_p50",
            json!(round(signed.first_response.p50())),
        ),
        (
            "deployed_signed_in_cold_round_trips",
            json!(signed.cold_trips.p50()),
        ),
        (
            "deployed_signed_in_provisioned_first_invocation_ms_p50",
            json!(round(provisioned.first_invoke.p50())),
        ),
        (
            "deployed_signed_in_provisioned_first_invocation_round_trips",
            json!(provisioned.cold_trips.p50()),
        ),
    ];
    let details = json!({
        "method": "BENCHMARKS.md, Deployed case: the function with IDEMPOTENCY_TABLE and the SDK floor, each upstream over TLS behind a proxy delaying rtt/2 each way (the TCP handshake modelled as one RTT). Round trips per connection: a client flight and the server's answer; sequential = the largest chain of round trips that do not overlap in time, across connections. cold = spawn -> first response of a fresh process; warm = event delivered -> response of a later invocation; repeat = the first request's key sent again. chime-onboard-signed-in: AUTH_JWT_ISSUER set to a stand-in issuer behind the same proxies, a bearer token on each request; -provisioned: the same with the first event 100 ms after init, its cold window the first invocation alone (event -> response).",
        "rtt_ms": args.rtt_ms,
        "processes": args.deployed_runs,
        "warm_invocations_per_process": args.deployed_warm,
        "first_response_limit_ms": round(limit),
        "chime-onboard": ours.details(),
        "hello-sdk": sdk.details(),
        "chime-onboard-signed-in": signed.details(),
        "chime-onboard-signed-in-provisioned": provisioned.details(),
        "dynamodb_calls": by_op,
        "dynamodb_items_by_status": by_status,
        "run_seconds": started.elapsed().as_secs(),
    });
    net.stop();
    Ok(Deployed {
        top,
        details,
        notes,
    })
}

/// `bench-harness deployed` (`make bench-deployed`): the deployed case alone,
/// a summary on stdout and the numbers in `args.out`; BENCHMARKS.md untouched.
pub async fn standalone(args: &Args) -> Result<bool> {
    for (what, path) in [
        ("function", &args.function),
        ("hello-sdk", &args.hello_sdk),
        ("chime-local", &args.chime_local),
    ] {
        if !path.exists() {
            bail!(
                "{what} binary missing: {} (run `make bench-deployed`, which builds it)",
                path.display()
            );
        }
    }
    let chime = ChimeLocal::start(&args.chime_local, &args.log_dir).await?;
    let ca = TestCa::generate(&args.log_dir)?;
    let s = subjects(
        args,
        &chime.url(),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/123456789012/chime-onboard-replies",
    );
    eprintln!(
        "bench: deployed case, RTT {} ms, {} processes each, {} warm invocations per process",
        args.rtt_ms, args.deployed_runs, args.deployed_warm
    );
    let result = run(args, &s, chime.addr, &ca).await;
    chime.stop().await;
    let d = result?;
    let mut object = serde_json::Map::new();
    for (k, v) in &d.top {
        object.insert((*k).to_string(), v.clone());
    }
    object.insert("details".into(), d.details.clone());
    object.insert("notes".into(), json!(d.notes));
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&Value::Object(object))?,
    )?;
    print!("{}", summary(&d));
    println!("wrote {}", args.out.display());
    Ok(true)
}

/// The numbers, the goals and one trace of each kind, for a terminal.
pub fn summary(d: &Deployed) -> String {
    let top = |k: &str| {
        d.top
            .iter()
            .find(|(key, _)| *key == k)
            .and_then(|(_, v)| v.as_f64())
    };
    let detail = |path: &str| d.details.pointer(path).and_then(Value::as_f64);
    let mut out = String::new();
    let verdict = |ok: bool| if ok { "holds" } else { "MISSES" };
    let (Some(rtt), cold, warm) = (
        top("rtt_ms"),
        top("deployed_cold_round_trips"),
        top("deployed_warm_round_trips"),
    ) else {
        return "deployed: no numbers\n".into();
    };
    let ours = top("deployed_first_response_ms_p50");
    let floor = top("sdk_floor_rtt_first_response_ms_p50");
    let limit = detail("/first_response_limit_ms");
    out.push_str(&format!(
        "deployed, RTT {rtt} ms (machine shared with other builds: absolute times are indicative)\n"
    ));
    out.push_str(&format!(
        "  chime-onboard: spawn -> first response p50 {:.2} ms; sequential round trips cold {} (total {}), warm {} (total {}), repeat {}\n",
        ours.unwrap_or(f64::NAN),
        cold.unwrap_or(f64::NAN),
        detail("/chime-onboard/cold_round_trips_total/p50").unwrap_or(f64::NAN),
        warm.unwrap_or(f64::NAN),
        detail("/chime-onboard/warm_round_trips_total/p50").unwrap_or(f64::NAN),
        detail("/chime-onboard/repeat_round_trips_sequential/p50").unwrap_or(f64::NAN),
    ));
    let network = |who: &str| {
        format!(
            "                 a round trip in flight p50 {:.2} ms of the cold window, {:.2} ms of a warm one (warm invocation p50 {:.2} ms)\n",
            detail(&format!("/{who}/cold_network_ms/p50")).unwrap_or(f64::NAN),
            detail(&format!("/{who}/warm_network_ms/p50")).unwrap_or(f64::NAN),
            detail(&format!("/{who}/warm_invocation_ms/p50")).unwrap_or(f64::NAN),
        )
    };
    out.push_str(&network("chime-onboard"));
    out.push_str(&format!(
        "  SDK floor:     spawn -> first response p50 {:.2} ms; sequential round trips cold {}, warm {}\n",
        floor.unwrap_or(f64::NAN),
        top("sdk_floor_rtt_cold_round_trips").unwrap_or(f64::NAN),
        top("sdk_floor_rtt_warm_round_trips").unwrap_or(f64::NAN),
    ));
    out.push_str(&network("hello-sdk"));
    out.push_str(&format!(
        "  signed in (AUTH_JWT_ISSUER, a bearer token): spawn -> first response p50 {:.2} ms; sequential round trips cold {} (total {})\n",
        top("deployed_signed_in_first_response_ms_p50").unwrap_or(f64::NAN),
        top("deployed_signed_in_cold_round_trips").unwrap_or(f64::NAN),
        detail("/chime-onboard-signed-in/cold_round_trips_total/p50").unwrap_or(f64::NAN),
    ));
    out.push_str(&format!(
        "  signed in, provisioned (the first event {} ms after init): first invocation p50 {:.2} ms, {} sequential round trips (warm: {})\n",
        PROVISIONED_IDLE.as_millis(),
        top("deployed_signed_in_provisioned_first_invocation_ms_p50").unwrap_or(f64::NAN),
        top("deployed_signed_in_provisioned_first_invocation_round_trips").unwrap_or(f64::NAN),
        detail("/chime-onboard-signed-in/warm_round_trips_sequential/p50").unwrap_or(f64::NAN),
    ));
    out.push_str(&format!(
        "  goals: cold round trips <= {COLD_TRIPS_GOAL}: {}; warm <= {WARM_TRIPS_GOAL}: {}; first response <= floor + {FIRST_RESPONSE_RTTS} x RTT + {FIRST_RESPONSE_SLACK_MS} ms = {:.2} ms: {}\n",
        verdict(cold.is_some_and(|c| c <= COLD_TRIPS_GOAL)),
        verdict(warm.is_some_and(|w| w <= WARM_TRIPS_GOAL)),
        limit.unwrap_or(f64::NAN),
        verdict(matches!((ours, limit), (Some(o), Some(l)) if o <= l)),
    ));
    for (label, path) in [
        (
            "chime-onboard, cold, the median process (ms from spawn)",
            "/chime-onboard/cold_trace",
        ),
        (
            "chime-onboard, warm (ms from the event)",
            "/chime-onboard/warm_trace",
        ),
        (
            "chime-onboard, repeat of a key",
            "/chime-onboard/repeat_trace",
        ),
        (
            "SDK floor, cold, the median process",
            "/hello-sdk/cold_trace",
        ),
        (
            "chime-onboard signed in, cold, the median process",
            "/chime-onboard-signed-in/cold_trace",
        ),
        (
            "chime-onboard signed in, provisioned: the first invocation (ms from the event)",
            "/chime-onboard-signed-in-provisioned/cold_trace",
        ),
    ] {
        out.push_str(&format!("  {label}:\n"));
        for row in d
            .details
            .pointer(path)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let f = |k: &str| row.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            out.push_str(&format!(
                "    {} {:>7.2} - {:>7.2}  {}#{} {}\n",
                if row.get("sequential").and_then(Value::as_bool) == Some(true) {
                    "*"
                } else {
                    " "
                },
                f("start_ms"),
                f("end_ms"),
                row.get("upstream").and_then(Value::as_str).unwrap_or(""),
                row.get("connection").and_then(Value::as_u64).unwrap_or(0),
                row.get("what").and_then(Value::as_str).unwrap_or(""),
            ));
        }
    }
    out.push_str("  (* = on the sequential chain)\n");
    out
}
