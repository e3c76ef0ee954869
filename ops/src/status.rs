//! `status TICKET`: what the pipeline recorded of a ticket, of any kind.
//! Each user's status record (how far it got, the reasons it failed),
//! whether the ticket's run finished (the idempotency record of the stage
//! that runs it), the emails sent for it (an email is sent exactly when its
//! idempotency record is completed: the same records that keep it from
//! being sent twice), and the requester's summary or refusal email.
//!
//! Each kind files its records apart (`TicketKind::records_of`): the kind is
//! the first of onboarding, offboarding, access change with a status or run
//! record under the id.

use crate::plan::kind_name;
use serde::Serialize;
use shared::idempotency::Key;
use shared::managed::TicketKind;
use shared::names::TicketId;
use shared::ports::{KeyLedger, Stage, StatusRecord, StatusStore, WorkRecords, WorkState};
use shared::Result;

/// How far a stage's run of a ticket got, by its idempotency record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Completed: every user settled (or the ticket refused); a delivery
    /// of the same ticket again is not acted on again.
    Finished,
    /// Claimed, not completed: running, to be retried, or died before its
    /// lease ran out (the next delivery finishes it).
    InProgress,
}

impl RunState {
    /// `None`: no record under `key`.
    pub async fn of<W: WorkRecords>(work: &W, key: &str) -> Result<Option<Self>> {
        Ok(work.work_state(key).await?.map(|state| match state {
            WorkState::Completed(_) => RunState::Finished,
            WorkState::InProgress => RunState::InProgress,
        }))
    }

    pub fn human(self) -> &'static str {
        match self {
            RunState::Finished => "finished",
            RunState::InProgress => "in progress",
        }
    }
}

/// The stage that runs a ticket of `kind`.
pub fn run_by(kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::Onboarding => "create-user",
        TicketKind::Offboarding => "offboard-user",
        TicketKind::AccessChange => "change-access",
    }
}

/// The idempotency record a ticket's run is filed under (by its id, as
/// each stage files a ticket with a valid id).
pub fn run_key(kind: TicketKind, ticket_id: &TicketId) -> String {
    match kind {
        TicketKind::Onboarding => Key::ticket(ticket_id).as_str().to_owned(),
        TicketKind::Offboarding => Key::offboarding(&kind.records_of(ticket_id)).as_str().to_owned(),
        TicketKind::AccessChange => Key::access_change(&kind.records_of(ticket_id)).as_str().to_owned(),
    }
}

/// The requester's one email about a ticket: create-user's summary for an
/// onboarding (its refusal email apart), the stage's
/// `Key::lifecycle_summary` for the others (what was done or why not).
fn summary_key(kind: TicketKind, ticket_id: &TicketId) -> Key {
    match kind {
        TicketKind::Onboarding => Key::summary(ticket_id),
        other => Key::lifecycle_summary(run_by(other), &other.records_of(ticket_id)),
    }
}

/// Whether one email went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum EmailState {
    /// SES accepted it (its message id).
    Sent {
        message_id: Option<String>,
    },
    /// Claimed by a stage that has not finished (or died before its lease ran out).
    Sending,
    NotSent,
}

impl EmailState {
    fn of(state: Option<WorkState>) -> Self {
        match state {
            Some(WorkState::Completed(result)) => EmailState::Sent { message_id: result.as_str().map(str::to_owned) },
            Some(WorkState::InProgress) => EmailState::Sending,
            None => EmailState::NotSent,
        }
    }

    fn human(&self) -> &'static str {
        match self {
            EmailState::Sent { .. } => "sent",
            EmailState::Sending => "being sent",
            EmailState::NotSent => "not sent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailReport {
    /// `sign-in`, `password`, `access-key#<key id>` (notify-user's kinds).
    pub kind: String,
    #[serde(flatten)]
    pub state: EmailState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserStatus {
    /// `-` for a record about the whole ticket (one that could not be read).
    pub user_name: String,
    pub status: Stage,
    pub reasons: Vec<String>,
    pub updated_at: u64,
    pub emails: Vec<EmailReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequesterReport {
    /// From the hand-offs; unknown for a ticket refused before any (and
    /// for an offboarding or access change, which have none).
    pub email: Option<String>,
    pub summary: EmailState,
    /// create-user's refusal email; `null` for the other kinds, whose one
    /// summary says what was refused too.
    pub refusal_email: Option<EmailState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketStatus {
    pub ticket_id: String,
    /// `onboarding`, `offboarding` or `access_change`.
    pub kind: &'static str,
    /// The stage that runs it: create-user, offboard-user or change-access.
    pub run_by: &'static str,
    /// Its run: `finished`, `in_progress`, or `null` (no record: not run
    /// yet, or its record expired).
    pub run: Option<RunState>,
    /// The account its users are in; `null`: the pipeline's own.
    pub account: Option<String>,
    pub users: Vec<UserStatus>,
    pub requester: RequesterReport,
    /// Some user failed.
    pub failed: bool,
}

/// `Ok(None)`: the pipeline has no record of this ticket.
pub async fn status<S, W, L>(
    store: &S,
    work: &W,
    ledger: &L,
    ticket_id: &TicketId,
    account: Option<String>,
) -> Result<Option<TicketStatus>>
where
    S: StatusStore,
    W: WorkRecords,
    L: KeyLedger,
{
    // Each kind files its records apart (`TicketKind::records_of`): the
    // first kind holding a record or a run of this id is the ticket's.
    let mut found = None;
    for kind in [TicketKind::Onboarding, TicketKind::Offboarding, TicketKind::AccessChange] {
        let records = store.for_ticket(&kind.records_of(ticket_id)).await?;
        let run = RunState::of(work, &run_key(kind, ticket_id)).await?;
        if !records.is_empty() || run.is_some() {
            found = Some((kind, records, run));
            break;
        }
    }
    // The daily run's disables and deletions (`daily#EXPIRY-<date>`,
    // `daily#RETENTION-<date>`): offboardings without a run record.
    if found.is_none() {
        let records = store.for_ticket(&ticket_id.of_kind("daily")).await?;
        if !records.is_empty() {
            found = Some((TicketKind::Offboarding, records, None));
        }
    }
    let Some((kind, mut records, run)) = found else {
        return Ok(None);
    };
    records.sort_by(|a, b| a.user_name.cmp(&b.user_name));
    let mut requester = None;
    let mut users = Vec::with_capacity(records.len());
    for record in records {
        let handoff = match record.user_name.as_str() {
            // Only create-user records hand-offs.
            _ if kind != TicketKind::Onboarding => None,
            "-" => None,
            name => store.handoff(ticket_id, name).await?,
        };
        if let Some(h) = &handoff {
            requester.get_or_insert_with(|| h.requested_by.to_string());
        }
        // notify-user's emails are an onboarding's; the other kinds send the
        // requester one summary and the users nothing.
        let emails = match kind {
            TicketKind::Onboarding => {
                user_emails(work, ledger, ticket_id, &record, handoff.as_ref().map(|h| h.access)).await?
            }
            _ => Vec::new(),
        };
        users.push(UserStatus {
            reasons: record.reason.as_deref().map(|r| r.split("; ").map(str::to_owned).collect()).unwrap_or_default(),
            user_name: record.user_name,
            status: record.stage,
            updated_at: record.updated_at,
            emails,
        });
    }
    let failed = users.iter().any(|u| u.status == Stage::Failed);
    let refusal_email = match kind {
        TicketKind::Onboarding => Some(EmailState::of(work.work_state(Key::refusal_email(ticket_id).as_str()).await?)),
        _ => None,
    };
    let requester = RequesterReport {
        email: requester,
        summary: EmailState::of(work.work_state(summary_key(kind, ticket_id).as_str()).await?),
        refusal_email,
    };
    Ok(Some(TicketStatus {
        ticket_id: ticket_id.to_string(),
        kind: kind_name(kind),
        run_by: run_by(kind),
        run,
        account,
        users,
        requester,
        failed,
    }))
}

/// The emails notify-user sends a user (as its access asks), and any other
/// it has a record of: one per access key the ledger knows.
async fn user_emails<W: WorkRecords, L: KeyLedger>(
    work: &W,
    ledger: &L,
    ticket_id: &TicketId,
    record: &StatusRecord,
    access: Option<shared::ticket::Access>,
) -> Result<Vec<EmailReport>> {
    if record.user_name == "-" {
        return Ok(vec![]);
    }
    let user = record.user_name.as_str();
    let state = |kind: String| async move {
        let state = EmailState::of(work.work_state(Key::user_email(ticket_id, user, &kind).as_str()).await?);
        Ok::<_, shared::Error>(EmailReport { kind, state })
    };
    let mut emails = Vec::new();
    for kind in ["sign-in", "password"] {
        let email = state(kind.to_owned()).await?;
        if access.is_some_and(|a| a.console) || email.state != EmailState::NotSent {
            emails.push(email);
        }
    }
    let mut keys = Vec::new();
    for key in ledger.keys_of(user).await? {
        let email = state(format!("access-key#{}", key.access_key_id)).await?;
        if email.state != EmailState::NotSent {
            keys.push(email);
        }
    }
    if keys.is_empty() && access.is_some_and(|a| a.programmatic) {
        keys.push(EmailReport { kind: "access-key".into(), state: EmailState::NotSent });
    }
    emails.extend(keys);
    Ok(emails)
}

impl TicketStatus {
    pub fn human(&self) -> String {
        let account = self.account.as_deref().unwrap_or("the pipeline's own");
        let mut out = format!("ticket {} (account: {account})\n", self.ticket_id);
        let run = self.run.map(RunState::human).unwrap_or("no record of a run");
        out.push_str(&format!("  {} ticket, run by {}: {run}\n", self.kind.replace('_', " "), self.run_by));
        let onboarding = self.kind == kind_name(TicketKind::Onboarding);
        for u in &self.users {
            let who = if u.user_name == "-" { "(whole ticket)" } else { u.user_name.as_str() };
            let in_progress = if !onboarding && u.status == Stage::Accepted { " (in progress)" } else { "" };
            out.push_str(&format!("  {who}: {}{in_progress}\n", u.status.as_str()));
            // An offboarding or access change records what was done too.
            let label = if u.status == Stage::Failed || onboarding { "reason" } else { "result" };
            for reason in &u.reasons {
                out.push_str(&format!("      {label}: {reason}\n"));
            }
            if !u.emails.is_empty() {
                let emails: Vec<String> = u.emails.iter().map(|e| format!("{} {}", e.kind, e.state.human())).collect();
                out.push_str(&format!("      emails: {}\n", emails.join(", ")));
            }
        }
        let r = &self.requester;
        let to = r.email.as_deref().map(|e| format!(" {e}")).unwrap_or_default();
        let mut said = vec![format!("summary {}", r.summary.human())];
        if let Some(refusal) = r.refusal_email.as_ref().filter(|e| **e != EmailState::NotSent || self.failed) {
            said.push(format!("refusal email {}", refusal.human()));
        }
        out.push_str(&format!("  requester{to}: {}\n", said.join(", ")));
        if self.failed {
            let n = self.users.iter().filter(|u| u.status == Stage::Failed).count();
            out.push_str(&format!("{n} user(s) failed.\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::memory::{accepted, MemoryIdempotency, MemoryLedger, MemoryStatus};
    use shared::ports::{IdempotencyStore, KeyRecord};

    async fn complete(work: &MemoryIdempotency, key: Key, result: serde_json::Value) {
        work.complete(key.as_str(), "h", &result, u64::MAX).await.unwrap();
    }

    #[tokio::test]
    async fn each_user_with_its_stage_reasons_and_emails() {
        let (store, work, ledger) = (MemoryStatus::default(), MemoryIdempotency::default(), MemoryLedger::default());
        let handoffs = accepted(serde_json::json!({
            "ticket_id": "T-1", "requested_by": "req@example.com",
            "users": [
                {"user_name": "ann", "email": "ann@example.com", "access": {"console": true, "programmatic": true}},
                {"user_name": "bob", "email": "bob@example.com", "access": {"programmatic": true}}
            ]
        }));
        for h in &handoffs {
            store.insert_handoff(h);
        }
        let t = TicketId::parse("T-1").unwrap();
        store.record(&StatusRecord::new("T-1", "ann", Stage::Notified, None, 5)).await.unwrap();
        store
            .record(&StatusRecord::new("T-1", "bob", Stage::Failed, Some("no key; IAM said no".into()), 6))
            .await
            .unwrap();
        let key = KeyRecord::issued("ann", "AKIAANN", "ann@example.com", 1, None);
        ledger.record_issued(&key).await.unwrap();
        complete(&work, Key::user_email(&t, "ann", "sign-in"), serde_json::json!("m-1")).await;
        complete(&work, Key::user_email(&t, "ann", "access-key#AKIAANN"), serde_json::json!("m-3")).await;
        work.claim(Key::user_email(&t, "ann", "password").as_str(), "h", 1, u64::MAX, u64::MAX).await.unwrap();
        complete(&work, Key::summary(&t), serde_json::json!("m-9")).await;

        let s = status(&store, &work, &ledger, &t, None).await.unwrap().expect("known ticket");
        assert!(s.failed);
        assert_eq!((s.kind, s.run_by, s.run), ("onboarding", "create-user", None));
        let ann = &s.users[0];
        assert_eq!((ann.user_name.as_str(), ann.status), ("ann", Stage::Notified));
        let kinds: Vec<(&str, &EmailState)> = ann.emails.iter().map(|e| (e.kind.as_str(), &e.state)).collect();
        assert_eq!(
            kinds,
            [
                ("sign-in", &EmailState::Sent { message_id: Some("m-1".into()) }),
                ("password", &EmailState::Sending),
                ("access-key#AKIAANN", &EmailState::Sent { message_id: Some("m-3".into()) }),
            ]
        );
        let bob = &s.users[1];
        assert_eq!(bob.reasons, ["no key", "IAM said no"]);
        assert_eq!(bob.emails, [EmailReport { kind: "access-key".into(), state: EmailState::NotSent }]);
        assert_eq!(s.requester.email.as_deref(), Some("req@example.com"));
        assert_eq!(s.requester.summary, EmailState::Sent { message_id: Some("m-9".into()) });

        let text = s.human();
        for line in [
            "ticket T-1 (account: the pipeline's own)",
            "  ann: notified",
            "emails: sign-in sent, password being sent, access-key#AKIAANN sent",
            "  bob: failed",
            "      reason: IAM said no",
            "requester req@example.com: summary sent, refusal email not sent",
            "1 user(s) failed.",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["users"][0]["emails"][0],
            serde_json::json!({"kind": "sign-in", "state": "sent", "message_id": "m-1"})
        );
        assert_eq!(json["users"][1]["status"], "failed");
    }

    /// An offboarding ticket: its records (accepted is in progress), its
    /// run under offboard-user's key, its one summary; no user emails.
    #[tokio::test]
    async fn an_offboarding_ticket_with_its_stages_its_run_and_its_summary() {
        let (store, work, ledger) = (MemoryStatus::default(), MemoryIdempotency::default(), MemoryLedger::default());
        let t = TicketId::parse("OFF-311").unwrap();
        let records = TicketKind::Offboarding.records_of(&t);
        let done = "disabled: console password deleted, access keys made inactive, groups and policies removed";
        for (user, stage, reason) in [
            ("emily", Stage::Disabled, Some(done)),
            ("svc-report", Stage::Accepted, None),
            ("raj", Stage::Failed, Some("users[2].user_name: not created by iam-provisioner; left as it is")),
        ] {
            store.record(&StatusRecord::new(&records, user, stage, reason.map(str::to_owned), 7)).await.unwrap();
        }
        let run = Key::offboarding(&records);
        assert_eq!(run.as_str(), "offboard-user#offboarding#OFF-311");
        work.claim(run.as_str(), "h", 1, u64::MAX, u64::MAX).await.unwrap();

        let s = status(&store, &work, &ledger, &t, None).await.unwrap().expect("known ticket");
        assert_eq!((s.kind, s.run_by, s.run), ("offboarding", "offboard-user", Some(RunState::InProgress)));
        assert!(s.failed);
        assert!(s.users.iter().all(|u| u.emails.is_empty()), "{s:?}");
        assert_eq!(s.requester, RequesterReport { email: None, summary: EmailState::NotSent, refusal_email: None });
        let text = s.human();
        for line in [
            "ticket OFF-311 (account: the pipeline's own)\n  offboarding ticket, run by offboard-user: in progress\n",
            &format!("  emily: disabled\n      result: {done}\n"),
            "  raj: failed\n      reason: users[2].user_name: not created by iam-provisioner\n      reason: left as it is\n",
            "  svc-report: accepted (in progress)\n",
            "  requester: summary not sent\n",
            "1 user(s) failed.",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        assert!(!text.contains("refusal email"), "{text}");

        // The run finishes: svc-report deleted, the summary sent.
        store
            .record(&StatusRecord::new(&records, "svc-report", Stage::Deleted, Some("deleted".into()), 8))
            .await
            .unwrap();
        complete(&work, run, serde_json::json!({"ticket_id": "OFF-311"})).await;
        complete(&work, Key::lifecycle_summary("offboard-user", &records), serde_json::json!("m-1")).await;
        let s = status(&store, &work, &ledger, &t, None).await.unwrap().unwrap();
        assert_eq!(s.run, Some(RunState::Finished));
        assert_eq!(s.requester.summary, EmailState::Sent { message_id: Some("m-1".into()) });
        let text = s.human();
        assert!(
            text.contains("run by offboard-user: finished\n") && text.contains("  svc-report: deleted\n"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!((json["kind"].as_str(), json["run"].as_str()), (Some("offboarding"), Some("finished")));
        assert_eq!(json["users"][2]["status"], "deleted");
        assert_eq!(json["requester"]["refusal_email"], serde_json::Value::Null);
    }

    /// An access change by change-access' run record; a daily run's
    /// disabling (no run record) by its stage.
    #[tokio::test]
    async fn the_kind_is_what_the_records_say() {
        let (store, work, ledger) = (MemoryStatus::default(), MemoryIdempotency::default(), MemoryLedger::default());
        let chg = TicketId::parse("CHG-77").unwrap();
        let records = TicketKind::AccessChange.records_of(&chg);
        store.record(&StatusRecord::new(&records, "emily", Stage::Accepted, None, 1)).await.unwrap();
        complete(&work, Key::lifecycle_summary("change-access", &records), serde_json::json!("m-2")).await;
        work.claim("change-access#access-change#CHG-77", "h", 1, u64::MAX, u64::MAX).await.unwrap();
        let s = status(&store, &work, &ledger, &chg, None).await.unwrap().unwrap();
        assert_eq!((s.kind, s.run_by, s.run), ("access_change", "change-access", Some(RunState::InProgress)));
        assert_eq!(s.requester.summary, EmailState::Sent { message_id: Some("m-2".into()) });
        store.record(&StatusRecord::new(&records, "emily", Stage::AccessChanged, None, 2)).await.unwrap();
        let s = status(&store, &work, &ledger, &chg, None).await.unwrap().unwrap();
        assert!(s
            .human()
            .contains("  access change ticket, run by change-access: in progress\n  emily: access_changed\n"));

        let daily = TicketId::parse("EXPIRY-2026-11-25").unwrap();
        store
            .record(&StatusRecord::new(&daily.of_kind("daily"), "old", Stage::Disabled, Some("expired".into()), 3))
            .await
            .unwrap();
        let s = status(&store, &work, &ledger, &daily, None).await.unwrap().unwrap();
        assert_eq!((s.kind, s.run), ("offboarding", None));
        assert!(s.human().contains("offboarding ticket, run by offboard-user: no record of a run\n"), "{}", s.human());

        // A run claimed before any record: known, in progress.
        let early = TicketId::parse("OFF-9").unwrap();
        work.claim(Key::offboarding(&TicketKind::Offboarding.records_of(&early)).as_str(), "h", 1, u64::MAX, u64::MAX)
            .await
            .unwrap();
        let s = status(&store, &work, &ledger, &early, None).await.unwrap().expect("its run is a record");
        assert_eq!((s.kind, s.run, s.users.len()), ("offboarding", Some(RunState::InProgress), 0));
    }

    #[tokio::test]
    async fn an_unknown_ticket_is_none() {
        let (store, work, ledger) = (MemoryStatus::default(), MemoryIdempotency::default(), MemoryLedger::default());
        let t = TicketId::parse("NOPE").unwrap();
        assert_eq!(status(&store, &work, &ledger, &t, None).await.unwrap(), None);
    }
}
