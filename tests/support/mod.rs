//! Test harness: chime-local in-process per test, one moto_server (SQS,
//! DynamoDB) per test binary, and an `App` wired to both over real HTTP.
//! What the crates' tests share too (moto, clients, queues, the table) is `test_support`.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use chime_onboard::auth::{KeyFetchError, KeySource};
use chime_onboard::{handle, App, Config};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

// JWT signing keys and token builders (shared with src/auth.rs's unit tests).
pub mod jwt;

use test_support::{chime_config, dynamodb_config, sqs_config};
pub use test_support::{create_table, dynamodb_client, moto_url, sqs_client, unique};

/// Test retries for Chime: the SDK's standard mode, with backoffs short enough for tests.
fn chime_builder(url: &str) -> aws_sdk_chime::config::Builder {
    chime_config(url).retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(5)),
    )
}

/// A reply queue of a unique name (`.fifo` when `fifo`); returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, fifo: bool) -> String {
    let mut name = unique("replies");
    let mut attributes = Vec::new();
    if fifo {
        name.push_str(".fifo");
        attributes.push((QueueAttributeName::FifoQueue, "true".to_owned()));
    }
    test_support::create_queue(sqs, &name, &attributes).await
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
        let context = test_support::context(left);
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
