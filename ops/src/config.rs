//! The CLI's settings: the same variables as the functions (read with the
//! same `EnvReader`, so every missing one is named at once), plus the queue
//! URLs no single function needs all of. The stages that came after the
//! first release (offboard-user, change-access) are optional: a deployment
//! from before them sets none of their variables, and the CLI reports them
//! as not deployed.

use crate::cli::QueueStage;
use shared::config::{AllowList, CreateUserConfig, EnvReader, FromEnv, RotateKeysConfig};
use shared::Error;

/// A stage's queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub stage: QueueStage,
    pub queue_url: String,
    pub dlq_url: String,
}

#[derive(Debug, Clone)]
pub struct OpsConfig {
    pub table_name: String,
    /// The deployed stages' queues, in `QueueStage::ALL` order: create-user,
    /// issue-credentials and notify-user always; offboard-user and
    /// change-access when their variables are set.
    pub routes: Vec<Route>,
    /// The pipeline's own account (`ACCOUNT_ID`), if configured: what
    /// `--account` is checked against and what reports name.
    pub account_id: Option<String>,
    /// rotate-keys' settings, for its dry run.
    pub rotation: RotateKeysConfig,
    /// create-user's allow-list (its variables, read by its own reader),
    /// which `plan` checks tickets against. Only `plan` needs it, so an
    /// incomplete one is not an error until then: `Err` says what is wrong.
    pub allow: Result<AllowList, String>,
}

impl OpsConfig {
    /// `None`: the stage is not deployed (its variables are unset).
    pub fn route(&self, stage: QueueStage) -> Option<&Route> {
        self.routes.iter().find(|r| r.stage == stage)
    }

    /// The account a command is about: `--account` if it is the pipeline's
    /// own (the only one served for now), else the pipeline's own.
    pub fn account(&self, asked: Option<&str>) -> Result<Option<String>, crate::cli::Usage> {
        match (asked, &self.account_id) {
            (None, own) => Ok(own.clone()),
            (Some(a), Some(own)) if a == own => Ok(Some(a.to_owned())),
            (Some(a), Some(own)) => Err(crate::cli::Usage(format!(
                "account {a} is not served: this deployment works in its own account ({own}) only"
            ))),
            (Some(a), None) => Err(crate::cli::Usage(format!(
                "--account {a}: set ACCOUNT_ID (the pipeline's own account) so it can be checked"
            ))),
        }
    }
}

/// `CREATE_USER_QUEUE_URL`, `CREATE_USER_DLQ_URL`, ...
pub fn queue_variables(stage: QueueStage) -> (String, String) {
    let base = stage.as_str().to_uppercase().replace('-', "_");
    (format!("{base}_QUEUE_URL"), format!("{base}_DLQ_URL"))
}

impl FromEnv for OpsConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut env = EnvReader::new(&lookup);
        let table_name = env.required("TABLE_NAME");
        let mut routes = Vec::with_capacity(QueueStage::ALL.len());
        for stage in QueueStage::ALL {
            let (queue, dlq) = queue_variables(stage);
            if stage.always_deployed() {
                routes.push(Route { stage, queue_url: env.required(&queue), dlq_url: env.required(&dlq) });
                continue;
            }
            match (env.optional(&queue, ""), env.optional(&dlq, "")) {
                (q, d) if q.is_empty() && d.is_empty() => {}
                (q, d) if q.is_empty() || d.is_empty() => {
                    let (set, unset) = if q.is_empty() { (&dlq, &queue) } else { (&queue, &dlq) };
                    env.problem(format!(
                        "{unset} is not set but {set} is: a deployed {} has both (set neither if it is not \
                         deployed)",
                        stage.as_str()
                    ));
                }
                (queue_url, dlq_url) => routes.push(Route { stage, queue_url, dlq_url }),
            }
        }
        let account_id = Some(env.optional("ACCOUNT_ID", "")).filter(|a| !a.is_empty());
        if let Some(a) = &account_id {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                env.problem(format!("ACCOUNT_ID={a:?} is not an AWS account id (12 digits)"));
            }
        }
        // rotate-keys' own reader, for its own variables. What it needs only
        // to act (the queue it hands successors to, the sender of its
        // warnings) a dry run never uses: the CLI sends nothing.
        let rotation = RotateKeysConfig::from_lookup(|k| match k {
            // Named by the reader above when missing.
            "TABLE_NAME" | "NEXT_QUEUE_URL" | "SENDER_EMAIL" => Some("-".into()),
            other => lookup(other),
        });
        let rotation = match rotation {
            Ok(r) => Some(r),
            Err(Error::Config(problems)) => {
                env.problem(problems);
                None
            }
            Err(e) => {
                env.problem(e.to_string());
                None
            }
        };
        let allow = allow_list(&lookup);
        let config = rotation.map(|rotation| Self { table_name, routes, account_id, rotation, allow });
        env.finish_parsed(config)
    }
}

/// create-user's allow-list, read by create-user's own reader from its own
/// variables (so `plan` holds a ticket to exactly what create-user,
/// offboard-user and change-access hold it to). What that reader needs only
/// to act (its table, its next queue, its sender) the CLI never uses.
fn allow_list(lookup: &impl Fn(&str) -> Option<String>) -> Result<AllowList, String> {
    let config = CreateUserConfig::from_lookup(|k| match k {
        "TABLE_NAME" | "NEXT_QUEUE_URL" | "SENDER_EMAIL" => Some("-".into()),
        // Settings of its runs, not of its rules.
        "IDEMPOTENCY_TTL_DAYS" | "BATCH_CONCURRENCY" => None,
        other => lookup(other),
    });
    config.map(|c| c.allow).map_err(|e| match e {
        Error::Config(problems) => problems,
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_variable_is_named_in_one_error() {
        let err = OpsConfig::from_lookup(|_| None).unwrap_err().to_string();
        for name in [
            "TABLE_NAME",
            "CREATE_USER_QUEUE_URL",
            "ISSUE_CREDENTIALS_QUEUE_URL",
            "NOTIFY_USER_QUEUE_URL",
            "CREATE_USER_DLQ_URL",
            "ISSUE_CREDENTIALS_DLQ_URL",
            "NOTIFY_USER_DLQ_URL",
        ] {
            assert!(err.contains(name), "{name} missing from {err}");
        }
        // Only what the CLI itself reads: not the functions' NEXT_QUEUE_URL.
        assert!(!err.contains("NEXT_QUEUE_URL") && !err.contains("SENDER_EMAIL"), "{err}");
        // The later stages are optional, and so is plan's allow-list.
        for optional in ["OFFBOARD_USER", "CHANGE_ACCESS", "ALLOWED_GROUPS", "ALLOWED_EMAIL_DOMAINS"] {
            assert!(!err.contains(optional), "{optional} in {err}");
        }
    }

    /// The variables of a deployment from before offboard-user and
    /// change-access, and of one with both.
    fn deployment<'a>(with: &'a [&'a str]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            let later = k.starts_with("OFFBOARD_USER_") || k.starts_with("CHANGE_ACCESS_");
            if later && !with.iter().any(|w| k.starts_with(w)) {
                return None;
            }
            match k {
                k if k.ends_with("_DAYS") || k == "BATCH_CONCURRENCY" || k == "ACCOUNT_ID" => None,
                k if k.starts_with("ALLOWED_") || k == "DEFAULT_BOUNDARY" || k.ends_with("_PREFIX") => None,
                _ => Some(format!("value-of-{k}")),
            }
        }
    }

    #[test]
    fn a_later_stage_without_its_variables_is_not_deployed_and_not_an_error() {
        let c = OpsConfig::from_lookup(deployment(&[])).expect("a deployment from before the later stages");
        let stages: Vec<QueueStage> = c.routes.iter().map(|r| r.stage).collect();
        assert_eq!(stages, [QueueStage::CreateUser, QueueStage::IssueCredentials, QueueStage::NotifyUser]);
        assert_eq!(c.route(QueueStage::OffboardUser), None);
        assert_eq!(c.route(QueueStage::ChangeAccess), None);

        let c = OpsConfig::from_lookup(deployment(&["OFFBOARD_USER_", "CHANGE_ACCESS_"])).expect("every stage");
        assert_eq!(c.routes.iter().map(|r| r.stage).collect::<Vec<_>>(), QueueStage::ALL);
        let offboard = c.route(QueueStage::OffboardUser).expect("deployed");
        assert_eq!(
            (offboard.queue_url.as_str(), offboard.dlq_url.as_str()),
            ("value-of-OFFBOARD_USER_QUEUE_URL", "value-of-OFFBOARD_USER_DLQ_URL")
        );
        assert_eq!(c.route(QueueStage::ChangeAccess).unwrap().dlq_url, "value-of-CHANGE_ACCESS_DLQ_URL");

        // Half a stage is a mistake, named.
        let err = OpsConfig::from_lookup(deployment(&["OFFBOARD_USER_QUEUE", "CHANGE_ACCESS_DLQ"])).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("OFFBOARD_USER_DLQ_URL is not set but OFFBOARD_USER_QUEUE_URL is"), "{err}");
        assert!(err.contains("CHANGE_ACCESS_QUEUE_URL is not set but CHANGE_ACCESS_DLQ_URL is"), "{err}");
    }

    #[test]
    fn plans_allow_list_is_create_users_and_is_needed_only_by_plan() {
        let c = OpsConfig::from_lookup(deployment(&[])).unwrap();
        let missing = c.allow.unwrap_err();
        for name in ["ALLOWED_GROUPS", "DEFAULT_BOUNDARY", "ALLOWED_EMAIL_DOMAINS"] {
            assert!(missing.contains(name), "{name} not in {missing}");
        }
        assert!(!missing.contains("NEXT_QUEUE_URL") && !missing.contains("SENDER_EMAIL"), "{missing}");
        let c = OpsConfig::from_lookup(|k| match k {
            "ALLOWED_GROUPS" => Some("arn:aws:iam::123456789012:group/ReadOnly,Developers".into()),
            "ALLOWED_MANAGED_POLICIES" => Some("arn:aws:iam::aws:policy/ReadOnlyAccess".into()),
            "DEFAULT_BOUNDARY" => Some("arn:aws:iam::123456789012:policy/fence".into()),
            "ALLOWED_EMAIL_DOMAINS" => Some("Example.com".into()),
            k => deployment(&[])(k),
        })
        .unwrap();
        let allow = c.allow.expect("complete");
        assert_eq!(allow.groups.into_iter().collect::<Vec<_>>(), ["Developers", "ReadOnly"]);
        assert_eq!(allow.email_domains.into_iter().collect::<Vec<_>>(), ["example.com"]);
    }

    #[test]
    fn rotation_settings_and_the_account_are_read_and_checked() {
        let c = OpsConfig::from_lookup(|k| match k {
            "ROTATION_AGE_DAYS" => Some("30".into()),
            "ACCOUNT_ID" => Some("123456789012".into()),
            k if k.ends_with("_DAYS") || k == "BATCH_CONCURRENCY" => None,
            _ => Some(format!("value-of-{k}")),
        })
        .expect("valid");
        assert_eq!(c.rotation.rotation_age_secs, 30 * shared::config::DAY);
        assert_eq!(c.route(QueueStage::NotifyUser).unwrap().dlq_url, "value-of-NOTIFY_USER_DLQ_URL");
        assert_eq!(c.account(None).unwrap().as_deref(), Some("123456789012"));
        assert!(c.account(Some("222222222222")).unwrap_err().0.contains("not served"));
        let err = OpsConfig::from_lookup(|k| match k {
            "ROTATION_AGE_DAYS" => Some("soon".into()),
            "ACCOUNT_ID" => Some("42".into()),
            k if k.ends_with("_DAYS") => None,
            _ => Some("x".into()),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("ROTATION_AGE_DAYS=\"soon\"") && err.contains("ACCOUNT_ID=\"42\""), "{err}");
    }
}
