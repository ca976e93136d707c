//! The TLS floor: a hello world that makes one HTTPS request per invocation
//! with the same client stack as the AWS SDK's default HTTPS client
//! (hyper 1 + hyper-rustls, rustls with aws-lc-rs or ring, and the platform's
//! root certificates from rustls-native-certs, which honours `SSL_CERT_FILE`).
//!
//! The client is built at init (as an SDK client is); the connection and the
//! TLS handshake happen in the first invocation, as they do for the function.
//! `HELLO_TLS_URL` names the URL to GET.
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::{json, Value};
use std::sync::Arc;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

#[cfg(feature = "ring")]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(all(feature = "aws-lc", not(feature = "ring")))]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn client() -> Result<HttpsClient, Error> {
    let connector = HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider())?
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

async fn handle(
    client: &HttpsClient,
    url: &str,
    _event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let response = client.get(url.parse()?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(json!({"statusCode": status, "bodyBytes": body.len()}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let url = std::env::var("HELLO_TLS_URL").map_err(|_| "HELLO_TLS_URL is not set")?;
    let client = Arc::new(client()?);
    run(service_fn(|event| {
        let client = Arc::clone(&client);
        let url = url.clone();
        async move { handle(&client, &url, event).await }
    }))
    .await
}
