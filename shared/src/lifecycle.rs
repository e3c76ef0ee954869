//! The rest of the lifecycle (CONTRACT.md section 6), the parts that need no
//! AWS call: the offboarding ticket as it arrives, its rules, and the pure
//! plan of what IAM must be told, in the order IAM requires, to disable or
//! delete one user. The stage that acts on it, and the operator CLI's
//! `plan FILE`, are both this plan: the dry run is the real code.
//!
//! Ordering invariant of a deletion: DeleteUser comes last, after everything
//! IAM refuses it for (`DeleteConflict`) is gone: login profile, access
//! keys, signing certificates, SSH public keys, service-specific
//! credentials, MFA devices, group memberships, attached and inline
//! policies; and after every virtual MFA device that was the user's is
//! deleted, which IAM does not refuse it for. A virtual device is marked as
//! the user's (tagged `iam-provisioner:offboarding` = the user's IAM id,
//! never reused unlike the name) before it is deactivated, then deleted:
//! once deactivated IAM no longer lists it as the user's, and the mark is
//! how a rerun after a run cut off between the two calls finds it (and the
//! only proof it takes: no unmarked device is deleted). A disable removes
//! what lets the user in or grants anything, and tags the user last, so a
//! user tagged `offboarded` is one whose disabling finished.

use crate::error::Refusal;
use crate::names::{Email, TicketId, UserName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const OFFBOARDING_DETAIL_TYPE: &str = "Offboarding Ticket Approved";
pub const OFFBOARDED_TAG: &str = "iam-provisioner:offboarded";
pub const OFFBOARDED_ON_TAG: &str = "iam-provisioner:offboarded-on";
/// On a virtual MFA device: the IAM id of the user an offboarding took it
/// from (see the module header).
pub const MFA_OWNER_TAG: &str = "iam-provisioner:offboarding";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffboardingTicket {
    pub ticket_id: String,
    pub requested_by: String,
    pub users: Vec<OffboardRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffboardRequest {
    pub user_name: String,
    #[serde(default)]
    pub action: Option<OffboardAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffboardAction {
    Disable,
    Delete,
}

/// An offboarding ticket that passed every rule that needs no AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedOffboarding {
    pub ticket_id: TicketId,
    pub requested_by: Email,
    pub users: Vec<(UserName, OffboardAction)>,
}

/// The rules of section 6 that need no AWS call, every refusal at once.
pub fn validate_offboarding(
    ticket: &OffboardingTicket,
    email_domains: &std::collections::BTreeSet<String>,
) -> Result<AcceptedOffboarding, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let ticket_id = TicketId::parse(&ticket.ticket_id).map_err(|r| refusals.push(Refusal::ticket("ticket_id", r))).ok();
    let requested_by =
        crate::ticket::address(&ticket.requested_by, email_domains, "is not in a domain this deployment writes to")
            .map_err(|rule| refusals.push(Refusal::ticket("requested_by", rule)))
            .ok();
    if ticket.users.is_empty() || ticket.users.len() > crate::ticket::MAX_USERS {
        refusals.push(Refusal::ticket(
            "users",
            format!("must list 1 to {} users (this ticket lists {})", crate::ticket::MAX_USERS, ticket.users.len()),
        ));
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut users = Vec::new();
    for (i, u) in ticket.users.iter().enumerate() {
        let field = format!("users[{i}].user_name");
        match UserName::parse(&u.user_name) {
            Err(rule) => refusals.push(Refusal::user(&u.user_name, field, rule)),
            Ok(name) => {
                if let Some(first) = seen.insert(name.folded(), &u.user_name) {
                    refusals.push(Refusal::user(
                        &u.user_name,
                        field,
                        format!(
                            "{name:?} appears twice in the ticket (as {first:?}); IAM user names are case-insensitive"
                        ),
                    ));
                } else {
                    users.push((name, u.action.unwrap_or(OffboardAction::Disable)));
                }
            }
        }
    }
    match (ticket_id, requested_by) {
        (Some(ticket_id), Some(requested_by)) if refusals.is_empty() => {
            Ok(AcceptedOffboarding { ticket_id, requested_by, users })
        }
        _ => Err(refusals),
    }
}

/// What IAM holds for one user that offboarding must remove (or, for a
/// disable, switch off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserHoldings {
    /// IAM's unique id of the user (`AIDA...`): unlike the name, never
    /// given to another user.
    pub user_id: String,
    pub login_profile: bool,
    /// Access key ids, with whether each is active.
    pub access_keys: Vec<(String, bool)>,
    pub signing_certificates: Vec<String>,
    pub ssh_public_keys: Vec<String>,
    pub service_specific_credentials: Vec<String>,
    /// The MFA devices assigned to the user: serial numbers, with whether
    /// each is a virtual device (marked, deactivated, then deleted; any
    /// other kind is only deactivated).
    pub mfa_devices: Vec<(String, bool)>,
    /// Virtual MFA devices marked as this user's (`MFA_OWNER_TAG` = `user_id`),
    /// assigned or not: an assigned one needs no second mark, an unassigned
    /// one is a device a cut-off run deactivated and did not delete.
    pub marked_mfa_devices: Vec<String>,
    pub groups: Vec<String>,
    pub managed_policies: Vec<String>,
    pub inline_policies: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// One IAM call of an offboarding, named as IAM names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "call", content = "target")]
pub enum Step {
    DeleteLoginProfile,
    DeactivateAccessKey(String),
    DeleteAccessKey(String),
    DeleteSigningCertificate(String),
    DeleteSshPublicKey(String),
    DeleteServiceSpecificCredential(String),
    /// TagMFADevice: `MFA_OWNER_TAG` = the user's id on a virtual device.
    TagMfaDevice {
        serial: String,
        user_id: String,
    },
    DeactivateMfaDevice(String),
    DeleteVirtualMfaDevice(String),
    RemoveUserFromGroup(String),
    DetachUserPolicy(String),
    DeleteUserPolicy(String),
    /// The offboarded tags: the ticket id and the date (YYYY-MM-DD, UTC).
    TagOffboarded {
        ticket_id: String,
        on: String,
    },
    DeleteUser,
}

/// The calls that take `holdings` to what `action` leaves, in the order IAM
/// requires (see the module header). Nothing already gone is planned, so
/// planning again after a partial run plans only the rest.
pub fn plan(holdings: &UserHoldings, action: OffboardAction, ticket_id: &str, today: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    if holdings.login_profile {
        steps.push(Step::DeleteLoginProfile);
    }
    match action {
        OffboardAction::Disable => {
            for (key, active) in &holdings.access_keys {
                if *active {
                    steps.push(Step::DeactivateAccessKey(key.clone()));
                }
            }
        }
        OffboardAction::Delete => {
            steps.extend(holdings.access_keys.iter().map(|(k, _)| Step::DeleteAccessKey(k.clone())));
            steps.extend(holdings.signing_certificates.iter().cloned().map(Step::DeleteSigningCertificate));
            steps.extend(holdings.ssh_public_keys.iter().cloned().map(Step::DeleteSshPublicKey));
            steps.extend(
                holdings.service_specific_credentials.iter().cloned().map(Step::DeleteServiceSpecificCredential),
            );
            for (serial, is_virtual) in &holdings.mfa_devices {
                if *is_virtual && !holdings.marked_mfa_devices.contains(serial) {
                    steps.push(Step::TagMfaDevice { serial: serial.clone(), user_id: holdings.user_id.clone() });
                }
                steps.push(Step::DeactivateMfaDevice(serial.clone()));
                if *is_virtual {
                    steps.push(Step::DeleteVirtualMfaDevice(serial.clone()));
                }
            }
            // Marked and no longer assigned: deactivated by a run cut off
            // before it deleted them.
            let assigned = |serial: &String| holdings.mfa_devices.iter().any(|(s, _)| s == serial);
            for serial in holdings.marked_mfa_devices.iter().filter(|s| !assigned(s)) {
                steps.push(Step::DeleteVirtualMfaDevice(serial.clone()));
            }
        }
    }
    steps.extend(holdings.groups.iter().cloned().map(Step::RemoveUserFromGroup));
    steps.extend(holdings.managed_policies.iter().cloned().map(Step::DetachUserPolicy));
    match action {
        OffboardAction::Disable => {
            // Already disabled by another ticket: its tags stay as they are.
            if !holdings.tags.contains_key(OFFBOARDED_TAG) {
                steps.push(Step::TagOffboarded { ticket_id: ticket_id.to_owned(), on: today.to_owned() });
            }
        }
        OffboardAction::Delete => {
            steps.extend(holdings.inline_policies.iter().cloned().map(Step::DeleteUserPolicy));
            steps.push(Step::DeleteUser);
        }
    }
    steps
}

/// Disables or deletes one user: reads what it holds (for a deletion, with
/// the unassigned virtual MFA devices marked as the user's), plans, and
/// makes each call in the plan's order. Returns the calls made. A user that
/// no longer exists is done (a deletion that finished earlier). Stops at the
/// first failure; the retry reads again and plans only what is left.
pub async fn offboard<O: crate::ports::Offboarding>(
    iam: &O,
    user_name: &UserName,
    action: OffboardAction,
    ticket_id: &str,
    today: &str,
) -> crate::Result<Vec<Step>> {
    let steps = planned(iam, user_name, action, ticket_id, today).await?.unwrap_or_default();
    for step in &steps {
        iam.apply(user_name, step).await?;
    }
    Ok(steps)
}

/// What `offboard` would call for the user now, with IAM reads only (the
/// operator CLI's `plan`); `None` if there is no such user.
pub async fn planned<O: crate::ports::Offboarding>(
    iam: &O,
    user_name: &UserName,
    action: OffboardAction,
    ticket_id: &str,
    today: &str,
) -> crate::Result<Option<Vec<Step>>> {
    let Some(mut holdings) = iam.holdings(user_name).await? else {
        return Ok(None);
    };
    if action == OffboardAction::Delete && !holdings.user_id.is_empty() {
        for serial in iam.unassigned_mfa_devices_marked_for(&holdings.user_id).await? {
            if !holdings.marked_mfa_devices.contains(&serial) {
                holdings.marked_mfa_devices.push(serial);
            }
        }
    }
    Ok(Some(plan(&holdings, action, ticket_id, today)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> UserHoldings {
        UserHoldings {
            user_id: "AIDAEMILY".into(),
            login_profile: true,
            access_keys: vec![("AKIA1".into(), true), ("AKIA2".into(), false)],
            signing_certificates: vec!["CERT1".into()],
            ssh_public_keys: vec!["APKA1".into()],
            service_specific_credentials: vec!["ACCA1".into()],
            mfa_devices: vec![("arn:aws:iam::1:mfa/emily".into(), true), ("GAHT12345678".into(), false)],
            marked_mfa_devices: vec![],
            groups: vec!["Developers".into()],
            managed_policies: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            inline_policies: vec!["legacy".into()],
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn a_deletion_removes_everything_iam_requires_before_delete_user_last() {
        let steps = plan(&full(), OffboardAction::Delete, "OFF-1", "2026-11-25");
        assert_eq!(steps.last(), Some(&Step::DeleteUser));
        assert_eq!(steps.iter().filter(|s| **s == Step::DeleteUser).count(), 1);
        for needed in [
            Step::DeleteLoginProfile,
            Step::DeleteAccessKey("AKIA1".into()),
            Step::DeleteAccessKey("AKIA2".into()),
            Step::DeleteSigningCertificate("CERT1".into()),
            Step::DeleteSshPublicKey("APKA1".into()),
            Step::DeleteServiceSpecificCredential("ACCA1".into()),
            Step::TagMfaDevice { serial: "arn:aws:iam::1:mfa/emily".into(), user_id: "AIDAEMILY".into() },
            Step::DeactivateMfaDevice("arn:aws:iam::1:mfa/emily".into()),
            Step::DeleteVirtualMfaDevice("arn:aws:iam::1:mfa/emily".into()),
            Step::DeactivateMfaDevice("GAHT12345678".into()),
            Step::RemoveUserFromGroup("Developers".into()),
            Step::DetachUserPolicy("arn:aws:iam::aws:policy/ReadOnlyAccess".into()),
            Step::DeleteUserPolicy("legacy".into()),
        ] {
            assert!(steps.contains(&needed), "{needed:?} missing from {steps:?}");
        }
        assert!(!steps.contains(&Step::DeleteVirtualMfaDevice("GAHT12345678".into())), "a hardware device deleted");
        assert!(!steps.iter().any(|s| matches!(s, Step::TagMfaDevice { serial, .. } if serial == "GAHT12345678")));
        let at = |s: &Step| steps.iter().position(|x| x == s).unwrap();
        let mfa = "arn:aws:iam::1:mfa/emily".to_owned();
        let mark = Step::TagMfaDevice { serial: mfa.clone(), user_id: "AIDAEMILY".into() };
        assert!(at(&mark) < at(&Step::DeactivateMfaDevice(mfa.clone())), "deactivated before it was marked");
        assert!(at(&Step::DeactivateMfaDevice(mfa.clone())) < at(&Step::DeleteVirtualMfaDevice(mfa)));
        // Nothing left, nothing but the user to delete: a rerun after a
        // partial run plans only the rest.
        assert_eq!(plan(&UserHoldings::default(), OffboardAction::Delete, "OFF-1", "x"), [Step::DeleteUser]);
    }

    /// A device already marked is not marked again; a marked one no longer
    /// assigned (deactivated by a run cut off before the delete) is deleted
    /// before the user; a disable leaves MFA devices alone.
    #[test]
    fn marked_virtual_devices_are_deleted_before_the_user_and_marked_once() {
        let mut h = UserHoldings { user_id: "AIDAEMILY".into(), ..Default::default() };
        h.mfa_devices = vec![("arn:aws:iam::1:mfa/phone".into(), true)];
        h.marked_mfa_devices = vec!["arn:aws:iam::1:mfa/phone".into(), "arn:aws:iam::1:mfa/left".into()];
        assert_eq!(
            plan(&h, OffboardAction::Delete, "OFF-1", "d"),
            [
                Step::DeactivateMfaDevice("arn:aws:iam::1:mfa/phone".into()),
                Step::DeleteVirtualMfaDevice("arn:aws:iam::1:mfa/phone".into()),
                Step::DeleteVirtualMfaDevice("arn:aws:iam::1:mfa/left".into()),
                Step::DeleteUser,
            ]
        );
        assert_eq!(
            plan(&h, OffboardAction::Disable, "OFF-1", "d"),
            [Step::TagOffboarded { ticket_id: "OFF-1".into(), on: "d".into() }]
        );
    }

    #[test]
    fn a_disable_switches_off_what_lets_the_user_in_and_tags_last() {
        let steps = plan(&full(), OffboardAction::Disable, "OFF-1", "2026-11-25");
        assert_eq!(
            steps,
            [
                Step::DeleteLoginProfile,
                Step::DeactivateAccessKey("AKIA1".into()),
                Step::RemoveUserFromGroup("Developers".into()),
                Step::DetachUserPolicy("arn:aws:iam::aws:policy/ReadOnlyAccess".into()),
                Step::TagOffboarded { ticket_id: "OFF-1".into(), on: "2026-11-25".into() },
            ]
        );
        let mut disabled = UserHoldings::default();
        disabled.tags.insert(OFFBOARDED_TAG.into(), "OFF-0".into());
        assert!(plan(&disabled, OffboardAction::Disable, "OFF-1", "x").is_empty(), "another ticket's tags changed");
    }

    #[test]
    fn an_offboarding_ticket_is_checked_whole_and_disable_is_the_default() {
        let domains = ["example.com".to_owned()].into();
        let ticket: OffboardingTicket = serde_json::from_value(json!({
            "ticket_id": "OFF-311", "requested_by": "it-ops@example.com",
            "users": [{"user_name": "emily.chen", "action": "disable"}, {"user_name": "svc-report", "action": "delete"},
                      {"user_name": "raj"}]
        }))
        .unwrap();
        let accepted = validate_offboarding(&ticket, &domains).unwrap();
        let actions: Vec<_> = accepted.users.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        assert_eq!(
            actions,
            [
                ("emily.chen", OffboardAction::Disable),
                ("svc-report", OffboardAction::Delete),
                ("raj", OffboardAction::Disable)
            ]
        );
        let bad: OffboardingTicket = serde_json::from_value(json!({
            "ticket_id": "OFF 1", "requested_by": "boss@evil.test",
            "users": [{"user_name": "a b"}, {"user_name": "Raj"}, {"user_name": "raj"}]
        }))
        .unwrap();
        let refusals = validate_offboarding(&bad, &domains).unwrap_err();
        let fields: Vec<&str> = refusals.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["ticket_id", "requested_by", "users[0].user_name", "users[2].user_name"]);
        assert!(serde_json::from_value::<OffboardingTicket>(json!({
            "ticket_id": "OFF-1", "requested_by": "a@example.com", "users": [{"user_name": "x", "action": "purge"}]
        }))
        .is_err());
    }
}

#[cfg(test)]
mod executor_tests {
    use super::*;
    use crate::memory::MemoryOffboarding;

    fn emily() -> UserName {
        UserName::parse("emily").unwrap()
    }

    /// A user with an MFA device, two keys, an inline policy and groups.
    fn loaded(iam: &MemoryOffboarding) {
        iam.insert(
            "emily",
            UserHoldings {
                login_profile: true,
                access_keys: vec![("AKIA1".into(), true), ("AKIA2".into(), true)],
                mfa_devices: vec![("arn:aws:iam::1:mfa/emily".into(), true)],
                groups: vec!["Developers".into(), "ReadOnly".into()],
                managed_policies: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
                inline_policies: vec!["legacy".into()],
                ..Default::default()
            },
        );
    }

    #[tokio::test]
    async fn a_loaded_user_is_deleted_cleanly_and_a_replay_does_nothing() {
        let iam = MemoryOffboarding::default();
        loaded(&iam);
        let done = offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "2026-11-25").await.unwrap();
        assert_eq!(done.last(), Some(&Step::DeleteUser));
        assert!(iam.holdings_of("emily").is_none(), "the user is still there");
        assert!(offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "2026-11-25").await.unwrap().is_empty());
    }

    /// IAM refuses DeleteUser while anything remains (DeleteConflict): the
    /// fake does too, so skipping a removal would fail here. Passing, not a
    /// refusal: the rerun reads the holdings again and plans the rest.
    #[tokio::test]
    async fn delete_user_is_refused_while_anything_remains() {
        let iam = MemoryOffboarding::default();
        loaded(&iam);
        let err = crate::ports::Offboarding::apply(&iam, "emily", &Step::DeleteUser).await.unwrap_err();
        assert!(err.to_string().contains("DeleteConflict"), "{err}");
        assert!(err.is_retryable() && !err.is_refusal(), "{err:?}");
        assert!(offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await.is_ok());
        assert!(iam.holdings_of("emily").is_none());
    }

    /// Cut off at each of its calls, then run again: always ends with the
    /// user deleted, no virtual MFA device left behind, and no call made
    /// twice that had succeeded.
    #[tokio::test]
    async fn cut_off_at_any_call_the_rerun_finishes_the_deletion() {
        let total = {
            let iam = MemoryOffboarding::default();
            loaded(&iam);
            offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await.unwrap().len()
        };
        for n in 0..total {
            let iam = MemoryOffboarding::default();
            loaded(&iam);
            iam.fail_at(n);
            assert!(offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await.is_err(), "call {n}");
            offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await.unwrap();
            assert!(iam.holdings_of("emily").is_none(), "cut at call {n}: not deleted");
            assert!(iam.unassigned_devices().is_empty(), "cut at call {n}: MFA device left: {:?}", iam.calls());
            let calls = iam.calls();
            let mut unique = calls.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), calls.len(), "cut at call {n}: a call made twice: {calls:?}");
        }
    }

    /// The cut that leaks a device: deactivated (so IAM no longer lists it
    /// as the user's) and not deleted. The rerun finds it by its mark.
    #[tokio::test]
    async fn cut_between_deactivate_and_delete_the_rerun_deletes_the_device() {
        let serial = "arn:aws:iam::1:mfa/emily".to_owned();
        let iam = MemoryOffboarding::default();
        loaded(&iam);
        let plan = plan(&iam.holdings_of("emily").unwrap(), OffboardAction::Delete, "OFF-1", "d");
        let deactivate = plan.iter().position(|s| *s == Step::DeactivateMfaDevice(serial.clone())).unwrap();
        assert_eq!(plan[deactivate + 1], Step::DeleteVirtualMfaDevice(serial.clone()));
        iam.fail_at(deactivate + 1);
        assert!(offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await.is_err());
        let left = iam.holdings_of("emily").unwrap();
        assert!(left.mfa_devices.is_empty(), "still assigned: {left:?}");
        assert_eq!(iam.unassigned_devices(), std::slice::from_ref(&serial));
        assert_eq!(iam.device_tags(&serial)[MFA_OWNER_TAG], left.user_id);

        let rerun = offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await.unwrap();
        assert_eq!(
            rerun,
            [
                Step::DeleteVirtualMfaDevice(serial),
                Step::RemoveUserFromGroup("Developers".into()),
                Step::RemoveUserFromGroup("ReadOnly".into()),
                Step::DetachUserPolicy("arn:aws:iam::aws:policy/ReadOnlyAccess".into()),
                Step::DeleteUserPolicy("legacy".into()),
                Step::DeleteUser,
            ]
        );
        assert!(iam.unassigned_devices().is_empty(), "the device leaked");
        assert!(iam.holdings_of("emily").is_none());
    }

    /// Unassigned devices not proven to be this user's are never touched,
    /// wherever a run is cut off: another user's (its id in the mark; a
    /// previous user of the same name is another id too), one marked with
    /// this user's *name* (a name is reused, an id never), and one named
    /// like the user's but unmarked.
    #[tokio::test]
    async fn an_unassigned_device_not_marked_with_this_users_id_is_never_touched() {
        let mark = |v: &str| BTreeMap::from([(MFA_OWNER_TAG.to_owned(), v.to_owned())]);
        let foreign = [
            ("arn:aws:iam::1:mfa/raj", mark("AIDARAJ")),
            ("arn:aws:iam::1:mfa/emily-by-name", mark("emily")),
            ("arn:aws:iam::1:mfa/emily-2", BTreeMap::new()),
        ];
        for n in 0..16 {
            let iam = MemoryOffboarding::default();
            for (serial, tags) in &foreign {
                iam.insert_unassigned_device(serial, tags.clone());
            }
            loaded(&iam);
            iam.fail_at(n);
            let _ = offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await;
            offboard(&iam, &emily(), OffboardAction::Delete, "OFF-1", "d").await.unwrap();
            assert!(iam.holdings_of("emily").is_none());
            let left: Vec<_> = iam.unassigned_devices().iter().map(|s| (s.clone(), iam.device_tags(s))).collect();
            let mut expected: Vec<_> = foreign.iter().map(|(s, t)| (s.to_string(), t.clone())).collect();
            expected.sort();
            assert_eq!(left, expected, "cut at call {n}: a device not proven to be emily's was changed or deleted");
            let calls = iam.calls();
            assert!(!calls.iter().any(|c| c.contains("raj") || c.contains("by-name") || c.contains("emily-2")));
        }
    }

    #[tokio::test]
    async fn a_disable_leaves_the_user_tagged_and_a_second_one_changes_nothing() {
        let iam = MemoryOffboarding::default();
        loaded(&iam);
        offboard(&iam, &emily(), OffboardAction::Disable, "OFF-1", "2026-11-25").await.unwrap();
        let left = iam.holdings_of("emily").unwrap();
        assert!(!left.login_profile && left.groups.is_empty() && left.managed_policies.is_empty());
        assert!(left.access_keys.iter().all(|(_, active)| !active), "{left:?}");
        assert_eq!(left.tags[OFFBOARDED_TAG], "OFF-1");
        assert_eq!(left.tags[OFFBOARDED_ON_TAG], "2026-11-25");
        assert!(offboard(&iam, &emily(), OffboardAction::Disable, "OFF-2", "2026-11-26").await.unwrap().is_empty());
        assert_eq!(iam.holdings_of("emily").unwrap().tags[OFFBOARDED_TAG], "OFF-1", "another ticket's tags changed");
    }
}
