//! End-to-end tests of onboard-bulk: the built binary -> request queue (moto) -> a local
//! event source mapping running the function's `handle` -> chime-local -> reply queue ->
//! the binary. Kept small (a few hundred rows) so they stay quick.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// --dry-run on each file shape of the contract: the binary alone, no AWS.
mod dry_run;
// moto, chime-local, the in-process event source mapping, the CLI as a child process.
mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use onboard_bulk::state::RunState;
use support::World;

/// A CSV of `valid` good names tagged `tag`, with bad rows mixed in; returns the file's
/// good names and the number of bad rows.
fn write_names(path: &Path, tag: &str, valid: usize) -> (Vec<String>, usize) {
    let bad = ["   ", "tab\there", &"x".repeat(101), ""];
    let mut csv = String::from("Name,Owner\n");
    let mut good = Vec::new();
    for i in 0..valid {
        let name = format!("{tag} Ünïcode {i}");
        csv.push_str(&format!("\"{name}\",owner{i}\n"));
        good.push(name);
        if i % 50 == 7 {
            csv.push_str(&format!("\"{}\",owner-bad\n", bad[(i / 50) % bad.len()]));
        }
    }
    std::fs::write(path, csv).unwrap();
    let rejected = (0..valid).filter(|i| i % 50 == 7).count();
    (good, rejected)
}

/// Polls the state file until `done` holds for its counts (bounded).
async fn wait_for(state: &Path, what: &str, done: impl Fn(&RunState) -> bool) {
    let started = Instant::now();
    loop {
        if let Ok(s) = RunState::load(state) {
            if done(&s) {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a report: row -> (name, status, account id, error code); the input's `Owner`
/// column is kept after the report's own.
fn read_report(path: &Path) -> Vec<(u64, String, String, String, String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let mut columns: Vec<String> = onboard_bulk::report::COLUMNS.map(String::from).to_vec();
    columns.push("Owner".into());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        columns
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert!(
                r[7].starts_with("owner"),
                "the input's column is kept: {r:?}"
            );
            (
                r[0].parse().unwrap(),
                r[1].to_owned(),
                r[3].to_owned(),
                r[4].to_owned(),
                r[5].to_owned(),
            )
        })
        .collect()
}

/// Every row of the file once; good names Created with an account chime-local holds
/// exactly once; bad ones Rejected with a code. Returns the number of Created rows.
fn check_report(world: &World, report: &Path, good: &[String], rejected: usize) -> usize {
    let rows = read_report(report);
    let lines: HashSet<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(lines.len(), rows.len(), "a row appears twice in the report");
    assert_eq!(rows.len(), good.len() + rejected);
    let accounts: HashMap<String, String> = world
        .chime
        .accounts()
        .into_iter()
        .map(|a| (a.account_id, a.name))
        .collect();
    let mut created = 0;
    for (row, name, status, account, code) in &rows {
        if good.contains(name) {
            assert_eq!(status, "Created", "row {row}");
            assert_eq!(accounts.get(account), Some(name), "row {row}");
            created += 1;
        } else {
            assert_eq!(status, "Rejected", "row {row}");
            assert!(!code.is_empty(), "row {row}");
        }
    }
    let names = world.account_names();
    for name in good {
        let n = names.iter().filter(|n| *n == name).count();
        assert_eq!(n, 1, "{name:?} has {n} accounts in chime-local");
    }
    created
}

/// Resumes the run until no row is unanswered (at most three times) and returns the last
/// JSON summary. moto_server can drop a message sent while another message of the same
/// queue is being deleted (its `delete_message` rebuilds the list without a lock); the
/// row then ends `Unanswered`, and `resume` is the remedy onboard-bulk offers for it.
async fn resume_until_answered(world: &World, state: &Path, tag: &str) -> serde_json::Value {
    let state_arg = state.display().to_string();
    for attempt in 0..3 {
        let tag = format!("{tag}-{attempt}");
        let status = world
            .cli(
                &tag,
                &[
                    "resume",
                    &state_arg,
                    "--json",
                    "--quiet",
                    "--idle-timeout",
                    "15",
                ],
            )
            .status()
            .await
            .unwrap();
        let out = world.output(&tag);
        assert!(matches!(status.code(), Some(0 | 1)), "{out}");
        let json = out.lines().find(|l| l.starts_with('{')).unwrap_or("{}");
        let summary: serde_json::Value = serde_json::from_str(json).unwrap();
        if summary["unanswered"] == 0 {
            return summary;
        }
    }
    panic!(
        "rows still unanswered after three resumes: {}",
        world.output(&format!("{tag}-2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_and_a_killed_run_resume_to_one_account_per_row() {
    let world = World::start(60.0, 4).await;
    let file = world.dir.join("names.csv");
    let report = world.dir.join("names.report.csv");
    let state = world.dir.join("names.report.state.json");
    let (good, rejected) = write_names(&file, "Resume", 200);

    // Ctrl-C (SIGINT) mid-run: stops cleanly, state saved, exit 1, says how to resume.
    let args = world.submit_args(&file, &report);
    let mut run = world
        .cli(
            "submit",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .spawn()
        .unwrap();
    wait_for(&state, "30 created", |s| s.counts().created >= 30).await;
    let pid = run.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(30), run.wait())
        .await
        .unwrap()
        .unwrap();
    let out = world.output("submit");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("stopped: interrupted (Ctrl-C)"), "{out}");
    assert!(out.contains("onboard-bulk resume"), "{out}");
    let after_int = RunState::load(&state).unwrap().counts();
    assert!(
        after_int.unanswered() > 0,
        "the run ended before the interrupt: {out}"
    );
    assert_eq!(read_report(&report).len(), good.len() + rejected);

    // resume, then SIGKILL mid-run: no chance to save anything more.
    let state_arg = state.display().to_string();
    let mut run = world
        .cli("resume1", &["resume", &state_arg, "--progress-every", "1"])
        .spawn()
        .unwrap();
    let target = after_int.created + 10;
    wait_for(&state, "10 more created", |s| s.counts().created >= target).await;
    // One process per state file: a second resume is refused while this one runs.
    let second = world
        .cli("resume-twice", &["resume", &state_arg])
        .status()
        .await
        .unwrap();
    let out = world.output("resume-twice");
    assert_eq!(second.code(), Some(2), "{out}");
    assert!(out.contains("another onboard-bulk is running"), "{out}");
    let target = after_int.created + 30;
    wait_for(&state, "30 more created", |s| s.counts().created >= target).await;
    run.start_kill().unwrap();
    run.wait().await.unwrap();
    let after_kill = RunState::load(&state).unwrap().counts();
    assert!(after_kill.unanswered() > 0, "{}", world.output("resume1"));

    // resume to the end: every row exactly once, one account per good name.
    let summary = resume_until_answered(&world, &state, "resume2").await;
    let out = summary.to_string();
    assert_eq!(summary["created"], good.len(), "{out}");
    assert_eq!(summary["rejected"], rejected, "{out}");
    assert_eq!(summary["unanswered"], 0, "{out}");
    assert_eq!(check_report(&world, &report, &good, rejected), good.len());
    assert_eq!(world.chime.accounts().len(), good.len());
    // The run's reply queue went with the run; nothing strayed to the stack's queue.
    assert!(world.run_queues().await.is_empty());
    assert_eq!(world.stack_replies().await, 0);

    // status reads the finished run without AWS.
    let status = world
        .cli("status", &["status", &state_arg])
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(world
        .output("status")
        .contains(&format!("{} created", good.len())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runs_at_once_each_on_its_own_reply_queue_both_complete() {
    let world = World::start(200.0, 4).await;
    let mut runs = Vec::new();
    let mut expected = Vec::new();
    for tag in ["Left", "Right"] {
        let file = world.dir.join(format!("{tag}.txt"));
        let report = world.dir.join(format!("{tag}.report.csv"));
        let (good, rejected) = write_names(&file, tag, 100);
        let args = world.submit_args(&file, &report);
        let run = world
            .cli(tag, &args.iter().map(String::as_str).collect::<Vec<_>>())
            .spawn()
            .unwrap();
        runs.push((tag, run));
        expected.push((report, good, rejected));
    }
    for (tag, mut run) in runs {
        let status = tokio::time::timeout(Duration::from_secs(120), run.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(1), "{}", world.output(tag));
        let out = world.output(tag);
        assert!(out.contains("0 unanswered"), "{out}");
    }
    let mut total = 0;
    for (report, good, rejected) in &expected {
        total += check_report(&world, report, good, *rejected);
    }
    assert_eq!(world.chime.accounts().len(), total);
    assert!(world.run_queues().await.is_empty());
    assert_eq!(world.stack_replies().await, 0);
}

/// The report's AccountId per name.
fn accounts_by_name(report: &Path) -> HashMap<String, String> {
    read_report(report)
        .into_iter()
        .filter(|r| r.2 == "Created")
        .map(|r| (r.1, r.3))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrected_file_resubmitted_creates_only_the_changed_rows() {
    let world = World::start(200.0, 4).await;
    // Two folders, one file name: the batch id is the name, so both are one batch.
    let (first_dir, second_dir) = (world.dir.join("monday"), world.dir.join("tuesday"));
    std::fs::create_dir_all(&first_dir).unwrap();
    std::fs::create_dir_all(&second_dir).unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("Resubmit Corp {i}")).collect();
    let csv = |names: &[String]| {
        let rows: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n},owner{i}\n"))
            .collect();
        format!("Name,Owner\n{rows}")
    };
    let mut typo = names.clone();
    typo[7] = "Resubmit Crop 7".into();
    let first = first_dir.join("customers.csv");
    std::fs::write(&first, csv(&typo)).unwrap();
    let run = |tag: &'static str, file: std::path::PathBuf| {
        let report = file.with_extension("report.csv");
        let args = world.submit_args(&file, &report);
        let command = world.cli(tag, &args.iter().map(String::as_str).collect::<Vec<_>>());
        (command, report)
    };
    let (mut command, first_report) = run("first", first.clone());
    let status = command.status().await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", world.output("first"));
    assert_eq!(world.chime.accounts().len(), 20);

    // The corrected file, resubmitted: one new account, the rest answered as before.
    let second = second_dir.join("customers.csv");
    std::fs::write(&second, csv(&names)).unwrap();
    let (mut command, second_report) = run("second", second);
    let status = command.status().await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", world.output("second"));
    assert_eq!(
        world.chime.accounts().len(),
        21,
        "only the corrected row is new"
    );
    let before = accounts_by_name(&first_report);
    let after = accounts_by_name(&second_report);
    assert_eq!(after.len(), 20);
    for name in names.iter().filter(|n| *n != &names[7]) {
        assert_eq!(before.get(name), after.get(name), "{name} kept its account");
    }
    assert!(!before.contains_key(&names[7]));
    assert!(world
        .chime
        .accounts()
        .iter()
        .any(|a| Some(&a.account_id) == after.get(&names[7])));
}
