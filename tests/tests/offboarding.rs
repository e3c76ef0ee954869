//! Offboarding against the emulator (issue 14, in progress): the AWS side of
//! the `Offboarding` port deletes a user holding a login profile, two access
//! keys, a virtual MFA device, an inline policy, a managed policy and two
//! groups, every removal made before DeleteUser; a second run finds nothing
//! to do. moto does not implement ListServiceSpecificCredentials: the fault
//! proxy answers it (none) as IAM would.
#![recursion_limit = "256"]

use shared::lifecycle::{offboard, OffboardAction, Step};
use shared::names::UserName;
use tests::proxy::FaultProxy;
use tests::{unique, Harness};

const NO_SERVICE_CREDENTIALS: &str = "<ListServiceSpecificCredentialsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials/></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>";

#[tokio::test]
async fn a_loaded_user_is_deleted_cleanly_with_every_removal_before_delete_user() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let name = unique("off");
    proxy.answer("ListServiceSpecificCredentials", &name, NO_SERVICE_CREDENTIALS.to_owned());
    let iam = &h.iam;
    iam.create_user().user_name(&name).send().await.unwrap();
    iam.create_login_profile().user_name(&name).password("Xy7!long-enough-password").send().await.unwrap();
    for _ in 0..2 {
        iam.create_access_key().user_name(&name).send().await.unwrap();
    }
    for group in ["Developers", "ReadOnly"] {
        iam.add_user_to_group().user_name(&name).group_name(group).send().await.unwrap();
    }
    iam.attach_user_policy()
        .user_name(&name)
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    iam.put_user_policy().user_name(&name).policy_name("legacy").policy_document(doc).send().await.unwrap();
    let mfa = iam.create_virtual_mfa_device().virtual_mfa_device_name(&name).send().await.unwrap();
    let serial = mfa.virtual_mfa_device().unwrap().serial_number().to_owned();
    iam.enable_mfa_device()
        .user_name(&name)
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();

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
    let devices = iam.list_virtual_mfa_devices().send().await.unwrap();
    assert!(devices.virtual_mfa_devices().iter().all(|d| d.serial_number() != serial), "the MFA device was left");
    assert!(offboard(&directory, &user, OffboardAction::Delete, "OFF-1", "2026-11-25").await.unwrap().is_empty());
}
