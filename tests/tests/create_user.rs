//! create-user against the emulator: what a ticket leaves in IAM, SQS,
//! DynamoDB and SES, what a replay does, and what faults do.
#![recursion_limit = "256"]

use serde_json::{json, Value};
use shared::ports::Stage;
use tests::bootstrap::POLICY_READ_ONLY;
use tests::proxy::{Fault, FaultProxy};
use tests::{unique, Harness};

/// These tests look at create-user alone: its hand-offs stay on the
/// issue-credentials queue for them to read.
fn create_user_only(mut h: Harness) -> Harness {
    h.pipeline.stages = 1;
    h
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

fn user(name: &str, console: bool, programmatic: bool) -> Value {
    json!({"user_name": name, "email": format!("{name}@example.com"), "access": {"console": console, "programmatic": programmatic}})
}

fn ticket(id: &str, users: Vec<Value>) -> Value {
    json!({"ticket_id": id, "requested_by": format!("req-{}@example.com", id.to_lowercase()), "users": users})
}

async fn tags_of(h: &Harness, name: &str) -> Vec<(String, String)> {
    let out = h.iam.list_user_tags().user_name(name).send().await.unwrap();
    let mut t: Vec<_> = out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    t.sort();
    t
}

async fn create_template_user(h: &Harness, name: &str, group: &str, policy: &str) {
    h.iam.create_user().user_name(name).send().await.unwrap();
    h.iam.add_user_to_group().user_name(name).group_name(group).send().await.unwrap();
    h.iam.attach_user_policy().user_name(name).policy_arn(policy).send().await.unwrap();
}

#[tokio::test]
async fn three_user_ticket_leaves_the_contracted_iam_state() {
    let h = create_user_only(Harness::new().await);
    tests::start_recording(&h.endpoint);
    let s = unique("");
    let (emily, raj, bot, template) = (format!("emily{s}"), format!("raj{s}"), format!("bot{s}"), format!("tmpl{s}"));
    create_template_user(&h, &template, "Developers", POLICY_READ_ONLY).await;
    let id = format!("ONB-{s}");
    let mut u1 = user(&emily, true, true);
    u1["groups"] = json!(["Power_Users"]);
    u1["managed_policies"] = json!([POLICY_READ_ONLY]);
    u1["tags"] = json!({"team": "sales", "cost-center": "4711"});
    let mut u2 = user(&raj, true, false);
    u2["groups"] = json!(["Developers"]);
    u2["path"] = json!("/engineering/");
    let mut u3 = user(&bot, false, true);
    u3["copy_permissions_from"] = json!(template);
    let drained = h.run(&ticket(&id, vec![u1, u2, u3])).await;
    assert_eq!((drained.handled, drained.retried, drained.dead_lettered), (1, 0, 0));

    // IAM, read back.
    let got = h.iam.get_user().user_name(&raj).send().await.unwrap();
    assert_eq!(got.user().unwrap().path(), "/engineering/");
    assert_eq!(h.groups_of(&emily).await, ["Power_Users"]);
    assert_eq!(h.attached_to(&emily).await, [POLICY_READ_ONLY]);
    assert_eq!(
        tags_of(&h, &emily).await,
        [
            ("cost-center".to_owned(), "4711".to_owned()),
            ("iam-provisioner:managed".to_owned(), "true".to_owned()),
            ("iam-provisioner:ticket".to_owned(), id.clone()),
            ("team".to_owned(), "sales".to_owned()),
        ]
    );
    assert_eq!(h.groups_of(&raj).await, ["Developers"]);
    assert!(h.attached_to(&raj).await.is_empty());
    // The copy: the template's groups and managed policies (copying inline
    // policies is refused: see the validation matrix).
    assert_eq!(h.groups_of(&bot).await, ["Developers"]);
    assert_eq!(h.attached_to(&bot).await, [POLICY_READ_ONLY]);
    assert!(h.iam.list_user_policies().user_name(&bot).send().await.unwrap().policy_names().is_empty());
    // No login profile or key yet: that is issue-credentials' job.
    assert!(h.iam.list_access_keys().user_name(&emily).send().await.unwrap().access_key_metadata().is_empty());

    // moto drops PermissionsBoundary (tests/tests/moto_facts.rs), so what was
    // sent is read from its request recorder: every CreateUser carried the
    // fence this deployment created (CONTRACT.md 5a), never PowerUserAccess.
    let calls = tests::recorded_calls(&h.endpoint);
    for name in [&emily, &raj, &bot] {
        let create = calls
            .iter()
            .find(|c| c.get("Action") == Some("CreateUser") && c.get("UserName") == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no CreateUser recorded for {name}"));
        let fence = h.pipeline.env.settings.allow.default_boundary.as_str();
        assert!(fence.ends_with("user-boundary") && fence.contains(":policy/"), "{fence}");
        assert_eq!(create.get("PermissionsBoundary"), Some(fence), "{name}");
    }
    assert!(!calls.iter().any(|c| c.get("Action") == Some("PutUserPermissionsBoundary")));

    // The hand-off: one message per user, flags as asked, nothing secret.
    let mut handoffs = h.pipeline.take_handoffs().await.unwrap();
    handoffs.sort_by(|a, b| a.user_name().cmp(b.user_name()));
    let flags: Vec<_> =
        handoffs.iter().map(|r| (r.user_name().as_str(), r.access().console, r.access().programmatic)).collect();
    assert_eq!(flags, [(bot.as_str(), false, true), (emily.as_str(), true, true), (raj.as_str(), true, false)]);

    // DynamoDB: a status record per user, queryable by ticket id.
    let statuses = h.statuses(&id).await;
    assert_eq!(statuses.len(), 3);
    assert!(statuses.iter().all(|r| r.stage == Stage::UserCreated && r.reason.is_none()), "{statuses:?}");
    // Nothing was refused, so the requester got no refusal email.
    assert!(!tests::sent_emails(&h.endpoint)
        .iter()
        .any(|m| m.is_to(&format!("req-{}@example.com", id.to_lowercase()))));
}

#[tokio::test]
async fn same_ticket_delivered_twice_acts_once() {
    let h = create_user_only(Harness::new().await);
    let s = unique("");
    let id = format!("ONB-{s}");
    let t = ticket(&id, vec![user(&format!("a{s}"), true, false), user(&format!("b{s}"), false, true)]);
    h.pipeline.deliver(&t).await.unwrap();
    h.pipeline.deliver(&t).await.unwrap();
    let drained = h.pipeline.drain().await.unwrap();
    assert_eq!(drained.handled, 2);
    let again = h.run(&t).await;
    assert_eq!(again.handled, 1);
    assert_eq!(h.pipeline.take_handoffs().await.unwrap().len(), 2, "each user handed on once");
    assert_eq!(h.groups_of(&format!("a{s}")).await.len(), 0);
    let names = h.user_names_lower().await;
    assert_eq!(names.iter().filter(|n| n.ends_with(&s.to_lowercase())).count(), 2);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_ticket_do_not_both_act() {
    let h = create_user_only(Harness::new().await);
    let s = unique("");
    let id = format!("ONB-{s}");
    let mut users: Vec<Value> = (0..4).map(|i| user(&format!("c{i}{s}"), true, true)).collect();
    users[0]["groups"] = json!(["ReadOnly"]);
    let body = ticket(&id, users).to_string();
    let cu = &h.pipeline.create_user;
    let lease = shared::ports::Clock::now(&shared::ports::SystemClock) + 60;
    let (a, b, c) =
        tokio::join!(cu.handle_body(&body, lease), cu.handle_body(&body, lease), cu.handle_body(&body, lease));
    let results = [a, b, c];
    // Whoever lost the race was told to retry; none failed for good.
    for r in &results {
        if let Err(e) = r {
            assert!(e.is_retryable(), "{e}");
        }
    }
    assert!(results.iter().any(Result::is_ok));
    // The retries that SQS would make: they see the finished work.
    for _ in results.iter().filter(|r| r.is_err()) {
        let replay = cu.handle_body(&body, lease).await.unwrap();
        assert_eq!(replay.created.len(), 4);
    }
    assert_eq!(h.pipeline.take_handoffs().await.unwrap().len(), 4, "handed on once each");
    assert_eq!(h.groups_of(&format!("c0{s}")).await, ["ReadOnly"]);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_until_the_ticket_completes() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = create_user_only(Harness::at(&proxy.endpoint, |_| {}).await);
    let s = unique("");
    let id = format!("ONB-{s}");
    let mut first = user(&format!("t1{s}"), true, false);
    first["groups"] = json!(["Developers"]);
    first["managed_policies"] = json!([POLICY_READ_ONLY]);
    proxy.fail("CreateUser", 1, Fault::Throttling);
    proxy.fail("AttachUserPolicy", 1, Fault::ServiceFailure);
    proxy.fail("PutItem", 1, Fault::Throttling);
    let drained = h.run(&ticket(&id, vec![first, user(&format!("t2{s}"), false, true)])).await;
    assert_eq!(proxy.injected_count(), 3, "{:?}", proxy.injected());
    assert_eq!(drained.retried, 3, "each fault sent the record back to the queue once");
    assert_eq!((drained.handled, drained.dead_lettered), (1, 0));
    assert_eq!(h.attached_to(&format!("t1{s}")).await, [POLICY_READ_ONLY]);
    assert_eq!(h.groups_of(&format!("t1{s}")).await, ["Developers"]);
    assert_eq!(h.pipeline.take_handoffs().await.unwrap().len(), 2);
    assert!(h.statuses(&id).await.iter().all(|r| r.stage == Stage::UserCreated));
}

#[tokio::test]
async fn each_validation_rule_refuses_its_ticket_and_changes_nothing() {
    let h = create_user_only(Harness::new().await);
    let s = unique("");
    // Existing users the rules about IAM state need.
    let tests::ExistingUsers { unmanaged, other_ticket, admin_template, inline_template } =
        tests::ExistingUsers::create(&h.iam, &s).await;

    type Break = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Break)> = vec![
        ("bad-id", "ticket_id", Box::new(|t| t["ticket_id"] = json!("ONB 1; DROP TABLE"))),
        ("no-users", "users", Box::new(|t| t["users"] = json!([]))),
        (
            "eleven",
            "users",
            Box::new(|t| {
                let base = t["users"][0].clone();
                t["users"] = (0..11)
                    .map(|i| {
                        let mut u = base.clone();
                        u["user_name"] = json!(format!("n{i}{}", u["user_name"].as_str().unwrap()));
                        u
                    })
                    .collect();
            }),
        ),
        (
            "dup-case",
            "appears twice",
            Box::new(|t| {
                let mut u = t["users"][0].clone();
                u["user_name"] = json!(u["user_name"].as_str().unwrap().to_uppercase());
                t["users"].as_array_mut().unwrap().push(u);
            }),
        ),
        ("long-name", "user_name", Box::new(|t| t["users"][0]["user_name"] = json!("x".repeat(65)))),
        ("charset", "user_name", Box::new(|t| t["users"][0]["user_name"] = json!("bad/name"))),
        ("lookalike", "user_name", Box::new(|t| t["users"][0]["user_name"] = json!("аdmin"))),
        ("email", "email", Box::new(|t| t["users"][0]["email"] = json!("not-an-email"))),
        (
            "no-access",
            "access",
            Box::new(|t| t["users"][0]["access"] = json!({"console": false, "programmatic": false})),
        ),
        ("path", "path", Box::new(|t| t["users"][0]["path"] = json!("/no-trailing-slash"))),
        ("aws-tag", "aws:", Box::new(|t| t["users"][0]["tags"] = json!({"aws:createdBy": "me"}))),
        ("tag-chars", "tags.team", Box::new(|t| t["users"][0]["tags"] = json!({"team": "<script>"}))),
        (
            "too-many-tags",
            "tags",
            Box::new(|t| {
                t["users"][0]["tags"] =
                    (0..49).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>().into()
            }),
        ),
        ("group", "groups", Box::new(|t| t["users"][0]["groups"] = json!(["Admins"]))),
        ("admin-policy", "AdministratorAccess", Box::new(|t| t["users"][0]["managed_policies"] = json!([ADMIN]))),
        ("boundary", "permissions_boundary", Box::new(|t| t["users"][0]["permissions_boundary"] = json!(ADMIN))),
        ("boundary-removal", "permissions_boundary", Box::new(|t| t["users"][0]["permissions_boundary"] = json!(""))),
        ("unknown-field", "permissions_boundry", Box::new(|t| t["users"][0]["permissions_boundry"] = json!(null))),
        (
            "eleven-groups",
            "IAM allows at most 10",
            Box::new(|t| t["users"][0]["groups"] = (0..11).map(|i| json!(format!("G{i}"))).collect()),
        ),
    ];
    let iam_cases: Vec<(&str, &str, Break)> = vec![
        ("unmanaged", "not created by iam-provisioner", {
            let n = unmanaged.clone();
            Box::new(move |t| t["users"][0]["user_name"] = json!(n.clone()))
        }),
        ("other-ticket", "created by ticket ONB-OTHER", {
            let n = other_ticket.clone();
            Box::new(move |t| t["users"][0]["user_name"] = json!(n.clone()))
        }),
        ("case-clash", "case-insensitive", {
            let n = unmanaged.to_uppercase();
            Box::new(move |t| t["users"][0]["user_name"] = json!(n.clone()))
        }),
        ("copy-admin", "AdministratorAccess", {
            let n = admin_template.clone();
            Box::new(move |t| t["users"][0]["copy_permissions_from"] = json!(n.clone()))
        }),
        ("copy-inline", "inline policies (iam-all)", {
            let n = inline_template.clone();
            Box::new(move |t| t["users"][0]["copy_permissions_from"] = json!(n.clone()))
        }),
        (
            "copy-missing",
            "does not exist",
            Box::new(|t| t["users"][0]["copy_permissions_from"] = json!("no.such.user")),
        ),
    ];
    let mut requesters = Vec::new();
    for (case, expect, breaks) in cases.into_iter().chain(iam_cases) {
        let id = format!("V-{case}-{s}");
        let mut t =
            ticket(&id, vec![user(&format!("v{case}{s}"), true, true), user(&format!("w{case}{s}"), false, true)]);
        breaks(&mut t);
        let before = h.user_names_lower().await;
        let drained = h.run(&t).await;
        assert_eq!((drained.handled, drained.retried), (1, 0), "{case}: refused once, not retried");
        // IAM: not one user more, and the ones that existed are untouched.
        assert_eq!(
            h.user_names_lower().await.iter().filter(|n| n.contains(&s.to_lowercase()) && !before.contains(n)).count(),
            0,
            "{case}"
        );
        assert_eq!(h.pipeline.take_handoffs().await.unwrap().len(), 0, "{case}");
        // DynamoDB: failed, with the reason.
        let record_id = if case == "bad-id" { None } else { Some(id.clone()) };
        if let Some(rid) = record_id {
            let statuses = h.statuses(&rid).await;
            assert!(!statuses.is_empty() && statuses.iter().all(|r| r.stage == Stage::Failed), "{case}: {statuses:?}");
            assert!(
                statuses.iter().any(|r| r.reason.as_deref().unwrap_or("").contains(expect)),
                "{case}: {statuses:?}"
            );
        }
        requesters.push((case, expect, t["requested_by"].as_str().unwrap().to_owned()));
    }
    // SES (read once: moto's data.json is megabytes): each requester was
    // told, once, with the reason.
    let sent = tests::sent_emails(&h.endpoint);
    for (case, expect, requester) in requesters {
        let mail: Vec<_> = sent.iter().filter(|m| m.is_to(&requester)).collect();
        assert_eq!(mail.len(), 1, "{case}: one email to the requester");
        assert!(
            mail[0].body.contains(&shared::text::html_escape(expect)),
            "{case}: email lacks {expect:?}:\n{}",
            mail[0].body
        );
        assert!(mail[0].subject.contains("refused"), "{case}");
    }
    // The existing users were not touched: no tags added, no group joined.
    assert!(tags_of(&h, &unmanaged).await.is_empty());
    assert_eq!(tags_of(&h, &other_ticket).await.len(), 2);
    assert!(h.groups_of(&unmanaged).await.is_empty());
}

#[tokio::test]
async fn failure_no_retry_fixes_ends_in_the_dead_letter_queue_not_lost() {
    // The function's role cannot write its table: nothing can be recorded,
    // so the ticket must wait in the DLQ for the fix rather than vanish.
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = create_user_only(Harness::at(&proxy.endpoint, |_| {}).await);
    let s = unique("");
    proxy.fail("PutItem", 100, Fault::AccessDenied);
    let drained = h.run(&ticket(&format!("ONB-{s}"), vec![user(&format!("d{s}"), true, false)])).await;
    assert_eq!(drained.dead_lettered, 1, "{drained:?}");
    assert_eq!(drained.retried as u32, tests::bootstrap::MAX_RECEIVE_COUNT, "{drained:?}");
    assert!(!h.user_names_lower().await.contains(&format!("d{s}").to_lowercase()));
}

/// The first status records of a ticket go in one BatchWriteItem, not a
/// call per user; later ones keep their forward-only condition.
#[tokio::test]
async fn first_status_records_are_one_batch_write_and_later_ones_never_move_back() {
    use shared::ports::{StatusRecord, StatusStore};
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let status = &h.pipeline.create_user.status;
    let id = unique("BW-");
    let names: Vec<String> = (0..30).map(|i| format!("u{i:02}")).collect();
    let accepted: Vec<StatusRecord> =
        names.iter().map(|u| StatusRecord::new(&id, u, Stage::Accepted, None, 1)).collect();
    let before = proxy.log().len();
    status.create_all(&accepted, &[]).await.unwrap();
    assert_eq!(proxy.log()[before..], ["dynamodb:BatchWriteItem"; 2], "25 per call");
    assert_eq!(h.statuses(&id).await.len(), 30);

    status.record(&StatusRecord::new(&id, "u01", Stage::Notified, None, 2)).await.unwrap();
    status.record(&StatusRecord::new(&id, "u01", Stage::UserCreated, None, 3)).await.unwrap();
    let u01 = h.statuses(&id).await.into_iter().find(|r| r.user_name == "u01").unwrap();
    assert_eq!(u01.stage, Stage::Notified, "a late user_created must not hide the notification");
}

/// A ticket's users are handed on in one SendMessageBatch and their first
/// status records go in one BatchWriteItem, not a call per user each.
#[tokio::test]
async fn a_tickets_hand_offs_are_one_batch_call_and_its_first_statuses_one_batch_write() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = create_user_only(Harness::at(&proxy.endpoint, |_| {}).await);
    let s = unique("");
    let id = format!("ONB-{s}");
    let users: Vec<Value> = (0..3).map(|i| user(&format!("h{i}{s}"), true, true)).collect();
    let drained = h.run(&ticket(&id, users)).await;
    assert_eq!((drained.handled, drained.retried), (1, 0));
    let count = |op: &str| proxy.log().iter().filter(|c| c.rsplit(':').next() == Some(op)).count();
    assert_eq!(count("SendMessageBatch"), 1);
    assert_eq!(count("SendMessage"), 0);
    assert_eq!(count("BatchWriteItem"), 1, "accepted");
    assert_eq!(count("PutItem"), 2 + 3, "the ticket's claim and completion, then user_created each");
    assert_eq!(h.pipeline.take_handoffs().await.unwrap().len(), 3);
    assert!(h.statuses(&id).await.iter().all(|r| r.stage == Stage::UserCreated));
}
