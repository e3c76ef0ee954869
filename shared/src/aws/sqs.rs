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
