//! The ports over the AWS SDK. Everything here is built from one
//! `aws_config` load, so `AWS_ENDPOINT_URL` (the local emulator) reaches
//! every client without an emulator branch in the code.

mod dynamodb;
mod iam;
mod secretsmanager;
mod ses;
mod sqs;

pub use dynamodb::{DynamoIdempotency, DynamoLedger, DynamoStatus, StateTable};
pub use iam::IamDirectory;
pub use secretsmanager::SecretsManagerStore;
pub use ses::SesMailer;
pub use sqs::SqsPublisher;
pub use sqs::SqsQueues;

use crate::error::Error;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use aws_config::SdkConfig;

/// The one configuration load of a cold start.
pub async fn load_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Error codes that mean "not now" rather than "no", across the services used.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "TransactionInProgressException",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "InternalServiceError",
];

/// Sorts an SDK failure into retryable or permanent (the SDK has already
/// spent its own retries by the time this runs).
pub(crate) fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            service.raw().status().as_u16() >= 500 || service.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c))
        }
        _ => false,
    };
    if retryable {
        Error::retryable(operation, message)
    } else {
        Error::permanent(operation, message)
    }
}

/// The error code of a service error, for the few that mean a state rather
/// than a failure (NoSuchEntity, EntityAlreadyExists, ConditionalCheckFailed).
pub(crate) fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}
