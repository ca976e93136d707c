//! Classifies one invocation payload: an SQS batch, or an HTTP request in one
//! of the four shapes Lambda receives (API Gateway REST v1, HTTP API v2, ALB,
//! Function URL).
//!
//! The checks run in a stated order on marker fields, so a payload is never
//! mistaken for another shape because serde defaults let it deserialize:
//! 1. `Records[*].eventSource == "aws:sqs"` → SQS;
//! 2. `requestContext.elb` → ALB;
//! 3. `version == "2.0"` with `requestContext.http` → HTTP API v2, or a
//!    Function URL when `requestContext.domainName` is a `lambda-url` host
//!    (both take the v2 response);
//! 4. `httpMethod` → API Gateway REST v1 (also HTTP API's 1.0 payload).
//!
//! Anything else is an [`UnknownEvent`]. HTTP requests are kept as
//! `lambda_http`'s `LambdaRequest` so the response takes the request's shape.

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::sqs::SqsEvent;
use lambda_http::request::LambdaRequest;
use serde_json::Value;

/// Where an HTTP request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpShape {
    ApiGatewayV1,
    ApiGatewayV2,
    Alb,
    FunctionUrl,
}

/// A classified payload.
#[derive(Debug)]
pub enum Invocation {
    Sqs(SqsEvent),
    /// Boxed: an HTTP event is a large struct, an SQS batch a vector.
    Http(Box<HttpEvent>),
}

/// An HTTP request event and the shape it arrived in.
#[derive(Debug)]
pub struct HttpEvent {
    pub shape: HttpShape,
    pub request: LambdaRequest,
    /// Why the event's URL or body could not be read, if so. The offending
    /// fields have been neutralised, and the request must be answered `400`.
    pub malformed: Option<&'static str>,
}

/// The payload is none of the supported events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported event: {reason}; this function expects an SQS batch or an HTTP request from API Gateway (REST or HTTP API), an ALB or a Function URL")]
pub struct UnknownEvent {
    pub reason: String,
}

fn unknown(reason: impl Into<String>) -> UnknownEvent {
    UnknownEvent {
        reason: reason.into(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: Value, shape: &str) -> Result<T, UnknownEvent> {
    serde_json::from_value(payload).map_err(|e| unknown(format!("malformed {shape} event: {e}")))
}

/// Classifies `payload`; see the module docs for the order.
pub fn classify(payload: Value) -> Result<Invocation, UnknownEvent> {
    let Some(object) = payload.as_object() else {
        return Err(unknown("the payload is not a JSON object"));
    };
    if let Some(records) = object.get("Records") {
        let records = records
            .as_array()
            .ok_or_else(|| unknown("Records is not an array"))?;
        if records.is_empty() {
            return Err(unknown("Records is empty"));
        }
        if let Some(other) = records
            .iter()
            .map(|r| {
                r.get("eventSource")
                    .or_else(|| r.get("EventSource"))
                    .and_then(Value::as_str)
                    .unwrap_or("none")
            })
            .find(|source| *source != "aws:sqs")
        {
            return Err(unknown(format!("records from event source {other:?}")));
        }
        return parse(payload, "SQS").map(Invocation::Sqs);
    }

    let context = object.get("requestContext");
    let http = |shape, mut request| {
        let malformed = neutralise(&mut request);
        Ok(Invocation::Http(Box::new(HttpEvent {
            shape,
            request,
            malformed,
        })))
    };
    if context.and_then(|c| c.get("elb")).is_some() {
        return http(
            HttpShape::Alb,
            LambdaRequest::Alb(parse::<AlbTargetGroupRequest>(payload, "ALB")?),
        );
    }
    if object.get("version").and_then(Value::as_str) == Some("2.0")
        && context.and_then(|c| c.get("http")).is_some()
    {
        let shape = match context
            .and_then(|c| c.get("domainName"))
            .and_then(Value::as_str)
        {
            Some(domain) if domain.contains(".lambda-url.") => HttpShape::FunctionUrl,
            _ => HttpShape::ApiGatewayV2,
        };
        let request = parse::<ApiGatewayV2httpRequest>(payload, "HTTP API v2")?;
        return http(shape, LambdaRequest::ApiGatewayV2(request));
    }
    if object.get("httpMethod").and_then(Value::as_str).is_some() {
        let request = parse::<ApiGatewayProxyRequest>(payload, "API Gateway REST")?;
        return http(
            HttpShape::ApiGatewayV1,
            LambdaRequest::ApiGatewayV1(request),
        );
    }
    Err(unknown(
        "no Records, requestContext.elb, version 2.0 requestContext.http or httpMethod",
    ))
}

/// `lambda_http` builds the request URI from the Host header (or the domain
/// name), `x-forwarded-proto`, the stage and the path, and decodes base64
/// bodies, panicking when any of them is malformed. API Gateway, ALB and
/// Function URLs never send such events, but a direct invoke can; so the same
/// construction is checked here first, and a malformed event is reduced to a
/// harmless one (no host, path `/`, no query, no body) and flagged.
fn neutralise(request: &mut LambdaRequest) -> Option<&'static str> {
    use lambda_http::http::header::HOST;
    let reason = match request {
        LambdaRequest::ApiGatewayV1(r) => check(
            &r.headers,
            r.request_context.domain_name.as_deref(),
            &with_stage(r.request_context.stage.as_deref(), r.path.as_deref()),
            None,
            (r.body.as_deref(), r.is_base64_encoded),
        ),
        LambdaRequest::ApiGatewayV2(r) => check(
            &r.headers,
            r.request_context.domain_name.as_deref(),
            &with_stage(r.request_context.stage.as_deref(), r.raw_path.as_deref()),
            r.raw_query_string.as_deref(),
            (r.body.as_deref(), r.is_base64_encoded),
        ),
        LambdaRequest::Alb(r) => check(
            &r.headers,
            None,
            r.path.as_deref().unwrap_or_default(),
            None,
            (r.body.as_deref(), r.is_base64_encoded),
        ),
        _ => None,
    };
    if reason.is_some() {
        let root = Some("/".to_owned());
        match request {
            LambdaRequest::ApiGatewayV1(r) => {
                (r.path, r.body, r.request_context.domain_name) = (root, None, None);
                r.headers.remove(HOST);
            }
            LambdaRequest::ApiGatewayV2(r) => {
                (r.raw_path, r.body, r.request_context.domain_name) = (root, None, None);
                r.raw_query_string = None;
                r.headers.remove(HOST);
            }
            LambdaRequest::Alb(r) => {
                (r.path, r.body) = (root, None);
                r.headers.remove(HOST);
            }
            _ => {}
        }
    }
    reason
}

fn with_stage(stage: Option<&str>, path: Option<&str>) -> String {
    let path = path.unwrap_or_default();
    match stage {
        Some(stage) if stage != "$default" && !path.starts_with(&format!("/{stage}/")) => {
            format!("/{stage}{path}")
        }
        _ => path.to_owned(),
    }
}

/// Replays `lambda_http`'s URI construction; the host is the Host header, else
/// `domain_name`.
fn check(
    headers: &lambda_http::http::HeaderMap,
    domain_name: Option<&str>,
    path: &str,
    raw_query: Option<&str>,
    (body, base64): (Option<&str>, bool),
) -> Option<&'static str> {
    use base64::Engine;
    let host = headers
        .get(lambda_http::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(domain_name);
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|s| s.to_str().ok())
        .unwrap_or("https");
    let url = match host {
        None => format!("http://localhost{path}"),
        Some(host) => format!("{scheme}://{host}{path}"),
    };
    let Ok(url) = url::Url::parse(&url) else {
        return Some("the request's host, scheme or path is not a valid URL");
    };
    let mut uri = if host.is_some() {
        url.to_string()
    } else {
        url.path().to_owned()
    };
    if let Some(query) = raw_query.filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(query);
    }
    if uri.parse::<lambda_http::http::Uri>().is_err() {
        return Some("the request's URL is not a valid URI");
    }
    let bad_base64 = base64
        && body.is_some_and(|b| base64::engine::general_purpose::STANDARD.decode(b).is_err());
    bad_base64.then_some("the body is marked base64-encoded but is not valid base64")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(json: &str) -> Result<Option<HttpShape>, UnknownEvent> {
        let value: Value = serde_json::from_str(json).map_err(|e| unknown(e.to_string()))?;
        classify(value).map(|i| match i {
            Invocation::Sqs(_) => None,
            Invocation::Http(h) => Some(h.shape),
        })
    }

    #[test]
    fn each_sample_event_is_classified() {
        let cases = [
            (
                include_str!("../events/apigw-v1-post-accounts.json"),
                Some(HttpShape::ApiGatewayV1),
            ),
            (
                include_str!("../events/apigw-v2-post-accounts.json"),
                Some(HttpShape::ApiGatewayV2),
            ),
            (
                include_str!("../events/apigw-v2-post-accounts-bad-name.json"),
                Some(HttpShape::ApiGatewayV2),
            ),
            (
                include_str!("../events/apigw-v2-get-form.json"),
                Some(HttpShape::ApiGatewayV2),
            ),
            (
                include_str!("../events/alb-post-accounts.json"),
                Some(HttpShape::Alb),
            ),
            (
                include_str!("../events/function-url-post-accounts.json"),
                Some(HttpShape::FunctionUrl),
            ),
            (include_str!("../events/sqs-standard-batch.json"), None),
            (
                include_str!("../events/sqs-standard-batch-bad-input.json"),
                None,
            ),
            (include_str!("../events/sqs-fifo-batch.json"), None),
        ];
        for (json, expected) in cases {
            assert_eq!(shape_of(json), Ok(expected));
        }
    }

    #[test]
    fn other_payloads_are_refused_with_a_reason() {
        let s3 = include_str!("../events/unsupported-s3-put.json");
        let err = shape_of(s3)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("aws:s3"), "{err}");
        for json in [
            "{}",
            "[]",
            "null",
            r#"{"Records": []}"#,
            r#"{"Records": 1}"#,
        ] {
            assert!(shape_of(json).is_err(), "{json}");
        }
        // A v2-looking payload with a malformed member is refused, not guessed.
        let err = shape_of(r#"{"version":"2.0","requestContext":{"http":7}}"#).err();
        assert!(err.is_some_and(|e| e.reason.contains("HTTP API v2")));
    }
}
