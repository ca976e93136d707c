//! What the idempotency table holds: one [`Record`] per key and one [`Claim`]
//! per adopted or created account, and how a record changes between the
//! flow's steps.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::onboard::{Account, AccountName};

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    InProgress,
    Completed,
}

impl RecordStatus {
    /// The stored `status` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "INPROGRESS",
            Self::Completed => "COMPLETED",
        }
    }
}

/// One idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The rendered key ([`super::IdempotencyKey::render`]): the table's `id`.
    pub key: String,
    pub status: RecordStatus,
    /// SHA-256 (hex) of the validated name: a reuse of the key must match it.
    pub fingerprint: String,
    /// When the record may be forgotten (seconds since the epoch; the table's TTL).
    pub expiration: u64,
    /// Until when the holder owns the key (milliseconds since the epoch); 0 once
    /// released. Past it, a holder that never released is presumed dead.
    pub held_until: u64,
    /// The fence token of the attempt that wrote the record: its later writes
    /// are conditioned on it, so a holder that lost the key cannot overwrite.
    pub holder: String,
    /// When the first attempt that may have created the account started
    /// (milliseconds since the epoch): where verification looks from.
    pub since: u64,
    /// An earlier attempt may have created the account: verify before creating.
    pub verify: bool,
    /// Until when a commit of the last ambiguous create may still appear
    /// (milliseconds since the epoch; 0: none pending): the commit horizon.
    /// Until then the key stays held and nothing is created or verified.
    pub settles_at: u64,
    /// The account, once COMPLETED (the only place the name is stored).
    pub account: Option<Account>,
}

impl Record {
    /// The record as this attempt leaves it once the account is known.
    pub fn completed(&self, account: &Account) -> Self {
        Self {
            status: RecordStatus::Completed,
            held_until: 0,
            account: Some(account.clone()),
            ..self.clone()
        }
    }

    /// The record as this attempt leaves it when it lets go of the key but
    /// keeps its `verify` mark for the next one; `settles_at` is the commit
    /// horizon of an ambiguous create this attempt could not resolve (0: none).
    pub fn released(&self, settles_at: u64) -> Self {
        Self {
            held_until: 0,
            settles_at,
            ..self.clone()
        }
    }

    /// The claim this record's key makes on `account`. It lives twice as long
    /// as the record from `since`: a claim must outlive every record whose
    /// verification could otherwise adopt its account (a record's expiration
    /// moves on with each take-over, within the time a message can come back).
    pub fn claim_on(&self, account: &Account) -> Claim {
        let lifetime = self.expiration.saturating_sub(self.since / 1000);
        Claim {
            account_id: account.account_id.clone(),
            owner: self.key.clone(),
            since: self.since,
            expiration: self.expiration.saturating_add(lifetime),
        }
    }
}

/// An account taken by one key (`owner`), so no other key adopts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub account_id: String,
    pub owner: String,
    /// The owner's [`Record::since`] when it claimed.
    pub since: u64,
    pub expiration: u64,
}

/// Milliseconds since the epoch (0 before it).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// SHA-256 of the validated name, hex: the record never stores the name itself.
pub fn fingerprint(name: &AccountName) -> String {
    crate::wire::sha256_hex(name.as_str().as_bytes())
}

/// A fresh fence token: 128 random bits, hex.
pub fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No entropy source: fall back to the clock, still unique enough per holder.
        bytes = u128::from(millis(SystemTime::now())).to_be_bytes();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes[..4].copy_from_slice(&nanos.to_be_bytes());
    }
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
