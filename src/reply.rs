//! The reply port: the reply message of the SQS contract, the trait that sends
//! it, and its `aws-sdk-sqs` implementation.
//!
//! This file owns the reply wire format (DESIGN.md, "SQS contract"): body,
//! message attributes `Status` and `CorrelationId`, and the FIFO group and
//! deduplication ids.

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde::Serialize;

use crate::onboard::{Account, OnboardError};

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// The account exists.
    Created,
    /// The request can never succeed as sent; it was not retried.
    Rejected,
    /// The request kept failing transiently and was given up (it goes on to the DLQ).
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Rejected => "Rejected",
            Self::Failed => "Failed",
        }
    }
}

/// The `Error` member of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyError {
    #[serde(rename = "Code")]
    pub code: String,
    #[serde(rename = "Message")]
    pub message: String,
}

impl From<&OnboardError> for ReplyError {
    fn from(err: &OnboardError) -> Self {
        Self {
            code: err.code().to_owned(),
            message: err.to_string(),
        }
    }
}

/// The reply message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Reply {
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
    pub source_message_id: String,
}

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
    let digest = ring::digest::digest(&ring::digest::SHA256, reply.request_id.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}:{}", reply.status.as_str())
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
                    ("Status", Some(reply.status.as_str())),
                    ("CorrelationId", reply.correlation_id.as_deref()),
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

    #[test]
    fn reply_body_uses_the_contract_names_and_omits_absent_members() {
        let reply = Reply {
            request_id: "r-1".into(),
            correlation_id: None,
            status: Status::Rejected,
            account_id: None,
            account: None,
            error: Some(ReplyError::from(&OnboardError::NameEmpty)),
            source_message_id: "m-1".into(),
        };
        let json = serde_json::to_value(&reply).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "RequestId": "r-1",
                "Status": "Rejected",
                "Error": {"Code": "NameEmpty", "Message": "\"Name\" is empty after trimming whitespace"},
                "SourceMessageId": "m-1"
            })
        );
    }
}
