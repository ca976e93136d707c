//! The HTTP surface: the account API at the model's paths, the `/_chime-local/*` control
//! endpoints, and the request pipeline every account-API call takes
//! (body, SigV4, before-operation faults, operation, after-commit faults, stats).

use crate::conn::{BrokenBody, ConnCtl};
use crate::error::{ApiError, ErrorKind};
use crate::faults::{AfterCommit, Faults};
use crate::model::{self, Account};
use crate::sigv4;
use crate::state::Emulator;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// Largest request body read (the model's inputs are tiny; Coral's limit is far above this).
const MAX_BODY: usize = 1024 * 1024;
/// The request id header sent on every response.
pub const HEADER_REQUEST_ID: &str = "x-amzn-requestid";
/// The `NextToken` prefix; the rest is the creation sequence of the next account, in hex.
const TOKEN_PREFIX: &str = "ct1-";

/// The account-API operations, named as in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateAccount,
    GetAccount,
    ListAccounts,
    UpdateAccount,
    DeleteAccount,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::CreateAccount => "CreateAccount",
            Op::GetAccount => "GetAccount",
            Op::ListAccounts => "ListAccounts",
            Op::UpdateAccount => "UpdateAccount",
            Op::DeleteAccount => "DeleteAccount",
        }
    }

    /// Whether the operation changes state (and so can get an after-commit fault).
    fn is_mutating(self) -> bool {
        matches!(
            self,
            Op::CreateAccount | Op::UpdateAccount | Op::DeleteAccount
        )
    }
}

/// The application: the account API, the control endpoints, `x-amzn-RequestId` everywhere.
pub fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/accounts", any(accounts))
        .route("/console/accounts", any(console_accounts))
        .route("/accounts/{account_id}", any(account))
        .route(
            "/_chime-local/faults",
            get(get_faults).post(post_faults).delete(delete_faults),
        )
        .route("/_chime-local/stats", get(get_stats).delete(delete_stats))
        .route(
            "/_chime-local/accounts",
            get(get_accounts).delete(delete_accounts),
        )
        .fallback(unknown_operation)
        .layer(axum::middleware::map_response(add_request_id))
        .with_state(emulator)
}

async fn add_request_id(mut response: Response) -> Response {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    if let Ok(value) = HeaderValue::from_str(&id.hyphenated().to_string()) {
        response.headers_mut().insert(HEADER_REQUEST_ID, value);
    }
    response
}

async fn unknown_operation() -> Response {
    ApiError::of(ErrorKind::UnknownOperationException).into_response()
}

async fn accounts(State(emulator): State<Emulator>, request: Request) -> Response {
    match *request.method() {
        Method::POST => call(emulator, Op::CreateAccount, request).await,
        Method::GET => call(emulator, Op::ListAccounts, request).await,
        _ => unknown_operation().await,
    }
}

/// The legacy path of the API reference's CreateAccount example.
async fn console_accounts(State(emulator): State<Emulator>, request: Request) -> Response {
    match *request.method() {
        Method::POST => call(emulator, Op::CreateAccount, request).await,
        _ => unknown_operation().await,
    }
}

async fn account(State(emulator): State<Emulator>, request: Request) -> Response {
    match *request.method() {
        Method::GET => call(emulator, Op::GetAccount, request).await,
        Method::POST | Method::PATCH => call(emulator, Op::UpdateAccount, request).await,
        Method::DELETE => call(emulator, Op::DeleteAccount, request).await,
        _ => unknown_operation().await,
    }
}

/// One account-API request: read the body, check the signature, apply before-operation
/// faults, run the operation, apply an after-commit fault, count the outcome.
async fn call(emulator: Emulator, op: Op, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            let err = ApiError::bad_request("The request body is too large or could not be read.");
            return finish(&emulator, op, Err(err));
        }
    };
    if let Err(err) = sigv4::verify(
        emulator.config().credentials.as_ref(),
        &parts.method,
        parts.uri.path(),
        parts.uri.query(),
        &parts.headers,
        &body,
    ) {
        return finish(&emulator, op, Err(err));
    }
    let decision = emulator.decide(op.is_mutating());
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    match decision.fault.map(|f| f.error_kind()) {
        Some(Some(kind)) => return finish(&emulator, op, Err(ApiError::of(kind))),
        Some(None) => {
            emulator.record(op.name(), "ConnectionReset");
            return reset(parts.extensions.get::<Arc<ConnCtl>>());
        }
        None => {}
    }
    if let Some(late) = decision.late {
        return commit_late(emulator, op, parts.uri, body, late).await;
    }
    let result = run(&emulator, op, &parts.uri, &body);
    match (decision.after_commit, result) {
        (Some(kind), Ok(_committed)) => {
            let ctl = parts.extensions.get::<Arc<ConnCtl>>();
            lose_answer(&emulator, op, kind, decision.withhold, ctl).await
        }
        (_, result) => finish(&emulator, op, result),
    }
}

/// The operation itself.
fn run(
    emulator: &Emulator,
    op: Op,
    uri: &axum::http::Uri,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match op {
        Op::CreateAccount => create_account(emulator, body),
        Op::GetAccount => account_id(uri.path()).and_then(|id| get_account(emulator, &id)),
        Op::ListAccounts => list_accounts(emulator, uri.query()),
        Op::UpdateAccount => {
            account_id(uri.path()).and_then(|id| update_account(emulator, &id, body))
        }
        Op::DeleteAccount => account_id(uri.path()).and_then(|id| delete_account(emulator, &id)),
    }
}

/// A late commit: the operation runs `late` after the request in a task of its own, so
/// it commits whether or not the client is still there; a client still waiting gets its
/// answer then. Counted under the outcome `CommittedLate`.
async fn commit_late(
    emulator: Emulator,
    op: Op,
    uri: axum::http::Uri,
    body: Bytes,
    late: std::time::Duration,
) -> Response {
    let task = tokio::spawn(async move {
        tokio::time::sleep(late).await;
        let result = run(&emulator, op, &uri, &body);
        let outcome = match &result {
            Ok(_) => "CommittedLate",
            Err(err) => err.kind.as_str(),
        };
        emulator.record(op.name(), outcome);
        tracing::debug!(operation = op.name(), outcome, "late commit");
        result
    });
    match task.await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::of(ErrorKind::ServiceFailureException).into_response(),
    }
}

/// The operation committed; the client gets an error, a reset, or no answer instead of its
/// response. (An operation that failed — 400, 404 — committed nothing and is answered as is.)
async fn lose_answer(
    emulator: &Emulator,
    op: Op,
    kind: AfterCommit,
    withhold: std::time::Duration,
    ctl: Option<&Arc<ConnCtl>>,
) -> Response {
    emulator.record_after_commit(op.name(), kind);
    tracing::debug!(
        operation = op.name(),
        outcome = kind.outcome(),
        "after the commit"
    );
    match kind {
        AfterCommit::ServiceFailure => {
            ApiError::of(ErrorKind::ServiceFailureException).into_response()
        }
        AfterCommit::ServiceUnavailable => {
            ApiError::of(ErrorKind::ServiceUnavailableException).into_response()
        }
        AfterCommit::ConnectionReset => reset(ctl),
        AfterCommit::Withheld => {
            // Bounded by `withhold_ms`; a shutdown drops the connection, and this with it.
            tokio::time::sleep(withhold).await;
            match ctl {
                Some(ctl) => {
                    ctl.close();
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
                None => Response::new(Body::new(BrokenBody)),
            }
        }
    }
}

fn finish(emulator: &Emulator, op: Op, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(response) => {
            emulator.record(op.name(), "Success");
            tracing::debug!(operation = op.name(), outcome = "Success");
            response
        }
        Err(err) => {
            emulator.record(op.name(), err.kind.as_str());
            tracing::debug!(operation = op.name(), outcome = err.kind.as_str());
            err.into_response()
        }
    }
}

/// Resets the connection: over a real socket the server's IO wrapper answers with a TCP RST;
/// without one (a `oneshot` test) the body fails mid-response.
fn reset(ctl: Option<&Arc<ConnCtl>>) -> Response {
    match ctl {
        Some(ctl) => {
            ctl.reset();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        None => Response::new(Body::new(BrokenBody)),
    }
}

#[derive(Serialize)]
struct AccountBody<'a> {
    #[serde(rename = "Account")]
    account: &'a Account,
}

#[derive(Serialize)]
struct AccountsBody<'a> {
    #[serde(rename = "Accounts")]
    accounts: Vec<&'a Account>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn validation_error(member: &str, constraint: &str) -> ApiError {
    ApiError::bad_request(format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// Parses a JSON object body; an empty body counts as `{}`.
fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(_) => Err(ApiError::bad_request(
            "Could not parse the request body as JSON.",
        )),
    }
}

/// An optional string member; `null` counts as absent, another type is an error.
fn string_member<'a>(
    input: &'a serde_json::Map<String, serde_json::Value>,
    member: &str,
) -> Result<Option<&'a str>, ApiError> {
    match input.get(member) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!(
            "Unexpected value type for '{member}': expected a string."
        ))),
    }
}

fn check_name(member: &str, name: &str) -> Result<(), ApiError> {
    model::check_account_name(name).map_err(|v| validation_error(member, &v.constraint()))
}

/// The `{accountId}` label from the path, percent-decoded and checked (`NonEmptyString`).
fn account_id(path: &str) -> Result<String, ApiError> {
    let raw = path.strip_prefix("/accounts/").unwrap_or_default();
    let id = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("The account ID is not valid UTF-8."))?;
    if !model::matches_non_blank_pattern(&id) {
        return Err(validation_error(
            "accountId",
            "Member must satisfy regular expression pattern: .*\\S.*",
        ));
    }
    Ok(id.into_owned())
}

fn not_found() -> ApiError {
    ApiError::new(
        ErrorKind::NotFoundException,
        "The requested account was not found.",
    )
}

fn create_account(emulator: &Emulator, body: &Bytes) -> Result<Response, ApiError> {
    let input = json_object(body)?;
    let name = string_member(&input, "Name")?.ok_or_else(|| {
        ApiError::bad_request(
            "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null",
        )
    })?;
    check_name("name", name)?;
    let account = Account::new_team(
        emulator.new_account_id(),
        emulator.config().aws_account_id.clone(),
        name.to_owned(),
    );
    let response = (StatusCode::CREATED, Json(AccountBody { account: &account })).into_response();
    emulator.store().insert(account);
    emulator.mark_dirty();
    Ok(response)
}

fn get_account(emulator: &Emulator, id: &str) -> Result<Response, ApiError> {
    let store = emulator.store();
    let account = store.get(id).ok_or_else(not_found)?;
    Ok(Json(AccountBody { account }).into_response())
}

/// Query parameters, percent-decoded (`+` stays `+`, as the SDKs encode spaces as `%20`);
/// the first occurrence of a key wins.
fn query_param(query: Option<&str>, key: &str) -> Result<Option<String>, ApiError> {
    for pair in query.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key {
            return percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map(|v| Some(v.into_owned()))
                .map_err(|_| ApiError::bad_request(format!("'{key}' is not valid UTF-8.")));
        }
    }
    Ok(None)
}

fn list_accounts(emulator: &Emulator, query: Option<&str>) -> Result<Response, ApiError> {
    let name = query_param(query, "name")?;
    if let Some(name) = &name {
        check_name("name", name)?;
    }
    let user_email = query_param(query, "user-email")?;
    if let Some(email) = &user_email {
        model::check_email(email).map_err(|v| validation_error("userEmail", &v.constraint()))?;
    }
    let max_results = match query_param(query, "max-results")? {
        None => model::DEFAULT_MAX_RESULTS,
        Some(raw) => {
            let n: i64 = raw
                .parse()
                .map_err(|_| ApiError::bad_request("'max-results' must be an integer."))?;
            if !model::MAX_RESULTS_RANGE.contains(&n) {
                let constraint = if n < 1 {
                    "Member must have value greater than or equal to 1"
                } else {
                    "Member must have value less than or equal to 200"
                };
                return Err(validation_error("maxResults", constraint));
            }
            usize::try_from(n).unwrap_or(model::DEFAULT_MAX_RESULTS)
        }
    };
    let from = match query_param(query, "next-token")? {
        None => 0,
        Some(token) => token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .ok_or_else(|| ApiError::bad_request("The next token is not valid."))?,
    };
    let store = emulator.store();
    // No users exist in the emulator, so a `user-email` filter matches no account.
    let mut matching = store.starting_at(from).filter(|(_, a)| {
        user_email.is_none() && name.as_deref().is_none_or(|n| a.name.starts_with(n))
    });
    let accounts: Vec<&Account> = matching
        .by_ref()
        .take(max_results)
        .map(|(_, a)| a)
        .collect();
    let next_token = matching
        .next()
        .map(|(seq, _)| format!("{TOKEN_PREFIX}{seq:016x}"));
    Ok(Json(AccountsBody {
        accounts,
        next_token,
    })
    .into_response())
}

fn update_account(emulator: &Emulator, id: &str, body: &Bytes) -> Result<Response, ApiError> {
    let input = json_object(body)?;
    let name = string_member(&input, "Name")?;
    if let Some(name) = name {
        check_name("name", name)?;
    }
    let license = string_member(&input, "DefaultLicense")?;
    if let Some(license) = license {
        if !model::LICENSES.contains(&license) {
            return Err(validation_error(
                "defaultLicense",
                "Member must satisfy enum value set: [Basic, Plus, Pro, ProTrial]",
            ));
        }
    }
    let mut store = emulator.store();
    let account = store.get_mut(id).ok_or_else(not_found)?;
    if let Some(license) = license {
        if !account.supported_licenses.iter().any(|l| l == license) {
            return Err(ApiError::bad_request(format!(
                "The license {license} is not supported by this account."
            )));
        }
        account.default_license = license.to_owned();
    }
    if let Some(name) = name {
        account.name = name.to_owned();
    }
    let response = Json(AccountBody { account }).into_response();
    drop(store);
    emulator.mark_dirty();
    Ok(response)
}

fn delete_account(emulator: &Emulator, id: &str) -> Result<Response, ApiError> {
    emulator.store().remove(id).ok_or_else(not_found)?;
    emulator.mark_dirty();
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- control endpoints: never faulted, never authenticated ----

fn control_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"message": message})),
    )
        .into_response()
}

async fn get_faults(State(emulator): State<Emulator>) -> Json<Faults> {
    Json(emulator.faults())
}

async fn post_faults(State(emulator): State<Emulator>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return control_error(format!("invalid faults: {e}")),
    };
    if let Err(e) = faults.validate() {
        return control_error(e);
    }
    emulator.set_faults(faults);
    Json(emulator.faults()).into_response()
}

async fn delete_faults(State(emulator): State<Emulator>) -> Json<Faults> {
    emulator.set_faults(Faults::default());
    Json(emulator.faults())
}

async fn get_stats(State(emulator): State<Emulator>) -> Response {
    Json(emulator.stats()).into_response()
}

async fn delete_stats(State(emulator): State<Emulator>) -> StatusCode {
    emulator.reset_stats();
    StatusCode::NO_CONTENT
}

async fn get_accounts(State(emulator): State<Emulator>) -> Response {
    Json(serde_json::json!({"Accounts": emulator.accounts()})).into_response()
}

async fn delete_accounts(State(emulator): State<Emulator>) -> StatusCode {
    emulator.clear_accounts();
    StatusCode::NO_CONTENT
}
