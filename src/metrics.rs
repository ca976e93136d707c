//! Metrics in CloudWatch embedded metric format (EMF): JSON lines on stdout
//! that CloudWatch Logs turns into metrics, with no API call and no client.
//!
//! An invocation runs inside [`scope`], which gives it a [`Recorder`] (a
//! task-local, so the adapters and the Chime adapter record without passing
//! it around) and writes what was recorded when the invocation ends: one line
//! for the counts and Chime latencies, plus one per rejection code (EMF gives
//! each line one value per dimension). Outside a scope (unit tests) recording
//! does nothing. Namespace `ChimeOnboard`, dimension `Ingress` (`http`, `sqs`),
//! and `Ingress, Code` for `Rejected`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "ChimeOnboard";
/// EMF takes at most 100 values per metric and line.
const MAX_VALUES: usize = 100;

/// Which way the request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    Http,
    Sqs,
}

impl Ingress {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Sqs => "sqs",
        }
    }
}

/// How one request ended, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted<'a> {
    /// The account was created (or a completed request answered again).
    Created,
    /// An earlier ambiguous attempt's account was found by verification.
    Adopted,
    /// The request was refused for good, with its code.
    Rejected(&'a str),
    /// A transient failure: retried through SQS, or answered 409/429/5xx over HTTP.
    Failed,
}

/// What one invocation recorded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorder {
    created: u64,
    adopted: u64,
    failed: u64,
    rejected: BTreeMap<String, u64>,
    chime_latency_ms: Vec<f64>,
}

tokio::task_local! {
    static RECORDER: RefCell<Recorder>;
}

/// Counts one request's end.
pub fn count(counted: Counted<'_>) {
    let _ = RECORDER.try_with(|r| {
        let mut r = r.borrow_mut();
        match counted {
            Counted::Created => r.created += 1,
            Counted::Adopted => r.adopted += 1,
            Counted::Failed => r.failed += 1,
            Counted::Rejected(code) => *r.rejected.entry(code.to_owned()).or_default() += 1,
        }
    });
}

/// Records how long one Chime `CreateAccount` call took, whatever its answer.
pub fn chime_latency(elapsed: Duration) {
    let _ = RECORDER.try_with(|r| {
        r.borrow_mut()
            .chime_latency_ms
            .push(elapsed.as_secs_f64() * 1000.0)
    });
}

/// Runs one invocation with a recorder and writes its EMF lines afterwards.
pub async fn scope<F: Future>(ingress: Ingress, invocation: F) -> F::Output {
    let (output, recorder) = RECORDER
        .scope(RefCell::new(Recorder::default()), async {
            let output = invocation.await;
            (output, RECORDER.with(|r| r.take()))
        })
        .await;
    let lines = recorder.lines(ingress, now_ms());
    if !lines.is_empty() {
        // One write per line under one lock; a closed stdout must not panic (println! would).
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            let _ = writeln!(stdout, "{line}");
        }
    }
    output
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Recorder {
    /// The EMF lines for what was recorded (none when nothing was).
    pub fn lines(&self, ingress: Ingress, timestamp_ms: u64) -> Vec<Value> {
        let mut lines = Vec::new();
        let mut metrics = Vec::new();
        let mut values = serde_json::Map::new();
        for (name, value) in [
            ("Created", self.created),
            ("Adopted", self.adopted),
            ("Failed", self.failed),
        ] {
            if value > 0 {
                metrics.push(json!({"Name": name, "Unit": "Count"}));
                values.insert(name.to_owned(), json!(value));
            }
        }
        if !self.chime_latency_ms.is_empty() {
            let kept = self.chime_latency_ms.len().min(MAX_VALUES);
            metrics.push(json!({"Name": "ChimeLatency", "Unit": "Milliseconds"}));
            values.insert(
                "ChimeLatency".to_owned(),
                json!(&self.chime_latency_ms[..kept]),
            );
        }
        if !metrics.is_empty() {
            lines.push(line(ingress, timestamp_ms, &["Ingress"], metrics, values));
        }
        for (code, count) in &self.rejected {
            let mut values = serde_json::Map::new();
            values.insert("Code".to_owned(), json!(code));
            values.insert("Rejected".to_owned(), json!(count));
            let metrics = vec![json!({"Name": "Rejected", "Unit": "Count"})];
            lines.push(line(
                ingress,
                timestamp_ms,
                &["Ingress", "Code"],
                metrics,
                values,
            ));
        }
        lines
    }
}

fn line(
    ingress: Ingress,
    timestamp_ms: u64,
    dimensions: &[&str],
    metrics: Vec<Value>,
    values: serde_json::Map<String, Value>,
) -> Value {
    let mut root = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": metrics,
            }],
        },
        "Ingress": ingress.as_str(),
    });
    if let Value::Object(root) = &mut root {
        root.extend(values);
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_invocation_writes_counts_latencies_and_one_line_per_rejection_code() {
        let recorder = RECORDER
            .scope(RefCell::new(Recorder::default()), async {
                count(Counted::Created);
                count(Counted::Created);
                count(Counted::Adopted);
                count(Counted::Rejected("NameEmpty"));
                count(Counted::Rejected("NameEmpty"));
                count(Counted::Rejected("NameTooLong"));
                chime_latency(Duration::from_millis(12));
                RECORDER.with(|r| r.take())
            })
            .await;
        let lines = recorder.lines(Ingress::Sqs, 1_700_000_000_000);
        assert_eq!(lines.len(), 3);
        let main = &lines[0];
        assert_eq!(main["_aws"]["Timestamp"], json!(1_700_000_000_000u64));
        let directive = &main["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], json!("ChimeOnboard"));
        assert_eq!(directive["Dimensions"], json!([["Ingress"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["Name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["Created", "Adopted", "ChimeLatency"]);
        // Every metric named in the directive has its value at the root.
        for name in names {
            assert!(main.get(name).is_some(), "{name}");
        }
        assert_eq!(main["Ingress"], json!("sqs"));
        assert_eq!(main["Created"], json!(2));
        assert_eq!(main["ChimeLatency"], json!([12.0]));
        assert_eq!(lines[1]["Code"], json!("NameEmpty"));
        assert_eq!(lines[1]["Rejected"], json!(2));
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Ingress", "Code"]])
        );
        assert_eq!(lines[2]["Code"], json!("NameTooLong"));
    }

    #[test]
    fn nothing_recorded_writes_nothing_and_recording_outside_a_scope_is_harmless() {
        count(Counted::Failed);
        chime_latency(Duration::from_millis(1));
        assert!(Recorder::default().lines(Ingress::Http, 0).is_empty());
    }
}
