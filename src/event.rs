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
//! Two families of API Gateway events look like requests but are not, and are
//! recognised before any of the above so they are never answered as HTTP:
//! authorizer payloads (`type` `TOKEN`/`REQUEST` with a `methodArn` or
//! `routeArn`: REST, HTTP API 1.0 and 2.0, WebSocket) and WebSocket route
//! events (`requestContext.connectionId`, or an `eventType` of `CONNECT`,
//! `DISCONNECT` or `MESSAGE`). They are refused as an [`UnsupportedEvent`] with
//! its own stable `errorType`, like anything else that is no supported event.
//! HTTP requests are kept as `lambda_http`'s `LambdaRequest` so the response
//! takes the request's shape.

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

/// Why a payload is refused: each kind has a stable `errorType` (the name
/// Lambda reports for the failed invocation), so an operator can alarm on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedEvent {
    /// An API Gateway authorizer payload: this function is not an authorizer.
    #[error("unsupported event: an API Gateway {variant} authorizer payload; this function is not a Lambda authorizer (configure it as the API's proxy integration and use a separate authorizer, or the API's JWT authorizer)")]
    Authorizer { variant: &'static str },
    /// An API Gateway WebSocket API event: this function speaks HTTP only.
    #[error("unsupported event: an API Gateway WebSocket {event_type} event; this function serves HTTP requests (REST or HTTP API), not WebSocket routes")]
    WebSocket { event_type: &'static str },
    /// Anything else that is not a supported event.
    #[error(transparent)]
    Unknown(#[from] UnknownEvent),
}

impl UnsupportedEvent {
    /// The stable `errorType` of the failed invocation.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Authorizer { .. } => "AuthorizerEventUnsupported",
            Self::WebSocket { .. } => "WebSocketEventUnsupported",
            Self::Unknown(_) => "UnknownEvent",
        }
    }
}

fn unknown(reason: impl Into<String>) -> UnknownEvent {
    UnknownEvent {
        reason: reason.into(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: Value, shape: &str) -> Result<T, UnknownEvent> {
    serde_json::from_value(payload).map_err(|e| unknown(format!("malformed {shape} event: {e}")))
}

/// Recognises the API Gateway events that are not requests: authorizer
/// payloads and WebSocket route events.
fn not_a_request(object: &serde_json::Map<String, Value>) -> Option<UnsupportedEvent> {
    let context = object.get("requestContext").and_then(Value::as_object);
    let websocket = context.is_some_and(|c| c.contains_key("connectionId"));
    let authorizer_type = object.get("type").and_then(Value::as_str);
    let arn = ["methodArn", "routeArn"]
        .iter()
        .any(|k| object.get(*k).is_some_and(Value::is_string));
    if let (Some(kind @ ("TOKEN" | "REQUEST")), true) = (authorizer_type, arn) {
        let variant = match (kind, object.get("version").and_then(Value::as_str)) {
            ("TOKEN", _) => "REST API TOKEN",
            _ if websocket => "WebSocket API REQUEST",
            (_, Some("2.0")) => "HTTP API REQUEST (payload 2.0)",
            (_, Some("1.0")) => "HTTP API REQUEST (payload 1.0)",
            _ => "REST API REQUEST",
        };
        return Some(UnsupportedEvent::Authorizer { variant });
    }
    let event_type = match context
        .and_then(|c| c.get("eventType"))
        .and_then(Value::as_str)
    {
        Some("CONNECT") => Some("$connect"),
        Some("DISCONNECT") => Some("$disconnect"),
        Some("MESSAGE") => Some("message"),
        _ => None,
    };
    match (websocket, event_type) {
        (_, Some(event_type)) => Some(UnsupportedEvent::WebSocket { event_type }),
        (true, None) => Some(UnsupportedEvent::WebSocket {
            event_type: "route",
        }),
        (false, None) => None,
    }
}

/// Classifies `payload`; see the module docs for the order.
pub fn classify(payload: Value) -> Result<Invocation, UnsupportedEvent> {
    let Some(object) = payload.as_object() else {
        return Err(unknown("the payload is not a JSON object").into());
    };
    if let Some(refused) = not_a_request(object) {
        return Err(refused);
    }
    if let Some(records) = object.get("Records") {
        let records = records
            .as_array()
            .ok_or_else(|| unknown("Records is not an array"))?;
        if records.is_empty() {
            return Err(unknown("Records is empty").into());
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
            return Err(unknown(format!("records from event source {other:?}")).into());
        }
        return Ok(Invocation::Sqs(parse(payload, "SQS")?));
    }

    let context = object.get("requestContext");
    let shape = if context.and_then(|c| c.get("elb")).is_some() {
        HttpShape::Alb
    } else if object.get("version").and_then(Value::as_str) == Some("2.0")
        && context.and_then(|c| c.get("http")).is_some()
    {
        match context
            .and_then(|c| c.get("domainName"))
            .and_then(Value::as_str)
        {
            Some(domain) if domain.contains(".lambda-url.") => HttpShape::FunctionUrl,
            _ => HttpShape::ApiGatewayV2,
        }
    } else if object.get("httpMethod").and_then(Value::as_str).is_some() {
        HttpShape::ApiGatewayV1
    } else {
        return Err(unknown(
            "no Records, requestContext.elb, version 2.0 requestContext.http or httpMethod",
        )
        .into());
    };
    let mut payload = payload;
    let invalid_http = drop_invalid_http(&mut payload);
    let mut request = match shape {
        HttpShape::Alb => LambdaRequest::Alb(parse::<AlbTargetGroupRequest>(payload, "ALB")?),
        HttpShape::ApiGatewayV2 | HttpShape::FunctionUrl => {
            LambdaRequest::ApiGatewayV2(parse::<ApiGatewayV2httpRequest>(payload, "HTTP API v2")?)
        }
        HttpShape::ApiGatewayV1 => LambdaRequest::ApiGatewayV1(parse::<ApiGatewayProxyRequest>(
            payload,
            "API Gateway REST",
        )?),
    };
    let malformed = neutralise(&mut request).or(invalid_http);
    Ok(Invocation::Http(Box::new(HttpEvent {
        shape,
        request,
        malformed,
    })))
}

/// The event types parse header names and values and the method into `http`
/// types and fail the whole event on one that HTTP does not allow (a space in
/// the method, a DEL in a header value), which would make a client's bad
/// request an invocation error. Such headers are dropped and such a method is
/// replaced before parsing, and the request is flagged to be answered `400`.
fn drop_invalid_http(payload: &mut Value) -> Option<&'static str> {
    use lambda_http::http::{HeaderName, HeaderValue, Method};
    let mut reason = None;
    for key in ["headers", "multiValueHeaders"] {
        let Some(headers) = payload.get_mut(key).and_then(Value::as_object_mut) else {
            continue;
        };
        let valid_value = |v: &Value| v.as_str().is_none_or(|v| HeaderValue::from_str(v).is_ok());
        let before = headers.len();
        headers.retain(|name, value| {
            HeaderName::from_bytes(name.as_bytes()).is_ok()
                && match value {
                    Value::Array(values) => values.iter().all(valid_value),
                    value => valid_value(value),
                }
        });
        if headers.len() != before {
            reason = Some("a header name or value is not valid HTTP");
        }
    }
    for pointer in [
        "/httpMethod",
        "/requestContext/httpMethod",
        "/requestContext/http/method",
    ] {
        let Some(method) = payload.pointer_mut(pointer) else {
            continue;
        };
        if method
            .as_str()
            .is_some_and(|m| Method::from_bytes(m.as_bytes()).is_err())
        {
            *method = Value::from("GET");
            reason = Some("the request method is not a valid HTTP method");
        }
    }
    reason
}

/// `lambda_http` builds the request URI from the Host header (or the domain
/// name), `x-forwarded-proto`, the stage and the path, and decodes base64
/// bodies, panicking when any of them is malformed. API Gateway, ALB and
/// Function URLs never send such events, but a direct invoke can; so the same
/// construction is checked here first, and a malformed event is reduced to a
/// harmless one (no host, path `/`, no query, no body) and flagged.
fn neutralise(request: &mut LambdaRequest) -> Option<&'static str> {
    use lambda_http::http::header::HOST;
    let raw_path = match request {
        LambdaRequest::ApiGatewayV1(r) => r.path.as_deref(),
        LambdaRequest::ApiGatewayV2(r) => r.raw_path.as_deref(),
        LambdaRequest::Alb(r) => r.path.as_deref(),
        _ => None,
    };
    // Glued to the host, a path without its leading `/` would change the host.
    let relative = raw_path.is_some_and(|p| !p.is_empty() && !p.starts_with('/'));
    let reason = match request {
        _ if relative => Some("the request's path does not start with /"),
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
        Some("") => return Some("the request's Host header is empty"),
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

    fn shape_of(json: &str) -> Result<Option<HttpShape>, UnsupportedEvent> {
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
        assert!(err.is_some_and(|e| e.to_string().contains("HTTP API v2")));
    }

    /// Asserts `json` is refused with `error_type` and a message naming `what`.
    fn assert_refused(json: &str, error_type: &str, what: &str) {
        match shape_of(json) {
            Err(err) => {
                assert_eq!(err.error_type(), error_type, "{err}");
                assert!(err.to_string().contains(what), "{err}");
            }
            Ok(shape) => panic!("classified as {shape:?}, expected {error_type}"),
        }
    }

    #[test]
    fn rest_token_authorizer_payload_is_refused() {
        assert_refused(
            include_str!("../events/apigw-authorizer-token.json"),
            "AuthorizerEventUnsupported",
            "REST API TOKEN authorizer",
        );
    }

    #[test]
    fn rest_request_authorizer_payload_is_refused() {
        assert_refused(
            include_str!("../events/apigw-authorizer-request.json"),
            "AuthorizerEventUnsupported",
            "REST API REQUEST authorizer",
        );
    }

    #[test]
    fn http_api_authorizer_payload_v1_is_refused() {
        assert_refused(
            include_str!("../events/apigw-v2-authorizer-v1-request.json"),
            "AuthorizerEventUnsupported",
            "HTTP API REQUEST (payload 1.0) authorizer",
        );
    }

    #[test]
    fn http_api_authorizer_payload_v2_is_refused() {
        assert_refused(
            include_str!("../events/apigw-v2-authorizer-v2-request.json"),
            "AuthorizerEventUnsupported",
            "HTTP API REQUEST (payload 2.0) authorizer",
        );
    }

    #[test]
    fn websocket_authorizer_payload_is_refused() {
        assert_refused(
            include_str!("../events/apigw-websocket-authorizer-request.json"),
            "AuthorizerEventUnsupported",
            "WebSocket API REQUEST authorizer",
        );
    }

    #[test]
    fn websocket_connect_is_refused() {
        assert_refused(
            include_str!("../events/apigw-websocket-connect.json"),
            "WebSocketEventUnsupported",
            "WebSocket $connect event",
        );
    }

    #[test]
    fn websocket_connect_carrying_an_http_method_is_refused() {
        // An older sample shape: REST-like members (httpMethod, path) beside the
        // WebSocket context. It must not be read as a REST request.
        assert_refused(
            include_str!("../events/apigw-websocket-connect-with-method.json"),
            "WebSocketEventUnsupported",
            "WebSocket $connect event",
        );
    }

    #[test]
    fn websocket_disconnect_is_refused() {
        assert_refused(
            include_str!("../events/apigw-websocket-disconnect.json"),
            "WebSocketEventUnsupported",
            "WebSocket $disconnect event",
        );
    }

    #[test]
    fn markers_alone_do_not_refuse_a_request() {
        // `type` without an ARN, or an unknown `eventType`, is not an authorizer
        // or WebSocket event: the request is still classified by its shape.
        let mut v2: Value =
            serde_json::from_str(include_str!("../events/apigw-v2-post-accounts.json"))
                .unwrap_or_default();
        v2["type"] = "TOKEN".into();
        v2["requestContext"]["eventType"] = "SOMETHING".into();
        assert_eq!(shape_of(&v2.to_string()), Ok(Some(HttpShape::ApiGatewayV2)));
    }
}
