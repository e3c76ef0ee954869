//! notify-user: tells a new user how to sign in, from what their secret
//! holds, in separate emails so no single message is enough to sign in:
//! 1. sign-in (console users): user name and sign-in URL, no password;
//! 2. password (console users): the password, no URL, no user name;
//! 3. access key (programmatic users): key id and the secret's name, never
//!    the secret access key.
//!
//! Each email has its own idempotency record, so a retry after a partial
//! failure, or a second delivery of the same message, sends only what is
//! missing. The records are the only lock needed: two deliveries at once
//! each meet the other's lease on the email it is sending and retry later.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use shared::config::NotifyUserConfig;
use shared::error::{Error, Result};
use shared::idempotency::{self, payload_hash, Window};
use shared::ports::*;
use shared::secret::UserSecret;
use shared::summary::{self, TicketRef};
use shared::text::html_escape;

pub struct Deps<X, I, S, M, C> {
    pub secrets: X,
    pub idempotency: I,
    pub status: S,
    pub mailer: M,
    pub clock: C,
    pub config: NotifyUserConfig,
}

impl<X, I, S, M, C> Deps<X, I, S, M, C>
where
    X: SecretStore,
    I: IdempotencyStore,
    S: StatusStore,
    M: Mailer,
    C: Clock,
{
    fn window(&self, lease_until: u64) -> Window {
        Window::new(self.clock.now(), lease_until, self.config.idempotency_ttl_secs)
    }

    pub async fn handle_sqs(&self, event: SqsEvent, lease_until: u64) -> SqsBatchResponse {
        shared::lambda::for_each_message(
            event,
            "notify-user",
            self.config.concurrency,
            |ready: CredentialsReady| async move { self.handle(&ready, lease_until).await },
        )
        .await
    }

    /// `Ok` once the user is settled: every email sent, or refused and recorded.
    pub async fn handle(&self, ready: &CredentialsReady, lease_until: u64) -> Result<()> {
        let window = self.window(lease_until);
        let outcome = match self.notify(ready, window).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_retryable() => return Err(e),
            // Same user, other content: not a replay but a stray or forged
            // message. It must not touch the user's record; it waits in the
            // dead-letter queue for a person.
            Err(e @ Error::PayloadMismatch(_)) => return Err(e),
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(ticket_id = %ready.ticket_id, user = %ready.user_name, %reason, "user could not be notified");
                self.set_status(ready, Stage::Failed, Some(reason)).await
            }
        };
        outcome?;
        let ticket =
            TicketRef { ticket_id: &ready.ticket_id, requested_by: &ready.requested_by, users: &ready.ticket_users };
        summary::send_if_settled(&self.status, &self.idempotency, &self.mailer, &self.config.sender, ticket, window)
            .await
    }

    async fn notify(&self, ready: &CredentialsReady, window: Window) -> Result<()> {
        let stored = self.secrets.read(&ready.secret_arn).await?.ok_or_else(|| {
            Error::permanent("GetSecretValue", format!("secret {} does not exist", ready.secret_name))
        })?;
        let secret: UserSecret = serde_json::from_str(stored.value.expose()).map_err(|e| {
            Error::permanent("GetSecretValue", format!("secret {} is not a user secret: {e}", ready.secret_name))
        })?;
        if ready.console {
            self.send_once(
                ready,
                "sign-in",
                sign_in_email(&ready.email, &secret.user_name, &secret.console_sign_in_url),
                window,
            )
            .await?;
            let password = secret.password.as_ref().ok_or_else(|| {
                Error::permanent("GetSecretValue", format!("secret {} holds no password", ready.secret_name))
            })?;
            self.send_once(
                ready,
                "password",
                password_email(&ready.email, password.expose(), ready.require_password_reset),
                window,
            )
            .await?;
        }
        if ready.programmatic {
            let key_id = secret.access_key_id.as_deref().ok_or_else(|| {
                Error::permanent("GetSecretValue", format!("secret {} holds no access key", ready.secret_name))
            })?;
            // Keyed by the key id: a rotated key is news, the same key is not.
            let kind = format!("access-key#{key_id}");
            let mut email = access_key_email(&ready.email, key_id, &ready.secret_name);
            if let Some(old) = &ready.replaces {
                email = rotated_key_email(email, old);
            }
            self.send_once(ready, &kind, email, window).await?;
        }
        if ready.replaces.is_none() {
            self.set_status(ready, Stage::Notified, None).await?;
        }
        tracing::info!(ticket_id = %ready.ticket_id, user = %ready.user_name, "user notified");
        Ok(())
    }

    /// The record's hash is of the message that asked for the email, never
    /// of the email's body (a hash of a password is still about the
    /// password): the same message again is a replay, another one under the
    /// same ticket and user is refused as a mismatch.
    async fn send_once(&self, ready: &CredentialsReady, kind: &str, email: Email, window: Window) -> Result<()> {
        let key = format!("notify-user#{}#{}#{kind}", ready.ticket_id, ready.user_name);
        idempotency::once(&self.idempotency, &key, &payload_hash(ready), window, || async {
            let id = self.mailer.send(&self.config.sender, &email).await?;
            tracing::info!(user = %ready.user_name, email = kind, message_id = %id, "email sent");
            Ok(serde_json::Value::String(id))
        })
        .await
        .map(drop)
    }

    async fn set_status(&self, ready: &CredentialsReady, stage: Stage, reason: Option<String>) -> Result<()> {
        let record = StatusRecord::new(&ready.ticket_id, &ready.user_name, stage, reason, self.clock.now());
        self.status.record(&record).await
    }
}

pub fn sign_in_email(to: &str, user_name: &str, url: &str) -> Email {
    let text = format!(
        "Hello,\n\nAn AWS account user has been created for you.\n\nUser name: {user_name}\nSign in at: {url}\n\n\
         Your password comes in a separate email.\n"
    );
    let html = format!(
        "<p>Hello,</p><p>An AWS account user has been created for you.</p>\
         <p>User name: <b>{}</b><br>Sign in at: <a href=\"{url}\">{url}</a></p>\
         <p>Your password comes in a separate email.</p>",
        html_escape(user_name),
        url = html_escape(url)
    );
    Email { to: to.to_owned(), subject: "Your AWS sign-in details".into(), text, html }
}

pub fn password_email(to: &str, password: &str, reset_required: bool) -> Email {
    let change = if reset_required {
        "You must change it when you first sign in."
    } else {
        "Keep it private; you can change it after signing in."
    };
    let text = format!("Hello,\n\nYour temporary AWS console password is:\n\n    {password}\n\n{change}\nThe sign-in details come in a separate email.\n");
    let html = format!(
        "<p>Hello,</p><p>Your temporary AWS console password is:</p><p><code>{}</code></p><p>{change}<br>The sign-in details come in a separate email.</p>",
        html_escape(password)
    );
    Email { to: to.to_owned(), subject: "Your AWS console password".into(), text, html }
}

pub fn access_key_email(to: &str, access_key_id: &str, secret_name: &str) -> Email {
    let text = format!(
        "Hello,\n\nAn AWS access key has been issued for you.\n\nAccess key ID: {access_key_id}\n\n\
         The secret access key is never sent by email: read it from AWS Secrets Manager, secret {secret_name} (key secret_access_key).\n"
    );
    let html = format!(
        "<p>Hello,</p><p>An AWS access key has been issued for you.</p><p>Access key ID: <code>{}</code></p>\
         <p>The secret access key is never sent by email: read it from AWS Secrets Manager, secret <code>{}</code> (key <code>secret_access_key</code>).</p>",
        html_escape(access_key_id),
        html_escape(secret_name)
    );
    Email { to: to.to_owned(), subject: "Your AWS access key".into(), text, html }
}

/// The access-key email of a rotation: the same facts, plus which key it
/// replaces and from when that one stops working.
pub fn rotated_key_email(mut email: Email, old: &Replaced) -> Email {
    let when = shared::text::date(old.deactivated_after);
    email.subject = "Your AWS access key was rotated".into();
    let note = format!(
        "It replaces access key {}, which will be deactivated on {when}: switch to the new key before then.",
        old.access_key_id
    );
    email.text.push_str(&format!("\n{note}\n"));
    email.html.push_str(&format!("<p>{}</p>", html_escape(&note)));
    email
}

#[cfg(test)]
mod tests;
