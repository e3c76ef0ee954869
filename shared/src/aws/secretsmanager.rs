use super::{classify, code};
use crate::error::Result;
use crate::ports::{SecretStore, StoredSecret};
use crate::secret::Sensitive;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(config: &super::SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }
}

impl SecretsManagerStore {
    /// DescribeSecret: `None` if there is no such secret, else the date its
    /// deletion is scheduled for, if it is. The API reference calls
    /// DeletedDate "the date the secret is scheduled for deletion" (moto
    /// stores that); ListSecrets' reference calls the same field the date
    /// the deletion occurred. A deletion date is always ahead (the window is
    /// 7 days at least), a request's date always past: one in the past is
    /// read as the request's, plus `recovery_days`.
    async fn deletion_date(&self, id: &str, recovery_days: u32) -> Result<Option<Option<u64>>> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let date = |deleted: u64| if deleted > now { deleted } else { deleted + u64::from(recovery_days) * 86_400 };
        match self.client.describe_secret().secret_id(id).send().await {
            Ok(out) => Ok(Some(out.deleted_date().map(|d| date(d.secs().max(0) as u64)))),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify("DescribeSecret", e)),
        }
    }
}

impl SecretStore for SecretsManagerStore {
    async fn read(&self, id: &str) -> Result<Option<StoredSecret>> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => Ok(Some(StoredSecret {
                arn: out.arn().unwrap_or_default().to_owned(),
                name: out.name().unwrap_or_default().to_owned(),
                version_id: out.version_id().unwrap_or_default().to_owned(),
                value: Sensitive::new(out.secret_string().unwrap_or_default()),
            })),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify("GetSecretValue", e)),
        }
    }

    async fn create(
        &self,
        name: &str,
        value: &Sensitive,
        tags: &BTreeMap<String, String>,
        version_id: &str,
        kms_key_id: Option<&str>,
    ) -> Result<String> {
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let out = self
            .client
            .create_secret()
            .name(name)
            .description("IAM user credentials issued by iam-provisioner")
            .secret_string(value.expose())
            .client_request_token(version_id)
            .set_kms_key_id(kms_key_id.map(str::to_owned))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify("CreateSecret", e))?;
        out.arn()
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| crate::Error::retryable("CreateSecret", "no ARN in the answer"))
    }

    async fn kms_key_id(&self, id: &str) -> Result<Option<String>> {
        let out =
            self.client.describe_secret().secret_id(id).send().await.map_err(|e| classify("DescribeSecret", e))?;
        Ok(out.kms_key_id().map(str::to_owned))
    }

    async fn schedule_deletion(&self, id: &str, recovery_days: u32) -> Result<Option<u64>> {
        crate::ports::check_recovery_days(recovery_days)?;
        // Already scheduled (DeleteSecret would refuse: InvalidRequestException).
        match self.deletion_date(id, recovery_days).await? {
            None => return Ok(None),
            Some(Some(date)) => return Ok(Some(date)),
            Some(None) => {}
        }
        let deleted =
            self.client.delete_secret().secret_id(id).recovery_window_in_days(i64::from(recovery_days)).send().await;
        match deleted {
            Ok(out) => match out.deletion_date() {
                Some(date) => Ok(Some(date.secs().max(0) as u64)),
                None => Err(crate::Error::retryable("DeleteSecret", "no DeletionDate in the answer")),
            },
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
            // Scheduled meanwhile (another delivery of the same work): done.
            Err(e) if code(&e) == Some("InvalidRequestException") => match self.deletion_date(id, recovery_days).await?
            {
                Some(Some(date)) => Ok(Some(date)),
                None => Ok(None),
                Some(None) => Err(classify("DeleteSecret", e)),
            },
            Err(e) => Err(classify("DeleteSecret", e)),
        }
    }

    async fn put(&self, arn: &str, value: &Sensitive, version_id: &str) -> Result<()> {
        self.client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value.expose())
            .client_request_token(version_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("PutSecretValue", e))
    }
}
