//! onboard-bulk: takes a file of account names through the chime-onboard request queue
//! and back, with a progress bar, a report and resume (DESIGN.md, "Bulk onboarding").
//!
//! The binary (`src/main.rs`) only parses the command line and turns the outcome into an
//! exit code; the work lives in these modules:
//!
//! - [`input`] reads the file (a CSV with a name column, or one name per line; a
//!   CSV-shaped file without a name column is refused);
//! - [`plan`] checks every name with the library's rule, finds duplicate names and gives
//!   each row its `RequestId`; `--dry-run` prints it;
//! - [`request`] derives a row's `RequestId` (batch id, name, occurrence), builds the
//!   request message (`chime_onboard::wire::Request`), and names the run's reply queue;
//! - [`state`] is the run's state: every row and its status, saved atomically beside the
//!   report so that `resume` and `status` can pick it up;
//! - [`submit`] sends rows with `SendMessageBatch`, ten per call, bounded concurrency,
//!   retrying only the entries a partial failure names;
//! - [`collect`] reads replies (`chime_onboard::wire::Reply`) from the run's own reply
//!   queue: how a reply changes a row (duplicates count once, `Created` wins over an
//!   earlier `Failed`), and the long-poll loop;
//! - [`queue`] is the SQS port those two use, its `aws-sdk-sqs` implementation, and the
//!   run's reply queue (created with no redrive policy, so no reply is dead-lettered);
//! - [`report`] writes the report CSV and the summary (text or `--json`);
//! - [`progress`] draws a progress bar on a terminal and plain lines elsewhere;
//! - [`engine`] sends, collects and saves until the run is done, idle or interrupted;
//! - [`run`] ties them together for `submit`, `resume` (one at a time per state file)
//!   and `status`; [`cli`] is the command line.
//!
//! The name rule is the function's own [`chime_onboard::onboard::AccountName`], and the
//! HTTPS client is the function's [`chime_onboard::tls`] client (rustls on ring).

// Tests may unwrap: a panic there is a failed test with its message.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod collect;
pub mod engine;
pub mod input;
pub mod plan;
pub mod progress;
pub mod queue;
pub mod report;
pub mod request;
pub mod run;
pub mod state;
pub mod submit;
