//! What a row becomes on the request queue: its `RequestId`, the request message of the
//! SQS contract (`chime_onboard::wire::Request`), its FIFO group, and the run's own ids.
//!
//! A row's `RequestId` is a hash of (batch id, the validated name, its occurrence among
//! equal names in the file). The batch id is the input file's name (not its path, not its
//! content) unless `--batch-id` says otherwise. So a corrected file resubmitted under the
//! same name sends the unchanged rows with the same `RequestId`s, and the function's
//! idempotency records (kept at least as long as a message can come back) answer them with
//! the accounts already created; only changed rows create accounts. The parts are length
//! prefixed, so no two different triples hash the same input. The id is `bulk-` and 32 hex
//! digits: inside the contract's 1..=128 printable ASCII.
//!
//! FIFO request queues: every row is its own message group (`MessageGroupId` = its
//! `RequestId`). Rows are independent, so nothing needs ordering, and the function's FIFO
//! rule (a failure holds back the rest of its group) then never holds one row behind
//! another; Lambda still spreads the groups over its pollers. `MessageDeduplicationId` is
//! the `RequestId` too, so a row re-sent within SQS's five-minute window is taken once.

use std::path::Path;

use chime_onboard::onboard::AccountName;
use chime_onboard::wire::{sha256_hex, Request};

/// The longest SQS queue name.
const MAX_QUEUE_NAME: usize = 80;

/// The batch id of a file when `--batch-id` is not given: its file name.
pub fn batch_id_of(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// The `RequestId` of the `occurrence`-th (1-based) row named `name` in batch `batch_id`.
pub fn request_id(batch_id: &str, name: &AccountName, occurrence: u32) -> String {
    let name = name.as_str();
    let key = format!(
        "{}:{batch_id}{}:{name}{occurrence}",
        batch_id.len(),
        name.len()
    );
    format!("bulk-{}", &sha256_hex(key.as_bytes())[..32])
}

/// The request message body: `{"Name": ..., "RequestId": ...}` with the validated name.
pub fn message_body(name: &AccountName, request_id: &str) -> String {
    // Serialising two strings cannot fail; the fallback keeps this total anyway.
    serde_json::to_string(&Request {
        name: Some(name.as_str()),
        request_id: Some(request_id),
    })
    .unwrap_or_default()
}

/// Whether a queue URL names a FIFO queue.
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

/// A run id: the run's `CorrelationId` and the end of its reply queue's name. Unique per
/// run (batch, time, process); a resumed run keeps it.
pub fn run_id(batch_id: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{batch_id}\n{nanos}\n{}", std::process::id());
    format!("r{}", &sha256_hex(seed.as_bytes())[..16])
}

/// Why a reply queue name cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--reply-queue-prefix {prefix:?}: {reason} (it is the stack's BulkReplyQueuePrefix output, \
     a queue-name prefix the function's ALLOWED_REPLY_QUEUES admits)"
)]
pub struct BadPrefix {
    pub prefix: String,
    pub reason: &'static str,
}

/// The name of a run's reply queue: the allow-listed prefix and the run id.
pub fn reply_queue_name(prefix: &str, run_id: &str) -> Result<String, BadPrefix> {
    let bad = |reason| BadPrefix {
        prefix: prefix.to_owned(),
        reason,
    };
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad("a queue-name prefix is letters, digits, '-' and '_'"));
    }
    let name = format!("{prefix}{run_id}");
    if name.len() > MAX_QUEUE_NAME {
        return Err(bad(
            "too long: with the run id the name exceeds SQS's 80 characters",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> AccountName {
        AccountName::parse(text).unwrap()
    }

    #[test]
    fn request_ids_depend_on_batch_name_and_occurrence_only() {
        let id = request_id("names.csv", &name("Acme"), 1);
        assert_eq!(
            id,
            request_id("names.csv", &name("  Acme "), 1),
            "validated name"
        );
        assert_ne!(id, request_id("names.csv", &name("Acme"), 2));
        assert_ne!(id, request_id("other.csv", &name("Acme"), 1));
        assert_ne!(id, request_id("names.csv", &name("Acme2"), 1));
        // Length prefixes: moving a character between the parts changes the id.
        assert_ne!(
            request_id("a1", &name("b"), 1),
            request_id("a", &name("1b"), 1)
        );
        assert!(id.len() <= 128 && id.bytes().all(|c| c.is_ascii_graphic()));
        assert_eq!(batch_id_of(Path::new("/tmp/x/names.csv")), "names.csv");
    }

    #[test]
    fn the_body_is_what_the_function_parses() {
        let id = request_id("b", &name("Zürich \"Ops\""), 1);
        let body = message_body(&name("  Zürich \"Ops\"  "), &id);
        let parsed = chime_onboard::wire::RequestDocument::read(body.as_bytes()).unwrap();
        assert_eq!(parsed.name.as_str(), "Zürich \"Ops\"");
        assert_eq!(parsed.request_id.as_deref(), Some(id.as_str()));
    }

    #[test]
    fn run_ids_differ_between_runs_and_fit_a_queue_name() {
        let first = run_id("names.csv");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_ne!(first, run_id("names.csv"));
        let queue = reply_queue_name("stack-bulk-", &first).unwrap();
        assert!(queue.starts_with("stack-bulk-r") && queue.len() == 11 + 17);
        assert!(reply_queue_name("bad prefix", &first).is_err());
        assert!(reply_queue_name("", &first).is_err());
        assert!(reply_queue_name(&"x".repeat(70), &first).is_err());
        assert!(is_fifo("https://q/1/a.fifo") && !is_fifo("https://q/1/a"));
    }
}
