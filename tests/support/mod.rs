//! Test harness: chime-local in-process per test, one moto_server (SQS,
//! DynamoDB) per test binary, and an `App` wired to both over real HTTP.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use chime_onboard::auth::{KeyFetchError, KeySource};
use chime_onboard::{handle, App, Config};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

// JWT signing keys and token builders (shared with src/auth.rs's unit tests).
pub mod jwt;

pub const REGION: &str = "us-east-1";

/// The test binary's moto_server (lambda-local starts one per process).
pub fn moto_url() -> &'static str {
    lambda_local::moto::shared_url(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.venv/bin/moto_server"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The function's own HTTPS client (it speaks plain HTTP to the emulators too).
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    chime_onboard::tls::http_client(chime_onboard::tls::Roots::Amazon).expect("http client")
}

fn credentials() -> aws_sdk_sqs::config::Credentials {
    aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "tests")
}

/// Test retries: the SDK's standard mode, with backoffs short enough for tests.
fn retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(5))
}

fn sqs_config() -> aws_sdk_sqs::config::Builder {
    aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .http_client(http_client())
        .endpoint_url(moto_url())
}

fn dynamodb_config() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .http_client(http_client())
        .endpoint_url(moto_url())
}

pub fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(sqs_config().build())
}

pub fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config().build())
}

fn chime_builder(url: &str) -> aws_sdk_chime::config::Builder {
    aws_sdk_chime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .http_client(http_client())
        .retry_config(retry())
        .endpoint_url(url)
}

/// A name unique to this process and call, for queues and tables.
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

pub async fn create_queue(sqs: &aws_sdk_sqs::Client, fifo: bool) -> String {
    let mut name = unique("replies");
    let mut request = sqs.create_queue();
    if fifo {
        name.push_str(".fifo");
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    request
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

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

/// One test's world: its own chime-local, reply queue and (optionally) table.
pub struct World {
    pub chime: chime_local::Handle,
    pub app: App,
    pub sqs: aws_sdk_sqs::Client,
    pub reply_queue: String,
    pub table: Option<String>,
}

#[derive(Default)]
pub struct Options {
    pub idempotency: bool,
    pub fifo_replies: bool,
    pub config: Config,
}

impl World {
    pub async fn new() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        let chime = chime_local::spawn(chime_local::Config::default())
            .await
            .expect("spawn chime-local");
        let sqs = sqs_client();
        let reply_queue = create_queue(&sqs, options.fifo_replies).await;
        let table = if options.idempotency {
            Some(create_table(&dynamodb_client()).await)
        } else {
            None
        };
        let mut config = options.config;
        config.reply_queue_url = Some(reply_queue.clone());
        if config.allowed_reply_queues.is_empty() {
            config.allowed_reply_queues = vec![reply_queue.clone()];
        }
        config.idempotency_table = table.clone();
        let app = App::new(
            config,
            chime_builder(&chime.url()),
            sqs_config(),
            Some(dynamodb_config()),
        );
        Self {
            chime,
            app,
            sqs,
            reply_queue,
            table,
        }
    }

    /// Invokes the real handler as the runtime would.
    pub async fn invoke(&self, payload: Value) -> Value {
        self.invoke_with_time_left(payload, Duration::from_secs(30))
            .await
    }

    /// Invokes the handler with `left` before the invocation's deadline.
    pub async fn invoke_with_time_left(&self, payload: Value, left: Duration) -> Value {
        let mut context = Context::default();
        context.request_id = unique("req");
        context.deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d + left).as_millis() as u64)
            .unwrap_or(0);
        let output = handle(&self.app, LambdaEvent::new(payload, context))
            .await
            .expect("the handler answers every supported event");
        serde_json::to_value(output).expect("the output serialises")
    }

    /// A Chime client of this world's chime-local, for work "outside" the function.
    pub fn chime_client(&self) -> aws_sdk_chime::Client {
        aws_sdk_chime::Client::from_conf(chime_builder(&self.chime.url()).build())
    }

    pub fn set_faults(&self, json: Value) {
        self.chime
            .set_faults(serde_json::from_value(json).expect("fault JSON"));
    }

    /// Names of the accounts chime-local holds.
    pub fn account_names(&self) -> Vec<String> {
        self.chime.accounts().into_iter().map(|a| a.name).collect()
    }

    pub fn has_account(&self, id: &str) -> bool {
        self.chime.accounts().iter().any(|a| a.account_id == id)
    }

    /// Reads `count` replies (or whatever arrives within `wait`) from `queue`.
    pub async fn replies_from(&self, queue: &str, count: usize, wait: Duration) -> Vec<Reply> {
        let started = Instant::now();
        let mut replies = Vec::new();
        while replies.len() < count && started.elapsed() < wait {
            let output = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for message in messages {
                if let Some(handle) = &message.receipt_handle {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(queue)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
                replies.push(Reply::from(message));
            }
        }
        replies
    }

    pub async fn replies(&self, count: usize) -> Vec<Reply> {
        self.replies_from(&self.reply_queue.clone(), count, Duration::from_secs(5))
            .await
    }
}

/// A reply read back from a queue.
#[derive(Debug)]
pub struct Reply {
    pub body: Value,
    pub attributes: std::collections::HashMap<String, String>,
    pub system: std::collections::HashMap<String, String>,
}

impl From<aws_sdk_sqs::types::Message> for Reply {
    fn from(message: aws_sdk_sqs::types::Message) -> Self {
        let body = serde_json::from_str(message.body().unwrap_or("null")).expect("reply JSON");
        let attributes = message
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v): (String, MessageAttributeValue)| Some((k, v.string_value?)))
            .collect();
        let system = message
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect();
        Self {
            body,
            attributes,
            system,
        }
    }
}

impl Reply {
    pub fn status(&self) -> &str {
        self.body["Status"].as_str().unwrap_or("")
    }
    pub fn request_id(&self) -> &str {
        self.body["RequestId"].as_str().unwrap_or("")
    }
}

/// An HTTP API `POST /accounts` for `name` with an `Idempotency-Key` header.
pub fn post_with_key(name: &str, key: &str) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../../events/apigw-v2-post-accounts.json"))
            .expect("apigw-v2-post-accounts.json");
    event["body"] = serde_json::json!(serde_json::json!({ "Name": name }).to_string());
    event["headers"]["idempotency-key"] = serde_json::json!(key);
    event
}

/// An HTTP response's JSON body (`null` when it has none or it is not JSON).
pub fn response_body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// A sample event from `events/`, read with `include_str!` so a rename breaks the build.
#[macro_export]
macro_rules! event {
    ($name:literal) => {
        serde_json::from_str::<serde_json::Value>(include_str!(concat!("../events/", $name)))
            .expect($name)
    };
}
