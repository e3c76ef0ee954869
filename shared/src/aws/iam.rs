use super::{classify, code};
use crate::error::Error;
use crate::error::Result;
use crate::password::PasswordPolicy;
use crate::ports::{
    AccessKeyInfo, AccountFacts, Created, Credentials, IamUser, KeyRetirement, NewUser, Permissions, Provisioning,
    Users,
};
use crate::secret::{NewAccessKey, Sensitive};
use aws_sdk_iam::types::AssignmentStatusType;
use aws_sdk_iam::types::StatusType;
use aws_sdk_iam::types::Tag;
use aws_sdk_iam::Client;

/// NoSuchEntity as `Error::Missing`, for the caller to tell a user not yet
/// visible (IAM is eventually consistent) from a missing group or policy;
/// anything else classified as usual.
fn missing_or_classified<E>(operation: &'static str, err: SdkError<E>) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if code(&err) == Some("NoSuchEntity") {
        let message = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
        Error::Missing { operation, message }
    } else {
        classify(operation, err)
    }
}

#[derive(Debug, Clone)]
pub struct IamDirectory {
    client: Client,
}

impl IamDirectory {
    pub fn new(config: &super::SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }
}

impl Users for IamDirectory {
    async fn list_user_names(&self) -> Result<Vec<String>> {
        let users = self.client.list_users().into_paginator().items().send().try_collect().await;
        Ok(users.map_err(|e| classify("ListUsers", e))?.into_iter().map(|u| u.user_name).collect())
    }

    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>> {
        let out = match self.client.get_user().user_name(user_name).send().await {
            Ok(out) => out,
            Err(e) if code(&e) == Some("NoSuchEntity") => return Ok(None),
            Err(e) => return Err(classify("GetUser", e)),
        };
        let Some(user) = out.user() else {
            return Ok(None);
        };
        Ok(Some(IamUser {
            user_name: user.user_name().to_owned(),
            path: user.path().to_owned(),
            arn: user.arn().to_owned(),
            boundary: user.permissions_boundary().and_then(|b| b.permissions_boundary_arn()).map(str::to_owned),
            tags: user.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        }))
    }

    async fn permissions(&self, user_name: &str) -> Result<Permissions> {
        let groups = self.client.list_groups_for_user().user_name(user_name).into_paginator().items().send();
        let groups = groups.try_collect().await.map_err(|e| classify("ListGroupsForUser", e))?;
        let attached = self.client.list_attached_user_policies().user_name(user_name).into_paginator().items().send();
        let attached = attached.try_collect().await.map_err(|e| classify("ListAttachedUserPolicies", e))?;
        let names = self.client.list_user_policies().user_name(user_name).into_paginator().items().send();
        let inline_policies = names.try_collect().await.map_err(|e| classify("ListUserPolicies", e))?;
        Ok(Permissions {
            groups: groups.into_iter().map(|g| g.group_name).collect(),
            managed_policies: attached.into_iter().filter_map(|p| p.policy_arn).collect(),
            inline_policies,
            boundary: self.get_user(user_name).await?.and_then(|u| u.boundary),
        })
    }
}

impl Provisioning for IamDirectory {
    async fn create_user(&self, user: &NewUser) -> Result<Created> {
        let tags = user
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::error::Error::permanent("CreateUser", e.to_string()))?;
        match self
            .client
            .create_user()
            .user_name(user.user_name.as_str())
            .path(&user.path)
            .permissions_boundary(user.boundary.as_str())
            .set_tags(Some(tags))
            .send()
            .await
        {
            Ok(_) => Ok(Created::Created),
            Err(e) if code(&e) == Some("EntityAlreadyExists") => Ok(Created::AlreadyExists),
            Err(e) => Err(classify("CreateUser", e)),
        }
    }

    async fn add_user_to_group(&self, user_name: &str, group: &str) -> Result<()> {
        self.client
            .add_user_to_group()
            .user_name(user_name)
            .group_name(group)
            .send()
            .await
            .map(drop)
            .map_err(|e| missing_or_classified("AddUserToGroup", e))
    }

    async fn attach_user_policy(&self, user_name: &str, policy_arn: &str) -> Result<()> {
        self.client
            .attach_user_policy()
            .user_name(user_name)
            .policy_arn(policy_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| missing_or_classified("AttachUserPolicy", e))
    }
}

impl AccountFacts for IamDirectory {
    async fn password_policy(&self) -> Result<PasswordPolicy> {
        match self.client.get_account_password_policy().send().await {
            Ok(out) => {
                let Some(p) = out.password_policy() else {
                    return Ok(PasswordPolicy::aws_default());
                };
                Ok(PasswordPolicy {
                    minimum_length: p.minimum_password_length().unwrap_or(8).max(0) as usize,
                    require_uppercase: p.require_uppercase_characters(),
                    require_lowercase: p.require_lowercase_characters(),
                    require_numbers: p.require_numbers(),
                    require_symbols: p.require_symbols(),
                    allow_users_to_change_password: p.allow_users_to_change_password(),
                    is_aws_default: false,
                })
            }
            Err(e) if code(&e) == Some("NoSuchEntity") => Ok(PasswordPolicy::aws_default()),
            Err(e) => Err(classify("GetAccountPasswordPolicy", e)),
        }
    }

    async fn account_alias(&self) -> Result<Option<String>> {
        let out = self.client.list_account_aliases().send().await.map_err(|e| classify("ListAccountAliases", e))?;
        Ok(out.account_aliases().first().cloned())
    }
}

impl Credentials for IamDirectory {
    async fn create_login_profile(
        &self,
        user_name: &str,
        password: &Sensitive,
        reset_required: bool,
    ) -> Result<Created> {
        match self
            .client
            .create_login_profile()
            .user_name(user_name)
            .password(password.expose())
            .password_reset_required(reset_required)
            .send()
            .await
        {
            Ok(_) => Ok(Created::Created),
            Err(e) if code(&e) == Some("EntityAlreadyExists") => Ok(Created::AlreadyExists),
            // IAM's message for a policy violation does not quote the password.
            Err(e) => Err(missing_or_classified("CreateLoginProfile", e)),
        }
    }

    async fn access_keys(&self, user_name: &str) -> Result<Vec<AccessKeyInfo>> {
        let keys = self.client.list_access_keys().user_name(user_name).into_paginator().items().send();
        let keys = keys.try_collect().await.map_err(|e| classify("ListAccessKeys", e))?;
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                Some(AccessKeyInfo {
                    active: k.status() == Some(&StatusType::Active),
                    created: k.create_date().map(|d| d.secs().max(0) as u64).unwrap_or(0),
                    access_key_id: k.access_key_id?,
                })
            })
            .collect())
    }

    async fn create_access_key(&self, user_name: &str) -> Result<NewAccessKey> {
        let out = self
            .client
            .create_access_key()
            .user_name(user_name)
            .send()
            .await
            .map_err(|e| missing_or_classified("CreateAccessKey", e))?;
        let key = out.access_key().ok_or_else(|| Error::retryable("CreateAccessKey", "no key in the answer"))?;
        Ok(NewAccessKey {
            access_key_id: key.access_key_id().to_owned(),
            secret_access_key: Sensitive::new(key.secret_access_key()),
        })
    }

    async fn delete_access_key(&self, user_name: &str, access_key_id: &str) -> Result<()> {
        match self.client.delete_access_key().user_name(user_name).access_key_id(access_key_id).send().await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("NoSuchEntity") => Ok(()),
            Err(e) => Err(classify("DeleteAccessKey", e)),
        }
    }
}

impl KeyRetirement for IamDirectory {
    async fn list_user_names_under(&self, path_prefix: &str) -> Result<Vec<String>> {
        let users =
            self.client.list_users().path_prefix(path_prefix).into_paginator().items().send().try_collect().await;
        Ok(users.map_err(|e| classify("ListUsers", e))?.into_iter().map(|u| u.user_name).collect())
    }

    async fn set_access_key_active(&self, user_name: &str, access_key_id: &str, active: bool) -> Result<()> {
        let status = if active { StatusType::Active } else { StatusType::Inactive };
        self.client
            .update_access_key()
            .user_name(user_name)
            .access_key_id(access_key_id)
            .status(status)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("UpdateAccessKey", e))
    }

    async fn access_key_last_used(&self, access_key_id: &str) -> Result<Option<u64>> {
        let out = match self.client.get_access_key_last_used().access_key_id(access_key_id).send().await {
            Ok(out) => out,
            // Deleted meanwhile: it will not be used again either.
            Err(e) if code(&e) == Some("NoSuchEntity") => return Ok(None),
            Err(e) => return Err(classify("GetAccessKeyLastUsed", e)),
        };
        Ok(out.access_key_last_used().and_then(|u| u.last_used_date()).map(|d| d.secs().max(0) as u64))
    }
}

/// NoSuchEntity is "already gone" for a removal: a rerun after a partial
/// offboarding meets it for what the first run removed. DeleteConflict (409:
/// DeleteUser while the user still holds something, DeleteVirtualMFADevice
/// while the device is assigned) is passing, not a refusal: something was
/// added since the holdings were read, and the rerun reads them again and
/// plans the rest. `classify` alone would call it permanent (a 4xx not in
/// its list), which would settle the offboarding with the user still there.
fn gone_is_done<T, E>(operation: &'static str, result: std::result::Result<T, SdkError<E>>) -> Result<()>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("NoSuchEntity") => Ok(()),
        Err(e) if code(&e) == Some("DeleteConflict") => {
            Err(Error::retryable(operation, aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()))
        }
        Err(e) => Err(classify(operation, e)),
    }
}

/// A virtual MFA device's serial number is its ARN, of resource type `mfa`
/// (a FIDO security key's is an ARN too, of type `u2f`: not virtual, only
/// deactivated; a hardware token's is no ARN).
fn is_virtual_mfa(serial: &str) -> bool {
    serial.starts_with("arn:") && serial.split(':').nth(5).is_some_and(|resource| resource.starts_with("mfa/"))
}

impl IamDirectory {
    /// Whether the virtual MFA device carries `MFA_OWNER_TAG` = `user_id`
    /// (a device gone meanwhile does not).
    async fn marked_for(&self, serial: &str, user_id: &str) -> Result<bool> {
        if user_id.is_empty() {
            return Ok(false);
        }
        let tags = self.client.list_mfa_device_tags().serial_number(serial).into_paginator().items().send();
        match tags.try_collect().await {
            Ok(tags) => Ok(tags.iter().any(|t| t.key() == crate::lifecycle::MFA_OWNER_TAG && t.value() == user_id)),
            Err(e) if code(&e) == Some("NoSuchEntity") => Ok(false),
            Err(e) => Err(classify("ListMFADeviceTags", e)),
        }
    }
}

type SdkError<E> =
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>;

impl crate::ports::Offboarding for IamDirectory {
    async fn holdings(&self, user_name: &str) -> Result<Option<crate::lifecycle::UserHoldings>> {
        let c = &self.client;
        // GetUser itself, not `Users::get_user`: the user's id is wanted.
        let user = match c.get_user().user_name(user_name).send().await {
            Ok(out) => out.user,
            Err(e) if code(&e) == Some("NoSuchEntity") => None,
            Err(e) => return Err(classify("GetUser", e)),
        };
        let Some(user) = user else {
            return Ok(None);
        };
        let login_profile = match c.get_login_profile().user_name(user_name).send().await {
            Ok(_) => true,
            Err(e) if code(&e) == Some("NoSuchEntity") => false,
            Err(e) => return Err(classify("GetLoginProfile", e)),
        };
        let keys = c.list_access_keys().user_name(user_name).into_paginator().items().send().try_collect().await;
        let access_keys = keys
            .map_err(|e| classify("ListAccessKeys", e))?
            .into_iter()
            .filter_map(|k| Some((k.access_key_id.clone()?, k.status() == Some(&StatusType::Active))))
            .collect();
        let certs = c.list_signing_certificates().user_name(user_name).into_paginator().items().send();
        let signing_certificates = certs
            .try_collect()
            .await
            .map_err(|e| classify("ListSigningCertificates", e))?
            .into_iter()
            .map(|x| x.certificate_id)
            .collect();
        let ssh = c.list_ssh_public_keys().user_name(user_name).into_paginator().items().send();
        let ssh_public_keys = ssh
            .try_collect()
            .await
            .map_err(|e| classify("ListSSHPublicKeys", e))?
            .into_iter()
            .map(|x| x.ssh_public_key_id)
            .collect();
        let service = c.list_service_specific_credentials().user_name(user_name).send().await;
        let service_specific_credentials = service
            .map_err(|e| classify("ListServiceSpecificCredentials", e))?
            .service_specific_credentials()
            .iter()
            .map(|x| x.service_specific_credential_id().to_owned())
            .collect();
        let mfa = c.list_mfa_devices().user_name(user_name).into_paginator().items().send();
        let mfa_devices: Vec<(String, bool)> = mfa
            .try_collect()
            .await
            .map_err(|e| classify("ListMFADevices", e))?
            .into_iter()
            .map(|d| {
                let is_virtual = is_virtual_mfa(&d.serial_number);
                (d.serial_number, is_virtual)
            })
            .collect();
        let mut marked_mfa_devices = Vec::new();
        for (serial, is_virtual) in &mfa_devices {
            if *is_virtual && self.marked_for(serial, &user.user_id).await? {
                marked_mfa_devices.push(serial.clone());
            }
        }
        let perms = crate::ports::Users::permissions(self, user_name).await?;
        Ok(Some(crate::lifecycle::UserHoldings {
            user_id: user.user_id.clone(),
            login_profile,
            access_keys,
            signing_certificates,
            ssh_public_keys,
            service_specific_credentials,
            mfa_devices,
            marked_mfa_devices,
            groups: perms.groups,
            managed_policies: perms.managed_policies,
            inline_policies: perms.inline_policies,
            tags: user.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        }))
    }

    async fn unassigned_mfa_devices_marked_for(&self, user_id: &str) -> Result<Vec<String>> {
        let devices = self
            .client
            .list_virtual_mfa_devices()
            .assignment_status(AssignmentStatusType::Unassigned)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify("ListVirtualMFADevices", e))?;
        let mut marked = Vec::new();
        // The listing carries no tags (IAM documents that it leaves them
        // out), so each device's are read.
        for device in devices {
            if self.marked_for(&device.serial_number, user_id).await? {
                marked.push(device.serial_number);
            }
        }
        Ok(marked)
    }

    async fn apply(&self, user_name: &str, step: &crate::lifecycle::Step) -> Result<()> {
        use crate::lifecycle::{Step, OFFBOARDED_ON_TAG, OFFBOARDED_TAG};
        let c = &self.client;
        let u = user_name;
        match step {
            Step::DeleteLoginProfile => {
                gone_is_done("DeleteLoginProfile", c.delete_login_profile().user_name(u).send().await)
            }
            Step::DeactivateAccessKey(k) => gone_is_done(
                "UpdateAccessKey",
                c.update_access_key().user_name(u).access_key_id(k).status(StatusType::Inactive).send().await,
            ),
            Step::DeleteAccessKey(k) => {
                gone_is_done("DeleteAccessKey", c.delete_access_key().user_name(u).access_key_id(k).send().await)
            }
            Step::DeleteSigningCertificate(id) => gone_is_done(
                "DeleteSigningCertificate",
                c.delete_signing_certificate().user_name(u).certificate_id(id).send().await,
            ),
            Step::DeleteSshPublicKey(id) => gone_is_done(
                "DeleteSSHPublicKey",
                c.delete_ssh_public_key().user_name(u).ssh_public_key_id(id).send().await,
            ),
            Step::DeleteServiceSpecificCredential(id) => gone_is_done(
                "DeleteServiceSpecificCredential",
                c.delete_service_specific_credential().user_name(u).service_specific_credential_id(id).send().await,
            ),
            Step::TagMfaDevice { serial, user_id } => {
                let tag = Tag::builder()
                    .key(crate::lifecycle::MFA_OWNER_TAG)
                    .value(user_id)
                    .build()
                    .map_err(|e| Error::permanent("TagMFADevice", e.to_string()))?;
                gone_is_done("TagMFADevice", c.tag_mfa_device().serial_number(serial).tags(tag).send().await)
            }
            Step::DeactivateMfaDevice(serial) => gone_is_done(
                "DeactivateMFADevice",
                c.deactivate_mfa_device().user_name(u).serial_number(serial).send().await,
            ),
            Step::DeleteVirtualMfaDevice(serial) => {
                gone_is_done("DeleteVirtualMFADevice", c.delete_virtual_mfa_device().serial_number(serial).send().await)
            }
            Step::RemoveUserFromGroup(g) => {
                gone_is_done("RemoveUserFromGroup", c.remove_user_from_group().user_name(u).group_name(g).send().await)
            }
            Step::DetachUserPolicy(arn) => {
                gone_is_done("DetachUserPolicy", c.detach_user_policy().user_name(u).policy_arn(arn).send().await)
            }
            Step::DeleteUserPolicy(name) => {
                gone_is_done("DeleteUserPolicy", c.delete_user_policy().user_name(u).policy_name(name).send().await)
            }
            Step::TagOffboarded { ticket_id, on } => {
                let tag = |k: &str, v: &str| {
                    Tag::builder().key(k).value(v).build().map_err(|e| Error::permanent("TagUser", e.to_string()))
                };
                let tags = vec![tag(OFFBOARDED_TAG, ticket_id)?, tag(OFFBOARDED_ON_TAG, on)?];
                gone_is_done("TagUser", c.tag_user().user_name(u).set_tags(Some(tags)).send().await)
            }
            Step::DeleteUser => gone_is_done("DeleteUser", c.delete_user().user_name(u).send().await),
        }
    }
}

impl crate::ports::AccessChanges for IamDirectory {
    async fn access_of(&self, user_name: &str) -> Result<Option<Permissions>> {
        // ListGroupsForUser answers NoSuchEntity for a user that does not
        // exist: no GetUser needed to tell.
        let groups = self.client.list_groups_for_user().user_name(user_name).into_paginator().items().send();
        let groups = match groups.try_collect().await {
            Ok(groups) => groups,
            Err(e) if code(&e) == Some("NoSuchEntity") => return Ok(None),
            Err(e) => return Err(classify("ListGroupsForUser", e)),
        };
        let attached = self.client.list_attached_user_policies().user_name(user_name).into_paginator().items().send();
        let attached = match attached.try_collect().await {
            Ok(attached) => attached,
            // Deleted between the two reads.
            Err(e) if code(&e) == Some("NoSuchEntity") => return Ok(None),
            Err(e) => return Err(classify("ListAttachedUserPolicies", e)),
        };
        Ok(Some(Permissions {
            groups: groups.into_iter().map(|g| g.group_name).collect(),
            managed_policies: attached.into_iter().filter_map(|p| p.policy_arn).collect(),
            ..Default::default()
        }))
    }

    async fn apply_access(&self, user_name: &str, step: &crate::access::AccessStep) -> Result<()> {
        use crate::access::AccessStep;
        let (c, u) = (&self.client, user_name);
        match step {
            // NoSuchEntity: no longer a member, no longer attached (a rerun).
            AccessStep::RemoveUserFromGroup(g) => {
                gone_is_done("RemoveUserFromGroup", c.remove_user_from_group().user_name(u).group_name(g).send().await)
            }
            AccessStep::DetachUserPolicy(arn) => gone_is_done(
                "DetachUserPolicy",
                c.detach_user_policy().user_name(u).policy_arn(arn.as_str()).send().await,
            ),
            // IAM answers both for what is already so without an error.
            AccessStep::AddUserToGroup(g) => Provisioning::add_user_to_group(self, u, g).await,
            AccessStep::AttachUserPolicy(arn) => Provisioning::attach_user_policy(self, u, arn).await,
        }
    }
}
