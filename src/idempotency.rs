//! Idempotency: a retried or repeated request never creates a second account,
//! even when Chime's answer to a create was lost (DESIGN.md, "Exactly once").
//!
//! As in Powertools, the flow is a small state machine in plain functions
//! ([`create_once`]) above a store of a few primitives ([`IdempotencyStore`]).
//! Per key, a conditional INPROGRESS record comes before the create, with a
//! fence token (`holder`) that every later write of this attempt is
//! conditioned on, and COMPLETED with the account after it. Then:
//! - a create known to have created nothing (throttled, any 4xx, no
//!   connection) deletes the record, so a retry simply creates;
//! - an **ambiguous** create (5xx, reset, timeout: Chime may have committed)
//!   keeps the record, marked `verify` and no longer held; the next request for
//!   the key does not get `409` but verifies before creating: `ListAccounts` by
//!   name, every page, exact name, created at or after the first attempt's
//!   start (less [`CLOCK_SKEW`]), not claimed by another key; it claims one and
//!   adopts it, and creates only if none is found. The same verification runs
//!   once right after the ambiguous outcome, so a caller usually gets its
//!   account instead of an error;
//! - a holder that died (its hold, taken from the invocation deadline, has
//!   passed) is taken over the same way.
//!
//! Claims are items of their own (`claim#<AccountId>`, written conditionally),
//! so one account is never adopted by two keys. The one race left: another
//! key's verification can claim an account between its create and its claim.
//! The creator then loses that account and does what a verifier does: adopts an
//! unclaimed account of the name created since the earlier of the two keys'
//! starts (the other key's own stray, if its ambiguous create had committed),
//! else creates once more.
//!
//! The DynamoDB implementation sits at the bottom: partition key `id`, TTL
//! attribute `expiration` (DESIGN.md, "Configuration").

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_types::date_time::{DateTime, Format};

use crate::onboard::{
    create_account, Account, AccountName, ChimeAccounts, OnboardError, Onboarded,
};

/// How much earlier than an attempt's start an account found by verification
/// may have been created (Chime's clock against the function's).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

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
    /// SHA-256 (hex) of the validated name: a reuse of the key must match it.
    pub fingerprint: String,
    /// When the record may be forgotten (seconds since the epoch; the table's TTL).
    pub expiration: u64,
    /// Until when the holder owns the key (milliseconds since the epoch); 0 once
    /// released. Past it, a holder that never released is presumed dead.
    pub held_until: u64,
    /// The fence token of the attempt that wrote the record: its later writes
    /// are conditioned on it, so a holder that lost the key cannot overwrite.
    pub holder: String,
    /// When the first attempt that may have created the account started
    /// (milliseconds since the epoch): where verification looks from.
    pub since: u64,
    /// An earlier attempt may have created the account: verify before creating.
    pub verify: bool,
    /// The account, once COMPLETED (the only place the name is stored).
    pub account: Option<Account>,
}

/// An account taken by one key (`owner`), so no other key adopts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub account_id: String,
    pub owner: String,
    /// The owner's [`Record::since`] when it claimed.
    pub since: u64,
    pub expiration: u64,
}

/// The store failed or answered something unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition failed: somebody else holds, completed or claimed it.
    Conflict,
}

/// Outcome of writing a new record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// A record exists for the key: the one stored.
    Exists(Box<Record>),
}

/// The primitives the flow needs; every write is conditional.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reads a record (strongly consistent).
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;
    /// Writes `record` if no record exists for its key, else answers the
    /// stored one: the common path (a new key) takes one round trip, not a
    /// read and a write.
    async fn insert(&self, record: &Record) -> Result<Inserted, StoreError>;
    /// Writes `record` over the stored one if `holder` wrote that.
    async fn put(&self, record: &Record, holder: &str) -> Result<Written, StoreError>;
    /// Deletes the record if `holder` still holds it.
    async fn delete(&self, key: &str, holder: &str) -> Result<Written, StoreError>;
    /// Writes the claim if the account is unclaimed or already claimed by the same owner.
    async fn claim(&self, claim: &Claim) -> Result<Written, StoreError>;
    /// Reads the claim of an account (strongly consistent).
    async fn get_claim(&self, account_id: &str) -> Result<Option<Claim>, StoreError>;
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

/// SHA-256 of the validated name, hex: the record never stores the name itself.
pub fn fingerprint(name: &AccountName) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, name.as_str().as_bytes()).as_ref())
}

/// A fresh fence token: 128 random bits, hex.
pub fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No entropy source: fall back to the clock, still unique enough per holder.
        bytes = u128::from(millis(SystemTime::now())).to_be_bytes();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes[..4].copy_from_slice(&nanos.to_be_bytes());
    }
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What acquiring a key gave.
enum Acquired {
    /// The request was completed before: its account.
    Done(Account),
    /// This attempt now holds the key.
    Held(Record),
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
) -> Result<Onboarded, OnboardError> {
    let mut held = match acquire(store, key, name, &window).await? {
        Acquired::Done(account) => return Ok(Onboarded::Repeated(account)),
        Acquired::Held(record) => record,
    };
    if held.verify {
        match adopt(store, chime, &held, name).await {
            Ok(Some(account)) => return Ok(finish(store, held, Onboarded::Adopted(account)).await),
            Ok(None) => {}
            Err(err) => {
                release(store, &held).await;
                return Err(err);
            }
        }
    }
    // A second create only after another key took the first one's account.
    for _ in 0..2 {
        let err = match create_account(chime, name).await {
            Ok(account) => match store.claim(&claim_of(&held, &account)).await {
                Ok(Written::Yes) => {
                    return Ok(finish(store, held, Onboarded::Created(account)).await)
                }
                Err(err) => {
                    // The account exists and is ours; only its claim is missing.
                    tracing::error!(error = %err, account_id = %account.account_id, "could not claim the created account");
                    return Ok(finish(store, held, Onboarded::Created(account)).await);
                }
                Ok(Written::Conflict) => {
                    tracing::warn!(account_id = %account.account_id, "another request's verification claimed the account just created; looking for that request's own account");
                    let other = store.get_claim(&account.account_id).await;
                    if let Ok(Some(other)) = other {
                        held.since = held.since.min(other.since);
                    }
                    held.verify = true;
                    match adopt(store, chime, &held, name).await {
                        Ok(Some(found)) => {
                            return Ok(finish(store, held, Onboarded::Adopted(found)).await)
                        }
                        Ok(None) => continue,
                        Err(err) => err,
                    }
                }
            },
            Err(err) if err.may_have_created() => {
                // Chime may have committed: never re-send blind. Look once now.
                held.verify = true;
                tracing::warn!(code = err.code(), "ambiguous create outcome; verifying");
                match adopt(store, chime, &held, name).await {
                    Ok(Some(found)) => {
                        return Ok(finish(store, held, Onboarded::Adopted(found)).await)
                    }
                    _ => err,
                }
            }
            Err(err) if !held.verify => {
                // Nothing was created: free the key for a plain retry.
                match store.delete(key, &held.holder).await {
                    Ok(Written::Yes) => {}
                    Ok(Written::Conflict) => tracing::warn!(
                        "the idempotency record was taken over before it could be released"
                    ),
                    Err(store_err) => {
                        tracing::error!(error = %store_err, "could not release the idempotency record")
                    }
                }
                return Err(err);
            }
            Err(err) => err,
        };
        release(store, &held).await;
        return Err(err);
    }
    release(store, &held).await;
    Err(OnboardError::IdempotencyInProgress)
}

/// Takes the key: a new record, or the record of a released or dead holder.
async fn acquire(
    store: &dyn IdempotencyStore,
    key: &str,
    name: &AccountName,
    window: &Window,
) -> Result<Acquired, OnboardError> {
    let now = millis(window.now);
    let fingerprint = fingerprint(name);
    let fresh = |since: u64, verify: bool| Record {
        key: key.to_owned(),
        status: RecordStatus::InProgress,
        fingerprint: fingerprint.clone(),
        expiration: now / 1000 + window.ttl.as_secs(),
        held_until: millis(window.deadline).max(now + 1000),
        holder: new_token(),
        since,
        verify,
        account: None,
    };
    // What this call wrote or tried to: an SDK retry of a write that was saved
    // fails its condition against the write itself, so the record found may be
    // our own (holder tokens are 128-bit random; no one else has them).
    let mut attempts: Vec<Record> = Vec::new();
    // Three rounds at most: each lost race reads the record again.
    for _ in 0..3 {
        let record = fresh(now, false);
        let found = match store.insert(&record).await.map_err(store_error)? {
            Inserted::Yes => return Ok(Acquired::Held(record)),
            Inserted::Exists(found) => found,
        };
        attempts.push(record);
        if let Some(own) = attempts.iter().find(|a| a.holder == found.holder) {
            return Ok(Acquired::Held(own.clone()));
        }
        let record = if found.expiration.saturating_mul(1000) <= now {
            fresh(now, false)
        } else {
            if found.fingerprint != fingerprint {
                return Err(OnboardError::IdempotencyKeyReused);
            }
            if let (RecordStatus::Completed, Some(account)) = (found.status, &found.account) {
                return Ok(Acquired::Done(account.clone()));
            }
            if found.held_until > now {
                return Err(OnboardError::IdempotencyInProgress);
            }
            // Released after an ambiguous outcome, or its holder died mid-call
            // (never released): either may have created the account.
            let verify =
                found.verify || found.held_until != 0 || found.status == RecordStatus::Completed;
            fresh(found.since, verify)
        };
        if store
            .put(&record, &found.holder)
            .await
            .map_err(store_error)?
            == Written::Yes
        {
            return Ok(Acquired::Held(record));
        }
        attempts.push(record);
    }
    Err(OnboardError::IdempotencyInProgress)
}

fn claim_of(held: &Record, account: &Account) -> Claim {
    Claim {
        account_id: account.account_id.clone(),
        owner: held.key.clone(),
        since: held.since,
        expiration: held.expiration,
    }
}

/// Verification: an account named `name`, created since the record's `since`
/// (less [`CLOCK_SKEW`]) and not claimed by another key, claimed for this one.
/// The oldest candidate first, so two verifiers rarely contend.
async fn adopt(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    held: &Record,
    name: &AccountName,
) -> Result<Option<Account>, OnboardError> {
    let since = (held.since / 1000).saturating_sub(CLOCK_SKEW.as_secs()) as i64;
    let mut candidates: Vec<(DateTime, Account)> = list_named(chime, name)
        .await?
        .into_iter()
        .filter_map(|account| {
            let created = account
                .created_timestamp
                .as_deref()
                .and_then(|t| DateTime::from_str(t, Format::DateTime).ok())?;
            (created.secs() >= since).then_some((created, account))
        })
        .collect();
    candidates.sort_by_key(|(created, _)| (created.secs(), created.subsec_nanos()));
    for (_, account) in candidates {
        if store
            .claim(&claim_of(held, &account))
            .await
            .map_err(store_error)?
            == Written::Yes
        {
            tracing::info!(account_id = %account.account_id, "verification found the account an earlier attempt created");
            return Ok(Some(account));
        }
    }
    Ok(None)
}

/// Verification's reads: a transient `ListAccounts` failure is tried again (a
/// read is safe to repeat), since an unverified ambiguous outcome can only end
/// in another delivery, or, on the last one, in a `Failed` answer for a request
/// whose account may exist.
const VERIFY_ATTEMPTS: u32 = 3;
const VERIFY_BACKOFF: Duration = Duration::from_millis(100);

async fn list_named(
    chime: &dyn ChimeAccounts,
    name: &AccountName,
) -> Result<Vec<Account>, OnboardError> {
    let mut attempt = 1;
    loop {
        match chime.accounts_named(name).await {
            Ok(accounts) => return Ok(accounts),
            Err(err) if err.class().is_transient() && attempt < VERIFY_ATTEMPTS => {
                tracing::warn!(
                    code = err.code(),
                    attempt,
                    "verification could not list accounts; trying again"
                );
                tokio::time::sleep(VERIFY_BACKOFF * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Marks the record COMPLETED with the account (fenced) and returns the outcome.
async fn finish(store: &dyn IdempotencyStore, held: Record, onboarded: Onboarded) -> Onboarded {
    let holder = held.holder.clone();
    let record = Record {
        status: RecordStatus::Completed,
        held_until: 0,
        account: Some(onboarded.account().clone()),
        ..held
    };
    match store.put(&record, &holder).await {
        Ok(Written::Yes) => {}
        // The account is claimed by this key: whoever holds it now adopts it.
        Ok(Written::Conflict) => {
            tracing::warn!("the idempotency record was taken over before it could be completed")
        }
        Err(err) => {
            tracing::error!(error = %err, "could not mark the idempotency record completed")
        }
    }
    onboarded
}

/// Lets go of the key but keeps the record (and its `verify` mark), fenced.
async fn release(store: &dyn IdempotencyStore, held: &Record) {
    let record = Record {
        held_until: 0,
        ..held.clone()
    };
    match store.put(&record, &held.holder).await {
        Ok(Written::Yes) => {}
        Ok(Written::Conflict) => {
            tracing::warn!("the idempotency record was taken over before it could be released")
        }
        Err(err) => tracing::error!(error = %err, "could not release the idempotency record"),
    }
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

/// Claims share the table with records; their ids cannot collide (`sqs#`, `http#`, `auto#` keys).
const CLAIM_PREFIX: &str = "claim#";

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
        ("held_until".to_owned(), n(record.held_until)),
        ("holder".to_owned(), s(&record.holder)),
        ("since".to_owned(), n(record.since)),
        ("verify".to_owned(), AttributeValue::Bool(record.verify)),
    ]);
    if let Some(account) = &record.account {
        let data = serde_json::to_string(account).map_err(|e| StoreError(e.to_string()))?;
        item.insert("data".to_owned(), s(&data));
    }
    Ok(item)
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError(format!("record attribute {name} missing")))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Result<u64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| StoreError(format!("record attribute {name} missing")))
}

fn record(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let status = match text(item, "status")?.as_str() {
        "COMPLETED" => RecordStatus::Completed,
        _ => RecordStatus::InProgress,
    };
    let account = match item.get("data").and_then(|v| v.as_s().ok()) {
        Some(data) => Some(serde_json::from_str(data).map_err(|e| StoreError(e.to_string()))?),
        None => None,
    };
    Ok(Record {
        key: text(item, "id")?,
        status,
        fingerprint: text(item, "fingerprint")?,
        expiration: number(item, "expiration")?,
        held_until: number(item, "held_until")?,
        holder: text(item, "holder")?,
        since: number(item, "since")?,
        verify: item
            .get("verify")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(true),
        account,
    })
}

fn sdk_error<E: std::error::Error + 'static>(err: E) -> StoreError {
    StoreError(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string())
}

/// A conditional write's answer: a failed condition is [`Written::Conflict`].
fn written<O, E, R>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
    conditional_failed: impl Fn(&E) -> bool,
) -> Result<Written, StoreError>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match result {
        Ok(_) => Ok(Written::Yes),
        Err(err) if err.as_service_error().is_some_and(&conditional_failed) => {
            Ok(Written::Conflict)
        }
        Err(err) => Err(sdk_error(err)),
    }
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

    async fn insert(&self, new: &Record) -> Result<Inserted, StoreError> {
        // Twice at most: a record deleted between the failed write and the read is written again.
        for _ in 0..2 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item(new)?))
                .condition_expression("attribute_not_exists(id)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let returned = match result {
                Ok(_) => return Ok(Inserted::Yes),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().map(record).transpose()?
                    }
                    _ => return Err(sdk_error(err)),
                },
            };
            // A store that does not return the item (an emulator): read it.
            let stored = match returned {
                Some(stored) => Some(stored),
                None => self.get(&new.key).await?,
            };
            if let Some(stored) = stored {
                return Ok(Inserted::Exists(Box::new(stored)));
            }
        }
        Err(StoreError(
            "the idempotency record changed twice while being written".to_owned(),
        ))
    }

    async fn put(&self, record: &Record, holder: &str) -> Result<Written, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(record)?))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder));
        written(request.send().await, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn delete(&self, key: &str, holder: &str) -> Result<Written, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(key))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        written(result, |e| e.is_conditional_check_failed_exception())
    }

    async fn claim(&self, claim: &Claim) -> Result<Written, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", s(&format!("{CLAIM_PREFIX}{}", claim.account_id)))
            .item("owner", s(&claim.owner))
            .item("since", n(claim.since))
            .item("expiration", n(claim.expiration))
            .condition_expression("attribute_not_exists(id) OR #owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&claim.owner))
            .send()
            .await;
        written(result, |e| e.is_conditional_check_failed_exception())
    }

    async fn get_claim(&self, account_id: &str) -> Result<Option<Claim>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(&format!("{CLAIM_PREFIX}{account_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        output
            .item
            .as_ref()
            .map(|item| {
                Ok(Claim {
                    account_id: account_id.to_owned(),
                    owner: text(item, "owner")?,
                    since: number(item, "since")?,
                    expiration: number(item, "expiration")?,
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::fakes::{account, FakeChime, FakeStore, Step};
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

    fn chime_error(kind: ChimeErrorKind) -> OnboardError {
        OnboardError::Chime {
            kind,
            message: String::new(),
        }
    }

    fn timestamp(ms: u64) -> String {
        DateTime::from_millis(ms as i64)
            .fmt(Format::DateTime)
            .unwrap_or_default()
    }

    async fn once(
        store: &FakeStore,
        chime: &FakeChime,
        key: &str,
        n: &str,
    ) -> Result<Onboarded, OnboardError> {
        create_once(store, chime, key, &name(n), window()).await
    }

    #[tokio::test]
    async fn a_repeat_returns_the_first_account_and_a_mismatch_is_refused() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        let first = once(&store, &chime, "k", "Acme").await;
        let again = once(&store, &chime, "k", "Acme").await;
        assert!(matches!(first, Ok(Onboarded::Created(_))), "{first:?}");
        assert_eq!(
            first.map(Onboarded::into_account),
            again.map(|a| match a {
                Onboarded::Repeated(a) => a,
                other => panic!("{other:?}"),
            })
        );
        assert_eq!(chime.names(), ["Acme"]);
        let other = once(&store, &chime, "k", "Other").await;
        assert_eq!(other, Err(OnboardError::IdempotencyKeyReused));
        // The record keeps a fingerprint, never the name.
        let record = store.get("k").await.ok().flatten();
        assert_eq!(
            record.map(|r| r.fingerprint),
            Some(fingerprint(&name("Acme")))
        );
    }

    /// A store whose first insert and first take-over are saved but answered
    /// as a failed condition, as when the SDK re-sends a write whose answer
    /// was lost: the re-sent write fails against the saved one.
    #[derive(Default)]
    struct ReplayedWrites {
        inner: FakeStore,
        replayed_insert: AtomicBool,
        replayed_put: AtomicBool,
    }

    #[async_trait]
    impl IdempotencyStore for ReplayedWrites {
        async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
            self.inner.get(key).await
        }
        async fn insert(&self, record: &Record) -> Result<Inserted, StoreError> {
            let outcome = self.inner.insert(record).await?;
            if outcome == Inserted::Yes && !self.replayed_insert.swap(true, Ordering::SeqCst) {
                return Ok(Inserted::Exists(Box::new(record.clone())));
            }
            Ok(outcome)
        }
        async fn put(&self, record: &Record, holder: &str) -> Result<Written, StoreError> {
            let outcome = self.inner.put(record, holder).await?;
            if outcome == Written::Yes && !self.replayed_put.swap(true, Ordering::SeqCst) {
                return Ok(Written::Conflict);
            }
            Ok(outcome)
        }
        async fn delete(&self, key: &str, holder: &str) -> Result<Written, StoreError> {
            self.inner.delete(key, holder).await
        }
        async fn claim(&self, claim: &Claim) -> Result<Written, StoreError> {
            self.inner.claim(claim).await
        }
        async fn get_claim(&self, account_id: &str) -> Result<Option<Claim>, StoreError> {
            self.inner.get_claim(account_id).await
        }
    }

    #[tokio::test]
    async fn a_write_whose_answer_was_lost_is_recognised_as_our_own() {
        let (store, chime) = (ReplayedWrites::default(), FakeChime::default());
        // A new key: the insert is saved, its answer says "taken" by our own record.
        let first = create_once(&store, &chime, "new", &name("Acme"), window()).await;
        assert!(matches!(first, Ok(Onboarded::Created(_))), "{first:?}");
        // A released key taken over: the take-over is saved, its answer says "conflict".
        let released = Record {
            key: "old".into(),
            status: RecordStatus::InProgress,
            fingerprint: fingerprint(&name("Beta")),
            expiration: millis(SystemTime::now()) / 1000 + 3600,
            held_until: 0,
            holder: "earlier".into(),
            since: millis(SystemTime::now()),
            verify: false,
            account: None,
        };
        store
            .inner
            .records
            .lock()
            .map(|mut r| r.insert("old".into(), released))
            .ok();
        let second = create_once(&store, &chime, "old", &name("Beta"), window()).await;
        assert!(matches!(second, Ok(Onboarded::Created(_))), "{second:?}");
        assert_eq!(chime.names(), ["Acme", "Beta"]);
    }

    #[tokio::test]
    async fn a_clean_failure_releases_the_key_and_a_live_holder_blocks() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        chime.script([Step::Fail(chime_error(ChimeErrorKind::BadRequest))]);
        let failed = once(&store, &chime, "k", "Acme").await;
        assert!(failed.is_err());
        assert!(store.get("k").await.ok().flatten().is_none(), "deleted");

        let now = millis(SystemTime::now());
        let held = Record {
            key: "h".into(),
            status: RecordStatus::InProgress,
            fingerprint: fingerprint(&name("Acme")),
            expiration: now / 1000 + 3600,
            held_until: now + 60_000,
            holder: "other".into(),
            since: now,
            verify: false,
            account: None,
        };
        let _ = store.insert(&held).await;
        let busy = once(&store, &chime, "h", "Acme").await;
        assert_eq!(busy, Err(OnboardError::IdempotencyInProgress));
    }

    #[tokio::test]
    async fn throttling_is_retried_in_the_call_and_a_5xx_is_never_resent() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        chime.script([
            Step::Fail(chime_error(ChimeErrorKind::Throttled)),
            Step::Fail(chime_error(ChimeErrorKind::Throttled)),
        ]);
        let created = once(&store, &chime, "t", "Acme").await;
        assert!(matches!(created, Ok(Onboarded::Created(_))), "{created:?}");
        assert_eq!(chime.creates(), 3);

        // A 503 that created nothing: one create, the record kept for verification.
        chime.script([Step::Fail(chime_error(ChimeErrorKind::Unavailable))]);
        let failed = once(&store, &chime, "u", "Other").await;
        assert_eq!(failed, Err(chime_error(ChimeErrorKind::Unavailable)));
        assert_eq!(chime.creates(), 4, "not re-sent");
        let kept = store.get("u").await.ok().flatten();
        assert!(
            kept.as_ref().is_some_and(|r| r.verify && r.held_until == 0),
            "{kept:?}"
        );
        // The next request verifies, finds nothing, creates once.
        let retried = once(&store, &chime, "u", "Other").await;
        assert!(matches!(retried, Ok(Onboarded::Created(_))), "{retried:?}");
        assert_eq!(chime.names(), ["Acme", "Other"]);
    }

    #[tokio::test]
    async fn a_commit_then_failure_is_adopted_not_created_twice() {
        for error in [
            chime_error(ChimeErrorKind::ServiceFailure),
            chime_error(ChimeErrorKind::Unavailable),
            OnboardError::ChimeTimeout,
            OnboardError::ChimeUnreachable {
                reason: "reset".into(),
                request_sent: true,
            },
        ] {
            let (store, chime) = (FakeStore::default(), FakeChime::default());
            chime.script([Step::CommitThenFail(error.clone())]);
            let adopted = once(&store, &chime, "k", "Acme").await;
            assert!(
                matches!(adopted, Ok(Onboarded::Adopted(_))),
                "{error:?}: {adopted:?}"
            );
            assert_eq!(chime.names(), ["Acme"], "{error:?}");
            assert_eq!(chime.creates(), 1, "{error:?}");
        }
    }

    #[tokio::test]
    async fn when_verification_fails_the_next_request_verifies_again() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        chime.script([Step::CommitThenFail(chime_error(
            ChimeErrorKind::ServiceFailure,
        ))]);
        chime.fail_lists((0..VERIFY_ATTEMPTS).map(|_| chime_error(ChimeErrorKind::Throttled)));
        let failed = once(&store, &chime, "k", "Acme").await;
        assert_eq!(failed, Err(chime_error(ChimeErrorKind::ServiceFailure)));
        let adopted = once(&store, &chime, "k", "Acme").await;
        assert!(matches!(adopted, Ok(Onboarded::Adopted(_))), "{adopted:?}");
        assert_eq!(chime.names(), ["Acme"]);
    }

    #[tokio::test]
    async fn a_failing_list_is_tried_again_before_verification_gives_up() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        chime.script([Step::CommitThenFail(OnboardError::ChimeTimeout)]);
        chime.fail_lists((1..VERIFY_ATTEMPTS).map(|_| chime_error(ChimeErrorKind::Throttled)));
        let adopted = once(&store, &chime, "k", "Acme").await;
        assert!(matches!(adopted, Ok(Onboarded::Adopted(_))), "{adopted:?}");
        assert_eq!(chime.creates(), 1);
    }

    #[tokio::test]
    async fn a_dead_holder_is_taken_over_and_what_it_created_adopted() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        let started = millis(SystemTime::now()) - 5_000;
        chime.insert(account("old", "Acme", "2020-01-01T00:00:00Z"));
        chime.insert(account("new", "Acme", &timestamp(started + 1_000)));
        let dead = Record {
            key: "k".into(),
            status: RecordStatus::InProgress,
            fingerprint: fingerprint(&name("Acme")),
            expiration: started / 1000 + 3600,
            held_until: started + 1_000,
            holder: "dead".into(),
            since: started,
            verify: false,
            account: None,
        };
        let _ = store.insert(&dead).await;
        let adopted = once(&store, &chime, "k", "Acme").await;
        assert_eq!(
            adopted.map(|a| a.account().account_id.clone()),
            Ok("new".to_owned())
        );
        assert_eq!(chime.creates(), 0, "nothing new created");
        // The dead holder's late writes are fenced off.
        let late = Record {
            status: RecordStatus::Completed,
            ..dead
        };
        assert_eq!(store.put(&late, "dead").await, Ok(Written::Conflict));
        assert_eq!(store.delete("k", "dead").await, Ok(Written::Conflict));
    }

    #[tokio::test]
    async fn two_keys_with_one_name_each_adopt_only_their_own() {
        let (store, chime) = (FakeStore::default(), FakeChime::default());
        // A's create committed, then failed; its verification failed too.
        chime.script([Step::CommitThenFail(chime_error(
            ChimeErrorKind::ServiceFailure,
        ))]);
        chime.fail_lists((0..VERIFY_ATTEMPTS).map(|_| chime_error(ChimeErrorKind::Unavailable)));
        assert!(once(&store, &chime, "a", "Acme").await.is_err());
        // B, same name, creates and claims its own.
        let b = once(&store, &chime, "b", "Acme").await;
        assert!(matches!(b, Ok(Onboarded::Created(_))), "{b:?}");
        // A's retry adopts the account its first attempt made, not B's.
        let a = once(&store, &chime, "a", "Acme").await;
        assert!(matches!(a, Ok(Onboarded::Adopted(_))), "{a:?}");
        let (a, b) = (
            a.map(Onboarded::into_account).ok(),
            b.map(Onboarded::into_account).ok(),
        );
        assert_eq!(a.map(|a| a.account_id), Some("acct-1".to_owned()));
        assert_eq!(b.map(|b| b.account_id), Some("acct-2".to_owned()));
        assert_eq!(chime.creates(), 2);

        // C, same name, 503 before the commit: its retry finds both claimed and creates.
        chime.script([Step::Fail(chime_error(ChimeErrorKind::Unavailable))]);
        assert!(once(&store, &chime, "c", "Acme").await.is_err());
        let c = once(&store, &chime, "c", "Acme").await;
        assert_eq!(
            c.map(|c| c.account().account_id.clone()),
            Ok("acct-3".to_owned())
        );
        assert_eq!(chime.names().len(), 3);
    }

    #[tokio::test]
    async fn a_creator_that_loses_its_claim_adopts_the_winners_stray() {
        let (store, chime) = (Arc::new(FakeStore::default()), FakeChime::default());
        let now = millis(SystemTime::now());
        // Key "a" (started 2 s ago) committed a stray, then its verification
        // claimed the account "b" is about to create ("acct-2") before "b" could.
        chime.insert(account("acct-1", "Acme", &timestamp(now - 1_500)));
        let claimed = Claim {
            account_id: "acct-2".into(),
            owner: "a".into(),
            since: now - 2_000,
            expiration: now / 1000 + 3600,
        };
        assert_eq!(store.claim(&claimed).await, Ok(Written::Yes));
        let b = create_once(store.as_ref(), &chime, "b", &name("Acme"), window()).await;
        assert_eq!(
            b.map(|b| b.account().account_id.clone()),
            Ok("acct-1".to_owned())
        );
        assert_eq!(chime.creates(), 1, "no third account");
    }
}
