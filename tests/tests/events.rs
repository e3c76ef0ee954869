//! Every file in events/ is what its function really takes: deserialized
//! with the types the handlers use and run through the handler against the
//! in-memory ports. A sample that drifts from the code fails here.
#![recursion_limit = "256"]

use aws_lambda_events::event::sqs::SqsEvent;
use shared::config::{CreateUserConfig, FromEnv, IssueCredentialsConfig, NotifyUserConfig, RotateKeysConfig};
use shared::handoff::{CredentialsReady, UserReady};
use shared::memory::*;
use shared::ports::*;
use shared::ports::{KeyLedger, SecretStore, UntrustedLog};
use shared::secret::Sensitive;
use std::collections::BTreeMap;

const LEASE: u64 = 4_000_000_000;

fn read(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sqs(name: &str) -> SqsEvent {
    serde_json::from_value(read(name)).unwrap_or_else(|e| panic!("{name} is not an SQS event: {e}"))
}

fn managed_user(d: &MemoryDirectory, name: &str, ticket: &str) {
    let tags = BTreeMap::from([
        ("iam-provisioner:managed".to_owned(), "true".to_owned()),
        ("iam-provisioner:ticket".to_owned(), ticket.to_owned()),
    ]);
    let user = IamUser {
        user_name: name.into(),
        path: "/".into(),
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
        boundary: None,
        tags,
    };
    d.insert(user, Permissions::default());
}

fn create_user_deps() -> CreateUser {
    create_user::Deps {
        directory: MemoryDirectory::default(),
        idempotency: MemoryIdempotency::default(),
        status: MemoryStatus::default(),
        publisher: MemoryPublisher::default(),
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(1_800_000_000),
        config: CreateUserConfig {
            table_name: "t".into(),
            next_queue_url: "q".into(),
            sender: "iam-provisioner@example.com".into(),
            allow: test_allow_list(),
            idempotency_ttl_secs: 86_400,
            concurrency: shared::config::DEFAULT_CONCURRENCY,
        },
    }
}

type CreateUser =
    create_user::Deps<MemoryDirectory, MemoryIdempotency, MemoryStatus, MemoryPublisher, MemoryMailer, FixedClock>;

/// The records create-user leaves for the sample ticket: the later stages'
/// sample events must match them, or those stages would not act on them.
async fn records_of_the_sample_ticket() -> MemoryStatus {
    let d = create_user_deps();
    d.handle_event(read("onboarding-ticket.json"), LEASE).await.unwrap();
    d.status
}

#[tokio::test]
async fn onboarding_ticket_and_create_user_sqs_event_create_the_three_users() {
    for (event, via_sqs) in [("onboarding-ticket.json", false), ("create-user.json", true)] {
        let d = create_user_deps();
        if via_sqs {
            let response = d.handle_sqs(sqs(event), LEASE).await;
            assert!(response.batch_item_failures.is_empty(), "{event}");
        } else {
            d.handle_event(read(event), LEASE).await.unwrap();
        }
        let handed: Vec<UserReady> = d.publisher.events();
        let names: Vec<&str> = handed.iter().map(|u| u.user_name().as_str()).collect();
        assert_eq!(names, ["emily.chen", "raj.patel", "ci-deployer"], "{event}");
        assert!(d.mailer.outbox().is_empty(), "{event}: nothing refused");
    }
}

#[tokio::test]
async fn issue_credentials_event_issues_a_password_and_a_key() {
    let event = sqs("issue-credentials.json");
    let body: UserReady = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    let d = issue_credentials::Deps {
        directory: MemoryDirectory::default(),
        secrets: MemorySecrets::default(),
        ledger: MemoryLedger::default(),
        idempotency: MemoryIdempotency::default(),
        status: records_of_the_sample_ticket().await,
        publisher: MemoryPublisher::default(),
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(1_800_000_000),
        config: IssueCredentialsConfig {
            table_name: "t".into(),
            next_queue_url: "q".into(),
            sender: "iam-provisioner@example.com".into(),
            secret_prefix: "iam-provisioner/users/".into(),
            change_password_policy: shared::config::CHANGE_PASSWORD_POLICY.into(),
            secrets_kms_key_id: None,
            idempotency_ttl_secs: 86_400,
            concurrency: shared::config::DEFAULT_CONCURRENCY,
        },
    };
    managed_user(&d.directory, body.user_name(), &body.records_id());
    let response = d.handle_sqs(event, LEASE).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(d.status.untrusted("issue-credentials").await.unwrap().is_empty(), "the sample matches no record");
    assert!(d.directory.login_profiles.lock().unwrap().contains_key("emily.chen"));
    assert_eq!(d.directory.keys.lock().unwrap()["emily.chen"].len(), 1);
    assert_eq!(d.publisher.events::<CredentialsReady>().len(), 1);
}

#[tokio::test]
async fn notify_user_event_sends_the_three_emails() {
    let event = sqs("notify-user.json");
    let body: CredentialsReady = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    let d = notify_user::Deps {
        directory: MemoryDirectory::default(),
        secrets: MemorySecrets::default(),
        ledger: MemoryLedger::default(),
        idempotency: MemoryIdempotency::default(),
        status: records_of_the_sample_ticket().await,
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(1_800_000_000),
        config: NotifyUserConfig {
            table_name: "t".into(),
            sender: "iam-provisioner@example.com".into(),
            secret_prefix: "iam-provisioner/users/".into(),
            secrets_kms_key_id: None,
            idempotency_ttl_secs: 86_400,
            concurrency: shared::config::DEFAULT_CONCURRENCY,
        },
    };
    let secret = shared::secret::UserSecret {
        user_name: body.ready.user_name().to_string(),
        console_sign_in_url: "https://123456789012.signin.aws.amazon.com/console".into(),
        password: Some(Sensitive::new("Example-Passw0rd-0123456")),
        access_key_id: Some("AKIAEXAMPLE".into()),
        secret_access_key: Some(Sensitive::new("example-secret")),
    };
    let value = Sensitive::new(serde_json::to_string(&secret).unwrap());
    d.secrets.create(&body.secret.name, &value, &BTreeMap::new(), "v1", None).await.unwrap();
    d.ledger.record_secret_version(body.ready.user_name(), "v1").await.unwrap();
    let response = d.handle_sqs(event, LEASE).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(d.status.untrusted("notify-user").await.unwrap().is_empty(), "the sample matches no record");
    assert_eq!(d.mailer.outbox().iter().filter(|e| e.to == body.ready.user().email.as_str()).count(), 3);
}

#[tokio::test]
async fn rotate_keys_events_are_rotation_requests() {
    let d = rotate_keys::Deps {
        directory: MemoryDirectory::default(),
        idempotency: MemoryIdempotency::default(),
        publisher: MemoryPublisher::default(),
        mailer: MemoryMailer::default(),
        ledger: MemoryLedger::default(),
        clock: FixedClock::at(1_800_000_000),
        config: RotateKeysConfig::from_lookup(|k| match k {
            "TABLE_NAME" | "NEXT_QUEUE_URL" | "SENDER_EMAIL" => Some("x".into()),
            _ => None,
        })
        .unwrap(),
    };
    managed_user(&d.directory, "ci-deployer", "ONB-1042");
    for (event, dry_run, one_user) in [
        // The live run last: it completes the day's run, after which a
        // whole-fleet dry run has nothing left to report.
        ("rotate-keys-dry-run.json", true, false),
        ("rotate-keys-one-user.json", true, true),
        ("rotate-keys.json", false, false),
    ] {
        let request = rotate_keys::RotationRequest::from_event(&read(event)).unwrap();
        assert_eq!((request.dry_run, request.user_name.is_some()), (dry_run, one_user), "{event}");
        let summary = d.run(&request, 1_800_000_900).await.unwrap();
        assert_eq!(summary.users, 1, "{event}");
    }
}

/// The offboarding sample, against what the onboarding sample leaves: both
/// users are the pipeline's, one disabled and one deleted. The daily run's
/// sample is what its schedule sends.
#[tokio::test]
async fn offboarding_ticket_and_daily_run_samples_are_what_offboard_user_takes() {
    use shared::lifecycle::UserHoldings;
    let status = records_of_the_sample_ticket().await;
    let iam = MemoryOffboarding::default();
    for name in ["emily.chen", "ci-deployer", "raj.patel"] {
        let tags = BTreeMap::from([
            ("iam-provisioner:managed".to_owned(), "true".to_owned()),
            ("iam-provisioner:ticket".to_owned(), "ONB-1042".to_owned()),
        ]);
        iam.insert(name, UserHoldings { login_profile: true, tags, ..Default::default() });
    }
    let d = offboard_user::Deps {
        iam,
        secrets: MemorySecrets::default(),
        idempotency: MemoryIdempotency::default(),
        status,
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(1_800_000_000),
        config: shared::config::OffboardUserConfig::from_lookup(|k| match k {
            "TABLE_NAME" | "SENDER_EMAIL" => Some("iam-provisioner@example.com".into()),
            "ALLOWED_EMAIL_DOMAINS" => Some("example.com".into()),
            _ => None,
        })
        .unwrap(),
    };
    let report: offboard_user::OffboardReport =
        serde_json::from_value(d.handle_event(read("offboarding-ticket.json"), LEASE).await.unwrap()).unwrap();
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(report.done.len(), 2);
    assert!(d.iam.holdings_of("ci-deployer").is_none());
    assert!(!d.iam.holdings_of("emily.chen").unwrap().login_profile);
    let daily: offboard_user::daily::DailySummary =
        serde_json::from_value(d.handle_event(read("offboard-user.json"), LEASE).await.unwrap()).unwrap();
    assert_eq!(daily.looked_at, 2, "{daily:?}");
    assert!(daily.complete);
}

/// The contract's access change example, for the sample ticket's emily.chen
/// as create-user left her (Power_Users, ReadOnlyAccess, its tags and records).
#[tokio::test]
async fn change_access_event_moves_emily_to_read_only() {
    let d = change_access::Deps {
        iam: MemoryAccess::default(),
        idempotency: MemoryIdempotency::default(),
        status: records_of_the_sample_ticket().await,
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(1_800_000_000),
        config: shared::config::ChangeAccessConfig {
            table_name: "t".into(),
            sender: "iam-provisioner@example.com".into(),
            allow: test_allow_list().access(),
            idempotency_ttl_secs: 86_400,
            concurrency: shared::config::DEFAULT_CONCURRENCY,
        },
    };
    let read_only = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    let held = Permissions {
        groups: vec!["Power_Users".into()],
        managed_policies: vec![read_only.into()],
        ..Default::default()
    };
    d.iam.insert("emily.chen", held);
    d.iam.set_tags("emily.chen", &[("iam-provisioner:managed", "true"), ("iam-provisioner:ticket", "ONB-1042")]);
    let report = d.handle_event(read("change-access.json"), LEASE).await.unwrap();
    assert_eq!(report["done"].as_array().map(Vec::len), Some(1), "{report}");
    let now = d.iam.access_held("emily.chen").unwrap();
    assert_eq!((now.groups, now.managed_policies), (vec!["ReadOnly".to_owned()], vec![read_only.to_owned()]));
    assert_eq!(d.mailer.outbox().len(), 1);
}
