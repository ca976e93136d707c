//! Where the issuer's public keys come from: the [`KeySource`] port and its
//! HTTPS implementation, [`HttpKeySource`]: OpenID discovery
//! (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the
//! configured one, OpenID Connect Discovery §4.3) for `jwks_uri`, then the key
//! set. Each document is read as a stream and refused as soon as it passes
//! [`MAX_DOCUMENT_BYTES`]; each request is bounded by [`FETCH_TIMEOUT`]. HTTPS
//! only, or plain HTTP to a loopback host (`make dev`, tests). Caching is the
//! verifier's ([`super::verifier`]), not this module's.

use std::time::Duration;

use aws_smithy_types::byte_stream::ByteStream;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::tls::Roots;

/// Bound on one discovery or JWKS request.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest discovery document or key set read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why the issuer's keys could not be fetched (the request is answered `503`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFetchError {
    /// The HTTPS client could not be built (its trusted roots did not load).
    #[error("the HTTPS client could not be built: {0}")]
    Client(String),
    /// A URL from the discovery document is not https:// (or http:// to loopback).
    #[error("{url}: {reason}")]
    NotFetchable { url: String, reason: String },
    /// The connection failed, or broke while the document was read.
    #[error("GET {url}: {reason}")]
    Request { url: String, reason: String },
    /// The server answered with a status other than 200.
    #[error("GET {url}: status {status}")]
    Status { url: String, status: u16 },
    /// The document passed [`MAX_DOCUMENT_BYTES`]; reading stopped there.
    #[error("GET {url}: the document exceeds {limit} bytes")]
    TooLarge { url: String, limit: usize },
    /// The document is not JSON.
    #[error("GET {url}: not JSON: {reason}")]
    NotJson { url: String, reason: String },
    /// No complete answer within [`FETCH_TIMEOUT`].
    #[error("GET {url}: no answer within {after:?}")]
    Timeout { url: String, after: Duration },
    /// The discovery document names no `jwks_uri`.
    #[error("{url} has no jwks_uri")]
    NoJwksUri { url: String },
    /// The discovery document's `issuer` is not `AUTH_JWT_ISSUER`: it describes
    /// another issuer, whose keys must not verify this one's tokens.
    #[error("{url} names the issuer {found:?}, not the configured {expected:?}")]
    IssuerMismatch {
        url: String,
        expected: String,
        found: String,
    },
    /// The key set has no `keys` array.
    #[error("{url} has no keys array")]
    NoKeys { url: String },
}

/// Where the issuer's public keys come from.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    /// The issuer's current key set (the JWKS document's `keys`).
    async fn fetch(&self) -> Result<Vec<Value>, KeyFetchError>;
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

    async fn get_json(&self, url: &str) -> Result<Value, KeyFetchError> {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        use aws_smithy_types::body::SdkBody;

        let request_error = |reason: String| KeyFetchError::Request {
            url: url.to_owned(),
            reason,
        };
        // The same rule as for the issuer: https, or http to loopback only.
        crate::config::fetchable_url("jwks_uri", url).map_err(|e| KeyFetchError::NotFetchable {
            url: url.to_owned(),
            reason: e.reason,
        })?;
        let connector = self
            .connector
            .get_or_try_init(|| async { crate::tls::connector(self.roots) })
            .await
            .map_err(|e| KeyFetchError::Client(e.to_string()))?;
        let mut request = aws_smithy_runtime_api::http::Request::new(SdkBody::empty());
        request
            .set_uri(url)
            .map_err(|e| request_error(e.to_string()))?;
        request.headers_mut().insert("accept", "application/json");
        let fetch = async {
            let response = connector
                .call(request)
                .await
                .map_err(|e| request_error(e.to_string()))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(KeyFetchError::Status {
                    url: url.to_owned(),
                    status,
                });
            }
            let declared = response
                .headers()
                .get("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
                return Err(too_large(url));
            }
            let body = read_limited(ByteStream::new(response.into_body()), url).await?;
            serde_json::from_slice(&body).map_err(|e| KeyFetchError::NotJson {
                url: url.to_owned(),
                reason: e.to_string(),
            })
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| KeyFetchError::Timeout {
                url: url.to_owned(),
                after: FETCH_TIMEOUT,
            })?
    }
}

fn too_large(url: &str) -> KeyFetchError {
    KeyFetchError::TooLarge {
        url: url.to_owned(),
        limit: MAX_DOCUMENT_BYTES,
    }
}

/// The body, chunk by chunk, refused as soon as it passes [`MAX_DOCUMENT_BYTES`]
/// (whatever `Content-Length` said, or without one): never more is held.
async fn read_limited(mut stream: ByteStream, url: &str) -> Result<Vec<u8>, KeyFetchError> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| KeyFetchError::Request {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large(url));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[async_trait::async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<Vec<Value>, KeyFetchError> {
        let jwks_uri = self
            .jwks_uri
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let discovery = self.get_json(&url).await?;
                let found = discovery.get("issuer").and_then(Value::as_str);
                if found != Some(self.issuer.as_str()) {
                    return Err(KeyFetchError::IssuerMismatch {
                        url,
                        expected: self.issuer.clone(),
                        found: found.unwrap_or("(none)").to_owned(),
                    });
                }
                discovery
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(KeyFetchError::NoJwksUri { url })
            })
            .await?;
        let set = self.get_json(jwks_uri).await?;
        match set.get("keys").and_then(Value::as_array) {
            Some(keys) => Ok(keys.clone()),
            None => Err(KeyFetchError::NoKeys {
                url: jwks_uri.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_up_to_the_limit_is_read_and_one_byte_more_is_refused() {
        let url = "http://127.0.0.1:1/jwks";
        let exact = vec![b' '; MAX_DOCUMENT_BYTES];
        let read = read_limited(ByteStream::from(exact.clone()), url).await;
        assert_eq!(read.map(|b| b.len()), Ok(MAX_DOCUMENT_BYTES));
        let over = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        let read = read_limited(ByteStream::from(over), url).await;
        assert_eq!(read, Err(too_large(url)));
    }

    #[tokio::test]
    async fn a_key_url_that_is_not_https_is_refused_before_any_request() {
        let source = HttpKeySource::new("https://issuer.example", Roots::Amazon);
        let err = source.get_json("http://issuer.example/jwks").await.err();
        assert!(
            matches!(&err, Some(KeyFetchError::NotFetchable { url, .. }) if url == "http://issuer.example/jwks"),
            "{err:?}"
        );
        // Nothing was built: the refusal came first.
        assert!(source.connector.get().is_none());
    }
}
