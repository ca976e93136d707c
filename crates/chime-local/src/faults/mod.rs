//! Fault injection: what can go wrong. The configuration ([`Faults`], also the JSON of
//! `POST /_chime-local/faults`), the injectable kinds ([`FaultKind`]) and their checks; the
//! seeded engine that decides, per account-API request, whether a fault happens is in
//! `engine.rs`.
//!
//! Faults come in two kinds. **Before the operation**: nothing is created, the client gets an
//! error or a reset. **After the commit** (mutating operations only: CreateAccount,
//! UpdateAccount, DeleteAccount): the operation runs and its effect is kept, then the client
//! gets a 500, a 503, a reset, or no answer for `withhold_ms` — the ambiguous outcome that
//! exactly-once tests need.

mod engine;

pub(crate) use engine::{Decision, Engine};

use crate::error::ErrorKind;
use serde::{Deserialize, Serialize};

/// The fault configuration. Every field is optional in JSON; the default is "no faults"
/// (`withhold_ms` defaults to 30000, which injects nothing by itself).
/// This struct is also the body of `POST /_chime-local/faults` and what `GET` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability (0..=1) that a request gets `ThrottledClientException` (429).
    pub throttle_rate: f64,
    /// Probability (0..=1) of `ServiceUnavailableException` (503).
    pub unavailable_rate: f64,
    /// Probability (0..=1) of `ServiceFailureException` (500).
    pub failure_rate: f64,
    /// Added latency for every account-API request, in milliseconds.
    pub latency_ms: u64,
    /// Extra latency, uniform in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// A token bucket: beyond it requests get `ThrottledClientException`.
    pub rate_limit: Option<RateLimit>,
    /// Probability (0..=1) that the connection is reset instead of answered.
    pub reset_rate: f64,
    /// Probability (0..=1), per mutating request whose operation ran, that the effect is kept
    /// and the answer is `ServiceFailureException` (500).
    pub after_commit_failure_rate: f64,
    /// Likewise, answered `ServiceUnavailableException` (503).
    pub after_commit_unavailable_rate: f64,
    /// Likewise, the connection is reset (RST) instead of answered.
    pub after_commit_reset_rate: f64,
    /// Likewise, nothing is sent for `withhold_ms`, then the connection is closed unanswered.
    pub after_commit_withhold_rate: f64,
    /// How long a withheld answer is held back before the connection is closed, in ms.
    pub withhold_ms: u64,
    /// Faults for the next requests, in order, one per account-API request (any operation);
    /// a `Committed*` entry is taken only by a mutating request (reads pass it by).
    pub fail_next: Vec<FaultKind>,
    /// Reseeds the fault RNG when these faults are set, so the sequence is reproducible.
    pub seed: Option<u64>,
    /// Probability (0..=1), per mutating request not otherwise faulted, of a late commit:
    /// the operation runs `late_commit_ms` after the request, client or no client.
    pub late_commit_rate: f64,
    /// How long after the request a late commit happens, in ms.
    pub late_commit_ms: u64,
}

/// `late_commit_ms` when not given.
pub const DEFAULT_LATE_COMMIT_MS: u64 = 3_000;

/// `withhold_ms` when not given: longer than any sensible client timeout.
pub const DEFAULT_WITHHOLD_MS: u64 = 30_000;

impl Default for Faults {
    fn default() -> Self {
        Faults {
            throttle_rate: 0.0,
            unavailable_rate: 0.0,
            failure_rate: 0.0,
            latency_ms: 0,
            jitter_ms: 0,
            rate_limit: None,
            reset_rate: 0.0,
            after_commit_failure_rate: 0.0,
            after_commit_unavailable_rate: 0.0,
            after_commit_reset_rate: 0.0,
            after_commit_withhold_rate: 0.0,
            withhold_ms: DEFAULT_WITHHOLD_MS,
            fail_next: Vec::new(),
            seed: None,
            late_commit_rate: 0.0,
            late_commit_ms: DEFAULT_LATE_COMMIT_MS,
        }
    }
}

/// A token bucket: `rps` tokens per second, at most `burst` stored (the bucket starts full).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub rps: f64,
    /// Bucket size: requests allowed at once after a pause.
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// One injected fault, for `fail_next`: a model error by its shape name, or `ConnectionReset`
/// (before the operation: nothing happens), or a `Committed*` kind (after the commit: a
/// mutating operation runs and its effect is kept, then the answer is lost this way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FaultKind {
    /// 429.
    ThrottledClientException,
    /// 503.
    ServiceUnavailableException,
    /// 500.
    ServiceFailureException,
    /// 400.
    BadRequestException,
    /// 403.
    ForbiddenException,
    /// 404.
    NotFoundException,
    /// 401.
    UnauthorizedClientException,
    /// 422.
    UnprocessableEntityException,
    /// The TCP connection is reset (RST) instead of answered.
    ConnectionReset,
    /// After the commit: 500 `ServiceFailureException`.
    CommittedServiceFailure,
    /// After the commit: 503 `ServiceUnavailableException`.
    CommittedServiceUnavailable,
    /// After the commit: the connection is reset (RST).
    CommittedConnectionReset,
    /// After the commit: nothing for `withhold_ms`, then the connection is closed unanswered.
    CommittedWithheld,
    /// A late commit: the operation runs `late_commit_ms` after the request.
    CommittedLate,
}

/// How the answer to a committed mutation is lost. Its [`AfterCommit::outcome`] is the key of
/// `Stats::after_commit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterCommit {
    ServiceFailure,
    ServiceUnavailable,
    ConnectionReset,
    Withheld,
}

impl AfterCommit {
    /// Every kind, in the order the after-commit draw checks them.
    pub(crate) const ALL: [AfterCommit; 4] = [
        AfterCommit::ServiceFailure,
        AfterCommit::ServiceUnavailable,
        AfterCommit::ConnectionReset,
        AfterCommit::Withheld,
    ];

    /// The outcome recorded in the stats (the error type sent, `ConnectionReset`, `Withheld`).
    pub(crate) fn outcome(self) -> &'static str {
        match self {
            AfterCommit::ServiceFailure => "ServiceFailureException",
            AfterCommit::ServiceUnavailable => "ServiceUnavailableException",
            AfterCommit::ConnectionReset => "ConnectionReset",
            AfterCommit::Withheld => "Withheld",
        }
    }
}

impl FaultKind {
    /// Whether this is an after-commit kind (`Committed*`).
    pub fn is_after_commit(self) -> bool {
        self.after_commit().is_some() || self == FaultKind::CommittedLate
    }

    pub(crate) fn after_commit(self) -> Option<AfterCommit> {
        match self {
            FaultKind::CommittedServiceFailure => Some(AfterCommit::ServiceFailure),
            FaultKind::CommittedServiceUnavailable => Some(AfterCommit::ServiceUnavailable),
            FaultKind::CommittedConnectionReset => Some(AfterCommit::ConnectionReset),
            FaultKind::CommittedWithheld => Some(AfterCommit::Withheld),
            _ => None,
        }
    }

    /// The error answered with (for a `Committed*` kind, after the commit); `None` when no
    /// answer is sent (a reset, a withheld answer).
    pub fn error_kind(self) -> Option<ErrorKind> {
        Some(match self {
            FaultKind::ThrottledClientException => ErrorKind::ThrottledClientException,
            FaultKind::ServiceUnavailableException => ErrorKind::ServiceUnavailableException,
            FaultKind::ServiceFailureException => ErrorKind::ServiceFailureException,
            FaultKind::BadRequestException => ErrorKind::BadRequestException,
            FaultKind::ForbiddenException => ErrorKind::ForbiddenException,
            FaultKind::NotFoundException => ErrorKind::NotFoundException,
            FaultKind::UnauthorizedClientException => ErrorKind::UnauthorizedClientException,
            FaultKind::UnprocessableEntityException => ErrorKind::UnprocessableEntityException,
            FaultKind::CommittedServiceFailure => ErrorKind::ServiceFailureException,
            FaultKind::CommittedServiceUnavailable => ErrorKind::ServiceUnavailableException,
            FaultKind::ConnectionReset
            | FaultKind::CommittedConnectionReset
            | FaultKind::CommittedWithheld
            | FaultKind::CommittedLate => return None,
        })
    }
}

impl Faults {
    /// Checks ranges: rates in `0..=1`; the sum of the three outcome rates at most 1, and so
    /// the sum of the four after-commit rates; `rps > 0`, `burst >= 1`.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("throttle_rate", self.throttle_rate),
            ("unavailable_rate", self.unavailable_rate),
            ("failure_rate", self.failure_rate),
            ("reset_rate", self.reset_rate),
            ("after_commit_failure_rate", self.after_commit_failure_rate),
            (
                "after_commit_unavailable_rate",
                self.after_commit_unavailable_rate,
            ),
            ("after_commit_reset_rate", self.after_commit_reset_rate),
            (
                "after_commit_withhold_rate",
                self.after_commit_withhold_rate,
            ),
            ("late_commit_rate", self.late_commit_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if self.throttle_rate + self.unavailable_rate + self.failure_rate > 1.0 + 1e-9 {
            return Err(
                "throttle_rate + unavailable_rate + failure_rate must not exceed 1".to_owned(),
            );
        }
        if self.after_commit_rates().iter().sum::<f64>() + self.late_commit_rate > 1.0 + 1e-9 {
            return Err(
                "after_commit_failure_rate + after_commit_unavailable_rate + \
                 after_commit_reset_rate + after_commit_withhold_rate + late_commit_rate \
                 must not exceed 1"
                    .to_owned(),
            );
        }
        if let Some(limit) = self.rate_limit {
            if !(limit.rps.is_finite() && limit.rps > 0.0) {
                return Err("rate_limit.rps must be a positive number".to_owned());
            }
            if limit.burst == 0 {
                return Err("rate_limit.burst must be at least 1".to_owned());
            }
        }
        Ok(())
    }

    /// The after-commit rates, in the order of [`AfterCommit::ALL`].
    fn after_commit_rates(&self) -> [f64; 4] {
        [
            self.after_commit_failure_rate,
            self.after_commit_unavailable_rate,
            self.after_commit_reset_rate,
            self.after_commit_withhold_rate,
        ]
    }

    /// Whether anything at all is injected (the engine skips its work otherwise).
    fn active(&self) -> bool {
        self.throttle_rate > 0.0
            || self.unavailable_rate > 0.0
            || self.failure_rate > 0.0
            || self.latency_ms > 0
            || self.jitter_ms > 0
            || self.rate_limit.is_some()
            || self.reset_rate > 0.0
            || self.after_commit_rates().iter().any(|r| *r > 0.0)
            || self.late_commit_rate > 0.0
            || !self.fail_next.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Faults::default().validate().is_ok());
        let bad = Faults {
            throttle_rate: 1.5,
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
        let bad = Faults {
            throttle_rate: 0.6,
            failure_rate: 0.6,
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
        let json = r#"{"throttle_rate":0.5,"unavailable_rate":0,"failure_rate":0,"latency_ms":50,"jitter_ms":10,"rate_limit":{"rps":100,"burst":10},"reset_rate":0,"fail_next":["ThrottledClientException","ServiceUnavailableException"],"seed":42}"#;
        let parsed: Faults = serde_json::from_str(json).unwrap_or_default();
        assert_eq!(parsed.fail_next.len(), 2);
        assert_eq!(parsed.seed, Some(42));
        assert!(parsed.validate().is_ok());
        assert_eq!(parsed.withhold_ms, DEFAULT_WITHHOLD_MS);

        let bad = Faults {
            after_commit_withhold_rate: -0.1,
            ..Faults::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("after_commit_withhold_rate"));
        let bad = Faults {
            after_commit_failure_rate: 0.3,
            after_commit_unavailable_rate: 0.3,
            after_commit_reset_rate: 0.3,
            after_commit_withhold_rate: 0.3,
            ..Faults::default()
        };
        assert!(bad.validate().unwrap_err().contains("must not exceed 1"));
        let json = r#"{"after_commit_failure_rate":0.25,"after_commit_unavailable_rate":0.25,"after_commit_reset_rate":0.25,"after_commit_withhold_rate":0.25,"withhold_ms":100,"fail_next":["CommittedServiceFailure","CommittedServiceUnavailable","CommittedConnectionReset","CommittedWithheld"]}"#;
        let parsed: Faults = serde_json::from_str(json).unwrap();
        assert!(parsed.validate().is_ok());
        assert_eq!(parsed.withhold_ms, 100);
        assert!(parsed.fail_next.iter().all(|k| k.is_after_commit()));
    }
}
