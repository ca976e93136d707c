//! When an invocation must have answered: Lambda's deadline, or none.
//!
//! Lambda hands every invocation a deadline; local runs and unit tests hand a
//! default `Context` whose deadline is the epoch. That is "no deadline", said
//! once here instead of compared against the epoch wherever a budget is checked.
//!
//! [`Budget`] is the one deadline of a use case (DESIGN.md, "Exactly once",
//! "Deadlines"): every Chime call (each create attempt, each `ListAccounts`
//! page) starts only if the time left covers the call and the answer after it.

use std::time::{Duration, SystemTime};

/// Deadlines before this (2001-09-09) are not times but missing or relative values.
const NOT_A_TIME_BEFORE: Duration = Duration::from_secs(1_000_000_000);

/// A point in time by which the invocation must have answered, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<SystemTime>);

impl Deadline {
    /// No deadline: every budget holds.
    pub const NONE: Self = Self(None);

    /// A deadline at `at`.
    pub fn at(at: SystemTime) -> Self {
        Self(Some(at))
    }

    /// The deadline of a Lambda context (`Context::deadline()`). Lambda always
    /// sends a time in the near future; a time before 2001 means none was given:
    /// the epoch (a default `Context`), or an emulator that sends a duration where
    /// the Runtime API wants a time (cargo-lambda's, under `make dev`: every
    /// budget would fail).
    pub fn from_context(deadline: SystemTime) -> Self {
        if deadline < SystemTime::UNIX_EPOCH + NOT_A_TIME_BEFORE {
            Self::NONE
        } else {
            Self::at(deadline)
        }
    }

    /// The deadline, if there is one.
    pub fn instant(self) -> Option<SystemTime> {
        self.0
    }

    /// Whether at least `needed` is left before the deadline (always, without one).
    pub fn allows(self, needed: Duration) -> bool {
        match self.0 {
            None => true,
            Some(at) => at
                .duration_since(SystemTime::now())
                .is_ok_and(|remaining| remaining >= needed),
        }
    }
}

/// What follows the last Chime call of a request: the table's writes and the
/// reply or response (milliseconds each when healthy; the rest is margin).
pub const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// The time a use case has: its deadline and the longest one Chime call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub deadline: Deadline,
    /// `CHIME_TIMEOUT_MS`: one call's limit (a `ListAccounts` page's, SDK retries included).
    pub call: Duration,
}

impl Budget {
    /// No deadline: every call may start (local runs, tests).
    pub fn unbounded(call: Duration) -> Self {
        Self {
            deadline: Deadline::NONE,
            call,
        }
    }

    /// Whether one more Chime call may start: the time left covers it plus
    /// [`ANSWER_MARGIN`] (always, without a deadline).
    pub fn allows_call(self) -> bool {
        self.deadline.allows(self.call + ANSWER_MARGIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_means_no_deadline_and_a_budget_needs_the_time_left() {
        assert_eq!(
            Deadline::from_context(SystemTime::UNIX_EPOCH),
            Deadline::NONE
        );
        let relative = SystemTime::UNIX_EPOCH + Duration::from_secs(30);
        assert_eq!(
            Deadline::from_context(relative),
            Deadline::NONE,
            "a duration, not a time"
        );
        assert!(Deadline::NONE.allows(Duration::from_secs(3600)));
        let now = SystemTime::now();
        let soon = Deadline::from_context(now + Duration::from_secs(3));
        assert_eq!(soon.instant(), Some(now + Duration::from_secs(3)));
        assert!(soon.allows(Duration::from_secs(2)));
        assert!(!soon.allows(Duration::from_secs(4)));
        assert!(!Deadline::at(now - Duration::from_secs(1)).allows(Duration::ZERO));
    }

    #[test]
    fn a_call_starts_only_if_it_and_the_answer_fit() {
        let now = SystemTime::now();
        let budget = |left| Budget {
            deadline: Deadline::at(now + left),
            call: Duration::from_secs(2),
        };
        assert!(budget(Duration::from_millis(3_500)).allows_call());
        assert!(!budget(Duration::from_millis(2_500)).allows_call());
        assert!(Budget::unbounded(Duration::from_secs(3600)).allows_call());
    }
}
