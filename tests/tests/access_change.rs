//! Access changes against the emulator (issue 14, in progress): the AWS side
//! of the `AccessChanges` port takes a user from Power_Users and
//! PowerUserAccess to ReadOnly and ReadOnlyAccess, removals before
//! additions; a second run finds nothing to do and makes no write call; a
//! removal already made counts as done; a user that does not exist is refused.
#![recursion_limit = "256"]

use serde_json::json;
use shared::access::{change, validate_access_change, AccessChangeTicket, AccessStep};
use shared::names::{PolicyArn, UserName};
use shared::ports::AccessChanges;
use tests::bootstrap::{POLICY_POWER_USER, POLICY_READ_ONLY};
use tests::{unique, Harness};

const WRITES: [&str; 4] = ["RemoveUserFromGroup", "DetachUserPolicy", "AddUserToGroup", "AttachUserPolicy"];

/// The write calls moto's recorder saw for `user`, as (action, target).
fn writes_to(endpoint: &str, user: &str) -> Vec<(String, String)> {
    tests::recorded_calls(endpoint)
        .into_iter()
        .filter(|c| c.get("UserName") == Some(user))
        .filter_map(|c| {
            let action = c.get("Action").filter(|a| WRITES.contains(a))?.to_owned();
            let target = c.get("GroupName").or(c.get("PolicyArn")).unwrap_or_default().to_owned();
            Some((action, target))
        })
        .collect()
}

#[tokio::test]
async fn a_group_and_a_policy_are_swapped_removals_first_and_a_rerun_does_nothing() {
    let h = Harness::new().await;
    tests::start_recording(&h.endpoint);
    let name = unique("chg");
    let iam = &h.iam;
    iam.create_user().user_name(&name).send().await.unwrap();
    iam.add_user_to_group().user_name(&name).group_name("Power_Users").send().await.unwrap();
    iam.add_user_to_group().user_name(&name).group_name("Developers").send().await.unwrap();
    iam.attach_user_policy().user_name(&name).policy_arn(POLICY_POWER_USER).send().await.unwrap();

    let ticket: AccessChangeTicket = serde_json::from_value(json!({
        "ticket_id": "CHG-77", "requested_by": "it-ops@example.com",
        "users": [{ "user_name": name, "add_groups": ["ReadOnly"], "remove_groups": ["Power_Users"],
                    "attach_policies": [POLICY_READ_ONLY], "detach_policies": [POLICY_POWER_USER] }]
    }))
    .unwrap();
    let accepted = validate_access_change(&ticket, &h.pipeline.env.settings.allow).unwrap();
    let (user, asked) = &accepted.users[0];

    let directory = shared::aws::IamDirectory::new(&tests::sdk_config(&h.endpoint).await);
    let before = writes_to(&h.endpoint, &name).len();
    let done = change(&directory, user, asked).await.unwrap();
    let read_only = PolicyArn::parse(POLICY_READ_ONLY).unwrap();
    let power_user = PolicyArn::parse(POLICY_POWER_USER).unwrap();
    assert_eq!(
        done,
        [
            AccessStep::RemoveUserFromGroup("Power_Users".into()),
            AccessStep::DetachUserPolicy(power_user.clone()),
            AccessStep::AddUserToGroup("ReadOnly".into()),
            AccessStep::AttachUserPolicy(read_only.clone()),
        ]
    );
    // IAM, read back: the group the change did not name is still there.
    let mut groups = h.groups_of(&name).await;
    groups.sort();
    assert_eq!(groups, ["Developers", "ReadOnly"]);
    assert_eq!(h.attached_to(&name).await, [POLICY_READ_ONLY]);
    // The calls IAM received, in the plan's order.
    let made = writes_to(&h.endpoint, &name)[before..].to_vec();
    assert_eq!(
        made,
        [
            ("RemoveUserFromGroup".to_owned(), "Power_Users".to_owned()),
            ("DetachUserPolicy".to_owned(), POLICY_POWER_USER.to_owned()),
            ("AddUserToGroup".to_owned(), "ReadOnly".to_owned()),
            ("AttachUserPolicy".to_owned(), POLICY_READ_ONLY.to_owned()),
        ]
    );

    // A second run: nothing planned, no write made.
    assert!(change(&directory, user, asked).await.unwrap().is_empty());
    assert_eq!(writes_to(&h.endpoint, &name).len(), before + 4, "a rerun wrote to IAM");

    // A removal made again (a retry after IAM did it but the answer was
    // lost) is done, not an error.
    directory.apply_access(user, &AccessStep::RemoveUserFromGroup("Power_Users".into())).await.unwrap();
    directory.apply_access(user, &AccessStep::DetachUserPolicy(power_user)).await.unwrap();
    let mut groups = h.groups_of(&name).await;
    groups.sort();
    assert_eq!(groups, ["Developers", "ReadOnly"]);
    assert_eq!(h.attached_to(&name).await, [POLICY_READ_ONLY]);

    // A user that does not exist: refused, nothing written.
    let ghost = UserName::parse(&unique("ghost")).unwrap();
    assert_eq!(directory.access_of(&ghost).await.unwrap(), None);
    let err = change(&directory, &ghost, asked).await.unwrap_err();
    assert!(err.is_refusal() && err.to_string().contains("no IAM user"), "{err}");
}
