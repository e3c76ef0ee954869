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
