//! The built `chime-onboard` binary, run as Lambda runs it: a minimal Runtime
//! API on loopback hands it events; its endpoints come only from the SDKs'
//! standard variables (`AWS_ENDPOINT_URL_CHIME`, `AWS_ENDPOINT_URL_SQS`).

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::{create_queue, moto_url, sqs_client, World};

/// What the function posted for one invocation.
#[derive(Debug)]
struct Posted {
    request_id: String,
    outcome: &'static str,
    body: Value,
}

/// Serves `events` to the first `next` calls, then holds further calls open.
async fn runtime_api(events: Vec<Value>) -> (String, mpsc::UnboundedReceiver<Posted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let queue: Arc<Mutex<VecDeque<(String, Value)>>> = Arc::new(Mutex::new(
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (format!("invoke-{i}"), e))
            .collect(),
    ));
    let (posted, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, queue.clone(), posted.clone()));
        }
    });
    (addr, received)
}

/// One keep-alive connection of the Runtime API client.
async fn serve(
    stream: TcpStream,
    queue: Arc<Mutex<VecDeque<(String, Value)>>>,
    posted: mpsc::UnboundedSender<Posted>,
) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if read.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let response = if path.ends_with("/invocation/next") {
            let next = queue.lock().expect("queue").pop_front();
            let Some((id, event)) = next else {
                // No more work: leave the function waiting, as Lambda does.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            };
            let payload = event.to_string();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 30_000)
                .unwrap_or(0);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:chime-onboard\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
                 content-length: {}\r\n\r\n{payload}",
                payload.len()
            )
        } else {
            let mut parts = path.rsplit('/');
            let outcome = match parts.next() {
                Some("response") => "response",
                _ => "error",
            };
            let request_id = parts.next().unwrap_or("").to_owned();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = posted.send(Posted {
                request_id,
                outcome,
                body,
            });
            "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_owned()
        };
        if write.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn the_built_binary_takes_its_endpoints_from_the_standard_variables() {
    let world = World::new().await;
    let reply_queue = create_queue(&sqs_client(), false).await;
    let mut http = crate::event!("apigw-v2-post-accounts.json");
    http["body"] = json!(r#"{"Name":"From The Binary"}"#);
    let sqs = crate::event!("sqs-standard-batch.json");
    let authorizer = crate::event!("apigw-authorizer-token.json");
    let (runtime, mut posted) = runtime_api(vec![http, sqs, authorizer]).await;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chime-onboard"))
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", runtime.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "chime-onboard"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/chime-onboard"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ENDPOINT_URL_CHIME", world.chime.url().as_str()),
            ("AWS_ENDPOINT_URL_SQS", moto_url()),
            ("REPLY_QUEUE_URL", reply_queue.as_str()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the chime-onboard binary");

    let mut results = Vec::new();
    while results.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(60), posted.recv()).await;
        results.push(
            next.ok()
                .flatten()
                .expect("the function answers every invocation"),
        );
    }
    let _ = child.kill().await;

    assert_eq!(results[0].request_id, "invoke-0");
    assert_eq!(results[0].outcome, "response", "{:?}", results[0]);
    assert_eq!(results[0].body["statusCode"], json!(201));
    let created: Value = serde_json::from_str(results[0].body["body"].as_str().unwrap_or("null"))
        .unwrap_or_default();
    assert!(world.has_account(created["AccountId"].as_str().unwrap_or_default()));

    assert_eq!(results[1].outcome, "response", "{:?}", results[1]);
    assert_eq!(results[1].body, json!({"batchItemFailures": []}));
    let replies = world
        .replies_from(&reply_queue, 3, Duration::from_secs(5))
        .await;
    assert_eq!(replies.len(), 3);
    assert!(replies.iter().all(|r| r.status() == "Created"));

    // An authorizer payload is an invocation error with its own errorType.
    assert_eq!(results[2].outcome, "error", "{:?}", results[2]);
    assert_eq!(
        results[2].body["errorType"],
        json!("AuthorizerEventUnsupported")
    );

    // JSON logs carrying the Lambda request id.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut logs = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stdout.read_to_string(&mut logs)).await;
    let created_line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == json!("account created"));
    let line = created_line.unwrap_or_else(|| panic!("no JSON 'account created' line in:\n{logs}"));
    assert!(line.to_string().contains("invoke-0"), "{line}");
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
