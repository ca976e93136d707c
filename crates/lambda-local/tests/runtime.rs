use bytes::Bytes;
use lambda_local::{Environment, InitFailure, Invoked};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fake;

const INIT: Duration = Duration::from_secs(20);

async fn started(mode: &str, timeout: Duration) -> Environment {
    let mut function = fake(mode);
    function.timeout = timeout;
    function.memory_mb = 512;
    let mut env = Environment::start(&function).await.expect("start");
    env.wait_init(INIT).await.expect("init");
    env
}

#[tokio::test]
async fn an_answer_carries_the_event_and_lambda_s_settings() {
    let mut env = started("echo", Duration::from_secs(30)).await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut ids = Vec::new();
    for n in 0..2 {
        let invoked = env.invoke(Bytes::from(json!({"n": n}).to_string())).await;
        let Invoked::Response { body, .. } = invoked else {
            panic!("expected a response, got {invoked:?}");
        };
        let answer: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["event"], json!({"n": n}));
        assert_eq!(answer["env"]["AWS_LAMBDA_FUNCTION_NAME"], "fake");
        assert_eq!(answer["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
        assert_eq!(answer["env"]["AWS_REGION"], "us-east-1");
        assert_eq!(answer["env"]["FAKE_MODE"], "echo");
        let deadline = answer["deadlineMs"].as_i64().expect("deadline");
        assert!(
            (deadline - now_ms - 30_000).abs() < 10_000,
            "{deadline} vs {now_ms}"
        );
        let id = answer["requestId"].as_str().expect("id");
        assert_eq!(env.last_request_id(), Some(id));
        ids.push(id.to_owned());
    }
    assert_ne!(ids[0], ids[1]);
    assert!(env.is_alive());
}

#[tokio::test]
async fn an_invocation_error_leaves_the_environment_running() {
    let mut env = started("error", Duration::from_secs(30)).await;
    for _ in 0..2 {
        let invoked = env.invoke(Bytes::from_static(b"{}")).await;
        let Invoked::Error { body, .. } = invoked else {
            panic!("expected an invocation error, got {invoked:?}");
        };
        let error: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(error["errorType"], "Fake");
        assert!(env.is_alive());
    }
}

#[tokio::test]
async fn an_init_error_and_an_exit_during_init_are_reported() {
    let mut env = Environment::start(&fake("init-error"))
        .await
        .expect("start");
    match env.wait_init(INIT).await {
        Err(InitFailure::Error(body)) => assert!(body.contains("Runtime.FakeInit"), "{body}"),
        other => panic!("expected an init error, got {other:?}"),
    }
    assert!(!env.is_alive());

    let mut env = Environment::start(&fake("exit-at-init"))
        .await
        .expect("start");
    match env.wait_init(INIT).await {
        Err(InitFailure::Exited(status)) => assert_eq!(status.code(), Some(3)),
        other => panic!("expected an exit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_crash_mid_invocation_is_seen_and_ends_the_environment() {
    let mut env = started("crash", Duration::from_secs(30)).await;
    match env.invoke(Bytes::from_static(b"{}")).await {
        Invoked::Crashed(status) => assert_eq!(status.code(), Some(2)),
        other => panic!("expected a crash, got {other:?}"),
    }
    assert!(!env.is_alive());
}

#[tokio::test]
async fn a_timeout_kills_the_process() {
    let mut env = started("sleep", Duration::from_millis(500)).await;
    let pid = env.pid();
    let began = std::time::Instant::now();
    assert!(matches!(
        env.invoke(Bytes::from_static(b"{}")).await,
        Invoked::TimedOut
    ));
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(!env.is_alive());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the timed-out process is gone"
    );
}

#[tokio::test]
async fn a_scheduled_kill_interrupts_a_running_invocation() {
    let mut env = started("sleep", Duration::from_secs(30)).await;
    let invoked = env
        .invoke_killing_after(Bytes::from_static(b"{}"), Some(Duration::from_millis(100)))
        .await;
    assert!(matches!(invoked, Invoked::Killed), "{invoked:?}");
    assert!(!env.is_alive());

    // A kill scheduled after the answer does nothing.
    let mut env = started("echo", Duration::from_secs(30)).await;
    let invoked = env
        .invoke_killing_after(Bytes::from_static(b"{}"), Some(Duration::from_secs(20)))
        .await;
    assert!(matches!(invoked, Invoked::Response { .. }), "{invoked:?}");
    assert!(env.is_alive());
}
