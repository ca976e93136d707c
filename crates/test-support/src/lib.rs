//! What the workspace's integration tests share (`tests/` of the function and
//! `crates/onboard-bulk/tests/`): one moto_server per test binary (SQS, DynamoDB) and SDK
//! clients of it, chime clients of a chime-local, the idempotency table as the template
//! declares it, queues, names unique to a process and call, and the invocation context the
//! runtime would pass. Each test tree builds its own world (the function's handler, an event
//! source mapping, ...) on top; nothing here knows the contracts under test.
//!
//! Every client uses the function's own HTTPS client (`chime_onboard::tls`), which speaks
//! plain HTTP to the emulators too, and the dummy credentials the emulators accept.
#![allow(clippy::expect_used)] // a test fixture that cannot be built fails the test, loudly

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use lambda_runtime::Context;

/// The region every client and queue URL of the tests is in.
pub const REGION: &str = "us-east-1";

/// The test binary's moto_server, started on first use (lambda-local starts one per
/// process). `MOTO_SERVER` names the executable, else the workspace's `.venv`.
pub fn moto_url() -> &'static str {
    lambda_local::moto::shared_url(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/bin/moto_server"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The function's own HTTPS client.
fn http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    chime_onboard::tls::http_client(chime_onboard::tls::Roots::Amazon).expect("http client")
}

fn credentials() -> aws_sdk_sqs::config::Credentials {
    aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "tests")
}

/// SQS on moto, as a builder (the function's `App` takes builders).
pub fn sqs_config() -> aws_sdk_sqs::config::Builder {
    aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .http_client(http_client())
        .endpoint_url(moto_url())
}

/// DynamoDB on moto, as a builder.
pub fn dynamodb_config() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .http_client(http_client())
        .endpoint_url(moto_url())
}

/// Chime at `url` (a chime-local), as a builder; the SDK's default retries.
pub fn chime_config(url: &str) -> aws_sdk_chime::config::Builder {
    aws_sdk_chime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .http_client(http_client())
        .endpoint_url(url)
}

/// An SQS client of moto.
pub fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(sqs_config().build())
}

/// A DynamoDB client of moto.
pub fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config().build())
}

/// A name unique to this process and call, for queues, tables, ids.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Creates the queue `name` with `attributes`; returns its URL.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    let mut request = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        request = request.attributes(k.clone(), v);
    }
    request
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// The ARN of the queue at `url` (for a redrive policy or an event source).
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

/// A new idempotency table with a unique name, keyed as the template's (partition key `id`,
/// a string; on demand). Returns its name.
pub async fn create_table(dynamodb: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = unique("idempotency");
    dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("create table");
    name
}

/// The context the runtime passes with one invocation: a unique request id and a deadline
/// `left` from now.
pub fn context(left: Duration) -> Context {
    let mut context = Context::default();
    context.request_id = unique("req");
    context.deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d + left).as_millis() as u64)
        .unwrap_or(0);
    context
}
