//! In-memory implementations of the ports, for unit tests of the handlers.
//! They keep the semantics the handlers rely on (exact-name lookups,
//! idempotent group/policy attachment, conditional status writes), and can
//! be told to fail an operation to exercise error paths.

use crate::error::{Error, Result};
use crate::handoff::Onboarding;
use crate::password::PasswordPolicy;
use crate::ports::*;
use crate::secret::{NewAccessKey, Sensitive};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Errors a fake returns, one per call of an operation, before succeeding.
#[derive(Debug, Default)]
struct Faults(Mutex<HashMap<&'static str, Vec<Error>>>);

impl Faults {
    fn push(&self, operation: &'static str, error: Error) {
        lock(&self.0).entry(operation).or_default().push(error);
    }

    fn take(&self, operation: &'static str) -> Result<()> {
        match lock(&self.0).get_mut(operation) {
            Some(v) if !v.is_empty() => Err(v.remove(0)),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Default)]
pub struct MemoryDirectory {
    users: Mutex<BTreeMap<String, (IamUser, Permissions)>>,
    /// user -> (password, reset required)
    pub login_profiles: Mutex<BTreeMap<String, (Sensitive, bool)>>,
    /// user -> keys; the secret of each is kept to check what was stored.
    pub keys: Mutex<BTreeMap<String, Vec<(AccessKeyInfo, Sensitive)>>>,
    pub policy: Mutex<Option<PasswordPolicy>>,
    pub alias: Mutex<Option<String>>,
    /// access key id -> last used
    pub last_used: Mutex<BTreeMap<String, u64>>,
    key_counter: std::sync::atomic::AtomicU64,
    faults: Faults,
    /// Every mutating call, in order, for assertions.
    pub calls: Mutex<Vec<String>>,
    /// The account-wide reads (password policy, alias), in order.
    pub account_reads: Mutex<Vec<&'static str>>,
}

impl MemoryDirectory {
    pub fn fail_next(&self, operation: &'static str, error: Error) {
        self.faults.push(operation, error);
    }

    fn fault(&self, operation: &'static str) -> Result<()> {
        self.faults.take(operation)
    }

    pub fn insert(&self, user: IamUser, permissions: Permissions) {
        lock(&self.users).insert(user.user_name.clone(), (user, permissions));
    }

    pub fn user(&self, name: &str) -> Option<(IamUser, Permissions)> {
        lock(&self.users).get(name).cloned()
    }

    pub fn user_count(&self) -> usize {
        lock(&self.users).len()
    }

    fn with_user<T>(&self, name: &str, op: &'static str, f: impl FnOnce(&mut Permissions) -> T) -> Result<T> {
        let mut users = lock(&self.users);
        let (_, perms) =
            users.get_mut(name).ok_or_else(|| Error::permanent(op, format!("user {name} does not exist")))?;
        Ok(f(perms))
    }
}

impl Users for MemoryDirectory {
    async fn list_user_names(&self) -> Result<Vec<String>> {
        self.fault("ListUsers")?;
        Ok(lock(&self.users).keys().cloned().collect())
    }

    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>> {
        self.fault("GetUser")?;
        Ok(lock(&self.users).get(user_name).map(|(u, p)| IamUser { boundary: p.boundary.clone(), ..u.clone() }))
    }

    async fn permissions(&self, user_name: &str) -> Result<Permissions> {
        self.fault("Permissions")?;
        self.with_user(user_name, "GetUser", |p| p.clone())
    }
}

impl Provisioning for MemoryDirectory {
    async fn create_user(&self, user: &NewUser) -> Result<Created> {
        self.fault("CreateUser")?;
        lock(&self.calls).push(format!("CreateUser {}", user.user_name));
        let mut users = lock(&self.users);
        if users.contains_key(user.user_name.as_str()) {
            return Ok(Created::AlreadyExists);
        }
        let iam = IamUser {
            user_name: user.user_name.to_string(),
            path: user.path.clone(),
            arn: format!("arn:aws:iam::123456789012:user{}{}", user.path, user.user_name),
            boundary: Some(user.boundary.to_string()),
            tags: user.tags.clone(),
        };
        let perms = Permissions { boundary: Some(user.boundary.to_string()), ..Default::default() };
        users.insert(user.user_name.to_string(), (iam, perms));
        Ok(Created::Created)
    }

    async fn add_user_to_group(&self, user_name: &str, group: &str) -> Result<()> {
        self.fault("AddUserToGroup")?;
        lock(&self.calls).push(format!("AddUserToGroup {user_name} {group}"));
        self.with_user(user_name, "AddUserToGroup", |p| {
            if !p.groups.iter().any(|g| g == group) {
                p.groups.push(group.to_owned());
            }
        })
    }

    async fn attach_user_policy(&self, user_name: &str, policy_arn: &str) -> Result<()> {
        self.fault("AttachUserPolicy")?;
        lock(&self.calls).push(format!("AttachUserPolicy {user_name} {policy_arn}"));
        self.with_user(user_name, "AttachUserPolicy", |p| {
            if !p.managed_policies.iter().any(|a| a == policy_arn) {
                p.managed_policies.push(policy_arn.to_owned());
            }
        })
    }
}

impl AccountFacts for MemoryDirectory {
    async fn password_policy(&self) -> Result<PasswordPolicy> {
        self.fault("GetAccountPasswordPolicy")?;
        lock(&self.account_reads).push("GetAccountPasswordPolicy");
        Ok(lock(&self.policy).clone().unwrap_or_else(PasswordPolicy::aws_default))
    }

    async fn account_alias(&self) -> Result<Option<String>> {
        lock(&self.account_reads).push("ListAccountAliases");
        Ok(lock(&self.alias).clone())
    }
}

impl Credentials for MemoryDirectory {
    async fn create_login_profile(
        &self,
        user_name: &str,
        password: &Sensitive,
        reset_required: bool,
    ) -> Result<Created> {
        self.fault("CreateLoginProfile")?;
        lock(&self.calls).push(format!("CreateLoginProfile {user_name}"));
        let mut profiles = lock(&self.login_profiles);
        if profiles.contains_key(user_name) {
            return Ok(Created::AlreadyExists);
        }
        profiles.insert(user_name.to_owned(), (password.clone(), reset_required));
        Ok(Created::Created)
    }

    async fn access_keys(&self, user_name: &str) -> Result<Vec<AccessKeyInfo>> {
        self.fault("ListAccessKeys")?;
        Ok(lock(&self.keys).get(user_name).map(|k| k.iter().map(|(i, _)| i.clone()).collect()).unwrap_or_default())
    }

    async fn create_access_key(&self, user_name: &str) -> Result<NewAccessKey> {
        self.fault("CreateAccessKey")?;
        lock(&self.calls).push(format!("CreateAccessKey {user_name}"));
        let mut keys = lock(&self.keys);
        let list = keys.entry(user_name.to_owned()).or_default();
        if list.len() >= 2 {
            return Err(Error::permanent(
                "CreateAccessKey",
                "LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2",
            ));
        }
        let n = self.key_counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = NewAccessKey {
            access_key_id: format!("AKIAFAKE{n:012}"),
            secret_access_key: Sensitive::new(format!("fake-secret-{n}")),
        };
        list.push((
            AccessKeyInfo { access_key_id: key.access_key_id.clone(), active: true, created: 0 },
            key.secret_access_key.clone(),
        ));
        Ok(key)
    }

    async fn delete_access_key(&self, user_name: &str, access_key_id: &str) -> Result<()> {
        self.fault("DeleteAccessKey")?;
        lock(&self.calls).push(format!("DeleteAccessKey {user_name} {access_key_id}"));
        if let Some(list) = lock(&self.keys).get_mut(user_name) {
            list.retain(|(k, _)| k.access_key_id != access_key_id);
        }
        Ok(())
    }
}

impl KeyRetirement for MemoryDirectory {
    async fn list_user_names_under(&self, path_prefix: &str) -> Result<Vec<String>> {
        self.fault("ListUsers")?;
        Ok(lock(&self.users)
            .values()
            .filter(|(u, _)| u.path.starts_with(path_prefix))
            .map(|(u, _)| u.user_name.clone())
            .collect())
    }

    async fn set_access_key_active(&self, user_name: &str, access_key_id: &str, active: bool) -> Result<()> {
        self.fault("UpdateAccessKey")?;
        lock(&self.calls).push(format!("UpdateAccessKey {user_name} {access_key_id} {active}"));
        if let Some(list) = lock(&self.keys).get_mut(user_name) {
            for (k, _) in list.iter_mut().filter(|(k, _)| k.access_key_id == access_key_id) {
                k.active = active;
            }
        }
        Ok(())
    }

    async fn access_key_last_used(&self, access_key_id: &str) -> Result<Option<u64>> {
        self.fault("GetAccessKeyLastUsed")?;
        Ok(lock(&self.last_used).get(access_key_id).copied())
    }
}

#[derive(Debug, Default)]
pub struct MemoryLedger {
    pub keys: Mutex<BTreeMap<(String, String), KeyRecord>>,
    pub secret_versions: Mutex<BTreeMap<String, Vec<String>>>,
    /// run -> (cursor, expires_at)
    pub cursors: Mutex<BTreeMap<String, (RotationCursor, u64)>>,
    /// Every cursor saved, in order.
    pub cursor_saves: Mutex<Vec<RotationCursor>>,
}

impl RotationRuns for MemoryLedger {
    async fn cursor(&self, run: &str) -> Result<Option<RotationCursor>> {
        Ok(lock(&self.cursors).get(run).map(|(c, _)| c.clone()))
    }

    async fn save_cursor(&self, cursor: &RotationCursor, expires_at: u64) -> Result<()> {
        lock(&self.cursors).insert(cursor.run.clone(), (cursor.clone(), expires_at));
        lock(&self.cursor_saves).push(cursor.clone());
        Ok(())
    }
}

impl KeyLedger for MemoryLedger {
    async fn record_issued(&self, key: &KeyRecord) -> Result<()> {
        lock(&self.keys).entry((key.user_name.clone(), key.access_key_id.clone())).or_insert_with(|| key.clone());
        Ok(())
    }

    async fn keys_of(&self, user_name: &str) -> Result<Vec<KeyRecord>> {
        Ok(lock(&self.keys).values().filter(|k| k.user_name == user_name).cloned().collect())
    }

    async fn update(&self, key: &KeyRecord) -> Result<()> {
        let mut keys = lock(&self.keys);
        let stored = keys.entry((key.user_name.clone(), key.access_key_id.clone())).or_insert_with(|| key.clone());
        stored.warned_at = stored.warned_at.or(key.warned_at);
        stored.deactivated_at = stored.deactivated_at.or(key.deactivated_at);
        stored.deleted_at = stored.deleted_at.or(key.deleted_at);
        stored.rotation_deadline = stored.rotation_deadline.or(key.rotation_deadline);
        Ok(())
    }

    async fn record_secret_version(&self, user_name: &str, version_id: &str) -> Result<()> {
        lock(&self.secret_versions).entry(user_name.to_owned()).or_default().push(version_id.to_owned());
        Ok(())
    }

    async fn secret_versions(&self, user_name: &str) -> Result<Vec<String>> {
        Ok(lock(&self.secret_versions).get(user_name).cloned().unwrap_or_default())
    }
}

#[derive(Debug, Default)]
pub struct MemorySecrets {
    /// name -> (version id, value), newest last
    pub secrets: Mutex<BTreeMap<String, Vec<(String, Sensitive)>>>,
    pub tags: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    pub kms_keys: Mutex<BTreeMap<String, String>>,
    /// name -> when it is deleted for good (a secret scheduled for deletion):
    /// until then, as in Secrets Manager, it cannot be read, written or
    /// created again.
    pub pending_deletion: Mutex<BTreeMap<String, u64>>,
    /// What the fake takes for now when it schedules a deletion.
    pub now: std::sync::atomic::AtomicU64,
    faults: Faults,
}

/// Secrets Manager's answer to any use of a secret scheduled for deletion.
fn scheduled_for_deletion(operation: &'static str) -> Error {
    Error::permanent(
        operation,
        "InvalidRequestException: You can't perform this operation on the secret because it was marked for deletion.",
    )
}

impl MemorySecrets {
    /// The name an id (a name or an ARN) stands for.
    fn name_of(secrets: &BTreeMap<String, Vec<(String, Sensitive)>>, id: &str) -> String {
        // An ARN ends in the name, a dash and six random characters.
        match id.rsplit_once(":secret:") {
            None => id,
            Some((_, tail)) => secrets
                .keys()
                .find(|n| tail == n.as_str() || (tail.starts_with(n.as_str()) && tail.len() == n.len() + 7))
                .map_or(tail, String::as_str),
        }
        .to_owned()
    }

    pub fn fail_next(&self, operation: &'static str, error: Error) {
        self.faults.push(operation, error);
    }

    fn fault(&self, operation: &'static str) -> Result<()> {
        self.faults.take(operation)
    }

    /// A secret made outside the pipeline (its version id is no token the
    /// pipeline recorded).
    pub fn insert(&self, name: &str, value: &str) {
        let mut secrets = lock(&self.secrets);
        let versions = secrets.entry(name.to_owned()).or_default();
        versions.push((format!("outside-{}", versions.len()), Sensitive::new(value)));
    }

    pub fn versions(&self, name: &str) -> usize {
        lock(&self.secrets).get(name).map_or(0, Vec::len)
    }

    fn arn(name: &str) -> String {
        format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}")
    }
}

impl SecretStore for MemorySecrets {
    async fn read(&self, id: &str) -> Result<Option<StoredSecret>> {
        self.fault("GetSecretValue")?;
        let secrets = lock(&self.secrets);
        let name = Self::name_of(&secrets, id);
        if lock(&self.pending_deletion).contains_key(&name) {
            return Err(scheduled_for_deletion("GetSecretValue"));
        }
        Ok(secrets.get(&name).and_then(|v| v.last().cloned()).map(|(version_id, value)| StoredSecret {
            arn: Self::arn(&name),
            name: name.clone(),
            version_id,
            value,
        }))
    }

    async fn create(
        &self,
        name: &str,
        value: &Sensitive,
        tags: &BTreeMap<String, String>,
        version_id: &str,
        kms_key_id: Option<&str>,
    ) -> Result<String> {
        self.fault("CreateSecret")?;
        let mut secrets = lock(&self.secrets);
        if lock(&self.pending_deletion).contains_key(name) {
            return Err(Error::permanent(
                "CreateSecret",
                "InvalidRequestException: You can't create this secret because a secret with this name is already \
                 scheduled for deletion.",
            ));
        }
        if secrets.contains_key(name) {
            return Err(Error::permanent("CreateSecret", "ResourceExistsException"));
        }
        if let Some(key) = kms_key_id {
            lock(&self.kms_keys).insert(name.to_owned(), key.to_owned());
        }
        secrets.insert(name.to_owned(), vec![(version_id.to_owned(), value.clone())]);
        lock(&self.tags).insert(name.to_owned(), tags.clone());
        Ok(Self::arn(name))
    }

    async fn kms_key_id(&self, id: &str) -> Result<Option<String>> {
        let name = id.rsplit_once(":secret:").map_or(id, |(_, n)| n);
        Ok(lock(&self.kms_keys).get(name).cloned())
    }

    async fn put(&self, arn: &str, value: &Sensitive, version_id: &str) -> Result<()> {
        self.fault("PutSecretValue")?;
        let name = arn.rsplit_once(":secret:").map_or(arn, |(_, n)| n);
        if lock(&self.pending_deletion).contains_key(name) {
            return Err(scheduled_for_deletion("PutSecretValue"));
        }
        lock(&self.secrets).entry(name.to_owned()).or_default().push((version_id.to_owned(), value.clone()));
        Ok(())
    }

    async fn schedule_deletion(&self, id: &str, recovery_days: u32) -> Result<Option<u64>> {
        crate::ports::check_recovery_days(recovery_days)?;
        self.fault("DeleteSecret")?;
        let secrets = lock(&self.secrets);
        let name = Self::name_of(&secrets, id);
        if !secrets.contains_key(&name) {
            return Ok(None);
        }
        let now = self.now.load(std::sync::atomic::Ordering::SeqCst);
        let date = *lock(&self.pending_deletion).entry(name).or_insert(now + u64::from(recovery_days) * 86_400);
        Ok(Some(date))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_secret_is_scheduled_for_deletion_once_and_held_until_then() {
        let secrets = MemorySecrets::default();
        secrets.now.store(1_000_000, std::sync::atomic::Ordering::SeqCst);
        let arn = secrets.create("iam-provisioner/emily", &Sensitive::new("{}"), &BTreeMap::new(), "v1", None).await;
        let arn = arn.unwrap();
        let day = 86_400;
        assert_eq!(secrets.schedule_deletion(&arn, 7).await.unwrap(), Some(1_000_000 + 7 * day));
        // Again (a redelivery), later and with another window: the same
        // date, nothing changed.
        secrets.now.store(2_000_000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(secrets.schedule_deletion("iam-provisioner/emily", 30).await.unwrap(), Some(1_000_000 + 7 * day));
        assert_eq!(secrets.schedule_deletion("iam-provisioner/nobody", 30).await.unwrap(), None);
        // Until then the name is held, and the secret unreadable.
        let again = secrets.create("iam-provisioner/emily", &Sensitive::new("{}"), &BTreeMap::new(), "v2", None).await;
        let again = again.unwrap_err();
        assert!(again.is_refusal() && again.to_string().contains("already scheduled for deletion"), "{again}");
        assert!(secrets.read("iam-provisioner/emily").await.is_err());
        assert!(secrets.put(&arn, &Sensitive::new("{}"), "v3").await.is_err());
        // A window Secrets Manager refuses is the deployment's fault.
        for days in [0, 6, 31] {
            let err = secrets.schedule_deletion(&arn, days).await.unwrap_err();
            assert!(matches!(err, Error::Deployment { .. }), "{days}: {err:?}");
        }
    }
}

#[derive(Debug, Clone)]
struct IdemRecord {
    hash: String,
    completed: Option<serde_json::Value>,
    lease_until: u64,
    expires_at: u64,
}

#[derive(Debug, Default)]
pub struct MemoryIdempotency {
    records: Mutex<HashMap<String, IdemRecord>>,
}

impl MemoryIdempotency {
    pub fn is_completed(&self, key: &str) -> bool {
        lock(&self.records).get(key).is_some_and(|r| r.completed.is_some())
    }
}

impl IdempotencyStore for MemoryIdempotency {
    async fn claim(&self, key: &str, hash: &str, now: u64, lease_until: u64, expires_at: u64) -> Result<Claim> {
        let mut records = lock(&self.records);
        if let Some(r) = records.get(key) {
            // As DynamoDB's condition has it: a record is free only once
            // `expires_at < now`, a lease only once `lease_until < now`.
            let live = r.expires_at >= now && (r.completed.is_some() || r.lease_until >= now);
            if live {
                return Ok(match (&r.completed, r.hash == hash) {
                    (_, false) => Claim::Mismatch,
                    (Some(v), true) => Claim::Completed(v.clone()),
                    (None, true) => Claim::InProgress,
                });
            }
        }
        records.insert(key.to_owned(), IdemRecord { hash: hash.to_owned(), completed: None, lease_until, expires_at });
        Ok(Claim::Acquired)
    }

    async fn complete(&self, key: &str, hash: &str, result: &serde_json::Value, expires_at: u64) -> Result<()> {
        lock(&self.records).insert(
            key.to_owned(),
            IdemRecord { hash: hash.to_owned(), completed: Some(result.clone()), lease_until: 0, expires_at },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<()> {
        let mut records = lock(&self.records);
        if records.get(key).is_some_and(|r| r.completed.is_none()) {
            records.remove(key);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct MemoryStatus {
    records: Mutex<BTreeMap<(String, String), StatusRecord>>,
    departures: Mutex<BTreeMap<String, Departure>>,
    handoffs: Mutex<BTreeMap<(String, String), Onboarding>>,
    untrusted: Mutex<Vec<UntrustedMessage>>,
}

impl MemoryStatus {
    /// As create-user would have recorded it.
    pub fn insert_handoff(&self, handoff: &Onboarding) {
        let key = (handoff.ticket_id.to_string(), handoff.user.user_name.to_string());
        lock(&self.handoffs).insert(key, handoff.clone());
    }
}

impl Departures for MemoryStatus {
    async fn record_departure(&self, d: &Departure) -> Result<()> {
        lock(&self.departures).insert(d.user_name.to_ascii_lowercase(), d.clone());
        Ok(())
    }

    async fn departure(&self, user_name: &str, now: u64) -> Result<Option<Departure>> {
        Ok(lock(&self.departures).get(&user_name.to_ascii_lowercase()).filter(|d| d.until > now).cloned())
    }
}

impl UntrustedLog for MemoryStatus {
    async fn record_untrusted(&self, message: &UntrustedMessage) -> Result<()> {
        lock(&self.untrusted).push(message.clone());
        Ok(())
    }

    async fn untrusted(&self, stage: &str) -> Result<Vec<UntrustedMessage>> {
        Ok(lock(&self.untrusted).iter().filter(|m| m.stage == stage).cloned().collect())
    }
}

impl StatusStore for MemoryStatus {
    async fn record(&self, record: &StatusRecord) -> Result<()> {
        let mut records = lock(&self.records);
        let key = (record.ticket_id.clone(), record.user_name.clone());
        if records.get(&key).is_none_or(|old| old.stage <= record.stage) {
            records.insert(key, record.clone());
        }
        Ok(())
    }

    async fn create_all(&self, records: &[StatusRecord], handoffs: &[Onboarding]) -> Result<()> {
        for r in records {
            self.record(r).await?;
        }
        for h in handoffs {
            self.insert_handoff(h);
        }
        Ok(())
    }

    async fn for_ticket(&self, ticket_id: &str) -> Result<Vec<StatusRecord>> {
        Ok(lock(&self.records).values().filter(|r| r.ticket_id == ticket_id).cloned().collect())
    }

    async fn revoke_handoff(&self, ticket_id: &str, user_name: &str) -> Result<()> {
        lock(&self.handoffs).remove(&(ticket_id.to_owned(), user_name.to_owned()));
        Ok(())
    }

    async fn handoff(&self, ticket_id: &str, user_name: &str) -> Result<Option<Onboarding>> {
        Ok(lock(&self.handoffs).get(&(ticket_id.to_owned(), user_name.to_owned())).cloned())
    }
}

#[derive(Debug, Default)]
pub struct MemoryPublisher {
    pub published: Mutex<Vec<serde_json::Value>>,
}

impl MemoryPublisher {
    pub fn events<E: serde::de::DeserializeOwned>(&self) -> Vec<E> {
        lock(&self.published).iter().map(|v| serde_json::from_value(v.clone()).expect("published type")).collect()
    }

    pub fn take<E: serde::de::DeserializeOwned>(&self) -> Vec<E> {
        let events = self.events();
        lock(&self.published).clear();
        events
    }
}

impl EventPublisher for MemoryPublisher {
    async fn publish<E: serde::Serialize + Sync>(&self, event: &E) -> Result<()> {
        let value = serde_json::to_value(event).map_err(|e| Error::permanent("publish", e.to_string()))?;
        lock(&self.published).push(value);
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct MemoryMailer {
    pub sent: Mutex<Vec<(String, Email)>>,
    /// (emails to let through first, error)
    faults: Mutex<Vec<(usize, Error)>>,
}

impl MemoryMailer {
    pub fn outbox(&self) -> Vec<Email> {
        lock(&self.sent).iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn fail_next(&self, error: Error) {
        self.fail_next_after(0, error);
    }

    /// Lets `ok` more emails through, then fails one.
    pub fn fail_next_after(&self, ok: usize, error: Error) {
        let already = lock(&self.sent).len();
        lock(&self.faults).push((already + ok, error));
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, from: &str, email: &Email) -> Result<String> {
        let mut sent = lock(&self.sent);
        {
            let mut faults = lock(&self.faults);
            if faults.first().is_some_and(|(at, _)| *at <= sent.len()) {
                return Err(faults.remove(0).1);
            }
        }
        sent.push((from.to_owned(), email.clone()));
        Ok(format!("message-{}", sent.len()))
    }
}

/// A clock tests can set.
#[derive(Debug, Default)]
pub struct FixedClock(pub std::sync::atomic::AtomicU64);

impl FixedClock {
    pub fn at(secs: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(secs))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The allow-list the stages' unit tests run under: the addresses of
/// `example.com`, a few groups and AWS managed policies, the fence.
pub fn test_allow_list() -> crate::config::AllowList {
    let arn = |s: &str| crate::names::PolicyArn::parse(s).expect("policy ARN");
    let fence = arn("arn:aws:iam::123456789012:policy/iam-provisioner-user-boundary");
    crate::config::AllowList {
        groups: ["Developers", "Power_Users", "ReadOnly"].map(String::from).into(),
        managed_policies: [
            arn("arn:aws:iam::aws:policy/ReadOnlyAccess"),
            arn("arn:aws:iam::aws:policy/PowerUserAccess"),
        ]
        .into(),
        boundaries: [fence.clone()].into(),
        default_boundary: fence,
        email_domains: ["example.com".to_owned()].into(),
        custom_password_prefix: crate::config::DEFAULT_CUSTOM_PASSWORD_PREFIX.into(),
    }
}

/// The hand-offs create-user sends for `ticket` (bare, as JSON), built the
/// way it builds them (parsed, validated, `Onboarding::accepted`): the
/// stages' tests start from the real message, so a new ticket field reaches
/// them without an edit. Panics on a ticket the rules refuse. Accepted on
/// 1970-01-01 (`Date::EPOCH`), so any `expires_on` a fixture gives is to come.
pub fn accepted(ticket: serde_json::Value) -> Vec<Onboarding> {
    let ticket = crate::ticket::parse_value(ticket).expect("a ticket");
    let accepted = crate::ticket::validate(&ticket, &test_allow_list(), crate::date::Date::EPOCH)
        .expect("a ticket the rules accept");
    let users: Vec<_> = accepted.users.iter().map(|p| p.user_name.clone()).collect();
    accepted
        .users
        .iter()
        .map(|p| Onboarding::accepted(&accepted.ticket_id, &accepted.requested_by, p, &users))
        .collect()
}

impl WorkRecords for MemoryIdempotency {
    async fn work_state(&self, key: &str) -> Result<Option<WorkState>> {
        Ok(lock(&self.records).get(key).map(|r| match &r.completed {
            Some(v) => WorkState::Completed(v.clone()),
            None => WorkState::InProgress,
        }))
    }
}

/// (message id, body, in flight).
type QueueEntry = (u64, String, bool);

/// SQS queues by URL: a message received is hidden (in flight) until
/// deleted; `fail_next` makes the next call of an operation (`send`,
/// `delete`, `receive`) fail.
#[derive(Debug, Default)]
pub struct MemoryQueues {
    queues: Mutex<BTreeMap<String, Vec<QueueEntry>>>,
    next_id: std::sync::atomic::AtomicU64,
    faults: Faults,
}

impl MemoryQueues {
    pub fn fail_next(&self, operation: &'static str, error: Error) {
        self.faults.push(operation, error);
    }

    /// The bodies in `queue_url`, waiting or in flight, oldest first.
    pub fn bodies(&self, queue_url: &str) -> Vec<String> {
        lock(&self.queues).get(queue_url).map(|q| q.iter().map(|(_, b, _)| b.clone()).collect()).unwrap_or_default()
    }

    /// Makes every message in flight visible again (its visibility timeout ran out).
    pub fn expire_visibility(&self) {
        for q in lock(&self.queues).values_mut() {
            for m in q.iter_mut() {
                m.2 = false;
            }
        }
    }
}

impl Queues for MemoryQueues {
    async fn receive(&self, queue_url: &str, max: usize) -> Result<Vec<QueuedMessage>> {
        self.faults.take("receive")?;
        let mut queues = lock(&self.queues);
        let Some(q) = queues.get_mut(queue_url) else { return Ok(vec![]) };
        Ok(q.iter_mut()
            .filter(|m| !m.2)
            .take(max.clamp(1, 10))
            .map(|m| {
                m.2 = true;
                QueuedMessage { body: m.1.clone(), receipt_handle: m.0.to_string() }
            })
            .collect())
    }

    async fn send(&self, queue_url: &str, body: &str) -> Result<()> {
        self.faults.take("send")?;
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        lock(&self.queues).entry(queue_url.to_owned()).or_default().push((id, body.to_owned(), false));
        Ok(())
    }

    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<()> {
        self.faults.take("delete")?;
        if let Some(q) = lock(&self.queues).get_mut(queue_url) {
            q.retain(|m| m.0.to_string() != receipt_handle);
        }
        Ok(())
    }

    async fn depth(&self, queue_url: &str) -> Result<usize> {
        Ok(lock(&self.queues).get(queue_url).map_or(0, Vec::len))
    }
}

/// A writer that keeps what a tracing subscriber writes, for tests that
/// read the log lines as Lambda would get them.
#[derive(Clone, Default)]
pub struct LogCapture(pub std::sync::Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// IAM as offboarding sees it: what each user holds, with IAM's refusal of
/// DeleteUser while anything remains (DeleteConflict), and a call to fail.
/// A virtual MFA device deactivated is assigned to nobody but still exists,
/// with its tags, until DeleteVirtualMFADevice (refused while assigned); it
/// does not hold up DeleteUser, as in IAM.
#[derive(Debug, Default)]
pub struct MemoryOffboarding {
    /// As inserted, less what was removed; `marked_mfa_devices` unused here
    /// (computed from `mfa_tags`).
    users: Mutex<BTreeMap<String, crate::lifecycle::UserHoldings>>,
    /// Serial number -> tags, of every virtual device ever tagged.
    mfa_tags: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Virtual devices that exist and are assigned to nobody.
    unassigned: Mutex<std::collections::BTreeSet<String>>,
    ids: std::sync::atomic::AtomicU32,
    calls: Mutex<Vec<String>>,
    fail_at: Mutex<Option<usize>>,
}

impl MemoryOffboarding {
    /// A user holding `holdings`. An empty `user_id` gets a fresh one (never
    /// the id of a user inserted before, as in IAM); each of its
    /// `marked_mfa_devices` is tagged with the id and, if not among its
    /// `mfa_devices`, exists assigned to nobody (a run cut off after
    /// deactivating it).
    pub fn insert(&self, user_name: &str, mut holdings: crate::lifecycle::UserHoldings) {
        if holdings.user_id.is_empty() {
            let n = self.ids.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            holdings.user_id = format!("AIDAMEMORY{n:010}");
        }
        for serial in std::mem::take(&mut holdings.marked_mfa_devices) {
            lock(&self.mfa_tags)
                .entry(serial.clone())
                .or_default()
                .insert(crate::lifecycle::MFA_OWNER_TAG.into(), holdings.user_id.clone());
            if !holdings.mfa_devices.iter().any(|(s, _)| *s == serial) {
                lock(&self.unassigned).insert(serial);
            }
        }
        lock(&self.users).insert(user_name.to_owned(), holdings);
    }

    /// A virtual device assigned to nobody, with these tags (another user's,
    /// or nobody's).
    pub fn insert_unassigned_device(&self, serial: &str, tags: BTreeMap<String, String>) {
        lock(&self.mfa_tags).insert(serial.to_owned(), tags);
        lock(&self.unassigned).insert(serial.to_owned());
    }

    /// Virtual devices that exist and are assigned to nobody.
    pub fn unassigned_devices(&self) -> Vec<String> {
        lock(&self.unassigned).iter().cloned().collect()
    }

    pub fn device_tags(&self, serial: &str) -> BTreeMap<String, String> {
        lock(&self.mfa_tags).get(serial).cloned().unwrap_or_default()
    }

    /// What `Offboarding::holdings` answers: the marks of the user's assigned
    /// virtual devices only.
    pub fn holdings_of(&self, user_name: &str) -> Option<crate::lifecycle::UserHoldings> {
        let mut h = lock(&self.users).get(user_name).cloned()?;
        h.marked_mfa_devices = h
            .mfa_devices
            .iter()
            .filter(|(serial, is_virtual)| *is_virtual && self.marked_for(serial, &h.user_id))
            .map(|(serial, _)| serial.clone())
            .collect();
        Some(h)
    }

    fn marked_for(&self, serial: &str, user_id: &str) -> bool {
        lock(&self.mfa_tags).get(serial).and_then(|t| t.get(crate::lifecycle::MFA_OWNER_TAG)).map(String::as_str)
            == Some(user_id)
    }

    /// The calls that succeeded, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// The `n`-th call from now (0: the next) fails, as a cut-off would.
    pub fn fail_at(&self, n: usize) {
        *lock(&self.fail_at) = Some(n);
    }
}

impl Offboarding for MemoryOffboarding {
    async fn holdings(&self, user_name: &str) -> Result<Option<crate::lifecycle::UserHoldings>> {
        Ok(self.holdings_of(user_name))
    }

    async fn unassigned_mfa_devices_marked_for(&self, user_id: &str) -> Result<Vec<String>> {
        let unassigned = self.unassigned_devices();
        Ok(unassigned.into_iter().filter(|serial| self.marked_for(serial, user_id)).collect())
    }

    async fn apply(&self, user_name: &str, step: &crate::lifecycle::Step) -> Result<()> {
        use crate::lifecycle::{Step, MFA_OWNER_TAG, OFFBOARDED_ON_TAG, OFFBOARDED_TAG};
        {
            let mut fail_at = lock(&self.fail_at);
            match *fail_at {
                Some(0) => {
                    *fail_at = None;
                    return Err(Error::retryable("IAM", "connection reset (injected)"));
                }
                Some(n) => *fail_at = Some(n - 1),
                None => {}
            }
        }
        let mut users = lock(&self.users);
        let Some(h) = users.get_mut(user_name) else {
            return Ok(());
        };
        if let Step::DeleteVirtualMfaDevice(d) = step {
            if h.mfa_devices.iter().any(|(serial, _)| serial == d) {
                return Err(Error::retryable("DeleteVirtualMFADevice", "DeleteConflict: the device is assigned"));
            }
        }
        match step {
            Step::DeleteLoginProfile => h.login_profile = false,
            Step::DeactivateAccessKey(k) => {
                h.access_keys.iter_mut().filter(|(id, _)| id == k).for_each(|k| k.1 = false)
            }
            Step::DeleteAccessKey(k) => h.access_keys.retain(|(id, _)| id != k),
            Step::DeleteSigningCertificate(c) => h.signing_certificates.retain(|x| x != c),
            Step::DeleteSshPublicKey(k) => h.ssh_public_keys.retain(|x| x != k),
            Step::DeleteServiceSpecificCredential(c) => h.service_specific_credentials.retain(|x| x != c),
            Step::TagMfaDevice { serial, user_id } => {
                lock(&self.mfa_tags).entry(serial.clone()).or_default().insert(MFA_OWNER_TAG.into(), user_id.clone());
            }
            // Deactivated: no longer the user's device; a virtual one still
            // exists, assigned to nobody.
            Step::DeactivateMfaDevice(d) => {
                let was = h.mfa_devices.iter().find(|(serial, _)| serial == d).cloned();
                h.mfa_devices.retain(|(serial, _)| serial != d);
                if let Some((serial, true)) = was {
                    lock(&self.unassigned).insert(serial);
                }
            }
            Step::DeleteVirtualMfaDevice(d) => {
                lock(&self.unassigned).remove(d);
                lock(&self.mfa_tags).remove(d);
            }
            Step::RemoveUserFromGroup(g) => h.groups.retain(|x| x != g),
            Step::DetachUserPolicy(p) => h.managed_policies.retain(|x| x != p),
            Step::DeleteUserPolicy(p) => h.inline_policies.retain(|x| x != p),
            Step::TagOffboarded { ticket_id, on } => {
                h.tags.insert(OFFBOARDED_TAG.into(), ticket_id.clone());
                h.tags.insert(OFFBOARDED_ON_TAG.into(), on.clone());
            }
            Step::DeleteUser => {
                let remains = h.login_profile
                    || !h.access_keys.is_empty()
                    || !h.signing_certificates.is_empty()
                    || !h.ssh_public_keys.is_empty()
                    || !h.service_specific_credentials.is_empty()
                    || !h.mfa_devices.is_empty()
                    || !h.groups.is_empty()
                    || !h.managed_policies.is_empty()
                    || !h.inline_policies.is_empty();
                if remains {
                    return Err(Error::retryable("DeleteUser", "DeleteConflict: the user still holds entities"));
                }
                users.remove(user_name);
            }
        }
        lock(&self.calls).push(format!("{user_name}: {step:?}"));
        Ok(())
    }
}

/// The offboarding fake read as a directory, so a stage's ownership check and
/// its offboarding see the same users (and a deleted one is gone for both).
impl Users for MemoryOffboarding {
    async fn list_user_names(&self) -> Result<Vec<String>> {
        Ok(lock(&self.users).keys().cloned().collect())
    }

    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>> {
        Ok(lock(&self.users).get(user_name).map(|h| IamUser {
            user_name: user_name.to_owned(),
            path: "/".into(),
            arn: format!("arn:aws:iam::123456789012:user/{user_name}"),
            boundary: None,
            tags: h.tags.clone(),
        }))
    }

    async fn permissions(&self, user_name: &str) -> Result<Permissions> {
        Ok(lock(&self.users)
            .get(user_name)
            .map(|h| Permissions {
                groups: h.groups.clone(),
                managed_policies: h.managed_policies.clone(),
                inline_policies: h.inline_policies.clone(),
                boundary: None,
            })
            .unwrap_or_default())
    }
}

/// IAM as an access change sees it: each user's groups and managed
/// policies, group names compared case-insensitively as IAM does, and a
/// call to fail.
#[derive(Debug, Default)]
pub struct MemoryAccess {
    users: Mutex<BTreeMap<String, Permissions>>,
    /// user -> tags, as `Users::get_user` reads them (`set_tags`).
    tags: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    calls: Mutex<Vec<String>>,
    fail_at: Mutex<Option<usize>>,
}

impl MemoryAccess {
    pub fn insert(&self, user_name: &str, access: Permissions) {
        lock(&self.users).insert(user_name.to_owned(), access);
    }

    pub fn access_held(&self, user_name: &str) -> Option<Permissions> {
        lock(&self.users).get(user_name).cloned()
    }

    /// The calls that succeeded, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// The `n`-th call from now (0: the next) fails, as a cut-off would.
    pub fn fail_at(&self, n: usize) {
        *lock(&self.fail_at) = Some(n);
    }
}

impl AccessChanges for MemoryAccess {
    async fn access_of(&self, user_name: &str) -> Result<Option<Permissions>> {
        Ok(self.access_held(user_name))
    }

    async fn apply_access(&self, user_name: &str, step: &crate::access::AccessStep) -> Result<()> {
        use crate::access::AccessStep;
        {
            let mut fail_at = lock(&self.fail_at);
            match *fail_at {
                Some(0) => {
                    *fail_at = None;
                    return Err(Error::retryable("IAM", "connection reset (injected)"));
                }
                Some(n) => *fail_at = Some(n - 1),
                None => {}
            }
        }
        let mut users = lock(&self.users);
        let p = users
            .get_mut(user_name)
            .ok_or_else(|| Error::permanent("IAM", format!("NoSuchEntity: user {user_name} does not exist")))?;
        match step {
            AccessStep::RemoveUserFromGroup(g) => p.groups.retain(|x| !x.eq_ignore_ascii_case(g)),
            AccessStep::DetachUserPolicy(a) => p.managed_policies.retain(|x| x != a.as_str()),
            AccessStep::AddUserToGroup(g) => {
                if !p.groups.iter().any(|x| x.eq_ignore_ascii_case(g)) {
                    p.groups.push(g.clone());
                }
            }
            AccessStep::AttachUserPolicy(a) => {
                if !p.managed_policies.iter().any(|x| x == a.as_str()) {
                    p.managed_policies.push(a.to_string());
                }
            }
        }
        lock(&self.calls).push(format!("{step:?}"));
        Ok(())
    }
}

impl MemoryAccess {
    /// The user's tags (the managed tag and the ticket's, say), as create-user
    /// would have set them.
    pub fn set_tags(&self, user_name: &str, tags: &[(&str, &str)]) {
        let tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        lock(&self.tags).insert(user_name.to_owned(), tags);
    }
}

/// The access-change fake read as a directory, so a stage's ownership check
/// and its access change see the same users.
impl Users for MemoryAccess {
    async fn list_user_names(&self) -> Result<Vec<String>> {
        Ok(lock(&self.users).keys().cloned().collect())
    }

    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>> {
        if !lock(&self.users).contains_key(user_name) {
            return Ok(None);
        }
        Ok(Some(IamUser {
            user_name: user_name.to_owned(),
            path: "/".into(),
            arn: format!("arn:aws:iam::123456789012:user/{user_name}"),
            boundary: None,
            tags: lock(&self.tags).get(user_name).cloned().unwrap_or_default(),
        }))
    }

    async fn permissions(&self, user_name: &str) -> Result<Permissions> {
        Ok(self.access_held(user_name).unwrap_or_default())
    }
}
