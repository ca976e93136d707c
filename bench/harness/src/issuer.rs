//! A stand-in OpenID issuer for the deployed case's signed-in variant
//! (`AUTH_JWT_ISSUER` set): discovery and a JWKS with one ES256 key, and
//! tokens signed with it. Behind the TLS and delaying proxies like the other
//! upstreams, so fetching the keys costs what it would over a network: TCP,
//! TLS, the discovery document, the key set.
use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The audience the tokens carry and the function is told to accept.
pub const AUDIENCE: &str = "chime-onboard-bench";
const KID: &str = "bench-es256";

/// The issuer's plain-HTTP server (the TLS proxy in front of it gives it https).
pub struct Issuer {
    pub addr: SocketAddr,
    key: Arc<EcdsaKeyPair>,
    task: JoinHandle<()>,
}

impl Issuer {
    pub async fn start() -> Result<Issuer> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("could not generate the issuer's key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow!("could not load the issuer's key"))?;
        let key = Arc::new(key);
        let jwks = Arc::new(jwks(&key).to_string());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let jwks = Arc::clone(&jwks);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(Arc::clone(&jwks), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Issuer { addr, key, task })
    }

    /// A token of `issuer` (the URL the function is configured with), valid for an hour.
    pub fn token(&self, issuer: &str) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": KID });
        let claims = json!({
            "iss": issuer, "sub": "bench-user", "aud": AUDIENCE,
            "iat": now, "exp": now + 3600,
        });
        let signed = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .map_err(|_| anyhow!("could not sign the token"))?;
        Ok(format!("{signed}.{}", b64url(signature.as_ref())))
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// The key set: the one P-256 public key (uncompressed point 0x04 ‖ x ‖ y).
fn jwks(key: &EcdsaKeyPair) -> Value {
    let point = key.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
        "x": b64url(x), "y": b64url(y),
    }]})
}

/// Discovery names the issuer by the address the client used (the delaying
/// proxy's, passed on in `Host`), so it matches the configured issuer.
async fn answer(
    jwks: Arc<String>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let issuer = format!("https://{host}");
    let body = match req.uri().path() {
        "/.well-known/openid-configuration" => {
            json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") }).to_string()
        }
        "/jwks" => jwks.as_str().to_string(),
        _ => {
            let mut not_found = Response::new(Full::new(Bytes::from_static(b"{}")));
            *not_found.status_mut() = hyper::StatusCode::NOT_FOUND;
            return Ok(not_found);
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Base64url without padding (RFC 7515 §2).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_rfc_examples() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(b"foob"), "Zm9vYg");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    }
}
