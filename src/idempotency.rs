//! Idempotency: a retried or repeated request never creates a second account.
//!
//! As in Powertools, the flow is a small state machine in plain functions
//! ([`create_once`]) above a store of four primitives ([`IdempotencyStore`]):
//! record INPROGRESS (conditionally), create, then record COMPLETED with the
//! account, or delete the record if the call failed so a retry may run.
//! An INPROGRESS record whose holder died (its in-progress expiry, taken from
//! the invocation deadline, has passed) is taken over; the new holder first
//! asks Chime whether the dead one had already created the account.
//!
//! The DynamoDB implementation sits at the bottom: partition key `id`, TTL
//! attribute `expiration` (DESIGN.md, "Configuration").

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::date_time::{DateTime, Format};

use crate::chime::ChimeAccounts;
use crate::onboard::{create_account, Account, AccountName, OnboardError};

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    InProgress,
    Completed,
}

impl RecordStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "INPROGRESS",
            Self::Completed => "COMPLETED",
        }
    }
}

/// One idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub status: RecordStatus,
    /// What the request asked for (the validated name); a reuse must match it.
    pub fingerprint: String,
    /// When the record may be forgotten (seconds since the epoch; the table's TTL).
    pub expiration: u64,
    /// When an INPROGRESS holder is presumed dead (milliseconds since the epoch).
    pub in_progress_expiration: u64,
    /// When the holder started (milliseconds since the epoch).
    pub started_at: u64,
    /// The created account, once COMPLETED.
    pub account: Option<Account>,
}

/// The store failed or answered something unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition failed: somebody else holds or completed the key.
    Conflict,
}

/// The four primitives the flow needs.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reads a record (strongly consistent).
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;
    /// Writes `record` if no record exists for its key, or — when `replacing` is
    /// given — if the stored record still has that `started_at` (a takeover).
    async fn put(&self, record: &Record, replacing: Option<u64>) -> Result<Written, StoreError>;
    /// Marks the record COMPLETED with its account.
    async fn complete(&self, record: &Record) -> Result<(), StoreError>;
    /// Deletes the record.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// How long the flow may hold a key, and for how long it is remembered.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub now: SystemTime,
    /// The invocation's deadline: past it, the holder is presumed dead.
    pub deadline: SystemTime,
    pub ttl: Duration,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn store_error(err: StoreError) -> OnboardError {
    OnboardError::IdempotencyStore { reason: err.0 }
}

/// Creates the account for `key` at most once. A repeat of a completed request
/// returns the same account; a different name under the same key is
/// [`OnboardError::IdempotencyKeyReused`]; a live concurrent holder is
/// [`OnboardError::IdempotencyInProgress`].
pub async fn create_once(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    key: &str,
    name: &AccountName,
    window: Window,
) -> Result<Account, OnboardError> {
    let now_ms = millis(window.now);
    let mut record = Record {
        key: key.to_owned(),
        status: RecordStatus::InProgress,
        fingerprint: name.as_str().to_owned(),
        expiration: (now_ms / 1000) + window.ttl.as_secs(),
        in_progress_expiration: millis(window.deadline).max(now_ms + 1000),
        started_at: now_ms,
        account: None,
    };

    // Two rounds at most: a lost race for an absent key re-reads once.
    let mut replaced = None;
    for _ in 0..2 {
        let existing = store.get(key).await.map_err(store_error)?;
        let replacing = match existing {
            Some(found) if found.expiration * 1000 > now_ms => {
                let live = found.status == RecordStatus::InProgress
                    && found.in_progress_expiration > now_ms;
                if live {
                    return Err(OnboardError::IdempotencyInProgress);
                }
                if found.fingerprint != record.fingerprint {
                    return Err(OnboardError::IdempotencyKeyReused);
                }
                match (found.status, found.account) {
                    (RecordStatus::Completed, Some(account)) => return Ok(account),
                    // A dead holder (or a completed record without its account): take over.
                    _ => Some(found.started_at),
                }
            }
            Some(expired) => Some(expired.started_at),
            None => None,
        };
        match store.put(&record, replacing).await.map_err(store_error)? {
            Written::Yes => {
                replaced = Some(replacing);
                break;
            }
            Written::Conflict => continue,
        }
    }
    let Some(replaced) = replaced else {
        return Err(OnboardError::IdempotencyInProgress);
    };

    let created = match replaced {
        // An earlier holder died mid-call: it may have created the account already.
        Some(started_at) => match find_created_since(chime, name, started_at).await {
            Ok(Some(account)) => Ok(account),
            Ok(None) => create_account(chime, name).await,
            Err(err) => Err(err),
        },
        None => create_account(chime, name).await,
    };
    match created {
        Ok(account) => {
            record.status = RecordStatus::Completed;
            record.account = Some(account.clone());
            if let Err(err) = store.complete(&record).await {
                // The account exists; the record stays INPROGRESS until it expires and the
                // next holder finds the account through Chime instead of creating another.
                tracing::error!(error = %err, "could not mark the idempotency record completed");
            }
            Ok(account)
        }
        Err(err) => {
            if let Err(store_err) = store.delete(key).await {
                tracing::error!(error = %store_err, "could not release the idempotency record");
            }
            Err(err)
        }
    }
}

/// An account named `name` created at or after `since_ms` (minus a minute of clock skew).
async fn find_created_since(
    chime: &dyn ChimeAccounts,
    name: &AccountName,
    since_ms: u64,
) -> Result<Option<Account>, OnboardError> {
    let since_secs = (since_ms / 1000).saturating_sub(60) as i64;
    let accounts = chime.find_accounts_by_name(name).await?;
    Ok(accounts
        .into_iter()
        .filter(|a| a.name == name.as_str())
        .filter(|a| {
            a.created_timestamp
                .as_deref()
                .and_then(|t| DateTime::from_str(t, Format::DateTime).ok())
                .is_some_and(|t| t.secs() >= since_secs)
        })
        .max_by(|a, b| a.created_timestamp.cmp(&b.created_timestamp)))
}

/// The idempotency table in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn item(record: &Record) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item = HashMap::from([
        ("id".to_owned(), s(&record.key)),
        ("status".to_owned(), s(record.status.as_str())),
        ("fingerprint".to_owned(), s(&record.fingerprint)),
        ("expiration".to_owned(), n(record.expiration)),
        (
            "in_progress_expiration".to_owned(),
            n(record.in_progress_expiration),
        ),
        ("started_at".to_owned(), n(record.started_at)),
    ]);
    if let Some(account) = &record.account {
        let data = serde_json::to_string(account).map_err(|e| StoreError(e.to_string()))?;
        item.insert("data".to_owned(), s(&data));
    }
    Ok(item)
}

fn record(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError(format!("record attribute {name} missing")))
    };
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| StoreError(format!("record attribute {name} missing")))
    };
    let status = match text("status")?.as_str() {
        "COMPLETED" => RecordStatus::Completed,
        _ => RecordStatus::InProgress,
    };
    let account = match item.get("data").and_then(|v| v.as_s().ok()) {
        Some(data) => Some(serde_json::from_str(data).map_err(|e| StoreError(e.to_string()))?),
        None => None,
    };
    Ok(Record {
        key: text("id")?,
        status,
        fingerprint: text("fingerprint")?,
        expiration: number("expiration")?,
        in_progress_expiration: number("in_progress_expiration")?,
        started_at: number("started_at")?,
        account,
    })
}

fn sdk_error<E: std::error::Error + 'static>(err: E) -> StoreError {
    StoreError(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string())
}

#[async_trait]
impl IdempotencyStore for DynamoDbStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        output.item.as_ref().map(record).transpose()
    }

    async fn put(&self, record: &Record, replacing: Option<u64>) -> Result<Written, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(record)?));
        let request = match replacing {
            None => request.condition_expression("attribute_not_exists(id)"),
            Some(started_at) => request
                .condition_expression("started_at = :started")
                .expression_attribute_values(":started", n(started_at)),
        };
        match request.send().await {
            Ok(_) => Ok(Written::Yes),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::Conflict)
            }
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn complete(&self, record: &Record) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(record)?))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(key))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fakes::{account, FakeChime, FakeStore};
    use crate::onboard::ChimeErrorKind;

    fn window() -> Window {
        let now = SystemTime::now();
        Window {
            now,
            deadline: now + Duration::from_secs(30),
            ttl: Duration::from_secs(3600),
        }
    }

    fn name(n: &str) -> AccountName {
        AccountName::parse(n).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_repeat_returns_the_first_account_and_a_mismatch_is_refused() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        let first = create_once(&store, &chime, "k", &name("Acme"), window()).await;
        let again = create_once(&store, &chime, "k", &name("Acme"), window()).await;
        assert_eq!(first, again);
        assert_eq!(chime.names(), ["Acme"]);
        let other = create_once(&store, &chime, "k", &name("Other"), window()).await;
        assert_eq!(other, Err(OnboardError::IdempotencyKeyReused));
    }

    #[tokio::test]
    async fn a_live_holder_blocks_and_a_failure_releases_the_key() {
        let (store, chime) = (Arc::new(FakeStore::default()), FakeChime::default());
        chime.fail_next([OnboardError::Chime {
            kind: ChimeErrorKind::Unavailable,
            message: String::new(),
        }]);
        let failed = create_once(store.as_ref(), &chime, "k", &name("Acme"), window()).await;
        assert!(failed.is_err());
        assert!(store.get("k").await.ok().flatten().is_none(), "released");

        let mut held = Record {
            key: "h".into(),
            status: RecordStatus::InProgress,
            fingerprint: "Acme".into(),
            expiration: millis(SystemTime::now()) / 1000 + 3600,
            in_progress_expiration: millis(SystemTime::now()) + 60_000,
            started_at: 1,
            account: None,
        };
        let _ = store.put(&held, None).await;
        let busy = create_once(store.as_ref(), &chime, "h", &name("Acme"), window()).await;
        assert_eq!(busy, Err(OnboardError::IdempotencyInProgress));

        // Once the holder is presumed dead, the key is taken over.
        held.in_progress_expiration = 1;
        let _ = store.complete(&held).await;
        let taken = create_once(store.as_ref(), &chime, "h", &name("Acme"), window()).await;
        assert!(taken.is_ok());
    }

    #[tokio::test]
    async fn a_takeover_adopts_what_the_dead_holder_created() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        let started = millis(SystemTime::now()) - 5_000;
        let recent = DateTime::from_millis(started as i64 + 1_000)
            .fmt(Format::DateTime)
            .unwrap_or_default();
        // An old account of the same name, and the one the dead holder created.
        chime
            .accounts
            .lock()
            .map(|mut a| {
                a.push(account("old", "Acme", "2020-01-01T00:00:00Z"));
                a.push(account("new", "Acme", &recent));
            })
            .unwrap_or_default();
        let dead = Record {
            key: "k".into(),
            status: RecordStatus::InProgress,
            fingerprint: "Acme".into(),
            expiration: started / 1000 + 3600,
            in_progress_expiration: started + 1_000,
            started_at: started,
            account: None,
        };
        let _ = store.put(&dead, None).await;
        let adopted = create_once(&store, &chime, "k", &name("Acme"), window()).await;
        assert_eq!(adopted.map(|a| a.account_id), Ok("new".to_owned()));
        assert_eq!(chime.names().len(), 2, "nothing new created");
    }
}
