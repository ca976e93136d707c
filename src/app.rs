//! The function's state and its one handler.
//!
//! [`App`] is built once at init (`main.rs`) from the configuration and the SDK
//! clients and is borrowed by every invocation. [`handle`] classifies the
//! payload ([`crate::event`]) and hands it to the HTTP or SQS adapter; it
//! returns `Err` only for a payload it cannot classify.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Authenticator;
use crate::chime::SdkChime;
use crate::config::Config;
use crate::event::{classify, Invocation, UnknownEvent, UnsupportedEvent};
use crate::idempotency::{self, DynamoDbStore, IdempotencyStore, Window};
use crate::metrics::{self, Ingress};
use crate::onboard::{self, AccountName, ChimeAccounts, OnboardError, Onboarded};
use crate::reply::{ReplySender, SqsOnFirstUse};
use crate::sqs::MalformedBatch;
use crate::warm::WarmUp;
use crate::web::Page;

/// Operation timeout (SDK retries included) for SQS and DynamoDB calls.
pub const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything an invocation needs, created once per execution environment.
#[derive(Clone)]
pub struct App {
    pub config: Config,
    pub chime: Arc<dyn ChimeAccounts>,
    pub replies: Arc<dyn ReplySender>,
    pub idempotency: Option<Arc<dyn IdempotencyStore>>,
    /// Who is calling (HTTP); fetches the issuer's keys on first use only.
    pub auth: Arc<Authenticator>,
    /// The web form, rendered for this configuration on first use ([`App::page`]).
    pub page: Arc<OnceLock<Page>>,
    /// The warm-up `main` spawns at init when `WARM_UP` is on (`None` off, or with fakes).
    pub warm_up: Option<WarmUp>,
}

impl App {
    /// Loads the SDK configuration and builds the production state: what
    /// `main` does at init.
    ///
    /// In Lambda the region and the role's credentials are environment
    /// variables, the first link of each of the SDK's default chains. Given
    /// explicitly, the loader does not build the rest of the chains (an STS
    /// client for web identity, an IMDS client, SSO, ECS): ≈ 1 ms of a cold
    /// start spent on links never reached (BENCHMARKS.md, "Levers"). The
    /// providers are the chains' own first links, so the outcome is the same;
    /// without the variables (a laptop with a profile) the default chains are
    /// built as before.
    pub async fn load(config: Config) -> Result<Self, crate::tls::TlsError> {
        use aws_config::environment::{
            EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
        };
        use aws_config::meta::region::ProvideRegion;
        use aws_sdk_chime::config::ProvideCredentials;

        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(crate::tls::http_client(config.roots)?);
        if let Some(region) = EnvironmentVariableRegionProvider::new().region().await {
            loader = loader.region(region);
        }
        let credentials = EnvironmentVariableCredentialsProvider::new();
        if credentials.provide_credentials().await.is_ok() {
            loader = loader.credentials_provider(credentials);
        }
        Ok(Self::from_sdk_config(config, &loader.load().await))
    }

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
    /// retries included: `CHIME_TIMEOUT_MS` for Chime (one `CreateAccount`
    /// attempt: the SDK never re-sends it, see `chime.rs`), [`AWS_CALL_TIMEOUT`]
    /// for the reply queue and the table, so the function's timeout bounds a message.
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
        let chime = SdkChime::new(chime.timeout_config(timeout(config.chime_timeout)).build());
        let sqs = SqsOnFirstUse::new(sqs.timeout_config(timeout(AWS_CALL_TIMEOUT)).build());
        let mut table_client = None;
        let idempotency = match (&config.idempotency_table, dynamodb) {
            (Some(table), Some(builder)) => {
                let client = aws_sdk_dynamodb::Client::from_conf(
                    builder.timeout_config(timeout(AWS_CALL_TIMEOUT)).build(),
                );
                table_client = Some((client.clone(), table.clone()));
                Some(Arc::new(DynamoDbStore::new(client, table)) as Arc<dyn IdempotencyStore>)
            }
            _ => None,
        };
        // Built only when wanted: the warm-up reads through the read client.
        let warm_up = config.warm_up.then(|| WarmUp {
            chime: chime.reader().clone(),
            dynamodb: table_client,
        });
        Self {
            warm_up,
            chime: Arc::new(chime),
            replies: Arc::new(sqs),
            idempotency,
            auth: Arc::new(Authenticator::new(&config.auth, config.roots)),
            page: Arc::default(),
            config,
        }
    }

    /// The web form; rendered on the first request that needs it, not at
    /// init (most invocations never do).
    pub fn page(&self) -> &Page {
        self.page
            .get_or_init(|| Page::new(self.config.sign_in.as_ref()))
    }

    /// Creates the account for `name`, at most once per `key` when an
    /// idempotency store is configured. With a store, a request without a key
    /// gets one of its own, so its account is claimed like every other and no
    /// other request's verification adopts it. Without a store, a create is
    /// still never re-sent after an ambiguous outcome within the invocation.
    pub async fn create(
        &self,
        key: Option<&str>,
        name: &AccountName,
        deadline: SystemTime,
    ) -> Result<Onboarded, OnboardError> {
        match &self.idempotency {
            Some(store) => {
                let own_key;
                let key = match key {
                    Some(key) => key,
                    None => {
                        own_key = format!("auto#{}", idempotency::new_token());
                        &own_key
                    }
                };
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
            None => onboard::create_account(self.chime.as_ref(), name)
                .await
                .map(Onboarded::Created),
        }
    }
}

/// The invocation could not be handled at all; Lambda reports it with a
/// stable `errorType` and, for SQS, returns the whole batch to the queue.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The payload is no supported event.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedEvent),
    /// An SQS batch whose records cannot all be identified.
    #[error(transparent)]
    MalformedBatch(#[from] MalformedBatch),
}

impl From<UnknownEvent> for InvocationError {
    fn from(err: UnknownEvent) -> Self {
        Self::Unsupported(err.into())
    }
}

impl InvocationError {
    /// The stable `errorType` Lambda reports (`UnknownEvent`,
    /// `AuthorizerEventUnsupported`, `WebSocketEventUnsupported`, `MalformedBatch`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Unsupported(err) => err.error_type(),
            Self::MalformedBatch(_) => "MalformedBatch",
        }
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
        Invocation::Sqs(batch) => Output::Sqs(
            metrics::scope(Ingress::Sqs, crate::sqs::handle_batch(app, batch, &context)).await?,
        ),
        Invocation::Http(request) => Output::Http(
            metrics::scope(
                Ingress::Http,
                crate::http::handle_event(app, request, context),
            )
            .await,
        ),
    })
}
