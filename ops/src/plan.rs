//! `plan FILE`: what the pipeline would do with a ticket, without doing it
//! (CONTRACT.md section 6: no ticket has a dry-run field; the operator CLI
//! plans one instead).
//!
//! The plan is the pipeline's own code, not a second copy of its rules: the
//! ticket is told apart by `managed::TicketKind::of` and read by the
//! stages' parsers, checked by `lifecycle::validate_offboarding`,
//! `access::validate_access_change` or `ticket::validate` against
//! create-user's allow-list, each user's owner is `managed::ownership`, and
//! the IAM calls are `lifecycle::plan` over `Offboarding::holdings` or
//! `access::plan` over `AccessChanges::access_of`. Only read methods of
//! the ports are called: the IAM reads of a stage's run, the records
//! ownership reads, and whether a run of the ticket exists.
//!
//! Onboarding is create-user's whole business (names taken, the user to
//! copy): the plan gives only its static rules, and says so.

use crate::status::{run_key, RunState};
use serde::Serialize;
use shared::access::{self, AccessChange, AccessChangeTicket, AccessStep};
use shared::config::AllowList;
use shared::error::Refusal;
use shared::lifecycle::{self, OffboardAction, OffboardingTicket};
use shared::managed::{ownership, parse_ticket, Ownership, TicketKind};
use shared::names::{TicketId, UserName};
use shared::ports::{AccessChanges, Offboarding, StatusStore, Users, WorkRecords};

/// A ticket file, read as the stage its kind goes to reads it.
#[derive(Debug, Clone)]
pub enum AnyTicket {
    Onboarding(shared::ticket::Ticket),
    Offboarding(OffboardingTicket),
    AccessChange(AccessChangeTicket),
}

impl AnyTicket {
    pub fn kind(&self) -> TicketKind {
        match self {
            AnyTicket::Onboarding(_) => TicketKind::Onboarding,
            AnyTicket::Offboarding(_) => TicketKind::Offboarding,
            AnyTicket::AccessChange(_) => TicketKind::AccessChange,
        }
    }

    /// As written in the ticket.
    pub fn ticket_id(&self) -> &str {
        match self {
            AnyTicket::Onboarding(t) => &t.ticket_id,
            AnyTicket::Offboarding(t) => &t.ticket_id,
            AnyTicket::AccessChange(t) => &t.ticket_id,
        }
    }
}

/// `onboarding`, `offboarding`, `access_change`: a kind in reports.
pub fn kind_name(kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::Onboarding => "onboarding",
        TicketKind::Offboarding => "offboarding",
        TicketKind::AccessChange => "access_change",
    }
}

/// Why a JSON value is not a ticket of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRead {
    /// An EventBridge event no rule of the pipeline's bus routes: not a
    /// ticket at all.
    OtherEvent(String),
    /// A ticket of this kind (by its envelope, or bare: onboarding) that
    /// the stage would refuse as unreadable; with a hint when a bare body
    /// reads as another kind.
    Refused { kind: TicketKind, refusal: Refusal, hint: Option<String> },
}

impl std::fmt::Display for NotRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRead::OtherEvent(why) => f.write_str(why),
            NotRead::Refused { kind, refusal, hint } => {
                let kind = kind_name(*kind).replace('_', " ");
                write!(f, "not a readable {kind} ticket: {refusal}")?;
                if let Some(hint) = hint {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
        }
    }
}

/// Reads a ticket of any kind as the bus rules and stages do: the kind by
/// the envelope's detail-type (`TicketKind::of`; a bare body is an
/// onboarding ticket), the ticket by that kind's own parser.
pub fn read_ticket(value: &serde_json::Value) -> Result<AnyTicket, NotRead> {
    let Some(kind) = TicketKind::of(value) else {
        return Err(NotRead::OtherEvent(format!(
            "an EventBridge event of source {} / detail-type {}, which no rule of the pipeline's bus routes \
             (tickets are source {:?} with detail-type {:?}, {:?} or {:?})",
            value.get("source").unwrap_or(&serde_json::Value::Null),
            value.get("detail-type").unwrap_or(&serde_json::Value::Null),
            shared::ticket::TICKET_SOURCE,
            TicketKind::Onboarding.detail_type(),
            TicketKind::Offboarding.detail_type(),
            TicketKind::AccessChange.detail_type(),
        )));
    };
    let refused = |refusal| NotRead::Refused { kind, refusal, hint: None };
    match kind {
        TicketKind::Onboarding => shared::ticket::parse_value(value.clone()).map(AnyTicket::Onboarding).map_err(|r| {
            let hint = (value.get("detail").is_none()).then(|| bare_hint(value)).flatten();
            NotRead::Refused { kind, refusal: r, hint }
        }),
        TicketKind::Offboarding => parse_ticket(&value.to_string(), kind).map(AnyTicket::Offboarding).map_err(refused),
        TicketKind::AccessChange => {
            parse_ticket(&value.to_string(), kind).map(AnyTicket::AccessChange).map_err(refused)
        }
    }
}

/// A bare body is an onboarding ticket (CONTRACT.md section 6); one that
/// fails as such but reads as another kind gets told how to send it.
fn bare_hint(value: &serde_json::Value) -> Option<String> {
    let mut kinds = Vec::new();
    if serde_json::from_value::<OffboardingTicket>(value.clone()).is_ok() {
        kinds.push(TicketKind::Offboarding);
    }
    if serde_json::from_value::<AccessChangeTicket>(value.clone()).is_ok() {
        kinds.push(TicketKind::AccessChange);
    }
    if kinds.is_empty() {
        return None;
    }
    let envelopes: Vec<String> = kinds
        .iter()
        .map(|k| format!("an {} ticket, detail-type {:?}", kind_name(*k).replace('_', " "), k.detail_type()))
        .collect();
    Some(format!(
        "a body without an EventBridge envelope is read as an onboarding ticket; if this is {}, put it in its \
         envelope (source {:?}, \"detail\": the ticket)",
        envelopes.join(", or "),
        shared::ticket::TICKET_SOURCE
    ))
}

/// One IAM call the pipeline would make, as the planners name it:
/// `{"call": ..., "target": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PlannedStep {
    Offboarding(lifecycle::Step),
    Access(AccessStep),
}

impl PlannedStep {
    /// `RemoveUserFromGroup Developers`, from the step as it serialises.
    pub fn human(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        let call = v.get("call").and_then(|c| c.as_str()).unwrap_or("?").to_owned();
        match v.get("target") {
            None | Some(serde_json::Value::Null) => call,
            Some(serde_json::Value::String(t)) => format!("{call} {t}"),
            Some(serde_json::Value::Object(fields)) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k} {}", v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                    .collect();
                format!("{call} ({})", fields.join(", "))
            }
            Some(other) => format!("{call} {other}"),
        }
    }
}

/// One user of an offboarding or access change ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserPlan {
    /// As IAM spells it when the user exists, else as written.
    pub user_name: String,
    /// Offboarding: `disable` or `delete`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<OffboardAction>,
    /// Access change: what is asked (after its rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<AccessChange>,
    /// The pipeline created it (its records and the managed tag agree).
    pub owned: bool,
    /// The onboarding ticket that created it, when owned.
    pub onboarded_by: Option<String>,
    /// Why the pipeline would not touch it, when not owned.
    pub why_not: Option<String>,
    /// The IAM calls for its current state, in the order they would be
    /// made; empty when there is nothing to do (or it is not owned).
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketPlan {
    /// `onboarding`, `offboarding` or `access_change`.
    pub kind: &'static str,
    /// As written in the ticket (empty when it could not be read).
    pub ticket_id: String,
    /// The ticket would pass: every rule, and for offboarding and access
    /// changes every user the pipeline's.
    pub passes: bool,
    /// Every rule the ticket breaks (or why it cannot be read).
    pub refusals: Vec<Refusal>,
    pub users: Vec<UserPlan>,
    /// Offboarding: the date a disable would tag (today, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub today: Option<String>,
    /// The pipeline's record of a run of this ticket id, if it has one: a
    /// ticket delivered again is not acted on again.
    pub earlier_run: Option<RunState>,
    /// What a person should know besides (onboarding: what is not planned
    /// here; a bare body of another kind: how to send it).
    pub notes: Vec<String>,
}

/// Why a file could not be planned at all (bad usage: exit 2), or AWS.
#[derive(Debug)]
pub enum PlanError {
    NotATicket(String),
    Aws(shared::Error),
}

impl From<shared::Error> for PlanError {
    fn from(e: shared::Error) -> Self {
        PlanError::Aws(e)
    }
}

/// IAM for a plan: the reads of `I`, and each call that would act refused
/// (as `rotation::ReadOnly`), so a change to plan's promise fails loudly
/// instead of acting.
#[derive(Debug, Clone)]
pub struct ReadOnlyIam<I>(pub I);

impl<I: Users> Users for ReadOnlyIam<I> {
    async fn list_user_names(&self) -> shared::Result<Vec<String>> {
        self.0.list_user_names().await
    }
    async fn get_user(&self, user_name: &str) -> shared::Result<Option<shared::ports::IamUser>> {
        self.0.get_user(user_name).await
    }
    async fn permissions(&self, user_name: &str) -> shared::Result<shared::ports::Permissions> {
        self.0.permissions(user_name).await
    }
}

impl<I: Offboarding> Offboarding for ReadOnlyIam<I> {
    async fn holdings(&self, user_name: &str) -> shared::Result<Option<lifecycle::UserHoldings>> {
        self.0.holdings(user_name).await
    }
    async fn unassigned_mfa_devices_marked_for(&self, user_id: &str) -> shared::Result<Vec<String>> {
        self.0.unassigned_mfa_devices_marked_for(user_id).await
    }
    async fn apply(&self, _: &str, _: &lifecycle::Step) -> shared::Result<()> {
        Err(crate::rotation::refused("an offboarding call"))
    }
}

impl<I: AccessChanges> AccessChanges for ReadOnlyIam<I> {
    async fn access_of(&self, user_name: &str) -> shared::Result<Option<shared::ports::Permissions>> {
        self.0.access_of(user_name).await
    }
    async fn apply_access(&self, _: &str, _: &AccessStep) -> shared::Result<()> {
        Err(crate::rotation::refused("an access change call"))
    }
}

/// The read ports a plan uses: IAM (users and what they hold; the access
/// change's reads), the status records ownership reads, the run records.
pub struct PlanPorts<'a, O, A, S, W> {
    pub iam: &'a O,
    pub access: &'a A,
    pub status: &'a S,
    pub work: &'a W,
}

/// Plans the ticket in `body` at `now` (seconds since the epoch).
pub async fn plan<O, A, S, W>(
    ports: &PlanPorts<'_, O, A, S, W>,
    allow: &AllowList,
    now: u64,
    body: &str,
) -> Result<TicketPlan, PlanError>
where
    O: Users + Offboarding,
    A: AccessChanges,
    S: StatusStore,
    W: WorkRecords,
{
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        PlanError::NotATicket(format!("not JSON ({})", shared::text::redact_serde_message(&e.to_string())))
    })?;
    if !value.is_object() {
        return Err(PlanError::NotATicket("not a JSON object".into()));
    }
    let ticket = match read_ticket(&value) {
        Ok(t) => t,
        Err(NotRead::OtherEvent(why)) => return Err(PlanError::NotATicket(why)),
        Err(NotRead::Refused { kind, refusal, hint }) => {
            let mut plan = TicketPlan::empty(kind, shared::ticket::best_effort_ticket_id(body).map(|t| t.to_string()));
            plan.refusals.push(refusal);
            plan.notes.extend(hint);
            if kind == TicketKind::Onboarding {
                plan.notes.push(ONBOARDING_NOTE.into());
            }
            return Ok(plan);
        }
    };
    let mut plan = TicketPlan::empty(ticket.kind(), Some(ticket.ticket_id().to_owned()));
    if let Ok(id) = TicketId::parse(ticket.ticket_id()) {
        plan.earlier_run = RunState::of(ports.work, &run_key(ticket.kind(), &id)).await?;
    }
    match &ticket {
        AnyTicket::Onboarding(t) => {
            plan.notes.push(ONBOARDING_NOTE.into());
            if let Err(refusals) = shared::ticket::validate(t, allow, shared::date::Date::from_epoch(now)) {
                plan.refusals = refusals;
            }
        }
        AnyTicket::Offboarding(t) => {
            let today = shared::text::date(now);
            match lifecycle::validate_offboarding(t, &allow.email_domains) {
                Err(refusals) => plan.refusals = refusals,
                Ok(accepted) => {
                    for (name, action) in &accepted.users {
                        plan.users.push(offboarding_user(ports, name, *action, &accepted.ticket_id, &today).await?);
                    }
                }
            }
            plan.today = Some(today);
        }
        AnyTicket::AccessChange(t) => match access::validate_access_change(t, &allow.access()) {
            Err(refusals) => plan.refusals = refusals,
            Ok(accepted) => {
                for (name, change) in &accepted.users {
                    plan.users.push(access_user(ports, name, change).await?);
                }
            }
        },
    }
    plan.passes = plan.refusals.is_empty() && plan.users.iter().all(|u| u.owned);
    Ok(plan)
}

const ONBOARDING_NOTE: &str = "onboarding tickets are checked by create-user: these are its static rules \
     (ticket::validate); what only IAM answers (a name taken, the user to copy) it checks when the ticket arrives";

impl TicketPlan {
    fn empty(kind: TicketKind, ticket_id: Option<String>) -> Self {
        Self {
            kind: kind_name(kind),
            ticket_id: ticket_id.unwrap_or_default(),
            passes: false,
            refusals: Vec::new(),
            users: Vec::new(),
            today: None,
            earlier_run: None,
            notes: Vec::new(),
        }
    }
}

/// Whose the user is, and if the pipeline's, `lifecycle::plan` over what it
/// holds now.
async fn offboarding_user<O, A, S, W>(
    ports: &PlanPorts<'_, O, A, S, W>,
    name: &UserName,
    action: OffboardAction,
    ticket_id: &TicketId,
    today: &str,
) -> shared::Result<UserPlan>
where
    O: Users + Offboarding,
    A: AccessChanges,
    S: StatusStore,
    W: WorkRecords,
{
    let mut user = UserPlan::of(name);
    user.action = Some(action);
    let Some(iam_name) = owner(ports, name, &mut user, "nothing to offboard").await? else {
        return Ok(user);
    };
    let iam_user = UserName::parse(&iam_name).unwrap_or_else(|_| name.clone());
    match lifecycle::planned(ports.iam, &iam_user, action, ticket_id, today).await? {
        Some(steps) => {
            user.steps = steps.into_iter().map(PlannedStep::Offboarding).collect();
        }
        // Deleted between the two reads.
        None => gone(&mut user, name, "nothing to offboard"),
    }
    Ok(user)
}

/// Whose the user is, and if the pipeline's, `access::plan` over the groups
/// and policies it holds now.
async fn access_user<O, A, S, W>(
    ports: &PlanPorts<'_, O, A, S, W>,
    name: &UserName,
    change: &AccessChange,
) -> shared::Result<UserPlan>
where
    O: Users + Offboarding,
    A: AccessChanges,
    S: StatusStore,
    W: WorkRecords,
{
    let mut user = UserPlan::of(name);
    user.change = Some(change.clone());
    let Some(iam_name) = owner(ports, name, &mut user, "nothing to change").await? else {
        return Ok(user);
    };
    match ports.access.access_of(&iam_name).await? {
        Some(current) => user.steps = access::plan(&current, change).into_iter().map(PlannedStep::Access).collect(),
        None => gone(&mut user, name, "nothing to change"),
    }
    Ok(user)
}

/// `managed::ownership`, noted on `user`; the name as IAM spells it when
/// the pipeline owns the user.
async fn owner<O, A, S, W>(
    ports: &PlanPorts<'_, O, A, S, W>,
    name: &UserName,
    user: &mut UserPlan,
    nothing: &str,
) -> shared::Result<Option<String>>
where
    O: Users + Offboarding,
    A: AccessChanges,
    S: StatusStore,
    W: WorkRecords,
{
    match ownership(ports.iam, ports.status, name).await? {
        Ownership::Ours { user: iam_user, handoff } => {
            user.owned = true;
            user.onboarded_by = Some(handoff.ticket_id.to_string());
            user.user_name.clone_from(&iam_user.user_name);
            Ok(Some(iam_user.user_name))
        }
        Ownership::Gone => {
            gone(user, name, nothing);
            Ok(None)
        }
        Ownership::NotOurs(why) => {
            user.why_not = Some(why);
            Ok(None)
        }
    }
}

fn gone(user: &mut UserPlan, name: &UserName, nothing: &str) {
    user.owned = false;
    user.onboarded_by = None;
    user.why_not = Some(format!("there is no user {:?} in the account ({nothing})", name.as_str()));
}

impl UserPlan {
    fn of(name: &UserName) -> Self {
        Self {
            user_name: name.to_string(),
            action: None,
            change: None,
            owned: false,
            onboarded_by: None,
            why_not: None,
            steps: Vec::new(),
        }
    }
}

impl TicketPlan {
    pub fn failed(&self) -> bool {
        !self.passes
    }

    pub fn human(&self) -> String {
        let kind = self.kind.replace('_', " ");
        let id = if self.ticket_id.is_empty() { "(no readable ticket id)" } else { self.ticket_id.as_str() };
        let mut out = format!("plan of {kind} ticket {id} (nothing done)\n");
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        if let Some(run) = &self.earlier_run {
            out.push_str(&format!(
                "  note: the pipeline already has a run of ticket {id} ({}): delivered again, it is not acted on \
                 again; below is what a new ticket with these users would do\n",
                run.human()
            ));
        }
        if !self.refusals.is_empty() {
            out.push_str(&format!(
                "would be refused, nothing would change in IAM; {} rule(s) broken:\n",
                self.refusals.len()
            ));
            for r in &self.refusals {
                out.push_str(&format!("  {r}\n"));
            }
            return out;
        }
        if self.kind == kind_name(TicketKind::Onboarding) {
            out.push_str("passes the static rules\n");
            return out;
        }
        for u in &self.users {
            let asked = match (&u.action, &u.change) {
                (Some(OffboardAction::Disable), _) => " (disable)",
                (Some(OffboardAction::Delete), _) => " (delete)",
                _ => "",
            };
            out.push_str(&format!("  {}{asked}: ", u.user_name));
            if !u.owned {
                out.push_str(&format!("not the pipeline's: {}\n", u.why_not.as_deref().unwrap_or("-")));
                continue;
            }
            let by = u.onboarded_by.as_deref().unwrap_or("-");
            if u.steps.is_empty() {
                out.push_str(&format!("the pipeline's (onboarded by {by}); already as asked: no call\n"));
                continue;
            }
            out.push_str(&format!("the pipeline's (onboarded by {by}); {} call(s):\n", u.steps.len()));
            for (i, step) in u.steps.iter().enumerate() {
                out.push_str(&format!("      {}. {}\n", i + 1, step.human()));
            }
        }
        if self.passes {
            out.push_str("would pass\n");
        } else {
            let n = self.users.iter().filter(|u| !u.owned).count();
            out.push_str(&format!(
                "would be refused as a whole, nothing would change in IAM: {n} user(s) not the pipeline's (only users it \
                 created are ever touched)\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::idempotency::Key;
    use shared::lifecycle::{Step, UserHoldings};
    use shared::memory::{accepted, test_allow_list, MemoryAccess, MemoryIdempotency, MemoryOffboarding, MemoryStatus};
    use shared::ports::{IdempotencyStore, Permissions};
    use shared::ticket::{MANAGED_TAG, TICKET_TAG};

    const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
    /// 2026-11-25, 00:00 UTC.
    const NOW: u64 = 1_795_564_800;

    /// IAM and the records: `emily` and `svc-report` onboarded by ONB-1
    /// (tagged, with their hand-offs), `raj` made by someone else.
    struct World {
        iam: MemoryOffboarding,
        access: MemoryAccess,
        status: MemoryStatus,
        work: MemoryIdempotency,
    }

    impl World {
        fn new() -> Self {
            let w = Self {
                iam: MemoryOffboarding::default(),
                access: MemoryAccess::default(),
                status: MemoryStatus::default(),
                work: MemoryIdempotency::default(),
            };
            let handoffs = accepted(json!({
                "ticket_id": "ONB-1", "requested_by": "req@example.com",
                "users": [
                    {"user_name": "emily", "email": "emily@example.com", "access": {"console": true, "programmatic": true}},
                    {"user_name": "svc-report", "email": "ops@example.com", "access": {"programmatic": true}}
                ]
            }));
            for h in &handoffs {
                w.status.insert_handoff(h);
            }
            let ours = [(MANAGED_TAG.to_owned(), "true".to_owned()), (TICKET_TAG.to_owned(), "ONB-1".to_owned())];
            w.iam.insert(
                "emily",
                UserHoldings {
                    login_profile: true,
                    access_keys: vec![("AKIAEMILY".into(), true)],
                    groups: vec!["Power_Users".into()],
                    managed_policies: vec![POWER_USER.into()],
                    tags: ours.clone().into(),
                    ..Default::default()
                },
            );
            w.iam.insert(
                "svc-report",
                UserHoldings {
                    access_keys: vec![("AKIASVC".into(), false)],
                    inline_policies: vec!["legacy".into()],
                    tags: ours.into(),
                    ..Default::default()
                },
            );
            w.iam.insert("raj", UserHoldings { login_profile: true, ..Default::default() });
            w.access.insert(
                "emily",
                Permissions {
                    groups: vec!["Power_Users".into()],
                    managed_policies: vec![POWER_USER.into()],
                    ..Default::default()
                },
            );
            w.access.insert("raj", Permissions { groups: vec!["ReadOnly".into()], ..Default::default() });
            w
        }

        fn ports(&self) -> PlanPorts<'_, MemoryOffboarding, MemoryAccess, MemoryStatus, MemoryIdempotency> {
            PlanPorts { iam: &self.iam, access: &self.access, status: &self.status, work: &self.work }
        }

        async fn plan(&self, ticket: serde_json::Value) -> TicketPlan {
            plan(&self.ports(), &test_allow_list(), NOW, &ticket.to_string()).await.expect("planned")
        }

        /// Everything a plan could have changed, to compare before and after.
        fn state(&self) -> String {
            let users = ["emily", "svc-report", "raj"];
            let held: Vec<String> = users.iter().map(|u| format!("{:?}", self.iam.holdings_of(u))).collect();
            let access: Vec<String> = users.iter().map(|u| format!("{:?}", self.access.access_held(u))).collect();
            format!("{held:?} {access:?} {:?} {:?}", self.iam.calls(), self.access.calls())
        }
    }

    fn envelope(detail_type: &str, detail: serde_json::Value) -> serde_json::Value {
        json!({"source": "onboarding.tickets", "detail-type": detail_type, "detail": detail})
    }

    fn offboarding(users: serde_json::Value) -> serde_json::Value {
        envelope(
            "Offboarding Ticket Approved",
            json!({"ticket_id": "OFF-311", "requested_by": "it-ops@example.com", "users": users}),
        )
    }

    #[tokio::test]
    async fn an_offboarding_plan_is_lifecycle_plan_for_each_users_state_and_changes_nothing() {
        let w = World::new();
        let before = w.state();
        let ticket = offboarding(json!([{"user_name": "emily"}, {"user_name": "svc-report", "action": "delete"}]));
        let plan = w.plan(ticket).await;
        assert!(plan.passes && !plan.failed(), "{plan:#?}");
        assert_eq!(
            (plan.kind, plan.ticket_id.as_str(), plan.today.as_deref()),
            ("offboarding", "OFF-311", Some("2026-11-25"))
        );
        // Exactly the planner's steps over what each user holds.
        let emily = w.iam.holdings_of("emily").unwrap();
        let expected: Vec<PlannedStep> = lifecycle::plan(&emily, OffboardAction::Disable, "OFF-311", "2026-11-25")
            .into_iter()
            .map(PlannedStep::Offboarding)
            .collect();
        assert_eq!(plan.users[0].steps, expected);
        assert_eq!(
            plan.users[0].steps,
            [
                PlannedStep::Offboarding(Step::DeleteLoginProfile),
                PlannedStep::Offboarding(Step::DeactivateAccessKey("AKIAEMILY".into())),
                PlannedStep::Offboarding(Step::RemoveUserFromGroup("Power_Users".into())),
                PlannedStep::Offboarding(Step::DetachUserPolicy(POWER_USER.into())),
                PlannedStep::Offboarding(Step::TagOffboarded { ticket_id: "OFF-311".into(), on: "2026-11-25".into() }),
            ]
        );
        let svc = &plan.users[1];
        assert_eq!(
            (svc.owned, svc.onboarded_by.as_deref(), svc.action),
            (true, Some("ONB-1"), Some(OffboardAction::Delete))
        );
        assert_eq!(svc.steps.last(), Some(&PlannedStep::Offboarding(Step::DeleteUser)));
        assert_eq!(w.state(), before, "a plan changed something");

        let text = plan.human();
        for line in [
            "plan of offboarding ticket OFF-311 (nothing done)\n",
            "  emily (disable): the pipeline's (onboarded by ONB-1); 5 call(s):\n",
            "      1. DeleteLoginProfile\n",
            "      2. DeactivateAccessKey AKIAEMILY\n",
            "      5. TagOffboarded (on 2026-11-25, ticket_id OFF-311)\n",
            "  svc-report (delete): the pipeline's (onboarded by ONB-1); 3 call(s):\n",
            "      1. DeleteAccessKey AKIASVC\n      2. DeleteUserPolicy legacy\n      3. DeleteUser\n",
            "would pass\n",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["users"][0]["steps"][1], json!({"call": "DeactivateAccessKey", "target": "AKIAEMILY"}));
        assert_eq!(v["users"][1]["action"], "delete");
        assert_eq!(v["passes"], true);
    }

    #[tokio::test]
    async fn an_unmanaged_or_missing_user_is_named_with_why_and_refuses_the_ticket() {
        let w = World::new();
        let before = w.state();
        let plan =
            w.plan(offboarding(json!([{"user_name": "emily"}, {"user_name": "raj"}, {"user_name": "nobody"}]))).await;
        assert!(!plan.passes && plan.failed());
        assert!(plan.refusals.is_empty(), "the rules pass: {plan:#?}");
        let owned: Vec<(&str, bool)> = plan.users.iter().map(|u| (u.user_name.as_str(), u.owned)).collect();
        assert_eq!(owned, [("emily", true), ("raj", false), ("nobody", false)]);
        let raj = &plan.users[1];
        assert!(raj.why_not.as_deref().unwrap().contains("was not created by iam-provisioner"), "{raj:?}");
        assert!(raj.steps.is_empty(), "a plan for a user the pipeline may not touch");
        assert!(plan.users[2].why_not.as_deref().unwrap().contains("there is no user \"nobody\""));
        let text = plan.human();
        assert!(text.contains("  raj (disable): not the pipeline's: user \"raj\" was not created by"), "{text}");
        assert!(
            text.contains("would be refused as a whole, nothing would change in IAM: 2 user(s) not the pipeline's"),
            "{text}"
        );
        assert_eq!(w.state(), before);
    }

    #[tokio::test]
    async fn a_refused_offboarding_ticket_gives_every_refusal() {
        let w = World::new();
        let plan = w
            .plan(envelope(
                "Offboarding Ticket Approved",
                json!({"ticket_id": "OFF 1", "requested_by": "boss@evil.test",
                       "users": [{"user_name": "a b"}, {"user_name": "Emily"}, {"user_name": "emily"}]}),
            ))
            .await;
        assert!(plan.failed());
        let fields: Vec<&str> = plan.refusals.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["ticket_id", "requested_by", "users[0].user_name", "users[2].user_name"]);
        assert!(plan.users.is_empty());
        let text = plan.human();
        assert!(
            text.contains("would be refused, nothing would change in IAM; 4 rule(s) broken:\n  ticket_id: "),
            "{text}"
        );
        // Unreadable (an unknown action): refused as the stage would.
        let plan = w.plan(offboarding(json!([{"user_name": "emily", "action": "purge"}]))).await;
        assert!(plan.failed());
        assert_eq!(plan.ticket_id, "OFF-311");
        assert!(plan.refusals[0].field.contains("action"), "{:?}", plan.refusals);
    }

    #[tokio::test]
    async fn an_access_change_plan_is_access_plan_removals_first() {
        let w = World::new();
        let before = w.state();
        let change = |users| {
            envelope(
                "Access Change Approved",
                json!({"ticket_id": "CHG-77", "requested_by": "it-ops@example.com", "users": users}),
            )
        };
        let plan = w
            .plan(change(json!([
                {"user_name": "emily", "add_groups": ["ReadOnly"], "remove_groups": ["Power_Users"],
                 "attach_policies": [READ_ONLY], "detach_policies": [POWER_USER]}
            ])))
            .await;
        assert!(plan.passes, "{plan:#?}");
        assert_eq!(plan.kind, "access_change");
        let arn = |s: &str| shared::names::PolicyArn::parse(s).unwrap();
        assert_eq!(
            plan.users[0].steps,
            [
                PlannedStep::Access(AccessStep::RemoveUserFromGroup("Power_Users".into())),
                PlannedStep::Access(AccessStep::DetachUserPolicy(arn(POWER_USER))),
                PlannedStep::Access(AccessStep::AddUserToGroup("ReadOnly".into())),
                PlannedStep::Access(AccessStep::AttachUserPolicy(arn(READ_ONLY))),
            ]
        );
        let text = plan.human();
        assert!(text.contains("      1. RemoveUserFromGroup Power_Users\n"), "{text}");
        assert!(text.contains(&format!("      4. AttachUserPolicy {READ_ONLY}\n")), "{text}");
        assert_eq!(serde_json::to_value(&plan).unwrap()["users"][0]["change"]["add_groups"], json!(["ReadOnly"]));

        // raj is someone else's; a group off the allow-list is refused by the rules.
        let plan = w.plan(change(json!([{"user_name": "raj", "remove_groups": ["ReadOnly"]}]))).await;
        assert!(plan.failed() && plan.users[0].why_not.is_some() && plan.users[0].steps.is_empty(), "{plan:#?}");
        let plan = w.plan(change(json!([{"user_name": "emily", "add_groups": ["Admins"]}]))).await;
        assert!(plan.failed());
        assert!(plan.refusals[0].rule.contains("\"Admins\" is not on this deployment's allow-list"), "{plan:#?}");
        assert_eq!(w.state(), before);
    }

    #[tokio::test]
    async fn an_onboarding_ticket_gets_create_users_static_rules() {
        let w = World::new();
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../events/onboarding-ticket.json")).unwrap();
        let plan = w.plan(sample.clone()).await;
        assert!(plan.passes, "{plan:#?}");
        assert_eq!((plan.kind, plan.ticket_id.as_str()), ("onboarding", "ONB-1042"));
        let text = plan.human();
        assert!(
            text.contains("onboarding tickets are checked by create-user")
                && text.ends_with("passes the static rules\n"),
            "{text}"
        );
        // Bare, and refused: every rule it breaks.
        let mut bare = sample["detail"].clone();
        bare["users"][0]["groups"] = json!(["Admins"]);
        bare["requested_by"] = json!("boss@evil.test");
        let plan = w.plan(bare).await;
        assert!(plan.failed());
        let fields: Vec<&str> = plan.refusals.iter().map(|r| r.field.as_str()).collect();
        assert!(fields.contains(&"requested_by") && fields.iter().any(|f| f.ends_with("groups")), "{fields:?}");
        assert!(plan.human().contains("would be refused, nothing would change in IAM"));
    }

    #[tokio::test]
    async fn a_bare_offboarding_ticket_is_read_as_onboarding_and_told_how_to_send_it() {
        let w = World::new();
        let plan = w
            .plan(json!({"ticket_id": "OFF-9", "requested_by": "it-ops@example.com", "users": [{"user_name": "emily", "action": "delete"}]}))
            .await;
        assert!(plan.failed());
        assert_eq!((plan.kind, plan.ticket_id.as_str()), ("onboarding", "OFF-9"));
        assert!(plan.notes.iter().any(|n| n.contains("detail-type \"Offboarding Ticket Approved\"")), "{plan:#?}");
    }

    #[tokio::test]
    async fn another_event_or_not_json_is_bad_usage() {
        let w = World::new();
        let ports = w.ports();
        for (body, says) in [
            (envelope("Something Else", json!({})).to_string(), "no rule of the pipeline's bus routes"),
            ("not json".into(), "not JSON"),
            ("[1]".into(), "not a JSON object"),
        ] {
            match plan(&ports, &test_allow_list(), NOW, &body).await {
                Err(PlanError::NotATicket(why)) => assert!(why.contains(says), "{body}: {why}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    /// The IAM a plan is given over AWS refuses to act; it reads through.
    #[tokio::test]
    async fn read_only_iam_reads_and_refuses_every_call_that_acts() {
        let w = World::new();
        let iam = ReadOnlyIam(w.iam);
        assert!(iam.holdings("emily").await.unwrap().is_some());
        assert!(iam.get_user("emily").await.unwrap().is_some());
        let err = iam.apply("emily", &Step::DeleteLoginProfile).await.unwrap_err();
        assert!(err.to_string().contains("does not act"), "{err}");
        assert!(iam.0.calls().is_empty() && iam.0.holdings_of("emily").unwrap().login_profile);
        let access = ReadOnlyIam(w.access);
        assert!(access.access_of("emily").await.unwrap().is_some());
        assert!(access.apply_access("emily", &AccessStep::AddUserToGroup("ReadOnly".into())).await.is_err());
        assert!(access.0.calls().is_empty());
    }

    /// A ticket id the pipeline already ran: said, as a rerun changes nothing.
    #[tokio::test]
    async fn a_ticket_already_run_is_noted() {
        let w = World::new();
        let key = Key::offboarding(&TicketKind::Offboarding.records_of(&TicketId::parse("OFF-311").unwrap()));
        w.work.claim(key.as_str(), "h", 1, 2, u64::MAX).await.unwrap();
        w.work.complete(key.as_str(), "h", &json!({}), u64::MAX).await.unwrap();
        let plan = w.plan(offboarding(json!([{"user_name": "emily"}]))).await;
        assert_eq!(plan.earlier_run, Some(RunState::Finished));
        assert!(
            plan.human().contains("the pipeline already has a run of ticket OFF-311 (finished)"),
            "{}",
            plan.human()
        );
    }
}
