//! The daily run (CONTRACT.md section 6): expiring users and deleting
//! disabled ones after the retention period. Invoked by its schedule with
//! `{"run": "daily"}`.
//!
//! For each user in the account that the pipeline owns (records and tag,
//! `shared::managed`), the pure `decide` says what today asks of it, from its
//! tags alone:
//! - `iam-provisioner:offboarded-on` at least RETENTION_DAYS ago: delete it,
//!   but only if it is still as the disable left it (no console password, no
//!   active key, no group, no managed policy); a user restored meanwhile is
//!   reported (`alarm=offboarded_user_restored`) and left alone;
//! - `iam-provisioner:expires-on` today or earlier (and not disabled): disable
//!   it as an offboarding would, tagged `EXPIRY-<date>` (its records under
//!   `daily#EXPIRY-<date>`, apart from any ticket's);
//! - `expires-on` within EXPIRY_WARNING_DAYS: warn the user and the requester,
//!   once each per date (an idempotency record per email).
//!
//! Every action is the offboarding's own code, which reads the user again and
//! plans only what is left, so a run cut off (or a second run the same day)
//! repeats nothing; one user's failure is recorded and the run goes on.

use super::*;
use shared::lifecycle::{OFFBOARDED_ON_TAG, OFFBOARDED_TAG};
use shared::text::date;

pub use shared::ticket::EXPIRES_ON_TAG;

/// The kind the daily run's records are filed under (`daily#EXPIRY-<date>`,
/// `daily#RETENTION-<date>`): no submitted ticket can name them.
pub const DAILY_KIND: &str = "daily";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyRequest {
    pub run: DailyRun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DailyRun {
    Daily,
}

/// What today asks of one user, from its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    Nothing,
    Warn {
        expires_on: String,
    },
    Disable {
        expires_on: String,
    },
    /// Disabled on `offboarded_on`, by `ticket`, retention over.
    Delete {
        offboarded_on: String,
        ticket: String,
    },
    /// A tag the run cannot read: reported, nothing done.
    Unreadable(String),
}

/// The dates `decide` compares with (YYYY-MM-DD, UTC; ISO dates order as
/// strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Today {
    pub today: String,
    /// Warn of an expiry on or before this date.
    pub warn_until: String,
    /// Delete a user disabled on or before this date.
    pub disabled_by: String,
}

impl Today {
    pub fn at(now: u64, config: &OffboardUserConfig) -> Self {
        Self {
            today: date(now),
            warn_until: date(now + config.expiry_warning_secs),
            disabled_by: date(now.saturating_sub(config.retention_secs)),
        }
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// What today asks of a user with these tags. Pure: the run's dry run and
/// its tests are this function.
pub fn decide(tags: &BTreeMap<String, String>, today: &Today) -> Due {
    if let Some(on) = tags.get(OFFBOARDED_ON_TAG) {
        if !is_date(on) {
            return Due::Unreadable(format!("{OFFBOARDED_ON_TAG}={on:?} is not a date (YYYY-MM-DD)"));
        }
        return if on.as_str() <= today.disabled_by.as_str() {
            Due::Delete { offboarded_on: on.clone(), ticket: tags.get(OFFBOARDED_TAG).cloned().unwrap_or_default() }
        } else {
            Due::Nothing
        };
    }
    let Some(expires_on) = tags.get(EXPIRES_ON_TAG) else {
        return Due::Nothing;
    };
    if !is_date(expires_on) {
        return Due::Unreadable(format!("{EXPIRES_ON_TAG}={expires_on:?} is not a date (YYYY-MM-DD)"));
    }
    if expires_on.as_str() <= today.today.as_str() {
        Due::Disable { expires_on: expires_on.clone() }
    } else if expires_on.as_str() <= today.warn_until.as_str() {
        Due::Warn { expires_on: expires_on.clone() }
    } else {
        Due::Nothing
    }
}

/// Still as a disable left it: nothing lets the user in or grants it
/// anything that the disable removed.
pub fn still_disabled(h: &lifecycle::UserHoldings) -> bool {
    !h.login_profile
        && h.access_keys.iter().all(|(_, active)| !active)
        && h.groups.is_empty()
        && h.managed_policies.is_empty()
}

/// What a daily run did; also what it returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DailySummary {
    pub run: String,
    pub looked_at: usize,
    pub warned: Vec<String>,
    pub disabled: Vec<String>,
    pub deleted: Vec<String>,
    /// Disabled users given access back since: left alone.
    pub restored: Vec<String>,
    /// (user, why): tried again by the next run.
    pub failed: Vec<(String, String)>,
    /// Every user was looked at before the deadline.
    pub complete: bool,
}

enum Done {
    Nothing,
    Warned,
    Disabled,
    Deleted,
    Restored,
}

/// Seconds before its deadline the run stops starting users (at most).
const DEADLINE_MARGIN_SECS: u64 = 60;

impl<O, X, I, S, M, C> Deps<O, X, I, S, M, C>
where
    O: Users + Offboarding,
    X: SecretStore,
    I: IdempotencyStore,
    S: StatusStore + Departures,
    M: Mailer,
    C: Clock,
{
    pub async fn run_daily(&self, deadline: u64) -> Result<DailySummary> {
        let now = self.clock.now();
        let today = Today::at(now, &self.config);
        let mut summary = DailySummary { run: today.today.clone(), ..Default::default() };
        let mut names = self.iam.list_user_names().await?;
        names.sort();
        // A deadline already past when the run starts says nothing about the
        // time there is (cargo lambda's local runtime sends one): Lambda's
        // longest invocation, 15 minutes, is assumed.
        let deadline = if deadline <= now {
            tracing::warn!(deadline, now, "the invocation's deadline is already past; assuming 15 minutes");
            now + 900
        } else {
            deadline
        };
        let mut stopped = false;
        // A minute before the deadline, or a quarter of the time there is
        // for an invocation shorter than four minutes.
        let margin = DEADLINE_MARGIN_SECS.min(deadline.saturating_sub(now) / 4);
        tracing::info!(run = %today.today, users = names.len(), seconds_left = deadline.saturating_sub(now), "daily run starts");
        for chunk in names.chunks(self.config.concurrency.max(1)) {
            if self.clock.now() + margin >= deadline {
                stopped = true;
                break;
            }
            let window = Window::new(self.clock.now(), deadline, self.config.idempotency_ttl_secs);
            let outcomes = shared::lambda::bounded(
                chunk.len(),
                chunk.iter().map(|name| {
                    let span = tracing::info_span!("user", user = %name);
                    self.daily_one(name, &today, window).instrument(span)
                }),
            )
            .await;
            for (name, outcome) in chunk.iter().zip(outcomes) {
                summary.looked_at += 1;
                match outcome {
                    Ok(Done::Nothing) => {}
                    Ok(Done::Warned) => summary.warned.push(name.clone()),
                    Ok(Done::Disabled) => summary.disabled.push(name.clone()),
                    Ok(Done::Deleted) => summary.deleted.push(name.clone()),
                    Ok(Done::Restored) => summary.restored.push(name.clone()),
                    Err(e) => {
                        tracing::error!(alarm = "lifecycle_user_failed", user = %name, error = %e,
                            "the daily run could not handle this user; the next run tries again");
                        summary.failed.push((name.clone(), e.to_string()));
                    }
                }
            }
        }
        summary.complete = !stopped;
        tracing::info!(
            looked_at = summary.looked_at,
            warned = summary.warned.len(),
            disabled = summary.disabled.len(),
            deleted = summary.deleted.len(),
            restored = summary.restored.len(),
            failed = summary.failed.len(),
            complete = summary.complete,
            "daily run done"
        );
        Ok(summary)
    }

    async fn daily_one(&self, name: &str, today: &Today, window: Window) -> Result<Done> {
        let Ok(user_name) = UserName::parse(name) else {
            return Ok(Done::Nothing);
        };
        let Ownership::Ours { user, handoff } = ownership(&self.iam, &self.status, &user_name).await? else {
            return Ok(Done::Nothing);
        };
        match decide(&user.tags, today) {
            Due::Nothing => Ok(Done::Nothing),
            Due::Unreadable(why) => Err(Error::permanent("daily", why)),
            Due::Warn { expires_on } => {
                let (subject, text) = (
                    format!("Your AWS access as {name} ends on {expires_on}"),
                    format!(
                        "The IAM user {name} (onboarded by ticket {}) expires on {expires_on}: on that day its \
                         console password is deleted, its access keys are made inactive and its groups and \
                         policies are removed. If the access is still needed, ask for a new ticket before then.\n",
                        handoff.ticket_id
                    ),
                );
                self.notice(name, "expiry-warning", &expires_on, &handoff, &subject, &text, window).await?;
                Ok(Done::Warned)
            }
            Due::Disable { expires_on } => {
                let ticket = format!("EXPIRY-{expires_on}");
                // Tagged with EXPIRY-<date>; recorded apart from any ticket's records.
                let key = TicketId::parse(&ticket).map_err(|e| Error::permanent("daily", e))?.of_kind(DAILY_KIND);
                lifecycle::offboard(&self.iam, &user_name, OffboardAction::Disable, key.submitted(), &today.today)
                    .await?;
                let reason = format!("expired on {expires_on}: disabled");
                self.set_status(&key, name, Stage::Disabled, Some(reason)).await?;
                metrics::count(metrics::name::USERS_DISABLED, 1);
                let subject = format!("AWS access of {name} ended on {expires_on}");
                let text = format!(
                    "The IAM user {name} (onboarded by ticket {}) reached its expiry date, {expires_on}, and was \
                     disabled: no console password, access keys inactive, no groups or policies. It is deleted \
                     after the retention period unless it is restored meanwhile.\n",
                    handoff.ticket_id
                );
                self.notice(name, "expired", &expires_on, &handoff, &subject, &text, window).await?;
                Ok(Done::Disabled)
            }
            Due::Delete { offboarded_on, ticket } => {
                let Some(holdings) = self.iam.holdings(name).await? else {
                    return Ok(Done::Nothing);
                };
                if !still_disabled(&holdings) {
                    tracing::warn!(alarm = "offboarded_user_restored", %offboarded_on, %ticket,
                        "a user disabled by offboarding was given access back; it is not deleted");
                    return Ok(Done::Restored);
                }
                let key = TicketId::parse(&format!("RETENTION-{}", today.today))
                    .map_err(|e| Error::permanent("daily", e))?
                    .of_kind(DAILY_KIND);
                lifecycle::offboard(&self.iam, &user_name, OffboardAction::Delete, key.submitted(), &today.today)
                    .await?;
                let until = self.retire_secret(&key, &user_name).await?;
                let reason = format!(
                    "disabled by {ticket} on {offboarded_on}; deleted after the retention period{}",
                    until.map(|u| format!("; its secret is deleted for good on {}", date(u))).unwrap_or_default()
                );
                self.set_status(&key, name, Stage::Deleted, Some(reason.clone())).await?;
                metrics::count(metrics::name::USERS_DELETED, 1);
                let subject = format!("IAM user {name} deleted after its retention period");
                let text = format!("The IAM user {name}: {reason}.\n");
                self.notice(name, "deleted", &today.today, &handoff, &subject, &text, window).await?;
                Ok(Done::Deleted)
            }
        }
    }

    /// One email to the user (unless it is gone) and one to the requester,
    /// each at most once per (user, kind, date).
    #[allow(clippy::too_many_arguments)]
    async fn notice(
        &self,
        name: &str,
        kind: &str,
        on: &str,
        handoff: &shared::handoff::Onboarding,
        subject: &str,
        text: &str,
        window: Window,
    ) -> Result<()> {
        let mut to = vec![("requester", handoff.requested_by.to_string())];
        if kind != "deleted" {
            to.insert(0, ("user", handoff.user.email.to_string()));
        }
        for (who, address) in to {
            let email = Email_ {
                to: address,
                subject: subject.to_owned(),
                text: format!("{text}\nThis message was sent by iam-provisioner.\n"),
                html: format!("<p>{}</p><p>This message was sent by iam-provisioner.</p>", html_escape(text)),
            };
            let key = Key::lifecycle_notice(name, kind, on, who);
            let sent = idempotency::once(&self.idempotency, &key, &payload_hash(&key.as_str())?, window, || async {
                let id = self.mailer.send(&self.config.sender, &email).await?;
                metrics::count(metrics::name::EMAILS_SENT, 1);
                Ok(id)
            })
            .await;
            match sent {
                Err(e) if e.is_refusal() => {
                    tracing::error!(error = %e, recipient = who, "lifecycle email could not be sent")
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn today() -> Today {
        Today { today: "2026-11-25".into(), warn_until: "2026-12-02".into(), disabled_by: "2026-10-26".into() }
    }

    #[test]
    fn what_a_day_asks_follows_from_the_tags() {
        let t = today();
        assert_eq!(decide(&tags(&[]), &t), Due::Nothing);
        assert_eq!(decide(&tags(&[(EXPIRES_ON_TAG, "2027-01-01")]), &t), Due::Nothing);
        assert_eq!(decide(&tags(&[(EXPIRES_ON_TAG, "2026-12-02")]), &t), Due::Warn { expires_on: "2026-12-02".into() });
        assert_eq!(
            decide(&tags(&[(EXPIRES_ON_TAG, "2026-11-25")]), &t),
            Due::Disable { expires_on: "2026-11-25".into() }
        );
        // A missed day still disables.
        assert!(matches!(decide(&tags(&[(EXPIRES_ON_TAG, "2026-11-01")]), &t), Due::Disable { .. }));
        // Disabled: the retention decides, whatever the expiry says.
        let disabled =
            |on: &str| tags(&[(EXPIRES_ON_TAG, "2026-11-01"), (OFFBOARDED_ON_TAG, on), (OFFBOARDED_TAG, "OFF-1")]);
        assert_eq!(decide(&disabled("2026-11-01"), &t), Due::Nothing);
        assert_eq!(
            decide(&disabled("2026-10-26"), &t),
            Due::Delete { offboarded_on: "2026-10-26".into(), ticket: "OFF-1".into() }
        );
        assert!(matches!(decide(&tags(&[(EXPIRES_ON_TAG, "soon")]), &t), Due::Unreadable(_)));
        assert!(matches!(decide(&tags(&[(OFFBOARDED_ON_TAG, "2026-1-1")]), &t), Due::Unreadable(_)));
    }

    /// A short invocation (30 s) still looks at users: the margin is a
    /// quarter of the time there is, at most a minute.
    #[tokio::test]
    async fn the_deadline_margin_fits_the_invocation() {
        let d = crate::tests::deps();
        d.iam.insert("someone", Default::default());
        let now = d.clock.now();
        let s = d.run_daily(now + 30).await.unwrap();
        assert_eq!((s.looked_at, s.complete), (1, true), "{s:?}");
        // A deadline already past at the start is no deadline: 15 minutes.
        let s = d.run_daily(now - 5).await.unwrap();
        assert_eq!((s.looked_at, s.complete), (1, true), "{s:?}");
    }

    #[test]
    fn the_dates_come_from_the_clock_and_the_settings() {
        let mut config = crate::tests::deps().config;
        config.expiry_warning_secs = 7 * 86_400;
        config.retention_secs = 30 * 86_400;
        let t = Today::at(1_795_564_800, &config); // 2026-11-25
        assert_eq!(t, today());
    }
}
