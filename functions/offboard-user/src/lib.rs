//! offboard-user: disables or deletes the users an approved offboarding
//! ticket names (CONTRACT.md section 6).
//!
//! Ordering invariants of a ticket:
//! - Every user is checked before anything is written: the static rules,
//!   then ownership (`shared::managed`: the pipeline's records and the
//!   managed tag agree). One user that is not the pipeline's refuses the
//!   whole ticket, and nothing in IAM changes.
//! - Each user's first status record (`accepted`) is written before the
//!   first IAM call, so a rerun after a crash knows that a user now missing
//!   was deleted by this ticket (done), not never there (refused).
//! - Per user, the calls are `lifecycle::plan`'s, read again on every run:
//!   a rerun plans only what is left. A deleted user's departure (which
//!   keeps its name from being onboarded again while its secret can be
//!   recovered) and its secret's scheduled deletion come after DeleteUser,
//!   then its final status; the requester's one summary comes last.
//!
//! The ticket runs under one idempotency record, so a second delivery does
//! not act twice; a delivery that died half way is finished by the next.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use shared::config::OffboardUserConfig;
use shared::error::{Error, Refusal, Result};
use shared::idempotency::{self, payload_hash, Key, Window};
use shared::lifecycle::{self, AcceptedOffboarding, OffboardAction, OffboardingTicket, Step};
pub use shared::managed::UserRefused;
use shared::managed::{ownership, parse_ticket, refused_users, Ownership, TicketKind};
use shared::metrics;
use shared::names::{Email, TicketId, UserName};
use shared::ports::*;
use shared::text::html_escape;
use std::collections::BTreeMap;
use tracing::Instrument;

pub struct Deps<O, X, I, S, M, C> {
    /// IAM: whose a user is, what it holds, and the offboarding calls.
    pub iam: O,
    pub secrets: X,
    pub idempotency: I,
    pub status: S,
    pub mailer: M,
    pub clock: C,
    pub config: OffboardUserConfig,
}

/// What became of one user of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOutcome {
    pub user_name: String,
    pub action: OffboardAction,
    /// What the requester reads: what was done (or found done).
    pub result: String,
    /// The IAM calls this run made for the user (0 when it was found done).
    pub calls: usize,
}

/// What became of a ticket; also the stored idempotent result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OffboardReport {
    pub ticket_id: String,
    pub done: Vec<UserOutcome>,
    pub refused: Vec<UserRefused>,
}

/// A user that passed the checks, and what this run does with it.
struct Checked {
    name: UserName,
    action: OffboardAction,
    /// Found missing, after this ticket began deleting it: only what follows
    /// DeleteUser is left.
    already_gone: bool,
}

impl<O, X, I, S, M, C> Deps<O, X, I, S, M, C>
where
    O: Users + Offboarding,
    X: SecretStore,
    I: IdempotencyStore,
    S: StatusStore + Departures,
    M: Mailer,
    C: Clock,
{
    fn window(&self, lease_until: u64) -> Window {
        Window::new(self.clock.now(), lease_until, self.config.idempotency_ttl_secs)
    }

    pub async fn handle_sqs(&self, event: SqsEvent, lease_until: u64) -> SqsBatchResponse {
        shared::lambda::for_each_record(event, "offboard-user", self.config.concurrency, |record| async move {
            self.handle_body(record.body.as_deref().unwrap_or_default(), lease_until).await.map(drop)
        })
        .await
    }

    /// The SQS batch of its trigger, or (by hand) one ticket, bare or in its
    /// EventBridge envelope.
    pub async fn handle_event(&self, payload: serde_json::Value, lease_until: u64) -> Result<serde_json::Value> {
        if payload.get("run").is_some() {
            let _: daily::DailyRequest = serde_json::from_value(payload).map_err(|e| {
                Error::permanent("invoke", format!("not a daily run request ({{\"run\": \"daily\"}}): {e}"))
            })?;
            return to_json(&self.run_daily(lease_until).await?);
        }
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| Error::permanent("invoke", format!("not an SQS event: {e}")))?;
            return to_json(&self.handle_sqs(event, lease_until).await);
        }
        to_json(&self.handle_body(&payload.to_string(), lease_until).await?)
    }

    /// One offboarding ticket. `Ok` also when it was refused (recorded,
    /// emailed, final); `Err` when it is to be tried again.
    pub async fn handle_body(&self, body: &str, lease_until: u64) -> Result<OffboardReport> {
        let window = self.window(lease_until);
        let ticket: OffboardingTicket = match parse_ticket(body, TicketKind::Offboarding) {
            Ok(t) => t,
            Err(refusal) => return self.refuse_unreadable(body, refusal, window).await,
        };
        let hash = payload_hash(&ticket)?;
        // Filed apart from any other kind's records of the same id.
        let key = TicketKind::Offboarding.records_of(&TicketId::of_ticket(&ticket.ticket_id, &hash));
        shared::lambda::record_subject(&key, None);
        let run = idempotency::once(&self.idempotency, &Key::offboarding(&key), &hash, window, || {
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

    async fn run_ticket(&self, ticket: &OffboardingTicket, key: &TicketId, window: Window) -> Result<OffboardReport> {
        let accepted = match lifecycle::validate_offboarding(ticket, &self.config.email_domains) {
            Ok(a) => a,
            Err(refusals) => {
                let names: Vec<String> = ticket.users.iter().map(|u| u.user_name.clone()).collect();
                return self.refuse(ticket, key, &names, &refusals, window).await;
            }
        };
        let earlier: BTreeMap<String, StatusRecord> =
            self.status.for_ticket(key).await?.into_iter().map(|r| (r.user_name.to_ascii_lowercase(), r)).collect();
        let (checked, refusals, mut report) = self.check(&accepted, &earlier).await?;
        // A ticket an earlier run began (its first records are written
        // before any IAM call) may have changed users already: only the
        // users that no longer pass are refused, the others finished.
        let begun = earlier.values().any(|r| r.stage != Stage::Failed);
        if !refusals.is_empty() && !begun {
            let names: Vec<String> = accepted.users.iter().map(|(n, _)| n.to_string()).collect();
            return self.refuse(ticket, key, &names, &refusals, window).await;
        }
        for r in &refusals {
            let user = r.user.clone().unwrap_or_else(|| "-".into());
            tracing::warn!(%user, reason = %r, "user of a begun ticket refused; the others are finished");
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
                self.offboard_one(key, c).instrument(span)
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
                    tracing::warn!(user = %c.name, %reason, "user could not be offboarded");
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
        tracing::info!(done = report.done.len(), refused = report.refused.len(), "offboarding ticket handled");
        Ok(report)
    }

    /// Reads only. Users this ticket settled already are reported as they
    /// were; the others must be the pipeline's.
    async fn check(
        &self,
        accepted: &AcceptedOffboarding,
        earlier: &BTreeMap<String, StatusRecord>,
    ) -> Result<(Vec<Checked>, Vec<Refusal>, OffboardReport)> {
        let mut checked = Vec::new();
        let mut refusals = Vec::new();
        let mut report = OffboardReport::default();
        for (i, (name, action)) in accepted.users.iter().enumerate() {
            let field = format!("users[{i}].user_name");
            let before = earlier.get(&name.folded());
            match before.map(|r| r.stage) {
                Some(stage @ (Stage::Disabled | Stage::Deleted)) => {
                    report.done.push(UserOutcome {
                        user_name: name.to_string(),
                        action: *action,
                        result: format!("{} by this ticket earlier", stage.as_str()),
                        calls: 0,
                    });
                    continue;
                }
                Some(Stage::Failed) => {
                    let reason = before.and_then(|r| r.reason.clone()).unwrap_or_default();
                    report.refused.push(UserRefused { user_name: name.to_string(), reasons: vec![reason] });
                    continue;
                }
                _ => {}
            }
            match ownership(&self.iam, &self.status, name).await? {
                Ownership::Ours { user, .. } => {
                    // As IAM spells it (names are case-insensitive).
                    let name = UserName::parse(&user.user_name).unwrap_or_else(|_| name.clone());
                    checked.push(Checked { name, action: *action, already_gone: false });
                }
                // Begun by this ticket (its first record is written before
                // any call): the user was deleted by it, and what follows
                // DeleteUser may be left.
                Ownership::Gone if before.is_some() && *action == OffboardAction::Delete => {
                    checked.push(Checked { name: name.clone(), action: *action, already_gone: true });
                }
                Ownership::Gone => refusals.push(Refusal::user(
                    name,
                    field,
                    format!("there is no user \"{name}\" in the account (nothing to offboard)"),
                )),
                Ownership::NotOurs(reason) => refusals.push(Refusal::user(name, field, reason)),
            }
        }
        Ok((checked, refusals, report))
    }

    async fn offboard_one(&self, key: &TicketId, c: &Checked) -> Result<UserOutcome> {
        let today = shared::text::date(self.clock.now());
        let steps = if c.already_gone {
            Vec::new()
        } else {
            lifecycle::offboard(&self.iam, &c.name, c.action, key.submitted(), &today).await?
        };
        let result = match c.action {
            OffboardAction::Disable => {
                metrics::count(metrics::name::USERS_DISABLED, 1);
                if steps.iter().any(|s| matches!(s, Step::TagOffboarded { .. })) {
                    "disabled: console password deleted, access keys made inactive, groups and policies removed"
                        .to_owned()
                } else if steps.is_empty() {
                    "already disabled by an earlier ticket; nothing changed".to_owned()
                } else {
                    "already disabled by an earlier ticket; what was given back since was removed".to_owned()
                }
            }
            OffboardAction::Delete => {
                let until = self.retire_secret(key, &c.name).await?;
                metrics::count(metrics::name::USERS_DELETED, 1);
                match until {
                    Some(until) => format!(
                        "deleted; the user's secret is deleted for good on {} (recoverable until then; the name \
                         cannot be onboarded again before)",
                        shared::text::date(until)
                    ),
                    None => "deleted (it had no secret)".to_owned(),
                }
            }
        };
        let stage = match c.action {
            OffboardAction::Disable => Stage::Disabled,
            OffboardAction::Delete => Stage::Deleted,
        };
        self.set_status(key, &c.name, stage, Some(result.clone())).await?;
        tracing::info!(calls = steps.len(), action = ?c.action, "user offboarded");
        Ok(UserOutcome { user_name: c.name.to_string(), action: c.action, result, calls: steps.len() })
    }

    /// After DeleteUser: the user's secret scheduled for deletion, and the
    /// name kept from onboarding until then. Returns when it goes for good.
    async fn retire_secret(&self, key: &TicketId, name: &UserName) -> Result<Option<u64>> {
        let secret = format!("{}{}", self.config.secret_prefix, name);
        let until = self.secrets.schedule_deletion(&secret, self.config.secret_recovery_days).await?;
        if let Some(until) = until {
            let departure = Departure { user_name: name.to_string(), ticket_id: key.submitted().to_owned(), until };
            self.status.record_departure(&departure).await?;
        }
        Ok(until)
    }

    async fn set_status(&self, ticket_id: &str, user_name: &str, stage: Stage, reason: Option<String>) -> Result<()> {
        self.status.record(&StatusRecord::new(ticket_id, user_name, stage, reason, self.clock.now())).await
    }

    /// The whole ticket refused: every user recorded as failed, the
    /// requester told once. Nothing in IAM was touched.
    async fn refuse(
        &self,
        ticket: &OffboardingTicket,
        key: &TicketId,
        names: &[String],
        refusals: &[Refusal],
        window: Window,
    ) -> Result<OffboardReport> {
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
        tracing::warn!(refusals = refusals.len(), reasons = %refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), "offboarding ticket refused; nothing changed in IAM");
        self.email(&ticket.requested_by, key, &report, window).await?;
        Ok(report)
    }

    /// A body that is not an offboarding ticket: recorded under what id can
    /// be read from it (or a digest), the requester told if known. The body
    /// itself is never logged or stored.
    async fn refuse_unreadable(&self, body: &str, refusal: Refusal, window: Window) -> Result<OffboardReport> {
        let body_hash = payload_hash(&body)?;
        let key = TicketKind::Offboarding.records_of(
            &shared::ticket::best_effort_ticket_id(body).unwrap_or_else(|| TicketId::unreadable(&body_hash)),
        );
        shared::lambda::record_subject(&key, None);
        let report = refused_report(&key, &[], &[refusal]);
        let reason = report.refused[0].reasons.join("; ");
        tracing::warn!(%reason, "unreadable offboarding ticket refused; nothing changed in IAM");
        metrics::count(metrics::name::TICKETS_REFUSED, 1);
        self.set_status(&key, "-", Stage::Failed, Some(reason)).await?;
        if let Some(to) = shared::ticket::best_effort_requester(body, &self.config.email_domains) {
            self.email(to.as_str(), &format!("unreadable#{body_hash}"), &report, window).await?;
        }
        Ok(report)
    }

    /// The requester's one email about the ticket, sent once (whatever a
    /// rerun finds, the first one's account stands).
    async fn email(&self, requested_by: &str, email_key: &str, report: &OffboardReport, window: Window) -> Result<()> {
        let Some(to) = shared::ticket::requester(requested_by, &self.config.email_domains) else {
            tracing::warn!("requester address unusable or outside the allowed domains; recorded but not emailed");
            return Ok(());
        };
        let email = summary_email(&to, report);
        let key = Key::lifecycle_summary("offboard-user", email_key);
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

fn refused_report(key: &TicketId, names: &[String], refusals: &[Refusal]) -> OffboardReport {
    let held_back = "left as it is: the ticket is refused as a whole because of the other users";
    OffboardReport {
        ticket_id: key.submitted().to_owned(),
        refused: refused_users(names, refusals, held_back),
        ..Default::default()
    }
}

fn summary_email(to: &Email, report: &OffboardReport) -> Email_ {
    let id = &report.ticket_id;
    let subject = if report.done.is_empty() {
        format!("Offboarding ticket {id}: refused, nothing was changed")
    } else {
        format!("Offboarding ticket {id}: {} user(s) offboarded, {} refused", report.done.len(), report.refused.len())
    };
    let mut text = format!("Offboarding ticket {id}\n\n");
    let mut html = format!("<p>Offboarding ticket <b>{}</b></p>", html_escape(id));
    if report.done.is_empty() {
        text.push_str("Nothing was changed in AWS. Fix what is listed below and submit the ticket again.\n\n");
        html.push_str("<p>Nothing was changed in AWS. Fix what is listed below and submit the ticket again.</p>");
    }
    if !report.done.is_empty() {
        text.push_str("Done:\n");
        html.push_str("<p>Done:</p><ul>");
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

pub mod daily;

#[cfg(test)]
mod tests;
