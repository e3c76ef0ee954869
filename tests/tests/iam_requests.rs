//! Every AWS request the stages make, as the IAM simulator suite
//! (tests/iam, `make iam-sim`) needs them: one deployment named as
//! template.yaml names it (prefix `iam-provisioner`), each stage signing with
//! its own access key (`pipeline::STAGE_KEYS`), a fault proxy keeping every
//! request, and a run that reaches every call the code makes: a ticket with
//! console and programmatic users, groups, managed policies, a custom
//! password and a copy of permissions; a refused ticket; a rotation from
//! successor to deletion; an offboarding that disables one user and deletes
//! another holding every kind of credential, device and policy IAM makes one
//! remove first, and a refused one; an access change; offboard-user's daily
//! run past the retention period, deleting the disabled user. Writes
//! `target/iam-sim/requests.json`; the
//! simulator then proves each request is allowed for the role that made it.
#![recursion_limit = "256"]

use serde_json::{json, Value};
use shared::ports::Clock;
use std::collections::BTreeSet;
use tests::bootstrap::{ensure, Settings};
use tests::pipeline::{LocalPipeline, STAGE_KEYS};
use tests::proxy::FaultProxy;

const PREFIX: &str = "iam-provisioner-";
/// moto lacks ListServiceSpecificCredentials: the proxy answers it as IAM would.
const NO_SERVICE_CREDENTIALS: &str = "<ListServiceSpecificCredentialsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials/></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>";
/// ci-deployer's service-specific credential, and its deletion (moto has neither).
const ONE_SERVICE_CREDENTIAL: &str = "<ListServiceSpecificCredentialsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials><member><UserName>ci-deployer</UserName><Status>Active</Status><ServiceUserName>ci-deployer-at-123456789012</ServiceUserName><CreateDate>2026-01-15T12:00:00Z</CreateDate><ServiceSpecificCredentialId>ACCAEXAMPLESIM000001</ServiceSpecificCredentialId><ServiceName>codecommit.amazonaws.com</ServiceName></member></ServiceSpecificCredentials></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>";
const SERVICE_CREDENTIAL_DELETED: &str = "<DeleteServiceSpecificCredentialResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></DeleteServiceSpecificCredentialResponse>";
/// A self-signed certificate (moto parses what it is given).
const SIGNING_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nMIIBgTCCASegAwIBAgIUfmZUXL57zoG02ApJgW3+kCrkvlEwCgYIKoZIzj0EAwIw\nFjEUMBIGA1UEAwwLY2ktZGVwbG95ZXIwHhcNMjYxMTI1MTgxMTM3WhcNMzYxMTIy\nMTgxMTM3WjAWMRQwEgYDVQQDDAtjaS1kZXBsb3llcjBZMBMGByqGSM49AgEGCCqG\nSM49AwEHA0IABOT6v0kn/8sV0yPcn2WBynxbG7o20OF+5mnHswApXM3sgwCeQd03\n5a0mw0QiSHTzLdJJPT+5JBcAP3mN7lULnNGjUzBRMB0GA1UdDgQWBBTSmcGsEJMd\njsmHf3bpPnKVoYmoHTAfBgNVHSMEGDAWgBTSmcGsEJMdjsmHf3bpPnKVoYmoHTAP\nBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCID5RsFX0w7NzvgW8YW29\nnZHIjBguxqy/d3e6npDfWq9FAiEAuSsMWwHu/Ke3dG/I05raIlXx7vpPucOw2Suo\nTXbhD70=\n-----END CERTIFICATE-----";

#[tokio::test]
async fn every_request_of_a_ticket_and_a_rotation_is_logged_by_stage() {
    let moto = tests::moto::shared();
    let direct = tests::sdk_config(&moto.endpoint).await;
    let env = ensure(&direct, Settings::local_defaults(PREFIX)).await.expect("bootstrap");
    let proxy = FaultProxy::start(&moto.endpoint).await.expect("proxy");
    proxy.emulate_mfa_device_tags();
    proxy.record_requests();
    let pipeline = LocalPipeline::new(&tests::sdk_config(&proxy.endpoint).await, env);

    // A custom password, where a ticket may name one.
    let sm = aws_sdk_secretsmanager::Client::new(&direct);
    let custom = sm
        .create_secret()
        .name(format!("{}priya.n", pipeline.env.settings.custom_password_prefix))
        .secret_string("Correct-Horse-Battery-9!")
        .send()
        .await
        .expect("custom password");
    // A user to copy permissions from: fenced, in an allowed group.
    let iam = aws_sdk_iam::Client::new(&direct);
    iam.create_user()
        .user_name("template.dev")
        .permissions_boundary(pipeline.env.settings.allow.default_boundary.as_str())
        .send()
        .await
        .expect("template user");
    iam.add_user_to_group().user_name("template.dev").group_name("Developers").send().await.expect("group");

    let ticket = json!({
        "ticket_id": "ONB-SIM-1", "requested_by": "it-ops@example.com",
        "users": [
            {"user_name": "emily.chen", "email": "emily.chen@example.com",
             "access": {"console": true, "programmatic": true},
             "groups": ["Power_Users"], "managed_policies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
             "tags": {"team": "sales"}},
            {"user_name": "priya.n", "email": "priya.n@corp.example", "access": {"console": true},
             "console_password": {"mode": "custom", "secret_arn": custom.arn().expect("arn")},
             "copy_permissions_from": "template.dev"},
            {"user_name": "ci-deployer", "email": "platform@example.com", "access": {"programmatic": true}}
        ]
    });
    // Each user's first CreateSecret fails after its key was made: the retry deletes
    // that key (its secret is lost) before issuing the one it stores.
    proxy.fail("CreateSecret", 3, tests::proxy::Fault::ServiceFailure);
    pipeline.deliver(&ticket).await.expect("deliver");
    let drained = pipeline.drain().await.expect("drain");
    assert_eq!(drained.dead_lettered, 0, "{drained:?}");
    // A refused ticket: create-user's refusal email.
    let refused = json!({"ticket_id": "ONB-SIM-2", "requested_by": "it-ops@example.com",
        "users": [{"user_name": "x", "email": "x@example.com", "access": {"console": true}, "groups": ["Admins"]}]});
    pipeline.deliver(&refused).await.expect("deliver");
    pipeline.drain().await.expect("drain");

    // Rotation: a successor at 91 days, the warning, the deactivation, the deletion.
    for day in [91, 96, 98, 108] {
        pipeline.clock.set_offset_days(day);
        let (_, drained) = pipeline.rotate(&rotate_keys::RotationRequest::default()).await.expect("rotate");
        assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "day {day}: {drained:?}");
    }

    // Offboarding: one user disabled, one (with its secret) deleted; then a
    // ticket refused for naming a user the pipeline did not create.
    for name in ["emily.chen", "ci-deployer"] {
        proxy.answer("ListServiceSpecificCredentials", name, NO_SERVICE_CREDENTIALS.to_owned());
    }
    // What a person may add to a user after onboarding, so that the deletion makes every
    // removal IAM requires before DeleteUser: an MFA device (deactivated, then deleted), an
    // inline policy, a signing certificate, an SSH key and a service-specific credential.
    let mfa = iam.create_virtual_mfa_device().virtual_mfa_device_name("ci-deployer").send().await.expect("MFA device");
    let serial = mfa.virtual_mfa_device().expect("device").serial_number().to_owned();
    iam.enable_mfa_device()
        .user_name("ci-deployer")
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .expect("enable MFA");
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    iam.put_user_policy()
        .user_name("ci-deployer")
        .policy_name("legacy")
        .policy_document(doc)
        .send()
        .await
        .expect("inline");
    iam.upload_signing_certificate()
        .user_name("ci-deployer")
        .certificate_body(SIGNING_CERTIFICATE)
        .send()
        .await
        .expect("signing certificate");
    iam.upload_ssh_public_key()
        .user_name("ci-deployer")
        .ssh_public_key_body("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKsimulatedkeyforiamrequestsonly ci-deployer")
        .send()
        .await
        .expect("SSH key");
    proxy.answer("ListServiceSpecificCredentials", "ci-deployer", ONE_SERVICE_CREDENTIAL.to_owned());
    proxy.answer("DeleteServiceSpecificCredential", "ci-deployer", SERVICE_CREDENTIAL_DELETED.to_owned());
    let offboarding = |id: &str, users: Value| {
        json!({"source": "onboarding.tickets", "detail-type": "Offboarding Ticket Approved",
               "detail": {"ticket_id": id, "requested_by": "it-ops@example.com", "users": users}})
    };
    pipeline
        .deliver(&offboarding(
            "OFF-SIM-1",
            json!([{"user_name": "emily.chen", "action": "disable"}, {"user_name": "ci-deployer", "action": "delete"}]),
        ))
        .await
        .expect("deliver");
    let drained = pipeline.drain().await.expect("drain");
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "offboarding: {drained:?}");
    pipeline.deliver(&offboarding("OFF-SIM-2", json!([{"user_name": "template.dev"}]))).await.expect("deliver");
    pipeline.drain().await.expect("drain");

    // An access change: priya.n (in Developers, copied from template.dev;
    // PowerUserAccess from an administrator) moved to ReadOnly with
    // ReadOnlyAccess instead, every call of the plan made once.
    let power_user = "arn:aws:iam::aws:policy/PowerUserAccess";
    iam.attach_user_policy().user_name("priya.n").policy_arn(power_user).send().await.expect("attach");
    let change = json!({"source": "onboarding.tickets", "detail-type": "Access Change Approved",
        "detail": {"ticket_id": "CHG-SIM-1", "requested_by": "it-ops@example.com", "users": [
            {"user_name": "priya.n", "add_groups": ["ReadOnly"], "remove_groups": ["Developers"],
             "attach_policies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"], "detach_policies": [power_user]}]}});
    pipeline.deliver(&change).await.expect("deliver");
    let drained = pipeline.drain().await.expect("drain");
    assert_eq!((drained.retried, drained.dead_lettered), (0, 0), "access change: {drained:?}");

    // offboard-user's daily run (its schedule's input is {"run": "daily"}),
    // the retention period (30 days) after OFF-SIM-1: every user listed, and
    // emily.chen, disabled and left as the disable left her, deleted.
    pipeline.clock.set_offset_days(108 + 31);
    let daily = pipeline.offboard_user.run_daily(pipeline.clock.now() + 900).await.expect("daily run");
    assert!(daily.complete && daily.failed.is_empty() && daily.restored.is_empty(), "daily run: {daily:?}");
    assert_eq!(daily.deleted, ["emily.chen"], "daily run: {daily:?}");

    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for r in proxy.requests() {
        let Some((stage, _)) = STAGE_KEYS.iter().find(|(_, key)| *key == r.access_key_id) else { continue };
        let params: Value = if r.body.trim_start().starts_with('{') {
            serde_json::from_str(&r.body).expect("a JSON request body")
        } else {
            tests::form_decode(&r.body).into_iter().map(|(k, v)| (k, Value::String(v))).collect()
        };
        seen.insert(format!("{stage} {}:{}", r.service, r.action));
        out.push(json!({"stage": stage, "service": r.service, "operation": r.action, "params": params}));
    }
    // What the run must have reached, so the simulator proves each of them.
    for call in [
        "create-user iam:CreateUser",
        "create-user iam:AddUserToGroup",
        "create-user iam:AttachUserPolicy",
        "create-user iam:ListUserPolicies",
        "create-user ses:SendEmail",
        "create-user dynamodb:BatchWriteItem",
        "issue-credentials iam:CreateLoginProfile",
        "issue-credentials iam:CreateAccessKey",
        "issue-credentials iam:DeleteAccessKey",
        "issue-credentials iam:AttachUserPolicy",
        "issue-credentials secretsmanager:CreateSecret",
        "issue-credentials secretsmanager:PutSecretValue",
        "issue-credentials dynamodb:UpdateItem",
        "notify-user ses:SendEmail",
        "notify-user iam:ListAccountAliases",
        "rotate-keys iam:UpdateAccessKey",
        "rotate-keys iam:DeleteAccessKey",
        "rotate-keys sqs:SendMessage",
        "offboard-user iam:DeleteLoginProfile",
        "offboard-user iam:UpdateAccessKey",
        "offboard-user iam:DeleteAccessKey",
        "offboard-user iam:RemoveUserFromGroup",
        "offboard-user iam:DetachUserPolicy",
        "offboard-user iam:TagUser",
        "offboard-user iam:DeleteSigningCertificate",
        "offboard-user iam:DeleteSSHPublicKey",
        "offboard-user iam:DeleteServiceSpecificCredential",
        "offboard-user iam:DeactivateMFADevice",
        "offboard-user iam:DeleteVirtualMFADevice",
        "offboard-user iam:TagMFADevice",
        "offboard-user iam:ListMFADeviceTags",
        "offboard-user iam:ListVirtualMFADevices",
        "offboard-user iam:ListUsers",
        "offboard-user iam:DeleteUserPolicy",
        "offboard-user iam:DeleteUser",
        "offboard-user secretsmanager:DeleteSecret",
        "offboard-user dynamodb:BatchWriteItem",
        "offboard-user ses:SendEmail",
        "change-access iam:AddUserToGroup",
        "change-access iam:RemoveUserFromGroup",
        "change-access iam:AttachUserPolicy",
        "change-access iam:DetachUserPolicy",
        "change-access ses:SendEmail",
    ] {
        assert!(seen.contains(call), "the run never made {call}: {seen:#?}");
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/iam-sim");
    std::fs::create_dir_all(&dir).expect("target/iam-sim");
    let path = dir.join("requests.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json")).expect("write requests.json");
    eprintln!("{} requests by stage written to {}", out.len(), path.display());
}
