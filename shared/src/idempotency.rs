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

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Ran(serde_json::Value),
    /// Done before: the stored result, and nothing was run.
    Replayed(serde_json::Value),
}

impl Outcome {
    pub fn value(&self) -> &serde_json::Value {
        match self {
            Outcome::Ran(v) | Outcome::Replayed(v) => v,
        }
    }
}

pub async fn once<S, F, Fut>(store: &S, key: &str, hash: &str, window: Window, work: F) -> Result<Outcome>
where
    S: IdempotencyStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<serde_json::Value>>,
{
    match store.claim(key, hash, window.now, window.lease_until, window.expires_at).await? {
        Claim::Completed(v) => Ok(Outcome::Replayed(v)),
        Claim::InProgress => Err(Error::InProgress(key.to_owned())),
        Claim::Mismatch => Err(Error::PayloadMismatch(format!(
            "{key} was already processed with different content; submit changes under a new ticket id"
        ))),
        Claim::Acquired => match work().await {
            Ok(v) => {
                complete_with_retries(store, key, hash, &v, window.expires_at).await?;
                Ok(Outcome::Ran(v))
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
        let first = once(&store, "k", "h", window(100), || async { Ok(json!(1)) }).await.unwrap();
        assert_eq!(first, Outcome::Ran(json!(1)));
        let second = once(&store, "k", "h", window(101), || async { panic!("ran twice") }).await.unwrap();
        assert_eq!(second, Outcome::Replayed(json!(1)));
    }

    #[tokio::test]
    async fn same_key_with_other_payload_is_refused_permanently() {
        let store = MemoryIdempotency::default();
        once(&store, "k", "h1", window(100), || async { Ok(json!(1)) }).await.unwrap();
        let err = once(&store, "k", "h2", window(101), || async { Ok(json!(2)) }).await.unwrap_err();
        assert!(matches!(err, Error::PayloadMismatch(_)) && !err.is_retryable());
    }

    #[tokio::test]
    async fn live_lease_blocks_and_expired_lease_is_taken_over() {
        let store = MemoryIdempotency::default();
        assert_eq!(store.claim("k", "h", 100, 160, 9999).await.unwrap(), Claim::Acquired);
        let err = once(&store, "k", "h", window(150), || async { Ok(json!(0)) }).await.unwrap_err();
        assert!(matches!(err, Error::InProgress(_)) && err.is_retryable());
        let taken = once(&store, "k", "h", window(161), || async { Ok(json!(2)) }).await.unwrap();
        assert_eq!(taken, Outcome::Ran(json!(2)));
    }

    #[tokio::test]
    async fn failure_releases_the_lease_for_an_immediate_retry() {
        let store = MemoryIdempotency::default();
        let err = once(&store, "k", "h", window(100), || async { Err(Error::retryable("Op", "boom")) }).await;
        assert!(err.is_err());
        let retry = once(&store, "k", "h", window(101), || async { Ok(json!(3)) }).await.unwrap();
        assert_eq!(retry, Outcome::Ran(json!(3)));
    }

    /// The same boundaries as DynamoDB's condition (`expires_at < :now`,
    /// `lease_until < :now`): at the very second, the record still holds.
    #[tokio::test]
    async fn a_record_or_lease_ending_this_very_second_still_holds() {
        let store = MemoryIdempotency::default();
        assert_eq!(store.claim("k", "h", 100, 160, 200).await.unwrap(), Claim::Acquired);
        assert_eq!(store.claim("k", "h", 160, 220, 999).await.unwrap(), Claim::InProgress);
        assert_eq!(store.claim("k", "h", 161, 220, 999).await.unwrap(), Claim::Acquired);
        store.complete("k", "h", &json!(1), 300).await.unwrap();
        assert_eq!(store.claim("k", "h", 300, 360, 999).await.unwrap(), Claim::Completed(json!(1)));
        assert_eq!(store.claim("k", "h", 301, 360, 999).await.unwrap(), Claim::Acquired);
    }

    #[tokio::test]
    async fn expired_completed_record_runs_again() {
        let store = MemoryIdempotency::default();
        once(&store, "k", "h", Window { now: 100, lease_until: 160, expires_at: 200 }, || async { Ok(json!(1)) })
            .await
            .unwrap();
        let again = once(&store, "k", "h", window(201), || async { Ok(json!(2)) }).await.unwrap();
        assert_eq!(again, Outcome::Ran(json!(2)));
    }
}
