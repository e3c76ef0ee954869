//! What rotation does to one user's keys at one moment: a pure function of
//! the keys IAM has, what the ledger remembers, the time and the settings,
//! so every rule is tested without AWS and dry-run is the same code.
//!
//! Timeline of a key P, with S its successor:
//! - P active, no successor, older than the rotation age: issue S.
//! - S issued, `grace - warning` later: warn the user P will stop working.
//! - S issued, `grace` later, S active: deactivate P, unless IAM saw P used
//!   after S was issued: then P is held, at most `hold` longer (the owner
//!   told when the hold starts and `warning` (at least a day) before it
//!   ends), and deactivated when the hold is over, used or not.
//! - P deactivated, `delete_after` later: delete P.
//!
//! P is deactivated only while S is active in IAM: a key its user relies on
//! alone is never deactivated, however old.

use serde::Serialize;
use shared::ports::{AccessKeyInfo, KeyRecord};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub rotation_age: u64,
    pub grace: u64,
    pub delete_after: u64,
    pub warning: u64,
    /// The longest a key still in use is kept active past its deactivation date.
    pub hold: u64,
}

const DAY: u64 = 86_400;

/// Which notice a hold owes its key's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldNotice {
    /// The hold starts.
    Start,
    /// The hold ends soon (the start notice is owed too if it never went).
    Ending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Issue a successor; the old key is deactivated after `deactivate_after`.
    Rotate {
        deactivate_after: u64,
    },
    Warn {
        deactivate_on: u64,
    },
    Deactivate {
        successor: String,
    },
    /// Due for deactivation but used after its successor was issued
    /// (`last_used`): left active until `until`.
    Hold {
        until: u64,
        last_used: u64,
        notice: HoldNotice,
    },
    Delete,
    /// Due, but not done, for this reason.
    Skip {
        reason: String,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Rotate { .. } => "rotate",
            Action::Warn { .. } => "warn",
            Action::Deactivate { .. } => "deactivate",
            Action::Hold { .. } => "hold",
            Action::Delete => "delete",
            Action::Skip { .. } => "skip",
        }
    }
}

/// One key's plan: what to do now, and the next thing that will happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyPlan {
    pub access_key_id: String,
    pub age_days: u64,
    pub now: Option<Action>,
    /// (what, when): the next step if nothing is due now.
    pub next: Option<(String, u64)>,
}

/// How old a key is, for the rotation age: the earlier of IAM's date and the
/// ledger's, so a missing or late record never makes a key look younger.
fn born(key: &AccessKeyInfo, record: Option<&KeyRecord>) -> u64 {
    match record {
        Some(r) if key.created == 0 => r.issued_at,
        Some(r) => r.issued_at.min(key.created),
        None => key.created,
    }
}

/// The keys whose last use decides their plan: active keys with a
/// successor in IAM (`plan` holds one used after that successor was issued).
pub fn last_use_wanted(keys: &[AccessKeyInfo], ledger: &[KeyRecord]) -> Vec<String> {
    keys.iter()
        .filter(|k| k.active)
        .filter(|k| {
            ledger.iter().any(|r| {
                r.replaces.as_deref() == Some(k.access_key_id.as_str())
                    && keys.iter().any(|s| s.access_key_id == r.access_key_id)
            })
        })
        .map(|k| k.access_key_id.clone())
        .collect()
}

/// `last_used`: when IAM last saw each key of `last_use_wanted` used.
pub fn plan(
    now: u64,
    s: Settings,
    keys: &[AccessKeyInfo],
    ledger: &[KeyRecord],
    last_used: &BTreeMap<String, u64>,
) -> Vec<KeyPlan> {
    let record = |id: &str| ledger.iter().find(|r| r.access_key_id == id);
    let mut plans = Vec::new();
    for key in keys {
        let id = key.access_key_id.as_str();
        let birth = born(key, record(id));
        let successor = ledger
            .iter()
            .filter(|r| r.replaces.as_deref() == Some(id))
            // The grace runs from when the pipeline issued the successor and
            // told the user, which only the ledger knows; IAM's date can be
            // earlier (a run cut off between creating and storing it).
            .find_map(|r| keys.iter().find(|k| k.access_key_id == r.access_key_id).map(|k| (k, r.issued_at)));
        let (action, next) = match successor {
            Some((succ, succ_born)) => {
                let deactivate_at = succ_born + s.grace;
                let used_after_successor = last_used.get(id).copied().filter(|t| *t > succ_born);
                let hold_until = deactivate_at + s.hold;
                if key.active {
                    if now >= deactivate_at && succ.active {
                        match used_after_successor {
                            Some(last_used) if now < hold_until => {
                                let notice = if now + s.warning.max(DAY) >= hold_until {
                                    HoldNotice::Ending
                                } else {
                                    HoldNotice::Start
                                };
                                (Some(Action::Hold { until: hold_until, last_used, notice }), None)
                            }
                            _ => (Some(Action::Deactivate { successor: succ.access_key_id.clone() }), None),
                        }
                    } else if now >= deactivate_at {
                        let reason = format!("successor {} is inactive; the old key stays active", succ.access_key_id);
                        (Some(Action::Skip { reason }), None)
                    } else if now + s.warning >= deactivate_at && record(id).is_none_or(|r| r.warned_at.is_none()) {
                        (Some(Action::Warn { deactivate_on: deactivate_at }), None)
                    } else {
                        (None, Some(("deactivate".to_owned(), deactivate_at)))
                    }
                } else {
                    let deactivated = record(id).and_then(|r| r.deactivated_at).unwrap_or(deactivate_at);
                    let delete_at = deactivated + s.delete_after;
                    if now >= delete_at {
                        (Some(Action::Delete), None)
                    } else {
                        (None, Some(("delete".to_owned(), delete_at)))
                    }
                }
            }
            None if !key.active => (None, None),
            None => {
                let due = birth + s.rotation_age;
                if now < due {
                    (None, Some(("rotate".to_owned(), due)))
                } else if keys.len() >= 2 {
                    let reason = "the user already has two access keys and none is this key's successor; \
                                  IAM allows no third, so delete the unused one"
                        .to_owned();
                    (Some(Action::Skip { reason }), None)
                } else {
                    (Some(Action::Rotate { deactivate_after: now + s.grace }), None)
                }
            }
        };
        plans.push(KeyPlan {
            access_key_id: id.to_owned(),
            age_days: now.saturating_sub(birth) / 86_400,
            now: action,
            next,
        });
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000 * DAY;
    const S: Settings =
        Settings { rotation_age: 90 * DAY, grace: 7 * DAY, delete_after: 10 * DAY, warning: 2 * DAY, hold: 14 * DAY };

    fn key(id: &str, age_days: u64, active: bool) -> AccessKeyInfo {
        AccessKeyInfo { access_key_id: id.into(), active, created: NOW - age_days * DAY }
    }

    fn record(id: &str, age_days: u64, replaces: Option<&str>) -> KeyRecord {
        KeyRecord::issued("u", id, "u@example.com", NOW - age_days * DAY, replaces)
    }

    fn actions(keys: &[AccessKeyInfo], ledger: &[KeyRecord]) -> Vec<Option<&'static str>> {
        plan(NOW, S, keys, ledger, &BTreeMap::new()).iter().map(|p| p.now.as_ref().map(Action::name)).collect()
    }

    #[test]
    fn keys_younger_than_the_rotation_age_are_left_with_their_due_date() {
        let p = plan(NOW, S, &[key("A", 89, true)], &[], &BTreeMap::new());
        assert_eq!(p[0].now, None);
        assert_eq!(p[0].next, Some(("rotate".into(), NOW + DAY)));
    }

    #[test]
    fn key_at_the_rotation_age_gets_a_successor() {
        assert_eq!(actions(&[key("A", 90, true)], &[]), [Some("rotate")]);
    }

    #[test]
    fn the_ledger_date_wins_when_it_is_older_than_iams() {
        // IAM says 1 day (a re-created emulator, a clock skew); the ledger 100.
        assert_eq!(actions(&[key("A", 1, true)], &[record("A", 100, None)]), [Some("rotate")]);
    }

    #[test]
    fn predecessor_is_warned_then_deactivated_then_deleted() {
        let keys = |p_active| [key("P", 120, p_active), key("S", 0, true)];
        let ledger = |succ_age| vec![record("P", 120, None), record("S", succ_age, Some("P"))];
        let at = |succ_age: u64, p_active: bool, led: Vec<KeyRecord>| {
            let mut k = keys(p_active);
            k[1].created = NOW - succ_age * DAY;
            plan(NOW, S, &k, &led, &BTreeMap::new())[0].now.clone().map(|a| a.name())
        };
        assert_eq!(at(4, true, ledger(4)), None);
        assert_eq!(at(5, true, ledger(5)), Some("warn"));
        let mut warned = ledger(6);
        warned[0].warned_at = Some(NOW - DAY);
        assert_eq!(at(6, true, warned), None, "warned once");
        assert_eq!(at(7, true, ledger(7)), Some("deactivate"));
        let mut off = ledger(12);
        off[0].deactivated_at = Some(NOW - 5 * DAY);
        assert_eq!(at(12, false, off.clone()), None);
        off[0].deactivated_at = Some(NOW - 10 * DAY);
        assert_eq!(at(17, false, off), Some("delete"));
    }

    #[test]
    fn no_deactivation_while_the_successor_is_inactive() {
        let keys = [key("P", 120, true), key("S", 8, false)];
        let ledger = [record("P", 120, None), record("S", 8, Some("P"))];
        assert_eq!(actions(&keys, &ledger), [Some("skip"), None]);
    }

    #[test]
    fn two_unrelated_keys_are_skipped_with_a_reason_not_rotated() {
        let p = plan(NOW, S, &[key("A", 100, true), key("B", 10, true)], &[], &BTreeMap::new());
        match &p[0].now {
            Some(Action::Skip { reason }) => assert!(reason.contains("two access keys"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p[1].now, None);
    }

    /// P used after S was issued: held past its deactivation date, the
    /// owner told at the start and before the end, deactivated after.
    #[test]
    fn a_key_used_after_its_successor_is_held_then_deactivated() {
        // S issued 7 days before `at`, P used an hour after S.
        let at = |days_after_deactivation: u64, used: bool| {
            let now = NOW + days_after_deactivation * DAY;
            let keys = [key("P", 120, true), key("S", 7, true)];
            let ledger = [record("P", 120, None), record("S", 7, Some("P"))];
            let last_used =
                if used { BTreeMap::from([("P".to_owned(), NOW - 7 * DAY + 3600)]) } else { BTreeMap::new() };
            plan(now, S, &keys, &ledger, &last_used)[0].now.clone()
        };
        assert_eq!(at(0, false).map(|a| a.name()), Some("deactivate"), "unused: deactivated on time");
        let until = NOW + 14 * DAY;
        let last_used = NOW - 7 * DAY + 3600;
        assert_eq!(at(0, true), Some(Action::Hold { until, last_used, notice: HoldNotice::Start }));
        assert_eq!(at(11, true), Some(Action::Hold { until, last_used, notice: HoldNotice::Start }));
        assert_eq!(at(12, true), Some(Action::Hold { until, last_used, notice: HoldNotice::Ending }));
        assert_eq!(at(14, true).map(|a| a.name()), Some("deactivate"), "the hold is over");
    }

    /// Used before S was issued only: no hold.
    #[test]
    fn a_key_used_only_before_its_successor_is_not_held() {
        let keys = [key("P", 120, true), key("S", 7, true)];
        let ledger = [record("P", 120, None), record("S", 7, Some("P"))];
        let last_used = BTreeMap::from([("P".to_owned(), NOW - 8 * DAY)]);
        assert_eq!(plan(NOW, S, &keys, &ledger, &last_used)[0].now.as_ref().map(Action::name), Some("deactivate"));
        assert_eq!(last_use_wanted(&keys, &ledger), ["P"]);
    }

    /// A key its user relies on alone (its successor inactive or gone from
    /// IAM) is never deactivated, however long past its dates.
    #[test]
    fn a_key_relied_on_alone_is_never_deactivated() {
        let ledger = [record("P", 400, None), record("S", 300, Some("P"))];
        let inactive = plan(NOW, S, &[key("P", 400, true), key("S", 300, false)], &ledger, &BTreeMap::new());
        assert_eq!(inactive[0].now.as_ref().map(Action::name), Some("skip"));
        let gone = plan(NOW, S, &[key("P", 400, true)], &ledger, &BTreeMap::new());
        assert_ne!(gone[0].now.as_ref().map(Action::name), Some("deactivate"));
        assert!(last_use_wanted(&[key("P", 400, true)], &ledger).is_empty());
    }
}
