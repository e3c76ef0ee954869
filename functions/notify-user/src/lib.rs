//! notify-user: tells a new user how to sign in, from what their secret
//! holds, in separate emails so no single message is enough to sign in:
//! 1. sign-in (console users): user name and sign-in URL, no password;
//! 2. password (console users): the password, no URL, no user name;
//! 3. access key (programmatic users): key id and the secret's name, never
//!    the secret access key.
//!
//! A user whose ticket gave `expires_on` reads the day their access ends in
//! the sign-in and access-key emails.
//!
//! Each email has its own idempotency record, so a retry after a partial
//! failure, or a second delivery of the same message, sends only what is
//! missing. The records are the only lock needed: two deliveries at once
//! each meet the other's lease on the email it is sending and retry later.
//!
//! A message is only a pointer (`trusted`): it must equal what the
//! pipeline's records give for that user (create-user's hand-off, or the
//! rotation in the key ledger), the secret is read by its own name
//! `<prefix><user>` and only if its current version is one the pipeline
//! wrote, and the sign-in URL is built from the account, never read back
//! from the secret.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use shared::config::NotifyUserConfig;
use shared::date::Date;
use shared::error::{Error, Result};
use shared::handoff::{CredentialsReady, Received, Replaced, Rotation, UserReady};
use shared::idempotency::{self, payload_hash, Key, Window};
use shared::ports::StoredSecret;
use shared::ports::*;
use shared::secret::{sign_in_url, written_by_pipeline, UserSecret};
use shared::summary;
use shared::text::html_escape;

pub struct Deps<D, X, I, S, M, L, C> {
    /// Only for the account alias (the sign-in URL).
    pub directory: D,
    pub secrets: X,
    pub ledger: L,
    pub idempotency: I,
    pub status: S,
    pub mailer: M,
    pub clock: C,
    pub config: NotifyUserConfig,
}

impl<D, X, I, S, M, L, C> Deps<D, X, I, S, M, L, C>
where
    D: AccountFacts,
    X: SecretStore,
    I: IdempotencyStore,
    S: StatusStore + UntrustedLog,
    M: Mailer,
    L: KeyLedger,
    C: Clock,
{
    fn window(&self, lease_until: u64) -> Window {
        Window::new(self.clock.now(), lease_until, self.config.idempotency_ttl_secs)
    }

    pub async fn handle_sqs(&self, event: SqsEvent, lease_until: u64) -> SqsBatchResponse {
        let alias = tokio::sync::OnceCell::new();
        let alias = &alias;
        shared::lambda::for_each_message(
            event,
            "notify-user",
            self.config.concurrency,
            &self.status,
            self.clock.now(),
            |ready: Received<CredentialsReady>| async move { self.handle_in(&ready, lease_until, alias).await },
        )
        .await
    }

    /// `Ok` once the user is settled: every email sent, or refused and recorded.
    pub async fn handle(&self, ready: &CredentialsReady, lease_until: u64) -> Result<()> {
        let received = Received { message: ready.clone(), previous: None };
        self.handle_in(&received, lease_until, &tokio::sync::OnceCell::new()).await
    }

    async fn handle_in(
        &self,
        message: &Received<CredentialsReady>,
        lease_until: u64,
        alias: &tokio::sync::OnceCell<Option<String>>,
    ) -> Result<()> {
        let (ready, stored) = self.trusted(message).await?;
        shared::lambda::record_subject(&ready.ready.records_id(), Some(ready.ready.user_name()));
        let ready = &ready;
        let window = self.window(lease_until);
        let outcome = match self.notify(ready, &stored, alias, window).await {
            Ok(_) => Ok(()),
            // Passing, or the deployment's fault (SES sandbox, sender not
            // verified): not settled, the message goes back, and after the
            // fix a redrive sends what is missing. Same user, other content
            // (PayloadMismatch) must not touch the user's record either.
            Err(e) if !e.is_refusal() => return Err(e),
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(%reason, "user could not be notified");
                self.set_status(ready, Stage::Failed, Some(reason)).await
            }
        };
        outcome?;
        // A rotation has no requester waiting for a summary.
        let Some(ticket) = ready.ready.onboarding() else {
            return Ok(());
        };
        summary::send_if_settled(&self.status, &self.idempotency, &self.mailer, &self.config.sender, ticket, window)
            .await
    }

    /// The pipeline's own record of what `message` asks for, with the user's
    /// secret, if the message matches them exactly; `Error::Untrusted`
    /// otherwise.
    async fn trusted(&self, received: &Received<CredentialsReady>) -> Result<(CredentialsReady, StoredSecret)> {
        let message = &received.message;
        let name = message.ready.user_name();
        let untrusted = |why: String| Error::Untrusted(format!("message for user {name:?}: {why}"));
        let handoff = match &message.ready {
            UserReady::Onboarding(o) => self
                .status
                .handoff(&o.ticket_id, name)
                .await?
                .map(UserReady::Onboarding)
                .ok_or_else(|| untrusted(format!("no such user was accepted under ticket {:?}", o.ticket_id)))?,
            UserReady::Rotation(r) => {
                let old = &r.replaces.access_key_id;
                let ledger = self.ledger.keys_of(name).await?;
                let succeeded = ledger.iter().any(|k| k.replaces.as_deref() == Some(old.as_str()));
                Rotation::recorded(&ledger, old)
                    .filter(|_| succeeded)
                    .map(UserReady::Rotation)
                    .ok_or_else(|| untrusted(format!("no successor of key {old} is on record")))?
            }
        };
        let secret_name = format!("{}{}", self.config.secret_prefix, name);
        let stored = self
            .secrets
            .read(&secret_name)
            .await?
            .ok_or_else(|| untrusted(format!("secret {secret_name} does not exist")))?;
        let kms = self.config.secrets_kms_key_id.as_deref();
        if !written_by_pipeline(&self.secrets, &self.ledger, &secret_name, &stored, name, kms).await? {
            return Err(untrusted(format!("secret {secret_name} holds a version the pipeline did not write")));
        }
        // The ARN as AWS returned it, or its partial form (without the random
        // suffix), which Secrets Manager takes for the same secret.
        let given = &message.secret.arn;
        let arn = if is_partial_arn_of(given, &stored.arn) { given } else { &stored.arn };
        let recorded = CredentialsReady::stored(&handoff, arn, &secret_name);
        if !received.matches(&recorded) {
            return Err(untrusted(format!(
                "differs from what the pipeline recorded for {:?}",
                message.ready.records_id()
            )));
        }
        Ok((recorded, stored))
    }

    async fn notify(
        &self,
        ready: &CredentialsReady,
        stored: &StoredSecret,
        alias: &tokio::sync::OnceCell<Option<String>>,
        window: Window,
    ) -> Result<()> {
        let secret_name = &ready.secret.name;
        let handoff = &ready.ready;
        let to = &handoff.user().email;
        let secret: UserSecret = serde_json::from_str(stored.value.expose()).map_err(|e| {
            Error::permanent("GetSecretValue", format!("secret {secret_name} is not a user secret: {e}"))
        })?;
        if let Some(o) = handoff.onboarding().filter(|o| o.access.console) {
            // From the account, never from the secret.
            let account = match alias.get_or_try_init(|| self.directory.account_alias()).await? {
                Some(alias) => alias.clone(),
                None => stored
                    .arn
                    .split(':')
                    .nth(4)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| Error::permanent("GetSecretValue", "no account id in the secret's ARN"))?,
            };
            let url = sign_in_url(&account);
            let email = with_expiry(sign_in_email(to, &o.user.user_name, &url), o.expires_on);
            self.send_once(ready, "sign-in", email, window).await?;
            let password = secret
                .password
                .as_ref()
                .ok_or_else(|| Error::permanent("GetSecretValue", format!("secret {secret_name} holds no password")))?;
            self.send_once(ready, "password", password_email(to, password.expose(), o.require_password_reset), window)
                .await?;
        }
        if handoff.access().programmatic {
            let key_id = secret.access_key_id.as_deref().ok_or_else(|| {
                Error::permanent("GetSecretValue", format!("secret {secret_name} holds no access key"))
            })?;
            // Keyed by the key id: a rotated key is news, the same key is not.
            let kind = format!("access-key#{key_id}");
            let mut email = access_key_email(to, key_id, secret_name);
            if let Some(old) = handoff.replaces() {
                email = rotated_key_email(email, old);
            }
            email = with_expiry(email, handoff.onboarding().and_then(|o| o.expires_on));
            self.send_once(ready, &kind, email, window).await?;
        }
        if handoff.onboarding().is_some() {
            self.set_status(ready, Stage::Notified, None).await?;
        }
        tracing::info!("user notified");
        Ok(())
    }

    /// The record's hash is of the message that asked for the email, never
    /// of the email's body (a hash of a password is still about the
    /// password): the same message again is a replay, another one under the
    /// same ticket and user is refused as a mismatch.
    async fn send_once(&self, ready: &CredentialsReady, kind: &str, email: Email, window: Window) -> Result<()> {
        let key = Key::user_email(&ready.ready.records_id(), ready.ready.user_name(), kind);
        idempotency::once(&self.idempotency, &key, &payload_hash(ready)?, window, || async {
            let id = self.mailer.send(&self.config.sender, &email).await?;
            shared::metrics::count(shared::metrics::name::EMAILS_SENT, 1);
            tracing::info!(email = kind, ses_message_id = %id, "email sent");
            Ok(id)
        })
        .await
        .map(drop)
    }

    async fn set_status(&self, ready: &CredentialsReady, stage: Stage, reason: Option<String>) -> Result<()> {
        let handoff = &ready.ready;
        let record = StatusRecord::new(&handoff.records_id(), handoff.user_name(), stage, reason, self.clock.now());
        self.status.record(&record).await
    }
}

/// `partial` is `full` without the `-XXXXXX` Secrets Manager appends to a
/// secret's ARN.
fn is_partial_arn_of(partial: &str, full: &str) -> bool {
    full.strip_prefix(partial)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|suffix| suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()))
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

/// An email with the day the user's access ends, if it does.
pub fn with_expiry(mut email: Email, expires_on: Option<Date>) -> Email {
    if let Some(day) = expires_on {
        let note = format!(
            "Your AWS access ends on {day} (UTC): this user is disabled that day. \
             Ask whoever requested your access if you need it longer."
        );
        email.text.push_str(&format!("\n{note}\n"));
        email.html.push_str(&format!("<p>{}</p>", html_escape(&note)));
    }
    email
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
