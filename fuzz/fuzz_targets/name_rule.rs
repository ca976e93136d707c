//! The account-name rule on arbitrary strings: it never panics, and what it
//! accepts is what README.md promises (trimmed, 1..=100 scalar values, no
//! control characters, no U+2028/U+2029).
#![no_main]

use chime_onboard::onboard::{AccountName, MAX_NAME_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    match AccountName::parse(raw) {
        Ok(name) => {
            let name = name.as_str();
            let chars = name.chars().count();
            assert!((1..=MAX_NAME_CHARS).contains(&chars), "{chars} characters");
            assert_eq!(name, raw.trim(), "the name is the trimmed input");
            assert!(!name.starts_with(char::is_whitespace) && !name.ends_with(char::is_whitespace));
            assert!(!name
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')));
        }
        Err(err) => {
            // Error messages never echo the input.
            let message = err.to_string();
            let trimmed = raw.trim();
            assert!(
                trimmed.chars().count() < 8 || !message.contains(trimmed),
                "{message}"
            );
        }
    }
});
