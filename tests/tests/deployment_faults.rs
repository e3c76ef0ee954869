//! Faults of the deployment, as the on-call operator meets them: a
//! permission the role lacks, mid-ticket, at each stage. The ticket is not
//! refused, no user is marked failed, the requester is not told; the work
//! waits in the dead-letter queue. After the fix, a redrive finishes it, and
//! the run ends exactly where an undisturbed run ends: same users, groups,
//! policies, login profiles, one key, one secret version, each email once.
//! Also: IAM's eventual consistency (a user just created and not yet
//! visible) is waited out, not held against the user.
#![recursion_limit = "256"]

use shared::ports::Stage;
use std::sync::Arc;
use tests::proxy::{Fault, FaultProxy};
use tests::{unique, Harness};

/// One run of the two-user ticket on the deployment of `h`, with a pipeline
/// of its own (clock, email log), `before` done to the proxy first.
async fn run(h: &mut Harness, proxy: &FaultProxy, before: impl FnOnce(&FaultProxy)) -> Run {
    let sdk = tests::sdk_config(&proxy.endpoint).await;
    h.pipeline = tests::pipeline::LocalPipeline::new(&sdk, h.pipeline.env.clone());
    h.pipeline.kill_switch = Some(Arc::clone(&proxy.kill_switch));
    let s = unique("");
    let (ticket, names) = tests::two_user_ticket("DEPLOY", &s);
    before(proxy);
    let drained = h.run(&ticket).await;
    Run { s, names, ticket_id: ticket["ticket_id"].as_str().unwrap().to_owned(), drained }
}

struct Run {
    s: String,
    names: Vec<String>,
    ticket_id: String,
    drained: tests::pipeline::Drained,
}

#[tokio::test]
async fn a_permission_denied_mid_ticket_waits_in_the_dead_letter_queue_and_a_redrive_after_the_fix_finishes_it() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let mut h = Harness::at(&proxy.endpoint, |_| {}).await;
    let undisturbed = run(&mut h, &proxy, |_| {}).await;
    let baseline = h.state(&undisturbed.s, &undisturbed.names).await;
    assert_eq!(undisturbed.drained.dead_lettered, 0);
    // One call each stage makes, denied from the first attempt to the last.
    for (stage, action) in
        [("create-user", "AddUserToGroup"), ("issue-credentials", "CreateLoginProfile"), ("notify-user", "SendEmail")]
    {
        let r = run(&mut h, &proxy, |p| p.fail(action, 1_000, Fault::AccessDenied)).await;
        assert!(r.drained.dead_lettered >= 1, "{stage}: {:?}", r.drained);
        let statuses = h.statuses(&r.ticket_id).await;
        assert!(
            statuses.iter().all(|s| s.stage != Stage::Failed),
            "{stage}: the deployment's fault was held against a user: {statuses:?}"
        );
        let requester = format!("req{}@example.com", r.s);
        let told: Vec<_> = h.pipeline.emails_sent().into_iter().filter(|(to, _)| *to == requester).collect();
        assert!(told.is_empty(), "{stage}: the requester was told: {told:?}");

        // The operator grants the permission and redrives.
        proxy.clear_faults();
        let moved = h.pipeline.redrive().await.unwrap();
        assert_eq!(moved, r.drained.dead_lettered, "{stage}");
        let after = h.pipeline.drain().await.unwrap();
        assert_eq!(after.dead_lettered, 0, "{stage}: {after:?}");
        assert_eq!(
            h.state(&r.s, &r.names).await,
            baseline,
            "{stage}: the redriven run differs from an undisturbed one"
        );
        let statuses = h.statuses(&r.ticket_id).await;
        assert!(statuses.iter().all(|s| s.stage == Stage::Notified), "{stage}: {statuses:?}");
        println!(
            "deployment fault: {action} denied to {stage}: {} message(s) parked after {} redelivery(ies), none settled, \
             nobody told; redriven {moved}, then {} handled: the undisturbed state",
            r.drained.dead_lettered, r.drained.retried, after.handled
        );
    }
}

/// An allow-listed group that does not exist in the account: the deployment
/// is wrong, not the ticket. Once the group exists, a redrive finishes.
#[tokio::test]
async fn a_missing_allow_listed_group_waits_for_the_fix_instead_of_refusing_the_ticket() {
    let group = unique("Contractors");
    let h = Harness::with(|s| {
        s.allow.groups.insert(group.clone());
    })
    .await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let name = format!("g{s}");
    let ticket = serde_json::json!({"ticket_id": id, "requested_by": format!("req{s}@example.com"), "users": [
        {"user_name": name, "email": format!("{name}@example.com"), "access": {"programmatic": true}, "groups": [group]}
    ]});
    let drained = h.run(&ticket).await;
    assert_eq!(drained.dead_lettered, 1, "{drained:?}");
    assert!(h.statuses(&id).await.iter().all(|r| r.stage != Stage::Failed), "{:?}", h.statuses(&id).await);
    assert!(h.pipeline.emails_sent().is_empty(), "somebody was told");

    h.iam.create_group().group_name(&group).send().await.unwrap();
    assert_eq!(h.pipeline.redrive().await.unwrap(), 1);
    let drained = h.pipeline.drain().await.unwrap();
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    assert_eq!(h.groups_of(&name).await, std::slice::from_ref(&group));
    assert!(h.statuses(&id).await.iter().all(|r| r.stage == Stage::Notified));
}

/// IAM is eventually consistent: GetUser may not find a user created a
/// moment ago. issue-credentials waits that out; the user is not refused.
#[tokio::test]
async fn a_user_not_yet_visible_after_its_creation_is_retried_not_refused() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let (ticket, names) = tests::two_user_ticket("EC", &s);
    // create-user reads no user it creates; issue-credentials' first GetUser
    // of each user comes right after, and IAM has not caught up.
    proxy.fail("GetUser", 2, Fault::NoSuchEntity);
    let drained = h.run(&ticket).await;
    assert_eq!(proxy.injected_count(), 2, "the fault was not served");
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    assert!(drained.retried >= 1, "{drained:?}");
    let statuses = h.statuses(ticket["ticket_id"].as_str().unwrap()).await;
    assert!(statuses.iter().all(|r| r.stage == Stage::Notified), "{statuses:?}");
    for name in &names {
        assert_eq!(h.iam.list_access_keys().user_name(name).send().await.unwrap().access_key_metadata().len(), 1);
    }
}
