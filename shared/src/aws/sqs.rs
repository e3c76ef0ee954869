use super::classify;
use crate::error::{Error, Result};
use crate::ports::EventPublisher;
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
}
