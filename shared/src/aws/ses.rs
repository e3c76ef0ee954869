use super::classify;
use crate::error::{Error, Result};
use crate::ports::{Email, Mailer};
use aws_sdk_ses::types::{Body, Content, Destination, Message};
use aws_sdk_ses::Client;

#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
}

impl SesMailer {
    pub fn new(config: &super::SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }
}

fn content(data: &str) -> Result<Content> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| Error::permanent("SendEmail", e.to_string()))
}

impl Mailer for SesMailer {
    async fn send(&self, from: &str, email: &Email) -> Result<String> {
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build())
            .build();
        self.client
            .send_email()
            .source(from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .message(message)
            .send()
            .await
            .map(|out| out.message_id().to_owned())
            .map_err(|e| classify("SendEmail", e))
    }
}
