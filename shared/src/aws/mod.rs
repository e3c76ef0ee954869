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

/// Operations on the pipeline's own table and queues: a resource of theirs
/// that does not exist is the deployment's fault, never a request's.
const OWN_RESOURCE_OPERATIONS: &[&str] =
    &["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchWriteItem", "SendMessage", "SendMessageBatch"];

/// The caller may not make the call (or is not who it says): the role.
const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// What the operator changes when the deployment, not the request, is why a
/// call failed; `None` when the error code says nothing of the kind.
fn deployment_fix(operation: &str, code: &str, message: &str) -> Option<String> {
    let fix = match code {
        code if AUTH_CODES.contains(&code) && message.to_ascii_lowercase().contains("kms") => {
            "let the function's role use the secrets' KMS key (SECRETS_KMS_KEY_ID): its key policy and the role \
             in template.yaml"
                .to_owned()
        }
        code if AUTH_CODES.contains(&code) => format!(
            "grant the function's role {operation} on this resource in template.yaml, or lift what denies it \
             (a service control policy, a permissions boundary, a resource policy)"
        ),
        "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "KMSAccessDeniedException"
        | "DisabledException"
        | "KeyUnavailableException"
        | "EncryptionFailure"
        | "DecryptionFailure" => {
            "enable the secrets' KMS key (SECRETS_KMS_KEY_ID), cancel its deletion, or let the role use it".to_owned()
        }
        "MessageRejected"
        | "MailFromDomainNotVerified"
        | "MailFromDomainNotVerifiedException"
        | "ConfigurationSetDoesNotExist"
        | "ConfigurationSetDoesNotExistException"
        | "AccountSendingPausedException"
        | "ConfigurationSetSendingPausedException" => {
            "verify the sender (SENDER_EMAIL) in SES in this region, and request SES production access: the SES \
             sandbox delivers only to verified addresses, at most 200 emails a day"
                .to_owned()
        }
        "Throttling" if message.contains("quota exceeded") => {
            "SES's sending quota is used up (the sandbox allows 200 emails a day): request production access or a \
             higher quota"
                .to_owned()
        }
        "ResourceNotFoundException" | "QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue"
            if OWN_RESOURCE_OPERATIONS.contains(&operation) =>
        {
            "the table or queue the configuration names (TABLE_NAME, NEXT_QUEUE_URL) does not exist: deploy the \
             stack or correct the variable"
                .to_owned()
        }
        _ => return None,
    };
    Some(fix)
}

/// Sorts an SDK failure into its class (see `crate::error`): a fault of the
/// deployment, a passing one (the SDK has already spent its own retries by
/// the time this runs), or a permanent answer about the request.
pub(crate) fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    if let SdkError::ServiceError(service) = &err {
        if let Some(fix) = service.err().code().and_then(|c| deployment_fix(operation, c, &message)) {
            return Error::deployment(operation, message, fix);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::deployment_fix;

    #[test]
    fn faults_of_the_deployment_are_told_apart_from_the_requests_and_name_their_fix() {
        let fix = |op, code, message| deployment_fix(op, code, message);
        assert!(fix("AddUserToGroup", "AccessDenied", "not authorized").unwrap().contains("AddUserToGroup"));
        assert!(fix("CreateSecret", "AccessDeniedException", "Access to KMS is not allowed").unwrap().contains("KMS"));
        assert!(fix("CreateSecret", "KMSInvalidStateException", "pending deletion").unwrap().contains("KMS key"));
        assert!(fix("SendEmail", "MessageRejected", "Email address is not verified").unwrap().contains("sandbox"));
        assert!(fix("SendEmail", "Throttling", "Daily message quota exceeded.").unwrap().contains("quota"));
        assert!(fix("PutItem", "ResourceNotFoundException", "table").unwrap().contains("TABLE_NAME"));
        // The request's own, or passing: not the deployment's.
        assert_eq!(fix("SendEmail", "Throttling", "Maximum sending rate exceeded."), None);
        assert_eq!(fix("GetSecretValue", "ResourceNotFoundException", "no such secret"), None);
        assert_eq!(fix("CreateUser", "InvalidInput", "bad path"), None);
        assert_eq!(fix("CreateAccessKey", "LimitExceeded", "two keys"), None);
    }
}
