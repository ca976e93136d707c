//! The reply port: the reply message of the SQS contract, the trait that sends
//! it, and its `aws-sdk-sqs` implementation.
//!
//! The reply document and the attribute names are `wire.rs`'s; this file owns
//! how a reply is put on a queue (DESIGN.md, "SQS contract"): its message
//! attributes `Status` and `CorrelationId`, and the FIFO group and
//! deduplication ids.

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;

/// The message this port sends: the wire's reply document.
pub use crate::wire::Reply;
use crate::wire::{self, sha256_hex};

/// Where a reply goes and, for a FIFO queue, in which group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub queue_url: String,
    /// `MessageGroupId` when the queue is FIFO: the source message's group, or the request id.
    pub fifo_group: String,
}

impl Destination {
    /// Whether the queue is FIFO (its name ends in `.fifo`).
    pub fn is_fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }
}

/// A reply could not be sent; the request will be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sending the reply to {queue_url} failed: {reason}")]
pub struct ReplyFailed {
    pub queue_url: String,
    pub reason: String,
}

/// Sends replies.
#[async_trait]
pub trait ReplySender: Send + Sync {
    async fn send_reply(&self, to: &Destination, reply: &Reply) -> Result<(), ReplyFailed>;
}

/// The SQS client, built on the first reply: an HTTP invocation never needs
/// it, and building a client costs init time (its runtime plugins and
/// endpoint rules, measured in BENCHMARKS.md).
#[derive(Debug)]
pub struct SqsOnFirstUse {
    config: aws_sdk_sqs::Config,
    client: std::sync::OnceLock<aws_sdk_sqs::Client>,
}

impl SqsOnFirstUse {
    pub fn new(config: aws_sdk_sqs::Config) -> Self {
        Self {
            config,
            client: std::sync::OnceLock::new(),
        }
    }
}

#[async_trait]
impl ReplySender for SqsOnFirstUse {
    async fn send_reply(&self, to: &Destination, reply: &Reply) -> Result<(), ReplyFailed> {
        let client = self
            .client
            .get_or_init(|| aws_sdk_sqs::Client::from_conf(self.config.clone()));
        client.send_reply(to, reply).await
    }
}

/// The longest `MessageDeduplicationId` SQS accepts.
const MAX_DEDUPLICATION_ID: usize = 128;

/// A FIFO reply's `MessageDeduplicationId`: `RequestId:Status`, so the same
/// reply sent twice (a redelivery) is dropped but a `Created` after an earlier
/// `Failed` is not. A `RequestId` too long for that gets its SHA-256 instead.
pub fn deduplication_id(reply: &Reply) -> String {
    let id = format!("{}:{}", reply.request_id, reply.status.as_str());
    if id.len() <= MAX_DEDUPLICATION_ID {
        return id;
    }
    format!(
        "{}:{}",
        sha256_hex(reply.request_id.as_bytes()),
        reply.status.as_str()
    )
}

fn string_attribute(value: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

#[async_trait]
impl ReplySender for aws_sdk_sqs::Client {
    async fn send_reply(&self, to: &Destination, reply: &Reply) -> Result<(), ReplyFailed> {
        let failed = |reason: String| ReplyFailed {
            queue_url: to.queue_url.clone(),
            reason,
        };
        let body = serde_json::to_string(reply).map_err(|e| failed(e.to_string()))?;
        let mut request = self
            .send_message()
            .queue_url(&to.queue_url)
            .message_body(body)
            .set_message_attributes(Some(
                [
                    (wire::STATUS, Some(reply.status.as_str())),
                    (wire::CORRELATION_ID, reply.correlation_id.as_deref()),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), string_attribute(value?)?)))
                .collect(),
            ));
        if to.is_fifo() {
            request = request
                .message_group_id(&to.fifo_group)
                .message_deduplication_id(deduplication_id(reply));
        }
        request.send().await.map_err(|e| {
            failed(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Status;

    #[test]
    fn fifo_deduplication_ids_tell_statuses_apart_and_fit_sqs() {
        let mut reply = Reply {
            request_id: "r-1".into(),
            correlation_id: None,
            status: Status::Failed,
            account_id: None,
            account: None,
            error: None,
            source_message_id: "m-1".into(),
        };
        assert_eq!(deduplication_id(&reply), "r-1:Failed");
        reply.status = Status::Created;
        assert_eq!(deduplication_id(&reply), "r-1:Created");
        reply.request_id = "x".repeat(128);
        let long = deduplication_id(&reply);
        assert_eq!(long.len(), 64 + ":Created".len());
        assert!(long.ends_with(":Created"));
    }
}
