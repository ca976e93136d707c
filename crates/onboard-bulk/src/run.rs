//! A run: `submit` builds the state from a file, `resume` loads it, and [`engine`] sends,
//! collects, saves and reports until every row has an answer, the run goes idle, or
//! Ctrl-C / SIGTERM stops it (the state is saved either way). `status` only reads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chime_onboard::onboard::{AccountName, OnboardError};
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::cli::{Cli, Command, ResumeArgs, RunOptions, StatusArgs, SubmitArgs};
use crate::collect::{receive_loop, CollectOptions, Tracker};
use crate::progress::Progress;
use crate::queue::{self, ReplyQueue, RequestQueue, SqsQueues};
use crate::report::{self, Summary};
use crate::request::{message_body, request_id, run_id};
use crate::state::{self, AwsSettings, Row, RowStatus, RunState, StateError, VERSION};
use crate::submit::{send_all, SendOptions, ToSend};

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every row was created.
    AllCreated,
    /// Some rows were rejected, failed, or have no answer.
    NotAllCreated,
    /// The command could not run as asked.
    Usage,
}

impl Exit {
    pub fn as_u8(self) -> u8 {
        match self {
            Self::AllCreated => 0,
            Self::NotAllCreated => 1,
            Self::Usage => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            0 => Self::AllCreated,
            1 => Self::NotAllCreated,
            _ => Self::Usage,
        }
    }
}

/// A reason the command cannot run, said to the user as is.
#[derive(Debug)]
pub struct Refusal(pub String);

impl<E: std::fmt::Display> From<E> for Refusal {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

/// Runs the parsed command line.
pub async fn main(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Submit(args) => submit(args).await,
        Command::Resume(args) => resume(args).await,
        Command::Status(args) => status(&args),
    };
    match result {
        Ok(exit) => exit,
        Err(Refusal(message)) => {
            eprintln!("onboard-bulk: error: {message}");
            Exit::Usage
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The report path when none is given: `names.csv` -> `names.report.csv`.
pub fn default_report(file: &Path) -> PathBuf {
    file.with_extension("report.csv")
}

/// Turns the file's rows into the run's rows: every name checked with the library's rule,
/// bad ones rejected here with their code and never sent.
pub fn rows_of(input: &crate::input::Input) -> Vec<Row> {
    input
        .rows
        .iter()
        .map(|r| {
            let checked = r
                .name
                .as_deref()
                .ok_or(OnboardError::NameMissing)
                .and_then(AccountName::parse);
            let (status, error) = match checked {
                Ok(_) => (RowStatus::Pending, None),
                Err(e) => (RowStatus::Rejected, Some(e)),
            };
            Row {
                row: r.row,
                name: r.name.clone().unwrap_or_default(),
                request_id: request_id(&input.sha256, r.row),
                status,
                sent: false,
                account_id: None,
                error_code: error.as_ref().map(|e| e.code().to_owned()),
                message: error.as_ref().map(ToString::to_string),
            }
        })
        .collect()
}

async fn submit(args: SubmitArgs) -> Result<Exit, Refusal> {
    let content = std::fs::read(&args.file)
        .map_err(|e| Refusal(format!("cannot read {}: {e}", args.file.display())))?;
    let input = crate::input::parse(&content, args.format, &args.name_column)
        .map_err(|e| Refusal(format!("{}: {e}", args.file.display())))?;
    if args.format == crate::input::Format::Auto && input.format == crate::input::Format::Lines {
        eprintln!(
            "onboard-bulk: reading {} as one name per line (its first line has no {:?} column)",
            args.file.display(),
            args.name_column
        );
    }
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| default_report(&args.file));
    let state_path = state::path_for_report(&report);
    if state_path.exists() {
        return Err(Refusal(format!(
            "{} already holds a run for this report: `onboard-bulk resume {0}` continues it and \
             `onboard-bulk status {0}` shows it; to start a new run pass another --report, or delete it",
            state_path.display()
        )));
    }
    let file = std::fs::canonicalize(&args.file).unwrap_or(args.file.clone());
    let state = RunState {
        version: VERSION,
        run_id: run_id(&input.sha256),
        file,
        file_sha256: input.sha256.clone(),
        queue_url: args.queue,
        reply_queue_url: args.reply_queue,
        report,
        aws: AwsSettings {
            endpoint_url: args.aws.endpoint_url,
            region: args.aws.region,
            profile: args.aws.profile,
        },
        started_at: now_secs(),
        rows: rows_of(&input),
    };
    let queues = connect(&state).await?;
    state::write_atomically(&state_path, &state.to_bytes())?;
    Ok(finish(
        engine(state, state_path, Arc::new(queues), &args.run).await,
        &args.run,
    ))
}

async fn resume(args: ResumeArgs) -> Result<Exit, Refusal> {
    let mut state = RunState::load(&args.state)?;
    state.aws = args.aws.over(&state.aws);
    for row in &mut state.rows {
        // Unanswered and failed rows go again; their RequestIds make that harmless.
        if matches!(row.status, RowStatus::Sent | RowStatus::Failed) || row.status.is_open() {
            row.status = RowStatus::Pending;
            row.error_code = None;
            row.message = None;
        }
    }
    let queues = connect(&state).await?;
    Ok(finish(
        engine(state, args.state, Arc::new(queues), &args.run).await,
        &args.run,
    ))
}

fn status(args: &StatusArgs) -> Result<Exit, Refusal> {
    let state = RunState::load(&args.state)?;
    let elapsed = now_secs().saturating_sub(state.started_at) as f64;
    let summary = Summary::new(&state, &args.state, Default::default(), None, elapsed);
    if args.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.text());
    }
    Ok(Exit::from_code(summary.exit_code))
}

async fn connect(state: &RunState) -> Result<SqsQueues, Refusal> {
    let client = queue::client(&state.aws).await?;
    let queues = SqsQueues {
        client,
        queue_url: state.queue_url.clone(),
        reply_queue_url: state.reply_queue_url.clone(),
        run_id: state.run_id.clone(),
    };
    queues.check().await.map_err(|e| {
        Refusal(format!(
            "{e}\n  check the queue URLs, --endpoint-url, --region and the credentials"
        ))
    })?;
    Ok(queues)
}

fn finish(summary: Summary, options: &RunOptions) -> Exit {
    if options.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.text());
    }
    Exit::from_code(summary.exit_code)
}

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
            break Some(format!(
                "no row changed for {} s (--idle-timeout)",
                idle.as_secs()
            ));
        }
    };
    let _ = stop_tx.send(true);
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

    /// Plays the function: every message sent is answered on the reply queue, twice
    /// (a duplicate), plus a message of another run that must be released, not lost.
    #[derive(Default)]
    struct EchoQueues {
        run_id: String,
        replies: StdMutex<Vec<Incoming>>,
        released: StdMutex<Vec<String>>,
        deleted: StdMutex<Vec<String>>,
        /// Stop answering after this many messages (a function that went away).
        answer_at_most: Option<usize>,
        answered: StdMutex<usize>,
    }

    #[async_trait]
    impl RequestQueue for EchoQueues {
        async fn send_batch(&self, entries: &[Outgoing]) -> Result<Vec<FailedEntry>, QueueError> {
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
        async fn release(&self, handles: &[String]) -> Result<(), QueueError> {
            self.released.lock().unwrap().extend_from_slice(handles);
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

    fn new_state(dir: &Path, names: &str) -> RunState {
        let input =
            crate::input::parse(names.as_bytes(), crate::input::Format::Lines, "Name").unwrap();
        RunState {
            version: VERSION,
            run_id: "run-1".into(),
            file: dir.join("names.txt"),
            file_sha256: input.sha256.clone(),
            queue_url: "q".into(),
            reply_queue_url: "r".into(),
            report: dir.join("names.report.csv"),
            aws: AwsSettings::default(),
            started_at: 0,
            rows: rows_of(&input),
        }
    }

    #[test]
    fn bad_names_are_rejected_locally_with_the_library_s_code() {
        let dir = temp_dir("rows");
        let state = new_state(&dir, "Acme\n   \nx\u{7}y\n");
        let rows: Vec<(u64, RowStatus, Option<&str>)> = state
            .rows
            .iter()
            .map(|r| (r.row, r.status, r.error_code.as_deref()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, RowStatus::Pending, None),
                (2, RowStatus::Rejected, Some("NameEmpty")),
                (3, RowStatus::Rejected, Some("NameInvalidCharacter")),
            ]
        );
        assert_eq!(
            default_report(Path::new("a/names.csv")),
            Path::new("a/names.report.csv")
        );
    }

    #[tokio::test]
    async fn a_run_ends_when_every_row_has_an_answer_and_releases_other_runs_replies() {
        let dir = temp_dir("engine");
        let names: String = (1..=25).map(|i| format!("Name {i}\n")).collect::<String>() + "\t\n";
        let state = new_state(&dir, &names);
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
        assert!(queues
            .released
            .lock()
            .unwrap()
            .iter()
            .all(|h| h == "theirs"));
        assert!(!queues.released.lock().unwrap().is_empty());
        // Every reply of ours was deleted, and only after being saved.
        assert_eq!(queues.deleted.lock().unwrap().len(), 50);
        let saved = RunState::load(&path).unwrap();
        assert_eq!(saved.counts().created, 25);
        let report = std::fs::read_to_string(dir.join("names.report.csv")).unwrap();
        assert_eq!(report.lines().count(), 27);
    }

    #[tokio::test]
    async fn an_idle_run_stops_with_its_state_saved() {
        let dir = temp_dir("idle");
        let state = new_state(&dir, "A\nB\nC\n");
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
}
