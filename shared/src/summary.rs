//! The requester's one summary email per ticket, sent when every user of the
//! ticket is settled (notified, or failed). Whichever stage settles the last
//! user sends it; the idempotency record makes "whichever" exactly one.

use crate::error::Result;
use crate::handoff::Onboarding;
use crate::idempotency::{self, payload_hash, Window};
use crate::ports::{Email, IdempotencyStore, Mailer, Stage, StatusStore};
use crate::text::html_escape;

/// `ticket` is any user's hand-off of the ticket: each carries the whole
/// list of the ticket's users.
pub async fn send_if_settled<S, I, M>(
    status: &S,
    idempotency: &I,
    mailer: &M,
    sender: &str,
    ticket: &Onboarding,
    window: Window,
) -> Result<()>
where
    S: StatusStore,
    I: IdempotencyStore,
    M: Mailer,
{
    let records = status.for_ticket(&ticket.ticket_id).await?;
    let mut ready = Vec::new();
    let mut refused = Vec::new();
    for user in &ticket.ticket_users {
        match records.iter().find(|r| r.user_name == user.as_str()) {
            Some(r) if r.stage == Stage::Notified => ready.push(user.to_string()),
            Some(r) if r.stage == Stage::Failed => {
                refused.push((user.to_string(), r.reason.clone().unwrap_or_default()))
            }
            _ => return Ok(()),
        }
    }
    let email = summary_email(&ticket.ticket_id, &ticket.requested_by, &ready, &refused);
    let key = idempotency::Key::summary(&ticket.ticket_id);
    let sent = idempotency::once(idempotency, &key, &payload_hash(&ticket.ticket_users)?, window, || async {
        let id = mailer.send(sender, &email).await?;
        crate::metrics::count(crate::metrics::name::EMAILS_SENT, 1);
        Ok(id)
    })
    .await;
    match sent {
        // Two last users settled at once, and the other one is sending it.
        // Its own message is not done until the email is out (or goes back
        // to the queue and tries again), so this one need not wait for it.
        Err(crate::Error::InProgress(_)) => {
            tracing::info!(ticket_id = %ticket.ticket_id, "summary being sent by another invocation");
            Ok(())
        }
        other => other.map(drop),
    }
}

fn summary_email(ticket_id: &str, to: &str, ready: &[String], refused: &[(String, String)]) -> Email {
    let subject = format!("Onboarding ticket {ticket_id}: {} user(s) ready, {} refused", ready.len(), refused.len());
    let mut text = format!("Onboarding ticket {ticket_id} is done.\n\n");
    let mut html = format!("<p>Onboarding ticket <b>{}</b> is done.</p>", html_escape(ticket_id));
    if !ready.is_empty() {
        text.push_str("Created and told how to sign in:\n");
        html.push_str("<p>Created and told how to sign in:</p><ul>");
        for u in ready {
            text.push_str(&format!("- {u}\n"));
            html.push_str(&format!("<li>{}</li>", html_escape(u)));
        }
        html.push_str("</ul>");
    }
    if !refused.is_empty() {
        text.push_str("\nRefused:\n");
        html.push_str("<p>Refused:</p><ul>");
        for (u, reason) in refused {
            text.push_str(&format!("- {u}: {reason}\n"));
            html.push_str(&format!("<li><b>{}</b>: {}</li>", html_escape(u), html_escape(reason)));
        }
        html.push_str("</ul>");
    }
    text.push_str("\nNo credentials are in this email: each person received their own.\n");
    html.push_str("<p>No credentials are in this email: each person received their own.</p>");
    Email { to: to.to_owned(), subject, text, html }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryIdempotency, MemoryMailer, MemoryStatus};
    use crate::ports::{StatusRecord, StatusStore};

    #[tokio::test]
    async fn last_two_users_settling_at_once_send_one_summary_and_neither_is_retried() {
        let (status, idem, mailer) = (MemoryStatus::default(), MemoryIdempotency::default(), MemoryMailer::default());
        let users = ["a", "b"];
        for u in users {
            status.record(&StatusRecord::new("T-1", u, Stage::Notified, None, 1)).await.unwrap();
        }
        let window = Window::new(100, 160, 3600);
        let handoffs = crate::memory::accepted(serde_json::json!({
            "ticket_id": "T-1", "requested_by": "req@example.com",
            "users": users.map(|u| serde_json::json!({"user_name": u, "email": format!("{u}@example.com"),
                "access": {"programmatic": true}}))
        }));
        let ticket = || &handoffs[0];
        // The other user's invocation holds the summary's lease, mid-send.
        let hash = payload_hash(&users).unwrap();
        assert_eq!(idem.claim("summary#T-1", &hash, 100, 160, 3600).await.unwrap(), crate::ports::Claim::Acquired);
        send_if_settled(&status, &idem, &mailer, "from@example.com", ticket(), window).await.unwrap();
        assert!(mailer.outbox().is_empty());
        // Its lease ran out (it died): its message, back from the queue, sends it.
        let later = Window::new(200, 260, 3600);
        send_if_settled(&status, &idem, &mailer, "from@example.com", ticket(), later).await.unwrap();
        assert_eq!(mailer.outbox().len(), 1);
    }
}
