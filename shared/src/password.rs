//! Console passwords: generated with the operating system's CSPRNG to
//! satisfy the account's password policy, or checked against it.

use crate::error::{Error, Result};
use crate::secret::Sensitive;

/// The parts of IAM's account password policy a password must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub minimum_length: usize,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
    pub allow_users_to_change_password: bool,
    /// AWS's default applies (the account has none): at least 3 of the 4
    /// character classes instead of named ones.
    pub is_aws_default: bool,
}

impl PasswordPolicy {
    /// What IAM enforces when the account has no password policy: 8
    /// characters, 3 of the 4 classes, not the account name or email.
    pub fn aws_default() -> Self {
        Self {
            minimum_length: 8,
            require_uppercase: false,
            require_lowercase: false,
            require_numbers: false,
            require_symbols: false,
            allow_users_to_change_password: false,
            is_aws_default: true,
        }
    }
}

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
/// IAM's symbol set, less quotes and backslash which mail clients and
/// shells mangle.
const SYMBOLS: &[u8] = b"!@#$%^&*()_+-=[]{}|";
/// Generated passwords are at least this long, whatever the policy allows.
pub const GENERATED_MIN_LENGTH: usize = 20;

fn random_index(bound: usize) -> Result<usize> {
    // Rejection sampling: no modulo bias.
    let limit = u32::MAX - (u32::MAX % bound as u32);
    loop {
        let mut b = [0u8; 4];
        getrandom::getrandom(&mut b).map_err(|e| Error::retryable("getrandom", e.to_string()))?;
        let v = u32::from_le_bytes(b);
        if v < limit {
            return Ok((v % bound as u32) as usize);
        }
    }
}

/// A password with every class (so any policy's class rules hold), at least
/// 20 characters or the policy's minimum, never the user name or email.
pub fn generate(policy: &PasswordPolicy, user_name: &str, email: &str) -> Result<Sensitive> {
    let length = policy.minimum_length.clamp(GENERATED_MIN_LENGTH, 128);
    let classes = [UPPER, LOWER, DIGITS, SYMBOLS];
    let all: Vec<u8> = classes.concat();
    loop {
        let mut chars: Vec<u8> = Vec::with_capacity(length);
        for class in classes {
            chars.push(class[random_index(class.len())?]);
        }
        while chars.len() < length {
            chars.push(all[random_index(all.len())?]);
        }
        // Fisher-Yates, so the guaranteed classes are not always first.
        for i in (1..chars.len()).rev() {
            chars.swap(i, random_index(i + 1)?);
        }
        let candidate = String::from_utf8(chars).map_err(|e| Error::permanent("generate", e.to_string()))?;
        if check(&candidate, policy, user_name, email).is_ok() {
            return Ok(Sensitive::new(candidate));
        }
    }
}

/// Why a password breaks the policy, in words that never quote it.
pub fn check(password: &str, policy: &PasswordPolicy, user_name: &str, email: &str) -> Result<(), String> {
    let mut problems = Vec::new();
    let length = password.chars().count();
    if length < policy.minimum_length {
        problems
            .push(format!("is {length} characters; the account's policy requires at least {}", policy.minimum_length));
    }
    if length > 128 {
        problems.push("is longer than IAM's 128 characters".to_owned());
    }
    if !password.chars().all(|c| c.is_ascii_graphic()) {
        problems.push("has characters IAM does not accept (only printable ASCII, no spaces)".to_owned());
    }
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    let upper = has(char::is_ascii_uppercase);
    let lower = has(char::is_ascii_lowercase);
    let digit = has(char::is_ascii_digit);
    let symbol = has(|c| c.is_ascii_punctuation());
    if policy.is_aws_default {
        if [upper, lower, digit, symbol].iter().filter(|b| **b).count() < 3 {
            problems
                .push("needs at least 3 of: uppercase, lowercase, digits, symbols (AWS's default policy)".to_owned());
        }
    } else {
        for (required, present, what) in [
            (policy.require_uppercase, upper, "an uppercase letter"),
            (policy.require_lowercase, lower, "a lowercase letter"),
            (policy.require_numbers, digit, "a digit"),
            (policy.require_symbols, symbol, "a symbol"),
        ] {
            if required && !present {
                problems.push(format!("needs {what} (the account's policy)"));
            }
        }
    }
    if password.eq_ignore_ascii_case(user_name) || password.eq_ignore_ascii_case(email) {
        problems.push("must not be the user name or the email address".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("the custom password {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(min: usize) -> PasswordPolicy {
        PasswordPolicy {
            minimum_length: min,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
            allow_users_to_change_password: true,
            is_aws_default: false,
        }
    }

    #[test]
    fn generated_passwords_satisfy_every_policy_and_are_at_least_20_long() {
        for policy in [PasswordPolicy::aws_default(), strict(8), strict(20), strict(64), strict(128)] {
            for _ in 0..50 {
                let p = generate(&policy, "emily.chen", "emily.chen@example.com").unwrap();
                assert!(check(p.expose(), &policy, "emily.chen", "emily.chen@example.com").is_ok());
                assert!(p.expose().len() >= policy.minimum_length.max(GENERATED_MIN_LENGTH));
            }
        }
    }

    #[test]
    fn generated_passwords_differ() {
        let policy = PasswordPolicy::aws_default();
        let a = generate(&policy, "u", "u@example.com").unwrap();
        let b = generate(&policy, "u", "u@example.com").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn weak_custom_passwords_are_refused_without_quoting_them() {
        let err = check("short", &strict(14), "u", "u@example.com").unwrap_err();
        assert!(err.contains("at least 14") && err.contains("uppercase") && !err.contains("short"), "{err}");
        let err = check("alllowercase", &PasswordPolicy::aws_default(), "u", "u@example.com").unwrap_err();
        assert!(err.contains("3 of"), "{err}");
        assert!(check("Emily.Chen", &PasswordPolicy::aws_default(), "emily.chen", "e@example.com").is_err());
        assert!(check("Correct-Horse-7", &PasswordPolicy::aws_default(), "u", "u@example.com").is_ok());
    }
}
