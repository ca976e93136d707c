//! The one HTTPS client all SDK clients share: rustls on ring, trusting the
//! Amazon Trust Services roots compiled into the binary.
//!
//! Why not the SDK's default client (rustls on aws-lc-rs, platform roots):
//! measured in BENCHMARKS.md, reading the platform store costs cold-start time
//! (on Debian ~290 files) and aws-lc-rs's CPU-jitter entropy source adds ~30 ms
//! to the first handshake. Every AWS endpoint the function calls chains to
//! these five roots. Set `SSL_CERT_FILE` or `SSL_CERT_DIR` (a proxy, an HTTPS
//! emulator) to trust the platform store instead, which honours both.

use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, PEM.
const AMAZON_ROOTS: &[u8] = include_bytes!("aws-roots.pem");

/// Which certificates the client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The Amazon Trust Services roots compiled in.
    Amazon,
    /// The platform's store, as `SSL_CERT_FILE` / `SSL_CERT_DIR` direct.
    Platform,
}

impl Roots {
    /// The platform's store when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (a
    /// proxy, an HTTPS emulator), else the Amazon roots; `get` reads a variable.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        if get("SSL_CERT_FILE").is_some() || get("SSL_CERT_DIR").is_some() {
            Self::Platform
        } else {
            Self::Amazon
        }
    }
}

/// The TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTPS client: {0}")]
pub struct TlsError(String);

fn context(roots: Roots) -> Result<tls::TlsContext, TlsError> {
    let trust = match roots {
        Roots::Amazon => tls::TrustStore::empty().with_pem_certificate(AMAZON_ROOTS),
        Roots::Platform => tls::TrustStore::default(),
    };
    tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| TlsError(e.to_string()))
}

/// Builds the shared HTTPS client (it also speaks plain HTTP, for emulators).
pub fn http_client(roots: Roots) -> Result<SharedHttpClient, TlsError> {
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context(roots)?)
        .build_https();
    Ok(SharedHttpClient::new(BuiltOnFirstUse(client)))
}

/// The shared client, minus the SDK's eager check: `Client::from_conf` asks
/// every HTTP client to build its connector (TLS configuration included) once
/// to validate it, and throws it away; with four SDK clients that is four
/// connectors at init for none used (≈ 0.15 ms of init, BENCHMARKS.md). The
/// connector is built once, on the first request, and cached by the client.
#[derive(Debug)]
struct BuiltOnFirstUse(SharedHttpClient);

impl HttpClient for BuiltOnFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The same TLS stack as a bare connector, for the few requests that are not
/// SDK calls (the JWT issuer's keys, `src/auth.rs`): rustls on ring, the same
/// roots. Callers bound each request's time themselves.
pub fn connector(roots: Roots) -> Result<aws_smithy_http_client::Connector, TlsError> {
    Ok(aws_smithy_http_client::Connector::builder()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context(roots)?)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_roots() {
        let pem = String::from_utf8_lossy(AMAZON_ROOTS);
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert!(http_client(Roots::Amazon).is_ok());
        assert!(http_client(Roots::Platform).is_ok());
    }
}
