//! Idempotency: a retried or repeated request never creates a second account,
//! even when Chime's answer to a create was lost (DESIGN.md, "Exactly once").
//!
//! As in Powertools, the flow is a small state machine in plain functions
//! ([`flow`]) above a store of a few primitives ([`IdempotencyStore`]).
//! Per key, a conditional INPROGRESS record comes before the create, with a
//! fence token (`holder`) that every later write of this attempt is
//! conditioned on, and COMPLETED with the account after it. Then:
//! - a create known to have created nothing (throttled, any 4xx, no
//!   connection) deletes the record, so a retry simply creates;
//! - an **ambiguous** create (5xx, reset, timeout: Chime may have committed)
//!   keeps the record, marked `verify` and no longer held; the next request for
//!   the key does not get `409` but verifies before creating: `ListAccounts` by
//!   name, every page, exact name, created at or after the first attempt's
//!   start (less [`CLOCK_SKEW`]), not claimed by another key; it claims one and
//!   adopts it, and creates only if none is found. The same verification runs
//!   once right after the ambiguous outcome, so a caller usually gets its
//!   account instead of an error;
//! - a holder that died (its hold, taken from the invocation deadline, has
//!   passed) is taken over the same way.
//!
//! Claims are items of their own (`claim#<AccountId>`, written conditionally),
//! so one account is never adopted by two keys. The one race left: another
//! key's verification can claim an account between its create and its claim.
//! The creator then loses that account and does what a verifier does: adopts an
//! unclaimed account of the name created since the earlier of the two keys'
//! starts (the other key's own stray, if its ambiguous create had committed),
//! else creates once more.
//!
//! Laid out along its seams: [`key`] renders every key, [`record`] holds the
//! record and claim types, [`store`] is the port, [`flow`] the steps above it,
//! [`dynamodb`] the table (partition key `id`, TTL attribute `expiration`).

pub mod dynamodb;
pub mod flow;
pub mod key;
pub mod record;
pub mod store;

#[cfg(test)]
mod tests;

pub use dynamodb::DynamoDbStore;
pub use flow::{create_once, Window, CLOCK_SKEW};
pub use key::IdempotencyKey;
pub use record::{fingerprint, Claim, Record, RecordStatus};
pub use store::{Completed, IdempotencyStore, Inserted, StoreError, Written};
