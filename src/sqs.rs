//! The SQS adapter: runs a batch of onboarding messages and reports partial
//! failures (DESIGN.md, "SQS contract" and "Exactly once").
//!
//! Per message, a pure decision ([`Outcome::decide`]: created, adopted,
//! rejected, retry or failed, each carrying its payload) is kept apart from its
//! delivery ([`deliver`]: the reply, and whether the message goes back to the
//! queue). Standard queues run up to `MAX_CONCURRENCY` messages at once; FIFO
//! queues run each message group in order and stop a group at its first
//! failure, reporting the group's later messages failed, unprocessed, as
//! Powertools' FIFO processor does; on their last receive those get a `Failed`
//! reply too (they reach the DLQ with the head). A message is not started when
//! the invocation has no time left for one Chime call and its reply
//! ([`Onboarding::budget`]); every later call checks the same deadline.
//! Accounts are created through the use case ([`Onboarding`]) and nothing
//! else; an error's class (the domain's table) decides between `Rejected` and
//! a retry. A message that meets a live holder of its RequestId on its last
//! receive sends no reply: the holder answers for the RequestId (so one
//! RequestId never gets `Failed` and then the holder's `Created`), and the
//! message goes to the DLQ, where a redrive replays the holder's outcome.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream::{self, StreamExt};
use lambda_runtime::Context;
use tracing::Instrument;

use crate::config::Config;
use crate::deadline::Deadline;
use crate::metrics::{self, Counted};
use crate::onboard::{Account, OnboardError, Onboarded};
use crate::onboarding::{IdempotencyKey, Onboarding};
use crate::reply::{Destination, ReplySender};
use crate::wire::{self, Reply, ReplyError, RequestDocument, Status};

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
            // A live holder will answer for the RequestId itself.
            Err(err @ OnboardError::IdempotencyInProgress) => Self::Retry(ReplyError::from(&err)),
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
                    let keep = if failed.is_empty() {
                        self.process(envelope, message, deadline).await
                    } else {
                        self.skip(envelope, message).await
                    };
                    if keep {
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

    /// A FIFO message behind a failed one of its group: not processed, kept
    /// (listed in `batchItemFailures`); on its last receive a `Failed` reply
    /// says so, as it goes on to the DLQ with the head.
    async fn skip(&self, envelope: &Envelope<'_>, message: &SqsMessage) -> bool {
        let route = self.route(envelope, message);
        let error = ReplyError {
            code: "PrecedingMessageFailed".to_owned(),
            message: "an earlier message of this FIFO group failed; this one was not processed"
                .to_owned(),
        };
        let outcome = Outcome::from_error(error, true, route.last_attempt);
        tracing::info!(request_id = %route.request_id, outcome = outcome.label(), receive_count = envelope.receive_count, "message skipped behind its group's failure");
        metrics::count(outcome.counted());
        self.deliver(
            envelope,
            &route.request_id,
            route.destination.as_ref(),
            outcome,
        )
        .await
    }

    /// Who the message's reply names and where it goes.
    fn route(&self, envelope: &Envelope<'_>, message: &SqsMessage) -> Route {
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
        Route {
            document,
            request_id,
            last_attempt,
            destination,
            refused_reply_to,
        }
    }

    async fn process_message(
        &self,
        envelope: &Envelope<'_>,
        message: &SqsMessage,
        deadline: Deadline,
    ) -> bool {
        let Route {
            document,
            request_id,
            last_attempt,
            destination,
            refused_reply_to,
        } = self.route(envelope, message);

        let outcome = if refused_reply_to {
            Outcome::Rejected(ReplyError {
                code: "ReplyToNotAllowed".to_owned(),
                message: "the ReplyTo queue is not in ALLOWED_REPLY_QUEUES".to_owned(),
            })
        } else {
            match document.and_then(RequestDocument::validate) {
                Err(err) => Outcome::decide(Err(err), last_attempt),
                Ok(_) if !self.onboarding.budget(deadline).allows_call() => {
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

/// One message's reply routing, read before anything else happens.
struct Route {
    document: Result<RequestDocument, OnboardError>,
    request_id: String,
    last_attempt: bool,
    destination: Option<Destination>,
    refused_reply_to: bool,
}

#[cfg(test)]
#[path = "sqs_tests.rs"]
mod tests;
