//! One table, keyed `pk`/`sk` (strings):
//! - idempotency: `pk = IDEMPOTENCY#<key>`, `sk = -`;
//! - status: `pk = TICKET#<ticket id>`, `sk = USER#<user name>`, so a
//!   ticket's records are one Query;
//! - hand-off: `pk = TICKET#<ticket id>`, `sk = HANDOFF#<user name>`, what
//!   create-user accepted for the user (the later stages' source of truth);
//! - key ledger: `pk = KEYS#<user name>`, `sk = KEY#<access key id>`;
//! - secret versions: `pk = SECRETS#<user name>`, `sk = -`, a string set;
//! - untrusted messages: `pk = UNTRUSTED#<stage>`, `sk = <message id>`;
//! - departures: `pk = DEPARTED#<user name, lower case>`, `sk = -`, a user
//!   the pipeline deleted, while its secret can still be recovered;
//! - rotation run cursors: `pk = ROTATION#<UTC date>`, `sk = -`, the cursor
//!   as JSON (`cursor`).
//!
//! `expires_at` (epoch seconds) is the table's TTL attribute.

use super::{classify, code};
use crate::error::{Error, Result};
use crate::handoff::Onboarding;
use crate::ports::{
    Claim, Departure, Departures, IdempotencyStore, KeyLedger, KeyRecord, RotationCursor, RotationRuns, Stage,
    StatusRecord, StatusStore, UntrustedLog, UntrustedMessage,
};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}
fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<u64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// `item` (a key, or a whole item) in `scope`: its `pk` under the scope's
/// prefix, which names the account.
fn scoped(scope: &str, mut item: HashMap<String, AttributeValue>) -> HashMap<String, AttributeValue> {
    if scope.is_empty() {
        return item;
    }
    if let Some(AttributeValue::S(pk)) = item.get("pk") {
        let pk = format!("{scope}{pk}");
        item.insert("pk".into(), s(pk));
    }
    item
}

/// The table every record lives in, and the one client for it: the three
/// stores below share its connection pool rather than each building a
/// client (and its runtime plugins) at cold start.
#[derive(Debug, Clone)]
pub struct StateTable {
    client: Client,
    table: String,
    scope: String,
}

impl StateTable {
    /// The records of the pipeline's own account.
    pub fn new(config: &super::SdkConfig, table: impl Into<String>) -> Self {
        Self { client: Client::new(config), table: table.into(), scope: String::new() }
    }

    /// The records of `account`: the pipeline's own keep their keys as they
    /// are; another account's are the same keys under `ACCOUNT#<id>#`.
    /// Serving member accounts therefore adds records beside the existing
    /// ones and migrates none.
    pub fn for_account(&self, account: &crate::names::Account) -> Self {
        let scope = match account {
            crate::names::Account::Own => String::new(),
            crate::names::Account::Member(id) => format!("ACCOUNT#{id}#"),
        };
        Self { scope, ..self.clone() }
    }

    pub fn idempotency(&self) -> DynamoIdempotency {
        DynamoIdempotency { client: self.client.clone(), table: self.table.clone(), scope: self.scope.clone() }
    }

    pub fn status(&self) -> DynamoStatus {
        DynamoStatus { client: self.client.clone(), table: self.table.clone(), scope: self.scope.clone() }
    }

    pub fn ledger(&self) -> DynamoLedger {
        DynamoLedger { client: self.client.clone(), table: self.table.clone(), scope: self.scope.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoIdempotency {
    client: Client,
    table: String,
    /// `""` for the pipeline's own account; `ACCOUNT#<id>#` for another's.
    scope: String,
}

impl DynamoIdempotency {
    fn key(&self, key: &str) -> HashMap<String, AttributeValue> {
        scoped(&self.scope, HashMap::from([("pk".into(), s(format!("IDEMPOTENCY#{key}"))), ("sk".into(), s("-"))]))
    }
}

impl IdempotencyStore for DynamoIdempotency {
    async fn claim(&self, key: &str, hash: &str, now: u64, lease_until: u64, expires_at: u64) -> Result<Claim> {
        let mut item = self.key(key);
        item.insert("status".into(), s(IN_PROGRESS));
        item.insert("payload_hash".into(), s(hash));
        item.insert("lease_until".into(), n(lease_until));
        item.insert("expires_at".into(), n(expires_at));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Free, expired, or a lease whose holder is gone.
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#s = :in_progress AND lease_until < :now)",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::Acquired),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {}
            Err(e) => return Err(classify("PutItem", e)),
        }
        let held = get_item(&self.client, &self.table, self.key(key)).await?;
        // Released between our two calls: someone is working on it or just
        // failed; either way a retry sorts it out.
        let Some(item) = held.as_ref() else {
            return Ok(Claim::InProgress);
        };
        if get_s(item, "payload_hash") != Some(hash) {
            return Ok(Claim::Mismatch);
        }
        match get_s(item, "status") {
            Some(COMPLETED) => {
                let result =
                    get_s(item, "result").and_then(|r| serde_json::from_str(r).ok()).unwrap_or(serde_json::Value::Null);
                Ok(Claim::Completed(result))
            }
            _ => Ok(Claim::InProgress),
        }
    }

    async fn complete(&self, key: &str, hash: &str, result: &serde_json::Value, expires_at: u64) -> Result<()> {
        let mut item = self.key(key);
        item.insert("status".into(), s(COMPLETED));
        item.insert("payload_hash".into(), s(hash));
        item.insert("result".into(), s(result.to_string()));
        item.insert("expires_at".into(), n(expires_at));
        put_item(&self.client, &self.table, item).await
    }

    async fn release(&self, key: &str) -> Result<()> {
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .condition_expression("#s = :in_progress")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify("DeleteItem", e)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoStatus {
    client: Client,
    table: String,
    /// `""` for the pipeline's own account; `ACCOUNT#<id>#` for another's.
    scope: String,
}

/// How long an untrusted message's record is kept (its TTL).
const UNTRUSTED_KEPT_SECS: u64 = 90 * 24 * 60 * 60;

/// Writes an item whole, unconditionally.
async fn put_item(client: &Client, table: &str, item: HashMap<String, AttributeValue>) -> Result<()> {
    client.put_item().table_name(table).set_item(Some(item)).send().await.map(drop).map_err(|e| classify("PutItem", e))
}

/// One item, strongly consistent; `None` when there is none.
async fn get_item(
    client: &Client,
    table: &str,
    key: HashMap<String, AttributeValue>,
) -> Result<Option<HashMap<String, AttributeValue>>> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify("GetItem", e))?;
    Ok(out.item)
}

/// Every item of one partition (all pages), strongly consistent.
async fn partition(client: &Client, table: &str, pk: String) -> Result<Vec<HashMap<String, AttributeValue>>> {
    client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(pk))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify("Query", e))
}

fn handoff_key(scope: &str, ticket_id: &str, user_name: &str) -> HashMap<String, AttributeValue> {
    scoped(
        scope,
        HashMap::from([
            ("pk".to_owned(), s(format!("TICKET#{ticket_id}"))),
            ("sk".to_owned(), s(format!("HANDOFF#{user_name}"))),
        ]),
    )
}

fn departure_key(scope: &str, user_name: &str) -> HashMap<String, AttributeValue> {
    scoped(
        scope,
        HashMap::from([
            ("pk".to_owned(), s(format!("DEPARTED#{}", user_name.to_ascii_lowercase()))),
            ("sk".to_owned(), s("-")),
        ]),
    )
}

impl Departures for DynamoStatus {
    async fn record_departure(&self, d: &Departure) -> Result<()> {
        let mut item = departure_key(&self.scope, &d.user_name);
        item.insert("user_name".into(), s(&d.user_name));
        item.insert("ticket_id".into(), s(&d.ticket_id));
        item.insert("until".into(), n(d.until));
        item.insert("expires_at".into(), n(d.until));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("PutItem", e))
    }

    async fn departure(&self, user_name: &str, now: u64) -> Result<Option<Departure>> {
        let found = get_item(&self.client, &self.table, departure_key(&self.scope, user_name)).await?;
        // TTL deletes lazily: an expired item may still be read.
        Ok(found
            .map(|item| Departure {
                user_name: get_s(&item, "user_name").unwrap_or(user_name).to_owned(),
                ticket_id: get_s(&item, "ticket_id").unwrap_or_default().to_owned(),
                until: get_n(&item, "until").unwrap_or(0),
            })
            .filter(|d| d.until > now))
    }
}

fn put_request(item: HashMap<String, AttributeValue>) -> Result<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| Error::permanent("BatchWriteItem", e.to_string()))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// Only forward: a late replay of an early stage must not hide later progress.
const FORWARD_ONLY: &str = "attribute_not_exists(pk) OR stage_rank <= :rank";

fn status_item(scope: &str, r: &StatusRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(format!("TICKET#{}", r.ticket_id))),
        ("sk".to_owned(), s(format!("USER#{}", r.user_name))),
        ("ticket_id".to_owned(), s(&r.ticket_id)),
        ("user_name".to_owned(), s(&r.user_name)),
        ("status".to_owned(), s(r.stage.as_str())),
        ("stage_rank".to_owned(), n(r.stage as u64)),
        ("updated_at".to_owned(), n(r.updated_at)),
    ]);
    if let Some(reason) = &r.reason {
        item.insert("reason".into(), s(reason));
    }
    scoped(scope, item)
}

impl StatusStore for DynamoStatus {
    async fn record(&self, r: &StatusRecord) -> Result<()> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(status_item(&self.scope, r)))
            .condition_expression(FORWARD_ONLY)
            .expression_attribute_values(":rank", n(r.stage as u64))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already further along: a late replay must not move it back.
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify("PutItem", e)),
        }
    }

    /// BatchWriteItem, 25 at a time (DynamoDB's limit), with what DynamoDB
    /// leaves unprocessed sent again a few times before giving up. Not a
    /// transaction: that would cost twice the write capacity for a check
    /// the caller has made already (and moto copies the whole table per
    /// item of a transaction: see BENCHMARKS.md).
    async fn create_all(&self, records: &[StatusRecord], handoffs: &[Onboarding]) -> Result<()> {
        let mut writes = Vec::with_capacity(records.len() + handoffs.len());
        for r in records {
            writes.push(put_request(status_item(&self.scope, r))?);
        }
        for h in handoffs {
            let mut item = handoff_key(&self.scope, &h.ticket_id, &h.user.user_name);
            let body = serde_json::to_string(h).map_err(|e| Error::permanent("BatchWriteItem", e.to_string()))?;
            item.insert("handoff".into(), s(body));
            writes.push(put_request(item)?);
        }
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            let chunk: Vec<WriteRequest> = writes.by_ref().take(25).collect();
            let mut pending = HashMap::from([(self.table.clone(), chunk)]);
            let mut delay = std::time::Duration::from_millis(50);
            for attempt in 0..5 {
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(|e| classify("BatchWriteItem", e))?;
                pending = out.unprocessed_items.unwrap_or_default();
                pending.retain(|_, w| !w.is_empty());
                if pending.is_empty() {
                    break;
                }
                if attempt == 4 {
                    return Err(Error::retryable("BatchWriteItem", "items left unprocessed after 5 attempts"));
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Ok(())
    }

    async fn revoke_handoff(&self, ticket_id: &str, user_name: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(handoff_key(&self.scope, ticket_id, user_name)))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("DeleteItem", e))
    }

    async fn handoff(&self, ticket_id: &str, user_name: &str) -> Result<Option<Onboarding>> {
        let found = get_item(&self.client, &self.table, handoff_key(&self.scope, ticket_id, user_name)).await?;
        let Some(body) = found.as_ref().and_then(|item| get_s(item, "handoff")) else {
            return Ok(None);
        };
        Onboarding::from_record(body)
            .map(Some)
            .map_err(|e| Error::permanent("GetItem", format!("hand-off record of {ticket_id}/{user_name}: {e}")))
    }

    async fn for_ticket(&self, ticket_id: &str) -> Result<Vec<StatusRecord>> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :user)")
                .expression_attribute_values(":pk", s(format!("{}TICKET#{ticket_id}", self.scope)))
                .expression_attribute_values(":user", s("USER#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for item in page.items() {
                let stage = get_s(item, "status")
                    .and_then(Stage::parse)
                    .ok_or_else(|| Error::permanent("Query", "status record without a known status"))?;
                records.push(StatusRecord {
                    ticket_id: get_s(item, "ticket_id").unwrap_or_default().to_owned(),
                    user_name: get_s(item, "user_name").unwrap_or_default().to_owned(),
                    stage,
                    reason: get_s(item, "reason").map(str::to_owned),
                    updated_at: get_n(item, "updated_at").unwrap_or(0),
                });
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(records),
            }
        }
    }
}

impl UntrustedLog for DynamoStatus {
    async fn record_untrusted(&self, m: &UntrustedMessage) -> Result<()> {
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("{}UNTRUSTED#{}", self.scope, m.stage))),
            ("sk".to_owned(), s(&m.message_id)),
            ("stage".to_owned(), s(&m.stage)),
            ("message_id".to_owned(), s(&m.message_id)),
            ("reason".to_owned(), s(&m.reason)),
            ("body".to_owned(), s(&m.body)),
            ("received_at".to_owned(), n(m.received_at)),
            ("expires_at".to_owned(), n(m.received_at + UNTRUSTED_KEPT_SECS)),
        ]);
        put_item(&self.client, &self.table, item).await
    }

    async fn untrusted(&self, stage: &str) -> Result<Vec<UntrustedMessage>> {
        let items = partition(&self.client, &self.table, format!("{}UNTRUSTED#{stage}", self.scope)).await?;
        Ok(items
            .iter()
            .map(|item| UntrustedMessage {
                stage: get_s(item, "stage").unwrap_or_default().to_owned(),
                message_id: get_s(item, "message_id").unwrap_or_default().to_owned(),
                reason: get_s(item, "reason").unwrap_or_default().to_owned(),
                body: get_s(item, "body").unwrap_or_default().to_owned(),
                received_at: get_n(item, "received_at").unwrap_or(0),
            })
            .collect())
    }
}

/// Key records: `pk = KEYS#<user name>`, `sk = KEY#<access key id>`.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    /// `""` for the pipeline's own account; `ACCOUNT#<id>#` for another's.
    scope: String,
}

impl DynamoLedger {
    fn key(&self, user: &str, key_id: &str) -> HashMap<String, AttributeValue> {
        scoped(
            &self.scope,
            HashMap::from([("pk".into(), s(format!("KEYS#{user}"))), ("sk".into(), s(format!("KEY#{key_id}")))]),
        )
    }

    fn secrets_key(&self, user: &str) -> HashMap<String, AttributeValue> {
        scoped(&self.scope, HashMap::from([("pk".into(), s(format!("SECRETS#{user}"))), ("sk".into(), s("-"))]))
    }
}

impl KeyLedger for DynamoLedger {
    async fn record_issued(&self, k: &KeyRecord) -> Result<()> {
        let mut item = self.key(&k.user_name, &k.access_key_id);
        item.insert("user_name".into(), s(&k.user_name));
        item.insert("access_key_id".into(), s(&k.access_key_id));
        item.insert("email".into(), s(&k.email));
        item.insert("issued_at".into(), n(k.issued_at));
        if let Some(r) = &k.replaces {
            item.insert("replaces".into(), s(r));
        }
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify("PutItem", e)),
        }
    }

    async fn keys_of(&self, user_name: &str) -> Result<Vec<KeyRecord>> {
        let pages = partition(&self.client, &self.table, format!("{}KEYS#{user_name}", self.scope)).await?;
        Ok(pages
            .iter()
            .map(|item| KeyRecord {
                user_name: get_s(item, "user_name").unwrap_or_default().to_owned(),
                access_key_id: get_s(item, "access_key_id").unwrap_or_default().to_owned(),
                email: get_s(item, "email").unwrap_or_default().to_owned(),
                issued_at: get_n(item, "issued_at").unwrap_or(0),
                replaces: get_s(item, "replaces").map(str::to_owned),
                warned_at: get_n(item, "warned_at"),
                deactivated_at: get_n(item, "deactivated_at"),
                deleted_at: get_n(item, "deleted_at"),
                rotation_deadline: get_n(item, "rotation_deadline"),
            })
            .collect())
    }

    async fn update(&self, k: &KeyRecord) -> Result<()> {
        // if_not_exists: a time, once set, is the truth; a replay cannot move it.
        let mut sets = Vec::new();
        let mut values = HashMap::new();
        for (field, value) in [
            ("warned_at", k.warned_at),
            ("deactivated_at", k.deactivated_at),
            ("deleted_at", k.deleted_at),
            ("rotation_deadline", k.rotation_deadline),
        ] {
            if let Some(v) = value {
                sets.push(format!("{field} = if_not_exists({field}, :{field})"));
                values.insert(format!(":{field}"), n(v));
            }
        }
        if sets.is_empty() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&k.user_name, &k.access_key_id)))
            .update_expression(format!("SET {}", sets.join(", ")))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("UpdateItem", e))
    }

    async fn record_secret_version(&self, user_name: &str, version_id: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.secrets_key(user_name)))
            .update_expression("ADD versions :v")
            .expression_attribute_values(":v", AttributeValue::Ss(vec![version_id.to_owned()]))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("UpdateItem", e))
    }

    async fn secret_versions(&self, user_name: &str) -> Result<Vec<String>> {
        let found = get_item(&self.client, &self.table, self.secrets_key(user_name)).await?;
        Ok(found.as_ref().and_then(|i| i.get("versions")).and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default())
    }
}

impl DynamoLedger {
    fn cursor_key(&self, run: &str) -> HashMap<String, AttributeValue> {
        scoped(&self.scope, HashMap::from([("pk".into(), s(format!("ROTATION#{run}"))), ("sk".into(), s("-"))]))
    }
}

impl RotationRuns for DynamoLedger {
    async fn cursor(&self, run: &str) -> Result<Option<RotationCursor>> {
        let found = get_item(&self.client, &self.table, self.cursor_key(run)).await?;
        let Some(body) = found.as_ref().and_then(|item| get_s(item, "cursor")) else {
            return Ok(None);
        };
        serde_json::from_str(body)
            .map(Some)
            .map_err(|e| Error::permanent("GetItem", format!("rotation cursor of {run}: {e}")))
    }

    async fn save_cursor(&self, cursor: &RotationCursor, expires_at: u64) -> Result<()> {
        let mut item = self.cursor_key(&cursor.run);
        let body = serde_json::to_string(cursor).map_err(|e| Error::permanent("PutItem", e.to_string()))?;
        item.insert("cursor".into(), s(body));
        item.insert("expires_at".into(), n(expires_at));
        put_item(&self.client, &self.table, item).await
    }
}

/// The operator CLI's read of an idempotency record: a plain GetItem, never
/// a claim.
impl crate::ports::WorkRecords for DynamoIdempotency {
    async fn work_state(&self, key: &str) -> Result<Option<crate::ports::WorkState>> {
        use crate::ports::WorkState;
        let Some(item) = get_item(&self.client, &self.table, self.key(key)).await? else {
            return Ok(None);
        };
        Ok(Some(match get_s(&item, "status") {
            Some(COMPLETED) => WorkState::Completed(
                get_s(&item, "result").and_then(|r| serde_json::from_str(r).ok()).unwrap_or(serde_json::Value::Null),
            ),
            _ => WorkState::InProgress,
        }))
    }
}
