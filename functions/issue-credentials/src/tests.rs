use super::*;
use serde_json::json;
use shared::memory::*;
use shared::password::PasswordPolicy;
use std::collections::BTreeMap;

type Fakes = Deps<
    MemoryDirectory,
    MemorySecrets,
    MemoryIdempotency,
    MemoryStatus,
    MemoryPublisher,
    MemoryMailer,
    MemoryLedger,
    FixedClock,
>;
const LEASE: u64 = 2_000_000_000;

fn deps() -> Fakes {
    let d = Deps {
        directory: MemoryDirectory::default(),
        secrets: MemorySecrets::default(),
        ledger: MemoryLedger::default(),
        idempotency: MemoryIdempotency::default(),
        status: MemoryStatus::default(),
        publisher: MemoryPublisher::default(),
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(1_700_000_000),
        config: IssueCredentialsConfig {
            table_name: "t".into(),
            next_queue_url: "q".into(),
            sender: "iam-provisioner@example.com".into(),
            secret_prefix: "iam-provisioner/users/".into(),
            change_password_policy: shared::config::CHANGE_PASSWORD_POLICY.into(),
            secrets_kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/test".into()),
            idempotency_ttl_secs: 86_400,
            concurrency: shared::config::DEFAULT_CONCURRENCY,
        },
    };
    for (name, ticket) in [("emily", "ONB-1"), ("other", "ONB-0")] {
        insert_managed_user(&d, name, ticket);
    }
    d
}

/// A user create-user made for `ticket`.
fn insert_managed_user(d: &Fakes, name: &str, ticket: &str) {
    d.directory.insert(
        IamUser {
            user_name: name.into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::210987654321:user/{name}"),
            boundary: None,
            tags: BTreeMap::from([(MANAGED_TAG.into(), "true".into()), (TICKET_TAG.into(), ticket.into())]),
        },
        Permissions::default(),
    );
}

const CUSTOM_PASSWORD: &str = "iam-provisioner/custom-passwords/emily";

/// Ticket ONB-1 for emily, with the access asked for.
fn ticket(console: bool, programmatic: bool) -> serde_json::Value {
    json!({"ticket_id": "ONB-1", "requested_by": "it-ops@example.com", "users": [
        {"user_name": "emily", "email": "emily@example.com",
         "access": {"console": console, "programmatic": programmatic}}
    ]})
}

/// The hand-off of the ticket's first user, as create-user builds it.
fn first_user(ticket: serde_json::Value) -> UserReady {
    UserReady::Onboarding(accepted(ticket).remove(0))
}

fn ready(console: bool, programmatic: bool) -> UserReady {
    first_user(ticket(console, programmatic))
}

/// Console access with the password the requester prepared for emily.
fn with_custom_password() -> UserReady {
    let mut t = ticket(true, false);
    t["users"][0]["console_password"] = json!({"mode": "custom",
        "secret_arn": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{CUSTOM_PASSWORD}")});
    first_user(t)
}

fn stored(d: &Fakes) -> UserSecret {
    let s = d.secrets.secrets.lock().unwrap();
    serde_json::from_str(s["iam-provisioner/users/emily"].last().unwrap().1.expose()).unwrap()
}

/// As the stage runs on a message create-user sent: its hand-off recorded first.
async fn handle(d: &Fakes, r: &UserReady) -> Result<Option<CredentialsReady>> {
    d.status.insert_handoff(r.onboarding().unwrap());
    d.handle(r, LEASE).await
}

#[tokio::test]
async fn issues_password_and_one_key_into_one_secret_version() {
    let d = deps();
    let out = handle(&d, &ready(true, true)).await.unwrap().unwrap();
    let secret = stored(&d);
    assert_eq!(secret.console_sign_in_url, "https://210987654321.signin.aws.amazon.com/console");
    let (password, reset) = d.directory.login_profiles.lock().unwrap()["emily"].clone();
    assert_eq!(Some(&password), secret.password.as_ref(), "the profile has the stored password");
    assert!(reset);
    let keys = d.directory.keys.lock().unwrap()["emily"].clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(Some(&keys[0].0.access_key_id), secret.access_key_id.as_ref());
    assert_eq!(Some(&keys[0].1), secret.secret_access_key.as_ref());
    assert_eq!(d.secrets.versions("iam-provisioner/users/emily"), 1);
    assert_eq!(d.secrets.tags.lock().unwrap()["iam-provisioner/users/emily"][TICKET_TAG], "ONB-1");
    assert_eq!(out.secret.name, "iam-provisioner/users/emily");
    let handed: Vec<CredentialsReady> = d.publisher.events();
    assert_eq!(handed, [out]);
    assert!(!serde_json::to_string(&handed).unwrap().contains(password.expose()));
    // No policy in the account and a reset required: as the console does.
    assert_eq!(d.directory.user("emily").unwrap().1.managed_policies, [shared::config::CHANGE_PASSWORD_POLICY]);
}

#[tokio::test]
async fn account_alias_is_used_in_the_sign_in_url() {
    let d = deps();
    *d.directory.alias.lock().unwrap() = Some("acme-prod".into());
    handle(&d, &ready(true, false)).await.unwrap();
    assert_eq!(stored(&d).console_sign_in_url, "https://acme-prod.signin.aws.amazon.com/console");
}

#[tokio::test]
async fn replay_issues_nothing_new() {
    let d = deps();
    handle(&d, &ready(true, true)).await.unwrap();
    let calls = d.directory.calls.lock().unwrap().len();
    handle(&d, &ready(true, true)).await.unwrap();
    assert_eq!(d.directory.calls.lock().unwrap().len(), calls);
    assert_eq!(d.secrets.versions("iam-provisioner/users/emily"), 1);
    assert_eq!(d.publisher.events::<CredentialsReady>().len(), 1);
}

/// The stage dies after CreateAccessKey and before the secret is stored:
/// the key is unusable (its secret is gone). The retry deletes it and
/// issues one that is stored; never two keys, never LimitExceeded.
#[tokio::test]
async fn crash_between_key_and_secret_leaves_exactly_one_usable_key() {
    let d = deps();
    d.secrets.fail_next("CreateSecret", Error::retryable("CreateSecret", "connection reset"));
    assert!(handle(&d, &ready(true, true)).await.unwrap_err().is_retryable());
    let orphan = d.directory.keys.lock().unwrap()["emily"][0].0.access_key_id.clone();
    assert!(d.directory.login_profiles.lock().unwrap().is_empty(), "no profile before the password is stored");
    // Twice more, so a naive retry would hit the limit of two keys.
    d.secrets.fail_next("CreateSecret", Error::retryable("CreateSecret", "connection reset"));
    assert!(handle(&d, &ready(true, true)).await.is_err());
    handle(&d, &ready(true, true)).await.unwrap();
    let keys = d.directory.keys.lock().unwrap()["emily"].clone();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].0.access_key_id, orphan);
    assert_eq!(Some(&keys[0].0.access_key_id), stored(&d).access_key_id.as_ref());
}

#[tokio::test]
async fn crash_after_the_secret_but_before_the_login_profile_uses_the_stored_password() {
    let d = deps();
    d.directory.fail_next("CreateLoginProfile", Error::retryable("CreateLoginProfile", "ServiceFailure"));
    assert!(handle(&d, &ready(true, false)).await.is_err());
    let first = stored(&d).password;
    handle(&d, &ready(true, false)).await.unwrap();
    assert_eq!(d.directory.login_profiles.lock().unwrap()["emily"].0, first.unwrap());
    assert_eq!(d.secrets.versions("iam-provisioner/users/emily"), 1);
}

#[tokio::test]
async fn generated_password_follows_the_account_policy() {
    let d = deps();
    *d.directory.policy.lock().unwrap() = Some(PasswordPolicy {
        minimum_length: 40,
        require_uppercase: true,
        require_lowercase: true,
        require_numbers: true,
        require_symbols: true,
        allow_users_to_change_password: true,
        is_aws_default: false,
    });
    handle(&d, &ready(true, false)).await.unwrap();
    assert!(stored(&d).password.unwrap().expose().len() >= 40);
    assert!(
        d.directory.user("emily").unwrap().1.managed_policies.is_empty(),
        "users may change their own password already"
    );
}

#[tokio::test]
async fn weak_custom_password_is_refused_with_a_reason_and_never_quoted() {
    let d = deps();
    d.secrets.insert(CUSTOM_PASSWORD, "password");
    assert!(handle(&d, &with_custom_password()).await.unwrap().is_none());
    let status = d.status.for_ticket("ONB-1").await.unwrap();
    let reason = status[0].reason.clone().unwrap();
    assert_eq!(status[0].stage, Stage::Failed);
    assert!(reason.contains("3 of") && !reason.contains("password\""), "{reason}");
    assert!(d.directory.login_profiles.lock().unwrap().is_empty());
    // The only user of the ticket is settled: the requester hears of it.
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].text.contains("emily") && outbox[0].text.contains("3 of"));
}

#[tokio::test]
async fn strong_custom_password_is_used() {
    let d = deps();
    d.secrets.insert(CUSTOM_PASSWORD, "Correct-Horse-Battery-9");
    handle(&d, &with_custom_password()).await.unwrap().unwrap();
    assert_eq!(d.directory.login_profiles.lock().unwrap()["emily"].0.expose(), "Correct-Horse-Battery-9");
}

#[tokio::test]
async fn a_user_of_another_ticket_gets_no_credentials() {
    let d = deps();
    let mut t = ticket(true, true);
    t["users"][0]["user_name"] = json!("other");
    assert!(handle(&d, &first_user(t)).await.unwrap().is_none());
    assert!(d.directory.keys.lock().unwrap().is_empty());
    assert!(d.directory.login_profiles.lock().unwrap().is_empty());
}

fn sqs_event(bodies: &[UserReady]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
        record.message_id = Some(format!("m{i}"));
        record.body = Some(serde_json::to_string(&shared::handoff::write(body)).unwrap());
        event.records.push(record);
    }
    event
}

#[tokio::test]
async fn a_batch_reads_the_password_policy_and_alias_once_and_the_next_batch_again() {
    let d = deps();
    let users = ["ann", "bob", "cy"];
    for name in users {
        insert_managed_user(&d, name, "ONB-1");
    }
    let mut t = ticket(true, true);
    t["users"] = users
        .map(|u| {
            json!({"user_name": u, "email": format!("{u}@example.com"),
        "access": {"console": true, "programmatic": true}})
        })
        .into();
    let batch: Vec<UserReady> = accepted(t).into_iter().map(UserReady::Onboarding).collect();
    for r in &batch {
        d.status.insert_handoff(r.onboarding().unwrap());
    }
    let response = d.handle_sqs(sqs_event(&batch), LEASE).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(d.publisher.events::<CredentialsReady>().len(), 3);
    assert_eq!(*d.directory.account_reads.lock().unwrap(), ["ListAccountAliases", "GetAccountPasswordPolicy"]);
    // A policy tightened between invocations applies to the next one.
    *d.directory.policy.lock().unwrap() = Some(PasswordPolicy { minimum_length: 40, ..PasswordPolicy::aws_default() });
    d.status.insert_handoff(ready(true, false).onboarding().unwrap());
    d.handle_sqs(sqs_event(&[ready(true, false)]), LEASE).await;
    assert_eq!(d.directory.account_reads.lock().unwrap().len(), 4);
    assert_eq!(stored(&d).password.unwrap().expose().len(), 40);
}

/// A message create-user never recorded (or one that differs from its
/// record) is dropped as untrusted: no IAM call, no secret, no email, no
/// status, not retried.
#[tokio::test]
async fn a_message_matching_no_record_changes_nothing_and_is_recorded_as_untrusted() {
    let d = deps();
    d.status.insert_handoff(ready(false, true).onboarding().unwrap());
    // Recorded as programmatic only; the message asks for console access too.
    let mut other_ticket = ticket(true, true);
    other_ticket["ticket_id"] = json!("ONB-9");
    let response = d.handle_sqs(sqs_event(&[ready(true, true), first_user(other_ticket)]), LEASE).await;
    assert!(response.batch_item_failures.is_empty(), "untrusted messages are settled, not retried");
    assert!(d.directory.calls.lock().unwrap().is_empty(), "{:?}", d.directory.calls.lock().unwrap());
    assert_eq!(d.secrets.versions("iam-provisioner/users/emily"), 0);
    assert!(d.mailer.outbox().is_empty() && d.publisher.events::<CredentialsReady>().is_empty());
    assert!(d.status.for_ticket("ONB-1").await.unwrap().is_empty());
    let untrusted = d.status.untrusted("issue-credentials").await.unwrap();
    assert_eq!(untrusted.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>(), ["m0", "m1"]);
    assert!(untrusted[0].reason.contains("differs") && untrusted[1].reason.contains("no user"), "{untrusted:?}");
}

/// What someone who planted a secret for emily would put in it.
fn planted_secret() -> UserSecret {
    UserSecret {
        user_name: "emily".into(),
        console_sign_in_url: "https://evil.example/console".into(),
        password: Some(Sensitive::new("Planted-Passw0rd!x")),
        access_key_id: None,
        secret_access_key: None,
    }
}

/// A secret someone else made under the user's name is never used: the
/// user is refused (the requester told), and nothing is written into it.
#[tokio::test]
async fn a_secret_the_pipeline_did_not_write_refuses_the_user() {
    let d = deps();
    let planted = planted_secret();
    d.secrets.insert("iam-provisioner/users/emily", &serde_json::to_string(&planted).unwrap());
    assert!(handle(&d, &ready(true, true)).await.unwrap().is_none());
    assert!(d.directory.login_profiles.lock().unwrap().is_empty());
    assert!(d.directory.keys.lock().unwrap().get("emily").is_none_or(Vec::is_empty));
    assert_eq!(d.secrets.versions("iam-provisioner/users/emily"), 1, "nothing written into it");
    let status = d.status.for_ticket("ONB-1").await.unwrap();
    assert_eq!(status[0].stage, Stage::Failed);
    assert!(status[0].reason.as_deref().unwrap().contains("not created by the pipeline"));
    assert_eq!(d.mailer.outbox().len(), 1, "the requester's summary");
}

/// The planted secret carries a version id the pipeline recorded (ids can be
/// read by anyone who may describe a secret, and a deleted secret recreated
/// with one) but another key: still not the pipeline's.
#[tokio::test]
async fn a_secret_with_a_recorded_version_under_another_key_refuses_the_user() {
    let d = deps();
    let planted = planted_secret();
    let value = Sensitive::new(serde_json::to_string(&planted).unwrap());
    let theirs = "arn:aws:kms:us-east-1:210987654321:key/theirs";
    d.secrets.create("iam-provisioner/users/emily", &value, &BTreeMap::new(), "v-known", Some(theirs)).await.unwrap();
    d.ledger.record_secret_version("emily", "v-known").await.unwrap();
    assert!(handle(&d, &ready(true, false)).await.unwrap().is_none());
    assert!(d.directory.login_profiles.lock().unwrap().is_empty());
    let status = d.status.for_ticket("ONB-1").await.unwrap();
    assert!(status[0].reason.as_deref().unwrap().contains("not created by the pipeline"));
}

#[tokio::test]
async fn issued_credentials_are_counted_once() {
    use shared::metrics::{capture, name, total};
    let d = deps();
    let (_, counts) = capture(handle(&d, &ready(true, true))).await;
    assert_eq!(total(&counts, name::CREDENTIALS_ISSUED), 1);
    let (_, replayed) = capture(handle(&d, &ready(true, true))).await;
    assert!(replayed.is_empty(), "{replayed:?}");
}
