//! The Chime adapter: [`ChimeAccounts`], the domain's port, implemented with
//! `aws-sdk-chime`.
//!
//! SDK types stop here: [`into_onboard_error`] is the one place an SDK error
//! becomes an [`OnboardError`], and [`account_from_sdk`] the one place an SDK
//! account becomes the domain's [`Account`].
//!
//! `CreateAccount` is sent by a client with the SDK's retries turned off: it
//! takes no client token, so an SDK retry after a 5xx or a reset could create a
//! second account. The domain decides what may be sent again
//! ([`crate::onboard::create_account`]). `ListAccounts` is a read and goes
//! through a second client, built from the same configuration, that keeps the
//! configured retries. The create client is built at init ([`SdkChime::new`]);
//! the read client on its first use, once per execution environment: only an
//! ambiguous create or the opt-in warm-up ever reads, and each client costs
//! init time.
//!
//! [`SdkChime::connect`] opens the create client's connection once per
//! execution environment, with a request that is no operation
//! ([`crate::warm::open_connection`]), while the use case writes the
//! idempotency record: on a cold start the create then finds it open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_sdk_chime::config::retry::RetryConfig;
use aws_sdk_chime::error::SdkError;
use aws_sdk_chime::operation::create_account::CreateAccountError;
use aws_sdk_chime::operation::list_accounts::ListAccountsError;
use aws_smithy_types::date_time::Format;

use crate::deadline::Budget;
use crate::onboard::{
    Account, AccountName, ChimeAccounts, ChimeErrorKind, OnboardError, SigninDelegateGroup,
};

/// `ListAccounts` pages read at most while looking for an account by name
/// (200 accounts a page): a bound, not a limit anyone should reach.
const MAX_LIST_PAGES: usize = 500;

/// Chime through `aws-sdk-chime`: one client that never retries, for
/// `CreateAccount`, and one with the configured retries, for `ListAccounts`.
#[derive(Debug, Clone)]
pub struct SdkChime {
    create: aws_sdk_chime::Client,
    /// The read client's configuration, and the client once built.
    read_config: aws_sdk_chime::Config,
    read: Arc<OnceLock<aws_sdk_chime::Client>>,
    /// Whether [`Self::connect`] ran in this execution environment.
    connected: Arc<AtomicBool>,
}

impl SdkChime {
    /// Builds both clients from one configuration (they share its HTTPS client
    /// and connection pool).
    pub fn new(config: aws_sdk_chime::Config) -> Self {
        let create = config
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            create: aws_sdk_chime::Client::from_conf(create),
            read_config: config,
            read: Arc::default(),
            connected: Arc::default(),
        }
    }

    /// The client for reads (retries on), built on first use; it shares the
    /// connection pool.
    pub fn reader(&self) -> &aws_sdk_chime::Client {
        self.read
            .get_or_init(|| aws_sdk_chime::Client::from_conf(self.read_config.clone()))
    }
}

#[async_trait]
impl ChimeAccounts for SdkChime {
    async fn create_account(&self, name: &AccountName) -> Result<Account, OnboardError> {
        let started = std::time::Instant::now();
        let output = self
            .create
            .create_account()
            .name(name.as_str())
            .send()
            .await;
        crate::metrics::chime_latency(started.elapsed());
        let output = output.map_err(into_onboard_error)?;
        output
            .account
            .map(account_from_sdk)
            .ok_or_else(|| OnboardError::Chime {
                kind: ChimeErrorKind::Other,
                message: "CreateAccount returned no Account".to_owned(),
            })
    }

    /// Once per execution environment: later creates reuse the pooled
    /// connection, or open their own as they always would.
    async fn connect(&self) {
        if !self.connected.swap(true, Ordering::Relaxed) {
            crate::warm::open_connection("chime", &self.create).await;
        }
    }

    async fn accounts_named(
        &self,
        name: &AccountName,
        budget: Budget,
    ) -> Result<Vec<Account>, OnboardError> {
        let mut found = Vec::new();
        let mut next_token = None;
        for _ in 0..MAX_LIST_PAGES {
            // A page cut off by the invocation's end would lose the whole pass.
            if !budget.allows_call() {
                return Err(OnboardError::TimeBudgetExhausted);
            }
            let output = self
                .reader()
                .list_accounts()
                .name(name.as_str())
                .max_results(200)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(into_onboard_error)?;
            // Chime's name filter is not an exact match: keep only the name itself.
            found.extend(
                output
                    .accounts
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a.name == name.as_str())
                    .map(account_from_sdk),
            );
            next_token = output.next_token.filter(|t| !t.is_empty());
            if next_token.is_none() {
                return Ok(found);
            }
        }
        Err(OnboardError::Chime {
            kind: ChimeErrorKind::Other,
            message: format!("ListAccounts returned more than {MAX_LIST_PAGES} pages"),
        })
    }
}

/// The Chime errors both operations share, by kind.
trait ChimeServiceError {
    fn kind(&self) -> ChimeErrorKind;
    fn message(&self) -> Option<&str>;
}

macro_rules! chime_service_error {
    ($error:ty) => {
        impl ChimeServiceError for $error {
            fn kind(&self) -> ChimeErrorKind {
                match self {
                    Self::BadRequestException(_) => ChimeErrorKind::BadRequest,
                    Self::ForbiddenException(_) => ChimeErrorKind::Forbidden,
                    Self::NotFoundException(_) => ChimeErrorKind::NotFound,
                    Self::ServiceFailureException(_) => ChimeErrorKind::ServiceFailure,
                    Self::ServiceUnavailableException(_) => ChimeErrorKind::Unavailable,
                    Self::ThrottledClientException(_) => ChimeErrorKind::Throttled,
                    Self::UnauthorizedClientException(_) => ChimeErrorKind::Unauthorized,
                    _ => ChimeErrorKind::Other,
                }
            }
            fn message(&self) -> Option<&str> {
                aws_sdk_chime::error::ProvideErrorMetadata::message(self)
            }
        }
    };
}
chime_service_error!(CreateAccountError);
chime_service_error!(ListAccountsError);

/// Turns an SDK failure into the domain's error: service errors by kind (what
/// Chime answered), [`OnboardError::ChimeTimeout`] only when Chime never
/// answered in time, the rest as unreachable, saying whether the request left.
fn into_onboard_error<E, R>(err: SdkError<E, R>) -> OnboardError
where
    E: ChimeServiceError + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let error = service.err();
            OnboardError::Chime {
                kind: error.kind(),
                message: error.message().unwrap_or("no message").to_owned(),
            }
        }
        SdkError::TimeoutError(_) => OnboardError::ChimeTimeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => OnboardError::ChimeTimeout,
        _ => OnboardError::ChimeUnreachable {
            reason: aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
            request_sent: !never_sent(&err),
        },
    }
}

/// Whether the error proves the request never reached Chime: the connection
/// (TCP, TLS or DNS) could not be made. A reset or a closed connection after
/// that is not proof: Chime may have run the request.
fn never_sent(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if err
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|e| e.is_connect())
            || err
                .downcast_ref::<aws_smithy_runtime_api::client::dns::ResolveDnsError>()
                .is_some()
        {
            return true;
        }
        next = err.source();
    }
    false
}

fn account_from_sdk(account: aws_sdk_chime::types::Account) -> Account {
    Account {
        account_id: account.account_id,
        name: account.name,
        aws_account_id: account.aws_account_id,
        account_type: account.account_type.map(|t| t.as_str().to_owned()),
        account_status: account.account_status.map(|s| s.as_str().to_owned()),
        created_timestamp: account
            .created_timestamp
            .and_then(|t| t.fmt(Format::DateTime).ok()),
        default_license: account.default_license.map(|l| l.as_str().to_owned()),
        supported_licenses: account
            .supported_licenses
            .unwrap_or_default()
            .iter()
            .map(|l| l.as_str().to_owned())
            .collect(),
        signin_delegate_groups: account
            .signin_delegate_groups
            .unwrap_or_default()
            .into_iter()
            .map(|g| SigninDelegateGroup {
                group_name: g.group_name,
            })
            .collect(),
    }
}
