//! JWT test helpers, shared by `src/auth/`'s unit tests (included with
//! `#[path]`) and the integration tests: signing keys and their JWKs, token
//! builders for each way a token can be bad, and a key source that counts fetches.
//! The including module must have `KeySource` and `KeyFetchError` in scope.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair;
use serde_json::{json, Value};

use super::{KeyFetchError, KeySource};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "chime-onboard-web";
/// A 2048-bit RSA key (PKCS#1 DER) made for these tests only.
const RSA_DER: &[u8] = include_bytes!("../fixtures/jwt-test-rsa.der");

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims that pass: this issuer and audience, valid for an hour.
pub fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "nbf": now - 5, "exp": now + 3600})
}

pub fn claims_with(name: &str, value: Value) -> Value {
    let mut claims = claims();
    claims[name] = value;
    claims
}

/// A key that signs tokens, and its public JWK.
pub struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

impl Signer {
    pub fn rsa(kid: &str) -> Self {
        let pair = ring::signature::RsaKeyPair::from_der(RSA_DER).expect("test RSA key");
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let n = URL_SAFE_NO_PAD.encode(&public.n);
        let e = URL_SAFE_NO_PAD.encode(&public.e);
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(RSA_DER),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e}),
        }
    }

    /// The RSA test key under another kid (for "unknown kid" and rotation).
    pub fn rsa_with_kid(kid: &str) -> Self {
        Self::rsa(kid)
    }

    /// A fresh P-256 key.
    pub fn ec(kid: &str) -> Self {
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("P-256");
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .expect("P-256 pair");
        let point = pair.public_key().as_ref(); // 0x04 || x || y
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": x, "y": y}),
        }
    }

    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key).expect("sign")
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }
}

/// `token`'s header and claims with `other`'s signature.
pub fn resign(token: &str, other: &Signer) -> String {
    let forged = other.sign(&json!({"x": 1}));
    let signature = forged.rsplit('.').next().unwrap_or_default();
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[2] = signature;
    parts.join(".")
}

/// An `alg: none` token (RFC 7519 §6: no signature).
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// An HS256 token whose secret is the public key's `n` (the classic confusion attack).
pub fn hs256(kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    let secret = Signer::rsa(kid).jwk["n"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A key source answering a settable key set and counting fetches.
#[derive(Clone)]
pub struct StaticKeys {
    keys: Arc<Mutex<Option<Vec<Value>>>>,
    fetches: Arc<AtomicUsize>,
}

impl StaticKeys {
    pub fn new(keys: Vec<Value>) -> Arc<Self> {
        Arc::new(Self {
            keys: Arc::new(Mutex::new(Some(keys))),
            fetches: Arc::new(AtomicUsize::new(0)),
        })
    }
    pub fn empty() -> Arc<Self> {
        Self::new(Vec::new())
    }
    /// Every fetch fails, as if the issuer were down.
    pub fn failing() -> Arc<Self> {
        Arc::new(Self {
            keys: Arc::new(Mutex::new(None)),
            fetches: Arc::new(AtomicUsize::new(0)),
        })
    }
    pub fn set(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = Some(keys);
    }
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl KeySource for StaticKeys {
    async fn fetch(&self) -> Result<Vec<Value>, KeyFetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.keys
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| KeyFetchError::Request {
                url: format!("{ISSUER}/.well-known/openid-configuration"),
                reason: "connection refused".to_owned(),
            })
    }
}
