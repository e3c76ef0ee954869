//! change-access: adds and removes the allow-listed groups and managed
//! policies of the users an approved access change ticket names
//! (CONTRACT.md section 6). The boundary is neither read nor changed.
//!
//! Ordering invariants of a ticket:
//! - Every user is checked before anything is written: the static rules
//!   (`access::validate_access_change`: the allow-lists, for removals too),
//!   then ownership (`shared::managed`: the pipeline's records and the
//!   managed tag agree). One user that is not the pipeline's refuses the
//!   whole ticket, and nothing in IAM changes.
//! - Each user's first status record (`accepted`) is written before the
//!   first IAM call, so a rerun knows the ticket was begun: from then on a
//!   user found no longer the pipeline's is refused alone and the others are
//!   finished, so the requester is never told "nothing was changed" of a
//!   ticket that changed something.
//! - Per user, the calls are `access::plan`'s (removals before additions),
//!   from IAM read again on every run: a rerun plans only what is left. Then
//!   the user's `access_changed` record; the requester's one summary last.
//!
//! The ticket runs under one idempotency record, so a second delivery does
//! not act twice; a delivery that died half way is finished by the next.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use shared::access::{self, AcceptedChange, AccessChange, AccessChangeTicket, AccessStep};
use shared::config::ChangeAccessConfig;
use shared::error::{Error, Refusal, Result};
use shared::idempotency::{self, payload_hash, Key, Window};
pub use shared::managed::UserRefused;
use shared::managed::{ownership, parse_ticket, refused_users, Ownership, TicketKind};
use shared::metrics;
use shared::names::{Email, TicketId, UserName};
use shared::ports::*;
use shared::text::html_escape;
use std::collections::BTreeMap;
use tracing::Instrument;

pub struct Deps<A, I, S, M, C> {
    /// IAM: whose a user is (`Users`), and the access change calls.
    pub iam: A,
    pub idempotency: I,
    pub status: S,
    pub mailer: M,
    pub clock: C,
    pub config: ChangeAccessConfig,
}

/// What became of one user of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOutcome {
    pub user_name: String,
    /// What the requester reads: the user's access as the ticket asked it.
    pub result: String,
    /// The IAM calls this run made for the user, in order (none when it was
    /// found as asked).
    pub calls: Vec<AccessStep>,
}

/// What became of a ticket; also the stored idempotent result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChangeReport {
    pub ticket_id: String,
    pub done: Vec<UserOutcome>,
    pub refused: Vec<UserRefused>,
}

/// A user that passed the checks, and what this run asks of it.
struct Checked {
    /// As IAM spells it.
    name: UserName,
    change: AccessChange,
}

/// What the checks found: the users to change, the refusals, and what this
/// ticket settled before (reported as it was).
struct Checks {
    checked: Vec<Checked>,
    refusals: Vec<Refusal>,
    report: ChangeReport,
}

impl<A, I, S, M, C> Deps<A, I, S, M, C>
where
    A: Users + AccessChanges,
    I: IdempotencyStore,
    S: StatusStore,
    M: Mailer,
    C: Clock,
{
    fn window(&self, lease_until: u64) -> Window {
        Window::new(self.clock.now(), lease_until, self.config.idempotency_ttl_secs)
    }

    pub async fn handle_sqs(&self, event: SqsEvent, lease_until: u64) -> SqsBatchResponse {
        shared::lambda::for_each_record(event, "change-access", self.config.concurrency, |record| async move {
            self.handle_body(record.body.as_deref().unwrap_or_default(), lease_until).await.map(drop)
        })
        .await
    }

    /// The SQS batch of its trigger, or (by hand) one ticket, bare or in its
    /// EventBridge envelope.
    pub async fn handle_event(&self, payload: serde_json::Value, lease_until: u64) -> Result<serde_json::Value> {
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| Error::permanent("invoke", format!("not an SQS event: {e}")))?;
            return to_json(&self.handle_sqs(event, lease_until).await);
        }
        to_json(&self.handle_body(&payload.to_string(), lease_until).await?)
    }

    /// One access change ticket. `Ok` also when it was refused (recorded,
    /// emailed, final); `Err` when it is to be tried again.
    pub async fn handle_body(&self, body: &str, lease_until: u64) -> Result<ChangeReport> {
        let window = self.window(lease_until);
        let ticket: AccessChangeTicket = match parse_ticket(body, TicketKind::AccessChange) {
            Ok(t) => t,
            Err(refusal) => return self.refuse_unreadable(body, refusal, window).await,
        };
        let hash = payload_hash(&ticket)?;
        // Filed apart from any other kind's records of the same id.
        let key = TicketKind::AccessChange.records_of(&TicketId::of_ticket(&ticket.ticket_id, &hash));
        shared::lambda::record_subject(&key, None);
        let run = idempotency::once(&self.idempotency, &Key::access_change(&key), &hash, window, || {
            self.run_ticket(&ticket, &key, window)
        })
        .await;
        match run {
            Ok(outcome) => Ok(outcome.into_inner()),
            Err(Error::PayloadMismatch(reason)) => {
                let refusal = Refusal::ticket("ticket_id", reason);
                let names: Vec<String> = ticket.users.iter().map(|u| u.user_name.clone()).collect();
                let report = refused_report(&key, &names, &[refusal]);
                // Filed apart from the ticket that holds the id: its records stay as they are.
                self.email(&ticket.requested_by, &format!("{key}#mismatch#{hash}"), &report, window).await?;
                Ok(report)
            }
            Err(e) => Err(e),
        }
    }

    async fn run_ticket(&self, ticket: &AccessChangeTicket, key: &TicketId, window: Window) -> Result<ChangeReport> {
        let accepted = match access::validate_access_change(ticket, &self.config.allow) {
            Ok(a) => a,
            Err(mut refusals) => {
                // Every reason at once: whose each named user is, too.
                for (i, u) in ticket.users.iter().enumerate() {
                    let Ok(name) = UserName::parse(&u.user_name) else { continue };
                    if let Err(refusal) = self.owned(&name, &u.user_name, i).await? {
                        refusals.push(refusal);
                    }
                }
                let names: Vec<String> = ticket.users.iter().map(|u| u.user_name.clone()).collect();
                return self.refuse(ticket, key, &names, &refusals, window).await;
            }
        };
        // By name as IAM compares names: records are filed as IAM spells it.
        let earlier: BTreeMap<String, StatusRecord> =
            self.status.for_ticket(key).await?.into_iter().map(|r| (r.user_name.to_ascii_lowercase(), r)).collect();
        let begun = accepted.users.iter().any(|(name, _)| {
            earlier.get(&name.folded()).is_some_and(|r| matches!(r.stage, Stage::Accepted | Stage::AccessChanged))
        });
        let Checks { checked, refusals, mut report } = self.check(&accepted, &earlier).await?;
        if !refusals.is_empty() && !begun {
            let names: Vec<String> = accepted.users.iter().map(|(n, _)| n.to_string()).collect();
            return self.refuse(ticket, key, &names, &refusals, window).await;
        }
        // Begun by an earlier delivery, which may have changed users already:
        // a user no longer the pipeline's is refused alone, the rest finished.
        for r in &refusals {
            let user = r.user.clone().unwrap_or_else(|| "-".into());
            tracing::warn!(%user, reason = %r, "user of a begun ticket refused; left as it is");
            self.set_status(key, &user, Stage::Failed, Some(r.to_string())).await?;
            report.refused.push(UserRefused { user_name: user, reasons: vec![r.to_string()] });
        }
        let now = self.clock.now();
        let first: Vec<StatusRecord> = checked
            .iter()
            .filter(|c| !earlier.contains_key(&c.name.folded()))
            .map(|c| StatusRecord::new(key, &c.name, Stage::Accepted, None, now))
            .collect();
        self.status.create_all(&first, &[]).await?;
        let outcomes = shared::lambda::bounded(
            self.config.concurrency,
            checked.iter().map(|c| {
                let span = tracing::info_span!("user", user = %c.name);
                self.change_one(key, c).instrument(span)
            }),
        )
        .await;
        let mut retry = None;
        for (c, outcome) in checked.iter().zip(outcomes) {
            match outcome {
                Ok(done) => report.done.push(done),
                Err(e) if !e.is_refusal() => retry = Error::keep_worst(retry, e),
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(user = %c.name, %reason, "user's access could not be changed");
                    self.set_status(key, &c.name, Stage::Failed, Some(reason.clone())).await?;
                    report.refused.push(UserRefused { user_name: c.name.to_string(), reasons: vec![reason] });
                }
            }
        }
        if let Some(e) = retry {
            return Err(e);
        }
        report.ticket_id = key.submitted().to_owned();
        self.email(accepted.requested_by.as_str(), key, &report, window).await?;
        metrics::count(metrics::name::TICKETS_ACCEPTED, 1);
        tracing::info!(done = report.done.len(), refused = report.refused.len(), "access change ticket handled");
        Ok(report)
    }

    /// Reads only. Users this ticket settled already are reported as they
    /// were; the others must be the pipeline's.
    async fn check(&self, accepted: &AcceptedChange, earlier: &BTreeMap<String, StatusRecord>) -> Result<Checks> {
        let mut checks = Checks { checked: Vec::new(), refusals: Vec::new(), report: ChangeReport::default() };
        for (i, (name, change)) in accepted.users.iter().enumerate() {
            if let Some(before) = earlier.get(&name.folded()) {
                match before.stage {
                    Stage::AccessChanged => {
                        checks.report.done.push(UserOutcome {
                            user_name: before.user_name.clone(),
                            result: before.reason.clone().unwrap_or_else(|| describe(change)),
                            calls: Vec::new(),
                        });
                        continue;
                    }
                    Stage::Failed => {
                        let reason = before.reason.clone().unwrap_or_default();
                        let user_name = before.user_name.clone();
                        checks.report.refused.push(UserRefused { user_name, reasons: vec![reason] });
                        continue;
                    }
                    _ => {}
                }
            }
            match self.owned(name, name, i).await? {
                Ok(name) => checks.checked.push(Checked { name, change: change.clone() }),
                Err(refusal) => checks.refusals.push(refusal),
            }
        }
        Ok(checks)
    }

    /// The user the ticket names as `users[i]` (`as_named`), if it is the
    /// pipeline's: its name as IAM spells it (names are case-insensitive);
    /// otherwise why it may not be touched.
    async fn owned(&self, name: &UserName, as_named: &str, i: usize) -> Result<Result<UserName, Refusal>> {
        let field = format!("users[{i}].user_name");
        Ok(match ownership(&self.iam, &self.status, name).await? {
            // Offboarded: giving it access back is a restore, an
            // administrator's decision (and the daily run would then keep
            // it for ever as restored), not an access change.
            Ownership::Ours { user, .. } if user.tags.contains_key(shared::lifecycle::OFFBOARDED_TAG) => {
                Err(Refusal::user(
                    as_named,
                    field,
                    format!(
                        "user {:?} was disabled by ticket {} on {}; an access change does not give an offboarded user \
                     access back (an administrator restores it first)",
                        user.user_name,
                        user.tags[shared::lifecycle::OFFBOARDED_TAG],
                        user.tags.get(shared::lifecycle::OFFBOARDED_ON_TAG).map_or("?", String::as_str)
                    ),
                ))
            }
            Ownership::Ours { user, .. } => Ok(UserName::parse(&user.user_name).unwrap_or_else(|_| name.clone())),
            Ownership::Gone => Err(Refusal::user(
                as_named,
                field,
                format!("there is no user {:?} in the account (nothing to change)", name.as_str()),
            )),
            Ownership::NotOurs(reason) => Err(Refusal::user(as_named, field, reason)),
        })
    }

    async fn change_one(&self, key: &TicketId, c: &Checked) -> Result<UserOutcome> {
        let calls = access::change(&self.iam, &c.name, &c.change).await?;
        if !calls.is_empty() {
            metrics::count(metrics::name::ACCESS_CHANGED, 1);
        }
        let result = describe(&c.change);
        self.set_status(key, &c.name, Stage::AccessChanged, Some(result.clone())).await?;
        tracing::info!(calls = calls.len(), "access changed");
        Ok(UserOutcome { user_name: c.name.to_string(), result, calls })
    }

    async fn set_status(&self, ticket_id: &str, user_name: &str, stage: Stage, reason: Option<String>) -> Result<()> {
        self.status.record(&StatusRecord::new(ticket_id, user_name, stage, reason, self.clock.now())).await
    }

    /// The whole ticket refused: every user recorded as failed, the
    /// requester told once. Nothing in IAM was touched.
    async fn refuse(
        &self,
        ticket: &AccessChangeTicket,
        key: &TicketId,
        names: &[String],
        refusals: &[Refusal],
        window: Window,
    ) -> Result<ChangeReport> {
        let report = refused_report(key, names, refusals);
        for r in &report.refused {
            let user = if r.user_name == "-" || UserName::parse(&r.user_name).is_ok() {
                r.user_name.clone()
            } else {
                format!("invalid-user-name:{}", &payload_hash(&r.user_name)?[..16])
            };
            self.set_status(key, &user, Stage::Failed, Some(r.reasons.join("; "))).await?;
        }
        metrics::count(metrics::name::TICKETS_REFUSED, 1);
        tracing::warn!(refusals = refusals.len(), reasons = %refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), "access change ticket refused; nothing changed in IAM");
        self.email(&ticket.requested_by, key, &report, window).await?;
        Ok(report)
    }

    /// A body that is not an access change ticket: recorded under what id
    /// can be read from it (or a digest), the requester told if known. The
    /// body itself is never logged or stored.
    async fn refuse_unreadable(&self, body: &str, refusal: Refusal, window: Window) -> Result<ChangeReport> {
        let body_hash = payload_hash(&body)?;
        let key = TicketKind::AccessChange.records_of(
            &shared::ticket::best_effort_ticket_id(body).unwrap_or_else(|| TicketId::unreadable(&body_hash)),
        );
        shared::lambda::record_subject(&key, None);
        let report = refused_report(&key, &[], &[refusal]);
        let reason = report.refused[0].reasons.join("; ");
        tracing::warn!(%reason, "unreadable access change ticket refused; nothing changed in IAM");
        metrics::count(metrics::name::TICKETS_REFUSED, 1);
        self.set_status(&key, "-", Stage::Failed, Some(reason)).await?;
        if let Some(to) = shared::ticket::best_effort_requester(body, &self.config.allow.email_domains) {
            self.email(to.as_str(), &format!("unreadable#{body_hash}"), &report, window).await?;
        }
        Ok(report)
    }

    /// The requester's one email about the ticket, sent once (whatever a
    /// rerun finds, the first one's account stands).
    async fn email(&self, requested_by: &str, email_key: &str, report: &ChangeReport, window: Window) -> Result<()> {
        let Some(to) = shared::ticket::requester(requested_by, &self.config.allow.email_domains) else {
            tracing::warn!("requester address unusable or outside the allowed domains; recorded but not emailed");
            return Ok(());
        };
        let email = summary_email(&to, report);
        let key = Key::lifecycle_summary("change-access", email_key);
        let sent = idempotency::once(&self.idempotency, &key, &payload_hash(&email_key)?, window, || async {
            let id = self.mailer.send(&self.config.sender, &email).await?;
            metrics::count(metrics::name::EMAILS_SENT, 1);
            Ok(id)
        })
        .await;
        match sent {
            // SES refused this message for good: what was done is recorded.
            Err(e) if e.is_refusal() => {
                tracing::error!(error = %e, "summary email could not be sent; the outcome stays recorded");
                Ok(())
            }
            other => other.map(drop),
        }
    }
}

/// The user's access as the ticket asked it (true once the change is made,
/// however much of it was already so).
fn describe(change: &AccessChange) -> String {
    let list = |items: Vec<&str>| items.join(", ");
    let mut parts = Vec::new();
    if !change.add_groups.is_empty() {
        parts.push(format!("in {}", list(change.add_groups.iter().map(String::as_str).collect())));
    }
    if !change.remove_groups.is_empty() {
        parts.push(format!("no longer in {}", list(change.remove_groups.iter().map(String::as_str).collect())));
    }
    if !change.attach_policies.is_empty() {
        parts.push(format!("{} attached", list(change.attach_policies.iter().map(|p| p.as_str()).collect())));
    }
    if !change.detach_policies.is_empty() {
        parts.push(format!("{} detached", list(change.detach_policies.iter().map(|p| p.as_str()).collect())));
    }
    parts.join("; ")
}

fn refused_report(key: &TicketId, names: &[String], refusals: &[Refusal]) -> ChangeReport {
    let held_back = "left as it is: the ticket is refused as a whole because of the other users";
    ChangeReport {
        ticket_id: key.submitted().to_owned(),
        refused: refused_users(names, refusals, held_back),
        ..Default::default()
    }
}

fn summary_email(to: &Email, report: &ChangeReport) -> Email_ {
    let id = &report.ticket_id;
    let subject = if report.done.is_empty() {
        format!("Access change ticket {id}: refused, nothing was changed")
    } else {
        format!("Access change ticket {id}: {} user(s) changed, {} refused", report.done.len(), report.refused.len())
    };
    let mut text = format!("Access change ticket {id}\n\n");
    let mut html = format!("<p>Access change ticket <b>{}</b></p>", html_escape(id));
    if report.done.is_empty() {
        text.push_str("Nothing was changed in AWS. Fix what is listed below and submit the ticket again.\n\n");
        html.push_str("<p>Nothing was changed in AWS. Fix what is listed below and submit the ticket again.</p>");
    } else {
        text.push_str("Done (permissions boundaries are never changed):\n");
        html.push_str("<p>Done (permissions boundaries are never changed):</p><ul>");
        for d in &report.done {
            text.push_str(&format!("- {}: {}\n", d.user_name, d.result));
            html.push_str(&format!("<li><b>{}</b>: {}</li>", html_escape(&d.user_name), html_escape(&d.result)));
        }
        html.push_str("</ul>");
    }
    if !report.refused.is_empty() {
        text.push_str("\nRefused:\n");
        html.push_str("<p>Refused:</p><ul>");
        for r in &report.refused {
            let who = if r.user_name == "-" { "the ticket" } else { r.user_name.as_str() };
            text.push_str(&format!("- {who}: {}\n", r.reasons.join("; ")));
            html.push_str(&format!("<li><b>{}</b>: {}</li>", html_escape(who), html_escape(&r.reasons.join("; "))));
        }
        html.push_str("</ul>");
    }
    text.push_str("\nThis message was sent by iam-provisioner.\n");
    Email_ { to: to.to_string(), subject, text, html }
}

type Email_ = shared::ports::Email;

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::permanent("response", e.to_string()))
}

#[cfg(test)]
mod tests;
