//! rotate-keys: the scheduled half of the pipeline (CONTRACT.md section 4).
//!
//! Each run looks at every user under the configured path tagged
//! `iam-provisioner:managed=true`, plans each key (see `plan`), and acts:
//! successors are issued through the issue-credentials queue (so one slow
//! user does not hold the run, and the new key reaches the secret and the
//! user's inbox by the onboarding path); warnings, holds, deactivations and
//! deletions are single calls made here. Every action is idempotent and the
//! ledger keeps the times, so a second run the same day does nothing more.
//! Dry-run plans the same way for every managed user and acts on nothing (it
//! neither follows nor writes the day's cursor).
//!
//! Orderings this module keeps:
//! - **Refuse before anything.** A request with an unknown field (`dryRun`
//!   for `dry_run`), or a scheduled event whose `detail` is not a request,
//!   is refused before any read or write: misread, a dry run would run live.
//! - **One user's failure is that user's.** It is recorded in the run's
//!   summary (`failed`, with its reason), logged with
//!   `alarm = "rotation_user_failed"`, and the run goes on. A failure that
//!   may pass (throttling, a lease held elsewhere) puts the user on the
//!   cursor's `retry` list, tried by the next invocation of the same day;
//!   the summary's `outcome` is then `retry_pending`.
//! - **The ledger says only what happened**: `warned_at` after the warning
//!   went (or had gone: its idempotency record says so), `deactivated_at`
//!   and `deleted_at` after IAM's call returned. The one record written
//!   ahead is `rotation_deadline`, before the successor is asked for,
//!   because the later stages trust a rotation only where it is.
//! - **Last use before acting.** IAM's last use of a predecessor is read
//!   before anything of the user is changed; a key used after its successor
//!   was issued is held (see `plan`), its owner emailed once when the hold
//!   starts and once before it ends, logged with
//!   `alarm = "rotated_key_still_used"`.
//! - **Leases end at the invocation's deadline**, so work a killed
//!   invocation left half done is taken over by the next invocation (15
//!   minutes later at most), never while the first may still run.
//!
//! Scale and resume (IAM allows 5,000 users per account; a Lambda
//! invocation lasts 15 minutes at most). A run is one per UTC day, with a
//! cursor in the pipeline's table (`ROTATION#<date>`, see
//! `ports::RotationCursor`): the users are listed whole (every page), sorted
//! by name, and planned `BATCH_CONCURRENCY` at a time in that order; after
//! each group the cursor is saved with the last name planned. Before each
//! group after the first, the invocation stops if less than `RESERVE_SECS`
//! are left to its deadline; the schedule's next tick (every 15 minutes in
//! the morning window, template.yaml) continues after the saved name, so
//! each user is planned once per daily run. A tick after the run is complete
//! reads the cursor and stops. The cursor is over names, not IAM's paging
//! marker (moto ignores `MaxItems`/`Marker`, and a marker does not outlive
//! the listing), so a user added during the run with a name sorting before
//! the cursor waits for tomorrow. Only an invocation killed mid-group (not
//! stopped at the reserve) plans that group again; its actions are
//! idempotent. A cursor over the pipeline's own table was chosen over a
//! queue fanning out one message per user: it needs no new queue, DLQ,
//! event source or grant, and the planner stays one function over one
//! user's facts either way.

pub mod plan;

use plan::{Action, HoldNotice, KeyPlan, Settings};
use serde::{Deserialize, Serialize};
use shared::config::RotateKeysConfig;
use shared::error::{Error, Result};
use shared::handoff::{Rotation, UserReady};
use shared::idempotency::{self, payload_hash, Key, Window};
use shared::ports::*;
use shared::text::{date, html_escape};
use shared::ticket::MANAGED_TAG;
use std::collections::BTreeMap;

/// An invocation starts no further group of users with less than this left
/// before its deadline: enough for a group's calls and their retries.
pub const RESERVE_SECS: u64 = 120;
/// How long a run's cursor is kept (its TTL).
const CURSOR_KEPT_SECS: u64 = 30 * 86_400;

pub struct Deps<D, I, P, M, L, C> {
    pub directory: D,
    pub idempotency: I,
    pub publisher: P,
    pub mailer: M,
    pub ledger: L,
    pub clock: C,
    pub config: RotateKeysConfig,
}

/// What a run is asked to do: the schedule sends `{"dry_run": false}` (or
/// EventBridge's "Scheduled Event", whose `detail` is the request); a person
/// may name one user or ask for a dry run. No other field is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationRequest {
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

impl RotationRequest {
    /// The request in an invocation's payload, or a refusal naming what is
    /// wrong: an unknown field, a wrong type, a scheduled event (it has
    /// `detail-type`) without a `detail` that is a request.
    pub fn from_event(event: &serde_json::Value) -> Result<Self> {
        let (what, body) = if event.get("detail-type").is_some() {
            match event.get("detail") {
                Some(detail) => ("the scheduled event's detail", detail),
                None => return Err(refused("the scheduled event has no detail")),
            }
        } else {
            ("the payload", event)
        };
        serde_json::from_value(body.clone()).map_err(|e| refused(&format!("{what} is not a rotation request: {e}")))
    }
}

fn refused(why: &str) -> Error {
    Error::permanent(
        "rotate-keys",
        format!(
            "{why}; nothing was done. Accepted: {{}}, {{\"dry_run\": true}}, {{\"user_name\": \"<name>\"}} \
             (both fields optional), or a Scheduled Event whose detail is one of these"
        ),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserPlan {
    pub user_name: String,
    pub keys: Vec<KeyPlan>,
    /// Keys IAM saw in use after their successor was issued.
    pub used_after_successor: Vec<String>,
}

/// A user the run could not finish this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserFailure {
    pub user_name: String,
    pub reason: String,
    /// Tried again by the next invocation of the day (a one-user request:
    /// by asking again).
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every user planned, or failed for a reason no retry fixes (`failed`).
    #[default]
    Done,
    /// Stopped before the deadline; the next invocation resumes after
    /// `resume_after`.
    CutOff,
    /// Every user planned once, but some failed for a reason that may pass:
    /// the next invocation tries them again.
    RetryPending,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub dry_run: bool,
    /// The run (UTC date) this invocation worked on; `None` for one user.
    pub run: Option<String>,
    pub outcome: Outcome,
    /// Where the next invocation resumes (the last user of the listing planned).
    pub resume_after: Option<String>,
    pub users: usize,
    pub exempt: Vec<String>,
    /// Actions due this run (done, or for a dry run only planned), by kind,
    /// for the users planned to the end.
    pub counts: BTreeMap<String, usize>,
    pub plans: Vec<UserPlan>,
    pub failed: Vec<UserFailure>,
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

    /// Adds one user's result; true if it failed for a reason that may pass.
    fn record(&mut self, name: &str, result: Result<Seen>) -> bool {
        match result {
            Ok(Seen::NotManaged) => false,
            Ok(Seen::Exempt) => {
                self.users += 1;
                self.exempt.push(name.to_owned());
                false
            }
            Ok(Seen::Planned(plan)) => {
                self.users += 1;
                for action in plan.keys.iter().filter_map(|k| k.now.as_ref()) {
                    *self.counts.entry(action.name().to_owned()).or_default() += 1;
                }
                self.plans.push(plan);
                false
            }
            Err(e) => {
                let retryable = e.is_retryable();
                tracing::error!(
                    alarm = "rotation_user_failed",
                    user = %name,
                    retryable,
                    error = %e,
                    "rotation of this user failed; the run goes on with the others"
                );
                self.failed.push(UserFailure { user_name: name.to_owned(), reason: e.to_string(), retryable });
                retryable
            }
        }
    }
}

/// What planning one user found.
enum Seen {
    /// No such user, or not the pipeline's.
    NotManaged,
    Exempt,
    Planned(UserPlan),
}

impl<D, I, P, M, L, C> Deps<D, I, P, M, L, C>
where
    D: Users + Credentials + KeyRetirement,
    I: IdempotencyStore,
    P: EventPublisher,
    M: Mailer,
    L: KeyLedger + RotationRuns,
    C: Clock,
{
    fn settings(&self) -> Settings {
        let c = &self.config;
        Settings {
            rotation_age: c.rotation_age_secs,
            grace: c.grace_secs,
            delete_after: c.delete_after_secs,
            warning: c.warning_secs,
            hold: c.hold_secs,
        }
    }

    /// One invocation: its payload, and its deadline (seconds since the
    /// epoch). A payload that is not a request is refused before anything.
    pub async fn handle(&self, payload: &serde_json::Value, deadline: u64) -> Result<RunSummary> {
        let request = RotationRequest::from_event(payload).inspect_err(|e| {
            tracing::error!(error = %e, "rotation request refused");
        })?;
        self.run(&request, deadline).await
    }

    /// Plans (and unless a dry run, acts on) the users this invocation
    /// reaches before `deadline` (seconds since the epoch).
    pub async fn run(&self, request: &RotationRequest, deadline: u64) -> Result<RunSummary> {
        let now = self.clock.now();
        let mut summary = RunSummary { dry_run: request.dry_run, ..Default::default() };
        if let Some(name) = &request.user_name {
            let result = self.user(name, request.dry_run, now, deadline).await;
            if summary.record(name, result) {
                summary.outcome = Outcome::RetryPending;
            }
            log_summary(&summary);
            return Ok(summary);
        }
        let run = date(now);
        summary.run = Some(run.clone());
        // A dry run plans everyone, whatever today's run has done: it is
        // what a person asks to see, and it moves no cursor.
        let recorded = if request.dry_run { None } else { self.ledger.cursor(&run).await? };
        let mut cursor = recorded.unwrap_or_else(|| RotationCursor { run: run.clone(), ..Default::default() });
        if cursor.complete() {
            tracing::info!(run = %run, "today's rotation run is complete; nothing to do");
            return Ok(summary);
        }
        let mut work = Vec::new();
        if !cursor.listed_all {
            let mut names = self.directory.list_user_names_under(&self.config.user_path_prefix).await?;
            names.sort();
            names.dedup();
            names.retain(|n| cursor.after.as_ref().is_none_or(|after| n > after));
            work = names;
        }
        let listed = work.len();
        // Users that failed for a reason that may pass, after the listing.
        let retries: Vec<String> = cursor.retry.iter().filter(|n| !work.contains(n)).cloned().collect();
        work.extend(retries);
        let group = self.config.concurrency.max(1);
        let mut done = 0;
        while done < work.len() {
            if done > 0 && self.clock.now().saturating_add(RESERVE_SECS) >= deadline {
                summary.outcome = Outcome::CutOff;
                break;
            }
            let end = (done + group).min(work.len());
            let names = &work[done..end];
            let results =
                shared::lambda::bounded(group, names.iter().map(|n| self.user(n, request.dry_run, now, deadline)))
                    .await;
            for (i, (name, result)) in names.iter().zip(results).enumerate() {
                if done + i < listed {
                    cursor.after = Some(name.clone());
                } else {
                    cursor.retry.retain(|r| r != name);
                }
                if summary.record(name, result) {
                    cursor.retry.push(name.clone());
                }
            }
            done = end;
            cursor.listed_all = done >= listed;
            if !request.dry_run {
                self.ledger.save_cursor(&cursor, now + CURSOR_KEPT_SECS).await?;
            }
        }
        if done >= listed && !cursor.listed_all {
            // Nothing was left to list (every user planned before).
            cursor.listed_all = true;
            if !request.dry_run {
                self.ledger.save_cursor(&cursor, now + CURSOR_KEPT_SECS).await?;
            }
        }
        summary.resume_after = cursor.after.clone();
        if summary.outcome != Outcome::CutOff && !cursor.retry.is_empty() {
            summary.outcome = Outcome::RetryPending;
        }
        log_summary(&summary);
        Ok(summary)
    }

    /// Plans one user's keys and, unless a dry run, acts on what is due.
    async fn user(&self, name: &str, dry_run: bool, now: u64, deadline: u64) -> Result<Seen> {
        let Some(user) = self.directory.get_user(name).await? else { return Ok(Seen::NotManaged) };
        if user.tags.get(MANAGED_TAG).map(String::as_str) != Some("true") {
            return Ok(Seen::NotManaged);
        }
        if user.tags.get(&self.config.exempt_tag).map(String::as_str) == Some("true") {
            return Ok(Seen::Exempt);
        }
        let keys = self.directory.access_keys(name).await?;
        let ledger = self.ledger.keys_of(name).await?;
        // Before acting: whether a predecessor is still in use after its
        // successor was issued is a fact of the keys as found.
        let mut last_used = BTreeMap::new();
        for id in plan::last_use_wanted(&keys, &ledger) {
            if let Some(t) = self.directory.access_key_last_used(&id).await? {
                last_used.insert(id, t);
            }
        }
        let plans = plan::plan(now, self.settings(), &keys, &ledger, &last_used);
        let used_after_successor = last_used
            .iter()
            .filter(|(id, t)| ledger.iter().any(|r| r.replaces.as_deref() == Some(id.as_str()) && **t > r.issued_at))
            .map(|(id, _)| id.clone())
            .collect();
        if !dry_run {
            for p in &plans {
                if let Some(action) = &p.now {
                    self.act(&user, p, action, &ledger, now, deadline).await?;
                }
            }
        }
        Ok(Seen::Planned(UserPlan { user_name: name.to_owned(), keys: plans, used_after_successor }))
    }

    async fn act(
        &self,
        user: &IamUser,
        p: &KeyPlan,
        action: &Action,
        ledger: &[KeyRecord],
        now: u64,
        deadline: u64,
    ) -> Result<()> {
        let name = &user.user_name;
        let key = &p.access_key_id;
        let window = Window::new(now, deadline, self.config.idempotency_ttl_secs);
        let record = ledger.iter().find(|r| &r.access_key_id == key);
        let email = record
            .map(|r| r.email.clone())
            .or_else(|| ledger.first().map(|r| r.email.clone()))
            .filter(|e| !e.is_empty());
        let mut update = record
            .cloned()
            .unwrap_or_else(|| KeyRecord::issued(name, key, &email.clone().unwrap_or_default(), now, None));
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
                let Some(to) = email else {
                    tracing::error!(user = %name, access_key_id = %key, "no address to warn; no warning sent or recorded");
                    return Ok(());
                };
                let mail = warning_email(&to, key, *deactivate_on);
                let hash = payload_hash(&(name, key))?;
                idempotency::once(&self.idempotency, &Key::deactivation_warning(name, key), &hash, window, || {
                    self.send(&mail)
                })
                .await?;
                // Only now: the email went (this run, or an earlier one whose
                // record says so).
                update.warned_at = Some(now);
                self.ledger.update(&update).await?;
                tracing::info!(user = %name, access_key_id = %key, "warned of deactivation");
            }
            Action::Hold { until, last_used, notice } => {
                tracing::warn!(
                    alarm = "rotated_key_still_used",
                    user = %name,
                    access_key_id = %key,
                    last_used = *last_used,
                    last_used_date = %date(*last_used),
                    hold_until = %date(*until),
                    "key used after its successor was issued: held, not deactivated"
                );
                let Some(to) = email else {
                    tracing::error!(user = %name, access_key_id = %key, "no address to tell of the hold");
                    return Ok(());
                };
                let hash = payload_hash(&(name, key))?;
                // The start notice first, whichever is due: a hold first
                // seen near its end still tells of its start.
                let start = hold_email(&to, key, *last_used, *until, HoldNotice::Start);
                idempotency::once(&self.idempotency, &Key::hold_notice(name, key, "start"), &hash, window, || {
                    self.send(&start)
                })
                .await?;
                if *notice == HoldNotice::Ending {
                    let ending = hold_email(&to, key, *last_used, *until, HoldNotice::Ending);
                    idempotency::once(&self.idempotency, &Key::hold_notice(name, key, "ending"), &hash, window, || {
                        self.send(&ending)
                    })
                    .await?;
                }
            }
            Action::Deactivate { successor } => {
                self.directory.set_access_key_active(name, key, false).await?;
                shared::metrics::count(shared::metrics::name::KEYS_DEACTIVATED, 1);
                update.deactivated_at = Some(now);
                self.ledger.update(&update).await?;
                tracing::info!(user = %name, access_key_id = %key, %successor, "deactivated");
            }
            Action::Delete => {
                self.directory.delete_access_key(name, key).await?;
                shared::metrics::count(shared::metrics::name::KEYS_DELETED, 1);
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

    /// One email out, counted once SES took it.
    async fn send(&self, email: &Email) -> Result<String> {
        let id = self.mailer.send(&self.config.sender, email).await?;
        shared::metrics::count(shared::metrics::name::EMAILS_SENT, 1);
        Ok(id)
    }
}

fn log_summary(summary: &RunSummary) {
    let counts = serde_json::to_string(&summary.counts).unwrap_or_default();
    let used: Vec<&String> = summary.plans.iter().flat_map(|p| &p.used_after_successor).collect();
    let failed: Vec<&str> = summary.failed.iter().map(|f| f.user_name.as_str()).collect();
    tracing::info!(
        dry_run = summary.dry_run,
        run = ?summary.run,
        outcome = ?summary.outcome,
        resume_after = ?summary.resume_after,
        users = summary.users,
        exempt = summary.exempt.len(),
        counts = %counts,
        used_after_successor = ?used,
        failed = ?failed,
        "rotation invocation finished"
    );
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

fn hold_email(to: &str, access_key_id: &str, last_used: u64, until: u64, notice: HoldNotice) -> Email {
    let (used, when) = (date(last_used), date(until));
    let subject = match notice {
        HoldNotice::Start => format!("Your old AWS access key is still in use; it stops working on {when}"),
        HoldNotice::Ending => format!("Last notice: your old AWS access key stops working on {when}"),
    };
    let text = format!(
        "Hello,\n\nYour AWS access key {access_key_id} was replaced by a new one, but AWS saw it used on {used}.\n\
         It is kept active until {when} and deactivated then, whether or not it is still in use.\n\
         Switch everything that uses it to the new key (see your earlier email) before then.\n"
    );
    let html = format!(
        "<p>Hello,</p><p>Your AWS access key <code>{}</code> was replaced by a new one, but AWS saw it used on {used}.</p>\
         <p>It is kept active until <b>{when}</b> and deactivated then, whether or not it is still in use.</p>\
         <p>Switch everything that uses it to the new key (see your earlier email) before then.</p>",
        html_escape(access_key_id)
    );
    Email { to: to.to_owned(), subject, text, html }
}

#[cfg(test)]
mod tests;
