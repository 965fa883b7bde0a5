//! The one place that reads the wall clock and turns it into the units the
//! rest of the code counts in: unix seconds and UTC day numbers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix seconds (0 if the clock is set before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The UTC day (days since 1970-01-01) a unix time falls on.
pub fn day_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(86_400)
}

/// Today's UTC day number.
pub fn today() -> i64 {
    day_of(unix_now())
}

/// A UTC day: days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    pub fn today() -> Self {
        Day(today())
    }
}
