//! chime-local: a wire-faithful emulator of the Amazon Chime account API.
//!
//! Amazon Chime (the legacy app whose admin API holds `CreateAccount`) reached end of support
//! on 2026-02-20 and no public emulator has a Chime service. chime-local answers the five
//! account operations the way the service model (`chime/2018-05-01`, which the AWS SDKs are
//! generated from) says the service does, so `aws-sdk-chime` and boto3 cannot tell the
//! difference; it is an emulator of a retired API, not a copy of the service.
//!
//! # Operations
//! `POST /accounts` (and the legacy `POST /console/accounts`) CreateAccount → 201;
//! `GET /accounts/{accountId}` GetAccount; `GET /accounts?name=&user-email=&max-results=&next-token=`
//! ListAccounts; `POST` (or `PATCH`) `/accounts/{accountId}` UpdateAccount;
//! `DELETE /accounts/{accountId}` DeleteAccount → 204. Validation follows the model
//! ([`model`]); errors are [`ApiError`]s; every response has `x-amzn-RequestId`.
//!
//! # Authentication
//! Every account-API request needs a SigV4 `Authorization` header ([`sigv4`]); with
//! [`Config::credentials`] set the signature is verified.
//!
//! # Faults
//! [`Faults`] (also the JSON of `POST /_chime-local/faults`) injects throttling, 5xx,
//! latency, a token-bucket rate limit, connection resets and a `fail_next` list, from a seed —
//! before the operation (nothing changes) or, for the mutating operations, **after the
//! commit** (the change is kept, then the answer is a 500/503, a reset, or withheld), which is
//! what tests of exactly-once need.
//! `GET /_chime-local/stats` counts calls ([`Stats`]); `GET /_chime-local/accounts` dumps them.
//!
//! # Running
//! [`spawn`] serves on the current tokio runtime and returns a [`Handle`]; [`router`] returns
//! the `axum::Router` for `oneshot` tests; the `chime-local` binary wraps `spawn` with flags.

mod conn;
mod error;
mod faults;
pub mod model;
mod routes;
mod server;
pub mod sigv4;
mod state;

pub use conn::ConnCtl;
pub use error::{ApiError, ErrorKind, HEADER_ERROR_TYPE};
pub use faults::{FaultKind, Faults, RateLimit, DEFAULT_LATE_COMMIT_MS, DEFAULT_WITHHOLD_MS};
pub use model::{Account, SigninDelegateGroup};
pub use routes::{router, HEADER_REQUEST_ID};
pub use server::{spawn, Handle};
pub use sigv4::Credentials;
pub use state::{Config, Emulator, Stats};
