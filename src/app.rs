//! The composition root and the dispatcher; no use case lives here.
//!
//! [`App`] is built once at init (`main.rs`) from the configuration and the SDK
//! clients: the ports, the use case over them ([`Onboarding`]) and the two
//! adapters that call it. [`handle`] classifies the payload
//! ([`crate::event`]) and hands it to the HTTP or SQS adapter; it returns
//! `Err` only for a payload it cannot classify. Arrows point one way: `app`
//! knows the adapters, they know the use case, never `app`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Authenticator;
use crate::chime::SdkChime;
use crate::config::Config;
use crate::event::{classify, Invocation, UnknownEvent, UnsupportedEvent};
use crate::http::HttpAdapter;
use crate::idempotency::{DynamoDbStore, IdempotencyStore};
use crate::metrics::{self, Ingress};
use crate::onboard::ChimeAccounts;
use crate::onboarding::Onboarding;
use crate::reply::{ReplySender, SqsOnFirstUse};
use crate::sqs::{MalformedBatch, SqsAdapter};
use crate::warm::WarmUp;

/// Operation timeout (SDK retries included) for SQS and DynamoDB calls.
pub const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything an invocation needs, created once per execution environment.
pub struct App {
    pub http: HttpAdapter,
    pub sqs: SqsAdapter,
    /// The warm-up `main` runs at init when `WARM_UP` is on (`None` off, or with fakes).
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
        let warm_up = config.warm_up.then(|| WarmUp {
            chime: chime.clone(),
            dynamodb: table_client,
        });
        Self {
            warm_up,
            ..Self::from_ports(config, Arc::new(chime), Arc::new(sqs), idempotency)
        }
    }

    /// What `main` runs beside the runtime's first `next`: the issuer's keys
    /// (with `AUTH_JWT_ISSUER`) and the warm-up (`WARM_UP`), concurrently. A
    /// first token waits for the fetch under way rather than fetching again.
    pub async fn before_first_event(&self) {
        let warm_up = async {
            if let Some(warm_up) = self.warm_up.clone() {
                warm_up.run().await;
            }
        };
        tokio::join!(self.http.prefetch_keys(), warm_up);
    }

    /// Wires the use case and the adapters over any implementation of the
    /// ports (the SDK clients above, in-memory fakes in unit tests).
    pub fn from_ports(
        config: Config,
        chime: Arc<dyn ChimeAccounts>,
        replies: Arc<dyn ReplySender>,
        idempotency: Option<Arc<dyn IdempotencyStore>>,
    ) -> Self {
        let onboarding = Onboarding::new(
            chime,
            idempotency,
            config.chime_timeout,
            config.idempotency_ttl,
            config.commit_horizon,
        );
        let auth = Authenticator::new(&config.auth, config.roots);
        Self {
            http: HttpAdapter::new(onboarding.clone(), auth, config.sign_in.clone()),
            sqs: SqsAdapter::new(onboarding, replies, config),
            warm_up: None,
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
        Invocation::Sqs(batch) => {
            Output::Sqs(metrics::scope(Ingress::Sqs, app.sqs.handle_batch(batch, &context)).await?)
        }
        Invocation::Http(request) => Output::Http(
            metrics::scope(Ingress::Http, app.http.handle_event(request, context)).await,
        ),
    })
}
