//! A fake DynamoDB on loopback for the deployed case: `GetItem`, `PutItem`,
//! `UpdateItem`, `DeleteItem` and `TransactWriteItems` over DynamoDB's JSON 1.0
//! protocol, with the condition expressions, `ReturnValues` and
//! `ReturnValuesOnConditionCheckFailure` an idempotency store sends
//! (expressions: `expr.rs`).
//!
//! Why not moto_server: moto spends milliseconds of Python per call, which the
//! deployed case would count as the function's; this answers in microseconds.
//! Every table has the one partition key the template declares (`id`). Every
//! call is logged (operation, when) so the harness can name round trips.
use crate::expr::{self, Bindings, Item};
use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The partition key of every table (template.yaml's idempotency table).
const KEY: &str = "id";
const TARGET_PREFIX: &str = "DynamoDB_20120810.";
const ERROR_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

#[derive(Default)]
struct State {
    /// (table, key as JSON) → item.
    items: HashMap<(String, String), Item>,
    calls: Vec<(Instant, String)>,
}

/// The fake's address and what it holds.
pub struct FakeDynamo {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FakeDynamo {
    pub async fn start() -> Result<FakeDynamo> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| serve(Arc::clone(&state), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeDynamo { addr, state, task })
    }

    /// The operations called since `from`, in order.
    pub fn calls_since(&self, from: Instant) -> Vec<(Instant, String)> {
        self.state
            .lock()
            .map(|s| {
                s.calls
                    .iter()
                    .filter(|(t, _)| *t >= from)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many items hold each value of the string attribute `attr`.
    pub fn count_by(&self, attr: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        if let Ok(s) = self.state.lock() {
            for item in s.items.values() {
                let v = item
                    .get(attr)
                    .and_then(|v| v.get("S"))
                    .and_then(Value::as_str)
                    .unwrap_or("(none)");
                *out.entry(v.to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// A DynamoDB error answer.
struct Failure {
    kind: &'static str,
    message: String,
    extra: Map<String, Value>,
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        kind: "ValidationException",
        message: message.into(),
        extra: Map::new(),
    }
}

async fn serve(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or("")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let answer = match serde_json::from_slice::<Map<String, Value>>(&body) {
        Err(e) => Err(Failure {
            kind: "SerializationException",
            message: e.to_string(),
            extra: Map::new(),
        }),
        Ok(input) => match state.lock() {
            Ok(mut s) => {
                s.calls.push((Instant::now(), op.clone()));
                call(&mut s.items, &op, &input)
            }
            Err(_) => Err(invalid("fake DynamoDB state poisoned")),
        },
    };
    let (status, body) = match answer {
        Ok(v) => (StatusCode::OK, Value::Object(v)),
        Err(f) => {
            let mut v = f.extra;
            v.insert("__type".into(), json!(format!("{ERROR_PREFIX}{}", f.kind)));
            v.insert("message".into(), json!(f.message));
            (StatusCode::BAD_REQUEST, Value::Object(v))
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_static("bench-fake-dynamodb"),
    );
    Ok(response)
}

type Items = HashMap<(String, String), Item>;

fn call(
    items: &mut Items,
    op: &str,
    input: &Map<String, Value>,
) -> Result<Map<String, Value>, Failure> {
    match op {
        "GetItem" => {
            let key = key_of(input, "Key")?;
            Ok(match items.get(&key) {
                Some(item) => object([("Item", Value::Object(item.clone()))]),
                None => Map::new(),
            })
        }
        "PutItem" | "UpdateItem" | "DeleteItem" => {
            let write = Write::parse(op, input)?;
            let old = items.get(&write.key).cloned();
            write.check(old.as_ref())?;
            let (new, touched) = write.apply(old.as_ref())?;
            store(items, &write.key, new.clone());
            write.returned(old, new, &touched)
        }
        "TransactWriteItems" => transact(items, input),
        "" => Err(invalid("no X-Amz-Target")),
        other => Err(Failure {
            kind: "UnknownOperationException",
            message: format!("the bench's fake DynamoDB does not implement {other}"),
            extra: Map::new(),
        }),
    }
}

fn store(items: &mut Items, key: &(String, String), new: Option<Item>) {
    match new {
        Some(item) => {
            items.insert(key.clone(), item);
        }
        None => {
            items.remove(key);
        }
    }
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn text<'a>(input: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    input.get(field).and_then(Value::as_str)
}

fn key_of(input: &Map<String, Value>, field: &str) -> Result<(String, String), Failure> {
    let table = text(input, "TableName").ok_or_else(|| invalid("TableName is required"))?;
    let item = input
        .get(field)
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("{field} is required")))?;
    let key = item
        .get(KEY)
        .ok_or_else(|| invalid(format!("{field} lacks the key attribute {KEY}")))?;
    Ok((table.to_string(), key.to_string()))
}

/// One write: a Put, an Update or a Delete, alone or in a transaction.
struct Write<'a> {
    op: &'a str,
    input: &'a Map<String, Value>,
    key: (String, String),
}

impl<'a> Write<'a> {
    fn parse(op: &'a str, input: &'a Map<String, Value>) -> Result<Self, Failure> {
        let key = key_of(input, if op == "PutItem" { "Item" } else { "Key" })?;
        Ok(Write { op, input, key })
    }

    fn bindings(&self) -> Bindings<'a> {
        Bindings {
            names: self
                .input
                .get("ExpressionAttributeNames")
                .and_then(Value::as_object),
            values: self
                .input
                .get("ExpressionAttributeValues")
                .and_then(Value::as_object),
        }
    }

    /// The condition, if any; a failure carries the old item when asked for.
    fn check(&self, old: Option<&Item>) -> Result<(), Failure> {
        let Some(condition) = text(self.input, "ConditionExpression") else {
            return Ok(());
        };
        if expr::condition(condition, old, &self.bindings()).map_err(invalid)? {
            return Ok(());
        }
        let mut extra = Map::new();
        if let (Some("ALL_OLD"), Some(old)) =
            (text(self.input, "ReturnValuesOnConditionCheckFailure"), old)
        {
            extra.insert("Item".into(), Value::Object(old.clone()));
        }
        Err(Failure {
            kind: "ConditionalCheckFailedException",
            message: "The conditional request failed".into(),
            extra,
        })
    }

    /// The item after the write (`None`: deleted) and the attributes updated.
    fn apply(&self, old: Option<&Item>) -> Result<(Option<Item>, Vec<String>), Failure> {
        match self.op {
            "PutItem" | "Put" => {
                let item = self
                    .input
                    .get("Item")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                Ok((Some(item), Vec::new()))
            }
            "DeleteItem" | "Delete" => Ok((None, Vec::new())),
            "ConditionCheck" => Ok((old.cloned(), Vec::new())),
            _ => {
                let mut item = old.cloned().unwrap_or_else(|| {
                    self.input
                        .get("Key")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default()
                });
                let touched = match text(self.input, "UpdateExpression") {
                    Some(u) => expr::update(u, &mut item, &self.bindings()).map_err(invalid)?,
                    None => Vec::new(),
                };
                Ok((Some(item), touched))
            }
        }
    }

    /// The answer's body, as `ReturnValues` asks.
    fn returned(
        &self,
        old: Option<Item>,
        new: Option<Item>,
        touched: &[String],
    ) -> Result<Map<String, Value>, Failure> {
        let only = |item: Option<Item>| -> Option<Item> {
            item.map(|i| i.into_iter().filter(|(k, _)| touched.contains(k)).collect())
        };
        let attributes = match text(self.input, "ReturnValues").unwrap_or("NONE") {
            "NONE" => None,
            "ALL_OLD" => old,
            "ALL_NEW" if self.op == "UpdateItem" => new,
            "UPDATED_OLD" if self.op == "UpdateItem" => only(old),
            "UPDATED_NEW" if self.op == "UpdateItem" => only(new),
            other => return Err(invalid(format!("ReturnValues {other} on {}", self.op))),
        };
        Ok(match attributes {
            Some(a) if !a.is_empty() => object([("Attributes", Value::Object(a))]),
            _ => Map::new(),
        })
    }
}

/// All or nothing: every condition is checked before anything is written.
fn transact(items: &mut Items, input: &Map<String, Value>) -> Result<Map<String, Value>, Failure> {
    let entries = input
        .get("TransactItems")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("TransactItems is required"))?;
    let mut writes = Vec::new();
    for entry in entries {
        let (op, body) = entry
            .as_object()
            .and_then(|o| o.iter().next())
            .and_then(|(k, v)| Some((k.as_str(), v.as_object()?)))
            .ok_or_else(|| invalid("a TransactItems entry is not an object"))?;
        if !["Put", "Update", "Delete", "ConditionCheck"].contains(&op) {
            return Err(invalid(format!("TransactItems: {op} is not a write")));
        }
        let key = key_of(body, if op == "Put" { "Item" } else { "Key" })?;
        if writes.iter().any(|w: &Write| w.key == key) {
            return Err(invalid(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
        writes.push(Write {
            op,
            input: body,
            key,
        });
    }
    let mut reasons = Vec::new();
    let mut failed = false;
    for w in &writes {
        match w.check(items.get(&w.key)) {
            Ok(()) => reasons.push(json!({ "Code": "None" })),
            Err(f) if f.kind == "ConditionalCheckFailedException" => {
                failed = true;
                let mut reason = f.extra;
                reason.insert("Code".into(), json!("ConditionalCheckFailed"));
                reason.insert("Message".into(), json!(f.message));
                reasons.push(Value::Object(reason));
            }
            Err(f) => return Err(f),
        }
    }
    if failed {
        let codes: Vec<&str> = reasons
            .iter()
            .map(|r| r.get("Code").and_then(Value::as_str).unwrap_or("None"))
            .collect();
        return Err(Failure {
            kind: "TransactionCanceledException",
            message: format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            ),
            extra: object([("CancellationReasons", Value::Array(reasons))]),
        });
    }
    let mut applied = Vec::new();
    for w in &writes {
        let (new, _) = w.apply(items.get(&w.key))?;
        applied.push((w.key.clone(), new));
    }
    for (key, new) in applied {
        store(items, &key, new);
    }
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn put(holder: &str, condition: &str) -> Map<String, Value> {
        input(json!({
            "TableName": "t",
            "Item": {"id": {"S": "k"}, "holder": {"S": holder}},
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {":holder": {"S": "h1"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
        }))
    }

    #[test]
    fn an_insert_then_a_fenced_put_and_delete() {
        let mut items = Items::new();
        let insert = input(json!({
            "TableName": "t",
            "Item": {"id": {"S": "k"}, "holder": {"S": "h1"}},
            "ConditionExpression": "attribute_not_exists(id)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
        }));
        assert!(call(&mut items, "PutItem", &insert).is_ok());
        // The second insert fails and returns the stored item.
        let again = call(&mut items, "PutItem", &insert).err();
        assert_eq!(
            again.as_ref().map(|f| f.kind),
            Some("ConditionalCheckFailedException")
        );
        assert_eq!(
            again.and_then(|f| f.extra.get("Item").cloned()),
            Some(json!({"id": {"S": "k"}, "holder": {"S": "h1"}}))
        );
        // Only the holder writes over it.
        assert!(call(&mut items, "PutItem", &put("h2", "holder = :holder")).is_ok());
        assert!(call(&mut items, "PutItem", &put("h3", "holder = :holder")).is_err());
        let get = input(json!({"TableName": "t", "Key": {"id": {"S": "k"}}}));
        let got = call(&mut items, "GetItem", &get).ok();
        assert_eq!(
            got.and_then(|g| g.get("Item").cloned()),
            Some(json!({"id": {"S": "k"}, "holder": {"S": "h2"}}))
        );
        let delete = input(json!({
            "TableName": "t", "Key": {"id": {"S": "k"}},
            "ConditionExpression": "holder = :holder",
            "ExpressionAttributeValues": {":holder": {"S": "h2"}},
            "ReturnValues": "ALL_OLD"
        }));
        let deleted = call(&mut items, "DeleteItem", &delete).ok();
        assert!(deleted.is_some_and(|d| d.contains_key("Attributes")));
        assert!(items.is_empty());
    }

    #[test]
    fn an_update_creates_or_changes_and_a_transaction_is_all_or_nothing() {
        let mut items = Items::new();
        let update = input(json!({
            "TableName": "t", "Key": {"id": {"S": "k"}},
            "UpdateExpression": "SET #s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "COMPLETED"}},
            "ReturnValues": "ALL_NEW"
        }));
        let updated = call(&mut items, "UpdateItem", &update).ok();
        assert_eq!(
            updated.and_then(|u| u.get("Attributes").cloned()),
            Some(json!({"id": {"S": "k"}, "status": {"S": "COMPLETED"}}))
        );
        let transaction = |claim_condition: &str| {
            input(json!({"TransactItems": [
                {"Put": {"TableName": "t", "Item": {"id": {"S": "claim#1"}},
                         "ConditionExpression": claim_condition}},
                {"Update": {"TableName": "t", "Key": {"id": {"S": "k"}},
                            "UpdateExpression": "REMOVE #s",
                            "ExpressionAttributeNames": {"#s": "status"}}}
            ]}))
        };
        let refused = call(
            &mut items,
            "TransactWriteItems",
            &transaction("attribute_exists(id)"),
        );
        assert_eq!(
            refused.err().map(|f| f.kind),
            Some("TransactionCanceledException")
        );
        assert_eq!(items.len(), 1, "nothing written");
        assert!(call(
            &mut items,
            "TransactWriteItems",
            &transaction("attribute_not_exists(id)")
        )
        .is_ok());
        assert_eq!(items.len(), 2);
        assert!(call(&mut items, "Scan", &Map::new()).is_err());
    }
}
