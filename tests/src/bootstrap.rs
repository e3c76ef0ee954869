//! What the pipeline needs in an account, created idempotently: what
//! `make run` sets up before delivering a ticket, and what each test sets up
//! under its own prefix. template.yaml is the deployed counterpart.

use aws_config::SdkConfig;
use shared::config::{
    AllowList, ChangeAccessConfig, CreateUserConfig, EnvReader, FromEnv, IssueCredentialsConfig, NotifyUserConfig,
    OffboardUserConfig, RotateKeysConfig, CHANGE_PASSWORD_POLICY, DAY, DEFAULT_CUSTOM_PASSWORD_PREFIX,
    DEFAULT_SECRET_PREFIX,
};
use shared::managed::TicketKind;
use shared::names::PolicyArn;
use std::collections::BTreeSet;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const POLICY_READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
pub const POLICY_POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
pub const POLICY_CHANGE_PASSWORD: &str = "arn:aws:iam::aws:policy/IAMUserChangePassword";
/// The emulator's (and the template's local profile's) account.
pub const ACCOUNT: &str = "123456789012";

/// The fence of CONTRACT.md 5a as the bootstrap creates it. moto enforces
/// no policy, so this document only has to exist; what the deployed fence
/// allows and denies is template.yaml's `UserBoundary`, proven by the IAM
/// simulator suite (tests/iam).
const LOCAL_FENCE: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"SeeTemplateUserBoundary","Effect":"Allow","Action":"*","Resource":"*"},
  {"Sid":"NoIamWritesLocally","Effect":"Deny","Action":["iam:Create*","iam:Put*","iam:Attach*","iam:Tag*","iam:Update*","iam:Delete*","iam:Add*"],"Resource":"*"}
]}"#;

/// The local defaults of CONTRACT.md section 5, each overridable by the
/// variable the deployed functions read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub prefix: String,
    pub sender: String,
    pub secret_prefix: String,
    pub custom_password_prefix: String,
    /// Where rotate-keys looks for users.
    pub user_path_prefix: String,
    /// The key the users' secrets are encrypted with (SECRETS_KMS_KEY_ID).
    pub secrets_kms_key_id: Option<String>,
    pub allow: AllowList,
    /// Groups created if missing, with the managed policy each carries.
    pub groups: Vec<(String, String)>,
    /// BATCH_CONCURRENCY of the SQS-driven stages.
    pub concurrency: usize,
}

impl Settings {
    pub fn local_defaults(prefix: &str) -> Self {
        Self::from_lookup(prefix, |_| None)
    }

    pub fn from_env(prefix: &str) -> Self {
        Self::from_lookup(prefix, |k| std::env::var(k).ok())
    }

    fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut env = EnvReader::new(lookup);
        let set = |s: String| {
            s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<BTreeSet<_>>()
        };
        // The fence this deployment creates is every user's boundary.
        let default_boundary = PolicyArn::parse(&format!("arn:aws:iam::{ACCOUNT}:policy/{prefix}user-boundary"))
            .unwrap_or_else(|e| panic!("the fence's ARN from the prefix {prefix:?}: {e}"));
        let name = prefix.trim_end_matches('-');
        let custom_password_prefix = env.optional("CUSTOM_PASSWORD_PREFIX", DEFAULT_CUSTOM_PASSWORD_PREFIX);
        let kms = env.optional("SECRETS_KMS_KEY_ID", &format!("arn:aws:kms:{}:{ACCOUNT}:alias/{name}", crate::REGION));
        Self {
            prefix: prefix.to_owned(),
            sender: env.optional("SENDER_EMAIL", "iam-provisioner@example.com"),
            secret_prefix: env.optional("SECRET_PREFIX", DEFAULT_SECRET_PREFIX),
            custom_password_prefix: custom_password_prefix.clone(),
            user_path_prefix: env.optional("USER_PATH_PREFIX", "/"),
            secrets_kms_key_id: Some(kms),
            allow: AllowList {
                groups: set(env.optional("ALLOWED_GROUPS", "Developers,Power_Users,ReadOnly")),
                managed_policies: set(env.optional(
                    "ALLOWED_MANAGED_POLICIES",
                    &format!("{POLICY_READ_ONLY},{POLICY_POWER_USER},{POLICY_CHANGE_PASSWORD}"),
                ))
                .iter()
                .map(|a| PolicyArn::parse(a).unwrap_or_else(|e| panic!("ALLOWED_MANAGED_POLICIES: {e}")))
                .collect(),
                boundaries: BTreeSet::from([default_boundary.clone()]),
                default_boundary,
                email_domains: set(env.optional("ALLOWED_EMAIL_DOMAINS", "example.com,corp.example"))
                    .into_iter()
                    .map(|d| d.to_lowercase())
                    .collect(),
                custom_password_prefix,
            },
            groups: vec![
                ("Developers".into(), POLICY_READ_ONLY.into()),
                ("Power_Users".into(), POLICY_POWER_USER.into()),
                ("ReadOnly".into(), POLICY_READ_ONLY.into()),
            ],
            concurrency: env.concurrency(),
        }
    }
}

/// The resources of one local deployment.
#[derive(Debug, Clone)]
pub struct Environment {
    pub settings: Settings,
    pub table: String,
    pub bus: String,
    pub create_user_queue: String,
    pub issue_credentials_queue: String,
    pub notify_user_queue: String,
    /// Offboarding tickets (their own rule on the bus).
    pub offboard_user_queue: String,
    /// Access-change tickets (their own rule on the bus).
    pub change_access_queue: String,
    /// In the order of `STAGE_QUEUES`.
    pub dead_letter_queues: Vec<String>,
}

/// The SQS-fed stages, in the order of `Environment::dead_letter_queues`.
pub const STAGE_QUEUES: [&str; 5] =
    ["create-user", "issue-credentials", "notify-user", "offboard-user", "change-access"];

impl Environment {
    pub fn create_user_config(&self) -> CreateUserConfig {
        CreateUserConfig {
            table_name: self.table.clone(),
            next_queue_url: self.issue_credentials_queue.clone(),
            sender: self.settings.sender.clone(),
            allow: self.settings.allow.clone(),
            idempotency_ttl_secs: 365 * DAY,
            concurrency: self.settings.concurrency,
        }
    }

    pub fn issue_credentials_config(&self) -> IssueCredentialsConfig {
        IssueCredentialsConfig {
            table_name: self.table.clone(),
            next_queue_url: self.notify_user_queue.clone(),
            sender: self.settings.sender.clone(),
            secret_prefix: self.settings.secret_prefix.clone(),
            change_password_policy: CHANGE_PASSWORD_POLICY.into(),
            secrets_kms_key_id: self.settings.secrets_kms_key_id.clone(),
            idempotency_ttl_secs: 365 * DAY,
            concurrency: self.settings.concurrency,
        }
    }

    /// The environment a function's Lambda would get from template.yaml,
    /// for running it locally (`make invoke`).
    pub fn function_env(&self, function: &str) -> Option<Vec<(String, String)>> {
        let s = &self.settings;
        let mut vars = vec![
            ("TABLE_NAME", self.table.clone()),
            ("SENDER_EMAIL", s.sender.clone()),
            ("BATCH_CONCURRENCY", s.concurrency.to_string()),
            ("ALLOWED_EMAIL_DOMAINS", s.allow.email_domains.iter().cloned().collect::<Vec<_>>().join(",")),
            ("SECRET_PREFIX", s.secret_prefix.clone()),
        ];
        fn join<T: AsRef<str>>(set: &std::collections::BTreeSet<T>) -> String {
            set.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(",")
        }
        match function {
            "create-user" => vars.extend([
                ("NEXT_QUEUE_URL", self.issue_credentials_queue.clone()),
                ("ALLOWED_GROUPS", join(&s.allow.groups)),
                ("ALLOWED_MANAGED_POLICIES", join(&s.allow.managed_policies)),
                ("DEFAULT_BOUNDARY", s.allow.default_boundary.to_string()),
                ("CUSTOM_PASSWORD_PREFIX", s.custom_password_prefix.clone()),
            ]),
            "issue-credentials" => vars.extend([
                ("NEXT_QUEUE_URL", self.notify_user_queue.clone()),
                ("CUSTOM_PASSWORD_PREFIX", s.custom_password_prefix.clone()),
                ("SECRETS_KMS_KEY_ID", s.secrets_kms_key_id.clone().unwrap_or_default()),
            ]),
            "notify-user" => vars.push(("SECRETS_KMS_KEY_ID", s.secrets_kms_key_id.clone().unwrap_or_default())),
            "offboard-user" => {}
            "change-access" => vars.extend([
                ("ALLOWED_GROUPS", join(&s.allow.groups)),
                ("ALLOWED_MANAGED_POLICIES", join(&s.allow.managed_policies)),
            ]),
            "rotate-keys" => vars.extend([
                ("NEXT_QUEUE_URL", self.issue_credentials_queue.clone()),
                ("USER_PATH_PREFIX", s.user_path_prefix.clone()),
            ]),
            _ => return None,
        }
        Some(vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// The environment the operator CLI (`ops`) reads for this deployment:
    /// the table, every queue and dead-letter queue, the account, and
    /// rotate-keys' path (what `make emulator` prints to export).
    pub fn ops_env(&self) -> Vec<(String, String)> {
        let [create_user_dlq, issue_credentials_dlq, notify_user_dlq, offboard_user_dlq, change_access_dlq] =
            self.dead_letter_queues.as_slice()
        else {
            panic!("a deployment has a dead-letter queue per stage queue");
        };
        [
            ("TABLE_NAME", self.table.clone()),
            ("CREATE_USER_QUEUE_URL", self.create_user_queue.clone()),
            ("ISSUE_CREDENTIALS_QUEUE_URL", self.issue_credentials_queue.clone()),
            ("NOTIFY_USER_QUEUE_URL", self.notify_user_queue.clone()),
            ("CREATE_USER_DLQ_URL", create_user_dlq.clone()),
            ("ISSUE_CREDENTIALS_DLQ_URL", issue_credentials_dlq.clone()),
            ("NOTIFY_USER_DLQ_URL", notify_user_dlq.clone()),
            ("OFFBOARD_USER_QUEUE_URL", self.offboard_user_queue.clone()),
            ("CHANGE_ACCESS_QUEUE_URL", self.change_access_queue.clone()),
            ("OFFBOARD_USER_DLQ_URL", offboard_user_dlq.clone()),
            ("CHANGE_ACCESS_DLQ_URL", change_access_dlq.clone()),
            ("ACCOUNT_ID", ACCOUNT.to_owned()),
            ("USER_PATH_PREFIX", self.settings.user_path_prefix.clone()),
            // `ops plan` checks tickets against create-user's allow-list.
            ("ALLOWED_GROUPS", self.settings.allow.groups.iter().cloned().collect::<Vec<_>>().join(",")),
            (
                "ALLOWED_MANAGED_POLICIES",
                self.settings.allow.managed_policies.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
            ),
            ("DEFAULT_BOUNDARY", self.settings.allow.default_boundary.to_string()),
            ("ALLOWED_EMAIL_DOMAINS", self.settings.allow.email_domains.iter().cloned().collect::<Vec<_>>().join(",")),
            ("CUSTOM_PASSWORD_PREFIX", self.settings.custom_password_prefix.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Rotation settings: the defaults, each overridable by its variable,
    /// looking only under `settings.user_path_prefix`.
    pub fn rotate_keys_config(&self) -> RotateKeysConfig {
        let s = &self.settings;
        let lookup = |k: &str| match k {
            "TABLE_NAME" => Some(self.table.clone()),
            "NEXT_QUEUE_URL" => Some(self.issue_credentials_queue.clone()),
            "SENDER_EMAIL" => Some(s.sender.clone()),
            "USER_PATH_PREFIX" => Some(s.user_path_prefix.clone()),
            "BATCH_CONCURRENCY" => Some(s.concurrency.to_string()),
            other => std::env::var(other).ok(),
        };
        RotateKeysConfig::from_lookup(lookup).expect("rotation settings")
    }

    /// offboard-user's settings: the defaults (RETENTION_DAYS,
    /// SECRET_RECOVERY_DAYS, EXPIRY_WARNING_DAYS), each overridable by its variable.
    pub fn offboard_user_config(&self) -> OffboardUserConfig {
        let s = &self.settings;
        let domains = s.allow.email_domains.iter().cloned().collect::<Vec<_>>().join(",");
        let lookup = |k: &str| match k {
            "TABLE_NAME" => Some(self.table.clone()),
            "SENDER_EMAIL" => Some(s.sender.clone()),
            "ALLOWED_EMAIL_DOMAINS" => Some(domains.clone()),
            "SECRET_PREFIX" => Some(s.secret_prefix.clone()),
            "CUSTOM_PASSWORD_PREFIX" => Some(s.custom_password_prefix.clone()),
            "BATCH_CONCURRENCY" => Some(s.concurrency.to_string()),
            other => std::env::var(other).ok(),
        };
        OffboardUserConfig::from_lookup(lookup).expect("offboard-user settings")
    }

    /// change-access' settings: create-user's allow-lists, read through the
    /// variables the function reads (`function_env("change-access")`).
    pub fn change_access_config(&self) -> ChangeAccessConfig {
        let vars = self.function_env("change-access").expect("change-access is a function");
        let lookup = |k: &str| match vars.iter().find(|(name, _)| name == k) {
            Some((_, v)) => Some(v.clone()),
            None => std::env::var(k).ok(),
        };
        ChangeAccessConfig::from_lookup(lookup).expect("change-access settings")
    }

    pub fn notify_user_config(&self) -> NotifyUserConfig {
        NotifyUserConfig {
            table_name: self.table.clone(),
            sender: self.settings.sender.clone(),
            secret_prefix: self.settings.secret_prefix.clone(),
            secrets_kms_key_id: self.settings.secrets_kms_key_id.clone(),
            idempotency_ttl_secs: 365 * DAY,
            concurrency: self.settings.concurrency,
        }
    }
}

/// Receives before a message goes to its dead-letter queue (the template's
/// maxReceiveCount).
pub const MAX_RECEIVE_COUNT: u32 = 5;

pub async fn ensure(sdk: &SdkConfig, settings: Settings) -> Result<Environment, BoxError> {
    let p = settings.prefix.clone();
    let table = format!("{p}state");
    ensure_table(sdk, &table).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let (create_user_queue, create_user_dlq) = ensure_queue(&sqs, &format!("{p}create-user")).await?;
    let (issue_credentials_queue, issue_credentials_dlq) = ensure_queue(&sqs, &format!("{p}issue-credentials")).await?;
    let (notify_user_queue, notify_user_dlq) = ensure_queue(&sqs, &format!("{p}notify-user")).await?;
    let (offboard_user_queue, offboard_user_dlq) = ensure_queue(&sqs, &format!("{p}offboard-user")).await?;
    let (change_access_queue, change_access_dlq) = ensure_queue(&sqs, &format!("{p}change-access")).await?;
    let bus = format!("{p}tickets");
    // One rule per ticket kind, as in template.yaml: the detail-type
    // decides which stage's queue a ticket reaches.
    let rules = [
        (format!("{p}tickets"), TicketKind::Onboarding, &create_user_queue),
        (format!("{p}offboarding"), TicketKind::Offboarding, &offboard_user_queue),
        (format!("{p}access-changes"), TicketKind::AccessChange, &change_access_queue),
    ];
    ensure_bus(sdk, &sqs, &bus, &rules).await?;
    aws_sdk_ses::Client::new(sdk).verify_email_identity().email_address(&settings.sender).send().await?;
    ensure_groups(sdk, &settings.groups).await?;
    ensure_fence(sdk, &format!("{p}user-boundary")).await?;
    Ok(Environment {
        settings,
        table,
        bus,
        create_user_queue,
        issue_credentials_queue,
        notify_user_queue,
        offboard_user_queue,
        change_access_queue,
        dead_letter_queues: vec![
            create_user_dlq,
            issue_credentials_dlq,
            notify_user_dlq,
            offboard_user_dlq,
            change_access_dlq,
        ],
    })
}

async fn ensure_table(sdk: &SdkConfig, table: &str) -> Result<(), BoxError> {
    use aws_sdk_dynamodb::types::*;
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let attr =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    let created = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .send()
        .await;
    match created {
        Ok(_) => {
            let ttl = TimeToLiveSpecification::builder().attribute_name("expires_at").enabled(true).build()?;
            ddb.update_time_to_live().table_name(table).time_to_live_specification(ttl).send().await?;
            Ok(())
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A queue and its dead-letter queue (CreateQueue is idempotent for equal
/// attributes). Returns both URLs.
async fn ensure_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<(String, String), BoxError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await?.queue_url.unwrap_or_default();
    let dlq_arn = queue_arn(sqs, &dlq).await?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}).to_string();
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(A::VisibilityTimeout, "30")
        .attributes(A::RedrivePolicy, redrive)
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    Ok((url, dlq))
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, BoxError> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?;
    attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| "queue without an ARN".into())
}

async fn ensure_bus(
    sdk: &SdkConfig,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
    rules: &[(String, TicketKind, &String)],
) -> Result<(), BoxError> {
    let eb = aws_sdk_eventbridge::Client::new(sdk);
    match eb.create_event_bus().name(bus).send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_already_exists_exception()) => {}
        Err(e) => return Err(e.into()),
    }
    for (rule, kind, queue) in rules {
        let pattern = serde_json::json!({
            "source": [shared::ticket::TICKET_SOURCE],
            "detail-type": [kind.detail_type()],
        });
        eb.put_rule().name(rule).event_bus_name(bus).event_pattern(pattern.to_string()).send().await?;
        let stage = match kind {
            TicketKind::Onboarding => "create-user",
            TicketKind::Offboarding => "offboard-user",
            TicketKind::AccessChange => "change-access",
        };
        let target =
            aws_sdk_eventbridge::types::Target::builder().id(stage).arn(queue_arn(sqs, queue).await?).build()?;
        eb.put_targets().rule(rule).event_bus_name(bus).targets(target).send().await?;
    }
    Ok(())
}

async fn ensure_fence(sdk: &SdkConfig, name: &str) -> Result<(), BoxError> {
    let iam = aws_sdk_iam::Client::new(sdk);
    match iam.create_policy().policy_name(name).policy_document(LOCAL_FENCE).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_entity_already_exists_exception()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn ensure_groups(sdk: &SdkConfig, groups: &[(String, String)]) -> Result<(), BoxError> {
    let iam = aws_sdk_iam::Client::new(sdk);
    for (group, policy) in groups {
        match iam.create_group().group_name(group).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_entity_already_exists_exception()) => {}
            Err(e) => return Err(e.into()),
        }
        iam.attach_group_policy().group_name(group).policy_arn(policy).send().await?;
    }
    Ok(())
}
