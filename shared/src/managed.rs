//! Which users the pipeline may touch after onboarding them (CONTRACT.md
//! section 6): only a user its own records say it created, and whose
//! `iam-provisioner:managed` tag agrees. The tag alone is not enough (the
//! create-user role could tag an existing user, and the tag is only a
//! claim on the user); the records alone are not either (a name deleted and
//! created again by someone else is another user). Both, read before any
//! write of a ticket.

use crate::error::{Refusal, Result};
use crate::handoff::Onboarding;
use crate::names::UserName;
use crate::ports::{IamUser, StatusStore, Users};
use crate::ticket::{MANAGED_TAG, TICKET_TAG};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The pipeline created it: its user as IAM has it (the name as IAM
    /// spells it, its tags) and what create-user recorded for it (the
    /// onboarding ticket, the requester, the user's address).
    Ours { user: IamUser, handoff: Box<Onboarding> },
    /// No such user in IAM.
    Gone,
    /// Someone else's, or nobody's the pipeline knows: never touched.
    NotOurs(String),
}

/// The three kinds of ticket on the bus, told apart by the envelope's
/// `detail-type` (a bare body without an envelope is an onboarding ticket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    Onboarding,
    Offboarding,
    AccessChange,
}

impl TicketKind {
    pub fn detail_type(self) -> &'static str {
        match self {
            TicketKind::Onboarding => crate::ticket::TICKET_DETAIL_TYPE,
            TicketKind::Offboarding => crate::lifecycle::OFFBOARDING_DETAIL_TYPE,
            TicketKind::AccessChange => crate::access::ACCESS_CHANGE_DETAIL_TYPE,
        }
    }

    /// The id a ticket of this kind's records are filed under: an onboarding
    /// ticket's own id (as ever), the others' under their kind
    /// (`offboarding#OFF-311`, `access-change#CHG-77`), so tickets of two
    /// kinds that share an id never read each other's records.
    pub fn records_of(self, id: &crate::names::TicketId) -> crate::names::TicketId {
        match self {
            TicketKind::Onboarding => id.clone(),
            TicketKind::Offboarding => id.of_kind("offboarding"),
            TicketKind::AccessChange => id.of_kind("access-change"),
        }
    }

    /// The kind an event is; `None` for an envelope of another source or
    /// detail-type.
    pub fn of(event: &serde_json::Value) -> Option<Self> {
        if event.get("detail").is_none() || event.get("detail-type").is_none() {
            return Some(TicketKind::Onboarding);
        }
        if event.get("source").and_then(|s| s.as_str()) != Some(crate::ticket::TICKET_SOURCE) {
            return None;
        }
        let detail_type = event.get("detail-type").and_then(|d| d.as_str())?;
        [TicketKind::Onboarding, TicketKind::Offboarding, TicketKind::AccessChange]
            .into_iter()
            .find(|k| k.detail_type() == detail_type)
    }
}

/// A ticket of `kind` from a message body: an EventBridge envelope of that
/// kind (as the bus rule delivers it) or a bare ticket (an operator's
/// replay). The error names the field, so a person can fix the ticket.
pub fn parse_ticket<T: serde::de::DeserializeOwned>(body: &str, kind: TicketKind) -> Result<T, Refusal> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        Refusal::ticket("ticket", format!("is not valid JSON ({})", crate::text::redact_serde_message(&e.to_string())))
    })?;
    let detail = if value.get("detail").is_some() && value.get("detail-type").is_some() {
        if TicketKind::of(&value) != Some(kind) {
            return Err(Refusal::ticket(
                "envelope",
                format!(
                    "source {} / detail-type {} is not {:?} / {:?}",
                    value.get("source").unwrap_or(&serde_json::Value::Null),
                    value.get("detail-type").unwrap_or(&serde_json::Value::Null),
                    crate::ticket::TICKET_SOURCE,
                    kind.detail_type()
                ),
            ));
        }
        value["detail"].clone()
    } else {
        value
    };
    serde_path_to_error::deserialize(detail).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "ticket".to_owned() } else { path };
        Refusal::ticket(field, crate::text::redact_serde_message(&e.into_inner().to_string()))
    })
}

/// A user of a ticket that was refused, and every reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRefused {
    pub user_name: String,
    pub reasons: Vec<String>,
}

/// A ticket refused as a whole: each user it names (once) with its own
/// reasons, or `held_back` when only the others broke a rule, plus the
/// ticket-wide reasons; a ticket with no user to name is `-` with those.
pub fn refused_users(names: &[String], refusals: &[Refusal], held_back: &str) -> Vec<UserRefused> {
    let ticket_wide: Vec<String> = refusals.iter().filter(|r| r.user.is_none()).map(ToString::to_string).collect();
    let mut refused = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for name in names.iter().filter(|n| seen.insert(n.as_str())) {
        let mut reasons: Vec<String> =
            refusals.iter().filter(|r| r.user.as_deref() == Some(name)).map(ToString::to_string).collect();
        if reasons.is_empty() && ticket_wide.is_empty() {
            reasons.push(held_back.to_owned());
        }
        reasons.extend(ticket_wide.iter().cloned());
        refused.push(UserRefused { user_name: name.clone(), reasons });
    }
    if refused.is_empty() {
        refused.push(UserRefused { user_name: "-".into(), reasons: ticket_wide });
    }
    refused
}

/// Whose `name` is: its tags, then the hand-off record of the ticket the
/// tag names, which create-user writes before it creates a user and keeps.
pub async fn ownership<U: Users, S: StatusStore>(users: &U, status: &S, name: &UserName) -> Result<Ownership> {
    let Some(user) = users.get_user(name).await? else {
        return Ok(Ownership::Gone);
    };
    let managed = user.tags.get(MANAGED_TAG).map(String::as_str) == Some("true");
    let Some(ticket) = user.tags.get(TICKET_TAG).filter(|_| managed).cloned() else {
        return Ok(Ownership::NotOurs(format!(
            "user {:?} was not created by iam-provisioner (it lacks the {MANAGED_TAG} tag); the pipeline never \
             changes a user it did not create",
            user.user_name
        )));
    };
    match status.handoff(&ticket, &user.user_name).await? {
        Some(h) if h.user.user_name.as_str() == user.user_name => Ok(Ownership::Ours { user, handoff: Box::new(h) }),
        _ => Ok(Ownership::NotOurs(format!(
            "user {:?} is tagged as created by ticket {ticket}, but the pipeline's records hold no such user for that \
             ticket; it is left untouched",
            user.user_name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{accepted, MemoryDirectory, MemoryStatus};
    use crate::ports::Permissions;
    use std::collections::BTreeMap;

    fn user(name: &str, tags: &[(&str, &str)]) -> IamUser {
        IamUser {
            user_name: name.into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::123456789012:user/{name}"),
            boundary: None,
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn the_envelope_decides_the_kind() {
        let env = |dt: &str| serde_json::json!({"source": "onboarding.tickets", "detail-type": dt, "detail": {}});
        assert_eq!(TicketKind::of(&env("Offboarding Ticket Approved")), Some(TicketKind::Offboarding));
        assert_eq!(TicketKind::of(&env("Access Change Approved")), Some(TicketKind::AccessChange));
        assert_eq!(TicketKind::of(&env("Onboarding Ticket Approved")), Some(TicketKind::Onboarding));
        assert_eq!(TicketKind::of(&env("Something Else")), None);
        assert_eq!(TicketKind::of(&serde_json::json!({"ticket_id": "X"})), Some(TicketKind::Onboarding));
        let mut other = env("Offboarding Ticket Approved");
        other["source"] = "someone.else".into();
        assert_eq!(TicketKind::of(&other), None);
        let wrong = env("Onboarding Ticket Approved").to_string();
        let refused = parse_ticket::<serde_json::Value>(&wrong, TicketKind::Offboarding).unwrap_err();
        assert_eq!(refused.field, "envelope");
    }

    #[tokio::test]
    async fn only_a_user_both_the_tag_and_the_records_name_is_ours() {
        let (iam, status) = (MemoryDirectory::default(), MemoryStatus::default());
        let handoffs = accepted(serde_json::json!({
            "ticket_id": "ONB-1", "requested_by": "req@example.com",
            "users": [{"user_name": "ann", "email": "ann@example.com", "access": {"programmatic": true}}]
        }));
        status.insert_handoff(&handoffs[0]);
        let name = |n: &str| UserName::parse(n).unwrap();
        iam.insert(user("ann", &[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1")]), Permissions::default());
        // Tagged, but no record: a forged or copied tag.
        iam.insert(user("bob", &[(MANAGED_TAG, "true"), (TICKET_TAG, "ONB-1")]), Permissions::default());
        // A record's name, without the tag: someone else's user of that name.
        iam.insert(user("carl", &[]), Permissions::default());
        assert!(matches!(ownership(&iam, &status, &name("ann")).await.unwrap(), Ownership::Ours { .. }));
        assert!(matches!(ownership(&iam, &status, &name("bob")).await.unwrap(), Ownership::NotOurs(_)));
        assert!(matches!(ownership(&iam, &status, &name("carl")).await.unwrap(), Ownership::NotOurs(_)));
        assert_eq!(ownership(&iam, &status, &name("dora")).await.unwrap(), Ownership::Gone);
        iam.insert(user("erin", &[(MANAGED_TAG, "false"), (TICKET_TAG, "ONB-1")]), Permissions::default());
        assert!(matches!(ownership(&iam, &status, &name("erin")).await.unwrap(), Ownership::NotOurs(_)));
    }
}
