use super::*;
use shared::config::{FromEnv, DAY};
use shared::memory::*;

type Fakes = Deps<MemoryDirectory, MemoryIdempotency, MemoryPublisher, MemoryMailer, MemoryLedger, FixedClock>;
const NOW: u64 = 2_000 * DAY;

fn deps() -> Fakes {
    let config = RotateKeysConfig::from_lookup(|k| match k {
        "TABLE_NAME" | "NEXT_QUEUE_URL" => Some("x".into()),
        "SENDER_EMAIL" => Some("iam-provisioner@example.com".into()),
        _ => None,
    })
    .unwrap();
    Deps {
        directory: MemoryDirectory::default(),
        idempotency: MemoryIdempotency::default(),
        publisher: MemoryPublisher::default(),
        mailer: MemoryMailer::default(),
        ledger: MemoryLedger::default(),
        clock: FixedClock::at(NOW),
        config,
    }
}

/// A managed user with one key of the given age, known to the ledger.
async fn user(d: &Fakes, name: &str, age_days: u64, tags: &[(&str, &str)]) -> String {
    let mut all: BTreeMap<String, String> = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.entry(MANAGED_TAG.into()).or_insert_with(|| "true".into());
    d.directory.insert(
        IamUser {
            user_name: name.into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::1:user/{name}"),
            boundary: None,
            tags: all,
        },
        Permissions::default(),
    );
    let key = d.directory.create_access_key(name).await.unwrap();
    d.ledger
        .record_issued(&KeyRecord {
            user_name: name.into(),
            access_key_id: key.access_key_id.clone(),
            email: format!("{name}@example.com"),
            issued_at: NOW - age_days * DAY,
            replaces: None,
            warned_at: None,
            deactivated_at: None,
            deleted_at: None,
            rotation_deadline: None,
        })
        .await
        .unwrap();
    key.access_key_id
}

#[tokio::test]
async fn old_keys_get_one_successor_request_however_often_the_run_repeats() {
    let d = deps();
    let old = user(&d, "old", 91, &[]).await;
    user(&d, "young", 89, &[]).await;
    let first = d.run(&RotationRequest::default()).await.unwrap();
    assert_eq!(first.counts.get("rotate"), Some(&1));
    d.run(&RotationRequest::default()).await.unwrap();
    let asked: Vec<UserReady> = d.publisher.events();
    assert_eq!(asked.len(), 1);
    assert_eq!(*asked[0].user_name(), "old");
    let rotate = asked[0].replaces().cloned().unwrap();
    assert_eq!((rotate.access_key_id, rotate.deactivated_after), (old, NOW + 7 * DAY));
    assert!(asked[0].onboarding().is_none(), "a rotation, not an onboarding");
}

#[tokio::test]
async fn dry_run_reports_what_the_real_run_then_does_and_changes_nothing() {
    let d = deps();
    user(&d, "old", 120, &[]).await;
    user(&d, "young", 10, &[]).await;
    // The setup made keys; from here on, nothing may be written anywhere.
    let calls_before = d.directory.calls.lock().unwrap().len();
    let ledger_before = d.ledger.keys.lock().unwrap().clone();
    let dry = d.run(&RotationRequest { dry_run: true, ..Default::default() }).await.unwrap();
    assert!(d.publisher.events::<UserReady>().is_empty() && d.mailer.outbox().is_empty());
    let written = d.directory.calls.lock().unwrap()[calls_before..].to_vec();
    assert!(written.is_empty(), "dry run wrote to IAM: {written:?}");
    assert_eq!(*d.ledger.keys.lock().unwrap(), ledger_before, "dry run wrote the ledger");
    let young = dry.plans.iter().find(|p| p.user_name == "young").unwrap();
    assert_eq!(young.keys[0].next, Some(("rotate".into(), NOW + 80 * DAY)));
    let real = d.run(&RotationRequest::default()).await.unwrap();
    assert_eq!(dry.due(), real.due());
}

#[tokio::test]
async fn exempt_and_unmanaged_users_are_left_alone() {
    let d = deps();
    user(&d, "exempt", 200, &[("rotation-exempt", "true")]).await;
    user(&d, "outsider", 200, &[(MANAGED_TAG, "false")]).await;
    let summary = d.run(&RotationRequest::default()).await.unwrap();
    assert_eq!(summary.exempt, ["exempt"]);
    assert_eq!(summary.users, 1, "the unmanaged user is not counted");
    assert!(summary.counts.is_empty());
}

#[tokio::test]
async fn predecessor_is_warned_deactivated_and_deleted_on_schedule() {
    let d = deps();
    let old = user(&d, "u", 100, &[]).await;
    let new = d.directory.create_access_key("u").await.unwrap().access_key_id;
    let succ = KeyRecord {
        user_name: "u".into(),
        access_key_id: new.clone(),
        email: "u@example.com".into(),
        issued_at: NOW,
        replaces: Some(old.clone()),
        warned_at: None,
        deactivated_at: None,
        deleted_at: None,
        rotation_deadline: None,
    };
    d.ledger.record_issued(&succ).await.unwrap();
    let request = RotationRequest::default();
    let run = |days: u64| {
        d.clock.0.store(NOW + days * DAY, std::sync::atomic::Ordering::SeqCst);
        d.run(&request)
    };
    assert!(run(4).await.unwrap().counts.is_empty());
    assert_eq!(run(5).await.unwrap().counts.get("warn"), Some(&1));
    assert!(run(6).await.unwrap().counts.is_empty(), "warned once");
    let outbox = d.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].text.contains(&old) && outbox[0].subject.contains(&shared::text::date(NOW + 7 * DAY)));
    assert_eq!(run(7).await.unwrap().counts.get("deactivate"), Some(&1));
    assert!(d.directory.keys.lock().unwrap()["u"].iter().any(|(k, _)| k.access_key_id == old && !k.active));
    assert!(run(16).await.unwrap().counts.is_empty());
    assert_eq!(run(17).await.unwrap().counts.get("delete"), Some(&1));
    let left: Vec<String> =
        d.directory.keys.lock().unwrap()["u"].iter().map(|(k, _)| k.access_key_id.clone()).collect();
    assert_eq!(left, [new]);
}

#[tokio::test]
async fn a_key_used_after_its_successor_appeared_is_reported() {
    let d = deps();
    let old = user(&d, "u", 100, &[]).await;
    let new = d.directory.create_access_key("u").await.unwrap().access_key_id;
    let mut succ = d.ledger.keys_of("u").await.unwrap()[0].clone();
    succ.access_key_id = new;
    succ.issued_at = NOW - DAY;
    succ.replaces = Some(old.clone());
    d.ledger.record_issued(&succ).await.unwrap();
    d.directory.last_used.lock().unwrap().insert(old.clone(), NOW - 3600);
    let summary = d.run(&RotationRequest::default()).await.unwrap();
    assert_eq!(summary.plans[0].used_after_successor, [old]);
}

#[tokio::test]
async fn a_user_at_two_keys_is_skipped_with_a_reason_and_no_third_key() {
    let d = deps();
    user(&d, "two", 120, &[]).await;
    // A second key made outside the pipeline, 10 days ago.
    let other = d.directory.create_access_key("two").await.unwrap().access_key_id;
    for (k, _) in
        d.directory.keys.lock().unwrap().get_mut("two").unwrap().iter_mut().filter(|(k, _)| k.access_key_id == other)
    {
        k.created = NOW - 10 * DAY;
    }
    let summary = d.run(&RotationRequest::default()).await.unwrap();
    assert_eq!(summary.counts.get("skip"), Some(&1));
    assert!(d.publisher.events::<UserReady>().is_empty());
    let reason = serde_json::to_string(&summary.plans[0].keys).unwrap();
    assert!(reason.contains("two access keys"), "{reason}");
}

#[test]
fn a_scheduled_event_and_a_bare_request_are_both_accepted() {
    let scheduled = serde_json::json!({"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}});
    assert_eq!(RotationRequest::from_event(&scheduled).unwrap(), RotationRequest::default());
    let manual = serde_json::json!({"user_name": "u", "dry_run": true});
    assert_eq!(
        RotationRequest::from_event(&manual).unwrap(),
        RotationRequest { user_name: Some("u".into()), dry_run: true }
    );
    assert!(RotationRequest::from_event(&serde_json::json!({"dry_run": "yes"})).is_err());
}

#[tokio::test]
async fn a_run_cut_off_half_way_is_resumed_by_the_next() {
    let d = deps();
    let a = user(&d, "a", 120, &[]).await;
    let b = user(&d, "b", 120, &[]).await;
    for (name, old) in [("a", &a), ("b", &b)] {
        let new = d.directory.create_access_key(name).await.unwrap().access_key_id;
        let mut succ = d.ledger.keys_of(name).await.unwrap()[0].clone();
        (succ.access_key_id, succ.issued_at, succ.replaces) = (new, NOW - 8 * DAY, Some(old.clone()));
        d.ledger.record_issued(&succ).await.unwrap();
    }
    // IAM throttles the first deactivation: the run stops there.
    d.directory.fail_next("UpdateAccessKey", Error::retryable("UpdateAccessKey", "Throttling"));
    assert!(d.run(&RotationRequest::default()).await.unwrap_err().is_retryable());
    let resumed = d.run(&RotationRequest::default()).await.unwrap();
    assert_eq!(resumed.counts.get("deactivate"), Some(&2), "both still due: the first call failed");
    let after = d.run(&RotationRequest::default()).await.unwrap();
    assert!(after.counts.is_empty(), "nothing left: {:?}", after.counts);
}

/// A run that recorded a rotation in the ledger and died before asking for
/// the successor: the next day's run asks with the recorded deadline, the
/// one issue-credentials checks the message against.
#[tokio::test]
async fn a_rerun_asks_for_the_successor_with_the_deadline_already_recorded() {
    let d = deps();
    let old = user(&d, "old", 95, &[]).await;
    let recorded = NOW + 3 * DAY;
    let mut record = d.ledger.keys_of("old").await.unwrap().remove(0);
    record.rotation_deadline = Some(recorded);
    d.ledger.update(&record).await.unwrap();
    d.run(&RotationRequest::default()).await.unwrap();
    let asked: Vec<UserReady> = d.publisher.events();
    assert_eq!(asked.len(), 1);
    let rotate = asked[0].replaces().cloned().unwrap();
    assert_eq!((rotate.access_key_id, rotate.deactivated_after), (old, recorded));
}

/// A key the ledger does not hold was not issued by the pipeline: no
/// successor is asked for, and no ledger record is made up for it.
#[tokio::test]
async fn a_key_the_ledger_does_not_hold_is_not_rotated() {
    let d = deps();
    // The ledger knows an earlier key of the user, gone from IAM; the key
    // IAM has now was made outside the pipeline.
    user(&d, "old", 120, &[]).await;
    d.directory.keys.lock().unwrap().get_mut("old").unwrap().clear();
    d.directory.create_access_key("old").await.unwrap();
    let ledger_before = d.ledger.keys.lock().unwrap().clone();
    let summary = d.run(&RotationRequest::default()).await.unwrap();
    assert_eq!(summary.counts.get("rotate"), Some(&1), "the plan sees an old key");
    assert!(d.publisher.events::<UserReady>().is_empty(), "a successor was asked for a key the pipeline did not issue");
    assert_eq!(*d.ledger.keys.lock().unwrap(), ledger_before, "a ledger record was made up");
}
