//! The seeded engine: decides, per account-API request, which of the configured
//! [`Faults`] happen (a delay, a fault before the operation, a lost answer after the commit).
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

use super::{AfterCommit, FaultKind, Faults, RateLimit};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
}
