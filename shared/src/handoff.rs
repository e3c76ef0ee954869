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
//! On the queue every message carries a `version` (`VERSION`). A stage reads
//! the current version and the previous one (`read`), so the stages of one
//! release can be deployed one after the other with messages in flight; it
//! ignores fields it does not know, so a producer may add an optional field
//! without a bump. A change a consumer must understand bumps `VERSION`, and
//! is deployed consumers first (notify-user, issue-credentials, then
//! create-user and rotate-keys: README "Deploying a new version"); a message
//! newer than a stage reads is the deployment's fault, not an untrusted
//! message: it waits in the dead-letter queue for a redrive after the deploy.
//!
//! The stages that receive these messages do not take them on their word:
//! they rebuild the message from the pipeline's own records with these same
//! constructors (`StatusStore::handoff`, `Rotation::recorded`,
//! `CredentialsReady::stored`) and act only when the two are equal. Building
//! a message by hand anywhere else would be a second definition of it.

use crate::date::Date;
use crate::error::Error;
use crate::names::{Email, TicketId, UserName};
use crate::ports::KeyRecord;
use crate::ticket::{Access, ConsolePassword, UserPlan};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who a message is about, and where they are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub user_name: UserName,
    pub email: Email,
}

/// One user of an approved onboarding ticket, exactly as create-user
/// accepted them (and recorded before creating them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The day the user's access ends, for the welcome email (the user's
    /// `EXPIRES_ON_TAG` is what the expiry run goes by). Absent from the
    /// JSON when there is none, so a message, a record and the hashes of
    /// idempotency records stay what the previous release wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<Date>,
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
            expires_on: plan.expires_on,
        }
    }
}

/// A successor to one access key of a managed user, as rotate-keys ordered
/// it: programmatic access only, no ticket, nobody waiting for a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub user: Recipient,
    pub replaces: Replaced,
}

/// The key a rotation replaces, and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct SecretRef {
    pub arn: String,
    pub name: String,
}

/// What issue-credentials hands notify-user: the message it acted on, and
/// where the credentials are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The version of the messages this release writes: 2 is the shape of this
/// module (a `purpose` per message); 1 was the previous release's single
/// flat shape (`previous`), still read.
pub const VERSION: u64 = 2;

/// A message type that travels on a queue, with its previous version.
pub trait Message: Serialize + DeserializeOwned + PartialEq {
    /// This message as the previous version wrote it, for comparing a
    /// previous-version message with the pipeline's records.
    fn to_previous(&self) -> Value;
    /// A message the previous version wrote, in this version's terms.
    fn from_previous(written: Value) -> Result<Self, String>;
}

/// A message off a queue: what it says, and for a previous-version one, the
/// body as written (it is compared with the records in its own shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Received<T> {
    pub message: T,
    pub previous: Option<Value>,
}

impl<T: Message> Received<T> {
    /// Whether the message says exactly what `recorded` says.
    pub fn matches(&self, recorded: &T) -> bool {
        match &self.previous {
            None => &self.message == recorded,
            Some(written) => previous::same(&recorded.to_previous(), written),
        }
    }
}

/// A message as it goes on a queue: with this release's version.
#[derive(Debug, Serialize)]
pub struct Versioned<'a, T> {
    version: u64,
    #[serde(flatten)]
    message: &'a T,
}

/// The body to put on a queue: the message with this release's version.
pub fn write<T: Message>(message: &T) -> Versioned<'_, T> {
    Versioned { version: VERSION, message }
}

/// Reads a body off a queue. A body that is no message of this kind is
/// untrusted (recorded, alarmed, settled); one of a version this stage does
/// not read is a fault of the deployment (parked for a redrive).
pub fn read<T: Message>(body: &str) -> Result<Received<T>, Error> {
    let untrusted = |e: String| Error::Untrusted(format!("not a hand-off this stage takes: {e}"));
    let redact = |e: serde_json::Error| crate::text::redact_serde_message(&e.to_string());
    let mut value: Value = serde_json::from_str(body).map_err(|e| untrusted(redact(e)))?;
    let Some(map) = value.as_object_mut() else {
        return Err(untrusted("not a JSON object".into()));
    };
    // The previous release wrote no version.
    let version = match map.remove("version") {
        None => 1,
        Some(v) => v.as_u64().ok_or_else(|| untrusted(format!("version {v} is not a number")))?,
    };
    match version {
        VERSION => {
            Ok(Received { message: serde_json::from_value(value).map_err(|e| untrusted(redact(e)))?, previous: None })
        }
        1 => Ok(Received { message: T::from_previous(value.clone()).map_err(untrusted)?, previous: Some(value) }),
        other => Err(Error::deployment(
            "read message",
            format!("message version {other}; this stage reads versions 1 and {VERSION}"),
            if other > VERSION {
                "deploy this stage's new release: consumers go before producers (README, Deploying a new version)"
            } else {
                "redrive it with the release that wrote it, or submit the work again"
            },
        )),
    }
}

impl Message for UserReady {
    fn to_previous(&self) -> Value {
        previous::UserReady::of(self).to_value()
    }

    fn from_previous(written: Value) -> Result<Self, String> {
        serde_json::from_value::<previous::UserReady>(written).map_err(|e| e.to_string())?.upgrade()
    }
}

impl Message for CredentialsReady {
    fn to_previous(&self) -> Value {
        let mut body = previous::UserReady::of(&self.ready).to_value();
        if let Some(map) = body.as_object_mut() {
            // The previous CredentialsReady: the hand-off's fields without the
            // console password, `rotate` named `replaces`, and the secret.
            map.remove("console_password");
            if let Some(rotate) = map.remove("rotate") {
                map.insert("replaces".into(), rotate);
            }
            map.insert("secret_arn".into(), self.secret.arn.clone().into());
            map.insert("secret_name".into(), self.secret.name.clone().into());
        }
        body
    }

    fn from_previous(mut written: Value) -> Result<Self, String> {
        let map = written.as_object_mut().ok_or("not a JSON object")?;
        let take = |map: &mut serde_json::Map<String, Value>, k: &str| {
            map.remove(k).and_then(|v| v.as_str().map(str::to_owned)).ok_or(format!("missing field `{k}`"))
        };
        let secret = SecretRef { arn: take(map, "secret_arn")?, name: take(map, "secret_name")? };
        if let Some(replaces) = map.remove("replaces") {
            map.insert("rotate".into(), replaces);
        }
        // Not in the previous CredentialsReady; nothing reads it from the
        // message (notify-user acts on the record, compared in the
        // previous shape by `Received::matches`).
        map.entry("console_password").or_insert(Value::Null);
        let ready = UserReady::from_previous(written)?;
        Ok(Self { ready, secret })
    }
}

impl Onboarding {
    /// A hand-off record as create-user stored it: this version's, or the
    /// previous release's flat one.
    pub fn from_record(body: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        if value.get("user").is_some() {
            return serde_json::from_value(value).map_err(|e| e.to_string());
        }
        match UserReady::from_previous(value)? {
            UserReady::Onboarding(o) => Ok(o),
            UserReady::Rotation(_) => Err("a rotation is not a hand-off record".into()),
        }
    }
}

/// The previous release's message: one flat shape for both purposes (a
/// rotation had `rotate`, a `rotation:<key>` ticket id, the pipeline's own
/// sender as `requested_by` and no ticket users).
mod previous {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub struct UserReady {
        pub ticket_id: String,
        pub requested_by: String,
        pub user_name: String,
        pub email: String,
        pub console: bool,
        pub programmatic: bool,
        pub console_password: Option<ConsolePassword>,
        pub require_password_reset: bool,
        pub ticket_users: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotate: Option<Replaced>,
    }

    impl UserReady {
        pub fn of(ready: &super::UserReady) -> Self {
            let user = ready.user();
            let (user_name, email) = (user.user_name.to_string(), user.email.to_string());
            match ready {
                super::UserReady::Onboarding(o) => Self {
                    ticket_id: o.ticket_id.to_string(),
                    requested_by: o.requested_by.to_string(),
                    user_name,
                    email,
                    console: o.access.console,
                    programmatic: o.access.programmatic,
                    console_password: o.console_password.clone(),
                    require_password_reset: o.require_password_reset,
                    ticket_users: o.ticket_users.iter().map(ToString::to_string).collect(),
                    rotate: None,
                },
                super::UserReady::Rotation(r) => Self {
                    ticket_id: ready.records_id().to_string(),
                    // Whatever the previous release put here, nothing read it.
                    requested_by: String::new(),
                    user_name,
                    email,
                    console: false,
                    programmatic: true,
                    console_password: None,
                    require_password_reset: false,
                    ticket_users: vec![],
                    rotate: Some(r.replaces.clone()),
                },
            }
        }

        pub fn to_value(&self) -> Value {
            serde_json::to_value(self).unwrap_or(Value::Null)
        }

        pub fn upgrade(self) -> Result<super::UserReady, String> {
            let user = Recipient { user_name: UserName::parse(&self.user_name)?, email: Email::parse(&self.email)? };
            if let Some(replaces) = self.rotate {
                return Ok(super::UserReady::Rotation(Rotation { user, replaces }));
            }
            Ok(super::UserReady::Onboarding(Onboarding {
                ticket_id: TicketId::parse(&self.ticket_id)?,
                requested_by: Email::parse(&self.requested_by)?,
                user,
                access: Access { console: self.console, programmatic: self.programmatic },
                console_password: self.console_password,
                require_password_reset: self.require_password_reset,
                ticket_users: self.ticket_users.iter().map(|u| UserName::parse(u)).collect::<Result<_, _>>()?,
                // The previous release had no expiry.
                expires_on: None,
            }))
        }
    }

    /// Two previous-version bodies say the same, but for a rotation's
    /// `requested_by`, which carried nothing.
    pub fn same(recorded: &Value, written: &Value) -> bool {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(map) = v.as_object_mut().filter(|m| m.contains_key("rotate") || m.contains_key("replaces")) {
                map.remove("requested_by");
            }
            v
        };
        strip(recorded) == strip(written)
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
    fn a_message_says_its_purpose_and_no_field_of_another_purpose_counts() {
        let ready: UserReady = serde_json::from_value(onboarding()).unwrap();
        assert_eq!(ready.records_id(), "ONB-1");
        assert!(ready.onboarding().is_some() && ready.replaces().is_none());
        // A field this release does not know (a newer producer's) is
        // ignored: it is not acted on, and the records decide the rest.
        let mut newer = onboarding();
        newer["replaces"] = json!({"access_key_id": "AKIA1", "deactivated_after": 1});
        let read: UserReady = serde_json::from_value(newer).unwrap();
        assert_eq!(read.replaces(), None, "a rotation's field made an onboarding a rotation");
        let mut untagged = onboarding();
        untagged.as_object_mut().unwrap().remove("purpose");
        assert!(serde_json::from_value::<UserReady>(untagged).is_err());
        let mut bad_name = onboarding();
        bad_name["user"]["user_name"] = json!("emily chen");
        assert!(serde_json::from_value::<UserReady>(bad_name).is_err(), "names are parsed where they come in");
    }

    #[test]
    fn an_expiry_travels_when_there_is_one_and_is_not_written_when_there_is_none() {
        let plain: UserReady = serde_json::from_value(onboarding()).unwrap();
        assert_eq!(plain.onboarding().unwrap().expires_on, None, "a message written before the field");
        let wire = serde_json::to_value(write(&plain)).unwrap();
        assert!(wire.get("expires_on").is_none(), "{wire}");

        let mut expiring = onboarding();
        expiring["expires_on"] = json!("2028-02-29");
        let ready: UserReady = serde_json::from_value(expiring.clone()).unwrap();
        assert_eq!(ready.onboarding().unwrap().expires_on, Some(Date::parse("2028-02-29").unwrap()));
        let received = read::<UserReady>(&serde_json::to_string(&write(&ready)).unwrap()).unwrap();
        assert!(received.matches(&ready));
        // The day is part of what must equal the record, and is parsed.
        assert!(!received.matches(&plain));
        expiring["version"] = json!(VERSION);
        let mut forged = expiring.clone();
        forged["expires_on"] = json!("2099-01-01");
        assert!(!read::<UserReady>(&forged.to_string()).unwrap().matches(&ready));
        expiring["expires_on"] = json!("2027-02-29");
        assert!(matches!(read::<UserReady>(&expiring.to_string()), Err(Error::Untrusted(_))));
    }

    /// The previous release's flat message, as its create-user sent it.
    fn previous_onboarding() -> serde_json::Value {
        json!({
            "ticket_id": "ONB-1", "requested_by": "it-ops@example.com", "user_name": "emily",
            "email": "emily@example.com", "console": true, "programmatic": false,
            "console_password": {"mode": "autogenerate"}, "require_password_reset": true, "ticket_users": ["emily"]
        })
    }

    #[test]
    fn this_version_and_the_previous_one_are_read_and_compared_in_their_own_shape() {
        let current: UserReady = serde_json::from_value(onboarding()).unwrap();
        let body = serde_json::to_value(write(&current)).unwrap();
        assert_eq!(body["version"], VERSION);
        let received = read::<UserReady>(&body.to_string()).unwrap();
        assert_eq!((received.previous.is_none(), received.matches(&current)), (true, true));

        let old = read::<UserReady>(&previous_onboarding().to_string()).unwrap();
        assert_eq!(old.message, current, "the previous shape read as this one");
        assert!(old.matches(&current));
        let mut forged = previous_onboarding();
        forged["email"] = json!("mallory@example.com");
        assert!(!read::<UserReady>(&forged.to_string()).unwrap().matches(&current));

        // The previous CredentialsReady had no console password: compared
        // in its own shape, it still matches the record that has one.
        let stored = CredentialsReady::stored(&current, "arn:aws:secretsmanager:us-east-1:1:secret:s", "s");
        let mut old_credentials = previous_onboarding();
        let map = old_credentials.as_object_mut().unwrap();
        map.remove("console_password");
        map.insert("secret_arn".into(), json!("arn:aws:secretsmanager:us-east-1:1:secret:s"));
        map.insert("secret_name".into(), json!("s"));
        let received = read::<CredentialsReady>(&old_credentials.to_string()).unwrap();
        assert!(received.matches(&stored), "{:?} vs {:?}", received.previous, stored.to_previous());
        old_credentials["secret_name"] = json!("other");
        assert!(!read::<CredentialsReady>(&old_credentials.to_string()).unwrap().matches(&stored));

        // A record the previous create-user stored reads as this version's.
        assert_eq!(
            Some(Onboarding::from_record(&previous_onboarding().to_string()).unwrap()),
            current.onboarding().cloned()
        );
    }

    #[test]
    fn a_version_this_stage_does_not_read_is_the_deployments_fault_and_garbage_is_untrusted() {
        let mut newer = onboarding();
        newer["version"] = json!(VERSION + 1);
        let err = read::<UserReady>(&newer.to_string()).unwrap_err();
        assert!(
            matches!(&err, Error::Deployment { fix, .. } if fix.contains("consumers go before producers")),
            "{err}"
        );
        newer["version"] = json!(0);
        assert!(matches!(read::<UserReady>(&newer.to_string()), Err(Error::Deployment { .. })));
        for garbage in ["[]", "{", r#"{"version": "2"}"#, r#"{"version": 2, "purpose": "offboarding"}"#] {
            assert!(matches!(read::<UserReady>(garbage), Err(Error::Untrusted(_))), "{garbage}");
        }
    }

    #[test]
    fn a_rotation_is_ordered_only_by_a_ledger_record_with_its_deadline() {
        let mut key = KeyRecord::issued("ci-deployer", "AKIAOLD", "ci@example.com", 0, None);
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
