//! The operator CLI against the emulator: tickets run through the local
//! pipeline, then read back with `status`; dead-letter messages redriven;
//! tickets replayed and planned; and the built binary's exit statuses.
#![recursion_limit = "256"]

use ops::cli::{self, Invocation};
use ops::config::OpsConfig;
use ops::{Answer, AwsOps};
use serde_json::{json, Value};
use shared::config::FromEnv;
use tests::proxy::FaultProxy;
use tests::{unique, Harness};

/// moto has no ListServiceSpecificCredentials: the fault proxy answers it
/// for a user as IAM would for one with none (as in tests/tests/offboard_user.rs).
const NO_SERVICE_CREDENTIALS: &str = "<ListServiceSpecificCredentialsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials/></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>";

/// What ops reads: the bootstrap's `ops_env`, and create-user's allow-list
/// of that deployment, which `plan` checks tickets against (`ops_env` does
/// not export it).
fn ops_vars(h: &Harness) -> Vec<(String, String)> {
    let settings = &h.pipeline.env.settings;
    let a = &settings.allow;
    let join = |items: Vec<String>| items.join(",");
    let mut vars = h.pipeline.env.ops_env();
    vars.extend(
        [
            ("ALLOWED_GROUPS", join(a.groups.iter().cloned().collect())),
            ("ALLOWED_MANAGED_POLICIES", join(a.managed_policies.iter().map(ToString::to_string).collect())),
            ("DEFAULT_BOUNDARY", a.default_boundary.to_string()),
            ("ALLOWED_EMAIL_DOMAINS", join(a.email_domains.iter().cloned().collect())),
            ("SECRET_PREFIX", settings.secret_prefix.clone()),
            ("CUSTOM_PASSWORD_PREFIX", settings.custom_password_prefix.clone()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    vars
}

fn config_of(vars: &[(String, String)]) -> OpsConfig {
    OpsConfig::from_lookup(|k| vars.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone()))
        .expect("the bootstrap's environment is a complete configuration")
}

fn ops_for(h: &Harness) -> AwsOps {
    AwsOps::over_aws(&h.sdk, config_of(&ops_vars(h)))
}

/// ops with its AWS calls through `endpoint` (a fault proxy).
async fn ops_at(h: &Harness, endpoint: &str) -> AwsOps {
    AwsOps::over_aws(&tests::sdk_config(endpoint).await, config_of(&ops_vars(h)))
}

fn offboarding(ticket_id: &str, users: Value) -> Value {
    json!({"source": "onboarding.tickets", "detail-type": "Offboarding Ticket Approved",
           "detail": {"ticket_id": ticket_id, "requested_by": "it-ops@example.com", "users": users}})
}

/// A ticket file in a directory of its own under the system's temp dir.
fn ticket_file(s: &str, name: &str, ticket: &Value) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ops-emulator-{s}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(ticket).expect("JSON")).expect("ticket file");
    path
}

/// The built binary against `endpoint` with `vars`: (status, stdout, stderr).
fn run_binary(endpoint: &str, vars: &[(String, String)], args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ops"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", tests::REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run ops");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ask(ops: &AwsOps, args: &str) -> Answer {
    let invocation: Invocation = cli::parse(args.split_whitespace().map(str::to_owned)).expect("valid usage");
    ops.answer(&invocation).await
}

fn user(name: &str, console: bool, programmatic: bool) -> Value {
    json!({"user_name": name, "email": format!("{name}@example.com"), "access": {"console": console, "programmatic": programmatic}})
}

/// The bodies waiting in a queue (received, then made visible again).
async fn bodies(h: &Harness, queue: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&h.sdk);
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .expect("ReceiveMessage");
    out.messages().iter().filter_map(|m| m.body().map(str::to_owned)).collect()
}

#[tokio::test]
async fn status_names_each_users_stage_and_the_emails_sent() {
    let h = Harness::new().await;
    let ops = ops_for(&h);
    let s = unique("");
    let id = format!("ONB-OPS-{s}");
    let (both, console) = (format!("both{s}"), format!("con{s}"));
    let ticket = json!({"ticket_id": id, "requested_by": "req@example.com",
        "users": [user(&both, true, true), user(&console, true, false)]});
    let drained = h.run(&ticket).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");

    let answer = ask(&ops, &format!("status {id}")).await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    let text = &answer.stdout;
    let key = h.iam.list_access_keys().user_name(&both).send().await.unwrap().access_key_metadata()[0]
        .access_key_id()
        .unwrap()
        .to_owned();
    for line in [
        format!("ticket {id} (account: 123456789012)"),
        format!("  {both}: notified\n      emails: sign-in sent, password sent, access-key#{key} sent\n"),
        format!("  {console}: notified\n      emails: sign-in sent, password sent\n"),
        "  requester req@example.com: summary sent\n".to_owned(),
    ] {
        assert!(text.contains(&line), "{line:?} not in\n{text}");
    }
    // No secret: the password and secret access key are nowhere in it.
    assert!(!text.contains("password\":") && !text.contains("secret_access_key"));

    let answer = ask(&ops, &format!("--json status {id}")).await;
    assert_eq!(answer.code, ops::ANSWERED);
    let v: Value = serde_json::from_str(&answer.stdout).expect("JSON");
    assert_eq!(v["ticket_id"], id.as_str());
    assert_eq!(v["failed"], false);
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    let of = |name: &str| users.iter().find(|u| u["user_name"] == name).cloned().unwrap();
    assert_eq!(of(&both)["status"], "notified");
    let emails = of(&both)["emails"].clone();
    let kinds: Vec<(&str, &str)> = emails
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    let access_key = format!("access-key#{key}");
    assert_eq!(kinds, [("sign-in", "sent"), ("password", "sent"), (access_key.as_str(), "sent")]);
    assert!(of(&console)["emails"][0]["message_id"].is_string());
    assert_eq!(v["requester"]["summary"]["state"], "sent");
}

#[tokio::test]
async fn a_refused_ticket_is_a_failure_with_its_reasons_and_an_unknown_one_is_an_error() {
    let h = Harness::new().await;
    let ops = ops_for(&h);
    let s = unique("");
    let id = format!("ONB-OPSNO-{s}");
    let mut admin = user(&format!("adm{s}"), true, false);
    admin["groups"] = json!(["Admins"]);
    h.run(&json!({"ticket_id": id, "requested_by": "req@example.com", "users": [admin]})).await;

    let answer = ask(&ops, &format!("status {id}")).await;
    assert_eq!(answer.code, ops::FAILURE, "{answer:?}");
    assert!(answer.stdout.contains(&format!("  adm{s}: failed\n      reason: users[0].groups")), "{}", answer.stdout);
    assert!(answer.stdout.contains("refusal email sent"), "{}", answer.stdout);
    let v: Value = serde_json::from_str(&ask(&ops, &format!("status {id} --json")).await.stdout).unwrap();
    assert_eq!((v["failed"].as_bool(), v["users"][0]["status"].as_str()), (Some(true), Some("failed")));
    assert!(v["users"][0]["reasons"][0].as_str().unwrap().contains("Admins"), "{v}");

    let answer = ask(&ops, "status ONB-NEVER-SEEN").await;
    assert_eq!(answer.code, ops::FAILURE);
    assert!(answer.stderr.contains("unknown ticket ONB-NEVER-SEEN"), "{answer:?}");
}

#[tokio::test]
async fn redrive_moves_dead_letters_back_to_their_queue_and_reports_the_counts() {
    let h = Harness::new().await;
    let ops = ops_for(&h);
    let env = &h.pipeline.env;
    let (create_user_dlq, notify_user_dlq) = (&env.dead_letter_queues[0], &env.dead_letter_queues[2]);
    h.pipeline.redeliver(create_user_dlq, "{\"ticket\": 1}").await.unwrap();
    for n in 0..3 {
        h.pipeline.redeliver(notify_user_dlq, &format!("{{\"n\": {n}}}")).await.unwrap();
    }

    let answer = ask(&ops, "redrive create-user").await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    assert_eq!(answer.stdout, format!("create-user: 1 message(s) moved back to {}create-user\n", env.settings.prefix));
    assert_eq!(bodies(&h, &env.create_user_queue).await, ["{\"ticket\": 1}"]);
    assert_eq!(h.pipeline.depth(create_user_dlq).await.unwrap(), 0);
    assert_eq!(h.pipeline.depth(notify_user_dlq).await.unwrap(), 3, "only the stage asked for");

    let answer = ask(&ops, "redrive --json").await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    let v: Value = serde_json::from_str(&answer.stdout).unwrap();
    let counts: Vec<(&str, u64, u64)> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["stage"].as_str().unwrap(), q["moved"].as_u64().unwrap(), q["left"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        counts,
        [
            ("create-user", 0, 0),
            ("issue-credentials", 0, 0),
            ("notify-user", 3, 0),
            ("offboard-user", 0, 0),
            ("change-access", 0, 0)
        ]
    );
    assert_eq!(v["not_deployed"], json!([]));
    let mut moved = bodies(&h, &env.notify_user_queue).await;
    moved.sort();
    assert_eq!(moved, ["{\"n\": 0}", "{\"n\": 1}", "{\"n\": 2}"]);
    assert_eq!(h.pipeline.depth(notify_user_dlq).await.unwrap(), 0);
}

#[tokio::test]
async fn replay_puts_each_ticket_on_the_queue_its_bus_rule_feeds() {
    let h = Harness::new().await;
    let ops = ops_for(&h);
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/onboarding-ticket.json");
    let answer = ask(&ops, &format!("replay {file}")).await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    assert!(answer.stdout.starts_with("ticket ONB-1042 put on create-user"), "{}", answer.stdout);
    let on_queue = bodies(&h, &h.pipeline.env.create_user_queue).await;
    assert_eq!(on_queue.len(), 1);
    let body: Value = serde_json::from_str(&on_queue[0]).unwrap();
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(body, sample, "the event as EventBridge would deliver it");

    let not_a_ticket = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let answer = ask(&ops, &format!("replay {not_a_ticket}")).await;
    assert_eq!(answer.code, ops::USAGE, "{answer:?}");
    assert!(answer.stderr.contains("is not replayed: not JSON"), "{}", answer.stderr);
    assert_eq!(bodies(&h, &h.pipeline.env.create_user_queue).await.len(), 1);

    // An offboarding ticket goes where its bus rule sends it.
    let s = unique("");
    let off = offboarding(&format!("OFF-RPL-{s}"), json!([{"user_name": "emily.chen"}]));
    let answer = ask(&ops, &format!("replay {}", ticket_file(&s, "off.json", &off).display())).await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    assert!(
        answer.stdout.starts_with(&format!("offboarding ticket OFF-RPL-{s} put on offboard-user")),
        "{}",
        answer.stdout
    );
    let on_queue = bodies(&h, &h.pipeline.env.offboard_user_queue).await;
    assert_eq!(
        on_queue.iter().map(|b| serde_json::from_str::<Value>(b).unwrap()).collect::<Vec<_>>(),
        std::slice::from_ref(&off)
    );
    // An event no bus rule routes is refused, and sent nowhere.
    let mut other = off.clone();
    other["detail-type"] = json!("Password Reset Approved");
    let answer = ask(&ops, &format!("replay {}", ticket_file(&s, "other.json", &other).display())).await;
    assert_eq!(answer.code, ops::USAGE, "{answer:?}");
    assert!(
        answer.stderr.contains("detail-type \"Password Reset Approved\", which no rule of the pipeline's bus routes"),
        "{}",
        answer.stderr
    );
    assert_eq!(bodies(&h, &h.pipeline.env.offboard_user_queue).await.len(), 1);
    assert_eq!(bodies(&h, &h.pipeline.env.create_user_queue).await.len(), 1);
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("ops-emulator-{s}")));
}

/// `plan` of an offboarding ticket naming a user the local pipeline
/// onboarded: the steps are `lifecycle::plan` over what IAM holds for it,
/// and nothing changes (no write request, the same IAM state, no record).
/// Then the ticket run for real, its `status`, and a second plan; and the
/// binary's exit statuses for plan. (Multi-threaded: the proxy serves the
/// binary while this test waits for it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_names_an_offboardings_steps_and_changes_nothing() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let (name, other, onb, off) =
        (format!("pln{s}"), format!("oth{s}"), format!("ONB-PLN-{s}"), format!("OFF-PLN-{s}"));
    let mut u = user(&name, true, true);
    u["groups"] = json!(["ReadOnly"]);
    let drained = h.run(&json!({"ticket_id": onb, "requested_by": "req@example.com", "users": [u]})).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    // Someone else's user, made outside the pipeline.
    h.iam.create_user().user_name(&other).send().await.unwrap();
    for n in [&name, &other] {
        proxy.answer("ListServiceSpecificCredentials", n, NO_SERVICE_CREDENTIALS.to_owned());
    }
    let ops = ops_at(&h, &proxy.endpoint).await;
    let names = [name.clone(), other.clone()];
    let before = h.state(&s, &names).await;
    let key = h.iam.list_access_keys().user_name(&name).send().await.unwrap().access_key_metadata()[0]
        .access_key_id()
        .unwrap()
        .to_owned();
    let today = shared::text::date(shared::ports::Clock::now(&shared::ports::SystemClock));

    let disable = ticket_file(&s, "disable.json", &offboarding(&off, json!([{"user_name": name}])));
    proxy.record_requests();
    let answer = ask(&ops, &format!("plan {}", disable.display())).await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    let text = &answer.stdout;
    for line in [
        format!("plan of offboarding ticket {off} (nothing done)\n"),
        format!("  {name} (disable): the pipeline's (onboarded by {onb}); "),
        "      1. DeleteLoginProfile\n".to_owned(),
        format!("      2. DeactivateAccessKey {key}\n"),
        "RemoveUserFromGroup ReadOnly\n".to_owned(),
        format!("TagOffboarded (on {today}, ticket_id {off})\n"),
        "would pass\n".to_owned(),
    ] {
        assert!(text.contains(&line), "{line:?} not in\n{text}");
    }
    // Exactly the planner's steps over what IAM holds (read by the
    // Offboarding port's own implementation).
    let iam = shared::aws::IamDirectory::new(&tests::sdk_config(&proxy.endpoint).await);
    let holdings = shared::ports::Offboarding::holdings(&iam, &name).await.unwrap().expect("the user");
    let expected =
        |action, id: &str| serde_json::to_value(shared::lifecycle::plan(&holdings, action, id, &today)).unwrap();
    let v: Value =
        serde_json::from_str(&ask(&ops, &format!("--json plan {}", disable.display())).await.stdout).unwrap();
    assert_eq!((v["kind"].as_str(), v["passes"].as_bool()), (Some("offboarding"), Some(true)), "{v}");
    assert_eq!(v["users"][0]["steps"], expected(shared::lifecycle::OffboardAction::Disable, &off));
    assert_eq!(v["users"][0]["onboarded_by"], onb.as_str());
    let delete = ticket_file(&s, "delete.json", &offboarding(&off, json!([{"user_name": name, "action": "delete"}])));
    let v: Value = serde_json::from_str(&ask(&ops, &format!("--json plan {}", delete.display())).await.stdout).unwrap();
    assert_eq!(v["users"][0]["steps"], expected(shared::lifecycle::OffboardAction::Delete, &off));
    assert_eq!(v["users"][0]["steps"].as_array().unwrap().last().unwrap()["call"], "DeleteUser");
    // A user the pipeline did not create: named, why, and the ticket refused.
    let mixed = ticket_file(&s, "mixed.json", &offboarding(&off, json!([{"user_name": name}, {"user_name": other}])));
    let answer = ask(&ops, &format!("plan {}", mixed.display())).await;
    assert_eq!(answer.code, ops::FAILURE, "{answer:?}");
    assert!(
        answer.stdout.contains(&format!(
            "  {other} (disable): not the pipeline's: user \"{other}\" was not created by iam-provisioner"
        )),
        "{}",
        answer.stdout
    );
    assert!(answer.stdout.contains("would be refused as a whole"), "{}", answer.stdout);

    // Nothing written: every request a read, IAM as it was, no record.
    let writes: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| !["Get", "List", "Query", "BatchGet", "Describe"].iter().any(|p| r.action.starts_with(p)))
        .map(|r| format!("{}:{}", r.service, r.action))
        .collect();
    assert!(writes.is_empty(), "plan wrote: {writes:?}");
    assert!(proxy.requests().iter().any(|r| r.action == "ListAccessKeys"), "IAM was not read");
    assert_eq!(h.state(&s, &names).await, before, "plan changed IAM");
    assert_eq!(ask(&ops, &format!("status {off}")).await.code, ops::FAILURE, "plan left a record");

    // The binary: 0 would pass, 1 would be refused, 2 bad usage or configuration.
    let vars = ops_vars(&h);
    let (code, out, _) = run_binary(&proxy.endpoint, &vars, &["plan", &disable.display().to_string()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{name} (disable): the pipeline's")), "{out}");
    let (code, out, _) = run_binary(&proxy.endpoint, &vars, &["--json", "plan", &mixed.display().to_string()]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["passes"], false);
    let cargo_toml = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let (code, _, err) = run_binary(&proxy.endpoint, &vars, &["plan", cargo_toml]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a ticket: not JSON") && err.contains("usage: ops"), "{err}");
    let (code, _, err) = run_binary(&proxy.endpoint, &vars, &["plan"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("plan needs a ticket file"), "{err}");
    let missing = format!("/nonexistent/{s}.json");
    let (code, _, err) = run_binary(&proxy.endpoint, &vars, &["plan", &missing]);
    assert_eq!(code, Some(2));
    assert!(err.contains("plan: cannot read"), "{err}");
    // What make emulator exports holds the allow-list; without it plan says what is missing.
    let (code, out, err) =
        run_binary(&proxy.endpoint, &h.pipeline.env.ops_env(), &["plan", &disable.display().to_string()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let no_allow_list: Vec<(String, String)> = h
        .pipeline
        .env
        .ops_env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("ALLOWED_") && k != "DEFAULT_BOUNDARY")
        .collect();
    let (code, _, err) = run_binary(&proxy.endpoint, &no_allow_list, &["plan", &disable.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("create-user's allow-list, which is not configured") && err.contains("ALLOWED_GROUPS"),
        "{err}"
    );
    assert_eq!(h.state(&s, &names).await, before, "the binary's plan changed IAM");

    // Run for real: status follows it, and a second plan has nothing to do.
    let drained = h.run(&offboarding(&off, json!([{"user_name": name}]))).await;
    assert_eq!((drained.dead_lettered, drained.retried), (0, 0), "{drained:?}");
    let answer = ask(&ops, &format!("status {off}")).await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    for line in [
        format!("ticket {off} (account: 123456789012)\n  offboarding ticket, run by offboard-user: finished\n"),
        format!("  {name}: disabled\n      result: disabled: "),
        "  requester: summary sent\n".to_owned(),
    ] {
        assert!(answer.stdout.contains(&line), "{line:?} not in\n{}", answer.stdout);
    }
    let v: Value = serde_json::from_str(&ask(&ops, &format!("--json status {off}")).await.stdout).unwrap();
    assert_eq!((v["kind"].as_str(), v["run"].as_str()), (Some("offboarding"), Some("finished")));
    let answer = ask(&ops, &format!("plan {}", disable.display())).await;
    assert_eq!(answer.code, ops::ANSWERED, "{answer:?}");
    assert!(
        answer.stdout.contains(&format!("the pipeline already has a run of ticket {off} (finished)")),
        "{}",
        answer.stdout
    );
    assert!(
        answer
            .stdout
            .contains(&format!("  {name} (disable): the pipeline's (onboarded by {onb}); already as asked: no call\n")),
        "{}",
        answer.stdout
    );
    let _ = std::fs::remove_dir_all(disable.parent().unwrap());
}

/// The built binary: its exit statuses and what it prints, with the
/// environment `make emulator` exports.
#[tokio::test]
async fn the_binary_exits_0_answered_1_failure_2_bad_usage() {
    let h = Harness::new().await;
    let s = unique("");
    let id = format!("ONB-BIN-{s}");
    h.run(
        &json!({"ticket_id": id, "requested_by": "req@example.com", "users": [user(&format!("bin{s}"), false, true)]}),
    )
    .await;
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ops"));
        cmd.args(args)
            .env("AWS_ENDPOINT_URL", &h.endpoint)
            .env("AWS_REGION", tests::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .envs(h.pipeline.env.ops_env());
        let out = cmd.output().expect("run ops");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["status", &id]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("bin{s}: notified")), "{out}");
    let (code, out, _) = run(&["--json", "status", &id]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["users"][0]["status"], "notified");

    // rotate-keys' dry run over the user's real key: nothing due yet.
    let key = h.iam.list_access_keys().user_name(format!("bin{s}")).send().await.unwrap().access_key_metadata()[0]
        .access_key_id()
        .unwrap()
        .to_owned();
    let (code, out, _) = run(&["rotation-plan", &format!("bin{s}")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{key} (0 days old): nothing due; next: rotate on ")), "{out}");
    let (code, out, _) = run(&["--json", "rotation-plan", &format!("bin{s}")]);
    assert_eq!(code, Some(0));
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((plan["dry_run"].as_bool(), plan["users"].as_u64()), (Some(true), Some(1)));
    let (code, out, _) = run(&["rotation-plan", &format!("nobody{s}")]);
    assert_eq!(code, Some(1), "{out}");

    let (code, out, err) = run(&["status", "ONB-UNKNOWN"]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert!(err.contains("unknown ticket ONB-UNKNOWN"), "{err}");
    let (code, out, _) = run(&["--json", "status", "ONB-UNKNOWN"]);
    assert_eq!(code, Some(1));
    assert!(serde_json::from_str::<Value>(&out).unwrap()["error"].as_str().unwrap().contains("unknown ticket"));

    // The queues: every stage, the later ones reported as not deployed
    // when their variables are unset (a deployment from before them).
    let (code, out, _) = run(&["status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("create-user: 0 waiting, 0 dead-lettered\n"), "{out}");
    assert!(out.contains("offboard-user: 0 waiting, 0 dead-lettered\n"), "{out}");
    let older: Vec<(String, String)> = h
        .pipeline
        .env
        .ops_env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("OFFBOARD_USER_") && !k.starts_with("CHANGE_ACCESS_"))
        .collect();
    let (code, out, err) = run_binary(&h.endpoint, &older, &["status"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("change-access: not deployed (CHANGE_ACCESS_QUEUE_URL and CHANGE_ACCESS_DLQ_URL unset)\n"),
        "{out}"
    );
    let (code, out, _) = run_binary(&h.endpoint, &older, &["redrive", "offboard-user"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("offboard-user: not deployed"), "{out}");

    let (code, _, err) = run(&["redrive", "create-users"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown stage \"create-users\"") && err.contains("usage: ops"), "{err}");
    let (code, _, err) = run(&["--account", "222222222222", "status", &id]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not served"), "{err}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("usage: ops"));

    // Without its configuration: every missing variable named at once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ops"))
        .args(["status", &id])
        .env_clear()
        .output()
        .expect("run ops");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TABLE_NAME is not set") && err.contains("NOTIFY_USER_DLQ_URL is not set"), "{err}");
}
