//! The exactly-once flow as named steps over a held [`Record`]:
//! [`acquire`] the key, [`verify`] what an earlier attempt may have created,
//! [`create_and_claim`] (the claim and COMPLETED in one write when it can),
//! then [`finish`] (COMPLETED, if not written yet), [`release`] (keep the
//! record for the next attempt to verify, held until the commit horizon when
//! this attempt's create was ambiguous and nothing showed) or [`forget`]
//! (nothing was created: delete it). Every write after `acquire` is fenced on
//! the holder token; every Chime call starts within the [`Budget`].
//!
//! Late commits (DESIGN.md, "Exactly once"): Chime may commit a create seconds
//! after the client gave up. An ambiguous create is verified at once; when that
//! finds nothing (or cannot run), the record is released with `settles_at` =
//! the end of the attempt + `CHIME_COMMIT_HORIZON_MS`, and until then a request
//! for the key is [`OnboardError::CommitPending`] (HTTP 409 with `Retry-After`,
//! SQS deferred untouched). A holder that died mid-call is treated alike: its
//! create may commit up to the horizon after its hold ends. An expired record
//! still present is read as it is (replayed or verified), never as absent,
//! unless it is another request's (another name's) and so forgotten.

use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_smithy_types::date_time::{DateTime, Format};

use super::record::{fingerprint, millis, new_token, Claim, Record, RecordStatus};
use super::store::{Completed, IdempotencyStore, Inserted, StoreError, Written};
use crate::deadline::Budget;
use crate::onboard::{
    create_account, Account, AccountName, ChimeAccounts, OnboardError, Onboarded,
};

/// How much earlier than an attempt's start an account found by verification
/// may have been created (Chime's clock against the function's).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Verification's reads: a transient `ListAccounts` failure is tried again (a
/// read is safe to repeat), since an unverified ambiguous outcome can only end
/// in another delivery, or, on the last one, in a `Failed` answer for a request
/// whose account may exist.
pub const VERIFY_ATTEMPTS: u32 = 3;
const VERIFY_BACKOFF: Duration = Duration::from_millis(100);

/// Claim writes: safe to repeat (conditional on the owner), and an account
/// left unclaimed could be adopted by another key's verification.
pub const CLAIM_ATTEMPTS: u32 = 3;
const CLAIM_BACKOFF: Duration = Duration::from_millis(50);

/// How long the flow may hold a key, for how long it is remembered, and the
/// time its Chime calls have.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub now: SystemTime,
    /// Until when this attempt holds the key: past it, the holder is presumed dead.
    pub hold_until: SystemTime,
    pub ttl: Duration,
    /// `CHIME_COMMIT_HORIZON_MS`: how long after an ambiguous create a commit may still appear.
    pub horizon: Duration,
    /// The use case's one deadline.
    pub budget: Budget,
}

fn store_error(err: StoreError) -> OnboardError {
    OnboardError::IdempotencyStore {
        reason: err.to_string(),
    }
}

/// Creates the account for `key` (a rendered [`super::IdempotencyKey`]) at
/// most once. A repeat of a completed request returns the same account; a
/// different name under the same key is [`OnboardError::IdempotencyKeyReused`];
/// a live concurrent holder is [`OnboardError::IdempotencyInProgress`].
/// `legacy`: the id the key had in an earlier form; a record still stored
/// under it is used instead ([`super::IdempotencyKey::legacy`]).
///
/// Round trips (BENCHMARKS.md, "Deployed case"): the key is taken while the
/// Chime connection opens ([`ChimeAccounts::connect`]) and the old form is
/// read, all at once; then the create; then the claim and COMPLETED in one
/// write. Three in a row on a warm process, five from a cold one.
pub async fn create_once(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    key: &str,
    legacy: Option<&str>,
    name: &AccountName,
    window: Window,
) -> Result<Onboarded, OnboardError> {
    let mut held = match acquire_connected(store, chime, key, legacy, name, &window).await? {
        Acquired::Done(account) => return Ok(Onboarded::Repeated(account)),
        Acquired::Held(record) => record,
    };
    match run(store, chime, &mut held, name, window.budget).await {
        Ok(Outcome {
            onboarded,
            recorded,
        }) => {
            if !recorded {
                finish(store, &held, onboarded.account()).await;
            }
            Ok(onboarded)
        }
        Err(Ending::Release(err)) => {
            release(store, &held, 0).await;
            Err(err)
        }
        Err(Ending::Hold(err)) => {
            // From the end of this attempt: its create may still commit until then.
            let settles_at = millis(SystemTime::now()) + window.horizon.as_millis() as u64;
            release(store, &held, settles_at).await;
            Err(err)
        }
        Err(Ending::Forget(err)) => {
            forget(store, &held).await;
            Err(err)
        }
    }
}

/// Takes the key while the Chime connection opens and the key's old form is
/// read: none of the three waits for another. The connection is waited for
/// only when the key is held (a create follows and should find it open); a
/// repeat answered from the table does not wait on Chime.
async fn acquire_connected(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    key: &str,
    legacy: Option<&str>,
    name: &AccountName,
    window: &Window,
) -> Result<Acquired, OnboardError> {
    let take = async {
        let old = async {
            match legacy {
                Some(old) => store.get(old).await.map_err(store_error),
                None => Ok(None),
            }
        };
        let (acquired, old) = tokio::join!(acquire(store, key, name, window), old);
        if matches!(old, Ok(None)) {
            return acquired;
        }
        // A record under the old form is the key's (or it could not be read):
        // let go of what this attempt took under the new one (nothing was done
        // with it yet).
        if let Ok(Acquired::Held(record)) = &acquired {
            forget(store, record).await;
        }
        old?;
        let old = legacy.unwrap_or(key);
        tracing::info!(
            key = old,
            "using the record stored under the key's old form"
        );
        acquire(store, old, name, window).await
    };
    let mut take = std::pin::pin!(take);
    let mut connect = std::pin::pin!(chime.connect());
    let mut connected = false;
    let acquired = loop {
        tokio::select! {
            // The insert's request first: the table's chain is the one the
            // create waits for when both connections are cold.
            biased;
            acquired = &mut take => break acquired,
            () = &mut connect, if !connected => connected = true,
        }
    };
    if !connected && matches!(acquired, Ok(Acquired::Held(_))) {
        connect.await;
    }
    acquired
}

/// An account this attempt ends with.
struct Outcome {
    onboarded: Onboarded,
    /// The record already says COMPLETED (written with the claim).
    recorded: bool,
}

impl Outcome {
    fn unrecorded(onboarded: Onboarded) -> Self {
        Self {
            onboarded,
            recorded: false,
        }
    }
}

/// How a held attempt that got no account lets go of its key.
enum Ending {
    /// An account may exist: keep the record (and its `verify` mark).
    Release(OnboardError),
    /// This attempt's create was ambiguous and nothing showed yet: keep the
    /// record, held until the commit horizon.
    Hold(OnboardError),
    /// Nothing was created: delete the record, so a retry simply creates.
    Forget(OnboardError),
}

/// What the holder of a key does: verify if an earlier attempt may have
/// created the account, else create; a second create only after another
/// key's verification took the first one's account.
async fn run(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    held: &mut Record,
    name: &AccountName,
    budget: Budget,
) -> Result<Outcome, Ending> {
    if held.verify {
        if let Some(found) = verify(store, chime, held, name, budget)
            .await
            .map_err(Ending::Release)?
        {
            return Ok(Outcome::unrecorded(Onboarded::Adopted(found)));
        }
    }
    for _ in 0..2 {
        if let Some(onboarded) = create_and_claim(store, chime, held, name, budget).await? {
            return Ok(onboarded);
        }
    }
    Err(Ending::Release(OnboardError::IdempotencyInProgress))
}

/// What acquiring a key gave.
enum Acquired {
    /// The request was completed before: its account.
    Done(Account),
    /// This attempt now holds the key.
    Held(Record),
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
        held_until: millis(window.hold_until).max(now + 1000),
        holder: new_token(),
        since,
        verify,
        settles_at: 0,
        account: None,
    };
    let horizon = window.horizon.as_millis() as u64;
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
        let expired = found.expiration.saturating_mul(1000) <= now;
        let record = if expired && found.fingerprint != fingerprint {
            // Another request's, past its time: forgotten, as if absent.
            fresh(now, false)
        } else {
            // Expired but still there (DynamoDB deletes up to days later): read
            // as it is, so an ambiguous attempt is verified, never created over.
            if found.fingerprint != fingerprint {
                return Err(OnboardError::IdempotencyKeyReused);
            }
            if let (RecordStatus::Completed, Some(account)) = (found.status, &found.account) {
                return Ok(Acquired::Done(account.clone()));
            }
            if found.held_until > now {
                return Err(OnboardError::IdempotencyInProgress);
            }
            // A holder that died mid-call may have sent a create until its hold ended.
            let died = match found.held_until {
                0 => 0,
                until => until.saturating_add(horizon),
            };
            let settles_at = found.settles_at.max(died);
            if settles_at > now {
                return Err(OnboardError::CommitPending {
                    retry_after: (settles_at - now).div_ceil(1000).max(1) as u32,
                });
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

/// One create, and the claim on what it made. `None` when another key's
/// verification claimed the new account first and none of this key's own
/// could be found: the caller may create once more.
async fn create_and_claim(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    held: &mut Record,
    name: &AccountName,
    budget: Budget,
) -> Result<Option<Outcome>, Ending> {
    let err = match create_account(chime, name, budget).await {
        Ok(account) => return claim_created(store, chime, held, name, account, budget).await,
        Err(err) => err,
    };
    if err.may_have_created() {
        // Chime may have committed: never re-send blind. Look once now; if
        // nothing shows, hold the key until the commit horizon.
        held.verify = true;
        tracing::warn!(code = err.code(), "ambiguous create outcome; verifying");
        return match verify(store, chime, held, name, budget).await {
            Ok(Some(found)) => Ok(Some(Outcome::unrecorded(Onboarded::Adopted(found)))),
            _ => Err(Ending::Hold(err)),
        };
    }
    Err(if held.verify {
        // An earlier attempt may still have created it: keep the record.
        Ending::Release(err)
    } else {
        Ending::Forget(err)
    })
}

/// Claims the account this attempt created and completes the record, in one
/// write. If another key's verification claimed the account first, this key
/// does what a verifier does, looking back as far as the earlier of the two
/// keys' starts (the other key's own stray, if its ambiguous create had
/// committed). If the one write cannot be made, the claim is written alone
/// (and [`finish`] completes the record after).
async fn claim_created(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    held: &mut Record,
    name: &AccountName,
    account: Account,
    budget: Budget,
) -> Result<Option<Outcome>, Ending> {
    let claim_on = held.claim_on(&account);
    let claimed = match store
        .complete(&held.completed(&account), &claim_on, &held.holder)
        .await
    {
        Ok(Completed::Yes) => {
            return Ok(Some(Outcome {
                onboarded: Onboarded::Created(account),
                recorded: true,
            }))
        }
        Ok(Completed::ClaimTaken) => Ok(Written::Conflict),
        // Taken over: the account is still this key's; claim it, and `finish`
        // logs the record it can no longer complete.
        Ok(Completed::RecordTaken) => claim(store, &claim_on).await,
        Err(err) => {
            tracing::warn!(error = %err, "claim and completion not written together; writing the claim alone");
            claim(store, &claim_on).await
        }
    };
    match claimed {
        Ok(Written::Yes) => Ok(Some(Outcome::unrecorded(Onboarded::Created(account)))),
        Err(err) => {
            // The account exists and is ours; only its claim is missing.
            tracing::error!(error = %err, account_id = %account.account_id, "could not claim the created account");
            Ok(Some(Outcome::unrecorded(Onboarded::Created(account))))
        }
        Ok(Written::Conflict) => {
            tracing::warn!(account_id = %account.account_id, "another request's verification claimed the account just created; looking for that request's own account");
            if let Ok(Some(other)) = store.get_claim(&account.account_id).await {
                held.since = held.since.min(other.since);
            }
            held.verify = true;
            verify(store, chime, held, name, budget)
                .await
                .map(|found| found.map(|a| Outcome::unrecorded(Onboarded::Adopted(a))))
                .map_err(Ending::Release)
        }
    }
}

/// Verification: an account named `name`, created since the record's `since`
/// (less [`CLOCK_SKEW`]) and not claimed by another key, claimed for this one.
/// The oldest candidate first, so two verifiers rarely contend.
async fn verify(
    store: &dyn IdempotencyStore,
    chime: &dyn ChimeAccounts,
    held: &Record,
    name: &AccountName,
    budget: Budget,
) -> Result<Option<Account>, OnboardError> {
    let since = (held.since / 1000).saturating_sub(CLOCK_SKEW.as_secs()) as i64;
    let mut candidates: Vec<(DateTime, Account)> = list_named(chime, name, budget)
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
        if claim(store, &held.claim_on(&account))
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

/// A claim write, tried again when the table fails ([`CLAIM_ATTEMPTS`] in all).
async fn claim(store: &dyn IdempotencyStore, claim: &Claim) -> Result<Written, StoreError> {
    let mut attempt = 1;
    loop {
        match store.claim(claim).await {
            Err(err) if attempt < CLAIM_ATTEMPTS => {
                tracing::warn!(error = %err, attempt, "claim not written; trying again");
                tokio::time::sleep(CLAIM_BACKOFF * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            written => return written,
        }
    }
}

/// Verification's `ListAccounts`, tried again on transient failures
/// ([`VERIFY_ATTEMPTS`] passes at most, each page within the budget).
async fn list_named(
    chime: &dyn ChimeAccounts,
    name: &AccountName,
    budget: Budget,
) -> Result<Vec<Account>, OnboardError> {
    let mut attempt = 1;
    loop {
        match chime.accounts_named(name, budget).await {
            Ok(accounts) => return Ok(accounts),
            Err(err) if retry_list(&err) && attempt < VERIFY_ATTEMPTS => {
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

/// Whether a failed `ListAccounts` pass is worth another: a transient answer,
/// but not an operator error (it will not clear in milliseconds) nor the end
/// of the budget.
fn retry_list(err: &OnboardError) -> bool {
    err.class().is_transient()
        && err.class() != crate::onboard::ErrorClass::Misconfigured
        && *err != OnboardError::TimeBudgetExhausted
}

/// Marks the record COMPLETED with the account.
async fn finish(store: &dyn IdempotencyStore, held: &Record, account: &Account) {
    // On a conflict the account is claimed by this key: whoever holds it now adopts it.
    fenced(
        store.put(&held.completed(account), &held.holder),
        "completed",
    )
    .await;
}

/// Lets go of the key but keeps the record (and its `verify` mark), held
/// until `settles_at` (0: not held).
async fn release(store: &dyn IdempotencyStore, held: &Record, settles_at: u64) {
    fenced(
        store.put(&held.released(settles_at), &held.holder),
        "released",
    )
    .await;
}

/// Deletes the record: nothing was created, a retry simply creates.
async fn forget(store: &dyn IdempotencyStore, held: &Record) {
    fenced(store.delete(&held.key, &held.holder), "released").await;
}

/// A write fenced on this attempt's holder token. A conflict means another
/// attempt took the key over (this one's hold had passed): the write is
/// dropped, as it must be, and logged; the caller's answer does not change.
async fn fenced(write: impl Future<Output = Result<Written, StoreError>>, done: &str) {
    match write.await {
        Ok(Written::Yes) => {}
        Ok(Written::Conflict) => {
            tracing::warn!("the idempotency record was taken over before it could be {done}")
        }
        Err(err) => tracing::error!(error = %err, "the idempotency record could not be {done}"),
    }
}
