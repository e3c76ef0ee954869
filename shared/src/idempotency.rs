//! Run a piece of work at most once per key, after Powertools for AWS
//! Lambda: a record IN_PROGRESS under a lease bounded by the invocation's
//! remaining time, COMPLETED with the result, a hash of the payload so a key
//! reused with different content is refused, and an expiry.

use crate::error::{Error, Result};
use crate::ports::{Claim, IdempotencyStore};
use sha2::{Digest, Sha256};
use std::future::Future;

/// Hash of a payload's canonical JSON (serde_json orders object keys). A
/// payload that does not serialise is an error, never the hash of nothing
/// (which every such payload would share).
pub fn payload_hash<T: serde::Serialize>(payload: &T) -> Result<String> {
    let canonical = serde_json::to_value(payload)
        .and_then(|v| serde_json::to_vec(&v))
        .map_err(|e| Error::permanent("payload_hash", e.to_string()))?;
    Ok(Sha256::digest(canonical).iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub now: u64,
    /// When this invocation will be gone (its deadline): past it, another
    /// delivery may take the work over.
    pub lease_until: u64,
    pub expires_at: u64,
}

impl Window {
    /// The window of an invocation that must be done by `lease_until`,
    /// whose records are kept for `ttl_secs`.
    pub fn new(now: u64, lease_until: u64, ttl_secs: u64) -> Self {
        Self { now, lease_until: lease_until.max(now + 1), expires_at: now + ttl_secs }
    }
}

/// The name of one piece of work done at most once. Every key the pipeline
/// uses is built here, so two stages cannot spell the same one differently,
/// nor one stage two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// create-user's run of one ticket (filed under its record id).
    pub fn ticket(record_id: &str) -> Self {
        Self(format!("create-user#{record_id}"))
    }
    /// create-user's refusal of a body that is not a ticket at all.
    pub fn unreadable(body_hash: &str) -> Self {
        Self(format!("create-user#unreadable#{body_hash}"))
    }
    /// The requester's refusal email for a ticket (or one of its mismatches).
    pub fn refusal_email(email_key: &str) -> Self {
        Self(format!("create-user#{email_key}#refusal-email"))
    }
    /// issue-credentials' work for one user of a ticket (or a rotation).
    pub fn credentials(ticket_id: &str, user_name: &str) -> Self {
        Self(format!("issue-credentials#{ticket_id}#{user_name}"))
    }
    /// One email of notify-user (`sign-in`, `password`, `access-key#<id>`).
    pub fn user_email(ticket_id: &str, user_name: &str, kind: &str) -> Self {
        Self(format!("notify-user#{ticket_id}#{user_name}#{kind}"))
    }
    /// The requester's summary of a settled ticket.
    pub fn summary(ticket_id: &str) -> Self {
        Self(format!("summary#{ticket_id}"))
    }
    /// rotate-keys asking for a successor to one key.
    pub fn successor(user_name: &str, access_key_id: &str) -> Self {
        Self(format!("rotate-keys#rotate#{user_name}#{access_key_id}"))
    }
    /// rotate-keys' warning before one key is deactivated.
    pub fn deactivation_warning(user_name: &str, access_key_id: &str) -> Self {
        Self(format!("rotate-keys#warn#{user_name}#{access_key_id}"))
    }
    /// rotate-keys' notice that a key still in use is held (`start`) or
    /// that its hold is ending (`ending`).
    pub fn hold_notice(user_name: &str, access_key_id: &str, kind: &str) -> Self {
        Self(format!("rotate-keys#hold-{kind}#{user_name}#{access_key_id}"))
    }

    /// offboard-user's run of one offboarding ticket (its record id).
    pub fn offboarding(record_id: &str) -> Self {
        Self(format!("offboard-user#{record_id}"))
    }
    /// The requester's one email about an offboarding or access-change
    /// ticket (what was done, or why nothing was).
    pub fn lifecycle_summary(stage: &str, record_id: &str) -> Self {
        Self(format!("{stage}#{record_id}#summary"))
    }

    /// The daily run's email about one user's lifecycle (`expiry-warning`,
    /// `expired`, `deleted`), to one recipient (`user`, `requester`), for one date.
    pub fn lifecycle_notice(user_name: &str, kind: &str, date: &str, recipient: &str) -> Self {
        Self(format!("offboard-user#daily#{user_name}#{kind}#{date}#{recipient}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, PartialEq)]
pub enum Outcome<T> {
    Ran(T),
    /// Done before: the stored result, and nothing was run.
    Replayed(T),
}

impl<T> Outcome<T> {
    pub fn into_inner(self) -> T {
        match self {
            Outcome::Ran(v) | Outcome::Replayed(v) => v,
        }
    }
}

/// Runs `work` unless the work under `key` was done (its stored result is
/// returned, typed) or is under way elsewhere (`Error::InProgress`, retryable);
/// a key reused with another payload hash is `Error::PayloadMismatch`.
pub async fn once<T, S, F, Fut>(store: &S, key: &Key, hash: &str, window: Window, work: F) -> Result<Outcome<T>>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    S: IdempotencyStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let key = key.as_str();
    match store.claim(key, hash, window.now, window.lease_until, window.expires_at).await? {
        Claim::Completed(v) => serde_json::from_value(v).map(Outcome::Replayed).map_err(|e| {
            Error::permanent("idempotency", format!("the stored result of {key} does not read back: {e}"))
        }),
        Claim::InProgress => Err(Error::InProgress(key.to_owned())),
        Claim::Mismatch => Err(Error::PayloadMismatch(format!(
            "{key} was already processed with different content; submit changes under a new ticket id"
        ))),
        Claim::Acquired => match work().await {
            Ok(result) => {
                let stored = serde_json::to_value(&result).map_err(|e| {
                    Error::permanent("idempotency", format!("the result of {key} does not serialise: {e}"))
                })?;
                complete_with_retries(store, key, hash, &stored, window.expires_at).await?;
                Ok(Outcome::Ran(result))
            }
            Err(e) => {
                if let Err(release) = store.release(key).await {
                    // The lease then simply runs out; the retry waits for it.
                    tracing::warn!(key, error = %release, "could not release idempotency lease");
                }
                Err(e)
            }
        },
    }
}

/// The work is done; only the record of it is missing. A failure here means
/// the work may be done again (an email sent twice), so a passing fault is
/// retried in place before giving up. The lease is not released: a retry
/// that came at once would run the work again.
async fn complete_with_retries<S: IdempotencyStore>(
    store: &S,
    key: &str,
    hash: &str,
    value: &serde_json::Value,
    expires_at: u64,
) -> Result<()> {
    let mut delay = std::time::Duration::from_millis(50);
    for _ in 0..3 {
        match store.complete(key, hash, value, expires_at).await {
            Err(e) if e.is_retryable() => {
                tracing::warn!(key, error = %e, "recording completed work failed; trying again");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            other => return other,
        }
    }
    store.complete(key, hash, value, expires_at).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryIdempotency;
    use serde_json::json;

    fn k() -> Key {
        Key::summary("T")
    }

    fn window(now: u64) -> Window {
        Window { now, lease_until: now + 60, expires_at: now + 3600 }
    }

    #[test]
    fn a_payload_that_does_not_serialise_has_no_hash() {
        // JSON object keys must be strings.
        let unserialisable = std::collections::BTreeMap::from([((1, 2), "x")]);
        assert!(payload_hash(&unserialisable).is_err());
        assert_ne!(payload_hash(&"a").unwrap(), payload_hash(&"b").unwrap());
    }

    #[tokio::test]
    async fn second_call_replays_the_stored_result_without_running() {
        let store = MemoryIdempotency::default();
        let first = once(&store, &k(), "h", window(100), || async { Ok(json!(1)) }).await.unwrap();
        assert_eq!(first, Outcome::Ran(json!(1)));
        let second = once(&store, &k(), "h", window(101), || async { panic!("ran twice") }).await.unwrap();
        assert_eq!(second, Outcome::Replayed(json!(1)));
    }

    /// The stored result comes back as the type the work returned, and one
    /// that does not read back as that type is an error, not a default.
    #[tokio::test]
    async fn results_are_typed_and_a_stored_result_of_another_shape_is_an_error() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Report {
            created: Vec<String>,
        }
        let store = MemoryIdempotency::default();
        let report = || Report { created: vec!["emily".into()] };
        once(&store, &k(), "h", window(100), || async { Ok(report()) }).await.unwrap();
        let again = once(&store, &k(), "h", window(101), || async { Ok(Report { created: vec![] }) }).await.unwrap();
        assert_eq!(again, Outcome::Replayed(report()));
        let other: Result<Outcome<u64>> = once(&store, &k(), "h", window(102), || async { Ok(7) }).await;
        assert!(matches!(other, Err(Error::Permanent { .. })), "{other:?}");
    }

    #[tokio::test]
    async fn same_key_with_other_payload_is_refused_permanently() {
        let store = MemoryIdempotency::default();
        once(&store, &k(), "h1", window(100), || async { Ok(json!(1)) }).await.unwrap();
        let err = once(&store, &k(), "h2", window(101), || async { Ok(json!(2)) }).await.unwrap_err();
        assert!(matches!(err, Error::PayloadMismatch(_)) && !err.is_retryable());
    }

    #[tokio::test]
    async fn live_lease_blocks_and_expired_lease_is_taken_over() {
        let store = MemoryIdempotency::default();
        assert_eq!(store.claim("summary#T", "h", 100, 160, 9999).await.unwrap(), Claim::Acquired);
        let err = once(&store, &k(), "h", window(150), || async { Ok(json!(0)) }).await.unwrap_err();
        assert!(matches!(err, Error::InProgress(_)) && err.is_retryable());
        let taken = once(&store, &k(), "h", window(161), || async { Ok(json!(2)) }).await.unwrap();
        assert_eq!(taken, Outcome::Ran(json!(2)));
    }

    #[tokio::test]
    async fn failure_releases_the_lease_for_an_immediate_retry() {
        let store = MemoryIdempotency::default();
        let err: Result<Outcome<u32>> =
            once(&store, &k(), "h", window(100), || async { Err(Error::retryable("Op", "boom")) }).await;
        assert!(err.is_err());
        let retry = once(&store, &k(), "h", window(101), || async { Ok(json!(3)) }).await.unwrap();
        assert_eq!(retry, Outcome::Ran(json!(3)));
    }

    /// The same boundaries as DynamoDB's condition (`expires_at < :now`,
    /// `lease_until < :now`): at the very second, the record still holds.
    #[tokio::test]
    async fn a_record_or_lease_ending_this_very_second_still_holds() {
        let store = MemoryIdempotency::default();
        assert_eq!(store.claim("summary#T", "h", 100, 160, 200).await.unwrap(), Claim::Acquired);
        assert_eq!(store.claim("summary#T", "h", 160, 220, 999).await.unwrap(), Claim::InProgress);
        assert_eq!(store.claim("summary#T", "h", 161, 220, 999).await.unwrap(), Claim::Acquired);
        store.complete("summary#T", "h", &json!(1), 300).await.unwrap();
        assert_eq!(store.claim("summary#T", "h", 300, 360, 999).await.unwrap(), Claim::Completed(json!(1)));
        assert_eq!(store.claim("summary#T", "h", 301, 360, 999).await.unwrap(), Claim::Acquired);
    }

    #[tokio::test]
    async fn expired_completed_record_runs_again() {
        let store = MemoryIdempotency::default();
        once(&store, &k(), "h", Window { now: 100, lease_until: 160, expires_at: 200 }, || async { Ok(json!(1)) })
            .await
            .unwrap();
        let again = once(&store, &k(), "h", window(201), || async { Ok(json!(2)) }).await.unwrap();
        assert_eq!(again, Outcome::Ran(json!(2)));
    }
}
