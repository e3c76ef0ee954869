//! ops: the operator's command line for iam-provisioner.
//!
//! `status [TICKET]`, `redrive [STAGE]`, `replay FILE`, `plan FILE`,
//! `rotation-plan [USER]` (see `cli::USAGE`). Every command is a plain
//! async function over the ports (`status`, `queues`, `plan`, `rotation`),
//! run here by `Ops::answer`, which turns its result into text for a person
//! (or JSON with `--json`) and an exit status: 0 it answered, 1 what it
//! reports is a failure, 2 bad usage. `main.rs` only reads the environment
//! and builds the AWS ports.
//!
//! It reads the pipeline's records and IAM, and moves messages between its
//! queues; it never reads a secret and never acts in IAM.

pub mod cli;
pub mod config;
pub mod plan;
pub mod queues;
pub mod rotation;
pub mod status;

use cli::{Command, Invocation, QueueStage};
use config::OpsConfig;
use rotation::{PlanDeps, ReadOnly};
use serde::Serialize;
use shared::ports::{
    AccessChanges, Clock, Credentials, KeyLedger, KeyRetirement, Offboarding, Queues, StatusStore, Users, WorkRecords,
};

/// Exit statuses.
pub const ANSWERED: u8 = 0;
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;

/// What to print, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    fn report<T: Serialize>(json: bool, failed: bool, value: &T, human: String) -> Self {
        let stdout = if json { to_json(value) } else { human };
        Self { code: if failed { FAILURE } else { ANSWERED }, stdout, stderr: String::new() }
    }

    /// An error: on stderr for a person; also as `{"error": ...}` on stdout
    /// for a script.
    pub fn error(json: bool, code: u8, message: impl std::fmt::Display) -> Self {
        let message = message.to_string();
        let stdout = if json { to_json(&serde_json::json!({ "error": message })) } else { String::new() };
        Self { code, stdout, stderr: format!("ops: {message}\n") }
    }

    pub fn usage(json: bool, problem: &cli::Usage) -> Self {
        let mut answer = Self::error(json, USAGE, problem);
        answer.stderr.push_str(&format!("\n{}\n", cli::USAGE));
        answer
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// The ports every command needs, and the configuration.
pub struct Ops<S, W, Q, D, L, C, I> {
    pub status: S,
    pub work: W,
    pub queues: Q,
    /// rotate-keys' dependencies for its dry run (its ledger also gives
    /// `status` the access key ids whose emails to look for; its clock is
    /// `plan`'s today).
    pub rotation: PlanDeps<D, L, C>,
    /// IAM as offboard-user and change-access read it, for `plan`: only the
    /// ports' read methods are called, and each that acts refuses.
    pub iam: plan::ReadOnlyIam<I>,
    pub config: OpsConfig,
}

/// The CLI over AWS, as `main` builds it (and the emulator tests).
pub type AwsOps = Ops<
    shared::aws::DynamoStatus,
    shared::aws::DynamoIdempotency,
    shared::aws::SqsQueues,
    shared::aws::IamDirectory,
    shared::aws::DynamoLedger,
    shared::ports::SystemClock,
    shared::aws::IamDirectory,
>;

impl AwsOps {
    pub fn over_aws(aws: &shared::aws::SdkConfig, config: OpsConfig) -> Self {
        let table = shared::aws::StateTable::new(aws, &config.table_name);
        Ops {
            status: table.status(),
            work: table.idempotency(),
            queues: shared::aws::SqsQueues::new(aws),
            rotation: rotate_keys::Deps {
                directory: shared::aws::IamDirectory::new(aws),
                idempotency: ReadOnly,
                publisher: ReadOnly,
                mailer: ReadOnly,
                ledger: table.ledger(),
                clock: shared::ports::SystemClock,
                config: config.rotation.clone(),
            },
            iam: plan::ReadOnlyIam(shared::aws::IamDirectory::new(aws)),
            config,
        }
    }
}

impl<S, W, Q, D, L, C, I> Ops<S, W, Q, D, L, C, I>
where
    S: StatusStore,
    W: WorkRecords,
    Q: Queues,
    D: Users + Credentials + KeyRetirement,
    L: KeyLedger + shared::ports::RotationRuns,
    C: Clock,
    I: Users + Offboarding + AccessChanges,
{
    pub async fn answer(&self, invocation: &Invocation) -> Answer {
        let json = invocation.json;
        let account = match self.config.account(invocation.account.as_deref()) {
            Ok(a) => a,
            Err(usage) => return Answer::usage(json, &usage),
        };
        match &invocation.command {
            Command::Help => Answer { code: ANSWERED, stdout: format!("{}\n", cli::USAGE), stderr: String::new() },
            Command::Queues => {
                let report = queues::overview(&self.queues, &self.config.routes).await;
                Answer::report(json, report.failed, &report, report.human())
            }
            Command::Status { ticket_id } => {
                match status::status(&self.status, &self.work, &self.rotation.ledger, ticket_id, account.clone()).await
                {
                    Ok(Some(s)) => Answer::report(json, s.failed, &s, s.human()),
                    Ok(None) => {
                        let account = account.as_deref().unwrap_or("the pipeline's own");
                        Answer::error(
                            json,
                            FAILURE,
                            format!("unknown ticket {ticket_id}: no record of it (account: {account})"),
                        )
                    }
                    Err(e) => Answer::error(json, FAILURE, e),
                }
            }
            Command::Redrive { stage } => {
                let stages = stage.map(|s| vec![s]).unwrap_or_else(|| QueueStage::ALL.to_vec());
                let report = queues::redrive(&self.queues, &self.config.routes, &stages).await;
                Answer::report(json, report.failed, &report, report.human())
            }
            Command::Replay { file } => {
                let body = match read(file, "replay") {
                    Ok(b) => b,
                    Err(usage) => return Answer::usage(json, &usage),
                };
                match queues::replay(&self.queues, &self.config.routes, &body).await {
                    Ok(r) => Answer::report(json, false, &r, r.human()),
                    Err(queues::ReplayError::NotReplayable(why)) => {
                        Answer::usage(json, &cli::Usage(format!("replay: {} is not replayed: {why}", file.display())))
                    }
                    // The deployment's configuration, not the operator's typing: no usage text.
                    Err(e @ queues::ReplayError::NotDeployed(_)) => {
                        Answer::error(json, USAGE, format!("replay: {}: {e}", file.display()))
                    }
                    Err(e) => Answer::error(json, FAILURE, e),
                }
            }
            Command::Plan { file } => {
                let body = match read(file, "plan") {
                    Ok(b) => b,
                    Err(usage) => return Answer::usage(json, &usage),
                };
                let allow = match &self.config.allow {
                    Ok(allow) => allow,
                    Err(problems) => {
                        return Answer::error(
                            json,
                            USAGE,
                            format!("plan checks a ticket against create-user's allow-list, which is not configured: {problems}"),
                        )
                    }
                };
                let ports =
                    plan::PlanPorts { iam: &self.iam, access: &self.iam, status: &self.status, work: &self.work };
                match plan::plan(&ports, allow, self.rotation.clock.now(), &body).await {
                    Ok(p) => Answer::report(json, p.failed(), &p, p.human()),
                    Err(plan::PlanError::NotATicket(why)) => {
                        Answer::usage(json, &cli::Usage(format!("plan: {} is not a ticket: {why}", file.display())))
                    }
                    Err(plan::PlanError::Aws(e)) => Answer::error(json, FAILURE, e),
                }
            }
            Command::RotationPlan { user_name } => {
                match rotation::rotation_plan(&self.rotation, user_name.as_ref()).await {
                    Ok(plan) => Answer::report(json, plan.failed(), &plan, plan.human()),
                    Err(e) => Answer::error(json, FAILURE, e),
                }
            }
        }
    }
}

/// A file named on the command line; one that cannot be read is bad usage.
fn read(file: &std::path::Path, command: &str) -> Result<String, cli::Usage> {
    std::fs::read_to_string(file).map_err(|e| cli::Usage(format!("{command}: cannot read {}: {e}", file.display())))
}
