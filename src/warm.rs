//! The warm-up (`WARM_UP=true`, and the default with `AUTH_JWT_ISSUER`): the
//! first request's one-time costs, paid at init instead of in the first
//! invocation.
//!
//! A cold start's first SDK call resolves credentials and the endpoint, builds
//! the HTTPS connector (TLS configuration, connection pool), runs the SDK's
//! request pipeline for the first time, and opens (over TLS: handshakes) the
//! connection. [`WarmUp::run`] does all of that once, in a future `main` runs
//! beside the runtime's first `next`, with one request per connection the
//! first request will use (Chime, and twice DynamoDB): an SDK read operation
//! (Chime `ListAccounts`, DynamoDB `DescribeTable` when an idempotency table
//! is configured) whose request is rewritten, just before it is sent, into a bare unsigned `GET /`
//! to the same endpoint. The service refuses it (no credentials, no
//! operation), nothing is read or written, and the connection stays in the
//! pool the real calls share. Should the rewrite ever not happen, what goes
//! out is the read itself: never a write.
//!
//! Why not always (measured in BENCHMARKS.md, "Levers"): on an on-demand cold
//! start the event is already waiting, so the warm-up's CPU lands in init
//! (+0.4–0.7 ms) as much as it leaves the first invocation (−0.4–0.8 ms) on
//! one thread; spawn → first response does not move. It pays where init runs
//! ahead of traffic (provisioned concurrency), where the connection's round
//! trips are long (a Chime endpoint in another region), and with an issuer:
//! the first request waits for the issuer's keys (four round trips, fetched
//! at init too), and the connections open meanwhile. Failures are
//! logged at DEBUG and otherwise ignored: the first real call then pays as
//! it would have.
//!
//! The bare request itself ([`open_connection`]) is not opt-in: every cold
//! process sends it once through [`SdkChime::connect`], while the first
//! request's idempotency record is written, so the Chime handshakes overlap
//! the table's instead of following them (BENCHMARKS.md, "Deployed case").

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::chime::SdkChime;
use crate::onboard::ChimeAccounts;

/// The clients to warm, cloned from the function's own (same connection pool).
#[derive(Debug, Clone)]
pub struct WarmUp {
    pub chime: SdkChime,
    /// With the table the idempotency store uses.
    pub dynamodb: Option<(aws_sdk_dynamodb::Client, String)>,
}

impl WarmUp {
    /// Sends one bare request per upstream, concurrently; never fails.
    pub async fn run(self) {
        let dynamodb = || async {
            let Some((client, table)) = &self.dynamodb else {
                return;
            };
            let started = Instant::now();
            let outcome = client
                .describe_table()
                .table_name(table)
                .customize()
                .interceptor(BareGet)
                .send()
                .await;
            log("dynamodb", started, outcome.map(|_| ()).map_err(status));
        };
        // Two to DynamoDB: a keyed HTTP request reads the old key form beside
        // its insert (idempotency::create_once), each on a connection. Chime's
        // is the one the first create would open (SdkChime::connect), so that
        // create does not open it a second time.
        tokio::join!(self.chime.connect(), dynamodb(), dynamodb());
    }
}

/// Opens (over TLS: hand-shakes) a connection of `client`'s pool with one bare
/// request in place of `ListAccounts` ([`BareGet`]); never fails.
pub async fn open_connection(upstream: &str, client: &aws_sdk_chime::Client) {
    let started = Instant::now();
    let outcome = client
        .list_accounts()
        .max_results(1)
        .customize()
        .interceptor(BareGet)
        .send()
        .await;
    log(upstream, started, outcome.map(|_| ()).map_err(status));
}

/// What the upstream answered, for the log: an HTTP status means the
/// connection is open (the expected outcome is a 4xx refusal).
fn status<E: std::error::Error + 'static>(err: SdkError<E, HttpResponse>) -> String {
    match err.raw_response() {
        Some(response) => format!("answered {}", response.status().as_u16()),
        None => format!("no answer: {}", DisplayErrorContext(&err)),
    }
}

fn log(upstream: &str, started: Instant, outcome: Result<(), String>) {
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    match outcome {
        Ok(()) => tracing::debug!(upstream, elapsed_ms, "connection opened: answered 2xx"),
        Err(outcome) => tracing::debug!(upstream, elapsed_ms, %outcome, "connection opened"),
    }
}

/// Rewrites the signed request into `GET /` on the same endpoint, with no
/// headers (hyper adds `Host`) and no body: not an operation, not signed.
#[derive(Debug)]
struct BareGet;

impl Intercept for BareGet {
    fn name(&self) -> &'static str {
        "WarmUpBareGet"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let uri: lambda_http::http::Uri = request.uri().parse()?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err("the endpoint has no scheme or authority".into());
        };
        let root = format!("{scheme}://{authority}/");
        request.set_uri(root.as_str())?;
        request.set_method("GET")?;
        *request.headers_mut() = Headers::new();
        *request.body_mut() = SdkBody::empty();
        Ok(())
    }
}
