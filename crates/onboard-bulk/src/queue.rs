//! The SQS port: the few calls `submit` and `collect` make, as two small traits, and
//! their `aws-sdk-sqs` implementation ([`SqsQueues`]), plus creating and deleting a run's
//! own reply queue. Unit tests use in-memory fakes.
//!
//! The SDK client uses the function's HTTPS client (`chime_onboard::tls`: rustls on ring,
//! the Amazon roots, or the platform store when `SSL_CERT_FILE`/`SSL_CERT_DIR` is set).

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use chime_onboard::tls;

use crate::state::AwsSettings;
use chime_onboard::wire::{CORRELATION_ID, REPLY_TO};

/// One message to send: `id` is unique within its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: String,
    pub body: String,
    /// For a FIFO queue: the `MessageGroupId`, also the `MessageDeduplicationId`
    /// (the row's `RequestId`, see `request`).
    pub group: Option<String>,
}

/// An entry of a batch that SQS did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    /// SQS blames the request itself: sending it again cannot help.
    pub sender_fault: bool,
    pub reason: String,
}

/// A message received from the reply queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub receipt_handle: String,
    pub body: String,
    /// The `CorrelationId` message attribute, if any.
    pub correlation_id: Option<String>,
}

/// A whole call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueueError(pub String);

/// Sends request messages.
#[async_trait]
pub trait RequestQueue: Send + Sync {
    /// Sends up to ten messages in one call; returns the entries that failed.
    async fn send_batch(&self, entries: &[Outgoing]) -> Result<Vec<FailedEntry>, QueueError>;
}

/// Reads the reply queue.
#[async_trait]
pub trait ReplyQueue: Send + Sync {
    /// Long polls for up to ten messages, hiding them for `visibility_secs`.
    async fn receive(
        &self,
        wait_secs: i32,
        visibility_secs: i32,
    ) -> Result<Vec<Incoming>, QueueError>;
    /// Deletes up to ten messages (once recorded).
    async fn delete(&self, receipt_handles: &[String]) -> Result<(), QueueError>;
}

/// Builds the SQS client from the run's AWS settings and the environment.
pub async fn client(aws: &AwsSettings) -> Result<Client, QueueError> {
    // The same choice as the function's Config: the platform store only when asked for.
    let roots = if std::env::var_os("SSL_CERT_FILE").is_some()
        || std::env::var_os("SSL_CERT_DIR").is_some()
    {
        tls::Roots::Platform
    } else {
        tls::Roots::Amazon
    };
    let http = tls::http_client(roots).map_err(|e| QueueError(e.to_string()))?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &aws.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(QueueError(
            "no AWS region: pass --region, or set AWS_REGION or a profile's region".into(),
        ));
    }
    Ok(Client::new(&sdk))
}

fn describe<E: std::error::Error>(e: E) -> QueueError {
    QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(describe)
}

/// How long a run's reply queue keeps replies: SQS's longest, so a run resumed within
/// the idempotency records' lifetime (14 days by default) still finds them.
const REPLY_RETENTION_SECS: &str = "1209600";

/// Creates a run's reply queue (again, on `resume`: `CreateQueue` with the same name and
/// attributes returns the existing queue). No redrive policy: a reply is never
/// dead-lettered, however long its run is left unfinished.
pub async fn create_reply_queue(client: &Client, name: &str) -> Result<String, QueueError> {
    client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            REPLY_RETENTION_SECS,
        )
        .send()
        .await
        .map_err(|e| QueueError(format!("creating the reply queue {name}: {}", describe(e))))?
        .queue_url
        .ok_or_else(|| QueueError(format!("creating the reply queue {name}: no URL returned")))
}

/// Deletes a run's reply queue once no row waits for a reply.
pub async fn delete_reply_queue(client: &Client, url: &str) -> Result<(), QueueError> {
    client
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| QueueError(format!("deleting the reply queue {url}: {}", describe(e))))
}

/// The run's two queues over `aws-sdk-sqs`.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    pub client: Client,
    pub queue_url: String,
    pub reply_queue_url: String,
    /// `CorrelationId` attribute of every request.
    pub run_id: String,
}

impl SqsQueues {
    /// Checks that both queues exist and can be reached, so a typo fails before any send.
    pub async fn check(&self) -> Result<(), QueueError> {
        for url in [&self.queue_url, &self.reply_queue_url] {
            self.client
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| QueueError(format!("queue {url}: {}", describe(e))))?;
        }
        Ok(())
    }
}

#[async_trait]
impl RequestQueue for SqsQueues {
    async fn send_batch(&self, entries: &[Outgoing]) -> Result<Vec<FailedEntry>, QueueError> {
        let reply_to = string_attribute(&self.reply_queue_url)?;
        let correlation = string_attribute(&self.run_id)?;
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for entry in entries {
            request = request.entries(
                SendMessageBatchRequestEntry::builder()
                    .id(&entry.id)
                    .message_body(&entry.body)
                    .message_attributes(REPLY_TO, reply_to.clone())
                    .message_attributes(CORRELATION_ID, correlation.clone())
                    .set_message_group_id(entry.group.clone())
                    .set_message_deduplication_id(entry.group.clone())
                    .build()
                    .map_err(describe)?,
            );
        }
        let output = request.send().await.map_err(describe)?;
        Ok(output
            .failed
            .into_iter()
            .map(|f| FailedEntry {
                id: f.id,
                sender_fault: f.sender_fault,
                reason: format!("{}: {}", f.code, f.message.unwrap_or_default()),
            })
            .collect())
    }
}

#[async_trait]
impl ReplyQueue for SqsQueues {
    async fn receive(
        &self,
        wait_secs: i32,
        visibility_secs: i32,
    ) -> Result<Vec<Incoming>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.reply_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .visibility_timeout(visibility_secs)
            .message_attribute_names(CORRELATION_ID)
            .send()
            .await
            .map_err(describe)?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let correlation_id = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(CORRELATION_ID))
                    .and_then(|v| v.string_value.clone());
                Some(Incoming {
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    correlation_id,
                })
            })
            .collect())
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        if receipt_handles.is_empty() {
            return Ok(());
        }
        let mut request = self
            .client
            .delete_message_batch()
            .queue_url(&self.reply_queue_url);
        for (i, handle) in receipt_handles.iter().enumerate() {
            request = request.entries(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(describe)?,
            );
        }
        let output = request.send().await.map_err(describe)?;
        match output.failed.first() {
            None => Ok(()),
            Some(f) => Err(QueueError(format!(
                "{} of {} deletes failed: {}",
                output.failed.len(),
                receipt_handles.len(),
                f.code
            ))),
        }
    }
}
