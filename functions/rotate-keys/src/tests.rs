use super::*;
use serde_json::json;
use shared::config::{FromEnv, DAY};
use shared::memory::*;
use std::sync::atomic::{AtomicU64, Ordering};

type With<C> = Deps<MemoryDirectory, MemoryIdempotency, MemoryPublisher, MemoryMailer, MemoryLedger, C>;
type Fakes = With<FixedClock>;
const NOW: u64 = 2_000 * DAY;

fn config() -> RotateKeysConfig {
    RotateKeysConfig::from_lookup(|k| match k {
        "TABLE_NAME" | "NEXT_QUEUE_URL" => Some("x".into()),
        "SENDER_EMAIL" => Some("iam-provisioner@example.com".into()),
        _ => None,
    })
    .unwrap()
}

fn deps_with<C: Clock>(clock: C) -> With<C> {
    Deps {
        directory: MemoryDirectory::default(),
        idempotency: MemoryIdempotency::default(),
        publisher: MemoryPublisher::default(),
        mailer: MemoryMailer::default(),
        ledger: MemoryLedger::default(),
        clock,
        config: config(),
    }
}

fn deps() -> Fakes {
    deps_with(FixedClock::at(NOW))
}

/// An invocation with Lambda's 15 minutes ahead of it.
async fn invoke<C: Clock>(d: &With<C>, request: &RotationRequest) -> Result<RunSummary> {
    d.run(request, d.clock.now() + 900).await
}

fn set_day(d: &Fakes, days: u64) {
    d.clock.0.store(NOW + days * DAY, Ordering::SeqCst);
}

/// A managed user with one key of the given age, known to the ledger.
async fn user<C: Clock>(d: &With<C>, name: &str, age_days: u64, tags: &[(&str, &str)]) -> String {
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
        .record_issued(&KeyRecord::issued(
            name,
            &key.access_key_id,
            &format!("{name}@example.com"),
            NOW - age_days * DAY,
            None,
        ))
        .await
        .unwrap();
    key.access_key_id
}

#[tokio::test]
async fn old_keys_get_one_successor_request_however_often_the_run_repeats() {
    let d = deps();
    let old = user(&d, "old", 91, &[]).await;
    user(&d, "young", 89, &[]).await;
    let first = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(first.counts.get("rotate"), Some(&1));
    invoke(&d, &RotationRequest::default()).await.unwrap();
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
    let dry = invoke(&d, &RotationRequest { dry_run: true, ..Default::default() }).await.unwrap();
    assert!(d.publisher.events::<UserReady>().is_empty() && d.mailer.outbox().is_empty());
    let written = d.directory.calls.lock().unwrap()[calls_before..].to_vec();
    assert!(written.is_empty(), "dry run wrote to IAM: {written:?}");
    assert_eq!(*d.ledger.keys.lock().unwrap(), ledger_before, "dry run wrote the ledger");
    let young = dry.plans.iter().find(|p| p.user_name == "young").unwrap();
    assert_eq!(young.keys[0].next, Some(("rotate".into(), NOW + 80 * DAY)));
    let real = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(dry.due(), real.due());
}

#[tokio::test]
async fn exempt_and_unmanaged_users_are_left_alone() {
    let d = deps();
    user(&d, "exempt", 200, &[("rotation-exempt", "true")]).await;
    user(&d, "outsider", 200, &[(MANAGED_TAG, "false")]).await;
    let summary = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(summary.exempt, ["exempt"]);
    assert_eq!(summary.users, 1, "the unmanaged user is not counted");
    assert!(summary.counts.is_empty());
}

#[tokio::test]
async fn predecessor_is_warned_deactivated_and_deleted_on_schedule() {
    let d = deps();
    let old = user(&d, "u", 100, &[]).await;
    let new = d.directory.create_access_key("u").await.unwrap().access_key_id;
    let succ = KeyRecord::issued("u", &new, "u@example.com", NOW, Some(&old));
    d.ledger.record_issued(&succ).await.unwrap();
    let request = RotationRequest::default();
    let run = |days: u64| {
        set_day(&d, days);
        invoke(&d, &request)
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
    let summary = invoke(&d, &RotationRequest::default()).await.unwrap();
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
    let summary = invoke(&d, &RotationRequest::default()).await.unwrap();
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

/// Two users with predecessors past their grace; IAM throttles the first
/// deactivation. The other user is still done; the run says a retry is
/// pending, and the next invocation of the day retries only that user.
#[tokio::test]
async fn a_retryable_failure_of_one_user_does_not_stop_the_others_and_is_retried() {
    let d = deps();
    successors(&d, &["a", "b"], 8).await;
    d.directory.fail_next("UpdateAccessKey", Error::retryable("UpdateAccessKey", "Throttling"));
    let first = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(first.outcome, Outcome::RetryPending);
    assert_eq!(first.failed.iter().map(|f| (f.user_name.as_str(), f.retryable)).collect::<Vec<_>>(), [("a", true)]);
    assert_eq!(first.counts.get("deactivate"), Some(&1), "b was deactivated all the same");
    let resumed = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(resumed.plans.iter().map(|p| p.user_name.as_str()).collect::<Vec<_>>(), ["a"], "only a again");
    assert_eq!((resumed.outcome, resumed.counts.get("deactivate")), (Outcome::Done, Some(&1)));
    let after = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert!(after.counts.is_empty() && after.plans.is_empty(), "nothing left: {after:?}");
    let inactive = d.directory.calls.lock().unwrap().iter().filter(|c| c.starts_with("UpdateAccessKey")).count();
    assert_eq!(inactive, 2);
}

/// Each of `names` gets a managed user with a 120-day key and a successor
/// the ledger says was issued `succ_age_days` ago. Returns the old keys.
async fn successors<C: Clock>(d: &With<C>, names: &[&str], succ_age_days: u64) -> Vec<String> {
    let mut old = Vec::new();
    for name in names {
        let key = user(d, name, 120, &[]).await;
        let new = d.directory.create_access_key(name).await.unwrap().access_key_id;
        let mut succ = d.ledger.keys_of(name).await.unwrap()[0].clone();
        (succ.access_key_id, succ.issued_at, succ.replaces) = (new, NOW - succ_age_days * DAY, Some(key.clone()));
        d.ledger.record_issued(&succ).await.unwrap();
        old.push(key);
    }
    old
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
    invoke(&d, &RotationRequest::default()).await.unwrap();
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
    let summary = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(summary.counts.get("rotate"), Some(&1), "the plan sees an old key");
    assert!(d.publisher.events::<UserReady>().is_empty(), "a successor was asked for a key the pipeline did not issue");
    assert_eq!(*d.ledger.keys.lock().unwrap(), ledger_before, "a ledger record was made up");
}

/// What a run could have changed: IAM calls, successor requests, emails,
/// ledger records and run cursors.
fn writes(d: &Fakes) -> (usize, usize, usize, BTreeMap<(String, String), KeyRecord>, usize) {
    (
        d.directory.calls.lock().unwrap().len(),
        d.publisher.published.lock().unwrap().len(),
        d.mailer.outbox().len(),
        d.ledger.keys.lock().unwrap().clone(),
        d.ledger.cursor_saves.lock().unwrap().len(),
    )
}

/// `{"dryRun": true}` (a typo of `dry_run`) used to start a live run that
/// acted on whatever was due; so did a scheduled event whose detail did not
/// parse. Both are refused, naming the problem, and nothing is written.
#[tokio::test]
async fn a_misspelt_request_or_malformed_detail_is_refused_and_does_nothing() {
    let d = deps();
    user(&d, "due", 120, &[]).await;
    successors(&d, &["grace-over"], 8).await;
    let before = writes(&d);
    let scheduled = |detail: serde_json::Value| json!({"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": detail});
    for (payload, names) in [
        (json!({"dryRun": true}), "dryRun"),
        (scheduled(json!({"dryRun": true})), "dryRun"),
        (scheduled(json!("run please")), "detail"),
        (scheduled(json!({"dry_run": "yes"})), "detail"),
        (json!({"detail-type": "Scheduled Event"}), "no detail"),
        (json!({"user_name": "due", "dry_run": true, "force": true}), "force"),
        (json!(null), "payload"),
    ] {
        let err = d.handle(&payload, NOW + 900).await.unwrap_err();
        assert!(!err.is_retryable(), "{payload}: {err}");
        let message = err.to_string();
        assert!(message.contains(names) && message.contains("nothing was done"), "{payload}: {message}");
        assert!(writes(&d) == before, "{payload}: something was written");
    }
    // Still accepted: what the schedule, EventBridge and people send.
    for payload in [
        json!({}),
        json!({"dry_run": true}),
        json!({"user_name": "nobody"}),
        scheduled(json!({})),
        scheduled(json!({"dry_run": true})),
    ] {
        assert!(RotationRequest::from_event(&payload).is_ok(), "{payload}");
    }
    assert_eq!(
        RotationRequest::from_event(&scheduled(json!({"dry_run": true, "user_name": "u"}))).unwrap(),
        RotationRequest { user_name: Some("u".into()), dry_run: true }
    );
    // And the scheduled `{}` does run.
    assert_eq!(d.handle(&scheduled(json!({})), NOW + 900).await.unwrap().counts.get("rotate"), Some(&1));
}

/// SES refuses one user's warning for good: that user is recorded as
/// failed with the reason, the others are warned, and the ledger says
/// warned only for those whose email went.
#[tokio::test]
async fn one_users_permanent_failure_is_recorded_and_the_run_goes_on() {
    let mut d = deps();
    d.config.concurrency = 1;
    let old = successors(&d, &["a", "b", "c"], 5).await;
    d.mailer.fail_next(Error::permanent("SendEmail", "MessageRejected: Email address is not verified"));
    let summary = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Done, "nothing a retry would fix");
    assert_eq!(summary.failed.len(), 1);
    let failure = &summary.failed[0];
    assert_eq!((failure.user_name.as_str(), failure.retryable), ("a", false));
    assert!(failure.reason.contains("MessageRejected"), "{}", failure.reason);
    let warned: Vec<String> = d.mailer.outbox().iter().map(|e| e.to.clone()).collect();
    assert_eq!(warned, ["b@example.com", "c@example.com"]);
    assert_eq!(summary.counts.get("warn"), Some(&2));
    let ledger = d.ledger.keys.lock().unwrap().clone();
    let warned_at = |user: &str, key: &str| ledger[&(user.to_owned(), key.to_owned())].warned_at;
    assert_eq!(warned_at("a", &old[0]), None, "a's warning never went");
    assert_eq!((warned_at("b", &old[1]), warned_at("c", &old[2])), (Some(NOW), Some(NOW)));
    // The next day's run warns a (still due) and only a.
    set_day(&d, 1);
    let next = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(next.due(), [("a".to_owned(), old[0].clone(), "warn".to_owned())]);
    assert!(next.failed.is_empty());
}

/// No address to warn: no email goes, so the ledger records no warning.
#[tokio::test]
async fn warned_at_is_recorded_only_when_the_warning_went() {
    let d = deps();
    let old = successors(&d, &["mute"], 5).await;
    for record in d.ledger.keys.lock().unwrap().values_mut() {
        record.email.clear();
    }
    let summary = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(summary.counts.get("warn"), Some(&1), "due");
    assert!(d.mailer.outbox().is_empty());
    assert_eq!(d.ledger.keys.lock().unwrap()[&("mute".to_owned(), old[0].clone())].warned_at, None);
}

/// The idempotency store as the handler uses it, noting each lease asked for.
#[derive(Default)]
struct NotedLeases {
    inner: MemoryIdempotency,
    leases: std::sync::Mutex<Vec<(String, u64)>>,
}

impl IdempotencyStore for NotedLeases {
    async fn claim(&self, key: &str, hash: &str, now: u64, lease_until: u64, expires_at: u64) -> Result<Claim> {
        self.leases.lock().unwrap().push((key.to_owned(), lease_until));
        self.inner.claim(key, hash, now, lease_until, expires_at).await
    }
    async fn complete(&self, key: &str, hash: &str, result: &serde_json::Value, expires_at: u64) -> Result<()> {
        self.inner.complete(key, hash, result, expires_at).await
    }
    async fn release(&self, key: &str) -> Result<()> {
        self.inner.release(key).await
    }
}

/// Every lease ends at the invocation's deadline (not `now + 300`): a
/// killed invocation's work is taken over only once it is surely gone.
#[tokio::test]
async fn leases_end_at_the_invocations_deadline() {
    let base = deps();
    user(&base, "rotating", 100, &[]).await;
    successors(&base, &["warned"], 5).await;
    let d = Deps {
        directory: base.directory,
        idempotency: NotedLeases::default(),
        publisher: base.publisher,
        mailer: base.mailer,
        ledger: base.ledger,
        clock: base.clock,
        config: base.config,
    };
    let deadline = NOW + 777;
    d.run(&RotationRequest::default(), deadline).await.unwrap();
    let leases = d.idempotency.leases.lock().unwrap().clone();
    assert_eq!(leases.len(), 2, "the successor request and the warning: {leases:?}");
    assert!(leases.iter().all(|(_, until)| *until == deadline), "{leases:?}");
}

/// A predecessor IAM saw used after its successor was issued is not
/// deactivated when its grace ends: held (14 days by default), its owner
/// emailed once when the hold starts and once before it ends; deactivated
/// when the hold is over. An unused one beside it goes on time.
#[tokio::test]
async fn a_key_used_after_its_successor_is_held_then_deactivated() {
    let d = deps();
    // Successors issued today; deactivation due on day 7, the hold to day 21.
    let old = successors(&d, &["used", "unused"], 0).await;
    d.directory.last_used.lock().unwrap().insert(old[0].clone(), NOW + 3 * DAY);
    let update_calls = |d: &Fakes| {
        d.directory
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("UpdateAccessKey"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let notices = |d: &Fakes| -> Vec<String> {
        d.mailer
            .outbox()
            .into_iter()
            .filter(|e| {
                e.to == "used@example.com"
                    && (e.subject.contains("still in use") || e.subject.starts_with("Last notice"))
            })
            .map(|e| e.subject)
            .collect()
    };
    set_day(&d, 7);
    let day7 = invoke(&d, &RotationRequest::default()).await.unwrap();
    let actions: BTreeMap<String, String> = day7.due().into_iter().map(|(u, _, a)| (u, a)).collect();
    assert_eq!(actions, BTreeMap::from([("used".into(), "hold".into()), ("unused".into(), "deactivate".into())]));
    assert_eq!(update_calls(&d), [format!("UpdateAccessKey unused {} false", old[1])], "only the unused key");
    let until = shared::text::date(NOW + 21 * DAY);
    assert_eq!(notices(&d), [format!("Your old AWS access key is still in use; it stops working on {until}")]);
    let start = d.mailer.outbox().into_iter().find(|e| e.subject.contains("still in use")).unwrap();
    assert!(start.text.contains(&old[0]) && start.text.contains(&shared::text::date(NOW + 3 * DAY)), "{}", start.text);
    for day in [8, 18] {
        set_day(&d, day);
        invoke(&d, &RotationRequest::default()).await.unwrap();
    }
    assert_eq!(notices(&d).len(), 1, "the start notice went once");
    assert_eq!(update_calls(&d).len(), 1, "still held on day 18");
    for day in [19, 20] {
        set_day(&d, day);
        invoke(&d, &RotationRequest::default()).await.unwrap();
    }
    let sent = notices(&d);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1], format!("Last notice: your old AWS access key stops working on {until}"));
    set_day(&d, 21);
    let day21 = invoke(&d, &RotationRequest::default()).await.unwrap();
    assert_eq!(day21.counts.get("deactivate"), Some(&1));
    assert_eq!(update_calls(&d)[1], format!("UpdateAccessKey used {} false", old[0]));
    assert_eq!(
        d.ledger.keys.lock().unwrap()[&("used".to_owned(), old[0].clone())].deactivated_at,
        Some(NOW + 21 * DAY)
    );
}

/// A key whose successor is inactive or gone from IAM is the one its user
/// relies on: never deactivated, whatever its age or last use.
#[tokio::test]
async fn a_key_a_user_relies_on_alone_is_never_deactivated() {
    let d = deps();
    let old = successors(&d, &["inactive-successor", "successor-gone"], 0).await;
    for name in ["inactive-successor", "successor-gone"] {
        let mut keys = d.directory.keys.lock().unwrap();
        let list = keys.get_mut(name).unwrap();
        if name == "successor-gone" {
            list.retain(|(k, _)| old.contains(&k.access_key_id));
        } else {
            list.iter_mut().filter(|(k, _)| !old.contains(&k.access_key_id)).for_each(|(k, _)| k.active = false);
        }
    }
    for key in &old {
        d.directory.last_used.lock().unwrap().insert(key.clone(), NOW + DAY);
    }
    for day in [7, 21, 40, 400] {
        set_day(&d, day);
        invoke(&d, &RotationRequest::default()).await.unwrap();
    }
    let calls = d.directory.calls.lock().unwrap().clone();
    assert!(!calls.iter().any(|c| c.starts_with("UpdateAccessKey") || c.starts_with("DeleteAccessKey")), "{calls:?}");
}

/// A dry run neither writes the day's cursor nor follows it: a person who
/// asks for the plan after the day's run still sees every managed user.
#[tokio::test]
async fn a_dry_run_writes_no_cursor_and_plans_everyone() {
    let d = deps();
    user(&d, "old", 120, &[]).await;
    invoke(&d, &RotationRequest { dry_run: true, ..Default::default() }).await.unwrap();
    assert!(d.ledger.cursor_saves.lock().unwrap().is_empty());
    invoke(&d, &RotationRequest::default()).await.unwrap();
    let saves = d.ledger.cursor_saves.lock().unwrap().len();
    let dry = invoke(&d, &RotationRequest { dry_run: true, ..Default::default() }).await.unwrap();
    assert_eq!(dry.plans.len(), 1, "the plan after today's run showed nobody");
    assert_eq!(d.ledger.cursor_saves.lock().unwrap().len(), saves);
}

/// A clock that moves a second each time it is read: the run's work
/// takes time, so an injected deadline cuts invocations off.
struct Ticking(AtomicU64);

impl Clock for Ticking {
    fn now(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// IAM's 5,000 users, each with a key due for rotation, and invocations
/// cut off by their deadline: the run is resumed by invocation after
/// invocation until done, each user planned exactly once and given one
/// successor; a later invocation of the day does nothing.
#[tokio::test]
async fn five_thousand_users_over_cut_off_invocations_are_each_planned_once() {
    let d = deps_with(Ticking(AtomicU64::new(NOW)));
    for i in 0..5_000 {
        user(&d, &format!("user{i:04}"), 91, &[]).await;
    }
    let mut planned: BTreeMap<String, usize> = BTreeMap::new();
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations <= 50, "no progress");
        let deadline = d.clock.now() + RESERVE_SECS + 300;
        let summary = d.run(&RotationRequest::default(), deadline).await.unwrap();
        assert!(summary.failed.is_empty(), "{:?}", summary.failed);
        for p in &summary.plans {
            *planned.entry(p.user_name.clone()).or_default() += 1;
        }
        match summary.outcome {
            Outcome::Done => break,
            Outcome::CutOff => assert!(summary.resume_after.is_some()),
            Outcome::RetryPending => panic!("nothing failed"),
        }
    }
    assert!(invocations >= 3, "the deadline cut the run {invocations} times");
    assert_eq!(planned.len(), 5_000);
    let twice: Vec<_> = planned.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "planned more than once: {twice:?}");
    let asked: Vec<UserReady> = d.publisher.events();
    let users: std::collections::BTreeSet<String> = asked.iter().map(|r| r.user_name().to_string()).collect();
    assert_eq!((asked.len(), users.len()), (5_000, 5_000), "one successor per user");
    let later = d.run(&RotationRequest::default(), d.clock.now() + 900).await.unwrap();
    assert!(later.plans.is_empty() && later.outcome == Outcome::Done);
}

/// The lines whose top-level `alarm` is `alarm`: what the template's
/// metric filter `{ $.alarm = "<alarm>" }` counts.
fn alarms(log: &LogCapture, alarm: &str) -> Vec<serde_json::Value> {
    log.text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["alarm"] == alarm)
        .collect()
}

/// The two alarms the template's metric filters count, with the facts an
/// operator needs: the held key, its user and its last use; the failed
/// user and why.
#[tokio::test]
async fn held_keys_and_failed_users_are_logged_for_their_alarms() {
    let log = LogCapture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().json().flatten_event(true).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut d = deps();
    d.config.concurrency = 1;
    let old = successors(&d, &["held", "refused"], 0).await;
    d.directory.last_used.lock().unwrap().insert(old[0].clone(), NOW + 3 * DAY);
    set_day(&d, 5);
    // The warning of "refused" (the second email of the run) is refused.
    d.mailer.fail_next_after(1, Error::permanent("SendEmail", "MessageRejected"));
    invoke(&d, &RotationRequest::default()).await.unwrap();
    let failed = alarms(&log, "rotation_user_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["user"], "refused");
    assert!(failed[0]["error"].as_str().unwrap().contains("MessageRejected"), "{}", failed[0]);
    set_day(&d, 7);
    invoke(&d, &RotationRequest::default()).await.unwrap();
    let held = alarms(&log, "rotated_key_still_used");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!((held[0]["user"].as_str(), held[0]["access_key_id"].as_str()), (Some("held"), Some(old[0].as_str())));
    assert_eq!(held[0]["last_used"], NOW + 3 * DAY);
    assert_eq!(held[0]["last_used_date"], shared::text::date(NOW + 3 * DAY));
}
