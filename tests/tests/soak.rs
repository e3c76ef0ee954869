//! The soak: tickets through the local pipeline while AWS misbehaves, then
//! an audit. Faults come from the proxy (seeded: throttling, 5xx, resets and
//! slow answers on every service the stages call), deliveries from a
//! driver that duplicates 10% of messages and shuffles every batch, and 10%
//! of tickets are put on the bus twice. Afterwards: no user lost, no
//! duplicate key, no duplicate email, nothing in a dead-letter queue that is
//! not accounted for, and no secret in any log line, queue message,
//! DynamoDB item or event.
//!
//! `make test` runs a small one; `make soak` the full 100 tickets x 10 users
//! (SOAK_TICKETS, SOAK_USERS, SOAK_SEED; SOAK_REPORT names a file for the
//! figures).
#![recursion_limit = "256"]

use aws_config::retry::RetryConfig;
use serde_json::{json, Value};
use shared::ports::Stage;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::proxy::{Fault, FaultProxy, Share};
use tests::{unique, Harness};

/// Every log line of the run, as Lambda would print them (JSON), at debug.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many times any of `needles` occurs in `text`, in one pass: a set
/// lookup of every window as long as some needle (a few lengths), instead
/// of one scan of a log of hundreds of megabytes per secret.
fn find_any(text: &str, needles: &[String]) -> usize {
    let set: std::collections::HashSet<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
    let lengths: std::collections::BTreeSet<usize> = needles.iter().map(String::len).collect();
    let bytes = text.as_bytes();
    let mut found = 0;
    for i in 0..bytes.len() {
        for &len in &lengths {
            if i + len <= bytes.len() && set.contains(&bytes[i..i + len]) {
                found += 1;
            }
        }
    }
    found
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn shares() -> Vec<Share> {
    let mut shares = Vec::new();
    for service in ["iam", "dynamodb", "ses", "secretsmanager", "sqs"] {
        shares.push(Share { service, action: None, per_mille: 50, fault: Fault::Throttling });
        shares.push(Share { service, action: None, per_mille: 20, fault: Fault::ServiceFailure });
    }
    shares.push(Share { service: "*", action: None, per_mille: 5, fault: Fault::Reset });
    shares.push(Share { service: "*", action: None, per_mille: 5, fault: Fault::Slow(200) });
    shares
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_survive_faults_duplicates_and_reordering_with_nothing_lost_or_leaked() {
    let (tickets, users_per, seed) = (env("SOAK_TICKETS", 4), env("SOAK_USERS", 3), env("SOAK_SEED", 42));
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .try_init()
        .expect("one subscriber for this binary");

    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let mut h = Harness::at(&proxy.endpoint, |_| {}).await;
    // The SDK's own retries, as deployed (standard mode, 3 attempts), with
    // short backoffs so the soak takes minutes, not hours.
    let retry = RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(5));
    let sdk = tests::emulator_config(&proxy.endpoint, retry).await;
    h.pipeline = tests::pipeline::LocalPipeline::new(&sdk, h.pipeline.env.clone());
    h.pipeline.duplicate_per_mille = 100;
    *h.pipeline.chaos_seed.lock().unwrap() = seed;
    proxy.chaos(seed, shares());

    let s = unique("");
    let mut all_users = Vec::new();
    let mut ticket_ids = Vec::new();
    let started = Instant::now();
    for t in 0..tickets {
        let id = format!("SOAK-{t}-{s}");
        let users: Vec<Value> = (0..users_per)
            .map(|u| {
                let name = format!("t{t}u{u}-{s}");
                let (console, programmatic) = match u % 3 {
                    0 => (true, true),
                    1 => (true, false),
                    _ => (false, true),
                };
                all_users.push((id.clone(), name.clone(), console, programmatic));
                json!({"user_name": name, "email": format!("{name}@example.com"),
                       "access": {"console": console, "programmatic": programmatic},
                       "groups": if u % 2 == 0 { json!(["Developers"]) } else { json!([]) }})
            })
            .collect();
        let ticket = json!({"ticket_id": id, "requested_by": format!("req-{t}-{s}@example.com"), "users": users});
        h.pipeline.deliver(&ticket).await.unwrap();
        if t % 10 == 3 {
            h.pipeline.deliver(&ticket).await.unwrap();
        }
        ticket_ids.push(id);
    }
    let drained = h.pipeline.drain().await.unwrap();
    let elapsed = started.elapsed();

    // Nothing lost: every user notified, with exactly its credentials.
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let mut secrets = Vec::new();
    let mut problems = Vec::new();
    for id in &ticket_ids {
        let statuses = h.statuses(id).await;
        for (ticket, name, console, programmatic) in all_users.iter().filter(|u| &u.0 == id) {
            let status = statuses.iter().find(|r| &r.user_name == name);
            if status.map(|r| r.stage) != Some(Stage::Notified) {
                problems.push(format!("{ticket}/{name}: {status:?}"));
                continue;
            }
            let keys = h.iam.list_access_keys().user_name(name).send().await.unwrap();
            let key_ids: Vec<&str> = keys.access_key_metadata().iter().filter_map(|k| k.access_key_id()).collect();
            let profile = h.iam.get_login_profile().user_name(name).send().await.is_ok();
            let secret_id = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
            let value = sm.get_secret_value().secret_id(&secret_id).send().await.unwrap();
            let versions = sm.list_secret_version_ids().secret_id(&secret_id).send().await.unwrap().versions().len();
            let doc: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
            let expected_keys: Vec<&str> = doc["access_key_id"].as_str().into_iter().collect();
            if key_ids != expected_keys || key_ids.len() != usize::from(*programmatic) {
                problems.push(format!("{name}: keys {key_ids:?}, secret records {expected_keys:?}"));
            }
            if profile != *console || versions != 1 {
                problems.push(format!("{name}: login profile {profile}, secret versions {versions}"));
            }
            for field in ["password", "secret_access_key"] {
                if let Some(v) = doc[field].as_str() {
                    secrets.push(v.to_owned());
                }
            }
        }
    }

    // Each email exactly once, as SES (the emulator) saw them.
    let sent = tests::sent_emails(&tests::moto::shared().endpoint);
    let mut per_email: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in sent.iter().filter(|m| m.destinations.to_string().contains(&s)) {
        *per_email.entry((m.destinations.to_string(), m.subject.clone())).or_default() += 1;
    }
    let twice: Vec<_> = per_email.iter().filter(|(_, n)| **n > 1).collect();
    let expected_emails =
        all_users.iter().map(|(_, _, c, p)| 2 * usize::from(*c) + usize::from(*p)).sum::<usize>() + tickets as usize;
    let emails: usize = per_email.values().sum();

    // No secret anywhere it must not be.
    let log_text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let bodies: Vec<String> = h.pipeline.delivered.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
    let ddb = aws_sdk_dynamodb::Client::new(&h.sdk);
    let items =
        ddb.scan().table_name(&h.pipeline.env.table).into_paginator().items().send().try_collect().await.unwrap();
    let items_text = format!("{items:?}");
    let bodies_text = bodies.join("\n");
    for (place, text) in [("log", &log_text), ("DynamoDB", &items_text), ("queue messages and events", &bodies_text)] {
        let found = find_any(text, &secrets);
        if found > 0 {
            problems.push(format!("a secret is in the {place} ({found} times)"));
        }
    }

    let injected = proxy.injected();
    let mut by_fault: BTreeMap<String, usize> = BTreeMap::new();
    for (_, fault) in &injected {
        *by_fault.entry(format!("{fault:?}")).or_default() += 1;
    }
    // Read directly (no faults): every duplicate and redelivery of a real
    // message must still match the records.
    let records = shared::aws::StateTable::new(&h.sdk, &h.pipeline.env.table).status();
    let mut untrusted = 0;
    for stage in ["issue-credentials", "notify-user"] {
        untrusted += shared::ports::UntrustedLog::untrusted(&records, stage).await.unwrap().len();
    }
    let figures = format!(
        "| tickets x users | {tickets} x {users_per} ({} users) |\n\
         | seed | {seed} |\n\
         | AWS calls through the proxy | {} |\n\
         | faults injected | {} ({}) |\n\
         | messages handled / redelivered after a failure | {} / {} |\n\
         | duplicate deliveries (10% of messages, plus {} tickets put twice) | {} |\n\
         | users notified / lost | {} / {} |\n\
         | duplicate keys / duplicate emails | {} / {} |\n\
         | emails sent (expected) | {emails} ({expected_emails}) |\n\
         | in dead-letter queues | {} |\n\
         | messages recorded as untrusted (duplicates of real ones must never be) | {untrusted} |\n\
         | secrets found in logs, queues, DynamoDB, events | {} |\n\
         | log lines scanned / messages scanned / DynamoDB items scanned | {} / {} / {} |\n\
         | wall time | {:.1} s |\n",
        all_users.len(),
        proxy.log().len(),
        injected.len(),
        by_fault.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        drained.handled,
        drained.retried,
        tickets.div_ceil(10),
        drained.duplicated,
        all_users.len() - problems.iter().filter(|p| p.contains("Some(") || p.contains("None")).count(),
        problems.iter().filter(|p| p.contains("Some(") || p.contains("None")).count(),
        problems.iter().filter(|p| p.contains(": keys")).count(),
        twice.len(),
        drained.dead_lettered,
        problems.iter().filter(|p| p.starts_with("a secret")).count(),
        log_text.lines().count(),
        bodies.len(),
        items.len(),
        elapsed.as_secs_f64(),
    );
    println!("{figures}");
    assert_eq!(untrusted, 0, "real messages were dropped as untrusted:\n{figures}");
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        std::fs::write(path, &figures).unwrap();
    }
    assert!(problems.is_empty(), "{problems:#?}\n{figures}");
    assert!(twice.is_empty(), "emails sent twice: {twice:?}");
    assert_eq!(emails, expected_emails, "{figures}");
    assert_eq!(drained.dead_lettered, 0, "{figures}");
    assert!(injected.len() > 10, "too few faults to prove anything:\n{figures}");
    assert!(drained.duplicated > 0, "no duplicate deliveries:\n{figures}");
    assert!(log_text.lines().count() > 100, "the log was not captured");
    assert_eq!(find_any(&format!("x{}y", secrets[0]), &secrets), 1, "the scan finds a secret where there is one");
}
