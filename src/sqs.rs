//! The SQS adapter: runs a batch of onboarding messages and reports partial
//! failures (DESIGN.md, "SQS contract" and "Exactly once").
//!
//! Per message, a pure decision ([`Outcome::decide`]: created, adopted,
//! rejected, retry or failed, each carrying its payload) is kept apart from its
//! delivery ([`deliver`]: the reply, and whether the message goes back to the
//! queue). Standard queues run up to `MAX_CONCURRENCY` messages at once; FIFO
//! queues run each message group in order and stop a group at its first
//! failure, reporting the group's later messages failed, unprocessed, as
//! Powertools' FIFO processor does. A message is not started when the
//! invocation has no time left to finish it ([`has_time`]). Accounts are
//! created through the use case ([`Onboarding`]) and nothing else; an error's
//! class (the domain's table) decides between `Rejected` and a retry.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream::{self, StreamExt};
use lambda_runtime::Context;
use tracing::Instrument;

use crate::config::Config;
use crate::deadline::Deadline;
use crate::metrics::{self, Counted};
use crate::onboard::{Account, OnboardError, Onboarded, RequestDocument};
use crate::onboarding::{IdempotencyKey, Onboarding};
use crate::reply::{Destination, ReplySender};
use crate::wire::{self, Reply, ReplyError, Status};

/// An SQS batch that cannot be processed at all: Lambda returns it whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed SQS batch: {reason}")]
pub struct MalformedBatch {
    pub reason: String,
}

/// What should become of one message: decided without side effects.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// This delivery created the account (or repeated a completed request).
    Created(Account),
    /// An earlier, ambiguous attempt had created it; verification found it.
    Adopted(Account),
    /// The request can never succeed as sent.
    Rejected(ReplyError),
    /// A transient failure: SQS delivers the message again; no reply yet.
    Retry(ReplyError),
    /// A transient failure on the last delivery: a `Failed` reply, then the DLQ.
    Failed(ReplyError),
}

impl Outcome {
    /// Decides from the create result and whether this delivery is the last.
    pub fn decide(result: Result<Onboarded, OnboardError>, last_attempt: bool) -> Self {
        match result {
            Ok(Onboarded::Adopted(account)) => Self::Adopted(account),
            Ok(onboarded) => Self::Created(onboarded.into_account()),
            Err(err) => Self::from_error(
                ReplyError::from(&err),
                err.class().is_transient(),
                last_attempt,
            ),
        }
    }

    fn from_error(error: ReplyError, transient: bool, last_attempt: bool) -> Self {
        match (transient, last_attempt) {
            (false, _) => Self::Rejected(error),
            (true, false) => Self::Retry(error),
            (true, true) => Self::Failed(error),
        }
    }

    /// The reply this outcome sends, if any.
    fn reply_status(&self) -> Option<Status> {
        match self {
            Self::Created(_) | Self::Adopted(_) => Some(Status::Created),
            Self::Rejected(_) => Some(Status::Rejected),
            Self::Failed(_) => Some(Status::Failed),
            Self::Retry(_) => None,
        }
    }

    /// Whether SQS must keep the message (listed in `batchItemFailures`).
    fn keeps_message(&self) -> bool {
        matches!(self, Self::Retry(_) | Self::Failed(_))
    }

    fn counted(&self) -> Counted<'_> {
        match self {
            Self::Created(_) => Counted::Created,
            Self::Adopted(_) => Counted::Adopted,
            Self::Rejected(error) => Counted::Rejected(&error.code),
            Self::Retry(_) | Self::Failed(_) => Counted::Failed,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Created(_) => "Created",
            Self::Adopted(_) => "Adopted",
            Self::Rejected(_) => "Rejected",
            Self::Retry(_) => "Retry",
            Self::Failed(_) => "Failed",
        }
    }
}

/// One message's identity and routing, read from the SQS record.
struct Envelope<'a> {
    message_id: &'a str,
    receive_count: u32,
    group: Option<&'a str>,
    reply_to: Option<&'a str>,
    correlation_id: Option<&'a str>,
}

impl<'a> Envelope<'a> {
    fn of(message: &'a SqsMessage) -> Option<Self> {
        let message_id = message.message_id.as_deref().filter(|id| !id.is_empty())?;
        let attribute = |name: &str| {
            message
                .message_attributes
                .get(name)
                .and_then(|a| a.string_value.as_deref())
        };
        Some(Self {
            message_id,
            receive_count: message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            group: message.attributes.get("MessageGroupId").map(String::as_str),
            reply_to: attribute(wire::REPLY_TO),
            correlation_id: attribute(wire::CORRELATION_ID),
        })
    }
}

/// What the SQS adapter needs, built once at init.
pub struct SqsAdapter {
    onboarding: Onboarding,
    replies: Arc<dyn ReplySender>,
    /// Reply queues, `MAX_CONCURRENCY`, `MAX_RECEIVE_COUNT`, `CHIME_TIMEOUT_MS`.
    config: Config,
}

impl SqsAdapter {
    pub fn new(onboarding: Onboarding, replies: Arc<dyn ReplySender>, config: Config) -> Self {
        Self {
            onboarding,
            replies,
            config,
        }
    }

    /// Runs the batch and returns the messages to retry.
    pub async fn handle_batch(
        &self,
        event: SqsEvent,
        context: &Context,
    ) -> Result<SqsBatchResponse, MalformedBatch> {
        // Every record must be identifiable before any work starts: a failure
        // cannot be reported for a message without an id.
        let messages = event
            .records
            .iter()
            .map(|m| Envelope::of(m).map(|e| (e, m)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| MalformedBatch {
                reason: "an SQS record has no messageId".to_owned(),
            })?;
        let fifo = event.records.iter().any(|m| {
            m.event_source_arn
                .as_deref()
                .is_some_and(|a| a.ends_with(".fifo"))
        });
        let deadline = Deadline::from_context(context.deadline());

        let failed: Vec<&str> = if fifo {
            self.run_fifo(&messages, deadline).await
        } else {
            stream::iter(&messages)
                .map(|(envelope, message)| async move {
                    self.process(envelope, message, deadline)
                        .await
                        .then_some(envelope.message_id)
                })
                .buffer_unordered(self.config.max_concurrency)
                .filter_map(|id| async move { id })
                .collect()
                .await
        };

        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                failure
            })
            .collect();
        Ok(response)
    }

    /// FIFO: groups run concurrently, each group's messages in order; after a
    /// failure the rest of that group is reported failed without being processed.
    async fn run_fifo<'a>(
        &self,
        messages: &'a [(Envelope<'a>, &'a SqsMessage)],
        deadline: Deadline,
    ) -> Vec<&'a str> {
        type Group<'g, 'a> = (Option<&'a str>, Vec<&'g (Envelope<'a>, &'a SqsMessage)>);
        let mut groups: Vec<Group<'_, 'a>> = Vec::new();
        for item in messages {
            match groups.iter_mut().find(|(g, _)| *g == item.0.group) {
                Some((_, members)) => members.push(item),
                None => groups.push((item.0.group, vec![item])),
            }
        }
        stream::iter(groups)
            .map(|(_, members)| async move {
                let mut failed = Vec::new();
                for (envelope, message) in members {
                    if !failed.is_empty() || self.process(envelope, message, deadline).await {
                        failed.push(envelope.message_id);
                    }
                }
                failed
            })
            .buffer_unordered(self.config.max_concurrency)
            .flat_map(stream::iter)
            .collect()
            .await
    }

    /// Processes one message inside a span carrying its id; `true` when SQS must keep it.
    async fn process(
        &self,
        envelope: &Envelope<'_>,
        message: &SqsMessage,
        deadline: Deadline,
    ) -> bool {
        let span = tracing::info_span!("message", message_id = %envelope.message_id);
        self.process_message(envelope, message, deadline)
            .instrument(span)
            .await
    }

    async fn process_message(
        &self,
        envelope: &Envelope<'_>,
        message: &SqsMessage,
        deadline: Deadline,
    ) -> bool {
        let body = message.body.as_deref().unwrap_or_default().as_bytes();
        let document = RequestDocument::parse(body);
        // The reply names the caller's RequestId even when the name is bad.
        let request_id = document
            .as_ref()
            .ok()
            .and_then(|d| d.request_id.clone())
            .unwrap_or_else(|| envelope.message_id.to_owned());
        let last_attempt = envelope.receive_count >= self.config.max_receive_count;

        // A ReplyTo outside the allow-list is refused before anything is created;
        // the refusal goes to the default queue, never to the named one.
        let default_destination = self.config.reply_queue_url.as_deref();
        let (destination, refused_reply_to) = match envelope.reply_to {
            Some(url) if self.config.reply_queue_allowed(url) => (Some(url), false),
            Some(_) => (default_destination, true),
            None => (default_destination, false),
        };
        let destination = destination.map(|queue_url| Destination {
            queue_url: queue_url.to_owned(),
            fifo_group: envelope.group.unwrap_or(&request_id).to_owned(),
        });

        let outcome = if refused_reply_to {
            Outcome::Rejected(ReplyError {
                code: "ReplyToNotAllowed".to_owned(),
                message: "the ReplyTo queue is not in ALLOWED_REPLY_QUEUES".to_owned(),
            })
        } else {
            match document.and_then(RequestDocument::validate) {
                Err(err) => Outcome::decide(Err(err), last_attempt),
                Ok(_) if !has_time(deadline, self.config.chime_timeout) => {
                    Outcome::decide(Err(OnboardError::TimeBudgetExhausted), last_attempt)
                }
                Ok(request) => {
                    let key = IdempotencyKey::Sqs {
                        request_id: request_id.clone(),
                    };
                    Outcome::decide(
                        self.onboarding
                            .create(Some(key), &request.name, deadline)
                            .await,
                        last_attempt,
                    )
                }
            }
        };
        tracing::info!(request_id = %request_id, outcome = outcome.label(), receive_count = envelope.receive_count, "message processed");
        metrics::count(outcome.counted());
        self.deliver(envelope, &request_id, destination.as_ref(), outcome)
            .await
    }

    /// Sends the outcome's reply, if it has one; `true` when SQS must keep the
    /// message (a retry, a last failure, or a reply that could not be sent).
    async fn deliver(
        &self,
        envelope: &Envelope<'_>,
        request_id: &str,
        destination: Option<&Destination>,
        outcome: Outcome,
    ) -> bool {
        let keep = outcome.keeps_message();
        let Some(status) = outcome.reply_status() else {
            return keep;
        };
        let Some(destination) = destination else {
            tracing::warn!("no reply queue: set REPLY_QUEUE_URL or send an allowed ReplyTo");
            return keep;
        };
        let (account, error) = match outcome {
            Outcome::Created(account) | Outcome::Adopted(account) => (Some(account), None),
            Outcome::Rejected(error) | Outcome::Retry(error) | Outcome::Failed(error) => {
                (None, Some(error))
            }
        };
        let reply = Reply {
            request_id: request_id.to_owned(),
            correlation_id: envelope.correlation_id.map(str::to_owned),
            status,
            account_id: account.as_ref().map(|a| a.account_id.clone()),
            account,
            error,
            source_message_id: envelope.message_id.to_owned(),
        };
        match self.replies.send_reply(destination, &reply).await {
            Ok(()) => keep,
            Err(err) => {
                tracing::error!(error = %err, "reply not sent; the message will be retried");
                true
            }
        }
    }
}

/// What a message needs besides its Chime call: the table's writes and the
/// reply (milliseconds each when healthy; the rest is margin).
pub const REPLY_BUDGET: Duration = Duration::from_secs(1);

/// Whether the invocation can still finish one message: a Chime call plus
/// [`REPLY_BUDGET`] (always, without a deadline).
pub fn has_time(deadline: Deadline, chime_timeout: Duration) -> bool {
    deadline.allows(chime_timeout + REPLY_BUDGET)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use std::time::SystemTime;

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

    #[test]
    fn the_time_budget_covers_a_chime_call_and_the_reply() {
        let chime = Duration::from_secs(2);
        let now = SystemTime::now();
        let at = |t| Deadline::from_context(t);
        assert!(has_time(at(now + Duration::from_secs(30)), chime));
        assert!(has_time(at(now + Duration::from_millis(3_500)), chime));
        assert!(!has_time(at(now + Duration::from_millis(2_500)), chime));
        assert!(
            !has_time(at(now - Duration::from_secs(1)), chime),
            "past deadline"
        );
        assert!(
            has_time(at(SystemTime::UNIX_EPOCH), chime),
            "no deadline given"
        );
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
}
