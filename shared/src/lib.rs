//! The common crate of iam-provisioner: the ticket and its rules, the error
//! taxonomy, configuration, the ports every stage talks to AWS through (with
//! their AWS and in-memory implementations), idempotency and Lambda glue.

pub mod access;
pub mod aws;
pub mod config;
pub mod date;
pub mod error;
pub mod handoff;
pub mod idempotency;
pub mod lambda;
pub mod lifecycle;
pub mod managed;
#[cfg(any(test, feature = "fakes"))]
pub mod memory;
pub mod metrics;
pub mod names;
pub mod password;
pub mod ports;
pub mod secret;
pub mod summary;
pub mod text;
pub mod ticket;

pub use error::{Error, Refusal, Result};
