//! The SDK floor: the smallest Lambda function that answers each invocation
//! with one `CreateAccount` call through `aws-sdk-chime`, built with the same
//! release profile and HTTPS stack (rustls on ring) as the function.
//!
//! It does nothing the SDK call does not need: no event classification, no
//! validation, no idempotency, no metrics, no log line of its own. The client
//! is the leanest way to build one: no `aws_config` loader, region and
//! credentials from Lambda's environment variables, the endpoint from
//! `AWS_ENDPOINT_URL_CHIME`, retries off, and the function's own HTTPS client
//! (`chime_onboard::tls`: rustls on ring, the Amazon roots, or the platform's
//! store when `SSL_CERT_FILE` is set, built on first use). `make bench`
//! compares the function to it, so what one SDK call costs is told apart from
//! what the function adds (BENCHMARKS.md, "The SDK floor").
use aws_sdk_chime::config::{BehaviorVersion, Credentials, Region};
use chime_onboard::tls::{http_client, Roots};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::{json, Value};

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

fn client() -> Result<aws_sdk_chime::Client, Error> {
    let http = http_client(Roots::from_vars(|name| std::env::var(name).ok()))?;
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID")?,
        env("AWS_SECRET_ACCESS_KEY")?,
        std::env::var("AWS_SESSION_TOKEN").ok(),
        None,
        "environment",
    );
    let config = aws_sdk_chime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("AWS_REGION")?))
        .credentials_provider(credentials)
        .endpoint_url(env("AWS_ENDPOINT_URL_CHIME")?)
        .retry_config(aws_sdk_chime::config::retry::RetryConfig::disabled())
        .http_client(http)
        .build();
    Ok(aws_sdk_chime::Client::from_conf(config))
}

/// The account name from an API Gateway event's JSON body (`{"Name": ...}`).
fn name(event: &Value) -> Option<String> {
    let body: Value = serde_json::from_str(event.get("body")?.as_str()?).ok()?;
    Some(body.get("Name")?.as_str()?.to_owned())
}

async fn handle(client: &aws_sdk_chime::Client, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let name = name(&event.payload).ok_or("no Name in the event's body")?;
    let output = client.create_account().name(name).send().await?;
    let id = output.account.map(|a| a.account_id).unwrap_or_default();
    Ok(json!({"statusCode": 201, "body": json!({"AccountId": id}).to_string()}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let client = client()?;
    let client = &client;
    run(service_fn(move |event| async move {
        handle(client, event).await
    }))
    .await
}
