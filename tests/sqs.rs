//! DESIGN.md's SQS contract through the real handler, replies read back from moto.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{create_queue, Options, World};

/// An SQS record for `body`, in the shape Lambda delivers.
fn record(id: &str, body: &str, attributes: Value) -> Value {
    let mut record = crate::event!("sqs-standard-batch.json")["Records"][0].clone();
    record["messageId"] = json!(id);
    record["body"] = json!(body);
    record["messageAttributes"] = attributes;
    record
}

fn string_attribute(value: &str) -> Value {
    json!({"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"})
}

fn failures(response: &Value) -> Vec<String> {
    let mut ids: Vec<String> = response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_mixed_batch_of_ten_gets_one_reply_each() {
    let world = World::new().await;
    let good = [
        "Acme",
        "Globex",
        "Initech",
        "Umbrella",
        "Hooli",
        "Stark Industries",
    ];
    let bad = [
        ("not json", "BodyNotJson"),
        (r#"{"Name": "   "}"#, "NameEmpty"),
        (r#"{"Name": 42}"#, "NameNotString"),
        (r#"{"RequestId": "r-x"}"#, "NameMissing"),
    ];
    let mut records = Vec::new();
    let mut expected = HashMap::new();
    for (i, name) in good.iter().enumerate() {
        let request_id = format!("good-{i}");
        let body = json!({"Name": name, "RequestId": request_id}).to_string();
        records.push(record(
            &format!("m-good-{i}"),
            &body,
            json!({"CorrelationId": string_attribute(&format!("c-{i}"))}),
        ));
        expected.insert(request_id, ("Created", None));
    }
    for (i, (body, code)) in bad.iter().enumerate() {
        let id = format!("m-bad-{i}");
        // Without a usable RequestId the reply carries the message id.
        let request_id = if *code == "NameMissing" {
            "r-x".to_owned()
        } else {
            id.clone()
        };
        records.push(record(&id, body, json!({})));
        expected.insert(request_id, ("Rejected", Some(*code)));
    }
    let response = world.invoke(json!({"Records": records})).await;
    assert!(failures(&response).is_empty(), "{response}");

    let replies = world.replies(10).await;
    assert_eq!(replies.len(), 10);
    for reply in &replies {
        let (status, code) = expected
            .get(reply.request_id())
            .unwrap_or_else(|| panic!("unexpected reply {:?}", reply.body));
        assert_eq!(reply.status(), *status, "{:?}", reply.body);
        assert_eq!(
            reply.attributes.get("Status").map(String::as_str),
            Some(*status)
        );
        assert!(reply.body["SourceMessageId"]
            .as_str()
            .is_some_and(|m| m.starts_with("m-")));
        match code {
            Some(code) => assert_eq!(reply.body["Error"]["Code"], json!(code)),
            None => {
                let id = reply.body["AccountId"].as_str().unwrap_or_default();
                assert!(world.has_account(id), "{id} not in chime-local");
                assert_eq!(reply.body["Account"]["AccountId"], json!(id));
                let correlation = reply.body["CorrelationId"].as_str().unwrap_or_default();
                assert!(correlation.starts_with("c-"));
                assert_eq!(
                    reply.attributes.get("CorrelationId").map(String::as_str),
                    Some(correlation)
                );
            }
        }
    }
    let mut names = world.account_names();
    names.sort();
    let mut want: Vec<String> = good.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
}

#[tokio::test]
async fn throttled_messages_are_retried_without_reply_until_the_last_attempt() {
    let world = World::new().await;
    world.set_faults(json!({"throttle_rate": 1.0}));
    let batch = |receive_count: &str| {
        let mut records = Vec::new();
        for i in 0..3 {
            let mut r = record(
                &format!("m-{i}"),
                &json!({"Name": format!("T{i}"), "RequestId": format!("t-{i}")}).to_string(),
                json!({}),
            );
            r["attributes"]["ApproximateReceiveCount"] = json!(receive_count);
            records.push(r);
        }
        json!({"Records": records})
    };
    let response = world.invoke(batch("1")).await;
    assert_eq!(failures(&response), ["m-0", "m-1", "m-2"]);
    let early = world
        .replies_from(&world.reply_queue.clone(), 1, Duration::from_millis(500))
        .await;
    assert!(
        early.is_empty(),
        "no reply before the last attempt: {early:?}"
    );

    // Last attempt (MAX_RECEIVE_COUNT = 5): still failed, now with a Failed reply.
    let response = world.invoke(batch("5")).await;
    assert_eq!(failures(&response), ["m-0", "m-1", "m-2"]);
    let replies = world.replies(3).await;
    assert_eq!(replies.len(), 3);
    for reply in &replies {
        assert_eq!(reply.status(), "Failed");
        assert_eq!(
            reply.body["Error"]["Code"],
            json!("ThrottledClientException")
        );
    }
    assert!(world.account_names().is_empty());
}

#[tokio::test]
async fn reply_to_must_be_allowed() {
    let sqs = crate::support::sqs_client();
    let allowed = create_queue(&sqs, false).await;
    let stranger = create_queue(&sqs, false).await;
    let mut options = Options::default();
    options.config.allowed_reply_queues = vec![allowed.clone()];
    let world = World::with(options).await;

    let refused = record(
        "m-refused",
        r#"{"Name":"Sneaky","RequestId":"r-1"}"#,
        json!({"ReplyTo": string_attribute(&stranger)}),
    );
    let honoured = record(
        "m-honoured",
        r#"{"Name":"Polite","RequestId":"r-2"}"#,
        json!({"ReplyTo": string_attribute(&allowed)}),
    );
    let response = world.invoke(json!({"Records": [refused, honoured]})).await;
    assert!(failures(&response).is_empty(), "{response}");

    let rejected = world.replies(1).await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].status(), "Rejected");
    assert_eq!(
        rejected[0].body["Error"]["Code"],
        json!("ReplyToNotAllowed")
    );
    let nothing = world
        .replies_from(&stranger, 1, Duration::from_millis(500))
        .await;
    assert!(
        nothing.is_empty(),
        "nothing goes to a queue that is not allowed"
    );
    let created = world
        .replies_from(&allowed, 1, Duration::from_secs(5))
        .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].status(), "Created");
    assert_eq!(
        world.account_names(),
        ["Polite"],
        "no account for the refused message"
    );
}

#[tokio::test]
async fn a_fifo_group_halts_after_its_first_failure() {
    let mut options = Options {
        fifo_replies: true,
        ..Options::default()
    };
    // One at a time, so the injected fault hits the first group's first message
    // (a 503 is never re-sent: Chime may have created the account).
    options.config.max_concurrency = 1;
    let world = World::with(options).await;
    let mut batch = crate::event!("sqs-fifo-batch.json");
    // tenant-a: req-f-0001, req-f-0002; tenant-b: req-f-0003.
    world.set_faults(json!({"fail_next": ["ServiceUnavailableException"]}));
    let response = world.invoke(batch.clone()).await;
    let ids: Vec<String> = batch["Records"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|m| m["messageId"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut expected = vec![ids[0].clone(), ids[1].clone()];
    expected.sort();
    assert_eq!(failures(&response), expected, "the whole of tenant-a fails");
    assert_eq!(
        world.account_names(),
        ["Globex Corporation"],
        "tenant-b went on; tenant-a's second message never ran"
    );
    let stats = world.chime.stats();
    let stats = serde_json::to_value(&stats).unwrap_or_default();
    assert!(stats.to_string().contains("CreateAccount"), "{stats}");

    let replies = world.replies(1).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].request_id(), "req-f-0003");
    // FIFO reply ids: the source group, and the request id with the status.
    assert_eq!(
        replies[0].system.get("MessageGroupId").map(String::as_str),
        Some("tenant-b")
    );
    assert_eq!(
        replies[0]
            .system
            .get("MessageDeduplicationId")
            .map(String::as_str),
        Some("req-f-0003:Created")
    );

    // Redelivered, tenant-a now succeeds in order.
    for r in batch["Records"].as_array_mut().into_iter().flatten() {
        r["attributes"]["ApproximateReceiveCount"] = json!("2");
    }
    let retry = json!({"Records": batch["Records"].as_array().map(|r| r[..2].to_vec())});
    let response = world.invoke(retry).await;
    assert!(failures(&response).is_empty(), "{response}");
    let replies = world.replies(2).await;
    let order: Vec<&str> = replies.iter().map(|r| r.request_id()).collect();
    assert_eq!(order, ["req-f-0001", "req-f-0002"]);
}

#[tokio::test]
async fn a_record_without_message_id_fails_the_invocation_not_the_data() {
    let world = World::new().await;
    let mut batch = crate::event!("sqs-standard-batch.json");
    batch["Records"][1]["messageId"] = Value::Null;
    let mut context = lambda_runtime::Context::default();
    context.request_id = "req-x".into();
    let result =
        chime_onboard::handle(&world.app, lambda_runtime::LambdaEvent::new(batch, context)).await;
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("messageId"), "{message}");
    assert!(
        world.account_names().is_empty(),
        "nothing ran: the whole batch is retried"
    );
}

#[tokio::test]
async fn a_chime_403_is_retried_failed_on_the_last_receive_and_never_rejected() {
    let world = World::with(Options {
        idempotency: true,
        ..Options::default()
    })
    .await;
    let body = json!({"Name": "Forbidden Co", "RequestId": "r-403"}).to_string();
    let batch = |receive_count: u32| {
        let mut message = record("m-403", &body, json!({}));
        message["attributes"]["ApproximateReceiveCount"] = json!(receive_count.to_string());
        json!({ "Records": [message] })
    };
    // The role may not call Chime: an operator error, not the request's.
    world.set_faults(json!({"fail_next": ["ForbiddenException"]}));
    let first = world.invoke(batch(1)).await;
    assert_eq!(failures(&first), ["m-403"], "retried through SQS");
    let none = world
        .replies_from(&world.reply_queue, 1, Duration::from_millis(300))
        .await;
    assert!(
        none.is_empty(),
        "no reply before the last receive: {none:?}"
    );
    world.set_faults(json!({"fail_next": ["ForbiddenException"]}));
    let last = world.invoke(batch(5)).await;
    assert_eq!(failures(&last), ["m-403"], "on to the DLQ");
    let replies = world.replies(1).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].status(), "Failed");
    assert_eq!(
        replies[0].body["Error"]["Code"],
        json!("ForbiddenException")
    );
    assert!(world.account_names().is_empty());
}

#[tokio::test]
async fn a_fifo_group_failing_on_its_last_receive_has_a_failed_reply_for_every_message() {
    let mut options = Options {
        fifo_replies: true,
        ..Options::default()
    };
    options.config.max_concurrency = 1;
    let world = World::with(options).await;
    let mut batch = crate::event!("sqs-fifo-batch.json");
    for r in batch["Records"].as_array_mut().into_iter().flatten() {
        r["attributes"]["ApproximateReceiveCount"] = json!("5");
    }
    // tenant-a: req-f-0001 (fails), req-f-0002 (skipped); tenant-b: req-f-0003.
    world.set_faults(json!({"fail_next": ["ServiceUnavailableException"]}));
    let response = world.invoke(batch).await;
    assert_eq!(failures(&response).len(), 2, "{response}");
    let replies = world.replies(3).await;
    let mut statuses: Vec<(&str, &str)> = replies
        .iter()
        .map(|r| (r.request_id(), r.status()))
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            ("req-f-0001", "Failed"),
            ("req-f-0002", "Failed"),
            ("req-f-0003", "Created")
        ]
    );
    assert_eq!(world.account_names(), ["Globex Corporation"]);
}
