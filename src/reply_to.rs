//! The `ReplyTo` allow-list (`ALLOWED_REPLY_QUEUES`, DESIGN.md "Configuration"):
//! which queues a request may name for its reply.
//!
//! An entry is a queue URL (`https://sqs.us-east-1.amazonaws.com/123456789012/replies`)
//! or a queue-name prefix: the same URL with a name that ends in `*`
//! (`https://sqs.us-east-1.amazonaws.com/123456789012/chime-onboard-bulk-*`), which admits
//! every queue of that account and endpoint whose name starts with the prefix (what
//! onboard-bulk's per-run reply queues need). Both sides are parsed, never compared as
//! strings: scheme, host and port must be equal, the path must be exactly
//! `/<account>/<queue-name>` with the same account, and the name must be a valid SQS
//! queue name; a candidate with user info, a query, a fragment, an extra path segment or
//! an escaped character is refused. So `.../123/bulk-x/../other`, `.../123/bulk-x?a`,
//! `https://sqs.us-east-1.amazonaws.com.evil.example/...` or another account's
//! `bulk-x` never pass a `bulk-*` entry.
//!
//! This module knows nothing of SQS messages; `config.rs` checks entries at init and
//! `sqs.rs` asks [`admits`] per message.

/// The longest SQS queue name.
const MAX_QUEUE_NAME: usize = 80;

/// A queue URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueueUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
    account: String,
    name: String,
}

/// Why an entry or a candidate is not a queue URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAQueueUrl {
    #[error("expected an SQS queue URL: http(s)://host/<account>/<queue-name>")]
    Shape,
    #[error("a queue URL has no user info, query or fragment")]
    Extras,
    #[error("a queue name is 1 to 80 letters, digits, '-' or '_' (and '.fifo' at the end)")]
    Name,
    #[error("a prefix entry needs at least one character before '*'")]
    EmptyPrefix,
}

impl QueueUrl {
    /// Takes a URL apart; `name` is returned raw (it may end in `*` for an entry).
    fn parse(raw: &str) -> Result<Self, NotAQueueUrl> {
        // What the URL parser would quietly remove or rewrite (white space, `\`, dot
        // segments) is refused, so the URL checked is the URL the reply goes to.
        if raw
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
            || raw.contains("/.")
        {
            return Err(NotAQueueUrl::Shape);
        }
        let url = url::Url::parse(raw).map_err(|_| NotAQueueUrl::Shape)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NotAQueueUrl::Shape);
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(NotAQueueUrl::Extras);
        }
        let host = url
            .host_str()
            .ok_or(NotAQueueUrl::Shape)?
            .to_ascii_lowercase();
        let segments: Vec<&str> = url
            .path_segments()
            .map(Iterator::collect)
            .unwrap_or_default();
        let [account, name] = segments.as_slice() else {
            return Err(NotAQueueUrl::Shape);
        };
        if account.is_empty() || !account.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(NotAQueueUrl::Shape);
        }
        Ok(Self {
            scheme: url.scheme().to_owned(),
            host,
            port: url.port_or_known_default(),
            account: (*account).to_owned(),
            name: (*name).to_owned(),
        })
    }

    fn same_queue_space(&self, other: &Self) -> bool {
        self.scheme == other.scheme
            && self.host == other.host
            && self.port == other.port
            && self.account == other.account
    }
}

/// Whether `name` is a valid SQS queue name.
fn queue_name(name: &str) -> bool {
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    name.len() <= MAX_QUEUE_NAME && name_chars(stem) && !stem.is_empty()
}

fn name_chars(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedQueue {
    queue: QueueUrl,
    /// The name is a prefix (the entry ended in `*`).
    prefix: bool,
}

impl AllowedQueue {
    /// Parses an entry: a queue URL, or one whose queue name ends in `*`.
    pub fn parse(entry: &str) -> Result<Self, NotAQueueUrl> {
        let mut queue = QueueUrl::parse(entry)?;
        let prefix = match queue.name.strip_suffix('*') {
            Some("") => return Err(NotAQueueUrl::EmptyPrefix),
            Some(stem) if name_chars(stem) && stem.len() < MAX_QUEUE_NAME => {
                queue.name = stem.to_owned();
                true
            }
            Some(_) => return Err(NotAQueueUrl::Name),
            None if queue_name(&queue.name) => false,
            None => return Err(NotAQueueUrl::Name),
        };
        Ok(Self { queue, prefix })
    }

    /// Whether a reply may go to `candidate`.
    pub fn admits(&self, candidate: &str) -> bool {
        let Ok(candidate) = QueueUrl::parse(candidate) else {
            return false;
        };
        if !queue_name(&candidate.name) || !self.queue.same_queue_space(&candidate) {
            return false;
        }
        if self.prefix {
            candidate.name.len() > self.queue.name.len()
                && candidate.name.starts_with(&self.queue.name)
        } else {
            candidate.name == self.queue.name
        }
    }
}

/// Whether any of `entries` admits `candidate`: an entry equal to it, or one that admits
/// it parsed (an entry that does not parse admits only itself; `Config::from_lookup`
/// refuses such entries at init, tests may build them).
pub fn admits(entries: &[String], candidate: &str) -> bool {
    entries.iter().any(|entry| {
        entry == candidate || AllowedQueue::parse(entry).is_ok_and(|entry| entry.admits(candidate))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012";

    fn entry(text: &str) -> AllowedQueue {
        AllowedQueue::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn an_exact_entry_admits_its_queue_only() {
        let replies = entry(&format!("{BASE}/replies"));
        assert!(replies.admits(&format!("{BASE}/replies")));
        assert!(replies.admits("HTTPS://SQS.us-east-1.amazonaws.com:443/123456789012/replies"));
        assert!(!replies.admits(&format!("{BASE}/replies2")));
        assert!(!replies.admits(&format!("{BASE}/replies/")));
        assert!(!replies.admits("https://sqs.us-east-1.amazonaws.com/999999999999/replies"));
        assert!(!replies.admits(&format!("{BASE}/x/../replies")));
    }

    #[test]
    fn a_prefix_entry_admits_longer_names_of_the_same_account_and_endpoint() {
        let bulk = entry(&format!("{BASE}/stack-bulk-*"));
        assert!(bulk.admits(&format!("{BASE}/stack-bulk-r1a2b3")));
        assert!(bulk.admits(&format!("{BASE}/stack-bulk-r1.fifo")));
        let refused = [
            format!("{BASE}/stack-bulk-"),
            format!("{BASE}/stack-bulk"),
            format!("{BASE}/other-bulk-x"),
            "https://sqs.us-east-1.amazonaws.com/999999999999/stack-bulk-x".to_owned(),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/stack-bulk-x".to_owned(),
            "http://sqs.us-east-1.amazonaws.com/123456789012/stack-bulk-x".to_owned(),
            "https://sqs.us-east-1.amazonaws.com.evil.example/123456789012/stack-bulk-x".to_owned(),
            "https://sqs.us-east-1.amazonaws.com:8443/123456789012/stack-bulk-x".to_owned(),
            format!("{BASE}/stack-bulk-x/extra"),
            format!("{BASE}/stack-bulk-x/../replies"),
            format!("{BASE}/stack-bulk-x/.."),
            format!("{BASE}/stack-bulk-x\\"),
            format!("{BASE}/stack-bulk-x\n"),
            format!(" {BASE}/stack-bulk-x"),
            format!("{BASE}/stack-bulk-x?QueueUrl=other"),
            format!("{BASE}/stack-bulk-x#frag"),
            format!("{BASE}/stack-bulk-%2Fx"),
            format!("{BASE}/stack-bulk-{}", "x".repeat(80)),
            "https://user@sqs.us-east-1.amazonaws.com/123456789012/stack-bulk-x".to_owned(),
            "stack-bulk-x".to_owned(),
        ];
        for candidate in refused {
            assert!(!bulk.admits(&candidate), "{candidate}");
        }
    }

    #[test]
    fn bad_entries_say_why() {
        let err = |text: &str| AllowedQueue::parse(text).err();
        assert_eq!(err(&format!("{BASE}/*")), Some(NotAQueueUrl::EmptyPrefix));
        assert_eq!(err(&format!("{BASE}/a*b")), Some(NotAQueueUrl::Name));
        assert_eq!(err(&format!("{BASE}/bulk-*-x*")), Some(NotAQueueUrl::Name));
        assert_eq!(err("replies"), Some(NotAQueueUrl::Shape));
        assert_eq!(
            err("https://sqs.example/replies"),
            Some(NotAQueueUrl::Shape)
        );
        assert_eq!(err(&format!("{BASE}/q?x=1")), Some(NotAQueueUrl::Extras));
        assert_eq!(err("ftp://sqs.example/1/q"), Some(NotAQueueUrl::Shape));
        // moto and chime-local style loopback URLs are queue URLs too.
        assert!(admits(
            &["http://127.0.0.1:5000/123456789012/bulk-*".to_owned()],
            "http://127.0.0.1:5000/123456789012/bulk-r1"
        ));
        assert!(!admits(
            &["not a url".to_owned()],
            "http://127.0.0.1:5000/123456789012/bulk-r1"
        ));
    }
}
