//! A civil day in UTC, as people write it (`2026-11-30`): parsed once where
//! it comes in (a ticket's `expires_on`, a tag the pipeline wrote) and
//! carried as a `Date` after, so holding one means it is a real calendar
//! day, leap years included.
//!
//! It is the days since 1970-01-01 inside, so comparing, adding days and
//! converting to and from the clock's epoch seconds are arithmetic. Only
//! 1970-01-01 to 9999-12-31 exist: every day the pipeline's clock can tell
//! (`from_epoch`), and every one written with four digits of year.
//! It serialises as the plain string, and deserialising parses.

use crate::ports::Clock;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const SECS_PER_DAY: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    /// Days since 1970-01-01, from 0 (`EPOCH`) to `MAX`'s.
    days: u32,
}

impl Date {
    /// 1970-01-01, the first day there is.
    pub const EPOCH: Date = Date { days: 0 };
    /// 9999-12-31, the last day there is.
    pub const MAX: Date = Date { days: 2_932_896 };

    /// `YYYY-MM-DD`, exactly: four-digit year, two-digit month and day, a
    /// day the calendar has. The error is the rule, for a person to read.
    pub fn parse(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        let shaped = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shaped {
            return Err(format!("{s:?} is not a date written YYYY-MM-DD (for example 2026-11-30)"));
        }
        let number = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        let (year, month, day) = (number(0..4), number(5..7), number(8..10));
        if !(1..=12).contains(&month) {
            return Err(format!("{s:?} is not a day of the calendar: there is no month {month}"));
        }
        let last = days_in_month(year, month);
        if !(1..=last).contains(&day) {
            return Err(format!("{s:?} is not a day of the calendar: month {month:02} of {year:04} has {last} days"));
        }
        if year < 1970 {
            return Err(format!("{s:?} is before 1970-01-01"));
        }
        let days = days_from_civil(year, month, day);
        Ok(Self { days: u32::try_from(days).map_err(|_| format!("{s:?} is before 1970-01-01"))? })
    }

    /// The UTC day `epoch_secs` (seconds since 1970-01-01T00:00:00Z, as
    /// `Clock::now` tells them) falls in; after 9999-12-31, that day.
    pub fn from_epoch(epoch_secs: u64) -> Self {
        let days = u32::try_from(epoch_secs / SECS_PER_DAY).unwrap_or(u32::MAX);
        Self { days: days.min(Self::MAX.days) }
    }

    /// Today (UTC) on `clock`.
    pub fn today(clock: &impl Clock) -> Self {
        Self::from_epoch(clock.now())
    }

    /// The first second of the day (00:00:00 UTC), in epoch seconds.
    pub fn epoch_secs(self) -> u64 {
        u64::from(self.days) * SECS_PER_DAY
    }

    /// The day `days` days later (earlier, if negative), held to
    /// 1970-01-01 and 9999-12-31.
    pub fn add_days(self, days: i64) -> Self {
        let moved = i64::from(self.days).saturating_add(days).clamp(0, i64::from(Self::MAX.days));
        Self { days: u32::try_from(moved).unwrap_or(Self::MAX.days) }
    }

    /// How many days `self` is after `earlier` (negative if before).
    pub fn days_since(self, earlier: Date) -> i64 {
        i64::from(self.days) - i64::from(earlier.days)
    }

    /// Year, month (1–12), day (1–31).
    pub fn ymd(self) -> (u32, u32, u32) {
        civil_from_days(i64::from(self.days))
    }
}

fn is_leap(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-from-days and days-from-civil, for days since
// 1970-01-01 (here never negative, and years of four digits).
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let narrow = |n: i64| u32::try_from(n).unwrap_or_default();
    (narrow(year), narrow(month), narrow(day))
}

fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let (year, month, day) = (i64::from(year) - i64::from(month <= 2), i64::from(month), i64::from(day));
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.ymd();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl FromStr for Date {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_calendar_days_parse_and_print_back() {
        for ok in ["1970-01-01", "2026-11-30", "2028-02-29", "2000-02-29", "2026-12-31", "9999-12-31"] {
            assert_eq!(Date::parse(ok).map(|d| d.to_string()).as_deref(), Ok(ok), "{ok}");
        }
        assert_eq!(Date::parse("1970-01-01"), Ok(Date::EPOCH));
        assert_eq!(Date::parse("9999-12-31"), Ok(Date::MAX));
        assert_eq!(Date::parse("2028-02-29").unwrap().ymd(), (2028, 2, 29));
    }

    #[test]
    fn what_is_not_a_calendar_day_is_refused_with_its_rule() {
        let rule = |s: &str| Date::parse(s).unwrap_err();
        assert!(rule("2027-02-29").contains("month 02 of 2027 has 28 days"), "{}", rule("2027-02-29"));
        assert!(rule("1900-02-29").contains("has 28 days"), "not every fourth year is a leap year");
        assert!(rule("2026-04-31").contains("has 30 days"));
        assert!(rule("2026-13-01").contains("no month 13"), "{}", rule("2026-13-01"));
        assert!(rule("2026-00-10").contains("no month 0"));
        assert!(rule("2026-01-00").contains("has 31 days"));
        for shape in ["2026-1-5", "26-01-05", "2026/01/05", "2026-01-05T00:00:00Z", "", "２０２６-01-05", "+026-01-05"]
        {
            assert!(rule(shape).contains("YYYY-MM-DD"), "{shape}: {}", rule(shape));
        }
        assert!(rule("1969-12-31").contains("before 1970"));
    }

    #[test]
    fn it_agrees_with_the_clock_both_ways() {
        assert_eq!(Date::from_epoch(0), Date::EPOCH);
        assert_eq!(Date::from_epoch(1_795_996_800).to_string(), "2026-11-30");
        assert_eq!(Date::from_epoch(1_795_996_800 + 86_399).to_string(), "2026-11-30", "the whole day");
        assert_eq!(Date::from_epoch(951_782_400).to_string(), "2000-02-29");
        assert_eq!(Date::parse("2026-11-30").unwrap().epoch_secs(), 1_795_996_800);
        assert_eq!(Date::from_epoch(u64::MAX), Date::MAX);
        // Every day of four centuries (one whole leap cycle) round-trips.
        let mut day = Date::parse("1999-12-31").unwrap();
        for _ in 0..146_097 {
            let next = day.add_days(1);
            assert_eq!(Date::parse(&next.to_string()), Ok(next));
            assert_eq!(Date::from_epoch(next.epoch_secs()), next);
            assert!(next > day);
            day = next;
        }
        assert_eq!(day.to_string(), "2399-12-31");
    }

    #[test]
    fn days_are_added_and_counted() {
        let d = Date::parse("2028-02-28").unwrap();
        assert_eq!(d.add_days(1).to_string(), "2028-02-29");
        assert_eq!(d.add_days(2).to_string(), "2028-03-01");
        assert_eq!(d.add_days(-59).to_string(), "2027-12-31");
        assert_eq!(d.add_days(30).days_since(d), 30);
        assert_eq!(d.days_since(d.add_days(7)), -7);
        assert_eq!(Date::EPOCH.add_days(-1), Date::EPOCH, "held to the first day");
        assert_eq!(Date::MAX.add_days(i64::MAX), Date::MAX, "held to the last day");
    }

    #[test]
    fn it_travels_as_the_plain_string_and_parses_when_read() {
        let d = Date::parse("2028-02-29").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2028-02-29\"");
        assert_eq!(serde_json::from_str::<Date>("\"2028-02-29\"").unwrap(), d);
        assert!(serde_json::from_str::<Date>("\"2027-02-29\"").is_err());
        assert_eq!("2028-02-29".parse::<Date>(), Ok(d));
    }

    #[test]
    fn today_is_the_clocks_utc_day() {
        struct At(u64);
        impl Clock for At {
            fn now(&self) -> u64 {
                self.0
            }
        }
        assert_eq!(Date::today(&At(1_795_996_800 - 1)).to_string(), "2026-11-29");
        assert_eq!(Date::today(&At(1_795_996_800)).to_string(), "2026-11-30");
    }
}
