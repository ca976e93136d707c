//! Fault injection: what can go wrong, and the seeded engine that decides, per account-API
//! request, whether it does.
//!
//! Order of decisions for one request (documented in the README):
//! 1. the token bucket (`rate_limit`) is charged on arrival;
//! 2. three numbers are drawn from the seeded RNG, always, so a seed fixes the whole sequence:
//!    the jitter, the reset draw and the outcome draw;
//! 3. the request waits `latency_ms + jitter` (jitter uniform in `0..=jitter_ms`);
//! 4. then the first that applies wins: the next `fail_next` entry; a connection reset
//!    (`reset_rate`); `ThrottledClientException` if the bucket was empty; the outcome draw
//!    against `throttle_rate`, then `unavailable_rate`, then `failure_rate` (cumulative);
//!    otherwise the operation runs.

use crate::error::ErrorKind;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The fault configuration. Every field is optional in JSON; the default is "no faults".
/// This struct is also the body of `POST /_chime-local/faults` and what `GET` returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Faults for the next requests, in order, one per account-API request (any operation).
    pub fail_next: Vec<FaultKind>,
    /// Reseeds the fault RNG when these faults are set, so the sequence is reproducible.
    pub seed: Option<u64>,
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

/// One injected fault, for `fail_next`: a model error by its shape name, or `ConnectionReset`.
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
}

impl FaultKind {
    /// The error to answer with; `None` for a connection reset.
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
            FaultKind::ConnectionReset => return None,
        })
    }
}

impl Faults {
    /// Checks ranges: rates in `0..=1`, their sum at most 1, `rps > 0`, `burst >= 1`.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("throttle_rate", self.throttle_rate),
            ("unavailable_rate", self.unavailable_rate),
            ("failure_rate", self.failure_rate),
            ("reset_rate", self.reset_rate),
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

    /// Whether anything at all is injected (the engine skips its work otherwise).
    fn active(&self) -> bool {
        self.throttle_rate > 0.0
            || self.unavailable_rate > 0.0
            || self.failure_rate > 0.0
            || self.latency_ms > 0
            || self.jitter_ms > 0
            || self.rate_limit.is_some()
            || self.reset_rate > 0.0
            || !self.fail_next.is_empty()
    }
}

/// What the engine decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// How long to wait before answering.
    pub delay: Duration,
    /// The fault to inject, if any.
    pub fault: Option<FaultKind>,
}

struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Bucket {
            limit,
            tokens: f64::from(limit.burst),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.limit.rps).min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The seeded decision maker. One per emulator, behind a mutex.
pub(crate) struct Engine {
    faults: Faults,
    fail_next: VecDeque<FaultKind>,
    rng: fastrand::Rng,
    bucket: Option<Bucket>,
    active: bool,
}

impl Engine {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Engine {
            faults: Faults::default(),
            fail_next: VecDeque::new(),
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            bucket: None,
            active: false,
        }
    }

    /// Replaces the configuration; reseeds when `faults.seed` is set; refills the bucket.
    pub(crate) fn set(&mut self, faults: Faults) {
        if let Some(seed) = faults.seed {
            self.rng = fastrand::Rng::with_seed(seed);
        }
        self.fail_next = faults.fail_next.iter().copied().collect();
        self.bucket = faults.rate_limit.map(Bucket::new);
        self.active = faults.active();
        self.faults = faults;
    }

    /// The configuration, with `fail_next` showing only the entries still pending.
    pub(crate) fn current(&self) -> Faults {
        Faults {
            fail_next: self.fail_next.iter().copied().collect(),
            ..self.faults.clone()
        }
    }

    pub(crate) fn decide(&mut self, now: Instant) -> Decision {
        if !self.active {
            return Decision {
                delay: Duration::ZERO,
                fault: None,
            };
        }
        let admitted = self.bucket.as_mut().is_none_or(|b| b.take(now));
        let f = &self.faults;
        let jitter = self.rng.u64(0..=f.jitter_ms);
        let reset_draw = self.rng.f64();
        let outcome_draw = self.rng.f64();
        let delay = Duration::from_millis(f.latency_ms.saturating_add(jitter));
        let fault = if let Some(next) = self.fail_next.pop_front() {
            Some(next)
        } else if reset_draw < f.reset_rate {
            Some(FaultKind::ConnectionReset)
        } else if !admitted || outcome_draw < f.throttle_rate {
            Some(FaultKind::ThrottledClientException)
        } else if outcome_draw < f.throttle_rate + f.unavailable_rate {
            Some(FaultKind::ServiceUnavailableException)
        } else if outcome_draw < f.throttle_rate + f.unavailable_rate + f.failure_rate {
            Some(FaultKind::ServiceFailureException)
        } else {
            None
        };
        if self.fail_next.is_empty() && !self.faults.fail_next.is_empty() {
            self.faults.fail_next.clear();
            self.active = self.faults.active();
        }
        Decision { delay, fault }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(seed: u64, n: usize) -> Vec<Option<FaultKind>> {
        let mut engine = Engine::new(None);
        engine.set(Faults {
            throttle_rate: 0.2,
            unavailable_rate: 0.2,
            failure_rate: 0.2,
            reset_rate: 0.1,
            seed: Some(seed),
            ..Faults::default()
        });
        let now = Instant::now();
        (0..n).map(|_| engine.decide(now).fault).collect()
    }

    #[test]
    fn a_seed_reproduces_the_sequence() {
        assert_eq!(sequence(42, 200), sequence(42, 200));
        assert_ne!(sequence(42, 200), sequence(43, 200));
        let seq = sequence(42, 1000);
        for kind in [
            FaultKind::ThrottledClientException,
            FaultKind::ServiceUnavailableException,
            FaultKind::ServiceFailureException,
            FaultKind::ConnectionReset,
        ] {
            assert!(seq.contains(&Some(kind)), "{kind:?} never drawn");
        }
        assert!(seq.contains(&None));
    }

    #[test]
    fn fail_next_comes_first_then_faults_are_off() {
        let mut engine = Engine::new(Some(1));
        engine.set(Faults {
            fail_next: vec![FaultKind::ConnectionReset, FaultKind::NotFoundException],
            ..Faults::default()
        });
        let now = Instant::now();
        assert_eq!(engine.decide(now).fault, Some(FaultKind::ConnectionReset));
        assert_eq!(
            engine.current().fail_next,
            vec![FaultKind::NotFoundException]
        );
        assert_eq!(engine.decide(now).fault, Some(FaultKind::NotFoundException));
        assert_eq!(engine.decide(now).fault, None);
        assert_eq!(engine.current(), Faults::default());
    }

    #[test]
    fn bucket_admits_burst_then_rps() {
        let mut engine = Engine::new(Some(1));
        engine.set(Faults {
            rate_limit: Some(RateLimit {
                rps: 10.0,
                burst: 5,
            }),
            ..Faults::default()
        });
        let start = Instant::now();
        let admitted = (0..100)
            .filter(|_| engine.decide(start).fault.is_none())
            .count();
        assert_eq!(admitted, 5);
        let later = start + Duration::from_millis(1000);
        let admitted = (0..100)
            .filter(|_| engine.decide(later).fault.is_none())
            .count();
        assert_eq!(
            admitted, 5,
            "one second refills 10 tokens, capped at burst 5"
        );
    }

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
    }
}
