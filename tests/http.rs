//! DESIGN.md's HTTP table, each row through the real handler.

use serde_json::{json, Value};

use crate::event;
use crate::support::{response_body, World};

/// A v2 POST /accounts event with `body` and `content_type`.
fn post(body: &str, content_type: Option<&str>) -> Value {
    let mut event = event!("apigw-v2-post-accounts.json");
    event["body"] = json!(body);
    match content_type {
        Some(ct) => event["headers"]["content-type"] = json!(ct),
        None => {
            if let Some(headers) = event["headers"].as_object_mut() {
                headers.remove("content-type");
            }
        }
    }
    event
}

fn with_method_and_path(mut event: Value, method: &str, path: &str) -> Value {
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event
}

/// A response header, from `headers` or (REST v1, ALB) `multiValueHeaders`.
fn header<'a>(response: &'a Value, name: &str) -> Option<&'a str> {
    let find = |member: &str| {
        let headers = response[member].as_object()?;
        let (_, value) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        value.as_str().or_else(|| value[0].as_str())
    };
    find("headers").or_else(|| find("multiValueHeaders"))
}

/// Asserts a problem+json response with `status` and `code`; returns its body.
fn assert_problem(response: &Value, status: u16, code: &str) -> Value {
    assert_eq!(response["statusCode"], json!(status), "{response}");
    assert_eq!(
        header(response, "content-type"),
        Some("application/problem+json")
    );
    let problem = response_body(response);
    assert_eq!(problem["status"], json!(status));
    assert_eq!(problem["code"], json!(code), "{problem}");
    for member in ["type", "title", "detail", "requestId"] {
        assert!(problem[member].is_string(), "{member} missing in {problem}");
    }
    assert!(problem["requestId"]
        .as_str()
        .is_some_and(|id| id.starts_with("req-")));
    problem
}

#[tokio::test]
async fn every_event_shape_creates_an_account_and_answers_in_its_shape() {
    let world = World::new().await;
    let cases = [
        ("v1", event!("apigw-v1-post-accounts.json")),
        ("v2", event!("apigw-v2-post-accounts.json")),
        ("alb", event!("alb-post-accounts.json")),
        ("url", event!("function-url-post-accounts.json")),
    ];
    for (shape, mut event) in cases {
        // The Function URL sample is a browser's form post; a JSON client here
        // (the browser's answer is checked in `a_browser_form_post_gets_an_html_page`).
        event["headers"]["accept"] = json!("application/json");
        let response = world.invoke(event).await;
        assert_eq!(response["statusCode"], json!(201), "{shape}: {response}");
        let created = response_body(&response);
        let id = created["AccountId"].as_str().unwrap_or_default();
        assert!(world.has_account(id), "{shape}: {id} not in chime-local");
        assert_eq!(created["Account"]["AccountId"], json!(id));
        assert_eq!(created["Account"]["AccountType"], json!("Team"));
        let location = match shape {
            // REST v1 answers with multiValueHeaders only.
            "v1" => response["multiValueHeaders"]["location"][0].as_str(),
            _ => header(&response, "location"),
        };
        assert_eq!(
            location,
            Some(format!("/accounts/{id}").as_str()),
            "{shape}"
        );
        match shape {
            "alb" => assert_eq!(response["statusDescription"], json!("201 Created")),
            // REST v1 answers with multiValueHeaders only.
            "v1" => assert!(response["multiValueHeaders"]["location"].is_array()),
            _ => assert!(
                response.get("cookies").is_some(),
                "{shape}: v2 response shape"
            ),
        }
    }
    let mut names = world.account_names();
    names.sort();
    // The Function URL sample posts a form whose name has a multi-byte character.
    assert_eq!(
        names,
        [
            "Acme Rockets",
            "Acme Rockets",
            "Acme Rockets",
            "Acme Rockets Équipe"
        ]
    );
}

#[tokio::test]
async fn form_posts_and_base64_bodies_are_decoded() {
    let world = World::new().await;
    let response = world
        .invoke(post(
            "Name=Caf%C3%A9+R%C3%A9seau&x=1",
            Some("application/x-www-form-urlencoded"),
        ))
        .await;
    assert_eq!(response["statusCode"], json!(201), "{response}");
    assert_eq!(
        response_body(&response)["Account"]["Name"],
        json!("Café Réseau")
    );

    let mut event = post("", Some("application/json; charset=utf-8"));
    event["body"] = json!("eyJOYW1lIjogIkJhc2U2NCBJbmMifQ=="); // {"Name": "Base64 Inc"}
    event["isBase64Encoded"] = json!(true);
    let response = world.invoke(event).await;
    assert_eq!(response["statusCode"], json!(201), "{response}");
    assert_eq!(
        response_body(&response)["Account"]["Name"],
        json!("Base64 Inc")
    );

    // `curl -d '{"Name":...}'` sends JSON under the form content type.
    let response = world
        .invoke(post(
            r#"{"Name":"Curl Default"}"#,
            Some("application/x-www-form-urlencoded"),
        ))
        .await;
    assert_eq!(response["statusCode"], json!(201), "{response}");
}

#[tokio::test]
async fn get_root_serves_the_form_even_under_a_stage() {
    let world = World::new().await;
    let response = world.invoke(event!("apigw-v2-get-form.json")).await;
    assert_eq!(response["statusCode"], json!(200));
    assert_eq!(
        header(&response, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(response["body"].as_str().unwrap_or("").contains("<form"));

    // REST v1 with stage "prod": the path lambda_http builds carries the stage.
    let mut v1 = event!("apigw-v1-post-accounts.json");
    v1["httpMethod"] = json!("GET");
    v1["path"] = json!("/");
    v1["body"] = Value::Null;
    let response = world.invoke(v1).await;
    assert_eq!(response["statusCode"], json!(200), "{response}");
}

#[tokio::test]
async fn routing_rows_answer_404_405_with_allow() {
    let world = World::new().await;
    let response = world
        .invoke(with_method_and_path(post("", None), "GET", "/accounts"))
        .await;
    let problem = assert_problem(&response, 405, "MethodNotAllowed");
    assert_eq!(header(&response, "allow"), Some("POST"));
    assert!(problem["detail"].as_str().unwrap_or("").contains("POST"));

    let response = world
        .invoke(with_method_and_path(post("", None), "DELETE", "/"))
        .await;
    assert_problem(&response, 405, "MethodNotAllowed");
    assert_eq!(header(&response, "allow"), Some("GET, HEAD"));

    let response = world
        .invoke(with_method_and_path(post("", None), "GET", "/elsewhere"))
        .await;
    assert_problem(&response, 404, "NotFound");
    assert!(world.account_names().is_empty());
}

#[tokio::test]
async fn body_rows_answer_413_415_400() {
    let world = World::new().await;
    let big = format!(r#"{{"Name": "{}"}}"#, "a".repeat(16 * 1024));
    assert_problem(
        &world.invoke(post(&big, Some("application/json"))).await,
        413,
        "PayloadTooLarge",
    );
    assert_problem(
        &world
            .invoke(post(r#"{"Name":"Acme"}"#, Some("text/plain")))
            .await,
        415,
        "UnsupportedMediaType",
    );
    assert_problem(
        &world
            .invoke(post(
                r#"{"Name":"Acme"}"#,
                Some("application/json; charset=latin1"),
            ))
            .await,
        415,
        "UnsupportedMediaType",
    );
    assert_problem(
        &world.invoke(post("Name=Acme", None)).await,
        415,
        "UnsupportedMediaType",
    );
    // No body and no content type: a missing body, not an unsupported type.
    for blank in ["", " \r\n"] {
        assert_problem(&world.invoke(post(blank, None)).await, 400, "BodyMissing");
    }
    let cases = [
        ("{\"Name\": ", "BodyNotJson"),
        ("[\"Acme\"]", "BodyNotObject"),
        ("{\"Name\": 42}", "NameNotString"),
        ("{}", "NameMissing"),
        ("{\"Name\": \" \\u00a0 \"}", "NameEmpty"),
        ("{\"Name\": \"a\\tb\"}", "NameInvalidCharacter"),
        ("{\"Name\": \"a\\u2028b\"}", "NameInvalidCharacter"),
    ];
    for (json_body, code) in cases {
        assert_problem(
            &world
                .invoke(post(json_body, Some("application/json")))
                .await,
            400,
            code,
        );
    }
    let long = format!(r#"{{"Name": "{}"}}"#, "é".repeat(101));
    let problem = assert_problem(
        &world.invoke(post(&long, Some("application/json"))).await,
        400,
        "NameTooLong",
    );
    // Never echoes the input.
    assert!(!problem["detail"].as_str().unwrap_or("").contains("éé"));
    assert_problem(
        &world
            .invoke(event!("apigw-v2-post-accounts-bad-name.json"))
            .await,
        400,
        "NameEmpty",
    );
    assert!(world.account_names().is_empty(), "no account for bad input");
}

#[tokio::test]
async fn chime_errors_map_to_the_design_statuses() {
    let world = World::new().await;
    let ok = || post(r#"{"Name":"Acme"}"#, Some("application/json"));
    // Retryable kinds fail every attempt the SDK makes (3).
    let cases = [
        ("BadRequestException", 1, 400),
        ("ThrottledClientException", 3, 429),
        ("ServiceUnavailableException", 3, 503),
        ("ServiceFailureException", 3, 502),
        ("ForbiddenException", 1, 502),
        ("UnauthorizedClientException", 1, 502),
        ("NotFoundException", 1, 502),
    ];
    for (kind, attempts, status) in cases {
        world.set_faults(json!({ "fail_next": vec![kind; attempts] }));
        let response = world.invoke(ok()).await;
        let problem = assert_problem(&response, status, kind);
        match status {
            429 => assert_eq!(header(&response, "retry-after"), Some("1")),
            503 => assert_eq!(header(&response, "retry-after"), Some("5")),
            _ => assert_eq!(header(&response, "retry-after"), None),
        }
        if status == 400 {
            // Chime's own message rides in `detail`.
            assert!(problem["detail"]
                .as_str()
                .unwrap_or("")
                .contains("BadRequestException"));
        }
    }
    assert!(world.account_names().is_empty());
    world.set_faults(json!({}));
    assert_eq!(world.invoke(ok()).await["statusCode"], json!(201));
}

#[tokio::test]
async fn a_slow_chime_answers_504() {
    let mut options = crate::support::Options::default();
    options.config.chime_timeout = std::time::Duration::from_millis(200);
    let world = World::with(options).await;
    world.set_faults(json!({ "latency_ms": 1500 }));
    let response = world
        .invoke(post(r#"{"Name":"Slow"}"#, Some("application/json")))
        .await;
    assert_problem(&response, 504, "ChimeTimeout");
}

#[tokio::test]
async fn without_a_table_the_idempotency_key_is_ignored() {
    let world = World::new().await;
    let mut event = post(r#"{"Name":"Twice"}"#, Some("application/json"));
    event["headers"]["idempotency-key"] = json!("k-1");
    assert_eq!(world.invoke(event.clone()).await["statusCode"], json!(201));
    assert_eq!(world.invoke(event).await["statusCode"], json!(201));
    assert_eq!(world.account_names().len(), 2);
}

#[tokio::test]
async fn events_lambda_http_would_panic_on_are_answered_400() {
    let world = World::new().await;
    let mut bad_host = post(r#"{"Name":"Acme"}"#, Some("application/json"));
    bad_host["headers"]["host"] = json!("exa mple.com");
    let mut bad_query = post(r#"{"Name":"Acme"}"#, Some("application/json"));
    bad_query["rawQueryString"] = json!("a=\"quoted\" value");
    let mut bad_base64 = event!("alb-post-accounts.json");
    bad_base64["isBase64Encoded"] = json!(true);
    bad_base64["body"] = json!("not base64!");
    let mut bad_scheme = event!("apigw-v1-post-accounts.json");
    bad_scheme["headers"]["X-Forwarded-Proto"] = json!("ht tp");
    for event in [bad_host, bad_query, bad_base64, bad_scheme] {
        let response = world.invoke(event).await;
        assert_problem(&response, 400, "MalformedRequest");
    }
    assert!(world.account_names().is_empty());
}

#[tokio::test]
async fn a_browser_form_post_gets_an_html_page() {
    let world = World::new().await;
    // The sample as a browser sends it: urlencoded, `Accept: text/html`.
    let response = world
        .invoke(event!("function-url-post-accounts.json"))
        .await;
    assert_eq!(response["statusCode"], json!(201), "{response}");
    assert_eq!(
        header(&response, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(header(&response, "content-security-policy").is_some());
    let html = response["body"].as_str().unwrap_or_default();
    let id = html
        .split("<code>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap_or_default();
    assert!(world.has_account(id), "{id} not in chime-local");
    assert_eq!(
        header(&response, "location"),
        Some(format!("/accounts/{id}").as_str())
    );
    // A bad name: the form again, the words beside the field, status 400.
    let mut event = event!("function-url-post-accounts.json");
    event["body"] = json!("Name=%20%20");
    event["isBase64Encoded"] = json!(false);
    let response = world.invoke(event).await;
    assert_eq!(response["statusCode"], json!(400));
    let html = response["body"].as_str().unwrap_or_default();
    assert!(html.contains("aria-invalid=\"true\""));
    assert!(html.contains("Enter an account name"));
}
