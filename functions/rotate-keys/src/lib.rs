//! rotate-keys: the scheduled half of the pipeline (CONTRACT.md section 4).
//!
//! Each run looks at every user under the configured path tagged
//! `iam-provisioner:managed=true`, plans each key (see `plan`), and acts:
//! successors are issued through the issue-credentials queue (so one slow
//! user does not hold the run, and the new key reaches the secret and the
//! user's inbox by the onboarding path); warnings, deactivations and
//! deletions are single calls made here. Every action is idempotent and the
//! ledger keeps the times, so a second run the same day does nothing more
//! and a run cut off half way is resumed by the next. Dry-run plans the same
//! way and acts on nothing.

pub mod plan;

use plan::{Action, KeyPlan, Settings};
use serde::{Deserialize, Serialize};
use shared::config::RotateKeysConfig;
use shared::error::{Error, Result};
use shared::handoff::{Rotation, UserReady};
use shared::idempotency::{self, payload_hash, Key, Window};
use shared::ports::*;
use shared::text::{date, html_escape};
use shared::ticket::MANAGED_TAG;
use std::collections::BTreeMap;

pub struct Deps<D, I, P, M, L, C> {
    pub directory: D,
    pub idempotency: I,
    pub publisher: P,
    pub mailer: M,
    pub ledger: L,
    pub clock: C,
    pub config: RotateKeysConfig,
}

/// What a run is asked to do: the schedule sends `{}` (or EventBridge's
/// "Scheduled Event"); a person may name one user or ask for a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RotationRequest {
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

impl RotationRequest {
    pub fn from_event(event: &serde_json::Value) -> Result<Self> {
        if event.get("detail-type").is_some() {
            let detail = event.get("detail").cloned().unwrap_or_default();
            return Ok(serde_json::from_value(detail).unwrap_or_default());
        }
        serde_json::from_value(event.clone())
            .map_err(|e| Error::permanent("rotate-keys", format!("not a rotation request: {e}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserPlan {
    pub user_name: String,
    pub keys: Vec<KeyPlan>,
    /// Keys IAM saw in use after their successor was issued.
    pub used_after_successor: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub dry_run: bool,
    pub users: usize,
    pub exempt: Vec<String>,
    /// Actions due this run (done, or for a dry run only planned), by kind.
    pub counts: BTreeMap<String, usize>,
    pub plans: Vec<UserPlan>,
}

impl RunSummary {
    /// (user, key, action) of everything due, for comparing runs.
    pub fn due(&self) -> Vec<(String, String, String)> {
        let mut due: Vec<_> = self
            .plans
            .iter()
            .flat_map(|u| {
                u.keys.iter().filter_map(move |k| {
                    k.now.as_ref().map(|a| (u.user_name.clone(), k.access_key_id.clone(), a.name().to_owned()))
                })
            })
            .collect();
        due.sort();
        due
    }
}

impl<D, I, P, M, L, C> Deps<D, I, P, M, L, C>
where
    D: Users + Credentials + KeyRetirement,
    I: IdempotencyStore,
    P: EventPublisher,
    M: Mailer,
    L: KeyLedger,
    C: Clock,
{
    fn settings(&self) -> Settings {
        let c = &self.config;
        Settings {
            rotation_age: c.rotation_age_secs,
            grace: c.grace_secs,
            delete_after: c.delete_after_secs,
            warning: c.warning_secs,
        }
    }

    pub async fn run(&self, request: &RotationRequest) -> Result<RunSummary> {
        let now = self.clock.now();
        let names = match &request.user_name {
            Some(name) => vec![name.clone()],
            None => self.directory.list_user_names_under(&self.config.user_path_prefix).await?,
        };
        let mut summary = RunSummary { dry_run: request.dry_run, ..Default::default() };
        for name in names {
            let Some(user) = self.directory.get_user(&name).await? else { continue };
            if user.tags.get(MANAGED_TAG).map(String::as_str) != Some("true") {
                continue;
            }
            summary.users += 1;
            if user.tags.get(&self.config.exempt_tag).map(String::as_str) == Some("true") {
                summary.exempt.push(name);
                continue;
            }
            let keys = self.directory.access_keys(&name).await?;
            let ledger = self.ledger.keys_of(&name).await?;
            let plans = plan::plan(now, self.settings(), &keys, &ledger);
            let mut used_after_successor = Vec::new();
            // Before acting: whether an active predecessor is still in use
            // after its successor appeared is a fact of the keys as found.
            for key in keys.iter().filter(|k| k.active) {
                let successor = ledger.iter().find(|r| r.replaces.as_deref() == Some(key.access_key_id.as_str()));
                if let Some(successor) = successor {
                    let used = self.directory.access_key_last_used(&key.access_key_id).await?;
                    if used.is_some_and(|t| t > successor.issued_at) {
                        used_after_successor.push(key.access_key_id.clone());
                    }
                }
            }
            for p in &plans {
                if let Some(action) = &p.now {
                    *summary.counts.entry(action.name().to_owned()).or_default() += 1;
                    if !request.dry_run {
                        self.act(&user, p, action, &ledger, now).await?;
                    }
                }
            }
            summary.plans.push(UserPlan { user_name: name, keys: plans, used_after_successor });
        }
        let counts = serde_json::to_string(&summary.counts).unwrap_or_default();
        let used: Vec<&String> = summary.plans.iter().flat_map(|p| &p.used_after_successor).collect();
        tracing::info!(
            dry_run = summary.dry_run,
            users = summary.users,
            exempt = summary.exempt.len(),
            counts = %counts,
            used_after_successor = ?used,
            "rotation run finished"
        );
        Ok(summary)
    }

    async fn act(&self, user: &IamUser, p: &KeyPlan, action: &Action, ledger: &[KeyRecord], now: u64) -> Result<()> {
        let name = &user.user_name;
        let key = &p.access_key_id;
        let window = Window::new(now, now + 300, self.config.idempotency_ttl_secs);
        let record = ledger.iter().find(|r| &r.access_key_id == key);
        let email = record.map(|r| r.email.clone()).or_else(|| ledger.first().map(|r| r.email.clone()));
        let mut update = record.cloned().unwrap_or_else(|| KeyRecord {
            user_name: name.clone(),
            access_key_id: key.clone(),
            email: email.clone().unwrap_or_default(),
            issued_at: now,
            replaces: None,
            warned_at: None,
            deactivated_at: None,
            deleted_at: None,
            rotation_deadline: None,
        });
        match action {
            Action::Rotate { deactivate_after } => {
                // Only a key the pipeline issued (the ledger holds it, with
                // its owner's address) is rotated: the later stages would
                // not act on anything else.
                let Some(record) = record else {
                    tracing::warn!(user = %name, access_key_id = %key, "the ledger has no record of this key (the pipeline did not issue it); rotation skipped");
                    return Ok(());
                };
                // A deadline once recorded is the one: a rerun after a failed
                // or cut-off run asks with the same one, or the later stages
                // would find the message differing from the ledger.
                update.rotation_deadline = Some(record.rotation_deadline.unwrap_or(*deactivate_after));
                // Built from the ledger record, as issue-credentials and
                // notify-user rebuild it to check the message.
                let Some(rotation) = Rotation::ordered(&update) else {
                    tracing::error!(user = %name, access_key_id = %key, "the ledger record of this key holds no usable user name or address; rotation skipped");
                    return Ok(());
                };
                let ready = UserReady::Rotation(rotation);
                // The ledger says so first: the later stages act on a
                // rotation only where it does.
                self.ledger.update(&update).await?;
                // Keyed by the key: however often the run repeats before the
                // successor exists, one successor is asked for.
                let hash = payload_hash(&(name, key))?;
                idempotency::once(&self.idempotency, &Key::successor(name, key), &hash, window, || async {
                    self.publisher.publish(&shared::handoff::write(&ready)).await.map(|()| true)
                })
                .await?;
                tracing::info!(user = %name, access_key_id = %key, "successor requested");
            }
            Action::Warn { deactivate_on } => {
                if let Some(to) = email {
                    let mail = warning_email(&to, key, *deactivate_on);
                    let once_key = Key::deactivation_warning(name, key);
                    let hash = payload_hash(&(name, key))?;
                    idempotency::once(&self.idempotency, &once_key, &hash, window, || {
                        self.mailer.send(&self.config.sender, &mail)
                    })
                    .await?;
                }
                update.warned_at = Some(now);
                self.ledger.update(&update).await?;
                tracing::info!(user = %name, access_key_id = %key, "warned of deactivation");
            }
            Action::Deactivate { successor } => {
                self.directory.set_access_key_active(name, key, false).await?;
                update.deactivated_at = Some(now);
                self.ledger.update(&update).await?;
                tracing::info!(user = %name, access_key_id = %key, %successor, "deactivated");
            }
            Action::Delete => {
                self.directory.delete_access_key(name, key).await?;
                update.deleted_at = Some(now);
                self.ledger.update(&update).await?;
                tracing::info!(user = %name, access_key_id = %key, "deleted");
            }
            Action::Skip { reason } => {
                tracing::warn!(user = %name, access_key_id = %key, %reason, "rotation step skipped");
            }
        }
        Ok(())
    }
}

fn warning_email(to: &str, access_key_id: &str, deactivate_on: u64) -> Email {
    let when = date(deactivate_on);
    let text = format!(
        "Hello,\n\nYour AWS access key {access_key_id} was replaced by a new one and will be deactivated on {when}.\n\
         Switch everything that uses it to the new key (see your earlier email) before then.\n"
    );
    let html = format!(
        "<p>Hello,</p><p>Your AWS access key <code>{}</code> was replaced by a new one and will be deactivated on <b>{when}</b>.</p>\
         <p>Switch everything that uses it to the new key (see your earlier email) before then.</p>",
        html_escape(access_key_id)
    );
    Email { to: to.to_owned(), subject: format!("Your old AWS access key stops working on {when}"), text, html }
}

#[cfg(test)]
mod tests;
