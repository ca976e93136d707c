//! Who is calling: the principal of an HTTP request (docs/DESIGN.md, "Who is calling").
//!
//! In order, the first that applies:
//! 1. what the front door already verified ([`claims`]): API Gateway's JWT
//!    authorizer claims (HTTP API), a REST authorizer's claims or principal, the
//!    IAM caller of a Function URL or REST route with `AWS_IAM`;
//! 2. with `AUTH_JWT_ISSUER` set, a bearer JWT the function verifies itself
//!    ([`verifier`]: RS256 or ES256; `iss`, `aud`, `exp`, `nbf`, the signature and
//!    the `AUTH_JWT_SCOPE` scopes checked) against the issuer's JWKS ([`keys`]),
//!    fetched at init beside the runtime's first `next` ([`Authenticator::prefetch_keys`]:
//!    the first request, which needs them, would otherwise fetch them after it
//!    arrived; BENCHMARKS.md, "Deployed case"), through the function's TLS stack ([`crate::tls`]), cached, and fetched again for an
//!    unknown `kid` at most once a minute;
//! 3. nobody: [`Principal::Anonymous`], or `401` when sign-in is required
//!    (`AUTH_REQUIRED=true`, or an issuer set without `AUTH_REQUIRED=false`).
//!
//! A bearer token that is present but fails verification is always refused.
//! The principal scopes `Idempotency-Key` ([`Principal::id`]); logs carry its
//! subject, never a token or a name. This module knows nothing of routes or
//! response bodies: [`crate::http`] turns an [`AuthError`] into problem+json.

mod claims;
mod keys;
mod verifier;

use std::sync::Arc;

use lambda_http::http::header;
use lambda_http::Request;

use crate::config::AuthConfig;
use crate::tls::Roots;

pub use keys::{HttpKeySource, KeyFetchError, KeySource, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES};
pub use verifier::{TokenRejection, REFRESH_INTERVAL, RETRY_AFTER_FAILURE};

use verifier::JwtVerifier;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A verified JWT: by API Gateway, a REST authorizer, or this function.
    Jwt { issuer: String, subject: String },
    /// An IAM caller (Function URL or REST route with `AWS_IAM`).
    Iam { caller: String },
    /// A REST Lambda authorizer's `principalId` (no issuer known).
    Authorizer { principal: String },
    /// Nobody: allowed unless sign-in is required.
    Anonymous,
}

impl Principal {
    /// A stable id: `jwt:<iss>#<sub>`, `iam:<caller arn>`, `authorizer:<id>`
    /// or `anonymous`. It scopes `Idempotency-Key`.
    pub fn id(&self) -> String {
        match self {
            Self::Jwt { issuer, subject } => format!("jwt:{issuer}#{subject}"),
            Self::Iam { caller } => format!("iam:{caller}"),
            Self::Authorizer { principal } => format!("authorizer:{principal}"),
            Self::Anonymous => "anonymous".to_owned(),
        }
    }

    /// What logs carry: the `sub` (or the IAM caller / authorizer principal).
    pub fn subject(&self) -> &str {
        match self {
            Self::Jwt { subject, .. } => subject,
            Self::Iam { caller } => caller,
            Self::Authorizer { principal } => principal,
            Self::Anonymous => "anonymous",
        }
    }
}

/// Why a request has no acceptable principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials, and sign-in is required.
    #[error("this route needs a signed-in caller: send Authorization: Bearer <JWT>")]
    Missing,
    /// The token's `exp` has passed.
    #[error("the bearer token has expired; sign in again")]
    Expired,
    /// The token failed verification; the rejection names the check.
    #[error("the bearer token is not accepted: {0}")]
    Invalid(TokenRejection),
    /// The token is valid but lacks scopes `AUTH_JWT_SCOPE` requires.
    #[error("the bearer token lacks the scope {missing}; sign in again asking for it")]
    InsufficientScope {
        /// The required scopes the token does not carry, space-separated.
        missing: String,
    },
    /// The issuer's keys could not be fetched (now, or at the last attempt, whose
    /// back-off still runs): nothing can be verified until they can.
    #[error("the token issuer's keys could not be fetched: {0}")]
    KeysUnavailable(KeyFetchError),
}

impl AuthError {
    /// The problem `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "AuthenticationRequired",
            Self::Expired => "TokenExpired",
            Self::Invalid(_) => "TokenInvalid",
            Self::InsufficientScope { .. } => "InsufficientScope",
            Self::KeysUnavailable(_) => "AuthUnavailable",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750), for the 401s and the 403.
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::Missing => Some("Bearer"),
            Self::Expired | Self::Invalid(_) => Some("Bearer error=\"invalid_token\""),
            Self::InsufficientScope { .. } => Some("Bearer error=\"insufficient_scope\""),
            Self::KeysUnavailable(_) => None,
        }
    }
}

impl From<TokenRejection> for AuthError {
    fn from(rejection: TokenRejection) -> Self {
        Self::Invalid(rejection)
    }
}

/// Decides who is calling; built once at init, shared by every request.
pub struct Authenticator {
    required: bool,
    verifier: Option<JwtVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("required", &self.required)
            .field("issuer", &self.verifier.as_ref().map(JwtVerifier::issuer))
            .finish()
    }
}

impl Authenticator {
    /// From the configuration; keys are fetched over HTTPS at init or on first use.
    pub fn new(config: &AuthConfig, roots: Roots) -> Self {
        let verifier = config.jwt.as_ref().map(|jwt| {
            let source = Arc::new(HttpKeySource::new(&jwt.issuer, roots));
            JwtVerifier::new(jwt, source)
        });
        Self {
            required: config.required,
            verifier,
        }
    }

    /// With another key source (tests).
    pub fn with_key_source(config: &AuthConfig, source: Arc<dyn KeySource>) -> Self {
        Self {
            required: config.required,
            verifier: config.jwt.as_ref().map(|jwt| JwtVerifier::new(jwt, source)),
        }
    }

    /// Fetches the issuer's keys ahead of the first token, when one is
    /// configured (`main` runs it beside the runtime's first `next`).
    pub async fn prefetch_keys(&self) {
        if let Some(verifier) = &self.verifier {
            verifier.prefetch().await;
        }
    }

    /// The principal of `request`; see the module docs for the order.
    pub async fn principal(&self, request: &Request) -> Result<Principal, AuthError> {
        if let Some(principal) = claims::from_context(request) {
            return Ok(principal);
        }
        if let (Some(verifier), Some(token)) = (&self.verifier, bearer(request)) {
            return verifier.verify(token).await;
        }
        if self.required {
            Err(AuthError::Missing)
        } else {
            Ok(Principal::Anonymous)
        }
    }
}

/// `Authorization: Bearer <token>`, scheme case-insensitive.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
#[path = "../../tests/support/jwt.rs"]
mod testing;

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::{Config, JwtIssuer};
    use serde_json::{json, Value};
    use testing::{Signer, StaticKeys};

    pub(super) fn config(required: bool) -> AuthConfig {
        AuthConfig {
            required,
            jwt: Some(JwtIssuer {
                issuer: testing::ISSUER.to_owned(),
                audiences: vec![testing::AUDIENCE.to_owned()],
                scopes: Vec::new(),
            }),
        }
    }

    pub(super) fn request_with(event: Value) -> Request {
        let request: lambda_http::request::LambdaRequest =
            serde_json::from_value(event).expect("event");
        lambda_http::Request::from(request)
    }

    /// An HTTP API v2 POST without an authorizer, with this `Authorization` header.
    fn v2(authorization: Option<&str>) -> Request {
        let mut event: Value =
            serde_json::from_str(include_str!("../../events/apigw-v2-post-accounts.json"))
                .expect("fixture");
        event["requestContext"]
            .as_object_mut()
            .map(|c| c.remove("authorizer"));
        if let Some(value) = authorization {
            event["headers"]["authorization"] = json!(value);
        }
        request_with(event)
    }

    #[tokio::test]
    async fn a_missing_token_is_refused_only_when_required() {
        let keys = StaticKeys::empty();
        let required = Authenticator::with_key_source(&config(true), keys.clone());
        assert_eq!(required.principal(&v2(None)).await, Err(AuthError::Missing));
        assert_eq!(AuthError::Missing.challenge(), Some("Bearer"));
        let optional = Authenticator::with_key_source(&config(false), keys.clone());
        assert_eq!(
            optional.principal(&v2(None)).await,
            Ok(Principal::Anonymous)
        );
        // Neither looked for keys.
        assert_eq!(keys.fetches(), 0);
    }

    #[tokio::test]
    async fn an_issuer_alone_requires_sign_in_unless_said_otherwise() {
        let env = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Config::from_lookup(|name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
            .expect("config")
            .auth
        };
        let issuer = [
            ("AUTH_JWT_ISSUER", testing::ISSUER),
            ("AUTH_JWT_AUDIENCE", testing::AUDIENCE),
        ];
        let alone = Authenticator::with_key_source(&env(&issuer), StaticKeys::empty());
        assert_eq!(alone.principal(&v2(None)).await, Err(AuthError::Missing));
        let opted_out = env(&[issuer[0], issuer[1], ("AUTH_REQUIRED", "false")]);
        let opted_out = Authenticator::with_key_source(&opted_out, StaticKeys::empty());
        assert_eq!(
            opted_out.principal(&v2(None)).await,
            Ok(Principal::Anonymous)
        );
    }

    #[tokio::test]
    async fn only_a_bearer_scheme_with_a_token_is_read() {
        let rsa = Signer::rsa("rsa-1");
        let token = rsa.sign(&testing::claims());
        let keys = StaticKeys::new(vec![rsa.jwk()]);
        let auth = Authenticator::with_key_source(&config(true), keys);
        for header in [format!("Bearer {token}"), format!("bearer  {token} ")] {
            assert!(auth.principal(&v2(Some(&header))).await.is_ok(), "{header}");
        }
        for header in [
            format!("Basic {token}"),
            "Bearer ".to_owned(),
            token.clone(),
        ] {
            assert_eq!(
                auth.principal(&v2(Some(&header))).await,
                Err(AuthError::Missing),
                "{header}"
            );
        }
    }

    #[test]
    fn each_error_has_its_code_and_challenge() {
        let cases = [
            (AuthError::Missing, "AuthenticationRequired", Some("Bearer")),
            (
                AuthError::Expired,
                "TokenExpired",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthError::Invalid(TokenRejection::BadSignature),
                "TokenInvalid",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthError::InsufficientScope {
                    missing: "a".to_owned(),
                },
                "InsufficientScope",
                Some("Bearer error=\"insufficient_scope\""),
            ),
            (
                AuthError::KeysUnavailable(KeyFetchError::NoKeys {
                    url: "u".to_owned(),
                }),
                "AuthUnavailable",
                None,
            ),
        ];
        for (err, code, challenge) in cases {
            assert_eq!((err.code(), err.challenge()), (code, challenge), "{err}");
        }
    }
}
