//! The function's settings: read from the environment once, at init, and
//! validated there, so a bad value fails the cold start with a message that
//! names the variable instead of failing every invocation later.
//!
//! Contract: DESIGN.md, "Configuration". Endpoint variables
//! (`AWS_ENDPOINT_URL_CHIME`, `_SQS`, `_DYNAMODB`) are read by the SDK itself.

use std::time::Duration;

use crate::tls::Roots;

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Default reply queue for SQS requests.
    pub reply_queue_url: Option<String>,
    /// Queue URLs a message may name in its `ReplyTo` attribute.
    pub allowed_reply_queues: Vec<String>,
    /// DynamoDB table for idempotency records; `None` means at-least-once.
    pub idempotency_table: Option<String>,
    /// How long a completed request is remembered.
    pub idempotency_ttl: Duration,
    /// Messages of one batch processed at once (standard queues).
    pub max_concurrency: usize,
    /// The request queue's redrive `maxReceiveCount`.
    pub max_receive_count: u32,
    /// Per-operation timeout for Chime calls, retries included.
    pub chime_timeout: Duration,
    /// The roots HTTPS trusts: the platform's when `SSL_CERT_FILE` or
    /// `SSL_CERT_DIR` is set, else the Amazon roots compiled in.
    pub roots: Roots,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            reply_queue_url: None,
            allowed_reply_queues: Vec::new(),
            idempotency_table: None,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            max_concurrency: 10,
            max_receive_count: 5,
            chime_timeout: Duration::from_millis(5000),
            roots: Roots::Amazon,
        }
    }
}

/// A variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Self::default();

        let reply_queue_url = get("REPLY_QUEUE_URL")
            .map(|v| queue_url("REPLY_QUEUE_URL", v.trim()))
            .transpose()?;
        let allowed_reply_queues = match get("ALLOWED_REPLY_QUEUES") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|url| queue_url("ALLOWED_REPLY_QUEUES", url))
                .collect::<Result<_, _>>()?,
            None => reply_queue_url.iter().cloned().collect(),
        };
        let idempotency_table = get("IDEMPOTENCY_TABLE").map(|t| t.trim().to_owned());
        let idempotency_ttl = Duration::from_secs(number(
            &get,
            "IDEMPOTENCY_TTL_SECONDS",
            defaults.idempotency_ttl.as_secs(),
            60..=30 * 24 * 3600,
        )?);
        let max_concurrency = number(
            &get,
            "MAX_CONCURRENCY",
            defaults.max_concurrency as u64,
            1..=1000,
        )? as usize;
        let max_receive_count = number(
            &get,
            "MAX_RECEIVE_COUNT",
            u64::from(defaults.max_receive_count),
            1..=1000,
        )? as u32;
        let chime_timeout = Duration::from_millis(number(
            &get,
            "CHIME_TIMEOUT_MS",
            defaults.chime_timeout.as_millis() as u64,
            100..=900_000,
        )?);

        let roots = if get("SSL_CERT_FILE").is_some() || get("SSL_CERT_DIR").is_some() {
            Roots::Platform
        } else {
            Roots::Amazon
        };

        Ok(Self {
            roots,
            reply_queue_url,
            allowed_reply_queues,
            idempotency_table,
            idempotency_ttl,
            max_concurrency,
            max_receive_count,
            chime_timeout,
        })
    }

    /// Whether a message may ask for its reply on `queue_url`.
    pub fn reply_queue_allowed(&self, queue_url: &str) -> bool {
        self.allowed_reply_queues.iter().any(|q| q == queue_url)
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    let error = |reason: String| ConfigError {
        variable,
        value: raw.clone(),
        reason,
    };
    let value: u64 = raw
        .trim()
        .parse()
        .map_err(|_| error("expected a whole number".to_owned()))?;
    if !range.contains(&value) {
        return Err(error(format!(
            "must be between {} and {}",
            range.start(),
            range.end()
        )));
    }
    Ok(value)
}

fn queue_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.to_owned())
    } else {
        Err(ConfigError {
            variable,
            value: url.to_owned(),
            reason: "expected an SQS queue URL (https://...)".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_design() {
        assert_eq!(from(&[]), Ok(Config::default()));
    }

    #[test]
    fn allowed_reply_queues_default_to_the_reply_queue() {
        let url = "https://sqs.us-east-1.amazonaws.com/1/replies";
        let config = from(&[("REPLY_QUEUE_URL", url)]).unwrap_or_default();
        assert_eq!(config.allowed_reply_queues, vec![url.to_owned()]);
        assert!(config.reply_queue_allowed(url));
        assert!(!config.reply_queue_allowed("https://elsewhere"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = from(&[("MAX_CONCURRENCY", "0")]).err();
        assert_eq!(err.as_ref().map(|e| e.variable), Some("MAX_CONCURRENCY"));
        let err = from(&[("CHIME_TIMEOUT_MS", "soon")]).err();
        assert!(err
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("CHIME_TIMEOUT_MS=\"soon\": expected a whole number"));
        let err = from(&[("REPLY_QUEUE_URL", "replies")]).err();
        assert_eq!(err.map(|e| e.variable), Some("REPLY_QUEUE_URL"));
    }
}
