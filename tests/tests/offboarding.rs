//! Offboarding against the emulator (issue 14, in progress): the AWS side of
//! the `Offboarding` port deletes a user holding a login profile, two access
//! keys, a virtual MFA device, an inline policy, a managed policy and two
//! groups, every removal made before DeleteUser; a second run finds nothing
//! to do. moto does not implement ListServiceSpecificCredentials: the fault
//! proxy answers it (none) as IAM would. moto refuses DeleteUser only while
//! a policy is attached; IAM refuses it (409 DeleteConflict) while anything
//! remains, which the proxy answers as IAM spells it. moto implements
//! neither TagMFADevice nor ListMFADeviceTags: the proxy keeps the tags of
//! virtual MFA devices (`emulate_mfa_device_tags`). A deleted user's secret
//! is scheduled for deletion once, through the `SecretStore` port.
#![recursion_limit = "256"]

use shared::lifecycle::{offboard, OffboardAction, Step, MFA_OWNER_TAG};
use shared::names::UserName;
use tests::proxy::{Fault, FaultProxy};
use tests::{unique, Harness};

const NO_SERVICE_CREDENTIALS: &str = "<ListServiceSpecificCredentialsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials/></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>";

/// IAM's answer to DeleteUser while the user still holds something (Query
/// API error shape: `ErrorResponse/Error/{Type,Code,Message}`, HTTP 409).
const DELETE_CONFLICT: &str = "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>DeleteConflict</Code><Message>Cannot delete entity, must delete MFA device first.</Message></Error><RequestId>9f1c2a4e-5b7d-4e21-8a3f-0c6d1e2b3a45</RequestId></ErrorResponse>";

/// A user holding a login profile, two access keys, two groups, a managed
/// and an inline policy and an enabled virtual MFA device (its serial
/// returned), made directly on the emulator.
async fn loaded_user(iam: &aws_sdk_iam::Client, name: &str) -> String {
    iam.create_user().user_name(name).send().await.unwrap();
    iam.create_login_profile().user_name(name).password("Xy7!long-enough-password").send().await.unwrap();
    for _ in 0..2 {
        iam.create_access_key().user_name(name).send().await.unwrap();
    }
    for group in ["Developers", "ReadOnly"] {
        iam.add_user_to_group().user_name(name).group_name(group).send().await.unwrap();
    }
    iam.attach_user_policy().user_name(name).policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess").send().await.unwrap();
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    iam.put_user_policy().user_name(name).policy_name("legacy").policy_document(doc).send().await.unwrap();
    let mfa = iam.create_virtual_mfa_device().virtual_mfa_device_name(name).send().await.unwrap();
    let serial = mfa.virtual_mfa_device().unwrap().serial_number().to_owned();
    iam.enable_mfa_device()
        .user_name(name)
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();
    serial
}

/// The proxy in front of the shared emulator, answering what moto lacks.
async fn proxy_for(name: &str) -> FaultProxy {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    proxy.answer("ListServiceSpecificCredentials", name, NO_SERVICE_CREDENTIALS.to_owned());
    proxy.emulate_mfa_device_tags();
    proxy
}

async fn unassigned_devices(iam: &aws_sdk_iam::Client) -> Vec<String> {
    tests::virtual_mfa_serials(iam, true).await
}

/// From moto's request recorder: every removal `loaded_user` needs reached
/// the emulator, each before the DeleteUser that did.
fn assert_every_removal_before_delete_user(endpoint: &str, name: &str, serial: &str) {
    let calls: Vec<String> = tests::recorded_calls(endpoint)
        .into_iter()
        .filter(|c| c.get("UserName") == Some(name) || c.get("SerialNumber") == Some(serial))
        .filter_map(|c| c.get("Action").map(str::to_owned))
        .collect();
    let delete_user =
        calls.iter().position(|a| a == "DeleteUser").unwrap_or_else(|| panic!("no DeleteUser: {calls:?}"));
    for (action, times) in [
        ("DeleteLoginProfile", 1),
        ("DeleteAccessKey", 2),
        ("DeactivateMFADevice", 1),
        ("DeleteVirtualMFADevice", 1),
        ("RemoveUserFromGroup", 2),
        ("DetachUserPolicy", 1),
        ("DeleteUserPolicy", 1),
    ] {
        let before = calls[..delete_user].iter().filter(|a| *a == action).count();
        assert_eq!(before, times, "{action} before DeleteUser, in {calls:?}");
        assert!(!calls[delete_user..].contains(&action.to_owned()), "{action} after DeleteUser, in {calls:?}");
    }
}

#[tokio::test]
async fn a_loaded_user_is_deleted_cleanly_with_every_removal_before_delete_user() {
    let name = unique("off");
    let proxy = proxy_for(&name).await;
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let iam = &h.iam;
    let serial = loaded_user(iam, &name).await;
    tests::start_recording(&h.endpoint);

    let directory = shared::aws::IamDirectory::new(&tests::sdk_config(&proxy.endpoint).await);
    let user = UserName::parse(&name).unwrap();
    let done = offboard(&directory, &user, OffboardAction::Delete, "OFF-1", "2026-11-25").await.unwrap();
    assert!(iam.get_user().user_name(&name).send().await.is_err(), "the user is still there");
    assert_eq!(done.last(), Some(&Step::DeleteUser));
    for needed in [
        Step::DeleteLoginProfile,
        Step::DeactivateMfaDevice(serial.clone()),
        Step::DeleteVirtualMfaDevice(serial.clone()),
        Step::RemoveUserFromGroup("Developers".into()),
        Step::RemoveUserFromGroup("ReadOnly".into()),
        Step::DetachUserPolicy("arn:aws:iam::aws:policy/ReadOnlyAccess".into()),
        Step::DeleteUserPolicy("legacy".into()),
    ] {
        assert!(done.contains(&needed), "{needed:?} missing from {done:?}");
    }
    assert_eq!(done.iter().filter(|s| matches!(s, Step::DeleteAccessKey(_))).count(), 2);
    assert!(!tests::virtual_mfa_serials(iam, false).await.contains(&serial), "the MFA device was left");
    assert_every_removal_before_delete_user(&h.endpoint, &name, &serial);
    assert!(offboard(&directory, &user, OffboardAction::Delete, "OFF-1", "2026-11-25").await.unwrap().is_empty());
}

/// IAM refuses DeleteUser with 409 DeleteConflict while anything remains
/// (here: as if an MFA device had been enabled after the holdings were
/// read). That is passing, not a refusal of the ticket nor the deployment's
/// fault: the user stays, and the rerun reads again and finishes.
#[tokio::test]
async fn delete_conflict_on_delete_user_is_passing_and_the_rerun_finishes_the_deletion() {
    let name = unique("conflict");
    let proxy = proxy_for(&name).await;
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let serial = loaded_user(&h.iam, &name).await;
    tests::start_recording(&h.endpoint);
    proxy.answer_with("DeleteUser", &format!("UserName={name}"), "409 Conflict", DELETE_CONFLICT.to_owned(), 1);

    let directory = shared::aws::IamDirectory::new(&tests::sdk_config(&proxy.endpoint).await);
    let user = UserName::parse(&name).unwrap();
    let err = offboard(&directory, &user, OffboardAction::Delete, "OFF-2", "2026-11-25").await.unwrap_err();
    assert!(err.to_string().contains("DeleteConflict"), "{err}");
    assert!(err.is_retryable(), "not retried: {err:?}");
    assert!(!err.is_refusal(), "refused as if the ticket were wrong: {err:?}");
    assert!(!matches!(err, shared::Error::Deployment { .. }), "blamed on the deployment: {err:?}");
    assert!(h.iam.get_user().user_name(&name).send().await.is_ok(), "the user is gone after a refused DeleteUser");

    let done = offboard(&directory, &user, OffboardAction::Delete, "OFF-2", "2026-11-25").await.unwrap();
    assert_eq!(done, [Step::DeleteUser], "the rerun planned more than what was left");
    assert!(h.iam.get_user().user_name(&name).send().await.is_err(), "the rerun did not delete the user");
    assert_every_removal_before_delete_user(&h.endpoint, &name, &serial);
}

/// A run cut off between DeactivateMFADevice and DeleteVirtualMFADevice
/// leaves the device assigned to nobody: ListMFADevices no longer shows it,
/// and DeleteUser succeeds without it. The mark it got before it was
/// deactivated (the user's IAM id) is how the rerun finds and deletes it;
/// unassigned devices without that exact mark (another user's id, this
/// user's name, none) stay as they are.
#[tokio::test]
async fn a_virtual_mfa_device_deactivated_by_a_cut_off_run_is_deleted_by_the_rerun() {
    let name = unique("mfa");
    let proxy = proxy_for(&name).await;
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let serial = loaded_user(&h.iam, &name).await;
    let user_id = h.iam.get_user().user_name(&name).send().await.unwrap().user().unwrap().user_id().to_owned();
    let via_proxy = aws_sdk_iam::Client::new(&tests::sdk_config(&proxy.endpoint).await);
    let mut others = Vec::new();
    for (suffix, mark) in [("other", Some("AIDAOTHERUSER1234567")), ("byname", Some(name.as_str())), ("unmarked", None)]
    {
        let device = h.iam.create_virtual_mfa_device().virtual_mfa_device_name(format!("{name}{suffix}")).send();
        let device = device.await.unwrap().virtual_mfa_device().unwrap().serial_number().to_owned();
        if let Some(value) = mark {
            let tag = aws_sdk_iam::types::Tag::builder().key(MFA_OWNER_TAG).value(value).build().unwrap();
            via_proxy.tag_mfa_device().serial_number(&device).tags(tag).send().await.unwrap();
        }
        others.push(device);
    }
    proxy.fail("DeleteVirtualMFADevice", 1, Fault::Reset);

    let directory = shared::aws::IamDirectory::new(&tests::sdk_config(&proxy.endpoint).await);
    let user = UserName::parse(&name).unwrap();
    let err = offboard(&directory, &user, OffboardAction::Delete, "OFF-3", "2026-11-25").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // The leak's shape: no longer the user's, still there, marked as theirs.
    let listed = h.iam.list_mfa_devices().user_name(&name).send().await.unwrap();
    assert!(listed.mfa_devices().is_empty(), "still assigned: {listed:?}");
    assert!(unassigned_devices(&h.iam).await.contains(&serial), "not left unassigned");
    assert_eq!(proxy.mfa_device_tags(&serial).get(MFA_OWNER_TAG), Some(&user_id));

    let rerun = offboard(&directory, &user, OffboardAction::Delete, "OFF-3", "2026-11-25").await.unwrap();
    assert_eq!(rerun.first(), Some(&Step::DeleteVirtualMfaDevice(serial.clone())), "{rerun:?}");
    assert_eq!(rerun.last(), Some(&Step::DeleteUser));
    assert!(h.iam.get_user().user_name(&name).send().await.is_err(), "the user is still there");
    let left = unassigned_devices(&h.iam).await;
    assert!(!left.contains(&serial), "the device leaked");
    for other in &others {
        assert!(left.contains(other), "{other} deleted without being proven the user's");
    }
    for other in others {
        h.iam.delete_virtual_mfa_device().serial_number(other).send().await.unwrap();
    }
}

/// A deleted user's secret is scheduled for deletion (CONTRACT.md section 6)
/// once: a second call (a redelivery) answers the same date and makes no
/// DeleteSecret. Meanwhile the name is held: CreateSecret of it is refused.
/// What refuses it differs: Secrets Manager answers InvalidRequestException
/// ("You can't create this secret because a secret with this name is
/// already scheduled for deletion."); moto 5.2 answers
/// ResourceExistsException, and even answers success (the old secret's ARN)
/// when the request repeats the old secret's version token and value.
#[tokio::test]
async fn a_secret_is_scheduled_for_deletion_once_and_its_name_is_held_meanwhile() {
    use shared::ports::SecretStore;
    use shared::secret::Sensitive;
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let store = shared::aws::SecretsManagerStore::new(&tests::sdk_config(&proxy.endpoint).await);
    let name = format!("iam-provisioner/{}", unique("gone"));
    let value = Sensitive::new(r#"{"user_name":"x"}"#);
    let token = shared::secret::new_version_id().unwrap();
    let arn = store.create(&name, &value, &Default::default(), &token, None).await.unwrap();
    proxy.record_requests();

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let date = store.schedule_deletion(&name, 7).await.unwrap().expect("no such secret");
    assert!(date.abs_diff(now + 7 * 86_400) < 60, "deletion at {date}, expected about {}", now + 7 * 86_400);
    // Again, by ARN and with the default window: the first date stands.
    assert_eq!(store.schedule_deletion(&arn, 30).await.unwrap(), Some(date));
    let deletes = proxy.requests().iter().filter(|r| r.action == "DeleteSecret").count();
    assert_eq!(deletes, 1, "{:?}", proxy.log());
    assert_eq!(store.schedule_deletion(&format!("{name}-never-was"), 30).await.unwrap(), None);

    // Pending deletion: unreadable, and the name is held.
    assert!(store.read(&name).await.is_err(), "read while scheduled for deletion");
    let (no_tags, other_token) = (Default::default(), shared::secret::new_version_id().unwrap());
    let again = store.create(&name, &value, &no_tags, &other_token, None).await.unwrap_err();
    assert!(again.is_refusal(), "{again:?}");
    assert!(again.to_string().contains("ResourceExistsException"), "moto's answer changed: {again}");
    let replay = store.create(&name, &value, &Default::default(), &token, None).await;
    assert_eq!(replay.ok().as_deref(), Some(arn.as_str()), "moto's answer to a replayed CreateSecret changed");
    // Were DeletedDate the date of the request (as ListSecrets' reference
    // words it), it is past: the deletion date is then that plus the window.
    let requested = now - 86_400;
    let describe = format!(r#"{{"ARN":"{arn}","Name":"{name}","DeletedDate":{requested}}}"#);
    proxy.answer_with("DescribeSecret", &name, "200 OK", describe, 1);
    assert_eq!(store.schedule_deletion(&name, 30).await.unwrap(), Some(requested + 30 * 86_400));
    // A window Secrets Manager refuses is the deployment's fault, found
    // before any call.
    let err = store.schedule_deletion(&arn, 31).await.unwrap_err();
    assert!(matches!(err, shared::Error::Deployment { .. }), "{err:?}");
}
