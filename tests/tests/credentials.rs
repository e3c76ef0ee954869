//! issue-credentials and notify-user against the emulator: what a ticket
//! leaves in IAM, Secrets Manager and SES, what replays and faults do, and
//! that no secret reaches a log line.
#![recursion_limit = "256"]

use serde_json::{json, Value};
use shared::ports::Stage;
use tests::proxy::{Fault, FaultProxy};
use tests::{unique, Harness, SentEmail};

const ACCOUNT_URL: &str = "https://123456789012.signin.aws.amazon.com/console";

fn user(name: &str, console: bool, programmatic: bool) -> Value {
    json!({"user_name": name, "email": format!("{name}@example.com"), "access": {"console": console, "programmatic": programmatic}})
}

fn ticket(id: &str, users: Vec<Value>) -> Value {
    json!({"ticket_id": id, "requested_by": format!("req-{}@example.com", id.to_lowercase()), "users": users})
}

/// The user's secret, as JSON.
async fn secret_of(h: &Harness, name: &str) -> Value {
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let id = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
    let out = sm.get_secret_value().secret_id(&id).send().await.unwrap_or_else(|e| panic!("{id}: {e}"));
    serde_json::from_str(out.secret_string().unwrap()).unwrap()
}

async fn secret_versions(h: &Harness, name: &str) -> usize {
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let id = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
    sm.list_secret_version_ids().secret_id(id).send().await.unwrap().versions().len()
}

async fn key_ids(h: &Harness, name: &str) -> Vec<String> {
    let out = h.iam.list_access_keys().user_name(name).send().await.unwrap();
    out.access_key_metadata().iter().filter_map(|k| k.access_key_id().map(str::to_owned)).collect()
}

async fn has_login_profile(h: &Harness, name: &str) -> bool {
    h.iam.get_login_profile().user_name(name).send().await.is_ok()
}

fn mail_to<'a>(all: &'a [SentEmail], address: &str) -> Vec<&'a SentEmail> {
    all.iter().filter(|m| m.is_to(address)).collect()
}

#[tokio::test]
async fn ticket_goes_from_users_to_keys_secrets_and_split_emails() {
    let h = Harness::new().await;
    tests::start_recording(&h.endpoint);
    let s = unique("");
    let id = format!("ONB-{s}");
    let (both, console, program) = (format!("both{s}"), format!("con{s}"), format!("prog{s}"));
    let mut no_reset = user(&console, true, false);
    no_reset["require_password_reset"] = json!(false);
    let drained = h.run(&ticket(&id, vec![user(&both, true, true), no_reset, user(&program, false, true)])).await;
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "{drained:?}");
    assert!(drained.waiting.is_empty(), "{drained:?}");

    // IAM: login profiles for console users, exactly one key for programmatic ones.
    assert!(has_login_profile(&h, &both).await && has_login_profile(&h, &console).await);
    assert!(!has_login_profile(&h, &program).await);
    assert_eq!(key_ids(&h, &both).await.len(), 1);
    assert_eq!(key_ids(&h, &program).await.len(), 1);
    assert!(key_ids(&h, &console).await.is_empty());
    // moto ignores PasswordResetRequired (moto_facts.rs): check what was sent.
    let calls = tests::recorded_calls(&h.endpoint);
    let reset = |name: &str| {
        calls
            .iter()
            .find(|c| c.get("Action") == Some("CreateLoginProfile") && c.get("UserName") == Some(name))
            .and_then(|c| c.get("PasswordResetRequired").map(str::to_owned))
    };
    assert_eq!(reset(&both).as_deref(), Some("true"));
    assert_eq!(reset(&console).as_deref(), Some("false"));

    // Secrets Manager: one secret per user, shaped as the contract says.
    let mut secrets = Vec::new();
    for (name, console, programmatic) in [(&both, true, true), (&console, true, false), (&program, false, true)] {
        let secret = secret_of(&h, name).await;
        assert_eq!(secret["user_name"], json!(name));
        assert_eq!(secret["console_sign_in_url"], json!(ACCOUNT_URL));
        assert_eq!(secret["password"].is_string(), console, "{name}");
        assert_eq!(secret["secret_access_key"].is_string(), programmatic, "{name}");
        if programmatic {
            assert_eq!(key_ids(&h, name).await, [secret["access_key_id"].as_str().unwrap()]);
        }
        assert_eq!(secret_versions(&h, name).await, 1);
        secrets.push(secret);
    }
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let described = sm
        .describe_secret()
        .secret_id(format!("{}{both}", h.pipeline.env.settings.secret_prefix))
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> =
        described.tags().iter().map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))).collect();
    assert!(tags.contains(&("iam-provisioner:ticket", id.as_str())), "{tags:?}");

    // SES: the split. Sign-in and password apart; never a secret access key.
    let sent = tests::sent_emails(&h.endpoint);
    assert_eq!(mail_to(&sent, &format!("{both}@example.com")).len(), 3);
    assert_eq!(mail_to(&sent, &format!("{console}@example.com")).len(), 2);
    assert_eq!(mail_to(&sent, &format!("{program}@example.com")).len(), 1);
    for (name, secret) in [&both, &console, &program].into_iter().zip(&secrets) {
        for m in mail_to(&sent, &format!("{name}@example.com")) {
            assert_eq!(m.source, "iam-provisioner@example.com");
            let password = secret["password"].as_str();
            let has_password = password.is_some_and(|p| m.body.contains(&shared::text::html_escape(p)));
            assert!(!(has_password && m.body.contains(ACCOUNT_URL)), "{name}: URL and password in one email");
            if has_password {
                assert!(!m.body.contains(name.as_str()), "{name}: the password email names the user");
                assert!(m.body.contains("change it when you first sign in") == (name != &console), "{name}");
            }
            for other in &secrets {
                if let Some(key) = other["secret_access_key"].as_str() {
                    assert!(!m.body.contains(key), "{name}: a secret access key was emailed");
                }
            }
        }
        let subjects: Vec<&str> =
            mail_to(&sent, &format!("{name}@example.com")).iter().map(|m| m.subject.as_str()).collect();
        if secret["password"].is_string() {
            assert!(subjects.contains(&"Your AWS sign-in details") && subjects.contains(&"Your AWS console password"));
        }
    }
    let requester = mail_to(&sent, &format!("req-{}@example.com", id.to_lowercase()));
    assert_eq!(requester.len(), 1);
    assert!(requester[0].subject.contains("3 user(s) ready, 0 refused"), "{}", requester[0].subject);
    assert!(h.statuses(&id).await.iter().all(|r| r.stage == Stage::Notified));
}

#[tokio::test]
async fn replaying_every_stage_message_and_the_ticket_changes_nothing() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let names = [format!("r1{s}"), format!("r2{s}")];
    let t = ticket(&id, vec![user(&names[0], true, true), user(&names[1], false, true)]);
    h.run(&t).await;
    let count_mail = |sent: &[SentEmail]| sent.iter().filter(|m| m.destinations.to_string().contains(&s)).count();
    let before_mail = count_mail(&tests::sent_emails(&h.endpoint));
    let before_keys = [key_ids(&h, &names[0]).await, key_ids(&h, &names[1]).await];

    // Every message each stage was given, delivered again, and the ticket too.
    let delivered = h.pipeline.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 5, "1 ticket + 2 hand-offs to each later stage");
    for (queue, body) in &delivered {
        h.pipeline.redeliver(queue, body).await.unwrap();
    }
    let drained = h.run(&t).await;
    assert_eq!(drained.handled, 6);

    assert_eq!(count_mail(&tests::sent_emails(&h.endpoint)), before_mail, "a replay sent email");
    assert_eq!([key_ids(&h, &names[0]).await, key_ids(&h, &names[1]).await], before_keys, "a replay changed keys");
    for name in &names {
        assert_eq!(secret_versions(&h, name).await, 1, "a replay wrote a secret version");
    }
    assert!(h.statuses(&id).await.iter().all(|r| r.stage == Stage::Notified));
}

/// The stage is cut off after CreateAccessKey, before the secret is stored,
/// twice: a naive retry would leave unusable keys and then hit IAM's limit
/// of two. The retry deletes the key no secret records and issues one.
#[tokio::test]
async fn crash_between_access_key_and_secret_is_repaired_by_the_retry() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let name = format!("k{s}");
    proxy.fail("CreateSecret", 2, Fault::ServiceFailure);
    let drained = h.run(&ticket(&format!("ONB-{s}"), vec![user(&name, true, true)])).await;
    assert_eq!(proxy.injected_count(), 2);
    assert_eq!((drained.retried, drained.dead_lettered), (2, 0), "{drained:?}");
    let keys = key_ids(&h, &name).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(secret_of(&h, &name).await["access_key_id"], json!(keys[0]), "the one key is the stored one");
    let sent = tests::sent_emails(&h.endpoint);
    let key_mail: Vec<_> = mail_to(&sent, &format!("{name}@example.com"))
        .into_iter()
        .filter(|m| m.subject == "Your AWS access key")
        .collect();
    assert_eq!(key_mail.len(), 1);
    assert!(key_mail[0].body.contains(&keys[0]));
}

#[tokio::test]
async fn ses_failing_between_the_two_emails_resends_only_the_missing_one() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let name = format!("m{s}");
    proxy.fail_after("SendEmail", 1, 1, Fault::Throttling);
    let drained = h.run(&ticket(&format!("ONB-{s}"), vec![user(&name, true, false)])).await;
    assert_eq!((proxy.injected_count(), drained.retried), (1, 1));
    let sent = tests::sent_emails(&h.endpoint);
    let mut subjects: Vec<&str> =
        mail_to(&sent, &format!("{name}@example.com")).iter().map(|m| m.subject.as_str()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Your AWS console password", "Your AWS sign-in details"]);
}

/// The whole run, as `make run` does it, with its log captured at debug
/// level: not one secret the run issued appears in it.
#[tokio::test]
async fn no_secret_reaches_any_log_line_of_a_run() {
    let endpoint = tests::moto::shared().endpoint.clone();
    let s = unique("");
    let prefix = format!("log{s}-");
    let secret_prefix = format!("logs/{s}/");
    let names = [format!("l1{s}"), format!("l2{s}")];
    let event = ticket(&format!("ONB-{s}"), vec![user(&names[0], true, true), user(&names[1], true, false)]);
    let file = std::env::temp_dir().join(format!("ticket-{s}.json"));
    std::fs::write(&file, event.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_run-local"))
        .arg(&file)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("IAM_PROVISIONER_PREFIX", &prefix)
        .env("SECRET_PREFIX", &secret_prefix)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");
    assert!(log.lines().count() > 50, "debug logging was captured");
    let sm = aws_sdk_secretsmanager::Client::new(&tests::sdk_config(&endpoint).await);
    let mut checked = 0;
    for name in &names {
        let value = sm.get_secret_value().secret_id(format!("{secret_prefix}{name}")).send().await.unwrap();
        let secret: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
        for field in ["password", "secret_access_key"] {
            if let Some(v) = secret[field].as_str() {
                assert!(!log.contains(v), "{field} of {name} is in the log");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3);
}
