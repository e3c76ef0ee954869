//! rotate-keys against the emulator, on a fleet whose key ages come from the
//! injected clock (users are onboarded "days ago"), walked through the days
//! of a rotation: T, T+5, T+7, T+17. At each step a dry run reports exactly
//! what the real run then does, and a second run the same day does nothing.
#![recursion_limit = "256"]

use rotate_keys::{Outcome, RotationRequest, RunSummary};
use serde_json::json;
use shared::ports::{Clock, KeyLedger, RotationRuns};
use std::collections::{BTreeMap, BTreeSet};
use tests::proxy::FaultProxy;
use tests::{unique, Harness};

struct Fleet {
    h: Harness,
    /// user name by key age in days
    by_age: Vec<(u64, String)>,
    exempt: String,
    unmanaged: String,
    two_keys: String,
}

fn onboard(name: &str, path: &str, tags: serde_json::Value) -> serde_json::Value {
    json!({
        "ticket_id": format!("ROT-{name}"),
        "requested_by": "it@example.com",
        "users": [{"user_name": name, "email": format!("{name}@example.com"), "access": {"programmatic": true}, "path": path, "tags": tags}]
    })
}

async fn fleet() -> Fleet {
    let path = format!("/{}/", unique("rot"));
    let p = path.clone();
    let h = Harness::with(move |s| s.user_path_prefix = p).await;
    let mut by_age = Vec::new();
    for age in [10u64, 89, 91, 98, 120] {
        let name = unique(&format!("age{age}-"));
        h.pipeline.clock.set_offset_days(-(age as i64));
        h.run(&onboard(&name, &path, json!({}))).await;
        by_age.push((age, name));
    }
    h.pipeline.clock.set_offset_days(-120);
    let exempt = unique("exempt-");
    h.run(&onboard(&exempt, &path, json!({"rotation-exempt": "true"}))).await;
    let two_keys = unique("two-");
    h.pipeline.clock.set_offset_days(-100);
    h.run(&onboard(&two_keys, &path, json!({}))).await;
    h.pipeline.clock.set_offset_days(0);
    // A second key made by hand, outside the pipeline.
    h.iam.create_access_key().user_name(&two_keys).send().await.unwrap();
    // Not the pipeline's: same path, an access key, no managed tag.
    let unmanaged = unique("outsider-");
    h.iam.create_user().user_name(&unmanaged).path(&path).send().await.unwrap();
    h.iam.create_access_key().user_name(&unmanaged).send().await.unwrap();
    Fleet { h, by_age, exempt, unmanaged, two_keys }
}

impl Fleet {
    fn name(&self, age: u64) -> &str {
        &self.by_age.iter().find(|(a, _)| *a == age).unwrap().1
    }

    /// (key id, active) of a user's keys, sorted.
    async fn keys(&self, user: &str) -> Vec<(String, bool)> {
        let out = self.h.iam.list_access_keys().user_name(user).send().await.unwrap();
        let mut keys: Vec<_> = out
            .access_key_metadata()
            .iter()
            .map(|k| {
                (k.access_key_id().unwrap().to_owned(), k.status() == Some(&aws_sdk_iam::types::StatusType::Active))
            })
            .collect();
        keys.sort();
        keys
    }

    async fn all_keys(&self) -> Vec<Vec<(String, bool)>> {
        let mut all = Vec::new();
        for user in
            self.by_age.iter().map(|(_, n)| n.as_str()).chain([self.exempt.as_str(), &self.unmanaged, &self.two_keys])
        {
            all.push(self.keys(user).await);
        }
        all
    }

    /// Dry run, then the real run, then the real run again, on day `day`.
    /// Returns what was due, as (user, action) pairs.
    async fn day(&self, day: i64) -> BTreeSet<(String, String)> {
        self.h.pipeline.clock.set_offset_days(day);
        let before = self.all_keys().await;
        let (dry, _) = self.h.pipeline.rotate(&RotationRequest { dry_run: true, ..Default::default() }).await.unwrap();
        assert_eq!(self.all_keys().await, before, "day {day}: the dry run changed keys");
        let (real, drained) = self.h.pipeline.rotate(&RotationRequest::default()).await.unwrap();
        assert_eq!(drained.dead_lettered, 0, "day {day}: {drained:?}");
        assert_eq!(dry.due(), real.due(), "day {day}: dry run and real run differ");
        let after = self.all_keys().await;
        let (again, _) = self.h.pipeline.rotate(&RotationRequest::default()).await.unwrap();
        assert_eq!(self.all_keys().await, after, "day {day}: a second run changed keys");
        assert_eq!(acting(&again), BTreeSet::new(), "day {day}: a second run had work");
        real.due().into_iter().map(|(user, _, action)| (user, action)).collect()
    }
}

/// What a run did that changes something (skips change nothing).
fn acting(summary: &RunSummary) -> BTreeSet<(String, String)> {
    summary.due().into_iter().filter(|(_, _, a)| a != "skip").map(|(u, _, a)| (u, a)).collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(u, a)| (u.to_string(), a.to_string())).collect()
}

#[tokio::test]
async fn fleet_is_rotated_warned_deactivated_and_deleted_exactly_on_schedule() {
    let f = fleet().await;
    let (a10, a89, a91, a98, a120) = (f.name(10), f.name(89), f.name(91), f.name(98), f.name(120));
    let originals: Vec<String> = futures_keys(&f, &[a91, a98, a120]).await;
    let exempt_keys = f.keys(&f.exempt).await;
    let outsider_keys = f.keys(&f.unmanaged).await;

    // Day T: the three keys past 90 days get successors; the user at two
    // keys is skipped with a reason, and gets no third key.
    let due = f.day(0).await;
    assert_eq!(due, expect(&[(a91, "rotate"), (a98, "rotate"), (a120, "rotate"), (&f.two_keys, "skip")]));
    for user in [a91, a98, a120] {
        assert_eq!(f.keys(user).await.len(), 2, "{user}: predecessor and successor");
    }
    assert_eq!(f.keys(a10).await.len(), 1);
    assert_eq!(f.keys(a89).await.len(), 1);
    assert_eq!(f.keys(&f.two_keys).await.len(), 2);
    // The secret's new version holds the successor; the previous one stays readable.
    let sm = aws_sdk_secretsmanager::Client::new(&f.h.sdk);
    let secret_id = format!("{}{a120}", f.h.pipeline.env.settings.secret_prefix);
    let current = sm.get_secret_value().secret_id(&secret_id).send().await.unwrap();
    let previous = sm.get_secret_value().secret_id(&secret_id).version_stage("AWSPREVIOUS").send().await.unwrap();
    let key_of = |s: Option<&str>| {
        serde_json::from_str::<serde_json::Value>(s.unwrap()).unwrap()["access_key_id"].as_str().unwrap().to_owned()
    };
    assert_eq!(key_of(previous.secret_string()), originals[2]);
    let successor = key_of(current.secret_string());
    assert_ne!(successor, originals[2]);
    assert!(f.keys(a120).await.iter().any(|(k, active)| *k == successor && *active));
    let sent = tests::sent_emails(&f.h.endpoint);
    let rotated: Vec<_> = sent
        .iter()
        .filter(|m| m.is_to(&format!("{a120}@example.com")) && m.subject == "Your AWS access key was rotated")
        .collect();
    assert_eq!(rotated.len(), 1);
    assert!(rotated[0].body.contains(&successor) && rotated[0].body.contains(&originals[2]));

    // T+5: the predecessors are two days from deactivation: warned. The
    // 89-day key is now 94: rotated.
    let due = f.day(5).await;
    assert_eq!(due, expect(&[(a91, "warn"), (a98, "warn"), (a120, "warn"), (a89, "rotate"), (&f.two_keys, "skip")]));
    let sent = tests::sent_emails(&f.h.endpoint);
    assert_eq!(
        sent.iter()
            .filter(|m| m.is_to(&format!("{a98}@example.com")) && m.subject.starts_with("Your old AWS access key"))
            .count(),
        1
    );

    // T+7: grace over: deactivated, not deleted.
    let due = f.day(7).await;
    assert_eq!(due, expect(&[(a91, "deactivate"), (a98, "deactivate"), (a120, "deactivate"), (&f.two_keys, "skip")]));
    for (user, original) in [a91, a98, a120].into_iter().zip(&originals) {
        assert!(f.keys(user).await.contains(&(original.clone(), false)), "{user}: predecessor inactive");
    }

    // T+17: ten days after deactivation: deleted. The 89-day key's
    // predecessor (successor since T+5) is past its grace: deactivated.
    let due = f.day(17).await;
    assert_eq!(
        due,
        expect(&[(a91, "delete"), (a98, "delete"), (a120, "delete"), (a89, "deactivate"), (&f.two_keys, "skip")])
    );
    for user in [a91, a98, a120] {
        let keys = f.keys(user).await;
        assert_eq!(keys.len(), 1, "{user}");
        assert!(keys[0].1 && !originals.contains(&keys[0].0), "{user}: only the active successor is left");
    }
    // Never touched: the 10-day key (now 27), the exempt and the unmanaged users.
    assert_eq!(f.keys(a10).await.len(), 1);
    assert_eq!(f.keys(&f.exempt).await, exempt_keys);
    assert_eq!(f.keys(&f.unmanaged).await, outsider_keys);
}

async fn futures_keys(f: &Fleet, users: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for u in users {
        out.push(f.keys(u).await[0].0.clone());
    }
    out
}

/// A harness looking for users under a path of its own, and its path.
async fn harness_under(prefix: &str, endpoint: Option<&str>, concurrency: usize) -> (Harness, String) {
    let path = format!("/{}/", unique(prefix));
    let p = path.clone();
    let adjust = move |s: &mut tests::bootstrap::Settings| {
        s.user_path_prefix = p;
        s.concurrency = concurrency;
    };
    let h = match endpoint {
        Some(endpoint) => Harness::at(endpoint, adjust).await,
        None => Harness::with(adjust).await,
    };
    (h, path)
}

/// Users onboarded `age_days` ago under `path`.
async fn onboarded(h: &Harness, path: &str, prefix: &str, n: usize, age_days: i64) -> Vec<String> {
    h.pipeline.clock.set_offset_days(-age_days);
    let mut names = Vec::new();
    for _ in 0..n {
        let name = unique(prefix);
        let drained = h.run(&onboard(&name, path, json!({}))).await;
        assert_eq!(drained.dead_lettered, 0, "{drained:?}");
        names.push(name);
    }
    h.pipeline.clock.set_offset_days(0);
    names
}

async fn key_status(h: &Harness, user: &str) -> Vec<(String, bool)> {
    let out = h.iam.list_access_keys().user_name(user).send().await.unwrap();
    let mut keys: Vec<_> = out
        .access_key_metadata()
        .iter()
        .map(|k| (k.access_key_id().unwrap().to_owned(), k.status() == Some(&aws_sdk_iam::types::StatusType::Active)))
        .collect();
    keys.sort();
    keys
}

/// `{"dryRun": true}` (a typo of `dry_run`) and a scheduled event whose
/// detail is not a request are refused, and nothing changes in IAM, the
/// ledger, the queue or SES, though a key is due for rotation.
#[tokio::test]
async fn a_misspelt_request_or_malformed_detail_changes_nothing() {
    let (h, path) = harness_under("rotbad", None, 4).await;
    let names = onboarded(&h, &path, "due-", 1, 120).await;
    let name = &names[0];
    let ledger = shared::aws::StateTable::new(&h.sdk, &h.pipeline.env.table).ledger();
    let keys_before = key_status(&h, name).await;
    let ledger_before = ledger.keys_of(name).await.unwrap();
    let to_user =
        || tests::sent_emails(&h.endpoint).into_iter().filter(|m| m.is_to(&format!("{name}@example.com"))).count();
    let emails_before = to_user();
    let deadline = h.pipeline.clock.now() + 900;
    for payload in [
        json!({"dryRun": true}),
        json!({"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": "rotate"}),
        json!({"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {"dryRun": true}}),
    ] {
        let err = h.pipeline.rotate_keys.handle(&payload, deadline).await.unwrap_err();
        assert!(err.to_string().contains("nothing was done"), "{payload}: {err}");
    }
    let drained = h.pipeline.drain().await.unwrap();
    assert_eq!((drained.handled, drained.dead_lettered), (0, 0), "nothing was queued: {drained:?}");
    assert_eq!(key_status(&h, name).await, keys_before);
    assert_eq!(ledger.keys_of(name).await.unwrap(), ledger_before);
    assert_eq!(to_user(), emails_before, "no email to the user");
    let today = shared::text::date(h.pipeline.clock.now());
    assert_eq!(ledger.cursor(&today).await.unwrap(), None, "no run was started");
    // The same, spelt right: planned (and, as asked, not done).
    let dry = h.pipeline.rotate_keys.handle(&json!({"dry_run": true}), deadline).await.unwrap();
    assert_eq!(dry.due().into_iter().map(|(u, _, a)| (u, a)).collect::<Vec<_>>(), [(name.clone(), "rotate".into())]);
    assert_eq!(key_status(&h, name).await, keys_before);
}

/// Invocations whose deadline is already near: each plans one group of
/// users (BATCH_CONCURRENCY 1 here) and saves the cursor; the next resumes
/// after it, until the run is done. Every user is planned once and gets
/// one successor; a later invocation of the day does nothing.
#[tokio::test]
async fn a_run_cut_off_by_its_deadline_is_resumed_and_plans_each_user_once() {
    let (h, path) = harness_under("rotcut", None, 1).await;
    let names = onboarded(&h, &path, "cut-", 4, 91).await;
    // Under the path too, but not the pipeline's: listed, never planned.
    let outsider = unique("outsider-");
    h.iam.create_user().user_name(&outsider).path(&path).send().await.unwrap();
    let mut planned: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcomes = Vec::new();
    loop {
        assert!(outcomes.len() < 10, "no progress: {outcomes:?}");
        // As good as out of time: one group, then stop.
        let deadline = h.pipeline.clock.now();
        let summary = h.pipeline.rotate_keys.run(&RotationRequest::default(), deadline).await.unwrap();
        assert!(summary.failed.is_empty(), "{:?}", summary.failed);
        for p in &summary.plans {
            *planned.entry(p.user_name.clone()).or_default() += 1;
        }
        outcomes.push(summary.outcome);
        if summary.outcome == Outcome::Done {
            break;
        }
        assert_eq!(summary.outcome, Outcome::CutOff);
    }
    assert_eq!(outcomes.len(), 5, "one invocation per listed user: {outcomes:?}");
    let expected: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 1)).collect();
    assert_eq!(planned, expected, "each managed user planned exactly once");
    let drained = h.pipeline.drain().await.unwrap();
    // One successor request each, and its notification: 4 + 4 messages.
    assert_eq!((drained.handled, drained.dead_lettered), (8, 0), "{drained:?}");
    for name in &names {
        assert_eq!(key_status(&h, name).await.len(), 2, "{name}: predecessor and successor");
    }
    let later = h.pipeline.rotate_keys.run(&RotationRequest::default(), h.pipeline.clock.now() + 900).await.unwrap();
    assert!(later.plans.is_empty() && later.outcome == Outcome::Done, "{later:?}");
}

/// IAM's answer to GetAccessKeyLastUsed: `key` of `user` last used at `iso`.
fn last_used_xml(user: &str, iso: &str) -> String {
    format!(
        "<GetAccessKeyLastUsedResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><GetAccessKeyLastUsedResult>\
         <UserName>{user}</UserName><AccessKeyLastUsed><LastUsedDate>{iso}</LastUsedDate><ServiceName>s3</ServiceName>\
         <Region>us-east-1</Region></AccessKeyLastUsed></GetAccessKeyLastUsedResult>\
         <ResponseMetadata><RequestId>canned</RequestId></ResponseMetadata></GetAccessKeyLastUsedResponse>"
    )
}

/// A predecessor IAM saw used three days after its successor was issued:
/// at the end of its grace it is held, not deactivated, and its owner is
/// told once; before the hold ends (14 days) told again, once; then it is
/// deactivated. An unused predecessor beside it goes on time. moto stamps
/// last use with the wall clock, so the proxy answers GetAccessKeyLastUsed.
#[tokio::test]
async fn a_key_seen_in_use_after_its_successor_is_held_and_its_owner_told() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let (h, path) = harness_under("rothold", Some(&proxy.endpoint), 4).await;
    let names = onboarded(&h, &path, "hold-", 2, 100).await;
    let (used, unused) = (&names[0], &names[1]);
    let old_used = key_status(&h, used).await[0].0.clone();
    let old_unused = key_status(&h, unused).await[0].0.clone();
    let (_, drained) = h.pipeline.rotate(&RotationRequest::default()).await.unwrap();
    assert_eq!((drained.handled, drained.dead_lettered), (4, 0), "2 successors, 2 notifications: {drained:?}");
    let day3 = format!("{}T12:00:00Z", shared::text::date(h.pipeline.clock.now() + 3 * 86_400));
    proxy.answer("GetAccessKeyLastUsed", &old_used, last_used_xml(used, &day3));
    let notices = || -> Vec<String> {
        tests::sent_emails(&h.endpoint)
            .into_iter()
            .filter(|m| m.is_to(&format!("{used}@example.com")))
            .filter(|m| m.subject.contains("still in use") || m.subject.starts_with("Last notice"))
            .map(|m| m.subject)
            .collect()
    };
    let request = RotationRequest::default();
    let on_day = |day: i64| {
        h.pipeline.clock.set_offset_days(day);
        h.pipeline.rotate(&request)
    };
    let (day7, _) = on_day(7).await.unwrap();
    let due: BTreeSet<(String, String)> = day7.due().into_iter().map(|(u, _, a)| (u, a)).collect();
    assert_eq!(due, BTreeSet::from([(used.clone(), "hold".into()), (unused.clone(), "deactivate".into())]));
    assert!(key_status(&h, used).await.contains(&(old_used.clone(), true)), "held: still active");
    assert!(key_status(&h, unused).await.contains(&(old_unused.clone(), false)), "unused: deactivated");
    assert_eq!(
        day7.plans.iter().find(|p| &p.user_name == used).unwrap().used_after_successor,
        std::slice::from_ref(&old_used)
    );
    assert_eq!(notices().len(), 1, "the hold's start told: {:?}", notices());
    on_day(8).await.unwrap();
    assert_eq!(notices().len(), 1, "told once");
    on_day(19).await.unwrap();
    on_day(20).await.unwrap();
    let sent = notices();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().any(|s| s.starts_with("Last notice")), "{sent:?}");
    assert!(key_status(&h, used).await.contains(&(old_used.clone(), true)), "held to the end");
    let (day21, drained) = on_day(21).await.unwrap();
    assert_eq!(drained.dead_lettered, 0);
    assert_eq!(day21.counts.get("deactivate"), Some(&1));
    assert!(key_status(&h, used).await.contains(&(old_used.clone(), false)), "deactivated after the hold");
}
