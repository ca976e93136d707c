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
    let app = &app;
    let serve = lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(app, event).await
    }));
    // The runtime asks for the first event while the issuer's keys are
    // fetched and the connections open (each only where configured).
    let (served, ()) = tokio::join!(serve, app.before_first_event());
    served
}
