//! The emulator's shared state, one `Arc`'d struct: configuration, accounts, fault engine,
//! stats. Locks are plain `std` mutexes, never held across an `.await`.

use crate::faults::{AfterCommit, Decision, Engine, Faults};
use crate::model::Account;
use crate::sigv4::Credentials;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// How to start an emulator. `Config::default()` needs no credentials, injects no faults
/// and binds a free port on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct Config {
    /// Port to bind on `host`; `None` (or 0) picks a free one.
    pub port: Option<u16>,
    /// Address to bind; default 127.0.0.1.
    pub host: std::net::IpAddr,
    /// Seeds the fault RNG and account ids, so a run is reproducible.
    pub seed: Option<u64>,
    /// When set, signatures are verified with these; otherwise any SigV4-shaped
    /// `Authorization` header is accepted.
    pub credentials: Option<Credentials>,
    /// The `AwsAccountId` of created accounts (12 digits).
    pub aws_account_id: String,
    /// Faults active from the start.
    pub faults: Faults,
    /// Accounts are loaded from this JSON file at start and saved to it while running.
    pub state_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: None,
            host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            seed: None,
            credentials: None,
            aws_account_id: "111122223333".to_owned(),
            faults: Faults::default(),
            state_file: None,
        }
    }
}

/// Call counts: per operation and outcome, per outcome, and the after-commit faults. The
/// outcome is what the client was sent: `Success`, the error type (`ThrottledClientException`,
/// `MissingAuthenticationTokenException`, …), `ConnectionReset`, or `Withheld` (no answer).
/// An after-commit fault counts under its outcome like a before-operation one, and also in
/// `after_commit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// All account-API requests.
    pub total: u64,
    /// `{"CreateAccount": {"Success": 3, "ThrottledClientException": 1}, ...}`.
    pub by_operation: BTreeMap<String, BTreeMap<String, u64>>,
    /// `{"Success": 3, "ThrottledClientException": 1}`.
    pub by_outcome: BTreeMap<String, u64>,
    /// Mutations that committed and then lost their answer, by how:
    /// `{"ServiceFailureException": 1, "ServiceUnavailableException": 0, "ConnectionReset": 0,
    /// "Withheld": 2}` (all four keys, always).
    #[serde(default = "after_commit_zeroes")]
    pub after_commit: BTreeMap<String, u64>,
}

fn after_commit_zeroes() -> BTreeMap<String, u64> {
    AfterCommit::ALL
        .iter()
        .map(|k| (k.outcome().to_owned(), 0))
        .collect()
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            total: 0,
            by_operation: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            after_commit: after_commit_zeroes(),
        }
    }
}

impl Stats {
    /// How many committed mutations lost their answer as `kind` (`ServiceFailureException`,
    /// `ServiceUnavailableException`, `ConnectionReset`, `Withheld`).
    pub fn after_commit_count(&self, kind: &str) -> u64 {
        self.after_commit.get(kind).copied().unwrap_or(0)
    }

    /// How many calls of `operation` ended with `outcome`.
    pub fn count(&self, operation: &str, outcome: &str) -> u64 {
        self.by_operation
            .get(operation)
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }
}

/// Accounts in creation order, with an index by id.
#[derive(Default)]
pub(crate) struct Store {
    next_seq: u64,
    by_seq: BTreeMap<u64, Account>,
    by_id: HashMap<String, u64>,
}

impl Store {
    pub(crate) fn insert(&mut self, account: Account) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(account.account_id.clone(), seq);
        self.by_seq.insert(seq, account);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Account> {
        self.by_id.get(id).and_then(|seq| self.by_seq.get(seq))
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Account> {
        let seq = self.by_id.get(id)?;
        self.by_seq.get_mut(seq)
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Account> {
        let seq = self.by_id.remove(id)?;
        self.by_seq.remove(&seq)
    }

    /// Accounts from sequence `from` on, in creation order, with their sequence numbers.
    pub(crate) fn starting_at(&self, from: u64) -> impl Iterator<Item = (u64, &Account)> {
        self.by_seq.range(from..).map(|(s, a)| (*s, a))
    }

    pub(crate) fn all(&self) -> Vec<Account> {
        self.by_seq.values().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.by_seq.clear();
        self.by_id.clear();
    }
}

fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    // Look up before inserting: no allocation on the hot path.
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

fn count(stats: &mut Stats, operation: &'static str, outcome: &str) {
    stats.total += 1;
    if !stats.by_operation.contains_key(operation) {
        stats
            .by_operation
            .insert(operation.to_owned(), BTreeMap::new());
    }
    if let Some(per_op) = stats.by_operation.get_mut(operation) {
        bump(per_op, outcome);
    }
    bump(&mut stats.by_outcome, outcome);
}

/// The file format of `--state`.
#[derive(Serialize, Deserialize)]
struct StateFile {
    #[serde(rename = "Accounts")]
    accounts: Vec<Account>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Mutex<Store>,
    pub(crate) engine: Mutex<Engine>,
    pub(crate) ids: Mutex<fastrand::Rng>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) dirty: AtomicBool,
}

/// A running emulator's state, cheap to clone. `router(emulator)` serves it; tests may also
/// build one directly and drive the router with `oneshot`.
#[derive(Clone)]
pub struct Emulator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Emulator {
    /// Builds the state; loads `config.state_file` when it exists.
    pub fn new(config: Config) -> std::io::Result<Self> {
        let mut store = Store::default();
        if let Some(path) = &config.state_file {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("state file {}: {e}", path.display()),
                        )
                    })?;
                    file.accounts.into_iter().for_each(|a| store.insert(a));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut engine = Engine::new(config.seed);
        engine.set(config.faults.clone());
        let ids = config
            .seed
            .map_or_else(fastrand::Rng::new, |s| fastrand::Rng::with_seed(s ^ 0x1D5));
        Ok(Emulator {
            inner: Arc::new(Inner {
                store: Mutex::new(store),
                engine: Mutex::new(engine),
                ids: Mutex::new(ids),
                stats: Mutex::new(Stats::default()),
                dirty: AtomicBool::new(false),
                config,
            }),
        })
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Replaces the fault configuration (see [`Faults`]); takes effect on the next request.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.inner.engine).set(faults);
    }

    /// The fault configuration now (`fail_next` lists the entries still pending).
    pub fn faults(&self) -> Faults {
        lock(&self.inner.engine).current()
    }

    /// All accounts, in creation order.
    pub fn accounts(&self) -> Vec<Account> {
        lock(&self.inner.store).all()
    }

    /// Deletes every account.
    pub fn clear_accounts(&self) {
        lock(&self.inner.store).clear();
        self.inner.dirty.store(true, Ordering::Relaxed);
    }

    /// Call counts so far.
    pub fn stats(&self) -> Stats {
        lock(&self.inner.stats).clone()
    }

    /// Zeroes the call counts.
    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = Stats::default();
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    pub(crate) fn mark_dirty(&self) {
        self.inner.dirty.store(true, Ordering::Relaxed);
    }

    pub(crate) fn decide(&self, mutating: bool) -> Decision {
        lock(&self.inner.engine).decide(Instant::now(), mutating)
    }

    pub(crate) fn new_account_id(&self) -> String {
        let mut bytes = [0u8; 16];
        lock(&self.inner.ids).fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    pub(crate) fn record(&self, operation: &'static str, outcome: &str) {
        count(&mut lock(&self.inner.stats), operation, outcome);
    }

    /// Counts a mutation that committed and then lost its answer as `kind`.
    pub(crate) fn record_after_commit(&self, operation: &'static str, kind: AfterCommit) {
        let mut stats = lock(&self.inner.stats);
        count(&mut stats, operation, kind.outcome());
        bump(&mut stats.after_commit, kind.outcome());
    }

    /// Writes the accounts to the state file if they changed since the last save.
    pub(crate) fn save_if_dirty(&self) -> std::io::Result<()> {
        let Some(path) = &self.inner.config.state_file else {
            return Ok(());
        };
        if !self.inner.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let file = StateFile {
            accounts: self.accounts(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}
