//! `status` (no ticket), `redrive` and `replay`: the pipeline's queues,
//! and messages put (back) on them. A stage whose variables are unset is not
//! deployed (a deployment from before offboard-user or change-access): it
//! is reported as such, and is not a failure.
//!
//! Redrive does what SQS's own redrive does: each message is received from
//! the dead-letter queue, its body sent unchanged to the source queue, and
//! only then deleted from the dead-letter queue. A message whose send fails
//! stays where it was (it reappears when its visibility timeout ends); one
//! sent but not deleted is sent again by the next redrive, and the stages'
//! idempotency records absorb the repeat.

use crate::cli::QueueStage;
use crate::config::{queue_variables, Route};
use crate::plan::{read_ticket, AnyTicket, NotRead};
use serde::Serialize;
use shared::handoff::{CredentialsReady, UserReady};
use shared::ports::Queues;

/// One stage's queues now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageQueues {
    pub stage: &'static str,
    /// `false`: its variables are unset; nothing else is reported.
    pub deployed: bool,
    pub queue: Option<String>,
    /// Waiting or in flight (SQS's approximate counts).
    pub waiting: Option<usize>,
    pub dead_letter_queue: Option<String>,
    pub dead_lettered: Option<usize>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuesReport {
    pub stages: Vec<StageQueues>,
    /// Messages in a dead-letter queue (or a queue could not be read).
    pub failed: bool,
}

/// Every stage's queue depth and dead-letter count, `QueueStage::ALL` order.
pub async fn overview<Q: Queues>(queues: &Q, routes: &[Route]) -> QueuesReport {
    let mut stages = Vec::with_capacity(QueueStage::ALL.len());
    for stage in QueueStage::ALL {
        let Some(route) = routes.iter().find(|r| r.stage == stage) else {
            stages.push(StageQueues {
                stage: stage.as_str(),
                deployed: false,
                queue: None,
                waiting: None,
                dead_letter_queue: None,
                dead_lettered: None,
                error: None,
            });
            continue;
        };
        let (waiting, dead) = (queues.depth(&route.queue_url).await, queues.depth(&route.dlq_url).await);
        let error = [&waiting, &dead].into_iter().find_map(|r| r.as_ref().err().map(ToString::to_string));
        stages.push(StageQueues {
            stage: stage.as_str(),
            deployed: true,
            queue: Some(route.queue_url.clone()),
            waiting: waiting.ok(),
            dead_letter_queue: Some(route.dlq_url.clone()),
            dead_lettered: dead.ok(),
            error,
        });
    }
    let failed = stages.iter().any(|s| s.error.is_some() || s.dead_lettered.is_some_and(|n| n > 0));
    QueuesReport { stages, failed }
}

impl QueuesReport {
    pub fn human(&self) -> String {
        let mut out = String::new();
        for s in &self.stages {
            if !s.deployed {
                out.push_str(&format!("{}: not deployed ({})\n", s.stage, not_deployed_why(s.stage)));
                continue;
            }
            let count = |n: Option<usize>| n.map_or("?".to_owned(), |n| n.to_string());
            out.push_str(&format!(
                "{}: {} waiting, {} dead-lettered",
                s.stage,
                count(s.waiting),
                count(s.dead_lettered)
            ));
            if s.dead_lettered.is_some_and(|n| n > 0) {
                out.push_str(&format!(" (in {})", queue_name(s.dead_letter_queue.as_deref().unwrap_or_default())));
            }
            out.push('\n');
            if let Some(e) = &s.error {
                out.push_str(&format!("  error: {e}\n"));
            }
        }
        let dead: usize = self.stages.iter().filter_map(|s| s.dead_lettered).sum();
        if dead > 0 {
            out.push_str(&format!(
                "{dead} message(s) dead-lettered: the stage's log names the fault; after the fix, ops redrive [STAGE]\n"
            ));
        }
        out
    }
}

/// `OFFBOARD_USER_QUEUE_URL and OFFBOARD_USER_DLQ_URL unset`.
fn not_deployed_why(stage: &str) -> String {
    match QueueStage::parse(stage) {
        Ok(stage) => {
            let (queue, dlq) = queue_variables(stage);
            format!("{queue} and {dlq} unset")
        }
        Err(_) => "unknown stage".into(),
    }
}

/// What one dead-letter queue's redrive did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub stage: &'static str,
    pub from: String,
    pub to: String,
    pub moved: usize,
    /// Still in the dead-letter queue afterwards (waiting or in flight).
    pub left: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    pub queues: Vec<Moved>,
    /// Stages asked for (or, with no stage named, known) that are not
    /// deployed: nothing to redrive, and not a failure.
    pub not_deployed: Vec<&'static str>,
    /// Something was left behind or went wrong.
    pub failed: bool,
}

/// A bound on one redrive, far above any real dead-letter queue of this
/// pipeline: a message that keeps coming back cannot keep it running.
const MAX_MESSAGES: usize = 100_000;

/// Redrives each of `stages` that is deployed (has a route).
pub async fn redrive<Q: Queues>(queues: &Q, routes: &[Route], stages: &[QueueStage]) -> RedriveReport {
    let mut report = Vec::with_capacity(stages.len());
    let mut not_deployed = Vec::new();
    for &stage in stages {
        let Some(route) = routes.iter().find(|r| r.stage == stage) else {
            not_deployed.push(stage.as_str());
            continue;
        };
        let mut moved = Moved {
            stage: route.stage.as_str(),
            from: route.dlq_url.clone(),
            to: route.queue_url.clone(),
            moved: 0,
            left: 0,
            error: None,
        };
        if let Err(e) = move_all(queues, route, &mut moved.moved).await {
            moved.error = Some(e.to_string());
        }
        match queues.depth(&route.dlq_url).await {
            Ok(n) => moved.left = n,
            Err(e) => {
                moved.error.get_or_insert_with(|| e.to_string());
            }
        }
        report.push(moved);
    }
    let failed = report.iter().any(|m| m.left > 0 || m.error.is_some());
    RedriveReport { queues: report, not_deployed, failed }
}

async fn move_all<Q: Queues>(queues: &Q, route: &Route, moved: &mut usize) -> shared::Result<()> {
    while *moved < MAX_MESSAGES {
        let batch = queues.receive(&route.dlq_url, 10).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            queues.send(&route.queue_url, &message.body).await?;
            queues.delete(&route.dlq_url, &message.receipt_handle).await.map_err(|e| {
                shared::Error::permanent(
                    "DeleteMessage",
                    format!("a message was sent back but is still in the dead-letter queue ({e}); the stage's idempotency absorbs it if sent again"),
                )
            })?;
            *moved += 1;
        }
    }
    Ok(())
}

impl RedriveReport {
    pub fn human(&self) -> String {
        let mut out = String::new();
        for m in &self.queues {
            out.push_str(&format!("{}: {} message(s) moved back to {}", m.stage, m.moved, queue_name(&m.to)));
            if m.left > 0 {
                out.push_str(&format!(", {} still in {}", m.left, queue_name(&m.from)));
            }
            out.push('\n');
            if let Some(e) = &m.error {
                out.push_str(&format!("  error: {e}\n"));
            }
        }
        for stage in &self.not_deployed {
            out.push_str(&format!("{stage}: not deployed ({}): nothing to redrive\n", not_deployed_why(stage)));
        }
        out
    }
}

/// What a replayed file was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replayed {
    /// An onboarding ticket, bare or in its EventBridge envelope.
    Ticket,
    /// In its EventBridge envelope (detail-type `Offboarding Ticket Approved`).
    OffboardingTicket,
    /// In its EventBridge envelope (detail-type `Access Change Approved`).
    AccessChangeTicket,
    UserReady,
    CredentialsReady,
}

impl Replayed {
    /// The queue it goes to: for a ticket, the one its bus rule feeds.
    pub fn stage(self) -> QueueStage {
        match self {
            Replayed::Ticket => QueueStage::CreateUser,
            Replayed::OffboardingTicket => QueueStage::OffboardUser,
            Replayed::AccessChangeTicket => QueueStage::ChangeAccess,
            Replayed::UserReady => QueueStage::IssueCredentials,
            Replayed::CredentialsReady => QueueStage::NotifyUser,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub kind: Replayed,
    /// The ticket's id, or the user a stage message is about.
    pub about: String,
    pub stage: &'static str,
    pub queue: String,
}

impl ReplayReport {
    pub fn human(&self) -> String {
        let what = match self.kind {
            Replayed::Ticket => format!("ticket {}", self.about),
            Replayed::OffboardingTicket => format!("offboarding ticket {}", self.about),
            Replayed::AccessChangeTicket => format!("access change ticket {}", self.about),
            Replayed::UserReady => format!("UserReady for {}", self.about),
            Replayed::CredentialsReady => format!("CredentialsReady for {}", self.about),
        };
        let note = match self.kind {
            Replayed::Ticket | Replayed::OffboardingTicket | Replayed::AccessChangeTicket => "",
            // SECURITY.md: a stage message is acted on only if it matches the records.
            _ => " (acted on only if it matches the pipeline's records)",
        };
        format!("{what} put on {} ({}){note}\n", self.stage, queue_name(&self.queue))
    }
}

/// Reads a file's contents as what it is, by shape, with the stages' own
/// types: a ticket of any kind (`plan::read_ticket`: the kind by the
/// envelope's detail-type, a bare body an onboarding ticket), a `UserReady`
/// or a `CredentialsReady`. `Err`: why it is none of these.
pub fn classify(body: &str) -> Result<(Replayed, String, serde_json::Value), String> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| format!("not JSON ({})", shared::text::redact_serde_message(&e.to_string())))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    if value.get("Records").is_some() {
        return Err("an SQS event (as in events/*.json): replay the body of one of its records instead".into());
    }
    // A stage message as the stage reads it (this version, or the previous
    // release's flat one); one written without its version is this one's.
    let versioned = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.entry("version").or_insert(shared::handoff::VERSION.into());
        }
        v
    };
    if value.get("purpose").is_some() {
        let value = versioned(&value);
        let ready = shared::handoff::read::<UserReady>(&value.to_string())
            .map_err(|e| format!("has a \"purpose\" but is not a UserReady message ({e})"))?;
        return Ok((Replayed::UserReady, ready.message.user_name().to_string(), value));
    }
    if value.get("ready").is_some() || value.get("secret").is_some() {
        let value = versioned(&value);
        let ready = shared::handoff::read::<CredentialsReady>(&value.to_string())
            .map_err(|e| format!("looks like a CredentialsReady message but is not one ({e})"))?;
        return Ok((Replayed::CredentialsReady, ready.message.ready.user_name().to_string(), value));
    }
    if value.get("user_name").is_some() && value.get("ticket_id").is_some() {
        // The previous release's flat shape: a CredentialsReady has the secret.
        if value.get("secret_arn").is_some() {
            let ready = shared::handoff::read::<CredentialsReady>(body).map_err(|e| e.to_string())?;
            return Ok((Replayed::CredentialsReady, ready.message.ready.user_name().to_string(), value));
        }
        let ready = shared::handoff::read::<UserReady>(body).map_err(|e| e.to_string())?;
        return Ok((Replayed::UserReady, ready.message.user_name().to_string(), value));
    }
    match read_ticket(&value) {
        Ok(ticket) => {
            let kind = match &ticket {
                AnyTicket::Onboarding(_) => Replayed::Ticket,
                AnyTicket::Offboarding(_) => Replayed::OffboardingTicket,
                AnyTicket::AccessChange(_) => Replayed::AccessChangeTicket,
            };
            Ok((kind, ticket.ticket_id().to_owned(), value))
        }
        Err(NotRead::OtherEvent(why)) => Err(why),
        Err(NotRead::Refused { kind: shared::managed::TicketKind::Onboarding, refusal, hint }) => Err(format!(
            "neither an onboarding ticket (bare or in its EventBridge envelope), a UserReady nor a CredentialsReady \
             message: {refusal}{}",
            hint.map(|h| format!(" ({h})")).unwrap_or_default()
        )),
        Err(refused) => Err(refused.to_string()),
    }
}

/// Puts `body` on the queue its shape belongs to, unchanged but for
/// whitespace.
pub async fn replay<Q: Queues>(queues: &Q, routes: &[Route], body: &str) -> Result<ReplayReport, ReplayError> {
    let (kind, about, value) = classify(body).map_err(ReplayError::NotReplayable)?;
    let route = routes.iter().find(|r| r.stage == kind.stage()).ok_or(ReplayError::NotDeployed(kind.stage()))?;
    queues.send(&route.queue_url, &value.to_string()).await.map_err(ReplayError::Aws)?;
    Ok(ReplayReport { kind, about, stage: route.stage.as_str(), queue: route.queue_url.clone() })
}

#[derive(Debug)]
pub enum ReplayError {
    NotReplayable(String),
    /// Its stage's variables are unset: this deployment has no such stage.
    NotDeployed(QueueStage),
    Aws(shared::Error),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::NotReplayable(why) => write!(f, "not replayed: {why}"),
            ReplayError::NotDeployed(stage) => write!(
                f,
                "not replayed: {} is not deployed here ({}), so nothing would take it off its queue",
                stage.as_str(),
                not_deployed_why(stage.as_str())
            ),
            ReplayError::Aws(e) => write!(f, "{e}"),
        }
    }
}

fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::memory::MemoryQueues;

    fn routes() -> Vec<Route> {
        QueueStage::ALL
            .into_iter()
            .map(|stage| Route {
                stage,
                queue_url: format!("q/{}", stage.as_str()),
                dlq_url: format!("q/{}-dlq", stage.as_str()),
            })
            .collect()
    }

    #[tokio::test]
    async fn redrive_moves_every_message_back_and_counts_them() {
        let q = MemoryQueues::default();
        let routes = routes();
        for body in ["a", "b", "c"] {
            q.send("q/notify-user-dlq", body).await.unwrap();
        }
        q.send("q/create-user-dlq", "t").await.unwrap();
        q.send("q/offboard-user-dlq", "o").await.unwrap();
        let report = redrive(&q, &routes, &QueueStage::ALL).await;
        assert!(!report.failed, "{report:?}");
        let counts: Vec<(&str, usize, usize)> = report.queues.iter().map(|m| (m.stage, m.moved, m.left)).collect();
        assert_eq!(
            counts,
            [
                ("create-user", 1, 0),
                ("issue-credentials", 0, 0),
                ("notify-user", 3, 0),
                ("offboard-user", 1, 0),
                ("change-access", 0, 0)
            ]
        );
        assert_eq!(q.bodies("q/offboard-user"), ["o"]);
        assert_eq!(q.bodies("q/notify-user"), ["a", "b", "c"]);
        assert!(q.bodies("q/notify-user-dlq").is_empty());
        assert!(report.human().contains("notify-user: 3 message(s) moved back to notify-user\n"), "{}", report.human());
    }

    /// As SQS redrive: a message is deleted from the dead-letter queue only
    /// after its send succeeded; one that could not be sent stays, and the
    /// report says so (a failure: exit 1).
    #[tokio::test]
    async fn a_message_that_could_not_be_sent_stays_in_the_dead_letter_queue() {
        let q = MemoryQueues::default();
        let routes = routes();
        q.send("q/issue-credentials-dlq", "x").await.unwrap();
        q.send("q/issue-credentials-dlq", "y").await.unwrap();
        q.fail_next("send", shared::Error::retryable("SendMessage", "throttled"));
        let only = [QueueStage::IssueCredentials];
        let report = redrive(&q, &routes, &only).await;
        assert!(report.failed);
        let m = &report.queues[0];
        assert_eq!((m.moved, m.left), (0, 2));
        assert!(m.error.as_deref().is_some_and(|e| e.contains("throttled")), "{m:?}");
        assert!(q.bodies("q/issue-credentials").is_empty());
        // Its visibility timeout ends; the next redrive moves both.
        q.expire_visibility();
        let report = redrive(&q, &routes, &only).await;
        assert!(!report.failed);
        assert_eq!(q.bodies("q/issue-credentials"), ["x", "y"]);
    }

    /// A deployment from before offboard-user and change-access: the three
    /// stages it has are redriven and counted, the others reported as not
    /// deployed, and that is no failure.
    #[tokio::test]
    async fn a_stage_not_deployed_is_reported_as_such_and_is_no_failure() {
        let q = MemoryQueues::default();
        let older: Vec<Route> = routes().into_iter().filter(|r| r.stage.always_deployed()).collect();
        q.send("q/create-user-dlq", "t").await.unwrap();
        let report = redrive(&q, &older, &QueueStage::ALL).await;
        assert!(!report.failed, "{report:?}");
        assert_eq!(report.queues.len(), 3);
        assert_eq!(report.not_deployed, ["offboard-user", "change-access"]);
        let text = report.human();
        assert!(
            text.contains("offboard-user: not deployed (OFFBOARD_USER_QUEUE_URL and OFFBOARD_USER_DLQ_URL unset): nothing to redrive\n"),
            "{text}"
        );
        let report = redrive(&q, &older, &[QueueStage::ChangeAccess]).await;
        assert!(!report.failed && report.queues.is_empty() && report.not_deployed == ["change-access"]);

        let overview = overview(&q, &older).await;
        assert!(!overview.failed, "{overview:?}");
        let deployed: Vec<(&str, bool)> = overview.stages.iter().map(|s| (s.stage, s.deployed)).collect();
        assert_eq!(
            deployed,
            [
                ("create-user", true),
                ("issue-credentials", true),
                ("notify-user", true),
                ("offboard-user", false),
                ("change-access", false)
            ]
        );
        assert!(overview
            .human()
            .contains("change-access: not deployed (CHANGE_ACCESS_QUEUE_URL and CHANGE_ACCESS_DLQ_URL unset)\n"));
        let v = serde_json::to_value(&overview).unwrap();
        assert_eq!(
            v["stages"][4],
            serde_json::json!({"stage": "change-access", "deployed": false, "queue": null,
            "waiting": null, "dead_letter_queue": null, "dead_lettered": null, "error": null})
        );
    }

    /// Each stage's depth and dead-letter count; any dead letter is a failure.
    #[tokio::test]
    async fn the_overview_counts_every_stages_queue_and_dead_letters() {
        let q = MemoryQueues::default();
        let routes = routes();
        q.send("q/create-user", "waiting").await.unwrap();
        q.send("q/offboard-user", "a").await.unwrap();
        q.send("q/offboard-user", "b").await.unwrap();
        q.send("q/change-access-dlq", "dead").await.unwrap();
        let report = overview(&q, &routes).await;
        assert!(report.failed);
        let counts: Vec<(&str, Option<usize>, Option<usize>)> =
            report.stages.iter().map(|s| (s.stage, s.waiting, s.dead_lettered)).collect();
        assert_eq!(
            counts,
            [
                ("create-user", Some(1), Some(0)),
                ("issue-credentials", Some(0), Some(0)),
                ("notify-user", Some(0), Some(0)),
                ("offboard-user", Some(2), Some(0)),
                ("change-access", Some(0), Some(1))
            ]
        );
        let text = report.human();
        assert!(text.contains("offboard-user: 2 waiting, 0 dead-lettered\n"), "{text}");
        assert!(text.contains("change-access: 0 waiting, 1 dead-lettered (in change-access-dlq)\n"), "{text}");
        assert!(text.contains("1 message(s) dead-lettered"), "{text}");
    }

    fn envelope(detail_type: &str, detail: serde_json::Value) -> String {
        serde_json::json!({"source": "onboarding.tickets", "detail-type": detail_type, "detail": detail}).to_string()
    }

    /// As the bus rules route them: by the envelope's detail-type.
    #[tokio::test]
    async fn replay_routes_a_ticket_by_its_kind_and_refuses_another_detail_type() {
        let q = MemoryQueues::default();
        let routes = routes();
        let off = envelope(
            "Offboarding Ticket Approved",
            serde_json::json!({"ticket_id": "OFF-311", "requested_by": "it-ops@example.com",
                "users": [{"user_name": "emily.chen", "action": "disable"}]}),
        );
        let r = replay(&q, &routes, &off).await.unwrap();
        assert_eq!((r.kind, r.about.as_str(), r.stage), (Replayed::OffboardingTicket, "OFF-311", "offboard-user"));
        assert_eq!(r.human(), "offboarding ticket OFF-311 put on offboard-user (offboard-user)\n");
        let change = envelope(
            "Access Change Approved",
            serde_json::json!({"ticket_id": "CHG-77", "requested_by": "it-ops@example.com",
                "users": [{"user_name": "emily.chen", "add_groups": ["ReadOnly"], "remove_groups": ["Power_Users"]}]}),
        );
        let r = replay(&q, &routes, &change).await.unwrap();
        assert_eq!((r.kind, r.about.as_str(), r.stage), (Replayed::AccessChangeTicket, "CHG-77", "change-access"));
        let ticket =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/onboarding-ticket.json")).unwrap();
        assert_eq!(replay(&q, &routes, &ticket).await.unwrap().stage, "create-user");
        // Each on its own queue, as sent (the stage reads the envelope).
        let sent = |queue: &str| -> Vec<serde_json::Value> {
            q.bodies(queue).iter().map(|b| serde_json::from_str(b).unwrap()).collect()
        };
        assert_eq!(sent("q/offboard-user"), [serde_json::from_str::<serde_json::Value>(&off).unwrap()]);
        assert_eq!(sent("q/change-access"), [serde_json::from_str::<serde_json::Value>(&change).unwrap()]);
        assert_eq!(sent("q/create-user").len(), 1);

        for (body, says) in [
            (envelope("Something Else", serde_json::json!({"ticket_id": "X-1"})), "detail-type \"Something Else\", which no rule of the pipeline's bus routes"),
            (envelope("Offboarding Ticket Approved", serde_json::json!({"ticket_id": "OFF-1", "users": []})), "not a readable offboarding ticket"),
            (
                serde_json::json!({"ticket_id": "OFF-1", "requested_by": "a@example.com", "users": [{"user_name": "x", "action": "delete"}]}).to_string(),
                "detail-type \"Offboarding Ticket Approved\"",
            ),
        ] {
            let err = replay(&q, &routes, &body).await.unwrap_err();
            assert!(matches!(err, ReplayError::NotReplayable(_)), "{err}");
            assert!(err.to_string().contains(says), "{body}: {err}");
        }
        let mut other_source: serde_json::Value = serde_json::from_str(&off).unwrap();
        other_source["source"] = "someone.else".into();
        assert!(replay(&q, &routes, &other_source.to_string()).await.unwrap_err().to_string().contains("someone.else"));

        // A deployment without change-access: nothing sent, and said why.
        let older: Vec<Route> = routes.iter().filter(|r| r.stage != QueueStage::ChangeAccess).cloned().collect();
        let err = replay(&q, &older, &change).await.unwrap_err();
        assert!(matches!(err, ReplayError::NotDeployed(QueueStage::ChangeAccess)), "{err}");
        assert!(err.to_string().contains("change-access is not deployed here (CHANGE_ACCESS_QUEUE_URL"), "{err}");
        assert_eq!(q.bodies("q/change-access").len(), 1);
        assert_eq!(q.bodies("q/offboard-user").len(), 1);
    }

    #[tokio::test]
    async fn replay_sends_each_shape_to_its_queue_and_refuses_anything_else() {
        let q = MemoryQueues::default();
        let routes = routes();
        let ticket =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/onboarding-ticket.json")).unwrap();
        let r = replay(&q, &routes, &ticket).await.unwrap();
        assert_eq!((r.kind, r.about.as_str(), r.stage), (Replayed::Ticket, "ONB-1042", "create-user"));
        let bare = serde_json::from_str::<serde_json::Value>(&ticket).unwrap()["detail"].to_string();
        assert_eq!(replay(&q, &routes, &bare).await.unwrap().stage, "create-user");
        assert_eq!(q.bodies("q/create-user").len(), 2);

        let ready = shared::memory::accepted(serde_json::from_str::<serde_json::Value>(&bare).unwrap());
        let user_ready = serde_json::to_string(&UserReady::Onboarding(ready[0].clone())).unwrap();
        let r = replay(&q, &routes, &user_ready).await.unwrap();
        assert_eq!((r.kind, r.about.as_str(), r.stage), (Replayed::UserReady, "emily.chen", "issue-credentials"));
        let creds = CredentialsReady::stored(&UserReady::Onboarding(ready[1].clone()), "arn:x", "n");
        let r = replay(&q, &routes, &serde_json::to_string(&creds).unwrap()).await.unwrap();
        assert_eq!((r.kind, r.stage), (Replayed::CredentialsReady, "notify-user"));
        assert_eq!(q.bodies("q/notify-user").len(), 1);
        // What goes on the queue is what the stage reads: with its version.
        for body in q.bodies("q/issue-credentials").iter().chain(&q.bodies("q/notify-user")) {
            let sent: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(sent["version"], shared::handoff::VERSION, "{body}");
        }
        assert!(shared::handoff::read::<UserReady>(&q.bodies("q/issue-credentials")[0]).is_ok());

        for (body, says) in [
            ("{\"hello\": 1}", "neither an onboarding ticket"),
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            ("{\"purpose\": \"offboarding\"}", "not a UserReady"),
            ("{\"Records\": []}", "an SQS event"),
        ] {
            let err = replay(&q, &routes, body).await.unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
        assert_eq!(q.bodies("q/create-user").len(), 2, "nothing sent for a refused file");
    }
}
