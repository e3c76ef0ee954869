//! `status TICKET`: what the pipeline recorded of a ticket. Each user's
//! status record (how far it got, the reasons it failed), the emails sent
//! for it (an email is sent exactly when its idempotency record is
//! completed: the same records that keep it from being sent twice), and the
//! requester's summary or refusal email.

use serde::Serialize;
use shared::idempotency::Key;
use shared::names::TicketId;
use shared::ports::{KeyLedger, Stage, StatusRecord, StatusStore, WorkRecords, WorkState};
use shared::Result;

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
    /// From the hand-offs; unknown for a ticket refused before any.
    pub email: Option<String>,
    pub summary: EmailState,
    pub refusal_email: EmailState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketStatus {
    pub ticket_id: String,
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
    let mut records = store.for_ticket(ticket_id).await?;
    if records.is_empty() {
        return Ok(None);
    }
    records.sort_by(|a, b| a.user_name.cmp(&b.user_name));
    let mut requester = None;
    let mut users = Vec::with_capacity(records.len());
    for record in records {
        let handoff = match record.user_name.as_str() {
            "-" => None,
            name => store.handoff(ticket_id, name).await?,
        };
        if let Some(h) = &handoff {
            requester.get_or_insert_with(|| h.requested_by.to_string());
        }
        let emails = user_emails(work, ledger, ticket_id, &record, handoff.as_ref().map(|h| h.access)).await?;
        users.push(UserStatus {
            reasons: record.reason.as_deref().map(|r| r.split("; ").map(str::to_owned).collect()).unwrap_or_default(),
            user_name: record.user_name,
            status: record.stage,
            updated_at: record.updated_at,
            emails,
        });
    }
    let failed = users.iter().any(|u| u.status == Stage::Failed);
    let requester = RequesterReport {
        email: requester,
        summary: EmailState::of(work.work_state(Key::summary(ticket_id).as_str()).await?),
        refusal_email: EmailState::of(work.work_state(Key::refusal_email(ticket_id).as_str()).await?),
    };
    Ok(Some(TicketStatus { ticket_id: ticket_id.to_string(), account, users, requester, failed }))
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
        for u in &self.users {
            let who = if u.user_name == "-" { "(whole ticket)" } else { u.user_name.as_str() };
            out.push_str(&format!("  {who}: {}\n", u.status.as_str()));
            for reason in &u.reasons {
                out.push_str(&format!("      reason: {reason}\n"));
            }
            if !u.emails.is_empty() {
                let emails: Vec<String> = u.emails.iter().map(|e| format!("{} {}", e.kind, e.state.human())).collect();
                out.push_str(&format!("      emails: {}\n", emails.join(", ")));
            }
        }
        let r = &self.requester;
        let to = r.email.as_deref().map(|e| format!(" {e}")).unwrap_or_default();
        let mut said = vec![format!("summary {}", r.summary.human())];
        if r.refusal_email != EmailState::NotSent || self.failed {
            said.push(format!("refusal email {}", r.refusal_email.human()));
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

    #[tokio::test]
    async fn an_unknown_ticket_is_none() {
        let (store, work, ledger) = (MemoryStatus::default(), MemoryIdempotency::default(), MemoryLedger::default());
        let t = TicketId::parse("NOPE").unwrap();
        assert_eq!(status(&store, &work, &ledger, &t, None).await.unwrap(), None);
    }
}
