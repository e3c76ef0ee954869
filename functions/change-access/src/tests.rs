use super::*;
use serde_json::json;
use shared::memory::*;
use shared::ticket::{MANAGED_TAG, TICKET_TAG};

pub(crate) type Fakes = Deps<MemoryAccess, MemoryIdempotency, MemoryStatus, MemoryMailer, FixedClock>;

const LEASE: u64 = 2_000_000_000;
const NOW: u64 = 1_764_028_800; // 2025-11-25
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";

pub(crate) fn deps() -> Fakes {
    Deps {
        iam: MemoryAccess::default(),
        idempotency: MemoryIdempotency::default(),
        status: MemoryStatus::default(),
        mailer: MemoryMailer::default(),
        clock: FixedClock::at(NOW),
        config: ChangeAccessConfig {
            table_name: "t".into(),
            sender: "iam-provisioner@example.com".into(),
            allow: test_allow_list().access(),
            idempotency_ttl_secs: 86_400,
            concurrency: 4,
        },
    }
}

fn holding(groups: &[&str], policies: &[&str]) -> Permissions {
    Permissions {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        managed_policies: policies.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

/// A user onboarded by ONB-1, as create-user leaves it: the tags and the
/// hand-off record; holding `access`.
fn onboarded(d: &Fakes, name: &str, access: Permissions) {
    let handoff = accepted(json!({
        "ticket_id": "ONB-1", "requested_by": "it-ops@example.com",
        "users": [{"user_name": name, "email": format!("{name}@example.com"), "access": {"programmatic": true}}]
    }));
    d.status.insert_handoff(&handoff[0]);
    d.iam.insert(name, access);
    d.iam.set_tags(name, &[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1")]);
}

/// emily.chen in Developers with PowerUserAccess; raj.k in Power_Users and a
/// group no ticket may name.
fn two_users(d: &Fakes) {
    onboarded(d, "emily.chen", holding(&["Developers"], &[POWER_USER]));
    onboarded(d, "raj.k", holding(&["Power_Users", "Other"], &[]));
}

fn ticket(id: &str, users: serde_json::Value) -> String {
    json!({
        "source": "onboarding.tickets", "detail-type": "Access Change Approved",
        "detail": {"ticket_id": id, "requested_by": "it-ops@example.com", "users": users}
    })
    .to_string()
}

/// emily.chen from Developers to ReadOnly, PowerUserAccess for
/// ReadOnlyAccess (4 calls); raj.k from Power_Users to Developers (2). No
/// two calls alike, so a call made twice shows.
fn chg_77() -> String {
    ticket(
        "CHG-77",
        json!([
            {"user_name": "emily.chen", "add_groups": ["ReadOnly"], "remove_groups": ["Developers"],
             "attach_policies": [READ_ONLY], "detach_policies": [POWER_USER]},
            {"user_name": "raj.k", "add_groups": ["Developers"], "remove_groups": ["Power_Users"]}
        ]),
    )
}

fn ends_as_asked(d: &Fakes, context: &str) {
    assert_eq!(d.iam.access_held("emily.chen").unwrap(), holding(&["ReadOnly"], &[READ_ONLY]), "{context}");
    assert_eq!(d.iam.access_held("raj.k").unwrap(), holding(&["Other", "Developers"], &[]), "{context}");
}

async fn status_of(d: &Fakes, ticket_id: &str, user: &str) -> Option<StatusRecord> {
    d.status.for_ticket(&format!("access-change#{ticket_id}")).await.unwrap().into_iter().find(|r| r.user_name == user)
}

#[tokio::test]
async fn a_two_user_change_is_made_recorded_and_told_once() {
    let d = deps();
    two_users(&d);
    let report = d.handle_body(&chg_77(), LEASE).await.unwrap();
    assert!(report.refused.is_empty(), "{report:?}");
    ends_as_asked(&d, "first run");
    // Removals first, each user's calls as made.
    let calls: Vec<Vec<AccessStep>> = report.done.iter().map(|u| u.calls.clone()).collect();
    let arn = |s: &str| shared::names::PolicyArn::parse(s).unwrap();
    assert_eq!(
        calls,
        [
            vec![
                AccessStep::RemoveUserFromGroup("Developers".into()),
                AccessStep::DetachUserPolicy(arn(POWER_USER)),
                AccessStep::AddUserToGroup("ReadOnly".into()),
                AccessStep::AttachUserPolicy(arn(READ_ONLY)),
            ],
            vec![
                AccessStep::RemoveUserFromGroup("Power_Users".into()),
                AccessStep::AddUserToGroup("Developers".into())
            ],
        ]
    );

    let emily = status_of(&d, "CHG-77", "emily.chen").await.unwrap();
    assert_eq!(emily.stage, Stage::AccessChanged);
    let said = emily.reason.unwrap();
    assert_eq!(said, format!("in ReadOnly; no longer in Developers; {READ_ONLY} attached; {POWER_USER} detached"));
    let raj = status_of(&d, "CHG-77", "raj.k").await.unwrap();
    assert_eq!(
        (raj.stage, raj.reason.as_deref()),
        (Stage::AccessChanged, Some("in Developers; no longer in Power_Users"))
    );

    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].to, "it-ops@example.com");
    assert_eq!(outbox[0].subject, "Access change ticket CHG-77: 2 user(s) changed, 0 refused");
    assert!(outbox[0].text.contains(&format!("- emily.chen: {said}\n")), "{}", outbox[0].text);
    assert!(outbox[0].text.contains("- raj.k: in Developers; no longer in Power_Users\n"), "{}", outbox[0].text);
    assert!(outbox[0].html.contains("<b>raj.k</b>"), "{}", outbox[0].html);
}

/// Users that are not the pipeline's: no managed tag, the tag without the
/// records' say-so, no such user. The whole ticket is refused, nothing in
/// IAM changes, every reason is told.
#[tokio::test]
async fn a_user_the_pipeline_did_not_create_refuses_the_ticket_and_nothing_changes() {
    let d = deps();
    two_users(&d);
    // Tagged as if onboarded by ONB-1, but the records hold no such user.
    d.iam.insert("forged", holding(&["Developers"], &[]));
    d.iam.set_tags("forged", &[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1")]);
    // Someone else's user: no tag at all.
    d.iam.insert("admin", holding(&["Developers"], &[]));
    let names = ["emily.chen", "raj.k", "forged", "admin"];
    let before: Vec<_> = names.iter().map(|n| d.iam.access_held(n)).collect();
    let users: Vec<_> = names
        .iter()
        .chain(["nobody"].iter())
        .map(|n| json!({"user_name": n, "add_groups": ["ReadOnly"], "remove_groups": ["Developers"]}))
        .collect();
    let report = d.handle_body(&ticket("CHG-80", json!(users)), LEASE).await.unwrap();
    assert!(report.done.is_empty(), "{report:?}");
    assert!(d.iam.calls().is_empty(), "a refused ticket changed IAM: {:?}", d.iam.calls());
    assert_eq!(names.iter().map(|n| d.iam.access_held(n)).collect::<Vec<_>>(), before);
    let reasons: BTreeMap<_, _> = report.refused.iter().map(|r| (r.user_name.as_str(), r.reasons.join("; "))).collect();
    assert!(reasons["forged"].contains("records hold no such user"), "{reasons:?}");
    assert!(reasons["admin"].contains("not created by iam-provisioner"), "{reasons:?}");
    assert!(reasons["nobody"].contains("no user \"nobody\""), "{reasons:?}");
    assert!(reasons["emily.chen"].contains("refused as a whole"), "{reasons:?}");
    for n in names {
        assert_eq!(status_of(&d, "CHG-80", n).await.map(|r| r.stage), Some(Stage::Failed), "{n}");
    }
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].subject, "Access change ticket CHG-80: refused, nothing was changed");
    for reason in ["records hold no such user", "not created by iam-provisioner", "no user \"nobody\""] {
        assert!(outbox[0].text.contains(reason), "{reason} not told: {}", outbox[0].text);
    }
}

/// A group off the allow-list (to add or to remove) refuses the ticket, and
/// the same email also names the users that are not the pipeline's: every
/// reason at once.
#[tokio::test]
async fn an_allow_list_breach_refuses_the_ticket_with_every_reason() {
    let d = deps();
    two_users(&d);
    d.iam.insert("admin", holding(&["Administrators"], &[]));
    let t = ticket(
        "CHG-81",
        json!([
            {"user_name": "emily.chen", "add_groups": ["Admins"]},
            {"user_name": "raj.k", "remove_groups": ["Other"], "attach_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"]},
            {"user_name": "admin", "remove_groups": ["Developers"]}
        ]),
    );
    let report = d.handle_body(&t, LEASE).await.unwrap();
    assert!(report.done.is_empty() && d.iam.calls().is_empty(), "{report:?}");
    let reasons: BTreeMap<_, _> = report.refused.iter().map(|r| (r.user_name.as_str(), r.reasons.join("; "))).collect();
    assert!(reasons["emily.chen"].contains("users[0].add_groups: group \"Admins\" is not on"), "{reasons:?}");
    assert!(reasons["raj.k"].contains("users[1].remove_groups: group \"Other\" is not on"), "{reasons:?}");
    assert!(reasons["raj.k"].contains("AdministratorAccess\" is not on"), "{reasons:?}");
    assert!(reasons["admin"].contains("users[2].user_name: user \"admin\" was not created"), "{reasons:?}");
    assert_eq!(d.iam.access_held("raj.k").unwrap(), holding(&["Power_Users", "Other"], &[]));
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].subject.contains("refused, nothing was changed"), "{}", outbox[0].subject);
    for reason in ["\"Admins\" is not on", "\"Other\" is not on", "AdministratorAccess", "\"admin\" was not created"] {
        assert!(outbox[0].text.contains(reason), "{reason} not told: {}", outbox[0].text);
    }
}

#[tokio::test]
async fn a_replay_changes_nothing_and_sends_nothing() {
    let d = deps();
    two_users(&d);
    let first = d.handle_body(&chg_77(), LEASE).await.unwrap();
    let calls = d.iam.calls().len();
    let again = d.handle_body(&chg_77(), LEASE).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(d.iam.calls().len(), calls, "a replay made a call");
    assert_eq!(d.mailer.outbox().len(), 1, "a replay sent an email");
    // The same change in a new ticket: found as asked, nothing to call; the
    // new ticket's requester is told.
    let later = d.handle_body(&chg_77().replace("CHG-77", "CHG-78"), LEASE).await.unwrap();
    assert_eq!(d.iam.calls().len(), calls, "a change already made was made again");
    assert!(later.done.iter().all(|u| u.calls.is_empty()) && later.done.len() == 2, "{later:?}");
    ends_as_asked(&d, "after CHG-78");
    assert_eq!(d.mailer.outbox().len(), 2);
}

/// Cut off at each IAM call of the ticket (and at the email), then
/// delivered again: always ends as asked, both users recorded, one email,
/// and no IAM call made twice.
#[tokio::test]
async fn cut_off_at_any_call_the_redelivery_finishes_the_ticket() {
    let total = {
        let d = deps();
        two_users(&d);
        d.handle_body(&chg_77(), LEASE).await.unwrap();
        d.iam.calls().len()
    };
    assert_eq!(total, 6);
    for n in 0..=total {
        let d = deps();
        two_users(&d);
        if n < total {
            d.iam.fail_at(n);
        } else {
            d.mailer.fail_next(Error::retryable("SendEmail", "connection reset (injected)"));
        }
        assert!(d.handle_body(&chg_77(), LEASE).await.is_err(), "cut at {n}: not retried");
        assert!(d.mailer.outbox().is_empty(), "cut at {n}: told before done");
        // The other user's calls are made meanwhile (one user's failure does
        // not stop another's change); all of them when the email is cut.
        assert_eq!(d.iam.calls().len() == total, n == total, "cut at {n}");
        let report = d.handle_body(&chg_77(), LEASE).await.unwrap();
        assert_eq!(report.done.len(), 2, "cut at {n}: {report:?}");
        ends_as_asked(&d, &format!("cut at {n}"));
        for user in ["emily.chen", "raj.k"] {
            let stage = status_of(&d, "CHG-77", user).await.map(|r| r.stage);
            assert_eq!(stage, Some(Stage::AccessChanged), "cut at {n}: {user}");
        }
        assert_eq!(d.mailer.outbox().len(), 1, "cut at {n}");
        assert!(d.mailer.outbox()[0].subject.contains("2 user(s) changed, 0 refused"), "cut at {n}");
        let calls = d.iam.calls();
        let unique: std::collections::BTreeSet<&String> = calls.iter().collect();
        assert_eq!((unique.len(), calls.len()), (total, total), "cut at {n}: a call made twice: {calls:?}");
    }
}

/// A ticket cut off after it changed one user, whose other user stops
/// being the pipeline's before the redelivery: the changed user is reported
/// as changed, the other refused alone and left as it is; the requester is
/// not told "nothing was changed".
#[tokio::test]
async fn a_begun_ticket_refuses_only_the_user_no_longer_the_pipelines() {
    let d = deps();
    two_users(&d);
    d.iam.fail_at(4);
    assert!(d.handle_body(&chg_77(), LEASE).await.is_err());
    d.iam.set_tags("raj.k", &[]);
    let report = d.handle_body(&chg_77(), LEASE).await.unwrap();
    assert_eq!(report.done.iter().map(|u| u.user_name.as_str()).collect::<Vec<_>>(), ["emily.chen"]);
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(report.refused[0].reasons[0].contains("not created by iam-provisioner"), "{report:?}");
    assert_eq!(d.iam.access_held("raj.k").unwrap(), holding(&["Power_Users", "Other"], &[]));
    assert_eq!(d.iam.calls().len(), 4);
    assert_eq!(status_of(&d, "CHG-77", "raj.k").await.map(|r| r.stage), Some(Stage::Failed));
    assert_eq!(status_of(&d, "CHG-77", "emily.chen").await.map(|r| r.stage), Some(Stage::AccessChanged));
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].subject, "Access change ticket CHG-77: 1 user(s) changed, 1 refused");
}

#[tokio::test]
async fn another_kind_of_ticket_or_a_bad_one_is_refused_and_changes_nothing() {
    let d = deps();
    two_users(&d);
    let offboarding = chg_77().replace("Access Change Approved", "Offboarding Ticket Approved");
    let report = d.handle_body(&offboarding, LEASE).await.unwrap();
    assert!(report.refused[0].reasons[0].contains("envelope"), "{report:?}");
    assert!(report.refused[0].reasons[0].contains("Access Change Approved"), "{report:?}");
    assert_eq!(status_of(&d, "CHG-77", "-").await.map(|r| r.stage), Some(Stage::Failed));
    let misspelt = ticket("CHG-90", json!([{"user_name": "raj.k", "remove_group": ["Power_Users"]}]));
    let report = d.handle_body(&misspelt, LEASE).await.unwrap();
    assert!(report.refused[0].reasons[0].contains("users[0]"), "{report:?}");
    assert!(report.refused[0].reasons[0].contains("remove_group"), "{report:?}");
    let nothing = ticket("CHG-91", json!([{"user_name": "raj.k"}]));
    let report = d.handle_body(&nothing, LEASE).await.unwrap();
    assert!(report.refused[0].reasons[0].contains("asks for no change"), "{report:?}");
    assert!(d.iam.calls().is_empty());
    assert_eq!(d.mailer.outbox().len(), 3, "each requester told");
    // By hand, as `make invoke` sends it: the envelope itself.
    let by_hand: serde_json::Value = serde_json::from_str(&chg_77()).unwrap();
    let out = d.handle_event(by_hand, LEASE).await.unwrap();
    assert_eq!(out["done"].as_array().map(Vec::len), Some(2), "{out}");
    ends_as_asked(&d, "by hand");
}

/// An offboarded user is not given access back by an access change: that is
/// a restore, an administrator's (and the daily run would then keep the
/// user for ever as restored). The ticket is refused, nothing changes.
#[tokio::test]
async fn an_offboarded_user_is_refused_and_keeps_what_it_has() {
    let d = deps();
    two_users(&d);
    d.iam.set_tags(
        "raj.k",
        &[
            (MANAGED_TAG, "true"),
            (TICKET_TAG, "ONB-1"),
            (shared::lifecycle::OFFBOARDED_TAG, "OFF-9"),
            (shared::lifecycle::OFFBOARDED_ON_TAG, "2026-11-01"),
        ],
    );
    let report = d.handle_body(&chg_77(), LEASE).await.unwrap();
    assert!(report.done.is_empty(), "{report:?}");
    assert!(d.iam.calls().is_empty(), "{:?}", d.iam.calls());
    let raj = report.refused.iter().find(|r| r.user_name == "raj.k").expect("raj.k refused");
    assert!(raj.reasons.join("; ").contains("disabled by ticket OFF-9 on 2026-11-01"), "{raj:?}");
}
