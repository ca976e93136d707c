//! Idempotency keys: what one request is remembered by, typed by where it came
//! from, and rendered into the table's `id` in this one place.
//!
//! Records and claims share the table; each namespace has its own prefix
//! (`http2#`, `sqs#`, `auto#`, `claim#`), so no two kinds of item can meet.
//!
//! An HTTP key has two parts, the caller and its `Idempotency-Key`, and the
//! caller may contain `#` (`jwt:<iss>#<sub>`): the principal is length-prefixed
//! (`http2#<bytes>#<principal>#<key>`), so no two pairs render alike. The old
//! form (`http#<principal>#<key>`, where `user#x`+`k1` met `user`+`x#k1`) is
//! still read ([`IdempotencyKey::legacy`]) for as long as records live
//! (`IDEMPOTENCY_TTL_SECONDS` after the upgrade), so a key in flight across it
//! is not stranded: the use case keeps using a record it finds in the old form.

use super::record::new_token;

/// The key one request is remembered by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyKey {
    /// An HTTP request's `Idempotency-Key`, scoped by its caller (DESIGN.md,
    /// "Who is calling"): two callers' equal keys never meet.
    Http { principal: String, key: String },
    /// An SQS message's `RequestId` (or its `messageId` when it has none).
    Sqs { request_id: String },
    /// A request that sent no key: one of its own, so its account is claimed
    /// like every other and no other request's verification adopts it.
    Auto { token: String },
}

impl IdempotencyKey {
    /// A fresh key for a request that sent none.
    pub fn auto() -> Self {
        Self::Auto { token: new_token() }
    }

    /// The record's `id` in the table.
    pub fn render(&self) -> String {
        match self {
            Self::Http { principal, key } => {
                format!("http2#{}#{principal}#{key}", principal.len())
            }
            Self::Sqs { request_id } => format!("sqs#{request_id}"),
            Self::Auto { token } => format!("auto#{token}"),
        }
    }
}

impl IdempotencyKey {
    /// The `id` this key had before keys were length-prefixed, where there is
    /// one: read as a fallback so an upgrade strands no key in flight.
    pub fn legacy(&self) -> Option<String> {
        match self {
            Self::Http { principal, key } => Some(format!("http#{principal}#{key}")),
            Self::Sqs { .. } | Self::Auto { .. } => None,
        }
    }
}

/// The table `id` of the claim on one account.
pub fn claim_id(account_id: &str) -> String {
    format!("claim#{account_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_renders_in_its_own_namespace() {
        let http = IdempotencyKey::Http {
            principal: "user#1".into(),
            key: "k".into(),
        };
        assert_eq!(http.render(), "http2#6#user#1#k");
        assert_eq!(http.legacy().as_deref(), Some("http#user#1#k"));
        let sqs = IdempotencyKey::Sqs {
            request_id: "r-1".into(),
        };
        assert_eq!(sqs.render(), "sqs#r-1");
        let auto = IdempotencyKey::auto().render();
        assert!(
            auto.starts_with("auto#") && auto.len() == "auto#".len() + 32,
            "{auto}"
        );
        assert_ne!(IdempotencyKey::auto(), IdempotencyKey::auto());
        assert_eq!(claim_id("a-1"), "claim#a-1");
    }

    #[test]
    fn two_callers_whose_parts_meet_at_a_hash_never_share_a_key() {
        let http = |principal: &str, key: &str| IdempotencyKey::Http {
            principal: principal.into(),
            key: key.into(),
        };
        let (a, b) = (http("user#x", "k1"), http("user", "x#k1"));
        // The old form collides; the new one does not, nor with the old namespace.
        assert_eq!(a.legacy(), b.legacy());
        assert_ne!(a.render(), b.render());
        assert!(!a.render().starts_with("http#"));
    }
}
