//! What happened, counted for CloudWatch: one line per count in the
//! embedded metric format (EMF) on stdout, which CloudWatch Logs turns into
//! metrics of the namespace `METRICS_NAMESPACE` (the template passes the
//! deployment's prefix), by function. Off Lambda a count is a debug log line:
//! stdout belongs to the program there. The dashboard and alarms in
//! template.yaml read them.
//!
//! Counted where the thing happens, after it happened: a user created once
//! IAM has it, an email once SES took it; a replay that does nothing counts
//! nothing.

use std::cell::RefCell;

/// The names the dashboard and alarms use.
pub mod name {
    pub const TICKETS_ACCEPTED: &str = "TicketsAccepted";
    pub const TICKETS_REFUSED: &str = "TicketsRefused";
    pub const USERS_CREATED: &str = "UsersCreated";
    pub const USERS_REFUSED: &str = "UsersRefused";
    pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";
    pub const KEYS_ROTATED: &str = "KeysRotated";
    pub const KEYS_DEACTIVATED: &str = "KeysDeactivated";
    pub const KEYS_DELETED: &str = "KeysDeleted";
    pub const USERS_DISABLED: &str = "UsersDisabled";
    pub const USERS_DELETED: &str = "UsersDeleted";
    pub const ACCESS_CHANGED: &str = "AccessChanged";
    pub const EMAILS_SENT: &str = "EmailsSent";
    pub const DEPLOYMENT_FAULTS: &str = "DeploymentFaults";
    pub const UNTRUSTED_MESSAGES: &str = "UntrustedMessages";
}

tokio::task_local! {
    static CAPTURE: RefCell<Vec<(&'static str, u64)>>;
}

/// Counts `n` of `metric`.
pub fn count(metric: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    let captured = CAPTURE.try_with(|c| c.borrow_mut().push((metric, n))).is_ok();
    if captured {
        return;
    }
    // In Lambda stdout is the log CloudWatch reads; anywhere else it is the
    // program's output (`run-local --prepare` prints an environment file
    // there), so off Lambda a count is only a debug line.
    match lambda() {
        Some((function, namespace)) => println!("{}", emf_line(metric, n, now_millis(), namespace, function)),
        None => tracing::debug!(metric, n, "count"),
    }
}

/// The function's name and the metrics namespace when running in Lambda:
/// read from the environment once per process, not on every count.
fn lambda() -> Option<&'static (String, String)> {
    static LAMBDA: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
    LAMBDA
        .get_or_init(|| {
            let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok()?;
            let namespace = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "iam-provisioner".into());
            Some((function, namespace))
        })
        .as_ref()
}

/// Runs `work` with the counts it makes kept instead of printed (tests).
pub async fn capture<F: std::future::Future>(work: F) -> (F::Output, Vec<(&'static str, u64)>) {
    CAPTURE
        .scope(RefCell::new(Vec::new()), async move {
            let out = work.await;
            (out, CAPTURE.with(|c| c.take()))
        })
        .await
}

/// The sum of `metric` in captured counts.
pub fn total(counts: &[(&'static str, u64)], metric: &str) -> u64 {
    counts.iter().filter(|(m, _)| *m == metric).map(|(_, n)| n).sum()
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One count as CloudWatch's embedded metric format spells it.
pub fn emf_line(metric: &str, n: u64, timestamp_ms: u64, namespace: &str, function: &str) -> String {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": metric, "Unit": "Count"}]
            }]
        },
        "Function": function,
    });
    line[metric] = n.into();
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_an_embedded_metric_format_line() {
        let line: serde_json::Value =
            serde_json::from_str(&emf_line(name::USERS_CREATED, 3, 1_700_000_000_000, "acme", "acme-create-user"))
                .unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "acme");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
        assert_eq!(directive["Metrics"][0], serde_json::json!({"Name": "UsersCreated", "Unit": "Count"}));
        assert_eq!((line["Function"].as_str(), line["UsersCreated"].as_u64()), (Some("acme-create-user"), Some(3)));
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }

    #[tokio::test]
    async fn counts_made_under_capture_are_kept_not_printed() {
        let ((), counts) = capture(async {
            count(name::EMAILS_SENT, 1);
            count(name::EMAILS_SENT, 2);
            count(name::KEYS_DELETED, 0);
        })
        .await;
        assert_eq!(counts, [(name::EMAILS_SENT, 1), (name::EMAILS_SENT, 2)]);
        assert_eq!(total(&counts, name::EMAILS_SENT), 3);
    }
}
