//! The Chime port: the two account operations the function needs, as a small
//! trait, and its `aws-sdk-chime` implementation.
//!
//! SDK types stop here: [`into_onboard_error`] is the one place an SDK error
//! becomes an [`OnboardError`], and [`account_from_sdk`] the one place an SDK
//! account becomes the domain's [`Account`].

use async_trait::async_trait;
use aws_sdk_chime::error::SdkError;
use aws_sdk_chime::operation::create_account::CreateAccountError;
use aws_sdk_chime::operation::list_accounts::ListAccountsError;
use aws_smithy_types::date_time::Format;

use crate::onboard::{Account, AccountName, ChimeErrorKind, OnboardError, SigninDelegateGroup};

/// What the function asks of Chime.
#[async_trait]
pub trait ChimeAccounts: Send + Sync {
    /// `CreateAccount`.
    async fn create_account(&self, name: &AccountName) -> Result<Account, OnboardError>;
    /// `ListAccounts` filtered by exact name (one page of up to 200): used to
    /// find an account that an interrupted earlier attempt may have created.
    async fn find_accounts_by_name(&self, name: &AccountName)
        -> Result<Vec<Account>, OnboardError>;
}

#[async_trait]
impl ChimeAccounts for aws_sdk_chime::Client {
    async fn create_account(&self, name: &AccountName) -> Result<Account, OnboardError> {
        let output = self
            .create_account()
            .name(name.as_str())
            .send()
            .await
            .map_err(into_onboard_error)?;
        output
            .account
            .map(account_from_sdk)
            .ok_or_else(|| OnboardError::Chime {
                kind: ChimeErrorKind::Other,
                message: "CreateAccount returned no Account".to_owned(),
            })
    }

    async fn find_accounts_by_name(
        &self,
        name: &AccountName,
    ) -> Result<Vec<Account>, OnboardError> {
        let output = self
            .list_accounts()
            .name(name.as_str())
            .max_results(200)
            .send()
            .await
            .map_err(into_onboard_error)?;
        Ok(output
            .accounts
            .unwrap_or_default()
            .into_iter()
            .map(account_from_sdk)
            .collect())
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

/// Turns an SDK failure into the domain's error: service errors by kind,
/// timeouts as [`OnboardError::ChimeTimeout`], the rest as unreachable.
fn into_onboard_error<E, R>(err: SdkError<E, R>) -> OnboardError
where
    E: ChimeServiceError + std::error::Error + 'static,
    R: std::fmt::Debug,
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
        },
    }
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
