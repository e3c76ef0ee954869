//! In-memory implementations of the ports, for unit tests of the handlers.
//! They keep the semantics the handlers rely on (exact-name lookups,
//! idempotent group/policy attachment, conditional status writes), and can
//! be told to fail an operation to exercise error paths.

use crate::error::{Error, Result};
use crate::ports::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
pub struct MemoryDirectory {
    users: Mutex<BTreeMap<String, (IamUser, Permissions)>>,
    /// Operation name -> errors to return, one per call, before succeeding.
    faults: Mutex<HashMap<&'static str, Vec<Error>>>,
    /// Every mutating call, in order, for assertions.
    pub calls: Mutex<Vec<String>>,
}

impl MemoryDirectory {
    pub fn fail_next(&self, operation: &'static str, error: Error) {
        lock(&self.faults).entry(operation).or_default().push(error);
    }

    fn fault(&self, operation: &'static str) -> Result<()> {
        match lock(&self.faults).get_mut(operation) {
            Some(v) if !v.is_empty() => Err(v.remove(0)),
            _ => Ok(()),
        }
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

    fn with_user<T>(
        &self,
        name: &str,
        op: &'static str,
        f: impl FnOnce(&mut Permissions) -> T,
    ) -> Result<T> {
        let mut users = lock(&self.users);
        let (_, perms) = users
            .get_mut(name)
            .ok_or_else(|| Error::permanent(op, format!("user {name} does not exist")))?;
        Ok(f(perms))
    }
}

impl UserDirectory for MemoryDirectory {
    async fn list_user_names(&self) -> Result<Vec<String>> {
        self.fault("ListUsers")?;
        Ok(lock(&self.users).keys().cloned().collect())
    }

    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>> {
        self.fault("GetUser")?;
        Ok(lock(&self.users).get(user_name).map(|(u, p)| IamUser {
            boundary: p.boundary.clone(),
            ..u.clone()
        }))
    }

    async fn create_user(&self, user: &NewUser) -> Result<Created> {
        self.fault("CreateUser")?;
        lock(&self.calls).push(format!("CreateUser {}", user.user_name));
        let mut users = lock(&self.users);
        if users.contains_key(&user.user_name) {
            return Ok(Created::AlreadyExists);
        }
        let iam = IamUser {
            user_name: user.user_name.clone(),
            path: user.path.clone(),
            arn: format!(
                "arn:aws:iam::123456789012:user{}{}",
                user.path, user.user_name
            ),
            boundary: Some(user.boundary.clone()),
            tags: user.tags.clone(),
        };
        let perms = Permissions {
            boundary: Some(user.boundary.clone()),
            ..Default::default()
        };
        users.insert(user.user_name.clone(), (iam, perms));
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

    async fn put_user_policy(
        &self,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        self.fault("PutUserPolicy")?;
        lock(&self.calls).push(format!("PutUserPolicy {user_name} {policy_name}"));
        self.with_user(user_name, "PutUserPolicy", |p| {
            p.inline_policies.retain(|(n, _)| n != policy_name);
            p.inline_policies
                .push((policy_name.to_owned(), document.to_owned()));
        })
    }

    async fn permissions(&self, user_name: &str) -> Result<Permissions> {
        self.fault("Permissions")?;
        self.with_user(user_name, "GetUser", |p| p.clone())
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
        lock(&self.records)
            .get(key)
            .is_some_and(|r| r.completed.is_some())
    }
}

impl IdempotencyStore for MemoryIdempotency {
    async fn claim(
        &self,
        key: &str,
        hash: &str,
        now: u64,
        lease_until: u64,
        expires_at: u64,
    ) -> Result<Claim> {
        let mut records = lock(&self.records);
        if let Some(r) = records.get(key) {
            let live = r.expires_at > now && (r.completed.is_some() || r.lease_until > now);
            if live {
                return Ok(match (&r.completed, r.hash == hash) {
                    (_, false) => Claim::Mismatch,
                    (Some(v), true) => Claim::Completed(v.clone()),
                    (None, true) => Claim::InProgress,
                });
            }
        }
        records.insert(
            key.to_owned(),
            IdemRecord {
                hash: hash.to_owned(),
                completed: None,
                lease_until,
                expires_at,
            },
        );
        Ok(Claim::Acquired)
    }

    async fn complete(
        &self,
        key: &str,
        hash: &str,
        result: &serde_json::Value,
        expires_at: u64,
    ) -> Result<()> {
        lock(&self.records).insert(
            key.to_owned(),
            IdemRecord {
                hash: hash.to_owned(),
                completed: Some(result.clone()),
                lease_until: 0,
                expires_at,
            },
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
}

impl StatusStore for MemoryStatus {
    async fn record(&self, record: &StatusRecord) -> Result<()> {
        let mut records = lock(&self.records);
        let key = (record.ticket_id.clone(), record.user_name.clone());
        if records
            .get(&key)
            .is_none_or(|old| old.stage <= record.stage)
        {
            records.insert(key, record.clone());
        }
        Ok(())
    }

    async fn for_ticket(&self, ticket_id: &str) -> Result<Vec<StatusRecord>> {
        Ok(lock(&self.records)
            .values()
            .filter(|r| r.ticket_id == ticket_id)
            .cloned()
            .collect())
    }
}

#[derive(Debug, Default)]
pub struct MemoryPublisher {
    pub published: Mutex<Vec<UserReady>>,
}

impl MemoryPublisher {
    pub fn events(&self) -> Vec<UserReady> {
        lock(&self.published).clone()
    }
}

impl EventPublisher for MemoryPublisher {
    async fn publish(&self, event: &UserReady) -> Result<()> {
        lock(&self.published).push(event.clone());
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct MemoryMailer {
    pub sent: Mutex<Vec<(String, Email)>>,
    faults: Mutex<Vec<Error>>,
}

impl MemoryMailer {
    pub fn outbox(&self) -> Vec<Email> {
        lock(&self.sent).iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn fail_next(&self, error: Error) {
        lock(&self.faults).push(error);
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, from: &str, email: &Email) -> Result<String> {
        {
            let mut faults = lock(&self.faults);
            if !faults.is_empty() {
                return Err(faults.remove(0));
            }
        }
        let mut sent = lock(&self.sent);
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
