//! The whole path for the end-to-end tests, on loopback: moto_server (SQS and DynamoDB,
//! one per test binary), chime-local with a token-bucket rate limit (in process, one per
//! test), and a local event source mapping that hands request-queue batches to the
//! function's own `handle` in process, deleting what it did not report failed. Clients,
//! queues and the table come from `test_support`, shared with the function's tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chime_onboard::{handle, App, Config};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};

use test_support::{chime_config, create_queue, create_table, queue_arn, sqs_config};
pub use test_support::{moto_url, unique, REGION};

/// Must match the function's MAX_RECEIVE_COUNT: throttled messages come back this often.
const MAX_RECEIVE_COUNT: u32 = 50;

/// One test's world.
pub struct World {
    pub chime: chime_local::Handle,
    pub request_queue: String,
    /// The stack's own reply queue (the function's `REPLY_QUEUE_URL`): a run never uses it.
    pub reply_queue: String,
    /// The queue-name prefix the function admits for per-run reply queues.
    pub reply_prefix: String,
    pub sqs: aws_sdk_sqs::Client,
    pub dir: PathBuf,
    stop: Arc<AtomicBool>,
}

impl World {
    /// chime-local limited to `rps` CreateAccount calls a second, the queues, the table,
    /// and `pollers` event-source-mapping pollers running the function.
    pub async fn start(rps: f64, pollers: usize) -> Self {
        let chime = chime_local::spawn(chime_local::Config {
            faults: chime_local::Faults {
                rate_limit: Some(chime_local::RateLimit { rps, burst: 5 }),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .expect("spawn chime-local");
        let sqs = test_support::sqs_client();
        let dlq = create_queue(&sqs, &unique("requests-dlq"), &[]).await;
        let dlq_arn = queue_arn(&sqs, &dlq).await;
        let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string()});
        let request_queue = create_queue(
            &sqs,
            &unique("requests"),
            &[
                (QueueAttributeName::VisibilityTimeout, "2".into()),
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            ],
        )
        .await;
        let reply_queue = create_queue(&sqs, &unique("replies"), &[]).await;
        // As the template: the reply queue and the per-run prefix, same account and endpoint.
        let reply_prefix = format!("{}-", unique("bulk"));
        let account_base = reply_queue
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or_default();
        let table = create_table(&test_support::dynamodb_client()).await;
        let config = Config {
            reply_queue_url: Some(reply_queue.clone()),
            allowed_reply_queues: vec![
                reply_queue.clone(),
                format!("{account_base}/{reply_prefix}*"),
            ],
            idempotency_table: Some(table),
            max_receive_count: MAX_RECEIVE_COUNT,
            ..Config::default()
        };
        let app = Arc::new(App::new(
            config,
            chime_config(&chime.url()),
            sqs_config(),
            Some(test_support::dynamodb_config()),
        ));
        let arn = queue_arn(&sqs, &request_queue).await;
        let stop = Arc::new(AtomicBool::new(false));
        // The handler's future is not `Send`-general enough for `tokio::spawn`: the pollers
        // run together on a thread of their own, as one execution environment each.
        let (client, queue, flag) = (sqs.clone(), request_queue.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mapping = (0..pollers).map(|_| {
                poll(
                    client.clone(),
                    queue.clone(),
                    arn.clone(),
                    app.clone(),
                    flag.clone(),
                )
            });
            runtime.block_on(futures_util::future::join_all(mapping));
        });
        let dir = std::env::temp_dir().join(unique("onboard-bulk-e2e"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self {
            chime,
            request_queue,
            reply_queue,
            reply_prefix,
            sqs: aws_sdk_sqs::Client::from_conf(sqs_config().build()),
            dir,
            stop,
        }
    }

    /// The per-run reply queues of this world that still exist.
    pub async fn run_queues(&self) -> Vec<String> {
        self.sqs
            .list_queues()
            .queue_name_prefix(&self.reply_prefix)
            .send()
            .await
            .expect("list queues")
            .queue_urls
            .unwrap_or_default()
    }

    /// Messages on the stack's reply queue (a reply that went astray).
    pub async fn stack_replies(&self) -> usize {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.reply_queue)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default();
        attributes
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Names of the accounts chime-local holds.
    pub fn account_names(&self) -> Vec<String> {
        self.chime.accounts().into_iter().map(|a| a.name).collect()
    }

    /// `onboard-bulk` with the world's queues and credentials; stdout and stderr go to
    /// files named by `tag` in the world's folder.
    pub fn cli(&self, tag: &str, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_onboard-bulk"));
        let out = std::fs::File::create(self.dir.join(format!("{tag}.out"))).expect("out");
        let err = std::fs::File::create(self.dir.join(format!("{tag}.err"))).expect("err");
        command
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        command
    }

    /// The arguments of `submit` for `file` against this world.
    pub fn submit_args(&self, file: &Path, report: &Path) -> Vec<String> {
        vec![
            "submit".into(),
            file.display().to_string(),
            "--queue".into(),
            self.request_queue.clone(),
            "--reply-queue-prefix".into(),
            self.reply_prefix.clone(),
            "--report".into(),
            report.display().to_string(),
            "--endpoint-url".into(),
            moto_url().into(),
            "--idle-timeout".into(),
            "15".into(),
            "--progress-every".into(),
            "1".into(),
        ]
    }

    pub fn output(&self, tag: &str) -> String {
        let read = |ext| std::fs::read_to_string(self.dir.join(format!("{tag}.{ext}")));
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read("out").unwrap_or_default(),
            read("err").unwrap_or_default()
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The pollers see it within their one-second long poll and end with their thread.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One poller of the local event source mapping: receive up to ten, invoke the
/// function with the SQS event Lambda would build, delete all but the reported failures.
async fn poll(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    arn: String,
    app: Arc<App>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(got) = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), Value::String(v)))
                    .collect();
                let message_attributes: serde_json::Map<String, Value> = m
                    .message_attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            json!({"stringValue": v.string_value, "dataType": v.data_type,
                                   "stringListValues": [], "binaryListValues": []}),
                        )
                    })
                    .collect();
                json!({
                    "messageId": m.message_id, "receiptHandle": m.receipt_handle,
                    "body": m.body, "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body, "eventSource": "aws:sqs",
                    "eventSourceARN": arn, "awsRegion": REGION,
                })
            })
            .collect();
        let context = test_support::context(Duration::from_secs(30));
        let output = handle(&app, LambdaEvent::new(json!({"Records": records}), context)).await;
        let failed: Vec<String> = match output.map(serde_json::to_value) {
            Ok(Ok(value)) => value["batchItemFailures"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            // An invocation error returns the whole batch, as Lambda does.
            _ => continue,
        };
        for m in &messages {
            let id = m.message_id.clone().unwrap_or_default();
            if failed.contains(&id) {
                continue;
            }
            if let Some(handle) = &m.receipt_handle {
                let _ = sqs
                    .delete_message()
                    .queue_url(&queue)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
    }
}
