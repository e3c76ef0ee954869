//! Version skew, as a deploy meets it: the stages of a release go out one
//! after the other, with messages in flight and hand-off records written by
//! the release before. Each stage reads this version of the messages and
//! the previous one (the flat shape of the release before, which wrote no
//! version), ignores fields it does not know, and parks a message newer than
//! it reads in the dead-letter queue (a fault of the deployment: deploy
//! consumers first), never dropping it as untrusted.
#![recursion_limit = "256"]

use aws_sdk_dynamodb::types::AttributeValue;
use shared::handoff::{CredentialsReady, Message, UserReady};
use tests::{unique, Harness};

/// What the previous release's create-user left: its flat hand-off record
/// in place of this release's.
async fn store_as_previous_release(h: &Harness, ready: &UserReady) {
    let o = ready.onboarding().expect("an onboarding");
    let dynamo = aws_sdk_dynamodb::Client::new(&h.sdk);
    dynamo
        .put_item()
        .table_name(&h.pipeline.env.table)
        .item("pk", AttributeValue::S(format!("TICKET#{}", o.ticket_id)))
        .item("sk", AttributeValue::S(format!("HANDOFF#{}", o.user.user_name)))
        .item("handoff", AttributeValue::S(ready.to_previous().to_string()))
        .send()
        .await
        .expect("put the previous record");
}

async fn untrusted(h: &Harness, stage: &str) -> usize {
    shared::ports::UntrustedLog::untrusted(&h.pipeline.create_user.status, stage).await.expect("untrusted").len()
}

#[tokio::test]
async fn the_previous_releases_messages_and_records_are_finished_by_this_one() {
    let mut h = Harness::new().await;
    // An undisturbed run, to compare with.
    let s0 = unique("");
    let (ticket, names) = tests::two_user_ticket("SKEW", &s0);
    assert_eq!(h.run(&ticket).await.dead_lettered, 0);
    let baseline = h.state(&s0, &names).await;
    h.pipeline = tests::pipeline::LocalPipeline::new(&h.sdk, h.pipeline.env.clone());

    // The previous create-user ran: its records and its messages.
    let s = unique("");
    let (ticket, names) = tests::two_user_ticket("SKEW", &s);
    h.pipeline.stages = 1;
    h.run(&ticket).await;
    let env = h.pipeline.env.clone();
    for ready in h.pipeline.take_handoffs().await.unwrap() {
        store_as_previous_release(&h, &ready).await;
        h.pipeline.redeliver(&env.issue_credentials_queue, &ready.to_previous().to_string()).await.unwrap();
    }
    // This release's issue-credentials; what it hands on goes to a
    // notify-user of the previous release's shape... and back, as the
    // previous issue-credentials would have sent it.
    h.pipeline.stages = 2;
    let drained = h.pipeline.drain().await.unwrap();
    assert_eq!((drained.dead_lettered, untrusted(&h, "issue-credentials").await), (0, 0), "{drained:?}");
    let handed = h.pipeline.take_bodies(&env.notify_user_queue).await.unwrap();
    assert_eq!(handed.len(), 2);
    for body in handed {
        let ready: CredentialsReady = serde_json::from_str(&body).unwrap();
        h.pipeline.redeliver(&env.notify_user_queue, &ready.to_previous().to_string()).await.unwrap();
    }
    h.pipeline.stages = 3;
    let drained = h.pipeline.drain().await.unwrap();
    assert_eq!((drained.dead_lettered, untrusted(&h, "notify-user").await), (0, 0), "{drained:?}");
    assert_eq!(h.state(&s, &names).await, baseline, "the skewed run differs from an undisturbed one");
}

/// A newer producer: a field this release does not know is ignored and the
/// work done; a version it does not read waits in the dead-letter queue
/// (redriven once this stage is deployed), and is not dropped as untrusted.
#[tokio::test]
async fn a_newer_releases_messages_are_done_when_compatible_and_parked_when_not() {
    let mut h = Harness::new().await;
    let s = unique("");
    let (ticket, names) = tests::two_user_ticket("NEWER", &s);
    h.pipeline.stages = 1;
    h.run(&ticket).await;
    let env = h.pipeline.env.clone();
    let handoffs = h.pipeline.take_handoffs().await.unwrap();
    let [first, second] = [&handoffs[0], &handoffs[1]];
    let mut compatible = serde_json::to_value(shared::handoff::write(first)).unwrap();
    compatible["mfa_required"] = serde_json::json!(true);
    h.pipeline.redeliver(&env.issue_credentials_queue, &compatible.to_string()).await.unwrap();
    let mut breaking = serde_json::to_value(shared::handoff::write(second)).unwrap();
    breaking["version"] = serde_json::json!(shared::handoff::VERSION + 1);
    h.pipeline.redeliver(&env.issue_credentials_queue, &breaking.to_string()).await.unwrap();
    h.pipeline.stages = 3;
    let drained = h.pipeline.drain().await.unwrap();
    assert_eq!(drained.dead_lettered, 1, "{drained:?}");
    assert_eq!(untrusted(&h, "issue-credentials").await, 0, "a newer message was dropped as untrusted");
    let statuses = h.statuses(ticket["ticket_id"].as_str().unwrap()).await;
    let notified: Vec<&str> =
        statuses.iter().filter(|r| r.stage == shared::ports::Stage::Notified).map(|r| r.user_name.as_str()).collect();
    assert_eq!(notified, [first.user_name().as_str()], "{statuses:?}");
    assert!(names.contains(&second.user_name().to_string()));
}
