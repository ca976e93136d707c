//! Unit tests of `onboard.rs`, over the fakes of `fakes.rs`.
use super::*;

#[test]
fn names_are_trimmed_and_counted_in_scalar_values() {
    let name = AccountName::parse("  Acme Corp \u{3000}").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(name.as_str(), "Acme Corp");
    let hundred = "é".repeat(100);
    assert!(AccountName::parse(&hundred).is_ok());
    let too_long = "é".repeat(101);
    assert_eq!(
        AccountName::parse(&too_long),
        Err(OnboardError::NameTooLong { chars: 101 })
    );
    // Four-byte characters count once each.
    assert!(AccountName::parse(&"😀".repeat(100)).is_ok());
}

#[test]
fn blank_and_control_characters_are_rejected_with_their_code() {
    for blank in ["", "   ", "\u{a0}\u{a0}", "\t\n"] {
        assert_eq!(
            AccountName::parse(blank).map_err(|e| e.code()),
            Err("NameEmpty"),
            "{blank:?}"
        );
    }
    for bad in ["a\tb", "a\u{0}b", "a\u{2028}b", "a\u{2029}b", "a\u{85}b"] {
        assert_eq!(
            AccountName::parse(bad).map_err(|e| e.code()),
            Err("NameInvalidCharacter"),
            "{bad:?}"
        );
    }
}

#[test]
fn request_document_shapes_map_to_codes() {
    let code =
        |body: &str| crate::wire::RequestDocument::read(body.as_bytes()).map_err(|e| e.code());
    assert_eq!(code("not json"), Err("BodyNotJson"));
    assert_eq!(code("[1]"), Err("BodyNotObject"));
    assert_eq!(code("{}"), Err("NameMissing"));
    assert_eq!(code(r#"{"Name": null}"#), Err("NameMissing"));
    assert_eq!(code(r#"{"Name": 7}"#), Err("NameNotString"));
    assert_eq!(
        code(r#"{"Name": "a", "RequestId": 3}"#),
        Err("RequestIdInvalid")
    );
    assert_eq!(
        code(r#"{"Name": "a", "RequestId": "é"}"#),
        Err("RequestIdInvalid")
    );
    let ok =
        crate::wire::RequestDocument::read(br#"{"Name": " Acme ", "RequestId": "r-1", "x": 1}"#);
    assert_eq!(
        ok.map(|r| (r.name.as_str().to_owned(), r.request_id)),
        Ok(("Acme".to_owned(), Some("r-1".to_owned())))
    );
}

#[test]
fn error_messages_never_echo_the_input() {
    let long = "x".repeat(10_000);
    let err = AccountName::parse(&long).err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.len() < 200, "{message}");
}

fn unbounded() -> Budget {
    Budget::unbounded(Duration::from_secs(5))
}

#[tokio::test]
async fn a_create_starts_only_within_the_budget() {
    use crate::deadline::Deadline;
    use crate::fakes::FakeChime;
    let name = AccountName::parse("Acme").unwrap_or_else(|e| panic!("{e}"));
    let chime = FakeChime::default();
    let late = Budget {
        deadline: Deadline::at(std::time::SystemTime::now() + Duration::from_secs(2)),
        call: Duration::from_secs(5),
    };
    assert_eq!(
        create_account(&chime, &name, late).await,
        Err(OnboardError::TimeBudgetExhausted)
    );
    assert_eq!(chime.creates(), 0);
}

#[tokio::test]
async fn only_creates_known_to_have_created_nothing_are_sent_again() {
    use crate::fakes::FakeChime;
    let unreachable = |request_sent| OnboardError::ChimeUnreachable {
        reason: "connection".into(),
        request_sent,
    };
    let name = AccountName::parse("Acme").unwrap_or_else(|e| panic!("{e}"));
    // Throttled, then never connected: both retried in the call.
    let chime = FakeChime::default();
    chime.fail_next([
        OnboardError::Chime {
            kind: ChimeErrorKind::Throttled,
            message: String::new(),
        },
        unreachable(false),
    ]);
    assert!(create_account(&chime, &name, unbounded()).await.is_ok());
    assert_eq!(chime.creates(), 3);
    // Three throttles: the last one is the answer.
    let chime = FakeChime::default();
    chime.fail_next((0..3).map(|_| OnboardError::Chime {
        kind: ChimeErrorKind::Throttled,
        message: String::new(),
    }));
    assert_eq!(
        create_account(&chime, &name, unbounded())
            .await
            .map_err(|e| e.code()),
        Err("ThrottledClientException")
    );
    assert_eq!(chime.creates(), CREATE_ATTEMPTS as usize);
    // Ambiguous outcomes are answered after one call.
    for ambiguous in [
        unreachable(true),
        OnboardError::ChimeTimeout,
        OnboardError::Chime {
            kind: ChimeErrorKind::ServiceFailure,
            message: String::new(),
        },
    ] {
        let chime = FakeChime::default();
        chime.fail_next([ambiguous.clone()]);
        assert_eq!(
            create_account(&chime, &name, unbounded()).await,
            Err(ambiguous.clone())
        );
        assert_eq!(chime.creates(), 1, "{ambiguous:?}");
        assert!(ambiguous.may_have_created());
    }
}

#[test]
fn classes_split_permanent_from_transient() {
    let chime = |kind| OnboardError::Chime {
        kind,
        message: String::new(),
    };
    assert!(!chime(ChimeErrorKind::BadRequest).class().is_transient());
    // Operator errors: retried over SQS, never Rejected.
    for kind in [
        ChimeErrorKind::Forbidden,
        ChimeErrorKind::Unauthorized,
        ChimeErrorKind::NotFound,
    ] {
        assert_eq!(chime(kind).class(), ErrorClass::Misconfigured);
        assert!(chime(kind).class().is_transient());
        assert!(!chime(kind).may_have_created());
    }
    assert!(chime(ChimeErrorKind::Throttled).class().is_transient());
    assert!(chime(ChimeErrorKind::ServiceFailure).class().is_transient());
    assert!(OnboardError::ChimeTimeout.class().is_transient());
    assert!(!OnboardError::IdempotencyKeyReused.class().is_transient());
}
