//! Sending rows to the request queue: `SendMessageBatch`, ten messages per call, a bounded
//! number of calls in flight, and retries of only the entries a partial failure names.
//!
//! A whole call that keeps failing stops the run (the queue is gone, the credentials are
//! wrong): the rows not sent stay pending in the state, for `resume`. An entry SQS refuses
//! as the sender's fault is not retried; its row stays pending with the reason.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::queue::{FailedEntry, Outgoing, QueueError, RequestQueue};

/// The most messages one `SendMessageBatch` takes.
pub const BATCH: usize = 10;

/// One row to send: `index` is its place in the state (and its entry id in a batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToSend {
    pub index: usize,
    pub body: String,
    /// The FIFO `MessageGroupId` (and deduplication id), for a FIFO queue.
    pub group: Option<String>,
}

/// How hard to push and to retry.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// Batches in flight at once.
    pub concurrency: usize,
    /// Attempts per batch (the SDK's own retries come on top of these).
    pub attempts: u32,
    /// First pause between attempts; doubled each time.
    pub backoff: Duration,
    /// Most rows sent and not yet answered: a batch waits until it fits (0: no limit).
    pub max_in_flight: usize,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            attempts: 5,
            backoff: Duration::from_millis(200),
            max_in_flight: 1000,
        }
    }
}

/// What became of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Indexes of the rows now on the queue.
    pub sent: Vec<usize>,
    /// Rows SQS refused for good, with the reason.
    pub refused: Vec<(usize, String)>,
}

/// The sending stopped: a batch failed on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sending to the request queue failed {attempts} times: {reason}")]
pub struct SendError {
    pub attempts: u32,
    pub reason: String,
}

/// Sends `rows` in batches of ten; `on_batch` sees each batch's result as it completes.
/// A batch starts only while `in_flight()` (rows sent and not answered) leaves room for it
/// under `options.max_in_flight`, so the request queue holds a bounded backlog. Stops
/// starting batches once `stop` turns true (batches in flight finish).
pub async fn send_all(
    queue: &dyn RequestQueue,
    rows: Vec<ToSend>,
    options: SendOptions,
    stop: watch::Receiver<bool>,
    in_flight: &(dyn Fn() -> usize + Sync),
    mut on_batch: impl FnMut(BatchResult),
) -> Result<(), SendError> {
    let batches: Vec<Vec<ToSend>> = rows.chunks(BATCH).map(<[ToSend]>::to_vec).collect();
    let mut results = stream::iter(batches)
        .map(|batch| {
            let stop = stop.clone();
            async move {
                while options.max_in_flight > 0
                    && in_flight() + batch.len() > options.max_in_flight
                    && !*stop.borrow()
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if *stop.borrow() {
                    return Ok(BatchResult::default());
                }
                send_batch(queue, batch, options).await
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some(result) = results.next().await {
        on_batch(result?);
    }
    Ok(())
}

/// Sends one batch, re-sending only the entries that failed and were not the sender's fault.
async fn send_batch(
    queue: &dyn RequestQueue,
    batch: Vec<ToSend>,
    options: SendOptions,
) -> Result<BatchResult, SendError> {
    let mut result = BatchResult::default();
    let mut left = batch;
    let mut pause = options.backoff;
    let mut last = String::new();
    for attempt in 1..=options.attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
        let entries: Vec<Outgoing> = left
            .iter()
            .map(|r| Outgoing {
                id: r.index.to_string(),
                body: r.body.clone(),
                group: r.group.clone(),
            })
            .collect();
        let failed = match queue.send_batch(&entries).await {
            Ok(failed) => failed,
            Err(QueueError(reason)) => {
                last = reason;
                continue;
            }
        };
        let mut retry = Vec::new();
        for row in left {
            let id = row.index.to_string();
            match failed.iter().find(|f: &&FailedEntry| f.id == id) {
                None => result.sent.push(row.index),
                Some(f) if f.sender_fault => result.refused.push((row.index, f.reason.clone())),
                Some(f) => {
                    last = f.reason.clone();
                    retry.push(row);
                }
            }
        }
        left = retry;
        if left.is_empty() {
            return Ok(result);
        }
    }
    Err(SendError {
        attempts: options.attempts.max(1),
        reason: last,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    /// Records every call; fails entries or whole calls as scripted.
    #[derive(Default)]
    pub(crate) struct FakeRequests {
        pub calls: Mutex<Vec<Vec<Outgoing>>>,
        /// Entry ids to fail once (transiently), and ids to refuse as sender faults.
        pub flaky: Mutex<Vec<String>>,
        pub refuse: Vec<String>,
        pub down: bool,
    }

    #[async_trait]
    impl RequestQueue for FakeRequests {
        async fn send_batch(&self, entries: &[Outgoing]) -> Result<Vec<FailedEntry>, QueueError> {
            assert!(entries.len() <= BATCH);
            self.calls.lock().unwrap().push(entries.to_vec());
            if self.down {
                return Err(QueueError("connection refused".into()));
            }
            let mut flaky = self.flaky.lock().unwrap();
            let mut failed = Vec::new();
            for e in entries {
                if let Some(at) = flaky.iter().position(|id| *id == e.id) {
                    flaky.remove(at);
                    failed.push(FailedEntry {
                        id: e.id.clone(),
                        sender_fault: false,
                        reason: "InternalError: try again".into(),
                    });
                } else if self.refuse.contains(&e.id) {
                    failed.push(FailedEntry {
                        id: e.id.clone(),
                        sender_fault: true,
                        reason: "InvalidMessageContents: no".into(),
                    });
                }
            }
            Ok(failed)
        }
    }

    fn rows(n: usize) -> Vec<ToSend> {
        (0..n)
            .map(|index| ToSend {
                index,
                body: format!("{{\"n\":{index}}}"),
                group: None,
            })
            .collect()
    }

    fn quick() -> SendOptions {
        SendOptions {
            concurrency: 3,
            attempts: 3,
            backoff: Duration::from_millis(1),
            max_in_flight: 0,
        }
    }

    #[tokio::test]
    async fn sends_in_batches_of_ten_and_retries_only_the_failed_entries() {
        let queue = FakeRequests {
            flaky: Mutex::new(vec!["3".into(), "17".into()]),
            refuse: vec!["20".into()],
            ..Default::default()
        };
        let (_tx, stop) = watch::channel(false);
        let mut sent = Vec::new();
        let mut refused = Vec::new();
        send_all(&queue, rows(25), quick(), stop, &|| 0, |r| {
            sent.extend(r.sent);
            refused.extend(r.refused);
        })
        .await
        .unwrap();
        sent.sort_unstable();
        let expected: Vec<usize> = (0..25).filter(|i| *i != 20).collect();
        assert_eq!(sent, expected);
        assert_eq!(refused, vec![(20, "InvalidMessageContents: no".into())]);
        let calls = queue.calls.lock().unwrap();
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        // Three batches (10, 10, 5) plus two retries of one entry each.
        assert_eq!(sizes.iter().sum::<usize>(), 27);
        assert_eq!(sizes.iter().filter(|s| **s == 1).count(), 2);
    }

    #[tokio::test]
    async fn a_queue_that_stays_down_stops_the_sending() {
        let queue = FakeRequests {
            down: true,
            ..Default::default()
        };
        let (_tx, stop) = watch::channel(false);
        let err = send_all(&queue, rows(5), quick(), stop, &|| 0, |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.attempts, 3);
        assert_eq!(err.reason, "connection refused");
    }

    #[tokio::test]
    async fn sending_pauses_while_the_rows_in_flight_fill_the_window() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let queue = FakeRequests::default();
        let (tx, stop) = watch::channel(false);
        let options = SendOptions {
            max_in_flight: 20,
            ..quick()
        };
        // Nothing is ever answered: once 20 rows are out, sending waits until stopped.
        let sent = AtomicUsize::new(0);
        let in_flight = || sent.load(Ordering::SeqCst);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx.send(true).unwrap();
        };
        let sending = send_all(&queue, rows(60), options, stop, &in_flight, |r| {
            sent.fetch_add(r.sent.len(), Ordering::SeqCst);
        });
        let (result, ()) = tokio::join!(sending, stopper);
        result.unwrap();
        let sent = sent.into_inner();
        // Batches that passed the check together may overshoot by the concurrency.
        assert!((20..=20 + 2 * BATCH).contains(&sent), "{sent}");
    }

    #[tokio::test]
    async fn nothing_new_starts_after_stop() {
        let queue = FakeRequests::default();
        let (tx, stop) = watch::channel(false);
        tx.send(true).unwrap();
        let mut sent = 0;
        send_all(&queue, rows(30), quick(), stop, &|| 0, |r| {
            sent += r.sent.len()
        })
        .await
        .unwrap();
        assert_eq!(sent, 0);
        assert!(queue.calls.lock().unwrap().is_empty());
    }
}
