//! The capabilities the stages need from AWS, one trait each, in domain
//! terms. `aws` implements them over the SDK, `memory` in memory for unit
//! tests; the handlers see only these traits.
//!
//! Methods return `impl Future + Send` so implementations may be plain
//! `async fn`s while the Lambda runtime still gets `Send` futures.

use crate::error::Result;
use crate::handoff::Onboarding;
use crate::password::PasswordPolicy;
use crate::secret::{NewAccessKey, Sensitive};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub user_name: crate::names::UserName,
    pub path: String,
    pub boundary: crate::names::PolicyArn,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamUser {
    pub user_name: String,
    pub path: String,
    pub arn: String,
    pub boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub groups: Vec<String>,
    pub managed_policies: Vec<String>,
    /// Names only: a source with any is refused, so no document is read.
    pub inline_policies: Vec<String>,
    pub boundary: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    AlreadyExists,
}

/// Reading users: the IAM rules of create-user, and the ownership checks of
/// every stage that acts on a user.
pub trait Users: Send + Sync {
    /// Every user name in the account (all pages).
    fn list_user_names(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Exact-name lookup, with tags and boundary; `None` if there is no such user.
    fn get_user(&self, user_name: &str) -> impl Future<Output = Result<Option<IamUser>>> + Send;
    /// What the console's "Copy permissions from existing user" copies.
    fn permissions(&self, user_name: &str) -> impl Future<Output = Result<Permissions>> + Send;
}

/// Creating a user and granting it permissions (create-user; issue-credentials
/// attaches only the change-password policy).
pub trait Provisioning: Send + Sync {
    /// Creates the user with its boundary and tags in one call, so no user of
    /// ours ever exists without them.
    fn create_user(&self, user: &NewUser) -> impl Future<Output = Result<Created>> + Send;
    fn add_user_to_group(&self, user_name: &str, group: &str) -> impl Future<Output = Result<()>> + Send;
    fn attach_user_policy(&self, user_name: &str, policy_arn: &str) -> impl Future<Output = Result<()>> + Send;
}

/// What the account says of itself: its password policy and alias.
pub trait AccountFacts: Send + Sync {
    /// The account's password policy, or AWS's default where it has none.
    fn password_policy(&self) -> impl Future<Output = Result<PasswordPolicy>> + Send;
    /// The account alias, for the console sign-in URL.
    fn account_alias(&self) -> impl Future<Output = Result<Option<String>>> + Send;
}

/// A user's console password and access keys (issue-credentials; rotate-keys
/// lists and deletes keys).
pub trait Credentials: Send + Sync {
    /// `AlreadyExists` when the user has one: a retry of a run that made it.
    fn create_login_profile(
        &self,
        user_name: &str,
        password: &Sensitive,
        reset_required: bool,
    ) -> impl Future<Output = Result<Created>> + Send;
    fn access_keys(&self, user_name: &str) -> impl Future<Output = Result<Vec<AccessKeyInfo>>> + Send;
    /// Refused (permanently) at IAM's limit of two keys per user.
    fn create_access_key(&self, user_name: &str) -> impl Future<Output = Result<NewAccessKey>> + Send;
    fn delete_access_key(&self, user_name: &str, access_key_id: &str) -> impl Future<Output = Result<()>> + Send;
}

/// What only rotation needs: the users under a path, key status, last use.
pub trait KeyRetirement: Send + Sync {
    /// Names of the users under `path_prefix` (all pages).
    fn list_user_names_under(&self, path_prefix: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    fn set_access_key_active(
        &self,
        user_name: &str,
        access_key_id: &str,
        active: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// When IAM last saw the key used (seconds since the epoch), if ever.
    fn access_key_last_used(&self, access_key_id: &str) -> impl Future<Output = Result<Option<u64>>> + Send;
}

/// What offboarding needs of IAM (CONTRACT.md section 6): everything a user
/// holds, and one call of `lifecycle::plan` at a time.
pub trait Offboarding: Send + Sync {
    /// What offboarding must remove from the user; `None` if there is no such
    /// user. `marked_mfa_devices` holds the marked ones of its assigned
    /// devices only (see `unassigned_mfa_devices_marked_for`).
    fn holdings(&self, user_name: &str) -> impl Future<Output = Result<Option<crate::lifecycle::UserHoldings>>> + Send;
    /// The virtual MFA devices assigned to nobody that carry
    /// `lifecycle::MFA_OWNER_TAG` = `user_id`: deactivated by an offboarding
    /// of that user that was cut off before it deleted them. A device
    /// without that exact mark is never listed, whatever its name.
    fn unassigned_mfa_devices_marked_for(&self, user_id: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// One step of the plan. A target already gone counts as done, so a
    /// rerun after a partial run is safe.
    fn apply(&self, user_name: &str, step: &crate::lifecycle::Step) -> impl Future<Output = Result<()>> + Send;
}

/// What the pipeline knows of a key it issued: kept in DynamoDB because
/// IAM keeps no history (when a key was deactivated, what it replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub user_name: String,
    pub access_key_id: String,
    /// Where the user is told about the key.
    pub email: String,
    pub issued_at: u64,
    /// The key this one replaces.
    pub replaces: Option<String>,
    pub warned_at: Option<u64>,
    pub deactivated_at: Option<u64>,
    pub deleted_at: Option<u64>,
    /// Set by rotate-keys before it asks for a successor: when this key will
    /// be deactivated. issue-credentials and notify-user act on a rotation
    /// only where the ledger holds this.
    #[serde(default)]
    pub rotation_deadline: Option<u64>,
}

impl KeyRecord {
    /// A key as issued: nothing of its lifecycle has happened yet.
    pub fn issued(user_name: &str, access_key_id: &str, email: &str, issued_at: u64, replaces: Option<&str>) -> Self {
        Self {
            user_name: user_name.to_owned(),
            access_key_id: access_key_id.to_owned(),
            email: email.to_owned(),
            issued_at,
            replaces: replaces.map(str::to_owned),
            warned_at: None,
            deactivated_at: None,
            deleted_at: None,
            rotation_deadline: None,
        }
    }
}

pub trait KeyLedger: Send + Sync {
    /// Records a key once its secret is stored; later calls keep the first record.
    fn record_issued(&self, key: &KeyRecord) -> impl Future<Output = Result<()>> + Send;
    fn keys_of(&self, user_name: &str) -> impl Future<Output = Result<Vec<KeyRecord>>> + Send;
    /// Saves the lifecycle times (`warned_at`, `deactivated_at`, `deleted_at`,
    /// `rotation_deadline`), keeping any already set.
    fn update(&self, key: &KeyRecord) -> impl Future<Output = Result<()>> + Send;
    /// Notes a version id (a `ClientRequestToken`) before the pipeline
    /// writes it into the user's secret, so a secret found later is the
    /// pipeline's only if its current version is one of these.
    fn record_secret_version(&self, user_name: &str, version_id: &str) -> impl Future<Output = Result<()>> + Send;
    fn secret_versions(&self, user_name: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// How far one day's rotation run got, so an invocation cut off at its
/// deadline is resumed by the next instead of starting over: every user
/// whose name sorts after `after` is still to plan, then `retry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationCursor {
    /// The run: the UTC date it belongs to.
    pub run: String,
    /// The last user of the listing planned (names in byte order).
    pub after: Option<String>,
    /// Every user of the listing has been planned once.
    pub listed_all: bool,
    /// Users whose plan failed for a reason that may pass, to try again.
    pub retry: Vec<String>,
}

impl RotationCursor {
    pub fn complete(&self) -> bool {
        self.listed_all && self.retry.is_empty()
    }
}

/// The rotation runs' cursors (rotate-keys only).
pub trait RotationRuns: Send + Sync {
    fn cursor(&self, run: &str) -> impl Future<Output = Result<Option<RotationCursor>>> + Send;
    /// Saves the cursor whole; kept until `expires_at`.
    fn save_cursor(&self, cursor: &RotationCursor, expires_at: u64) -> impl Future<Output = Result<()>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub active: bool,
    /// Seconds since the epoch.
    pub created: u64,
}

/// A secret as stored: where it is, and its value (never printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub arn: String,
    pub name: String,
    /// The AWSCURRENT version's id.
    pub version_id: String,
    pub value: Sensitive,
}

pub trait SecretStore: Send + Sync {
    /// By name or ARN; `None` if there is no such secret.
    fn read(&self, id: &str) -> impl Future<Output = Result<Option<StoredSecret>>> + Send;
    /// Creates the secret with its first version, whose id is `version_id`,
    /// encrypted with `kms_key_id` (the account's default key if `None`);
    /// returns its ARN.
    fn create(
        &self,
        name: &str,
        value: &Sensitive,
        tags: &BTreeMap<String, String>,
        version_id: &str,
        kms_key_id: Option<&str>,
    ) -> impl Future<Output = Result<String>> + Send;
    /// The KMS key the secret is encrypted with, as Secrets Manager reports
    /// it (`None`: the account's default key).
    fn kms_key_id(&self, id: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// A new version `version_id`, which becomes AWSCURRENT (the old one AWSPREVIOUS).
    fn put(&self, arn: &str, value: &Sensitive, version_id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Schedules the secret's deletion after `recovery_days` (Secrets
    /// Manager's recovery window: restorable until then; `SECRET_RECOVERY_DAYS`,
    /// else the deployment is wrong). Returns when it is deleted for good
    /// (seconds since the epoch); a secret already scheduled keeps its date
    /// and nothing is changed; `None` if there is no such secret. Until that
    /// date the secret cannot be read, written or created again.
    fn schedule_deletion(&self, id: &str, recovery_days: u32) -> impl Future<Output = Result<Option<u64>>> + Send;
}

/// The recovery windows Secrets Manager accepts (DeleteSecret's
/// RecoveryWindowInDays), in days.
pub const SECRET_RECOVERY_DAYS: std::ops::RangeInclusive<u32> = 7..=30;

/// A recovery window outside `SECRET_RECOVERY_DAYS` is the deployment's
/// parameter, not anything a ticket said.
pub fn check_recovery_days(recovery_days: u32) -> Result<()> {
    if SECRET_RECOVERY_DAYS.contains(&recovery_days) {
        Ok(())
    } else {
        Err(crate::Error::deployment(
            "DeleteSecret",
            format!("a recovery window of {recovery_days} days"),
            "set the secrets' recovery window parameter to 7 to 30 days (Secrets Manager accepts no other)",
        ))
    }
}

/// The state of one idempotency record, as in Powertools for AWS Lambda.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This caller holds the lease and must do the work.
    Acquired,
    /// The work was done; here is what it returned.
    Completed(serde_json::Value),
    /// Another caller holds an unexpired lease.
    InProgress,
    /// The key was used with a different payload.
    Mismatch,
}

pub trait IdempotencyStore: Send + Sync {
    /// Takes the lease on `key` unless a completed record or a live lease
    /// exists. Times are seconds since the epoch.
    fn claim(
        &self,
        key: &str,
        payload_hash: &str,
        now: u64,
        lease_until: u64,
        expires_at: u64,
    ) -> impl Future<Output = Result<Claim>> + Send;
    fn complete(
        &self,
        key: &str,
        payload_hash: &str,
        result: &serde_json::Value,
        expires_at: u64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Drops a lease after a failure so the retry need not wait for it to end.
    fn release(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
}

/// How far one (ticket, user) got. Ordered: a record never moves backwards,
/// so a late replay of an early stage cannot hide later progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Accepted = 1,
    UserCreated = 2,
    CredentialsIssued = 3,
    Notified = 4,
    /// Offboarding (CONTRACT.md section 6): switched off, still in IAM.
    Disabled = 5,
    /// Offboarding: gone from IAM, its secret scheduled for deletion.
    Deleted = 6,
    /// An access change applied.
    AccessChanged = 7,
    Failed = 9,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Accepted => "accepted",
            Stage::UserCreated => "user_created",
            Stage::CredentialsIssued => "credentials_issued",
            Stage::Notified => "notified",
            Stage::Disabled => "disabled",
            Stage::Deleted => "deleted",
            Stage::AccessChanged => "access_changed",
            Stage::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Stage::Accepted,
            Stage::UserCreated,
            Stage::CredentialsIssued,
            Stage::Notified,
            Stage::Disabled,
            Stage::Deleted,
            Stage::AccessChanged,
            Stage::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub ticket_id: String,
    /// `-` for a ticket-wide record (a ticket that could not be read at all).
    pub user_name: String,
    pub stage: Stage,
    pub reason: Option<String>,
    pub updated_at: u64,
}

impl StatusRecord {
    pub fn new(ticket_id: &str, user_name: &str, stage: Stage, reason: Option<String>, now: u64) -> Self {
        Self { ticket_id: ticket_id.to_owned(), user_name: user_name.to_owned(), stage, reason, updated_at: now }
    }
}

pub trait StatusStore: Send + Sync {
    /// Writes the record unless the stored one is already further along.
    fn record(&self, record: &StatusRecord) -> impl Future<Output = Result<()>> + Send;
    /// The first records of users that have none, in as few round trips as
    /// the store allows, and without `record`'s forward-only check: only for
    /// a caller that knows no record exists and none can appear meanwhile
    /// (create-user, holding its ticket's lease, before any hand-off).
    ///
    /// With them, the hand-off each accepted user will get: the record
    /// issue-credentials and notify-user check every message against.
    fn create_all(&self, records: &[StatusRecord], handoffs: &[Onboarding]) -> impl Future<Output = Result<()>> + Send;
    fn for_ticket(&self, ticket_id: &str) -> impl Future<Output = Result<Vec<StatusRecord>>> + Send;
    /// Withdraws the hand-off of a user refused after it was accepted, so no
    /// message (a replay, an operator's) can get it credentials.
    fn revoke_handoff(&self, ticket_id: &str, user_name: &str) -> impl Future<Output = Result<()>> + Send;
    /// The hand-off create-user recorded for this (ticket, user), if any.
    fn handoff(&self, ticket_id: &str, user_name: &str) -> impl Future<Output = Result<Option<Onboarding>>> + Send;
}

/// A user the pipeline deleted, whose name stays refused for onboarding
/// while the deleted user's secret can still be recovered (CONTRACT.md
/// section 6): creating it again would collide with the secret's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub user_name: String,
    /// The offboarding ticket that deleted the user.
    pub ticket_id: String,
    /// When the secret is deleted for good (seconds since the epoch).
    pub until: u64,
}

/// The departures (offboard-user writes them, create-user reads them).
pub trait Departures: Send + Sync {
    /// Kept until `until`; a later departure of the same name replaces it.
    fn record_departure(&self, departure: &Departure) -> impl Future<Output = Result<()>> + Send;
    /// The departure of a name (case-insensitively) still in its window at `now`.
    fn departure(&self, user_name: &str, now: u64) -> impl Future<Output = Result<Option<Departure>>> + Send;
}

/// A message a stage would not act on: it matched none of the pipeline's
/// own records. Kept for a person to read (the alarm points here); never
/// retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UntrustedMessage {
    pub stage: String,
    pub message_id: String,
    pub reason: String,
    /// The body as received, cut to `UNTRUSTED_BODY_LIMIT` bytes. Stage
    /// messages never hold a secret, so neither does this.
    pub body: String,
    pub received_at: u64,
}

pub const UNTRUSTED_BODY_LIMIT: usize = 4096;

pub trait UntrustedLog: Send + Sync {
    fn record_untrusted(&self, message: &UntrustedMessage) -> impl Future<Output = Result<()>> + Send;
    /// Every untrusted message `stage` recorded.
    fn untrusted(&self, stage: &str) -> impl Future<Output = Result<Vec<UntrustedMessage>>> + Send;
}

/// Hands work to the next stage (its SQS queue).
pub trait EventPublisher: Send + Sync {
    fn publish<E: Serialize + Sync>(&self, event: &E) -> impl Future<Output = Result<()>> + Send;
    /// Many at once, in fewer round trips where the queue allows. On an
    /// error some may have gone already: a caller sends them all again, and
    /// the next stage's idempotency absorbs the repeats.
    fn publish_all<E: Serialize + Sync>(&self, events: &[E]) -> impl Future<Output = Result<()>> + Send {
        async move {
            for event in events {
                self.publish(event).await?;
            }
            Ok(())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub trait Mailer: Send + Sync {
    /// Returns the provider's message id.
    fn send(&self, from: &str, email: &Email) -> impl Future<Output = Result<String>> + Send;
}

/// Time, injected so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> u64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// What an idempotency record says of one piece of work (a ticket's run, an
/// email), for a person reading the pipeline's state: the operator CLI.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkState {
    /// Claimed and not finished (or its holder died before its lease ran out).
    InProgress,
    /// Done; what it returned (user names, message ids, secret ARNs: never a secret).
    Completed(serde_json::Value),
}

/// Reads idempotency records without claiming them. Only the operator CLI
/// uses it; the stages go through `IdempotencyStore`.
pub trait WorkRecords: Send + Sync {
    /// The record under `key` (an `idempotency::Key`), if there is one.
    fn work_state(&self, key: &str) -> impl Future<Output = Result<Option<WorkState>>> + Send;
}

/// One message taken off a queue (not yet deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub body: String,
    /// What deletes it: valid while the message is hidden from others.
    pub receipt_handle: String,
}

/// The pipeline's queues by URL, as an operator handles them (redrive,
/// replay). Only the operator CLI uses it; the stages hand on through
/// `EventPublisher` and receive through Lambda.
pub trait Queues: Send + Sync {
    /// Up to `max` (at most 10) messages, hidden from other consumers for a
    /// while; none when the queue is empty.
    fn receive(&self, queue_url: &str, max: usize) -> impl Future<Output = Result<Vec<QueuedMessage>>> + Send;
    fn send(&self, queue_url: &str, body: &str) -> impl Future<Output = Result<()>> + Send;
    fn delete(&self, queue_url: &str, receipt_handle: &str) -> impl Future<Output = Result<()>> + Send;
    /// Messages in the queue, waiting or in flight (SQS's approximate counts).
    fn depth(&self, queue_url: &str) -> impl Future<Output = Result<usize>> + Send;
}

/// What an access change needs of IAM (CONTRACT.md section 6): the user's
/// groups and managed policies, and one call of `access::plan` at a time.
pub trait AccessChanges: Send + Sync {
    /// The user's groups (as IAM spells them) and attached managed policy
    /// ARNs; `None` if there is no such user. Only those two are read: an
    /// access change neither reads nor touches inline policies or the
    /// boundary, so those fields are left empty.
    fn access_of(&self, user_name: &str) -> impl Future<Output = Result<Option<Permissions>>> + Send;
    /// One step of the plan. A removal of what the user no longer holds, and
    /// an addition of what it already holds, count as done, so a rerun after
    /// a partial run is safe.
    fn apply_access(
        &self,
        user_name: &str,
        step: &crate::access::AccessStep,
    ) -> impl Future<Output = Result<()>> + Send;
}
