//! The flow's unit tests, over the in-memory store and Chime of `fakes.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_smithy_types::date_time::{DateTime, Format};

use super::flow::VERIFY_ATTEMPTS;
use super::record::millis;
use super::*;
use crate::deadline::Budget;
use crate::fakes::{account, FakeChime, FakeStore, Step};
use crate::onboard::{AccountName, ChimeErrorKind, OnboardError, Onboarded};

fn window() -> Window {
    let now = SystemTime::now();
    Window {
        now,
        hold_until: now + Duration::from_secs(30),
        ttl: Duration::from_secs(3600),
        horizon: Duration::ZERO,
        budget: Budget::unbounded(Duration::from_secs(5)),
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
    create_once(store, chime, key, None, &name(n), window()).await
}

#[tokio::test]
async fn a_new_key_opens_the_chime_connection_before_creating_and_completes_in_one_write() {
    let (store, chime) = (FakeStore::default(), FakeChime::default());
    let created = once(&store, &chime, "k", "Acme").await;
    let account = match created {
        Ok(Onboarded::Created(account)) => account,
        other => panic!("{other:?}"),
    };
    assert_eq!(chime.connects.load(Ordering::SeqCst), 1);
    assert_eq!(chime.creates_before_connect.load(Ordering::SeqCst), 0);
    // The claim and COMPLETED were written together.
    let record = store.get("k").await.ok().flatten();
    assert_eq!(
        record.map(|r| (r.status, r.account)),
        Some((RecordStatus::Completed, Some(account.clone())))
    );
    let claim = store.get_claim(&account.account_id).await.ok().flatten();
    assert_eq!(claim.map(|c| c.owner), Some("k".to_owned()));
}

#[tokio::test]
async fn a_record_under_the_old_key_form_is_the_keys_own() {
    let (store, chime) = (FakeStore::default(), FakeChime::default());
    // Completed before the upgrade, under the old form: answered from it.
    let first = create_once(&store, &chime, "old", None, &name("Acme"), window()).await;
    let first = first.map(Onboarded::into_account);
    let again = create_once(&store, &chime, "new", Some("old"), &name("Acme"), window()).await;
    assert_eq!(again.map(Onboarded::into_account), first);
    assert_eq!(chime.creates(), 1);
    // The record this attempt took under the new form was let go.
    assert_eq!(store.get("new").await, Ok(None));
    // No old record: the new form is used.
    let other = create_once(&store, &chime, "k2", Some("gone"), &name("Beta"), window()).await;
    assert!(matches!(other, Ok(Onboarded::Created(_))), "{other:?}");
    assert!(store.get("k2").await.ok().flatten().is_some());
    assert_eq!(store.get("gone").await, Ok(None));
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
    async fn insert(&self, record: &Record) -> Result<Inserted, StoreError> {
        let outcome = self.inner.insert(record).await?;
        if outcome == Inserted::Yes && !self.replayed_insert.swap(true, Ordering::SeqCst) {
            return Ok(Inserted::Exists(Box::new(record.clone())));
        }
        Ok(outcome)
    }
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        self.inner.get(key).await
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
    async fn complete(
        &self,
        record: &Record,
        claim: &Claim,
        holder: &str,
    ) -> Result<Completed, StoreError> {
        self.inner.complete(record, claim, holder).await
    }
    async fn get_claim(&self, account_id: &str) -> Result<Option<Claim>, StoreError> {
        self.inner.get_claim(account_id).await
    }
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_recognised_as_our_own() {
    let (store, chime) = (ReplayedWrites::default(), FakeChime::default());
    // A new key: the insert is saved, its answer says "taken" by our own record.
    let first = create_once(&store, &chime, "new", None, &name("Acme"), window()).await;
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
        settles_at: 0,
        account: None,
    };
    store
        .inner
        .records
        .lock()
        .map(|mut r| r.insert("old".into(), released))
        .ok();
    let second = create_once(&store, &chime, "old", None, &name("Beta"), window()).await;
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
        settles_at: 0,
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
        settles_at: 0,
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
    let b = create_once(store.as_ref(), &chime, "b", None, &name("Acme"), window()).await;
    assert_eq!(
        b.map(|b| b.account().account_id.clone()),
        Ok("acct-1".to_owned())
    );
    assert_eq!(chime.creates(), 1, "no third account");
}

/// A window with a commit horizon of `horizon_ms`.
fn window_with_horizon(horizon_ms: u64) -> Window {
    Window {
        horizon: Duration::from_millis(horizon_ms),
        ..window()
    }
}

#[tokio::test]
async fn a_late_commit_holds_the_key_until_the_horizon_then_is_adopted() {
    let (store, chime) = (FakeStore::default(), FakeChime::default());
    let w = || window_with_horizon(400);
    // The create times out; Chime commits it later. Verification finds nothing yet.
    chime.script([Step::CommitLate(OnboardError::ChimeTimeout)]);
    let first = create_once(&store, &chime, "k", None, &name("Acme"), w()).await;
    assert_eq!(first, Err(OnboardError::ChimeTimeout));
    // A repeat before the horizon creates nothing and says when to come back.
    let early = create_once(&store, &chime, "k", None, &name("Acme"), w()).await;
    assert!(
        matches!(early, Err(OnboardError::CommitPending { retry_after: 1 })),
        "{early:?}"
    );
    assert_eq!(chime.creates(), 1);
    chime.commit_late();
    tokio::time::sleep(Duration::from_millis(450)).await;
    // After it, verification adopts the late account: one account in all.
    let later = create_once(&store, &chime, "k", None, &name("Acme"), w()).await;
    assert!(matches!(later, Ok(Onboarded::Adopted(_))), "{later:?}");
    assert_eq!(chime.names(), ["Acme"]);
    assert_eq!(chime.creates(), 1);
}

#[tokio::test]
async fn a_dead_holder_counts_the_horizon_from_the_end_of_its_hold() {
    let (store, chime) = (FakeStore::default(), FakeChime::default());
    let now = millis(SystemTime::now());
    let dead = Record {
        key: "k".into(),
        status: RecordStatus::InProgress,
        fingerprint: fingerprint(&name("Acme")),
        expiration: now / 1000 + 3600,
        held_until: now - 1_000,
        holder: "dead".into(),
        since: now - 5_000,
        verify: false,
        settles_at: 0,
        account: None,
    };
    let _ = store.insert(&dead).await;
    let early = create_once(
        &store,
        &chime,
        "k",
        None,
        &name("Acme"),
        window_with_horizon(30_000),
    )
    .await;
    assert!(
        matches!(early, Err(OnboardError::CommitPending { retry_after }) if (28..=29).contains(&retry_after)),
        "{early:?}"
    );
    assert_eq!(chime.creates(), 0);
}

#[tokio::test]
async fn an_expired_ambiguous_record_still_present_is_verified_not_read_as_absent() {
    let (store, chime) = (FakeStore::default(), FakeChime::default());
    let now = millis(SystemTime::now());
    let since = now - 7_200_000;
    chime.insert(account("acct-1", "Acme", &timestamp(since + 500)));
    let expired = Record {
        key: "k".into(),
        status: RecordStatus::InProgress,
        fingerprint: fingerprint(&name("Acme")),
        expiration: now / 1000 - 60,
        held_until: 0,
        holder: "earlier".into(),
        since,
        verify: true,
        settles_at: 0,
        account: None,
    };
    let _ = store.insert(&expired).await;
    let adopted = once(&store, &chime, "k", "Acme").await;
    assert_eq!(
        adopted.map(|a| a.account().account_id.clone()),
        Ok("acct-1".to_owned())
    );
    assert_eq!(chime.creates(), 0);
    // Another name's expired record is forgotten: the key is new again.
    let other = Record {
        key: "o".into(),
        fingerprint: fingerprint(&name("Someone Else")),
        ..expired
    };
    let _ = store.insert(&other).await;
    let created = once(&store, &chime, "o", "Beta").await;
    assert!(matches!(created, Ok(Onboarded::Created(_))), "{created:?}");
}

#[tokio::test]
async fn a_claim_write_that_fails_is_tried_again_and_claims_outlive_records() {
    let (store, chime) = (FakeStore::default(), FakeChime::default());
    store.fail_claims(2);
    let created = once(&store, &chime, "k", "Acme").await;
    assert!(matches!(created, Ok(Onboarded::Created(_))), "{created:?}");
    let claim = store.get_claim("acct-1").await.ok().flatten();
    let record = store.get("k").await.ok().flatten();
    assert_eq!(claim.as_ref().map(|c| c.owner.as_str()), Some("k"));
    let (claim, record) = (claim.map(|c| c.expiration), record.map(|r| r.expiration));
    assert!(claim > record, "{claim:?} vs {record:?}");
}

#[tokio::test]
async fn verification_stops_when_the_budget_does_not_cover_a_page() {
    use crate::deadline::Deadline;
    let (store, chime) = (FakeStore::default(), FakeChime::default());
    let now = millis(SystemTime::now());
    let ambiguous = Record {
        key: "k".into(),
        status: RecordStatus::InProgress,
        fingerprint: fingerprint(&name("Acme")),
        expiration: now / 1000 + 3600,
        held_until: 0,
        holder: "earlier".into(),
        since: now - 60_000,
        verify: true,
        settles_at: 0,
        account: None,
    };
    let _ = store.insert(&ambiguous).await;
    let tight = Window {
        budget: Budget {
            deadline: Deadline::at(SystemTime::now() + Duration::from_secs(3)),
            call: Duration::from_secs(5),
        },
        ..window()
    };
    let out = create_once(&store, &chime, "k", None, &name("Acme"), tight).await;
    assert_eq!(out, Err(OnboardError::TimeBudgetExhausted));
    assert_eq!(chime.creates(), 0);
    assert_eq!(chime.list_calls.load(Ordering::SeqCst), 0);
    // The record keeps its mark for the next attempt.
    let kept = store.get("k").await.ok().flatten();
    assert!(kept.is_some_and(|r| r.verify && r.held_until == 0));
}
