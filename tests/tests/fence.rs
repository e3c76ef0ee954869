//! The code-level half of the fence (SECURITY.md): a stage acts on the
//! pipeline's own records, never on what a message or a pre-existing
//! resource claims. Each test is an attack an account insider could mount
//! with sqs:SendMessage, secretsmanager:CreateSecret or a ticket, and
//! checks that IAM, Secrets Manager and SES are left as they were.
#![recursion_limit = "256"]

use serde_json::{json, Value};
use shared::ports::Stage;
use tests::{unique, Harness};

const MALLORY: &str = "mallory@example.com";

fn ticket(id: &str, users: Vec<Value>) -> Value {
    json!({"ticket_id": id, "requested_by": format!("req-{}@example.com", id.to_lowercase()), "users": users})
}

fn user(name: &str, console: bool, programmatic: bool) -> Value {
    json!({"user_name": name, "email": format!("{name}@example.com"), "access": {"console": console, "programmatic": programmatic}})
}

async fn key_ids(h: &Harness, name: &str) -> Vec<String> {
    let out = h.iam.list_access_keys().user_name(name).send().await.expect("ListAccessKeys");
    out.access_key_metadata().iter().filter_map(|k| k.access_key_id().map(str::to_owned)).collect()
}

async fn has_login_profile(h: &Harness, name: &str) -> bool {
    h.iam.get_login_profile().user_name(name).send().await.is_ok()
}

async fn user_exists(h: &Harness, name: &str) -> bool {
    h.iam.get_user().user_name(name).send().await.is_ok()
}

async fn secret_versions(h: &Harness, name: &str) -> usize {
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let id = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
    sm.list_secret_version_ids().secret_id(id).send().await.map(|o| o.versions().len()).unwrap_or(0)
}

fn emails_to(h: &Harness, address: &str) -> Vec<tests::SentEmail> {
    tests::sent_emails(&h.endpoint).into_iter().filter(|m| m.is_to(address)).collect()
}

async fn secret_arn(h: &Harness, name: &str) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let id = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
    sm.describe_secret().secret_id(id).send().await.expect("DescribeSecret").arn().expect("arn").to_owned()
}

/// A programmatic-only user, onboarded normally; then a message nobody in
/// the pipeline sent asks issue-credentials for a "rotation" with console
/// access, to an address of the forger's choosing.
#[tokio::test]
async fn a_forged_rotation_hand_off_creates_no_login_profile_and_mails_nobody() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let name = format!("prog{s}");
    let drained = h.run(&ticket(&id, vec![user(&name, false, true)])).await;
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "{drained:?}");
    let keys = key_ids(&h, &name).await;
    assert_eq!(keys.len(), 1);
    let versions = secret_versions(&h, &name).await;

    // A rotation nobody ordered, to the forger's address; and the user's
    // own onboarding, claiming console access and the forger's address.
    let forged = [
        json!({"version": 2, "purpose": "rotation", "user": {"user_name": name, "email": MALLORY},
               "replaces": {"access_key_id": keys[0], "deactivated_after": 1}}),
        json!({"version": 2, "purpose": "onboarding", "ticket_id": id, "requested_by": MALLORY,
               "user": {"user_name": name, "email": MALLORY}, "access": {"console": true, "programmatic": true},
               "console_password": {"mode": "autogenerate"}, "require_password_reset": false,
               "ticket_users": [name]}),
    ];
    for message in &forged {
        h.pipeline.redeliver(&h.pipeline.env.issue_credentials_queue, &message.to_string()).await.expect("send");
    }
    let drained = h.pipeline.drain().await.expect("drain");

    assert!(!has_login_profile(&h, &name).await, "a forged message gave a programmatic-only user a password");
    assert_eq!(key_ids(&h, &name).await, keys, "a forged message changed the user's keys");
    assert_eq!(secret_versions(&h, &name).await, versions, "a forged message wrote the user's secret");
    assert!(emails_to(&h, MALLORY).is_empty(), "the forger was emailed");
    // Dropped, not retried and not parked: recorded and alarmed instead.
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "{drained:?}");
    assert_eq!(untrusted(&h, "issue-credentials").await, 2);
}

/// A console user's credentials exist; a message that claims another ticket
/// asks notify-user to mail them to the forger.
#[tokio::test]
async fn a_forged_notify_message_mails_no_credentials() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let name = format!("con{s}");
    let drained = h.run(&ticket(&id, vec![user(&name, true, false)])).await;
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "{drained:?}");
    let arn = secret_arn(&h, &name).await;
    for (ticket_id, secret_arn) in [(format!("FORGED-{s}"), arn.clone()), (id.clone(), arn)] {
        let forged = json!({
            "version": 2,
            "ready": {"purpose": "onboarding", "ticket_id": ticket_id, "requested_by": MALLORY,
                      "user": {"user_name": name, "email": MALLORY}, "access": {"console": true, "programmatic": false},
                      "console_password": {"mode": "autogenerate"}, "require_password_reset": false,
                      "ticket_users": [name]},
            "secret": {"arn": secret_arn, "name": format!("{}{name}", h.pipeline.env.settings.secret_prefix)}
        });
        h.pipeline.redeliver(&h.pipeline.env.notify_user_queue, &forged.to_string()).await.expect("send");
    }
    let drained = h.pipeline.drain().await.expect("drain");
    assert!(emails_to(&h, MALLORY).is_empty(), "the forger was emailed");
    assert_eq!(emails_to(&h, &format!("{name}@example.com")).len(), 2, "the user's own emails, once each");
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "{drained:?}");
    assert_eq!(untrusted(&h, "notify-user").await, 2);
}

/// Somebody creates the user's secret before the pipeline does, with a
/// password they know and a sign-in URL of their own.
#[tokio::test]
async fn a_planted_secret_is_never_used_and_the_user_is_refused() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let name = format!("victim{s}");
    let planted = json!({
        "user_name": name, "console_sign_in_url": "https://evil.example/console",
        "password": "Planted-Passw0rd!x", "access_key_id": "AKIAPLANTED000000000"
    });
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    sm.create_secret()
        .name(format!("{}{name}", h.pipeline.env.settings.secret_prefix))
        .secret_string(planted.to_string())
        .tags(aws_sdk_secretsmanager::types::Tag::builder().key("iam-provisioner:managed").value("true").build())
        .send()
        .await
        .expect("plant");

    let drained = h.run(&ticket(&id, vec![user(&name, true, true)])).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    let mine = emails_to(&h, &format!("{name}@example.com"));
    assert!(mine.iter().all(|m| !m.body.contains("evil.example")), "the planted URL was mailed");
    assert!(mine.iter().all(|m| !m.body.contains("Planted-Passw0rd")), "the planted password was mailed");
    assert!(mine.is_empty(), "the user was told to sign in with credentials nobody issued: {mine:?}");
    assert!(!has_login_profile(&h, &name).await, "a login profile was made from the planted password");
    assert!(key_ids(&h, &name).await.is_empty(), "a key was issued into a secret the pipeline does not own");
    let status = h.statuses(&id).await;
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].stage, Stage::Failed);
    let reason = status[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("not created by the pipeline"), "{reason}");
    let told = emails_to(&h, &format!("req-{}@example.com", id.to_lowercase()));
    assert!(told.iter().any(|m| m.body.contains(&name)), "the requester was not told");
}

/// A ticket names another user's credentials secret as its "custom
/// password": the pipeline must not read it.
#[tokio::test]
async fn a_custom_password_outside_its_prefix_is_refused_before_any_write() {
    let h = Harness::new().await;
    let s = unique("");
    let first = format!("first{s}");
    h.run(&ticket(&format!("ONB-A{s}"), vec![user(&first, true, false)])).await;
    let foreign = secret_arn(&h, &first).await;
    let id = format!("ONB-B{s}");
    let name = format!("thief{s}");
    let mut u = user(&name, true, false);
    u["console_password"] = json!({"mode": "custom", "secret_arn": foreign});
    let drained = h.run(&ticket(&id, vec![u])).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    assert!(!user_exists(&h, &name).await, "the user was created");
    let status = h.statuses(&id).await;
    assert_eq!(status[0].stage, Stage::Failed);
    let reason = status[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("console_password.secret_arn"), "{reason}");
    assert!(reason.contains(&h.pipeline.env.settings.custom_password_prefix), "{reason}");
}

/// Credentials go only to addresses in the deployment's domains, and a
/// requester outside them is not written to either.
#[tokio::test]
async fn addresses_outside_the_allowed_domains_are_refused_before_any_write() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let name = format!("out{s}");
    let mut u = user(&name, true, true);
    u["email"] = json!("someone@evil.test");
    let drained = h.run(&ticket(&id, vec![u])).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    assert!(!user_exists(&h, &name).await, "the user was created");
    assert!(emails_to(&h, "someone@evil.test").is_empty());
    let status = h.statuses(&id).await;
    assert_eq!(status[0].stage, Stage::Failed);
    let reason = status[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("users[0].email") && reason.contains("example.com"), "{reason}");

    let id = format!("ONB-R{s}");
    let name = format!("req{s}");
    let mut t = ticket(&id, vec![user(&name, true, false)]);
    t["requested_by"] = json!("boss@evil.test");
    h.run(&t).await;
    assert!(!user_exists(&h, &name).await, "the user was created");
    assert!(emails_to(&h, "boss@evil.test").is_empty(), "a requester outside the domains was emailed");
    let reason = h.statuses(&id).await[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("requested_by"), "{reason}");
}

/// How many untrusted messages `stage` recorded (the alarm's other half is a
/// log line; this is what an operator reads back).
/// How many messages `stage` recorded as untrusted, each for what the
/// records say: a forgery in the current message shape, not one the stage
/// could not even read (which would prove nothing about the records).
async fn untrusted(h: &Harness, stage: &str) -> usize {
    let found =
        shared::ports::UntrustedLog::untrusted(&h.pipeline.create_user.status, stage).await.expect("untrusted records");
    for m in &found {
        assert!(!m.reason.contains("not a hand-off this stage takes"), "a forgery in an outdated shape: {}", m.reason);
    }
    found.len()
}
