//! The wire between an SQS event source mapping and the function, both ways: received
//! messages -> the Lambda SQS event (the `aws_lambda_events` types the function itself
//! deserialises), and the function's answer -> what happens to each message.
//!
//! The rules for the answer are Lambda's, from "Handling errors for an SQS event source"
//! (ReportBatchItemFailures enabled): success for an empty/`null` response or an empty
//! or `null` `batchItemFailures`; the whole batch fails for a response that is not JSON
//! (or not an object), for an `itemIdentifier` that is empty, `null`, missing, or not a
//! message of the batch; and for an invocation error, a crash or a timeout.

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::Message;
use serde_json::Value;
use std::collections::BTreeSet;

use crate::runtime::Invoked;

/// The Lambda event for a batch of received messages.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| record(m, queue_arn, region))
        .collect();
    event
}

fn record(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.md5_of_body = message.md5_of_body().map(str::to_owned);
    record.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
    record.attributes = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    record.message_attributes = message
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = value.string_value().map(str::to_owned);
            attribute.binary_value = value.binary_value().map(|b| base64_data(b.as_ref()));
            attribute.string_list_values = value.string_list_values().to_vec();
            attribute.binary_list_values = value
                .binary_list_values()
                .iter()
                .map(|b| base64_data(b.as_ref()))
                .collect();
            attribute.data_type = Some(value.data_type().to_owned());
            (name.clone(), attribute)
        })
        .collect();
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = Some(region.to_owned());
    record
}

/// `Base64Data` is `#[non_exhaustive]`: built from its default.
fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

/// What becomes of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delete every message except these message ids (empty: delete all).
    Keep(BTreeSet<String>),
    /// Delete nothing: the whole batch becomes visible again after the visibility timeout.
    ReturnAll(WholeBatch),
}

/// Why a whole batch returns to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WholeBatch {
    /// The environment's init failed (`init/error`, exit or init timeout).
    InitError,
    /// The function posted an invocation error.
    InvocationError,
    /// The process exited mid-invocation.
    Crashed,
    /// The process was killed by fault injection mid-invocation.
    Killed,
    /// No answer within the function timeout.
    TimedOut,
    /// The response is not a batch response (the reason).
    BadResponse(String),
}

impl WholeBatch {
    /// A short name for status lines.
    pub fn label(&self) -> &'static str {
        match self {
            WholeBatch::InitError => "init_error",
            WholeBatch::InvocationError => "invocation_error",
            WholeBatch::Crashed => "crash",
            WholeBatch::Killed => "kill",
            WholeBatch::TimedOut => "timeout",
            WholeBatch::BadResponse(_) => "bad_response",
        }
    }
}

/// Judges one invocation of a batch whose message ids are `batch`.
pub fn judge<'a>(invoked: &Invoked, batch: impl IntoIterator<Item = &'a str>) -> Verdict {
    match invoked {
        Invoked::Response { body, .. } => match failed_items(body, batch) {
            Ok(keep) => Verdict::Keep(keep),
            Err(reason) => Verdict::ReturnAll(WholeBatch::BadResponse(reason)),
        },
        Invoked::Error { .. } => Verdict::ReturnAll(WholeBatch::InvocationError),
        Invoked::Crashed(_) => Verdict::ReturnAll(WholeBatch::Crashed),
        Invoked::Killed => Verdict::ReturnAll(WholeBatch::Killed),
        Invoked::TimedOut => Verdict::ReturnAll(WholeBatch::TimedOut),
    }
}

/// The `itemIdentifier`s of a batch response, checked against the batch.
fn failed_items<'a>(
    body: &[u8],
    batch: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeSet<String>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BTreeSet::new());
    }
    let response: Value =
        serde_json::from_slice(body).map_err(|e| format!("response is not JSON: {e}"))?;
    let failures = match &response {
        Value::Null => return Ok(BTreeSet::new()),
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return Ok(BTreeSet::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err("batchItemFailures is not a list".into()),
        },
        _ => return Err("response is not a JSON object".into()),
    };
    let batch: BTreeSet<&str> = batch.into_iter().collect();
    let mut keep = BTreeSet::new();
    for item in failures {
        match item.get("itemIdentifier") {
            Some(Value::String(id)) if batch.contains(id.as_str()) => {
                keep.insert(id.clone());
            }
            Some(Value::String(id)) if id.is_empty() => {
                return Err("an itemIdentifier is empty".into());
            }
            Some(Value::String(_)) => {
                return Err("an itemIdentifier is not a message of the batch".into());
            }
            Some(Value::Null) | None => {
                return Err("a batch item failure has no itemIdentifier".into());
            }
            Some(_) => return Err("an itemIdentifier is not a string".into()),
        }
    }
    Ok(keep)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
    use bytes::Bytes;
    use std::time::Duration;

    fn response(body: &str) -> Invoked {
        Invoked::Response {
            body: Bytes::from(body.to_owned()),
            latency: Duration::ZERO,
        }
    }

    const BATCH: [&str; 2] = ["m-1", "m-2"];

    fn keep(ids: &[&str]) -> Verdict {
        Verdict::Keep(ids.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn empty_and_null_answers_delete_the_whole_batch() {
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(judge(&response(body), BATCH), keep(&[]), "{body}");
        }
    }

    #[test]
    fn listed_items_stay_and_the_rest_are_deleted() {
        let body = r#"{"batchItemFailures": [{"itemIdentifier": "m-2"}]}"#;
        assert_eq!(judge(&response(body), BATCH), keep(&["m-2"]));
    }

    #[test]
    fn a_malformed_answer_returns_the_whole_batch() {
        for body in [
            "not json",
            "[]",
            r#""ok""#,
            r#"{"batchItemFailures": {}}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"id": "m-1"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "m-3"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": 1}]}"#,
        ] {
            let verdict = judge(&response(body), BATCH);
            assert!(
                matches!(verdict, Verdict::ReturnAll(WholeBatch::BadResponse(_))),
                "{body}: {verdict:?}"
            );
        }
    }

    #[test]
    fn errors_crashes_kills_and_timeouts_return_the_whole_batch() {
        let error = Invoked::Error {
            body: Bytes::from_static(b"{}"),
            latency: Duration::ZERO,
        };
        let cases = [
            (error, WholeBatch::InvocationError),
            (Invoked::Crashed(Default::default()), WholeBatch::Crashed),
            (Invoked::Killed, WholeBatch::Killed),
            (Invoked::TimedOut, WholeBatch::TimedOut),
        ];
        for (invoked, reason) in cases {
            assert_eq!(judge(&invoked, BATCH), Verdict::ReturnAll(reason));
        }
    }

    #[test]
    fn records_carry_the_attributes_the_function_reads() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body(r#"{"Name":"Acme"}"#)
            .md5_of_body("md5")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .attributes(MessageSystemAttributeName::MessageGroupId, "g-1")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .message_attributes(
                "ReplyTo",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("http://q")
                    .build()
                    .expect("attribute"),
            )
            .build();
        let arn = "arn:aws:sqs:us-east-1:123456789012:requests.fifo";
        let event = serde_json::to_value(sqs_event(&[message], arn, "us-east-1")).expect("json");
        let record = &event["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["receiptHandle"], "rh");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], arn);
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "3");
        assert_eq!(record["attributes"]["MessageGroupId"], "g-1");
        assert_eq!(record["attributes"]["SentTimestamp"], "1700000000000");
        assert_eq!(
            record["messageAttributes"]["ReplyTo"]["stringValue"],
            "http://q"
        );
        assert_eq!(record["messageAttributes"]["ReplyTo"]["dataType"], "String");
    }
}
