//! issue-credentials: the console password and the access key of a user
//! create-user made, kept in the user's secret in Secrets Manager.
//!
//! Order matters because IAM shows a secret access key only once and allows
//! two keys per user:
//! 1. the secret is read: what it records was issued before;
//! 2. a password is generated (or the custom one read and checked) unless
//!    the secret holds one; keys IAM has but the secret does not record are
//!    leftovers of a run that died before storing them, and are deleted
//!    before a new key is made;
//! 3. the secret is written, once, with everything;
//! 4. only then is the login profile created, with the stored password.
//!
//! A run that dies anywhere is finished by the retry without a second key,
//! a lost password or a login profile whose password nobody has.
//!
//! Nothing a message says is taken on its word: an onboarding hand-off must
//! equal the one create-user recorded for that ticket and user, a rotation
//! one the rotation rotate-keys recorded in the key ledger (`trusted`). A
//! secret found under the user's name is used only if its current version is
//! one the pipeline recorded before writing it; anyone else's refuses the
//! user. The sign-in URL is built from the account, never read back.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use shared::config::IssueCredentialsConfig;
use shared::error::{Error, Result};
use shared::handoff::{self, CredentialsReady, Onboarding, Received, Rotation, UserReady};
use shared::idempotency::{self, payload_hash, Key, Window};
use shared::password;
use shared::ports::*;
use shared::secret::{new_version_id, sign_in_url, written_by_pipeline, Sensitive, UserSecret};
use shared::summary;
use shared::ticket::{ConsolePassword, MANAGED_TAG, TICKET_TAG};

pub struct Deps<D, X, I, S, P, M, L, C> {
    pub directory: D,
    pub secrets: X,
    pub ledger: L,
    pub idempotency: I,
    pub status: S,
    pub publisher: P,
    pub mailer: M,
    pub clock: C,
    pub config: IssueCredentialsConfig,
}

/// What one invocation reads of the account once, for all its records: the
/// alias (for the sign-in URL) and the password policy. Not kept longer, so a
/// policy an administrator tightens applies from the next invocation on.
#[derive(Default)]
struct Account {
    alias: tokio::sync::OnceCell<Option<String>>,
    policy: tokio::sync::OnceCell<password::PasswordPolicy>,
}

fn account_id_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|id| !id.is_empty())
}

impl<D, X, I, S, P, M, L, C> Deps<D, X, I, S, P, M, L, C>
where
    D: Users + Provisioning + AccountFacts + Credentials,
    X: SecretStore,
    L: KeyLedger,
    I: IdempotencyStore,
    S: StatusStore + UntrustedLog,
    P: EventPublisher,
    M: Mailer,
    C: Clock,
{
    fn window(&self, lease_until: u64) -> Window {
        Window::new(self.clock.now(), lease_until, self.config.idempotency_ttl_secs)
    }

    pub async fn handle_sqs(&self, event: SqsEvent, lease_until: u64) -> SqsBatchResponse {
        let account = Account::default();
        let account = &account;
        shared::lambda::for_each_message(
            event,
            "issue-credentials",
            self.config.concurrency,
            &self.status,
            self.clock.now(),
            |ready: Received<UserReady>| async move { self.handle_in(&ready, lease_until, account).await.map(drop) },
        )
        .await
    }

    /// `Ok` once the user is settled: credentials issued and handed on, or
    /// refused and recorded.
    pub async fn handle(&self, ready: &UserReady, lease_until: u64) -> Result<Option<CredentialsReady>> {
        let received = Received { message: ready.clone(), previous: None };
        self.handle_in(&received, lease_until, &Account::default()).await
    }

    async fn handle_in(
        &self,
        message: &Received<UserReady>,
        lease_until: u64,
        account: &Account,
    ) -> Result<Option<CredentialsReady>> {
        let ready = &self.trusted(message).await?;
        shared::lambda::record_subject(&ready.records_id(), Some(ready.user_name()));
        let window = self.window(lease_until);
        let key = Key::credentials(&ready.records_id(), ready.user_name());
        let run =
            idempotency::once(&self.idempotency, &key, &payload_hash(ready)?, window, || self.issue(ready, account))
                .await;
        match run {
            Ok(outcome) => Ok(Some(outcome.into_inner())),
            // Passing, or the deployment's fault: not settled, the message
            // goes back (and after the fix, a redrive finishes the user).
            // Same user, other content (PayloadMismatch): not a replay but a
            // stray or forged message that must not touch the user's record.
            Err(e) if !e.is_refusal() => Err(e),
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(%reason, "credentials refused");
                self.set_status(ready, Stage::Failed, Some(reason)).await?;
                // A rotation has no requester waiting for a summary.
                if let Some(ticket) = ready.onboarding() {
                    summary::send_if_settled(
                        &self.status,
                        &self.idempotency,
                        &self.mailer,
                        &self.config.sender,
                        ticket,
                        window,
                    )
                    .await?;
                }
                Ok(None)
            }
        }
    }

    /// The pipeline's own record of what `message` asks for, if the message
    /// matches it exactly; `Error::Untrusted` otherwise.
    async fn trusted(&self, received: &Received<UserReady>) -> Result<UserReady> {
        let message = &received.message;
        let name = message.user_name();
        let recorded = match message {
            UserReady::Onboarding(o) => {
                self.status.handoff(&o.ticket_id, name).await?.map(UserReady::Onboarding).ok_or_else(|| {
                    Error::Untrusted(format!("no user {name:?} was accepted under ticket {:?}", o.ticket_id))
                })?
            }
            UserReady::Rotation(r) => {
                let old = &r.replaces.access_key_id;
                let ledger = self.ledger.keys_of(name).await?;
                Rotation::recorded(&ledger, old).map(UserReady::Rotation).ok_or_else(|| {
                    Error::Untrusted(format!("no rotation of key {old} of user {name:?} was ordered by rotate-keys"))
                })?
            }
        };
        if !received.matches(&recorded) {
            return Err(Error::Untrusted(format!(
                "the message for user {name:?} of {:?} differs from what the pipeline recorded for it",
                message.records_id()
            )));
        }
        Ok(recorded)
    }

    async fn issue(&self, ready: &UserReady, account_facts: &Account) -> Result<CredentialsReady> {
        let name = ready.user_name();
        let access = ready.access();
        // Never issue credentials for a user this ticket did not create,
        // whatever a message on the queue says.
        let user = self
            .directory
            .get_user(name)
            .await?
            // create-user made it (its hand-off is on record): not there yet
            // is IAM's eventual consistency, and the retry finds it; a user
            // deleted meanwhile waits in the dead-letter queue for a person.
            .ok_or_else(|| {
                Error::retryable("GetUser", format!("user {name:?} is not visible (yet): IAM is eventually consistent"))
            })?;
        let managed = user.tags.get(MANAGED_TAG).map(String::as_str) == Some("true");
        // A second check beside the records (`trusted`): a rotation concerns a
        // managed user whose key the ledger holds; onboarding only the
        // ticket's own user.
        let ours = managed
            && match ready {
                UserReady::Onboarding(o) => user.tags.get(TICKET_TAG).map(String::as_str) == Some(o.ticket_id.as_str()),
                UserReady::Rotation(_) => true,
            };
        if !ours {
            return Err(Error::permanent(
                "GetUser",
                format!("user {name:?} was not created by ticket {}", ready.records_id()),
            ));
        }
        let alias = account_facts.alias.get_or_try_init(|| self.directory.account_alias()).await?;
        let account = match alias {
            Some(alias) => alias.clone(),
            None => account_id_of(&user.arn)
                .ok_or_else(|| Error::permanent("GetUser", "no account id in the user's ARN"))?
                .to_owned(),
        };
        let secret_name = format!("{}{}", self.config.secret_prefix, name);
        let stored = self.secrets.read(&secret_name).await?;
        if let Some(found) = &stored {
            let kms = self.config.secrets_kms_key_id.as_deref();
            if !written_by_pipeline(&self.secrets, &self.ledger, &secret_name, found, name, kms).await? {
                return Err(Error::permanent(
                    "GetSecretValue",
                    format!(
                        "secret {secret_name} already exists and was not created by the pipeline for user {name:?}; \
                         it is never used: remove it (it may be an attempt to plant credentials) and submit the user again"
                    ),
                ));
            }
        }
        let mut secret = match &stored {
            Some(s) => serde_json::from_str::<UserSecret>(s.value.expose()).map_err(|e| {
                Error::permanent("GetSecretValue", format!("secret {secret_name} is not a user secret: {e}"))
            })?,
            None => UserSecret {
                user_name: name.to_string(),
                console_sign_in_url: sign_in_url(&account),
                password: None,
                access_key_id: None,
                secret_access_key: None,
            },
        };
        let before = secret.clone();
        let policy = account_facts.policy.get_or_try_init(|| self.directory.password_policy()).await?;

        if let (Some(o), true) = (ready.onboarding(), secret.password.is_none()) {
            if o.access.console {
                secret.password = Some(self.console_password(o, policy).await?);
            }
        }
        if access.programmatic {
            self.issue_key(ready, &mut secret).await?;
        }

        // Always the account's own, whatever an earlier version held.
        secret.console_sign_in_url = sign_in_url(&account);
        let body =
            Sensitive::new(serde_json::to_string(&secret).map_err(|e| Error::permanent("secret", e.to_string()))?);
        let secret_arn = match stored {
            Some(s) if secret == before => s.arn,
            stored => {
                // Recorded before it is written: a version found later is
                // ours only if it is on this list.
                let version = new_version_id()?;
                self.ledger.record_secret_version(name, &version).await?;
                match stored {
                    None => {
                        let kms = self.config.secrets_kms_key_id.as_deref();
                        self.secrets.create(&secret_name, &body, &user.tags, &version, kms).await?
                    }
                    Some(s) => {
                        self.secrets.put(&s.arn, &body, &version).await?;
                        s.arn
                    }
                }
            }
        };

        if let (true, Some(key_id)) = (access.programmatic, &secret.access_key_id) {
            let record = KeyRecord::issued(
                name,
                key_id,
                &ready.user().email,
                self.clock.now(),
                ready.replaces().map(|r| r.access_key_id.as_str()),
            );
            // After the secret: a key in the ledger is a key whose secret was kept.
            self.ledger.record_issued(&record).await?;
        }
        if let Some(o) = ready.onboarding().filter(|o| o.access.console) {
            // Already there when a run that died after making it is retried:
            // made from this same stored password, so there is nothing to do.
            let password = secret.password.as_ref().ok_or_else(|| Error::permanent("secret", "password missing"))?;
            self.directory.create_login_profile(name, password, o.require_password_reset).await?;
            // As the console does: a user who must change the password at first
            // sign-in needs the permission to, where the account does not grant it.
            if o.require_password_reset && (policy.is_aws_default || !policy.allow_users_to_change_password) {
                self.directory.attach_user_policy(name, &self.config.change_password_policy).await?;
            }
        }
        if ready.onboarding().is_some() {
            self.set_status(ready, Stage::CredentialsIssued, None).await?;
        }

        let next = CredentialsReady::stored(ready, &secret_arn, &secret_name);
        let counted = match ready {
            UserReady::Onboarding(_) => shared::metrics::name::CREDENTIALS_ISSUED,
            UserReady::Rotation(_) => shared::metrics::name::KEYS_ROTATED,
        };
        // Under this user's idempotency record: handed on once, except by a
        // run cut off after this line, whose retry hands on the same message
        // again; notify-user keeps one record per email, so that sends nothing twice.
        self.publisher.publish(&handoff::write(&next)).await?;
        shared::metrics::count(counted, 1);
        tracing::info!("credentials issued and stored; handed to notify-user");
        Ok(next)
    }

    /// Exactly one new key where one is due. A key IAM has that neither the
    /// secret nor the ledger knows was made by a run cut off before storing
    /// it: its secret is lost, so it is deleted, which also frees the slot
    /// the new key needs.
    async fn issue_key(&self, ready: &UserReady, secret: &mut UserSecret) -> Result<()> {
        let name = ready.user_name();
        let keys = self.directory.access_keys(name).await?;
        // Only a key IAM has needs the ledger's word on whether it is ours.
        let ledger = if keys.is_empty() { Vec::new() } else { self.ledger.keys_of(name).await? };
        let recorded = secret.access_key_id.clone();
        let known = |id: &str| recorded.as_deref() == Some(id) || ledger.iter().any(|k| k.access_key_id == id);
        for orphan in keys.iter().filter(|k| !known(&k.access_key_id)) {
            tracing::warn!(access_key_id = %orphan.access_key_id, "deleting a key no secret records (left by an interrupted run)");
            self.directory.delete_access_key(name, &orphan.access_key_id).await?;
        }
        let live: Vec<&AccessKeyInfo> = keys.iter().filter(|k| known(&k.access_key_id)).collect();
        let due = match ready.replaces() {
            // Onboarding: unless the stored key is there.
            None => !live.iter().any(|k| Some(&k.access_key_id) == recorded.as_ref()),
            // Rotation: while the secret still holds the key being replaced.
            Some(old) => recorded.as_deref() == Some(old.access_key_id.as_str()),
        };
        if !due {
            return Ok(());
        }
        if live.len() >= 2 {
            return Err(Error::permanent(
                "CreateAccessKey",
                format!("user {name:?} already has two access keys; IAM allows no third"),
            ));
        }
        let key = self.directory.create_access_key(name).await?;
        secret.access_key_id = Some(key.access_key_id);
        secret.secret_access_key = Some(key.secret_access_key);
        Ok(())
    }

    async fn console_password(&self, ready: &Onboarding, policy: &password::PasswordPolicy) -> Result<Sensitive> {
        let (user_name, email) = (&ready.user.user_name, &ready.user.email);
        match &ready.console_password {
            Some(ConsolePassword::Custom { secret_arn }) => {
                let custom = self.secrets.read(secret_arn).await?.ok_or_else(|| {
                    Error::permanent(
                        "GetSecretValue",
                        format!("the custom password secret {secret_arn} does not exist"),
                    )
                })?;
                password::check(custom.value.expose(), policy, user_name, email)
                    .map_err(|reason| Error::permanent("console_password", reason))?;
                Ok(custom.value)
            }
            Some(ConsolePassword::Autogenerate) | None => password::generate(policy, user_name, email),
        }
    }

    async fn set_status(&self, ready: &UserReady, stage: Stage, reason: Option<String>) -> Result<()> {
        let record = StatusRecord::new(&ready.records_id(), ready.user_name(), stage, reason, self.clock.now());
        self.status.record(&record).await
    }
}

#[cfg(test)]
mod tests;
