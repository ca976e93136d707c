use aws_sdk_sqs::types::QueueAttributeName;
use lambda_local::esm::{self, Counters, Mapping};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::fake;

fn moto_url() -> &'static str {
    lambda_local::moto::shared_url(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/bin/moto_server"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn sqs() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .endpoint_url(moto_url())
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

struct Queues {
    source: String,
    source_arn: String,
    dlq: String,
}

/// A source queue (1 s visibility) whose messages move to a DLQ after `max_receives`.
async fn queues(sqs: &aws_sdk_sqs::Client, max_receives: u32) -> Queues {
    let name = format!(
        "esm-{}",
        std::process::id() as u64 * 1000 + fastrand::u64(..1000)
    );
    let arn = |url: String| async move {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("attributes");
        attrs.attributes().expect("attrs")[&QueueAttributeName::QueueArn].clone()
    };
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("dlq")
        .queue_url
        .expect("url");
    let dlq_arn = arn(dlq.clone()).await;
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}"#);
    let source = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    Queues {
        source_arn: arn(source.clone()).await,
        source,
        dlq,
    }
}

async fn depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> usize {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("attributes");
    attrs
        .attributes()
        .into_iter()
        .flatten()
        .map(|(_, v)| v.parse::<usize>().unwrap_or(0))
        .sum()
}

/// Runs the mapping until `done` (bounded: 40 s), then stops it.
async fn run_until(
    sqs: &aws_sdk_sqs::Client,
    mapping: Mapping,
    done: impl AsyncFn() -> bool,
) -> Arc<Counters> {
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(esm::run(
        sqs.clone(),
        mapping,
        Arc::clone(&counters),
        stopped,
    ));
    let began = Instant::now();
    while !done().await {
        assert!(
            began.elapsed() < Duration::from_secs(40),
            "not done: {:?}",
            counters.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).expect("stop");
    task.await.expect("join").expect("mapping");
    counters
}

fn mapping(queue: &str, function: lambda_local::Function) -> Mapping {
    Mapping {
        queue_url: queue.into(),
        batch_size: 10,
        concurrency: 1,
        wait_time_secs: 1,
        function,
        init_timeout: Duration::from_secs(20),
        kill: None,
        seed: 1,
        restart_on_rebuild: false,
        trace: None,
    }
}

async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, bodies: &[&str]) {
    for body in bodies {
        sqs.send_message()
            .queue_url(queue)
            .message_body(*body)
            .send()
            .await
            .expect("send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_failures_return_and_move_to_the_dlq_after_max_receives() {
    let sqs = sqs();
    let q = queues(&sqs, 2).await;
    send(&sqs, &q.source, &["ok-1", "ok-2", "fail-1"]).await;
    let events = std::env::temp_dir().join(format!("esm-events-{}.jsonl", fastrand::u64(..)));
    let function = fake("sqs").env("FAKE_EVENTS", events.to_string_lossy());

    let counters = run_until(&sqs, mapping(&q.source, function), async || {
        depth(&sqs, &q.dlq).await == 1 && depth(&sqs, &q.source).await == 0
    })
    .await
    .snapshot();

    assert_eq!(counters.deleted, 2, "{counters:?}");
    assert_eq!(counters.returned, 2, "fail-1, twice: {counters:?}");
    assert_eq!(counters.cold_starts, 1);
    let events = std::fs::read_to_string(&events).expect("events");
    let records: Vec<Value> = events
        .lines()
        .flat_map(|l| {
            serde_json::from_str::<Value>(l).expect("event")["Records"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let counts: Vec<&str> = records
        .iter()
        .filter(|r| r["body"] == "fail-1")
        .map(|r| {
            r["attributes"]["ApproximateReceiveCount"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(counts, ["1", "2"], "received twice, then redriven");
    for r in &records {
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], q.source_arn.as_str());
        assert!(r["attributes"]["SentTimestamp"].is_string(), "{r}");
        assert!(
            r["receiptHandle"].is_string() && r["md5OfBody"].is_string(),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_returns_the_whole_batch_and_the_next_one_starts_cold() {
    let sqs = sqs();
    let q = queues(&sqs, 2).await;
    send(&sqs, &q.source, &["a", "b"]).await;

    let counters = run_until(&sqs, mapping(&q.source, fake("crash")), async || {
        depth(&sqs, &q.dlq).await == 2
    })
    .await
    .snapshot();

    assert_eq!(counters.deleted, 0, "{counters:?}");
    assert!(counters.crashes >= 2, "{counters:?}");
    assert_eq!(counters.cold_starts, counters.invocations, "{counters:?}");
    assert_eq!(depth(&sqs, &q.source).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_error_returns_the_batch_without_an_invocation() {
    let sqs = sqs();
    let q = queues(&sqs, 1).await;
    send(&sqs, &q.source, &["a"]).await;

    let counters = run_until(&sqs, mapping(&q.source, fake("init-error")), async || {
        depth(&sqs, &q.dlq).await == 1
    })
    .await
    .snapshot();

    assert_eq!(counters.invocations, 0, "{counters:?}");
    assert!(counters.init_errors >= 1, "{counters:?}");
    assert_eq!(counters.deleted, 0);
}
