//! Unit tests of `config.rs`: every variable read, defaulted and refused as documented.

use super::*;
use std::collections::HashMap;

fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_match_the_design() {
    assert_eq!(from(&[]), Ok(Config::default()));
}

#[test]
fn allowed_reply_queues_default_to_the_reply_queue() {
    let url = "https://sqs.us-east-1.amazonaws.com/1/replies";
    let config = from(&[("REPLY_QUEUE_URL", url)]).unwrap_or_default();
    assert_eq!(config.allowed_reply_queues, vec![url.to_owned()]);
    assert!(config.reply_queue_allowed(url));
    assert!(!config.reply_queue_allowed("https://elsewhere"));
}

#[test]
fn allowed_reply_queues_take_urls_and_name_prefixes() {
    let base = "https://sqs.us-east-1.amazonaws.com/123456789012";
    let list = format!("{base}/replies, {base}/stack-bulk-*");
    let config = from(&[("ALLOWED_REPLY_QUEUES", list.as_str())]).unwrap_or_default();
    assert!(config.reply_queue_allowed(&format!("{base}/replies")));
    assert!(config.reply_queue_allowed(&format!("{base}/stack-bulk-r1")));
    assert!(!config.reply_queue_allowed(&format!("{base}/stack-other")));
    let err = from(&[("ALLOWED_REPLY_QUEUES", &format!("{base}/*") as &str)]).err();
    assert_eq!(err.map(|e| e.variable), Some("ALLOWED_REPLY_QUEUES"));
    let err = from(&[("ALLOWED_REPLY_QUEUES", "https://sqs.example/bulk-*")]).err();
    assert_eq!(err.map(|e| e.variable), Some("ALLOWED_REPLY_QUEUES"));
}

#[test]
fn bad_values_name_the_variable() {
    let err = from(&[("MAX_CONCURRENCY", "0")]).err();
    assert_eq!(err.as_ref().map(|e| e.variable), Some("MAX_CONCURRENCY"));
    let err = from(&[("CHIME_TIMEOUT_MS", "soon")]).err();
    assert!(err
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("CHIME_TIMEOUT_MS=\"soon\": expected a whole number"));
    let err = from(&[("REPLY_QUEUE_URL", "replies")]).err();
    assert_eq!(err.map(|e| e.variable), Some("REPLY_QUEUE_URL"));
}

#[test]
fn auth_settings_are_read_and_checked() {
    let config = from(&[
        ("AUTH_REQUIRED", "true"),
        (
            "AUTH_JWT_ISSUER",
            "https://cognito-idp.us-east-1.amazonaws.com/pool",
        ),
        ("AUTH_JWT_AUDIENCE", "client-a, client-b"),
    ])
    .unwrap_or_default();
    assert!(config.auth.required);
    assert_eq!(
        config.auth.jwt,
        Some(JwtIssuer {
            issuer: "https://cognito-idp.us-east-1.amazonaws.com/pool".to_owned(),
            audiences: vec!["client-a".to_owned(), "client-b".to_owned()],
            scopes: Vec::new(),
        })
    );
    let variable = |pairs: &[(&str, &str)]| from(pairs).err().map(|e| e.variable);
    assert_eq!(
        variable(&[("AUTH_REQUIRED", "maybe")]),
        Some("AUTH_REQUIRED")
    );
    assert_eq!(
        variable(&[("AUTH_JWT_ISSUER", "https://issuer.example")]),
        Some("AUTH_JWT_AUDIENCE")
    );
    assert_eq!(
        variable(&[("AUTH_JWT_AUDIENCE", "client")]),
        Some("AUTH_JWT_ISSUER")
    );
    // Plain HTTP only to loopback.
    let http = |issuer| variable(&[("AUTH_JWT_ISSUER", issuer), ("AUTH_JWT_AUDIENCE", "c")]);
    assert_eq!(http("http://127.0.0.1:9400"), None);
    assert_eq!(http("http://localhost:9400"), None);
    assert_eq!(http("http://issuer.example"), Some("AUTH_JWT_ISSUER"));
    assert_eq!(http("issuer"), Some("AUTH_JWT_ISSUER"));
    assert_eq!(
        variable(&[("AUTH_JWT_SCOPE", "accounts.create")]),
        Some("AUTH_JWT_ISSUER")
    );
}

#[test]
fn an_issuer_requires_sign_in_unless_auth_required_is_false() {
    let issuer = [
        ("AUTH_JWT_ISSUER", "https://issuer.example"),
        ("AUTH_JWT_AUDIENCE", "client"),
    ];
    let required = |extra: &[(&str, &str)]| {
        let mut pairs = issuer.to_vec();
        pairs.extend_from_slice(extra);
        from(&pairs).map(|c| c.auth.required)
    };
    assert_eq!(required(&[]), Ok(true), "an issuer alone");
    assert_eq!(required(&[("AUTH_REQUIRED", "false")]), Ok(false));
    assert_eq!(required(&[("AUTH_REQUIRED", "true")]), Ok(true));
    // An empty value is unset, not false.
    assert_eq!(required(&[("AUTH_REQUIRED", " ")]), Ok(true));
    // Without an issuer, only AUTH_REQUIRED=true requires a principal.
    assert_eq!(from(&[]).map(|c| c.auth.required), Ok(false));
    assert_eq!(
        from(&[("AUTH_REQUIRED", "true")]).map(|c| c.auth.required),
        Ok(true)
    );
}

#[test]
fn the_warm_up_is_on_by_default_with_an_issuer_and_can_be_turned_off() {
    let issuer = [
        ("AUTH_JWT_ISSUER", "https://issuer.example"),
        ("AUTH_JWT_AUDIENCE", "client"),
    ];
    let warm_up = |extra: &[(&str, &str)], with_issuer: bool| {
        let mut pairs = if with_issuer {
            issuer.to_vec()
        } else {
            Vec::new()
        };
        pairs.extend_from_slice(extra);
        from(&pairs).map(|c| c.warm_up)
    };
    assert_eq!(warm_up(&[], false), Ok(false));
    assert_eq!(warm_up(&[("WARM_UP", "true")], false), Ok(true));
    assert_eq!(warm_up(&[], true), Ok(true));
    assert_eq!(warm_up(&[("WARM_UP", "false")], true), Ok(false));
}

#[test]
fn scopes_are_space_separated() {
    let config = from(&[
        ("AUTH_JWT_ISSUER", "https://issuer.example"),
        ("AUTH_JWT_AUDIENCE", "client"),
        ("AUTH_JWT_SCOPE", " chime-onboard/accounts.create   openid "),
    ]);
    assert_eq!(
        config.map(|c| c.auth.jwt.map(|j| j.scopes)),
        Ok(Some(vec![
            "chime-onboard/accounts.create".to_owned(),
            "openid".to_owned()
        ]))
    );
}

#[test]
fn sign_in_settings_come_all_together() {
    let all = [
        (
            "WEB_SIGNIN_AUTHORIZE_URL",
            "https://auth.example/oauth2/authorize",
        ),
        ("WEB_SIGNIN_TOKEN_URL", "https://auth.example/oauth2/token"),
        ("WEB_SIGNIN_CLIENT_ID", "client"),
    ];
    let sign_in = from(&all).ok().and_then(|c| c.sign_in);
    assert_eq!(sign_in.as_ref().map(|s| s.scopes.as_str()), Some("openid"));
    assert_eq!(sign_in.as_ref().and_then(|s| s.logout_url.clone()), None);
    let mut logout = all.to_vec();
    logout.push(("WEB_SIGNIN_LOGOUT_URL", "http://auth.example/logout"));
    assert_eq!(
        from(&logout).err().map(|e| e.variable),
        Some("WEB_SIGNIN_LOGOUT_URL")
    );
    assert_eq!(sign_in.map(|s| s.bearer), Some(BearerToken::Access));
    let err = from(&all[..2]).err().map(|e| e.variable);
    assert_eq!(err, Some("WEB_SIGNIN_CLIENT_ID"));
    let mut bad = all.to_vec();
    bad.push(("WEB_SIGNIN_TOKEN", "refresh"));
    assert_eq!(
        from(&bad).err().map(|e| e.variable),
        Some("WEB_SIGNIN_TOKEN")
    );
}
