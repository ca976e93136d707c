//! `submit --dry-run` on each file shape of the contract (DESIGN.md, "Bulk onboarding"):
//! the built binary with nothing but the file (no queue, no credentials, no AWS
//! variables), reading what it prints.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What a dry run printed.
struct DryRun {
    code: Option<i32>,
    lines: Vec<Value>,
    stderr: String,
}

impl DryRun {
    fn names(&self) -> Vec<(u64, &str)> {
        self.lines
            .iter()
            .map(|l| {
                (
                    l["row"].as_u64().unwrap_or(0),
                    l["body"]["Name"].as_str().unwrap_or(""),
                )
            })
            .collect()
    }

    fn request_ids(&self) -> Vec<&str> {
        self.lines
            .iter()
            .map(|l| l["body"]["RequestId"].as_str().unwrap_or(""))
            .collect()
    }
}

fn folder(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onboard-bulk-dry-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn dry_run(file: &Path, extra: &[&str]) -> DryRun {
    let out = Command::new(env!("CARGO_BIN_EXE_onboard-bulk"))
        .arg("submit")
        .arg(file)
        .arg("--dry-run")
        .args(extra)
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    DryRun {
        code: out.status.code(),
        lines: stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn a_lower_case_name_column_among_others_is_read_as_csv() {
    let dir = folder("lower");
    let file = write(
        &dir,
        "export.csv",
        b"name,owner\nAcme Corp,ann@example.com\nGlobex,bob@example.com\n",
    );
    let run = dry_run(&file, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.names(), vec![(2, "Acme Corp"), (3, "Globex")]);
    assert!(run.lines.iter().all(|l| l.get("group").is_none()));
    let body = run.lines[0]["body"].as_object().unwrap();
    assert_eq!(body.len(), 2, "the contract's two members: {body:?}");
}

#[test]
fn bom_crlf_and_quotes_are_read_with_the_rows_lines() {
    let dir = folder("bom");
    let file = write(
        &dir,
        "excel.csv",
        "\u{feff}Owner;Name\r\nann;\"Widgets; \"\"Inc.\"\"\"\r\nbob;\" Zürich Ops \"\r\n"
            .as_bytes(),
    );
    let run = dry_run(&file, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.names(),
        vec![(2, "Widgets; \"Inc.\""), (3, "Zürich Ops")],
        "the body carries the validated (trimmed) name"
    );
}

#[test]
fn plain_text_is_one_name_per_line_with_blank_lines_skipped() {
    let dir = folder("plain");
    let file = write(&dir, "names.txt", b"Acme\n\n   \nWidgets, Inc.\r\nGlobex\n");
    let run = dry_run(&file, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.names(),
        vec![(1, "Acme"), (4, "Widgets, Inc."), (5, "Globex")]
    );
}

#[test]
fn a_table_without_a_name_column_is_refused_with_the_columns_found() {
    let dir = folder("noname");
    let file = write(
        &dir,
        "export.csv",
        b"Company,Owner\nAcme Corp,ann@example.com\nGlobex,bob@example.com\n",
    );
    let run = dry_run(&file, &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.lines.is_empty());
    assert!(
        run.stderr.contains("\"Company\", \"Owner\""),
        "{}",
        run.stderr
    );
    // Naming the column (in any case) reads it.
    let named = dry_run(&file, &["--name-column", "COMPANY"]);
    assert_eq!(named.code, Some(0), "{}", named.stderr);
    assert_eq!(named.names(), vec![(2, "Acme Corp"), (3, "Globex")]);
}

#[test]
fn bad_names_are_reported_and_not_sent_without_refusing_the_file() {
    let dir = folder("bad");
    let long = "x".repeat(101);
    let file = write(
        &dir,
        "names.csv",
        format!("Name\nAcme\n{long}\n\"tab\there\"\nGlobex\n").as_bytes(),
    );
    let run = dry_run(&file, &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.names(), vec![(2, "Acme"), (5, "Globex")]);
    assert!(
        run.stderr.contains("row 3: not sent: NameTooLong"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("row 4: not sent: NameInvalidCharacter"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_same_name_twice_refuses_the_file_unless_allowed() {
    let dir = folder("dup");
    let file = write(&dir, "names.csv", b"Name\nAcme\nGlobex\n Acme \n");
    let run = dry_run(&file, &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.lines.is_empty());
    assert!(
        run.stderr.contains("\"Acme\" on rows 2, 4"),
        "{}",
        run.stderr
    );
    let allowed = dry_run(&file, &["--allow-duplicate-names"]);
    assert_eq!(allowed.code, Some(0), "{}", allowed.stderr);
    let ids = allowed.request_ids();
    assert_eq!(ids.len(), 3);
    assert_ne!(ids[0], ids[2], "each occurrence is its own request");
}

#[test]
fn a_fifo_queue_gets_a_group_per_row() {
    let dir = folder("fifo");
    let file = write(&dir, "names.txt", b"Acme\nGlobex\n");
    let run = dry_run(
        &file,
        &[
            "--queue",
            "https://sqs.us-east-1.amazonaws.com/1/stack-requests.fifo",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for line in &run.lines {
        assert_eq!(line["group"], line["body"]["RequestId"]);
    }
}

#[test]
fn request_ids_follow_the_file_name_and_the_batch_id() {
    let (monday, tuesday) = (folder("monday"), folder("tuesday"));
    let a = write(&monday, "customers.csv", b"Name\nAcme\nGlobex\n");
    // The same file name elsewhere, a row added in front: the names keep their ids.
    let b = write(&tuesday, "customers.csv", b"Name\nInitech\nAcme\nGlobex\n");
    let first = dry_run(&a, &[]);
    let second = dry_run(&b, &[]);
    assert_eq!(first.request_ids(), second.request_ids()[1..].to_vec());
    let renamed = write(&tuesday, "customers-2.csv", b"Name\nAcme\nGlobex\n");
    assert_ne!(dry_run(&renamed, &[]).request_ids(), first.request_ids());
    let batch = dry_run(&renamed, &["--batch-id", "customers.csv"]);
    assert_eq!(batch.request_ids(), first.request_ids());
}
