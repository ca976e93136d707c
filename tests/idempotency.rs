//! Idempotency over moto's DynamoDB: a repeated request never creates a second account.

use std::time::{SystemTime, UNIX_EPOCH};

use chime_onboard::idempotency::{fingerprint, IdempotencyStore, Inserted, Record, RecordStatus};
use chime_onboard::onboard::AccountName;
use serde_json::json;

use crate::support::{dynamodb_client, post_with_key, response_body, Options, World};

async fn world() -> World {
    World::with(Options {
        idempotency: true,
        ..Options::default()
    })
    .await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn print(name: &str) -> String {
    fingerprint(&AccountName::parse(name).expect("name"))
}

/// An INPROGRESS record of `key` for `name`, held by `holder` for a minute.
fn in_progress(key: &str, holder: &str, name: &str) -> Record {
    Record {
        key: key.into(),
        status: RecordStatus::InProgress,
        fingerprint: print(name),
        expiration: now_ms() / 1000 + 3600,
        held_until: now_ms() + 60_000,
        holder: holder.into(),
        since: now_ms(),
        verify: false,
        settles_at: 0,
        account: None,
    }
}

fn store(world: &World) -> chime_onboard::idempotency::DynamoDbStore {
    chime_onboard::idempotency::DynamoDbStore::new(
        dynamodb_client(),
        world.table.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_same_key_and_body_returns_the_first_response() {
    let world = world().await;
    let first = world.invoke(post_with_key("Once Only", "key-1")).await;
    assert_eq!(first["statusCode"], json!(201), "{first}");
    // Whitespace around the name does not make it another request.
    let again = world.invoke(post_with_key("  Once Only ", "key-1")).await;
    assert_eq!(again["statusCode"], json!(201), "{again}");
    assert_eq!(response_body(&again), response_body(&first));
    assert_eq!(world.account_names(), ["Once Only"]);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let world = world().await;
    assert_eq!(
        world.invoke(post_with_key("First", "key-2")).await["statusCode"],
        json!(201)
    );
    let response = world.invoke(post_with_key("Second", "key-2")).await;
    assert_eq!(response["statusCode"], json!(422), "{response}");
    assert_eq!(
        response_body(&response)["code"],
        json!("IdempotencyKeyReused")
    );
    assert_eq!(world.account_names(), ["First"]);
}

#[tokio::test]
async fn a_key_in_flight_is_409() {
    let world = world().await;
    // Another invocation holds the key: it started and has not finished.
    // Written in the form keys had before length prefixes: still found.
    let held = Record {
        key: "http#anonymous#key-3".into(),
        status: RecordStatus::InProgress,
        fingerprint: print("Busy"),
        expiration: now_ms() / 1000 + 3600,
        held_until: now_ms() + 60_000,
        holder: "someone".into(),
        since: now_ms(),
        verify: false,
        settles_at: 0,
        account: None,
    };
    store(&world).insert(&held).await.expect("insert");
    let response = world.invoke(post_with_key("Busy", "key-3")).await;
    assert_eq!(response["statusCode"], json!(409), "{response}");
    assert_eq!(
        response_body(&response)["code"],
        json!("IdempotencyInProgress")
    );
    assert!(world.account_names().is_empty());
}

#[tokio::test]
async fn a_new_key_is_written_and_a_taken_key_answers_with_the_stored_record() {
    let world = world().await;
    let store = store(&world);
    let record = |holder: &str| in_progress("http#anonymous#insert", holder, "Insert Co");
    let first = record("first");
    assert_eq!(store.insert(&first).await.expect("insert"), Inserted::Yes);
    // The failed write returns the stored item (ReturnValuesOnConditionCheckFailure),
    // and leaves it as it was.
    let second = store.insert(&record("second")).await.expect("insert");
    assert_eq!(second, Inserted::Exists(Box::new(first.clone())));
    let stored = store.get("http#anonymous#insert").await.expect("get");
    assert_eq!(stored, Some(first));
    // And the stored item comes back with the failed write itself (no read needed).
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
    let failed = dynamodb_client()
        .put_item()
        .table_name(world.table.clone().unwrap_or_default())
        .item("id", AttributeValue::S("http#anonymous#insert".into()))
        .condition_expression("attribute_not_exists(id)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .expect_err("the key is taken");
    let returned = match failed.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
        other => panic!("{other:?}"),
    };
    let holder = returned.as_ref().and_then(|item| item.get("holder"));
    assert_eq!(holder, Some(&AttributeValue::S("first".into())));
}

#[tokio::test]
async fn a_dead_holders_account_is_found_not_created_again() {
    let world = world().await;
    // An earlier invocation created the account, then died before recording
    // (or claiming) it.
    let started = now_ms() - 120_000;
    let created_id = world
        .chime_client()
        .create_account()
        .name("Crashed Co")
        .send()
        .await
        .expect("create")
        .account
        .map(|a| a.account_id)
        .unwrap_or_default();
    let dead = Record {
        key: "http#anonymous#key-4".into(),
        status: RecordStatus::InProgress,
        fingerprint: print("Crashed Co"),
        expiration: now_ms() / 1000 + 3600,
        // Its hold ended longer ago than the commit horizon.
        held_until: now_ms() - 31_000,
        holder: "dead".into(),
        since: started,
        verify: false,
        settles_at: 0,
        account: None,
    };
    store(&world).insert(&dead).await.expect("insert");
    let response = world.invoke(post_with_key("Crashed Co", "key-4")).await;
    assert_eq!(response["statusCode"], json!(201), "{response}");
    assert_eq!(response_body(&response)["AccountId"], json!(created_id));
    assert_eq!(world.account_names(), ["Crashed Co"]);
    let record = store(&world)
        .get("http#anonymous#key-4")
        .await
        .expect("get");
    assert_eq!(record.map(|r| r.status), Some(RecordStatus::Completed));
}

#[tokio::test]
async fn a_503_is_answered_as_such_and_the_retry_verifies_then_creates() {
    let world = World::with(Options {
        idempotency: true,
        config: chime_onboard::Config {
            commit_horizon: std::time::Duration::from_millis(500),
            ..chime_onboard::Config::default()
        },
        ..Options::default()
    })
    .await;
    // The create's 503 is not re-sent; the verification's ListAccounts gets the
    // other two and succeeds on the SDK's third attempt, finding nothing.
    world.set_faults(json!({"fail_next": vec!["ServiceUnavailableException"; 3]}));
    assert_eq!(
        world.invoke(post_with_key("Retry Me", "key-5")).await["statusCode"],
        json!(503)
    );
    // Chime may still commit it: until the horizon, the key is held.
    let held = world.invoke(post_with_key("Retry Me", "key-5")).await;
    assert_eq!(held["statusCode"], json!(409), "{held}");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        world.invoke(post_with_key("Retry Me", "key-5")).await["statusCode"],
        json!(201)
    );
    assert_eq!(world.account_names(), ["Retry Me"]);
    let creates: u64 = world.chime.stats().by_operation["CreateAccount"]
        .values()
        .sum();
    assert_eq!(creates, 2, "one create each, never re-sent by the SDK");
}

#[tokio::test]
async fn equal_keys_of_two_callers_are_two_requests() {
    let world = world().await;
    // A key another caller (principal) used is not this caller's.
    let foreign = Record {
        key: "http#jwt:https://issuer#someone-else#shared-key".into(),
        status: RecordStatus::InProgress,
        fingerprint: print("Other Caller"),
        expiration: now_ms() / 1000 + 3600,
        held_until: now_ms() + 60_000,
        holder: "other".into(),
        since: now_ms(),
        verify: false,
        settles_at: 0,
        account: None,
    };
    store(&world).insert(&foreign).await.expect("insert");
    let response = world.invoke(post_with_key("Mine", "shared-key")).await;
    assert_eq!(response["statusCode"], json!(201), "{response}");
    assert_eq!(world.account_names(), ["Mine"]);
}

#[tokio::test]
async fn an_sqs_redelivery_of_a_completed_request_only_resends_the_reply() {
    let world = world().await;
    let batch = crate::event!("sqs-standard-batch.json");
    let response = world.invoke(batch.clone()).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let first = world.replies(3).await;
    assert_eq!(first.len(), 3);

    // SQS delivers the same batch again (e.g. the function timed out after the work).
    let response = world.invoke(batch).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let second = world.replies(3).await;
    assert_eq!(second.len(), 3);
    let ids = |replies: &[crate::support::Reply]| {
        let mut ids: Vec<String> = replies
            .iter()
            .map(|r| r.body["AccountId"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&first),
        ids(&second),
        "the same accounts are reported again"
    );
    assert_eq!(world.chime.accounts().len(), 3, "no duplicate account");
}

#[tokio::test]
async fn a_malformed_key_is_refused_when_keys_are_used() {
    let world = world().await;
    let response = world.invoke(post_with_key("Acme", &"k".repeat(300))).await;
    assert_eq!(response["statusCode"], json!(400), "{response}");
    assert_eq!(
        response_body(&response)["code"],
        json!("IdempotencyKeyInvalid")
    );
    assert!(world.account_names().is_empty());
}

#[tokio::test]
async fn the_claim_and_completed_are_written_together_or_not_at_all() {
    use chime_onboard::idempotency::{Claim, Completed};
    let world = world().await;
    let store = store(&world);
    let held = |key: &str, holder: &str| in_progress(key, holder, "Together Co");
    let created = world.invoke(post_with_key("Together Co", "made")).await;
    assert_eq!(created["statusCode"], json!(201), "{created}");
    let account = store
        .get("http2#9#anonymous#made")
        .await
        .expect("get")
        .and_then(|r| r.account)
        .expect("the completed record keeps the account");
    let claim = |owner: &str| Claim {
        account_id: account.account_id.clone(),
        owner: owner.into(),
        since: now_ms(),
        expiration: now_ms() / 1000 + 7200,
    };
    // The request above claimed the account: another key's completion writes nothing.
    let other = held("sqs#other", "h-other");
    assert_eq!(store.insert(&other).await.expect("insert"), Inserted::Yes);
    let taken = store
        .complete(&other.completed(&account), &claim("sqs#other"), "h-other")
        .await;
    assert_eq!(taken, Ok(Completed::ClaimTaken));
    assert_eq!(store.get("sqs#other").await.expect("get"), Some(other));
    // A completion by a holder that lost the key writes neither item.
    let fresh = chime_onboard::onboard::Account {
        account_id: "not-yet-claimed".into(),
        ..account.clone()
    };
    let mine = held("sqs#mine", "h-now");
    assert_eq!(store.insert(&mine).await.expect("insert"), Inserted::Yes);
    let lost = Claim {
        account_id: fresh.account_id.clone(),
        ..claim("sqs#mine")
    };
    let outcome = store
        .complete(&mine.completed(&fresh), &lost, "h-before")
        .await;
    assert_eq!(outcome, Ok(Completed::RecordTaken));
    assert_eq!(store.get_claim("not-yet-claimed").await, Ok(None));
    // The holder's own completion writes both.
    let done = store
        .complete(&mine.completed(&fresh), &lost, "h-now")
        .await;
    assert_eq!(done, Ok(Completed::Yes));
    let record = store.get("sqs#mine").await.expect("get").expect("record");
    assert_eq!(
        (record.status, record.account),
        (RecordStatus::Completed, Some(fresh))
    );
    assert_eq!(
        store
            .get_claim("not-yet-claimed")
            .await
            .map(|c| c.map(|c| c.owner)),
        Ok(Some("sqs#mine".to_owned()))
    );
}

#[tokio::test]
async fn a_record_stored_under_the_old_key_form_answers_the_request() {
    let world = world().await;
    let store = store(&world);
    let first = world.invoke(post_with_key("Upgraded Co", "before")).await;
    assert_eq!(first["statusCode"], json!(201), "{first}");
    let completed = store
        .get("http2#9#anonymous#before")
        .await
        .expect("get")
        .expect("record");
    // As a build before the length prefix left it: COMPLETED under `http#`.
    let legacy = Record {
        key: "http#anonymous#across".into(),
        ..completed
    };
    assert_eq!(store.insert(&legacy).await.expect("insert"), Inserted::Yes);
    let again = world.invoke(post_with_key("Upgraded Co", "across")).await;
    assert_eq!(again["statusCode"], json!(201), "{again}");
    assert_eq!(response_body(&again), response_body(&first));
    assert_eq!(world.account_names(), ["Upgraded Co"], "nothing created");
    // What the request took under the new form was let go.
    assert_eq!(store.get("http2#9#anonymous#across").await, Ok(None));
}
