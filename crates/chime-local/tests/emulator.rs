//! chime-local driven by the real `aws-sdk-chime` client (and raw HTTP where the SDK cannot
//! send the input). One test binary; modules by area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Helpers: SDK clients, a raw HTTP/1.1 client, typed-error codes.
mod support {
    use aws_sdk_chime::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_chime::error::{ProvideErrorMetadata, SdkError};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/chime/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123abcd";

    pub async fn start() -> chime_local::Handle {
        chime_local::spawn(chime_local::Config::default())
            .await
            .unwrap()
    }

    pub fn client_with(url: &str, key: &str, secret: &str) -> aws_sdk_chime::Client {
        aws_sdk_chime::Client::from_conf(config(url, key, secret).build())
    }

    /// A client (retries off) whose every operation gives up after `timeout`.
    pub fn client_with_timeout(url: &str, timeout: std::time::Duration) -> aws_sdk_chime::Client {
        let timeouts = aws_sdk_chime::config::timeout::TimeoutConfig::builder()
            .operation_timeout(timeout)
            .build();
        aws_sdk_chime::Client::from_conf(
            config(url, "test", "test").timeout_config(timeouts).build(),
        )
    }

    fn config(url: &str, key: &str, secret: &str) -> aws_sdk_chime::config::Builder {
        aws_sdk_chime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .retry_config(aws_sdk_chime::config::retry::RetryConfig::disabled())
            // Plain HTTP to the emulator; no TLS stack needed.
            .http_client(aws_smithy_http_client::Builder::new().build_http())
    }

    pub fn client(url: &str) -> aws_sdk_chime::Client {
        client_with(url, "test", "test")
    }

    /// The error type the SDK surfaced (`BadRequestException`, …), `Dispatch` for I/O, or
    /// `Timeout` when the operation timed out.
    pub fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
        match err {
            SdkError::DispatchFailure(_) => "Dispatch".to_owned(),
            SdkError::TimeoutError(_) => "Timeout".to_owned(),
            other => other.code().unwrap_or("<none>").to_owned(),
        }
    }

    pub struct RawResponse {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl RawResponse {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap()
        }
    }

    /// One HTTP/1.1 request on a fresh connection (`Connection: close`).
    pub async fn raw(url: &str, method: &str, path: &str, auth: bool, body: &[u8]) -> RawResponse {
        let addr = url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nX-Amz-Date: 20260101T000000Z\r\n",
            body.len()
        );
        if auth {
            request.push_str(&format!("Authorization: {AUTH}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        RawResponse {
            status,
            headers,
            body: body.to_owned(),
        }
    }
}

// Every operation through the SDK: shapes, status codes, typed errors.
mod operations {
    use super::support::*;
    use aws_sdk_chime::operation::RequestId;
    use aws_sdk_chime::types::{AccountStatus, AccountType, License};

    #[tokio::test]
    async fn create_get_update_delete() {
        let server = start().await;
        let chime = client(&server.url());
        let created = chime.create_account().name("example").send().await.unwrap();
        assert!(created.request_id().is_some());
        let account = created.account().unwrap();
        assert_eq!(account.name(), "example");
        assert_eq!(account.aws_account_id(), "111122223333");
        assert_eq!(account.account_type(), Some(&AccountType::Team));
        assert_eq!(account.account_status(), Some(&AccountStatus::Active));
        assert_eq!(account.default_license(), Some(&License::Pro));
        assert_eq!(
            account.supported_licenses(),
            &[License::Basic, License::Pro]
        );
        assert!(account.signin_delegate_groups().is_empty());
        assert!(account.created_timestamp().is_some());
        let id = account.account_id().to_owned();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4', "a v4 UUID: {id}");

        let got = chime.get_account().account_id(&id).send().await.unwrap();
        assert_eq!(got.account(), Some(account));

        let updated = chime
            .update_account()
            .account_id(&id)
            .name("renamed")
            .default_license(License::Basic)
            .send()
            .await
            .unwrap();
        let updated = updated.account().unwrap();
        assert_eq!(updated.name(), "renamed");
        assert_eq!(updated.default_license(), Some(&License::Basic));
        assert_eq!(server.accounts()[0].name, "renamed");

        chime.delete_account().account_id(&id).send().await.unwrap();
        assert!(server.accounts().is_empty());
        let err = chime
            .get_account()
            .account_id(&id)
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_not_found_exception());
    }

    #[tokio::test]
    async fn unknown_accounts_are_not_found() {
        let server = start().await;
        let chime = client(&server.url());
        let id = "00000000-0000-4000-8000-000000000000";
        let err = chime.get_account().account_id(id).send().await.unwrap_err();
        assert!(err.into_service_error().is_not_found_exception());
        let err = chime
            .update_account()
            .account_id(id)
            .name("x")
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_not_found_exception());
        let err = chime
            .delete_account()
            .account_id(id)
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_not_found_exception());
        let err = chime
            .get_account()
            .account_id(" ")
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_bad_request_exception());
    }

    #[tokio::test]
    async fn update_validates_like_create() {
        let server = start().await;
        let chime = client(&server.url());
        let id = chime.create_account().name("a").send().await.unwrap();
        let id = id.account().unwrap().account_id();
        for name in ["", " ", "a\u{2028}", &"x".repeat(101)] {
            let err = chime
                .update_account()
                .account_id(id)
                .name(name)
                .send()
                .await
                .unwrap_err();
            assert!(
                err.into_service_error().is_bad_request_exception(),
                "{name:?}"
            );
        }
        // Plus is a License the model knows but a Team account does not support.
        let err = chime
            .update_account()
            .account_id(id)
            .default_license(License::Plus)
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_bad_request_exception());
        let err = chime
            .update_account()
            .account_id(id)
            .default_license(License::from("Gold"))
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_bad_request_exception());
        assert_eq!(server.accounts()[0].name, "a");
    }

    #[tokio::test]
    async fn list_paginates_across_three_pages() {
        let server = start().await;
        let chime = client(&server.url());
        let mut ids = Vec::new();
        for i in 0..5 {
            let out = chime
                .create_account()
                .name(format!("team-{i}"))
                .send()
                .await
                .unwrap();
            ids.push(out.account().unwrap().account_id().to_owned());
        }
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = chime
                .list_accounts()
                .max_results(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            pages.push(page.accounts().len());
            seen.extend(page.accounts().iter().map(|a| a.account_id().to_owned()));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(pages, vec![2, 2, 1]);
        assert_eq!(seen, ids);

        let all = chime.list_accounts().send().await.unwrap();
        assert_eq!(all.accounts().len(), 5);
        assert!(all.next_token().is_none());
    }

    #[tokio::test]
    async fn list_filters_and_validates() {
        let server = start().await;
        let chime = client(&server.url());
        for name in ["alpha one", "alpha two", "beta"] {
            chime.create_account().name(name).send().await.unwrap();
        }
        let alpha = chime.list_accounts().name("alpha").send().await.unwrap();
        assert_eq!(alpha.accounts().len(), 2);
        let by_email = chime
            .list_accounts()
            .user_email("someone@example.com")
            .send()
            .await
            .unwrap();
        assert!(
            by_email.accounts().is_empty(),
            "no users exist in the emulator"
        );
        for bad in [0, 201, -1] {
            let err = chime
                .list_accounts()
                .max_results(bad)
                .send()
                .await
                .unwrap_err();
            assert!(err.into_service_error().is_bad_request_exception(), "{bad}");
        }
        for ok in [1, 200] {
            chime.list_accounts().max_results(ok).send().await.unwrap();
        }
        let err = chime
            .list_accounts()
            .next_token("garbage")
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_bad_request_exception());
        let err = chime
            .list_accounts()
            .user_email("not-an-email")
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_bad_request_exception());
        let err = chime.list_accounts().name(" ").send().await.unwrap_err();
        assert!(err.into_service_error().is_bad_request_exception());
    }
}

// The AccountName rule at its edges, through the SDK and raw HTTP.
mod validation {
    use super::support::*;
    use aws_sdk_chime::types::ErrorCode;

    async fn create(chime: &aws_sdk_chime::Client, name: &str) -> Result<(), String> {
        chime
            .create_account()
            .name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code(&e))
    }

    #[tokio::test]
    async fn length_counts_unicode_scalar_values() {
        let server = start().await;
        let chime = client(&server.url());
        for unit in ["a", "é", "€", "😀"] {
            assert_eq!(create(&chime, &unit.repeat(100)).await, Ok(()), "{unit}");
            assert_eq!(
                create(&chime, &unit.repeat(101)).await,
                Err("BadRequestException".to_owned()),
                "{unit}"
            );
        }
        assert_eq!(server.accounts().len(), 4);
    }

    #[tokio::test]
    async fn pattern_is_javas() {
        let server = start().await;
        let chime = client(&server.url());
        let bad = "BadRequestException".to_owned();
        assert_eq!(create(&chime, "").await, Err(bad.clone()));
        assert_eq!(create(&chime, " ").await, Err(bad.clone()));
        assert_eq!(
            create(&chime, " \t\u{000B}\u{000C} ").await,
            Err(bad.clone())
        );
        for terminator in ["\n", "\r", "\u{0085}", "\u{2028}", "\u{2029}"] {
            let name = format!("a{terminator}b");
            assert_eq!(create(&chime, &name).await, Err(bad.clone()), "{name:?}");
        }
        // Java's \S is ASCII-only, so NBSP and ideographic space count as non-blank.
        assert_eq!(create(&chime, "\u{00A0}").await, Ok(()));
        assert_eq!(create(&chime, "\u{3000}").await, Ok(()));
        assert_eq!(create(&chime, " padded\t").await, Ok(()));
    }

    #[tokio::test]
    async fn typed_error_carries_code_and_message() {
        let server = start().await;
        let chime = client(&server.url());
        let err = chime.create_account().name(" ").send().await.unwrap_err();
        let err = err.into_service_error();
        let aws_sdk_chime::operation::create_account::CreateAccountError::BadRequestException(e) =
            err
        else {
            panic!("not BadRequestException: {err:?}");
        };
        assert_eq!(e.code(), Some(&ErrorCode::BadRequest));
        assert!(e.message().unwrap_or_default().contains(r".*\S.*"));
    }

    #[tokio::test]
    async fn inputs_the_sdk_cannot_send() {
        let server = start().await;
        let url = server.url();
        for body in [
            &b"{}"[..],
            br#"{"Name": null}"#,
            br#"{"Name": 123}"#,
            br#"{"Name": ["a"]}"#,
            br#"{"Name": "a""#,
            b"[]",
            b"not json",
            br#""Name""#,
            b"",
            b"{\"Name\": \"\xff\"}",
            br#"{"Name": "\ud800"}"#,
        ] {
            let res = raw(&url, "POST", "/accounts", true, body).await;
            assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(res.header("x-amzn-ErrorType"), Some("BadRequestException"));
            assert_eq!(res.json()["Code"], "BadRequest");
            assert!(res.json()["Message"].is_string());
            assert!(res.header("x-amzn-RequestId").is_some());
        }
        assert!(server.accounts().is_empty());
        assert_eq!(
            server.stats().count("CreateAccount", "BadRequestException"),
            11
        );
    }

    #[tokio::test]
    async fn console_path_and_extra_members() {
        let server = start().await;
        let res = raw(
            &server.url(),
            "POST",
            "/console/accounts",
            true,
            br#"{"Name": "example", "Unknown": 1}"#,
        )
        .await;
        assert_eq!(res.status, 201);
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_eq!(res.json()["Account"]["Name"], "example");
        assert_eq!(res.json()["Account"]["AccountType"], "Team");
    }
}

// SigV4: required always, verified when credentials are configured.
mod auth {
    use super::support::*;

    #[tokio::test]
    async fn unsigned_requests_are_refused() {
        let server = start().await;
        let res = raw(
            &server.url(),
            "POST",
            "/accounts",
            false,
            br#"{"Name":"a"}"#,
        )
        .await;
        assert_eq!(res.status, 403);
        assert_eq!(
            res.header("x-amzn-ErrorType"),
            Some("MissingAuthenticationTokenException")
        );
        assert_eq!(res.json()["message"], "Missing Authentication Token");
        assert!(res.header("x-amzn-RequestId").is_some());
        assert!(server.accounts().is_empty());
        // The control endpoints and unknown routes get a request id too.
        let res = raw(&server.url(), "GET", "/_chime-local/stats", false, b"").await;
        assert_eq!(res.status, 200);
        assert!(res.header("x-amzn-RequestId").is_some());
        let res = raw(&server.url(), "GET", "/nowhere", true, b"").await;
        assert_eq!(res.status, 404);
        assert!(res.header("x-amzn-RequestId").is_some());
    }

    #[tokio::test]
    async fn signatures_are_verified_with_credentials() {
        let server = chime_local::spawn(chime_local::Config {
            credentials: Some(chime_local::Credentials {
                access_key_id: "AKIDCHIMELOCAL".to_owned(),
                secret_access_key: "s3cr3t".to_owned(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        let url = server.url();
        let good = client_with(&url, "AKIDCHIMELOCAL", "s3cr3t");
        let created = good.create_account().name("signed").send().await.unwrap();
        let id = created.account().unwrap().account_id();
        good.get_account().account_id(id).send().await.unwrap();
        let listed = good
            .list_accounts()
            .name("signed name?&=+/")
            .max_results(5)
            .send()
            .await
            .unwrap();
        assert!(listed.accounts().is_empty());
        // The path is signed double-encoded, as the SDK does for non-S3 services.
        let err = good
            .get_account()
            .account_id("no such/id é%")
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_not_found_exception());

        let wrong_secret = client_with(&url, "AKIDCHIMELOCAL", "wrong");
        let err = wrong_secret
            .create_account()
            .name("x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidSignatureException");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));

        let wrong_key = client_with(&url, "AKIDOTHER", "s3cr3t");
        let err = wrong_key
            .create_account()
            .name("x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "UnrecognizedClientException");
        assert_eq!(server.accounts().len(), 1);
    }
}

// Fault injection, observed through the SDK.
mod faults {
    use super::support::*;
    use chime_local::{FaultKind, Faults, RateLimit};
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn each_rate_fault_surfaces_as_its_typed_error() {
        let server = start().await;
        let chime = client(&server.url());
        let cases = [
            (
                Faults {
                    throttle_rate: 1.0,
                    ..Faults::default()
                },
                "ThrottledClientException",
            ),
            (
                Faults {
                    unavailable_rate: 1.0,
                    ..Faults::default()
                },
                "ServiceUnavailableException",
            ),
            (
                Faults {
                    failure_rate: 1.0,
                    ..Faults::default()
                },
                "ServiceFailureException",
            ),
        ];
        for (faults, expected) in cases {
            server.set_faults(faults);
            let err = chime.create_account().name("x").send().await.unwrap_err();
            assert_eq!(code(&err), expected);
            let err = chime.list_accounts().send().await.unwrap_err();
            assert_eq!(code(&err), expected);
        }
        let err = chime.create_account().name("x").send().await.unwrap_err();
        let err = err.into_service_error();
        assert!(err.is_service_failure_exception());
        server.set_faults(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        });
        let err = chime.create_account().name("x").send().await.unwrap_err();
        assert!(err.into_service_error().is_throttled_client_exception());
        server.set_faults(Faults::default());
        chime.create_account().name("x").send().await.unwrap();
        assert_eq!(server.accounts().len(), 1);
    }

    #[tokio::test]
    async fn fail_next_applies_in_order_then_stops() {
        let server = start().await;
        let chime = client(&server.url());
        server.set_faults(Faults {
            fail_next: vec![
                FaultKind::ThrottledClientException,
                FaultKind::ServiceUnavailableException,
                FaultKind::ConnectionReset,
                FaultKind::ServiceFailureException,
            ],
            ..Faults::default()
        });
        let mut outcomes = Vec::new();
        for _ in 0..5 {
            outcomes.push(match chime.create_account().name("x").send().await {
                Ok(_) => "ok".to_owned(),
                Err(e) => code(&e),
            });
        }
        assert_eq!(
            outcomes,
            [
                "ThrottledClientException",
                "ServiceUnavailableException",
                "Dispatch",
                "ServiceFailureException",
                "ok"
            ]
        );
        assert_eq!(server.accounts().len(), 1);
        let stats = server.stats();
        assert_eq!(stats.count("CreateAccount", "ConnectionReset"), 1);
        assert_eq!(stats.count("CreateAccount", "Success"), 1);
        assert_eq!(stats.total, 5);
    }

    #[tokio::test]
    async fn resets_drop_the_connection() {
        let server = start().await;
        let chime = client(&server.url());
        server.set_faults(Faults {
            reset_rate: 1.0,
            ..Faults::default()
        });
        let err = chime.list_accounts().send().await.unwrap_err();
        assert_eq!(code(&err), "Dispatch", "{err:?}");
        server.set_faults(Faults::default());
        chime.list_accounts().send().await.unwrap();
    }

    #[tokio::test]
    async fn latency_is_added() {
        let server = start().await;
        let chime = client(&server.url());
        server.set_faults(Faults {
            latency_ms: 150,
            jitter_ms: 50,
            ..Faults::default()
        });
        let started = Instant::now();
        chime.list_accounts().send().await.unwrap();
        // A lower bound only: the sleep guarantees it.
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    async fn outcomes(server: &chime_local::Handle, seed: u64) -> Vec<String> {
        let chime = client(&server.url());
        server.set_faults(Faults {
            throttle_rate: 0.2,
            unavailable_rate: 0.2,
            failure_rate: 0.2,
            reset_rate: 0.1,
            seed: Some(seed),
            ..Faults::default()
        });
        let mut out = Vec::new();
        for _ in 0..60 {
            out.push(
                match chime.get_account().account_id("missing").send().await {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => code(&e),
                },
            );
        }
        out
    }

    #[tokio::test]
    async fn a_seed_reproduces_the_fault_sequence() {
        let server = start().await;
        let first = outcomes(&server, 42).await;
        let again = outcomes(&server, 42).await;
        let other = outcomes(&server, 7).await;
        assert_eq!(first, again);
        assert_ne!(first, other);
        for kind in [
            "ThrottledClientException",
            "ServiceUnavailableException",
            "ServiceFailureException",
            "Dispatch",
            "NotFoundException",
        ] {
            assert!(first.iter().any(|o| o == kind), "{kind} missing: {first:?}");
        }
        // A seeded server reproduces account ids too.
        let ids = |seed| async move {
            let server = chime_local::spawn(chime_local::Config {
                seed: Some(seed),
                ..Default::default()
            })
            .await
            .unwrap();
            let chime = client(&server.url());
            let out = chime.create_account().name("a").send().await.unwrap();
            out.account().unwrap().account_id().to_owned()
        };
        assert_eq!(ids(5).await, ids(5).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limit_holds_within_ten_percent_over_five_seconds() {
        let server = start().await;
        let (rps, burst) = (100.0, 10);
        let window = Duration::from_secs(5);
        server.set_faults(Faults {
            rate_limit: Some(RateLimit { rps, burst }),
            ..Faults::default()
        });
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..4 {
            let chime = client(&server.url());
            workers.push(tokio::spawn(async move {
                let (mut accepted, mut throttled) = (0u64, 0u64);
                while started.elapsed() < window {
                    match chime.list_accounts().max_results(1).send().await {
                        Ok(_) => accepted += 1,
                        Err(e) if code(&e) == "ThrottledClientException" => throttled += 1,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                (accepted, throttled)
            }));
        }
        let (mut accepted, mut throttled) = (0, 0);
        for w in workers {
            let (a, t) = w.await.unwrap();
            accepted += a;
            throttled += t;
        }
        let expected = rps * window.as_secs_f64() + f64::from(burst);
        let error = (accepted as f64 - expected).abs() / expected;
        println!(
            "rate limit: accepted {accepted} (expected {expected}), throttled {throttled}, error {:.1}%",
            error * 100.0
        );
        assert!(throttled > accepted, "the load must exceed the limit");
        assert!(error <= 0.10, "accepted {accepted}, expected {expected}");
    }

    #[tokio::test]
    async fn control_endpoints_over_http() {
        let server = start().await;
        let url = server.url();
        let body = br#"{"throttle_rate":0.5,"unavailable_rate":0,"failure_rate":0,"latency_ms":0,"jitter_ms":0,"rate_limit":{"rps":100,"burst":10},"reset_rate":0,"fail_next":["ThrottledClientException","ServiceUnavailableException"],"seed":42}"#;
        let res = raw(&url, "POST", "/_chime-local/faults", false, body).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(server.faults().fail_next.len(), 2);
        assert_eq!(server.faults().seed, Some(42));
        let res = raw(&url, "GET", "/_chime-local/faults", false, b"").await;
        assert_eq!(res.json()["throttle_rate"], 0.5);
        for bad in [
            &br#"{"throttle_rate": 2}"#[..],
            br#"{"fail_next": ["Nope"]}"#,
            br#"{"typo": 1}"#,
            b"{",
        ] {
            let res = raw(&url, "POST", "/_chime-local/faults", false, bad).await;
            assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(bad));
        }
        let res = raw(&url, "DELETE", "/_chime-local/faults", false, b"").await;
        assert_eq!(res.status, 200);
        assert_eq!(server.faults(), Faults::default());

        let chime = client(&url);
        chime.create_account().name("one").send().await.unwrap();
        let res = raw(&url, "GET", "/_chime-local/accounts", false, b"").await;
        assert_eq!(res.json()["Accounts"][0]["Name"], "one");
        let res = raw(&url, "GET", "/_chime-local/stats", false, b"").await;
        assert_eq!(res.json()["by_operation"]["CreateAccount"]["Success"], 1);
        assert_eq!(res.json()["by_outcome"]["Success"], 1);
        let res = raw(&url, "DELETE", "/_chime-local/accounts", false, b"").await;
        assert_eq!(res.status, 204);
        assert!(server.accounts().is_empty());
    }
}

// After-commit faults: the change is kept, the answer is lost (what exactly-once tests need).
mod after_commit {
    use super::support::*;
    use chime_local::{FaultKind, Faults};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// How many accounts ListAccounts finds by `name` (a prefix filter, so names in one test
    /// are never prefixes of each other).
    async fn listed(chime: &aws_sdk_chime::Client, name: &str) -> usize {
        let out = chime.list_accounts().name(name).send().await.unwrap();
        assert!(out.next_token().is_none());
        out.accounts().iter().filter(|a| a.name() == name).count()
    }

    #[tokio::test]
    async fn each_kind_creates_the_account_then_loses_the_answer() {
        let server = start().await;
        let url = server.url();
        let withhold_ms = 2_000;
        let cases = [
            (
                Faults {
                    after_commit_failure_rate: 1.0,
                    ..Faults::default()
                },
                "after-commit 500",
                "ServiceFailureException",
                "ServiceFailureException",
            ),
            (
                Faults {
                    after_commit_unavailable_rate: 1.0,
                    ..Faults::default()
                },
                "after-commit 503",
                "ServiceUnavailableException",
                "ServiceUnavailableException",
            ),
            (
                Faults {
                    after_commit_reset_rate: 1.0,
                    ..Faults::default()
                },
                "after-commit reset",
                "Dispatch",
                "ConnectionReset",
            ),
            (
                Faults {
                    after_commit_withhold_rate: 1.0,
                    withhold_ms,
                    ..Faults::default()
                },
                "after-commit withheld",
                "Timeout",
                "Withheld",
            ),
        ];
        // Retries off; the operation times out long before the answer would come.
        let chime = client_with_timeout(&url, Duration::from_millis(300));
        let reader = client(&url);
        for (n, (faults, name, seen, counted)) in cases.into_iter().enumerate() {
            server.set_faults(faults);
            let started = Instant::now();
            let err = chime.create_account().name(name).send().await.unwrap_err();
            assert_eq!(code(&err), seen, "{name}: {err:?}");
            if seen == "Timeout" {
                assert!(started.elapsed() < Duration::from_millis(withhold_ms));
            }
            // Reads are never faulted after the commit, even at rate 1.
            assert_eq!(listed(&reader, name).await, 1, "{name}");
            let stats = server.stats();
            assert_eq!(stats.after_commit_count(counted), 1, "{name}: {stats:?}");
            assert_eq!(stats.count("CreateAccount", counted), 1, "{name}");
            assert_eq!(stats.after_commit.values().sum::<u64>(), n as u64 + 1);
            assert_eq!(stats.count("ListAccounts", "Success"), n as u64 + 1);
        }
        assert_eq!(server.accounts().len(), 4);
        assert_eq!(server.stats().count("CreateAccount", "Success"), 0);

        // The same counts over HTTP, every key present.
        let res = raw(&url, "GET", "/_chime-local/stats", false, b"").await;
        let after = &res.json()["after_commit"];
        for key in [
            "ServiceFailureException",
            "ServiceUnavailableException",
            "ConnectionReset",
            "Withheld",
        ] {
            assert_eq!(after[key], 1, "{key}: {after}");
        }
        assert_eq!(res.json()["by_outcome"]["Withheld"], 1);
    }

    #[tokio::test]
    async fn update_and_delete_commit_too() {
        let server = start().await;
        let chime = client(&server.url());
        let id = chime
            .create_account()
            .name("before")
            .send()
            .await
            .unwrap()
            .account()
            .unwrap()
            .account_id()
            .to_owned();
        server.set_faults(Faults {
            fail_next: vec![
                FaultKind::CommittedServiceUnavailable,
                FaultKind::CommittedConnectionReset,
            ],
            ..Faults::default()
        });
        let err = chime
            .update_account()
            .account_id(&id)
            .name("after")
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_service_unavailable_exception());
        let got = chime.get_account().account_id(&id).send().await.unwrap();
        assert_eq!(got.account().unwrap().name(), "after");
        let err = chime
            .delete_account()
            .account_id(&id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "Dispatch", "{err:?}");
        let err = chime
            .get_account()
            .account_id(&id)
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_not_found_exception());
        let stats = server.stats();
        assert_eq!(
            stats.count("UpdateAccount", "ServiceUnavailableException"),
            1
        );
        assert_eq!(stats.count("DeleteAccount", "ConnectionReset"), 1);
        assert_eq!(stats.after_commit_count("ServiceUnavailableException"), 1);
        assert_eq!(stats.after_commit_count("ConnectionReset"), 1);
    }

    #[tokio::test]
    async fn reads_do_not_consume_committed_entries() {
        let server = start().await;
        let chime = client(&server.url());
        server.set_faults(Faults {
            fail_next: vec![
                FaultKind::CommittedServiceFailure,
                FaultKind::ThrottledClientException,
            ],
            ..Faults::default()
        });
        for _ in 0..3 {
            chime.list_accounts().send().await.unwrap();
            let err = chime
                .get_account()
                .account_id("missing")
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&err), "NotFoundException");
        }
        assert_eq!(server.faults().fail_next.len(), 2);
        // A mutation that fails (400) committed nothing: answered as is, the entry is spent.
        server.set_faults(Faults {
            fail_next: vec![FaultKind::CommittedServiceFailure],
            ..Faults::default()
        });
        let err = chime.create_account().name(" ").send().await.unwrap_err();
        assert_eq!(code(&err), "BadRequestException");
        assert!(server.faults().fail_next.is_empty());
        assert_eq!(
            server.stats().after_commit_count("ServiceFailureException"),
            0
        );

        server.set_faults(Faults {
            fail_next: vec![
                FaultKind::CommittedServiceFailure,
                FaultKind::ThrottledClientException,
            ],
            ..Faults::default()
        });
        chime.list_accounts().send().await.unwrap();
        let err = chime
            .create_account()
            .name("once")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ServiceFailureException");
        // The entry behind it is any request's: this read takes it.
        let err = chime.list_accounts().send().await.unwrap_err();
        assert_eq!(code(&err), "ThrottledClientException");
        assert_eq!(listed(&chime, "once").await, 1);
        assert!(server.faults().fail_next.is_empty());
        assert_eq!(
            server.stats().after_commit_count("ServiceFailureException"),
            1
        );
    }

    #[tokio::test]
    async fn withheld_answer_ends_in_a_closed_connection() {
        let server = start().await;
        let url = server.url();
        server.set_faults(Faults {
            fail_next: vec![FaultKind::CommittedWithheld],
            withhold_ms: 300,
            ..Faults::default()
        });
        let addr = url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = br#"{"Name":"withheld"}"#;
        let request = format!(
            "POST /accounts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("closed within 10 s");
        let elapsed = started.elapsed();
        assert_eq!(read.unwrap(), 0, "no byte of a response");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert_eq!(server.accounts().len(), 1);

        // A client without a timeout sees the connection end: a dispatch failure.
        server.set_faults(Faults {
            after_commit_withhold_rate: 1.0,
            withhold_ms: 100,
            ..Faults::default()
        });
        let chime = client(&url);
        let err = chime
            .create_account()
            .name("closed")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "Dispatch", "{err:?}");
        assert_eq!(server.accounts().len(), 2);
        assert_eq!(server.stats().after_commit_count("Withheld"), 2);
    }

    async fn outcomes(server: &chime_local::Handle, seed: u64) -> Vec<String> {
        let chime = client(&server.url());
        server.set_faults(Faults {
            after_commit_failure_rate: 0.2,
            after_commit_unavailable_rate: 0.2,
            after_commit_reset_rate: 0.2,
            after_commit_withhold_rate: 0.1,
            withhold_ms: 20,
            seed: Some(seed),
            ..Faults::default()
        });
        let mut out = Vec::new();
        for i in 0..40 {
            // Reads in between draw too, and are never faulted.
            chime.list_accounts().max_results(1).send().await.unwrap();
            out.push(
                match chime
                    .create_account()
                    .name(format!("seeded {seed} {i:02}"))
                    .send()
                    .await
                {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => code(&e),
                },
            );
        }
        out
    }

    #[tokio::test]
    async fn a_seed_reproduces_the_after_commit_sequence() {
        let server = start().await;
        let first = outcomes(&server, 42).await;
        let kept = server.accounts().len();
        let again = outcomes(&server, 42).await;
        let other = outcomes(&server, 7).await;
        assert_eq!(first, again);
        assert_ne!(first, other);
        for kind in [
            "ok",
            "ServiceFailureException",
            "ServiceUnavailableException",
            "Dispatch",
        ] {
            assert!(first.iter().any(|o| o == kind), "{kind} missing: {first:?}");
        }
        // Every create committed, whatever its answer.
        assert_eq!(kept, 40);
        assert_eq!(server.accounts().len(), 120);
        let stats = server.stats();
        let lost = [&first, &again, &other]
            .iter()
            .flat_map(|run| run.iter())
            .filter(|o| *o != "ok")
            .count();
        assert_eq!(stats.after_commit.values().sum::<u64>(), lost as u64);
        assert_eq!(stats.count("ListAccounts", "Success"), 120);
    }

    #[tokio::test]
    async fn faults_over_http_validate_and_default() {
        let server = start().await;
        let url = server.url();
        let res = raw(&url, "GET", "/_chime-local/faults", false, b"").await;
        assert_eq!(res.json()["withhold_ms"], 30_000);
        assert_eq!(res.json()["after_commit_reset_rate"], 0.0);
        let body = br#"{"after_commit_failure_rate":0.1,"after_commit_unavailable_rate":0.1,"after_commit_reset_rate":0.1,"after_commit_withhold_rate":0.1,"withhold_ms":5000,"fail_next":["CommittedServiceFailure","CommittedServiceUnavailable","CommittedConnectionReset","CommittedWithheld"]}"#;
        let res = raw(&url, "POST", "/_chime-local/faults", false, body).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.json()["withhold_ms"], 5000);
        assert_eq!(server.faults().fail_next.len(), 4);
        for bad in [
            &br#"{"after_commit_failure_rate": 1.5}"#[..],
            br#"{"after_commit_failure_rate": 0.6, "after_commit_withhold_rate": 0.6}"#,
            br#"{"withhold_ms": -1}"#,
            br#"{"fail_next": ["CommittedNothing"]}"#,
        ] {
            let res = raw(&url, "POST", "/_chime-local/faults", false, bad).await;
            assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(bad));
            assert!(!res.json()["message"].as_str().unwrap().is_empty());
        }
    }
}

// The router without a socket, and the state file across restarts.
mod lifecycle {
    use super::support::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn router_answers_oneshot() {
        let emulator = chime_local::Emulator::new(chime_local::Config::default()).unwrap();
        let app = chime_local::router(emulator.clone());
        let request = Request::post("/accounts")
            .header("authorization", AUTH)
            .body(Body::from(r#"{"Name":"oneshot"}"#))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 201);
        assert!(response.headers().contains_key("x-amzn-requestid"));
        assert_eq!(emulator.accounts()[0].name, "oneshot");

        emulator.set_faults(chime_local::Faults {
            fail_next: vec![chime_local::FaultKind::ConnectionReset],
            ..Default::default()
        });
        let request = Request::get("/accounts")
            .header("authorization", AUTH)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert!(axum::body::to_bytes(response.into_body(), 1024)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn state_file_keeps_accounts_across_restarts() {
        let path = std::env::temp_dir().join(format!(
            "chime-local-state-{}-{}.json",
            std::process::id(),
            fastrand_suffix()
        ));
        let config = chime_local::Config {
            state_file: Some(path.clone()),
            ..Default::default()
        };
        let server = chime_local::spawn(config.clone()).await.unwrap();
        let chime = client(&server.url());
        chime.create_account().name("kept").send().await.unwrap();
        chime
            .create_account()
            .name("also kept")
            .send()
            .await
            .unwrap();
        let before = server.accounts();
        server.shutdown().await;

        let server = chime_local::spawn(config).await.unwrap();
        assert_eq!(server.accounts(), before);
        let chime = client(&server.url());
        let id = &before[0].account_id;
        chime.get_account().account_id(id).send().await.unwrap();
        server.shutdown().await;
        let _ = std::fs::remove_file(&path);
    }

    fn fastrand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }
}
