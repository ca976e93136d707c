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
    /// What a message may name in its `ReplyTo` attribute: queue URLs, and queue-name
    /// prefixes (a URL whose name ends in `*`), matched parsed by `reply_to`.
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
    /// `CHIME_COMMIT_HORIZON_MS`: how long after an ambiguous create a commit may still appear.
    pub commit_horizon: Duration,
    /// The roots HTTPS trusts: the platform's when `SSL_CERT_FILE` or
    /// `SSL_CERT_DIR` is set, else the Amazon roots compiled in.
    pub roots: Roots,
    /// Who may call `POST /accounts` (`AUTH_*`).
    pub auth: AuthConfig,
    /// How the web form signs people in (`WEB_SIGNIN_*`); `None`: no sign-in.
    pub sign_in: Option<SignIn>,
    /// `WARM_UP`: open the upstream connections at init (`src/warm.rs`); for
    /// provisioned concurrency, where init runs ahead of the first request,
    /// and on by default with `AUTH_JWT_ISSUER`, where the first request
    /// waits for the issuer's keys anyway.
    pub warm_up: bool,
}

/// `AUTH_REQUIRED`, `AUTH_JWT_ISSUER`, `AUTH_JWT_AUDIENCE`, `AUTH_JWT_SCOPE`
/// (docs/DESIGN.md, "Who is calling").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// A `POST /accounts` without a principal is refused with `401`:
    /// `AUTH_REQUIRED`, which defaults to true when an issuer is set.
    pub required: bool,
    /// Bearer JWTs the function verifies itself, if set.
    pub jwt: Option<JwtIssuer>,
}

/// An issuer whose bearer tokens the function verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIssuer {
    /// The exact `iss`; its keys come from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` values (or `client_id`, for access tokens without `aud`).
    pub audiences: Vec<String>,
    /// Scopes a token must all carry in `scope` or `scp` (`AUTH_JWT_SCOPE`,
    /// space-separated); empty: none asked for.
    pub scopes: Vec<String>,
}

/// The OpenID Connect public client the page signs in with (authorization
/// code + PKCE). The function only passes these to the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// `WEB_SIGNIN_AUTHORIZE_URL`: the issuer's authorization endpoint.
    pub authorize_url: String,
    /// `WEB_SIGNIN_TOKEN_URL`: the issuer's token endpoint (the page posts to it).
    pub token_url: String,
    /// `WEB_SIGNIN_CLIENT_ID`: the public app client.
    pub client_id: String,
    /// `WEB_SIGNIN_SCOPES`: space-separated scopes to ask for (default `openid`).
    pub scopes: String,
    /// `WEB_SIGNIN_TOKEN`: which token the page sends as its bearer.
    pub bearer: BearerToken,
    /// `WEB_SIGNIN_LOGOUT_URL` (optional): where "Sign out" ends the session
    /// at the issuer (its `end_session_endpoint`, or Cognito's `/logout`).
    pub logout_url: Option<String>,
}

/// Which token of the token response the page sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerToken {
    /// `access` (the default): what API Gateway's JWT authorizer checks scopes on.
    Access,
    /// `id`: for issuers whose access tokens are opaque (the local mock provider).
    Id,
}

impl BearerToken {
    /// The member of the token response, as the page reads it.
    pub fn field(self) -> &'static str {
        match self {
            Self::Access => "access_token",
            Self::Id => "id_token",
        }
    }
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
            commit_horizon: Duration::from_millis(30_000),
            roots: Roots::Amazon,
            auth: AuthConfig::default(),
            sign_in: None,
            warm_up: false,
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
                .map(allowed_reply_queue)
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
        let commit_horizon = Duration::from_millis(number(
            &get,
            "CHIME_COMMIT_HORIZON_MS",
            defaults.commit_horizon.as_millis() as u64,
            0..=3_600_000,
        )?);

        let roots = Roots::from_vars(get);

        let auth = auth_config(&get)?;
        let sign_in = sign_in(&get)?;
        // With an issuer, the first request waits for its keys (fetched at
        // init, four round trips): the connections open meanwhile for free.
        let warm_up =
            flag(get("WARM_UP"), "WARM_UP")?.unwrap_or(defaults.warm_up || auth.jwt.is_some());

        Ok(Self {
            warm_up,
            auth,
            sign_in,
            roots,
            reply_queue_url,
            allowed_reply_queues,
            idempotency_table,
            idempotency_ttl,
            max_concurrency,
            max_receive_count,
            chime_timeout,
            commit_horizon,
        })
    }

    /// Whether a message may ask for its reply on `queue_url`.
    pub fn reply_queue_allowed(&self, queue_url: &str) -> bool {
        crate::reply_to::admits(&self.allowed_reply_queues, queue_url)
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

/// A true/false variable; `None` when unset.
fn flag(raw: Option<String>, variable: &'static str) -> Result<Option<bool>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(Some(true)),
        "false" | "0" | "no" => Ok(Some(false)),
        _ => Err(ConfigError {
            variable,
            value: raw,
            reason: "expected true or false".to_owned(),
        }),
    }
}

/// The `AUTH_*` variables. An issuer makes sign-in required unless
/// `AUTH_REQUIRED=false` says otherwise: verifying tokens while letting callers
/// without one through would be a lock on an open door.
fn auth_config(get: &impl Fn(&str) -> Option<String>) -> Result<AuthConfig, ConfigError> {
    let required = flag(get("AUTH_REQUIRED"), "AUTH_REQUIRED")?;
    let scopes: Vec<String> = get("AUTH_JWT_SCOPE")
        .map(|list| list.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let audiences: Vec<String> = get("AUTH_JWT_AUDIENCE")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let jwt = match get("AUTH_JWT_ISSUER") {
        None if !audiences.is_empty() => {
            return Err(ConfigError {
                variable: "AUTH_JWT_ISSUER",
                value: String::new(),
                reason: "AUTH_JWT_AUDIENCE is set, so the issuer is needed too".to_owned(),
            })
        }
        None if !scopes.is_empty() => {
            return Err(ConfigError {
                variable: "AUTH_JWT_ISSUER",
                value: String::new(),
                reason: "AUTH_JWT_SCOPE is set, so the issuer is needed too".to_owned(),
            })
        }
        None => None,
        Some(raw) => {
            let issuer = raw.trim().to_owned();
            fetchable_url("AUTH_JWT_ISSUER", &issuer)?;
            if audiences.is_empty() {
                return Err(ConfigError {
                    variable: "AUTH_JWT_AUDIENCE",
                    value: String::new(),
                    reason: "AUTH_JWT_ISSUER is set, so the accepted audiences \
                             (client ids, comma-separated) are needed too"
                        .to_owned(),
                });
            }
            Some(JwtIssuer {
                issuer,
                audiences,
                scopes,
            })
        }
    };
    Ok(AuthConfig {
        required: required.unwrap_or(jwt.is_some()),
        jwt,
    })
}

fn sign_in(get: &impl Fn(&str) -> Option<String>) -> Result<Option<SignIn>, ConfigError> {
    const NEEDED: [&str; 3] = [
        "WEB_SIGNIN_AUTHORIZE_URL",
        "WEB_SIGNIN_TOKEN_URL",
        "WEB_SIGNIN_CLIENT_ID",
    ];
    let values: Vec<Option<String>> = NEEDED
        .iter()
        .map(|v| get(v).map(|s| s.trim().to_owned()))
        .collect();
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut found = Vec::new();
    for (variable, value) in NEEDED.iter().zip(values) {
        let Some(value) = value else {
            return Err(ConfigError {
                variable,
                value: String::new(),
                reason: format!("the web sign-in needs all of {}", NEEDED.join(", ")),
            });
        };
        if *variable != "WEB_SIGNIN_CLIENT_ID" {
            fetchable_url(variable, &value)?;
        }
        found.push(value);
    }
    let bearer = match get("WEB_SIGNIN_TOKEN").map(|v| v.trim().to_ascii_lowercase()) {
        None => BearerToken::Access,
        Some(v) if v == "access" => BearerToken::Access,
        Some(v) if v == "id" => BearerToken::Id,
        Some(v) => {
            return Err(ConfigError {
                variable: "WEB_SIGNIN_TOKEN",
                value: v,
                reason: "expected access or id".to_owned(),
            })
        }
    };
    let [authorize_url, token_url, client_id]: [String; 3] =
        found.try_into().map_err(|_| ConfigError {
            variable: "WEB_SIGNIN_CLIENT_ID",
            value: String::new(),
            reason: "incomplete sign-in settings".to_owned(),
        })?;
    Ok(Some(SignIn {
        authorize_url,
        token_url,
        client_id,
        scopes: get("WEB_SIGNIN_SCOPES")
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "openid".to_owned()),
        bearer,
        logout_url: get("WEB_SIGNIN_LOGOUT_URL")
            .map(|v| v.trim().to_owned())
            .map(|v| fetchable_url("WEB_SIGNIN_LOGOUT_URL", &v).map(|_| v))
            .transpose()?,
    }))
}

/// An `https://` URL, or plain `http://` to a loopback host (`make dev`, tests).
pub fn fetchable_url(variable: &'static str, raw: &str) -> Result<url::Url, ConfigError> {
    let error = |reason: &str| ConfigError {
        variable,
        value: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(raw).map_err(|_| error("expected an absolute https:// URL"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(error(
            "plain http:// is allowed only for a loopback host (127.0.0.1, localhost, [::1]); use https://",
        )),
        _ => Err(error("expected an https:// URL")),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An `ALLOWED_REPLY_QUEUES` entry: a queue URL, or a queue-name prefix (`.../name-*`),
/// which must parse as `https://host/<account>/<prefix>*`.
fn allowed_reply_queue(entry: &str) -> Result<String, ConfigError> {
    if !entry.ends_with('*') {
        return queue_url("ALLOWED_REPLY_QUEUES", entry);
    }
    match crate::reply_to::AllowedQueue::parse(entry) {
        Ok(_) => Ok(entry.to_owned()),
        Err(e) => Err(ConfigError {
            variable: "ALLOWED_REPLY_QUEUES",
            value: entry.to_owned(),
            reason: e.to_string(),
        }),
    }
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
#[path = "config_tests.rs"]
mod tests;
