//! A local SQS event source mapping: long-polls a queue, invokes the function under the
//! Runtime API emulator with the batch, and deletes what the function did not report
//! failed, as Lambda's mapping does with `ReportBatchItemFailures` (see [`crate::sqs_event`]
//! for the rules).
//!
//! What it leaves to SQS, as the real mapping does: a message that is not deleted becomes
//! visible again after the queue's visibility timeout (the mapping never changes it), its
//! `ApproximateReceiveCount` grows with each receive, and the queue's `RedrivePolicy`
//! moves it to the dead-letter queue on the receive after `maxReceiveCount` (moto_server
//! does this on `ReceiveMessage`, as SQS does).
//!
//! `concurrency` pollers run at once, each with its own execution environment; one that
//! crashed, was killed or timed out is replaced by a cold one on the next batch. For soak
//! tests, [`KillFaults`] SIGKILLs the function at a random moment of some invocations.

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use bytes::Bytes;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

use crate::runtime::{Environment, Function};
use crate::sqs_event::{judge, sqs_event, Verdict, WholeBatch};

/// The mapping's settings.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The source queue.
    pub queue_url: String,
    /// Messages per batch, 1..=10 (one `ReceiveMessage`).
    pub batch_size: i32,
    /// Pollers (and execution environments) at once.
    pub concurrency: usize,
    /// Long-poll wait per `ReceiveMessage`, 0..=20 seconds.
    pub wait_time_secs: i32,
    /// The function, its environment and timeout.
    pub function: Function,
    /// How long a cold start may take before the batch returns (Lambda: 10 s).
    pub init_timeout: Duration,
    /// Fault injection: kill the function mid-invocation.
    pub kill: Option<KillFaults>,
    /// Seeds the fault draws (poller `i` uses `seed + i`).
    pub seed: u64,
    /// Replace an environment (cold start) when the function's executable changed since
    /// it started, as `cargo lambda watch` does after a rebuild (`make dev`).
    pub restart_on_rebuild: bool,
    /// Append one JSON line per batch here: the poller, each message's id and
    /// `ApproximateReceiveCount`, and what became of the batch.
    pub trace: Option<std::path::PathBuf>,
}

/// SIGKILL the function during some invocations.
#[derive(Clone, Copy, Debug)]
pub struct KillFaults {
    /// Probability per invocation that a kill is scheduled.
    pub rate: f64,
    /// The kill comes after a delay uniform in `0..window` from the delivery; an
    /// invocation that finishes earlier is not killed.
    pub window: Duration,
}

/// The mapping could not run.
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// Settings out of range.
    #[error("{0}")]
    Invalid(String),
    /// The queue's attributes could not be read.
    #[error("could not read the attributes of {queue}: {message} (is the endpoint right and the queue created?)")]
    Queue {
        /// The queue URL.
        queue: String,
        /// What the SDK said.
        message: String,
    },
    /// The function could not be started at all.
    #[error(transparent)]
    Start(#[from] crate::runtime::StartError),
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Running totals, shared by the pollers.
        #[derive(Debug, Default)]
        pub struct Counters { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A copy of the [`Counters`] at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Snapshot { $($(#[$doc])* pub $name: u64,)* }

        impl Counters {
            /// The current totals.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl Snapshot {
            /// As a JSON object, for scripts.
            pub fn to_json(&self) -> serde_json::Value {
                serde_json::json!({ $(stringify!($name): self.$name,)* })
            }
        }
    };
}

counters! {
    /// Batches received (non-empty `ReceiveMessage` answers).
    batches,
    /// Messages received.
    messages,
    /// Invocations sent to an environment.
    invocations,
    /// Messages deleted after a successful invocation.
    deleted,
    /// Messages left for redelivery (reported failed, or their whole batch returned).
    returned,
    /// Environments started.
    cold_starts,
    /// Whole batches returned because init failed.
    init_errors,
    /// Whole batches returned on an invocation error.
    invocation_errors,
    /// Whole batches returned because the process exited on its own.
    crashes,
    /// Whole batches returned because fault injection killed the process.
    kills,
    /// Whole batches returned on a timeout.
    timeouts,
    /// Whole batches returned on an answer that is not a valid batch response.
    bad_responses,
    /// `DeleteMessageBatch` entries that failed (the message returns).
    delete_failures,
    /// `ReceiveMessage` calls that failed.
    receive_errors,
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batches={} messages={} deleted={} returned={} invocations={} cold_starts={} \
             kills={} crashes={} timeouts={} invocation_errors={} init_errors={} \
             bad_responses={} delete_failures={} receive_errors={}",
            self.batches,
            self.messages,
            self.deleted,
            self.returned,
            self.invocations,
            self.cold_starts,
            self.kills,
            self.crashes,
            self.timeouts,
            self.invocation_errors,
            self.init_errors,
            self.bad_responses,
            self.delete_failures,
            self.receive_errors
        )
    }
}

impl Mapping {
    fn validate(&self) -> Result<(), EsmError> {
        let invalid = |m: &str| Err(EsmError::Invalid(m.into()));
        if !(1..=10).contains(&self.batch_size) {
            return invalid("batch size must be 1..=10 (one ReceiveMessage)");
        }
        if self.concurrency == 0 || self.concurrency > 1000 {
            return invalid("concurrency must be 1..=1000");
        }
        if !(0..=20).contains(&self.wait_time_secs) {
            return invalid("the long-poll wait must be 0..=20 seconds");
        }
        if self.function.timeout.is_zero() {
            return invalid("the function timeout must be positive");
        }
        if let Some(kill) = self.kill {
            if !(0.0..=1.0).contains(&kill.rate) {
                return invalid("the kill rate is a probability, 0..=1");
            }
            if kill.window.is_zero() {
                return invalid("the kill window must be positive");
            }
        }
        Ok(())
    }
}

/// Runs the mapping until `stop` turns true; in-flight invocations finish first.
pub async fn run(
    sqs: aws_sdk_sqs::Client,
    mapping: Mapping,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> Result<(), EsmError> {
    mapping.validate()?;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&mapping.queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| EsmError::Queue {
            queue: mapping.queue_url.clone(),
            message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        })?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| EsmError::Queue {
            queue: mapping.queue_url.clone(),
            message: "no QueueArn in the answer".into(),
        })?;
    let region = arn.split(':').nth(3).unwrap_or("us-east-1").to_owned();
    let shared = Arc::new(Shared {
        sqs,
        mapping,
        arn,
        region,
        counters,
    });
    let pollers: Vec<_> = (0..shared.mapping.concurrency)
        .map(|i| tokio::spawn(poll(Arc::clone(&shared), i as u64, stop.clone())))
        .collect();
    let mut result = Ok(());
    for poller in pollers {
        match poller.await {
            Ok(Err(e)) if result.is_ok() => result = Err(e),
            _ => {}
        }
    }
    result
}

struct Shared {
    sqs: aws_sdk_sqs::Client,
    mapping: Mapping,
    arn: String,
    region: String,
    counters: Arc<Counters>,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

async fn poll(
    shared: Arc<Shared>,
    index: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), EsmError> {
    let mapping = &shared.mapping;
    let counters = &shared.counters;
    let mut rng = fastrand::Rng::with_seed(mapping.seed.wrapping_add(index));
    let mut environment: Option<Started> = None;
    while !*stop.borrow() {
        let receive = shared
            .sqs
            .receive_message()
            .queue_url(&mapping.queue_url)
            .max_number_of_messages(mapping.batch_size)
            .wait_time_seconds(mapping.wait_time_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let received = tokio::select! {
            received = receive => received,
            _ = stop.changed() => break,
        };
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(e) => {
                add(&counters.receive_errors, 1);
                let error = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
                eprintln!(
                    "esm-local: ReceiveMessage failed: {}",
                    truncate(&error, 200)
                );
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        add(&counters.batches, 1);
        add(&counters.messages, messages.len());
        let ids: Vec<&str> = messages.iter().filter_map(|m| m.message_id()).collect();

        let verdict = match ready_environment(&mut environment, mapping, counters).await? {
            None => Verdict::ReturnAll(WholeBatch::InitError),
            Some(env) => {
                let event = sqs_event(&messages, &shared.arn, &shared.region);
                let body = match serde_json::to_vec(&event) {
                    Ok(body) => Bytes::from(body),
                    Err(e) => {
                        return Err(EsmError::Invalid(format!("event not serialisable: {e}")))
                    }
                };
                let kill_after = mapping
                    .kill
                    .filter(|k| rng.f64() < k.rate)
                    .map(|k| k.window.mul_f64(rng.f64()));
                add(&counters.invocations, 1);
                let invoked = env.invoke_killing_after(body, kill_after).await;
                if !invoked.environment_survives() {
                    environment = None;
                }
                if let crate::runtime::Invoked::Error { body, .. } = &invoked {
                    eprintln!(
                        "esm-local: invocation error: {}",
                        truncate(&String::from_utf8_lossy(body), 300)
                    );
                }
                judge(&invoked, ids.iter().copied())
            }
        };
        if let Some(path) = &mapping.trace {
            trace(path, index, &messages, &verdict);
        }
        match verdict {
            Verdict::Keep(keep) => {
                let delete: Vec<_> = messages
                    .iter()
                    .filter(|m| m.message_id().is_some_and(|id| !keep.contains(id)))
                    .filter_map(|m| m.receipt_handle())
                    .collect();
                add(&counters.returned, messages.len() - delete.len());
                delete_batch(&shared, &delete).await;
            }
            Verdict::ReturnAll(reason) => {
                add(&counters.returned, messages.len());
                let counter = match &reason {
                    WholeBatch::InitError => &counters.init_errors,
                    WholeBatch::InvocationError => &counters.invocation_errors,
                    WholeBatch::Crashed => &counters.crashes,
                    WholeBatch::Killed => &counters.kills,
                    WholeBatch::TimedOut => &counters.timeouts,
                    WholeBatch::BadResponse(_) => &counters.bad_responses,
                };
                add(counter, 1);
                let detail = match &reason {
                    WholeBatch::BadResponse(why) => format!(" ({why})"),
                    _ => String::new(),
                };
                eprintln!(
                    "esm-local: batch of {} returned to the queue: {}{detail}",
                    messages.len(),
                    reason.label()
                );
            }
        }
    }
    if let Some(mut started) = environment {
        started.env.kill().await;
    }
    Ok(())
}

/// An environment and the modification time of the executable it started from.
struct Started {
    env: Environment,
    built: Option<SystemTime>,
}

fn built_at(function: &Function) -> Option<SystemTime> {
    std::fs::metadata(&function.program)
        .and_then(|m| m.modified())
        .ok()
}

/// The poller's environment, started cold if there is none; `None` when init failed.
async fn ready_environment<'a>(
    environment: &'a mut Option<Started>,
    mapping: &Mapping,
    counters: &Counters,
) -> Result<Option<&'a mut Environment>, EsmError> {
    let built = built_at(&mapping.function);
    if let Some(started) = environment.as_mut() {
        let stale = mapping.restart_on_rebuild && started.built != built;
        if started.env.is_alive() && !stale {
            return Ok(environment.as_mut().map(|s| &mut s.env));
        }
        if stale {
            eprintln!("esm-local: the function was rebuilt; starting a fresh environment");
        }
        started.env.kill().await;
    }
    add(&counters.cold_starts, 1);
    let mut env = Environment::start(&mapping.function).await?;
    match env.wait_init(mapping.init_timeout).await {
        Ok(_) => {
            *environment = Some(Started { env, built });
            Ok(environment.as_mut().map(|s| &mut s.env))
        }
        Err(failure) => {
            eprintln!("esm-local: {failure}");
            *environment = None;
            Ok(None)
        }
    }
}

async fn delete_batch(shared: &Shared, receipt_handles: &[&str]) {
    if receipt_handles.is_empty() {
        return;
    }
    let entries: Vec<_> = receipt_handles
        .iter()
        .enumerate()
        .filter_map(|(i, handle)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(*handle)
                .build()
                .ok()
        })
        .collect();
    let counters = &shared.counters;
    match shared
        .sqs
        .delete_message_batch()
        .queue_url(&shared.mapping.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(output) => {
            for failed in output.failed() {
                eprintln!(
                    "esm-local: DeleteMessageBatch entry failed (the message returns): {} {}",
                    failed.code(),
                    failed.message().unwrap_or_default()
                );
            }
            add(&counters.deleted, output.successful().len());
            add(&counters.delete_failures, output.failed().len());
            add(&counters.returned, output.failed().len());
        }
        Err(e) => {
            add(&counters.delete_failures, receipt_handles.len());
            add(&counters.returned, receipt_handles.len());
            eprintln!(
                "esm-local: DeleteMessageBatch failed (the messages return): {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            );
        }
    }
}

/// One line of the batch trace (best effort: a write failure is reported, not fatal).
fn trace(
    path: &std::path::Path,
    poller: u64,
    messages: &[aws_sdk_sqs::types::Message],
    verdict: &Verdict,
) {
    use std::io::Write as _;
    let received: Vec<_> = messages
        .iter()
        .map(|m| {
            let count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
            serde_json::json!([m.message_id(), count])
        })
        .collect();
    let outcome = match verdict {
        Verdict::Keep(keep) => serde_json::json!({"kept": keep}),
        Verdict::ReturnAll(reason) => serde_json::json!({"returned": reason.label()}),
    };
    let at = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let line = serde_json::json!({"at_ms": at, "poller": poller, "messages": received, "outcome": outcome});
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("esm-local: cannot write the trace {}: {e}", path.display());
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
