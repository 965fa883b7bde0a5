//! The one place that reads the wall clock and turns it into the units the
//! rest of the code counts in: unix seconds, nanoseconds (ClickHouse's
//! `computed_at` stamps) and UTC days ([`Day`]), and the one place that
//! writes those as dates for people (`YYYY-MM-DD`, proleptic Gregorian).
//!
//! A leaf: it imports nothing of the crate.

use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds in a UTC day (no leap seconds in unix time).
pub const DAY_SECS: i64 = 86_400;

/// Now, in unix seconds (0 if the clock is set before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Now, in nanoseconds since 1970 (0 if the clock is set before it).
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The UTC day number (days since 1970-01-01) a unix time falls on.
pub fn day_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(DAY_SECS)
}

/// Today's UTC day.
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
    pub fn today() -> Self {
        today()
    }

    /// The day a unix time falls on.
    pub fn of(unix_seconds: i64) -> Self {
        Day(day_of(unix_seconds))
    }

    /// The unix time the day begins at (its midnight, UTC).
    pub fn start(self) -> i64 {
        self.0.saturating_mul(DAY_SECS)
    }

    /// The day as `YYYY-MM-DD`.
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

/// A day number as `YYYY-MM-DD` (proleptic Gregorian, UTC).
pub fn date_of_day(day: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD` to a day number; `None` if malformed.
pub fn day_of_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    // Day 31 of a 30-day month rolls over: reject it.
    (date_of_day(day) == format!("{y:04}-{m:02}-{d:02}")).then_some(day)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
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
