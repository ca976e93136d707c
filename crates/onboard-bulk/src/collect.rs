//! Collecting replies from the run's own reply queue: which messages are this run's, what
//! a reply does to its row, and the long-poll loop.
//!
//! The reply format is the function's own type (`chime_onboard::wire::Reply`, DESIGN.md
//! "SQS contract"); this module only reads it.
//!
//! Rules:
//! - a message is this run's when its `CorrelationId` attribute (or, without one, the
//!   body's `CorrelationId`) is the run id;
//! - the queue is the run's alone (no other run replies to it), so anything else on it is
//!   a stray: counted and deleted, never handed back to loop until a DLQ;
//! - every message is deleted only after the state that records it is on disk, so a
//!   crash in between loses nothing (the reply is received again and counts once);
//! - a row moves only towards a more final status: a duplicate reply counts once, a
//!   `Created` after a `Failed` wins, a late `Failed` never undoes a `Created`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chime_onboard::wire::{Reply, Status};
use tokio::sync::watch;

use crate::queue::{Incoming, QueueError, ReplyQueue};
use crate::state::{Row, RowStatus, RunState};

/// The row status a reply's `Status` stands for.
pub fn row_status(status: Status) -> RowStatus {
    match status {
        Status::Created => RowStatus::Created,
        Status::Rejected => RowStatus::Rejected,
        Status::Failed => RowStatus::Failed,
    }
}

/// What a received message is, to this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// A reply of this run.
    Ours(Box<Reply>),
    /// Not this run's (a stray on the run's queue): deleted.
    Foreign,
    /// Marked as this run's but unreadable: dropped with a warning.
    Unreadable(String),
}

/// Sorts one message.
pub fn classify(message: &Incoming, run_id: &str) -> Classified {
    if let Some(correlation) = &message.correlation_id {
        if correlation != run_id {
            return Classified::Foreign;
        }
    }
    match serde_json::from_str::<Reply>(&message.body) {
        Ok(reply) => {
            let ours =
                message.correlation_id.is_some() || reply.correlation_id.as_deref() == Some(run_id);
            if ours {
                Classified::Ours(Box::new(reply))
            } else {
                Classified::Foreign
            }
        }
        Err(_) if message.correlation_id.is_none() => Classified::Foreign,
        Err(e) => Classified::Unreadable(e.to_string()),
    }
}

/// What a reply did to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The row moved to a more final status.
    Updated,
    /// The row already had this answer (or a more final one): counted once.
    Duplicate,
    /// A second `Created` with another AccountId: the first is kept, and this is reported.
    Conflict,
}

/// Applies `reply` to `row` under the rules in the module docs.
pub fn apply(row: &mut Row, reply: &Reply) -> Applied {
    let status = row_status(reply.status);
    if status.rank() > row.status.rank() {
        row.status = status;
        row.account_id = reply.account_id.clone();
        row.error_code = reply.error.as_ref().map(|e| e.code.clone());
        row.message = reply.error.as_ref().map(|e| e.message.clone());
        return Applied::Updated;
    }
    if status == RowStatus::Created
        && row.status == RowStatus::Created
        && reply.account_id.is_some()
        && reply.account_id != row.account_id
    {
        return Applied::Conflict;
    }
    Applied::Duplicate
}

/// Counters of what the collector saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplyStats {
    /// Replies of this run that changed a row.
    pub applied: u64,
    /// Replies of this run for a row that already had that answer.
    pub duplicates: u64,
    /// `Created` twice for one row with different AccountIds.
    pub conflicts: u64,
    /// Messages on the run's queue that were not this run's replies (deleted).
    pub strays: u64,
    /// This run's messages that could not be read, or name no row of the run.
    pub unreadable: u64,
}

/// The run's rows and what the collector has seen, shared by the tasks of a run.
#[derive(Debug)]
pub struct Tracker {
    pub state: RunState,
    index: HashMap<String, usize>,
    pub stats: ReplyStats,
    /// Receipt handles of recorded replies, deleted after the next state write.
    deletes: Vec<String>,
    /// When a row last changed (a send or a reply): the idle timeout counts from it.
    pub last_change: Instant,
    /// Whether the state changed since the last write.
    pub dirty: bool,
}

impl Tracker {
    pub fn new(state: RunState) -> Self {
        let index = state
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| (row.request_id.clone(), i))
            .collect();
        Self {
            state,
            index,
            stats: ReplyStats::default(),
            deletes: Vec::new(),
            last_change: Instant::now(),
            dirty: true,
        }
    }

    /// Marks rows as sent (a row that already has a reply keeps it).
    pub fn mark_sent(&mut self, indexes: &[usize]) {
        for &i in indexes {
            if let Some(row) = self.state.rows.get_mut(i) {
                row.sent = true;
                if row.status == RowStatus::Pending {
                    row.status = RowStatus::Sent;
                }
            }
        }
        self.last_change = Instant::now();
        self.dirty = true;
    }

    /// Notes why a row could not be sent; it stays pending.
    pub fn mark_refused(&mut self, index: usize, reason: &str) {
        if let Some(row) = self.state.rows.get_mut(index) {
            row.message = Some(format!("not sent: {reason}"));
            self.dirty = true;
        }
    }

    /// Takes received messages: records this run's replies; every handle waits for the
    /// next state write, then is deleted.
    pub fn take(&mut self, messages: Vec<Incoming>) {
        for message in messages {
            match classify(&message, &self.state.run_id) {
                Classified::Foreign => {
                    self.stats.strays += 1;
                    self.deletes.push(message.receipt_handle);
                }
                Classified::Unreadable(_) => {
                    self.stats.unreadable += 1;
                    self.deletes.push(message.receipt_handle);
                }
                Classified::Ours(reply) => {
                    let row = self
                        .index
                        .get(&reply.request_id)
                        .and_then(|&i| self.state.rows.get_mut(i));
                    match row.map(|row| apply(row, &reply)) {
                        Some(Applied::Updated) => {
                            self.stats.applied += 1;
                            self.last_change = Instant::now();
                            self.dirty = true;
                        }
                        Some(Applied::Duplicate) => self.stats.duplicates += 1,
                        Some(Applied::Conflict) => self.stats.conflicts += 1,
                        None => self.stats.unreadable += 1,
                    }
                    self.deletes.push(message.receipt_handle);
                }
            }
        }
    }

    /// Takes the handles to delete once the current state is written.
    pub fn take_deletes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.deletes)
    }

    /// Rows sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.state
            .rows
            .iter()
            .filter(|r| r.status == RowStatus::Sent)
            .count()
    }

    /// Whether a state write is due: rows changed, or replies wait to be deleted.
    pub fn needs_save(&self) -> bool {
        self.dirty || !self.deletes.is_empty()
    }

    /// Whether every row has an answer (or can never be sent).
    pub fn all_answered(&self) -> bool {
        self.state.rows.iter().all(|r| !r.status.is_open())
    }
}

/// Long-poll settings.
#[derive(Debug, Clone, Copy)]
pub struct CollectOptions {
    /// `WaitTimeSeconds` of each receive (bounded, so a stop is noticed quickly).
    pub wait_secs: i32,
    /// How long this run's received replies stay hidden before the state write deletes them.
    pub visibility_secs: i32,
    /// Consecutive failed receives before the collector gives up.
    pub max_errors: u32,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            wait_secs: 2,
            visibility_secs: 30,
            max_errors: 10,
        }
    }
}

/// Receives until `stop` turns true. A receive already in flight is finished and its
/// messages recorded, so stopping never strands a reply.
pub async fn receive_loop(
    queue: &dyn ReplyQueue,
    tracker: &Mutex<Tracker>,
    stop: watch::Receiver<bool>,
    options: CollectOptions,
) -> Result<(), QueueError> {
    let mut errors = 0;
    while !*stop.borrow() {
        let messages = match queue
            .receive(options.wait_secs, options.visibility_secs)
            .await
        {
            Ok(messages) => {
                errors = 0;
                messages
            }
            Err(e) => {
                errors += 1;
                if errors >= options.max_errors {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(errors))).await;
                continue;
            }
        };
        match tracker.lock() {
            Ok(mut tracker) => tracker.take(messages),
            Err(_) => return Err(QueueError("the run's state is poisoned".into())),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use async_trait::async_trait;
    use chime_onboard::wire::ReplyError;

    use super::*;
    use crate::state::tests::{row, state};

    fn wire(request_id: &str, correlation: Option<&str>, status: Status) -> String {
        let reply = Reply {
            request_id: request_id.into(),
            correlation_id: correlation.map(Into::into),
            status,
            account_id: (status == Status::Created).then(|| format!("acct-{request_id}")),
            account: None,
            error: (status != Status::Created).then(|| ReplyError {
                code: "NameEmpty".into(),
                message: "\"Name\" is empty".into(),
            }),
            source_message_id: "m-1".into(),
        };
        serde_json::to_string(&reply).unwrap()
    }

    fn incoming(handle: &str, body: String, correlation: Option<&str>) -> Incoming {
        Incoming {
            receipt_handle: handle.into(),
            body,
            correlation_id: correlation.map(Into::into),
        }
    }

    #[test]
    fn the_function_s_replies_are_read_and_sorted_by_correlation_id() {
        let ours = incoming(
            "h1",
            wire("bulk-2", Some("run-1"), Status::Created),
            Some("run-1"),
        );
        match classify(&ours, "run-1") {
            Classified::Ours(reply) => {
                assert_eq!(row_status(reply.status), RowStatus::Created);
                assert_eq!(reply.account_id.as_deref(), Some("acct-bulk-2"));
            }
            other => panic!("{other:?}"),
        }
        let theirs = incoming(
            "h2",
            wire("bulk-2", Some("run-2"), Status::Created),
            Some("run-2"),
        );
        assert_eq!(classify(&theirs, "run-1"), Classified::Foreign);
        // Without the attribute the body decides.
        let body_only = incoming("h3", wire("bulk-2", Some("run-1"), Status::Rejected), None);
        assert!(matches!(classify(&body_only, "run-1"), Classified::Ours(_)));
        let nobody = incoming("h4", wire("bulk-2", None, Status::Rejected), None);
        assert_eq!(classify(&nobody, "run-1"), Classified::Foreign);
        assert_eq!(
            classify(&incoming("h5", "junk".into(), None), "run-1"),
            Classified::Foreign
        );
        assert!(matches!(
            classify(&incoming("h6", "junk".into(), Some("run-1")), "run-1"),
            Classified::Unreadable(_)
        ));
    }

    fn reply(status: Status, account: Option<&str>) -> Reply {
        let mut reply: Reply = serde_json::from_str(&wire("bulk-1", None, status)).unwrap();
        reply.account_id = account.map(Into::into);
        reply
    }

    #[test]
    fn created_after_failed_wins_and_duplicates_count_once() {
        let mut r = row(1, RowStatus::Sent);
        assert_eq!(
            apply(&mut r, &reply(Status::Failed, None)),
            Applied::Updated
        );
        assert_eq!(r.status, RowStatus::Failed);
        assert_eq!(r.error_code.as_deref(), Some("NameEmpty"));
        assert_eq!(
            apply(&mut r, &reply(Status::Failed, None)),
            Applied::Duplicate
        );
        assert_eq!(
            apply(&mut r, &reply(Status::Created, Some("a-1"))),
            Applied::Updated
        );
        assert_eq!(
            (r.status, r.account_id.as_deref(), r.error_code.as_deref()),
            (RowStatus::Created, Some("a-1"), None)
        );
        // A late Failed never undoes a Created.
        assert_eq!(
            apply(&mut r, &reply(Status::Failed, None)),
            Applied::Duplicate
        );
        assert_eq!(
            apply(&mut r, &reply(Status::Created, Some("a-1"))),
            Applied::Duplicate
        );
        assert_eq!(
            apply(&mut r, &reply(Status::Created, Some("a-2"))),
            Applied::Conflict
        );
        assert_eq!(r.account_id.as_deref(), Some("a-1"));
    }

    #[test]
    fn the_tracker_records_ours_counts_strays_and_deletes_only_when_asked() {
        let mut rows = vec![row(2, RowStatus::Pending), row(3, RowStatus::Pending)];
        rows[0].request_id = "bulk-2".into();
        rows[1].request_id = "bulk-3".into();
        let mut tracker = Tracker::new(state(rows));
        tracker.mark_sent(&[0, 1]);
        tracker.take(vec![
            incoming(
                "h1",
                wire("bulk-2", Some("run-1"), Status::Created),
                Some("run-1"),
            ),
            incoming(
                "h2",
                wire("bulk-2", Some("run-1"), Status::Created),
                Some("run-1"),
            ),
            incoming(
                "h3",
                wire("bulk-9", Some("run-2"), Status::Created),
                Some("run-2"),
            ),
            incoming(
                "h4",
                wire("bulk-404", Some("run-1"), Status::Created),
                Some("run-1"),
            ),
        ]);
        assert_eq!(
            tracker.stats,
            ReplyStats {
                applied: 1,
                duplicates: 1,
                conflicts: 0,
                strays: 1,
                unreadable: 1
            }
        );
        assert!(!tracker.all_answered());
        assert_eq!(tracker.take_deletes(), vec!["h1", "h2", "h3", "h4"]);
        assert!(tracker.take_deletes().is_empty());
        tracker.take(vec![incoming(
            "h5",
            wire("bulk-3", Some("run-1"), Status::Rejected),
            Some("run-1"),
        )]);
        assert!(tracker.all_answered());
        assert_eq!(tracker.state.counts().created, 1);
        assert_eq!(tracker.state.counts().rejected, 1);
    }

    /// A reply queue in memory: a list of visible messages.
    #[derive(Default)]
    pub(crate) struct FakeReplies {
        pub visible: Mutex<Vec<Incoming>>,
    }

    #[async_trait]
    impl ReplyQueue for FakeReplies {
        async fn receive(&self, _: i32, _: i32) -> Result<Vec<Incoming>, QueueError> {
            let got: Vec<Incoming> = {
                let mut visible = self.visible.lock().unwrap();
                let n = visible.len().min(10);
                visible.drain(..n).collect()
            };
            if got.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(got)
        }
        async fn delete(&self, _: &[String]) -> Result<(), QueueError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_loop_records_replies_and_strays_until_stopped() {
        let mut rows = vec![row(2, RowStatus::Sent)];
        rows[0].request_id = "bulk-2".into();
        let tracker = Mutex::new(Tracker::new(state(rows)));
        let queue = FakeReplies::default();
        queue.visible.lock().unwrap().extend([
            incoming(
                "h1",
                wire("bulk-x", Some("run-2"), Status::Created),
                Some("run-2"),
            ),
            incoming(
                "h2",
                wire("bulk-2", Some("run-1"), Status::Created),
                Some("run-1"),
            ),
        ]);
        let (tx, stop) = watch::channel(false);
        let collect = receive_loop(&queue, &tracker, stop, CollectOptions::default());
        let stopper = async {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !tracker.lock().unwrap().all_answered() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tx.send(true).unwrap();
        };
        let (result, ()) = tokio::join!(collect, stopper);
        result.unwrap();
        let tracker = tracker.lock().unwrap();
        assert!(tracker.all_answered());
        assert_eq!(tracker.stats.strays, 1);
    }
}
