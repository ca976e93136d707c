//! The in-function JWT check: bearer tokens of one issuer (`AUTH_JWT_ISSUER`),
//! RS256 or ES256, verified against the issuer's keys, which come from a
//! [`KeySource`] and are cached here: fetched at init ([`JwtVerifier::prefetch`]) or
//! on first use, again for an unknown
//! `kid` at most every [`REFRESH_INTERVAL`], and not before [`RETRY_AFTER_FAILURE`]
//! after a failed fetch. Checked: signature, `iss`, `exp`, `nbf`, `aud` (or
//! `client_id`, Cognito access tokens), and every `AUTH_JWT_SCOPE` scope in
//! `scope`/`scp`. Each refusal is a [`TokenRejection`] naming the check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::keys::{KeyFetchError, KeySource};
use super::{AuthError, Principal};
use crate::config::JwtIssuer;

/// An unknown `kid` fetches the key set again at most this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed fetch, the next attempt waits this long.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Why a bearer token is refused (`401 TokenInvalid`); each variant is one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRejection {
    /// The header does not parse, or names an algorithm that is not one
    /// (`none`, unknown names).
    #[error("not a JWT signed with RS256 or ES256 (alg none is refused)")]
    NotAJwt,
    /// A real algorithm other than RS256 and ES256 (HS256: the key-confusion attack).
    #[error("algorithm {0} is not accepted; RS256 or ES256 only")]
    AlgorithmNotAccepted(String),
    /// The header's `alg` is not the algorithm of the key its `kid` names.
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// The `kid` is not in the issuer's key set, even after a refresh.
    #[error("the key id (kid) is not one of the issuer's keys")]
    UnknownKeyId,
    /// No `kid`, and the issuer has none or several keys for the algorithm.
    #[error("the token has no key id (kid) and the issuer has no single key for its algorithm")]
    NoKeyForAlgorithm,
    /// `iss` is not `AUTH_JWT_ISSUER`.
    #[error("the issuer (iss) is not accepted")]
    IssuerNotAccepted,
    /// The signature does not verify with the issuer's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// A claim the function needs (`exp`, `iss`, `sub`) is absent.
    #[error("the token has no {0} claim")]
    MissingClaim(String),
    /// Neither `aud` nor `client_id` is one of `AUTH_JWT_AUDIENCE`.
    #[error("the audience (aud) is not accepted")]
    AudienceNotAccepted,
    /// Anything else the decoder refuses (bad base64, bad JSON, wrong types).
    #[error("the token is malformed")]
    Malformed,
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
    /// Why the last fetch failed; cleared by a successful one.
    failure: Option<KeyFetchError>,
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
pub(super) struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    scopes: Vec<String>,
    source: Arc<dyn KeySource>,
    cache: Mutex<KeyCache>,
}

/// The claims read from a verified token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    client_id: Option<String>,
    /// OAuth 2.0 (RFC 8693 §4.2): space-separated.
    #[serde(default)]
    scope: Option<String>,
    /// Some issuers (Okta, Entra ID): a list, or a space-separated string.
    #[serde(default)]
    scp: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    /// Every scope the token carries, from `scope` and `scp`.
    fn scopes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default();
        match &self.scp {
            Some(OneOrMany::One(s)) => out.extend(s.split_whitespace()),
            Some(OneOrMany::Many(list)) => out.extend(list.iter().map(String::as_str)),
            None => {}
        }
        out
    }
}

impl JwtVerifier {
    pub(super) fn new(config: &JwtIssuer, source: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            scopes: config.scopes.clone(),
            source,
            cache: Mutex::new(KeyCache {
                keys: HashMap::new(),
                next_fetch: None,
                failure: None,
            }),
        }
    }

    pub(super) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(super) async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // `alg: none` and unknown algorithms fail here: they are not `Algorithm`s.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::NotAJwt)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenRejection::AlgorithmNotAccepted(format!("{:?}", header.alg)).into());
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        if key.algorithm != header.alg {
            return Err(TokenRejection::AlgorithmMismatch.into());
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
                    ErrorKind::InvalidIssuer => TokenRejection::IssuerNotAccepted.into(),
                    ErrorKind::InvalidSignature => TokenRejection::BadSignature.into(),
                    ErrorKind::ImmatureSignature => TokenRejection::NotYetValid.into(),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        TokenRejection::MissingClaim(claim.clone()).into()
                    }
                    ErrorKind::InvalidAlgorithm => TokenRejection::AlgorithmMismatch.into(),
                    _ => TokenRejection::Malformed.into(),
                }
            })?
            .claims;
        let accepted = |candidate: &str| self.audiences.iter().any(|a| a == candidate);
        let audience_ok = match &claims.aud {
            Some(OneOrMany::One(aud)) => accepted(aud),
            Some(OneOrMany::Many(auds)) => auds.iter().any(|a| accepted(a)),
            // Cognito access tokens carry `client_id` instead of `aud`.
            None => claims.client_id.as_deref().is_some_and(accepted),
        };
        if !audience_ok {
            return Err(TokenRejection::AudienceNotAccepted.into());
        }
        let granted = claims.scopes();
        let missing: Vec<&str> = self
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|needed| !granted.contains(needed))
            .collect();
        if !missing.is_empty() {
            return Err(AuthError::InsufficientScope {
                missing: missing.join(" "),
            });
        }
        Ok(Principal::Jwt {
            issuer: self.issuer.clone(),
            subject: claims.sub,
        })
    }

    /// The key for `kid`: from the cache, or from a fetch if the cache does not
    /// have it and the last fetch is old enough. A token without `kid` (it is
    /// optional) takes the issuer's one key for its algorithm, if it has one.
    /// While the last fetch has failed, a key the cache lacks is "keys
    /// unavailable" (503), not "unknown kid": the key set cannot be known.
    async fn key(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<Key, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(key) = cache.find(kid, algorithm) {
            return Ok(key);
        }
        if cache.next_fetch.is_none_or(|at| Instant::now() >= at) {
            self.fetch(&mut cache).await?;
        }
        if let Some(key) = cache.find(kid, algorithm) {
            return Ok(key);
        }
        Err(match (&cache.failure, kid) {
            (Some(failure), _) => AuthError::KeysUnavailable(failure.clone()),
            (None, Some(_)) => TokenRejection::UnknownKeyId.into(),
            (None, None) => TokenRejection::NoKeyForAlgorithm.into(),
        })
    }
}

impl JwtVerifier {
    /// Fetches the keys if they never were: run at init, so the first token
    /// finds them fetched, or being fetched (it waits on the cache's lock
    /// rather than fetching a second time). A failure is forgotten, not
    /// cached: the first token fetches again at once instead of being refused
    /// for [`RETRY_AFTER_FAILURE`] (an issuer that was not reachable yet when
    /// the process started).
    pub(super) async fn prefetch(&self) {
        let mut cache = self.cache.lock().await;
        if cache.next_fetch.is_none() && self.fetch(&mut cache).await.is_err() {
            cache.next_fetch = None;
            cache.failure = None;
        }
    }

    /// One fetch of the issuer's keys into `cache`, and when the next may be.
    async fn fetch(&self, cache: &mut KeyCache) -> Result<(), AuthError> {
        let now = Instant::now();
        match self.source.fetch().await {
            Ok(keys) => {
                cache.keys = parse_keys(&keys);
                cache.next_fetch = Some(now + REFRESH_INTERVAL);
                cache.failure = None;
                tracing::info!(keys = cache.keys.len(), "fetched the issuer's keys");
                Ok(())
            }
            Err(err) => {
                cache.next_fetch = Some(now + RETRY_AFTER_FAILURE);
                cache.failure = Some(err.clone());
                tracing::warn!(reason = %err, "could not fetch the issuer's keys");
                Err(AuthError::KeysUnavailable(err))
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testing::{self, Signer, StaticKeys};
    use serde_json::json;

    fn verifier(keys: Arc<StaticKeys>, scopes: &[&str]) -> JwtVerifier {
        let config = JwtIssuer {
            issuer: testing::ISSUER.to_owned(),
            audiences: vec![testing::AUDIENCE.to_owned()],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        };
        JwtVerifier::new(&config, keys)
    }

    fn subject(result: Result<Principal, AuthError>) -> Result<String, AuthError> {
        result.map(|p| p.id())
    }

    #[tokio::test]
    async fn valid_rs256_and_es256_tokens_pass() {
        let (rsa, ec) = (Signer::rsa("rsa-1"), Signer::ec("ec-1"));
        let v = verifier(StaticKeys::new(vec![rsa.jwk(), ec.jwk()]), &[]);
        for signer in [&rsa, &ec] {
            let token = signer.sign(&testing::claims());
            assert_eq!(
                subject(v.verify(&token).await),
                Ok(format!("jwt:{}#user-1", testing::ISSUER))
            );
        }
    }

    #[tokio::test]
    async fn an_access_token_with_client_id_instead_of_aud_passes() {
        let rsa = Signer::rsa("rsa-1");
        let v = verifier(StaticKeys::new(vec![rsa.jwk()]), &[]);
        let mut claims = testing::claims();
        claims.as_object_mut().map(|c| c.remove("aud"));
        claims["client_id"] = json!(testing::AUDIENCE);
        assert!(v.verify(&rsa.sign(&claims)).await.is_ok());
    }

    #[tokio::test]
    async fn each_bad_token_is_refused_with_its_reason() {
        let rsa = Signer::rsa("rsa-1");
        let other = Signer::ec("rsa-1"); // same kid, another key: bad signature
        let v = verifier(StaticKeys::new(vec![rsa.jwk()]), &[]);
        let now = testing::now();
        let invalid = |r: TokenRejection| Err(AuthError::Invalid(r));
        let cases: Vec<(&str, String, Result<Principal, AuthError>)> = vec![
            (
                "expired",
                rsa.sign(&testing::claims_with("exp", json!(now - 3600))),
                Err(AuthError::Expired),
            ),
            (
                "wrong issuer",
                rsa.sign(&testing::claims_with(
                    "iss",
                    json!("https://elsewhere.example"),
                )),
                invalid(TokenRejection::IssuerNotAccepted),
            ),
            (
                "wrong audience",
                rsa.sign(&testing::claims_with("aud", json!("another-client"))),
                invalid(TokenRejection::AudienceNotAccepted),
            ),
            (
                "not yet valid",
                rsa.sign(&testing::claims_with("nbf", json!(now + 3600))),
                invalid(TokenRejection::NotYetValid),
            ),
            (
                "bad signature",
                testing::resign(&rsa.sign(&testing::claims()), &other),
                invalid(TokenRejection::BadSignature),
            ),
            (
                "unknown kid",
                Signer::rsa_with_kid("rsa-2").sign(&testing::claims()),
                invalid(TokenRejection::UnknownKeyId),
            ),
            (
                "alg none",
                testing::unsigned(&testing::claims()),
                invalid(TokenRejection::NotAJwt),
            ),
            (
                "HS256",
                testing::hs256("rsa-1", &testing::claims()),
                invalid(TokenRejection::AlgorithmNotAccepted("HS256".to_owned())),
            ),
            (
                "garbage",
                "not.a.jwt".to_owned(),
                invalid(TokenRejection::NotAJwt),
            ),
        ];
        for (case, token, expected) in cases {
            let got = v.verify(&token).await;
            assert_eq!(got, expected, "{case}");
            assert!(got.err().and_then(|e| e.challenge()).is_some(), "{case}");
        }
    }

    #[tokio::test]
    async fn a_signature_of_another_key_of_the_same_algorithm_does_not_verify() {
        let rsa = Signer::rsa("ec-1");
        let ec = Signer::ec("ec-1");
        let forger = Signer::ec("ec-1"); // another P-256 key under the same kid
        let v = verifier(StaticKeys::new(vec![ec.jwk()]), &[]);
        let forged = testing::resign(&ec.sign(&testing::claims()), &forger);
        assert_eq!(
            v.verify(&forged).await,
            Err(AuthError::Invalid(TokenRejection::BadSignature))
        );
        // ... and an RS256 token naming the EC key's kid is refused before any check.
        assert_eq!(
            v.verify(&rsa.sign(&testing::claims())).await,
            Err(AuthError::Invalid(TokenRejection::AlgorithmMismatch))
        );
    }

    #[tokio::test]
    async fn every_configured_scope_must_be_in_scope_or_scp() {
        let rsa = Signer::rsa("rsa-1");
        let v = verifier(
            StaticKeys::new(vec![rsa.jwk()]),
            &["accounts.create", "accounts.read"],
        );
        let with = |name: &str, value: Value| rsa.sign(&testing::claims_with(name, value));
        let passing = [
            with("scope", json!("openid accounts.read accounts.create")),
            with("scp", json!(["accounts.create", "accounts.read"])),
            with("scp", json!("accounts.read accounts.create")),
        ];
        for token in passing {
            assert!(v.verify(&token).await.is_ok());
        }
        let missing = |m: &str| {
            Err(AuthError::InsufficientScope {
                missing: m.to_owned(),
            })
        };
        let cases = [
            (
                rsa.sign(&testing::claims()),
                "accounts.create accounts.read",
            ),
            (with("scope", json!("accounts.create")), "accounts.read"),
            (with("scp", json!(["accounts.read"])), "accounts.create"),
            // One scope named "a b" is not two scopes.
            (
                with("scope", json!("accounts.createaccounts.read")),
                "accounts.create accounts.read",
            ),
        ];
        for (token, absent) in cases {
            assert_eq!(v.verify(&token).await, missing(absent));
        }
        // No scope configured: none asked for.
        let open = verifier(StaticKeys::new(vec![rsa.jwk()]), &[]);
        assert!(open.verify(&rsa.sign(&testing::claims())).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_fetched_on_first_use_and_an_unknown_kid_refetches_at_most_once_a_minute() {
        let rsa = Signer::rsa("rsa-1");
        let keys = StaticKeys::new(vec![rsa.jwk()]);
        let v = verifier(keys.clone(), &[]);
        assert_eq!(
            keys.fetches(),
            0,
            "nothing is fetched before the first token"
        );
        let good = rsa.sign(&testing::claims());
        for _ in 0..3 {
            assert!(v.verify(&good).await.is_ok());
        }
        assert_eq!(keys.fetches(), 1, "cached");
        let rotated = Signer::rsa_with_kid("rsa-2");
        let token = rotated.sign(&testing::claims());
        for _ in 0..3 {
            assert!(v.verify(&token).await.is_err());
        }
        assert_eq!(
            keys.fetches(),
            1,
            "an unknown kid within the minute fetches nothing"
        );
        // The issuer rotates its keys; a minute later the unknown kid is looked up once.
        keys.set(vec![rsa.jwk(), rotated.jwk()]);
        tokio::time::advance(REFRESH_INTERVAL).await;
        assert!(v.verify(&token).await.is_ok());
        assert!(v.verify(&token).await.is_ok());
        assert_eq!(keys.fetches(), 2);
    }

    #[tokio::test]
    async fn keys_fetched_at_init_serve_the_first_token_and_a_failed_prefetch_is_forgotten() {
        let rsa = Signer::rsa("rsa-1");
        let keys = StaticKeys::new(vec![rsa.jwk()]);
        let v = verifier(keys.clone(), &[]);
        v.prefetch().await;
        v.prefetch().await;
        assert_eq!(keys.fetches(), 1, "fetched once");
        assert!(v.verify(&rsa.sign(&testing::claims())).await.is_ok());
        assert_eq!(
            keys.fetches(),
            1,
            "the first token used the prefetched keys"
        );
        // An issuer not reachable at init: the first token fetches again at once.
        let keys = StaticKeys::failing();
        let v = verifier(keys.clone(), &[]);
        v.prefetch().await;
        keys.set(vec![rsa.jwk()]);
        assert!(v.verify(&rsa.sign(&testing::claims())).await.is_ok());
        assert_eq!(keys.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn while_keys_cannot_be_fetched_every_token_is_keys_unavailable() {
        let keys = StaticKeys::failing();
        let v = verifier(keys.clone(), &[]);
        let token = Signer::rsa("rsa-1").sign(&testing::claims());
        for _ in 0..2 {
            // The first fails fetching; the second, inside the back-off, says the
            // same instead of "unknown kid".
            let err = v.verify(&token).await.err();
            assert!(
                matches!(err, Some(AuthError::KeysUnavailable(_))),
                "{err:?}"
            );
            assert_eq!(err.and_then(|e| e.challenge()), None);
        }
        assert_eq!(keys.fetches(), 1, "failures back off too");
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
        let _ = v.verify(&token).await;
        assert_eq!(keys.fetches(), 2);
        // Once the issuer answers, the same token passes.
        keys.set(vec![Signer::rsa("rsa-1").jwk()]);
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
        assert!(v.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_without_kid_uses_the_issuers_only_key_for_its_algorithm() {
        let (rsa, ec) = (Signer::rsa("rsa-1"), Signer::ec("ec-1"));
        let token = rsa.sign_without_kid(&testing::claims());
        let one = verifier(StaticKeys::new(vec![rsa.jwk(), ec.jwk()]), &[]);
        assert!(one.verify(&token).await.is_ok());
        let two = verifier(
            StaticKeys::new(vec![rsa.jwk(), Signer::rsa("rsa-2").jwk()]),
            &[],
        );
        assert_eq!(
            two.verify(&token).await,
            Err(AuthError::Invalid(TokenRejection::NoKeyForAlgorithm))
        );
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
