//! Idempotency keys: what one request is remembered by, typed by where it came
//! from, and rendered into the table's `id` in this one place.
//!
//! Records and claims share the table; each namespace has its own prefix
//! (`http#`, `sqs#`, `auto#`, `claim#`), so no two kinds of item can meet.

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
            Self::Http { principal, key } => format!("http#{principal}#{key}"),
            Self::Sqs { request_id } => format!("sqs#{request_id}"),
            Self::Auto { token } => format!("auto#{token}"),
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
        assert_eq!(http.render(), "http#user#1#k");
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
}
