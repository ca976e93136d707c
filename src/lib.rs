//! chime-onboard: one AWS Lambda function that onboards Amazon Chime accounts.
//!
//! It takes an HTTP request (API Gateway REST v1, HTTP API v2, ALB, Function
//! URL) or an SQS batch of onboarding messages, validates the account name,
//! calls Chime `CreateAccount` and answers with the account: in the HTTP
//! response, or as a reply message on an SQS queue. The contracts are in
//! DESIGN.md; this crate is laid out along them:
//!
//! - [`event`] classifies a payload; [`app`] holds the state built once at
//!   init and the invocation handler that dispatches to the adapters;
//! - [`http`] and [`sqs`] are the adapters: they own the wire formats; the SQS
//!   request and reply documents are [`wire`]'s, shared with onboard-bulk;
//! - [`onboard`] is the domain (the name rule, the create flow, error kinds)
//!   and knows nothing of HTTP or SQS;
//! - [`chime`], [`reply`] and [`idempotency`] are the ports: small traits with
//!   their AWS SDK implementations;
//! - [`auth`] says who is calling (authorizer claims, IAM caller, or a bearer
//!   JWT it verifies itself); [`web`] is the self-service page and its HTML answers;
//! - [`config`] reads and validates the environment ([`reply_to`]: which
//!   queues a `ReplyTo` may name); [`tls`] builds the one
//!   HTTPS client the SDK clients share; [`metrics`] writes CloudWatch
//!   embedded-metric-format lines per invocation; [`warm`] pays the first
//!   request's one-time costs while the runtime fetches the first event.

pub mod app;
pub mod auth;
pub mod chime;
pub mod config;
pub mod deadline;
pub mod event;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod onboard;
pub mod onboarding;
pub mod reply;
pub mod reply_to;
pub mod sqs;
pub mod tls;
pub mod warm;
pub mod web;
pub mod wire;

#[cfg(test)]
mod fakes;

pub use app::{handle, App};
pub use config::Config;
