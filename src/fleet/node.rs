//! One node's state: its latest report (and its state at the end of the day
//! before its latest day), taken in report by report or node-day by
//! node-day, so that fleet snapshots read one value per node instead of
//! every node-day.
//!
//! The previous state is what makes a day closable late: while the first
//! reports of day D+1 arrive, the state of every node *as of the end of D*
//! is still known (its latest, or the one before it), so a report of D
//! processed a moment after midnight still lands in D's snapshot.

use std::cmp::Ordering;

use semver::Version;

use super::keys::Text;
use crate::clock::Day;
use crate::hint::Status;

/// A node's latest report: day, receive time, version and status answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLatest {
    pub last_day: Day,
    pub last_at: i64,
    pub version: Text,
    pub status: Status,
    /// The latest state on a day before `last_day`, if any.
    pub prev: Option<DayState>,
}

/// A node's state at the end of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayState {
    pub day: Day,
    pub version: Text,
    pub status: Status,
}

/// Whether a report received at `at` carrying `version` is later than one
/// received at `than_at` carrying `than_version`: the counting model's tie
/// rule. Receive times are whole seconds, so within one second the higher
/// version is taken as the later report (an upgrade). Text that is not
/// semver is taken as older than any version.
#[must_use]
pub fn later(at: i64, version: &str, than_at: i64, than_version: &str) -> bool {
    match at.cmp(&than_at) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => match (Version::parse(version), Version::parse(than_version)) {
            (Ok(v), Ok(than)) => v > than,
            (Ok(_), Err(_)) => true,
            (Err(_), _) => false,
        },
    }
}

impl NodeLatest {
    #[must_use]
    pub fn new(day: Day, at: i64, version: &Text, status: Status) -> Self {
        NodeLatest {
            last_day: day,
            last_at: at,
            version: version.clone(),
            status,
            prev: None,
        }
    }

    /// Takes one report (or a node-day's latest report) into account, in
    /// any order. A report older than both known days changes nothing
    /// here (the node-day rows keep it).
    pub fn observe(&mut self, day: Day, at: i64, version: &Text, status: Status) {
        if day > self.last_day {
            let latest = std::mem::replace(&mut self.version, version.clone());
            self.prev = Some(DayState {
                day: self.last_day,
                version: latest,
                status: self.status,
            });
            self.last_day = day;
            self.last_at = at;
            self.status = status;
        } else if day == self.last_day {
            if later(at, version, self.last_at, &self.version) {
                self.last_at = at;
                self.version = version.clone();
                self.status = status;
            }
        } else if self.prev.as_ref().is_none_or(|p| day >= p.day) {
            // A straggler of an earlier day: its day-end state is the
            // latest we know of for that day.
            self.prev = Some(DayState {
                day,
                version: version.clone(),
                status,
            });
        }
    }

    /// The node's state at the end of `day`: its latest report on or
    /// before that day, if known.
    #[must_use]
    pub fn as_of(&self, day: Day) -> Option<(Day, &str, Status)> {
        if self.last_day <= day {
            return Some((self.last_day, self.version.as_str(), self.status));
        }
        self.prev
            .as_ref()
            .filter(|p| p.day <= day)
            .map(|p| (p.day, p.version.as_str(), p.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{UpToDate as Fine, UpgradeAvailable as Behind, UpgradeRequired as Insecure};

    fn v(s: &str) -> Text {
        super::super::keys::Interner::default().version(s).unwrap()
    }

    #[test]
    fn latest_and_previous_day() {
        let mut n = NodeLatest::new(Day(10), 1_000, &v("1.0.0"), Fine);
        n.observe(Day(10), 900, &v("0.9.0"), Insecure); // earlier the same day: ignored
        assert_eq!(n.as_of(Day(10)), Some((Day(10), "1.0.0", Fine)));
        n.observe(Day(10), 1_000, &v("1.1.0"), Fine); // same second, higher: upgrade
        assert_eq!(n.version.as_str(), "1.1.0");
        n.observe(Day(12), 5_000, &v("2.0.0"), Fine);
        assert_eq!(n.as_of(Day(12)), Some((Day(12), "2.0.0", Fine)));
        assert_eq!(n.as_of(Day(11)), Some((Day(10), "1.1.0", Fine)));
        assert_eq!(n.as_of(Day(9)), None);
        // A straggler of day 11, after day 12 began.
        n.observe(Day(11), 4_000, &v("1.5.0"), Behind);
        assert_eq!(n.as_of(Day(11)), Some((Day(11), "1.5.0", Behind)));
        // Older than what we know: no effect.
        n.observe(Day(9), 1, &v("0.1.0"), Insecure);
        assert_eq!(n.as_of(Day(11)), Some((Day(11), "1.5.0", Behind)));
        assert_eq!(n.as_of(Day(12)), Some((Day(12), "2.0.0", Fine)));
    }

    #[test]
    fn ties_go_to_the_higher_version() {
        assert!(later(2, "1.0.0", 1, "9.0.0"));
        assert!(!later(1, "9.0.0", 2, "1.0.0"));
        assert!(later(1, "1.10.0", 1, "1.9.0"));
        assert!(!later(1, "1.9.0", 1, "1.10.0"));
        assert!(later(1, "0.0.1", 1, "not semver"));
        assert!(!later(1, "not semver", 1, "0.0.1"));
        assert!(!later(1, "1.0.0", 1, "1.0.0"));
    }
}
