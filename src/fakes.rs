//! In-memory fakes of the three ports, for unit tests: they record calls and
//! can be told to fail.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::app::App;
use crate::chime::ChimeAccounts;
use crate::config::Config;
use crate::idempotency::{IdempotencyStore, Record, StoreError, Written};
use crate::onboard::{Account, AccountName, OnboardError};
use crate::reply::{Destination, Reply, ReplyFailed, ReplySender};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Chime: creates accounts in memory; `fail_next` errors come first, in order.
#[derive(Default)]
pub struct FakeChime {
    pub accounts: Mutex<Vec<Account>>,
    pub fail_next: Mutex<VecDeque<OnboardError>>,
    pub delay: Option<Duration>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl FakeChime {
    pub fn names(&self) -> Vec<String> {
        lock(&self.accounts)
            .iter()
            .map(|a| a.name.clone())
            .collect()
    }
    pub fn fail_next(&self, errors: impl IntoIterator<Item = OnboardError>) {
        lock(&self.fail_next).extend(errors);
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

#[async_trait]
impl ChimeAccounts for FakeChime {
    async fn create_account(&self, name: &AccountName) -> Result<Account, OnboardError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(err) = lock(&self.fail_next).pop_front() {
            return Err(err);
        }
        let mut accounts = lock(&self.accounts);
        let created = account(
            &format!("acct-{}", accounts.len() + 1),
            name.as_str(),
            "2099-01-01T00:00:00.000Z",
        );
        accounts.push(created.clone());
        Ok(created)
    }

    async fn find_accounts_by_name(
        &self,
        name: &AccountName,
    ) -> Result<Vec<Account>, OnboardError> {
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

/// Idempotency store: a map with the conditional-write semantics of DynamoDB.
#[derive(Default)]
pub struct FakeStore {
    pub records: Mutex<HashMap<String, Record>>,
}

#[async_trait]
impl IdempotencyStore for FakeStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        Ok(lock(&self.records).get(key).cloned())
    }
    async fn put(&self, record: &Record, replacing: Option<u64>) -> Result<Written, StoreError> {
        let mut records = lock(&self.records);
        let allowed = match (records.get(&record.key), replacing) {
            (None, None) => true,
            (Some(existing), Some(started_at)) => existing.started_at == started_at,
            _ => false,
        };
        if !allowed {
            return Ok(Written::Conflict);
        }
        records.insert(record.key.clone(), record.clone());
        Ok(Written::Yes)
    }
    async fn complete(&self, record: &Record) -> Result<(), StoreError> {
        lock(&self.records).insert(record.key.clone(), record.clone());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.records).remove(key);
        Ok(())
    }
}

/// An `App` over fakes, with a reply queue configured.
pub fn app(
    chime: Arc<FakeChime>,
    replies: Arc<FakeReplies>,
    store: Option<Arc<FakeStore>>,
    config: Config,
) -> App {
    let mut config = config;
    config.reply_queue_url = Some("https://sqs.test/1/replies".to_owned());
    config.allowed_reply_queues = vec!["https://sqs.test/1/replies".to_owned()];
    App {
        config,
        chime,
        replies,
        idempotency: store.map(|s| s as Arc<dyn IdempotencyStore>),
    }
}
