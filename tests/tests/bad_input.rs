//! The bad-input corpus (tests/corpus/bad-tickets.json): each ticket is
//! refused with its reason, recorded as failed, its requester told, and
//! nothing in IAM changes. This binary has its own emulator, so "nothing
//! changes" is checked on the whole account.
#![recursion_limit = "256"]

use serde_json::Value;
use shared::ports::Stage;
use std::collections::BTreeMap;
use tests::{unique, Harness};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    expect: String,
    #[serde(default)]
    ticket: Option<Value>,
    #[serde(default)]
    raw: Option<String>,
}

/// Every user with its tags, groups and attached policies.
async fn account(h: &Harness) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for u in h.iam.list_users().send().await.unwrap().users() {
        let name = u.user_name();
        let tags = h.iam.list_user_tags().user_name(name).send().await.unwrap();
        let groups = h.iam.list_groups_for_user().user_name(name).send().await.unwrap();
        let policies = h.iam.list_attached_user_policies().user_name(name).send().await.unwrap();
        let keys = h.iam.list_access_keys().user_name(name).send().await.unwrap();
        state.insert(
            name.to_owned(),
            format!(
                "{:?} {:?} {:?} {}",
                tags.tags(),
                groups.groups().len(),
                policies.attached_policies(),
                keys.access_key_metadata().len()
            ),
        );
    }
    state
}

/// The requester the pipeline may write to: a plausible address in the
/// deployment's domains.
fn requester(body: &str, domains: &std::collections::BTreeSet<String>) -> Option<String> {
    shared::ticket::best_effort_requester(body, domains).map(String::from)
}

#[tokio::test]
async fn every_bad_ticket_is_refused_with_its_reason_and_changes_nothing() {
    let h = Harness::new().await;
    let s = unique("");
    let tests::ExistingUsers { unmanaged, other_ticket, admin_template, inline_template } =
        tests::ExistingUsers::create(&h.iam, &s).await;
    let before = account(&h).await;

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bad-tickets.json")).unwrap();
    let mut cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    // Generated: a payload of over a megabyte.
    cases.push(Case {
        name: "huge-payload".into(),
        expect: "unknown field `notes`".into(),
        ticket: Some(serde_json::json!({
            "ticket_id": "BAD-{case}-{s}", "requested_by": "req-{case}@example.com",
            "users": [{"user_name": "u1{s}", "email": "u1@example.com", "access": {"console": true}}],
            "notes": "x".repeat(1 << 20)
        })),
        raw: None,
    });
    assert!(cases.len() >= 60, "the corpus has {} tickets", cases.len());
    let fill = |t: &str, case: &str| {
        t.replace("{case}", case)
            .replace("{s}", &s)
            .replace("{unmanaged_upper}", &unmanaged.to_uppercase())
            .replace("{unmanaged}", &unmanaged)
            .replace("{other_ticket}", &other_ticket)
            .replace("{admin_template}", &admin_template)
            .replace("{inline_template}", &inline_template)
    };
    let lease = shared::ports::Clock::now(&shared::ports::SystemClock) + 300;
    let mut told = Vec::new();
    for case in &cases {
        let body = match (&case.raw, &case.ticket) {
            (Some(raw), _) => fill(raw, &case.name),
            (None, Some(t)) => fill(&serde_json::to_string(t).unwrap(), &case.name),
            (None, None) => panic!("{}: no ticket", case.name),
        };
        let report =
            h.pipeline.create_user.handle_body(&body, lease).await.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert!(report.created.is_empty(), "{}: created {:?}", case.name, report.created);
        let statuses = h.statuses(&report.ticket_id).await;
        assert!(!statuses.is_empty(), "{}: nothing recorded under {}", case.name, report.ticket_id);
        assert!(statuses.iter().all(|r| r.stage == Stage::Failed), "{}: {statuses:?}", case.name);
        let reasons: Vec<&str> = statuses.iter().filter_map(|r| r.reason.as_deref()).collect();
        assert!(
            reasons.iter().any(|r| r.contains(&case.expect)),
            "{}: {:?} not in {reasons:?}",
            case.name,
            case.expect
        );
        assert!(
            !reasons.iter().any(|r| r.contains("hunter2") || r.contains("Winter2026!")),
            "{}: a password was echoed",
            case.name
        );
        if let Some(to) = requester(&body, &h.pipeline.env.settings.allow.email_domains) {
            told.push((case.name.clone(), case.expect.clone(), to));
        }
    }
    assert_eq!(account(&h).await, before, "IAM changed");
    assert!(h.pipeline.take_handoffs().await.unwrap().is_empty(), "a refused ticket was handed on");

    let sent = tests::sent_emails(&h.endpoint);
    for (case, expect, to) in &told {
        let mail: Vec<_> = sent.iter().filter(|m| m.is_to(to)).collect();
        assert_eq!(mail.len(), 1, "{case}: one email to {to}");
        assert!(mail[0].body.contains(&shared::text::html_escape(expect)), "{case}: email lacks {expect:?}");
    }
    assert!(told.len() >= 60, "only {} requesters were told", told.len());
    let domains = &h.pipeline.env.settings.allow.email_domains;
    for m in &sent {
        let to: Vec<String> = serde_json::from_value(m.destinations["ToAddresses"].clone()).unwrap_or_default();
        assert!(!to.is_empty(), "an email without recipients: {:?}", m.destinations);
        for address in to {
            let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            assert!(domains.contains(domain), "emailed {address}, outside {domains:?}");
        }
    }
    println!("bad-input corpus: {} tickets refused, {} requesters told, IAM unchanged", cases.len(), told.len());
}
