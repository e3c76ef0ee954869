//! One error taxonomy for every stage, in three classes an operator can act on:
//! - the request is wrong (`Permanent`, a refusal): recorded against the user,
//!   the requester told, final;
//! - a passing fault (`Retryable`, `InProgress`): the message goes back to
//!   its queue and is tried again;
//! - the deployment is wrong (`Deployment`): a missing permission, an SES
//!   identity not verified or an account in the sandbox, a disabled key, a
//!   group or table that does not exist. Never settled, never blamed on the
//!   requester: the message goes back until the queue parks it in its
//!   dead-letter queue, with an alarm and a log line naming the fix; a
//!   redrive after the fix finishes the work.

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

    /// The deployment cannot do this (see the module header): `fix` says
    /// what to change, for the log line the alarm points at.
    #[error("{operation} failed because of the deployment, not the request: {message} (fix: {fix})")]
    Deployment { operation: &'static str, message: String, fix: String },

    /// An entity the call names does not exist (IAM's NoSuchEntity), for
    /// the caller to decide what that means: a user not yet visible after
    /// its creation (IAM is eventually consistent), or an allow-listed group
    /// or policy missing from the account.
    #[error("{operation}: {message}")]
    Missing { operation: &'static str, message: String },

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
        matches!(self, Error::Retryable { .. } | Error::InProgress(_) | Error::Missing { .. })
    }

    /// The request is wrong: the user is refused, the requester told, and
    /// the message settled. Every other failure gives the message back.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Permanent { .. })
    }

    /// Of the failures of one run's users, the one the message is given
    /// back with: the deployment's first (its log line names the fix), else
    /// the first one kept.
    pub fn keep_worst(kept: Option<Error>, e: Error) -> Option<Error> {
        match kept {
            Some(k @ Error::Deployment { .. }) => Some(k),
            _ if matches!(e, Error::Deployment { .. }) => Some(e),
            k => k.or(Some(e)),
        }
    }

    pub fn deployment(operation: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::Deployment { operation, message: message.into(), fix: fix.into() }
    }

    pub fn retryable(operation: &'static str, message: impl Into<String>) -> Self {
        Error::Retryable { operation, message: message.into() }
    }

    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Error::Permanent { operation, message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
