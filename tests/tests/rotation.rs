//! rotate-keys against the emulator, on a fleet whose key ages come from the
//! injected clock (users are onboarded "days ago"), walked through the days
//! of a rotation: T, T+5, T+7, T+17. At each step a dry run reports exactly
//! what the real run then does, and a second run the same day does nothing.
#![recursion_limit = "256"]

use rotate_keys::{RotationRequest, RunSummary};
use serde_json::json;
use std::collections::BTreeSet;
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
