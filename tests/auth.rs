//! Bearer JWTs through the real handler, with the issuer's keys fetched over
//! HTTP from a loopback issuer (discovery, then JWKS), as `make dev` does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chime_onboard::config::{AuthConfig, JwtIssuer};
use chime_onboard::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::event;
use crate::support::jwt::{self, Signer};
use crate::support::{Options, World};

/// A loopback issuer serving its discovery document and key set; counts key-set fetches.
struct Issuer {
    url: String,
    jwks_fetches: Arc<AtomicUsize>,
}

async fn issuer(keys: Vec<Value>) -> Issuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks_fetches = Arc::new(AtomicUsize::new(0));
    let (base, fetches) = (url.clone(), jwks_fetches.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (base, fetches, keys) = (base.clone(), fetches.clone(), keys.clone());
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buffer[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = match path.as_str() {
                    "/.well-known/openid-configuration" => {
                        json!({"issuer": base, "jwks_uri": format!("{base}/jwks")})
                    }
                    "/jwks" => {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        json!({ "keys": keys })
                    }
                    _ => json!({}),
                }
                .to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Issuer { url, jwks_fetches }
}

/// The function's configuration: sign-in required, bearer JWTs of `issuer`.
fn requiring(issuer: &Issuer) -> Config {
    Config {
        auth: AuthConfig {
            required: true,
            jwt: Some(JwtIssuer {
                issuer: issuer.url.clone(),
                audiences: vec![jwt::AUDIENCE.to_owned()],
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
