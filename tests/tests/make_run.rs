//! `make run`'s runner as a newcomer uses it: on its own emulator, and on
//! one already running at AWS_ENDPOINT_URL (twice: its setup is idempotent).

use std::process::Command;

fn run_local(endpoint: Option<&str>, prefix: &str) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_run-local"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).env("IAM_PROVISIONER_PREFIX", prefix);
    match endpoint {
        Some(e) => cmd.env("AWS_ENDPOINT_URL", e),
        None => cmd.env_remove("AWS_ENDPOINT_URL"),
    };
    let out = cmd.output().expect("run-local runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout + &String::from_utf8_lossy(&out.stderr))
}

/// The per-user summary; `emailed` is false for a replay, which sends nothing.
fn assert_summary(output: &str, emailed: bool) {
    for user in ["emily.chen", "raj.patel", "ci-deployer"] {
        assert!(output.contains(&format!("  {user} — notified")), "no summary line for {user}:\n{output}");
        assert!(output.contains(&format!("secret: iam-provisioner/users/{user} (1 version(s))")), "{output}");
    }
    assert!(output.contains("IAM user: arn:aws:iam::123456789012:user/engineering/raj.patel"), "{output}");
    let sent = [
        r#"emails sent: ["Your AWS sign-in details", "Your AWS console password", "Your AWS access key"]"#,
        r#"requester it-ops@example.com: emailed "Onboarding ticket ONB-1042: 3 user(s) ready, 0 refused""#,
    ];
    for line in sent {
        assert_eq!(output.contains(line), emailed, "{line}:\n{output}");
    }
    if !emailed {
        assert_eq!(output.matches("emails sent: none").count(), 3, "{output}");
    }
}

#[test]
fn make_run_starts_its_own_emulator_and_prints_the_summary() {
    let (code, output) = run_local(None, "iam-provisioner-");
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("emulator: started moto_server at http://127.0.0.1:"), "{output}");
    assert_summary(&output, true);
}

#[test]
fn make_run_uses_a_running_emulator_and_can_run_again() {
    let endpoint = &tests::moto::shared().endpoint;
    let (code, output) = run_local(Some(endpoint), "mr-");
    assert_eq!(code, 0, "{output}");
    assert!(output.contains(&format!("emulator: using AWS_ENDPOINT_URL={endpoint}")), "{output}");
    assert_summary(&output, true);
    let (code, again) = run_local(Some(endpoint), "mr-");
    assert_eq!(code, 0, "second run: {again}");
    assert_summary(&again, false);
    assert!(again.contains("ticket already handled"), "a replay does nothing: {again}");
}

#[test]
fn make_run_refuses_a_file_that_is_not_json() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_run-local"));
    let out = cmd.arg("Cargo.toml").current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `make run EVENT=...` with an offboarding ticket: the envelope decides
/// the stage. On a fresh emulator the sample onboarding ticket runs first,
/// so the users the ticket names exist.
#[test]
fn make_run_takes_an_offboarding_ticket_by_its_envelope() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_run-local"));
    cmd.arg("events/offboarding-ticket.json")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("IAM_PROVISIONER_PREFIX", "iam-provisioner-")
        .env_remove("AWS_ENDPOINT_URL");
    let out = cmd.output().expect("run-local runs");
    let output = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{output}");
    assert!(output.contains("preparing: onboarding events/onboarding-ticket.json first"), "{output}");
    assert!(output.contains("offboarding ticket OFF-311:"), "{output}");
    assert!(output.contains("  emily.chen — disabled"), "{output}");
    assert!(output.contains("  ci-deployer — deleted"), "{output}");
    assert!(output.contains("iam-provisioner:offboarded=OFF-311"), "{output}");
    assert!(
        output.contains(
            r#"requester it-ops@example.com: emailed "Offboarding ticket OFF-311: 2 user(s) offboarded, 0 refused""#
        ),
        "{output}"
    );
}

#[test]
fn make_run_refuses_an_envelope_of_another_kind() {
    let dir = std::env::temp_dir().join(tests::unique("mr-kind"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("other.json");
    std::fs::write(&path, r#"{"source": "onboarding.tickets", "detail-type": "Something Else", "detail": {}}"#)
        .unwrap();
    let endpoint = &tests::moto::shared().endpoint;
    let out = Command::new(env!("CARGO_BIN_EXE_run-local"))
        .arg(&path)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("IAM_PROVISIONER_PREFIX", "mr-kind-")
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{output}");
    assert!(output.contains("is not a ticket kind the pipeline takes"), "{output}");
}
