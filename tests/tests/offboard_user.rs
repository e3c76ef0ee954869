//! Offboarding through the bus (CONTRACT.md section 6): users onboarded by
//! the pipeline are disabled and deleted by an `Offboarding Ticket Approved`
//! event, with every removal IAM requires made (by the offboard-user stage)
//! before DeleteUser, the deleted user's secret scheduled for deletion and
//! its name held; a user the pipeline did not create refuses the ticket and
//! is left exactly as it was; a replay changes nothing.
//!
//! moto lacks ListServiceSpecificCredentials (the fault proxy answers it as
//! IAM would) and MFA device tags (the proxy keeps them), and its sent-mail page breaks once a user is deleted: mail is
//! read from what the stages handed SES (`LocalPipeline::emails_sent`).
#![recursion_limit = "256"]

use serde_json::json;
use shared::lifecycle::{OFFBOARDED_ON_TAG, OFFBOARDED_TAG};
use shared::ports::Stage;
use tests::pipeline::STAGE_KEYS;
use tests::proxy::FaultProxy;
use tests::{two_user_ticket, unique, ExistingUsers, Harness};

const NO_SERVICE_CREDENTIALS: &str = "<ListServiceSpecificCredentialsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials/></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>";

fn offboarding(ticket_id: &str, requested_by: &str, users: serde_json::Value) -> serde_json::Value {
    json!({
        "source": "onboarding.tickets", "detail-type": "Offboarding Ticket Approved",
        "detail": {"ticket_id": ticket_id, "requested_by": requested_by, "users": users}
    })
}

async fn tags_of(h: &Harness, name: &str) -> std::collections::BTreeMap<String, String> {
    let out = h.iam.list_user_tags().user_name(name).send().await.expect("ListUserTags");
    out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

/// The IAM writes offboard-user made, in order, as (action, form body).
fn offboard_writes(proxy: &FaultProxy) -> Vec<(String, String)> {
    let key = STAGE_KEYS.iter().find(|(s, _)| *s == "offboard-user").map(|(_, k)| *k).unwrap();
    proxy
        .requests()
        .into_iter()
        .filter(|r| {
            r.access_key_id == key
                && r.service == "iam"
                && !r.action.starts_with("Get")
                && !r.action.starts_with("List")
        })
        .map(|r| (r.action, r.body))
        .collect()
}

#[tokio::test]
async fn an_offboarding_ticket_disables_one_user_and_deletes_another_cleanly() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    proxy.emulate_mfa_device_tags();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let (onboarding, names) = two_user_ticket("ONB", &s);
    let drained = h.run(&onboarding).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    let (both, keys) = (&names[0], &names[1]);
    for name in &names {
        proxy.answer("ListServiceSpecificCredentials", name, NO_SERVICE_CREDENTIALS.to_owned());
    }
    // What a person adds after onboarding: an MFA device, a second key, and
    // (an administrator) an inline policy and another group.
    let iam = &h.iam;
    let mfa = iam.create_virtual_mfa_device().virtual_mfa_device_name(keys.as_str()).send().await.unwrap();
    let serial = mfa.virtual_mfa_device().unwrap().serial_number().to_owned();
    iam.enable_mfa_device()
        .user_name(keys)
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();
    iam.create_access_key().user_name(keys).send().await.unwrap();
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    iam.put_user_policy().user_name(keys).policy_name("legacy").policy_document(doc).send().await.unwrap();
    iam.add_user_to_group().user_name(keys).group_name("ReadOnly").send().await.unwrap();
    iam.attach_user_policy().user_name(keys).policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess").send().await.unwrap();
    proxy.record_requests();

    let requester = format!("req{s}@example.com");
    let ticket_id = format!("OFF-{s}");
    let ticket = offboarding(
        &ticket_id,
        &requester,
        json!([{"user_name": both, "action": "disable"}, {"user_name": keys, "action": "delete"}]),
    );
    let drained = h.run(&ticket).await;
    assert_eq!((drained.dead_lettered, drained.retried), (0, 0), "{drained:?}");

    // Disabled: still there, nothing lets it in or grants anything, tagged.
    assert!(iam.get_user().user_name(both).send().await.is_ok(), "a disabled user was deleted");
    assert!(iam.get_login_profile().user_name(both).send().await.is_err(), "console password left");
    let left = iam.list_access_keys().user_name(both).send().await.unwrap();
    assert!(!left.access_key_metadata().is_empty());
    assert!(left.access_key_metadata().iter().all(|k| k.status().map(|s| s.as_str()) == Some("Inactive")), "{left:?}");
    assert!(h.groups_of(both).await.is_empty() && h.attached_to(both).await.is_empty());
    let tags = tags_of(&h, both).await;
    assert_eq!(tags[OFFBOARDED_TAG], ticket_id);
    assert_eq!(tags[OFFBOARDED_ON_TAG], shared::text::date(shared::ports::Clock::now(&h.pipeline.clock)));

    // Deleted: gone, its MFA device too, every removal before DeleteUser.
    assert!(iam.get_user().user_name(keys).send().await.is_err(), "the deleted user is still there");
    assert!(!tests::virtual_mfa_serials(iam, false).await.contains(&serial), "its MFA device was left");
    let writes = offboard_writes(&proxy);
    let of_keys: Vec<&str> = writes
        .iter()
        .filter(|(_, body)| {
            body.contains(&format!("UserName={keys}")) || body.contains(&serial.replace(':', "%3A").replace('/', "%2F"))
        })
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(of_keys.last(), Some(&"DeleteUser"), "{of_keys:?}");
    for needed in [
        "DeactivateMFADevice",
        "DeleteVirtualMFADevice",
        "DeleteAccessKey",
        "RemoveUserFromGroup",
        "DetachUserPolicy",
        "DeleteUserPolicy",
    ] {
        assert!(of_keys.contains(&needed), "{needed} not made before DeleteUser: {of_keys:?}");
    }
    assert_eq!(of_keys.iter().filter(|a| **a == "DeleteAccessKey").count(), 2, "{of_keys:?}");
    // Its secret: scheduled for deletion, recoverable meanwhile.
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let secret = format!("{}{keys}", h.pipeline.env.settings.secret_prefix);
    let described = sm.describe_secret().secret_id(&secret).send().await.expect("the secret is kept meanwhile");
    assert!(described.deleted_date().is_some(), "the secret is not scheduled for deletion");

    let statuses: Vec<(String, Stage)> =
        h.statuses(&format!("offboarding#{ticket_id}")).await.into_iter().map(|r| (r.user_name, r.stage)).collect();
    assert_eq!(statuses, [(both.clone(), Stage::Disabled), (keys.clone(), Stage::Deleted)]);
    let told: Vec<_> =
        h.pipeline.emails_sent().into_iter().filter(|(_, subject)| subject.contains(&ticket_id)).collect();
    assert_eq!(told, [(requester.clone(), format!("Offboarding ticket {ticket_id}: 2 user(s) offboarded, 0 refused"))]);

    // A replay of the same ticket changes nothing and tells nobody again.
    let before = offboard_writes(&proxy).len();
    h.run(&ticket).await;
    assert_eq!(offboard_writes(&proxy).len(), before, "a replay wrote to IAM");
    assert_eq!(h.pipeline.emails_sent().iter().filter(|(_, subject)| subject.contains(&ticket_id)).count(), 1);

    // The deleted name cannot be onboarded again while its secret can be recovered.
    let again = json!({"ticket_id": format!("ONB2-{s}"), "requested_by": requester,
        "users": [{"user_name": keys, "email": format!("{keys}@example.com"), "access": {"programmatic": true}}]});
    h.run(&again).await;
    let refused = h.statuses(&format!("ONB2-{s}")).await;
    assert_eq!(refused[0].stage, Stage::Failed, "{refused:?}");
    assert!(
        refused[0].reason.as_deref().unwrap_or_default().contains(&format!("deleted by ticket {ticket_id}")),
        "{refused:?}"
    );
    assert!(iam.get_user().user_name(keys).send().await.is_err(), "re-created while its secret is pending deletion");
}

#[tokio::test]
async fn users_the_pipeline_did_not_create_refuse_the_ticket_and_stay_as_they_were() {
    let proxy = FaultProxy::start(&tests::moto::shared().endpoint).await.unwrap();
    proxy.emulate_mfa_device_tags();
    let h = Harness::at(&proxy.endpoint, |_| {}).await;
    let s = unique("");
    let (onboarding, names) = two_user_ticket("ONB", &s);
    h.run(&onboarding).await;
    let existing = ExistingUsers::create(&h.iam, &s).await;
    // Tagged as if by a ticket the pipeline's records do not hold it for.
    let all =
        [names[0].clone(), existing.unmanaged.clone(), existing.other_ticket.clone(), existing.admin_template.clone()];
    let before = h.state(&s, &all).await;
    let tags_before = tags_of(&h, &existing.other_ticket).await;
    proxy.record_requests();
    let ticket_id = format!("OFF-{s}");
    let ticket = offboarding(
        &ticket_id,
        &format!("req{s}@example.com"),
        json!([{"user_name": names[0], "action": "delete"}, {"user_name": existing.unmanaged, "action": "delete"},
               {"user_name": existing.other_ticket}, {"user_name": existing.admin_template, "action": "delete"}]),
    );
    let drained = h.run(&ticket).await;
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    assert!(offboard_writes(&proxy).is_empty(), "a refused ticket wrote to IAM: {:?}", offboard_writes(&proxy));
    let after = h.state(&s, &all).await;
    let emails = after.iter().filter(|l| l.starts_with("email ")).count();
    assert_eq!(
        before.iter().filter(|l| !l.starts_with("email ")).collect::<Vec<_>>(),
        after.iter().filter(|l| !l.starts_with("email ")).collect::<Vec<_>>()
    );
    assert!(emails >= 1);
    assert_eq!(tags_of(&h, &existing.other_ticket).await, tags_before);
    let statuses = h.statuses(&format!("offboarding#{ticket_id}")).await;
    assert!(statuses.iter().all(|r| r.stage == Stage::Failed), "{statuses:?}");
    let reason_of =
        |n: &str| statuses.iter().find(|r| r.user_name == n).and_then(|r| r.reason.clone()).unwrap_or_default();
    assert!(reason_of(&existing.unmanaged).contains("not created by iam-provisioner"), "{statuses:?}");
    assert!(reason_of(&existing.other_ticket).contains("records hold no such user"), "{statuses:?}");
    assert!(reason_of(&names[0]).contains("refused as a whole"), "{statuses:?}");
    let told: Vec<_> =
        h.pipeline.emails_sent().into_iter().filter(|(_, subject)| subject.contains(&ticket_id)).collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].1.contains("refused, nothing was changed"), "{told:?}");
}
