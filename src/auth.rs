//! Who is calling: the principal of an HTTP request (DESIGN.md, "Who is calling").
//!
//! In order, the first that applies:
//! 1. what the front door already verified: API Gateway's JWT authorizer claims
//!    (HTTP API), a REST authorizer's claims or principal, the IAM caller of a
//!    Function URL or REST route with `AWS_IAM`;
//! 2. with `AUTH_JWT_ISSUER` set, a bearer JWT the function verifies itself
//!    (RS256 or ES256; `iss`, `aud`, `exp`, `nbf` and the signature checked)
//!    against the issuer's JWKS, fetched on first use — never at init, cold
//!    starts are measured — through the function's TLS stack ([`crate::tls`]),
//!    cached, and fetched again for an unknown `kid` at most once a minute;
//! 3. nobody: [`Principal::Anonymous`], or `401` when `AUTH_REQUIRED=true`.
//!
//! A bearer token that is present but fails verification is always `401`.
//! The principal scopes `Idempotency-Key` ([`Principal::id`]); logs carry its
//! subject, never a token or a name. This module knows nothing of routes or
//! response bodies: [`crate::http`] turns an [`AuthError`] into problem+json.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::http::header;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use crate::config::{AuthConfig, JwtIssuer};
use crate::tls::Roots;

/// An unknown `kid` fetches the key set again at most this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed fetch, the next attempt waits this long.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Bound on one discovery or JWKS request.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A verified JWT: by API Gateway, a REST authorizer, or this function.
    Jwt { issuer: String, subject: String },
    /// An IAM caller (Function URL or REST route with `AWS_IAM`).
    Iam { caller: String },
    /// A REST Lambda authorizer's `principalId` (no issuer known).
    Authorizer { principal: String },
    /// Nobody: allowed unless `AUTH_REQUIRED=true`.
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
    /// No credentials and `AUTH_REQUIRED=true`.
    #[error("this route needs a signed-in caller: send Authorization: Bearer <JWT>")]
    Missing,
    /// The token's `exp` has passed.
    #[error("the bearer token has expired; sign in again")]
    Expired,
    /// The token failed verification; the reason names the check.
    #[error("the bearer token is not accepted: {0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched: nothing can be verified now.
    #[error("the token issuer's keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// The problem `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "AuthenticationRequired",
            Self::Expired => "TokenExpired",
            Self::Invalid(_) => "TokenInvalid",
            Self::KeysUnavailable(_) => "AuthUnavailable",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750), for the 401s.
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::Missing => Some("Bearer"),
            Self::Expired | Self::Invalid(_) => Some("Bearer error=\"invalid_token\""),
            Self::KeysUnavailable(_) => None,
        }
    }

    fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid(reason.into())
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
            .field("issuer", &self.verifier.as_ref().map(|v| &v.issuer))
            .finish()
    }
}

impl Authenticator {
    /// From the configuration; keys are fetched over HTTPS on first use.
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

    /// The principal of `request`; see the module docs for the order.
    pub async fn principal(&self, request: &Request) -> Result<Principal, AuthError> {
        if let Some(principal) = from_context(request) {
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

/// What API Gateway or the Function URL already established.
fn from_context(request: &Request) -> Option<Principal> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            let authorizer = context.authorizer.as_ref()?;
            if let Some(jwt) = &authorizer.jwt {
                let subject = jwt.claims.get("sub")?;
                let issuer = jwt.claims.get("iss").cloned().unwrap_or_default();
                return Some(Principal::Jwt {
                    issuer,
                    subject: subject.clone(),
                });
            }
            let iam = authorizer.iam.as_ref()?;
            let caller = iam.user_arn.clone().or_else(|| iam.caller_id.clone())?;
            Some(Principal::Iam { caller })
        }
        RequestContext::ApiGatewayV1(context) => {
            let fields = &context.authorizer.fields;
            // A Cognito user pool authorizer: claims as strings.
            if let Some(claims) = fields.get("claims") {
                let text = |name| claims.get(name).and_then(Value::as_str).map(str::to_owned);
                if let Some(subject) = text("sub") {
                    return Some(Principal::Jwt {
                        issuer: text("iss").unwrap_or_default(),
                        subject,
                    });
                }
            }
            // A Lambda authorizer.
            if let Some(principal) = fields.get("principalId").and_then(Value::as_str) {
                return Some(Principal::Authorizer {
                    principal: principal.to_owned(),
                });
            }
            // An AWS_IAM route.
            let caller = context.identity.user_arn.clone()?;
            Some(Principal::Iam { caller })
        }
        _ => None,
    }
}

/// Where the issuer's public keys come from.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    /// The issuer's current key set (the JWKS document's `keys`).
    async fn fetch(&self) -> Result<Vec<Value>, String>;
}

/// A verification key and the one algorithm it may verify.
#[derive(Clone)]
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

struct KeyCache {
    keys: HashMap<String, Key>,
    /// No fetch before this instant (`None`: never fetched).
    next_fetch: Option<Instant>,
}

impl KeyCache {
    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<Key> {
        match kid {
            Some(kid) => self.keys.get(kid).cloned(),
            None => {
                let mut candidates = self.keys.values().filter(|k| k.algorithm == algorithm);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// Verifies bearer JWTs of one issuer.
struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    source: Arc<dyn KeySource>,
    cache: Mutex<KeyCache>,
}

/// The claims read from a verified token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl JwtVerifier {
    fn new(config: &JwtIssuer, source: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            source,
            cache: Mutex::new(KeyCache {
                keys: HashMap::new(),
                next_fetch: None,
            }),
        }
    }

    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // `alg: none` and unknown algorithms fail here: they are not `Algorithm`s.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::invalid("not a JWT signed with RS256 or ES256 (alg none is refused)")
        })?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::invalid(format!(
                "algorithm {:?} is not accepted; RS256 or ES256 only",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        if key.algorithm != header.alg {
            return Err(AuthError::invalid(
                "the token's algorithm does not match its key",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below, `client_id` included
        validation.leeway = LEEWAY_SECONDS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                match err.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::InvalidIssuer => {
                        AuthError::invalid("the issuer (iss) is not accepted")
                    }
                    ErrorKind::InvalidSignature => {
                        AuthError::invalid("the signature does not verify")
                    }
                    ErrorKind::ImmatureSignature => {
                        AuthError::invalid("the token is not valid yet (nbf)")
                    }
                    ErrorKind::MissingRequiredClaim(claim) => {
                        AuthError::invalid(format!("the token has no {claim} claim"))
                    }
                    ErrorKind::InvalidAlgorithm => {
                        AuthError::invalid("the token's algorithm does not match its key")
                    }
                    _ => AuthError::invalid("the token is malformed"),
                }
            })?
            .claims;
        let accepted = |candidate: &str| self.audiences.iter().any(|a| a == candidate);
        let audience_ok = match &claims.aud {
            Some(Audience::One(aud)) => accepted(aud),
            Some(Audience::Many(auds)) => auds.iter().any(|a| accepted(a)),
            // Cognito access tokens carry `client_id` instead of `aud`.
            None => claims.client_id.as_deref().is_some_and(accepted),
        };
        if !audience_ok {
            return Err(AuthError::invalid("the audience (aud) is not accepted"));
        }
        Ok(Principal::Jwt {
            issuer: self.issuer.clone(),
            subject: claims.sub,
        })
    }

    /// The key for `kid`: from the cache, or from a fetch if the cache does not
    /// have it and the last fetch is old enough. A token without `kid` (it is
    /// optional) takes the issuer's one key for its algorithm, if it has one.
    async fn key(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<Key, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(key) = cache.find(kid, algorithm) {
            return Ok(key);
        }
        let now = Instant::now();
        if cache.next_fetch.is_none_or(|at| now >= at) {
            match self.source.fetch().await {
                Ok(keys) => {
                    cache.keys = parse_keys(&keys);
                    cache.next_fetch = Some(now + REFRESH_INTERVAL);
                    tracing::info!(keys = cache.keys.len(), "fetched the issuer's keys");
                }
                Err(reason) => {
                    cache.next_fetch = Some(now + RETRY_AFTER_FAILURE);
                    tracing::warn!(%reason, "could not fetch the issuer's keys");
                    return Err(AuthError::KeysUnavailable(reason));
                }
            }
        }
        cache.find(kid, algorithm).ok_or_else(|| match kid {
            Some(_) => AuthError::invalid("the key id (kid) is not one of the issuer's keys"),
            None => AuthError::invalid(
                "the token has no key id (kid) and the issuer has no single key for its algorithm",
            ),
        })
    }
}

/// The usable signing keys of a JWKS: RSA keys for RS256, P-256 keys for
/// ES256, each keyed by `kid`. Other keys (encryption, other curves) are skipped.
fn parse_keys(keys: &[Value]) -> HashMap<String, Key> {
    keys.iter()
        .filter_map(|value| {
            let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
            let kid = jwk.common.key_id.clone()?;
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                return None;
            }
            let algorithm = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec)
                    if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => return None,
            };
            if let Some(declared) = jwk.common.key_algorithm {
                let declared = format!("{declared:?}");
                if declared != format!("{algorithm:?}") {
                    return None;
                }
            }
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((kid, Key { algorithm, key }))
        })
        .collect()
}

/// Fetches the key set over HTTPS: OpenID discovery for `jwks_uri`, then the
/// set. The connector is built on first use, not at init.
pub struct HttpKeySource {
    issuer: String,
    roots: Roots,
    connector: OnceCell<aws_smithy_http_client::Connector>,
    jwks_uri: OnceCell<String>,
}

impl HttpKeySource {
    /// For `issuer` (its discovery document is `<issuer>/.well-known/openid-configuration`).
    pub fn new(issuer: &str, roots: Roots) -> Self {
        Self {
            issuer: issuer.to_owned(),
            roots,
            connector: OnceCell::new(),
            jwks_uri: OnceCell::new(),
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        use aws_smithy_types::body::SdkBody;

        // The same rule as for the issuer: https, or http to loopback only.
        crate::config::fetchable_url("jwks_uri", url).map_err(|e| e.to_string())?;
        let connector = self
            .connector
            .get_or_try_init(|| async { crate::tls::connector(self.roots) })
            .await
            .map_err(|e| e.to_string())?;
        let mut request = aws_smithy_runtime_api::http::Request::new(SdkBody::empty());
        request.set_uri(url).map_err(|e| format!("{url}: {e}"))?;
        request.headers_mut().insert("accept", "application/json");
        let fetch = async {
            let response = connector
                .call(request)
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status().as_u16();
            let body = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?
                .into_bytes();
            if status != 200 {
                return Err(format!("GET {url}: status {status}"));
            }
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: the document exceeds {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("GET {url}: no answer within {FETCH_TIMEOUT:?}"))?
    }
}

#[async_trait::async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<Vec<Value>, String> {
        let jwks_uri = self
            .jwks_uri
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let discovery = self.get_json(&url).await?;
                discovery["jwks_uri"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{url} has no jwks_uri"))
            })
            .await?;
        let set = self.get_json(jwks_uri).await?;
        match set.get("keys").and_then(Value::as_array) {
            Some(keys) => Ok(keys.clone()),
            None => Err(format!("{jwks_uri} has no keys array")),
        }
    }
}

#[cfg(test)]
#[path = "../tests/support/jwt.rs"]
mod testing;

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use testing::{Signer, StaticKeys};

    fn config(required: bool) -> AuthConfig {
        AuthConfig {
            required,
            jwt: Some(JwtIssuer {
                issuer: testing::ISSUER.to_owned(),
                audiences: vec![testing::AUDIENCE.to_owned()],
            }),
        }
    }

    fn request_with(event: Value) -> Request {
        let request: lambda_http::request::LambdaRequest =
            serde_json::from_value(event).expect("event");
        lambda_http::Request::from(request)
    }

    fn v2(authorization: Option<&str>) -> Value {
        let mut event: Value =
            serde_json::from_str(include_str!("../events/apigw-v2-post-accounts.json"))
                .expect("fixture");
        event["requestContext"]
            .as_object_mut()
            .map(|c| c.remove("authorizer"));
        if let Some(value) = authorization {
            event["headers"]["authorization"] = json!(value);
        }
        event
    }

    async fn principal_of(
        auth: &Authenticator,
        token: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let header = token.map(|t| format!("Bearer {t}"));
        auth.principal(&request_with(v2(header.as_deref()))).await
    }

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture")
    }

    #[tokio::test]
    async fn each_event_shape_yields_its_principal() {
        // HTTP API with the template's JWT authorizer.
        let mut v2 = fixture(include_str!("../events/apigw-v2-post-accounts.json"));
        v2["requestContext"]["authorizer"] = json!({"jwt": {
            "claims": {"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool", "sub": "7d5f-0001", "client_id": "app"},
            "scopes": ["chime-onboard/accounts.create"]}});
        // REST API with a Cognito user pool authorizer.
        let mut cognito = fixture(include_str!("../events/apigw-v1-post-accounts.json"));
        cognito["requestContext"]["authorizer"] = json!({"claims": {
            "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool", "sub": "7d5f-0002"}});
        // REST API with a Lambda authorizer (the fixture's own `principalId`).
        let lambda_authorizer = fixture(include_str!("../events/apigw-v1-post-accounts.json"));
        // REST API with AWS_IAM.
        let mut rest_iam = fixture(include_str!("../events/apigw-v1-post-accounts.json"));
        rest_iam["requestContext"]["authorizer"] = json!({});
        // Function URL with AWS_IAM.
        let mut url = fixture(include_str!("../events/function-url-post-accounts.json"));
        url["requestContext"]["authorizer"] = json!({"iam": {
            "accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA",
            "userArn": "arn:aws:iam::123456789012:user/onboarding-admin", "userId": "AIDA"}});
        let cases = [
            (
                v2,
                "jwt:https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool#7d5f-0001",
            ),
            (
                cognito,
                "jwt:https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool#7d5f-0002",
            ),
            (lambda_authorizer, "authorizer:admin"),
            (rest_iam, "iam:theUserArn"),
            (url, "iam:arn:aws:iam::123456789012:user/onboarding-admin"),
            (
                fixture(include_str!("../events/alb-post-accounts.json")),
                "anonymous",
            ),
            (
                fixture(include_str!("../events/function-url-post-accounts.json")),
                "anonymous",
            ),
        ];
        let auth = Authenticator::with_key_source(&AuthConfig::default(), StaticKeys::empty());
        for (event, expected) in cases {
            let principal = auth.principal(&request_with(event)).await;
            assert_eq!(principal.map(|p| p.id()), Ok(expected.to_owned()));
        }
    }

    #[tokio::test]
    async fn valid_rs256_and_es256_tokens_pass() {
        let rsa = Signer::rsa("rsa-1");
        let ec = Signer::ec("ec-1");
        let auth = Authenticator::with_key_source(
            &config(true),
            StaticKeys::new(vec![rsa.jwk(), ec.jwk()]),
        );
        for signer in [&rsa, &ec] {
            let token = signer.sign(&testing::claims());
            let principal = principal_of(&auth, Some(&token)).await;
            assert_eq!(
                principal.map(|p| p.id()),
                Ok(format!("jwt:{}#user-1", testing::ISSUER))
            );
        }
    }

    #[tokio::test]
    async fn an_access_token_with_client_id_instead_of_aud_passes() {
        let rsa = Signer::rsa("rsa-1");
        let auth = Authenticator::with_key_source(&config(true), StaticKeys::new(vec![rsa.jwk()]));
        let mut claims = testing::claims();
        claims.as_object_mut().map(|c| c.remove("aud"));
        claims["client_id"] = json!(testing::AUDIENCE);
        claims["scope"] = json!("chime-onboard/accounts.create");
        let token = rsa.sign(&claims);
        assert!(principal_of(&auth, Some(&token)).await.is_ok());
    }

    #[tokio::test]
    async fn each_bad_token_is_refused_with_its_reason() {
        let rsa = Signer::rsa("rsa-1");
        let other = Signer::ec("rsa-1"); // same kid, another key: bad signature
        let auth = Authenticator::with_key_source(&config(false), StaticKeys::new(vec![rsa.jwk()]));
        let now = testing::now();
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "expired",
                rsa.sign(&testing::claims_with("exp", json!(now - 3600))),
                "TokenExpired",
            ),
            (
                "wrong issuer",
                rsa.sign(&testing::claims_with(
                    "iss",
                    json!("https://elsewhere.example"),
                )),
                "TokenInvalid",
            ),
            (
                "wrong audience",
                rsa.sign(&testing::claims_with("aud", json!("another-client"))),
                "TokenInvalid",
            ),
            (
                "not yet valid",
                rsa.sign(&testing::claims_with("nbf", json!(now + 3600))),
                "TokenInvalid",
            ),
            (
                "bad signature",
                testing::resign(&rsa.sign(&testing::claims()), &other),
                "TokenInvalid",
            ),
            (
                "unknown kid",
                Signer::rsa_with_kid("rsa-2").sign(&testing::claims()),
                "TokenInvalid",
            ),
            (
                "alg none",
                testing::unsigned(&testing::claims()),
                "TokenInvalid",
            ),
            (
                "HS256",
                testing::hs256("rsa-1", &testing::claims()),
                "TokenInvalid",
            ),
            ("garbage", "not.a.jwt".to_owned(), "TokenInvalid"),
        ];
        for (case, token, code) in cases {
            let err = principal_of(&auth, Some(&token)).await.err();
            assert_eq!(
                err.as_ref().map(AuthError::code),
                Some(code),
                "{case}: {err:?}"
            );
            assert!(err.and_then(|e| e.challenge()).is_some(), "{case}");
        }
    }

    #[tokio::test]
    async fn a_missing_token_is_refused_only_when_required() {
        let keys = StaticKeys::empty();
        let required = Authenticator::with_key_source(&config(true), keys.clone());
        assert_eq!(principal_of(&required, None).await, Err(AuthError::Missing));
        assert_eq!(AuthError::Missing.challenge(), Some("Bearer"));
        let optional = Authenticator::with_key_source(&config(false), keys.clone());
        assert_eq!(
            principal_of(&optional, None).await,
            Ok(Principal::Anonymous)
        );
        // Neither looked for keys.
        assert_eq!(keys.fetches(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_fetched_on_first_use_and_an_unknown_kid_refetches_at_most_once_a_minute() {
        let rsa = Signer::rsa("rsa-1");
        let keys = StaticKeys::new(vec![rsa.jwk()]);
        let auth = Authenticator::with_key_source(&config(true), keys.clone());
        assert_eq!(
            keys.fetches(),
            0,
            "nothing is fetched before the first token"
        );
        let good = rsa.sign(&testing::claims());
        for _ in 0..3 {
            assert!(principal_of(&auth, Some(&good)).await.is_ok());
        }
        assert_eq!(keys.fetches(), 1, "cached");
        let rotated = Signer::rsa_with_kid("rsa-2");
        let token = rotated.sign(&testing::claims());
        for _ in 0..3 {
            assert!(principal_of(&auth, Some(&token)).await.is_err());
        }
        assert_eq!(
            keys.fetches(),
            1,
            "an unknown kid within the minute fetches nothing"
        );
        // The issuer rotates its keys; a minute later the unknown kid is looked up once.
        keys.set(vec![rsa.jwk(), rotated.jwk()]);
        tokio::time::advance(REFRESH_INTERVAL).await;
        assert!(principal_of(&auth, Some(&token)).await.is_ok());
        assert!(principal_of(&auth, Some(&token)).await.is_ok());
        assert_eq!(keys.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_issuer_is_a_retryable_failure() {
        let keys = StaticKeys::failing();
        let auth = Authenticator::with_key_source(&config(true), keys.clone());
        let token = Signer::rsa("rsa-1").sign(&testing::claims());
        let err = principal_of(&auth, Some(&token)).await.err();
        assert_eq!(err.as_ref().map(AuthError::code), Some("AuthUnavailable"));
        assert_eq!(err.and_then(|e| e.challenge()), None);
        let _ = principal_of(&auth, Some(&token)).await;
        assert_eq!(keys.fetches(), 1, "failures back off too");
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
        let _ = principal_of(&auth, Some(&token)).await;
        assert_eq!(keys.fetches(), 2);
    }

    #[tokio::test]
    async fn a_token_without_kid_uses_the_issuers_only_key_for_its_algorithm() {
        let rsa = Signer::rsa("rsa-1");
        let ec = Signer::ec("ec-1");
        let token = rsa.sign_without_kid(&testing::claims());
        let one = Authenticator::with_key_source(
            &config(true),
            StaticKeys::new(vec![rsa.jwk(), ec.jwk()]),
        );
        assert!(principal_of(&one, Some(&token)).await.is_ok());
        let two = Authenticator::with_key_source(
            &config(true),
            StaticKeys::new(vec![rsa.jwk(), Signer::rsa("rsa-2").jwk()]),
        );
        let err = principal_of(&two, Some(&token)).await.err();
        assert_eq!(err.as_ref().map(AuthError::code), Some("TokenInvalid"));
    }

    #[test]
    fn keys_of_other_kinds_are_skipped() {
        let keys = parse_keys(&[
            json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"}),
            Signer::rsa("ok").jwk(),
        ]);
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ok"]);
    }
}
