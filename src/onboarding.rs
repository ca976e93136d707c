//! The use case: create an account once for a key, before a deadline.
//!
//! Both adapters call [`Onboarding::create`] and nothing else to create an
//! account; they never see the idempotency store or the Chime client. With a
//! store, the create goes through the exactly-once flow ([`crate::idempotency`]);
//! without one (DESIGN.md: at-least-once), a create is still never re-sent
//! after an ambiguous outcome within the call ([`crate::onboard::create_account`]).
//! One deadline covers the whole use case, on both paths: nothing starts
//! unless a Chime call and the answer still fit ([`Budget`]), and every later
//! call (each create attempt, each `ListAccounts` page) checks it again.
//! Contract: DESIGN.md, "Exactly once".

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::deadline::{Budget, Deadline};
use crate::idempotency::{self, IdempotencyStore, Window};
use crate::onboard::{self, AccountName, ChimeAccounts, OnboardError, Onboarded};

/// What a request is remembered by: the adapters build it, the use case renders it.
pub use crate::idempotency::IdempotencyKey;

/// Creating accounts: the Chime port, the optional store and their timings.
#[derive(Clone)]
pub struct Onboarding {
    chime: Arc<dyn ChimeAccounts>,
    store: Option<Arc<dyn IdempotencyStore>>,
    /// `CHIME_TIMEOUT_MS`: one create's limit.
    chime_timeout: Duration,
    /// How long a record is remembered (`IDEMPOTENCY_TTL_SECONDS`).
    ttl: Duration,
    /// `CHIME_COMMIT_HORIZON_MS`: how long after an ambiguous create a commit may still appear.
    horizon: Duration,
}

impl Onboarding {
    pub fn new(
        chime: Arc<dyn ChimeAccounts>,
        store: Option<Arc<dyn IdempotencyStore>>,
        chime_timeout: Duration,
        ttl: Duration,
        horizon: Duration,
    ) -> Self {
        Self {
            chime,
            store,
            chime_timeout,
            ttl,
            horizon,
        }
    }

    /// The time a request with `deadline` has for its Chime calls.
    pub fn budget(&self, deadline: Deadline) -> Budget {
        Budget {
            deadline,
            call: self.chime_timeout,
        }
    }

    /// Whether requests are remembered by key (an idempotency table is configured).
    pub fn remembers_keys(&self) -> bool {
        self.store.is_some()
    }

    /// Creates the account for `name`, at most once per `key` when a store is
    /// configured. A request without a key gets one of its own
    /// ([`IdempotencyKey::Auto`]), so its account is claimed like every other
    /// and no other request's verification adopts it.
    pub async fn create(
        &self,
        key: Option<IdempotencyKey>,
        name: &AccountName,
        deadline: Deadline,
    ) -> Result<Onboarded, OnboardError> {
        let budget = self.budget(deadline);
        // Not even one call and its answer fit: touch nothing.
        if !budget.allows_call() {
            return Err(OnboardError::TimeBudgetExhausted);
        }
        let Some(store) = &self.store else {
            return onboard::create_account(self.chime.as_ref(), name, budget)
                .await
                .map(Onboarded::Created);
        };
        let key = key.unwrap_or_else(IdempotencyKey::auto);
        idempotency::create_once(
            store.as_ref(),
            self.chime.as_ref(),
            &key.render(),
            key.legacy().as_deref(),
            name,
            self.window(budget),
        )
        .await
    }

    /// The key is held until the invocation's deadline; without a usable one
    /// (local runs), for two Chime timeouts.
    fn window(&self, budget: Budget) -> Window {
        let now = SystemTime::now();
        Window {
            now,
            hold_until: budget
                .deadline
                .instant()
                .filter(|at| *at > now)
                .unwrap_or(now + self.chime_timeout * 2),
            ttl: self.ttl,
            horizon: self.horizon,
            budget,
        }
    }
}
