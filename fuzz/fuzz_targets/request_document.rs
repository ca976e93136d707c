//! The request document (`{"Name": ..., "RequestId": ...}`, the same JSON on
//! both paths) on arbitrary bytes: it never panics, and an accepted document
//! is a JSON object whose `Name` is a string the name rule accepts.
#![no_main]

use chime_onboard::onboard::{AccountName, MAX_REQUEST_ID_CHARS};
use chime_onboard::wire::RequestDocument;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = RequestDocument::read(data) else {
        return;
    };
    let value: serde_json::Value =
        serde_json::from_slice(data).expect("an accepted document is JSON");
    let raw_name = value["Name"]
        .as_str()
        .expect("an accepted Name is a string");
    assert_eq!(AccountName::parse(raw_name).ok(), Some(request.name));
    if let Some(id) = request.request_id {
        assert!((1..=MAX_REQUEST_ID_CHARS).contains(&id.len()));
        assert!(id.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(value["RequestId"].as_str(), Some(id.as_str()));
    }
});
