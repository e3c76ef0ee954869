//! `make emulator`: the emulator binary starts moto with the pipeline's
//! resources and prints export lines that name a working deployment (the
//! endpoint, dummy credentials, and every variable `ops` reads).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn make_emulator_prints_the_exports_of_a_running_deployment() {
    let prefix = tests::unique("emu");
    let prefix = format!("{prefix}-");
    let mut child = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .env("IAM_PROVISIONER_PREFIX", &prefix)
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("emulator starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut exports = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if line.starts_with("# then:") {
            break;
        }
        if let Some(assignment) = line.strip_prefix("export ") {
            let (k, v) = assignment.split_once('=').expect("KEY=VALUE");
            let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).expect("single-quoted for the shell");
            exports.push((k.to_owned(), v.to_owned()));
        }
    }
    let var = |k: &str| exports.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone());
    let endpoint = var("AWS_ENDPOINT_URL").expect("the endpoint is exported");
    for k in [
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "TABLE_NAME",
        "CREATE_USER_QUEUE_URL",
        "ISSUE_CREDENTIALS_QUEUE_URL",
        "NOTIFY_USER_QUEUE_URL",
        "CREATE_USER_DLQ_URL",
        "ISSUE_CREDENTIALS_DLQ_URL",
        "NOTIFY_USER_DLQ_URL",
        "ACCOUNT_ID",
        "OFFBOARD_USER_QUEUE_URL",
        "CHANGE_ACCESS_DLQ_URL",
        "ALLOWED_GROUPS",
        "DEFAULT_BOUNDARY",
    ] {
        assert!(var(k).is_some(), "{k} not exported: {exports:?}");
    }
    assert_eq!(var("IAM_PROVISIONER_PREFIX").as_deref(), Some(prefix.as_str()));

    // They name what exists on that server.
    let sdk = tests::sdk_config(&endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for k in ["CREATE_USER_QUEUE_URL", "NOTIFY_USER_DLQ_URL"] {
        let url = var(k).unwrap_or_default();
        sqs.get_queue_attributes().queue_url(&url).send().await.unwrap_or_else(|e| panic!("{k}={url}: {e}"));
    }
    let table = var("TABLE_NAME").unwrap_or_default();
    aws_sdk_dynamodb::Client::new(&sdk).describe_table().table_name(&table).send().await.expect("the table exists");

    // Still running until stopped; its watchdog then stops moto.
    assert!(child.try_wait().expect("status").is_none(), "the emulator stays in the foreground");
    child.kill().expect("stop the emulator");
    child.wait().expect("reaped");
}
