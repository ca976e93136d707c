//! Integration tests: the real handler, talking HTTP to chime-local through
//! aws-sdk-chime and to moto_server (SQS, DynamoDB) through the AWS SDK.
//! One binary, as in ripgrep, so the SDK stack links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Harness: chime-local per test, one moto_server per binary, fixtures.
mod support;

// The HTTP contract, row by row, in all four event shapes.
mod http;
// The SQS contract: batches, replies, retries, FIFO, ReplyTo.
mod sqs;
// Idempotency over DynamoDB: no second account, on either path.
mod idempotency;
// Ambiguous failures (chime-local's after-commit faults): exactly one account.
mod exactly_once;
// The built binary under a loopback Runtime API, configured only by environment.
mod binary;
// Who is calling: bearer JWTs verified against a loopback issuer's JWKS.
mod auth;
// The opt-in cold-start warm-up: bare requests, never an operation.
mod warm;
// The hostile-input corpus: hundreds of malformed payloads, each with its answer.
mod hostile;
