//! In-memory fakes of the three ports, for unit tests: they record calls and
//! can be told to fail.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::app::App;
use crate::config::Config;
use crate::deadline::Budget;
use crate::idempotency::{
    Claim, Completed, IdempotencyStore, Inserted, Record, StoreError, Written,
};
use crate::onboard::{Account, AccountName, ChimeAccounts, OnboardError};
use crate::reply::{Destination, Reply, ReplyFailed, ReplySender};
use crate::sqs::SqsAdapter;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the fake Chime does with the next create.
#[derive(Debug, Clone)]
pub enum Step {
    /// Fails before anything is created.
    Fail(OnboardError),
    /// Creates the account, then answers with the error (an after-commit fault).
    CommitThenFail(OnboardError),
    /// Answers with the error now; the account appears at
    /// [`FakeChime::commit_late`] (a late commit).
    CommitLate(OnboardError),
}

/// Chime: creates accounts in memory; scripted steps come first, in order.
#[derive(Default)]
pub struct FakeChime {
    pub accounts: Mutex<Vec<Account>>,
    pub steps: Mutex<VecDeque<Step>>,
    pub list_failures: Mutex<VecDeque<OnboardError>>,
    pub create_calls: AtomicUsize,
    /// `ListAccounts` passes received.
    pub list_calls: AtomicUsize,
    pub delay: Option<Duration>,
    /// Creates answered by a [`Step::CommitLate`], not yet committed.
    pub late: Mutex<Vec<AccountName>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// [`ChimeAccounts::connect`] calls, and creates made before the first.
    pub connects: AtomicUsize,
    pub creates_before_connect: AtomicUsize,
}

impl FakeChime {
    pub fn names(&self) -> Vec<String> {
        lock(&self.accounts)
            .iter()
            .map(|a| a.name.clone())
            .collect()
    }
    /// Creates failing before the commit, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = OnboardError>) {
        self.script(errors.into_iter().map(Step::Fail));
    }
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        lock(&self.steps).extend(steps);
    }
    pub fn fail_lists(&self, errors: impl IntoIterator<Item = OnboardError>) {
        lock(&self.list_failures).extend(errors);
    }
    /// `CreateAccount` calls received.
    pub fn creates(&self) -> usize {
        self.create_calls.load(Ordering::SeqCst)
    }
    pub fn insert(&self, account: Account) {
        lock(&self.accounts).push(account);
    }
    /// Commits the creates answered by a [`Step::CommitLate`].
    pub fn commit_late(&self) {
        let late: Vec<AccountName> = lock(&self.late).drain(..).collect();
        for name in late {
            self.commit(&name);
        }
    }
    fn commit(&self, name: &AccountName) -> Account {
        let mut accounts = lock(&self.accounts);
        let created = account(
            &format!("acct-{}", accounts.len() + 1),
            name.as_str(),
            &now_timestamp(),
        );
        accounts.push(created.clone());
        created
    }
}

pub fn account(id: &str, name: &str, created: &str) -> Account {
    Account {
        account_id: id.to_owned(),
        name: name.to_owned(),
        aws_account_id: "111122223333".to_owned(),
        account_type: Some("Team".to_owned()),
        account_status: Some("Active".to_owned()),
        created_timestamp: Some(created.to_owned()),
        default_license: Some("Pro".to_owned()),
        supported_licenses: vec!["Basic".to_owned(), "Pro".to_owned()],
        signin_delegate_groups: Vec::new(),
    }
}

fn now_timestamp() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    aws_smithy_types::DateTime::from_millis(ms)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

#[async_trait]
impl ChimeAccounts for FakeChime {
    async fn connect(&self) {
        self.connects.fetch_add(1, Ordering::SeqCst);
    }

    async fn create_account(&self, name: &AccountName) -> Result<Account, OnboardError> {
        self.create_calls.fetch_add(1, Ordering::SeqCst);
        if self.connects.load(Ordering::SeqCst) == 0 {
            self.creates_before_connect.fetch_add(1, Ordering::SeqCst);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let step = lock(&self.steps).pop_front();
        match step {
            Some(Step::Fail(err)) => return Err(err),
            Some(Step::CommitLate(err)) => {
                lock(&self.late).push(name.clone());
                return Err(err);
            }
            _ => {}
        }
        let created = self.commit(name);
        match step {
            Some(Step::CommitThenFail(err)) => Err(err),
            _ => Ok(created),
        }
    }

    async fn accounts_named(
        &self,
        name: &AccountName,
        budget: Budget,
    ) -> Result<Vec<Account>, OnboardError> {
        if !budget.allows_call() {
            return Err(OnboardError::TimeBudgetExhausted);
        }
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(err) = lock(&self.list_failures).pop_front() {
            return Err(err);
        }
        Ok(lock(&self.accounts)
            .iter()
            .filter(|a| a.name == name.as_str())
            .cloned()
            .collect())
    }
}

/// Replies: recorded; `fail` makes every send fail.
#[derive(Default)]
pub struct FakeReplies {
    pub sent: Mutex<Vec<(Destination, Reply)>>,
    pub fail: bool,
}

impl FakeReplies {
    pub fn statuses(&self) -> Vec<(String, &'static str)> {
        lock(&self.sent)
            .iter()
            .map(|(_, r)| (r.request_id.clone(), r.status.as_str()))
            .collect()
    }
}

#[async_trait]
impl ReplySender for FakeReplies {
    async fn send_reply(&self, to: &Destination, reply: &Reply) -> Result<(), ReplyFailed> {
        if self.fail {
            return Err(ReplyFailed {
                queue_url: to.queue_url.clone(),
                reason: "told to fail".to_owned(),
            });
        }
        lock(&self.sent).push((to.clone(), reply.clone()));
        Ok(())
    }
}

/// Idempotency store: maps with the conditional-write semantics of DynamoDB.
#[derive(Default)]
pub struct FakeStore {
    pub records: Mutex<HashMap<String, Record>>,
    pub claims: Mutex<HashMap<String, Claim>>,
    pub claim_failures: AtomicUsize,
}

impl FakeStore {
    /// Claim writes to fail before being tried (a throttled or unreachable table).
    pub fn fail_claims(&self, n: usize) {
        self.claim_failures.store(n, Ordering::SeqCst);
    }

    /// Whether a claim write (alone or in a completion) may go on, or fails as told.
    fn claim_write(&self) -> Result<(), StoreError> {
        let failing = self
            .claim_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match failing {
            Ok(_) => Err(StoreError::Call("told to fail".to_owned())),
            Err(_) => Ok(()),
        }
    }
}

#[async_trait]
impl IdempotencyStore for FakeStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        Ok(lock(&self.records).get(key).cloned())
    }
    async fn insert(&self, record: &Record) -> Result<Inserted, StoreError> {
        let mut records = lock(&self.records);
        if let Some(stored) = records.get(&record.key) {
            return Ok(Inserted::Exists(Box::new(stored.clone())));
        }
        records.insert(record.key.clone(), record.clone());
        Ok(Inserted::Yes)
    }
    async fn put(&self, record: &Record, holder: &str) -> Result<Written, StoreError> {
        let mut records = lock(&self.records);
        if records.get(&record.key).is_none_or(|r| r.holder != holder) {
            return Ok(Written::Conflict);
        }
        records.insert(record.key.clone(), record.clone());
        Ok(Written::Yes)
    }
    async fn delete(&self, key: &str, holder: &str) -> Result<Written, StoreError> {
        let mut records = lock(&self.records);
        if records.get(key).is_some_and(|r| r.holder == holder) {
            records.remove(key);
            Ok(Written::Yes)
        } else {
            Ok(Written::Conflict)
        }
    }
    async fn claim(&self, claim: &Claim) -> Result<Written, StoreError> {
        self.claim_write()?;
        let mut claims = lock(&self.claims);
        match claims.get(&claim.account_id) {
            Some(existing) if existing.owner != claim.owner => Ok(Written::Conflict),
            _ => {
                claims.insert(claim.account_id.clone(), claim.clone());
                Ok(Written::Yes)
            }
        }
    }
    async fn complete(
        &self,
        record: &Record,
        claim: &Claim,
        holder: &str,
    ) -> Result<Completed, StoreError> {
        // A failed claim write fails the transaction that carries it.
        self.claim_write()?;
        let mut claims = lock(&self.claims);
        let mut records = lock(&self.records);
        if claims
            .get(&claim.account_id)
            .is_some_and(|c| c.owner != claim.owner)
        {
            return Ok(Completed::ClaimTaken);
        }
        if records.get(&record.key).is_none_or(|r| r.holder != holder) {
            return Ok(Completed::RecordTaken);
        }
        claims.insert(claim.account_id.clone(), claim.clone());
        records.insert(record.key.clone(), record.clone());
        Ok(Completed::Yes)
    }
    async fn get_claim(&self, account_id: &str) -> Result<Option<Claim>, StoreError> {
        Ok(lock(&self.claims).get(account_id).cloned())
    }
}

/// The SQS adapter over fakes, wired as `App` wires it, with a reply queue configured.
pub fn sqs_adapter(
    chime: Arc<FakeChime>,
    replies: Arc<FakeReplies>,
    store: Option<Arc<FakeStore>>,
    config: Config,
) -> SqsAdapter {
    let mut config = config;
    config.reply_queue_url = Some("https://sqs.test/1/replies".to_owned());
    config.allowed_reply_queues = vec!["https://sqs.test/1/replies".to_owned()];
    App::from_ports(
        config,
        chime,
        replies,
        store.map(|s| s as Arc<dyn IdempotencyStore>),
    )
    .sqs
}
