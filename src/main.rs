//! The Lambda entry point: build the state once, then serve invocations.

use chime_onboard::{handle, App, Config};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One thread: the work is I/O on a handful of connections, and a
// multi-threaded runtime only adds threads to start during a cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = App::load(Config::from_env()?).await?;
    if let Some(warm_up) = app.warm_up.clone() {
        tokio::spawn(warm_up.run());
    }
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(app, event).await
    }))
    .await
}
