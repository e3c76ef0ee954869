//! Typed configuration, read once at cold start. Every missing or malformed
//! variable is reported in one error so a deployment is fixed in one go.

use crate::error::Error;
use crate::names::PolicyArn;
use std::collections::BTreeSet;

/// Reads variables through a lookup function so tests need not touch the
/// process environment (which is shared by every test thread).
pub struct EnvReader<F: Fn(&str) -> Option<String>> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> EnvReader<F> {
    pub fn new(lookup: F) -> Self {
        Self { lookup, problems: Vec::new() }
    }

    pub fn required(&mut self, name: &str) -> String {
        match (self.lookup)(name).map(|v| v.trim().to_owned()) {
            Some(v) if !v.is_empty() => v,
            _ => {
                self.problems.push(format!("{name} is not set"));
                String::new()
            }
        }
    }

    pub fn optional(&mut self, name: &str, default: &str) -> String {
        match (self.lookup)(name).map(|v| v.trim().to_owned()) {
            Some(v) if !v.is_empty() => v,
            _ => default.to_owned(),
        }
    }

    pub fn number(&mut self, name: &str, default: u64) -> u64 {
        match (self.lookup)(name).map(|v| v.trim().to_owned()) {
            Some(v) if !v.is_empty() => v.parse().unwrap_or_else(|_| {
                self.problems.push(format!("{name}={v:?} is not a whole number"));
                default
            }),
            _ => default,
        }
    }

    /// `BATCH_CONCURRENCY`: how many records of a batch (and users of a
    /// ticket) a function handles at once. At most the batch size of 10;
    /// IAM's request rate is the real limit, so the default stays low.
    pub fn concurrency(&mut self) -> usize {
        let n = self.number("BATCH_CONCURRENCY", DEFAULT_CONCURRENCY as u64);
        if (1..=10).contains(&n) {
            n as usize
        } else {
            self.problems.push(format!("BATCH_CONCURRENCY={n} is not between 1 and 10"));
            DEFAULT_CONCURRENCY
        }
    }

    /// A comma-separated list; empty entries are ignored.
    pub fn list(&mut self, name: &str) -> BTreeSet<String> {
        let raw = self.required(name);
        split_list(&raw)
    }

    pub fn optional_list(&mut self, name: &str) -> BTreeSet<String> {
        let raw = self.optional(name, "");
        split_list(&raw)
    }

    /// A managed policy's ARN, or `None` with the problem noted.
    pub fn policy_arn(&mut self, raw: &str) -> Option<PolicyArn> {
        PolicyArn::parse(raw).map_err(|e| self.problems.push(e)).ok()
    }

    pub fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    /// Like `finish`, for a value that exists only when what it is built
    /// from parsed (whose problems are already noted).
    pub fn finish_parsed<T>(self, value: Option<T>) -> Result<T, Error> {
        self.finish(value)?.ok_or_else(|| Error::Config("the configuration is incomplete".into()))
    }

    pub fn finish<T>(self, value: T) -> Result<T, Error> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(Error::Config(self.problems.join("; ")))
        }
    }
}

/// `Developers` from `arn:aws:iam::123456789012:group/teams/Developers`.
pub fn group_name(name_or_arn: &str) -> &str {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.rsplit('/').next().unwrap_or(name_or_arn)
    } else {
        name_or_arn
    }
}

fn split_list(raw: &str) -> BTreeSet<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A function's settings, read from the environment through a lookup (so
/// tests need not touch the process environment).
pub trait FromEnv: Sized {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error>;

    fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// What a deployment allows a ticket to grant. Everything not listed is refused.
#[derive(Debug, Clone)]
pub struct AllowList {
    pub groups: BTreeSet<String>,
    pub managed_policies: BTreeSet<PolicyArn>,
    /// Only the fence (`<prefix>-user-boundary`): a ticket may name it, or
    /// nothing and get it anyway.
    pub boundaries: BTreeSet<PolicyArn>,
    pub default_boundary: PolicyArn,
    /// Domains (lower case) every user's and requester's address must be in.
    pub email_domains: BTreeSet<String>,
    /// The only secrets a ticket may name as a custom password.
    pub custom_password_prefix: String,
}

/// `ALLOWED_EMAIL_DOMAINS`, lower-cased, each a plain domain.
fn email_domains<F: Fn(&str) -> Option<String>>(env: &mut EnvReader<F>) -> BTreeSet<String> {
    let domains: BTreeSet<String> = env.list("ALLOWED_EMAIL_DOMAINS").into_iter().map(|d| d.to_lowercase()).collect();
    for d in &domains {
        if !crate::names::valid_domain(d) {
            env.problem(format!("ALLOWED_EMAIL_DOMAINS: {d:?} is not a domain"));
        }
    }
    domains
}

/// The users' secrets and the custom passwords live under separate
/// prefixes: a custom password must never be able to name a user's secret.
fn secret_prefixes<F: Fn(&str) -> Option<String>>(env: &mut EnvReader<F>) -> (String, String) {
    let users = env.optional("SECRET_PREFIX", DEFAULT_SECRET_PREFIX);
    let custom = env.optional("CUSTOM_PASSWORD_PREFIX", DEFAULT_CUSTOM_PASSWORD_PREFIX);
    if users.starts_with(&custom) || custom.starts_with(&users) {
        env.problem(format!("SECRET_PREFIX {users:?} and CUSTOM_PASSWORD_PREFIX {custom:?} overlap"));
    }
    (users, custom)
}

#[derive(Debug, Clone)]
pub struct CreateUserConfig {
    pub table_name: String,
    pub next_queue_url: String,
    pub sender: String,
    pub allow: AllowList,
    pub idempotency_ttl_secs: u64,
    /// Records of a batch, and users of a ticket, handled at once.
    pub concurrency: usize,
}

pub const DAY: u64 = 24 * 60 * 60;
pub const DEFAULT_CONCURRENCY: usize = 4;

impl FromEnv for CreateUserConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut env = EnvReader::new(lookup);
        let table_name = env.required("TABLE_NAME");
        let next_queue_url = env.required("NEXT_QUEUE_URL");
        let sender = env.required("SENDER_EMAIL");
        // Names, or group ARNs as the template passes them (the role is
        // scoped to the ARNs); a ticket names groups by name.
        let groups = env.list("ALLOWED_GROUPS").into_iter().map(|g| group_name(&g).to_owned()).collect();
        let managed_policies = env.list("ALLOWED_MANAGED_POLICIES").iter().filter_map(|a| env.policy_arn(a)).collect();
        // The fence is the only boundary: no other can be named or copied.
        let default_boundary = env.required("DEFAULT_BOUNDARY");
        let default_boundary = (!default_boundary.is_empty()).then(|| env.policy_arn(&default_boundary)).flatten();
        let email_domains = email_domains(&mut env);
        let (_, custom_password_prefix) = secret_prefixes(&mut env);
        let idempotency_ttl_secs = env.number("IDEMPOTENCY_TTL_DAYS", 365) * DAY;
        let concurrency = env.concurrency();
        let config = default_boundary.map(|default_boundary| Self {
            table_name,
            next_queue_url,
            sender,
            allow: AllowList {
                groups,
                managed_policies,
                boundaries: BTreeSet::from([default_boundary.clone()]),
                default_boundary,
                email_domains,
                custom_password_prefix,
            },
            idempotency_ttl_secs,
            concurrency,
        });
        env.finish_parsed(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_variable_is_named_in_one_error() {
        let err = CreateUserConfig::from_lookup(|_| None).unwrap_err().to_string();
        for name in [
            "TABLE_NAME",
            "NEXT_QUEUE_URL",
            "SENDER_EMAIL",
            "ALLOWED_GROUPS",
            "DEFAULT_BOUNDARY",
            "ALLOWED_EMAIL_DOMAINS",
        ] {
            assert!(err.contains(name), "{name} missing from {err}");
        }
    }

    #[test]
    fn malformed_values_are_named() {
        let err = CreateUserConfig::from_lookup(|k| {
            Some(match k {
                "IDEMPOTENCY_TTL_DAYS" => "soon".into(),
                "ALLOWED_MANAGED_POLICIES" => "ReadOnlyAccess".into(),
                _ => "arn:aws:iam::aws:policy/X".into(),
            })
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("IDEMPOTENCY_TTL_DAYS=\"soon\""), "{err}");
        assert!(err.contains("\"ReadOnlyAccess\" is not a managed policy ARN"), "{err}");
    }

    #[test]
    fn allowed_groups_may_be_given_as_arns() {
        let c = CreateUserConfig::from_lookup(|k| {
            Some(match k {
                "ALLOWED_GROUPS" => "arn:aws:iam::123456789012:group/teams/Developers, ReadOnly".into(),
                "ALLOWED_MANAGED_POLICIES" | "DEFAULT_BOUNDARY" => "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
                "ALLOWED_EMAIL_DOMAINS" => "example.com".into(),
                "SECRET_PREFIX" | "CUSTOM_PASSWORD_PREFIX" => return None,
                "IDEMPOTENCY_TTL_DAYS" => "1".into(),
                "BATCH_CONCURRENCY" => "2".into(),
                _ => "x".into(),
            })
        })
        .expect("valid config");
        assert_eq!(c.allow.groups.into_iter().collect::<Vec<_>>(), ["Developers", "ReadOnly"]);
    }

    #[test]
    fn the_fence_is_the_only_boundary_and_prefixes_may_not_overlap() {
        let lookup = |overlap: bool| {
            move |k: &str| {
                Some(match k {
                    "DEFAULT_BOUNDARY" => "arn:aws:iam::123456789012:policy/iam-provisioner-user-boundary".into(),
                    // No longer read: another boundary cannot be allowed.
                    "ALLOWED_BOUNDARIES" => "arn:aws:iam::aws:policy/PowerUserAccess".into(),
                    "ALLOWED_MANAGED_POLICIES" => "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
                    "ALLOWED_EMAIL_DOMAINS" => "Example.com, corp.example".into(),
                    "SECRET_PREFIX" => "p/users/".into(),
                    "CUSTOM_PASSWORD_PREFIX" if overlap => "p/".into(),
                    "CUSTOM_PASSWORD_PREFIX" => "p/custom/".into(),
                    "IDEMPOTENCY_TTL_DAYS" => "1".into(),
                    "BATCH_CONCURRENCY" => "2".into(),
                    _ => "x".into(),
                })
            }
        };
        let c = CreateUserConfig::from_lookup(lookup(false)).expect("valid config");
        assert_eq!(
            c.allow.boundaries.into_iter().collect::<Vec<_>>(),
            ["arn:aws:iam::123456789012:policy/iam-provisioner-user-boundary"]
        );
        assert_eq!(c.allow.email_domains.into_iter().collect::<Vec<_>>(), ["corp.example", "example.com"]);
        let err = CreateUserConfig::from_lookup(lookup(true)).unwrap_err().to_string();
        assert!(err.contains("overlap"), "{err}");
    }
}

pub const DEFAULT_SECRET_PREFIX: &str = "iam-provisioner/users/";
pub const DEFAULT_CUSTOM_PASSWORD_PREFIX: &str = "iam-provisioner/custom-passwords/";
pub const CHANGE_PASSWORD_POLICY: &str = "arn:aws:iam::aws:policy/IAMUserChangePassword";

#[derive(Debug, Clone)]
pub struct IssueCredentialsConfig {
    pub table_name: String,
    pub next_queue_url: String,
    pub sender: String,
    pub secret_prefix: String,
    pub change_password_policy: String,
    /// The customer managed key the users' secrets are encrypted with
    /// (`SECRETS_KMS_KEY_ID`; the account's default key when unset).
    pub secrets_kms_key_id: Option<String>,
    pub idempotency_ttl_secs: u64,
    /// Records of a batch handled at once.
    pub concurrency: usize,
}

impl FromEnv for IssueCredentialsConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut env = EnvReader::new(lookup);
        let (secret_prefix, _) = secret_prefixes(&mut env);
        let kms = env.optional("SECRETS_KMS_KEY_ID", "");
        let config = Self {
            table_name: env.required("TABLE_NAME"),
            next_queue_url: env.required("NEXT_QUEUE_URL"),
            sender: env.required("SENDER_EMAIL"),
            secret_prefix,
            change_password_policy: env.optional("CHANGE_PASSWORD_POLICY_ARN", CHANGE_PASSWORD_POLICY),
            secrets_kms_key_id: (!kms.is_empty()).then_some(kms),
            idempotency_ttl_secs: env.number("IDEMPOTENCY_TTL_DAYS", 365) * DAY,
            concurrency: env.concurrency(),
        };
        env.finish(config)
    }
}

#[derive(Debug, Clone)]
pub struct NotifyUserConfig {
    pub table_name: String,
    pub sender: String,
    /// Where the users' secrets are: a message's secret name or ARN is
    /// checked against `<prefix><user name>`, never followed.
    pub secret_prefix: String,
    /// The key a secret must be encrypted with to be the pipeline's
    /// (`SECRETS_KMS_KEY_ID`, as for issue-credentials).
    pub secrets_kms_key_id: Option<String>,
    pub idempotency_ttl_secs: u64,
    /// Records of a batch handled at once.
    pub concurrency: usize,
}

impl FromEnv for NotifyUserConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut env = EnvReader::new(lookup);
        let (secret_prefix, _) = secret_prefixes(&mut env);
        let kms = env.optional("SECRETS_KMS_KEY_ID", "");
        let config = Self {
            table_name: env.required("TABLE_NAME"),
            sender: env.required("SENDER_EMAIL"),
            secret_prefix,
            secrets_kms_key_id: (!kms.is_empty()).then_some(kms),
            idempotency_ttl_secs: env.number("IDEMPOTENCY_TTL_DAYS", 365) * DAY,
            concurrency: env.concurrency(),
        };
        env.finish(config)
    }
}

/// Tag that exempts a user from rotation (value `true`). Not under
/// `iam-provisioner:`, so a ticket may set it.
pub const DEFAULT_EXEMPT_TAG: &str = "rotation-exempt";

#[derive(Debug, Clone)]
pub struct RotateKeysConfig {
    pub table_name: String,
    pub next_queue_url: String,
    pub sender: String,
    /// Only users under this IAM path are looked at (ListUsers PathPrefix).
    pub user_path_prefix: String,
    pub exempt_tag: String,
    pub rotation_age_secs: u64,
    pub grace_secs: u64,
    pub delete_after_secs: u64,
    pub warning_secs: u64,
    pub idempotency_ttl_secs: u64,
    /// How long a key seen in use after its successor was issued is kept
    /// active past its deactivation date (ROTATION_HOLD_DAYS), at most.
    pub hold_secs: u64,
    /// Users planned at once (BATCH_CONCURRENCY); also how many the run's
    /// cursor advances by at a time.
    pub concurrency: usize,
}

impl FromEnv for RotateKeysConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut env = EnvReader::new(lookup);
        let config = Self {
            table_name: env.required("TABLE_NAME"),
            next_queue_url: env.required("NEXT_QUEUE_URL"),
            sender: env.required("SENDER_EMAIL"),
            user_path_prefix: env.optional("USER_PATH_PREFIX", "/"),
            exempt_tag: env.optional("EXEMPT_TAG", DEFAULT_EXEMPT_TAG),
            rotation_age_secs: env.number("ROTATION_AGE_DAYS", 90) * DAY,
            grace_secs: env.number("GRACE_DAYS", 7) * DAY,
            delete_after_secs: env.number("DELETE_AFTER_DAYS", 10) * DAY,
            warning_secs: env.number("WARNING_DAYS", 2) * DAY,
            idempotency_ttl_secs: env.number("IDEMPOTENCY_TTL_DAYS", 365) * DAY,
            hold_secs: env.number("ROTATION_HOLD_DAYS", 14) * DAY,
            concurrency: env.concurrency(),
        };
        if config.warning_secs > config.grace_secs {
            env.problem("WARNING_DAYS must not exceed GRACE_DAYS".into());
        }
        env.finish(config)
    }
}

/// offboard-user: offboarding tickets (CONTRACT.md section 6), and the daily
/// run that expires users and deletes disabled ones after their retention.
#[derive(Debug, Clone)]
pub struct OffboardUserConfig {
    pub table_name: String,
    pub sender: String,
    pub email_domains: BTreeSet<String>,
    /// The deleted user's secret is `<prefix><user name>`.
    pub secret_prefix: String,
    /// SECRET_RECOVERY_DAYS (7 to 30, as Secrets Manager allows; default 30).
    pub secret_recovery_days: u32,
    /// RETENTION_DAYS: how long a disabled user is kept before the daily run
    /// deletes it (default 30).
    pub retention_secs: u64,
    /// EXPIRY_WARNING_DAYS: how long before an `expires_on` date the user and
    /// the requester are warned (default 7).
    pub expiry_warning_secs: u64,
    pub idempotency_ttl_secs: u64,
    pub concurrency: usize,
}

impl FromEnv for OffboardUserConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut env = EnvReader::new(lookup);
        let (secret_prefix, _) = secret_prefixes(&mut env);
        let recovery = env.number("SECRET_RECOVERY_DAYS", 30);
        if !(7..=30).contains(&recovery) {
            env.problem(format!("SECRET_RECOVERY_DAYS={recovery} is not between 7 and 30 (Secrets Manager's limits)"));
        }
        let config = Self {
            table_name: env.required("TABLE_NAME"),
            sender: env.required("SENDER_EMAIL"),
            email_domains: email_domains(&mut env),
            secret_prefix,
            secret_recovery_days: recovery.clamp(7, 30) as u32,
            retention_secs: env.number("RETENTION_DAYS", 30) * DAY,
            expiry_warning_secs: env.number("EXPIRY_WARNING_DAYS", 7) * DAY,
            idempotency_ttl_secs: env.number("IDEMPOTENCY_TTL_DAYS", 365) * DAY,
            concurrency: env.concurrency(),
        };
        env.finish(config)
    }
}

#[cfg(test)]
mod offboard_config_tests {
    use super::*;

    #[test]
    fn every_problem_of_offboard_user_is_named_at_once() {
        let err = OffboardUserConfig::from_lookup(|k| match k {
            "SECRET_RECOVERY_DAYS" => Some("90".into()),
            "RETENTION_DAYS" => Some("a month".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        for needed in
            ["TABLE_NAME", "SENDER_EMAIL", "ALLOWED_EMAIL_DOMAINS", "SECRET_RECOVERY_DAYS=90", "RETENTION_DAYS"]
        {
            assert!(err.contains(needed), "{needed} missing from {err}");
        }
    }
}
