//! Unit tests of `sqs.rs`, over the fakes of `fakes.rs`.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::*;
use crate::fakes::{sqs_adapter, FakeChime, FakeReplies, FakeStore};
use crate::onboard::{ChimeErrorKind, OnboardError};

/// A transient error the create step does not retry itself.
fn unavailable() -> OnboardError {
    OnboardError::Chime {
        kind: ChimeErrorKind::Unavailable,
        message: "try later".into(),
    }
}

fn batch(messages: &[(&str, &str, Option<&str>, u32)], fifo: bool) -> SqsEvent {
    let arn = if fifo {
        "arn:aws:sqs:us-east-1:1:q.fifo"
    } else {
        "arn:aws:sqs:us-east-1:1:q"
    };
    let records: Vec<_> = messages
        .iter()
        .map(|(id, name, group, receive_count)| {
            let mut attributes = json!({"ApproximateReceiveCount": receive_count.to_string()});
            if let Some(group) = group {
                attributes["MessageGroupId"] = json!(group);
            }
            json!({
                "messageId": id, "body": json!({"Name": name, "RequestId": id}).to_string(),
                "attributes": attributes, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": arn,
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap_or_default()
}

fn failed(response: &SqsBatchResponse) -> Vec<&str> {
    let mut ids: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    ids.sort();
    ids
}

async fn run(sqs: &SqsAdapter, event: SqsEvent) -> SqsBatchResponse {
    sqs.handle_batch(event, &Context::default())
        .await
        .unwrap_or_default()
}

#[test]
fn the_decision_follows_the_result_and_the_attempt() {
    let account = crate::fakes::account("a-1", "Acme", "2026-01-01T00:00:00Z");
    let created = Outcome::decide(Ok(Onboarded::Created(account.clone())), false);
    assert_eq!(created.reply_status(), Some(Status::Created));
    assert!(!created.keeps_message());
    let adopted = Outcome::decide(Ok(Onboarded::Adopted(account.clone())), true);
    assert_eq!(adopted, Outcome::Adopted(account.clone()));
    assert_eq!(adopted.reply_status(), Some(Status::Created));
    let repeated = Outcome::decide(Ok(Onboarded::Repeated(account.clone())), false);
    assert_eq!(repeated, Outcome::Created(account));

    let rejected = Outcome::decide(Err(OnboardError::NameEmpty), true);
    assert!(matches!(&rejected, Outcome::Rejected(e) if e.code == "NameEmpty"));
    assert!(!rejected.keeps_message());
    let retry = Outcome::decide(Err(unavailable()), false);
    assert_eq!(retry.reply_status(), None);
    assert!(retry.keeps_message());
    let failed = Outcome::decide(Err(unavailable()), true);
    assert_eq!(failed.reply_status(), Some(Status::Failed));
    assert!(failed.keeps_message());
}

#[tokio::test]
async fn concurrency_is_bounded_by_max_concurrency() {
    let chime = Arc::new(FakeChime {
        delay: Some(Duration::from_millis(20)),
        ..FakeChime::default()
    });
    let replies = Arc::new(FakeReplies::default());
    let config = Config {
        max_concurrency: 3,
        ..Config::default()
    };
    let sqs = sqs_adapter(chime.clone(), replies.clone(), None, config);
    let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    let messages: Vec<_> = names
        .iter()
        .map(|n| (n.as_str(), n.as_str(), None, 1))
        .collect();
    let response = run(&sqs, batch(&messages, false)).await;
    assert!(failed(&response).is_empty());
    assert_eq!(chime.names().len(), 10);
    assert_eq!(chime.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(replies.statuses().len(), 10);
}

#[tokio::test]
async fn a_transient_error_replies_failed_only_on_the_last_attempt() {
    let chime = Arc::new(FakeChime::default());
    let replies = Arc::new(FakeReplies::default());
    let sqs = sqs_adapter(chime.clone(), replies.clone(), None, Config::default());
    chime.fail_next([unavailable(), unavailable()]);
    let response = run(
        &sqs,
        batch(&[("a", "A", None, 4), ("b", "B", None, 5)], false),
    )
    .await;
    assert_eq!(failed(&response), ["a", "b"]);
    assert_eq!(replies.statuses(), [("b".to_owned(), "Failed")]);
}

#[tokio::test]
async fn a_reply_that_cannot_be_sent_is_retried() {
    let chime = Arc::new(FakeChime::default());
    let replies = Arc::new(FakeReplies {
        fail: true,
        ..FakeReplies::default()
    });
    let store = Arc::new(FakeStore::default());
    let sqs = sqs_adapter(chime.clone(), replies, Some(store), Config::default());
    let event = || batch(&[("a", "A", None, 1)], false);
    assert_eq!(failed(&run(&sqs, event()).await), ["a"]);
    // The retry finds the completed record: the reply is retried, not the create.
    assert_eq!(failed(&run(&sqs, event()).await), ["a"]);
    assert_eq!(chime.names(), ["A"]);
}

#[tokio::test]
async fn fifo_groups_stop_at_their_first_failure() {
    let chime = Arc::new(FakeChime::default());
    let replies = Arc::new(FakeReplies::default());
    let config = Config {
        max_concurrency: 1,
        ..Config::default()
    };
    let sqs = sqs_adapter(chime.clone(), replies.clone(), None, config);
    chime.fail_next([unavailable()]);
    let event = batch(
        &[
            ("a1", "A1", Some("a"), 1),
            ("a2", "A2", Some("a"), 1),
            ("b1", "B1", Some("b"), 1),
            ("a3", "A3", Some("a"), 1),
        ],
        true,
    );
    let response = run(&sqs, event).await;
    assert_eq!(failed(&response), ["a1", "a2", "a3"]);
    assert_eq!(chime.names(), ["B1"]);
    let sent = replies.sent.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.fifo_group, "b");
}

#[tokio::test]
async fn a_chime_403_is_retried_and_failed_on_the_last_receive_never_rejected() {
    let chime = Arc::new(FakeChime::default());
    let replies = Arc::new(FakeReplies::default());
    let store = Arc::new(FakeStore::default());
    let sqs = sqs_adapter(
        chime.clone(),
        replies.clone(),
        Some(store),
        Config::default(),
    );
    let forbidden = || OnboardError::Chime {
        kind: ChimeErrorKind::Forbidden,
        message: "no".into(),
    };
    chime.fail_next([forbidden(), forbidden()]);
    let first = run(&sqs, batch(&[("a", "A", None, 1)], false)).await;
    assert_eq!(failed(&first), ["a"]);
    assert!(
        replies.statuses().is_empty(),
        "no reply before the last receive"
    );
    let last = run(&sqs, batch(&[("a", "A", None, 5)], false)).await;
    assert_eq!(failed(&last), ["a"]);
    assert_eq!(replies.statuses(), [("a".to_owned(), "Failed")]);
    assert!(chime.names().is_empty());
}

#[tokio::test]
async fn a_fifo_group_failing_on_its_last_receive_answers_every_message_failed() {
    let chime = Arc::new(FakeChime::default());
    let replies = Arc::new(FakeReplies::default());
    let sqs = sqs_adapter(chime.clone(), replies.clone(), None, Config::default());
    chime.fail_next([unavailable()]);
    let event = batch(
        &[
            ("a1", "A1", Some("a"), 5),
            ("a2", "A2", Some("a"), 5),
            ("a3", "A3", Some("a"), 4),
        ],
        true,
    );
    let response = run(&sqs, event).await;
    assert_eq!(failed(&response), ["a1", "a2", "a3"]);
    let mut statuses = replies.statuses();
    statuses.sort();
    // a3 is not on its last receive: it comes back, unanswered.
    assert_eq!(
        statuses,
        [("a1".to_owned(), "Failed"), ("a2".to_owned(), "Failed")]
    );
    assert!(chime.names().is_empty());
}

#[tokio::test]
async fn a_live_holder_met_on_the_last_receive_answers_for_the_request() {
    let chime = Arc::new(FakeChime::default());
    let replies = Arc::new(FakeReplies::default());
    let store = Arc::new(FakeStore::default());
    let now = crate::idempotency::record::millis(SystemTime::now());
    let held = crate::idempotency::Record {
        key: IdempotencyKey::Sqs {
            request_id: "a".into(),
        }
        .render(),
        status: crate::idempotency::RecordStatus::InProgress,
        fingerprint: crate::idempotency::fingerprint(
            &crate::onboard::AccountName::parse("A").unwrap_or_else(|e| panic!("{e}")),
        ),
        expiration: now / 1000 + 3600,
        held_until: now + 60_000,
        holder: "other".into(),
        since: now,
        verify: false,
        settles_at: 0,
        account: None,
    };
    let _ = crate::idempotency::IdempotencyStore::insert(store.as_ref(), &held).await;
    let sqs = sqs_adapter(
        chime.clone(),
        replies.clone(),
        Some(store),
        Config::default(),
    );
    let response = run(&sqs, batch(&[("a", "A", None, 5)], false)).await;
    assert_eq!(failed(&response), ["a"]);
    assert!(
        replies.statuses().is_empty(),
        "no Failed beside the holder's answer"
    );
    assert!(chime.names().is_empty());
}
