//! Bearer JWTs through the real handler, with the issuer's keys fetched over
//! HTTP from a loopback issuer (discovery, then JWKS), as `make dev` does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chime_onboard::auth::{FETCH_TIMEOUT, MAX_DOCUMENT_BYTES};
use chime_onboard::config::{AuthConfig, JwtIssuer};
use chime_onboard::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::event;
use crate::support::jwt::{self, Signer};
use crate::support::{Options, World};

/// What the loopback issuer's key set URL answers.
#[derive(Clone)]
enum KeySet {
    /// `{"keys": [...]}`.
    Keys(Vec<Value>),
    /// This status and an empty object.
    Status(u16),
    /// A chunked body with no end in sight: more than the size limit, then the
    /// connection held open. Read whole, it would only end at the fetch timeout.
    Endless,
    /// A `Content-Length` above the size limit, and no body.
    Declared(usize),
}

/// A loopback issuer serving its discovery document and key set; counts key-set fetches.
struct Issuer {
    url: String,
    jwks_fetches: Arc<AtomicUsize>,
}

async fn issuer(keys: Vec<Value>) -> Issuer {
    serve(KeySet::Keys(keys), None).await
}

/// An issuer whose discovery document names `discovery_issuer` (default: its own URL).
async fn serve(keys: KeySet, discovery_issuer: Option<&str>) -> Issuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks_fetches = Arc::new(AtomicUsize::new(0));
    let named = discovery_issuer.unwrap_or(&url).to_owned();
    let (base, fetches) = (url.clone(), jwks_fetches.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (base, named, fetches, keys) =
                (base.clone(), named.clone(), fetches.clone(), keys.clone());
            tokio::spawn(answer(socket, base, named, fetches, keys));
        }
    });
    Issuer { url, jwks_fetches }
}

async fn answer(
    mut socket: TcpStream,
    base: String,
    named: String,
    fetches: Arc<AtomicUsize>,
    keys: KeySet,
) {
    let mut buffer = vec![0u8; 4096];
    let n = socket.read(&mut buffer).await.unwrap_or(0);
    let head = String::from_utf8_lossy(&buffer[..n]);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (status, body) = match path.as_str() {
        "/.well-known/openid-configuration" => (
            200,
            json!({"issuer": named, "jwks_uri": format!("{base}/jwks")}),
        ),
        "/jwks" => {
            fetches.fetch_add(1, Ordering::SeqCst);
            match keys {
                KeySet::Keys(keys) => (200, json!({ "keys": keys })),
                KeySet::Status(status) => (status, json!({})),
                KeySet::Endless => return endless(socket).await,
                KeySet::Declared(length) => {
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    return;
                }
            }
        }
        _ => (404, json!({})),
    };
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
}

/// Twice the size limit in 16 KiB chunks, then silence on an open connection.
async fn endless(mut socket: TcpStream) {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = " ".repeat(16 * 1024);
    for _ in 0..(2 * MAX_DOCUMENT_BYTES / chunk.len()) {
        let frame = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if socket.write_all(frame.as_bytes()).await.is_err() {
            return; // the reader hung up: what the limit is for
        }
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
}

/// The function's configuration: sign-in required, bearer JWTs of `issuer`.
fn requiring(issuer: &Issuer) -> Config {
    Config {
        auth: AuthConfig {
            required: true,
            jwt: Some(JwtIssuer {
                issuer: issuer.url.clone(),
                audiences: vec![jwt::AUDIENCE.to_owned()],
                scopes: Vec::new(),
            }),
        },
        ..Config::default()
    }
}

async fn world(issuer: &Issuer) -> World {
    World::with(Options {
        config: requiring(issuer),
        ..Options::default()
    })
    .await
}

fn post(name: &str, token: Option<&str>) -> Value {
    let mut event = event!("apigw-v2-post-accounts.json");
    event["body"] = json!(json!({ "Name": name }).to_string());
    event["headers"]["content-type"] = json!("application/json");
    if let Some(token) = token {
        event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    }
    event
}

fn header<'a>(response: &'a Value, name: &str) -> Option<&'a str> {
    response["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))?
        .1
        .as_str()
}

fn claims(issuer: &Issuer) -> Value {
    jwt::claims_with("iss", json!(issuer.url))
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

#[tokio::test]
async fn a_valid_token_creates_and_every_bad_one_is_a_401_problem() {
    let rsa = Signer::rsa("rsa-1");
    let ec = Signer::ec("ec-1");
    let issuer = issuer(vec![rsa.jwk(), ec.jwk()]).await;
    let world = world(&issuer).await;
    assert_eq!(
        issuer.jwks_fetches.load(Ordering::SeqCst),
        0,
        "nothing fetched at init"
    );

    for signer in [&rsa, &ec] {
        let response = world
            .invoke(post("Signed In", Some(&signer.sign(&claims(&issuer)))))
            .await;
        assert_eq!(response["statusCode"], json!(201), "{response}");
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert!(world.has_account(body["AccountId"].as_str().unwrap()));
    }

    let now = jwt::now();
    let other = Signer::ec("rsa-1");
    let cases: Vec<(&str, Option<String>, &str, &str)> = vec![
        ("missing header", None, "AuthenticationRequired", "Bearer"),
        (
            "expired",
            Some(rsa.sign(&with(claims(&issuer), "exp", json!(now - 3600)))),
            "TokenExpired",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "wrong issuer",
            Some(rsa.sign(&with(
                claims(&issuer),
                "iss",
                json!("https://elsewhere.example"),
            ))),
            "TokenInvalid",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "wrong audience",
            Some(rsa.sign(&with(claims(&issuer), "aud", json!("another-app")))),
            "TokenInvalid",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "bad signature",
            Some(jwt::resign(&rsa.sign(&claims(&issuer)), &other)),
            "TokenInvalid",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "unknown kid",
            Some(Signer::rsa("rsa-9").sign(&claims(&issuer))),
            "TokenInvalid",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "alg none",
            Some(jwt::unsigned(&claims(&issuer))),
            "TokenInvalid",
            "Bearer error=\"invalid_token\"",
        ),
    ];
    let before = world.account_names().len();
    for (case, token, code, challenge) in cases {
        let response = world.invoke(post("Refused", token.as_deref())).await;
        assert_eq!(response["statusCode"], json!(401), "{case}: {response}");
        assert_eq!(
            header(&response, "content-type"),
            Some("application/problem+json"),
            "{case}"
        );
        assert_eq!(
            header(&response, "www-authenticate"),
            Some(challenge),
            "{case}"
        );
        let problem: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(problem["code"], json!(code), "{case}: {problem}");
        assert_eq!(problem["status"], json!(401));
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| !d.contains("eyJ")),
            "{case}: the token is never echoed"
        );
    }
    assert_eq!(world.account_names().len(), before, "nothing created");
    // One fetch served them all: the unknown kid did not refetch within the minute.
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_principal_scopes_the_idempotency_key() {
    let rsa = Signer::rsa("rsa-1");
    let issuer = issuer(vec![rsa.jwk()]).await;
    let world = World::with(Options {
        idempotency: true,
        config: requiring(&issuer),
        ..Options::default()
    })
    .await;
    let keyed = |token: String| {
        let mut event = post("Shared Key", Some(&token));
        event["headers"]["idempotency-key"] = json!("same-key");
        event
    };
    let alice = rsa.sign(&with(claims(&issuer), "sub", json!("alice")));
    let bob = rsa.sign(&with(claims(&issuer), "sub", json!("bob")));
    let first = world.invoke(keyed(alice.clone())).await;
    let again = world.invoke(keyed(alice)).await;
    let other = world.invoke(keyed(bob)).await;
    let id = |r: &Value| {
        serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap()["AccountId"].clone()
    };
    assert_eq!(first["statusCode"], json!(201));
    assert_eq!(id(&first), id(&again), "the same caller's retry replays");
    assert_eq!(other["statusCode"], json!(201));
    assert_ne!(
        id(&first),
        id(&other),
        "another caller's equal key is another request"
    );
    assert_eq!(
        world
            .account_names()
            .iter()
            .filter(|n| *n == "Shared Key")
            .count(),
        2
    );
}

/// The function as the environment configures it (`Config::from_lookup`).
async fn world_from_env(pairs: &[(&str, &str)]) -> World {
    let config = Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    World::with(Options {
        config,
        ..Options::default()
    })
    .await
}

fn problem(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn an_issuer_alone_requires_sign_in_and_auth_required_false_lifts_it() {
    let rsa = Signer::rsa("rsa-1");
    let issuer = issuer(vec![rsa.jwk()]).await;
    let env = [
        ("AUTH_JWT_ISSUER", issuer.url.as_str()),
        ("AUTH_JWT_AUDIENCE", jwt::AUDIENCE),
    ];
    let world = world_from_env(&env).await;
    let response = world.invoke(post("No Token", None)).await;
    assert_eq!(response["statusCode"], json!(401), "{response}");
    assert_eq!(problem(&response)["code"], json!("AuthenticationRequired"));
    assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
    assert!(world.account_names().is_empty(), "nothing created");
    let signed = world
        .invoke(post("Signed", Some(&rsa.sign(&claims(&issuer)))))
        .await;
    assert_eq!(signed["statusCode"], json!(201), "{signed}");

    // Only an explicit AUTH_REQUIRED=false lets callers without a token through.
    let open = world_from_env(&[env[0], env[1], ("AUTH_REQUIRED", "false")]).await;
    let response = open.invoke(post("No Token", None)).await;
    assert_eq!(response["statusCode"], json!(201), "{response}");
}

#[tokio::test]
async fn every_configured_scope_is_required_and_a_missing_one_is_a_403() {
    let rsa = Signer::rsa("rsa-1");
    let issuer = issuer(vec![rsa.jwk()]).await;
    let world = world_from_env(&[
        ("AUTH_JWT_ISSUER", issuer.url.as_str()),
        ("AUTH_JWT_AUDIENCE", jwt::AUDIENCE),
        ("AUTH_JWT_SCOPE", "chime-onboard/accounts.create openid"),
    ])
    .await;
    let token = |scope: Value| rsa.sign(&with(claims(&issuer), "scope", scope));

    let both = token(json!("openid chime-onboard/accounts.create"));
    let response = world.invoke(post("Scoped", Some(&both))).await;
    assert_eq!(response["statusCode"], json!(201), "{response}");

    for (case, scope) in [("one of two", json!("openid")), ("none", Value::Null)] {
        let response = world.invoke(post("Unscoped", Some(&token(scope)))).await;
        assert_eq!(response["statusCode"], json!(403), "{case}: {response}");
        let problem = problem(&response);
        assert_eq!(problem["code"], json!("InsufficientScope"), "{case}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("chime-onboard/accounts.create")),
            "{case}: the detail names the missing scope: {problem}"
        );
        assert_eq!(
            header(&response, "www-authenticate"),
            Some("Bearer error=\"insufficient_scope\""),
            "{case}"
        );
    }
    assert_eq!(world.account_names(), vec!["Scoped".to_owned()]);
}

#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_refused() {
    let rsa = Signer::rsa("rsa-1");
    let issuer = serve(
        KeySet::Keys(vec![rsa.jwk()]),
        Some("https://attacker.example"),
    )
    .await;
    let world = world(&issuer).await;
    let response = world
        .invoke(post("Refused", Some(&rsa.sign(&claims(&issuer)))))
        .await;
    assert_eq!(response["statusCode"], json!(503), "{response}");
    let problem = problem(&response);
    assert_eq!(problem["code"], json!("AuthUnavailable"));
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("attacker.example") && d.contains(&issuer.url)),
        "{problem}"
    );
    assert_eq!(
        issuer.jwks_fetches.load(Ordering::SeqCst),
        0,
        "its keys are never fetched"
    );
    assert!(world.account_names().is_empty());
}

#[tokio::test]
async fn a_key_set_over_the_limit_is_refused_while_it_is_read() {
    let rsa = Signer::rsa("rsa-1");
    for (case, keys) in [
        ("streamed, no end", KeySet::Endless),
        ("declared length", KeySet::Declared(MAX_DOCUMENT_BYTES + 1)),
    ] {
        let issuer = serve(keys, None).await;
        let world = world(&issuer).await;
        let started = Instant::now();
        let response = world
            .invoke(post("Refused", Some(&rsa.sign(&claims(&issuer)))))
            .await;
        let took = started.elapsed();
        assert_eq!(response["statusCode"], json!(503), "{case}: {response}");
        let problem = problem(&response);
        assert_eq!(problem["code"], json!("AuthUnavailable"), "{case}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("exceeds {MAX_DOCUMENT_BYTES} bytes"))),
            "{case}: {problem}"
        );
        // Stopped at the limit, not at the fetch timeout with the body still coming.
        assert!(took < FETCH_TIMEOUT, "{case}: {took:?}");
    }
}

#[tokio::test]
async fn while_the_keys_cannot_be_fetched_every_token_is_a_503_not_unknown_kid() {
    let issuer = serve(KeySet::Status(500), None).await;
    let world = world(&issuer).await;
    for attempt in 0..2 {
        let token = Signer::rsa(&format!("rsa-{attempt}")).sign(&claims(&issuer));
        let response = world.invoke(post("Refused", Some(&token))).await;
        assert_eq!(response["statusCode"], json!(503), "{attempt}: {response}");
        assert_eq!(problem(&response)["code"], json!("AuthUnavailable"));
        assert!(header(&response, "retry-after").is_some());
        assert_eq!(header(&response, "www-authenticate"), None);
    }
    // The second was inside the back-off: one fetch, and still "unavailable".
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1);
}
