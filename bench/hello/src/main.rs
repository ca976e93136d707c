//! The floor: the smallest useful `lambda_runtime` function.
//!
//! Same release profile as `chime-onboard` (it is a workspace member), so the
//! benchmark's `init_ratio_vs_hello` compares code, not compiler settings.
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let _ = event;
    Ok(json!({"statusCode": 200, "body": "hello"}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    run(service_fn(handle)).await
}
