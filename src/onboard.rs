//! The domain: what an onboarding request is, the account-name rule, the Chime
//! port, the create step and the errors it can end in.
//!
//! This module knows nothing of HTTP or SQS. Adapters hand it the request
//! document (`{"Name": ..., "RequestId": ...}`, the same JSON on both ingress
//! paths) and read back an [`Onboarded`] account or an [`OnboardError`], whose
//! [`OnboardError::code`] and [`OnboardError::class`] tell them how to answer.
//! The domain owns its Chime port ([`ChimeAccounts`]); `chime.rs` implements it.
//! Contract: DESIGN.md, "The account name" and "Exactly once".

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::deadline::Budget;

/// Longest accepted name, in Unicode scalar values (Chime's limit).
pub const MAX_NAME_CHARS: usize = 100;
/// Longest accepted `RequestId`: the SQS limit for a FIFO deduplication id, which it becomes.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// A validated Chime account name: trimmed, 1..=100 scalar values, no control
/// characters and no line/paragraph separators. It cannot hold anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    /// Applies the function's name rule (stricter than Chime's `.*\S.*`).
    pub fn parse(raw: &str) -> Result<Self, OnboardError> {
        let trimmed = raw.trim_matches(char::is_whitespace);
        if trimmed.is_empty() {
            return Err(OnboardError::NameEmpty);
        }
        if let Some((index, ch)) = trimmed
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            return Err(OnboardError::NameInvalidCharacter { ch, index });
        }
        let chars = trimmed.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(OnboardError::NameTooLong { chars });
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as sent to Chime.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccountName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One onboarding request, as both ingress paths carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardRequest {
    pub name: AccountName,
    /// The caller's id for this request, if it sent one.
    pub request_id: Option<String>,
}

impl OnboardRequest {
    /// Builds a request from a plain name field (HTML form posts).
    pub fn from_name_field(name: Option<&str>) -> Result<Self, OnboardError> {
        let name = AccountName::parse(name.ok_or(OnboardError::NameMissing)?)?;
        Ok(Self {
            name,
            request_id: None,
        })
    }
}

/// A `RequestId` becomes an idempotency key and a FIFO deduplication id, so it
/// must fit SQS's rule for the latter: 1..=128 printable ASCII characters.
pub fn validate_request_id(id: String) -> Result<String, OnboardError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(id)
    } else {
        Err(OnboardError::RequestIdInvalid)
    }
}

/// An account as Chime describes it; field names are Chime's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    pub account_id: String,
    pub name: String,
    pub aws_account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_license: Option<String>,
    #[serde(default)]
    pub supported_licenses: Vec<String>,
    #[serde(default)]
    pub signin_delegate_groups: Vec<SigninDelegateGroup>,
}

/// A sign-in delegate group of an [`Account`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SigninDelegateGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
}

/// Which Chime error the service answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChimeErrorKind {
    BadRequest,
    Forbidden,
    Unauthorized,
    NotFound,
    Throttled,
    Unavailable,
    ServiceFailure,
    /// An error the model does not list for the operation, or a response that could not be read.
    Other,
}

impl ChimeErrorKind {
    /// The Chime exception name, used as the error `code`.
    pub fn code(self) -> &'static str {
        self.facts().code
    }

    /// One row per Chime error: its code (the exception name), its class,
    /// whether Chime may have created the account anyway (a 5xx or an
    /// unreadable answer), and whether a create may be sent again at once
    /// (throttling: refused before anything was done).
    fn facts(self) -> ErrorFacts {
        use ErrorClass::*;
        let (code, class, may_have_created, retry_now) = match self {
            Self::BadRequest => ("BadRequestException", Invalid, false, false),
            // The function's role, credentials or endpoint are wrong: an operator
            // fixes them, the request itself is fine (DESIGN.md, "SQS contract").
            Self::Forbidden => ("ForbiddenException", Misconfigured, false, false),
            Self::Unauthorized => ("UnauthorizedClientException", Misconfigured, false, false),
            Self::NotFound => ("NotFoundException", Misconfigured, false, false),
            Self::Throttled => ("ThrottledClientException", Throttled, false, true),
            Self::Unavailable => ("ServiceUnavailableException", Unavailable, true, false),
            Self::ServiceFailure => ("ServiceFailureException", UpstreamFailed, true, false),
            Self::Other => ("ChimeError", UpstreamFailed, true, false),
        };
        ErrorFacts {
            code,
            class,
            may_have_created,
            retry_now,
        }
    }
}

/// How an adapter treats an error: the one fact the HTTP status, the SQS
/// outcome and the metrics are all read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is wrong; retrying it cannot help (HTTP 400, SQS `Rejected`).
    Invalid,
    /// An idempotency key was reused for a different request (HTTP 422, SQS `Rejected`).
    KeyReused,
    /// The same idempotency key is being processed right now (HTTP 409, SQS retry).
    InProgress,
    /// Chime throttled the call (HTTP 429, SQS retry).
    Throttled,
    /// Chime, the function's store or its time budget is unavailable (HTTP 503, SQS retry).
    Unavailable,
    /// Chime refused the function itself (401, 403, 404): its role, credentials
    /// or endpoint are wrong. An operator error, not the request's: HTTP 502,
    /// SQS retry (and `Failed` on the last receive, so the message reaches the
    /// DLQ for a redrive once fixed), counted `Failed` so the alarm fires.
    Misconfigured,
    /// Chime failed or could not be reached (HTTP 502, SQS retry).
    UpstreamFailed,
    /// The Chime call did not finish in time (HTTP 504, SQS retry).
    Timeout,
}

impl ErrorClass {
    /// Whether the same request may succeed later (SQS retries it; metrics count it `Failed`).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::InProgress
                | Self::Throttled
                | Self::Unavailable
                | Self::UpstreamFailed
                | Self::Misconfigured
                | Self::Timeout
        )
    }

    /// Seconds a caller should wait before trying again, where the class says when.
    pub fn retry_after(self) -> Option<u32> {
        match self {
            Self::Throttled => Some(1),
            Self::Unavailable => Some(5),
            _ => None,
        }
    }
}

/// The facts of one error, side by side: what [`OnboardError::facts`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorFacts {
    /// The stable machine-readable code (DESIGN.md names the name-rule codes).
    pub code: &'static str,
    pub class: ErrorClass,
    /// Chime may have created the account although the call failed: never
    /// re-sent blind, verified first (DESIGN.md, "Exactly once").
    pub may_have_created: bool,
    /// A create that ended so may be sent again at once: nothing was done.
    pub retry_now: bool,
}

/// Everything that can stop an account from being created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnboardError {
    #[error("the request body is not valid JSON: {reason}")]
    BodyNotJson { reason: String },
    #[error("the request body must be a JSON object")]
    BodyNotObject,
    #[error("\"Name\" is required")]
    NameMissing,
    #[error("\"Name\" must be a string")]
    NameNotString,
    #[error("\"Name\" is empty after trimming whitespace")]
    NameEmpty,
    #[error("\"Name\" has {chars} characters; at most {MAX_NAME_CHARS} are allowed")]
    NameTooLong { chars: usize },
    #[error("\"Name\" contains the control or separator character U+{:04X} at position {index}", *ch as u32)]
    NameInvalidCharacter { ch: char, index: usize },
    #[error("\"RequestId\" must be 1 to {MAX_REQUEST_ID_CHARS} printable ASCII characters")]
    RequestIdInvalid,
    #[error("Chime answered {}: {message}", kind.code())]
    Chime {
        kind: ChimeErrorKind,
        message: String,
    },
    #[error("Chime did not answer within the configured timeout")]
    ChimeTimeout,
    #[error("Chime could not be reached: {reason}")]
    ChimeUnreachable {
        reason: String,
        /// Whether the request may have reached Chime (a reset or a broken
        /// response after it was sent), as opposed to a connection that was never made.
        request_sent: bool,
    },
    #[error("this idempotency key was already used with a different account name")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInProgress,
    /// An earlier attempt's create was ambiguous and found nothing yet: Chime
    /// may still commit it, so the key is held until the commit horizon.
    #[error("an earlier attempt with this idempotency key may still be committing; try again in {retry_after} s")]
    CommitPending {
        /// Whole seconds until the horizon (at least 1).
        retry_after: u32,
    },
    #[error("the idempotency store failed: {reason}")]
    IdempotencyStore { reason: String },
    #[error("the invocation had no time left to start this request")]
    TimeBudgetExhausted,
}

impl OnboardError {
    /// The error table: one row per variant, read by every adapter alike.
    pub fn facts(&self) -> ErrorFacts {
        use ErrorClass::*;
        let plain = |code, class| ErrorFacts {
            code,
            class,
            may_have_created: false,
            retry_now: false,
        };
        match self {
            Self::BodyNotJson { .. } => plain("BodyNotJson", Invalid),
            Self::BodyNotObject => plain("BodyNotObject", Invalid),
            Self::NameMissing => plain("NameMissing", Invalid),
            Self::NameNotString => plain("NameNotString", Invalid),
            Self::NameEmpty => plain("NameEmpty", Invalid),
            Self::NameTooLong { .. } => plain("NameTooLong", Invalid),
            Self::NameInvalidCharacter { .. } => plain("NameInvalidCharacter", Invalid),
            Self::RequestIdInvalid => plain("RequestIdInvalid", Invalid),
            Self::Chime { kind, .. } => kind.facts(),
            Self::ChimeTimeout => ErrorFacts {
                may_have_created: true,
                ..plain("ChimeTimeout", Timeout)
            },
            // Sent and lost may have committed; never sent may go again at once.
            Self::ChimeUnreachable { request_sent, .. } => ErrorFacts {
                may_have_created: *request_sent,
                retry_now: !*request_sent,
                ..plain("ChimeUnreachable", UpstreamFailed)
            },
            Self::IdempotencyKeyReused => plain("IdempotencyKeyReused", KeyReused),
            Self::IdempotencyInProgress => plain("IdempotencyInProgress", InProgress),
            Self::CommitPending { .. } => plain("IdempotencyInProgress", InProgress),
            Self::IdempotencyStore { .. } => plain("IdempotencyStoreFailed", Unavailable),
            Self::TimeBudgetExhausted => plain("TimeBudgetExhausted", Unavailable),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.facts().code
    }

    /// How adapters must treat this error.
    pub fn class(&self) -> ErrorClass {
        self.facts().class
    }

    /// Whether Chime may have created the account although the call failed.
    pub fn may_have_created(&self) -> bool {
        self.facts().may_have_created
    }

    /// Seconds a caller should wait before trying again: the time left to the
    /// commit horizon, else what the class says.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::CommitPending { retry_after } => Some(*retry_after),
            _ => self.class().retry_after(),
        }
    }
}

/// What the function asks of Chime: the domain's port, implemented with
/// `aws-sdk-chime` in `chime.rs` and in memory for unit tests.
#[async_trait]
pub trait ChimeAccounts: Send + Sync {
    /// `CreateAccount`, sent exactly once: an implementation must never
    /// re-send it itself (CreateAccount takes no client token, so Chime cannot
    /// tell a retry from a second request).
    async fn create_account(&self, name: &AccountName) -> Result<Account, OnboardError>;
    /// Opens the connection a create will use, where the implementation keeps
    /// one and it may not be open yet. The use case calls it while it takes
    /// the idempotency key, so a cold process's handshakes with Chime overlap
    /// those with the table. Sends no operation and never fails: a create
    /// works alike whether it ran or not.
    async fn connect(&self) {}
    /// Every account named exactly `name` (`ListAccounts`, all pages; Chime's
    /// filter also matches longer names, which the implementation drops). Each
    /// page starts only if `budget` allows a call
    /// ([`OnboardError::TimeBudgetExhausted`] otherwise), and the pages are bounded.
    async fn accounts_named(
        &self,
        name: &AccountName,
        budget: Budget,
    ) -> Result<Vec<Account>, OnboardError>;
}

/// How a request ended with an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Onboarded {
    /// This request created it.
    Created(Account),
    /// An earlier attempt of this request created it, and it was found by
    /// verification after an ambiguous outcome (or a crash).
    Adopted(Account),
    /// The request was already completed; this is its account again.
    Repeated(Account),
}

impl Onboarded {
    /// The account, however it was reached.
    pub fn account(&self) -> &Account {
        match self {
            Self::Created(a) | Self::Adopted(a) | Self::Repeated(a) => a,
        }
    }

    /// Takes the account out.
    pub fn into_account(self) -> Account {
        match self {
            Self::Created(a) | Self::Adopted(a) | Self::Repeated(a) => a,
        }
    }
}

/// Attempts of one create, when Chime throttles or the connection is never made.
pub const CREATE_ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled for each further one, with jitter.
const CREATE_BACKOFF: Duration = Duration::from_millis(50);

/// Creates the account: the one place the function calls Chime to create.
///
/// Retries, with a short jittered backoff, only outcomes known to have created
/// nothing ([`CREATE_ATTEMPTS`] in all); any other error, ambiguous ones
/// included, is returned as it is for the caller to verify or report. Each
/// attempt starts only if `budget` allows a call: a create cut off by the
/// invocation's end would be ambiguous for no reason.
pub async fn create_account(
    chime: &dyn ChimeAccounts,
    name: &AccountName,
    budget: Budget,
) -> Result<Account, OnboardError> {
    let mut attempt = 1;
    let account = loop {
        if !budget.allows_call() {
            return Err(OnboardError::TimeBudgetExhausted);
        }
        match chime.create_account(name).await {
            Ok(account) => break account,
            Err(err) if err.facts().retry_now && attempt < CREATE_ATTEMPTS => {
                let pause = CREATE_BACKOFF * 2u32.pow(attempt - 1);
                tokio::time::sleep(pause.mul_f64(0.5 + jitter() * 0.5)).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    };
    // The audit line: which account was created, never the name itself.
    tracing::info!(account_id = %account.account_id, name_chars = name.as_str().chars().count(), attempt, "account created");
    Ok(account)
}

/// A number in `0..1` that differs between concurrent callers (spreads retries).
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
#[path = "onboard_tests.rs"]
mod tests;
