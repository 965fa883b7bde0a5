//! Each node's latest state (and the one before its latest day), kept per
//! report so that fleet snapshots read one row per node instead of every
//! node-day.
//!
//! The previous state is what makes a day closable late: while the first
//! reports of day D+1 arrive, the state of every node *as of the end of D*
//! is still known (its latest, or the one before it), so a report of D
//! processed a moment after midnight still lands in D's snapshot.

use std::cmp::Ordering;

use semver::Version;

use super::keys::Text;

/// A node's latest report: day, receive time, version and status answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeLatest {
    pub last_day: i64,
    pub last_at: i64,
    pub version: Text,
    pub status: u8,
    /// The latest state on a day before `last_day`, if any.
    pub prev: Option<DayState>,
}

/// A node's state at the end of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayState {
    pub day: i64,
    pub version: Text,
    pub status: u8,
}

/// Same second (receive times are whole seconds): the higher version is
/// taken as the later report, an upgrade. The counting model's tie rule.
/// Text that is not semver is taken as older than any version.
fn later(at: i64, version: &str, than_at: i64, than_version: &str) -> bool {
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
    pub fn new(day: i64, at: i64, version: &Text, status: u8) -> Self {
        NodeLatest {
            last_day: day,
            last_at: at,
            version: version.clone(),
            status,
            prev: None,
        }
    }

    /// Takes one report into account, in any order. A report older than
    /// both known days changes nothing here (the node-day rows keep it).
    pub fn observe(&mut self, day: i64, at: i64, version: &Text, status: u8) {
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
    pub fn as_of(&self, day: i64) -> Option<(i64, &str, u8)> {
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

    fn v(s: &str) -> Text {
        crate::store::keys::Interner::default().version(s)
    }

    #[test]
    fn latest_and_previous_day() {
        let mut n = NodeLatest::new(10, 1_000, &v("1.0.0"), 1);
        n.observe(10, 900, &v("0.9.0"), 3); // earlier the same day: ignored
        assert_eq!(n.as_of(10), Some((10, "1.0.0", 1)));
        n.observe(10, 1_000, &v("1.1.0"), 1); // same second, higher: upgrade
        assert_eq!(n.version.as_str(), "1.1.0");
        n.observe(12, 5_000, &v("2.0.0"), 1);
        assert_eq!(n.as_of(12), Some((12, "2.0.0", 1)));
        assert_eq!(n.as_of(11), Some((10, "1.1.0", 1)));
        assert_eq!(n.as_of(9), None);
        // A straggler of day 11, after day 12 began.
        n.observe(11, 4_000, &v("1.5.0"), 2);
        assert_eq!(n.as_of(11), Some((11, "1.5.0", 2)));
        // Older than what we know: no effect.
        n.observe(9, 1, &v("0.1.0"), 3);
        assert_eq!(n.as_of(11), Some((11, "1.5.0", 2)));
        assert_eq!(n.as_of(12), Some((12, "2.0.0", 1)));
    }
}
