//! The names the pipeline acts on, parsed once where they come in (a ticket,
//! the configuration, a stage message) and carried as these types after:
//! holding a `UserName` means IAM's rule was checked, so nothing downstream
//! checks it again.
//!
//! Each type is a `String` inside; it reads as `&str` (`Deref`) wherever a
//! port or AWS wants text, and serialises as the plain string, so stage
//! messages and stored records look exactly as before. Deserialising parses:
//! a message holding a malformed name is refused at the queue, not acted on.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Deref;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// `s`, owned, if it passed its rule; the rule's words otherwise.
fn checked(s: &str, ok: bool, rule: impl FnOnce() -> String) -> Result<String, String> {
    if ok {
        Ok(s.to_owned())
    } else {
        Err(rule())
    }
}

name_type!(
    /// An IAM user name: `[\w+=,.@-]{1,64}` with `\w` ASCII only, which also
    /// keeps Unicode look-alikes out. IAM compares names case-insensitively;
    /// `folded` is the form to compare.
    UserName
);

impl UserName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        checked(s, ok, || format!("{s:?} must be 1 to 64 characters of ASCII letters, digits and + = , . @ _ -"))
            .map(Self)
    }

    /// The name as IAM compares it.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

name_type!(
    /// An email address the pipeline may write to: deliberately plain (one
    /// `@`, an unquoted local part of printable ASCII, a domain of
    /// dot-separated LDH labels with a letters-only TLD), and its domain in
    /// lower case, because SES and IAM's `ses:Recipients` compare domains
    /// exactly. Whether the deployment writes to the domain is a separate
    /// rule (`in_domains`): a deployment's, not the address's.
    Email
);

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !plausible_email(s) {
            return Err(format!("{s:?} is not a plausible email address"));
        }
        if s.rsplit_once('@').is_some_and(|(_, d)| d.bytes().any(|b| b.is_ascii_uppercase())) {
            return Err(format!("{s:?}: write the domain in lower case (SES and IAM compare it exactly)"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// Whether the address's domain is one of `domains` (lower case),
    /// exactly: a subdomain is another domain.
    pub fn in_domains(&self, domains: &BTreeSet<String>) -> bool {
        domains.contains(self.domain())
    }
}

/// Whether `s` is a plain domain name as `Email` accepts one.
pub fn valid_domain(s: &str) -> bool {
    plausible_email(&format!("x@{s}"))
}

fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = s.len() <= 254
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_alphabetic()) && tld.len() >= 2);
    local_ok && domain_ok
}

name_type!(
    /// The id records of a ticket (or a rotation) are filed under: 1 to 128
    /// letters, digits and `- _ . : /`, so it fits every key it is part of.
    TicketId
);

impl TicketId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
        checked(s, ok, || "must be 1 to 128 characters of letters, digits and - _ . : /".to_owned()).map(Self)
    }

    /// The id a ticket's records live under: its own, or for a ticket whose
    /// id breaks the rule, one made from a digest of the whole ticket, so a
    /// refusal can still be recorded.
    pub fn of_ticket(ticket_id: &str, body_hash: &str) -> Self {
        Self::parse(ticket_id).unwrap_or_else(|_| Self(format!("invalid-ticket-id:{}", &body_hash[..16])))
    }

    /// The id a body that is not a ticket at all is filed under.
    pub fn unreadable(body_hash: &str) -> Self {
        Self(format!("unreadable:{}", &body_hash[..16]))
    }

    /// The id the records of a ticket of another kind than onboarding are
    /// filed under: `<kind>#<id>` (`offboarding#OFF-311`). A submitted id
    /// cannot hold `#`, so the kinds' records never meet, whatever ids the
    /// ticket systems use; an onboarding ticket's records keep its own id.
    pub fn of_kind(&self, kind: &str) -> Self {
        Self(format!("{kind}#{}", self.0))
    }

    /// The ticket's own id: without the kind `of_kind` put in front.
    pub fn submitted(&self) -> &str {
        self.0.rsplit('#').next().unwrap_or(&self.0)
    }

    /// The id a rotation of one access key is filed under.
    pub fn rotation(access_key_id: &str) -> Self {
        Self(format!("rotation:{}", access_key_id.chars().filter(char::is_ascii_alphanumeric).collect::<String>()))
    }
}

name_type!(
    /// A managed policy's ARN (`arn:<partition>:iam::<account or aws>:policy/<path/name>`).
    PolicyArn
);

impl PolicyArn {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(6, ':');
        let ok = parts.next() == Some("arn")
            && parts.next().is_some_and(|p| p.starts_with("aws"))
            && parts.next() == Some("iam")
            && parts.next() == Some("")
            && parts.next().is_some_and(|a| a == "aws" || (a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())))
            && parts.next().and_then(|r| r.strip_prefix("policy/")).is_some_and(|n| {
                !n.is_empty() && !n.ends_with('/') && n.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c))
            });
        checked(s, ok, || format!("{s:?} is not a managed policy ARN")).map(Self)
    }
}

name_type!(
    /// An AWS account id: twelve digits.
    AccountId
);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
        checked(s, ok, || format!("{s:?} is not an AWS account id (twelve digits)")).map(Self)
    }
}

/// Whose records: the pipeline's own account (where it runs), or a member
/// account it serves. Records of the own account keep the keys they have
/// always had, so serving member accounts migrates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Account {
    #[default]
    Own,
    Member(AccountId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_iams_rule() {
        for ok in ["emily.chen", "a", "ci+deploy=1,x@y_z-", &"x".repeat(64)] {
            assert!(UserName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "emily chen", "émily", "emily/chen", "еmily", &"x".repeat(65)] {
            assert!(UserName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(UserName::parse("Emily.Chen").unwrap().folded(), "emily.chen");
    }

    #[test]
    fn emails_are_plain_and_their_domain_lower_case() {
        for ok in ["emily.chen@example.com", "a+b@sub.example.co"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["emily", "a@b", "a@@example.com", ".a@example.com", "a@example.c0m", "a@-x.com", "a b@example.com"]
        {
            assert!(Email::parse(bad).unwrap_err().contains("plausible"), "{bad}");
        }
        assert!(Email::parse("Emily@Example.com").unwrap_err().contains("lower case"));
        let domains = BTreeSet::from(["example.com".to_owned()]);
        assert!(Email::parse("a@example.com").unwrap().in_domains(&domains));
        assert!(!Email::parse("a@sub.example.com").unwrap().in_domains(&domains), "a subdomain is another domain");
        assert!(!Email::parse("a@example.com.evil.test").unwrap().in_domains(&domains));
    }

    #[test]
    fn ticket_ids_fit_keys_and_bad_ones_get_a_digest() {
        assert!(TicketId::parse("ONB-1042").is_ok() && TicketId::parse("rotation:AKIA1").is_ok());
        let off = TicketId::parse("ONB-1042").unwrap().of_kind("offboarding");
        assert_eq!((off.as_str(), off.submitted()), ("offboarding#ONB-1042", "ONB-1042"));
        assert!(TicketId::parse(off.as_str()).is_err(), "a kind's record id is never a submitted id");
        assert!(
            TicketId::parse("").is_err()
                && TicketId::parse("a#b").is_err()
                && TicketId::parse(&"x".repeat(129)).is_err()
        );
        let digest = "0123456789abcdef0123";
        assert_eq!(TicketId::of_ticket("ONB-1", digest), "ONB-1");
        assert_eq!(TicketId::of_ticket("ONB#1", digest), "invalid-ticket-id:0123456789abcdef");
        assert!(TicketId::parse(&TicketId::of_ticket(&"#".repeat(300), digest)).is_ok());
        assert_eq!(TicketId::rotation("AKIAEXAMPLE"), "rotation:AKIAEXAMPLE");
    }

    #[test]
    fn policy_arns_are_iam_policy_arns() {
        for ok in [
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::123456789012:policy/teams/dev-boundary",
            "arn:aws-us-gov:iam::aws:policy/job-function/ViewOnlyAccess",
        ] {
            assert!(PolicyArn::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ReadOnlyAccess",
            "arn:aws:iam::aws:role/x",
            "arn:aws:s3:::policy/x",
            "arn:aws:iam:us-east-1:aws:policy/x",
            "arn:aws:iam::12345:policy/x",
            "arn:aws:iam::aws:policy/",
        ] {
            assert!(PolicyArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn they_travel_as_plain_strings_and_parse_when_read() {
        let name = UserName::parse("emily.chen").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"emily.chen\"");
        assert!(serde_json::from_str::<UserName>("\"emily chen\"").is_err());
        assert!(serde_json::from_str::<Email>("\"x@Example.com\"").is_err());
    }
}
