//! The onboarding ticket of CONTRACT.md section 2: its wire types, how it is
//! unwrapped from whatever carried it, and the rules that need no AWS call.
//! Rules that need IAM (existing users, copied permissions) live in
//! `create-user`, which owns the directory port.

use crate::config::AllowList;
use crate::date::Date;
use crate::error::Refusal;
use crate::names::{Email, PolicyArn, TicketId, UserName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const TICKET_SOURCE: &str = "onboarding.tickets";
pub const TICKET_DETAIL_TYPE: &str = "Onboarding Ticket Approved";
pub const MAX_USERS: usize = 10;
pub const MAX_GROUPS: usize = 10;
pub const MAX_MANAGED_POLICIES: usize = 10;
pub const MAX_TAGS: usize = 50;
pub const MANAGED_TAG: &str = "iam-provisioner:managed";
pub const TICKET_TAG: &str = "iam-provisioner:ticket";
/// The day a user's access ends (`YYYY-MM-DD`, UTC), from the ticket's
/// `expires_on`: the daily expiry run disables the user on that day.
pub const EXPIRES_ON_TAG: &str = "iam-provisioner:expires-on";
/// The tags the pipeline may put on a user over its life, counted against
/// IAM's 50 when the ticket's are: `MANAGED_TAG` and `TICKET_TAG` at
/// creation, `EXPIRES_ON_TAG` with them for a user with an expiry, and `lifecycle::OFFBOARDED_TAG` and `OFFBOARDED_ON_TAG` when it
/// is disabled. Room for all of them is kept from the start: a disable must
/// not fail on a user whose ticket used up the room (CONTRACT.md: at most 45
/// from the ticket).
pub const OWN_TAGS: usize = 5;

// Unknown fields are refused: a misspelt `permissions_boundry` silently
// falling back to a default is exactly the wrong thing to do to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    pub ticket_id: String,
    pub requested_by: String,
    pub users: Vec<UserRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub user_name: String,
    pub email: String,
    pub access: Access,
    #[serde(default)]
    pub console_password: Option<ConsolePassword>,
    #[serde(default)]
    pub require_password_reset: Option<bool>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub managed_policies: Vec<String>,
    #[serde(default)]
    pub copy_permissions_from: Option<String>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `YYYY-MM-DD` (UTC), a day after the ticket is accepted. Text here, a
    /// `Date` once validated, so an unreadable one is refused with every
    /// other rule the ticket breaks. Left out of the ticket's JSON when
    /// absent: a ticket's hash (its idempotency record) stays what the
    /// previous release computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    #[serde(default)]
    pub console: bool,
    #[serde(default)]
    pub programmatic: bool,
}

/// A custom password is never in a ticket: only the secret that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum ConsolePassword {
    Autogenerate,
    Custom { secret_arn: String },
}

/// Where the ticket came from does not matter; what it says does.
#[derive(Debug, Deserialize)]
struct Envelope {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: serde_json::Value,
}

/// Unwraps an EventBridge envelope (as put on the bus, or as the body of the
/// SQS record EventBridge delivers) or takes a bare ticket, and parses it.
/// The error names the field, so a person can fix the ticket.
pub fn parse(body: &str) -> Result<Ticket, Refusal> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        Refusal::ticket("ticket", format!("is not valid JSON ({})", crate::text::redact_serde_message(&e.to_string())))
    })?;
    parse_value(value)
}

pub fn parse_value(value: serde_json::Value) -> Result<Ticket, Refusal> {
    let value = if value.get("detail").is_some() && value.get("detail-type").is_some() {
        let env: Envelope = serde_json::from_value(value).map_err(|e| {
            Refusal::ticket(
                "envelope",
                format!("is not an EventBridge event ({})", crate::text::redact_serde_message(&e.to_string())),
            )
        })?;
        if env.source != TICKET_SOURCE || env.detail_type != TICKET_DETAIL_TYPE {
            return Err(Refusal::ticket(
                "envelope",
                format!(
                    "source {:?} / detail-type {:?} is not an approved onboarding ticket (expected {TICKET_SOURCE:?} / {TICKET_DETAIL_TYPE:?})",
                    env.source, env.detail_type
                ),
            ));
        }
        env.detail
    } else {
        value
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "ticket".to_owned() } else { path };
        Refusal::ticket(field, crate::text::redact_serde_message(&e.into_inner().to_string()))
    })
}

/// The ticket id of a body that may not parse, for recording the refusal.
pub fn best_effort_ticket_id(body: &str) -> Option<TicketId> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    TicketId::parse(v.get("detail").unwrap_or(&v).get("ticket_id")?.as_str()?).ok()
}

/// The requester of a ticket that may not parse (or not pass), for telling
/// them why: only an address the deployment writes to.
pub fn best_effort_requester(body: &str, domains: &BTreeSet<String>) -> Option<Email> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    requester(v.get("detail").unwrap_or(&v).get("requested_by")?.as_str()?, domains)
}

/// `requested_by` as an address the deployment may write to, if it is one.
pub fn requester(requested_by: &str, domains: &BTreeSet<String>) -> Option<Email> {
    Email::parse(requested_by).ok().filter(|e| e.in_domains(domains))
}

/// A ticket that passed every rule that needs no AWS call.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub ticket_id: TicketId,
    pub requested_by: Email,
    pub users: Vec<UserPlan>,
}

/// One user as the pipeline will create them: every default applied, every
/// permission resolved against the allow-list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPlan {
    pub user_name: UserName,
    pub email: Email,
    pub path: String,
    pub console: bool,
    pub programmatic: bool,
    pub console_password: Option<ConsolePassword>,
    pub require_password_reset: bool,
    pub permissions: PermissionSource,
    /// `None` until resolved: a copy takes the source user's boundary.
    pub boundary: Option<PolicyArn>,
    /// The ticket's tags plus the pipeline's own (`EXPIRES_ON_TAG` among
    /// them for a user with `expires_on`).
    pub tags: BTreeMap<String, String>,
    /// The day the user's access ends, after the day the ticket was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PermissionSource {
    Direct { groups: Vec<String>, managed_policies: Vec<PolicyArn> },
    CopyFrom(UserName),
}

/// Whether a secret name is exactly `<prefix><user_name>`, as named, or as
/// an ARN names it (with the `-XXXXXX` Secrets Manager appends).
fn names_secret(secret: &str, prefix: &str, user_name: &str) -> bool {
    let Some(rest) = secret.strip_prefix(prefix).and_then(|r| r.strip_prefix(user_name)) else {
        return false;
    };
    rest.is_empty()
        || rest.strip_prefix('-').is_some_and(|s| s.len() == 6 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The secret name of a Secrets Manager secret ARN
/// (`arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`).
pub fn secret_name(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(7, ':');
    let (arn_, partition, service, region, account, kind, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let ok = arn_ == "arn"
        && partition.starts_with("aws")
        && service == "secretsmanager"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && kind == "secret"
        && !name.is_empty();
    ok.then_some(name)
}

pub fn valid_path(s: &str) -> bool {
    s.len() <= 512
        && (s == "/"
            || (s.len() >= 3
                && s.starts_with('/')
                && s.ends_with('/')
                && s.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c))))
}

/// IAM's tag character set: Unicode letters, digits, spaces and `_.:/=+-@`.
fn valid_tag_chars(s: &str) -> bool {
    s.chars().all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

/// Applies every rule of CONTRACT.md that needs no AWS call, on `today`
/// (UTC: the clock's, which the caller has and this function does not).
/// Returns the plans, or every refusal at once so the requester fixes the
/// ticket in one go.
pub fn validate(ticket: &Ticket, allow: &AllowList, today: Date) -> Result<Accepted, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let ticket_id =
        TicketId::parse(&ticket.ticket_id).map_err(|rule| refusals.push(Refusal::ticket("ticket_id", rule)));
    let requested_by =
        address(&ticket.requested_by, &allow.email_domains, "is not in a domain this deployment writes to")
            .map_err(|rule| refusals.push(Refusal::ticket("requested_by", rule)))
            .ok();
    if ticket.users.is_empty() || ticket.users.len() > MAX_USERS {
        refusals.push(Refusal::ticket(
            "users",
            format!("must list 1 to {MAX_USERS} users (this ticket lists {})", ticket.users.len()),
        ));
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for u in &ticket.users {
        if let Some(first) = seen.insert(u.user_name.to_ascii_lowercase(), &u.user_name) {
            refusals.push(Refusal::user(
                &u.user_name,
                "user_name",
                format!(
                    "{:?} appears twice in the ticket (as {first:?}); IAM user names are case-insensitive",
                    u.user_name
                ),
            ));
        }
    }
    let plans: Vec<UserPlan> = ticket
        .users
        .iter()
        .enumerate()
        .filter_map(|(i, u)| validate_user(i, u, &ticket.ticket_id, allow, today, &mut refusals))
        .collect();
    match (ticket_id, requested_by) {
        (Ok(ticket_id), Some(requested_by)) if refusals.is_empty() => {
            Ok(Accepted { ticket_id, requested_by, users: plans })
        }
        _ => Err(refusals),
    }
}

fn validate_user(
    i: usize,
    u: &UserRequest,
    ticket_id: &str,
    allow: &AllowList,
    today: Date,
    refusals: &mut Vec<Refusal>,
) -> Option<UserPlan> {
    let before = refusals.len();
    let name = &u.user_name;
    let at = |field: &str| format!("users[{i}].{field}");
    let mut refuse = |field: &str, rule: String| refusals.push(Refusal::user(name, at(field), rule));

    let user_name = UserName::parse(name).map_err(|rule| refuse("user_name", rule)).ok();
    let not_ours = format!("{:?} is not in a domain this deployment sends credentials to", u.email);
    let email = address(&u.email, &allow.email_domains, &not_ours).map_err(|rule| refuse("email", rule)).ok();
    if !u.access.console && !u.access.programmatic {
        refuse("access", "at least one of console or programmatic must be true".into());
    }
    match &u.console_password {
        Some(ConsolePassword::Custom { .. }) if !u.access.console => {
            refuse("console_password", "a custom password is given but console access is false".into())
        }
        Some(ConsolePassword::Custom { secret_arn }) if secret_name(secret_arn).is_none() => refuse(
            "console_password.secret_arn",
            // The value is not echoed: a password pasted here must not spread.
            "is not a Secrets Manager ARN; a custom password is given by reference, never inline".into(),
        ),
        Some(ConsolePassword::Custom { secret_arn })
            if !secret_name(secret_arn).is_some_and(|n| names_secret(n, &allow.custom_password_prefix, name)) =>
        {
            // Bound to the user: a ticket cannot read the password another
            // ticket prepared for someone else.
            refuse(
                "console_password.secret_arn",
                format!(
                    "must name the secret {:?} (the custom-password prefix {:?} and this user's name); \
                     the pipeline reads no other secret as this user's password",
                    format!("{}{name}", allow.custom_password_prefix),
                    allow.custom_password_prefix
                ),
            )
        }
        _ => {}
    }
    let path = u.path.clone().unwrap_or_else(|| "/".into());
    if !valid_path(&path) {
        refuse(
            "path",
            format!("{path:?} is not an IAM path: \"/\" or \"/a/b/\", printable ASCII, at most 512 characters"),
        );
    }

    let groups: Vec<String> = u.groups.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let policies: Vec<String> = u.managed_policies.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    if groups.len() > MAX_GROUPS {
        refuse("groups", format!("{} groups requested; IAM allows at most {MAX_GROUPS}", groups.len()));
    }
    if policies.len() > MAX_MANAGED_POLICIES {
        refuse(
            "managed_policies",
            format!("{} managed policies requested; IAM allows at most {MAX_MANAGED_POLICIES}", policies.len()),
        );
    }
    for g in groups.iter().filter(|g| !allow.groups.contains(*g)) {
        refuse("groups", format!("group {g:?} is not on this deployment's allow-list ({})", list(&allow.groups)));
    }
    // Whatever is on the allow-list was parsed as a policy ARN with it.
    let mut allowed_policies = Vec::new();
    for p in &policies {
        match allow.managed_policies.get(p.as_str()) {
            Some(arn) => allowed_policies.push(arn.clone()),
            None => refuse(
                "managed_policies",
                format!("policy {p:?} is not on this deployment's allow-list ({})", list(&allow.managed_policies)),
            ),
        }
    }
    let permissions = match &u.copy_permissions_from {
        Some(source) if !groups.is_empty() || !policies.is_empty() => {
            refuse(
                "copy_permissions_from",
                format!("copying from {source:?} cannot be combined with groups or managed_policies; the console offers one or the other"),
            );
            None
        }
        Some(source) => match UserName::parse(source) {
            Err(_) => {
                refuse("copy_permissions_from", format!("{source:?} is not a valid IAM user name"));
                None
            }
            Ok(source) if source.eq_ignore_ascii_case(name) => {
                refuse("copy_permissions_from", "a user cannot copy permissions from itself".into());
                None
            }
            Ok(source) => Some(PermissionSource::CopyFrom(source)),
        },
        None => Some(PermissionSource::Direct { groups, managed_policies: allowed_policies }),
    };
    let boundary = match (&u.permissions_boundary, &permissions) {
        (Some(b), _) => match allow.boundaries.get(b.as_str()) {
            Some(b) => Some(b.clone()),
            None => {
                refuse(
                    "permissions_boundary",
                    format!("{b:?} is not on this deployment's allow-list of boundaries ({})", list(&allow.boundaries)),
                );
                None
            }
        },
        // The copy's boundary comes from the source user, resolved against IAM.
        (None, Some(PermissionSource::CopyFrom(_))) => None,
        (None, _) => Some(allow.default_boundary.clone()),
    };

    if u.tags.len() + OWN_TAGS > MAX_TAGS {
        refuse(
            "tags",
            format!(
                "{} tags given; at most {} fit beside the {OWN_TAGS} the pipeline keeps room for (IAM allows {MAX_TAGS})",
                u.tags.len(),
                MAX_TAGS - OWN_TAGS
            ),
        );
    }
    let mut keys_seen = BTreeSet::new();
    for (k, v) in &u.tags {
        let field = format!("tags.{k}");
        if !(1..=128).contains(&k.chars().count()) || !valid_tag_chars(k) {
            refuse(&field, "a tag key must be 1 to 128 letters, digits, spaces or _ . : / = + - @".into());
        }
        if v.chars().count() > 256 || !valid_tag_chars(v) {
            refuse(&field, "a tag value must be at most 256 letters, digits, spaces or _ . : / = + - @".into());
        }
        let lower = k.to_lowercase();
        if lower.starts_with("aws:") {
            refuse(&field, "tag keys beginning with aws: are reserved by AWS".into());
        }
        if lower.starts_with("iam-provisioner:") {
            refuse(&field, "tag keys beginning with iam-provisioner: are set by the pipeline itself".into());
        }
        if !keys_seen.insert(lower) {
            refuse(&field, "another tag key differs from this one only in case; IAM treats them as one".into());
        }
    }

    let expires_on = match u.expires_on.as_deref().map(Date::parse) {
        None => None,
        Some(Err(rule)) => {
            refuse("expires_on", rule);
            None
        }
        Some(Ok(day)) if day <= today => {
            refuse(
                "expires_on",
                format!(
                    "{day} is not after today ({today}, UTC): the user would be disabled the day it is created; \
                     give a later day, or leave expires_on out for access that does not end"
                ),
            );
            None
        }
        Some(Ok(day)) => Some(day),
    };

    let (Some(user_name), Some(email), Some(permissions)) = (user_name, email, permissions) else {
        return None;
    };
    if refusals.len() > before {
        return None;
    }
    let mut tags = u.tags.clone();
    tags.insert(MANAGED_TAG.into(), "true".into());
    tags.insert(TICKET_TAG.into(), ticket_id.into());
    if let Some(day) = expires_on {
        tags.insert(EXPIRES_ON_TAG.into(), day.to_string());
    }
    Some(UserPlan {
        user_name,
        email,
        path,
        console: u.access.console,
        programmatic: u.access.programmatic,
        console_password: u.access.console.then(|| u.console_password.clone().unwrap_or(ConsolePassword::Autogenerate)),
        require_password_reset: u.require_password_reset.unwrap_or(true),
        permissions,
        boundary,
        tags,
        expires_on,
    })
}

/// An address the deployment may write to, or the rule it breaks (`outside`
/// when its domain is not one of the allowed ones).
pub(crate) fn address(raw: &str, domains: &BTreeSet<String>, outside: &str) -> Result<Email, String> {
    let email = Email::parse(raw)?;
    if email.in_domains(domains) {
        Ok(email)
    } else {
        Err(format!("{outside} ({})", list(domains)))
    }
}

/// An allow-list as a refusal names it (access changes use it too).
pub(crate) fn list<T: AsRef<str>>(set: &BTreeSet<T>) -> String {
    if set.is_empty() {
        "nothing is allowed".into()
    } else {
        set.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::test_allow_list;
    use serde_json::json;

    fn ticket_with(user: serde_json::Value) -> Ticket {
        parse_value(json!({"ticket_id": "ONB-1", "requested_by": "it-ops@example.com", "users": [user]})).unwrap()
    }

    /// The day these tests run on.
    fn today() -> Date {
        Date::parse("2026-11-30").unwrap()
    }

    fn user_with_tags(n: usize) -> serde_json::Value {
        let tags: serde_json::Map<_, _> = (0..n).map(|i| (format!("k{i}"), json!("v"))).collect();
        json!({"user_name": "emily", "email": "emily@example.com", "access": {"console": true}, "tags": tags})
    }

    #[test]
    fn the_ticket_may_use_what_the_pipelines_own_tags_leave_of_iams_fifty() {
        let own = [
            MANAGED_TAG,
            TICKET_TAG,
            EXPIRES_ON_TAG,
            crate::lifecycle::OFFBOARDED_TAG,
            crate::lifecycle::OFFBOARDED_ON_TAG,
        ];
        assert_eq!(own.len(), OWN_TAGS, "every tag the pipeline may put on a user is counted");
        assert_eq!(MAX_TAGS - OWN_TAGS, 45, "CONTRACT.md section 2");
        let accepted = validate(&ticket_with(user_with_tags(45)), &test_allow_list(), today()).unwrap();
        assert_eq!(accepted.users[0].tags.len(), 45 + 2);
        let refusals = validate(&ticket_with(user_with_tags(46)), &test_allow_list(), today()).unwrap_err();
        assert!(refusals.iter().any(|r| r.to_string().contains("46 tags given; at most 45")), "{refusals:?}");
    }

    fn expiring(expires_on: &str) -> Result<Accepted, Vec<Refusal>> {
        let mut user = user_with_tags(1);
        user["expires_on"] = json!(expires_on);
        validate(&ticket_with(user), &test_allow_list(), today())
    }

    #[test]
    fn an_expiry_is_a_calendar_day_after_today_and_becomes_the_users_tag() {
        let accepted = expiring("2026-12-01").unwrap();
        let plan = &accepted.users[0];
        assert_eq!(plan.expires_on, Some(Date::parse("2026-12-01").unwrap()));
        assert_eq!(plan.tags[EXPIRES_ON_TAG], "2026-12-01");
        assert_eq!(plan.tags.len(), 1 + 3, "the ticket's tag, managed, ticket and expires-on");
        assert_eq!(expiring("2028-02-29").unwrap().users[0].tags[EXPIRES_ON_TAG], "2028-02-29");

        for (day, rule) in [
            ("2027-02-29", "month 02 of 2027 has 28 days"),
            ("2026-13-01", "no month 13"),
            ("2026-1-5", "YYYY-MM-DD"),
            ("2026-11-30", "is not after today (2026-11-30, UTC)"),
            ("2026-11-29", "is not after today"),
            ("1969-07-20", "before 1970"),
        ] {
            let refusals = expiring(day).unwrap_err();
            assert_eq!(refusals.len(), 1, "{day}: {refusals:?}");
            assert_eq!(refusals[0].field, "users[0].expires_on", "{day}");
            assert!(refusals[0].rule.contains(rule), "{day}: {}", refusals[0].rule);
        }
    }

    #[test]
    fn a_user_without_an_expiry_is_planned_and_hashed_as_before() {
        let plain = user_with_tags(1);
        let accepted = validate(&ticket_with(plain.clone()), &test_allow_list(), today()).unwrap();
        assert_eq!(accepted.users[0].expires_on, None);
        assert!(!accepted.users[0].tags.contains_key(EXPIRES_ON_TAG));
        // The ticket's JSON (what its idempotency record is a hash of) has no
        // `expires_on` key, as the previous release's had none.
        let wire = serde_json::to_value(ticket_with(plain)).unwrap();
        assert!(wire["users"][0].get("expires_on").is_none(), "{wire}");
    }

    #[test]
    fn a_bad_expiry_is_refused_with_every_other_rule_at_once() {
        let mut user = user_with_tags(1);
        user["expires_on"] = json!("2026-02-30");
        user["tags"] = json!({"iam-provisioner:expires-on": "2099-01-01"});
        user["path"] = json!("no-slashes");
        let refusals = validate(&ticket_with(user), &test_allow_list(), today()).unwrap_err();
        let fields: Vec<&str> = refusals.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["users[0].path", "users[0].tags.iam-provisioner:expires-on", "users[0].expires_on"]);
    }
}
