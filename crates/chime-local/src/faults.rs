//! Fault injection: what can go wrong, and the seeded engine that decides, per account-API
//! request, whether it does.
//!
//! Faults come in two kinds. **Before the operation**: nothing is created, the client gets an
//! error or a reset. **After the commit** (mutating operations only: CreateAccount,
//! UpdateAccount, DeleteAccount): the operation runs and its effect is kept, then the client
//! gets a 500, a 503, a reset, or no answer for `withhold_ms` — the ambiguous outcome that
//! exactly-once tests need.
//!
//! Order of decisions for one request (documented in the README):
//! 1. the token bucket (`rate_limit`) is charged on arrival;
//! 2. four numbers are drawn, always, so a seed fixes the whole sequence: the jitter, the reset
//!    draw and the outcome draw from the fault RNG, and the after-commit draw from a second RNG
//!    seeded from the same seed (so adding after-commit rates leaves the before-operation
//!    sequence of a seed unchanged);
//! 3. the request waits `latency_ms + jitter` (jitter uniform in `0..=jitter_ms`);
//! 4. then the first that applies wins: the next `fail_next` entry (a `Committed*` entry only
//!    for a mutating request; a read leaves it in place and is decided as if the list were
//!    empty); a connection reset (`reset_rate`); `ThrottledClientException` if the bucket was
//!    empty; the outcome draw against `throttle_rate`, then `unavailable_rate`, then
//!    `failure_rate` (cumulative); otherwise the operation runs;
//! 5. for a mutating request whose operation ran (and succeeded), the after-commit draw against
//!    `after_commit_failure_rate`, `after_commit_unavailable_rate`, `after_commit_reset_rate`,
//!    then `after_commit_withhold_rate` (cumulative) decides how the answer is lost, unless a
//!    `Committed*` `fail_next` entry already decided it;
//! 6. beyond those four rates, the same draw against `late_commit_rate` makes a **late
//!    commit**: the operation runs `late_commit_ms` after the request, whether or not the
//!    client still waits (a slow create that commits after the client gave up), and the
//!    answer, if anyone is left to read it, is the operation's own. `CommittedLate` in
//!    `fail_next` forces one.

use crate::error::ErrorKind;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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

/// What the engine decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// How long to wait before answering.
    pub(crate) delay: Duration,
    /// The fault to inject before the operation, if any (never a `Committed*` kind).
    pub(crate) fault: Option<FaultKind>,
    /// For a mutating request: how to lose the answer once the operation committed.
    pub(crate) after_commit: Option<AfterCommit>,
    /// How long a withheld answer is held back.
    pub(crate) withhold: Duration,
    /// For a mutating request: a late commit, this long after the request.
    pub(crate) late: Option<Duration>,
}

impl Decision {
    const NONE: Decision = Decision {
        delay: Duration::ZERO,
        fault: None,
        after_commit: None,
        withhold: Duration::ZERO,
        late: None,
    };
}

/// Mixed into the seed of the after-commit RNG, so its numbers differ from the fault RNG's.
const AFTER_COMMIT_SALT: u64 = 0xAF7E_C0DE;

fn rng(seed: Option<u64>) -> fastrand::Rng {
    seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed)
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
    after_rng: fastrand::Rng,
    bucket: Option<Bucket>,
    active: bool,
}

impl Engine {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Engine {
            faults: Faults::default(),
            fail_next: VecDeque::new(),
            rng: rng(seed),
            after_rng: rng(seed.map(|s| s ^ AFTER_COMMIT_SALT)),
            bucket: None,
            active: false,
        }
    }

    /// Replaces the configuration; reseeds when `faults.seed` is set; refills the bucket.
    pub(crate) fn set(&mut self, faults: Faults) {
        if let Some(seed) = faults.seed {
            self.rng = fastrand::Rng::with_seed(seed);
            self.after_rng = fastrand::Rng::with_seed(seed ^ AFTER_COMMIT_SALT);
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

    /// Decides one request; `mutating` for CreateAccount, UpdateAccount and DeleteAccount.
    pub(crate) fn decide(&mut self, now: Instant, mutating: bool) -> Decision {
        if !self.active {
            return Decision::NONE;
        }
        let admitted = self.bucket.as_mut().is_none_or(|b| b.take(now));
        let f = &self.faults;
        let jitter = self.rng.u64(0..=f.jitter_ms);
        let reset_draw = self.rng.f64();
        let outcome_draw = self.rng.f64();
        let commit_draw = self.after_rng.f64();
        let delay = Duration::from_millis(f.latency_ms.saturating_add(jitter));
        // A read passes a `Committed*` entry by and leaves it for the next mutation.
        let takes_next = self
            .fail_next
            .front()
            .is_some_and(|k| mutating || !k.is_after_commit());
        let next = if takes_next {
            self.fail_next.pop_front()
        } else {
            None
        };
        let late_commit = Duration::from_millis(f.late_commit_ms);
        let late_bound = f.after_commit_rates().iter().sum::<f64>() + f.late_commit_rate;
        let mut late = None;
        let (fault, after_commit) = if next == Some(FaultKind::CommittedLate) {
            late = Some(late_commit);
            (None, None)
        } else if let Some(next) = next {
            match next.after_commit() {
                Some(after) => (None, Some(after)),
                None => (Some(next), None),
            }
        } else if reset_draw < f.reset_rate {
            (Some(FaultKind::ConnectionReset), None)
        } else if !admitted || outcome_draw < f.throttle_rate {
            (Some(FaultKind::ThrottledClientException), None)
        } else if outcome_draw < f.throttle_rate + f.unavailable_rate {
            (Some(FaultKind::ServiceUnavailableException), None)
        } else if outcome_draw < f.throttle_rate + f.unavailable_rate + f.failure_rate {
            (Some(FaultKind::ServiceFailureException), None)
        } else if mutating {
            let after = after_commit_from(commit_draw, f.after_commit_rates());
            if after.is_none() && commit_draw < late_bound {
                late = Some(late_commit);
            }
            (None, after)
        } else {
            (None, None)
        };
        let withhold = Duration::from_millis(f.withhold_ms);
        if self.fail_next.is_empty() && !self.faults.fail_next.is_empty() {
            self.faults.fail_next.clear();
            self.active = self.faults.active();
        }
        Decision {
            delay,
            fault,
            after_commit,
            withhold,
            late,
        }
    }
}

/// The after-commit kind a draw in `0..1` picks: the rates are stacked in the order of
/// [`AfterCommit::ALL`]; beyond their sum, none.
fn after_commit_from(draw: f64, rates: [f64; 4]) -> Option<AfterCommit> {
    let mut bound = 0.0;
    for (kind, rate) in AfterCommit::ALL.into_iter().zip(rates) {
        bound += rate;
        if draw < bound {
            return Some(kind);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
        (0..n).map(|_| engine.decide(now, false).fault).collect()
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
        assert_eq!(
            engine.decide(now, false).fault,
            Some(FaultKind::ConnectionReset)
        );
        assert_eq!(
            engine.current().fail_next,
            vec![FaultKind::NotFoundException]
        );
        assert_eq!(
            engine.decide(now, false).fault,
            Some(FaultKind::NotFoundException)
        );
        assert_eq!(engine.decide(now, false).fault, None);
        assert_eq!(engine.current(), Faults::default());
    }

    fn after_commit_sequence(seed: u64, n: usize) -> Vec<Option<AfterCommit>> {
        let mut engine = Engine::new(None);
        engine.set(Faults {
            after_commit_failure_rate: 0.2,
            after_commit_unavailable_rate: 0.2,
            after_commit_reset_rate: 0.2,
            after_commit_withhold_rate: 0.2,
            seed: Some(seed),
            ..Faults::default()
        });
        let now = Instant::now();
        (0..n)
            .map(|i| {
                let decision = engine.decide(now, i % 3 != 0);
                assert_eq!(decision.fault, None);
                if i % 3 == 0 {
                    assert_eq!(decision.after_commit, None, "a read is never after-commit");
                }
                decision.after_commit
            })
            .collect()
    }

    #[test]
    fn after_commit_draws_are_seeded_and_cover_every_kind() {
        assert_eq!(after_commit_sequence(9, 300), after_commit_sequence(9, 300));
        assert_ne!(
            after_commit_sequence(9, 300),
            after_commit_sequence(10, 300)
        );
        let seq = after_commit_sequence(9, 300);
        for kind in AfterCommit::ALL {
            assert!(seq.contains(&Some(kind)), "{kind:?} never drawn");
        }
        let mutations = seq.len() - seq.len().div_ceil(3);
        let none = seq.iter().filter(|k| k.is_none()).count() - seq.len().div_ceil(3);
        // 20 % of the mutations are left alone; allow a wide margin on 200 draws.
        assert!(
            (10..=70).contains(&none),
            "{none} of {mutations} undisturbed"
        );
    }

    #[test]
    fn after_commit_rates_leave_the_before_operation_sequence_of_a_seed_unchanged() {
        let decide_all = |faults: Faults| {
            let mut engine = Engine::new(None);
            engine.set(faults);
            let now = Instant::now();
            (0..300)
                .map(|_| engine.decide(now, true))
                .collect::<Vec<_>>()
        };
        let before_only = Faults {
            throttle_rate: 0.2,
            failure_rate: 0.2,
            reset_rate: 0.1,
            seed: Some(3),
            ..Faults::default()
        };
        let both = Faults {
            after_commit_reset_rate: 0.5,
            ..before_only.clone()
        };
        let plain = decide_all(before_only);
        let mixed = decide_all(both);
        assert_eq!(
            plain.iter().map(|d| d.fault).collect::<Vec<_>>(),
            mixed.iter().map(|d| d.fault).collect::<Vec<_>>()
        );
        // After-commit faults land only where no before-operation fault did.
        assert!(mixed
            .iter()
            .all(|d| d.fault.is_none() || d.after_commit.is_none()));
        assert!(mixed
            .iter()
            .any(|d| d.after_commit == Some(AfterCommit::ConnectionReset)));
    }

    #[test]
    fn committed_fail_next_waits_for_a_mutation() {
        let mut engine = Engine::new(Some(1));
        engine.set(Faults {
            fail_next: vec![
                FaultKind::CommittedWithheld,
                FaultKind::ThrottledClientException,
            ],
            withhold_ms: 250,
            ..Faults::default()
        });
        let now = Instant::now();
        // Reads pass the committed entry by, and do not reach the entry behind it.
        for _ in 0..3 {
            let decision = engine.decide(now, false);
            assert_eq!((decision.fault, decision.after_commit), (None, None));
        }
        assert_eq!(engine.current().fail_next.len(), 2);
        let decision = engine.decide(now, true);
        assert_eq!(decision.fault, None);
        assert_eq!(decision.after_commit, Some(AfterCommit::Withheld));
        assert_eq!(decision.withhold, Duration::from_millis(250));
        let decision = engine.decide(now, false);
        assert_eq!(decision.fault, Some(FaultKind::ThrottledClientException));
        assert_eq!(engine.decide(now, true).after_commit, None);
        assert!(engine.current().fail_next.is_empty());
    }

    #[test]
    fn late_commits_come_by_rate_and_by_fail_next_and_only_for_mutations() {
        let mut engine = Engine::new(Some(1));
        engine.set(Faults {
            fail_next: vec![FaultKind::CommittedLate],
            late_commit_ms: 1_500,
            ..Faults::default()
        });
        let now = Instant::now();
        assert_eq!(engine.decide(now, false).late, None, "a read passes it by");
        assert_eq!(
            engine.decide(now, true).late,
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(engine.decide(now, true).late, None);
        engine.set(Faults {
            late_commit_rate: 0.5,
            seed: Some(4),
            ..Faults::default()
        });
        let late = (0..200)
            .filter(|_| engine.decide(now, true).late.is_some())
            .count();
        assert!((60..=140).contains(&late), "{late} of 200");
        assert!((0..50).all(|_| engine.decide(now, false).late.is_none()));
        let json =
            r#"{"late_commit_rate":0.1,"late_commit_ms":2500,"fail_next":["CommittedLate"]}"#;
        let parsed: Faults = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.late_commit_ms, 2_500);
        assert!(parsed.validate().is_ok());
        let bad = Faults {
            after_commit_failure_rate: 0.6,
            late_commit_rate: 0.6,
            ..Faults::default()
        };
        assert!(bad.validate().unwrap_err().contains("late_commit_rate"));
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
            .filter(|_| engine.decide(start, false).fault.is_none())
            .count();
        assert_eq!(admitted, 5);
        let later = start + Duration::from_millis(1000);
        let admitted = (0..100)
            .filter(|_| engine.decide(later, false).fault.is_none())
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
