//! `make bench`: how fast the pipeline provisions users on the local
//! emulator, beside the ways people do it today, in one run against one
//! emulator:
//! - the pipeline: tickets through the bus, the queues and the three
//!   onboarding stages, with idempotency, status records and emails;
//! - the floor: the same required API calls issued directly by a minimal
//!   Rust loop (no idempotency, status, queues), one user after another, as
//!   the pipeline's stages handle them;
//! - the AWS CLI: what an admin scripts from the documentation
//!   (`create-user`, `create-login-profile`, `create-access-key`,
//!   `add-user-to-group` per user).
//!
//! Each is run BENCH_RUNS times; medians are reported. Writes BENCHMARKS.md
//! (or BENCH_REPORT). Figures are ratios against the floor measured in the
//! same run: absolute numbers on an emulator say little.
#![recursion_limit = "256"]

use aws_config::retry::RetryConfig;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;
use tests::bootstrap::{ensure, Settings, POLICY_CHANGE_PASSWORD, POLICY_POWER_USER};
use tests::pipeline::LocalPipeline;
use tests::proxy::FaultProxy;

/// Starts per function for the cold-start medians: each is ~10-50 ms, and a
/// 2-core machine's scheduling noise needs more than a handful.
const COLD_STARTS: usize = 15;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Each measurement starts from an empty account: create-user lists the
/// account's users for every ticket, so a run after others would time the
/// others' users too.
fn reset(endpoint: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tests::http(tests::port_of(endpoint), "POST", "/moto-api/reset")?;
    Ok(())
}

/// (users per second, per-stage handler ms per message, AWS calls per user by service)
struct PipelineRun {
    users_per_s: f64,
    stage_ms: BTreeMap<String, Vec<f64>>,
    calls_per_user: BTreeMap<String, f64>,
    calls_per_op: BTreeMap<String, f64>,
}

fn user(name: &str, i: usize) -> serde_json::Value {
    json!({"user_name": name, "email": format!("{name}@example.com"),
           "access": {"console": true, "programmatic": true},
           "groups": if i % 2 == 0 { json!(["Developers"]) } else { json!([]) }})
}

async fn pipeline_run(
    endpoint: &str,
    run: usize,
    tickets: usize,
    users: usize,
    concurrency: usize,
) -> Result<PipelineRun, Box<dyn std::error::Error + Send + Sync>> {
    reset(endpoint)?;
    let proxy = FaultProxy::start(endpoint).await?;
    let direct = tests::sdk_config(endpoint).await;
    let mut settings = Settings::local_defaults(&format!("bench{run}-"));
    settings.concurrency = concurrency;
    let env = ensure(&direct, settings).await?;
    let sdk = tests::emulator_config(&proxy.endpoint, RetryConfig::standard()).await;
    let pipeline = LocalPipeline::new(&sdk, env);
    let started = Instant::now();
    for t in 0..tickets {
        let list: Vec<_> = (0..users).map(|u| user(&format!("p{run}t{t}u{u}"), u)).collect();
        pipeline
            .deliver(&json!({"ticket_id": format!("BENCH-{run}-{t}"), "requested_by": "it@example.com", "users": list}))
            .await?;
    }
    let drained = pipeline.drain().await?;
    let elapsed = started.elapsed();
    if drained.dead_lettered > 0 || drained.retried > 0 {
        return Err(format!("the pipeline did not run clean: {drained:?}").into());
    }
    let mut stage_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (queue, took, records) in pipeline.timings.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let stage = queue.rsplit('/').next().unwrap_or(queue).trim_start_matches(&format!("bench{run}-")).to_owned();
        stage_ms.entry(stage).or_default().push(took.as_secs_f64() * 1000.0 / *records as f64);
    }
    let total = (tickets * users) as f64;
    let mut calls_per_user: BTreeMap<String, f64> = BTreeMap::new();
    let mut calls_per_op: BTreeMap<String, f64> = BTreeMap::new();
    for call in
        proxy.log().iter().filter(|c| !tests::proxy::DRIVER_ACTIONS.iter().any(|d| c.rsplit(':').next() == Some(*d)))
    {
        *calls_per_user.entry(call.split(':').next().unwrap_or("").to_owned()).or_default() += 1.0 / total;
        *calls_per_op.entry(call.clone()).or_default() += 1.0 / total;
    }
    Ok(PipelineRun { users_per_s: total / elapsed.as_secs_f64(), stage_ms, calls_per_user, calls_per_op })
}

/// The required calls, straight: user with boundary and tags, group, login
/// profile, the change-password policy (as the console attaches it where the
/// account has no password policy), key, secret, the three emails; as many
/// users at once as the pipeline's stages handle records at once.
async fn floor_run(
    endpoint: &str,
    run: usize,
    users: usize,
    concurrency: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error + Send + Sync>> {
    reset(endpoint)?;
    ensure(&tests::sdk_config(endpoint).await, Settings::local_defaults(&format!("floor{run}-"))).await?;
    let proxy = FaultProxy::start(endpoint).await?;
    let sdk = tests::emulator_config(&proxy.endpoint, RetryConfig::standard()).await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let ses = aws_sdk_ses::Client::new(&sdk);
    let started = Instant::now();
    let one = |u: usize| {
        let (iam, sm, ses) = (&iam, &sm, &ses);
        async move { floor_user(iam, sm, ses, &format!("f{run}u{u}"), u).await }
    };
    for result in shared::lambda::bounded(concurrency, (0..users).map(one)).await {
        result?;
    }
    let users_per_s = users as f64 / started.elapsed().as_secs_f64();
    Ok((users_per_s, proxy.log().len() as f64 / users as f64))
}

async fn floor_user(
    iam: &aws_sdk_iam::Client,
    sm: &aws_sdk_secretsmanager::Client,
    ses: &aws_sdk_ses::Client,
    name: &str,
    u: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use aws_sdk_ses::types::{Body, Content, Destination, Message};
    let tag = aws_sdk_iam::types::Tag::builder().key("iam-provisioner:managed").value("true").build()?;
    iam.create_user().user_name(name).permissions_boundary(POLICY_POWER_USER).tags(tag).send().await?;
    if u % 2 == 0 {
        iam.add_user_to_group().user_name(name).group_name("Developers").send().await?;
    }
    iam.create_login_profile()
        .user_name(name)
        .password("Bench-Passw0rd-0123456!")
        .password_reset_required(true)
        .send()
        .await?;
    iam.attach_user_policy().user_name(name).policy_arn(POLICY_CHANGE_PASSWORD).send().await?;
    let key = iam.create_access_key().user_name(name).send().await?;
    let key_id = key.access_key().map(|k| k.access_key_id().to_owned()).unwrap_or_default();
    sm.create_secret()
        .name(format!("bench-floor/{name}"))
        .secret_string(format!("{{\"access_key_id\":\"{key_id}\"}}"))
        .send()
        .await?;
    for subject in ["sign-in", "password", "access key"] {
        let content = |s: &str| Content::builder().data(s).build();
        ses.send_email()
            .source("iam-provisioner@example.com")
            .destination(Destination::builder().to_addresses(format!("{name}@example.com")).build())
            .message(
                Message::builder()
                    .subject(content(subject)?)
                    .body(Body::builder().text(content(subject)?).build())
                    .build(),
            )
            .send()
            .await?;
    }
    Ok(())
}

/// The documented CLI procedure, one process per call, as admins script it.
async fn cli_run(endpoint: &str, run: usize, users: usize) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
    reset(endpoint)?;
    ensure(&tests::sdk_config(endpoint).await, Settings::local_defaults(&format!("cli{run}-"))).await?;
    let started = Instant::now();
    for u in 0..users {
        let name = format!("c{run}u{u}");
        let steps: [&[&str]; 4] = [
            &["iam", "create-user", "--user-name", &name, "--permissions-boundary", POLICY_POWER_USER],
            &[
                "iam",
                "create-login-profile",
                "--user-name",
                &name,
                "--password",
                "Bench-Passw0rd-0123456!",
                "--password-reset-required",
            ],
            &["iam", "create-access-key", "--user-name", &name],
            &["iam", "add-user-to-group", "--user-name", &name, "--group-name", "Developers"],
        ];
        for args in steps {
            let out = std::process::Command::new("aws")
                .args(args)
                .args(["--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json"])
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .output()?;
            if !out.status.success() {
                return Err(format!("aws {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)).into());
            }
        }
    }
    Ok(users as f64 / started.elapsed().as_secs_f64())
}

/// (function, init ms, invocation ms, peak RSS KiB) medians, hello-lambda first.
async fn cold_starts(
    endpoint: &str,
    runs: usize,
) -> Result<Vec<(String, f64, f64, f64)>, Box<dyn std::error::Error + Send + Sync>> {
    let direct = tests::sdk_config(endpoint).await;
    let env = ensure(&direct, Settings::local_defaults("cold-")).await?;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let bins = std::env::var("BENCH_BIN_DIR").unwrap_or_else(|_| format!("{root}/target/release"));
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/events/{f}")).unwrap_or_default())
            .unwrap_or_default()
    };
    // In this order: each sample names what the one before it created.
    let functions = [
        ("hello-lambda", json!({})),
        ("create-user", read("onboarding-ticket.json")),
        ("issue-credentials", read("issue-credentials.json")),
        ("notify-user", read("notify-user.json")),
        ("rotate-keys", read("rotate-keys-dry-run.json")),
    ];
    let mut out = Vec::new();
    for (function, event) in functions {
        let vars = env.function_env(function).unwrap_or_default();
        let (mut init, mut invoke, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let api = tests::runtime_api::RuntimeApi::start(event.clone()).await?;
            let started = Instant::now();
            let mut child = std::process::Command::new(format!("{bins}/{function}"))
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("AWS_LAMBDA_RUNTIME_API", &api.address)
                .env("AWS_LAMBDA_FUNCTION_NAME", function)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
                .env("AWS_ENDPOINT_URL", endpoint)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("{bins}/{function}: {e} (make bench builds it)"))?;
            let deadline = Instant::now() + std::time::Duration::from_secs(60);
            let seen = loop {
                let seen = api.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if seen.answered.is_some() || Instant::now() > deadline {
                    break seen;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            };
            let peak = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                })
                .unwrap_or(0.0);
            let _ = child.kill();
            let _ = child.wait();
            let (Some(first), Some((answered, error))) = (seen.first_next, seen.answered) else {
                return Err(format!("{function}: no answer within 60 s").into());
            };
            if error {
                return Err(
                    format!("{function}: answered with an error: {}", String::from_utf8_lossy(&seen.answer)).into()
                );
            }
            init.push((first - started).as_secs_f64() * 1000.0);
            invoke.push((answered - first).as_secs_f64() * 1000.0);
            rss.push(peak);
        }
        out.push((function.to_owned(), median(init), median(invoke), median(rss)));
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (tickets, users, runs) = (env("BENCH_TICKETS", 10), env("BENCH_USERS", 10), env("BENCH_RUNS", 3));
    let cli_users = env("BENCH_CLI_USERS", 10);
    // The one-at-a-time row is the slowest: a smaller sample of tickets.
    let serial_tickets = env("BENCH_SERIAL_TICKETS", tickets.min(20));
    let concurrency = env("BATCH_CONCURRENCY", shared::config::DEFAULT_CONCURRENCY);
    let (moto, mut child) = tests::moto::start()?;
    let endpoint = moto.endpoint.clone();
    // First, on an empty account: rotate-keys' first invocation walks every
    // user, so after the throughput runs it would time the account's size.
    let cold = cold_starts(&endpoint, COLD_STARTS).await;
    let mut pipeline = Vec::new();
    let mut floor = Vec::new();
    let mut floor_calls = 0.0;
    let mut cli = Vec::new();
    let mut serial = Vec::new();
    for run in 0..runs {
        let p = pipeline_run(&endpoint, run, tickets, users, concurrency).await?;
        let (f, calls) = floor_run(&endpoint, run, tickets * users, concurrency).await?;
        floor_calls = calls;
        // The same pipeline one record (and one user) at a time: what the
        // bounded concurrency is worth.
        let one = pipeline_run(&endpoint, runs + run, serial_tickets, users, 1).await?.users_per_s;
        let c = cli_run(&endpoint, run, cli_users).await?;
        eprintln!(
            "run {run}: pipeline {:.1} users/s, one at a time {one:.1}, floor {f:.1} users/s, CLI {c:.2} users/s",
            p.users_per_s
        );
        pipeline.push(p);
        floor.push(f);
        serial.push(one);
        cli.push(c);
    }
    tests::moto::stop(&mut child);

    let p50 = median(pipeline.iter().map(|p| p.users_per_s).collect());
    let f50 = median(floor);
    let c50 = median(cli);
    let s50 = median(serial);
    let mut stage_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut calls: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut ops: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in &pipeline {
        for (stage, ms) in &p.stage_ms {
            stage_ms.entry(stage.clone()).or_default().extend(ms);
        }
        for (service, n) in &p.calls_per_user {
            calls.entry(service.clone()).or_default().push(*n);
        }
        for (op, n) in &p.calls_per_op {
            ops.entry(op.clone()).or_default().push(*n);
        }
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let date = shared::text::date(shared::ports::Clock::now(&shared::ports::SystemClock));
    let mut report = format!(
        "Generated by `make bench` on {date}, on {cores} cores ({cpu}), against moto on loopback; \
         {tickets} tickets x {users} users per pipeline run, the same number of users for the floor, \
         {serial_tickets} tickets for the one-at-a-time row, {cli_users} users for the CLI, each from an empty \
         account (moto reset); BATCH_CONCURRENCY {concurrency} for the pipeline and the floor alike; \
         medians over {runs} runs. Ratios matter more than absolutes: the emulator, not AWS, sets the pace.\n\n\
         ### Throughput\n\n| way | users/s (median) | time per user vs the floor |\n| --- | --- | --- |\n\
         | floor: required calls, minimal Rust loop, {concurrency} users at a time | {f50:.1} | 1.00x |\n\
         | pipeline: bus, queues, three stages, idempotency, status, emails | {p50:.1} | {:.2}x (pipeline/floor) |\n\
         | pipeline, one record and one user at a time (BATCH_CONCURRENCY=1) | {s50:.1} | {:.2}x |\n\
         | AWS CLI per the documentation (4 calls per user, no secret, no email; one at a time) | {c50:.2} | {:.2}x ({:.2}x the pipeline: CLI/pipeline) |\n\n\
         ### Pipeline stages (handler time per message, all runs)\n\n| stage | p50 ms | p95 ms |\n| --- | --- | --- |\n",
        f50 / p50,
        f50 / s50,
        f50 / c50,
        p50 / c50,
    );
    for (stage, ms) in &stage_ms {
        report.push_str(&format!(
            "| {stage} | {:.1} | {:.1} |\n",
            percentile(ms.clone(), 0.5),
            percentile(ms.clone(), 0.95)
        ));
    }
    report.push_str(
        "\n### AWS calls per user (pipeline stages, median over runs)\n\n| service | calls |\n| --- | --- |\n",
    );
    let mut total = 0.0;
    for (service, n) in &calls {
        let m = median(n.clone());
        total += m;
        report.push_str(&format!("| {service} | {m:.1} |\n"));
    }
    report.push_str(&format!("| all | {total:.1} (floor: {floor_calls:.1}) |\n"));
    report.push_str("\nBy operation:\n\n| operation | calls per user |\n| --- | --- |\n");
    for (op, n) in &ops {
        report.push_str(&format!("| {op} | {:.2} |\n", median(n.clone())));
    }
    report.push_str(&format!(
        "\n### Cold start (release binaries of this machine's architecture, a local Runtime API stand-in)\n\n\
         From process start to the function's first request for an event (init), its first invocation, its peak \
         RSS after it; medians over {COLD_STARTS} starts, on a fresh emulator before the throughput runs. Zip sizes are the arm64 zips of `make build`, when built.\n\n\
         | function | init ms | first invocation ms | peak RSS MiB | zip MB | init / floor | RSS / floor |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    ));
    let cold = match cold {
        Ok(cold) => cold,
        Err(e) => {
            report.push_str(&format!("\nNot measured this run: {e}\n"));
            Vec::new()
        }
    };
    let (floor_init, floor_rss) = cold.first().map_or((1.0, 1.0), |c| (c.1, c.3));
    for (function, init, invoke, rss) in &cold {
        let zip =
            std::fs::metadata(format!("{}/../target/lambda/{function}/bootstrap.zip", env!("CARGO_MANIFEST_DIR")))
                .map(|m| format!("{:.2}", m.len() as f64 / 1e6))
                .unwrap_or_else(|_| "-".into());
        let name = if function == "hello-lambda" { "hello-world (floor)".to_owned() } else { function.clone() };
        report.push_str(&format!(
            "| {name} | {init:.1} | {invoke:.1} | {:.1} | {zip} | {:.2} | {:.2} |\n",
            rss / 1024.0,
            init / floor_init,
            rss / floor_rss
        ));
    }
    // Only the part between the markers is the bench's: the rest of the file
    // (what was changed because of these figures) is written by people.
    let path = std::env::var("BENCH_REPORT").unwrap_or_else(|_| "BENCHMARKS.md".into());
    let (begin, end) = ("<!-- bench:begin -->", "<!-- bench:end -->");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{report}{}", &old[..b], &old[e..]),
        _ => format!("# Benchmarks\n\n{begin}\n{report}{end}\n"),
    };
    std::fs::write(&path, new)?;
    println!("{report}");
    Ok(())
}
