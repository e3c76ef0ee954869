use super::classify;
use crate::error::{Error, Result};
use crate::ports::EventPublisher;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

/// Hands users to the next stage's queue.
#[derive(Debug, Clone)]
pub struct SqsPublisher {
    client: Client,
    queue_url: String,
}

impl SqsPublisher {
    pub fn new(config: &super::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self { client: Client::new(config), queue_url: queue_url.into() }
    }
}

impl EventPublisher for SqsPublisher {
    async fn publish<E: serde::Serialize + Sync>(&self, event: &E) -> Result<()> {
        let body = serde_json::to_string(event).map_err(|e| Error::permanent("SendMessage", e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("SendMessage", e))
    }

    /// SendMessageBatch, ten at a time (SQS's limit). A batch call can
    /// succeed with some entries refused: those make the whole an error,
    /// permanent if SQS blames the message, retryable otherwise.
    async fn publish_all<E: serde::Serialize + Sync>(&self, events: &[E]) -> Result<()> {
        for chunk in events.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, event) in chunk.iter().enumerate() {
                let body =
                    serde_json::to_string(event).map_err(|e| Error::permanent("SendMessageBatch", e.to_string()))?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| Error::permanent("SendMessageBatch", e.to_string()))?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("SendMessageBatch", e))?;
            if let Some(first) = out.failed().first() {
                let message = format!(
                    "{} of {} messages not accepted: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    first.code(),
                    first.message().unwrap_or_default()
                );
                return Err(if first.sender_fault() {
                    Error::permanent("SendMessageBatch", message)
                } else {
                    Error::retryable("SendMessageBatch", message)
                });
            }
        }
        Ok(())
    }
}

/// The pipeline's queues by URL, for the operator CLI (redrive, replay).
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: Client,
}

/// How long a message received for a redrive stays hidden: long enough to
/// send it on and delete it; if either fails it reappears in its queue.
const OPERATOR_VISIBILITY_SECS: i32 = 60;

impl SqsQueues {
    pub fn new(config: &super::SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }
}

/// A URL that names no queue is the operator's mistake, said plainly.
fn queue_error<E>(
    operation: &'static str,
    queue_url: &str,
    err: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match super::code(&err) {
        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist") => {
            Error::permanent(operation, format!("there is no queue {queue_url}"))
        }
        _ => classify(operation, err),
    }
}

impl crate::ports::Queues for SqsQueues {
    async fn receive(&self, queue_url: &str, max: usize) -> Result<Vec<crate::ports::QueuedMessage>> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(OPERATOR_VISIBILITY_SECS)
            // A short long poll: a zero wait samples only some SQS hosts
            // and may answer "empty" while messages wait.
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| queue_error("ReceiveMessage", queue_url, e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| crate::ports::QueuedMessage {
                body: m.body.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
            })
            .collect())
    }

    async fn send(&self, queue_url: &str, body: &str) -> Result<()> {
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map(drop)
            .map_err(|e| queue_error("SendMessage", queue_url, e))
    }

    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(drop)
            .map_err(|e| queue_error("DeleteMessage", queue_url, e))
    }

    async fn depth(&self, queue_url: &str) -> Result<usize> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| queue_error("GetQueueAttributes", queue_url, e))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let n = |k: &A| attrs.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        Ok(n(&A::ApproximateNumberOfMessages) + n(&A::ApproximateNumberOfMessagesNotVisible))
    }
}
