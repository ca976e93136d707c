//! The command line: clap derive, doc comments are the help text. Raw flags only; `run`
//! turns them into a run.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::input::Format;
use crate::state::AwsSettings;

/// Onboard a file of Amazon Chime account names through chime-onboard's request queue.
///
/// Every name is checked locally first (the function's own rule); good rows go to the
/// request queue, replies come back on a reply queue of the run's own (created under the
/// allow-listed prefix, deleted when the run is collected), and a report says for every
/// row the AccountId or why not, with the input's other columns. The run's state is saved
/// beside the report: `resume` continues an interrupted run. A row's RequestId comes from
/// the batch id (the file's name), the name and its occurrence, so sending a row again,
/// or a corrected file of the same name, never creates a second account for it.
///
/// Exit codes: 0 every row was created (dry run: every row would be sent); 1 some rows
/// were rejected, failed or are unanswered; 2 the command could not run (usage, file,
/// duplicate names, state, lock or queue errors).
#[derive(Debug, Parser)]
#[command(name = "onboard-bulk", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, send and collect a file of names; write the report and the state file.
    Submit(SubmitArgs),
    /// Continue a run from its state file: re-send the rows without a final reply (and the
    /// failed ones) and keep collecting. One process at a time per state file.
    Resume(ResumeArgs),
    /// Print a run's counts from its state file (no AWS calls).
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The names: a CSV with a `name` column (any case; other columns are kept for the
    /// report), or plain text with one name per line.
    pub file: PathBuf,
    /// URL of the function's request queue (the stack's RequestQueueUrl output).
    #[arg(long, value_name = "URL", env = "ONBOARD_BULK_QUEUE")]
    pub queue: Option<String>,
    /// Queue-name prefix for the run's own reply queue (the stack's BulkReplyQueuePrefix
    /// output); the function's ALLOWED_REPLY_QUEUES must admit it.
    #[arg(long, value_name = "PREFIX", env = "ONBOARD_BULK_REPLY_QUEUE_PREFIX")]
    pub reply_queue_prefix: Option<String>,
    /// CSV column that holds the names (matched in any case) [default: name].
    #[arg(long, value_name = "COLUMN")]
    pub name_column: Option<String>,
    /// How to read FILE: `auto` reads a CSV when its header has the name column, refuses
    /// a CSV-shaped file without one, and otherwise reads one name per line.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// What the RequestIds derive from, with each name [default: FILE's name]. Two files
    /// of the same name share it: give one of them another batch id.
    #[arg(long, value_name = "ID")]
    pub batch_id: Option<String>,
    /// Send a name that is on several rows once per row (one account each) instead of
    /// refusing the file.
    #[arg(long)]
    pub allow_duplicate_names: bool,
    /// Send nothing: print one JSON line per message that would be sent
    /// (`{"row", "body"}`, plus `"group"` when --queue ends in .fifo). Needs only FILE.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write the report [default: FILE with the extension `.report.csv`]. The
    /// state file goes beside it (`.state.json`).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOptions,
    #[command(flatten)]
    pub aws: AwsOptions,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run's state file (beside its report).
    pub state: PathBuf,
    #[command(flatten)]
    pub run: RunOptions,
    /// Overrides the settings the run was started with.
    #[command(flatten)]
    pub aws: AwsOptions,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run's state file (beside its report).
    pub state: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// How a run behaves.
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// SendMessageBatch calls in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Most rows sent and not answered yet: sending pauses above it, so the request
    /// queue never holds a huge backlog (0: no limit).
    #[arg(long, default_value_t = 1000, value_name = "ROWS")]
    pub max_in_flight: usize,
    /// Long polls of the reply queue in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub receivers: u16,
    /// Stop waiting when no row has changed for this many seconds (the state is saved;
    /// `resume` carries on).
    #[arg(long, default_value_t = 300, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,
    /// Seconds between progress lines when stderr is not a terminal.
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub progress_every: u64,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where and as whom to reach SQS (as cargo-lambda's `RemoteConfig`). Unset values come
/// from the environment and the AWS config files, as for any AWS SDK.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsOptions {
    /// SQS endpoint (e.g. a local emulator); default: AWS_ENDPOINT_URL_SQS or AWS.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region; default: AWS_REGION or the profile's.
    #[arg(long)]
    pub region: Option<String>,
    /// AWS profile from ~/.aws/config.
    #[arg(long)]
    pub profile: Option<String>,
}

impl AwsOptions {
    /// These options over `base` (a resumed run's saved settings).
    pub fn over(&self, base: &AwsSettings) -> AwsSettings {
        AwsSettings {
            endpoint_url: self
                .endpoint_url
                .clone()
                .or_else(|| base.endpoint_url.clone()),
            region: self.region.clone().or_else(|| base.region.clone()),
            profile: self.profile.clone().or_else(|| base.profile.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent_and_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "onboard-bulk",
            "submit",
            "names.csv",
            "--queue",
            "q",
            "--reply-queue-prefix",
            "stack-bulk-",
            "--endpoint-url",
            "http://127.0.0.1:4566",
            "--json",
        ])
        .unwrap();
        let Command::Submit(args) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(args.name_column, None);
        assert_eq!(args.reply_queue_prefix.as_deref(), Some("stack-bulk-"));
        assert!(args.run.json && !args.dry_run && !args.allow_duplicate_names);
        assert_eq!(args.run.concurrency, 8);
        // A dry run needs nothing but the file.
        let dry = Cli::try_parse_from(["onboard-bulk", "submit", "f", "--dry-run"]).unwrap();
        assert!(matches!(
            dry.command,
            Command::Submit(SubmitArgs { dry_run: true, .. })
        ));
        assert!(Cli::try_parse_from(["onboard-bulk", "submit"]).is_err());
        assert!(
            Cli::try_parse_from(["onboard-bulk", "status", "s", "--concurrency", "0"]).is_err()
        );
    }

    #[test]
    fn flags_override_the_saved_settings() {
        let saved = AwsSettings {
            endpoint_url: Some("http://a".into()),
            region: Some("eu-west-1".into()),
            profile: None,
        };
        let flags = AwsOptions {
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        assert_eq!(
            flags.over(&saved),
            AwsSettings {
                endpoint_url: Some("http://a".into()),
                region: Some("us-east-1".into()),
                profile: None
            }
        );
    }
}
