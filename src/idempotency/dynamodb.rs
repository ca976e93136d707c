//! The idempotency store in DynamoDB: partition key `id`, TTL attribute
//! `expiration` (DESIGN.md, "Configuration"). Records and claims share the
//! table; [`super::key`] keeps their ids apart.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::key::claim_id;
use super::record::{Claim, Record, RecordStatus};
use super::store::{Completed, IdempotencyStore, Inserted, StoreError, Written};

/// A claim is written if the account is unclaimed or claimed by the same owner.
const CLAIM_CONDITION: &str = "attribute_not_exists(id) OR #owner = :owner";
/// A record is written over only by the attempt that holds it.
const HOLDER_CONDITION: &str = "holder = :holder";

/// The idempotency table in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Reads a record (strongly consistent): for a store that does not return
    /// the item a failed insert met, for the old key form, and for tests.
    pub async fn read(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        output.item.as_ref().map(record).transpose()
    }
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn item(record: &Record) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item = HashMap::from([
        ("id".to_owned(), s(&record.key)),
        ("status".to_owned(), s(record.status.as_str())),
        ("fingerprint".to_owned(), s(&record.fingerprint)),
        ("expiration".to_owned(), n(record.expiration)),
        ("held_until".to_owned(), n(record.held_until)),
        ("holder".to_owned(), s(&record.holder)),
        ("since".to_owned(), n(record.since)),
        ("verify".to_owned(), AttributeValue::Bool(record.verify)),
        ("settles_at".to_owned(), n(record.settles_at)),
    ]);
    if let Some(account) = &record.account {
        let data =
            serde_json::to_string(account).map_err(|e| StoreError::Account(e.to_string()))?;
        item.insert("data".to_owned(), s(&data));
    }
    Ok(item)
}

fn claim_item(claim: &Claim) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("id".to_owned(), s(&claim_id(&claim.account_id))),
        ("owner".to_owned(), s(&claim.owner)),
        ("since".to_owned(), n(claim.since)),
        ("expiration".to_owned(), n(claim.expiration)),
    ])
}

fn text(item: &HashMap<String, AttributeValue>, name: &'static str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or(StoreError::Unreadable(name))
}

fn number(item: &HashMap<String, AttributeValue>, name: &'static str) -> Result<u64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(StoreError::Unreadable(name))
}

fn record(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let status = match text(item, "status")?.as_str() {
        "COMPLETED" => RecordStatus::Completed,
        _ => RecordStatus::InProgress,
    };
    let account = match item.get("data").and_then(|v| v.as_s().ok()) {
        Some(data) => {
            Some(serde_json::from_str(data).map_err(|e| StoreError::Account(e.to_string()))?)
        }
        None => None,
    };
    Ok(Record {
        key: text(item, "id")?,
        status,
        fingerprint: text(item, "fingerprint")?,
        expiration: number(item, "expiration")?,
        held_until: number(item, "held_until")?,
        holder: text(item, "holder")?,
        since: number(item, "since")?,
        verify: item
            .get("verify")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(true),
        // Written before the commit horizon existed: nothing pending.
        settles_at: number(item, "settles_at").unwrap_or(0),
        account,
    })
}

fn sdk_error<E: std::error::Error + 'static>(err: E) -> StoreError {
    StoreError::Call(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string())
}

/// A conditional write's answer: a failed condition is [`Written::Conflict`].
fn written<O, E, R>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
    conditional_failed: impl Fn(&E) -> bool,
) -> Result<Written, StoreError>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match result {
        Ok(_) => Ok(Written::Yes),
        Err(err) if err.as_service_error().is_some_and(&conditional_failed) => {
            Ok(Written::Conflict)
        }
        Err(err) => Err(sdk_error(err)),
    }
}

#[async_trait]
impl IdempotencyStore for DynamoDbStore {
    async fn insert(&self, new: &Record) -> Result<Inserted, StoreError> {
        // Twice at most: a record deleted between the failed write and the read is written again.
        for _ in 0..2 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item(new)?))
                .condition_expression("attribute_not_exists(id)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let returned = match result {
                Ok(_) => return Ok(Inserted::Yes),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().map(record).transpose()?
                    }
                    _ => return Err(sdk_error(err)),
                },
            };
            // A store that does not return the item (an emulator): read it.
            let stored = match returned {
                Some(stored) => Some(stored),
                None => self.read(&new.key).await?,
            };
            if let Some(stored) = stored {
                return Ok(Inserted::Exists(Box::new(stored)));
            }
        }
        Err(StoreError::Contended)
    }

    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        self.read(key).await
    }

    async fn put(&self, record: &Record, holder: &str) -> Result<Written, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(record)?))
            .condition_expression(HOLDER_CONDITION)
            .expression_attribute_values(":holder", s(holder));
        written(request.send().await, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn delete(&self, key: &str, holder: &str) -> Result<Written, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(key))
            .condition_expression(HOLDER_CONDITION)
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        written(result, |e| e.is_conditional_check_failed_exception())
    }

    async fn claim(&self, claim: &Claim) -> Result<Written, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(claim_item(claim)))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&claim.owner))
            .send()
            .await;
        written(result, |e| e.is_conditional_check_failed_exception())
    }

    async fn complete(
        &self,
        record: &Record,
        claim: &Claim,
        holder: &str,
    ) -> Result<Completed, StoreError> {
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Call(e.to_string());
        let claim_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim_item(claim)))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&claim.owner))
            .build()
            .map_err(built)?;
        let record_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(record)?))
            .condition_expression(HOLDER_CONDITION)
            .expression_attribute_values(":holder", s(holder))
            .build()
            .map_err(built)?;
        // Both conditions hold again after their own write, so an SDK retry of
        // a transaction that was applied succeeds rather than conflicts.
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(claim_put).build())
            .transact_items(TransactWriteItem::builder().put(record_put).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Completed::Yes),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            // One reason per item, in the request's order (claim, record).
            let failed = |i: usize| {
                cancelled
                    .cancellation_reasons()
                    .get(i)
                    .and_then(|r| r.code())
                    == Some("ConditionalCheckFailed")
            };
            if failed(0) {
                return Ok(Completed::ClaimTaken);
            }
            if failed(1) {
                return Ok(Completed::RecordTaken);
            }
        }
        // Throttled, a conflicting transaction in flight, unreachable.
        Err(sdk_error(err))
    }

    async fn get_claim(&self, account_id: &str) -> Result<Option<Claim>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(&claim_id(account_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        output
            .item
            .as_ref()
            .map(|item| {
                Ok(Claim {
                    account_id: account_id.to_owned(),
                    owner: text(item, "owner")?,
                    since: number(item, "since")?,
                    expiration: number(item, "expiration")?,
                })
            })
            .transpose()
    }
}
