//! The service's data shapes and constraints, as the Chime model (`chime/2018-05-01`) states them:
//! the `Account` structure, the `AccountName` string rule, the `License` enum and the
//! `EmailAddress` pattern. Nothing here knows HTTP.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// `AccountName`: `min 1`, `max 100`.
pub const NAME_MAX: usize = 100;
/// `ProfileServiceMaxResults`: `1..=200`; ListAccounts defaults to 100.
pub const MAX_RESULTS_RANGE: std::ops::RangeInclusive<i64> = 1..=200;
/// ListAccounts page size when `max-results` is absent ("Defaults to 100").
pub const DEFAULT_MAX_RESULTS: usize = 100;
/// The `License` enum of the model.
pub const LICENSES: [&str; 4] = ["Basic", "Plus", "Pro", "ProTrial"];
/// Licenses a new Team account supports (as in the API reference's sample response).
pub const SUPPORTED_LICENSES: [&str; 2] = ["Basic", "Pro"];

/// An Amazon Chime account, serialized exactly as the service's `Account` shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    /// The AWS account that owns the Chime account (12 digits).
    pub aws_account_id: String,
    /// The Chime account id, a UUID.
    pub account_id: String,
    /// The account name, as given to CreateAccount or UpdateAccount.
    pub name: String,
    /// Always `Team`: the only type CreateAccount creates.
    pub account_type: String,
    /// ISO 8601 with milliseconds, UTC: `2019-01-08T17:59:18.006Z`.
    pub created_timestamp: String,
    /// `Pro` for a new account; UpdateAccount may change it.
    pub default_license: String,
    /// `["Basic", "Pro"]`.
    pub supported_licenses: Vec<String>,
    /// `Active`.
    pub account_status: String,
    /// Empty for a new Team account.
    pub signin_delegate_groups: Vec<SigninDelegateGroup>,
}

/// `SigninDelegateGroup`: an AD group whose members may act as delegates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SigninDelegateGroup {
    /// The group name.
    pub group_name: String,
}

impl Account {
    /// A new Team account as CreateAccount returns it.
    pub fn new_team(account_id: String, aws_account_id: String, name: String) -> Self {
        Account {
            aws_account_id,
            account_id,
            name,
            account_type: "Team".to_owned(),
            created_timestamp: iso8601_now(),
            default_license: "Pro".to_owned(),
            supported_licenses: SUPPORTED_LICENSES.iter().map(|s| (*s).to_owned()).collect(),
            account_status: "Active".to_owned(),
            signin_delegate_groups: Vec::new(),
        }
    }
}

/// Why a string breaks a constraint of the model (the message names the member, Coral style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Fewer than `min` Unicode scalar values.
    TooShort,
    /// More than `max` Unicode scalar values.
    TooLong,
    /// Does not match the Java regular expression of the member.
    Pattern(&'static str),
}

impl Violation {
    /// The constraint text of a Coral validation message.
    pub fn constraint(&self) -> String {
        match self {
            Violation::TooShort => "Member must have length greater than or equal to 1".to_owned(),
            Violation::TooLong => {
                format!("Member must have length less than or equal to {NAME_MAX}")
            }
            Violation::Pattern(p) => format!("Member must satisfy regular expression pattern: {p}"),
        }
    }
}

/// Java's line terminators: what `.` does not match (without `DOTALL`).
fn is_java_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{0085}' | '\u{2028}' | '\u{2029}')
}

/// Java's `\s` (without `UNICODE_CHARACTER_CLASS`): `[ \t\n\x0B\f\r]`.
fn is_java_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{000B}' | '\u{000C}' | '\r')
}

/// Whether the whole string matches the Java pattern `.*\S.*`: no line terminator anywhere
/// (`.` does not match them and the match must span the string), and at least one character
/// outside ASCII whitespace. So `"\u{00A0}"` (NBSP alone) matches; `"a\u{2028}b"` does not.
pub fn matches_non_blank_pattern(s: &str) -> bool {
    !s.chars().any(is_java_line_terminator) && s.chars().any(|c| !is_java_whitespace(c))
}

/// `AccountName`: length 1..=100 in Unicode scalar values, then pattern `.*\S.*`.
pub fn check_account_name(name: &str) -> Result<(), Violation> {
    let len = name.chars().count();
    if len < 1 {
        return Err(Violation::TooShort);
    }
    if len > NAME_MAX {
        return Err(Violation::TooLong);
    }
    if !matches_non_blank_pattern(name) {
        return Err(Violation::Pattern(r".*\S.*"));
    }
    Ok(())
}

/// `EmailAddress`: Java pattern `.+@.+\..+` over the whole string.
pub fn check_email(email: &str) -> Result<(), Violation> {
    const PATTERN: &str = r".+@.+\..+";
    if email.chars().any(is_java_line_terminator) {
        return Err(Violation::Pattern(PATTERN));
    }
    // `.+@.+\..+`: some '@' with at least one char before it, and after it some '.'
    // that has at least one char on each side.
    let chars: Vec<char> = email.chars().collect();
    let ok = chars.iter().enumerate().any(|(at, c)| {
        *c == '@'
            && at >= 1
            && chars
                .iter()
                .enumerate()
                .skip(at + 2)
                .any(|(dot, d)| *d == '.' && dot + 1 < chars.len())
    });
    if ok {
        Ok(())
    } else {
        Err(Violation::Pattern(PATTERN))
    }
}

/// Formats a Unix time in milliseconds as `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn iso8601_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The current time as [`iso8601_millis`] formats it.
pub fn iso8601_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    iso8601_millis(ms)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_length_counts_scalar_values() {
        assert_eq!(check_account_name(&"é".repeat(100)), Ok(()));
        assert_eq!(check_account_name(&"😀".repeat(100)), Ok(()));
        assert_eq!(
            check_account_name(&"😀".repeat(101)),
            Err(Violation::TooLong)
        );
        assert_eq!(check_account_name(""), Err(Violation::TooShort));
    }

    #[test]
    fn name_pattern_has_java_semantics() {
        for ok in ["a", " a ", "\u{00A0}", "\u{3000}", "a\tb", "\u{000B}x"] {
            assert_eq!(check_account_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            " ",
            " \t\u{000B}\u{000C}",
            "a\nb",
            "a\rb",
            "a\u{0085}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "\n",
        ] {
            assert!(
                matches!(check_account_name(bad), Err(Violation::Pattern(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn email_pattern() {
        assert!(check_email("a@b.c").is_ok());
        assert!(check_email("first.last@example.co.uk").is_ok());
        for bad in ["a@b", "@b.c", "a@.c", "a@b.", "ab.c", "a@b\n.c"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_millis(1_546_970_358_006),
            "2019-01-08T17:59:18.006Z"
        );
        assert_eq!(iso8601_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
