//! The one place that reads the wall clock and turns it into the units the
//! rest of the code counts in: unix seconds, nanoseconds (ClickHouse's
//! `computed_at` stamps) and UTC days ([`Day`]), and the one place that
//! writes those as dates for people (`YYYY-MM-DD`, proleptic Gregorian).
//!
//! A leaf: it imports nothing of the crate (dates are jiff's).

use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds in a UTC day (no leap seconds in unix time).
pub const DAY_SECS: i64 = 86_400;

/// Now, in unix seconds (0 if the clock is set before 1970).
#[must_use]
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Now, in nanoseconds since 1970 (0 if the clock is set before it).
#[must_use]
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The UTC day number (days since 1970-01-01) a unix time falls on.
#[must_use]
pub fn day_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(DAY_SECS)
}

/// Today's UTC day.
#[must_use]
pub fn today() -> Day {
    Day::of(unix_now())
}

/// A UTC day: days since 1970-01-01. Serialized as that number, which is
/// what the JSON API and the tables hold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Day(pub i64);

impl Day {
    #[must_use]
    pub fn today() -> Self {
        today()
    }

    /// The day a unix time falls on.
    #[must_use]
    pub fn of(unix_seconds: i64) -> Self {
        Day(day_of(unix_seconds))
    }

    /// The unix time the day begins at (its midnight, UTC).
    #[must_use]
    pub fn start(self) -> i64 {
        self.0.saturating_mul(DAY_SECS)
    }

    /// The day as `YYYY-MM-DD`.
    #[must_use]
    pub fn date(self) -> String {
        date_of_day(self.0)
    }
}

impl From<i64> for Day {
    fn from(day: i64) -> Self {
        Day(day)
    }
}

impl Add<i64> for Day {
    type Output = Day;
    fn add(self, days: i64) -> Day {
        Day(self.0 + days)
    }
}

impl Sub<i64> for Day {
    type Output = Day;
    fn sub(self, days: i64) -> Day {
        Day(self.0 - days)
    }
}

/// Days from `other` to `self`.
impl Sub for Day {
    type Output = i64;
    fn sub(self, other: Day) -> i64 {
        self.0 - other.0
    }
}

impl AddAssign<i64> for Day {
    fn add_assign(&mut self, days: i64) {
        self.0 += days;
    }
}

impl SubAssign<i64> for Day {
    fn sub_assign(&mut self, days: i64) {
        self.0 -= days;
    }
}

/// A day number as `YYYY-MM-DD` (UTC); a day outside years 1-9999 as
/// `day N`.
#[must_use]
pub fn date_of_day(day: i64) -> String {
    // 0001-01-01T00:00:00Z in unix seconds: jiff goes back to year -9999.
    const YEAR_1: i64 = -62_135_596_800;
    day.checked_mul(DAY_SECS)
        .filter(|s| *s >= YEAR_1)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || format!("day {day}"),
            |t| t.strftime("%Y-%m-%d").to_string(),
        )
}

/// A day number in JSON as its ISO 8601 date (`"2026-11-23"`), as every
/// other output shows days: the day number is the code's unit, not a
/// reader's (serde's `serialize_with`).
///
/// # Errors
/// The serializer's.
pub fn iso_date<S: serde::Serializer>(day: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&date_of_day(*day))
}

/// [`iso_date`] for a day that may be absent (`null`).
///
/// # Errors
/// The serializer's.
pub fn iso_date_or_null<S: serde::Serializer>(day: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match day {
        Some(day) => iso_date(day, s),
        None => s.serialize_none(),
    }
}

/// Unix seconds as an ISO 8601 UTC time, `2026-11-23T10:00:00Z`.
#[must_use]
pub fn utc_time(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map_or_else(|_| format!("{unix_seconds} (unix)"), |t| t.to_string())
}

/// `YYYY-MM-DD` to a day number; `None` if malformed or not a date.
#[must_use]
pub fn day_of_date(text: &str) -> Option<i64> {
    let date: jiff::civil::Date = text.trim().parse().ok()?;
    if !(1..=9999).contains(&date.year()) {
        return None;
    }
    let epoch = jiff::civil::date(1970, 1, 1);
    Some(i64::from(date.since(epoch).ok()?.get_days()))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
#[must_use]
pub fn utc(secs: i64) -> String {
    let t = secs.rem_euclid(DAY_SECS);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        date_of_day(day_of(secs)),
        t / 3_600,
        t / 60 % 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(20_415), "2025-11-23");
        assert_eq!(day_of_date("2025-11-23"), Some(20_415));
        assert_eq!(
            day_of_date("2024-02-29").map(date_of_day).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(day_of_date("2025-02-29"), None);
        assert_eq!(day_of_date("2025-13-01"), None);
        assert_eq!(day_of_date("soon"), None);
        assert_eq!(day_of_date("1969-12-31"), Some(-1));
        assert_eq!(utc_time(86_400 + 3_723), "1970-01-02T01:02:03Z");
    }

    #[test]
    fn expiry_reads_as_utc() {
        assert_eq!(utc(86_400 + 3_723), "1970-01-02 01:02:03 UTC");
    }

    #[test]
    fn days_count_and_serialize_as_numbers() {
        assert_eq!(Day::of(-1), Day(-1));
        assert_eq!(Day::of(86_399), Day(0));
        assert_eq!(Day(3).start(), 259_200);
        assert_eq!(Day(10) - Day(3), 7);
        assert_eq!(Day(10) - 3, Day(7));
        assert_eq!(Day(20_415).date(), "2025-11-23");
        assert_eq!(serde_json::to_string(&Day(20_415)).unwrap(), "20415");
    }
}
