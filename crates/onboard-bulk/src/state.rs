//! The run's state: every row with its status, the queues and the run id, saved beside
//! the report as JSON, always atomically (written to a temporary file, then renamed over
//! the old one), so a crash or a SIGKILL leaves either the previous state or the new one.
//!
//! `resume` and `status` read it; nothing else is needed to continue a run (the names
//! are in it, so the input file may move). One process at a time runs a state file:
//! [`StateLock`] holds an OS lock on `<state>.lock` for as long as the run lasts, and
//! the OS lets go of it when the process ends, however it ends.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Format version of the state file (2: per-run reply queues, batch ids, input columns).
pub const VERSION: u32 = 2;

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowStatus {
    /// Not sent yet.
    Pending,
    /// Sent; no reply yet.
    Sent,
    /// The account exists.
    Created,
    /// Refused for good: by the local name check or by the function.
    Rejected,
    /// The function gave up after its retries (the message went to its DLQ).
    Failed,
}

impl RowStatus {
    /// How final a status is: a reply moves a row only upwards (`Created` beats an
    /// earlier `Failed`; a late `Failed` never undoes a `Created`).
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending | Self::Sent => 0,
            Self::Failed => 1,
            Self::Rejected => 2,
            Self::Created => 3,
        }
    }

    /// Whether the row still waits for a reply (or to be sent).
    pub fn is_open(self) -> bool {
        self.rank() == 0
    }
}

/// One row of the input and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Line of the input file.
    pub row: u64,
    /// The name as written in the file (empty when the CSV record had no such field).
    pub name: String,
    pub request_id: String,
    pub status: RowStatus,
    /// Whether the row was ever put on the request queue (locally rejected rows never are).
    #[serde(default)]
    pub sent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The input's other columns for this row (see [`RunState::columns`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
}

/// The AWS settings a run was started with, so `resume` reaches the same queues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// Everything a run needs to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub version: u32,
    /// The `CorrelationId` of the run's messages and the end of its reply queue's name;
    /// a resumed run keeps it.
    pub run_id: String,
    pub file: PathBuf,
    /// What the `RequestId`s are derived from with each name (the file's name by default).
    pub batch_id: String,
    pub queue_url: String,
    /// The run's own reply queue, created by the CLI under the allow-listed prefix and
    /// deleted once no row waits for a reply.
    pub reply_queue_url: String,
    /// The input's columns other than the name, kept for the report.
    #[serde(default)]
    pub columns: Vec<String>,
    pub report: PathBuf,
    pub aws: AwsSettings,
    /// Seconds since the epoch when the run was first submitted.
    pub started_at: u64,
    pub rows: Vec<Row>,
}

/// How many rows are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub rows: usize,
    /// Not sent yet.
    pub pending: usize,
    /// Sent and waiting for a reply.
    pub waiting: usize,
    /// Ever put on the request queue.
    pub sent: usize,
    pub created: usize,
    pub rejected: usize,
    pub failed: usize,
}

impl Counts {
    /// Rows without a final answer: not sent, or sent and not answered.
    pub fn unanswered(&self) -> usize {
        self.pending + self.waiting
    }

    /// Rows with an answer (any status but pending and sent).
    pub fn answered(&self) -> usize {
        self.created + self.rejected + self.failed
    }
}

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an onboard-bulk state file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write the state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another onboard-bulk is running {path} (it holds {path}.lock); wait for it, or stop it \
         with Ctrl-C, then run this again"
    )]
    Locked { path: PathBuf },
}

/// The exclusive right to run a state file, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the lock of `state` (`<state>.lock` beside it), or says who holds it.
    pub fn acquire(state: &Path) -> Result<Self, StateError> {
        let mut path = state.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Write {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked {
                path: state.to_owned(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(StateError::Write { path, source }),
        }
    }
}

impl RunState {
    /// Counts the rows by status.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            rows: self.rows.len(),
            ..Counts::default()
        };
        for row in &self.rows {
            counts.sent += usize::from(row.sent);
            match row.status {
                RowStatus::Pending => counts.pending += 1,
                RowStatus::Sent => counts.waiting += 1,
                RowStatus::Created => counts.created += 1,
                RowStatus::Rejected => counts.rejected += 1,
                RowStatus::Failed => counts.failed += 1,
            }
        }
        counts
    }

    /// The state as the bytes of its file.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a state file.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let bytes = std::fs::read(path).map_err(|source| StateError::Read {
            path: path.to_owned(),
            source,
        })?;
        let state: Self = serde_json::from_slice(&bytes).map_err(|e| StateError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if state.version != VERSION {
            return Err(StateError::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "version {} (this onboard-bulk reads {VERSION})",
                    state.version
                ),
            });
        }
        Ok(state)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::io::Write;
    let error = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(error)
}

/// The state file that goes with a report: `out.csv` -> `out.state.json`, same folder.
pub fn path_for_report(report: &Path) -> PathBuf {
    report.with_extension("state.json")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(row: u64, status: RowStatus) -> Row {
        Row {
            row,
            name: format!("Name {row}"),
            request_id: format!("bulk-{row}"),
            status,
            sent: status != RowStatus::Pending,
            account_id: None,
            error_code: None,
            message: None,
            extra: Vec::new(),
        }
    }

    pub(crate) fn state(rows: Vec<Row>) -> RunState {
        RunState {
            version: VERSION,
            run_id: "run-1".into(),
            file: "names.csv".into(),
            batch_id: "names.csv".into(),
            queue_url: "http://127.0.0.1:1/000000000000/requests".into(),
            reply_queue_url: "http://127.0.0.1:1/000000000000/stack-bulk-run-1".into(),
            columns: Vec::new(),
            report: "names.report.csv".into(),
            aws: AwsSettings::default(),
            started_at: 1,
            rows,
        }
    }

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "onboard-bulk-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn state_round_trips_through_an_atomic_write() {
        let dir = temp_dir("state");
        let path = path_for_report(&dir.join("out.csv"));
        assert_eq!(path.file_name().unwrap(), "out.state.json");
        let mut s = state(vec![row(2, RowStatus::Sent), row(3, RowStatus::Created)]);
        s.rows[1].account_id = Some("a-1".into());
        write_atomically(&path, &s.to_bytes()).unwrap();
        s.rows[0].status = RowStatus::Failed;
        write_atomically(&path, &s.to_bytes()).unwrap();
        assert_eq!(RunState::load(&path).unwrap(), s);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn one_process_at_a_time_holds_a_state_file() {
        let dir = temp_dir("lock");
        let path = dir.join("x.state.json");
        let held = StateLock::acquire(&path).unwrap();
        let err = StateLock::acquire(&path).unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("another onboard-bulk is running"));
        drop(held);
        assert!(StateLock::acquire(&path).is_ok());
    }

    #[test]
    fn counts_and_ranks() {
        let s = state(vec![
            row(1, RowStatus::Pending),
            row(2, RowStatus::Sent),
            row(3, RowStatus::Created),
            row(4, RowStatus::Rejected),
            row(5, RowStatus::Failed),
        ]);
        let c = s.counts();
        assert_eq!((c.unanswered(), c.answered(), c.rows), (2, 3, 5));
        assert!(RowStatus::Created.rank() > RowStatus::Failed.rank());
        assert!(RowStatus::Sent.is_open() && !RowStatus::Failed.is_open());
    }

    #[test]
    fn a_bad_state_file_says_what_it_is() {
        let dir = temp_dir("badstate");
        let path = dir.join("x.state.json");
        std::fs::write(&path, b"{\"version\": 1}").unwrap();
        let err = RunState::load(&path).unwrap_err().to_string();
        assert!(err.contains("is not an onboard-bulk state file"), "{err}");
        let mut s = state(vec![]);
        s.version = 99;
        std::fs::write(&path, s.to_bytes()).unwrap();
        let err = RunState::load(&path).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
        let err = RunState::load(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }
}
