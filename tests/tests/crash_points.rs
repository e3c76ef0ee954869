//! Crash points: a ticket is run once undisturbed, counting every call the
//! stages make to AWS; then, for each of those calls, a fresh run in which
//! that call is where the stage dies, its message redelivered. Twice over:
//! the stage sees an error at that call (and cleans up), and the stage is
//! killed there (dropped mid-call: no cleanup, its lease left to run out).
//! Every run must end in the same state as the undisturbed one: same users,
//! groups, policies, login profiles, one key each, one secret version, each
//! email once, same status records.
#![recursion_limit = "256"]

use std::sync::Arc;
use tests::proxy::{Fault, FaultProxy};
use tests::{unique, Harness};

/// One run on the deployment of `h`, with a pipeline of its own (its own
/// clock, kill switch and email log).
async fn run(
    h: &mut Harness,
    proxy: &FaultProxy,
    crash: Option<(usize, Fault)>,
) -> (Vec<String>, tests::pipeline::Drained) {
    let sdk = tests::sdk_config(&proxy.endpoint).await;
    h.pipeline = tests::pipeline::LocalPipeline::new(&sdk, h.pipeline.env.clone());
    h.pipeline.kill_switch = Some(Arc::clone(&proxy.kill_switch));
    let s = unique("");
    let (t, names) = tests::two_user_ticket("CRASH", &s);
    match crash {
        Some((n, fault)) => proxy.crash_at(n, fault),
        None => proxy.crash_at(usize::MAX, Fault::Reset),
    }
    let drained = h.run(&t).await;
    (h.state(&s, &names).await, drained)
}

#[tokio::test]
async fn a_stage_dying_at_any_call_ends_in_the_undisturbed_state() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    // One record and one user at a time, so that the n-th call is the same
    // call in every run. With BATCH_CONCURRENCY above 1 a kill stops each
    // record in flight at one of these same points; what that adds is only
    // that several emails can be at "accepted by SES, not yet recorded" at
    // once (see RELIABILITY.md).
    let mut h = Harness::at(&proxy.endpoint, |s| s.concurrency = 1).await;
    let (baseline, _) = run(&mut h, &proxy, None).await;
    let calls = proxy.stage_calls();
    let stage_log: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|c| !tests::proxy::DRIVER_ACTIONS.iter().any(|d| c.rsplit(':').next() == Some(*d)))
        .collect();
    let stage_log = &stage_log[stage_log.len() - calls..];
    assert!(calls > 30, "only {calls} stage calls counted");
    assert!(baseline.iter().any(|l| l.contains("keys 1 secret versions 1")), "{baseline:#?}");
    // Every point with CRASH_POINTS_STRIDE=1 (make crash-points); a third of
    // them, spread over every stage, in make test.
    let stride: usize = std::env::var("CRASH_POINTS_STRIDE").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut report = Vec::new();
    let mut email_twice = Vec::new();
    for (mode, fault) in [("error", Fault::Reset), ("kill", Fault::Hang)] {
        // Sampling: the two modes take different points.
        let offset = if stride > 1 { usize::from(fault == Fault::Hang) } else { 0 };
        for n in (offset..calls).step_by(stride) {
            let (got, drained) = run(&mut h, &proxy, Some((n, fault))).await;
            assert_eq!(drained.dead_lettered, 0, "{mode} at call {n} ({}): {drained:?}", stage_log[n]);
            if fault == Fault::Hang {
                assert_eq!(drained.killed, 1, "{mode} at call {n}: the stage was not killed");
            }
            // Killed after SES accepted an email and before that was
            // recorded: the retry cannot know, and SES has no idempotency
            // key, so that one email goes twice. Nothing else may differ.
            let after_send = fault == Fault::Hang && n > 0 && stage_log[n - 1] == "ses:SendEmail";
            if after_send && got != baseline {
                let twice: Vec<&String> = got.iter().filter(|l| !baseline.contains(l)).collect();
                assert_eq!(twice.len(), 1, "kill at {n}: {got:#?}");
                assert!(
                    twice[0].ends_with(" x2") && baseline.contains(&twice[0].replace(" x2", " x1")),
                    "kill at {n}: {twice:?}"
                );
                email_twice.push(n);
                continue;
            }
            assert_eq!(got, baseline, "{mode} at stage call {n} of {calls} ({})", stage_log[n]);
        }
        report.push(format!("{mode}: {} points", (offset..calls).step_by(stride).count()));
    }
    println!(
        "crash points: {calls} stage calls, {} (emails sent twice when killed right after SES accepted them: {})",
        report.join(", "),
        email_twice.len()
    );
}

/// What offboarding leaves: per user whether it exists and, if so, what lets
/// it in or grants it anything and its offboarded tags; the secret's
/// scheduled deletion; the MFA devices left; status records; emails.
async fn offboarding_state(h: &Harness, s: &str, ticket_id: &str, names: &[String]) -> Vec<String> {
    let iam = &h.iam;
    let norm = |x: &str| x.replace(s, "<s>");
    let mut out = Vec::new();
    for name in names {
        let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
        let secret = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
        let pending = sm.describe_secret().secret_id(&secret).send().await.map(|d| d.deleted_date().is_some());
        if iam.get_user().user_name(name).send().await.is_err() {
            out.push(format!("{}: missing, secret pending deletion {pending:?}", norm(name)));
            continue;
        }
        let profile = iam.get_login_profile().user_name(name).send().await.is_ok();
        let keys = iam.list_access_keys().user_name(name).send().await.unwrap();
        let mut statuses: Vec<String> = keys
            .access_key_metadata()
            .iter()
            .map(|k| k.status().map(|s| s.as_str().to_owned()).unwrap_or_default())
            .collect();
        statuses.sort();
        let tags = iam.list_user_tags().user_name(name).send().await.unwrap();
        let mut tags: Vec<String> = tags
            .tags()
            .iter()
            .filter(|t| t.key().contains("offboarded"))
            .map(|t| format!("{}={}", t.key(), norm(t.value())))
            .collect();
        tags.sort();
        let inline = iam.list_user_policies().user_name(name).send().await.unwrap().policy_names().len();
        let mfa = iam.list_mfa_devices().user_name(name).send().await.unwrap().mfa_devices().len();
        out.push(format!(
            "{}: profile {profile} keys {statuses:?} groups {:?} policies {:?} inline {inline} mfa {mfa} tags {tags:?} secret pending deletion {pending:?}",
            norm(name),
            h.groups_of(name).await,
            h.attached_to(name).await,
        ));
    }
    let left: Vec<String> = tests::virtual_mfa_serials(iam, false)
        .await
        .into_iter()
        .filter(|d| names.iter().any(|n| d.ends_with(n.as_str())))
        .map(|d| norm(&d))
        .collect();
    out.push(format!("virtual MFA devices left: {left:?}"));
    for r in h.statuses(&format!("offboarding#{ticket_id}")).await {
        out.push(format!("status {} {:?}", norm(&r.user_name), r.stage));
    }
    let mut emails: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for (to, subject) in h.pipeline.emails_sent() {
        if subject.contains(ticket_id) {
            *emails.entry((norm(&to), norm(&subject))).or_default() += 1;
        }
    }
    out.extend(emails.into_iter().map(|((to, subject), n)| format!("email {to} {subject:?} x{n}")));
    out
}

/// An offboarding run on the deployment of `h`: two users onboarded
/// undisturbed and given an MFA device, a second key, an inline policy and
/// a managed policy; then the offboarding ticket (one disable, one delete),
/// with the stage dying at call `n` of it.
async fn offboarding_run(
    h: &mut Harness,
    proxy: &FaultProxy,
    crash: Option<(usize, Fault)>,
) -> (Vec<String>, tests::pipeline::Drained, Vec<String>) {
    let sdk = tests::sdk_config(&proxy.endpoint).await;
    h.pipeline = tests::pipeline::LocalPipeline::new(&sdk, h.pipeline.env.clone());
    h.pipeline.kill_switch = Some(Arc::clone(&proxy.kill_switch));
    proxy.crash_at(usize::MAX, Fault::Reset);
    let s = unique("");
    let (t, names) = tests::two_user_ticket("ONBX", &s);
    let onboarded = h.run(&t).await;
    assert_eq!(onboarded.dead_lettered, 0, "{onboarded:?}");
    let iam = &h.iam;
    // What moto lacks (service-specific credentials, MFA device tags), as IAM answers it.
    proxy.fill_moto_gaps();
    for name in &names {
        let mfa = iam.create_virtual_mfa_device().virtual_mfa_device_name(name.as_str()).send().await.unwrap();
        let serial = mfa.virtual_mfa_device().unwrap().serial_number().to_owned();
        iam.enable_mfa_device()
            .user_name(name)
            .serial_number(serial)
            .authentication_code1("123456")
            .authentication_code2("654321")
            .send()
            .await
            .unwrap();
    }
    let keys = &names[1];
    iam.create_access_key().user_name(keys).send().await.unwrap();
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    iam.put_user_policy().user_name(keys).policy_name("legacy").policy_document(doc).send().await.unwrap();
    iam.attach_user_policy().user_name(keys).policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess").send().await.unwrap();
    let ticket_id = format!("OFFX-{s}");
    let ticket = serde_json::json!({
        "source": "onboarding.tickets", "detail-type": "Offboarding Ticket Approved",
        "detail": {"ticket_id": ticket_id, "requested_by": format!("req{s}@example.com"),
                   "users": [{"user_name": names[0], "action": "disable"}, {"user_name": keys, "action": "delete"}]}
    });
    match crash {
        Some((n, fault)) => proxy.crash_at(n, fault),
        None => proxy.crash_at(usize::MAX, Fault::Reset),
    }
    let before = proxy.log().len();
    let drained = h.run(&ticket).await;
    // The offboarding's own calls, in order (the bus and queue calls are the
    // driver's, as AWS's).
    let calls: Vec<String> = proxy.log()[before..]
        .iter()
        .filter(|c| !tests::proxy::DRIVER_ACTIONS.iter().any(|d| c.rsplit(':').next() == Some(*d)))
        .cloned()
        .collect();
    (offboarding_state(h, &s, &ticket_id, &names).await, drained, calls)
}

/// The same sweep over an offboarding ticket: dying at any of offboard-user's
/// calls (an error there, or killed there), the redelivery ends in the
/// undisturbed state: one user disabled and tagged, the other deleted with
/// nothing left behind, its secret pending deletion, one summary email.
#[tokio::test]
async fn offboarding_dying_at_any_call_ends_in_the_undisturbed_state() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let mut h = Harness::at(&proxy.endpoint, |s| s.concurrency = 1).await;
    let (baseline, drained, stage_log) = offboarding_run(&mut h, &proxy, None).await;
    assert_eq!((drained.dead_lettered, drained.retried), (0, 0), "the undisturbed run: {drained:?}");
    let calls = stage_log.len();
    assert!(baseline.iter().any(|l| l.contains(": missing, secret pending deletion Ok(true)")), "{baseline:#?}");
    assert!(baseline.iter().any(|l| l.contains("iam-provisioner:offboarded=OFFX-<s>")), "{baseline:#?}");
    assert!(calls > 20, "only {calls} offboarding calls counted");
    let stride: usize = std::env::var("CRASH_POINTS_STRIDE").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut report = Vec::new();
    let mut email_twice = 0;
    for (mode, fault) in [("error", Fault::Reset), ("kill", Fault::Hang)] {
        let offset = if stride > 1 { usize::from(fault == Fault::Hang) } else { 0 };
        for n in (offset..calls).step_by(stride) {
            let (got, drained, _) = offboarding_run(&mut h, &proxy, Some((n, fault))).await;
            assert_eq!(drained.dead_lettered, 0, "{mode} at offboarding call {n}: {drained:?}");
            if fault == Fault::Hang {
                assert_eq!(drained.killed, 1, "{mode} at offboarding call {n}: the stage was not killed");
            }
            let after_send = n > 0 && stage_log[n - 1] == "ses:SendEmail";
            if got != baseline && fault == Fault::Hang && after_send {
                // Killed after SES accepted the summary, before that was
                // recorded: that one email goes twice, nothing else differs.
                let twice: Vec<&String> = got.iter().filter(|l| !baseline.contains(l)).collect();
                if twice.len() == 1 && twice[0].ends_with(" x2") && baseline.contains(&twice[0].replace(" x2", " x1")) {
                    email_twice += 1;
                    continue;
                }
            }
            assert_eq!(got, baseline, "{mode} at offboarding call {n} of {calls} ({})", stage_log[n]);
        }
        report.push(format!("{mode}: {} points", (offset..calls).step_by(stride).count()));
    }
    println!(
        "offboarding crash points: {calls} stage calls, {} (summary emails sent twice when killed right after SES accepted them: {email_twice})",
        report.join(", ")
    );
}
