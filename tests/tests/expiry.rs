//! An onboarding user's `expires_on` against the emulator (CONTRACT.md 6,
//! Expiry): what an accepted one leaves in IAM and the user's emails, and
//! that a ticket with a day that is not one, or not after today, changes
//! nothing and tells its requester every such day at once.
#![recursion_limit = "256"]

use serde_json::{json, Value};
use shared::date::Date;
use shared::ports::{Clock, Stage};
use shared::ticket::EXPIRES_ON_TAG;
use tests::{unique, Harness};

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

#[tokio::test]
async fn an_accepted_expiry_is_the_created_users_tag_and_in_their_welcome_emails() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let (temp, staff) = (format!("temp{s}"), format!("staff{s}"));
    let ends = Date::today(&h.pipeline.clock).add_days(30);
    let mut contractor = user(&temp, true, true);
    contractor["expires_on"] = json!(ends.to_string());
    contractor["tags"] = json!({"team": "audit"});
    let drained = h.run(&ticket(&id, vec![contractor, user(&staff, false, true)])).await;
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "{drained:?}");

    // IAM, read back: the tag beside the ticket's and the pipeline's own.
    assert_eq!(
        tags_of(&h, &temp).await,
        [
            (EXPIRES_ON_TAG.to_owned(), ends.to_string()),
            ("iam-provisioner:managed".to_owned(), "true".to_owned()),
            ("iam-provisioner:ticket".to_owned(), id.clone()),
            ("team".to_owned(), "audit".to_owned()),
        ]
    );
    assert!(tags_of(&h, &staff).await.iter().all(|(k, _)| k != EXPIRES_ON_TAG), "no expiry asked for");
    // The user's secret is tagged like the user (CONTRACT.md 3), the day too.
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let secret = format!("{}{temp}", h.pipeline.env.settings.secret_prefix);
    let described = sm.describe_secret().secret_id(&secret).send().await.unwrap();
    let day = described.tags().iter().find(|t| t.key() == Some(EXPIRES_ON_TAG)).and_then(|t| t.value());
    assert_eq!(day, Some(ends.to_string().as_str()), "{:?}", described.tags());
    assert!(h.statuses(&id).await.iter().all(|r| r.stage == Stage::Notified), "{:?}", h.statuses(&id).await);

    // SES: the sign-in and access-key emails say when; the password one does not.
    let sent = tests::sent_emails(&h.endpoint);
    let to_temp: Vec<_> = sent.iter().filter(|m| m.is_to(&format!("{temp}@example.com"))).collect();
    assert_eq!(to_temp.len(), 3);
    let note = format!("Your AWS access ends on {ends} (UTC)");
    let telling: Vec<&str> = to_temp.iter().filter(|m| m.body.contains(&note)).map(|m| m.subject.as_str()).collect();
    assert_eq!(telling.len(), 2, "{telling:?}");
    assert!(!telling.contains(&"Your AWS console password"), "{telling:?}");
    let to_staff = sent.iter().filter(|m| m.is_to(&format!("{staff}@example.com")));
    assert!(to_staff.clone().count() == 1 && to_staff.clone().all(|m| !m.body.contains("access ends")));
}

#[tokio::test]
async fn a_day_that_is_not_one_or_not_after_today_changes_nothing_and_the_requester_reads_why() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let (leap, today, fine) = (format!("leap{s}"), format!("today{s}"), format!("fine{s}"));
    let mut not_a_day = user(&leap, true, false);
    not_a_day["expires_on"] = json!("2027-02-29");
    let mut ends_today = user(&today, false, true);
    let day = Date::from_epoch(h.pipeline.clock.now());
    ends_today["expires_on"] = json!(day.to_string());
    let mut later = user(&fine, false, true);
    later["expires_on"] = json!(day.add_days(1).to_string());
    let before = h.user_names_lower().await;
    let drained = h.run(&ticket(&id, vec![not_a_day, ends_today, later])).await;
    assert_eq!((drained.handled, drained.retried, drained.dead_lettered), (1, 0, 0), "refused once, not retried");

    // IAM: not one user more (of this test's: others run beside it), and
    // nothing handed on.
    let after = h.user_names_lower().await;
    let mine = |n: &&String| n.contains(&s.to_lowercase()) && !before.contains(n);
    assert_eq!(after.iter().filter(mine).count(), 0, "IAM was changed");
    assert!(h.pipeline.take_handoffs().await.unwrap().is_empty());
    // DynamoDB: every user failed, each with its own reason or held back.
    let statuses = h.statuses(&id).await;
    assert_eq!(statuses.len(), 3);
    assert!(statuses.iter().all(|r| r.stage == Stage::Failed), "{statuses:?}");
    let reason = |name: &str| statuses.iter().find(|r| r.user_name == name).and_then(|r| r.reason.clone());
    assert!(reason(&leap).unwrap().contains("users[0].expires_on"));
    assert!(reason(&today).unwrap().contains(&format!("users[1].expires_on: {day} is not after today")));
    assert!(reason(&fine).unwrap().contains("refused as a whole"));

    // SES: one email to the requester, listing both days.
    let requester = format!("req-{}@example.com", id.to_lowercase());
    let sent = tests::sent_emails(&h.endpoint);
    let mail: Vec<_> = sent.iter().filter(|m| m.is_to(&requester)).collect();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].subject.contains("refused, nothing was created"), "{}", mail[0].subject);
    for expect in [
        "users[0].expires_on: \"2027-02-29\" is not a day of the calendar: month 02 of 2027 has 28 days".to_owned(),
        format!("users[1].expires_on: {day} is not after today ({day}, UTC)"),
    ] {
        assert!(mail[0].body.contains(&shared::text::html_escape(&expect)), "{expect:?} not in:\n{}", mail[0].body);
    }
}

/// An expiry walked through with the injected clock, on the emulator: the
/// daily run warns the user and the requester 7 days before (once, however
/// often it runs), disables the user on the day as an offboarding would, and
/// deletes it after the retention period, secret scheduled for deletion; a
/// user given access back after its disable is left alone and reported.
#[tokio::test]
async fn an_expiry_is_warned_disabled_and_deleted_by_the_daily_run() {
    let proxy = tests::proxy::FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    proxy.fill_moto_gaps();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let id = format!("ONB-{s}");
    let (temp, back) = (format!("temp{s}"), format!("back{s}"));
    let ends = Date::today(&h.pipeline.clock).add_days(10);
    let mut users = vec![user(&temp, true, true), user(&back, false, true)];
    for u in &mut users {
        u["expires_on"] = json!(ends.to_string());
        u["groups"] = json!(["Developers"]);
    }
    let drained = h.run(&ticket(&id, users)).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    let pipeline = &h.pipeline;
    let daily = |days: i64| {
        pipeline.clock.set_offset_days(days);
        async move { pipeline.offboard_user.run_daily(pipeline.clock.now() + 900).await.expect("daily run") }
    };
    let mine = |names: &[String]| names.iter().filter(|n| n.ends_with(&s)).cloned().collect::<Vec<_>>();

    assert!(mine(&daily(2).await.warned).is_empty(), "warned 8 days before");
    assert_eq!(mine(&daily(3).await.warned), [back.clone(), temp.clone()]);
    daily(3).await;
    daily(4).await;
    let warnings: Vec<(String, String)> = h
        .pipeline
        .emails_sent()
        .into_iter()
        .filter(|(_, subject)| subject.contains(&format!("as {temp} ends on")))
        .collect();
    assert_eq!(warnings.len(), 2, "the user and the requester, once each: {warnings:?}");
    assert!(h.iam.get_login_profile().user_name(&temp).send().await.is_ok(), "a warning changed IAM");

    let run = daily(10).await;
    assert_eq!(mine(&run.disabled), [back.clone(), temp.clone()]);
    assert!(h.iam.get_login_profile().user_name(&temp).send().await.is_err(), "console password left");
    assert!(h.groups_of(&temp).await.is_empty());
    let tags = tags_of(&h, &temp).await;
    assert!(tags.contains(&("iam-provisioner:offboarded".to_owned(), format!("EXPIRY-{ends}"))), "{tags:?}");
    let statuses = h.statuses(&format!("daily#EXPIRY-{ends}")).await;
    assert!(statuses.iter().filter(|r| r.user_name.ends_with(&s)).all(|r| r.stage == Stage::Disabled), "{statuses:?}");

    // An administrator gives one of them its group back.
    h.iam.add_user_to_group().user_name(&back).group_name("Developers").send().await.unwrap();
    assert!(mine(&daily(39).await.deleted).is_empty(), "deleted before the retention period");
    let run = daily(40).await;
    assert_eq!(mine(&run.deleted), [temp.as_str()]);
    assert_eq!(mine(&run.restored), [back.as_str()]);
    assert!(h.iam.get_user().user_name(&temp).send().await.is_err(), "the expired user is still there");
    assert_eq!(h.groups_of(&back).await, ["Developers"], "a restored user was touched");
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let secret = format!("{}{temp}", h.pipeline.env.settings.secret_prefix);
    let described = sm.describe_secret().secret_id(&secret).send().await.expect("kept while recoverable");
    assert!(described.deleted_date().is_some(), "the secret is not scheduled for deletion");
    let requester = format!("req-{}@example.com", id.to_lowercase());
    let told: Vec<String> = h
        .pipeline
        .emails_sent()
        .into_iter()
        .filter(|(to, subject)| to == &requester && subject.contains(&temp))
        .map(|(_, subject)| subject)
        .collect();
    assert_eq!(told.len(), 3, "warned, ended, deleted: {told:?}");
}
