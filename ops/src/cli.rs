//! The command line: a small hand-written parser (five subcommands and two
//! flags do not need a framework). Anything it cannot read is a `Usage`
//! error: exit 2, with the usage text.

use shared::names::{TicketId, UserName};
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: ops [--json] [--account ID] <command>

commands:
  status                 each stage's queue: messages waiting and dead-lettered (a stage whose
                         variables are unset is reported as not deployed)
  status TICKET          each user's status and reasons, whether the ticket's run finished, the
                         emails sent; any kind of ticket (onboarding, offboarding, access change)
  redrive [STAGE]        move dead-letter messages back to their queue (STAGE: create-user,
                         issue-credentials, notify-user, offboard-user or change-access; every
                         deployed stage when omitted)
  replay FILE            put a ticket on the queue its bus rule feeds (an onboarding ticket, bare or
                         in its EventBridge envelope, on create-user's; an offboarding one on
                         offboard-user's; an access change on change-access'), a UserReady message
                         on issue-credentials', a CredentialsReady on notify-user's
  plan FILE              what the pipeline would do with a ticket (any kind, envelope or bare),
                         without doing it: the rules it breaks, or per user whether the pipeline
                         owns it and the IAM calls it would make (reads IAM, writes nothing)
  rotation-plan [USER]   what rotate-keys would do now (its dry run); every managed user when omitted

options:
  --json                 machine-readable output
  --account ID           the account the ticket or user is in (default, and for now the only one:
                         the pipeline's own, ACCOUNT_ID)
  -h, --help             this text

exit status: 0 answered (plan: the ticket would pass), 1 what it reports is a failure (a user
failed, messages left in a dead-letter queue, an unknown ticket or user, a ticket plan would see
refused, AWS refused), 2 bad usage or configuration

configuration (environment, as the functions'): TABLE_NAME, CREATE_USER_QUEUE_URL,
ISSUE_CREDENTIALS_QUEUE_URL, NOTIFY_USER_QUEUE_URL, CREATE_USER_DLQ_URL, ISSUE_CREDENTIALS_DLQ_URL,
NOTIFY_USER_DLQ_URL; optional OFFBOARD_USER_QUEUE_URL and OFFBOARD_USER_DLQ_URL,
CHANGE_ACCESS_QUEUE_URL and CHANGE_ACCESS_DLQ_URL (both or neither: unset, the stage is not
deployed), ACCOUNT_ID and rotate-keys' USER_PATH_PREFIX, EXEMPT_TAG, ROTATION_AGE_DAYS,
GRACE_DAYS, DELETE_AFTER_DAYS, WARNING_DAYS; plan also reads create-user's allow-list:
ALLOWED_GROUPS, ALLOWED_MANAGED_POLICIES, DEFAULT_BOUNDARY, ALLOWED_EMAIL_DOMAINS (and
CUSTOM_PASSWORD_PREFIX). Locally: make emulator.";

/// A stage of the pipeline that has a queue (and a dead-letter queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueueStage {
    CreateUser,
    IssueCredentials,
    NotifyUser,
    /// Offboarding tickets (and the daily run); optional: a deployment from
    /// before it has no such queue.
    OffboardUser,
    /// Access change tickets; optional as offboard-user.
    ChangeAccess,
}

impl QueueStage {
    pub const ALL: [QueueStage; 5] = [
        QueueStage::CreateUser,
        QueueStage::IssueCredentials,
        QueueStage::NotifyUser,
        QueueStage::OffboardUser,
        QueueStage::ChangeAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueStage::CreateUser => "create-user",
            QueueStage::IssueCredentials => "issue-credentials",
            QueueStage::NotifyUser => "notify-user",
            QueueStage::OffboardUser => "offboard-user",
            QueueStage::ChangeAccess => "change-access",
        }
    }

    /// Every deployment has it: its variables are required. The others came
    /// later, and a deployment from before them has none of their variables.
    pub fn always_deployed(self) -> bool {
        matches!(self, QueueStage::CreateUser | QueueStage::IssueCredentials | QueueStage::NotifyUser)
    }

    pub fn parse(s: &str) -> Result<Self, Usage> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Usage(format!(
                "unknown stage {s:?}: expected create-user, issue-credentials, notify-user, offboard-user or \
                 change-access"
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Each stage's queue depth and dead-letter count.
    Queues,
    Status {
        ticket_id: TicketId,
    },
    /// `None`: every stage.
    Redrive {
        stage: Option<QueueStage>,
    },
    Replay {
        file: PathBuf,
    },
    /// A ticket's dry run.
    Plan {
        file: PathBuf,
    },
    RotationPlan {
        user_name: Option<UserName>,
    },
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub json: bool,
    /// As given with `--account`; checked against the deployment's own.
    pub account: Option<String>,
}

/// Bad usage: what was wrong, for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Invocation, Usage> {
    let mut json = false;
    let mut account = None;
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" | "help" if words.is_empty() => {
                return Ok(Invocation { command: Command::Help, json, account })
            }
            "--account" => {
                let id = args.next().ok_or_else(|| Usage("--account needs an account id".into()))?;
                account = Some(account_id(&id)?);
            }
            a if a.starts_with("--account=") => account = Some(account_id(&a["--account=".len()..])?),
            a if a.starts_with('-') && a.len() > 1 => return Err(Usage(format!("unknown option {a}"))),
            _ => words.push(arg),
        }
    }
    let mut words = words.into_iter();
    let Some(name) = words.next() else {
        return Err(Usage("no command given".into()));
    };
    let operand = words.next();
    if let Some(extra) = words.next() {
        return Err(Usage(format!("{name}: unexpected argument {extra:?}")));
    }
    let command = match (name.as_str(), operand) {
        ("status", Some(t)) => Command::Status {
            ticket_id: TicketId::parse(&t).map_err(|e| Usage(format!("status: ticket id {t:?} {e}")))?,
        },
        ("status", None) => Command::Queues,
        ("redrive", s) => Command::Redrive { stage: s.as_deref().map(QueueStage::parse).transpose()? },
        ("replay", Some(f)) => Command::Replay { file: PathBuf::from(f) },
        ("replay", None) => return Err(Usage("replay needs a file".into())),
        ("plan", Some(f)) => Command::Plan { file: PathBuf::from(f) },
        ("plan", None) => return Err(Usage("plan needs a ticket file".into())),
        ("rotation-plan", u) => Command::RotationPlan {
            user_name: u
                .map(|u| UserName::parse(&u).map_err(|e| Usage(format!("rotation-plan: user name {u:?} {e}"))))
                .transpose()?,
        },
        (other, _) => return Err(Usage(format!("unknown command {other:?}"))),
    };
    Ok(Invocation { command, json, account })
}

fn account_id(s: &str) -> Result<String, Usage> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(Usage(format!("--account {s:?} is not an AWS account id (12 digits)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &str) -> Result<Invocation, Usage> {
        parse(args.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn commands_and_flags_in_any_order() {
        let i = p("status ONB-1042 --json").unwrap();
        assert_eq!(i.command, Command::Status { ticket_id: TicketId::parse("ONB-1042").unwrap() });
        assert!(i.json);
        let i = p("--account 123456789012 redrive notify-user").unwrap();
        assert_eq!(i.command, Command::Redrive { stage: Some(QueueStage::NotifyUser) });
        assert_eq!(i.account.as_deref(), Some("123456789012"));
        assert_eq!(p("redrive").unwrap().command, Command::Redrive { stage: None });
        assert_eq!(
            p("redrive change-access").unwrap().command,
            Command::Redrive { stage: Some(QueueStage::ChangeAccess) }
        );
        assert_eq!(
            p("redrive offboard-user").unwrap().command,
            Command::Redrive { stage: Some(QueueStage::OffboardUser) }
        );
        assert_eq!(p("status").unwrap().command, Command::Queues);
        assert_eq!(p("plan t.json --json").unwrap().command, Command::Plan { file: PathBuf::from("t.json") });
        assert_eq!(p("rotation-plan").unwrap().command, Command::RotationPlan { user_name: None });
        assert_eq!(p("--help").unwrap().command, Command::Help);
    }

    #[test]
    fn bad_usage_says_what_is_wrong() {
        for (args, says) in [
            ("", "no command"),
            ("redrive create-users", "unknown stage \"create-users\""),
            ("status ONB 1", "unexpected argument"),
            ("status bad*id", "ticket id"),
            ("replay", "needs a file"),
            ("plan", "needs a ticket file"),
            ("plan a.json b.json", "unexpected argument"),
            ("frobnicate", "unknown command"),
            ("status T --verbose", "unknown option --verbose"),
            ("status T --account 12", "12 digits"),
            ("status T --account", "needs an account id"),
            ("rotation-plan a/b", "user name"),
        ] {
            let err = p(args).unwrap_err().0;
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}
