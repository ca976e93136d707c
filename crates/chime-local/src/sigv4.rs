//! AWS Signature Version 4: the `Authorization` header check every account-API request passes.
//!
//! Without configured credentials any SigV4-shaped header is accepted (the SDKs always sign,
//! so tests need no secrets). With credentials, the access key must match and the signature
//! is recomputed from the request (canonical request, string to sign, derived key) over the
//! headers the client listed in `SignedHeaders`. The request time is not checked for skew.

use crate::error::{ApiError, ErrorKind};
use axum::http::{HeaderMap, Method};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The access key pair chime-local verifies signatures with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id clients must sign with.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

/// The parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    scope: &'a str,
    date: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let credential = credential?;
    let (access_key_id, scope) = credential.split_once('/')?;
    let date = scope.split('/').next()?;
    if access_key_id.is_empty() || scope.split('/').count() != 4 {
        return None;
    }
    Some(Authorization {
        access_key_id,
        scope,
        date,
        signed_headers: signed_headers.filter(|s| !s.is_empty())?,
        signature: signature.filter(|s| !s.is_empty())?,
    })
}

/// Checks the request's `Authorization`; `Ok` when it passes.
pub(crate) fn verify(
    credentials: Option<&Credentials>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let Some(header) = headers.get("authorization") else {
        return Err(ApiError::of(ErrorKind::MissingAuthenticationTokenException));
    };
    let auth = header
        .to_str()
        .ok()
        .and_then(parse)
        .ok_or_else(|| ApiError::of(ErrorKind::IncompleteSignatureException))?;
    let Some(credentials) = credentials else {
        return Ok(());
    };
    if auth.access_key_id != credentials.access_key_id {
        return Err(ApiError::of(ErrorKind::UnrecognizedClientException));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::IncompleteSignatureException,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            )
        })?;
    let canonical = canonical_request(method, path, query, headers, auth.signed_headers, body);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        auth.scope,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut scope = auth.scope.split('/');
    let (_, region, service) = (scope.next(), scope.next(), scope.next());
    let key = signing_key(
        &credentials.secret_access_key,
        auth.date,
        region.unwrap_or_default(),
        service.unwrap_or_default(),
    );
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::of(ErrorKind::InvalidSignatureException))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => Vec::new(),
    }
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, the rest `%XX`.
fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

fn canonical_request(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    signed_headers: &str,
    body: &[u8],
) -> String {
    // Non-S3 services sign the path as sent, encoded once more ("double encoding").
    let path = if path.is_empty() { "/" } else { path };
    let canonical_uri = uri_encode(path.as_bytes(), true);
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let payload_hash = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| hex::encode(Sha256::digest(body)), str::to_owned);
    format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    // The "get-vanilla" case of the AWS SigV4 test suite.
    #[test]
    fn verifies_the_aws_test_suite_vector() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        };
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert("authorization", HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
        let ok = verify(Some(&creds), &Method::GET, "/", None, &headers, b"");
        assert_eq!(ok, Ok(()));
        let wrong = Credentials {
            secret_access_key: "nope".to_owned(),
            ..creds.clone()
        };
        let err = verify(Some(&wrong), &Method::GET, "/", None, &headers, b"");
        assert_eq!(
            err.map_err(|e| e.kind),
            Err(ErrorKind::InvalidSignatureException)
        );
        let other_key = Credentials {
            access_key_id: "OTHER".to_owned(),
            ..creds
        };
        let err = verify(Some(&other_key), &Method::GET, "/", None, &headers, b"");
        assert_eq!(
            err.map_err(|e| e.kind),
            Err(ErrorKind::UnrecognizedClientException)
        );
    }

    #[test]
    fn shapes() {
        let no_header = verify(None, &Method::GET, "/", None, &HeaderMap::new(), b"");
        assert_eq!(
            no_header.map_err(|e| e.kind),
            Err(ErrorKind::MissingAuthenticationTokenException)
        );
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer x"));
        let bad = verify(None, &Method::GET, "/", None, &headers, b"");
        assert_eq!(
            bad.map_err(|e| e.kind),
            Err(ErrorKind::IncompleteSignatureException)
        );
        assert!(
            parse("AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00").is_none()
        );
        assert!(parse("AWS4-HMAC-SHA256 Credential=a/20200101/r/s/aws4_request,SignedHeaders=host,Signature=00").is_some());
    }

    #[test]
    fn canonical_query_sorts_and_reencodes() {
        let c = canonical_request(
            &Method::GET,
            "/accounts",
            Some("next-token=a%2Fb&max-results=2&name=x%20y"),
            &HeaderMap::new(),
            "host",
            b"",
        );
        assert!(
            c.contains("\nmax-results=2&name=x%20y&next-token=a%2Fb\n"),
            "{c}"
        );
    }
}
