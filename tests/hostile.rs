//! The hostile-input corpus: a few hundred malformed, oversized and tricky
//! payloads, generated here, through the real handler (`chime_onboard::handle`)
//! against chime-local and moto (an idempotency table, a reply queue). Each case
//! states its answer: an HTTP status with its problem code, an SQS reply status
//! with its code, or an invocation error with its `errorType`. The run asserts
//! every answer, that no case panics (unwinding is caught per case), and that
//! nothing the corpus refuses created an account.
//!
//! `HOSTILE_CORPUS_DIR=<dir>` also writes each case's event to `<dir>/<n>.json`
//! (the fuzz targets' seed corpus, README.md "Fuzzing").

use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use chime_onboard::handle;
use futures_util::FutureExt;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

use crate::support::{unique, Options, World};

/// The answer a case must get.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// An HTTP response: status, and the problem `code` for an error.
    Http(u16, Option<String>),
    /// An SQS batch of one record: the reply's `Status` and error `Code`.
    Reply(String, Option<String>),
    /// The invocation fails with this `errorType`.
    Error(String),
    /// The handler panicked (never expected).
    Panic(String),
}

fn ok(status: u16) -> Answer {
    Answer::Http(status, None)
}
fn problem(status: u16, code: &str) -> Answer {
    Answer::Http(status, Some(code.to_owned()))
}
fn created() -> Answer {
    ok(201)
}
fn bad(code: &str) -> Answer {
    problem(400, code)
}
fn replied(status: &str, code: Option<&str>) -> Answer {
    Answer::Reply(status.to_owned(), code.map(str::to_owned))
}
fn rejected(code: &str) -> Answer {
    replied("Rejected", Some(code))
}
fn error(error_type: &str) -> Answer {
    Answer::Error(error_type.to_owned())
}
const UNKNOWN: &str = "UnknownEvent";

struct Case {
    name: String,
    event: Value,
    expect: Answer,
}

#[derive(Default)]
struct Corpus(Vec<Case>);

impl Corpus {
    fn add(&mut self, name: impl Into<String>, event: Value, expect: Answer) {
        self.0.push(Case {
            name: name.into(),
            event,
            expect,
        });
    }
}

// ---------------------------------------------------------------- HTTP events

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    V1,
    V2,
    Alb,
    Url,
}
const SHAPES: [Shape; 4] = [Shape::V1, Shape::V2, Shape::Alb, Shape::Url];

/// An HTTP request event of `shape`, built from the sample events.
fn request(
    shape: Shape,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    base64: bool,
) -> Value {
    let mut event = match shape {
        Shape::V1 => crate::event!("apigw-v1-post-accounts.json"),
        Shape::V2 => crate::event!("apigw-v2-post-accounts.json"),
        Shape::Alb => crate::event!("alb-post-accounts.json"),
        Shape::Url => crate::event!("function-url-post-accounts.json"),
    };
    let host = match shape {
        Shape::V1 | Shape::V2 => "abc123.execute-api.us-east-1.amazonaws.com",
        Shape::Alb => "chime-onboard-123456789.us-east-1.elb.amazonaws.com",
        Shape::Url => "abcdefghijklmnopqrstuvwxyz0123.lambda-url.us-east-1.on.aws",
    };
    let mut map = serde_json::Map::new();
    map.insert("host".to_owned(), json!(host));
    for (name, value) in headers {
        map.insert((*name).to_owned(), json!(value));
    }
    match shape {
        Shape::V1 => {
            event["httpMethod"] = json!(method);
            event["path"] = json!(path);
            event["requestContext"]["httpMethod"] = json!(method);
            let multi: serde_json::Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
            event["multiValueHeaders"] = Value::Object(multi);
            event["headers"] = Value::Object(map);
        }
        Shape::Alb => {
            event["httpMethod"] = json!(method);
            event["path"] = json!(path);
            event["headers"] = Value::Object(map);
        }
        Shape::V2 | Shape::Url => {
            event["rawPath"] = json!(path);
            event["requestContext"]["http"]["method"] = json!(method);
            event["requestContext"]["http"]["path"] = json!(path);
            event["headers"] = Value::Object(map);
        }
    }
    match body {
        Some(body) => event["body"] = json!(body),
        None => {
            if let Some(object) = event.as_object_mut() {
                object.remove("body");
            }
        }
    }
    event["isBase64Encoded"] = json!(base64);
    event
}

/// `POST /accounts` with a JSON body over HTTP API v2.
fn post_json(body: &str) -> Value {
    post(Shape::V2, Some("application/json"), body)
}

fn post(shape: Shape, content_type: Option<&str>, body: &str) -> Value {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("content-type", ct))
        .into_iter()
        .collect();
    request(shape, "POST", "/accounts", &headers, Some(body), false)
}

/// `POST /accounts` with a base64 body.
fn post_base64(content_type: &str, bytes: &[u8]) -> Value {
    let body = base64::engine::general_purpose::STANDARD.encode(bytes);
    request(
        Shape::V2,
        "POST",
        "/accounts",
        &[("content-type", content_type)],
        Some(&body),
        true,
    )
}

fn name_json(name: &str) -> String {
    json!({ "Name": name }).to_string()
}

fn form(name: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("Name", name)
        .finish()
}

/// Rust's `char::is_whitespace` (Unicode White_Space), which the name rule trims.
const WHITESPACE: [char; 25] = [
    '\t', '\n', '\u{0B}', '\u{0C}', '\r', ' ', '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}',
    '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}',
    '\u{2009}', '\u{200A}', '\u{2028}', '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
];

fn names(corpus: &mut Corpus) {
    // One character of each script, at the rule's length boundaries.
    let scripts = [
        ("latin", "a"),
        ("latin-1", "é"),
        ("greek", "Ω"),
        ("cyrillic", "Ж"),
        ("armenian", "Ֆ"),
        ("hebrew", "ש"),
        ("arabic", "ع"),
        ("devanagari", "क"),
        ("tamil", "த"),
        ("thai", "ก"),
        ("georgian", "ა"),
        ("ethiopic", "ሀ"),
        ("hangul", "한"),
        ("cjk", "漢"),
        ("emoji", "😀"),
        ("math-astral", "𝔄"),
    ];
    for (script, ch) in scripts {
        for (count, expect) in [(1, created()), (100, created()), (101, bad("NameTooLong"))] {
            let name = ch.repeat(count);
            corpus.add(
                format!("name/{script}/{count}"),
                post_json(&name_json(&name)),
                expect,
            );
        }
    }
    for (script, ch) in scripts.iter().step_by(4) {
        for (count, expect) in [(1, created()), (100, created()), (101, bad("NameTooLong"))] {
            let body = form(&ch.repeat(count));
            corpus.add(
                format!("name/form/{script}/{count}"),
                post(Shape::V2, Some("application/x-www-form-urlencoded"), &body),
                expect,
            );
        }
    }

    for ws in WHITESPACE {
        let code = ws as u32;
        corpus.add(
            format!("name/padded/U+{code:04X}"),
            post_json(&name_json(&format!("{ws}Acme{ws}"))),
            created(),
        );
        corpus.add(
            format!("name/only/U+{code:04X}"),
            post_json(&name_json(&format!("{ws}{ws}"))),
            bad("NameEmpty"),
        );
        let inside = if ws.is_control() || matches!(ws, '\u{2028}' | '\u{2029}') {
            bad("NameInvalidCharacter")
        } else {
            created()
        };
        corpus.add(
            format!("name/inside/U+{code:04X}"),
            post_json(&name_json(&format!("A{ws}B"))),
            inside,
        );
    }
    // 100 characters once trimmed, padded with whitespace to far more.
    let padded = format!(
        "{}{}{}",
        " ".repeat(300),
        "x".repeat(100),
        "\u{3000}".repeat(300)
    );
    corpus.add(
        "name/padded-to-700",
        post_json(&name_json(&padded)),
        created(),
    );

    // Control characters that are not whitespace: refused inside and at the ends.
    let controls = (0u32..0x20)
        .chain([0x7F])
        .chain(0x80..0xA0)
        .filter_map(char::from_u32)
        .filter(|c| !c.is_whitespace());
    for c in controls {
        corpus.add(
            format!("name/control/U+{:04X}", c as u32),
            post_json(&name_json(&format!("a{c}b"))),
            bad("NameInvalidCharacter"),
        );
    }
    for c in ['\u{0}', '\u{1B}', '\u{7F}', '\u{9B}'] {
        corpus.add(
            format!("name/control-at-end/U+{:04X}", c as u32),
            post_json(&name_json(&format!("ab{c}"))),
            bad("NameInvalidCharacter"),
        );
    }

    // Unicode that is neither whitespace nor control: counted in scalar values.
    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}"; // 7 scalar values
    let oddities: [(&str, String, Answer); 20] = [
        ("combining-x50", "e\u{301}".repeat(50), created()),
        ("combining-x51", "e\u{301}".repeat(51), bad("NameTooLong")),
        ("combining-alone", "\u{301}".to_owned(), created()),
        (
            "zalgo",
            format!("Z{}", "\u{300}\u{316}\u{35C}".repeat(33)),
            created(),
        ),
        ("zwj-family-x14", family.repeat(14), created()),
        ("zwj-family-x15", family.repeat(15), bad("NameTooLong")),
        ("flags-x50", "\u{1F1FA}\u{1F1F3}".repeat(50), created()),
        (
            "flags-x51",
            "\u{1F1FA}\u{1F1F3}".repeat(51),
            bad("NameTooLong"),
        ),
        ("rtl-override", "\u{202E}evil\u{202C}".to_owned(), created()),
        ("bidi-isolates", "\u{2066}x\u{2069}".to_owned(), created()),
        ("zero-width-space", "\u{200B}".to_owned(), created()),
        ("bom-in-name", "\u{FEFF}Acme".to_owned(), created()),
        ("soft-hyphen", "\u{AD}".to_owned(), created()),
        ("noncharacter", "\u{FFFF}".to_owned(), created()),
        ("replacement-char", "\u{FFFD}".to_owned(), created()),
        ("private-use", "\u{E000}".to_owned(), created()),
        ("tag-characters", "\u{E0041}\u{E0042}".to_owned(), created()),
        ("max-scalar", "\u{10FFFF}".to_owned(), created()),
        ("hangul-filler", "\u{3164}".to_owned(), created()),
        (
            "mongolian-vowel-separator",
            "\u{180E}".to_owned(),
            created(),
        ),
    ];
    for (label, name, expect) in oddities {
        corpus.add(
            format!("name/{label}"),
            post_json(&name_json(&name)),
            expect,
        );
    }
}

fn json_documents(corpus: &mut Corpus) {
    let documents: [(&str, &str, Answer); 48] = [
        // Escapes, lone surrogates.
        (
            "lone-high-surrogate",
            r#"{"Name":"\ud800"}"#,
            bad("BodyNotJson"),
        ),
        (
            "lone-low-surrogate",
            r#"{"Name":"\udfff"}"#,
            bad("BodyNotJson"),
        ),
        (
            "high-then-text",
            r#"{"Name":"a\ud83dz"}"#,
            bad("BodyNotJson"),
        ),
        (
            "reversed-pair",
            r#"{"Name":"\ude00\ud83d"}"#,
            bad("BodyNotJson"),
        ),
        (
            "two-highs",
            r#"{"Name":"\ud83d\ud83d"}"#,
            bad("BodyNotJson"),
        ),
        ("surrogate-pair", r#"{"Name":"\ud83d\ude00"}"#, created()),
        (
            "escaped-nul",
            r#"{"Name":"a\u0000b"}"#,
            bad("NameInvalidCharacter"),
        ),
        ("escaped-letters", r#"{"Name":"\u0041cme"}"#, created()),
        ("invalid-escape", r#"{"Name":"\x41"}"#, bad("BodyNotJson")),
        ("short-escape", r#"{"Name":"\u12"}"#, bad("BodyNotJson")),
        ("escaped-key", r#"{"\u004eame":"Acme"}"#, created()),
        // Duplicate keys: the last one wins (serde_json), consistently.
        ("duplicate-name", r#"{"Name":"a","Name":"b"}"#, created()),
        (
            "duplicate-name-last-bad",
            r#"{"Name":"a","Name":1}"#,
            bad("NameNotString"),
        ),
        (
            "duplicate-name-first-bad",
            r#"{"Name":1,"Name":"a"}"#,
            created(),
        ),
        (
            "duplicate-name-first-empty",
            r#"{"Name":"","Name":"a"}"#,
            created(),
        ),
        (
            "duplicate-request-id",
            r#"{"Name":"a","RequestId":"ok","RequestId":"bad id"}"#,
            bad("RequestIdInvalid"),
        ),
        // Numbers.
        ("nan", r#"{"Name":NaN}"#, bad("BodyNotJson")),
        ("infinity", r#"{"Name":Infinity}"#, bad("BodyNotJson")),
        (
            "minus-infinity",
            r#"{"Name":-Infinity}"#,
            bad("BodyNotJson"),
        ),
        (
            "number-out-of-range",
            r#"{"Name":1e999}"#,
            bad("BodyNotJson"),
        ),
        ("big-float", r#"{"Name":1e308}"#, bad("NameNotString")),
        (
            "big-integer",
            r#"{"Name":123456789012345678901234567890}"#,
            bad("NameNotString"),
        ),
        ("minus-zero", r#"{"Name":-0}"#, bad("NameNotString")),
        (
            "request-id-out-of-range",
            r#"{"Name":"a","RequestId":1e999}"#,
            bad("BodyNotJson"),
        ),
        (
            "request-id-number",
            r#"{"Name":"a","RequestId":5}"#,
            bad("RequestIdInvalid"),
        ),
        (
            "request-id-null",
            r#"{"Name":"a","RequestId":null}"#,
            created(),
        ),
        // Shapes.
        ("null", "null", bad("BodyNotObject")),
        ("array", "[]", bad("BodyNotObject")),
        ("string", r#""Acme""#, bad("BodyNotObject")),
        ("true", "true", bad("BodyNotObject")),
        ("empty-object", "{}", bad("NameMissing")),
        ("name-null", r#"{"Name":null}"#, bad("NameMissing")),
        ("lowercase-key", r#"{"name":"Acme"}"#, bad("NameMissing")),
        ("name-array", r#"{"Name":["Acme"]}"#, bad("NameNotString")),
        ("name-object", r#"{"Name":{}}"#, bad("NameNotString")),
        ("name-bool", r#"{"Name":true}"#, bad("NameNotString")),
        ("trailing-garbage", r#"{"Name":"a"} x"#, bad("BodyNotJson")),
        (
            "two-documents",
            r#"{"Name":"a"}{"Name":"b"}"#,
            bad("BodyNotJson"),
        ),
        ("trailing-comma", r#"{"Name":"a",}"#, bad("BodyNotJson")),
        ("single-quotes", "{'Name':'a'}", bad("BodyNotJson")),
        ("comment", r#"{"Name":"a" /* hi */}"#, bad("BodyNotJson")),
        ("unquoted-key", r#"{Name:"a"}"#, bad("BodyNotJson")),
        ("empty", "", bad("BodyNotJson")),
        ("blank", " \n\t ", bad("BodyNotJson")),
        ("truncated", r#"{"Name":"a"#, bad("BodyNotJson")),
        (
            "raw-control-in-string",
            "{\"Name\":\"a\u{1}b\"}",
            bad("BodyNotJson"),
        ),
        (
            "raw-newline-in-string",
            "{\"Name\":\"a\nb\"}",
            bad("BodyNotJson"),
        ),
        (
            "extra-members",
            r#"{"Name":"a","Admin":true,"AccountType":"EnterpriseOIDC"}"#,
            created(),
        ),
    ];
    for (label, body, expect) in documents {
        corpus.add(format!("json/{label}"), post_json(body), expect);
    }

    // Nesting: serde_json stops at depth 128, without exhausting the stack.
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    corpus.add(
        "json/nested-100",
        post_json(&format!(r#"{{"Name":"a","x":{}}}"#, nested(100))),
        created(),
    );
    corpus.add(
        "json/nested-200",
        post_json(&format!(r#"{{"Name":"a","x":{}}}"#, nested(200))),
        bad("BodyNotJson"),
    );
    corpus.add(
        "json/nested-objects-200",
        post_json(&format!(
            r#"{{"Name":"a","x":{}1{}}}"#,
            r#"{"a":"#.repeat(200),
            "}".repeat(200)
        )),
        bad("BodyNotJson"),
    );
    corpus.add(
        "json/unterminated-8000",
        post_json(&"[".repeat(8000)),
        bad("BodyNotJson"),
    );

    // Byte-order marks.
    let bom = "\u{FEFF}{\"Name\":\"Acme\"}";
    corpus.add(
        "bom/json",
        post(Shape::V2, Some("application/json"), bom),
        bad("BodyNotJson"),
    );
    corpus.add(
        "bom/no-content-type",
        post(Shape::V2, None, bom),
        problem(415, "UnsupportedMediaType"),
    );
    corpus.add(
        "bom/form",
        post(
            Shape::V2,
            Some("application/x-www-form-urlencoded"),
            "\u{FEFF}Name=Acme",
        ),
        bad("NameMissing"),
    );
}

fn bodies(corpus: &mut Corpus) {
    const LIMIT: usize = 16 * 1024;
    // A JSON document of exactly `len` bytes with a valid name.
    let sized = |len: usize| {
        let head = r#"{"Name":"Acme","pad":""#;
        let tail = r#""}"#;
        format!("{head}{}{tail}", "p".repeat(len - head.len() - tail.len()))
    };
    corpus.add("size/json-16384", post_json(&sized(LIMIT)), created());
    corpus.add(
        "size/json-16385",
        post_json(&sized(LIMIT + 1)),
        problem(413, "PayloadTooLarge"),
    );
    corpus.add(
        "size/json-1MiB",
        post_json(&sized(1 << 20)),
        problem(413, "PayloadTooLarge"),
    );
    corpus.add(
        "size/base64-16384",
        post_base64("application/json", sized(LIMIT).as_bytes()),
        created(),
    );
    corpus.add(
        "size/base64-16385",
        post_base64("application/json", sized(LIMIT + 1).as_bytes()),
        problem(413, "PayloadTooLarge"),
    );
    // Over 16 KiB as base64 text, under it decoded.
    corpus.add(
        "size/base64-text-over-decoded-under",
        post_base64("application/json", sized(13_000).as_bytes()),
        created(),
    );
    let form_sized = |len: usize| format!("Name=Acme&pad={}", "p".repeat(len - 14));
    corpus.add(
        "size/form-16384",
        post(
            Shape::V2,
            Some("application/x-www-form-urlencoded"),
            &form_sized(LIMIT),
        ),
        created(),
    );
    corpus.add(
        "size/form-16385",
        post(
            Shape::V2,
            Some("application/x-www-form-urlencoded"),
            &form_sized(LIMIT + 1),
        ),
        problem(413, "PayloadTooLarge"),
    );
    for shape in SHAPES {
        corpus.add(
            format!("size/{shape:?}-16385"),
            post(shape, Some("application/json"), &sized(LIMIT + 1)),
            problem(413, "PayloadTooLarge"),
        );
    }

    // base64 that is not base64, and base64 of bytes that are not UTF-8.
    let raw_base64 = |body: &str| {
        request(
            Shape::V2,
            "POST",
            "/accounts",
            &[("content-type", "application/json")],
            Some(body),
            true,
        )
    };
    for (label, body) in [
        ("bang", "!!!!"),
        ("bad-padding", "QQ="),
        ("newline", "eyJOYW1lIjoiYSJ9\n"),
        ("url-safe-alphabet", "eyJOYW1lIjoi-_8ifQ"),
        ("space", "eyJO YW1l"),
        ("unicode", "ëyJOYW1l"),
    ] {
        corpus.add(
            format!("base64/invalid/{label}"),
            raw_base64(body),
            bad("MalformedRequest"),
        );
    }
    corpus.add("base64/empty", raw_base64(""), bad("BodyNotJson"));
    let not_utf8: [(&str, &[u8]); 6] = [
        ("ff", b"\xff"),
        ("lone-continuation", b"\x80"),
        ("overlong-slash", b"\xc0\xaf"),
        ("cesu-surrogate", b"\xed\xa0\x80"),
        ("truncated-euro", b"\xe2\x82"),
        ("above-max", b"\xf4\x90\x80\x80"),
    ];
    for (label, bytes) in not_utf8 {
        let mut json = br#"{"Name":"A"#.to_vec();
        json.extend_from_slice(bytes);
        json.extend_from_slice(br#""}"#);
        corpus.add(
            format!("base64/not-utf8/json/{label}"),
            post_base64("application/json", &json),
            bad("BodyNotJson"),
        );
        let mut form = b"Name=A".to_vec();
        form.extend_from_slice(bytes);
        corpus.add(
            format!("base64/not-utf8/form/{label}"),
            post_base64("application/x-www-form-urlencoded", &form),
            bad("BodyNotUtf8"),
        );
    }
    let form_body = |body: &str| post(Shape::V2, Some("application/x-www-form-urlencoded"), body);
    corpus.add("form/percent-ff", form_body("Name=%FF"), bad("BodyNotUtf8"));
    corpus.add(
        "form/percent-overlong",
        form_body("Name=%C0%AF"),
        bad("BodyNotUtf8"),
    );
    corpus.add(
        "form/percent-utf8",
        form_body("Name=%C3%89quipe"),
        created(),
    );
    corpus.add(
        "form/plus-is-space",
        form_body("Name=Acme+Rockets"),
        created(),
    );
    corpus.add("form/invalid-percent", form_body("Name=%ZZ"), created());
    corpus.add(
        "form/percent-nul",
        form_body("Name=a%00b"),
        bad("NameInvalidCharacter"),
    );
    corpus.add("form/no-name", form_body("name=Acme"), bad("NameMissing"));
    corpus.add("form/empty-name", form_body("Name="), bad("NameEmpty"));
    corpus.add(
        "form/duplicate-name-first-wins",
        form_body("Name=Acme&Name="),
        created(),
    );
    corpus.add("form/no-equals", form_body("Name"), bad("NameEmpty"));
    corpus.add(
        "form/only-separators",
        form_body("&&&=&"),
        bad("NameMissing"),
    );
    corpus.add(
        "form/other-bad-utf8-ignored",
        form_body("x=%FF&Name=Acme"),
        created(),
    );

    // Content types.
    let content_types: [(&str, Option<&str>, &str, Answer); 16] = [
        (
            "json-utf8",
            Some("application/json; charset=UTF-8"),
            "{\"Name\":\"a\"}",
            created(),
        ),
        (
            "json-upper",
            Some("APPLICATION/JSON"),
            "{\"Name\":\"a\"}",
            created(),
        ),
        (
            "json-quoted-charset",
            Some("application/json;charset=\"utf-8\""),
            "{\"Name\":\"a\"}",
            created(),
        ),
        (
            "json-utf16",
            Some("application/json; charset=utf-16"),
            "{\"Name\":\"a\"}",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "json-latin1",
            Some("application/json; charset=iso-8859-1"),
            "{\"Name\":\"a\"}",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "merge-patch",
            Some("application/merge-patch+json"),
            "{\"Name\":\"a\"}",
            created(),
        ),
        (
            "text-plain",
            Some("text/plain"),
            "{\"Name\":\"a\"}",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "text-html",
            Some("text/html"),
            "Name=a",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            "--x--",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "empty",
            Some(""),
            "{\"Name\":\"a\"}",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "params-only",
            Some(";charset=utf-8"),
            "{\"Name\":\"a\"}",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "form-latin1",
            Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
            "Name=a",
            problem(415, "UnsupportedMediaType"),
        ),
        (
            "json-with-other-param",
            Some("application/json; version=2"),
            "{\"Name\":\"a\"}",
            created(),
        ),
        ("none-json", None, "  {\"Name\":\"a\"}", created()),
        (
            "none-form",
            None,
            "Name=a",
            problem(415, "UnsupportedMediaType"),
        ),
        ("none-empty", None, "", bad("BodyMissing")),
    ];
    for (label, content_type, body, expect) in content_types {
        corpus.add(
            format!("content-type/{label}"),
            post(Shape::V2, content_type, body),
            expect,
        );
    }
    let no_body = request(Shape::V2, "POST", "/accounts", &[], None, false);
    corpus.add("content-type/none-no-body", no_body, bad("BodyMissing"));
}

fn headers_and_routes(corpus: &mut Corpus) {
    // Idempotency-Key: validated because the corpus runs with a table. Keys
    // are unique per case so no case meets another's.
    let key = |suffix: &str| format!("{}{suffix}", unique("k"));
    let long = "k".repeat(255);
    let keys: [(&str, String, Answer); 9] = [
        ("empty", String::new(), bad("IdempotencyKeyInvalid")),
        ("ok", key(""), created()),
        (
            "255",
            {
                let k = key("");
                format!("{k}{}", &long[..255 - k.len()])
            },
            created(),
        ),
        ("256", "k".repeat(256), bad("IdempotencyKeyInvalid")),
        ("space", key(" x"), bad("IdempotencyKeyInvalid")),
        ("tab", key("\tx"), bad("IdempotencyKeyInvalid")),
        ("cyrillic", key("ключ"), bad("IdempotencyKeyInvalid")),
        ("latin-1", key("é"), bad("IdempotencyKeyInvalid")),
        ("del", key("\u{7F}"), bad("MalformedRequest")),
    ];
    for (label, value, expect) in keys {
        let event = request(
            Shape::V2,
            "POST",
            "/accounts",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", &value),
            ],
            Some(r#"{"Name":"Keyed"}"#),
            false,
        );
        corpus.add(format!("idempotency-key/{label}"), event, expect);
    }

    let json = [("content-type", "application/json")];
    let body = Some(r#"{"Name":"Acme"}"#);
    for shape in SHAPES {
        for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            corpus.add(
                format!("method/{shape:?}/{method}-accounts"),
                request(shape, method, "/accounts", &json, body, false),
                problem(405, "MethodNotAllowed"),
            );
        }
        corpus.add(
            format!("method/{shape:?}/POST-root"),
            request(shape, "POST", "/", &json, body, false),
            problem(405, "MethodNotAllowed"),
        );
        corpus.add(
            format!("method/{shape:?}/GET-root"),
            request(shape, "GET", "/", &[], None, false),
            ok(200),
        );
    }
    for (label, method) in [("custom", "FOO"), ("lowercase", "post")] {
        corpus.add(
            format!("method/{label}"),
            request(Shape::V2, method, "/accounts", &json, body, false),
            problem(405, "MethodNotAllowed"),
        );
    }
    let long_path = format!("/{}", "a".repeat(10_000));
    let paths: [(&str, &str, Answer); 12] = [
        ("trailing-slash", "/accounts/", created()),
        ("double-slash", "//accounts", created()),
        ("base-path", "/onboarding/v1/accounts", created()),
        ("upper-case", "/ACCOUNTS", problem(404, "NotFound")),
        ("sub-resource", "/accounts/123", problem(404, "NotFound")),
        ("percent-encoded", "/%61ccounts", problem(404, "NotFound")),
        ("encoded-nul", "/accounts%00", problem(404, "NotFound")),
        ("non-ascii", "/accöunts", problem(404, "NotFound")),
        ("dot-segments", "/x/../accounts", created()),
        ("long", &long_path, problem(404, "NotFound")),
        ("no-leading-slash", "accounts", bad("MalformedRequest")),
        ("query-in-path", "/accounts?x=1", created()),
    ];
    for (label, path, expect) in paths {
        corpus.add(
            format!("path/{label}"),
            request(Shape::V2, "POST", path, &json, body, false),
            expect,
        );
    }

    // Host, scheme and query values lambda_http would turn into a URI.
    for (label, name, value, expect) in [
        (
            "host-space",
            "host",
            "exa mple.com",
            bad("MalformedRequest"),
        ),
        ("host-bracket", "host", "[::1", bad("MalformedRequest")),
        ("host-empty", "host", "", bad("MalformedRequest")),
        ("host-userinfo", "host", "user@evil.example", created()),
        (
            "proto-space",
            "x-forwarded-proto",
            "ht tp",
            bad("MalformedRequest"),
        ),
        ("proto-other", "x-forwarded-proto", "javascript", created()),
    ] {
        for shape in [Shape::V1, Shape::V2, Shape::Alb] {
            let event = request(
                shape,
                "POST",
                "/accounts",
                &[("content-type", "application/json"), (name, value)],
                body,
                false,
            );
            corpus.add(format!("uri/{shape:?}/{label}"), event, expect.clone());
        }
    }
    for (label, query, expect) in [
        ("percent", "%%%", created()),
        ("space", "a b", bad("MalformedRequest")),
        ("non-ascii", "q=ü", created()),
        ("nul", "a=%00", created()),
    ] {
        let mut event = request(Shape::V2, "POST", "/accounts", &json, body, false);
        event["rawQueryString"] = json!(query);
        corpus.add(format!("uri/query/{label}"), event, expect);
    }
}

fn event_shapes(corpus: &mut Corpus) {
    let json = [("content-type", "application/json")];
    let body = Some(r#"{"Name":"Acme"}"#);
    for shape in SHAPES {
        let base = request(shape, "POST", "/accounts", &json, body, false);
        let mutate = |f: &dyn Fn(&mut Value)| {
            let mut event = base.clone();
            f(&mut event);
            event
        };
        let remove = |key: &'static str| {
            mutate(&move |e: &mut Value| {
                if let Some(o) = e.as_object_mut() {
                    o.remove(key);
                }
            })
        };
        let set =
            |key: &'static str, value: Value| mutate(&move |e: &mut Value| e[key] = value.clone());
        // What each mutation must give, per shape.
        let (no_context, context_typed, headers_typed) = match shape {
            // v2 and URLs are recognised by requestContext.http; without it the
            // payload is nothing this function knows.
            Shape::V2 | Shape::Url => (error(UNKNOWN), error(UNKNOWN), error(UNKNOWN)),
            // REST v1 is recognised by httpMethod, but its requestContext is required.
            Shape::V1 => (error(UNKNOWN), error(UNKNOWN), error(UNKNOWN)),
            // ALB is recognised by requestContext.elb.
            Shape::Alb => (error(UNKNOWN), error(UNKNOWN), error(UNKNOWN)),
        };
        corpus.add(
            format!("shape/{shape:?}/no-requestContext"),
            remove("requestContext"),
            no_context,
        );
        corpus.add(
            format!("shape/{shape:?}/requestContext-number"),
            set("requestContext", json!(1)),
            context_typed,
        );
        corpus.add(
            format!("shape/{shape:?}/headers-number"),
            set("headers", json!(1)),
            headers_typed,
        );
        corpus.add(
            format!("shape/{shape:?}/headers-null"),
            set("headers", Value::Null),
            match shape {
                // Without headers there is no content type; the body starts with `{`.
                Shape::V1 => created(),
                _ => created(),
            },
        );
        corpus.add(
            format!("shape/{shape:?}/body-number"),
            set("body", json!(1)),
            error(UNKNOWN),
        );
        corpus.add(
            format!("shape/{shape:?}/body-object"),
            set("body", json!({"Name": "Acme"})),
            error(UNKNOWN),
        );
        corpus.add(
            format!("shape/{shape:?}/base64-flag-string"),
            set("isBase64Encoded", json!("yes")),
            error(UNKNOWN),
        );
        corpus.add(
            format!("shape/{shape:?}/header-value-number"),
            mutate(&|e: &mut Value| e["headers"]["content-type"] = json!(1)),
            error(UNKNOWN),
        );
        corpus.add(
            format!("shape/{shape:?}/extra-deep-member"),
            mutate(&|e: &mut Value| {
                let mut deep = json!("bottom");
                for _ in 0..100 {
                    deep = json!([deep]);
                }
                e["x-extra"] = deep;
            }),
            created(),
        );
    }
    // Method and path of the wrong JSON type.
    let mut v1 = request(Shape::V1, "POST", "/accounts", &json, body, false);
    v1["httpMethod"] = json!(1);
    corpus.add("shape/V1/httpMethod-number", v1, error(UNKNOWN));
    let mut v2 = request(Shape::V2, "POST", "/accounts", &json, body, false);
    v2["requestContext"]["http"]["method"] = json!(["POST"]);
    corpus.add("shape/V2/method-array", v2, error(UNKNOWN));
    let mut v2 = request(Shape::V2, "POST", "/accounts", &json, body, false);
    v2["version"] = json!("3.0");
    corpus.add("shape/V2/version-3", v2, error(UNKNOWN));
    for (label, method) in [("space", "PO ST"), ("empty", ""), ("newline", "POST\n")] {
        for shape in SHAPES {
            corpus.add(
                format!("shape/{shape:?}/method-{label}"),
                request(shape, method, "/accounts", &json, body, false),
                bad("MalformedRequest"),
            );
        }
    }

    // Payloads that are no request at all.
    let others: [(&str, Value, &str); 22] = [
        ("null", Value::Null, UNKNOWN),
        ("array", json!([]), UNKNOWN),
        ("string", json!("POST /accounts"), UNKNOWN),
        ("number", json!(42), UNKNOWN),
        ("bool", json!(true), UNKNOWN),
        ("empty-object", json!({}), UNKNOWN),
        ("records-empty", json!({"Records": []}), UNKNOWN),
        ("records-object", json!({"Records": {}}), UNKNOWN),
        ("records-number", json!({"Records": [1]}), UNKNOWN),
        (
            "records-s3",
            json!({"Records": [{"eventSource": "aws:s3"}]}),
            UNKNOWN,
        ),
        (
            "records-mixed",
            json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m"}, {"eventSource": "aws:sns"}]}),
            UNKNOWN,
        ),
        (
            "records-no-source",
            json!({"Records": [{"messageId": "m", "body": "{}"}]}),
            UNKNOWN,
        ),
        ("s3-put", crate::event!("unsupported-s3-put.json"), UNKNOWN),
        (
            "authorizer-token",
            crate::event!("apigw-authorizer-token.json"),
            "AuthorizerEventUnsupported",
        ),
        (
            "authorizer-request",
            crate::event!("apigw-authorizer-request.json"),
            "AuthorizerEventUnsupported",
        ),
        (
            "authorizer-v2-v1",
            crate::event!("apigw-v2-authorizer-v1-request.json"),
            "AuthorizerEventUnsupported",
        ),
        (
            "authorizer-v2-v2",
            crate::event!("apigw-v2-authorizer-v2-request.json"),
            "AuthorizerEventUnsupported",
        ),
        (
            "authorizer-websocket",
            crate::event!("apigw-websocket-authorizer-request.json"),
            "AuthorizerEventUnsupported",
        ),
        (
            "websocket-connect",
            crate::event!("apigw-websocket-connect.json"),
            "WebSocketEventUnsupported",
        ),
        (
            "websocket-connect-with-method",
            crate::event!("apigw-websocket-connect-with-method.json"),
            "WebSocketEventUnsupported",
        ),
        (
            "websocket-disconnect",
            crate::event!("apigw-websocket-disconnect.json"),
            "WebSocketEventUnsupported",
        ),
        (
            "version-2-without-http",
            json!({"version": "2.0", "requestContext": {}}),
            UNKNOWN,
        ),
    ];
    for (label, event, error_type) in others {
        corpus.add(format!("not-a-request/{label}"), event, error(error_type));
    }
}

// ---------------------------------------------------------------- SQS

/// One standard-queue record around `body`, changed by `edit`.
fn sqs(body: Value, edit: impl Fn(&mut Value)) -> Value {
    let mut record = json!({
        "messageId": unique("m"),
        "receiptHandle": "AQEB",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:requests",
        "awsRegion": "us-east-1"
    });
    edit(&mut record);
    json!({ "Records": [record] })
}

fn string_attribute(value: &str) -> Value {
    json!({"stringValue": value, "dataType": "String"})
}

fn sqs_records(corpus: &mut Corpus) {
    let named = |name: &str| json!(json!({"Name": name, "RequestId": unique("r")}).to_string());
    let keep = |_: &mut Value| {};
    corpus.add("sqs/ok", sqs(named("Acme"), keep), replied("Created", None));
    for (label, body, code) in [
        ("body-empty", json!(""), "BodyNotJson"),
        ("body-not-json", json!("Name=Acme"), "BodyNotJson"),
        ("body-array", json!("[]"), "BodyNotObject"),
        ("body-no-name", json!("{}"), "NameMissing"),
        ("body-bom", json!("\u{FEFF}{\"Name\":\"a\"}"), "BodyNotJson"),
        (
            "body-lone-surrogate",
            json!(r#"{"Name":"\ud800"}"#),
            "BodyNotJson",
        ),
        (
            "body-nested-200",
            json!(format!(
                r#"{{"Name":"a","x":{}{}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            )),
            "BodyNotJson",
        ),
        ("name-blank", json!(r#"{"Name":"\u3000"}"#), "NameEmpty"),
        (
            "name-long",
            json!(json!({"Name": "ж".repeat(101)}).to_string()),
            "NameTooLong",
        ),
        (
            "name-control",
            json!(r#"{"Name":"a\u001bb"}"#),
            "NameInvalidCharacter",
        ),
        ("name-number", json!(r#"{"Name":7}"#), "NameNotString"),
        (
            "request-id-10000",
            json!(json!({"Name": "a", "RequestId": "r".repeat(10_000)}).to_string()),
            "RequestIdInvalid",
        ),
        (
            "request-id-129",
            json!(json!({"Name": "a", "RequestId": "r".repeat(129)}).to_string()),
            "RequestIdInvalid",
        ),
        (
            "request-id-empty",
            json!(r#"{"Name":"a","RequestId":""}"#),
            "RequestIdInvalid",
        ),
        (
            "request-id-space",
            json!(r#"{"Name":"a","RequestId":"a b"}"#),
            "RequestIdInvalid",
        ),
        (
            "request-id-non-ascii",
            json!(r#"{"Name":"a","RequestId":"é"}"#),
            "RequestIdInvalid",
        ),
        (
            "request-id-number",
            json!(r#"{"Name":"a","RequestId":12}"#),
            "RequestIdInvalid",
        ),
        (
            "request-id-object",
            json!(r#"{"Name":"a","RequestId":{}}"#),
            "RequestIdInvalid",
        ),
    ] {
        corpus.add(format!("sqs/{label}"), sqs(body, keep), rejected(code));
    }
    corpus.add(
        "sqs/body-missing",
        sqs(Value::Null, |r| {
            if let Some(o) = r.as_object_mut() {
                o.remove("body");
            }
        }),
        rejected("BodyNotJson"),
    );
    corpus.add(
        "sqs/body-null",
        sqs(Value::Null, keep),
        rejected("BodyNotJson"),
    );
    corpus.add(
        "sqs/request-id-128",
        sqs(
            json!(
                json!({"Name": "a", "RequestId": format!("{}{}", unique("r"), "r".repeat(128))
                .chars()
                .take(128)
                .collect::<String>()})
                .to_string()
            ),
            keep,
        ),
        replied("Created", None),
    );

    // ReplyTo: only allow-listed queues; anything else is refused on the default queue.
    for (label, url) in [
        (
            "foreign-account",
            "https://sqs.us-east-1.amazonaws.com/999999999999/evil",
        ),
        (
            "foreign-region",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/replies",
        ),
        ("not-a-url", "not a url"),
        ("empty", ""),
        ("javascript", "javascript:alert(1)"),
        ("file", "file:///etc/passwd"),
        (
            "loopback-metadata",
            "http://169.254.169.254/latest/meta-data/",
        ),
        ("nul", "https://sqs.us-east-1.amazonaws.com/1/q\u{0}"),
    ] {
        let url = url.to_owned();
        corpus.add(
            format!("sqs/reply-to/{label}"),
            sqs(named("Acme"), move |r| {
                r["messageAttributes"]["ReplyTo"] = string_attribute(&url)
            }),
            rejected("ReplyToNotAllowed"),
        );
    }
    corpus.add(
        "sqs/reply-to/10000-chars",
        sqs(named("Acme"), |r| {
            r["messageAttributes"]["ReplyTo"] =
                string_attribute(&format!("https://{}", "q".repeat(10_000)))
        }),
        rejected("ReplyToNotAllowed"),
    );
    corpus.add(
        "sqs/reply-to/number-type",
        sqs(named("Acme"), |r| {
            r["messageAttributes"]["ReplyTo"] = json!({"stringValue": "12", "dataType": "Number"})
        }),
        rejected("ReplyToNotAllowed"),
    );
    corpus.add(
        "sqs/reply-to/binary-only",
        sqs(named("Acme"), |r| {
            r["messageAttributes"]["ReplyTo"] = json!({"binaryValue": "AAEC", "dataType": "Binary"})
        }),
        replied("Created", None),
    );
    corpus.add(
        "sqs/reply-to/no-value",
        sqs(named("Acme"), |r| {
            r["messageAttributes"]["ReplyTo"] = json!({"dataType": "String"})
        }),
        replied("Created", None),
    );
    corpus.add(
        "sqs/correlation-id-10000",
        sqs(named("Acme"), |r| {
            r["messageAttributes"]["CorrelationId"] = string_attribute(&"c".repeat(10_000))
        }),
        replied("Created", None),
    );
    corpus.add(
        "sqs/receive-count-garbage",
        sqs(named("Acme"), |r| {
            r["attributes"]["ApproximateReceiveCount"] = json!("lots")
        }),
        replied("Created", None),
    );
    corpus.add(
        "sqs/message-id-10000",
        sqs(named("Acme"), |r| {
            r["messageId"] = json!(format!("{}{}", unique("m"), "m".repeat(10_000)))
        }),
        replied("Created", None),
    );

    // Records the function cannot account for (no id to report a failure
    // against) fail the whole batch; records of the wrong JSON types are no
    // SQS event at all.
    for (label, error_type, edit) in [
        (
            "message-id-missing",
            "MalformedBatch",
            Box::new(|r: &mut Value| {
                if let Some(o) = r.as_object_mut() {
                    o.remove("messageId");
                }
            }) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "message-id-empty",
            "MalformedBatch",
            Box::new(|r: &mut Value| r["messageId"] = json!("")),
        ),
        (
            "message-id-number",
            UNKNOWN,
            Box::new(|r: &mut Value| r["messageId"] = json!(7)),
        ),
        (
            "attribute-not-object",
            UNKNOWN,
            Box::new(|r: &mut Value| r["messageAttributes"]["ReplyTo"] = json!(5)),
        ),
        (
            "attribute-value-number",
            UNKNOWN,
            Box::new(|r: &mut Value| {
                r["messageAttributes"]["ReplyTo"] = json!({"stringValue": 5, "dataType": "String"})
            }),
        ),
        (
            "attributes-number",
            UNKNOWN,
            Box::new(|r: &mut Value| r["attributes"] = json!(5)),
        ),
        (
            "body-number",
            UNKNOWN,
            Box::new(|r: &mut Value| r["body"] = json!(5)),
        ),
        (
            "event-source-missing",
            UNKNOWN,
            Box::new(|r: &mut Value| {
                if let Some(o) = r.as_object_mut() {
                    o.remove("eventSource");
                }
            }),
        ),
    ] {
        corpus.add(
            format!("sqs/invalid/{label}"),
            sqs(named("Acme"), edit),
            error(error_type),
        );
    }
}

// ---------------------------------------------------------------- the run

fn corpus() -> Vec<Case> {
    let mut corpus = Corpus::default();
    names(&mut corpus);
    json_documents(&mut corpus);
    bodies(&mut corpus);
    headers_and_routes(&mut corpus);
    event_shapes(&mut corpus);
    sqs_records(&mut corpus);
    corpus.0
}

async fn answer(world: &World, event: Value) -> Answer {
    let mut context = Context::default();
    context.request_id = unique("req");
    context.deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64 + 30_000)
        .unwrap_or(0);
    // Unwinding is caught, so a panic is reported as this case's answer.
    let outcome = AssertUnwindSafe(async {
        handle(&world.app, LambdaEvent::new(event, context))
            .await
            .map(|output| serde_json::to_value(output).expect("the output serialises"))
            .map_err(|err| err.error_type().to_owned())
    })
    .catch_unwind()
    .await;
    let output = match outcome {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()));
            return Answer::Panic(message.unwrap_or_default());
        }
        Ok(Err(error_type)) => return Answer::Error(error_type),
        Ok(Ok(output)) => output,
    };
    if let Some(status) = output["statusCode"].as_u64() {
        let body = output["body"].as_str().unwrap_or_default();
        let code = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|b| b["code"].as_str().map(str::to_owned));
        return Answer::Http(status as u16, code.filter(|_| status >= 400));
    }
    let failures = output["batchItemFailures"].as_array().map_or(0, Vec::len);
    let replies = world
        .replies_from(&world.reply_queue, 1, Duration::from_secs(5))
        .await;
    match (failures, replies.first()) {
        (0, Some(reply)) => Answer::Reply(
            reply.status().to_owned(),
            reply.body["Error"]["Code"].as_str().map(str::to_owned),
        ),
        (failures, reply) => Answer::Panic(format!(
            "unexpected SQS answer: {failures} failures, reply {:?}",
            reply.map(|r| &r.body)
        )),
    }
}

#[tokio::test]
async fn every_hostile_input_gets_its_stated_answer() {
    let world = World::with(Options {
        idempotency: true,
        ..Options::default()
    })
    .await;
    let cases = corpus();
    assert!(cases.len() >= 300, "the corpus has {} cases", cases.len());
    if let Ok(dir) = std::env::var("HOSTILE_CORPUS_DIR") {
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (n, case) in cases.iter().enumerate() {
            let path = format!("{dir}/hostile-{n:03}.json");
            std::fs::write(path, case.event.to_string()).expect("write a seed");
        }
    }

    let mut wrong = Vec::new();
    let mut created = 0;
    for case in &cases {
        let got = answer(&world, case.event.clone()).await;
        if got == case.expect && matches!(got, Answer::Http(201, _)) {
            created += 1;
        }
        if let Answer::Reply(status, _) = &got {
            if status == "Created" && got == case.expect {
                created += 1;
            }
        }
        if got != case.expect {
            wrong.push(format!(
                "{}: expected {:?}, got {:?}",
                case.name, case.expect, got
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases answered wrongly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    // Nothing refused left an account behind: only the cases answered 201 or
    // Created did create one.
    assert_eq!(
        world.chime.accounts().len(),
        created,
        "accounts in chime-local"
    );
}
