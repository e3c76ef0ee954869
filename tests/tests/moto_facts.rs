//! What the tests assume of the emulator (moto 5.2). Each of these pins a
//! gap the pipeline covers itself or a way the tests read state; if moto
//! changes, one of these fails and says which assumption to revisit.

use aws_sdk_iam::types::Tag;
use tests::{moto, sdk_config, unique};

async fn iam() -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(&moto::shared().endpoint).await)
}

#[tokio::test]
async fn moto_does_not_enforce_case_insensitive_user_names() {
    let iam = iam().await;
    let name = unique("Case");
    iam.create_user().user_name(&name).send().await.unwrap();
    // Real IAM refuses this; create-user checks it against ListUsers.
    iam.create_user().user_name(name.to_lowercase()).send().await.expect("moto now refuses case variants");
    // And exact-name lookups are case-sensitive in moto.
    assert!(iam.get_user().user_name(name.to_uppercase()).send().await.is_err());
}

#[tokio::test]
async fn moto_does_not_enforce_user_name_length_or_charset() {
    let iam = iam().await;
    let long = format!("{}{}", unique("L"), "x".repeat(70));
    iam.create_user().user_name(&long).send().await.expect("moto now refuses names over 64 characters");
}

#[tokio::test]
async fn moto_drops_permissions_boundaries_sent_on_create_user() {
    // Why tests read the boundary from the request recorder.
    let iam = iam().await;
    let name = unique("b");
    iam.create_user()
        .user_name(&name)
        .permissions_boundary("arn:aws:iam::aws:policy/PowerUserAccess")
        .tags(Tag::builder().key("k").value("v").build().unwrap())
        .send()
        .await
        .unwrap();
    let user = iam.get_user().user_name(&name).send().await.unwrap();
    assert!(
        user.user().unwrap().permissions_boundary().is_none(),
        "moto now stores boundaries: read them back instead"
    );
    assert_eq!(user.user().unwrap().tags().len(), 1, "tags come back on GetUser");
}

#[tokio::test]
async fn moto_loads_aws_managed_policies_when_asked() {
    let iam = iam().await;
    for arn in [
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "arn:aws:iam::aws:policy/PowerUserAccess",
        "arn:aws:iam::aws:policy/IAMUserChangePassword",
    ] {
        iam.get_policy().policy_arn(arn).send().await.unwrap_or_else(|e| panic!("{arn}: {e}"));
    }
}

#[tokio::test]
async fn moto_enforces_two_access_keys_per_user() {
    let iam = iam().await;
    let name = unique("k");
    iam.create_user().user_name(&name).send().await.unwrap();
    iam.create_access_key().user_name(&name).send().await.unwrap();
    iam.create_access_key().user_name(&name).send().await.unwrap();
    let third = iam.create_access_key().user_name(&name).send().await.unwrap_err();
    assert_eq!(
        third.as_service_error().and_then(|e| aws_sdk_iam::error::ProvideErrorMetadata::code(e)),
        Some("LimitExceeded")
    );
}

#[tokio::test]
async fn moto_has_no_account_password_policy_by_default() {
    let iam = iam().await;
    let err = iam.get_account_password_policy().send().await.unwrap_err();
    assert_eq!(
        err.as_service_error().and_then(|e| aws_sdk_iam::error::ProvideErrorMetadata::code(e)),
        Some("NoSuchEntity")
    );
}

#[tokio::test]
async fn moto_delivers_eventbridge_events_to_sqs_as_the_envelope_without_account() {
    let h = tests::Harness::new().await;
    let ticket = serde_json::json!({"ticket_id": unique("E-"), "requested_by": "a@example.com", "users": []});
    h.pipeline.deliver(&ticket).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&h.sdk);
    let got = sqs.receive_message().queue_url(&h.pipeline.env.create_user_queue).send().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["detail"], ticket);
    assert_eq!(body["source"], "onboarding.tickets");
    assert!(body.get("account").is_none(), "moto now sends `account`");
}

#[tokio::test]
async fn moto_ignores_password_reset_required_on_create_login_profile() {
    // Why tests read PasswordResetRequired from the request recorder.
    let iam = iam().await;
    let name = unique("r");
    iam.create_user().user_name(&name).send().await.unwrap();
    iam.create_login_profile()
        .user_name(&name)
        .password("Aa1!aaaaaaaaaaaaaaaaa")
        .password_reset_required(true)
        .send()
        .await
        .unwrap();
    let profile = iam.get_login_profile().user_name(&name).send().await.unwrap();
    assert!(!profile.login_profile().unwrap().password_reset_required(), "moto now stores PasswordResetRequired");
}

#[tokio::test]
async fn moto_does_not_enforce_the_account_password_policy() {
    let iam = iam().await;
    let name = unique("w");
    iam.create_user().user_name(&name).send().await.unwrap();
    // Three characters, one class: real IAM refuses this under any policy.
    iam.create_login_profile()
        .user_name(&name)
        .password("abc")
        .send()
        .await
        .expect("moto now enforces a password policy");
}

fn error_code<E: aws_sdk_iam::error::ProvideErrorMetadata>(err: &aws_sdk_iam::error::SdkError<E>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

#[tokio::test]
async fn moto_does_not_implement_mfa_device_tags() {
    // Why offboarding's emulator tests let the fault proxy keep them
    // (`FaultProxy::emulate_mfa_device_tags`).
    let iam = iam().await;
    let device = iam.create_virtual_mfa_device().virtual_mfa_device_name(unique("t")).send().await.unwrap();
    let serial = device.virtual_mfa_device().unwrap().serial_number().to_owned();
    let tag = Tag::builder().key("k").value("v").build().unwrap();
    let tagged = iam.tag_mfa_device().serial_number(&serial).tags(tag).send().await;
    assert!(tagged.is_err(), "moto now implements TagMFADevice: drop the proxy's emulation");
    let listed = iam.list_mfa_device_tags().serial_number(&serial).send().await;
    assert!(listed.is_err(), "moto now implements ListMFADeviceTags: drop the proxy's emulation");
    iam.delete_virtual_mfa_device().serial_number(&serial).send().await.unwrap();
}

#[tokio::test]
async fn moto_refuses_delete_user_only_for_policies() {
    // IAM refuses DeleteUser (409 DeleteConflict) while the user holds
    // anything; moto only for policies, so offboarding's tests read the
    // order of the removals from the request recorder and have the proxy
    // answer DeleteConflict. And IAM refuses to delete a virtual MFA device
    // still assigned; moto deletes it.
    let iam = iam().await;
    let name = unique("dc");
    iam.create_user().user_name(&name).send().await.unwrap();
    iam.create_login_profile().user_name(&name).password("Xy7!long-enough-password").send().await.unwrap();
    iam.create_access_key().user_name(&name).send().await.unwrap();
    let device = iam.create_virtual_mfa_device().virtual_mfa_device_name(&name).send().await.unwrap();
    let serial = device.virtual_mfa_device().unwrap().serial_number().to_owned();
    iam.enable_mfa_device()
        .user_name(&name)
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();
    iam.delete_virtual_mfa_device().serial_number(&serial).send().await.expect("moto now refuses an assigned device");
    iam.attach_user_policy()
        .user_name(&name)
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    let refused = iam.delete_user().user_name(&name).send().await.unwrap_err();
    assert_eq!(error_code(&refused), Some("DeleteConflict"));
    iam.detach_user_policy()
        .user_name(&name)
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    iam.delete_user().user_name(&name).send().await.expect("moto now refuses DeleteUser for a login profile or key");
}
