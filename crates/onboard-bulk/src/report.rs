//! The report CSV (one line per input row, in file order) and the run's summary, as text
//! for people or JSON (`--json`) for programs.
//!
//! Report columns: `Row` (line in the input file), `Name` (as written), `RequestId`,
//! `Status` (`Created`, `Rejected`, `Failed`, or `Unanswered` when no reply came yet),
//! `AccountId`, `ErrorCode`, `Message`, then the input's other columns as they were (one
//! whose header is one of those names gets `Input ` in front).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::collect::ReplyStats;
use crate::state::{write_atomically, Counts, Row, RowStatus, RunState, StateError};

/// The header line of the report.
pub const COLUMNS: [&str; 7] = [
    "Row",
    "Name",
    "RequestId",
    "Status",
    "AccountId",
    "ErrorCode",
    "Message",
];

fn status(row: &Row) -> &'static str {
    match row.status {
        RowStatus::Created => "Created",
        RowStatus::Rejected => "Rejected",
        RowStatus::Failed => "Failed",
        RowStatus::Pending | RowStatus::Sent => "Unanswered",
    }
}

fn message(row: &Row) -> String {
    match (&row.message, row.status) {
        (Some(message), _) => message.clone(),
        (None, RowStatus::Pending) => "not sent yet".into(),
        (None, RowStatus::Sent) => "sent; no reply yet".into(),
        (None, _) => String::new(),
    }
}

/// The report's header: [`COLUMNS`], then the input's other columns.
pub fn header(state: &RunState) -> Vec<String> {
    let ours = |c: &str| COLUMNS.iter().any(|o| o.eq_ignore_ascii_case(c.trim()));
    COLUMNS
        .iter()
        .map(|c| (*c).to_owned())
        .chain(state.columns.iter().map(|c| {
            if ours(c) {
                format!("Input {c}")
            } else {
                c.clone()
            }
        }))
        .collect()
}

/// The report as CSV bytes.
pub fn to_csv(state: &RunState) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail on I/O; a failed record would only shorten the report.
    let _ = writer.write_record(header(state));
    for row in &state.rows {
        let fixed = [
            row.row.to_string(),
            row.name.clone(),
            row.request_id.clone(),
            status(row).to_owned(),
            row.account_id.clone().unwrap_or_default(),
            row.error_code.clone().unwrap_or_default(),
            message(row),
        ];
        let extra = (0..state.columns.len()).map(|i| row.extra.get(i).cloned().unwrap_or_default());
        let _ = writer.write_record(fixed.into_iter().chain(extra));
    }
    writer.into_inner().unwrap_or_default()
}

/// Writes the report atomically.
pub fn write(state: &RunState) -> Result<(), StateError> {
    write_atomically(&state.report, &to_csv(state))
}

/// What a run (or a `status`) reports at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub file: PathBuf,
    pub report: PathBuf,
    pub state: PathBuf,
    #[serde(flatten)]
    pub counts: Counts,
    pub unanswered: usize,
    /// Replies that repeated an answer a row already had (counted once).
    pub duplicate_replies: u64,
    /// Rows answered `Created` twice with different AccountIds.
    pub conflicts: u64,
    /// Whether the run was stopped (Ctrl-C, idle timeout, an error) before every row had
    /// an answer.
    pub stopped: Option<String>,
    pub elapsed_secs: f64,
    pub exit_code: u8,
}

impl Summary {
    pub fn new(
        state: &RunState,
        state_path: &Path,
        stats: ReplyStats,
        stopped: Option<String>,
        elapsed_secs: f64,
    ) -> Self {
        let counts = state.counts();
        let exit_code = if counts.created == counts.rows { 0 } else { 1 };
        Self {
            run_id: state.run_id.clone(),
            file: state.file.clone(),
            report: state.report.clone(),
            state: state_path.to_owned(),
            counts,
            unanswered: counts.unanswered(),
            duplicate_replies: stats.duplicates,
            conflicts: stats.conflicts,
            stopped,
            elapsed_secs,
            exit_code,
        }
    }

    /// The summary for people.
    pub fn text(&self) -> String {
        let c = &self.counts;
        let mut out = format!(
            "onboard-bulk: {} rows: {} created, {} rejected, {} failed, {} unanswered ({:.1} s)\n  report: {}\n  state:  {}\n",
            c.rows,
            c.created,
            c.rejected,
            c.failed,
            self.unanswered,
            self.elapsed_secs,
            self.report.display(),
            self.state.display()
        );
        if self.conflicts > 0 {
            out.push_str(&format!(
                "  warning: {} rows were answered Created twice with different AccountIds (the first is in the report)\n",
                self.conflicts
            ));
        }
        if let Some(why) = &self.stopped {
            out.push_str(&format!("  stopped: {why}\n"));
        }
        if self.unanswered + c.failed > 0 {
            out.push_str(&format!(
                "  `onboard-bulk resume {}` re-sends the {} unanswered and failed rows and keeps collecting\n",
                self.state.display(),
                self.unanswered + c.failed
            ));
        }
        out
    }

    /// The summary for programs: one JSON object.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{row, state};

    #[test]
    fn the_report_has_every_row_in_order_with_its_outcome() {
        let mut rows = vec![
            row(2, RowStatus::Created),
            row(3, RowStatus::Rejected),
            row(4, RowStatus::Sent),
            row(5, RowStatus::Pending),
        ];
        rows[0].account_id = Some("a-1".into());
        rows[0].name = "Widgets, \"Inc.\"".into();
        rows[1].error_code = Some("NameEmpty".into());
        rows[1].message = Some("\"Name\" is empty".into());
        let csv = String::from_utf8(to_csv(&state(rows))).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            vec![
                "Row,Name,RequestId,Status,AccountId,ErrorCode,Message",
                "2,\"Widgets, \"\"Inc.\"\"\",bulk-2,Created,a-1,,",
                "3,Name 3,bulk-3,Rejected,,NameEmpty,\"\"\"Name\"\" is empty\"",
                "4,Name 4,bulk-4,Unanswered,,,sent; no reply yet",
                "5,Name 5,bulk-5,Unanswered,,,not sent yet",
            ]
        );
    }

    #[test]
    fn the_report_keeps_the_input_s_other_columns() {
        let mut rows = vec![row(2, RowStatus::Created), row(3, RowStatus::Rejected)];
        rows[0].extra = vec!["ann@example.com".into(), "x".into()];
        rows[1].extra = vec!["bob@example.com".into()];
        let mut s = state(rows);
        s.columns = vec!["owner".into(), "status".into()];
        let csv = String::from_utf8(to_csv(&s)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "Row,Name,RequestId,Status,AccountId,ErrorCode,Message,owner,Input status"
        );
        assert!(lines[1].ends_with(",ann@example.com,x"), "{}", lines[1]);
        assert!(lines[2].ends_with(",bob@example.com,"), "{}", lines[2]);
    }

    #[test]
    fn the_exit_code_is_zero_only_when_every_row_was_created() {
        let all = state(vec![row(2, RowStatus::Created)]);
        let summary = Summary::new(&all, Path::new("s"), ReplyStats::default(), None, 1.0);
        assert_eq!(summary.exit_code, 0);
        assert!(!summary.text().contains("resume"));
        let some = state(vec![row(2, RowStatus::Created), row(3, RowStatus::Sent)]);
        let summary = Summary::new(
            &some,
            Path::new("x.state.json"),
            ReplyStats::default(),
            Some("interrupted".into()),
            1.0,
        );
        assert_eq!(summary.exit_code, 1);
        assert!(summary.text().contains("onboard-bulk resume x.state.json"));
        let json: serde_json::Value = serde_json::from_str(&summary.json()).unwrap();
        assert_eq!(json["rows"], 2);
        assert_eq!(json["created"], 1);
        assert_eq!(json["unanswered"], 1);
        assert_eq!(json["stopped"], "interrupted");
    }
}
