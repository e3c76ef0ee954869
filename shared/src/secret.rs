//! Secret values: a wrapper that never prints what it holds, and the JSON
//! document each user's secret holds (CONTRACT.md section 3).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A value that must never reach a log line, an error or a message. Its
/// `Debug` and `Display` say `[redacted]`; reading it is explicit.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The SecretString of `<prefix><user_name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSecret {
    pub user_name: String,
    pub console_sign_in_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Sensitive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Sensitive>,
}

/// The console sign-in URL of an account: its alias if it has one. Always
/// built from the account (IAM's alias, or the account id of an ARN AWS
/// returned), never read back from a secret someone may have written.
pub fn sign_in_url(alias_or_account_id: &str) -> String {
    format!("https://{alias_or_account_id}.signin.aws.amazon.com/console")
}

/// Whether Secrets Manager's answer `actual` names the key the pipeline
/// encrypts users' secrets with (`expected`: an ARN, or `None` for the
/// account's default key). Secrets Manager may report a key by ARN or id.
pub fn same_kms_key(expected: Option<&str>, actual: Option<&str>) -> bool {
    match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => e == a || e.ends_with(&format!("/{a}")) || a.ends_with(&format!("/{e}")),
        _ => false,
    }
}

/// Whether the secret `found` under `secret_name` is one the pipeline wrote
/// for `user_name`: encrypted with its key `kms_key_id` (only the pipeline may
/// encrypt under it, so a secret deleted and recreated, or moved to another
/// key, fails) and at a version the pipeline recorded before writing it
/// (version ids alone can be read by anyone who may describe the secret).
pub async fn written_by_pipeline<X, L>(
    secrets: &X,
    ledger: &L,
    secret_name: &str,
    found: &crate::ports::StoredSecret,
    user_name: &str,
    kms_key_id: Option<&str>,
) -> crate::Result<bool>
where
    X: crate::ports::SecretStore,
    L: crate::ports::KeyLedger,
{
    let key = secrets.kms_key_id(secret_name).await?;
    Ok(same_kms_key(kms_key_id, key.as_deref()) && ledger.secret_versions(user_name).await?.contains(&found.version_id))
}

/// A fresh secret version id (Secrets Manager's `ClientRequestToken`, 32
/// to 64 characters): 128 random bits in hex, unguessable, so only the
/// pipeline, which records it before writing, can tell it is its own.
pub fn new_version_id() -> crate::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| crate::Error::retryable("getrandom", e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An access key as IAM hands it out, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: Sensitive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_values_never_print() {
        let s = UserSecret {
            user_name: "u".into(),
            console_sign_in_url: "https://x".into(),
            password: Some(Sensitive::new("hunter2")),
            access_key_id: Some("AKIA".into()),
            secret_access_key: Some(Sensitive::new("wJalr")),
        };
        let printed = format!("{s:?} {}", s.password.as_ref().unwrap());
        assert!(!printed.contains("hunter2") && !printed.contains("wJalr"), "{printed}");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"password\":\"hunter2\""), "the secret itself holds the value: {json}");
    }
}
