use super::*;
use serde_json::json;
use shared::lifecycle::{UserHoldings, OFFBOARDED_TAG};
use shared::memory::*;
use shared::ticket::{MANAGED_TAG, TICKET_TAG};

pub(crate) type Fakes =
    Deps<MemoryOffboarding, MemorySecrets, MemoryIdempotency, MemoryStatus, MemoryMailer, FixedClock>;

const LEASE: u64 = 2_000_000_000;
const NOW: u64 = 1_764_028_800; // 2025-11-25

pub(crate) fn deps() -> Fakes {
    let secrets = MemorySecrets::default();
    secrets.now.store(NOW, std::sync::atomic::Ordering::SeqCst);
    Deps {
        iam: MemoryOffboarding::default(),
        secrets,
        idempotency: MemoryIdempotency::default(),
        status: MemoryStatus::default(),
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(NOW),
        config: OffboardUserConfig {
            table_name: "t".into(),
            sender: "iam-provisioner@example.com".into(),
            email_domains: ["example.com".to_owned()].into(),
            secret_prefix: "iam-provisioner/users/".into(),
            secret_recovery_days: 30,
            retention_secs: 30 * 86_400,
            expiry_warning_secs: 7 * 86_400,
            idempotency_ttl_secs: 86_400,
            concurrency: 4,
        },
    }
}

/// A user onboarded by ONB-1, as create-user leaves it: the tags and the
/// hand-off record; with a console password, two keys, an MFA device,
/// groups, a managed and an inline policy.
fn onboarded(d: &Fakes, name: &str) {
    let handoff = accepted(json!({
        "ticket_id": "ONB-1", "requested_by": "it-ops@example.com",
        "users": [{"user_name": name, "email": format!("{name}@example.com"), "access": {"programmatic": true}}]
    }));
    d.status.insert_handoff(&handoff[0]);
    d.secrets.insert(&format!("iam-provisioner/users/{name}"), "{}");
    d.iam.insert(name, loaded(&[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1")]));
}

fn loaded(tags: &[(&str, &str)]) -> UserHoldings {
    UserHoldings {
        login_profile: true,
        access_keys: vec![("AKIA1".into(), true), ("AKIA2".into(), true)],
        mfa_devices: vec![("arn:aws:iam::123456789012:mfa/x".into(), true)],
        groups: vec!["Developers".into(), "ReadOnly".into()],
        managed_policies: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
        inline_policies: vec!["legacy".into()],
        tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn ticket(users: serde_json::Value) -> String {
    json!({
        "source": "onboarding.tickets", "detail-type": "Offboarding Ticket Approved",
        "detail": {"ticket_id": "OFF-311", "requested_by": "it-ops@example.com", "users": users}
    })
    .to_string()
}

fn off_311() -> String {
    ticket(json!([{"user_name": "emily.chen", "action": "disable"}, {"user_name": "svc-report", "action": "delete"}]))
}

async fn stage_of(d: &Fakes, user: &str) -> Option<Stage> {
    d.status.for_ticket("offboarding#OFF-311").await.unwrap().into_iter().find(|r| r.user_name == user).map(|r| r.stage)
}

#[tokio::test]
async fn a_ticket_disables_one_user_deletes_another_and_tells_the_requester_once() {
    let d = deps();
    onboarded(&d, "emily.chen");
    onboarded(&d, "svc-report");
    let report = d.handle_body(&off_311(), LEASE).await.unwrap();
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(report.done.len(), 2);

    let emily = d.iam.holdings_of("emily.chen").expect("a disabled user stays");
    assert!(!emily.login_profile && emily.groups.is_empty() && emily.managed_policies.is_empty());
    assert!(emily.access_keys.iter().all(|(_, active)| !active), "{emily:?}");
    assert_eq!(emily.tags[OFFBOARDED_TAG], "OFF-311");
    assert!(d.iam.holdings_of("svc-report").is_none(), "the deleted user is still there");

    assert_eq!(stage_of(&d, "emily.chen").await, Some(Stage::Disabled));
    assert_eq!(stage_of(&d, "svc-report").await, Some(Stage::Deleted));
    let departure = d.status.departure("SVC-REPORT", NOW).await.unwrap().expect("the name is held");
    assert_eq!(departure.until, NOW + 30 * 86_400);
    assert_eq!(departure.ticket_id, "OFF-311");
    let pending = d.secrets.pending_deletion.lock().unwrap().clone();
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        ["iam-provisioner/users/svc-report"],
        "only the deleted user's secret"
    );

    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].to, "it-ops@example.com");
    assert!(outbox[0].text.contains("emily.chen: disabled"), "{}", outbox[0].text);
    assert!(outbox[0].text.contains("svc-report: deleted"), "{}", outbox[0].text);
}

#[tokio::test]
async fn a_user_the_pipeline_did_not_create_refuses_the_ticket_and_nothing_changes() {
    let d = deps();
    onboarded(&d, "emily.chen");
    // Tagged as if onboarded, but the records hold no such user.
    d.iam.insert("svc-report", loaded(&[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1")]));
    d.iam.insert("admin", loaded(&[]));
    let before = (d.iam.holdings_of("emily.chen"), d.iam.holdings_of("svc-report"), d.iam.holdings_of("admin"));
    let t = ticket(json!([{"user_name": "emily.chen"}, {"user_name": "svc-report", "action": "delete"},
                          {"user_name": "admin", "action": "delete"}, {"user_name": "nobody"}]));
    let report = d.handle_body(&t, LEASE).await.unwrap();
    assert!(report.done.is_empty());
    assert_eq!(
        (d.iam.holdings_of("emily.chen"), d.iam.holdings_of("svc-report"), d.iam.holdings_of("admin")),
        before,
        "a refused ticket changed IAM"
    );
    assert!(d.iam.calls().is_empty(), "{:?}", d.iam.calls());
    let reasons: BTreeMap<_, _> = report.refused.iter().map(|r| (r.user_name.as_str(), r.reasons.join("; "))).collect();
    assert!(reasons["svc-report"].contains("records hold no such user"), "{reasons:?}");
    assert!(reasons["admin"].contains("not created by iam-provisioner"), "{reasons:?}");
    assert!(reasons["nobody"].contains("there is no user \"nobody\""), "{reasons:?}");
    assert!(reasons["emily.chen"].contains("refused as a whole"), "{reasons:?}");
    assert_eq!(stage_of(&d, "admin").await, Some(Stage::Failed));
    assert!(d.status.departure("svc-report", NOW).await.unwrap().is_none());
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].subject.contains("refused, nothing was changed"), "{}", outbox[0].subject);
}

#[tokio::test]
async fn a_replay_changes_nothing_and_sends_nothing() {
    let d = deps();
    onboarded(&d, "emily.chen");
    onboarded(&d, "svc-report");
    let first = d.handle_body(&off_311(), LEASE).await.unwrap();
    let calls = d.iam.calls().len();
    let again = d.handle_body(&off_311(), LEASE).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(d.iam.calls().len(), calls);
    assert_eq!(d.mailer.outbox().len(), 1);
    // The same users in a new ticket: done already, nothing to change.
    let later = ticket(json!([{"user_name": "emily.chen"}]));
    let later = later.replace("OFF-311", "OFF-400");
    let report = d.handle_body(&later, LEASE).await.unwrap();
    assert_eq!(d.iam.calls().len(), calls, "a second disable changed something");
    assert!(report.done[0].result.contains("already disabled"), "{report:?}");
    assert_eq!(d.iam.holdings_of("emily.chen").unwrap().tags[OFFBOARDED_TAG], "OFF-311", "tags changed");
}

/// Cut off at each IAM call of the ticket, then delivered again (after the
/// lease): always ends with both users as asked, the secret scheduled, one
/// email, and no IAM call repeated.
#[tokio::test]
async fn cut_off_at_any_call_the_redelivery_finishes_the_ticket() {
    let total = {
        let d = deps();
        onboarded(&d, "emily.chen");
        onboarded(&d, "svc-report");
        d.handle_body(&off_311(), LEASE).await.unwrap();
        d.iam.calls().len()
    };
    assert!(total >= 15, "{total}");
    for n in 0..total {
        let d = deps();
        onboarded(&d, "emily.chen");
        onboarded(&d, "svc-report");
        d.iam.fail_at(n);
        assert!(d.handle_body(&off_311(), LEASE).await.is_err(), "cut at {n}: not retried");
        assert!(d.mailer.outbox().is_empty(), "cut at {n}: told before done");
        let report = d.handle_body(&off_311(), LEASE).await.unwrap();
        assert_eq!(report.done.len(), 2, "cut at {n}: {report:?}");
        assert!(d.iam.holdings_of("svc-report").is_none(), "cut at {n}");
        assert_eq!(d.iam.holdings_of("emily.chen").unwrap().tags[OFFBOARDED_TAG], "OFF-311", "cut at {n}");
        assert!(d.status.departure("svc-report", NOW).await.unwrap().is_some(), "cut at {n}");
        assert_eq!(stage_of(&d, "svc-report").await, Some(Stage::Deleted), "cut at {n}");
        assert_eq!(d.mailer.outbox().len(), 1, "cut at {n}");
        let calls = d.iam.calls();
        let mut unique = calls.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), calls.len(), "cut at {n}: a call made twice: {calls:?}");
    }
}

#[tokio::test]
async fn bad_tickets_are_refused_with_every_reason_and_change_nothing() {
    let d = deps();
    onboarded(&d, "emily.chen");
    let t = ticket(json!([{"user_name": "emily.chen", "action": "purge"}]));
    let report = d.handle_body(&t, LEASE).await.unwrap();
    assert!(report.refused[0].reasons[0].contains("users[0].action"), "{report:?}");
    let wrong_kind = off_311().replace("Offboarding Ticket Approved", "Onboarding Ticket Approved");
    let report = d.handle_body(&wrong_kind, LEASE).await.unwrap();
    assert!(report.refused[0].reasons[0].contains("envelope"), "{report:?}");
    assert!(d.iam.calls().is_empty());
    assert_eq!(d.mailer.outbox().len(), 2, "each requester told");
}

/// An expiry walked through with the injected clock: warned 7 days before
/// (the user and the requester, once each however often the run goes),
/// disabled on the day, deleted after the retention period; a disabled user
/// given access back meanwhile is left alone.
#[tokio::test]
async fn an_expiry_is_warned_then_disabled_then_deleted() {
    use crate::daily::EXPIRES_ON_TAG;
    let d = deps();
    onboarded(&d, "temp.contractor");
    onboarded(&d, "restored.one");
    let expires_on = shared::text::date(NOW + 10 * 86_400);
    for name in ["temp.contractor", "restored.one"] {
        let mut h = d.iam.holdings_of(name).unwrap();
        h.tags.insert(EXPIRES_ON_TAG.into(), expires_on.clone());
        d.iam.insert(name, h);
    }
    let day = |n: u64| {
        d.clock.0.store(NOW + n * 86_400, std::sync::atomic::Ordering::SeqCst);
        d.secrets.now.store(NOW + n * 86_400, std::sync::atomic::Ordering::SeqCst);
    };
    let run = || d.run_daily(u64::MAX);

    day(2);
    assert_eq!(run().await.unwrap().warned.len(), 0, "warned 8 days before");
    day(3);
    let s = run().await.unwrap();
    assert_eq!(s.warned, ["restored.one", "temp.contractor"]);
    assert!(s.complete);
    run().await.unwrap();
    day(4);
    run().await.unwrap();
    let warnings: Vec<_> =
        d.mailer.outbox().into_iter().filter(|e| e.subject.contains("ends on")).map(|e| e.to).collect();
    assert_eq!(warnings.len(), 4, "one warning per user and requester: {warnings:?}");
    assert!(warnings.contains(&"temp.contractor@example.com".to_owned()));
    assert!(warnings.contains(&"it-ops@example.com".to_owned()));
    assert!(d.iam.calls().is_empty(), "a warning changed IAM");

    day(10);
    let s = run().await.unwrap();
    assert_eq!(s.disabled, ["restored.one", "temp.contractor"]);
    let h = d.iam.holdings_of("temp.contractor").unwrap();
    assert!(!h.login_profile && h.groups.is_empty() && h.access_keys.iter().all(|(_, a)| !a));
    assert_eq!(h.tags[OFFBOARDED_TAG], format!("EXPIRY-{expires_on}"));
    let status = d.status.for_ticket(&format!("daily#EXPIRY-{expires_on}")).await.unwrap();
    assert!(status.iter().all(|r| r.stage == Stage::Disabled) && status.len() == 2, "{status:?}");
    let calls = d.iam.calls().len();
    run().await.unwrap();
    assert_eq!(d.iam.calls().len(), calls, "a second run the same day changed something");

    // An administrator gives one of them a group back.
    let mut back = d.iam.holdings_of("restored.one").unwrap();
    back.groups.push("Developers".into());
    d.iam.insert("restored.one", back);

    day(39);
    assert!(run().await.unwrap().deleted.is_empty(), "deleted before the retention period");
    day(40);
    let s = run().await.unwrap();
    assert_eq!(s.deleted, ["temp.contractor"]);
    assert_eq!(s.restored, ["restored.one"]);
    assert!(d.iam.holdings_of("temp.contractor").is_none());
    assert!(d.iam.holdings_of("restored.one").unwrap().groups == ["Developers"], "a restored user was touched");
    assert!(d.status.departure("temp.contractor", NOW + 40 * 86_400).await.unwrap().is_some());
    let deleted: Vec<_> = d.mailer.outbox().into_iter().filter(|e| e.subject.contains("deleted")).collect();
    assert_eq!(deleted.len(), 1, "the requester is told once, the user (gone) not: {deleted:?}");
    assert_eq!(deleted[0].to, "it-ops@example.com");
}

/// Users the pipeline did not create are never touched by the daily run,
/// whatever their tags say.
#[tokio::test]
async fn the_daily_run_leaves_users_it_does_not_own_alone() {
    use crate::daily::EXPIRES_ON_TAG;
    let d = deps();
    let past = shared::text::date(NOW - 86_400);
    d.iam.insert("forged", loaded(&[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1"), (EXPIRES_ON_TAG, &past)]));
    d.iam.insert("admin", loaded(&[(EXPIRES_ON_TAG, &past)]));
    let s = d.run_daily(u64::MAX).await.unwrap();
    assert_eq!(s.looked_at, 2);
    assert!(s.disabled.is_empty() && d.iam.calls().is_empty() && d.mailer.outbox().is_empty(), "{s:?}");
}

#[tokio::test]
async fn a_daily_run_request_is_strict() {
    let d = deps();
    assert!(d.handle_event(json!({"run": "daily"}), LEASE).await.is_ok());
    assert!(d.handle_event(json!({"run": "daily", "dryRun": true}), LEASE).await.is_err());
    assert!(d.handle_event(json!({"run": "weekly"}), LEASE).await.is_err());
}

/// A ticket an earlier run began, one of whose users is no longer the
/// pipeline's when it is delivered again: that user alone is refused, the
/// user already offboarded stays so (its record is not overwritten) and the
/// requester hears of both.
#[tokio::test]
async fn a_begun_ticket_refuses_only_the_user_no_longer_the_pipelines() {
    let d = deps();
    onboarded(&d, "emily.chen");
    onboarded(&d, "svc-report");
    // The run dies once svc-report is deleted, before emily.chen is done:
    // svc-report's calls come first (names are checked in ticket order, the
    // fake runs users in order); cut at the first call of emily.chen's.
    let t = ticket(json!([{"user_name": "svc-report", "action": "delete"}, {"user_name": "emily.chen"}]));
    let svc_calls = {
        let alone = deps();
        onboarded(&alone, "svc-report");
        alone.handle_body(&ticket(json!([{"user_name": "svc-report", "action": "delete"}])), LEASE).await.unwrap();
        alone.iam.calls().len()
    };
    d.iam.fail_at(svc_calls);
    assert!(d.handle_body(&t, LEASE).await.is_err());
    assert!(d.iam.holdings_of("svc-report").is_none(), "{:?}", d.iam.calls());
    // Meanwhile someone strips emily.chen's managed tag.
    let mut h = d.iam.holdings_of("emily.chen").unwrap();
    h.tags.remove(MANAGED_TAG);
    d.iam.insert("emily.chen", h);
    let report = d.handle_body(&t, LEASE).await.unwrap();
    assert_eq!(report.done.len(), 1, "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].user_name, "emily.chen");
    assert_eq!(stage_of(&d, "svc-report").await, Some(Stage::Deleted));
    assert_eq!(stage_of(&d, "emily.chen").await, Some(Stage::Failed));
    assert!(d.iam.holdings_of("emily.chen").unwrap().login_profile, "a user no longer ours was changed");
    assert_eq!(d.mailer.outbox().len(), 1);
}

/// An offboarding ticket that reuses an onboarding ticket's id (ticket
/// systems number each kind apart) has records of its own: the onboarding's
/// `accepted` records neither count as a begun offboarding (which would
/// refuse users one by one instead of the whole ticket) nor make a missing
/// user "deleted by this ticket".
#[tokio::test]
async fn an_offboarding_reusing_an_onboarding_id_does_not_read_its_records() {
    let d = deps();
    onboarded(&d, "emily.chen");
    // ONB-1's own records: emily.chen done, dave accepted and not created yet.
    for (user, stage) in [("emily.chen", Stage::Notified), ("dave", Stage::Accepted)] {
        d.status.record(&StatusRecord::new("ONB-1", user, stage, None, NOW)).await.unwrap();
    }
    d.iam.insert("admin", loaded(&[]));
    let t =
        ticket(json!([{"user_name": "emily.chen"}, {"user_name": "admin"}, {"user_name": "dave", "action": "delete"}]))
            .replace("OFF-311", "ONB-1");
    let report = d.handle_body(&t, LEASE).await.unwrap();
    assert!(report.done.is_empty(), "the whole ticket is refused: {report:?}");
    assert!(d.iam.calls().is_empty(), "{:?}", d.iam.calls());
    let dave = report.refused.iter().find(|r| r.user_name == "dave").unwrap();
    assert!(dave.reasons.join(";").contains("there is no user \"dave\""), "{dave:?}");
    // The onboarding's records are as they were.
    let onb = d.status.for_ticket("ONB-1").await.unwrap();
    assert!(onb.iter().all(|r| r.stage != Stage::Failed), "{onb:?}");
    assert!(d.status.departure("dave", NOW).await.unwrap().is_none());
}
