//! `make run [EVENT=...]`: the whole pipeline, locally, on one ticket.
//!
//! Uses the emulator at AWS_ENDPOINT_URL, or starts one on a free loopback
//! port (and stops it afterwards); creates what the pipeline needs
//! (idempotently); puts the ticket on the bus; runs every stage until its
//! queue is empty; prints a summary per user. Exit 0 when every stage
//! finished (refused users included), 1 when a stage could not, 2 on bad usage
//! (a file that is not JSON, or an envelope of no ticket kind). The envelope
//! decides the kind: onboarding, offboarding or access change.
//!
//! `run-local --prepare FUNCTION` (behind `make invoke`) needs
//! AWS_ENDPOINT_URL: it creates the resources, runs the sample ticket through
//! the stages before FUNCTION (so the users and secrets a sample event names
//! exist), and prints FUNCTION's environment as KEY=VALUE lines.
#![recursion_limit = "256"]

use aws_config::retry::RetryConfig;
use shared::managed::TicketKind;
use std::process::ExitCode;
use tests::bootstrap::{ensure, Settings};
use tests::pipeline::LocalPipeline;

const DEFAULT_EVENT: &str = "events/onboarding-ticket.json";

#[tokio::main]
async fn main() -> ExitCode {
    shared::lambda::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--prepare") {
        return match prepare(args.get(1).map(String::as_str).unwrap_or_default()).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("run-local --prepare: {e}");
                ExitCode::from(1)
            }
        };
    }
    let path = args.first().filter(|a| !a.is_empty()).cloned().unwrap_or_else(|| DEFAULT_EVENT.into());
    let event: serde_json::Value = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("run-local: cannot read {path} as JSON: {e}");
            return ExitCode::from(2);
        }
    };
    if TicketKind::of(&event).is_none() {
        eprintln!(
            "run-local: {path}: {} / {} is not a ticket kind the pipeline takes (source onboarding.tickets; detail-type {:?}, {:?} or {:?})",
            event["source"],
            event["detail-type"],
            TicketKind::Onboarding.detail_type(),
            TicketKind::Offboarding.detail_type(),
            TicketKind::AccessChange.detail_type()
        );
        return ExitCode::from(2);
    }
    let (endpoint, mut started) = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(e) if !e.is_empty() => (e, None),
        _ => match tests::moto::start() {
            Ok((moto, child)) => {
                println!("emulator: started moto_server at {}", moto.endpoint);
                (moto.endpoint, Some(child))
            }
            Err(e) => {
                eprintln!("run-local: could not start moto_server ({e}); install it with `pip install 'moto[server]'` or set AWS_ENDPOINT_URL");
                return ExitCode::from(1);
            }
        },
    };
    if started.is_none() {
        println!("emulator: using AWS_ENDPOINT_URL={endpoint}");
    }
    let code = match run(&endpoint, &event, started.is_some()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("run-local: {e}");
            ExitCode::from(1)
        }
    };
    if let Some(child) = started.as_mut() {
        tests::moto::stop(child);
    }
    code
}

async fn run(endpoint: &str, event: &serde_json::Value, fresh: bool) -> Result<bool, tests::bootstrap::BoxError> {
    let kind = TicketKind::of(event).ok_or("not a ticket kind")?;
    let direct = tests::emulator_config(endpoint, RetryConfig::standard()).await;
    let prefix = std::env::var("IAM_PROVISIONER_PREFIX").unwrap_or_else(|_| "iam-provisioner-".into());
    let env = ensure(&direct, Settings::from_env(&prefix)).await?;
    // The stages talk to the emulator through a proxy that answers the
    // calls moto lacks as IAM would (ListServiceSpecificCredentials).
    let proxy = tests::proxy::FaultProxy::start(endpoint).await?;
    proxy.fill_moto_gaps();
    let sdk = tests::emulator_config(&proxy.endpoint, RetryConfig::standard()).await;
    println!(
        "resources: table {}, bus {}, queues {} -> {} -> {}",
        env.table,
        env.bus,
        queue_name(&env.create_user_queue),
        queue_name(&env.issue_credentials_queue),
        queue_name(&env.notify_user_queue)
    );
    let pipeline = LocalPipeline::new(&sdk, env);
    if kind != TicketKind::Onboarding && fresh {
        // A fresh emulator holds nobody to offboard or change: the sample
        // onboarding ticket creates the users the sample tickets name.
        println!("preparing: onboarding {DEFAULT_EVENT} first, so the users this ticket names exist");
        let sample: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(DEFAULT_EVENT)?)?;
        pipeline.deliver(&sample).await?;
        pipeline.drain().await?;
    }
    pipeline.deliver(event).await?;
    let drained = pipeline.drain().await?;
    println!("stages: {} message(s) handled, {} retried", drained.handled, drained.retried);
    if kind != TicketKind::Onboarding {
        return lifecycle_summary(&pipeline, &direct, event, kind, &drained).await;
    }

    let detail = event.get("detail").unwrap_or(event);
    let ticket = shared::ticket::parse_value(detail.clone());
    let record_id = match &ticket {
        Ok(t) => create_user::record_id(t)?.to_string(),
        Err(_) => shared::ticket::best_effort_ticket_id(&detail.to_string()).map(String::from).unwrap_or_default(),
    };
    let statuses = shared::ports::StatusStore::for_ticket(&pipeline.create_user.status, &record_id).await?;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let sent = pipeline.emails_sent();
    println!("\nticket {record_id}:");
    if statuses.is_empty() {
        println!("  no status recorded (the ticket could not be read; see the log above)");
    }
    for s in &statuses {
        println!("  {} — {}", s.user_name, s.stage.as_str());
        if let Some(reason) = &s.reason {
            println!("      reason: {reason}");
        }
        if let Ok(out) = iam.get_user().user_name(&s.user_name).send().await {
            if let Some(u) = out.user() {
                println!("      IAM user: {}", u.arn());
            }
        }
        // The secret's name and versions, never its value.
        let secret_name = format!("{}{}", pipeline.env.settings.secret_prefix, s.user_name);
        match secrets.describe_secret().secret_id(&secret_name).send().await {
            Ok(d) => println!(
                "      secret: {} ({} version(s))",
                secret_name,
                d.version_ids_to_stages().map_or(0, |v| v.len())
            ),
            Err(_) => println!("      secret: none"),
        }
        let email = ticket
            .as_ref()
            .ok()
            .and_then(|t| t.users.iter().find(|u| u.user_name == s.user_name))
            .map(|u| u.email.clone());
        let to_user: Vec<&String> =
            sent.iter().filter(|(to, _)| Some(to) == email.as_ref()).map(|(_, subject)| subject).collect();
        println!("      emails sent: {}", if to_user.is_empty() { "none".to_owned() } else { format!("{to_user:?}") });
    }
    for (to, subject) in sent.iter().filter(|(to, _)| ticket.as_ref().is_ok_and(|t| &t.requested_by == to)) {
        println!("  requester {to}: emailed {subject:?}");
    }
    for (queue, n) in &drained.waiting {
        println!("\n{n} message(s) still wait in {}.", queue_name(queue));
    }
    if drained.dead_lettered > 0 {
        println!("\n{} message(s) are in a dead-letter queue: a stage could not finish them.", drained.dead_lettered);
        return Ok(false);
    }
    Ok(true)
}

async fn prepare(function: &str) -> Result<ExitCode, tests::bootstrap::BoxError> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| "set AWS_ENDPOINT_URL to a running emulator")?;
    let sdk = tests::emulator_config(&endpoint, RetryConfig::standard()).await;
    let prefix = std::env::var("IAM_PROVISIONER_PREFIX").unwrap_or_else(|_| "iam-provisioner-".into());
    let env = ensure(&sdk, Settings::from_env(&prefix)).await?;
    let Some(vars) = env.function_env(function) else {
        eprintln!("run-local --prepare: FUNCTION must be create-user, issue-credentials, notify-user, rotate-keys, offboard-user or change-access");
        return Ok(ExitCode::from(2));
    };
    let mut pipeline = LocalPipeline::new(&sdk, env);
    pipeline.stages = match function {
        "issue-credentials" => 1,
        "notify-user" => 2,
        _ => 3,
    };
    if function != "create-user" {
        let ticket: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(DEFAULT_EVENT)?)?;
        pipeline.deliver(&ticket).await?;
        pipeline.drain().await?;
    }
    for (k, v) in vars {
        println!("{k}={v}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What an offboarding or access-change ticket did, per user: its status
/// and what IAM now holds of it; the requester's email.
async fn lifecycle_summary(
    pipeline: &LocalPipeline,
    sdk: &aws_config::SdkConfig,
    event: &serde_json::Value,
    kind: TicketKind,
    drained: &tests::pipeline::Drained,
) -> Result<bool, tests::bootstrap::BoxError> {
    let detail = event.get("detail").unwrap_or(event);
    let ticket_id = detail.get("ticket_id").and_then(|t| t.as_str()).unwrap_or_default();
    let record_id =
        kind.records_of(&shared::names::TicketId::of_ticket(ticket_id, &shared::idempotency::payload_hash(detail)?));
    let statuses = shared::ports::StatusStore::for_ticket(&pipeline.create_user.status, &record_id).await?;
    let iam = aws_sdk_iam::Client::new(sdk);
    println!(
        "\n{} ticket {}:",
        if kind == TicketKind::Offboarding { "offboarding" } else { "access change" },
        record_id.submitted()
    );
    if statuses.is_empty() {
        println!("  no status recorded (the ticket could not be read; see the log above)");
    }
    for s in &statuses {
        println!("  {} — {}", s.user_name, s.stage.as_str());
        if let Some(reason) = &s.reason {
            println!("      {reason}");
        }
        match iam.get_user().user_name(&s.user_name).send().await {
            Ok(out) => {
                let tags: Vec<String> = out
                    .user()
                    .map(|u| {
                        u.tags()
                            .iter()
                            .filter(|t| t.key().starts_with("iam-provisioner:"))
                            .map(|t| format!("{}={}", t.key(), t.value()))
                            .collect()
                    })
                    .unwrap_or_default();
                let groups = iam.list_groups_for_user().user_name(&s.user_name).send().await?;
                let groups: Vec<&str> = groups.groups().iter().map(|g| g.group_name()).collect();
                let policies = iam.list_attached_user_policies().user_name(&s.user_name).send().await?;
                let policies: Vec<&str> = policies.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
                let profile = iam.get_login_profile().user_name(&s.user_name).send().await.is_ok();
                println!(
                    "      IAM: console password {profile}, groups {groups:?}, policies {policies:?}, tags {tags:?}"
                );
            }
            Err(_) => println!("      IAM: no such user"),
        }
    }
    let requester = detail.get("requested_by").and_then(|r| r.as_str()).unwrap_or_default();
    for (to, subject) in pipeline.emails_sent().iter().filter(|(to, _)| to == requester) {
        if subject.contains(ticket_id) {
            println!("  requester {to}: emailed {subject:?}");
        }
    }
    if drained.dead_lettered > 0 {
        println!("\n{} message(s) are in a dead-letter queue: a stage could not finish them.", drained.dead_lettered);
        return Ok(false);
    }
    Ok(true)
}

fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}
