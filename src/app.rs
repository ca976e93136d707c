//! The function's state and its one handler.
//!
//! [`App`] is built once at init (`main.rs`) from the configuration and the SDK
//! clients and is borrowed by every invocation. [`handle`] classifies the
//! payload ([`crate::event`]) and hands it to the HTTP or SQS adapter; it
//! returns `Err` only for a payload it cannot classify.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use crate::chime::ChimeAccounts;
use crate::config::Config;
use crate::event::{classify, Invocation, UnknownEvent, UnsupportedEvent};
use crate::idempotency::{self, DynamoDbStore, IdempotencyStore, Window};
use crate::onboard::{self, Account, AccountName, OnboardError};
use crate::reply::ReplySender;

/// Operation timeout (SDK retries included) for SQS and DynamoDB calls.
pub const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything an invocation needs, created once per execution environment.
#[derive(Clone)]
pub struct App {
    pub config: Config,
    pub chime: Arc<dyn ChimeAccounts>,
    pub replies: Arc<dyn ReplySender>,
    pub idempotency: Option<Arc<dyn IdempotencyStore>>,
}

impl App {
    /// Builds the production state from one loaded `SdkConfig`: the SDK reads
    /// `AWS_ENDPOINT_URL_CHIME`, `_SQS` and `_DYNAMODB` itself.
    pub fn from_sdk_config(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        // Only built when used: every client costs init time.
        let dynamodb = config
            .idempotency_table
            .is_some()
            .then(|| aws_sdk_dynamodb::config::Builder::from(sdk));
        Self::new(
            config,
            aws_sdk_chime::config::Builder::from(sdk),
            aws_sdk_sqs::config::Builder::from(sdk),
            dynamodb,
        )
    }

    /// Builds the state from per-service client configurations (tests point
    /// each at its own emulator). Every client gets an operation timeout, SDK
    /// retries included: `CHIME_TIMEOUT_MS` for Chime, [`AWS_CALL_TIMEOUT`] for
    /// the reply queue and the table, so the function's timeout bounds a message.
    pub fn new(
        config: Config,
        chime: aws_sdk_chime::config::Builder,
        sqs: aws_sdk_sqs::config::Builder,
        dynamodb: Option<aws_sdk_dynamodb::config::Builder>,
    ) -> Self {
        let timeout = |limit| {
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(limit)
                .build()
        };
        let chime = aws_sdk_chime::Client::from_conf(
            chime.timeout_config(timeout(config.chime_timeout)).build(),
        );
        let sqs =
            aws_sdk_sqs::Client::from_conf(sqs.timeout_config(timeout(AWS_CALL_TIMEOUT)).build());
        let idempotency = match (&config.idempotency_table, dynamodb) {
            (Some(table), Some(builder)) => {
                let client = aws_sdk_dynamodb::Client::from_conf(
                    builder.timeout_config(timeout(AWS_CALL_TIMEOUT)).build(),
                );
                Some(Arc::new(DynamoDbStore::new(client, table)) as Arc<dyn IdempotencyStore>)
            }
            _ => None,
        };
        Self {
            chime: Arc::new(chime),
            replies: Arc::new(sqs),
            idempotency,
            config,
        }
    }

    /// Creates the account for `name`, at most once per `key` when an
    /// idempotency store is configured and a key is given.
    pub async fn create(
        &self,
        key: Option<&str>,
        name: &AccountName,
        deadline: SystemTime,
    ) -> Result<Account, OnboardError> {
        match (&self.idempotency, key) {
            (Some(store), Some(key)) => {
                let now = SystemTime::now();
                let window = Window {
                    now,
                    // Without a usable deadline (local runs), hold the key for two Chime timeouts.
                    deadline: if deadline > now {
                        deadline
                    } else {
                        now + self.config.chime_timeout * 2
                    },
                    ttl: self.config.idempotency_ttl,
                };
                idempotency::create_once(store.as_ref(), self.chime.as_ref(), key, name, window)
                    .await
            }
            _ => onboard::create_account(self.chime.as_ref(), name).await,
        }
    }
}

/// The invocation could not be handled at all: the payload is no supported event.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InvocationError(#[from] UnsupportedEvent);

impl From<UnknownEvent> for InvocationError {
    fn from(err: UnknownEvent) -> Self {
        Self(err.into())
    }
}

impl InvocationError {
    /// The stable `errorType` Lambda reports (`UnknownEvent`,
    /// `AuthorizerEventUnsupported`, `WebSocketEventUnsupported`).
    pub fn error_type(&self) -> &'static str {
        self.0.error_type()
    }
}

impl From<InvocationError> for Diagnostic {
    fn from(err: InvocationError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// What an invocation answers: the HTTP response in its event's shape, or the
/// SQS partial-batch response. Serialised once, by the runtime.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Output<H> {
    Http(H),
    Sqs(SqsBatchResponse),
}

/// Handles one invocation of any supported shape.
pub async fn handle(
    app: &App,
    event: LambdaEvent<Value>,
) -> Result<Output<impl Serialize + std::fmt::Debug>, InvocationError> {
    let (payload, context) = event.into_parts();
    Ok(match classify(payload)? {
        Invocation::Sqs(batch) => {
            Output::Sqs(crate::sqs::handle_batch(app, batch, &context).await?)
        }
        Invocation::Http(request) => {
            Output::Http(crate::http::handle_event(app, request, context).await)
        }
    })
}
