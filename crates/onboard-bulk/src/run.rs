//! A run: `submit` reads and plans a file (or prints the plan, `--dry-run`), creates the
//! run's reply queue and its state; `resume` loads a state; both then hand it to
//! [`crate::engine`] under the state file's lock, and delete the run's reply queue once
//! no row waits for a reply. `status` only reads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::{Cli, Command, ResumeArgs, RunOptions, StatusArgs, SubmitArgs};
use crate::engine::engine;
use crate::input::{self, Format, InputError};
use crate::plan::{self, Duplicates};
use crate::queue::{self, QueueError, SqsQueues};
use crate::report::Summary;
use crate::request::{batch_id_of, is_fifo, reply_queue_name, run_id, BadPrefix};
use crate::state::{self, AwsSettings, RowStatus, RunState, StateError, StateLock, VERSION};

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every row was created (or, for a dry run, every row would be sent).
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

/// Why the command cannot run as asked (exit 2); each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The input file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not names as the contract reads them (e.g. a table without a name column).
    #[error("{}: {source}", path.display())]
    Input { path: PathBuf, source: InputError },
    /// A name stands on more than one row and `--allow-duplicate-names` was not given.
    #[error("{}: {duplicates}", path.display())]
    DuplicateNames {
        path: PathBuf,
        duplicates: Duplicates,
    },
    /// Sending needs a queue (or prefix) that neither the flag nor the environment gave.
    #[error(
        "{flag} is needed to send (or set {env}); --dry-run shows what would be sent without it"
    )]
    Missing {
        flag: &'static str,
        env: &'static str,
    },
    /// The report's state file already holds a run: resume it, or start another report.
    #[error(
        "{} already holds a run for this report: `onboard-bulk resume {0}` continues it and \
         `onboard-bulk status {0}` shows it; to start a new run pass another --report, or delete it",
        state.display()
    )]
    RunExists { state: PathBuf },
    /// The request or reply queue cannot be used with these settings.
    #[error("{source}\n  check the queue URLs, --endpoint-url, --region and the credentials")]
    QueuesUnusable { source: QueueError },
    /// The state file cannot be locked, read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// `--reply-queue-prefix` cannot name an SQS queue.
    #[error(transparent)]
    Prefix(#[from] BadPrefix),
    /// An SQS call (client set-up, creating the run's reply queue) failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
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
        Err(refusal) => {
            eprintln!("onboard-bulk: error: {refusal}");
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

fn required(
    value: Option<String>,
    flag: &'static str,
    env: &'static str,
) -> Result<String, Refusal> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(Refusal::Missing { flag, env })
}

async fn submit(args: SubmitArgs) -> Result<Exit, Refusal> {
    let content = std::fs::read(&args.file).map_err(|source| Refusal::Unreadable {
        path: args.file.clone(),
        source,
    })?;
    let input =
        input::parse(&content, args.format, args.name_column.as_deref()).map_err(|source| {
            Refusal::Input {
                path: args.file.clone(),
                source,
            }
        })?;
    if args.format == Format::Auto && input.format == Format::Lines && !args.run.quiet {
        eprintln!(
            "onboard-bulk: reading {} as one name per line (its first line has no name column)",
            args.file.display()
        );
    }
    let batch_id = args
        .batch_id
        .clone()
        .unwrap_or_else(|| batch_id_of(&args.file));
    let rows = plan::rows(&input, &batch_id);
    let duplicates = plan::duplicates(&rows);
    if !duplicates.is_empty() && !args.allow_duplicate_names {
        return Err(Refusal::DuplicateNames {
            path: args.file.clone(),
            duplicates: Duplicates(duplicates),
        });
    }
    let rejected: Vec<_> = rows
        .iter()
        .filter(|r| r.status == RowStatus::Rejected)
        .collect();
    if args.dry_run {
        let fifo = args.queue.as_deref().is_some_and(is_fifo);
        for line in plan::dry_run_lines(&rows, fifo) {
            println!("{line}");
        }
        for row in &rejected {
            eprintln!(
                "onboard-bulk: row {}: not sent: {}: {}",
                row.row,
                row.error_code.as_deref().unwrap_or_default(),
                row.message.as_deref().unwrap_or_default()
            );
        }
        return Ok(if rejected.is_empty() {
            Exit::AllCreated
        } else {
            Exit::NotAllCreated
        });
    }
    let queue_url = required(args.queue, "--queue", "ONBOARD_BULK_QUEUE")?;
    let prefix = required(
        args.reply_queue_prefix,
        "--reply-queue-prefix",
        "ONBOARD_BULK_REPLY_QUEUE_PREFIX",
    )?;
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| default_report(&args.file));
    let state_path = state::path_for_report(&report);
    let _lock = StateLock::acquire(&state_path)?;
    if state_path.exists() {
        return Err(Refusal::RunExists { state: state_path });
    }
    let run_id = run_id(&batch_id);
    let reply_queue = reply_queue_name(&prefix, &run_id)?;
    let aws = AwsSettings {
        endpoint_url: args.aws.endpoint_url,
        region: args.aws.region,
        profile: args.aws.profile,
    };
    let client = queue::client(&aws).await?;
    let reply_queue_url = queue::create_reply_queue(&client, &reply_queue).await?;
    let state = RunState {
        version: VERSION,
        run_id,
        file: std::fs::canonicalize(&args.file).unwrap_or(args.file.clone()),
        batch_id,
        queue_url,
        reply_queue_url,
        columns: input.columns,
        report,
        aws,
        started_at: now_secs(),
        rows,
    };
    state::write_atomically(&state_path, &state.to_bytes())?;
    run(state, state_path, client, &args.run).await
}

async fn resume(args: ResumeArgs) -> Result<Exit, Refusal> {
    let _lock = StateLock::acquire(&args.state)?;
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
    let client = queue::client(&state.aws).await?;
    // The queue is deleted when a run is collected; a resumed run makes it again
    // (CreateQueue returns the existing queue when it is still there).
    let name = state
        .reply_queue_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    state.reply_queue_url = queue::create_reply_queue(&client, &name).await?;
    run(state, args.state, client, &args.run).await
}

/// Checks the queues, runs the engine, prints the summary, and deletes the run's reply
/// queue once no row waits for a reply.
async fn run(
    state: RunState,
    state_path: PathBuf,
    client: aws_sdk_sqs::Client,
    options: &RunOptions,
) -> Result<Exit, Refusal> {
    let queues = SqsQueues {
        client: client.clone(),
        queue_url: state.queue_url.clone(),
        reply_queue_url: state.reply_queue_url.clone(),
        run_id: state.run_id.clone(),
    };
    queues
        .check()
        .await
        .map_err(|source| Refusal::QueuesUnusable { source })?;
    let reply_queue_url = state.reply_queue_url.clone();
    let summary = engine(state, state_path, Arc::new(queues), options).await;
    if summary.unanswered == 0 {
        // Failed rows may still be resumed: `resume` makes the queue again.
        if let Err(e) = queue::delete_reply_queue(&client, &reply_queue_url).await {
            eprintln!("onboard-bulk: warning: {e}");
        }
    }
    print_summary(&summary, options.json);
    Ok(Exit::from_code(summary.exit_code))
}

fn status(args: &StatusArgs) -> Result<Exit, Refusal> {
    let state = RunState::load(&args.state)?;
    let elapsed = now_secs().saturating_sub(state.started_at) as f64;
    let summary = Summary::new(&state, &args.state, Default::default(), None, elapsed);
    print_summary(&summary, args.json);
    Ok(Exit::from_code(summary.exit_code))
}

fn print_summary(summary: &Summary, json: bool) {
    if json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.text());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_goes_beside_the_input_by_default() {
        assert_eq!(
            default_report(Path::new("a/names.csv")),
            Path::new("a/names.report.csv")
        );
        assert!(required(None, "--queue", "ONBOARD_BULK_QUEUE")
            .err()
            .is_some_and(|r| {
                let m = r.to_string();
                m.contains("ONBOARD_BULK_QUEUE") && m.contains("--dry-run")
            }));
        assert!(required(Some("q".into()), "--queue", "X").is_ok());
    }
}
