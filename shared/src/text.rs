//! Small text helpers for what people read: emails and refusal reasons.

/// For HTML email bodies: ticket content (user names, reasons) is untrusted.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// serde quotes the offending value in its messages (`invalid type: string
/// "hunter2", expected a boolean`). A ticket may carry a password in the
/// wrong field, and refusal reasons go to logs, DynamoDB and email, so the
/// value is dropped and only the shape of the mistake kept.
pub fn redact_serde_message(msg: &str) -> String {
    for (prefix, kind) in [
        ("invalid type: string", "invalid type: a string"),
        ("invalid value: string", "invalid value: a string"),
        ("unknown variant", "unknown variant"),
        ("invalid length", "invalid length"),
    ] {
        if msg.starts_with(prefix) {
            let tail = msg.find(", expected").map(|i| &msg[i..]).unwrap_or("");
            return format!("{kind}{tail}");
        }
    }
    msg.to_owned()
}

/// A day as people write it, `2026-11-24`, from seconds since the epoch (UTC).
pub fn date(epoch_secs: u64) -> String {
    crate::date::Date::from_epoch(epoch_secs).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil_utc_days() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(1_795_996_800), "2026-11-30");
        assert_eq!(super::date(951_782_400), "2000-02-29");
    }

    use super::*;

    #[test]
    fn serde_messages_lose_the_offending_value() {
        let m = redact_serde_message("invalid type: string \"hunter2\", expected a boolean");
        assert_eq!(m, "invalid type: a string, expected a boolean");
        let m = redact_serde_message("unknown variant `s3cr3t`, expected `autogenerate` or `custom`");
        assert!(!m.contains("s3cr3t") && m.contains("expected `autogenerate`"), "{m}");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
