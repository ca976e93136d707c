//! The built `chime-onboard` binary, run as Lambda runs it: lambda-local's Runtime
//! API on loopback hands it events; its endpoints come only from the SDKs'
//! standard variables (`AWS_ENDPOINT_URL_CHIME`, `AWS_ENDPOINT_URL_SQS`).

use std::time::Duration;

use lambda_local::{Environment, Function, Invoked, Output};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::support::{create_queue, moto_url, sqs_client, World};

/// Invokes once: `("response" | "error", body)`; panics on a crash or timeout.
async fn invoke(env: &mut Environment, event: &Value) -> (&'static str, Value) {
    let (outcome, body) = match env.invoke(event.to_string()).await {
        Invoked::Response { body, .. } => ("response", body),
        Invoked::Error { body, .. } => ("error", body),
        other => panic!("expected an answer, got {other:?}"),
    };
    (
        outcome,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_built_binary_takes_its_endpoints_from_the_standard_variables() {
    let world = World::new().await;
    let reply_queue = create_queue(&sqs_client(), false).await;
    let mut http = crate::event!("apigw-v2-post-accounts.json");
    http["body"] = json!(r#"{"Name":"From The Binary"}"#);
    let sqs = crate::event!("sqs-standard-batch.json");
    let authorizer = crate::event!("apigw-authorizer-token.json");

    let mut function = Function::new(env!("CARGO_BIN_EXE_chime-onboard"));
    function.memory_mb = 256;
    function.output = Output::Piped;
    let function = function
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL_CHIME", world.chime.url().as_str())
        .env("AWS_ENDPOINT_URL_SQS", moto_url())
        .env("REPLY_QUEUE_URL", reply_queue.as_str());
    let mut env = Environment::start(&function)
        .await
        .expect("start the binary");
    env.wait_init(Duration::from_secs(30)).await.expect("init");

    let (outcome, created) = invoke(&mut env, &http).await;
    let http_request_id = env.last_request_id().expect("request id").to_owned();
    assert_eq!(outcome, "response", "{created}");
    assert_eq!(created["statusCode"], json!(201), "{created}");
    let created: Value =
        serde_json::from_str(created["body"].as_str().unwrap_or("null")).unwrap_or_default();
    assert!(world.has_account(created["AccountId"].as_str().unwrap_or_default()));

    let (outcome, batch) = invoke(&mut env, &sqs).await;
    assert_eq!(outcome, "response", "{batch}");
    assert_eq!(batch, json!({"batchItemFailures": []}));
    let replies = world
        .replies_from(&reply_queue, 3, Duration::from_secs(5))
        .await;
    assert_eq!(replies.len(), 3);
    assert!(replies.iter().all(|r| r.status() == "Created"));

    // An authorizer payload is an invocation error with its own errorType.
    let (outcome, error) = invoke(&mut env, &authorizer).await;
    assert_eq!(outcome, "error", "{error}");
    assert_eq!(error["errorType"], json!("AuthorizerEventUnsupported"));
    assert!(env.is_alive(), "an invocation error keeps the environment");

    // JSON logs carrying the Lambda request id.
    let mut stdout = env.take_stdout().expect("stdout");
    env.kill().await;
    let mut logs = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stdout.read_to_string(&mut logs)).await;
    let created_line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == json!("account created"));
    let line = created_line.unwrap_or_else(|| panic!("no JSON 'account created' line in:\n{logs}"));
    assert!(line.to_string().contains(&http_request_id), "{line}");
    assert!(!logs.contains("From The Binary"), "names are never logged");

    // Embedded-metric-format lines: one per invocation, CloudWatch's shape.
    let emf: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("_aws").is_some())
        .collect();
    let by_ingress = |ingress: &str| {
        emf.iter()
            .find(|l| l["Ingress"] == json!(ingress))
            .unwrap_or_else(|| panic!("no EMF line for {ingress} in:\n{logs}"))
    };
    for (ingress, created) in [("http", 1), ("sqs", 3)] {
        let line = by_ingress(ingress);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], json!("ChimeOnboard"), "{line}");
        assert_eq!(directive["Dimensions"], json!([["Ingress"]]), "{line}");
        assert!(line["_aws"]["Timestamp"].as_u64().is_some(), "{line}");
        assert_eq!(line["Created"], json!(created), "{line}");
        let latencies = line["ChimeLatency"].as_array().map(Vec::len);
        assert_eq!(
            latencies,
            Some(created),
            "one latency per CreateAccount: {line}"
        );
    }
}
