//! What every function's `main.rs` and SQS handler share.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::future::Future;

/// How the function logs, from Lambda's advanced logging controls (the
/// function's LoggingConfig in template.yaml): `AWS_LAMBDA_LOG_FORMAT` (`JSON`
/// or `Text`) and `AWS_LAMBDA_LOG_LEVEL` (`TRACE` ... `FATAL`), which win
/// over `RUST_LOG`; off Lambda, readable text at `RUST_LOG` or `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    /// An `EnvFilter` directive.
    pub filter: String,
}

impl LogSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let in_lambda = lookup("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let json = match lookup("AWS_LAMBDA_LOG_FORMAT").as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("JSON") => true,
            Some("TEXT") => false,
            _ => in_lambda,
        };
        let level = lookup("AWS_LAMBDA_LOG_LEVEL").map(|l| match l.to_ascii_uppercase().as_str() {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => "info",
        });
        let filter = level.map(str::to_owned).or_else(|| lookup("RUST_LOG")).unwrap_or_else(|| "info".into());
        Self { json, filter }
    }
}

pub fn init_tracing() {
    let settings = LogSettings::from_lookup(|k| std::env::var(k).ok());
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let installed = if settings.json {
        // Lambda adds its own timestamps; the message's span (its id, ticket
        // and user) comes with every line under "span".
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).without_time().try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
    // Already installed (tests, the local runner): keep the first one.
    drop(installed);
}

/// The span every log line of one SQS message is written in: the message
/// id from the start, the ticket and user as soon as the stage knows them
/// (`record_subject`).
pub fn message_span(stage: &'static str, message_id: &str) -> tracing::Span {
    tracing::info_span!("message", stage, message_id, ticket_id = tracing::field::Empty, user = tracing::field::Empty)
}

/// Notes which ticket and user the current message is about, in its span.
pub fn record_subject(ticket_id: &str, user: Option<&str>) {
    let span = tracing::Span::current();
    span.record("ticket_id", ticket_id);
    if let Some(user) = user {
        span.record("user", user);
    }
}

/// Seconds since the epoch at which the invocation will be cut off.
pub fn deadline_secs(ctx: &lambda_runtime::Context) -> u64 {
    ctx.deadline / 1000
}

/// Runs `process` over the batch, at most `concurrency` records at a time
/// (the function's `BATCH_CONCURRENCY`: IAM's request rate, not the CPU,
/// is what bounds it; see template.yaml).
///
/// `process` returns `Ok` once the record is settled — done, or refused and
/// recorded. An `Err` means it is not settled, so the record goes back to
/// the queue as a batch item failure whatever the kind: a retryable one is
/// tried again shortly; a permanent one (a role without a permission, a
/// missing table) fails each time until SQS moves it to the dead-letter
/// queue after maxReceiveCount, where it waits for the fix instead of being
/// lost.
pub async fn for_each_record<F, Fut>(
    event: SqsEvent,
    stage: &'static str,
    concurrency: usize,
    mut process: F,
) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), crate::Error>>,
{
    use tracing::Instrument;
    let runs = event.records.into_iter().map(|record| {
        let id = record.message_id.clone().unwrap_or_default();
        let span = message_span(stage, &id);
        let run = span.in_scope(|| process(record));
        async move { (id, run.await) }.instrument(span)
    });
    let mut response = SqsBatchResponse::default();
    for (id, result) in bounded(concurrency, runs).await {
        match result {
            Ok(()) => continue,
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "temporary failure; the record goes back to the queue")
            }
            Err(crate::Error::Deployment { operation, message, fix }) => {
                crate::metrics::count(crate::metrics::name::DEPLOYMENT_FAULTS, 1);
                tracing::error!(
                alarm = "deployment_fault",
                operation,
                error = %message,
                fix = %fix,
                "the deployment cannot do this; nothing was refused or settled: the record goes back to the queue and \
                 on to the dead-letter queue; redrive it after the fix"
                )
            }
            Err(e) => tracing::error!(
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

/// Runs the futures, at most `limit` at a time (at least one), and returns
/// their outputs in the order given. Futures are only created as a slot
/// frees up.
pub async fn bounded<I>(limit: usize, futures: I) -> Vec<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future,
{
    use futures_util::stream::{self, StreamExt};
    stream::iter(futures).buffered(limit.max(1)).collect().await
}

/// `for_each_record` over a stage's hand-offs, each body read as a `T`
/// (`handoff::read`: this version or the previous one).
///
/// A hand-off is only a pointer into the pipeline's own records: a body
/// that does not parse, or that `process` finds matching none of them
/// (`Error::Untrusted`), changes nothing and emails nobody. It is recorded
/// by message id in `log`, logged at ERROR with `alarm = "untrusted_message"`
/// (the template's metric filter turns that into an alarm), and settled, so
/// it is neither retried nor parked in the dead-letter queue. Only a failure
/// to record it sends it back.
pub async fn for_each_message<T, L, F, Fut>(
    event: SqsEvent,
    stage: &'static str,
    concurrency: usize,
    log: &L,
    now: u64,
    mut process: F,
) -> SqsBatchResponse
where
    T: crate::handoff::Message,
    L: crate::ports::UntrustedLog,
    F: FnMut(crate::handoff::Received<T>) -> Fut,
    Fut: Future<Output = Result<(), crate::Error>>,
{
    for_each_record(event, stage, concurrency, |record| {
        let body = record.body.clone().unwrap_or_default();
        let message_id = record.message_id.clone().unwrap_or_default();
        let run = crate::handoff::read::<T>(&body).map(&mut process);
        async move {
            let outcome = match run {
                Ok(run) => run.await,
                Err(e) => Err(e),
            };
            match outcome {
                Err(crate::Error::Untrusted(reason)) => untrusted(log, stage, &message_id, &reason, &body, now).await,
                other => other,
            }
        }
    })
    .await
}

/// Records and alarms one untrusted message (see `for_each_message`).
pub async fn untrusted<L: crate::ports::UntrustedLog>(
    log: &L,
    stage: &str,
    message_id: &str,
    reason: &str,
    body: &str,
    now: u64,
) -> Result<(), crate::Error> {
    let mut cut = body.len().min(crate::ports::UNTRUSTED_BODY_LIMIT);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    crate::metrics::count(crate::metrics::name::UNTRUSTED_MESSAGES, 1);
    tracing::error!(
        alarm = "untrusted_message",
        stage,
        message_id,
        %reason,
        "untrusted message dropped: it matches none of the pipeline's records; nothing was changed and nobody emailed"
    );
    let message = crate::ports::UntrustedMessage {
        stage: stage.to_owned(),
        message_id: message_id.to_owned(),
        reason: reason.to_owned(),
        body: body[..cut].to_owned(),
        received_at: now,
    };
    log.record_untrusted(&message).await
}

/// What Lambda reports for a failed direct invocation: the kind of failure
/// as the error type, so an async invoke's retries and on-failure
/// destination can tell retryable from permanent.
impl From<crate::Error> for lambda_runtime::Diagnostic {
    fn from(e: crate::Error) -> Self {
        let kind = match &e {
            crate::Error::Deployment { .. } => "Deployment",
            e if e.is_retryable() => "Retryable",
            _ => "Permanent",
        };
        lambda_runtime::Diagnostic { error_type: kind.into(), error_message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn bounded_runs_at_most_the_limit_at_once_and_keeps_the_order() {
        let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let out = bounded(
            3,
            (0..10u64).map(|i| {
                let (running, peak) = (&running, &peak);
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Later ones finish first: the order must still hold.
                    tokio::time::sleep(Duration::from_millis(20 - 2 * i)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            }),
        )
        .await;
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn only_unsettled_records_come_back_as_batch_item_failures() {
        let mut event = SqsEvent::default();
        for id in ["ok", "retry", "permanent", "ok2"] {
            let mut r = SqsMessage::default();
            r.message_id = Some(id.into());
            event.records.push(r);
        }
        let response = for_each_record(event, "test", 4, |r| async move {
            match r.message_id.as_deref() {
                Some("retry") => Err(crate::Error::retryable("Op", "throttled")),
                Some("permanent") => Err(crate::Error::permanent("Op", "no permission")),
                _ => Ok(()),
            }
        })
        .await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, ["retry", "permanent"]);
    }
}

#[cfg(test)]
mod log_settings_tests {
    use super::LogSettings;

    fn settings(vars: &[(&str, &str)]) -> LogSettings {
        LogSettings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn lambdas_logging_controls_win_over_rust_log() {
        let lambda = [("AWS_LAMBDA_FUNCTION_NAME", "f")];
        assert_eq!(settings(&lambda), LogSettings { json: true, filter: "info".into() });
        let text = [("AWS_LAMBDA_FUNCTION_NAME", "f"), ("AWS_LAMBDA_LOG_FORMAT", "Text"), ("RUST_LOG", "debug")];
        assert_eq!(settings(&text), LogSettings { json: false, filter: "debug".into() });
        let level = [("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "trace")];
        assert_eq!(settings(&level), LogSettings { json: true, filter: "warn".into() });
        assert_eq!(settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).filter, "error");
        assert_eq!(settings(&[]), LogSettings { json: false, filter: "info".into() });
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;

    /// Every line a stage logs for a message carries the message id, and
    /// once known the ticket and user, from the message's one span: the
    /// handler's own lines need not repeat them.
    #[test]
    fn every_line_of_a_message_carries_its_id_ticket_and_user() {
        let out = crate::memory::LogCapture::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut event = SqsEvent::default();
            for id in ["m1", "m2"] {
                let mut r = SqsMessage::default();
                r.message_id = Some(id.into());
                event.records.push(r);
            }
            runtime.block_on(for_each_record(event, "issue-credentials", 2, |r| async move {
                record_subject("ONB-1", Some(&format!("user-of-{}", r.message_id.unwrap_or_default())));
                tracing::info!("credentials issued");
                Ok(())
            }));
        });
        let text = out.text();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            let span = &line["span"];
            let id = span["message_id"].as_str().unwrap();
            assert_eq!(span["stage"], "issue-credentials");
            assert_eq!(span["ticket_id"], "ONB-1");
            assert_eq!(span["user"], format!("user-of-{id}"), "{line}");
        }
    }
}
