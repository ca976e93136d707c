//! Every error chime-local answers, and the one place that turns it into a response.
//!
//! Model errors (`BadRequestException` … `UnprocessableEntityException`) are sent the way
//! the service sends them: their status from the model, an `x-amzn-ErrorType` header naming
//! the shape, and the shape's members as the body: `{"Code": <ErrorCode enum>, "Message": ...}`.
//! Authentication failures happen in front of the service, before its model is consulted,
//! and look like every AWS REST-JSON endpoint's: `403`, `x-amzn-ErrorType:
//! MissingAuthenticationTokenException` (or `UnrecognizedClientException`,
//! `InvalidSignatureException`, `IncompleteSignatureException`) and `{"message": ...}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The header naming the error shape (HTTP header names are case-insensitive; the service
/// spells it `x-amzn-ErrorType`).
pub const HEADER_ERROR_TYPE: &str = "x-amzn-errortype";

/// An error the emulator answers with. The kind decides status, header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Which error.
    pub kind: ErrorKind,
    /// The message sent in the body.
    pub message: String,
}

/// The error types chime-local can send: the model's error shapes, then the edge's
/// authentication errors, then an unknown route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400, `Code: BadRequest`: input breaks the model's constraints, or the body is not JSON.
    BadRequestException,
    /// 403, `Code: Forbidden`.
    ForbiddenException,
    /// 404, `Code: NotFound`: no account with that id.
    NotFoundException,
    /// 500, `Code: ServiceFailure` (a fault).
    ServiceFailureException,
    /// 503, `Code: ServiceUnavailable` (a fault).
    ServiceUnavailableException,
    /// 429, `Code: Throttled` (a fault, or the rate limit).
    ThrottledClientException,
    /// 401, `Code: Unauthorized`.
    UnauthorizedClientException,
    /// 422, `Code: Unprocessable` (DeleteAccount's extra error).
    UnprocessableEntityException,
    /// 403: no `Authorization` header.
    MissingAuthenticationTokenException,
    /// 403: an `Authorization` header that is not SigV4-shaped.
    IncompleteSignatureException,
    /// 403: an access key other than the configured one.
    UnrecognizedClientException,
    /// 403: the signature does not verify with the configured secret.
    InvalidSignatureException,
    /// 404: no operation at this method and path.
    UnknownOperationException,
}

impl ErrorKind {
    /// HTTP status, from the model's `httpStatusCode` (or the edge's for auth errors).
    pub fn status(self) -> StatusCode {
        use ErrorKind::*;
        match self {
            BadRequestException => StatusCode::BAD_REQUEST,
            ForbiddenException => StatusCode::FORBIDDEN,
            NotFoundException => StatusCode::NOT_FOUND,
            ServiceFailureException => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailableException => StatusCode::SERVICE_UNAVAILABLE,
            ThrottledClientException => StatusCode::TOO_MANY_REQUESTS,
            UnauthorizedClientException => StatusCode::UNAUTHORIZED,
            UnprocessableEntityException => StatusCode::UNPROCESSABLE_ENTITY,
            MissingAuthenticationTokenException
            | IncompleteSignatureException
            | UnrecognizedClientException
            | InvalidSignatureException => StatusCode::FORBIDDEN,
            UnknownOperationException => StatusCode::NOT_FOUND,
        }
    }

    /// The `ErrorCode` enum value a model error carries in its `Code` member.
    pub fn code(self) -> Option<&'static str> {
        use ErrorKind::*;
        Some(match self {
            BadRequestException => "BadRequest",
            ForbiddenException => "Forbidden",
            NotFoundException => "NotFound",
            ServiceFailureException => "ServiceFailure",
            ServiceUnavailableException => "ServiceUnavailable",
            ThrottledClientException => "Throttled",
            UnauthorizedClientException => "Unauthorized",
            UnprocessableEntityException => "Unprocessable",
            _ => return None,
        })
    }

    /// The shape name sent in `x-amzn-ErrorType`.
    pub fn as_str(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequestException => "BadRequestException",
            ForbiddenException => "ForbiddenException",
            NotFoundException => "NotFoundException",
            ServiceFailureException => "ServiceFailureException",
            ServiceUnavailableException => "ServiceUnavailableException",
            ThrottledClientException => "ThrottledClientException",
            UnauthorizedClientException => "UnauthorizedClientException",
            UnprocessableEntityException => "UnprocessableEntityException",
            MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            IncompleteSignatureException => "IncompleteSignatureException",
            UnrecognizedClientException => "UnrecognizedClientException",
            InvalidSignatureException => "InvalidSignatureException",
            UnknownOperationException => "UnknownOperationException",
        }
    }

    /// The message an injected fault of this kind carries.
    pub fn default_message(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequestException => "The input parameters don't match the service's restrictions.",
            ForbiddenException => "The client is permanently forbidden from making the request.",
            NotFoundException => {
                "One or more of the resources in the request does not exist in the system."
            }
            ServiceFailureException => "The service encountered an unexpected error.",
            ServiceUnavailableException => "The service is currently unavailable.",
            ThrottledClientException => "The client exceeded its request rate limit.",
            UnauthorizedClientException => {
                "The client is not currently authorized to make the request."
            }
            UnprocessableEntityException => {
                "The request was well-formed but was unable to be followed due to semantic errors."
            }
            MissingAuthenticationTokenException => "Missing Authentication Token",
            IncompleteSignatureException => "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
            UnrecognizedClientException => "The security token included in the request is invalid.",
            InvalidSignatureException => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            UnknownOperationException => "No operation matches this method and path.",
        }
    }
}

impl ApiError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// An error of `kind` with its default message.
    pub fn of(kind: ErrorKind) -> Self {
        ApiError::new(kind, kind.default_message())
    }

    /// `BadRequestException` with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::BadRequestException, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.kind.code() {
            Some(code) => serde_json::json!({"Code": code, "Message": self.message}),
            None => serde_json::json!({"message": self.message}),
        };
        let mut response = (self.kind.status(), axum::Json(body)).into_response();
        response.headers_mut().insert(
            HEADER_ERROR_TYPE,
            HeaderValue::from_static(self.kind.as_str()),
        );
        response
    }
}
