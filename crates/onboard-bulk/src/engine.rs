//! The engine of a run: sends the pending rows, collects the replies and saves the state
//! until every row has an answer, the run goes idle, or Ctrl-C / SIGTERM stops it; then
//! writes the report and returns the summary. The state is saved either way, and a
//! second Ctrl-C while the run winds down exits at once (the state on disk is the last
//! one saved, always whole: `state` writes atomically).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chime_onboard::onboard::AccountName;
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::cli::RunOptions;
use crate::collect::{receive_loop, CollectOptions, Tracker};
use crate::progress::Progress;
use crate::queue::{ReplyQueue, RequestQueue};
use crate::report::{self, Summary};
use crate::request::{is_fifo, message_body};
use crate::run::Exit;
use crate::state::{self, RowStatus, RunState, StateError};
use crate::submit::{send_all, SendOptions, ToSend};

/// Writes the state, then deletes the replies it records (in that order: a crash in
/// between only means a reply is received again, and it counts once).
async fn save<Q: ReplyQueue + ?Sized>(
    tracker: &Mutex<Tracker>,
    path: &Path,
    queue: &Q,
) -> Result<(), StateError> {
    let (bytes, deletes) = match tracker.lock() {
        Ok(mut t) => {
            t.dirty = false;
            (t.state.to_bytes(), t.take_deletes())
        }
        Err(_) => return Ok(()),
    };
    let target = path.to_owned();
    tokio::task::spawn_blocking(move || state::write_atomically(&target, &bytes))
        .await
        .unwrap_or_else(|e| {
            Err(StateError::Write {
                path: path.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })
        })?;
    stream::iter(deletes.chunks(10))
        .for_each_concurrent(4, |chunk| async move {
            // A failed delete only means the reply comes back later; it counts once.
            let _ = queue.delete(chunk).await;
        })
        .await;
    Ok(())
}

/// Waits for Ctrl-C or (on Unix) SIGTERM.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return "interrupted (Ctrl-C)",
                _ = term.recv() => return "terminated (SIGTERM)",
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "interrupted (Ctrl-C)"
}

/// After a first Ctrl-C the run winds down (in-flight calls end, the state is saved, the
/// report written); a second one ends the process at once, with the last saved state.
fn exit_on_second_interrupt(quiet: bool) {
    if !quiet {
        eprintln!("onboard-bulk: stopping: saving the state (Ctrl-C again to exit at once)");
    }
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("onboard-bulk: exiting now; the state file holds the last saved state");
            std::process::exit(130);
        }
    });
}

/// Sends the pending rows, collects replies and saves the state until the run is done or
/// stopped; writes the report and returns the summary.
pub async fn engine<Q>(
    state: RunState,
    state_path: PathBuf,
    queues: Arc<Q>,
    options: &RunOptions,
) -> Summary
where
    Q: RequestQueue + ReplyQueue + 'static,
{
    let started = Instant::now();
    let fifo = is_fifo(&state.queue_url);
    let to_send: Vec<ToSend> = state
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| row.status == RowStatus::Pending)
        .filter_map(|(index, row)| {
            let name = AccountName::parse(&row.name).ok()?;
            Some(ToSend {
                index,
                body: message_body(&name, &row.request_id),
                group: fifo.then(|| row.request_id.clone()),
            })
        })
        .collect();
    let rows = state.rows.len();
    let tracker = Arc::new(Mutex::new(Tracker::new(state)));
    let (stop_tx, stop_rx) = watch::channel(false);

    let sender = {
        let (queues, tracker, stop) = (queues.clone(), tracker.clone(), stop_rx.clone());
        let send_options = SendOptions {
            concurrency: usize::from(options.concurrency),
            max_in_flight: options.max_in_flight,
            ..SendOptions::default()
        };
        tokio::spawn(async move {
            let in_flight = || tracker.lock().map(|t| t.in_flight()).unwrap_or(0);
            send_all(&*queues, to_send, send_options, stop, &in_flight, |batch| {
                if let Ok(mut t) = tracker.lock() {
                    t.mark_sent(&batch.sent);
                    for (index, reason) in &batch.refused {
                        t.mark_refused(*index, reason);
                    }
                }
            })
            .await
        })
    };
    let collectors: Vec<_> = (0..options.receivers.max(1))
        .map(|_| {
            let (queues, tracker, stop) = (queues.clone(), tracker.clone(), stop_rx.clone());
            tokio::spawn(async move {
                receive_loop(&*queues, &tracker, stop, CollectOptions::default()).await
            })
        })
        .collect();

    // The saver writes the state (then deletes the replies it records) at most once a
    // second, apart from this loop, so a slow queue never freezes the progress or Ctrl-C.
    let saver = {
        let (queues, tracker, path, mut stop) = (
            queues.clone(),
            tracker.clone(),
            state_path.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return Ok::<(), StateError>(()),
                }
                let due = tracker.lock().map(|t| t.needs_save()).unwrap_or(false);
                if due {
                    save(&tracker, &path, &*queues).await?;
                }
            }
        })
    };

    let mut progress = Progress::new(
        rows,
        Duration::from_secs(options.progress_every),
        options.quiet,
    );
    let idle = Duration::from_secs(options.idle_timeout);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut sender_done = false;
    let mut fatal = false;
    let signal = interrupted();
    tokio::pin!(signal);
    let stopped: Option<String> = loop {
        tokio::select! {
            _ = tick.tick() => {}
            why = &mut signal => break Some(why.to_owned()),
        }
        if !sender_done && sender.is_finished() {
            sender_done = true;
        }
        if collectors.iter().any(|c| c.is_finished()) {
            fatal = true;
            break Some("reading the reply queue failed repeatedly".into());
        }
        if saver.is_finished() {
            fatal = true;
            break Some("saving the state failed".into());
        }
        let (counts, last_change) = match tracker.lock() {
            Ok(t) => (t.state.counts(), t.last_change),
            Err(_) => {
                fatal = true;
                break Some("internal error: the run's state is poisoned".into());
            }
        };
        progress.update(&counts);
        if sender_done && counts.waiting == 0 {
            break None;
        }
        if last_change.elapsed() >= idle {
            let answered = tracker.lock().map(|t| t.stats.applied).unwrap_or(0);
            let hint = if answered == 0 && counts.sent > 0 {
                "; no reply came at all: is the reply queue prefix in the function's \
                 ALLOWED_REPLY_QUEUES, and is the function consuming the request queue?"
            } else {
                ""
            };
            break Some(format!(
                "no row changed for {} s (--idle-timeout){hint}",
                idle.as_secs()
            ));
        }
    };
    let _ = stop_tx.send(true);
    if stopped
        .as_deref()
        .is_some_and(|why| why.starts_with("interrupted"))
    {
        exit_on_second_interrupt(options.quiet);
    }
    let mut stopped = stopped;
    match sender.await {
        Ok(Err(e)) => {
            fatal = true;
            stopped = Some(e.to_string());
        }
        Err(e) => {
            fatal = true;
            stopped = Some(format!("the sender failed: {e}"));
        }
        Ok(Ok(())) => {}
    }
    for collector in collectors {
        if let Ok(Err(e)) = collector.await {
            fatal = true;
            stopped = Some(format!("reading the reply queue failed: {e}"));
        }
    }
    if let Ok(Err(e)) = saver.await {
        fatal = true;
        stopped = Some(e.to_string());
    }
    if let Err(e) = save(&tracker, &state_path, &*queues).await {
        fatal = true;
        stopped = Some(e.to_string());
    }
    let (final_state, stats) = match tracker.lock() {
        Ok(t) => (t.state.clone(), t.stats),
        Err(poisoned) => {
            let t = poisoned.into_inner();
            (t.state.clone(), t.stats)
        }
    };
    progress.finish(&final_state.counts());
    if let Err(e) = report::write(&final_state) {
        fatal = true;
        stopped = Some(e.to_string());
    }
    let mut summary = Summary::new(
        &final_state,
        &state_path,
        stats,
        stopped,
        started.elapsed().as_secs_f64(),
    );
    if fatal {
        summary.exit_code = Exit::Usage.as_u8();
    }
    summary
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use async_trait::async_trait;
    use chime_onboard::wire::{Reply as WireReply, Status};

    use super::*;
    use crate::queue::{FailedEntry, Incoming, Outgoing, QueueError};
    use crate::state::tests::temp_dir;
    use crate::state::{AwsSettings, VERSION};

    /// Plays the function: every message sent is answered on the reply queue, twice
    /// (a duplicate), plus a stray that is not the run's (deleted, counted).
    #[derive(Default)]
    struct EchoQueues {
        run_id: String,
        replies: StdMutex<Vec<Incoming>>,
        deleted: StdMutex<Vec<String>>,
        /// Every entry sent, as sent.
        sent: StdMutex<Vec<Outgoing>>,
        /// Stop answering after this many messages (a function that went away).
        answer_at_most: Option<usize>,
        answered: StdMutex<usize>,
    }

    #[async_trait]
    impl RequestQueue for EchoQueues {
        async fn send_batch(&self, entries: &[Outgoing]) -> Result<Vec<FailedEntry>, QueueError> {
            self.sent.lock().unwrap().extend_from_slice(entries);
            let mut replies = self.replies.lock().unwrap();
            let mut answered = self.answered.lock().unwrap();
            for e in entries {
                if self.answer_at_most.is_some_and(|n| *answered >= n) {
                    continue;
                }
                *answered += 1;
                let request: serde_json::Value = serde_json::from_str(&e.body).unwrap();
                let reply = WireReply {
                    request_id: request["RequestId"].as_str().unwrap().into(),
                    correlation_id: Some(self.run_id.clone()),
                    status: Status::Created,
                    account_id: Some(format!("acct-{}", e.id)),
                    account: None,
                    error: None,
                    source_message_id: e.id.clone(),
                };
                for copy in 0..2 {
                    replies.push(Incoming {
                        receipt_handle: format!("ours-{}-{copy}", e.id),
                        body: serde_json::to_string(&reply).unwrap(),
                        correlation_id: Some(self.run_id.clone()),
                    });
                }
            }
            replies.push(Incoming {
                receipt_handle: "theirs".into(),
                body: "{}".into(),
                correlation_id: Some("run-other".into()),
            });
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ReplyQueue for EchoQueues {
        async fn receive(&self, _: i32, _: i32) -> Result<Vec<Incoming>, QueueError> {
            let got: Vec<Incoming> = {
                let mut replies = self.replies.lock().unwrap();
                let n = replies.len().min(10);
                replies.drain(..n).collect()
            };
            if got.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(got)
        }
        async fn delete(&self, handles: &[String]) -> Result<(), QueueError> {
            self.deleted.lock().unwrap().extend_from_slice(handles);
            Ok(())
        }
    }

    fn options(idle: u64) -> RunOptions {
        RunOptions {
            json: false,
            concurrency: 4,
            receivers: 2,
            idle_timeout: idle,
            max_in_flight: 10,
            progress_every: 5,
            quiet: true,
        }
    }

    fn new_state(dir: &Path, names: &str, queue_url: &str) -> RunState {
        let input =
            crate::input::parse(names.as_bytes(), crate::input::Format::Lines, None).unwrap();
        RunState {
            version: VERSION,
            run_id: "run-1".into(),
            file: dir.join("names.txt"),
            batch_id: "names.txt".into(),
            queue_url: queue_url.into(),
            reply_queue_url: "r".into(),
            columns: Vec::new(),
            report: dir.join("names.report.csv"),
            aws: AwsSettings::default(),
            started_at: 0,
            rows: crate::plan::rows(&input, "names.txt"),
        }
    }

    #[tokio::test]
    async fn a_run_ends_when_every_row_has_an_answer_and_deletes_what_it_recorded() {
        let dir = temp_dir("engine");
        let names: String =
            (1..=25).map(|i| format!("Name {i}\n")).collect::<String>() + "x\u{7}y\n";
        let state = new_state(&dir, &names, "https://q/1/requests");
        let path = state::path_for_report(&state.report);
        let queues = Arc::new(EchoQueues {
            run_id: "run-1".into(),
            ..Default::default()
        });
        let summary = engine(state, path.clone(), queues.clone(), &options(30)).await;
        assert_eq!(summary.exit_code, 1, "{}", summary.text());
        assert_eq!(
            (
                summary.counts.created,
                summary.counts.rejected,
                summary.unanswered
            ),
            (25, 1, 0)
        );
        assert_eq!(summary.duplicate_replies, 25);
        // Every reply (and every stray) was deleted, and only after being saved.
        let deleted = queues.deleted.lock().unwrap();
        assert_eq!(
            deleted.iter().filter(|h| h.starts_with("ours-")).count(),
            50
        );
        assert!(deleted.iter().any(|h| h == "theirs"));
        let saved = RunState::load(&path).unwrap();
        assert_eq!(saved.counts().created, 25);
        let report = std::fs::read_to_string(dir.join("names.report.csv")).unwrap();
        assert_eq!(report.lines().count(), 27);
        // A standard queue: no group.
        assert!(queues
            .sent
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.group.is_none()));
    }

    #[tokio::test]
    async fn each_row_is_its_own_group_on_a_fifo_queue() {
        let dir = temp_dir("fifo");
        let state = new_state(&dir, "A\nB\n", "https://q/1/requests.fifo");
        let path = state::path_for_report(&state.report);
        let queues = Arc::new(EchoQueues {
            run_id: "run-1".into(),
            ..Default::default()
        });
        let summary = engine(state, path, queues.clone(), &options(30)).await;
        assert_eq!(summary.counts.created, 2, "{}", summary.text());
        for entry in queues.sent.lock().unwrap().iter() {
            let body: serde_json::Value = serde_json::from_str(&entry.body).unwrap();
            assert_eq!(entry.group.as_deref(), body["RequestId"].as_str());
        }
    }

    #[tokio::test]
    async fn an_idle_run_stops_with_its_state_saved() {
        let dir = temp_dir("idle");
        let state = new_state(&dir, "A\nB\nC\n", "https://q/1/requests");
        let path = state::path_for_report(&state.report);
        let queues = Arc::new(EchoQueues {
            run_id: "run-1".into(),
            answer_at_most: Some(2),
            ..Default::default()
        });
        let summary = engine(state, path.clone(), queues, &options(1)).await;
        assert_eq!((summary.counts.created, summary.unanswered), (2, 1));
        assert!(summary.stopped.unwrap().contains("idle-timeout"));
        assert_eq!(RunState::load(&path).unwrap().counts().waiting, 1);
    }

    #[tokio::test]
    async fn a_run_that_hears_nothing_says_where_to_look() {
        let dir = temp_dir("silent");
        let state = new_state(&dir, "A\n", "https://q/1/requests");
        let path = state::path_for_report(&state.report);
        let queues = Arc::new(EchoQueues {
            run_id: "run-1".into(),
            answer_at_most: Some(0),
            ..Default::default()
        });
        let summary = engine(state, path, queues, &options(1)).await;
        let why = summary.stopped.unwrap_or_default();
        assert!(why.contains("ALLOWED_REPLY_QUEUES"), "{why}");
    }
}
