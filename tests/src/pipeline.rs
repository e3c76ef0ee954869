//! Runs the pipeline locally the way AWS runs it: tickets go onto the
//! EventBridge bus, the rule puts them on the create-user queue, and each
//! stage's handler gets SQS batches as its Lambda would (messages deleted on
//! success, returned to the queue on a reported batch item failure, moved
//! to the dead-letter queue after too many receives).

use crate::bootstrap::{BoxError, Environment};
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::aws::{
    DynamoIdempotency, DynamoLedger, DynamoStatus, IamDirectory, SecretsManagerStore, SesMailer, SqsPublisher,
    StateTable,
};
use shared::handoff::UserReady;
use shared::ports::{Clock, Email, Mailer, SystemClock};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

/// The mailer the handlers get locally: SES, plus a note of each email's
/// recipient and subject (never its body) for the run's summary.
pub struct NotedMailer {
    inner: SesMailer,
    pub sent: Mutex<Vec<(String, String)>>,
}

impl Mailer for NotedMailer {
    async fn send(&self, from: &str, email: &Email) -> shared::Result<String> {
        let id = self.inner.send(from, email).await?;
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).push((email.to.clone(), email.subject.clone()));
        Ok(id)
    }
}

/// The system clock moved by an offset every stage shares: tests age keys
/// and jump days ahead with it instead of sleeping.
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn set_offset_days(&self, days: i64) {
        self.0.store(days * 86_400, Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> u64 {
        SystemClock.now().saturating_add_signed(self.0.load(Ordering::SeqCst))
    }
}

pub type CreateUser =
    create_user::Deps<IamDirectory, DynamoIdempotency, DynamoStatus, SqsPublisher, NotedMailer, TestClock>;
pub type IssueCredentials = issue_credentials::Deps<
    IamDirectory,
    SecretsManagerStore,
    DynamoIdempotency,
    DynamoStatus,
    SqsPublisher,
    NotedMailer,
    DynamoLedger,
    TestClock,
>;
pub type NotifyUser = notify_user::Deps<
    IamDirectory,
    SecretsManagerStore,
    DynamoIdempotency,
    DynamoStatus,
    NotedMailer,
    DynamoLedger,
    TestClock,
>;

/// The access key id each stage signs its requests with locally, so a
/// request log (the fault proxy's) tells which role made each call, as
/// CloudTrail would. moto accepts any key.
pub const STAGE_KEYS: [(&str, &str); 6] = [
    ("create-user", "AKIACREATEUSERSTAGE0"),
    ("issue-credentials", "AKIAISSUECREDSSTAGE0"),
    ("notify-user", "AKIANOTIFYUSERSTAGE0"),
    ("rotate-keys", "AKIAROTATEKEYSSTAGE0"),
    ("offboard-user", "AKIAOFFBOARDUSERSTG0"),
    ("change-access", "AKIACHANGEACCESSSTG0"),
];

/// `sdk` signing as `stage`.
fn as_stage(sdk: &SdkConfig, stage: &str) -> SdkConfig {
    let key = STAGE_KEYS.iter().find(|(s, _)| *s == stage).map_or("AKIAUNKNOWNSTAGE0000", |(_, k)| k);
    let credentials = aws_sdk_iam::config::Credentials::new(key, "local-secret", None, None, "stage");
    sdk.to_builder().credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(credentials)).build()
}
pub type OffboardUser =
    offboard_user::Deps<IamDirectory, SecretsManagerStore, DynamoIdempotency, DynamoStatus, NotedMailer, TestClock>;
pub type RotateKeys =
    rotate_keys::Deps<IamDirectory, DynamoIdempotency, SqsPublisher, NotedMailer, DynamoLedger, TestClock>;

pub struct LocalPipeline {
    pub env: Environment,
    pub create_user: CreateUser,
    pub issue_credentials: IssueCredentials,
    pub notify_user: NotifyUser,
    pub rotate_keys: RotateKeys,
    pub offboard_user: OffboardUser,
    pub clock: TestClock,
    /// How many stages `drain` runs, in order (1: create-user only, leaving
    /// its hand-offs on the queue; 3: all).
    pub stages: usize,
    /// (queue URL, body) of every message a stage was given, in order.
    pub delivered: Mutex<Vec<(String, String)>>,
    /// When notified, the running stage is dropped mid-flight (a killed
    /// process): nothing after that point runs, not even its cleanup.
    pub kill_switch: Option<Arc<tokio::sync::Notify>>,
    /// Delivery chaos, as SQS may deliver: each received message is also
    /// sent again with this probability (out of 1000), and each batch is
    /// handed over in shuffled order. Seeded, so a run is repeatable.
    pub duplicate_per_mille: u32,
    pub chaos_seed: Mutex<u64>,
    /// (queue URL, handler time, records) of every batch handled.
    pub timings: Mutex<Vec<(String, std::time::Duration, usize)>>,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
}

/// What draining the queues did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    pub handled: usize,
    pub retried: usize,
    /// Messages left in dead-letter queues: a stage could not finish them.
    pub dead_lettered: usize,
    /// Stage invocations killed mid-flight.
    pub killed: usize,
    /// Extra copies of messages sent by the delivery chaos.
    pub duplicated: usize,
    /// Messages left waiting, by queue (stages not run).
    pub waiting: Vec<(String, usize)>,
}

/// How long a handler may take a message for (its deadline, as a Lambda
/// timeout would set it).
const LEASE_SECS: u64 = 30;
/// When a failed message comes back: the template's 6x the function timeout.
const VISIBILITY_SECS: i64 = 6 * LEASE_SECS as i64;

impl LocalPipeline {
    pub fn new(sdk: &SdkConfig, env: Environment) -> Self {
        let mailer = |sdk: &SdkConfig| NotedMailer { inner: SesMailer::new(sdk), sent: Mutex::default() };
        let clock = TestClock::default();
        // The driver's own clients (the bus, the event source mapping) keep
        // `sdk`'s credentials: they are AWS's calls, not a stage's.
        let driver = sdk;
        let sdk_of = |stage: &str| as_stage(driver, stage);
        let sdk = &sdk_of("create-user");
        let table = StateTable::new(sdk, &env.table);
        let config = env.create_user_config();
        let create_user = create_user::Deps {
            directory: IamDirectory::new(sdk),
            idempotency: table.idempotency(),
            status: table.status(),
            publisher: SqsPublisher::new(sdk, &config.next_queue_url),
            mailer: mailer(sdk),
            clock: clock.clone(),
            config,
        };
        let sdk = &sdk_of("issue-credentials");
        let table = StateTable::new(sdk, &env.table);
        let config = env.issue_credentials_config();
        let issue_credentials = issue_credentials::Deps {
            directory: IamDirectory::new(sdk),
            secrets: SecretsManagerStore::new(sdk),
            ledger: table.ledger(),
            idempotency: table.idempotency(),
            status: table.status(),
            publisher: SqsPublisher::new(sdk, &config.next_queue_url),
            mailer: mailer(sdk),
            clock: clock.clone(),
            config,
        };
        let sdk = &sdk_of("notify-user");
        let table = StateTable::new(sdk, &env.table);
        let config = env.notify_user_config();
        let notify_user = notify_user::Deps {
            directory: IamDirectory::new(sdk),
            secrets: SecretsManagerStore::new(sdk),
            ledger: table.ledger(),
            idempotency: table.idempotency(),
            status: table.status(),
            mailer: mailer(sdk),
            clock: clock.clone(),
            config,
        };
        let sdk = &sdk_of("rotate-keys");
        let table = StateTable::new(sdk, &env.table);
        let config = env.rotate_keys_config();
        let rotate_keys = rotate_keys::Deps {
            directory: IamDirectory::new(sdk),
            idempotency: table.idempotency(),
            publisher: SqsPublisher::new(sdk, &config.next_queue_url),
            mailer: mailer(sdk),
            ledger: table.ledger(),
            clock: clock.clone(),
            config,
        };
        let sdk = &sdk_of("offboard-user");
        let table = StateTable::new(sdk, &env.table);
        let offboard_user = offboard_user::Deps {
            iam: IamDirectory::new(sdk),
            secrets: SecretsManagerStore::new(sdk),
            idempotency: table.idempotency(),
            status: table.status(),
            mailer: mailer(sdk),
            clock: clock.clone(),
            config: env.offboard_user_config(),
        };
        Self {
            env,
            create_user,
            issue_credentials,
            notify_user,
            rotate_keys,
            offboard_user,
            clock,
            stages: 3,
            delivered: Mutex::default(),
            kill_switch: None,
            duplicate_per_mille: 0,
            chaos_seed: Mutex::new(0),
            timings: Mutex::default(),
            sqs: aws_sdk_sqs::Client::new(driver),
            events: aws_sdk_eventbridge::Client::new(driver),
        }
    }

    /// (recipient, subject) of every email any stage sent in this process.
    pub fn emails_sent(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for m in [
            &self.create_user.mailer,
            &self.issue_credentials.mailer,
            &self.notify_user.mailer,
            &self.rotate_keys.mailer,
            &self.offboard_user.mailer,
        ] {
            all.extend(m.sent.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        }
        all
    }

    /// Puts a ticket on the bus: an EventBridge event as given, a bare
    /// ticket wrapped in one.
    pub async fn deliver(&self, ticket: &serde_json::Value) -> Result<(), BoxError> {
        let (source, detail_type, detail) = if ticket.get("detail").is_some() {
            (
                ticket["source"].as_str().unwrap_or_default().to_owned(),
                ticket["detail-type"].as_str().unwrap_or_default().to_owned(),
                ticket["detail"].clone(),
            )
        } else {
            (shared::ticket::TICKET_SOURCE.into(), shared::ticket::TICKET_DETAIL_TYPE.into(), ticket.clone())
        };
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.env.bus)
            .source(source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let out = self.events.put_events().entries(entry).send().await?;
        if out.failed_entry_count() > 0 {
            return Err(format!("EventBridge refused the event: {:?}", out.entries()).into());
        }
        Ok(())
    }

    /// Runs every stage until every queue is empty (a later stage's retry
    /// may come after an earlier stage's, as in AWS).
    pub async fn drain(&self) -> Result<Drained, BoxError> {
        let mut drained = Drained::default();
        let lease = || self.clock.now() + LEASE_SECS;
        loop {
            let before = (drained.handled, drained.retried);
            self.drain_queue(&self.env.create_user_queue, &mut drained, |e| self.create_user.handle_sqs(e, lease()))
                .await?;
            if self.stages >= 2 {
                let queue = &self.env.issue_credentials_queue;
                self.drain_queue(queue, &mut drained, |e| self.issue_credentials.handle_sqs(e, lease())).await?;
            }
            if self.stages >= 3 {
                let queue = &self.env.notify_user_queue;
                self.drain_queue(queue, &mut drained, |e| self.notify_user.handle_sqs(e, lease())).await?;
            }
            // The other ticket kinds' stages, each fed by its own rule.
            let queue = &self.env.offboard_user_queue;
            self.drain_queue(queue, &mut drained, |e| self.offboard_user.handle_sqs(e, lease())).await?;
            if (drained.handled, drained.retried) == before {
                break;
            }
        }
        for queue in [&self.env.issue_credentials_queue, &self.env.notify_user_queue] {
            let waiting = self.depth(queue).await?;
            if waiting > 0 {
                drained.waiting.push((queue.clone(), waiting));
            }
        }
        for dlq in &self.env.dead_letter_queues {
            drained.dead_lettered += self.depth(dlq).await?;
        }
        Ok(drained)
    }

    /// A rotation run as the schedule (or a person) starts it, with
    /// Lambda's 15 minutes ahead, then the stages it fanned work out to,
    /// until the queues are quiet.
    pub async fn rotate(
        &self,
        request: &rotate_keys::RotationRequest,
    ) -> Result<(rotate_keys::RunSummary, Drained), BoxError> {
        self.rotate_until(request, self.clock.now() + 900).await
    }

    /// As `rotate`, for an invocation whose deadline (seconds since the
    /// epoch, on the pipeline's clock) is `deadline`.
    pub async fn rotate_until(
        &self,
        request: &rotate_keys::RotationRequest,
        deadline: u64,
    ) -> Result<(rotate_keys::RunSummary, Drained), BoxError> {
        let summary = self.rotate_keys.run(request, deadline).await?;
        let drained = self.drain().await?;
        Ok((summary, drained))
    }

    /// What an operator's redrive does once the fault is fixed: every
    /// message of each stage's dead-letter queue back onto the stage's queue
    /// (a test's redrive: unlike SQS's, it deletes before it sends). Returns
    /// how many moved.
    pub async fn redrive(&self) -> Result<usize, BoxError> {
        let sources = [
            &self.env.create_user_queue,
            &self.env.issue_credentials_queue,
            &self.env.notify_user_queue,
            &self.env.offboard_user_queue,
            &self.env.change_access_queue,
        ];
        let mut moved = 0;
        for (source, dlq) in sources.into_iter().zip(&self.env.dead_letter_queues) {
            for body in self.take_bodies(dlq).await? {
                self.sqs.send_message().queue_url(source).message_body(body).send().await?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Puts bodies a stage was given back on its queue: a redelivery.
    pub async fn redeliver(&self, queue: &str, body: &str) -> Result<(), BoxError> {
        self.sqs.send_message().queue_url(queue).message_body(body).send().await?;
        Ok(())
    }

    async fn drain_queue<F, Fut>(&self, queue: &str, drained: &mut Drained, handler: F) -> Result<(), BoxError>
    where
        F: Fn(SqsEvent) -> Fut,
        Fut: std::future::Future<Output = SqsBatchResponse>,
    {
        // Bounded: a message that keeps failing reaches its DLQ well before.
        for _round in 0..(10 * crate::bootstrap::MAX_RECEIVE_COUNT as usize + 100) {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .visibility_timeout(LEASE_SECS as i32)
                .wait_time_seconds(0)
                .send()
                .await?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(());
            }
            let mut event = SqsEvent::default();
            event.records = messages.iter().map(to_record).collect();
            if self.duplicate_per_mille > 0 {
                let copies: Vec<&str> = {
                    let mut seed = self.chaos_seed.lock().unwrap_or_else(|p| p.into_inner());
                    for i in (1..event.records.len()).rev() {
                        let j = (splitmix(&mut seed) % (i as u64 + 1)) as usize;
                        event.records.swap(i, j);
                    }
                    let per_mille = u64::from(self.duplicate_per_mille);
                    messages
                        .iter()
                        .filter(|_| splitmix(&mut seed) % 1000 < per_mille)
                        .map(|m| m.body().unwrap_or_default())
                        .collect()
                };
                for body in copies {
                    self.sqs.send_message().queue_url(queue).message_body(body).send().await?;
                    drained.duplicated += 1;
                }
            }
            self.delivered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(messages.iter().map(|m| (queue.to_owned(), m.body().unwrap_or_default().to_owned())));
            let ids: Vec<String> = messages.iter().map(|m| m.message_id().unwrap_or_default().to_owned()).collect();
            let retried_before = drained.retried;
            let records = ids.len();
            let started = std::time::Instant::now();
            let response = match &self.kill_switch {
                None => handler(event).await,
                Some(kill) => tokio::select! {
                    response = handler(event) => response,
                    () = kill.notified() => {
                        drained.killed += 1;
                        killed_batch(&ids)
                    }
                },
            };
            self.timings.lock().unwrap_or_else(|p| p.into_inner()).push((queue.to_owned(), started.elapsed(), records));
            // As the event source mapping does: the settled records are
            // deleted in one batch call.
            let mut settled = Vec::new();
            for m in &messages {
                let id = m.message_id().unwrap_or_default();
                let handle = m.receipt_handle().unwrap_or_default();
                if response.batch_item_failures.iter().any(|f| f.item_identifier == id) {
                    drained.retried += 1;
                    // The message is visible again at once, but the clock
                    // is moved past the visibility timeout below, as in
                    // AWS, where the failed invocation's leases have run
                    // out by the time its message comes back.
                    self.sqs
                        .change_message_visibility()
                        .queue_url(queue)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await?;
                } else {
                    drained.handled += 1;
                    let entry = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(settled.len().to_string())
                        .receipt_handle(handle)
                        .build()?;
                    settled.push(entry);
                }
            }
            if !settled.is_empty() {
                let out = self.sqs.delete_message_batch().queue_url(queue).set_entries(Some(settled)).send().await?;
                if !out.failed().is_empty() {
                    return Err(format!("DeleteMessageBatch failed for {:?}", out.failed()).into());
                }
            }
            if drained.retried > retried_before {
                self.clock.advance_secs(VISIBILITY_SECS);
            }
        }
        Err(format!("{queue} did not drain").into())
    }

    pub async fn depth(&self, queue: &str) -> Result<usize, BoxError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let n = |k: &A| attrs.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        Ok(n(&A::ApproximateNumberOfMessages) + n(&A::ApproximateNumberOfMessagesNotVisible))
    }

    /// Takes every message off the issue-credentials queue (for tests, until
    /// that stage exists).
    pub async fn take_handoffs(&self) -> Result<Vec<UserReady>, BoxError> {
        let bodies = self.take_bodies(&self.env.issue_credentials_queue).await?;
        Ok(bodies.iter().map(|b| serde_json::from_str(b)).collect::<Result<_, _>>()?)
    }

    /// Takes every message off `queue`: their bodies, as sent.
    pub async fn take_bodies(&self, queue: &str) -> Result<Vec<String>, BoxError> {
        self.take_all(queue, |b| Some(b.to_owned())).await
    }

    /// Takes every message off `queue` (received, then deleted), mapped by `f`.
    async fn take_all<T>(&self, queue: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, BoxError> {
        let mut out = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(out);
            }
            for m in messages {
                out.extend(f(m.body().unwrap_or_default()));
                let handle = m.receipt_handle().unwrap_or_default();
                self.sqs.delete_message().queue_url(queue).receipt_handle(handle).send().await?;
            }
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a killed invocation amounts to: no record settled.
fn killed_batch(ids: &[String]) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in ids {
        let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
        failure.item_identifier = id.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

/// An SQS record as the Lambda event source mapping would deliver it.
fn to_record(m: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = m.message_id.clone();
    r.receipt_handle = m.receipt_handle.clone();
    r.body = m.body.clone();
    r.md5_of_body = m.md5_of_body.clone();
    r.event_source = Some("aws:sqs".into());
    r.aws_region = Some(crate::REGION.into());
    r
}
