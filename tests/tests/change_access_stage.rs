//! Access changes through the bus (CONTRACT.md section 6): users onboarded
//! by the pipeline get groups and managed policies added and removed by an
//! `Access Change Approved` event, handled by the change-access stage
//! (removals first, the boundary untouched, what the ticket does not name
//! left as it is); a replay writes nothing; a user the pipeline did not
//! create, or a group off the allow-list, refuses the ticket and IAM stays
//! exactly as it was.
//!
//! Mail is read from what the stages handed SES (`LocalPipeline::emails_sent`),
//! IAM's writes from the fault proxy's log, by the stage's own access key.
#![recursion_limit = "256"]

use serde_json::json;
use shared::ports::Stage;
use tests::bootstrap::{POLICY_CHANGE_PASSWORD, POLICY_POWER_USER, POLICY_READ_ONLY};
use tests::pipeline::STAGE_KEYS;
use tests::proxy::FaultProxy;
use tests::{two_user_ticket, unique, ExistingUsers, Harness};

fn access_change(ticket_id: &str, requested_by: &str, users: serde_json::Value) -> serde_json::Value {
    json!({
        "source": "onboarding.tickets", "detail-type": "Access Change Approved",
        "detail": {"ticket_id": ticket_id, "requested_by": requested_by, "users": users}
    })
}

/// The IAM writes change-access made, in order, as (action, form body).
fn change_access_writes(proxy: &FaultProxy) -> Vec<(String, String)> {
    let key = STAGE_KEYS.iter().find(|(s, _)| *s == "change-access").map(|(_, k)| *k).unwrap();
    proxy
        .requests()
        .into_iter()
        .filter(|r| {
            r.access_key_id == key
                && r.service == "iam"
                && !r.action.starts_with("Get")
                && !r.action.starts_with("List")
        })
        .map(|r| (r.action, r.body))
        .collect()
}

async fn sorted_groups(h: &Harness, name: &str) -> Vec<String> {
    let mut groups = h.groups_of(name).await;
    groups.sort();
    groups
}

async fn sorted_policies(h: &Harness, name: &str) -> Vec<String> {
    let mut policies = h.attached_to(name).await;
    policies.sort();
    policies
}

#[tokio::test]
async fn an_access_change_moves_a_user_between_groups_and_swaps_its_policies() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let (onboarding, names) = two_user_ticket("ONB", &s);
    let drained = h.run(&onboarding).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    let (both, keys) = (&names[0], &names[1]);
    // As onboarding left them: `both` in Developers with ReadOnlyAccess (and,
    // a console user, the change-password policy issue-credentials attaches).
    assert_eq!(sorted_groups(&h, both).await, ["Developers"]);
    assert_eq!(sorted_policies(&h, both).await, [POLICY_CHANGE_PASSWORD, POLICY_READ_ONLY]);
    // An administrator's addition, which the ticket does not name.
    h.iam.add_user_to_group().user_name(both).group_name("Power_Users").send().await.unwrap();
    proxy.record_requests();

    let requester = format!("req{s}@example.com");
    let ticket_id = format!("CHG-{s}");
    let ticket = access_change(
        &ticket_id,
        &requester,
        json!([
            {"user_name": both, "add_groups": ["ReadOnly"], "remove_groups": ["Developers"],
             "attach_policies": [POLICY_POWER_USER], "detach_policies": [POLICY_READ_ONLY]},
            {"user_name": keys, "attach_policies": [POLICY_READ_ONLY]}
        ]),
    );
    let drained = h.run(&ticket).await;
    assert_eq!((drained.dead_lettered, drained.retried), (0, 0), "{drained:?}");

    // IAM, read back: exactly what was asked; the group and the policy the
    // ticket does not name kept.
    assert_eq!(sorted_groups(&h, both).await, ["Power_Users", "ReadOnly"]);
    assert_eq!(sorted_policies(&h, both).await, [POLICY_CHANGE_PASSWORD, POLICY_POWER_USER]);
    assert!(h.groups_of(keys).await.is_empty());
    assert_eq!(h.attached_to(keys).await, [POLICY_READ_ONLY]);
    // The calls the stage made, removals first; none of them a boundary's
    // (moto drops boundaries, tests/tests/moto_facts.rs: what was called is
    // what shows).
    let key = STAGE_KEYS.iter().find(|(s, _)| *s == "change-access").map(|(_, k)| *k).unwrap();
    let boundary_calls: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.access_key_id == key && r.action.contains("PermissionsBoundary"))
        .map(|r| r.action)
        .collect();
    assert!(boundary_calls.is_empty(), "{boundary_calls:?}");
    let writes = change_access_writes(&proxy);
    let of = |name: &str| -> Vec<&str> {
        let by = |body: &str| tests::form_decode(body).into_iter().any(|(k, v)| k == "UserName" && v == name);
        writes.iter().filter(|(_, body)| by(body)).map(|(a, _)| a.as_str()).collect()
    };
    assert_eq!(of(both), ["RemoveUserFromGroup", "DetachUserPolicy", "AddUserToGroup", "AttachUserPolicy"]);
    assert_eq!(of(keys), ["AttachUserPolicy"]);
    assert_eq!(writes.len(), 5, "{writes:?}");

    let statuses = h.statuses(&format!("access-change#{ticket_id}")).await;
    let stages: Vec<(&str, Stage)> = statuses.iter().map(|r| (r.user_name.as_str(), r.stage)).collect();
    assert_eq!(stages, [(both.as_str(), Stage::AccessChanged), (keys.as_str(), Stage::AccessChanged)]);
    assert_eq!(
        statuses[0].reason.as_deref(),
        Some(
            format!("in ReadOnly; no longer in Developers; {POLICY_POWER_USER} attached; {POLICY_READ_ONLY} detached")
                .as_str()
        )
    );
    let told: Vec<_> =
        h.pipeline.emails_sent().into_iter().filter(|(_, subject)| subject.contains(&ticket_id)).collect();
    assert_eq!(told, [(requester.clone(), format!("Access change ticket {ticket_id}: 2 user(s) changed, 0 refused"))]);

    // A replay of the same ticket writes nothing and tells nobody again.
    let before = change_access_writes(&proxy).len();
    let drained = h.run(&ticket).await;
    assert_eq!((drained.dead_lettered, drained.retried), (0, 0), "{drained:?}");
    assert_eq!(change_access_writes(&proxy).len(), before, "a replay wrote to IAM");
    assert_eq!(h.pipeline.emails_sent().iter().filter(|(_, subject)| subject.contains(&ticket_id)).count(), 1);
    assert_eq!(sorted_groups(&h, both).await, ["Power_Users", "ReadOnly"]);
}

#[tokio::test]
async fn an_unmanaged_user_or_an_allow_list_breach_refuses_the_ticket_and_iam_stays_as_it_was() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let (onboarding, names) = two_user_ticket("ONB", &s);
    h.run(&onboarding).await;
    let existing = ExistingUsers::create(&h.iam, &s).await;
    let all = [names[0].clone(), names[1].clone(), existing.unmanaged.clone(), existing.other_ticket.clone()];
    let before = h.state(&s, &all).await;
    let without_email =
        |state: &[String]| state.iter().filter(|l| !l.starts_with("email ")).cloned().collect::<Vec<_>>();
    proxy.record_requests();
    let requester = format!("req{s}@example.com");

    // Users the pipeline did not create: no managed tag; the tag of a
    // ticket whose records hold no such user.
    let unmanaged = format!("CHG-{s}-1");
    let ticket = access_change(
        &unmanaged,
        &requester,
        json!([
            {"user_name": names[0], "add_groups": ["ReadOnly"]},
            {"user_name": existing.unmanaged, "add_groups": ["ReadOnly"], "attach_policies": [POLICY_POWER_USER]},
            {"user_name": existing.other_ticket, "add_groups": ["Power_Users"]}
        ]),
    );
    let drained = h.run(&ticket).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    assert!(
        change_access_writes(&proxy).is_empty(),
        "a refused ticket wrote to IAM: {:?}",
        change_access_writes(&proxy)
    );
    assert_eq!(without_email(&h.state(&s, &all).await), without_email(&before));
    let statuses = h.statuses(&format!("access-change#{unmanaged}")).await;
    assert!(statuses.iter().all(|r| r.stage == Stage::Failed) && statuses.len() == 3, "{statuses:?}");
    let reason_of =
        |n: &str| statuses.iter().find(|r| r.user_name == n).and_then(|r| r.reason.clone()).unwrap_or_default();
    assert!(reason_of(&existing.unmanaged).contains("not created by iam-provisioner"), "{statuses:?}");
    assert!(reason_of(&existing.other_ticket).contains("records hold no such user"), "{statuses:?}");
    assert!(reason_of(&names[0]).contains("refused as a whole"), "{statuses:?}");
    let told: Vec<_> =
        h.pipeline.emails_sent().into_iter().filter(|(_, subject)| subject.contains(&unmanaged)).collect();
    assert_eq!(told, [(requester.clone(), format!("Access change ticket {unmanaged}: refused, nothing was changed"))]);

    // The pipeline's own users, asked for a group off the allow-list (to
    // add) and a policy off it (to remove).
    let breach = format!("CHG-{s}-2");
    let ticket = access_change(
        &breach,
        &requester,
        json!([
            {"user_name": names[0], "add_groups": ["Admins"], "remove_groups": ["Developers"]},
            {"user_name": names[1], "detach_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"]}
        ]),
    );
    let drained = h.run(&ticket).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    assert!(
        change_access_writes(&proxy).is_empty(),
        "a refused ticket wrote to IAM: {:?}",
        change_access_writes(&proxy)
    );
    assert_eq!(without_email(&h.state(&s, &all).await), without_email(&before));
    let statuses = h.statuses(&format!("access-change#{breach}")).await;
    assert!(statuses.iter().all(|r| r.stage == Stage::Failed) && statuses.len() == 2, "{statuses:?}");
    assert!(statuses[0].reason.as_deref().unwrap_or_default().contains("\"Admins\" is not on"), "{statuses:?}");
    assert!(
        statuses[1].reason.as_deref().unwrap_or_default().contains("AdministratorAccess\" is not on"),
        "{statuses:?}"
    );
    let told: Vec<_> = h.pipeline.emails_sent().into_iter().filter(|(_, subject)| subject.contains(&breach)).collect();
    assert_eq!(told, [(requester, format!("Access change ticket {breach}: refused, nothing was changed"))]);
}
