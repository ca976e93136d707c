//! The SQS wire contract, written once (DESIGN.md, "SQS contract"): the request
//! document, the reply document and the message attribute names, each with both
//! serde directions. The function reads requests and writes replies with these
//! types (`sqs.rs`, `http.rs` for its JSON body, `reply.rs`); onboard-bulk writes requests and
//! reads replies with the same ones, so the two cannot drift apart.
//!
//! Only shapes and names live here. Validation (the name rule, the `RequestId`
//! rule) belongs to the domain (`onboard.rs`); sending to a queue, to the ports.
//! Wire names stay in serde attributes.
//!
//! [`sha256_hex`] is the workspace's one SHA-256 (ring), for ids derived from
//! wire values: FIFO deduplication ids here, onboard-bulk's `RequestId`s there.

use serde::{Deserialize, Serialize};

use serde_json::Value;

use crate::onboard::{validate_request_id, Account, AccountName, OnboardError, OnboardRequest};

/// Message attribute (String) of a request: the queue URL the reply goes to.
pub const REPLY_TO: &str = "ReplyTo";
/// Message attribute (String) of a request, echoed on its reply.
pub const CORRELATION_ID: &str = "CorrelationId";
/// Message attribute (String) of a reply: its [`Status`].
pub const STATUS: &str = "Status";

/// The request document `{"Name": ..., "RequestId": ...}`.
///
/// `V` is what a member holds: `String` for a sender (onboard-bulk), or
/// `serde_json::Value` for the function, which reads the document leniently and
/// then says which member is wrong (`NameNotString`, `RequestIdInvalid`).
/// A member that is absent or `null` reads as `None`; unknown members are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<V = String> {
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<V>,
    #[serde(rename = "RequestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<V>,
}

/// The request document, parsed but with its name not yet validated, so a
/// caller can still learn the `RequestId` of a request whose name is bad.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestDocument {
    name: Option<Value>,
    /// The caller's id for this request, if it sent a valid one.
    pub request_id: Option<String>,
}

impl RequestDocument {
    /// Parses and validates the JSON request document `{"Name": "...", "RequestId": "..."}`
    /// (the SQS message body, and the HTTP JSON body). Unknown members are ignored.
    pub fn read(body: &[u8]) -> Result<OnboardRequest, OnboardError> {
        Self::parse(body)?.validate()
    }

    /// Parses `{"Name": ..., "RequestId": ...}`: a JSON object with a valid
    /// `RequestId` if any. The name is checked by [`RequestDocument::validate`].
    pub fn parse(body: &[u8]) -> Result<Self, OnboardError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| OnboardError::BodyNotJson {
            reason: e.to_string(),
        })?;
        if !value.is_object() {
            return Err(OnboardError::BodyNotObject);
        }
        let document: Request<Value> =
            serde_json::from_value(value).map_err(|_| OnboardError::BodyNotObject)?;
        let request_id = match document.request_id {
            None => None,
            Some(Value::String(id)) => Some(validate_request_id(id)?),
            Some(_) => return Err(OnboardError::RequestIdInvalid),
        };
        Ok(Self {
            name: document.name,
            request_id,
        })
    }

    /// Applies the name rule.
    pub fn validate(self) -> Result<OnboardRequest, OnboardError> {
        let name = match self.name {
            None | Some(Value::Null) => return Err(OnboardError::NameMissing),
            Some(Value::String(name)) => AccountName::parse(&name)?,
            Some(_) => return Err(OnboardError::NameNotString),
        };
        Ok(OnboardRequest {
            name,
            request_id: self.request_id,
        })
    }
}

/// What happened to one request (a reply's `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The account exists.
    Created,
    /// The request can never succeed as sent; it was not retried.
    Rejected,
    /// The request kept failing transiently and was given up (it goes on to the DLQ).
    Failed,
}

impl Status {
    /// The wire name, as in the body and the `Status` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Rejected => "Rejected",
            Self::Failed => "Failed",
        }
    }
}

/// The `Error` member of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    #[serde(rename = "Code")]
    pub code: String,
    #[serde(rename = "Message", default)]
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

/// The reply document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(rename = "RequestId")]
    pub request_id: String,
    #[serde(
        rename = "CorrelationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<String>,
    #[serde(rename = "Status")]
    pub status: Status,
    #[serde(rename = "AccountId", default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(rename = "Account", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    #[serde(rename = "Error", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
    #[serde(rename = "SourceMessageId", default)]
    pub source_message_id: String,
}

/// SHA-256 of `bytes` as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_request_round_trips_and_absent_members_are_omitted() {
        let request = Request {
            name: Some("Acme".to_owned()),
            request_id: Some("r-1".to_owned()),
        };
        let text = serde_json::to_string(&request).unwrap_or_default();
        assert_eq!(text, r#"{"Name":"Acme","RequestId":"r-1"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).ok(), Some(request));
        let bare: Request = Request {
            name: Some("Acme".to_owned()),
            request_id: None,
        };
        assert_eq!(
            serde_json::to_string(&bare).unwrap_or_default(),
            r#"{"Name":"Acme"}"#
        );
    }

    #[test]
    fn a_lenient_request_keeps_members_of_any_type_and_reads_null_as_absent() {
        let parsed: Option<Request<Value>> =
            serde_json::from_value(json!({"Name": 7, "RequestId": null, "x": 1})).ok();
        assert_eq!(
            parsed,
            Some(Request {
                name: Some(json!(7)),
                request_id: None
            })
        );
    }

    #[test]
    fn a_reply_round_trips_with_the_contract_names() {
        let reply = Reply {
            request_id: "r-1".into(),
            correlation_id: Some("run-1".into()),
            status: Status::Rejected,
            account_id: None,
            account: None,
            error: Some(ReplyError::from(&OnboardError::NameEmpty)),
            source_message_id: "m-1".into(),
        };
        let value = serde_json::to_value(&reply).unwrap_or_default();
        assert_eq!(
            value,
            json!({
                "RequestId": "r-1",
                "CorrelationId": "run-1",
                "Status": "Rejected",
                "Error": {"Code": "NameEmpty", "Message": "\"Name\" is empty after trimming whitespace"},
                "SourceMessageId": "m-1"
            })
        );
        assert_eq!(serde_json::from_value::<Reply>(value).ok(), Some(reply));
        // The attribute names are the body's member names.
        for name in [CORRELATION_ID, STATUS] {
            assert!(serde_json::to_value(Reply {
                correlation_id: Some("c".into()),
                ..sample()
            })
            .unwrap_or_default()
            .get(name)
            .is_some());
        }
        assert!(
            serde_json::from_value::<Reply>(json!({"RequestId": "r", "Status": "Maybe"})).is_err()
        );
    }

    fn sample() -> Reply {
        Reply {
            request_id: "r".into(),
            correlation_id: None,
            status: Status::Created,
            account_id: Some("a".into()),
            account: None,
            error: None,
            source_message_id: "m".into(),
        }
    }

    #[test]
    fn sha256_hex_is_the_standard_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Status::Failed.as_str(), "Failed");
    }
}
