//! create-user: turns an approved onboarding ticket into IAM users.
//!
//! The whole ticket is checked before anything is written: the static rules
//! of the contract, then what only IAM knows (names taken case-insensitively,
//! users not created by this ticket, the permissions of a user to copy). A
//! ticket that breaks any rule changes nothing in IAM; its requester gets one
//! email listing every refusal.
//!
//! The ticket runs under one idempotency record, so a second delivery, even
//! concurrent, does not act twice. Inside it each step is itself safe to
//! repeat (a user tagged with this ticket is completed, not re-created), so
//! a delivery that died half way is finished by the next one.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use shared::config::CreateUserConfig;
use shared::date::Date;
use shared::error::{Error, Refusal, Result};
use shared::handoff::{Onboarding, UserReady};
use shared::idempotency::{self, payload_hash, Key, Window};
use shared::managed::refused_users;
use shared::metrics;
use shared::names::{Email, PolicyArn, TicketId, UserName};
use shared::ports::*;
use shared::text::html_escape;
use shared::ticket::{self, PermissionSource, Ticket, UserPlan, MANAGED_TAG, TICKET_TAG};
use std::collections::BTreeMap;
use tracing::Instrument;

/// Everything the handler talks to, built once per cold start.
pub struct Deps<D, I, S, P, M, C> {
    pub directory: D,
    pub idempotency: I,
    pub status: S,
    pub publisher: P,
    pub mailer: M,
    pub clock: C,
    pub config: CreateUserConfig,
}

pub use shared::managed::UserRefused;

/// What became of a ticket; also the stored idempotent result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TicketReport {
    pub ticket_id: String,
    pub created: Vec<String>,
    pub refused: Vec<UserRefused>,
}

/// Permissions to give one user, fully resolved and checked.
#[derive(Debug, Clone, Default)]
struct Grant {
    groups: Vec<String>,
    managed_policies: Vec<PolicyArn>,
}

/// What became of one user of a ticket that passed.
enum Provisioned {
    Ready(Onboarding),
    /// Handed on by an earlier run of this ticket.
    HandedOn,
    /// Refused by an earlier run of this ticket, for these reasons.
    Refused(Vec<String>),
}

struct Resolved {
    plan: UserPlan,
    boundary: PolicyArn,
    grant: Grant,
}

/// The id a ticket's status records are filed under: its own, or a digest
/// of it for an id that breaks the rule (so it fits the table's keys).
pub fn record_id(ticket: &Ticket) -> Result<TicketId> {
    Ok(TicketId::of_ticket(&ticket.ticket_id, &payload_hash(ticket)?))
}

impl<D, I, S, P, M, C> Deps<D, I, S, P, M, C>
where
    D: Users + Provisioning,
    I: IdempotencyStore,
    S: StatusStore + Departures,
    P: EventPublisher,
    M: Mailer,
    C: Clock,
{
    fn window(&self, lease_until: u64) -> Window {
        Window::new(self.clock.now(), lease_until, self.config.idempotency_ttl_secs)
    }

    /// An SQS batch. A refused ticket is recorded, emailed and settled; any
    /// other failure (passing, or of the deployment) comes back as a batch
    /// item failure: retried, and after maxReceiveCount parked in the
    /// dead-letter queue for a redrive.
    pub async fn handle_sqs(&self, event: SqsEvent, lease_until: u64) -> SqsBatchResponse {
        shared::lambda::for_each_record(event, "create-user", self.config.concurrency, |record| async move {
            self.handle_body(record.body.as_deref().unwrap_or_default(), lease_until).await.map(drop)
        })
        .await
    }

    /// Whatever the function was invoked with: the SQS batch of its trigger,
    /// or (a replay by hand) an EventBridge event or a bare ticket.
    pub async fn handle_event(&self, payload: serde_json::Value, lease_until: u64) -> Result<serde_json::Value> {
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| Error::permanent("invoke", format!("not an SQS event: {e}")))?;
            return to_json(&self.handle_sqs(event, lease_until).await);
        }
        to_json(&self.handle_body(&payload.to_string(), lease_until).await?)
    }

    /// One message body: an EventBridge envelope or a bare ticket. `Ok` also
    /// when the ticket was refused: that is recorded, emailed and final.
    /// `Err` for everything else: the ticket is not settled.
    pub async fn handle_body(&self, body: &str, lease_until: u64) -> Result<TicketReport> {
        let ticket = match ticket::parse(body) {
            Ok(t) => t,
            Err(refusal) => return self.refuse_unreadable(body, refusal, lease_until).await,
        };
        let hash = payload_hash(&ticket)?;
        let key = TicketId::of_ticket(&ticket.ticket_id, &hash);
        shared::lambda::record_subject(&key, None);
        let window = self.window(lease_until);
        let run = idempotency::once(&self.idempotency, &Key::ticket(&key), &hash, window, || {
            self.run_ticket(&ticket, &key, window)
        })
        .await;
        match run {
            Ok(outcome) => {
                if matches!(outcome, idempotency::Outcome::Replayed(_)) {
                    tracing::info!("ticket already handled; nothing done");
                }
                Ok(outcome.into_inner())
            }
            Err(Error::PayloadMismatch(reason)) => {
                // Not retried, but not lost either: the requester hears of it.
                let refusal = Refusal::ticket("ticket_id", reason);
                self.refuse_ticket(&ticket, &key, &format!("{key}#mismatch#{hash}"), vec![refusal], window, false).await
            }
            Err(e) => Err(e),
        }
    }

    async fn run_ticket(&self, ticket: &Ticket, key: &TicketId, window: Window) -> Result<TicketReport> {
        // A run that takes over from one that died finds what it finished:
        // a user recorded past `accepted` was created and handed on (or
        // refused) already, and is not handed on again.
        let earlier: BTreeMap<String, StatusRecord> =
            self.status.for_ticket(key).await?.into_iter().map(|r| (r.user_name.clone(), r)).collect();
        // An expiry must be after the day the ticket is accepted. A run that
        // takes over from one that accepted it (a user recorded and not
        // refused) does not judge that again: the ticket is the same (its
        // hash is the idempotency record's) and passed then; refusing it
        // now, past midnight or in a redrive days later, would report users
        // refused that exist and may already hold credentials.
        let taken_over = earlier.values().any(|r| r.stage != Stage::Failed);
        let today = if taken_over { Date::EPOCH } else { Date::today(&self.clock) };
        let accepted = match ticket::validate(ticket, &self.config.allow, today) {
            Ok(accepted) => accepted,
            Err(refusals) => return self.refuse_ticket(ticket, key, key, refusals, window, true).await,
        };
        let (resolved, refusals) = self.resolve_against_iam(ticket, accepted.users).await?;
        if !refusals.is_empty() {
            return self.refuse_ticket(ticket, key, key, refusals, window, true).await;
        }

        let users: Vec<UserName> = resolved.iter().map(|r| r.plan.user_name.clone()).collect();
        let mut report = TicketReport { ticket_id: key.to_string(), ..Default::default() };
        let now = self.clock.now();
        // What each user is handed on with is fixed here, before any write,
        // and recorded with its first status: issue-credentials and
        // notify-user act only on messages that match it.
        let handoffs: BTreeMap<&str, Onboarding> = resolved
            .iter()
            .map(|r| (r.plan.user_name.as_str(), Onboarding::accepted(key, &accepted.requested_by, &r.plan, &users)))
            .collect();
        let fresh: Vec<Onboarding> =
            handoffs.values().filter(|h| !earlier.contains_key(h.user.user_name.as_str())).cloned().collect();
        let first: Vec<StatusRecord> =
            fresh.iter().map(|h| StatusRecord::new(key, &h.user.user_name, Stage::Accepted, None, now)).collect();
        self.status.create_all(&first, &fresh).await?;
        // Users are independent once the ticket has passed: a few at a time.
        let outcomes = shared::lambda::bounded(
            self.config.concurrency,
            resolved.iter().map(|r| async {
                match earlier.get(r.plan.user_name.as_str()) {
                    Some(done) if done.stage == Stage::Failed => {
                        Ok(Provisioned::Refused(done.reason.iter().cloned().collect()))
                    }
                    Some(done) if done.stage > Stage::Accepted => Ok(Provisioned::HandedOn),
                    _ => {
                        let ready = &handoffs[r.plan.user_name.as_str()];
                        let span = tracing::info_span!("user", user = %r.plan.user_name);
                        let provisioned = self.provision(ticket, r).instrument(span).await;
                        provisioned.map(|()| Provisioned::Ready(ready.clone()))
                    }
                }
            }),
        )
        .await;
        let (mut ready, mut settled, mut retry) = (Vec::new(), Vec::new(), None);
        for (r, outcome) in resolved.into_iter().zip(outcomes) {
            let user_name = r.plan.user_name.to_string();
            match outcome {
                Ok(Provisioned::Ready(handoff)) => {
                    metrics::count(metrics::name::USERS_CREATED, 1);
                    ready.push(UserReady::Onboarding(handoff));
                    settled.push(StatusRecord::new(key, &user_name, Stage::UserCreated, None, now));
                    report.created.push(user_name);
                }
                Ok(Provisioned::HandedOn) => report.created.push(user_name),
                Ok(Provisioned::Refused(reasons)) => report.refused.push(UserRefused { user_name, reasons }),
                // Not the request's fault: the ticket goes back to its queue
                // (a fault of the deployment first, for the log line that
                // names the fix); the user is neither refused nor settled.
                Err(e) if !e.is_refusal() => retry = Error::keep_worst(retry, e),
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(user = %user_name, %reason, "user refused while provisioning");
                    metrics::count(metrics::name::USERS_REFUSED, 1);
                    settled.push(StatusRecord::new(key, &user_name, Stage::Failed, Some(reason.clone()), now));
                    report.refused.push(UserRefused { user_name, reasons: vec![reason] });
                }
            }
        }
        // The hand-offs in as few calls as SQS allows, then the statuses that
        // keep a retry from handing them on again. A run cut off between the
        // two hands them on twice; issue-credentials' record per ticket and
        // user absorbs that.
        let bodies: Vec<_> = ready.iter().map(shared::handoff::write).collect();
        self.publisher.publish_all(&bodies).await?;
        // Each with its forward-only check: issue-credentials may already
        // have moved a user on.
        for written in
            shared::lambda::bounded(self.config.concurrency, settled.iter().map(|r| self.status.record(r))).await
        {
            written?;
        }
        // A user refused after acceptance may exist half-made in IAM (tagged
        // with this ticket): its hand-off goes, so nothing can give it
        // credentials. After the status, so a retry still sees it refused.
        for refused in settled.iter().filter(|r| r.stage == Stage::Failed) {
            self.status.revoke_handoff(key, &refused.user_name).await?;
        }
        tracing::info!(users = ready.len(), "users handed to issue-credentials");
        // The users that are done stay done (their status says so); the
        // retry of the ticket finishes the others.
        if let Some(e) = retry {
            return Err(e);
        }
        if !report.refused.is_empty() {
            self.email_refusals(ticket, key, &report, window).await?;
        }
        tracing::info!(created = report.created.len(), refused = report.refused.len(), "ticket handled");
        metrics::count(metrics::name::TICKETS_ACCEPTED, 1);
        Ok(report)
    }

    /// The rules only IAM can answer. Reads only: nothing is written until
    /// every user of the ticket has passed.
    async fn resolve_against_iam(
        &self,
        ticket: &Ticket,
        plans: Vec<UserPlan>,
    ) -> Result<(Vec<Resolved>, Vec<Refusal>)> {
        let mut refusals = Vec::new();
        let existing: BTreeMap<String, String> =
            self.directory.list_user_names().await?.into_iter().map(|n| (n.to_ascii_lowercase(), n)).collect();
        let mut resolved = Vec::new();
        for (i, plan) in plans.into_iter().enumerate() {
            let name = plan.user_name.clone();
            let before = refusals.len();
            // Deleted by an offboarding whose secret can still be restored:
            // a new user of the name would collide with it.
            if let Some(gone) = self.status.departure(&name, self.clock.now()).await? {
                refusals.push(Refusal::user(
                    &name,
                    format!("users[{i}].user_name"),
                    format!(
                    "user {name:?} was deleted by ticket {} and its secret can be recovered until {}; the name cannot \
                     be onboarded again before then",
                    gone.ticket_id,
                    shared::text::date(gone.until)
                ),
                ));
            }
            if let Some(taken) = existing.get(&name.folded()) {
                if taken != name.as_str() {
                    refusals.push(Refusal::user(&name, format!("users[{i}].user_name"), format!(
                        "user {taken:?} already exists; IAM user names are case-insensitive, so {name:?} cannot be created"
                    )));
                } else if let Some(user) = self.directory.get_user(taken).await? {
                    if !created_by(&user, &ticket.ticket_id) {
                        let owner = match (user.tags.get(MANAGED_TAG).map(String::as_str), user.tags.get(TICKET_TAG)) {
                            (Some("true"), Some(t)) => format!("it was created by ticket {t}"),
                            _ => "it was not created by iam-provisioner".to_owned(),
                        };
                        refusals.push(Refusal::user(&name, format!("users[{i}].user_name"), format!(
                            "user {name:?} already exists and {owner}; the pipeline never changes a user it did not create"
                        )));
                    }
                }
            }
            let (boundary, grant) = match &plan.permissions {
                PermissionSource::Direct { groups, managed_policies } => (
                    plan.boundary.clone(),
                    Grant { groups: groups.clone(), managed_policies: managed_policies.clone() },
                ),
                PermissionSource::CopyFrom(source) => self.resolve_copy(i, &plan, source, &mut refusals).await?,
            };
            if refusals.len() == before {
                if let Some(boundary) = boundary {
                    resolved.push(Resolved { plan, boundary, grant });
                }
            }
        }
        Ok((resolved, refusals))
    }

    /// "Copy permissions from existing user", held to the same allow-list as
    /// a direct grant: copying must not be a way around it.
    async fn resolve_copy(
        &self,
        i: usize,
        plan: &UserPlan,
        source: &UserName,
        refusals: &mut Vec<Refusal>,
    ) -> Result<(Option<PolicyArn>, Grant)> {
        let name = &plan.user_name;
        let field = format!("users[{i}].copy_permissions_from");
        if self.directory.get_user(source).await?.is_none() {
            refusals.push(Refusal::user(name, field, format!("user {source:?} does not exist")));
            return Ok((None, Grant::default()));
        }
        let perms = self.directory.permissions(source).await?;
        let allow = &self.config.allow;
        for g in perms.groups.iter().filter(|g| !allow.groups.contains(*g)) {
            refusals.push(Refusal::user(
                name,
                &field,
                format!("{source:?} is in group {g:?}, which is not on this deployment's allow-list"),
            ));
        }
        let mut managed_policies = Vec::new();
        for p in &perms.managed_policies {
            match allow.managed_policies.get(p.as_str()) {
                Some(arn) => managed_policies.push(arn.clone()),
                None => refusals.push(Refusal::user(
                    name,
                    &field,
                    format!("{source:?} has policy {p:?} attached, which is not on this deployment's allow-list"),
                )),
            }
        }
        if !perms.inline_policies.is_empty() {
            let names = &perms.inline_policies;
            refusals.push(Refusal::user(
                name,
                &field,
                format!(
                    "{source:?} has inline policies ({}), which the pipeline does not copy: its role may not write \
                     inline policies, so a copy cannot carry permissions no allow-list reviewed; attach managed \
                     policies to {source:?} instead, or copy from another user",
                    names.join(", ")
                ),
            ));
        }
        let boundary = match (&plan.boundary, &perms.boundary) {
            (Some(requested), _) => Some(requested.clone()),
            (None, Some(b)) if allow.boundaries.contains(b.as_str()) => allow.boundaries.get(b.as_str()).cloned(),
            (None, Some(b)) => {
                refusals.push(Refusal::user(
                    name,
                    &field,
                    format!("{source:?} has permissions boundary {b:?}, which is not on this deployment's allow-list"),
                ));
                None
            }
            (None, None) => Some(allow.default_boundary.clone()),
        };
        let grant = Grant { groups: perms.groups, managed_policies };
        Ok((boundary, grant))
    }

    /// Creates one user (or completes one this ticket created earlier).
    async fn provision(&self, ticket: &Ticket, r: &Resolved) -> Result<()> {
        let plan = &r.plan;
        let new_user = NewUser {
            user_name: plan.user_name.clone(),
            path: plan.path.clone(),
            boundary: r.boundary.clone(),
            tags: plan.tags.clone(),
        };
        if self.directory.create_user(&new_user).await? == Created::AlreadyExists {
            // Checked before, but another actor may have won the race since.
            let ours =
                self.directory.get_user(&plan.user_name).await?.is_some_and(|u| created_by(&u, &ticket.ticket_id));
            if !ours {
                return Err(Error::permanent(
                    "CreateUser",
                    format!(
                        "user {:?} was created by someone else while this ticket ran; it was left untouched",
                        plan.user_name
                    ),
                ));
            }
            tracing::info!("user exists from an earlier delivery of this ticket; completing it");
        }
        for group in &r.grant.groups {
            if let Err(e) = self.directory.add_user_to_group(&plan.user_name, group).await {
                let what = format!("group {group:?} (on ALLOWED_GROUPS)");
                return Err(self.explain_missing(e, &plan.user_name, &what).await);
            }
        }
        for arn in &r.grant.managed_policies {
            if let Err(e) = self.directory.attach_user_policy(&plan.user_name, arn).await {
                let what = format!("policy {arn} (on ALLOWED_MANAGED_POLICIES)");
                return Err(self.explain_missing(e, &plan.user_name, &what).await);
            }
        }

        tracing::info!("user created");
        Ok(())
    }

    /// IAM said NoSuchEntity while granting `what` to a user this ticket
    /// created: the user not visible yet (IAM is eventually consistent: try
    /// again), or `what` missing from the account (the deployment's fault:
    /// no ticket can fix it).
    async fn explain_missing(&self, e: Error, user_name: &UserName, what: &str) -> Error {
        let Error::Missing { operation, message } = e else {
            return e;
        };
        match self.directory.get_user(user_name).await {
            Ok(Some(_)) => Error::deployment(
                operation,
                message,
                format!("{what} does not exist in the account: create it, or take it off the allow-list"),
            ),
            Ok(None) => Error::retryable(operation, format!("user {user_name} is not visible yet: {message}")),
            Err(read) => read,
        }
    }

    async fn set_status(&self, ticket_id: &str, user_name: &str, stage: Stage, reason: Option<String>) -> Result<()> {
        self.status.record(&StatusRecord::new(ticket_id, user_name, stage, reason, self.clock.now())).await
    }

    /// The ticket as a whole is refused: every user is recorded as failed
    /// (with its own reasons, or why it was held back with the others),
    /// and the requester gets one email. Nothing in IAM was touched.
    async fn refuse_ticket(
        &self,
        ticket: &Ticket,
        key: &TicketId,
        email_key: &str,
        refusals: Vec<Refusal>,
        window: Window,
        record_users: bool,
    ) -> Result<TicketReport> {
        let names: Vec<String> =
            if record_users { ticket.users.iter().map(|u| u.user_name.clone()).collect() } else { Vec::new() };
        let held_back = "not created: the ticket is refused as a whole because of the other users' errors";
        let report = TicketReport {
            ticket_id: key.to_string(),
            refused: refused_users(&names, &refusals, held_back),
            ..Default::default()
        };
        for r in &report.refused {
            // A user name that breaks the rules may not fit a key either.
            let user = if r.user_name == "-" || UserName::parse(&r.user_name).is_ok() {
                r.user_name.clone()
            } else {
                format!("invalid-user-name:{}", short_hash(&r.user_name)?)
            };
            self.set_status(key, &user, Stage::Failed, Some(r.reasons.join("; "))).await?;
        }
        metrics::count(metrics::name::TICKETS_REFUSED, 1);
        tracing::warn!(refusals = refusals.len(), reasons = %refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), "ticket refused; nothing changed in IAM");
        self.email_refusals(ticket, email_key, &report, window).await?;
        Ok(report)
    }

    /// A body that is not a ticket at all: recorded under whatever id can be
    /// read from it (or a digest of it), and the requester told if known.
    /// The body itself is never logged or stored: it might hold a secret.
    async fn refuse_unreadable(&self, body: &str, refusal: Refusal, lease_until: u64) -> Result<TicketReport> {
        let body_hash = payload_hash(&body)?;
        let key = ticket::best_effort_ticket_id(body).unwrap_or_else(|| TicketId::unreadable(&body_hash));
        shared::lambda::record_subject(&key, None);
        let requester = ticket::best_effort_requester(body, &self.config.allow.email_domains);
        let window = self.window(lease_until);
        let outcome =
            idempotency::once(&self.idempotency, &Key::unreadable(&body_hash), &body_hash, window, || async {
                let reason = refusal.to_string();
                tracing::warn!(%reason, "unreadable ticket refused; nothing changed in IAM");
                metrics::count(metrics::name::TICKETS_REFUSED, 1);
                self.set_status(&key, "-", Stage::Failed, Some(reason.clone())).await?;
                let report = TicketReport {
                    ticket_id: key.to_string(),
                    created: vec![],
                    refused: vec![UserRefused { user_name: "-".into(), reasons: vec![reason] }],
                };
                if let Some(to) = &requester {
                    self.mailer.send(&self.config.sender, &refusal_email(to, &report)).await?;
                    metrics::count(metrics::name::EMAILS_SENT, 1);
                }
                Ok(report)
            })
            .await?;
        Ok(outcome.into_inner())
    }

    async fn email_refusals(
        &self,
        ticket: &Ticket,
        email_key: &str,
        report: &TicketReport,
        window: Window,
    ) -> Result<()> {
        let Some(requester) = ticket::requester(&ticket.requested_by, &self.config.allow.email_domains) else {
            tracing::warn!(
                "requester address unusable or outside the allowed domains; refusal recorded but not emailed"
            );
            return Ok(());
        };
        let email = refusal_email(&requester, report);
        let sent = idempotency::once(
            &self.idempotency,
            &Key::refusal_email(email_key),
            &payload_hash(&email.text)?,
            window,
            || async {
                let id = self.mailer.send(&self.config.sender, &email).await?;
                metrics::count(metrics::name::EMAILS_SENT, 1);
                Ok(id)
            },
        )
        .await;
        match sent {
            // SES refused this message for good: the refusal is already
            // recorded in DynamoDB, and bouncing the ticket through the DLQ
            // would not get the email out either. A sender not verified or
            // an account in the SES sandbox is the deployment's fault
            // instead: that goes back to the queue, so a redrive after the
            // fix tells the requester.
            Err(e) if e.is_refusal() => {
                tracing::error!(error = %e, "refusal email could not be sent; the refusal stays recorded");
                Ok(())
            }
            other => other.map(drop),
        }
    }
}

fn created_by(user: &IamUser, ticket_id: &str) -> bool {
    user.tags.get(MANAGED_TAG).map(String::as_str) == Some("true")
        && user.tags.get(TICKET_TAG).map(String::as_str) == Some(ticket_id)
}

fn short_hash(s: &str) -> Result<String> {
    Ok(payload_hash(&s)?[..16].to_owned())
}

fn refusal_email(to: &Email, report: &TicketReport) -> shared::ports::Email {
    let created = report.created.len();
    let subject = if created == 0 {
        format!("Onboarding ticket {}: refused, nothing was created", report.ticket_id)
    } else {
        format!("Onboarding ticket {}: {} user(s) refused", report.ticket_id, report.refused.len())
    };
    let mut text = format!("Onboarding ticket {}\n\n", report.ticket_id);
    let mut html = format!("<p>Onboarding ticket <b>{}</b></p>", html_escape(&report.ticket_id));
    if created == 0 {
        text.push_str("Nothing was created in AWS. Fix what is listed below and submit the ticket again.\n\n");
        html.push_str("<p>Nothing was created in AWS. Fix what is listed below and submit the ticket again.</p>");
    } else {
        text.push_str(&format!("{created} user(s) were created; these were refused:\n\n"));
        html.push_str(&format!("<p>{created} user(s) were created; these were refused:</p>"));
    }
    html.push_str("<ul>");
    for r in &report.refused {
        let who = if r.user_name == "-" { "the ticket" } else { r.user_name.as_str() };
        text.push_str(&format!("- {who}:\n"));
        html.push_str(&format!("<li><b>{}</b><ul>", html_escape(who)));
        for reason in &r.reasons {
            text.push_str(&format!("    - {reason}\n"));
            html.push_str(&format!("<li>{}</li>", html_escape(reason)));
        }
        html.push_str("</ul></li>");
    }
    html.push_str("</ul>");
    text.push_str("\nThis message was sent by iam-provisioner.\n");
    shared::ports::Email { to: to.to_string(), subject, text, html }
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::permanent("response", e.to_string()))
}

#[cfg(test)]
mod tests;
