//! `rotation-plan [USER]`: rotate-keys' own dry run (`Deps::run` with
//! `dry_run: true`), so the plan shown is the planner's, not a second copy
//! of its rules. The dry run acts on nothing; the ports it would act
//! through are `ReadOnly` here besides, so a change to that promise fails
//! loudly instead of acting.

use serde::Serialize;
use shared::names::UserName;
use shared::ports::{
    Claim, Clock, Credentials, Email, EventPublisher, IdempotencyStore, KeyLedger, KeyRetirement, Mailer, RotationRuns,
    Users,
};
use shared::text::date;
use shared::{Error, Result};

/// Publisher, mailer and idempotency store of a process that must not act.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnly;

pub(crate) fn refused(what: &str) -> Error {
    Error::permanent("ops", format!("the operator CLI does not act ({what} refused)"))
}

impl EventPublisher for ReadOnly {
    async fn publish<E: Serialize + Sync>(&self, _: &E) -> Result<()> {
        Err(refused("publish"))
    }
}

impl Mailer for ReadOnly {
    async fn send(&self, _: &str, _: &Email) -> Result<String> {
        Err(refused("email"))
    }
}

impl IdempotencyStore for ReadOnly {
    async fn claim(&self, _: &str, _: &str, _: u64, _: u64, _: u64) -> Result<Claim> {
        Err(refused("claim"))
    }
    async fn complete(&self, _: &str, _: &str, _: &serde_json::Value, _: u64) -> Result<()> {
        Err(refused("complete"))
    }
    async fn release(&self, _: &str) -> Result<()> {
        Err(refused("release"))
    }
}

pub type PlanDeps<D, L, C> = rotate_keys::Deps<D, ReadOnly, ReadOnly, ReadOnly, L, C>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationPlan {
    #[serde(flatten)]
    pub summary: rotate_keys::RunSummary,
    /// The user asked for, when it is not one the pipeline manages.
    pub unknown_user: Option<String>,
}

pub async fn rotation_plan<D, L, C>(deps: &PlanDeps<D, L, C>, user_name: Option<&UserName>) -> Result<RotationPlan>
where
    D: Users + Credentials + KeyRetirement,
    L: KeyLedger + RotationRuns,
    C: Clock,
{
    let request = rotate_keys::RotationRequest { user_name: user_name.map(ToString::to_string), dry_run: true };
    // A person waits for the whole plan: no Lambda deadline to stop at.
    let deadline = deps.clock.now() + 24 * 60 * 60;
    let summary = deps.run(&request, deadline).await?;
    let unknown_user = user_name.filter(|_| summary.users == 0).map(ToString::to_string);
    Ok(RotationPlan { summary, unknown_user })
}

impl RotationPlan {
    pub fn failed(&self) -> bool {
        self.unknown_user.is_some()
    }

    pub fn human(&self) -> String {
        let s = &self.summary;
        if let Some(u) = &self.unknown_user {
            return format!("{u} is not a user the pipeline manages (or does not exist): no plan\n");
        }
        let mut out = format!("rotation plan (dry run, nothing done): {} managed user(s)", s.users);
        if !s.exempt.is_empty() {
            out.push_str(&format!(", exempt: {}", s.exempt.join(", ")));
        }
        out.push('\n');
        for user in &s.plans {
            out.push_str(&format!("  {}\n", user.user_name));
            if user.keys.is_empty() {
                out.push_str("      no access keys\n");
            }
            for key in &user.keys {
                let now = match &key.now {
                    None => "nothing due".to_owned(),
                    Some(rotate_keys::plan::Action::Rotate { deactivate_after }) => {
                        format!("rotate now (the old key deactivated after {})", date(*deactivate_after))
                    }
                    Some(rotate_keys::plan::Action::Warn { deactivate_on }) => {
                        format!("warn now (deactivated on {})", date(*deactivate_on))
                    }
                    Some(rotate_keys::plan::Action::Deactivate { successor }) => {
                        format!("deactivate now (successor {successor})")
                    }
                    Some(rotate_keys::plan::Action::Delete) => "delete now".to_owned(),
                    Some(rotate_keys::plan::Action::Hold { until, last_used, .. }) => format!(
                        "held: used on {} after its successor was issued; deactivated on {} at the latest",
                        date(*last_used),
                        date(*until)
                    ),
                    Some(rotate_keys::plan::Action::Skip { reason }) => format!("due but skipped: {reason}"),
                };
                let next = key.next.as_ref().map(|(what, when)| format!("; next: {what} on {}", date(*when)));
                out.push_str(&format!(
                    "      {} ({} days old): {now}{}\n",
                    key.access_key_id,
                    key.age_days,
                    next.unwrap_or_default()
                ));
            }
            for key in &user.used_after_successor {
                out.push_str(&format!("      {key} was used after its successor was issued\n"));
            }
        }
        if s.counts.is_empty() {
            out.push_str("due now: nothing\n");
        } else {
            let counts: Vec<String> = s.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out.push_str(&format!("due now: {}\n", counts.join(", ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::{FromEnv, RotateKeysConfig};
    use shared::memory::{FixedClock, MemoryDirectory, MemoryLedger};
    use shared::ports::{IamUser, KeyRecord, Permissions};

    const DAY: u64 = 86_400;

    fn deps(now: u64) -> PlanDeps<MemoryDirectory, MemoryLedger, FixedClock> {
        let config = RotateKeysConfig::from_lookup(|k| match k {
            "TABLE_NAME" | "NEXT_QUEUE_URL" | "SENDER_EMAIL" => Some("-".into()),
            _ => None,
        })
        .unwrap();
        rotate_keys::Deps {
            directory: MemoryDirectory::default(),
            idempotency: ReadOnly,
            publisher: ReadOnly,
            mailer: ReadOnly,
            ledger: MemoryLedger::default(),
            clock: FixedClock::at(now),
            config,
        }
    }

    /// An old key is planned for rotation by rotate-keys' own planner, and
    /// nothing is done: the ports that would act refuse every call.
    #[tokio::test]
    async fn the_plan_is_the_dry_run_and_nothing_is_done() {
        let now = 400 * DAY;
        let d = deps(now);
        let user = IamUser {
            user_name: "ci".into(),
            path: "/".into(),
            arn: "arn:aws:iam::123456789012:user/ci".into(),
            boundary: None,
            tags: [(shared::ticket::MANAGED_TAG.to_owned(), "true".to_owned())].into(),
        };
        d.directory.insert(user, Permissions::default());
        let key = d.directory.create_access_key("ci").await.unwrap();
        let id = key.access_key_id.clone();
        d.ledger.record_issued(&KeyRecord::issued("ci", &id, "ci@example.com", now - 100 * DAY, None)).await.unwrap();
        let plan = rotation_plan(&d, None).await.unwrap();
        assert!(!plan.failed());
        assert!(plan.summary.dry_run);
        assert_eq!(plan.summary.due(), [("ci".to_owned(), id.clone(), "rotate".to_owned())]);
        let text = plan.human();
        assert!(text.contains(&format!("{id} (100 days old): rotate now")), "{text}");
        assert!(text.contains("due now: rotate 1"), "{text}");
        // Still one key, its record without a deadline: nothing was done.
        assert_eq!(d.directory.access_keys("ci").await.unwrap().len(), 1);
        assert_eq!(d.ledger.keys_of("ci").await.unwrap()[0].rotation_deadline, None);

        let nobody = UserName::parse("nobody").unwrap();
        let plan = rotation_plan(&d, Some(&nobody)).await.unwrap();
        assert!(plan.failed());
        assert!(plan.human().contains("nobody is not a user the pipeline manages"));
    }
}
