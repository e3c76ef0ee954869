use super::*;
use serde_json::json;
use shared::memory::*;
use shared::secret::Sensitive;

type Fakes =
    Deps<MemoryDirectory, MemorySecrets, MemoryIdempotency, MemoryStatus, MemoryMailer, MemoryLedger, FixedClock>;
const LEASE: u64 = 2_000_000_000;
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/pipeline";
const PASSWORD: &str = "Xy7!long-enough-password";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn deps() -> Fakes {
    let d = Deps {
        directory: MemoryDirectory::default(),
        secrets: MemorySecrets::default(),
        ledger: MemoryLedger::default(),
        idempotency: MemoryIdempotency::default(),
        status: MemoryStatus::default(),
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(1_700_000_000),
        config: NotifyUserConfig {
            table_name: "t".into(),
            sender: "iam-provisioner@example.com".into(),
            secret_prefix: "iam-provisioner/users/".into(),
            secrets_kms_key_id: Some(KEY.into()),
            idempotency_ttl_secs: 86_400,
            concurrency: shared::config::DEFAULT_CONCURRENCY,
        },
    };
    let secret = UserSecret {
        user_name: "emily".into(),
        console_sign_in_url: "https://acme.signin.aws.amazon.com/console".into(),
        password: Some(Sensitive::new(PASSWORD)),
        access_key_id: Some("AKIAEXAMPLE".into()),
        secret_access_key: Some(Sensitive::new(SECRET_KEY)),
    };
    // As issue-credentials writes it: a version it recorded first.
    let mut secrets = d.secrets.secrets.lock().unwrap();
    let value = Sensitive::new(serde_json::to_string(&secret).unwrap());
    secrets.insert("iam-provisioner/users/emily".into(), vec![("v1".into(), value)]);
    drop(secrets);
    d.ledger.secret_versions.lock().unwrap().insert("emily".into(), vec!["v1".into()]);
    d.secrets.kms_keys.lock().unwrap().insert("iam-provisioner/users/emily".into(), KEY.into());
    accept(&d, &ready());
    d
}

/// The hand-off create-user would have recorded for `r`.
fn accept(d: &Fakes, r: &CredentialsReady) {
    d.status.insert_handoff(r.ready.onboarding().unwrap());
}

fn user(name: &str) -> serde_json::Value {
    json!({"user_name": name, "email": format!("{name}@example.com"), "access": {"console": true, "programmatic": true}})
}

/// What issue-credentials hands on for the first user of a ticket (by
/// ONB-1's requester, of `users`).
fn stored_for(users: &[&str]) -> CredentialsReady {
    let ticket = json!({"ticket_id": "ONB-1", "requested_by": "it-ops@example.com",
        "users": users.iter().map(|u| user(u)).collect::<Vec<_>>()});
    let handoff = UserReady::Onboarding(accepted(ticket).remove(0));
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam-provisioner/users/emily";
    CredentialsReady::stored(&handoff, arn, "iam-provisioner/users/emily")
}

fn ready() -> CredentialsReady {
    stored_for(&["emily"])
}

/// `ready()` with something changed on the wire, as a forger would.
fn forged(change: impl FnOnce(&mut serde_json::Value)) -> CredentialsReady {
    let mut wire = serde_json::to_value(ready()).unwrap();
    change(&mut wire);
    serde_json::from_value(wire).unwrap()
}

#[tokio::test]
async fn sends_three_separate_emails_and_the_requester_summary() {
    let d = deps();
    d.handle(&ready(), LEASE).await.unwrap();
    let outbox = d.mailer.outbox();
    let to_user: Vec<&Email> = outbox.iter().filter(|e| e.to == "emily@example.com").collect();
    assert_eq!(to_user.len(), 3);
    for e in &to_user {
        let all = format!("{} {} {}", e.subject, e.text, e.html);
        assert!(
            !(all.contains(PASSWORD) && all.contains("signin.aws.amazon.com")),
            "URL and password together: {}",
            e.subject
        );
        assert!(!all.contains(SECRET_KEY), "secret key in {}", e.subject);
    }
    let sign_in = to_user.iter().find(|e| e.text.contains("signin.aws.amazon.com")).unwrap();
    assert!(sign_in.text.contains("emily") && !sign_in.text.contains(PASSWORD));
    let password = to_user.iter().find(|e| e.text.contains(PASSWORD)).unwrap();
    assert!(!password.text.contains("emily") && password.text.contains("change it when you first sign in"));
    let key = to_user.iter().find(|e| e.text.contains("AKIAEXAMPLE")).unwrap();
    assert!(key.text.contains("iam-provisioner/users/emily"));
    let summary: Vec<&Email> = outbox.iter().filter(|e| e.to == "it-ops@example.com").collect();
    assert_eq!(summary.len(), 1);
    assert!(summary[0].subject.contains("1 user(s) ready") && !summary[0].text.contains(PASSWORD));
    assert_eq!(d.status.for_ticket("ONB-1").await.unwrap()[0].stage, Stage::Notified);
}

#[tokio::test]
async fn replay_sends_nothing() {
    let d = deps();
    d.handle(&ready(), LEASE).await.unwrap();
    d.handle(&ready(), LEASE).await.unwrap();
    assert_eq!(d.mailer.outbox().len(), 4);
}

#[tokio::test]
async fn retry_after_ses_fails_between_emails_sends_only_what_is_missing() {
    let d = deps();
    // The first email goes out; SES throttles the second.
    d.mailer.fail_next_after(1, Error::retryable("SendEmail", "Throttling"));
    assert!(d.handle(&ready(), LEASE).await.unwrap_err().is_retryable());
    assert_eq!(d.mailer.outbox().len(), 1);
    d.handle(&ready(), LEASE).await.unwrap();
    let subjects: Vec<String> =
        d.mailer.outbox().iter().filter(|e| e.to == "emily@example.com").map(|e| e.subject.clone()).collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    let mut unique = subjects.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "an email went twice: {subjects:?}");
}

#[tokio::test]
async fn permanent_ses_refusal_marks_the_user_failed_with_the_reason() {
    let d = deps();
    d.mailer.fail_next(Error::permanent("SendEmail", "InvalidParameterValue: Local address contains control"));
    d.handle(&ready(), LEASE).await.unwrap();
    let status = d.status.for_ticket("ONB-1").await.unwrap();
    assert_eq!(status[0].stage, Stage::Failed);
    assert!(status[0].reason.as_deref().unwrap().contains("InvalidParameterValue"));
}

/// An SES account in the sandbox (or a sender not verified) is the
/// deployment's fault: the user is not failed and the requester not told;
/// after the fix, the retry sends exactly what is missing.
#[tokio::test]
async fn the_ses_sandbox_fails_nobody_and_the_retry_after_the_fix_sends_what_is_missing() {
    let d = deps();
    let sandbox = Error::deployment("SendEmail", "MessageRejected: Email address is not verified", "leave the sandbox");
    d.mailer.fail_next_after(1, sandbox);
    let err = d.handle(&ready(), LEASE).await.unwrap_err();
    assert!(matches!(err, Error::Deployment { .. }), "{err}");
    assert!(d.status.for_ticket("ONB-1").await.unwrap().iter().all(|s| s.stage != Stage::Failed));
    assert_eq!(d.mailer.outbox().len(), 1, "the first email went before SES refused");
    d.handle(&ready(), LEASE).await.unwrap();
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.iter().filter(|e| e.to == "emily@example.com").count(), 3, "each email once");
    assert_eq!(outbox.iter().filter(|e| e.to == "it-ops@example.com").count(), 1, "the summary, once");
    assert_eq!(d.status.for_ticket("ONB-1").await.unwrap()[0].stage, Stage::Notified);
}

#[tokio::test]
async fn summary_waits_until_every_user_is_settled() {
    let d = deps();
    let r = stored_for(&["emily", "raj"]);
    accept(&d, &r);
    d.handle(&r, LEASE).await.unwrap();
    assert!(d.mailer.outbox().iter().all(|e| e.to != "it-ops@example.com"));
    d.status
        .record(&StatusRecord {
            ticket_id: "ONB-1".into(),
            user_name: "raj".into(),
            stage: Stage::Failed,
            reason: Some("weak".into()),
            updated_at: 1,
        })
        .await
        .unwrap();
    // Any later settling run (here a replay) sends it.
    d.handle(&r, LEASE).await.unwrap();
    let summary: Vec<Email> = d.mailer.outbox().into_iter().filter(|e| e.to == "it-ops@example.com").collect();
    assert_eq!(summary.len(), 1);
    assert!(summary[0].text.contains("raj: weak"));
}

/// Another message under the same ticket and user (a stray or forged one,
/// here with another address, or naming another ticket) matches no record:
/// it sends nothing, touches no status, and is recorded as untrusted.
#[tokio::test]
async fn a_message_matching_no_record_sends_nothing() {
    let d = deps();
    d.handle(&ready(), LEASE).await.unwrap();
    let sent = d.mailer.outbox().len();
    for forged in [
        forged(|m| m["ready"]["user"]["email"] = json!("attacker@example.net")),
        forged(|m| {
            m["ready"]["ticket_id"] = json!("ONB-2");
            m["ready"]["user"]["email"] = json!("attacker@example.net");
        }),
        forged(|m| m["secret"]["name"] = json!("iam-provisioner/users/other")),
    ] {
        let err = d.handle(&forged, LEASE).await.unwrap_err();
        assert!(matches!(err, Error::Untrusted(_)), "{err}");
    }
    assert_eq!(d.mailer.outbox().len(), sent);
    assert!(d.mailer.outbox().iter().all(|e| e.to != "attacker@example.net"));
    assert_eq!(d.status.for_ticket("ONB-1").await.unwrap()[0].stage, Stage::Notified);
}

/// The sign-in URL comes from the account, whatever the secret says.
#[tokio::test]
async fn the_sign_in_url_is_the_accounts_not_the_secrets() {
    let d = deps();
    *d.directory.alias.lock().unwrap() = Some("acme-prod".into());
    d.handle(&ready(), LEASE).await.unwrap();
    let outbox = d.mailer.outbox();
    let sign_in = outbox.iter().find(|e| e.text.contains("signin.aws.amazon.com")).unwrap();
    assert!(sign_in.text.contains("https://acme-prod.signin.aws.amazon.com/console"), "{}", sign_in.text);
    assert!(!sign_in.text.contains("acme.signin"), "read back from the secret");
}

#[test]
fn a_partial_secret_arn_names_the_same_secret_and_nothing_else() {
    let full = "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam-provisioner/users/emily-AbC123";
    assert!(is_partial_arn_of(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam-provisioner/users/emily",
        full
    ));
    for other in [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam-provisioner/users/emil",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam-provisioner/users/emily-AbC",
        full,
    ] {
        assert!(!is_partial_arn_of(other, full), "{other}");
    }
}

/// A secret recreated under the pipeline's recorded version id (anyone who
/// may describe it can read that id) but encrypted with another key is not
/// the pipeline's: only the pipeline may encrypt under its key.
#[tokio::test]
async fn a_secret_under_another_key_is_not_the_pipelines() {
    let d = deps();
    d.secrets
        .kms_keys
        .lock()
        .unwrap()
        .insert("iam-provisioner/users/emily".into(), "arn:aws:kms:us-east-1:210987654321:key/theirs".into());
    let err = d.handle(&ready(), LEASE).await.unwrap_err();
    assert!(matches!(err, Error::Untrusted(_)), "{err}");
    assert!(d.mailer.outbox().is_empty());
}

#[tokio::test]
async fn each_email_is_counted_when_sent_and_a_replay_counts_none() {
    use shared::metrics::{capture, name, total};
    let d = deps();
    let (_, counts) = capture(d.handle(&ready(), LEASE)).await;
    assert_eq!(total(&counts, name::EMAILS_SENT), 4, "three to the user, the summary: {counts:?}");
    let (_, replayed) = capture(d.handle(&ready(), LEASE)).await;
    assert!(replayed.is_empty(), "{replayed:?}");
}

/// `ready()` for a user whose ticket ends their access on `day`.
fn expiring(day: &str) -> CredentialsReady {
    let mut emily = user("emily");
    emily["expires_on"] = json!(day);
    let ticket = json!({"ticket_id": "ONB-1", "requested_by": "it-ops@example.com", "users": [emily]});
    let handoff = UserReady::Onboarding(accepted(ticket).remove(0));
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam-provisioner/users/emily";
    CredentialsReady::stored(&handoff, arn, "iam-provisioner/users/emily")
}

/// The day access ends is in the emails that welcome the user (sign-in and
/// access key), as the hand-off recorded it; not in the password email,
/// which says nothing but the password.
#[tokio::test]
async fn a_user_with_an_expiry_reads_the_day_their_access_ends() {
    let d = deps();
    let r = expiring("2030-06-30");
    accept(&d, &r);
    d.handle(&r, LEASE).await.unwrap();
    let outbox = d.mailer.outbox();
    let to_user: Vec<&Email> = outbox.iter().filter(|e| e.to == "emily@example.com").collect();
    assert_eq!(to_user.len(), 3);
    let ends = "Your AWS access ends on 2030-06-30 (UTC)";
    for e in &to_user {
        let says = e.text.contains(ends) && e.html.contains(ends);
        assert_eq!(says, !e.text.contains(PASSWORD), "{}: {}", e.subject, e.text);
    }
    // Without an expiry, no email speaks of one.
    let d = deps();
    d.handle(&ready(), LEASE).await.unwrap();
    assert!(d.mailer.outbox().iter().all(|e| !e.text.contains("access ends")));
}

/// The day is part of what must equal the record: a message that adds,
/// moves or drops it sends nothing.
#[tokio::test]
async fn an_expiry_the_record_does_not_hold_sends_nothing() {
    let d = deps();
    let recorded = expiring("2030-06-30");
    accept(&d, &recorded);
    let moved = serde_json::to_value(&recorded).map(|mut m| {
        m["ready"]["expires_on"] = json!("2031-06-30");
        m
    });
    let moved: CredentialsReady = serde_json::from_value(moved.unwrap()).unwrap();
    // The record says 2030-06-30; a message without a day, or another day,
    // is not what create-user handed on.
    for forged in [moved, ready()] {
        assert!(matches!(d.handle(&forged, LEASE).await, Err(Error::Untrusted(_))));
    }
    assert!(d.mailer.outbox().is_empty());
}
