//! The access change of CONTRACT.md section 6: the ticket as it arrives, the
//! rules that need no AWS call, and the pure plan of IAM calls that takes a
//! user from the groups and managed policies it holds to what the ticket
//! asks. The stage that acts, and a dry run, are both this plan.
//!
//! Ordering invariant: every removal (RemoveUserFromGroup, then
//! DetachUserPolicy) comes before any addition (AddUserToGroup, then
//! AttachUserPolicy). Until the last removal the user holds a part of its old
//! access, and from then on a part of its new access: at no point does it
//! hold more than either, so a run cut off half-way never leaves a user
//! with the union of both. Nothing already as asked is planned (a member is
//! not added again, a non-member not removed), so a rerun after a partial
//! run reads IAM again and plans only the rest.
//!
//! Held to the same allow-lists as onboarding, for removals too: the
//! pipeline's role may touch only the allow-listed groups and policies; any
//! other is an administrator's business. Group names are compared as IAM
//! compares them, case-insensitively; policy ARNs exactly.

use crate::config::AccessAllowList;
use crate::error::{Error, Refusal, Result};
use crate::names::{Email, PolicyArn, TicketId, UserName};
use crate::ports::{AccessChanges, Permissions};
use crate::ticket::{MAX_GROUPS, MAX_MANAGED_POLICIES, MAX_USERS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const ACCESS_CHANGE_DETAIL_TYPE: &str = "Access Change Approved";

// Unknown fields are refused, as in every ticket: a misspelt
// `remove_group` silently ignored would leave access a person asked gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessChangeTicket {
    pub ticket_id: String,
    pub requested_by: String,
    pub users: Vec<AccessChangeRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessChangeRequest {
    pub user_name: String,
    #[serde(default)]
    pub add_groups: Vec<String>,
    #[serde(default)]
    pub remove_groups: Vec<String>,
    #[serde(default)]
    pub attach_policies: Vec<String>,
    #[serde(default)]
    pub detach_policies: Vec<String>,
}

/// An access change ticket that passed every rule that needs no AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedChange {
    pub ticket_id: TicketId,
    pub requested_by: Email,
    pub users: Vec<(UserName, AccessChange)>,
}

/// What one user's access becomes: each list without repeats, every entry
/// on the allow-list (groups by their allow-listed name, policies by ARN),
/// no group or policy both added and removed, at least one entry in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessChange {
    pub add_groups: Vec<String>,
    pub remove_groups: Vec<String>,
    pub attach_policies: Vec<PolicyArn>,
    pub detach_policies: Vec<PolicyArn>,
}

/// One IAM call of an access change, named as IAM names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", content = "target")]
pub enum AccessStep {
    RemoveUserFromGroup(String),
    DetachUserPolicy(PolicyArn),
    AddUserToGroup(String),
    AttachUserPolicy(PolicyArn),
}

/// The rules of section 6 that need no AWS call, every refusal at once.
pub fn validate_access_change(
    ticket: &AccessChangeTicket,
    allow: &AccessAllowList,
) -> Result<AcceptedChange, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let ticket_id = TicketId::parse(&ticket.ticket_id).map_err(|r| refusals.push(Refusal::ticket("ticket_id", r))).ok();
    let requested_by = crate::ticket::address(
        &ticket.requested_by,
        &allow.email_domains,
        "is not in a domain this deployment writes to",
    )
    .map_err(|rule| refusals.push(Refusal::ticket("requested_by", rule)))
    .ok();
    if ticket.users.is_empty() || ticket.users.len() > MAX_USERS {
        refusals.push(Refusal::ticket(
            "users",
            format!("must list 1 to {MAX_USERS} users (this ticket lists {})", ticket.users.len()),
        ));
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut users = Vec::new();
    for (i, u) in ticket.users.iter().enumerate() {
        let mut r = UserRefusals { user: &u.user_name, at: format!("users[{i}]"), out: &mut refusals, count: 0 };
        let name = match UserName::parse(&u.user_name) {
            Err(rule) => {
                r.refuse("user_name", rule);
                None
            }
            Ok(name) => match seen.insert(name.folded(), &u.user_name) {
                Some(first) => {
                    r.refuse(
                        "user_name",
                        format!(
                            "{name:?} appears twice in the ticket (as {first:?}); IAM user names are case-insensitive"
                        ),
                    );
                    None
                }
                None => Some(name),
            },
        };
        let change = validate_change(u, allow, &mut r);
        if let (Some(name), 0) = (name, r.count) {
            users.push((name, change));
        }
    }
    match (ticket_id, requested_by) {
        (Some(ticket_id), Some(requested_by)) if refusals.is_empty() => {
            Ok(AcceptedChange { ticket_id, requested_by, users })
        }
        _ => Err(refusals),
    }
}

/// The refusals of one user, each under `users[i].<field>`.
struct UserRefusals<'a> {
    user: &'a str,
    at: String,
    out: &'a mut Vec<Refusal>,
    count: usize,
}

impl UserRefusals<'_> {
    fn refuse(&mut self, field: &str, rule: String) {
        let field = if field.is_empty() { self.at.clone() } else { format!("{}.{field}", self.at) };
        self.out.push(Refusal::user(self.user, field, rule));
        self.count += 1;
    }
}

fn validate_change(u: &AccessChangeRequest, allow: &AccessAllowList, r: &mut UserRefusals<'_>) -> AccessChange {
    if u.add_groups.is_empty()
        && u.remove_groups.is_empty()
        && u.attach_policies.is_empty()
        && u.detach_policies.is_empty()
    {
        r.refuse(
            "",
            "asks for no change: at least one of add_groups, remove_groups, attach_policies or detach_policies \
             must list something"
                .into(),
        );
    }
    let change = AccessChange {
        add_groups: groups(&u.add_groups, "add_groups", allow, r),
        remove_groups: groups(&u.remove_groups, "remove_groups", allow, r),
        attach_policies: policies(&u.attach_policies, "attach_policies", allow, r),
        detach_policies: policies(&u.detach_policies, "detach_policies", allow, r),
    };
    let added: BTreeSet<String> = u.add_groups.iter().map(|g| g.to_ascii_lowercase()).collect();
    let mut told = BTreeSet::new();
    for g in &u.remove_groups {
        let folded = g.to_ascii_lowercase();
        if added.contains(&folded) && told.insert(folded) {
            r.refuse(
                "remove_groups",
                format!("group {g:?} is also in add_groups; a change adds a group or removes it, not both"),
            );
        }
    }
    let attached: BTreeSet<&str> = u.attach_policies.iter().map(String::as_str).collect();
    let mut told = BTreeSet::new();
    for p in &u.detach_policies {
        if attached.contains(p.as_str()) && told.insert(p.as_str()) {
            r.refuse(
                "detach_policies",
                format!("policy {p:?} is also in attach_policies; a change attaches a policy or detaches it, not both"),
            );
        }
    }
    change
}

/// One list of groups: each named once (as IAM compares names), each on the
/// allow-list, at most IAM's quota of groups per user.
fn groups(listed: &[String], field: &str, allow: &AccessAllowList, r: &mut UserRefusals<'_>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut accepted = Vec::new();
    for g in listed {
        if !seen.insert(g.to_ascii_lowercase()) {
            r.refuse(field, format!("group {g:?} is listed twice; IAM group names are case-insensitive"));
        } else if !allow.groups.contains(g) {
            r.refuse(
                field,
                format!("group {g:?} is not on this deployment's allow-list ({})", crate::ticket::list(&allow.groups)),
            );
        } else {
            accepted.push(g.clone());
        }
    }
    if seen.len() > MAX_GROUPS {
        r.refuse(field, format!("{} groups listed; IAM allows a user at most {MAX_GROUPS}", seen.len()));
    }
    accepted
}

/// One list of managed policies: each ARN once, each on the allow-list, at
/// most IAM's quota of managed policies per user.
fn policies(listed: &[String], field: &str, allow: &AccessAllowList, r: &mut UserRefusals<'_>) -> Vec<PolicyArn> {
    let mut seen = BTreeSet::new();
    let mut accepted = Vec::new();
    for p in listed {
        if !seen.insert(p.as_str()) {
            r.refuse(field, format!("policy {p:?} is listed twice"));
            continue;
        }
        // Whatever is on the allow-list was parsed as a policy ARN with it.
        match allow.managed_policies.get(p.as_str()) {
            Some(arn) => accepted.push(arn.clone()),
            None => r.refuse(
                field,
                format!(
                    "policy {p:?} is not on this deployment's allow-list ({})",
                    crate::ticket::list(&allow.managed_policies)
                ),
            ),
        }
    }
    if seen.len() > MAX_MANAGED_POLICIES {
        r.refuse(
            field,
            format!("{} managed policies listed; IAM allows a user at most {MAX_MANAGED_POLICIES}", seen.len()),
        );
    }
    accepted
}

/// The calls that take `current` to what `change` asks, removals first (see
/// the module header). Only groups and managed policies of `current` are
/// read; anything the change does not name is left as it is.
pub fn plan(current: &Permissions, change: &AccessChange) -> Vec<AccessStep> {
    let member = |g: &String| current.groups.iter().any(|c| c.eq_ignore_ascii_case(g));
    let attached = |p: &PolicyArn| current.managed_policies.iter().any(|c| c == p.as_str());
    let mut steps = Vec::new();
    steps.extend(change.remove_groups.iter().filter(|g| member(g)).cloned().map(AccessStep::RemoveUserFromGroup));
    steps.extend(change.detach_policies.iter().filter(|p| attached(p)).cloned().map(AccessStep::DetachUserPolicy));
    steps.extend(change.add_groups.iter().filter(|g| !member(g)).cloned().map(AccessStep::AddUserToGroup));
    steps.extend(change.attach_policies.iter().filter(|p| !attached(p)).cloned().map(AccessStep::AttachUserPolicy));
    steps
}

/// Changes one user's access: reads what it holds, plans, and makes each
/// call in the plan's order. Returns the calls made. Stops at the first
/// failure; the retry reads again and plans only what is left. A user that
/// does not exist is refused (`Error::Permanent`): there is nothing to change.
pub async fn change<A: AccessChanges>(iam: &A, user_name: &UserName, change: &AccessChange) -> Result<Vec<AccessStep>> {
    let Some(current) = iam.access_of(user_name).await? else {
        return Err(Error::permanent("ListGroupsForUser", format!("there is no IAM user {user_name:?}")));
    };
    let steps = plan(&current, change);
    for step in &steps {
        iam.apply_access(user_name, step).await?;
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";

    fn arn(s: &str) -> PolicyArn {
        PolicyArn::parse(s).unwrap()
    }

    fn allow() -> AccessAllowList {
        AccessAllowList {
            groups: ["Developers", "Power_Users", "ReadOnly"].map(String::from).into(),
            managed_policies: [arn(READ_ONLY), arn(POWER_USER)].into(),
            email_domains: ["example.com".to_owned()].into(),
        }
    }

    fn ticket(v: serde_json::Value) -> AccessChangeTicket {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_contracts_example_is_accepted_and_absent_lists_are_empty() {
        let accepted = validate_access_change(
            &ticket(json!({
                "ticket_id": "CHG-77", "requested_by": "it-ops@example.com",
                "users": [
                    { "user_name": "emily.chen", "add_groups": ["ReadOnly"], "remove_groups": ["Power_Users"],
                      "attach_policies": [], "detach_policies": [] },
                    { "user_name": "raj", "attach_policies": [READ_ONLY] }
                ]
            })),
            &allow(),
        )
        .unwrap();
        assert_eq!(accepted.ticket_id, "CHG-77");
        assert_eq!(accepted.requested_by, "it-ops@example.com");
        assert_eq!(
            accepted.users,
            [
                (
                    UserName::parse("emily.chen").unwrap(),
                    AccessChange {
                        add_groups: vec!["ReadOnly".into()],
                        remove_groups: vec!["Power_Users".into()],
                        ..Default::default()
                    }
                ),
                (
                    UserName::parse("raj").unwrap(),
                    AccessChange { attach_policies: vec![arn(READ_ONLY)], ..Default::default() }
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_field_or_a_wrong_type_is_refused_at_parse() {
        for bad in [
            json!({"ticket_id": "C-1", "requested_by": "a@example.com", "users": [], "dry_run": true}),
            json!({"ticket_id": "C-1", "requested_by": "a@example.com",
                   "users": [{"user_name": "x", "remove_group": ["ReadOnly"]}]}),
            json!({"ticket_id": "C-1", "requested_by": "a@example.com",
                   "users": [{"user_name": "x", "add_groups": "ReadOnly"}]}),
            json!({"ticket_id": "C-1", "users": [{"user_name": "x", "add_groups": ["ReadOnly"]}]}),
        ] {
            assert!(serde_json::from_value::<AccessChangeTicket>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_refusal_is_given_at_once_with_its_field() {
        let refusals = validate_access_change(
            &ticket(json!({
                "ticket_id": "CHG 1", "requested_by": "boss@evil.test",
                "users": [
                    { "user_name": "a b", "add_groups": ["ReadOnly"] },
                    { "user_name": "emily" },
                    { "user_name": "Emily", "add_groups": ["ReadOnly"] },
                    { "user_name": "raj",
                      "add_groups": ["ReadOnly", "readonly", "Admins"],
                      "remove_groups": ["Administrators", "READONLY"],
                      "attach_policies": [READ_ONLY, READ_ONLY, "arn:aws:iam::aws:policy/AdministratorAccess"],
                      "detach_policies": [READ_ONLY, "arn:aws:iam::aws:policy/IAMFullAccess"] }
                ]
            })),
            &allow(),
        )
        .unwrap_err();
        let fields: Vec<(Option<&str>, &str)> =
            refusals.iter().map(|r| (r.user.as_deref(), r.field.as_str())).collect();
        assert_eq!(
            fields,
            [
                (None, "ticket_id"),
                (None, "requested_by"),
                (Some("a b"), "users[0].user_name"),
                (Some("emily"), "users[1]"),
                (Some("Emily"), "users[2].user_name"),
                (Some("raj"), "users[3].add_groups"),
                (Some("raj"), "users[3].add_groups"),
                (Some("raj"), "users[3].remove_groups"),
                (Some("raj"), "users[3].remove_groups"),
                (Some("raj"), "users[3].attach_policies"),
                (Some("raj"), "users[3].attach_policies"),
                (Some("raj"), "users[3].detach_policies"),
                (Some("raj"), "users[3].remove_groups"),
                (Some("raj"), "users[3].detach_policies"),
            ],
            "{refusals:#?}"
        );
        let rules: Vec<&str> = refusals.iter().map(|r| r.rule.as_str()).collect();
        assert!(rules[3].contains("no change"), "{}", rules[3]);
        assert!(rules[4].contains("twice"), "{}", rules[4]);
        assert!(rules[5].contains("\"readonly\" is listed twice"), "{}", rules[5]);
        assert!(rules[6].contains("\"Admins\" is not on this deployment's allow-list"), "{}", rules[6]);
        // A group outside the list is an administrator's, even to remove.
        assert!(rules[7].contains("\"Administrators\" is not on"), "{}", rules[7]);
        assert!(rules[8].contains("\"READONLY\" is not on"), "{}", rules[8]);
        assert!(rules[9].contains("listed twice"), "{}", rules[9]);
        assert!(rules[10].contains("AdministratorAccess\" is not on"), "{}", rules[10]);
        assert!(rules[11].contains("IAMFullAccess\" is not on"), "{}", rules[11]);
        assert!(rules[12].contains("\"READONLY\" is also in add_groups"), "{}", rules[12]);
        assert!(rules[13].contains("is also in attach_policies"), "{}", rules[13]);
    }

    #[test]
    fn the_ticket_wide_counts_and_iams_quotas_are_held() {
        let user = |i: usize| json!({"user_name": format!("u{i}"), "add_groups": ["ReadOnly"]});
        let eleven: Vec<_> = (0..11).map(user).collect();
        for users in [json!([]), json!(eleven)] {
            let t = ticket(json!({"ticket_id": "C-1", "requested_by": "a@example.com", "users": users}));
            let refusals = validate_access_change(&t, &allow()).unwrap_err();
            assert_eq!(refusals.iter().map(|r| r.field.as_str()).collect::<Vec<_>>(), ["users"]);
        }
        let mut wide = allow();
        wide.groups = (0..11).map(|i| format!("G{i}")).collect();
        wide.managed_policies = (0..11).map(|i| arn(&format!("arn:aws:iam::aws:policy/P{i}"))).collect();
        let groups: Vec<String> = wide.groups.iter().cloned().collect();
        let policies: Vec<String> = wide.managed_policies.iter().map(|p| p.to_string()).collect();
        let t = ticket(json!({"ticket_id": "C-1", "requested_by": "a@example.com",
            "users": [{"user_name": "x", "add_groups": groups, "detach_policies": policies}]}));
        let refusals = validate_access_change(&t, &wide).unwrap_err();
        let fields: Vec<&str> = refusals.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["users[0].add_groups", "users[0].detach_policies"], "{refusals:#?}");
        assert!(refusals.iter().all(|r| r.rule.contains("at most 10")), "{refusals:#?}");
    }

    fn holding(groups: &[&str], policies: &[&str]) -> Permissions {
        Permissions {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            managed_policies: policies.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    fn swap() -> AccessChange {
        AccessChange {
            add_groups: vec!["ReadOnly".into(), "Developers".into()],
            remove_groups: vec!["Power_Users".into()],
            attach_policies: vec![arn(READ_ONLY)],
            detach_policies: vec![arn(POWER_USER)],
        }
    }

    #[test]
    fn removals_come_before_additions_and_the_user_never_holds_more_than_old_or_new() {
        let old = holding(&["Power_Users", "Other"], &[POWER_USER]);
        let steps = plan(&old, &swap());
        assert_eq!(
            steps,
            [
                AccessStep::RemoveUserFromGroup("Power_Users".into()),
                AccessStep::DetachUserPolicy(arn(POWER_USER)),
                AccessStep::AddUserToGroup("ReadOnly".into()),
                AccessStep::AddUserToGroup("Developers".into()),
                AccessStep::AttachUserPolicy(arn(READ_ONLY)),
            ]
        );
        // After each call, what the user holds is within the old access or
        // within the new.
        let set = |p: &Permissions| -> BTreeSet<String> {
            p.groups.iter().map(|g| format!("group:{g}")).chain(p.managed_policies.iter().cloned()).collect()
        };
        let new = holding(&["Other", "ReadOnly", "Developers"], &[READ_ONLY]);
        let mut now = old.clone();
        for step in &steps {
            match step {
                AccessStep::RemoveUserFromGroup(g) => now.groups.retain(|x| x != g),
                AccessStep::DetachUserPolicy(p) => now.managed_policies.retain(|x| x != p.as_str()),
                AccessStep::AddUserToGroup(g) => now.groups.push(g.clone()),
                AccessStep::AttachUserPolicy(p) => now.managed_policies.push(p.to_string()),
            }
            assert!(set(&now).is_subset(&set(&old)) || set(&now).is_subset(&set(&new)), "after {step:?}: {now:?}");
        }
        assert_eq!(set(&now), set(&new));
    }

    #[test]
    fn nothing_already_as_asked_is_planned_and_groups_compare_as_iam_does() {
        // Done already: nothing to do.
        let done = holding(&["readonly", "DEVELOPERS", "Other"], &[READ_ONLY]);
        assert!(plan(&done, &swap()).is_empty());
        // Half done (the removals and one addition): only the rest.
        let half = holding(&["ReadOnly"], &[]);
        assert_eq!(
            plan(&half, &swap()),
            [AccessStep::AddUserToGroup("Developers".into()), AccessStep::AttachUserPolicy(arn(READ_ONLY))]
        );
        // A non-member is not removed, a policy not attached not detached.
        let change = AccessChange {
            remove_groups: vec!["Power_Users".into()],
            detach_policies: vec![arn(POWER_USER)],
            ..Default::default()
        };
        assert!(plan(&holding(&["Other"], &[READ_ONLY]), &change).is_empty());
    }

    #[test]
    fn a_step_travels_as_the_iam_call_and_its_target() {
        let step = AccessStep::DetachUserPolicy(arn(POWER_USER));
        let v = serde_json::to_value(&step).unwrap();
        assert_eq!(v, json!({"call": "DetachUserPolicy", "target": POWER_USER}));
        assert_eq!(serde_json::from_value::<AccessStep>(v).unwrap(), step);
    }
}

#[cfg(test)]
mod executor_tests {
    use super::*;
    use crate::memory::MemoryAccess;

    const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";

    fn emily() -> UserName {
        UserName::parse("emily").unwrap()
    }

    fn arn(s: &str) -> PolicyArn {
        PolicyArn::parse(s).unwrap()
    }

    fn loaded() -> MemoryAccess {
        let iam = MemoryAccess::default();
        iam.insert(
            "emily",
            Permissions {
                groups: vec!["Power_Users".into(), "Developers".into()],
                managed_policies: vec![POWER_USER.into()],
                ..Default::default()
            },
        );
        iam
    }

    fn asked() -> AccessChange {
        AccessChange {
            add_groups: vec!["ReadOnly".into()],
            remove_groups: vec!["Power_Users".into(), "Developers".into()],
            attach_policies: vec![arn(READ_ONLY)],
            detach_policies: vec![arn(POWER_USER)],
        }
    }

    fn ends_as_asked(iam: &MemoryAccess, context: &str) {
        let left = iam.access_held("emily").unwrap();
        assert_eq!(left.groups, ["ReadOnly"], "{context}");
        assert_eq!(left.managed_policies, [READ_ONLY], "{context}");
    }

    #[tokio::test]
    async fn a_change_is_made_in_order_and_a_replay_does_nothing() {
        let iam = loaded();
        let done = change(&iam, &emily(), &asked()).await.unwrap();
        assert_eq!(
            iam.calls(),
            done.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
            "the calls made are the ones returned"
        );
        assert_eq!(done.len(), 5);
        ends_as_asked(&iam, "first run");
        assert!(change(&iam, &emily(), &asked()).await.unwrap().is_empty());
        assert_eq!(iam.calls().len(), 5, "a replay made a call");
    }

    #[tokio::test]
    async fn a_user_that_does_not_exist_is_refused() {
        let err = change(&MemoryAccess::default(), &emily(), &asked()).await.unwrap_err();
        assert!(err.is_refusal() && err.to_string().contains("no IAM user"), "{err}");
    }

    /// Cut off at each of its calls, then run again: always ends as asked,
    /// and no call that had succeeded is made twice.
    #[tokio::test]
    async fn cut_off_at_any_call_the_rerun_finishes_the_change() {
        let total = change(&loaded(), &emily(), &asked()).await.unwrap().len();
        for n in 0..total {
            let iam = loaded();
            iam.fail_at(n);
            assert!(change(&iam, &emily(), &asked()).await.is_err(), "call {n}");
            assert_eq!(iam.calls().len(), n, "cut at call {n}");
            change(&iam, &emily(), &asked()).await.unwrap();
            ends_as_asked(&iam, &format!("cut at call {n}"));
            let calls = iam.calls();
            let unique: BTreeSet<&String> = calls.iter().collect();
            assert_eq!(unique.len(), calls.len(), "cut at call {n}: a call made twice: {calls:?}");
            assert_eq!(calls.len(), total, "cut at call {n}: {calls:?}");
        }
    }
}
