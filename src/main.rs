//! The Lambda entry point: build the state once, then serve invocations.

use aws_config::BehaviorVersion;
use chime_onboard::{handle, tls, App, Config};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One thread: the work is I/O on a handful of connections, and a
// multi-threaded runtime only adds threads to start during a cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(tls::http_client(config.roots)?)
        .load()
        .await;
    let app = App::from_sdk_config(config, &sdk);
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(app, event).await
    }))
    .await
}
