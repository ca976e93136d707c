//! What a row becomes on the request queue: its deterministic `RequestId` and the
//! request message of the SQS contract (DESIGN.md, "SQS contract").
//!
//! The `RequestId` is derived from the file's content and the row's line, so sending the
//! same row of the same file again (a `resume`, a second run of the file) is the same
//! request to the function, and its idempotency table answers it without a second
//! account. It is `bulk-` and 32 hex digits: inside the contract's 1..=128 printable ASCII.

use chime_onboard::onboard::AccountName;
use chime_onboard::wire::{sha256_hex, Request};

/// The `RequestId` of row `row` of a file whose SHA-256 (hex) is `file_sha256`.
pub fn request_id(file_sha256: &str, row: u64) -> String {
    let digest = sha256_hex(format!("{file_sha256}\n{row}").as_bytes());
    format!("bulk-{}", &digest[..32])
}

/// A run id, used as the `CorrelationId` of every message of the run: unique per run
/// (time and process), with the file's digest in front for people reading a queue.
pub fn run_id(file_sha256: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "run-{}-{nanos:x}-{}",
        file_sha256.get(..8).unwrap_or(file_sha256),
        std::process::id()
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use chime_onboard::onboard::OnboardRequest;

    #[test]
    fn request_ids_depend_on_content_and_row_and_fit_the_contract() {
        let a = "01".repeat(32);
        let b = "02".repeat(32);
        assert_eq!(request_id(&a, 2), request_id(&a, 2));
        assert_ne!(request_id(&a, 2), request_id(&a, 3));
        assert_ne!(request_id(&a, 2), request_id(&b, 2));
        let id = request_id(&a, 2);
        assert!(id.len() <= 128 && id.bytes().all(|c| c.is_ascii_graphic()));
    }

    #[test]
    fn the_body_is_what_the_function_parses() {
        let name = AccountName::parse("  Zürich \"Ops\"  ").unwrap();
        let id = request_id(&"07".repeat(32), 9);
        let body = message_body(&name, &id);
        // The function's own parser reads it back: same name, same id, valid RequestId.
        let parsed = OnboardRequest::from_json(body.as_bytes()).unwrap();
        assert_eq!(parsed.name.as_str(), "Zürich \"Ops\"");
        assert_eq!(parsed.request_id.as_deref(), Some(id.as_str()));
    }

    #[test]
    fn run_ids_differ_between_runs_of_one_file() {
        let sha = "03".repeat(32);
        let first = run_id(&sha);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_ne!(first, run_id(&sha));
        assert!(first.starts_with("run-03030303-"));
    }
}
