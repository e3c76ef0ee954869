//! One error taxonomy for every stage: the only question a stage asks of a
//! failure is "will trying again help?", so every variant answers it.

use std::fmt;

/// A rule a ticket or user broke, phrased for the person who wrote the ticket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// `None` for ticket-wide rules; the user name otherwise.
    pub user: Option<String>,
    /// The field, as written in the ticket (`users[2].tags.team`).
    pub field: String,
    /// What is wrong and what would be accepted.
    pub rule: String,
}

impl Refusal {
    pub fn ticket(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self { user: None, field: field.into(), rule: rule.into() }
    }
    pub fn user(user: &str, field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self { user: Some(user.to_owned()), field: field.into(), rule: rule.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Throttling, 5xx, timeouts, connection failures: the same request may
    /// well succeed later, so the SQS record goes back to the queue.
    #[error("temporary failure in {operation}: {message}")]
    Retryable { operation: &'static str, message: String },

    /// Refused by AWS for a reason that will not change by itself (access
    /// denied, missing entity, a limit): recorded, not retried.
    #[error("{operation} refused: {message}")]
    Permanent { operation: &'static str, message: String },

    /// Another delivery holds the idempotency lease for this work; retrying
    /// after its lease ends is what lets a crashed holder be taken over.
    #[error("already in progress elsewhere: {0}")]
    InProgress(String),

    /// The same idempotency key was used earlier with a different payload.
    #[error("{0}")]
    PayloadMismatch(String),

    #[error("configuration: {0}")]
    Config(String),

    /// A stage message that matches none of the pipeline's own records: not
    /// a refusal (nobody is told, nothing is recorded against a user) and
    /// not retried; recorded as untrusted and alarmed.
    #[error("untrusted message: {0}")]
    Untrusted(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Retryable { .. } | Error::InProgress(_))
    }

    pub fn retryable(operation: &'static str, message: impl Into<String>) -> Self {
        Error::Retryable { operation, message: message.into() }
    }

    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Error::Permanent { operation, message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
