use super::*;
use serde_json::json;
use shared::memory::*;
use shared::ticket::EXPIRES_ON_TAG;

type Fakes = Deps<MemoryDirectory, MemoryIdempotency, MemoryStatus, MemoryPublisher, MemoryMailer, FixedClock>;

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
const FENCE: &str = "arn:aws:iam::123456789012:policy/iam-provisioner-user-boundary";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const LEASE: u64 = 2_000_000_000;
/// `deps()`'s clock: 2023-11-14T22:13:20Z.
const NOW: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

fn deps() -> Fakes {
    Deps {
        directory: MemoryDirectory::default(),
        idempotency: MemoryIdempotency::default(),
        status: MemoryStatus::default(),
        publisher: MemoryPublisher::default(),
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(NOW),
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

fn ticket() -> serde_json::Value {
    json!({
        "ticket_id": "ONB-1",
        "requested_by": "it-ops@example.com",
        "users": [
            {"user_name": "emily.chen", "email": "emily.chen@example.com",
             "access": {"console": true, "programmatic": true},
             "groups": ["Power_Users"], "managed_policies": [READ_ONLY],
             "tags": {"team": "sales"}},
            {"user_name": "raj.patel", "email": "raj.patel@example.com",
             "access": {"programmatic": true}}
        ]
    })
}

async fn run(d: &Fakes, t: &serde_json::Value) -> Result<TicketReport> {
    d.handle_body(&t.to_string(), LEASE).await
}

fn existing(name: &str, tags: &[(&str, &str)], perms: Permissions) -> (IamUser, Permissions) {
    let user = IamUser {
        user_name: name.into(),
        path: "/".into(),
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
        boundary: perms.boundary.clone(),
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    (user, perms)
}

#[tokio::test]
async fn valid_ticket_creates_users_with_boundary_tags_and_grants() {
    let d = deps();
    let report = run(&d, &ticket()).await.unwrap();
    assert_eq!(report.created, ["emily.chen", "raj.patel"]);
    let (user, perms) = d.directory.user("emily.chen").unwrap();
    assert_eq!(user.boundary.as_deref(), Some(FENCE));
    assert_eq!(user.tags.get("team").map(String::as_str), Some("sales"));
    assert_eq!(user.tags.get(MANAGED_TAG).map(String::as_str), Some("true"));
    assert_eq!(user.tags.get(TICKET_TAG).map(String::as_str), Some("ONB-1"));
    assert_eq!(perms.groups, ["Power_Users"]);
    assert_eq!(perms.managed_policies, [READ_ONLY]);
    let events = d.publisher.events::<UserReady>();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].onboarding().unwrap().ticket_users, ["emily.chen", "raj.patel"]);
    assert!(d.mailer.outbox().is_empty());
    let statuses = d.status.for_ticket("ONB-1").await.unwrap();
    assert!(statuses.iter().all(|s| s.stage == Stage::UserCreated), "{statuses:?}");
}

#[tokio::test]
async fn replayed_ticket_changes_nothing_and_hands_off_nothing_new() {
    let d = deps();
    run(&d, &ticket()).await.unwrap();
    let calls = d.directory.calls.lock().unwrap().len();
    let again = run(&d, &ticket()).await.unwrap();
    assert_eq!(again.created, ["emily.chen", "raj.patel"]);
    assert_eq!(d.directory.calls.lock().unwrap().len(), calls, "a replay must not call IAM");
    assert_eq!(d.publisher.events::<UserReady>().len(), 2);
}

#[tokio::test]
async fn same_ticket_id_with_other_content_is_refused_and_reported() {
    let d = deps();
    run(&d, &ticket()).await.unwrap();
    let mut changed = ticket();
    changed["users"][1]["access"]["console"] = json!(true);
    let report = run(&d, &changed).await.unwrap();
    assert!(report.created.is_empty());
    assert!(report.refused[0].reasons[0].contains("different content"), "{report:?}");
    assert_eq!(d.mailer.outbox().len(), 1);
    assert_eq!(d.publisher.events::<UserReady>().len(), 2);
}

#[tokio::test]
async fn retryable_failure_half_way_is_completed_by_the_retry() {
    let d = deps();
    d.directory.fail_next("AttachUserPolicy", Error::retryable("AttachUserPolicy", "Throttling"));
    let err = run(&d, &ticket()).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(d.directory.user("emily.chen").is_some(), "the user was created before the failure");
    // The other user of the ticket is not held up by it.
    let handed: Vec<String> =
        d.publisher.events::<UserReady>().into_iter().map(|r| r.user_name().to_string()).collect();
    assert_eq!(handed, ["raj.patel"]);
    let report = run(&d, &ticket()).await.unwrap();
    assert_eq!(report.created, ["emily.chen", "raj.patel"]);
    assert_eq!(d.directory.user("emily.chen").unwrap().1.managed_policies, [READ_ONLY]);
    assert_eq!(d.publisher.events::<UserReady>().len(), 2);
}

#[tokio::test]
async fn permanent_failure_refuses_that_user_only_and_tells_the_requester() {
    let d = deps();
    let quota = "LimitExceeded: Cannot exceed quota for GroupsPerUser: 10";
    d.directory.fail_next("AddUserToGroup", Error::permanent("AddUserToGroup", quota));
    let report = run(&d, &ticket()).await.unwrap();
    assert_eq!(report.created, ["raj.patel"]);
    assert_eq!(report.refused[0].user_name, "emily.chen");
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].text.contains("GroupsPerUser"));
    let statuses = d.status.for_ticket("ONB-1").await.unwrap();
    let emily = statuses.iter().find(|s| s.user_name == "emily.chen").unwrap();
    assert_eq!(emily.stage, Stage::Failed);
    // emily exists half-made; nothing may hand her on to issue-credentials.
    assert!(d.status.handoff("ONB-1", "emily.chen").await.unwrap().is_none());
    assert!(d.status.handoff("ONB-1", "raj.patel").await.unwrap().is_some());
}

#[tokio::test]
async fn existing_user_not_created_by_this_ticket_is_refused_and_untouched() {
    let d = deps();
    let (u, p) = existing("raj.patel", &[], Permissions::default());
    d.directory.insert(u, p);
    let report = run(&d, &ticket()).await.unwrap();
    assert!(report.created.is_empty());
    assert!(d.directory.calls.lock().unwrap().is_empty(), "nothing may be written");
    let reasons = &report.refused.iter().find(|r| r.user_name == "raj.patel").unwrap().reasons;
    assert!(reasons[0].contains("not created by iam-provisioner"), "{reasons:?}");
    let other = &report.refused.iter().find(|r| r.user_name == "emily.chen").unwrap().reasons;
    assert!(other[0].contains("refused as a whole"), "{other:?}");
    assert_eq!(d.mailer.outbox().len(), 1);
}

#[tokio::test]
async fn user_managed_by_another_ticket_is_refused() {
    let d = deps();
    let (u, p) = existing("raj.patel", &[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-0")], Permissions::default());
    d.directory.insert(u, p);
    let report = run(&d, &ticket()).await.unwrap();
    let reasons = &report.refused.iter().find(|r| r.user_name == "raj.patel").unwrap().reasons;
    assert!(reasons[0].contains("created by ticket ONB-0"), "{reasons:?}");
}

/// A user deleted by an offboarding holds its name while its secret can
/// be recovered: onboarding it again would collide with that secret.
#[tokio::test]
async fn a_name_deleted_by_offboarding_is_refused_until_its_secret_is_gone() {
    let d = deps();
    let now = d.clock.now();
    let gone = Departure { user_name: "Raj.Patel".into(), ticket_id: "OFF-9".into(), until: now + 86_400 };
    d.status.record_departure(&gone).await.unwrap();
    let report = run(&d, &ticket()).await.unwrap();
    assert!(report.created.is_empty());
    assert!(d.directory.calls.lock().unwrap().is_empty(), "nothing may be written");
    let reasons = &report.refused.iter().find(|r| r.user_name == "raj.patel").unwrap().reasons;
    assert!(reasons[0].contains("deleted by ticket OFF-9") && reasons[0].contains("recovered until"), "{reasons:?}");
    // Once the secret is gone for good, the name is free.
    let d2 = deps();
    d2.status.record_departure(&Departure { until: now, ..gone }).await.unwrap();
    assert_eq!(run(&d2, &ticket()).await.unwrap().created.len(), 2);
}

#[tokio::test]
async fn name_differing_only_in_case_from_an_existing_user_is_refused() {
    let d = deps();
    let (u, p) = existing("Raj.Patel", &[], Permissions::default());
    d.directory.insert(u, p);
    let report = run(&d, &ticket()).await.unwrap();
    assert!(report.created.is_empty());
    let reasons = &report.refused.iter().find(|r| r.user_name == "raj.patel").unwrap().reasons;
    assert!(reasons[0].contains("case-insensitive"), "{reasons:?}");
}

#[tokio::test]
async fn user_left_half_done_by_this_ticket_is_completed() {
    let d = deps();
    let (u, p) = existing(
        "raj.patel",
        &[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1")],
        Permissions { boundary: Some(FENCE.into()), ..Default::default() },
    );
    d.directory.insert(u, p);
    let report = run(&d, &ticket()).await.unwrap();
    assert_eq!(report.created, ["emily.chen", "raj.patel"]);
    assert_eq!(d.publisher.events::<UserReady>().len(), 2);
}

#[tokio::test]
async fn copy_takes_groups_managed_policies_and_boundary() {
    let d = deps();
    let perms = Permissions {
        groups: vec!["Developers".into()],
        managed_policies: vec![READ_ONLY.into()],
        inline_policies: vec![],
        boundary: Some(FENCE.into()),
    };
    let (u, p) = existing("template.dev", &[], perms.clone());
    d.directory.insert(u, p);
    let mut t = ticket();
    t["users"][1]["copy_permissions_from"] = json!("template.dev");
    run(&d, &t).await.unwrap();
    let (user, got) = d.directory.user("raj.patel").unwrap();
    assert_eq!(got, perms);
    assert_eq!(user.boundary.as_deref(), Some(FENCE));
}

#[tokio::test]
async fn copy_from_a_user_with_inline_policies_is_refused() {
    let d = deps();
    let perms = Permissions { inline_policies: vec!["s3-admin".into()], ..Default::default() };
    let (u, p) = existing("template.dev", &[], perms);
    d.directory.insert(u, p);
    let mut t = ticket();
    t["users"][1]["copy_permissions_from"] = json!("template.dev");
    let report = run(&d, &t).await.unwrap();
    assert!(report.created.is_empty());
    assert!(d.directory.calls.lock().unwrap().is_empty());
    let reasons = &report.refused.iter().find(|r| r.user_name == "raj.patel").unwrap().reasons;
    assert!(reasons[0].contains("inline policies (s3-admin)"), "{reasons:?}");
}

#[tokio::test]
async fn copy_from_a_user_with_permissions_off_the_allow_list_is_refused() {
    let d = deps();
    let perms = Permissions { managed_policies: vec![ADMIN.into()], ..Default::default() };
    let (u, p) = existing("admin.template", &[], perms);
    d.directory.insert(u, p);
    let mut t = ticket();
    t["users"][1]["copy_permissions_from"] = json!("admin.template");
    let report = run(&d, &t).await.unwrap();
    assert!(report.created.is_empty());
    assert!(d.directory.calls.lock().unwrap().is_empty());
    let reasons = &report.refused.iter().find(|r| r.user_name == "raj.patel").unwrap().reasons;
    assert!(reasons[0].contains("AdministratorAccess"), "{reasons:?}");
}

/// Every static rule of the contract, each broken once: the refusal names
/// the field, nothing is written, and the requester is told.
#[tokio::test]
async fn each_validation_rule_refuses_the_ticket_naming_the_field() {
    let long = "a".repeat(65);
    type Break = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Break)> = vec![
        ("ticket_id", Box::new(|t| t["ticket_id"] = json!("ONB 1!"))),
        ("ticket_id", Box::new(|t| t["ticket_id"] = json!("x".repeat(129)))),
        ("requested_by", Box::new(|t| t["requested_by"] = json!("it-ops"))),
        ("users", Box::new(|t| t["users"] = json!([]))),
        (
            "users",
            Box::new(|t| {
                let u = t["users"][1].clone();
                t["users"] = json!((0..11)
                    .map(|i| {
                        let mut u = u.clone();
                        u["user_name"] = json!(format!("u{i}"));
                        u
                    })
                    .collect::<Vec<_>>());
            }),
        ),
        ("user_name", Box::new(|t| t["users"][1]["user_name"] = json!("EMILY.CHEN"))),
        ("users[1].user_name", Box::new(move |t| t["users"][1]["user_name"] = json!(long.clone()))),
        ("users[1].user_name", Box::new(|t| t["users"][1]["user_name"] = json!("raj patel"))),
        ("users[1].user_name", Box::new(|t| t["users"][1]["user_name"] = json!("rаj.patel"))), // Cyrillic а
        ("users[1].email", Box::new(|t| t["users"][1]["email"] = json!("raj@localhost"))),
        ("users[1].access", Box::new(|t| t["users"][1]["access"] = json!({"console": false, "programmatic": false}))),
        ("users[1].path", Box::new(|t| t["users"][1]["path"] = json!("engineering"))),
        ("users[1].path", Box::new(|t| t["users"][1]["path"] = json!(format!("/{}/", "p".repeat(511))))),
        ("users[1].groups", Box::new(|t| t["users"][1]["groups"] = json!(["Admins"]))),
        ("users[1].managed_policies", Box::new(|t| t["users"][1]["managed_policies"] = json!([ADMIN]))),
        ("users[1].permissions_boundary", Box::new(|t| t["users"][1]["permissions_boundary"] = json!(ADMIN))),
        ("users[1].tags.aws:team", Box::new(|t| t["users"][1]["tags"] = json!({"aws:team": "x"}))),
        (
            "users[1].tags.iam-provisioner:managed",
            Box::new(|t| t["users"][1]["tags"] = json!({"iam-provisioner:managed": "false"})),
        ),
        ("users[1].tags.team", Box::new(|t| t["users"][1]["tags"] = json!({"team": "a<b"}))),
        ("users[1].tags.team", Box::new(|t| t["users"][1]["tags"] = json!({"team": "v".repeat(257)}))),
        (
            "users[1].tags",
            Box::new(|t| {
                t["users"][1]["tags"] =
                    json!((0..49).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>())
            }),
        ),
        (
            "users[1].console_password",
            Box::new(|t| {
                t["users"][1]["console_password"] =
                    json!({"mode": "custom", "secret_arn": "arn:aws:secretsmanager:us-east-1:1:secret:x"})
            }),
        ),
        (
            "users[0].console_password.secret_arn",
            Box::new(|t| t["users"][0]["console_password"] = json!({"mode": "custom", "secret_arn": "hunter2"})),
        ),
        (
            "users[1].copy_permissions_from",
            Box::new(|t| {
                t["users"][1]["copy_permissions_from"] = json!("someone");
                t["users"][1]["groups"] = json!(["ReadOnly"]);
            }),
        ),
        ("users[1].copy_permissions_from", Box::new(|t| t["users"][1]["copy_permissions_from"] = json!("nobody.here"))),
        (
            "users[1].groups",
            Box::new(|t| t["users"][1]["groups"] = json!((0..11).map(|i| format!("g{i}")).collect::<Vec<_>>())),
        ),
        ("users[1].permissions_boundry", Box::new(|t| t["users"][1]["permissions_boundry"] = json!(POWER_USER))),
        ("users[1].access.console", Box::new(|t| t["users"][1]["access"]["console"] = json!("yes"))),
        ("users[1].expires_on", Box::new(|t| t["users"][1]["expires_on"] = json!("2027-02-29"))),
        ("users[1].expires_on", Box::new(|t| t["users"][1]["expires_on"] = json!("2026-13-01"))),
        ("users[1].expires_on", Box::new(|t| t["users"][1]["expires_on"] = json!("2026-1-5"))),
        // Today and before, on the clock of `deps()` (2023-11-14).
        ("users[1].expires_on", Box::new(|t| t["users"][1]["expires_on"] = json!("2023-11-14"))),
        ("users[1].expires_on", Box::new(|t| t["users"][1]["expires_on"] = json!("2023-11-13"))),
    ];
    for (field, breaks) in cases {
        let d = deps();
        let mut t = ticket();
        breaks(&mut t);
        let report = run(&d, &t).await.unwrap();
        assert!(report.created.is_empty(), "{field}: {report:?}");
        assert_eq!(d.directory.user_count(), 0, "{field}: IAM was changed");
        assert!(d.publisher.events::<UserReady>().is_empty());
        let all: Vec<&String> = report.refused.iter().flat_map(|r| &r.reasons).collect();
        assert!(all.iter().any(|r| r.contains(field)), "{field} not named in {all:?}");
        let outbox = d.mailer.outbox();
        if field == "requested_by" {
            assert!(outbox.is_empty(), "there is no address to write to");
            continue;
        }
        assert_eq!(outbox.len(), 1, "{field}: requester email");
        assert!(outbox[0].text.contains(field), "{field}: email does not name it:\n{}", outbox[0].text);
        assert!(!outbox[0].text.contains("hunter2"), "a value that may be a secret was echoed");
    }
}

#[tokio::test]
async fn unreadable_body_is_recorded_and_not_retried() {
    let d = deps();
    let report = d.handle_body("{not json", LEASE).await.unwrap();
    assert!(report.ticket_id.starts_with("unreadable:"));
    let statuses = d.status.for_ticket(&report.ticket_id).await.unwrap();
    assert_eq!(statuses[0].stage, Stage::Failed);
    assert!(statuses[0].reason.as_deref().unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn sqs_batch_sends_back_failures_but_not_refusals() {
    let d = deps();
    d.directory.fail_next("ListUsers", Error::retryable("ListUsers", "ServiceFailure"));
    let record = |id: &str, body: String| {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m
    };
    let mut event = SqsEvent::default();
    event.records = vec![record("retry-me", ticket().to_string()), record("refused", "[]".into())];
    let response = d.handle_sqs(event, LEASE).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["retry-me"]);
}

#[tokio::test]
async fn eventbridge_envelope_and_bare_ticket_are_the_same_ticket() {
    let d = deps();
    let envelope = json!({"version": "0", "id": "1", "source": "onboarding.tickets",
        "detail-type": "Onboarding Ticket Approved", "detail": ticket()});
    run(&d, &envelope).await.unwrap();
    let again = run(&d, &ticket()).await.unwrap();
    assert_eq!(again.created.len(), 2);
    assert_eq!(d.publisher.events::<UserReady>().len(), 2, "the bare replay is the same ticket");
    let other = json!({"source": "someone.else", "detail-type": "Onboarding Ticket Approved", "detail": ticket()});
    let refused = deps().handle_body(&other.to_string(), LEASE).await.unwrap();
    assert!(refused.refused[0].reasons[0].contains("not an approved onboarding ticket"));
}

/// The status written after each hand-off is what a retry reads: a run that
/// failed part way hands on only the users it had not handed on yet, and
/// does not touch IAM for the others.
#[tokio::test]
async fn retry_after_a_failure_part_way_hands_on_only_the_users_not_yet_handed_on() {
    let d = deps();
    let mut t = ticket();
    t["users"][0]["groups"] = json!([]);
    t["users"][1]["groups"] = json!(["Developers"]);
    d.directory.fail_next("AddUserToGroup", Error::retryable("AddUserToGroup", "throttled"));
    let err = run(&d, &t).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let handed: Vec<String> =
        d.publisher.events::<UserReady>().into_iter().map(|r| r.user_name().to_string()).collect();
    assert_eq!(handed, ["emily.chen"]);

    let report = run(&d, &t).await.unwrap();
    assert_eq!(report.created, ["emily.chen", "raj.patel"]);
    let handed: Vec<String> =
        d.publisher.events::<UserReady>().into_iter().map(|r| r.user_name().to_string()).collect();
    assert_eq!(handed, ["emily.chen", "raj.patel"], "each user handed on once");
    let creates = d.directory.calls.lock().unwrap().iter().filter(|c| c.starts_with("CreateUser emily.chen")).count();
    assert_eq!(creates, 1, "the user handed on before was left alone");
    let statuses = d.status.for_ticket("ONB-1").await.unwrap();
    assert!(statuses.iter().all(|s| s.stage == Stage::UserCreated), "{statuses:?}");
}

/// The deployment's own fault (here the role may not AddUserToGroup) is not
/// the requester's: nobody is refused or told, no user is marked failed, the
/// ticket is not settled. Once the role is fixed, the retry (a redrive from
/// the dead-letter queue) finishes the half-made user with nothing twice.
#[tokio::test]
async fn a_fault_of_the_deployment_refuses_nobody_and_the_retry_after_the_fix_finishes() {
    let d = deps();
    let denied = Error::deployment("AddUserToGroup", "AccessDenied", "grant the role AddUserToGroup");
    d.directory.fail_next("AddUserToGroup", denied);
    let err = run(&d, &ticket()).await.unwrap_err();
    assert!(matches!(err, Error::Deployment { .. }), "{err}");
    assert!(d.mailer.outbox().is_empty(), "the requester was told of the deployment's fault");
    let statuses = d.status.for_ticket("ONB-1").await.unwrap();
    assert!(statuses.iter().all(|s| s.stage != Stage::Failed), "{statuses:?}");
    assert!(d.status.handoff("ONB-1", "emily.chen").await.unwrap().is_some(), "her hand-off was revoked");
    // The role is fixed; the message comes back from the dead-letter queue.
    let report = run(&d, &ticket()).await.unwrap();
    assert_eq!(report.created, ["emily.chen", "raj.patel"]);
    assert!(report.refused.is_empty());
    assert_eq!(d.directory.user("emily.chen").unwrap().1.groups, ["Power_Users"]);
    assert_eq!(d.publisher.events::<UserReady>().len(), 2, "each user handed on once");
    assert!(d.mailer.outbox().is_empty());
}

/// NoSuchEntity while granting: a group missing from the account is the
/// deployment's fault; a user IAM does not show yet (eventual consistency)
/// is a passing one.
#[tokio::test]
async fn no_such_entity_while_granting_is_a_missing_group_or_a_user_not_visible_yet() {
    let d = deps();
    let missing = || Error::Missing { operation: "AddUserToGroup", message: "NoSuchEntity".into() };
    d.directory.fail_next("AddUserToGroup", missing());
    let err = run(&d, &ticket()).await.unwrap_err();
    match &err {
        Error::Deployment { fix, .. } => assert!(fix.contains("Power_Users") && fix.contains("allow-list"), "{fix}"),
        other => panic!("not the deployment's fault: {other}"),
    }
    let d = deps();
    d.directory.fail_next("AddUserToGroup", missing());
    d.directory.fail_next("GetUser", Error::Missing { operation: "GetUser", message: "not yet".into() });
    let err = run(&d, &ticket()).await.unwrap_err();
    assert!(err.is_retryable() && !matches!(err, Error::Deployment { .. }), "{err}");
}

/// What the dashboard counts: a ticket and its users once, when they
/// happen; a replay counts nothing; a refusal is a refusal.
#[tokio::test]
async fn what_happened_is_counted_once() {
    use shared::metrics::{capture, name, total};
    let d = deps();
    let (report, counts) = capture(run(&d, &ticket())).await;
    assert_eq!(report.unwrap().created.len(), 2);
    assert_eq!((total(&counts, name::TICKETS_ACCEPTED), total(&counts, name::USERS_CREATED)), (1, 2));
    let (_, replayed) = capture(run(&d, &ticket())).await;
    assert!(replayed.is_empty(), "{replayed:?}");
    let mut bad = ticket();
    bad["ticket_id"] = json!("ONB-2");
    bad["users"][0]["groups"] = json!(["Admins"]);
    let (_, refused) = capture(run(&d, &bad)).await;
    assert_eq!((total(&refused, name::TICKETS_REFUSED), total(&refused, name::EMAILS_SENT)), (1, 1));
    assert_eq!(total(&refused, name::USERS_CREATED), 0);
}

/// `expires_on` is judged on the clock's day (UTC): tomorrow is the first
/// day accepted, and the user is created with the tag the expiry run reads.
#[tokio::test]
async fn an_expiry_after_today_is_created_as_the_users_tag_and_handed_on() {
    let d = deps();
    let mut t = ticket();
    t["users"][0]["expires_on"] = json!("2023-11-15");
    let report = run(&d, &t).await.unwrap();
    assert_eq!(report.created, ["emily.chen", "raj.patel"]);
    let (emily, _) = d.directory.user("emily.chen").unwrap();
    assert_eq!(emily.tags.get(EXPIRES_ON_TAG).map(String::as_str), Some("2023-11-15"));
    assert_eq!(emily.tags.get("team").map(String::as_str), Some("sales"), "with the ticket's tags");
    assert_eq!(emily.tags.get(TICKET_TAG).map(String::as_str), Some("ONB-1"));
    let (raj, _) = d.directory.user("raj.patel").unwrap();
    assert!(!raj.tags.contains_key(EXPIRES_ON_TAG), "{:?}", raj.tags);
    let expiry: Vec<_> = d.publisher.events::<UserReady>().iter().map(|r| r.onboarding().unwrap().expires_on).collect();
    assert_eq!(expiry, [Some(shared::date::Date::parse("2023-11-15").unwrap()), None]);
    assert_eq!(d.status.handoff("ONB-1", "emily.chen").await.unwrap().unwrap().expires_on, expiry[0]);
}

/// Refused with everything else the ticket breaks, before anything is
/// written; the requester is told which day and why.
#[tokio::test]
async fn an_expiry_today_is_refused_with_the_tickets_other_errors_and_changes_nothing() {
    let d = deps();
    let mut t = ticket();
    t["users"][0]["expires_on"] = json!("2023-11-14");
    t["users"][1]["groups"] = json!(["Admins"]);
    let report = run(&d, &t).await.unwrap();
    assert!(report.created.is_empty());
    assert_eq!(d.directory.user_count(), 0);
    assert!(d.publisher.events::<UserReady>().is_empty());
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    let text = &outbox[0].text;
    assert!(text.contains("users[0].expires_on: 2023-11-14 is not after today (2023-11-14, UTC)"), "{text}");
    assert!(text.contains("users[1].groups"), "{text}");
    // The next day it would be yesterday; a day before, it was tomorrow.
    let d = deps();
    d.clock.advance(DAY);
    t["users"][1]["groups"] = json!([]);
    assert!(run(&d, &t).await.unwrap().created.is_empty());
    let d = Fakes { clock: FixedClock::at(NOW - DAY), ..deps() };
    assert_eq!(run(&d, &t).await.unwrap().created, ["emily.chen", "raj.patel"]);
}

/// A run that died after accepting the ticket is finished by the retry,
/// also when the retry comes after the expiry day has become today: the
/// users it made are not then reported refused.
#[tokio::test]
async fn a_retry_past_midnight_finishes_what_the_accepted_ticket_began() {
    let d = deps();
    let mut t = ticket();
    t["users"][0]["expires_on"] = json!("2023-11-15");
    d.directory.fail_next("AttachUserPolicy", Error::retryable("AttachUserPolicy", "Throttling"));
    assert!(run(&d, &t).await.unwrap_err().is_retryable());
    d.clock.advance(DAY);
    let report = run(&d, &t).await.unwrap();
    assert_eq!(report.created, ["emily.chen", "raj.patel"], "{report:?}");
    assert!(report.refused.is_empty() && d.mailer.outbox().is_empty());
    let (emily, perms) = d.directory.user("emily.chen").unwrap();
    assert_eq!(emily.tags[EXPIRES_ON_TAG], "2023-11-15");
    assert_eq!(perms.managed_policies, [READ_ONLY]);
}
