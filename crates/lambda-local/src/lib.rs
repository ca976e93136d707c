//! Local stand-ins for what AWS Lambda wires around a function, for tests, `make dev`,
//! benchmarks and soak runs. Everything listens on 127.0.0.1 only.
//!
//! # The Runtime API
//! [`Environment`] is one execution environment: a loopback Runtime API
//! (`2018-06-01/runtime/invocation/next`, `.../response`, `.../error`, `init/error`) and
//! the bootstrap process using it, started with the variables Lambda sets ([`Function`]).
//! It reports each invocation as an [`Invoked`]: a response, an invocation error, a crash
//! (the process exited), a kill (fault injection) or a timeout (the process is killed, as
//! Lambda does; the caller starts a fresh environment). This is the repository's one
//! Runtime API emulator: the integration tests and `bench/harness` use it.
//!
//! # The SQS event source mapping (feature `esm`, on by default)
//! [`esm::run`] long-polls a queue and feeds batches to environments as Lambda's mapping
//! does with `ReportBatchItemFailures`; [`sqs_event`] holds the wire rules both ways. The
//! `esm-local` binary is its command line (`esm-local --help`).
//!
//! # moto_server for tests
//! [`moto::shared_url`] starts one moto_server (SQS, DynamoDB) per test binary on a
//! loopback port: the workspace's integration tests share it.

pub mod moto;
mod runtime;

pub use runtime::{Environment, Function, InitFailure, Invoked, Output, StartError};

#[cfg(feature = "esm")]
pub mod esm;
#[cfg(feature = "esm")]
pub mod sqs_event;
