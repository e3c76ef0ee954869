//! What every function's `main.rs` and SQS handler share.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::future::Future;

/// JSON lines in Lambda (CloudWatch Logs Insights reads them field by
/// field); readable text on a terminal. `RUST_LOG` filters either way.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let installed = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        // Lambda adds its own timestamps to every line.
        builder.json().flatten_event(true).without_time().try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
    // Already installed (tests, the local runner): keep the first one.
    drop(installed);
}

/// Seconds since the epoch at which the invocation will be cut off.
pub fn deadline_secs(ctx: &lambda_runtime::Context) -> u64 {
    ctx.deadline / 1000
}

/// Runs `process` over the batch, one record after another (IAM's rate
/// limits make in-batch parallelism a later, measured decision).
///
/// `process` returns `Ok` once the record is settled — done, or refused and
/// recorded. An `Err` means it is not settled, so the record goes back to
/// the queue as a batch item failure whatever the kind: a retryable one is
/// tried again shortly; a permanent one (a role without a permission, a
/// missing table) fails each time until SQS moves it to the dead-letter
/// queue after maxReceiveCount, where it waits for the fix instead of being
/// lost.
pub async fn for_each_record<F, Fut>(event: SqsEvent, mut process: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), crate::Error>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        match process(record).await {
            Ok(()) => continue,
            Err(e) if e.is_retryable() => {
                tracing::warn!(message_id = %id, error = %e, "temporary failure; the record goes back to the queue")
            }
            Err(e) => tracing::error!(
                message_id = %id,
                error = %e,
                "failure no retry will fix and that could not be recorded; the record goes back to the queue and on to the dead-letter queue"
            ),
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// `for_each_record` over a stage's hand-offs: each body parsed as `T` (a
/// body that is not one goes back, and on to the dead-letter queue).
pub async fn for_each_message<T, F, Fut>(event: SqsEvent, stage: &'static str, mut process: F) -> SqsBatchResponse
where
    T: serde::de::DeserializeOwned,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<(), crate::Error>>,
{
    for_each_record(event, |record| {
        let parsed = serde_json::from_str::<T>(record.body.as_deref().unwrap_or_default())
            .map_err(|e| crate::Error::permanent(stage, format!("not a hand-off this stage takes: {e}")));
        let run = parsed.map(&mut process);
        async move { run?.await }
    })
    .await
}

/// What Lambda reports for a failed direct invocation: the kind of failure
/// as the error type, so an async invoke's retries and on-failure
/// destination can tell retryable from permanent.
impl From<crate::Error> for lambda_runtime::Diagnostic {
    fn from(e: crate::Error) -> Self {
        let kind = if e.is_retryable() { "Retryable" } else { "Permanent" };
        lambda_runtime::Diagnostic { error_type: kind.into(), error_message: e.to_string() }
    }
}
