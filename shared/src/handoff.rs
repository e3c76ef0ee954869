//! The messages one stage hands the next about one user: every shape that
//! travels on the pipeline's queues is here, and only here is one built.
//!
//! A message says what it is for (`purpose`), and each purpose is a struct
//! with the fields that purpose has and no others:
//! - `Onboarding`: one user of an approved ticket, as create-user accepted
//!   it (`Onboarding::accepted`, from the ticket's `UserPlan`);
//! - `Rotation`: a successor to one access key, as rotate-keys ordered it in
//!   the key ledger (`Rotation::ordered`).
//!
//! What every purpose shares is who the message is about and who hears of it
//! (`Recipient`). The next purposes (offboarding, an access change, a user in
//! a member account) are new variants of `UserReady` with their own struct
//! and the same recipient; a stage that does not serve a purpose refuses it
//! by name instead of reading placeholder fields.
//!
//! The stages that receive these messages do not take them on their word:
//! they rebuild the message from the pipeline's own records with these same
//! constructors (`StatusStore::handoff`, `Rotation::recorded`,
//! `CredentialsReady::stored`) and act only when the two are equal. Building
//! a message by hand anywhere else would be a second definition of it.

use crate::names::{Email, TicketId, UserName};
use crate::ports::KeyRecord;
use crate::ticket::{Access, ConsolePassword, UserPlan};
use serde::{Deserialize, Serialize};

/// Who a message is about, and where they are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub user_name: UserName,
    pub email: Email,
}

/// One user of an approved onboarding ticket, exactly as create-user
/// accepted them (and recorded before creating them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Onboarding {
    pub ticket_id: TicketId,
    pub requested_by: Email,
    pub user: Recipient,
    pub access: Access,
    /// `Some` exactly when `access.console`.
    pub console_password: Option<ConsolePassword>,
    pub require_password_reset: bool,
    /// Every user of the ticket: whichever stage settles the last one sends
    /// the requester's summary, without another lookup.
    pub ticket_users: Vec<UserName>,
}

impl Onboarding {
    /// The hand-off for one accepted user of a ticket.
    pub fn accepted(ticket_id: &TicketId, requested_by: &Email, plan: &UserPlan, ticket_users: &[UserName]) -> Self {
        Self {
            ticket_id: ticket_id.clone(),
            requested_by: requested_by.clone(),
            user: Recipient { user_name: plan.user_name.clone(), email: plan.email.clone() },
            access: Access { console: plan.console, programmatic: plan.programmatic },
            console_password: plan.console_password.clone(),
            require_password_reset: plan.require_password_reset,
            ticket_users: ticket_users.to_vec(),
        }
    }
}

/// A successor to one access key of a managed user, as rotate-keys ordered
/// it: programmatic access only, no ticket, nobody waiting for a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub user: Recipient,
    pub replaces: Replaced,
}

/// The key a rotation replaces, and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replaced {
    pub access_key_id: String,
    pub deactivated_after: u64,
}

impl Rotation {
    /// The rotation the ledger record of `key` orders: only once rotate-keys
    /// has written when the key will be deactivated (`rotation_deadline`),
    /// and to the owner's address as the ledger holds it.
    pub fn ordered(key: &KeyRecord) -> Option<Self> {
        let user =
            Recipient { user_name: UserName::parse(&key.user_name).ok()?, email: Email::parse(&key.email).ok()? };
        let replaces = Replaced { access_key_id: key.access_key_id.clone(), deactivated_after: key.rotation_deadline? };
        Some(Self { user, replaces })
    }

    /// The rotation of `old_key` that a user's ledger records, if any.
    pub fn recorded(ledger: &[KeyRecord], old_key: &str) -> Option<Self> {
        ledger.iter().find(|k| k.access_key_id == old_key).and_then(Self::ordered)
    }
}

/// What create-user (onboarding) or rotate-keys (rotation) hands
/// issue-credentials. Never a secret: at most the ARN of one that holds one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
pub enum UserReady {
    Onboarding(Onboarding),
    Rotation(Rotation),
}

impl UserReady {
    pub fn user(&self) -> &Recipient {
        match self {
            Self::Onboarding(o) => &o.user,
            Self::Rotation(r) => &r.user,
        }
    }

    pub fn user_name(&self) -> &UserName {
        &self.user().user_name
    }

    /// The id this message's records (status, idempotency, emails) are
    /// filed under: the ticket's, or one per rotated key.
    pub fn records_id(&self) -> TicketId {
        match self {
            Self::Onboarding(o) => o.ticket_id.clone(),
            Self::Rotation(r) => TicketId::rotation(&r.replaces.access_key_id),
        }
    }

    pub fn access(&self) -> Access {
        match self {
            Self::Onboarding(o) => o.access,
            Self::Rotation(_) => Access { console: false, programmatic: true },
        }
    }

    pub fn onboarding(&self) -> Option<&Onboarding> {
        match self {
            Self::Onboarding(o) => Some(o),
            Self::Rotation(_) => None,
        }
    }

    pub fn replaces(&self) -> Option<&Replaced> {
        match self {
            Self::Onboarding(_) => None,
            Self::Rotation(r) => Some(&r.replaces),
        }
    }
}

/// Where issue-credentials kept a user's credentials: the secret's ARN and
/// name, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub arn: String,
    pub name: String,
}

/// What issue-credentials hands notify-user: the message it acted on, and
/// where the credentials are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsReady {
    pub ready: UserReady,
    pub secret: SecretRef,
}

impl CredentialsReady {
    /// Once `ready`'s credentials are stored in the secret `arn` / `name`.
    pub fn stored(ready: &UserReady, arn: &str, name: &str) -> Self {
        Self { ready: ready.clone(), secret: SecretRef { arn: arn.to_owned(), name: name.to_owned() } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn onboarding() -> serde_json::Value {
        json!({
            "purpose": "onboarding", "ticket_id": "ONB-1", "requested_by": "it-ops@example.com",
            "user": {"user_name": "emily", "email": "emily@example.com"},
            "access": {"console": true, "programmatic": false},
            "console_password": {"mode": "autogenerate"}, "require_password_reset": true,
            "ticket_users": ["emily"]
        })
    }

    #[test]
    fn a_message_says_its_purpose_and_carries_nothing_else() {
        let ready: UserReady = serde_json::from_value(onboarding()).unwrap();
        assert_eq!(ready.records_id(), "ONB-1");
        assert!(ready.onboarding().is_some() && ready.replaces().is_none());
        // A field of another purpose, or none at all, is not this message.
        let mut stray = onboarding();
        stray["replaces"] = json!({"access_key_id": "AKIA1", "deactivated_after": 1});
        assert!(serde_json::from_value::<UserReady>(stray).is_err(), "an onboarding carrying a rotation's field");
        let mut untagged = onboarding();
        untagged.as_object_mut().unwrap().remove("purpose");
        assert!(serde_json::from_value::<UserReady>(untagged).is_err());
        let mut bad_name = onboarding();
        bad_name["user"]["user_name"] = json!("emily chen");
        assert!(serde_json::from_value::<UserReady>(bad_name).is_err(), "names are parsed where they come in");
    }

    #[test]
    fn a_rotation_is_ordered_only_by_a_ledger_record_with_its_deadline() {
        let mut key = KeyRecord {
            user_name: "ci-deployer".into(),
            access_key_id: "AKIAOLD".into(),
            email: "ci@example.com".into(),
            issued_at: 0,
            replaces: None,
            warned_at: None,
            deactivated_at: None,
            deleted_at: None,
            rotation_deadline: None,
        };
        assert_eq!(Rotation::recorded(std::slice::from_ref(&key), "AKIAOLD"), None);
        key.rotation_deadline = Some(99);
        let rotation = Rotation::recorded(std::slice::from_ref(&key), "AKIAOLD").unwrap();
        let ready = UserReady::Rotation(rotation);
        assert_eq!(ready.records_id(), "rotation:AKIAOLD");
        assert_eq!(ready.access(), Access { console: false, programmatic: true });
        assert_eq!(ready.replaces().unwrap().deactivated_after, 99);
        let wire = serde_json::to_value(&ready).unwrap();
        assert_eq!(wire["purpose"], "rotation");
        assert_eq!(serde_json::from_value::<UserReady>(wire).unwrap(), ready);
        assert_eq!(Rotation::recorded(&[key], "AKIAOTHER"), None);
    }
}
