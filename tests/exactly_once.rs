//! Exactly once under ambiguous failures (DESIGN.md, "Exactly once"): chime-local
//! creates the account, then answers 500 / 503, resets the connection or withholds
//! the answer; over HTTP and SQS, with and without the idempotency table, exactly
//! one account exists afterwards.

use std::time::Duration;

use chime_onboard::Config;
use serde_json::{json, Value};

use chime_onboard::idempotency::{fingerprint, IdempotencyStore, Record, RecordStatus};
use chime_onboard::onboard::AccountName;

use crate::support::{dynamodb_client, post_with_key, response_body, Options, World};

/// The four after-commit faults chime-local injects.
const AFTER_COMMIT: [&str; 4] = [
    "CommittedServiceFailure",
    "CommittedServiceUnavailable",
    "CommittedConnectionReset",
    "CommittedWithheld",
];

/// A world whose Chime calls time out well before chime-local's withheld answers
/// (no commit horizon: these faults commit before the answer is lost).
async fn world(idempotency: bool) -> World {
    let world = World::with(Options {
        idempotency,
        config: Config {
            chime_timeout: Duration::from_millis(700),
            commit_horizon: Duration::ZERO,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    world.set_faults(json!({"withhold_ms": 5_000}));
    world
}

fn sqs_batch(messages: &[(&str, &str, &str, u32)]) -> Value {
    let mut event = crate::event!("sqs-standard-batch.json");
    let template = event["Records"][0].clone();
    event["Records"] = messages
        .iter()
        .map(|(message_id, request_id, name, receive_count)| {
            let mut record = template.clone();
            record["messageId"] = json!(message_id);
            record["body"] = json!(json!({"Name": name, "RequestId": request_id}).to_string());
            record["attributes"]["ApproximateReceiveCount"] = json!(receive_count.to_string());
            record["messageAttributes"] = json!({});
            record
        })
        .collect();
    event
}

fn creates(world: &World) -> u64 {
    world
        .chime
        .stats()
        .by_operation
        .get("CreateAccount")
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

#[tokio::test]
async fn http_with_a_table_each_after_commit_fault_ends_in_one_account() {
    for fault in AFTER_COMMIT {
        let world = world(true).await;
        world.set_faults(json!({"withhold_ms": 5_000, "fail_next": [fault]}));
        let name = format!("Committed {fault}");
        let first = world.invoke(post_with_key(&name, "k-1")).await;
        // Verification right after the ambiguous outcome finds the account.
        assert_eq!(first["statusCode"], json!(201), "{fault}: {first}");
        let again = world.invoke(post_with_key(&name, "k-1")).await;
        assert_eq!(again["statusCode"], json!(201), "{fault}: {again}");
        assert_eq!(
            response_body(&again)["AccountId"],
            response_body(&first)["AccountId"],
            "{fault}"
        );
        assert_eq!(world.account_names(), [name.as_str()], "{fault}");
        assert_eq!(creates(&world), 1, "{fault}: CreateAccount sent once");
    }
}

#[tokio::test]
async fn http_without_a_table_never_resends_an_ambiguous_create() {
    let expected = [
        ("CommittedServiceFailure", 502, "ServiceFailureException"),
        (
            "CommittedServiceUnavailable",
            503,
            "ServiceUnavailableException",
        ),
        ("CommittedConnectionReset", 502, "ChimeUnreachable"),
        ("CommittedWithheld", 504, "ChimeTimeout"),
    ];
    for (fault, status, code) in expected {
        let world = world(false).await;
        world.set_faults(json!({"withhold_ms": 5_000, "fail_next": [fault]}));
        let response = world.invoke(post_with_key("Once", "ignored")).await;
        assert_eq!(response["statusCode"], json!(status), "{fault}: {response}");
        assert_eq!(response_body(&response)["code"], json!(code), "{fault}");
        assert_eq!(world.account_names(), ["Once"], "{fault}");
        assert_eq!(creates(&world), 1, "{fault}: not re-sent by the SDK");
    }
}

#[tokio::test]
async fn a_chime_that_answers_503_every_time_is_503_not_a_timeout() {
    let world = World::with(Options {
        config: Config {
            chime_timeout: Duration::from_millis(1_000),
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    // Three SDK attempts would take 1.2 s, past the timeout (the old 504); one takes 0.4 s.
    world.set_faults(json!({"unavailable_rate": 1.0, "latency_ms": 400}));
    let response = world.invoke(post_with_key("Down", "k")).await;
    assert_eq!(response["statusCode"], json!(503), "{response}");
    assert_eq!(
        response_body(&response)["code"],
        json!("ServiceUnavailableException")
    );
}

#[tokio::test]
async fn sqs_each_after_commit_fault_ends_in_one_account_and_one_created_reply() {
    for fault in AFTER_COMMIT {
        let world = world(true).await;
        world.set_faults(json!({"withhold_ms": 5_000, "fail_next": [fault]}));
        let batch = sqs_batch(&[("m-1", "r-1", "Queued Co", 1)]);
        let response = world.invoke(batch.clone()).await;
        assert_eq!(
            response["batchItemFailures"],
            json!([]),
            "{fault}: {response}"
        );
        // A redelivery (say the batch response was lost) answers the same account.
        let response = world.invoke(batch).await;
        assert_eq!(
            response["batchItemFailures"],
            json!([]),
            "{fault}: {response}"
        );
        let replies = world.replies(2).await;
        assert_eq!(replies.len(), 2, "{fault}");
        let ids: Vec<&Value> = replies.iter().map(|r| &r.body["AccountId"]).collect();
        assert!(
            replies.iter().all(|r| r.status() == "Created"),
            "{fault}: {replies:?}"
        );
        assert_eq!(ids[0], ids[1], "{fault}");
        assert!(
            world.has_account(ids[0].as_str().unwrap_or_default()),
            "{fault}"
        );
        assert_eq!(world.account_names(), ["Queued Co"], "{fault}");
        assert_eq!(creates(&world), 1, "{fault}");
    }
}

#[tokio::test]
async fn two_requests_with_one_name_each_adopt_only_their_own_account() {
    let world = world(true).await;
    // r-a's create commits then fails, and its verification cannot list (503 on
    // all three SDK attempts of all three tries): it stays ambiguous and goes
    // back to the queue.
    let mut faults = vec!["CommittedServiceFailure"];
    faults.extend(["ServiceUnavailableException"; 9]);
    world.set_faults(json!({ "fail_next": faults }));
    let response = world.invoke(sqs_batch(&[("m-a", "r-a", "Twin", 1)])).await;
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"],
        json!("m-a"),
        "{response}"
    );
    let first_account = world.chime.accounts()[0].account_id.clone();

    // r-b, another request with the same name, creates its own account...
    let response = world.invoke(sqs_batch(&[("m-b", "r-b", "Twin", 1)])).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    // ...and r-a's redelivery adopts the one its own first attempt created.
    let response = world.invoke(sqs_batch(&[("m-a", "r-a", "Twin", 2)])).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let replies = world.replies(2).await;
    let account_of = |request: &str| {
        replies
            .iter()
            .find(|r| r.request_id() == request)
            .map(|r| r.body["AccountId"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(account_of("r-a"), Some(first_account.clone()));
    let b = account_of("r-b").unwrap_or_default();
    assert_ne!(b, first_account);
    assert!(world.has_account(&b));
    assert_eq!(world.account_names(), ["Twin", "Twin"]);
    assert_eq!(creates(&world), 2);
}

#[tokio::test]
async fn a_batch_without_time_left_starts_nothing() {
    let world = world(true).await;
    let batch = sqs_batch(&[("m-1", "r-1", "Late", 1), ("m-2", "r-2", "Later", 1)]);
    // 1.5 s left: less than CHIME_TIMEOUT_MS + the reply's budget.
    let response = world
        .invoke_with_time_left(batch, Duration::from_millis(1_500))
        .await;
    let mut failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str())
                .collect()
        })
        .unwrap_or_default();
    failed.sort_unstable();
    assert_eq!(failed, ["m-1", "m-2"]);
    assert!(world.account_names().is_empty());
    assert!(world
        .replies_from(&world.reply_queue, 1, Duration::from_millis(300))
        .await
        .is_empty());
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn header<'a>(response: &'a Value, name: &str) -> Option<&'a str> {
    let headers = response["headers"].as_object()?;
    let (_, value) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
    value.as_str()
}

#[tokio::test]
async fn http_a_create_that_commits_after_the_timeout_is_one_account_and_201_once_it_shows() {
    let world = World::with(Options {
        idempotency: true,
        config: Config {
            chime_timeout: Duration::from_millis(700),
            commit_horizon: Duration::from_millis(2_500),
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    // Chime commits 1.5 s after the request: long after the client gave up.
    world.set_faults(json!({"fail_next": ["CommittedLate"], "late_commit_ms": 1_500}));
    let first = world.invoke(post_with_key("Late Co", "k-late")).await;
    assert_eq!(first["statusCode"], json!(504), "{first}");
    // Before the horizon: 409, told when to come back, nothing created.
    let early = world.invoke(post_with_key("Late Co", "k-late")).await;
    assert_eq!(early["statusCode"], json!(409), "{early}");
    assert_eq!(
        response_body(&early)["code"],
        json!("IdempotencyInProgress")
    );
    let wait: u64 = header(&early, "retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=3).contains(&wait), "{early}");
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    // Once the commit shows, the key's account: 201, and only one account.
    let later = world.invoke(post_with_key("Late Co", "k-late")).await;
    assert_eq!(later["statusCode"], json!(201), "{later}");
    let accounts = world.chime.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        response_body(&later)["AccountId"],
        json!(accounts[0].account_id)
    );
    assert_eq!(creates(&world), 1, "CreateAccount sent once");
}

#[tokio::test]
async fn sqs_a_redelivery_that_finds_its_ambiguous_record_expired_adopts_the_account() {
    let world = world(true).await;
    let started = now_ms() - 10_000;
    // The earlier attempt's create committed; its answer was lost and its
    // verification could not run. The record has since expired, still present.
    let created = world
        .chime_client()
        .create_account()
        .name("Expired Co")
        .send()
        .await
        .expect("create")
        .account
        .map(|a| a.account_id)
        .unwrap_or_default();
    let store = chime_onboard::idempotency::DynamoDbStore::new(
        dynamodb_client(),
        world.table.clone().unwrap_or_default(),
    );
    let expired = Record {
        key: "sqs#r-exp".into(),
        status: RecordStatus::InProgress,
        fingerprint: fingerprint(&AccountName::parse("Expired Co").expect("name")),
        expiration: now_ms() / 1000 - 60,
        held_until: 0,
        holder: "earlier".into(),
        since: started,
        verify: true,
        settles_at: 0,
        account: None,
    };
    store.insert(&expired).await.expect("insert");
    let response = world
        .invoke(sqs_batch(&[("m-exp", "r-exp", "Expired Co", 3)]))
        .await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let replies = world.replies(1).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].status(), "Created");
    assert_eq!(replies[0].body["AccountId"], json!(created));
    assert_eq!(world.account_names(), ["Expired Co"]);
    assert_eq!(creates(&world), 1, "only the earlier attempt's create");
}
