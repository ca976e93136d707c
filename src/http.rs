//! The HTTP adapter: routes, body parsing and every response of DESIGN.md's
//! "HTTP contract", for all four event shapes.
//!
//! `lambda_http` turns the classified event into an `http::Request` and the
//! `http::Response` back into the event's own response shape, so this module
//! sees only plain HTTP. Every failure is an RFC 9457 `application/problem+json`
//! body built in one place ([`problem`]); status codes come from one table
//! ([`status_of`]) over the domain's error classes, the same classes the SQS
//! adapter and the metrics read. Accounts are created through the use case
//! ([`Onboarding`]) and nothing else.

use std::convert::Infallible;
use std::sync::OnceLock;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response, Service};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

use crate::auth::{AuthError, Authenticator};
use crate::config::SignIn;
use crate::deadline::Deadline;
use crate::event::HttpEvent;
use crate::metrics::{self, Counted};
use crate::onboard::{Account, ErrorClass, OnboardError, OnboardRequest, Onboarded};
use crate::onboarding::{IdempotencyKey, Onboarding};
use crate::web::{self, Page};
use crate::wire::RequestDocument;

/// Largest accepted request body, after base64 decoding.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// What the HTTP adapter needs, built once at init.
pub struct HttpAdapter {
    onboarding: Onboarding,
    /// Who is calling; fetches the issuer's keys at init ([`Self::prefetch_keys`]).
    auth: Authenticator,
    sign_in: Option<SignIn>,
    /// The web form, rendered on the first request that needs it, not at
    /// init (most invocations never do).
    page: OnceLock<Page>,
}

impl HttpAdapter {
    pub fn new(onboarding: Onboarding, auth: Authenticator, sign_in: Option<SignIn>) -> Self {
        Self {
            onboarding,
            auth,
            sign_in,
            page: OnceLock::new(),
        }
    }

    /// Fetches the issuer's keys ahead of the first token (no issuer: nothing).
    pub async fn prefetch_keys(&self) {
        self.auth.prefetch_keys().await;
    }

    fn page(&self) -> &Page {
        self.page.get_or_init(|| Page::new(self.sign_in.as_ref()))
    }

    /// Answers one HTTP event in the shape it arrived in.
    pub async fn handle_event(
        &self,
        event: Box<HttpEvent>,
        context: Context,
    ) -> impl serde::Serialize + std::fmt::Debug {
        let malformed = event.malformed;
        let service = lambda_http::service_fn(|request: Request| async move {
            let response = match malformed {
                Some(reason) => refuse(Failure::Malformed { reason }, &request),
                None => self.respond(request).await,
            };
            Ok::<_, Infallible>(response)
        });
        let mut adapter = lambda_http::Adapter::from(service);
        match adapter.call(LambdaEvent::new(event.request, context)).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// Where a request goes, after any stage or base-path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Form,
    /// The page's script or stylesheet.
    Asset(web::Asset),
    Accounts,
    Unknown,
}

/// Strips the API Gateway stage (when the path carries it) and matches the
/// rest: `/` is the form, any path ending in `/accounts` is the API, so
/// custom-domain base paths work too.
fn route(path: &str, stage: Option<&str>) -> Route {
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let (Some(stage), Some(first)) = (stage, segments.first()) {
        if stage != "$default" && *first == stage {
            segments.remove(0);
        }
    }
    match segments.last() {
        None => Route::Form,
        Some(&"accounts") => Route::Accounts,
        Some(&"app.js") => Route::Asset(web::Asset::Script),
        Some(&"app.css") => Route::Asset(web::Asset::Styles),
        Some(_) => Route::Unknown,
    }
}

fn stage(request: &Request) -> Option<&str> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(context) => context.stage.as_deref(),
        RequestContext::ApiGatewayV2(context) => context.stage.as_deref(),
        _ => None,
    }
}

/// Why a request failed: the adapter's own refusals, or the domain's errors.
#[derive(Debug)]
enum Failure {
    NotFound,
    MethodNotAllowed { allow: &'static str },
    PayloadTooLarge,
    UnsupportedMediaType { found: String },
    BodyMissing,
    BodyNotUtf8,
    IdempotencyKeyInvalid,
    Malformed { reason: &'static str },
    Auth(AuthError),
    Onboard(OnboardError),
}

impl From<OnboardError> for Failure {
    fn from(err: OnboardError) -> Self {
        Self::Onboard(err)
    }
}

/// The one class-to-status table (DESIGN.md, "HTTP contract").
fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::Invalid => StatusCode::BAD_REQUEST,
        ErrorClass::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorClass::InProgress => StatusCode::CONFLICT,
        ErrorClass::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Misconfigured | ErrorClass::UpstreamFailed => StatusCode::BAD_GATEWAY,
        ErrorClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyMissing
            | Self::BodyNotUtf8
            | Self::IdempotencyKeyInvalid
            | Self::Malformed { .. } => StatusCode::BAD_REQUEST,
            Self::Auth(AuthError::KeysUnavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Auth(AuthError::InsufficientScope { .. }) => StatusCode::FORBIDDEN,
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::Onboard(err) => status_of(err.class()),
        }
    }

    /// Whether the same request may succeed later: counted `Failed`, not
    /// `Rejected`, by the same class the SQS adapter reads.
    fn is_transient(&self) -> bool {
        match self {
            Self::Auth(AuthError::KeysUnavailable(_)) => true,
            Self::Onboard(err) => err.class().is_transient(),
            _ => false,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed { .. } => "MethodNotAllowed",
            Self::PayloadTooLarge => "PayloadTooLarge",
            Self::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            Self::BodyMissing => "BodyMissing",
            Self::BodyNotUtf8 => "BodyNotUtf8",
            Self::IdempotencyKeyInvalid => "IdempotencyKeyInvalid",
            Self::Malformed { .. } => "MalformedRequest",
            Self::Auth(err) => err.code(),
            Self::Onboard(err) => err.code(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::NotFound => "no such resource; POST /accounts creates an account, GET / serves the form".to_owned(),
            Self::MethodNotAllowed { allow } => format!("allowed methods: {allow}"),
            Self::PayloadTooLarge => format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
            Self::UnsupportedMediaType { found } => format!(
                "content type {found:?} is not supported; send application/json or application/x-www-form-urlencoded"
            ),
            Self::BodyMissing => "the request has no body; send {\"Name\": \"...\"} as application/json, or Name=... as application/x-www-form-urlencoded".to_owned(),
            Self::BodyNotUtf8 => "the form's Name field is not UTF-8 once percent-decoded; send UTF-8".to_owned(),
            Self::IdempotencyKeyInvalid => format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
            ),
            Self::Malformed { reason } => (*reason).to_owned(),
            Self::Auth(err) => err.to_string(),
            Self::Onboard(err) => err.to_string(),
        }
    }

    /// Seconds a client should wait before retrying (429, 503, and a 409
    /// while an ambiguous create may still commit: the seconds left to the horizon).
    fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Auth(AuthError::KeysUnavailable(_)) => ErrorClass::Unavailable.retry_after(),
            Self::Onboard(err) => err.retry_after(),
            _ => None,
        }
    }
}

/// The one problem+json builder.
fn problem(failure: &Failure, request_id: &str) -> Response<Body> {
    let status = failure.status();
    let body = json!({
        "type": format!("urn:chime-onboard:problem:{}", failure.code()),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": failure.detail(),
        "code": failure.code(),
        "requestId": request_id,
    });
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Failure::MethodNotAllowed { allow } = failure {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(seconds) = failure.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(challenge) = match failure {
        Failure::Auth(err) => err.challenge(),
        _ => None,
    } {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

impl HttpAdapter {
    async fn respond(&self, request: Request) -> Response<Body> {
        let deadline = request
            .lambda_context_ref()
            .map_or(Deadline::NONE, |c| Deadline::from_context(c.deadline()));
        let route = route(request.uri().path(), stage(&request));
        // A browser posting the form without scripts gets HTML back (DESIGN.md,
        // "The web form"): a form post whose Accept prefers HTML. JSON stays JSON.
        let form_post = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let html = route == Route::Accounts
            && form_post
            && web::prefers_html(
                request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok()),
            );
        let result = match (route, request.method()) {
            (Route::Form, &Method::GET | &Method::HEAD) => Ok(self.page().form()),
            (Route::Form, _) => Err(Failure::MethodNotAllowed { allow: "GET, HEAD" }),
            (Route::Asset(asset), &Method::GET | &Method::HEAD) => Ok(web::asset(asset)),
            (Route::Asset(_), _) => Err(Failure::MethodNotAllowed { allow: "GET, HEAD" }),
            (Route::Accounts, &Method::POST) => self.create(&request, deadline, html).await,
            (Route::Accounts, _) => Err(Failure::MethodNotAllowed { allow: "POST" }),
            (Route::Unknown, _) => Err(Failure::NotFound),
        };
        match result {
            Ok(response) => {
                tracing::info!(
                    ?route,
                    status = response.status().as_u16(),
                    "request served"
                );
                response
            }
            Err(failure) if html => {
                log_failure(&failure);
                self.page()
                    .refused(failure.status(), failure.code(), failure.retry_after())
            }
            Err(failure) => refuse(failure, &request),
        }
    }

    async fn create(
        &self,
        request: &Request,
        deadline: Deadline,
        html: bool,
    ) -> Result<Response<Body>, Failure> {
        // Who is calling comes first: an unauthenticated body is not even read.
        let principal = self.auth.principal(request).await.map_err(Failure::Auth)?;
        tracing::info!(sub = principal.subject(), "caller");
        let body: &[u8] = request.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(Failure::PayloadTooLarge);
        }
        let onboard = match encoding(request, body)? {
            Encoding::Json => RequestDocument::read(body)?,
            Encoding::Form => OnboardRequest::from_name_field(form_name(body)?.as_deref())?,
        };
        // Without a table the header is accepted and ignored (DESIGN.md).
        let key = match self.onboarding.remembers_keys() {
            true => idempotency_key(request, &principal.id())?,
            false => None,
        };
        let onboarded = self.onboarding.create(key, &onboard.name, deadline).await?;
        metrics::count(match onboarded {
            Onboarded::Adopted(_) => Counted::Adopted,
            _ => Counted::Created,
        });
        if html {
            let account_id = &onboarded.account().account_id;
            let mut response = self.page().created(account_id, &onboarded.account().name);
            if let Ok(location) = HeaderValue::from_str(&format!("/accounts/{account_id}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        } else {
            Ok(created(onboarded.account()))
        }
    }
}

/// Logs a failure and answers it with problem+json.
fn refuse(failure: Failure, request: &Request) -> Response<Body> {
    log_failure(&failure);
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.as_str())
        .unwrap_or_default();
    problem(&failure, request_id)
}

fn log_failure(failure: &Failure) {
    let status = failure.status();
    metrics::count(if failure.is_transient() {
        Counted::Failed
    } else {
        Counted::Rejected(failure.code())
    });
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), code = failure.code(), detail = %failure.detail(), "request failed");
    } else if let Failure::Auth(err) = failure {
        // Which check failed (never the token itself).
        tracing::info!(status = status.as_u16(), code = failure.code(), reason = %err, "request refused");
    } else {
        tracing::info!(
            status = status.as_u16(),
            code = failure.code(),
            "request refused"
        );
    }
}

/// The accepted body encodings.
enum Encoding {
    Json,
    Form,
}

/// Reads the media type; parameters other than a UTF-8 charset are refused.
/// Without a content type, a body starting with `{` is JSON and an empty (or
/// blank) body is missing, not of an unsupported type.
fn encoding(request: &Request, body: &[u8]) -> Result<Encoding, Failure> {
    let looks_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let Some(raw) = request.headers().get(header::CONTENT_TYPE) else {
        return if looks_like_json {
            Ok(Encoding::Json)
        } else if body.iter().all(u8::is_ascii_whitespace) {
            Err(Failure::BodyMissing)
        } else {
            Err(Failure::UnsupportedMediaType {
                found: String::new(),
            })
        };
    };
    let raw = raw.to_str().unwrap_or_default();
    let unsupported = || Failure::UnsupportedMediaType {
        found: raw.chars().take(100).collect(),
    };
    let mut parts = raw.split(';').map(|p| p.trim().to_ascii_lowercase());
    let essence = parts.next().unwrap_or_default();
    for parameter in parts {
        if let Some(charset) = parameter.strip_prefix("charset=") {
            if !matches!(charset.trim_matches('"'), "utf-8" | "utf8") {
                return Err(unsupported());
            }
        }
    }
    match essence.as_str() {
        "application/json" => Ok(Encoding::Json),
        essence if essence.starts_with("application/") && essence.ends_with("+json") => {
            Ok(Encoding::Json)
        }
        // Browsers percent-encode `{`, so a raw `{` means `curl -d '{"Name":...}'`,
        // which sends JSON under curl's default form content type.
        "application/x-www-form-urlencoded" if looks_like_json => Ok(Encoding::Json),
        "application/x-www-form-urlencoded" => Ok(Encoding::Form),
        _ => Err(unsupported()),
    }
}

/// The first `Name` field of a form body, percent-decoded. Unlike
/// `form_urlencoded::parse`, which replaces bytes that are not UTF-8 with
/// U+FFFD, a name that is not UTF-8 is refused, never altered.
fn form_name(body: &[u8]) -> Result<Option<String>, Failure> {
    let decode = |raw: &[u8]| {
        let spaced: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&spaced).collect::<Vec<u8>>()
    };
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        if decode(key) == b"Name" {
            return String::from_utf8(decode(value))
                .map(Some)
                .map_err(|_| Failure::BodyNotUtf8);
        }
    }
    Ok(None)
}

/// The idempotency key of a request, scoped by its caller (DESIGN.md, "Who
/// is calling"): two callers' equal `Idempotency-Key`s never meet.
fn idempotency_key(request: &Request, principal: &str) -> Result<Option<IdempotencyKey>, Failure> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| Failure::IdempotencyKeyInvalid)?;
    let valid = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(Some(IdempotencyKey::Http {
            principal: principal.to_owned(),
            key: key.to_owned(),
        }))
    } else {
        Err(Failure::IdempotencyKeyInvalid)
    }
}

fn created(account: &Account) -> Response<Body> {
    let body = json!({ "AccountId": account.account_id, "Account": account });
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/accounts/{}", account.account_id)) {
        headers.insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_ignore_stage_and_base_path_prefixes() {
        assert_eq!(route("/", None), Route::Form);
        assert_eq!(route("/prod", Some("prod")), Route::Form);
        assert_eq!(route("/prod/", Some("prod")), Route::Form);
        assert_eq!(route("/accounts", Some("$default")), Route::Accounts);
        assert_eq!(route("/prod/accounts", Some("prod")), Route::Accounts);
        assert_eq!(route("/onboarding/v1/accounts/", None), Route::Accounts);
        assert_eq!(route("/accounts/123", None), Route::Unknown);
        assert_eq!(route("/prod", None), Route::Unknown);
    }

    #[test]
    fn form_names_are_percent_decoded_and_must_be_utf8() {
        let name = |body: &[u8]| form_name(body).map_err(|f| f.code());
        assert_eq!(name(b"Name=Acme+R%C3%A9"), Ok(Some("Acme Ré".to_owned())));
        assert_eq!(name(b"x=%FF&N%61me=a&Name=b"), Ok(Some("a".to_owned())));
        assert_eq!(name(b"Name"), Ok(Some(String::new())));
        assert_eq!(name(b"name=a&&"), Ok(None));
        assert_eq!(name(b"Name=%ZZ"), Ok(Some("%ZZ".to_owned())));
        assert_eq!(name(b"Name=%FF"), Err("BodyNotUtf8"));
        assert_eq!(name(b"Name=a\xc0\xaf"), Err("BodyNotUtf8"));
    }

    #[test]
    fn statuses_follow_the_design_table() {
        let chime = |kind| {
            Failure::Onboard(OnboardError::Chime {
                kind,
                message: String::new(),
            })
        };
        use crate::onboard::ChimeErrorKind::*;
        assert_eq!(chime(BadRequest).status(), StatusCode::BAD_REQUEST);
        assert_eq!(chime(Throttled).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(chime(Throttled).retry_after(), Some(1));
        assert_eq!(chime(Unavailable).status(), StatusCode::SERVICE_UNAVAILABLE);
        for kind in [ServiceFailure, Forbidden, Unauthorized, NotFound, Other] {
            assert_eq!(chime(kind).status(), StatusCode::BAD_GATEWAY);
        }
        assert_eq!(
            Failure::Onboard(OnboardError::ChimeTimeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        // While an ambiguous create may still commit: 409 with the seconds left.
        let pending = Failure::Onboard(OnboardError::CommitPending { retry_after: 7 });
        assert_eq!(pending.status(), StatusCode::CONFLICT);
        assert_eq!(pending.code(), "IdempotencyInProgress");
        assert_eq!(pending.retry_after(), Some(7));
    }
}
