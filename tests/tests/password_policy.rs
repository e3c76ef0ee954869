//! Passwords against account password policies set in the emulator. The
//! policy is account-wide, so these run in one test of their own binary
//! (its own emulator), one policy after another.
#![recursion_limit = "256"]

use serde_json::{json, Value};
use shared::password::{check, PasswordPolicy, GENERATED_MIN_LENGTH};
use shared::ports::Stage;
use tests::{unique, Harness};

/// (minimum length, upper, lower, digits, symbols, users may change it).
type Policy = (i32, bool, bool, bool, bool, bool);

fn console_user(name: &str) -> Value {
    json!({"user_name": name, "email": format!("{name}@example.com"), "access": {"console": true}})
}

async fn password_of(h: &Harness, name: &str) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let id = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
    let out = sm.get_secret_value().secret_id(id).send().await.unwrap();
    let secret: Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
    secret["password"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn passwords_follow_each_account_policy_and_weak_custom_ones_are_refused() {
    let h = Harness::new().await;
    let policies: [Option<Policy>; 5] = [
        None,
        Some((8, false, false, false, false, true)),
        Some((14, true, true, true, true, false)),
        Some((32, false, false, false, true, true)),
        Some((64, true, true, true, true, true)),
    ];
    for (i, policy) in policies.into_iter().enumerate() {
        let expected = match policy {
            None => {
                let _ = h.iam.delete_account_password_policy().send().await;
                PasswordPolicy::aws_default()
            }
            Some((min, upper, lower, digits, symbols, change)) => {
                h.iam
                    .update_account_password_policy()
                    .minimum_password_length(min)
                    .require_uppercase_characters(upper)
                    .require_lowercase_characters(lower)
                    .require_numbers(digits)
                    .require_symbols(symbols)
                    .allow_users_to_change_password(change)
                    .send()
                    .await
                    .unwrap();
                PasswordPolicy {
                    minimum_length: min as usize,
                    require_uppercase: upper,
                    require_lowercase: lower,
                    require_numbers: digits,
                    require_symbols: symbols,
                    allow_users_to_change_password: change,
                    is_aws_default: false,
                }
            }
        };
        let name = unique(&format!("pp{i}"));
        let id = format!("PP-{name}");
        h.run(&json!({"ticket_id": id, "requested_by": "it@example.com", "users": [console_user(&name)]})).await;
        let password = password_of(&h, &name).await;
        assert!(check(&password, &expected, &name, &format!("{name}@example.com")).is_ok(), "policy {i}");
        assert!(
            password.len() >= expected.minimum_length.max(GENERATED_MIN_LENGTH),
            "policy {i}: {} chars",
            password.len()
        );
        // As the console does: reset required and users may not change
        // their own password -> IAMUserChangePassword.
        let needs_change_permission = expected.is_aws_default || !expected.allow_users_to_change_password;
        assert_eq!(
            h.attached_to(&name).await.contains(&shared::config::CHANGE_PASSWORD_POLICY.to_owned()),
            needs_change_permission,
            "policy {i}"
        );
    }

    // Custom passwords, checked against the policy in force (the last one:
    // 64 characters, every class). moto itself enforces no policy.
    let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
    // `<custom-password prefix><user name>`: the only secret a ticket may name for that user.
    let (weak_user, strong_user) = (unique("weak"), unique("strong"));
    let custom = |user: &str| format!("{}{user}", h.pipeline.env.settings.custom_password_prefix);
    let weak = sm.create_secret().name(custom(&weak_user)).secret_string("Summer2026!").send().await.unwrap();
    let strong_value = "Aa1!".repeat(16);
    let strong = sm.create_secret().name(custom(&strong_user)).secret_string(&strong_value).send().await.unwrap();
    let mut w = console_user(&weak_user);
    w["console_password"] = json!({"mode": "custom", "secret_arn": weak.arn().unwrap()});
    let mut st = console_user(&strong_user);
    st["console_password"] = json!({"mode": "custom", "secret_arn": strong.arn().unwrap()});
    let id = unique("CUSTOM-");
    h.run(&json!({"ticket_id": id, "requested_by": "custom-req@example.com", "users": [w, st]})).await;
    let statuses = h.statuses(&id).await;
    let weak_status = statuses.iter().find(|r| r.user_name == weak_user).unwrap();
    assert_eq!(weak_status.stage, Stage::Failed);
    let reason = weak_status.reason.clone().unwrap();
    assert!(reason.contains("at least 64"), "{reason}");
    assert!(!reason.contains("Summer2026!"), "the reason quotes the password");
    assert!(
        h.iam.get_login_profile().user_name(&weak_user).send().await.is_err(),
        "no login profile for a refused password"
    );
    assert_eq!(statuses.iter().find(|r| r.user_name == strong_user).unwrap().stage, Stage::Notified);
    assert_eq!(password_of(&h, &strong_user).await, strong_value);
    let sent = tests::sent_emails(&h.endpoint);
    let summary: Vec<_> = sent.iter().filter(|m| m.is_to("custom-req@example.com")).collect();
    assert_eq!(summary.len(), 1);
    assert!(summary[0].subject.contains("1 user(s) ready, 1 refused") && summary[0].body.contains("at least 64"));
}
