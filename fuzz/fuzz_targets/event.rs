//! Any JSON payload through the real invocation handler: event classification,
//! then the HTTP adapter (lambda_http's conversion, routing, bodies, problem+json)
//! or the SQS adapter. Chime and SQS point at a closed loopback port with SDK
//! retries off, so a request that gets as far as Chime fails fast (502/retry).
//! A crash is a panic anywhere on that path; `Err` (an unsupported event) is fine.
#![no_main]

use std::sync::OnceLock;

use chime_onboard::{handle, App, Config};
use lambda_runtime::{Context, LambdaEvent};
use libfuzzer_sys::fuzz_target;

/// Nothing listens on the discard port: connections are refused at once.
const CLOSED: &str = "http://127.0.0.1:9";

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let credentials =
            aws_sdk_chime::config::Credentials::new("fuzz", "fuzz", None, None, "fuzz");
        let region = aws_config::Region::new("us-east-1");
        let retry = aws_config::retry::RetryConfig::disabled();
        App::new(
            Config::default(),
            aws_sdk_chime::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(region.clone())
                .credentials_provider(credentials.clone())
                .retry_config(retry.clone())
                .endpoint_url(CLOSED),
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(region)
                .credentials_provider(credentials)
                .retry_config(retry)
                .endpoint_url(CLOSED),
            None,
        )
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    // The runtime hands the handler a parsed JSON value; bytes that are not
    // JSON never reach it.
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut context = Context::default();
    context.request_id = "fuzz".to_owned();
    let app = app();
    runtime().block_on(async move {
        if let Ok(output) = handle(app, LambdaEvent::new(payload, context)).await {
            // The runtime serialises the answer; that must not fail either.
            serde_json::to_vec(&output).expect("the output serialises");
        }
    });
});
