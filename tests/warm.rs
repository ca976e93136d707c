//! The cold-start warm-up (`WARM_UP=true`, `src/warm.rs`): one bare request per
//! upstream that no service counts as an operation, after which the function
//! works as before.

use std::time::Duration;

use chime_onboard::Config;
use serde_json::json;

use crate::support::{Options, World};

#[tokio::test]
async fn the_warm_up_sends_no_operation_and_the_function_then_creates() {
    assert!(
        World::new().await.app.warm_up.is_none(),
        "off unless WARM_UP is set"
    );
    let config = Config {
        warm_up: true,
        ..Config::default()
    };
    let world = World::with(Options {
        idempotency: true,
        config,
        ..Options::default()
    })
    .await;
    let warm_up = world.app.warm_up.clone().expect("WARM_UP=true");
    assert!(
        warm_up.dynamodb.is_some(),
        "the table's endpoint is warmed too"
    );
    tokio::time::timeout(Duration::from_secs(10), warm_up.run())
        .await
        .expect("the warm-up ends within its timeouts");
    let stats = world.chime.stats();
    assert_eq!(
        stats.total, 0,
        "a rewritten request is no operation: {:?}",
        stats.by_operation
    );

    let mut http = crate::event!("apigw-v2-post-accounts.json");
    http["body"] = json!(r#"{"Name":"After The Warm Up"}"#);
    let response = world.invoke(http).await;
    assert_eq!(response["statusCode"], 201, "{response}");
    assert_eq!(world.chime.stats().total, 1);
}
