//! The idempotency store port: the few primitives the flow needs, every write
//! conditional (as Powertools' persistence layer: logic above, storage below).
//! `dynamodb.rs` implements it; `fakes.rs` keeps it in memory for unit tests.

use async_trait::async_trait;

use super::record::{Claim, Record};

/// The store failed or answered something unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The call failed: the table could not be reached, refused it, or timed out.
    #[error("the idempotency table call failed: {0}")]
    Call(String),
    /// A stored item lacks an attribute a record or claim needs, or holds another type.
    #[error("idempotency item attribute {0} is missing or unreadable")]
    Unreadable(&'static str),
    /// The account a record keeps is not the JSON the function writes.
    #[error("the stored account is unreadable: {0}")]
    Account(String),
    /// A new key's record was deleted and written again while being inserted, twice.
    #[error("the idempotency record changed twice while being written")]
    Contended,
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition failed: somebody else holds, completed or claimed it.
    Conflict,
}

/// Outcome of writing a new record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// A record exists for the key: the one stored.
    Exists(Box<Record>),
}

/// Outcome of completing a record together with the claim on its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// Both written.
    Yes,
    /// Another key holds the claim on the account: nothing was written.
    ClaimTaken,
    /// The claim was free, but the record is no longer the holder's (its
    /// hold passed and another attempt took the key over): nothing was written.
    RecordTaken,
}

/// The primitives the flow needs; every write is conditional.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Writes `record` if no record exists for its key, else answers the
    /// stored one: the common path (a new key) takes one round trip, not a
    /// read and a write.
    async fn insert(&self, record: &Record) -> Result<Inserted, StoreError>;
    /// Reads a record (strongly consistent).
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;
    /// Writes `record` over the stored one if `holder` wrote that.
    async fn put(&self, record: &Record, holder: &str) -> Result<Written, StoreError>;
    /// Deletes the record if `holder` still holds it.
    async fn delete(&self, key: &str, holder: &str) -> Result<Written, StoreError>;
    /// Writes the claim if the account is unclaimed or already claimed by the same owner.
    async fn claim(&self, claim: &Claim) -> Result<Written, StoreError>;
    /// Writes the claim and the record (COMPLETED) as one all-or-nothing
    /// write, each on its own condition (those of [`Self::claim`] and
    /// [`Self::put`]): the common ending of a create in one round trip, not two.
    async fn complete(
        &self,
        record: &Record,
        claim: &Claim,
        holder: &str,
    ) -> Result<Completed, StoreError>;
    /// Reads the claim of an account (strongly consistent).
    async fn get_claim(&self, account_id: &str) -> Result<Option<Claim>, StoreError>;
}
