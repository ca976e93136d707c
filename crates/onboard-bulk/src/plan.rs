//! What a file becomes before anything is sent: every name checked with the library's
//! rule (`chime_onboard::onboard::AccountName`, not a copy), bad rows rejected here with
//! its code and never sent, each good row given its `RequestId`, and names that appear
//! more than once found (they refuse the file unless `--allow-duplicate-names`).
//!
//! `--dry-run` prints the plan: one JSON object per message that would be sent,
//! `{"row": N, "body": {...}}`, plus `"group"` (the `MessageGroupId`) for a FIFO queue.

use std::collections::HashMap;

use chime_onboard::onboard::{AccountName, OnboardError};
use serde_json::json;

use crate::input::Input;
use crate::request::{message_body, request_id};
use crate::state::{Row, RowStatus};

/// A name on several rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub name: String,
    pub rows: Vec<u64>,
}

/// The file refused because names repeat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "names on more than one row ({}), so the file is not sent:\n{}\n  \
     pass --allow-duplicate-names to create one account per row",
    .0.len(), list(.0)
)]
pub struct Duplicates(pub Vec<Duplicate>);

/// The first ten duplicates, one per line.
fn list(duplicates: &[Duplicate]) -> String {
    let mut lines: Vec<String> = duplicates
        .iter()
        .take(10)
        .map(|d| {
            let rows: Vec<String> = d.rows.iter().map(u64::to_string).collect();
            format!("  {:?} on rows {}", d.name, rows.join(", "))
        })
        .collect();
    if duplicates.len() > 10 {
        lines.push(format!("  ... and {} more", duplicates.len() - 10));
    }
    lines.join("\n")
}

/// The code of a CSV row with more fields than its header (reported, not sent).
pub const ROW_MISALIGNED: &str = "RowMisaligned";

/// The rows of a run, in file order: pending with a `RequestId`, or rejected with the
/// library's code and message (or [`ROW_MISALIGNED`]).
pub fn rows(input: &Input, batch_id: &str) -> Vec<Row> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    input
        .rows
        .iter()
        .map(|r| {
            let checked = match r.surplus {
                0 => r
                    .name
                    .as_deref()
                    .ok_or(OnboardError::NameMissing)
                    .and_then(AccountName::parse)
                    .map_err(|e| (e.code(), e.to_string())),
                surplus => Err((
                    ROW_MISALIGNED,
                    format!(
                        "the row has {surplus} field(s) more than the header: a separator inside \
                         a cell shifts the cells after it; quote that cell (\"Acme, Inc.\")"
                    ),
                )),
            };
            let (status, request_id, error) = match checked {
                Ok(name) => {
                    let occurrence = seen.entry(name.as_str().to_owned()).or_insert(0);
                    *occurrence += 1;
                    let id = request_id(batch_id, &name, *occurrence);
                    (RowStatus::Pending, id, None)
                }
                Err(error) => (RowStatus::Rejected, String::new(), Some(error)),
            };
            let (error_code, message) = error.map_or((None, None), |(code, message)| {
                (Some(code.to_owned()), Some(message))
            });
            Row {
                row: r.row,
                name: r.name.clone().unwrap_or_default(),
                request_id,
                status,
                sent: false,
                account_id: None,
                error_code,
                message,
                extra: r.extra.clone(),
            }
        })
        .collect()
}

/// Names on more than one row (after the name rule: `Acme` and ` Acme ` are one name),
/// in the order of their first row.
pub fn duplicates(rows: &[Row]) -> Vec<Duplicate> {
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut found: Vec<Duplicate> = Vec::new();
    for row in rows.iter().filter(|r| r.status == RowStatus::Pending) {
        let Ok(name) = AccountName::parse(&row.name) else {
            continue;
        };
        match by_name.get(name.as_str()) {
            Some(&i) => found[i].rows.push(row.row),
            None => {
                by_name.insert(name.as_str().to_owned(), found.len());
                found.push(Duplicate {
                    name: name.as_str().to_owned(),
                    rows: vec![row.row],
                });
            }
        }
    }
    found.retain(|d| d.rows.len() > 1);
    found
}

/// The dry run's lines: one JSON object per message a run would send.
pub fn dry_run_lines(rows: &[Row], fifo: bool) -> Vec<String> {
    rows.iter()
        .filter(|r| r.status == RowStatus::Pending)
        .filter_map(|r| {
            let name = AccountName::parse(&r.name).ok()?;
            let body: serde_json::Value =
                serde_json::from_str(&message_body(&name, &r.request_id)).ok()?;
            let mut line = json!({"row": r.row, "body": body});
            if fifo {
                line["group"] = json!(r.request_id);
            }
            Some(line.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{parse, Format};

    fn plan(file: &str) -> Vec<Row> {
        rows(
            &parse(file.as_bytes(), Format::Auto, None).unwrap(),
            "names.csv",
        )
    }

    #[test]
    fn a_row_with_more_fields_than_the_header_is_rejected_not_shifted() {
        let rows = plan("owner,name\nann@example.com,Acme\nSmith, John,Beta\n");
        assert_eq!(rows[0].status, RowStatus::Pending);
        assert_eq!(rows[1].status, RowStatus::Rejected);
        assert_eq!(rows[1].error_code.as_deref(), Some(ROW_MISALIGNED));
        assert!(rows[1]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("quote"));
    }

    #[test]
    fn bad_names_are_rejected_locally_with_the_library_s_code() {
        let rows = plan("name,owner\nAcme,a\n\t,b\nx\u{7}y,c\n,d\n");
        let got: Vec<(u64, RowStatus, Option<&str>)> = rows
            .iter()
            .map(|r| (r.row, r.status, r.error_code.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, RowStatus::Pending, None),
                (3, RowStatus::Rejected, Some("NameEmpty")),
                (4, RowStatus::Rejected, Some("NameInvalidCharacter")),
                (5, RowStatus::Rejected, Some("NameEmpty")),
            ]
        );
        assert_eq!(rows[1].extra, vec!["b"]);
        let lines = dry_run_lines(&rows, false);
        assert_eq!(lines.len(), 1, "rejected rows are not sent");
    }

    #[test]
    fn equal_names_are_found_and_numbered_by_occurrence() {
        let rows = plan("Acme\nGlobex\n  Acme \nAcme\n");
        assert_eq!(
            duplicates(&rows),
            vec![Duplicate {
                name: "Acme".into(),
                rows: vec![1, 3, 4]
            }]
        );
        let ids: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids.len(), 4, "each occurrence has its own RequestId");
        let text = Duplicates(duplicates(&rows)).to_string();
        assert!(text.contains("\"Acme\" on rows 1, 3, 4"), "{text}");
        assert!(text.contains("--allow-duplicate-names"), "{text}");
    }

    #[test]
    fn a_corrected_row_keeps_the_other_rows_request_ids() {
        let before = plan("Name\nAcme\nGlbex\nInitech\n");
        let after = plan("Name\nAcme\nGlobex\nInitech\n");
        let same: Vec<bool> = before
            .iter()
            .zip(&after)
            .map(|(a, b)| a.request_id == b.request_id)
            .collect();
        assert_eq!(same, vec![true, false, true]);
        // Rows moved around keep their ids too: they hang on the name, not the line.
        let moved = plan("Name\nInitech\nAcme\n");
        assert_eq!(moved[1].request_id, before[0].request_id);
    }

    #[test]
    fn dry_run_lines_carry_the_body_and_the_fifo_group() {
        let rows = plan("Acme\n");
        let line: serde_json::Value = serde_json::from_str(&dry_run_lines(&rows, true)[0]).unwrap();
        assert_eq!(line["row"], 1);
        assert_eq!(line["body"]["Name"], "Acme");
        assert_eq!(line["body"]["RequestId"], rows[0].request_id.as_str());
        assert_eq!(line["group"], rows[0].request_id.as_str());
        let plain: serde_json::Value =
            serde_json::from_str(&dry_run_lines(&rows, false)[0]).unwrap();
        assert!(plain.get("group").is_none());
    }
}
