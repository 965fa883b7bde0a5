//! The day rows of the counting model: [`NodeDay`] (one node's reports of
//! one version on one day) and [`VersionDay`] (one version's reports of
//! one day in a zone), and the rules that make them from reports. SQLite's
//! writer takes reports in one by one; the ClickHouse rollup takes node-days
//! its server grouped; the statistics merge node-days of several databases:
//! all through these methods.

use std::collections::HashSet;

use semver::Version;

use super::keys::Text;
use crate::clock::Day;
use crate::hint::Status;

/// Report ids kept per node and day, for deduplication across servers when
/// several databases are merged: a node reporting more often than this per
/// day falls back to counting (see docs/STATS.md).
pub const IDS_PER_NODE_DAY: usize = 32;

/// A report's id (the frame nonce).
pub type ReportId = [u8; 12];

/// One node's reports of one version on one day. A node that upgraded
/// during a day has two; its latest (`last_at`) is its state.
///
/// Zone and version are interned texts (a writer keeps a row per node of
/// the day in memory); the version is semver (see
/// [`Interner::version`](super::Interner::version)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDay {
    pub day: Day,
    pub zone: Text,
    pub cluster: [u8; 16],
    pub node: [u8; 16],
    pub version: Text,
    /// Answered to the latest of these reports.
    pub status: Status,
    /// Receive time of the latest of these reports.
    pub last_at: i64,
    pub reports: u64,
    /// Up to [`IDS_PER_NODE_DAY`] of the reports' ids (empty where a reader
    /// was not asked for them).
    pub ids: Vec<ReportId>,
}

/// Where a node-day is: day, zone, cluster and node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeDayKey<'a> {
    pub day: Day,
    pub zone: &'a Text,
    pub cluster: [u8; 16],
    pub node: [u8; 16],
}

impl NodeDay {
    /// A node-day of one report: received at `at` (unix seconds) with
    /// the id `id`, and answered `status`.
    #[must_use]
    pub fn first(
        key: NodeDayKey<'_>,
        version: &Text,
        at: i64,
        status: Status,
        id: Option<&ReportId>,
    ) -> Self {
        let mut ids = Vec::new();
        ids.extend(id.copied());
        NodeDay {
            day: key.day,
            zone: key.zone.clone(),
            cluster: key.cluster,
            node: key.node,
            version: version.clone(),
            status,
            last_at: at,
            reports: 1,
            ids,
        }
    }

    /// Takes in one more report of the node-day, in receive order: the
    /// latest (a later receive time, or the same second and taken later)
    /// sets the status; its id is kept while there is room.
    pub fn take(&mut self, at: i64, status: Status, id: Option<&ReportId>) {
        if at >= self.last_at {
            self.last_at = at;
            self.status = status;
        }
        self.reports += 1;
        if let Some(id) = id.filter(|_| self.ids.len() < IDS_PER_NODE_DAY) {
            self.ids.push(*id);
        }
    }
}

/// One node-day as several databases hold it (one per name server, each
/// with the deliveries it received), each report counted once: by the
/// union of their ids while every database kept all of its ids, else the
/// largest count of any of them (a lower bound).
#[derive(Debug, Clone)]
pub struct MergedNodeDay {
    row: NodeDay,
    ids: HashSet<ReportId>,
    /// Some database's id list was full: the union undercounts.
    saturated: bool,
}

impl MergedNodeDay {
    #[must_use]
    pub fn new(mut row: NodeDay) -> Self {
        let ids: HashSet<ReportId> = row.ids.drain(..).collect();
        let saturated = (ids.len() as u64) < row.reports;
        MergedNodeDay {
            row,
            ids,
            saturated,
        }
    }

    /// Adds another database's row of the same node-day.
    pub fn merge(&mut self, other: NodeDay) {
        let most = self.row.reports.max(other.reports);
        if other.last_at > self.row.last_at {
            self.row.status = other.status;
            self.row.last_at = other.last_at;
        }
        self.saturated |= (other.ids.len() as u64) < other.reports;
        self.ids.extend(other.ids);
        let union = self.ids.len() as u64;
        self.row.reports = if self.saturated {
            most.max(union)
        } else {
            union
        };
    }

    /// The node-day, its reports counted once (without its ids).
    #[must_use]
    pub fn row(self) -> NodeDay {
        self.row
    }
}

/// One version's reports of one day in one zone: every report counted once,
/// anonymous ones included, and the status answered to the latest
/// identified one (else to the latest anonymous one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDay {
    pub day: Day,
    pub version: Version,
    /// All reports, anonymous ones included.
    pub reports: u64,
    pub anonymous: u64,
    /// Receive time of the latest identified report (None: only anonymous).
    pub last_at: Option<i64>,
    /// Answered to the latest identified report, else to the latest
    /// anonymous one.
    pub status: Status,
}

impl VersionDay {
    /// No reports yet; `status` until one is taken.
    #[must_use]
    pub fn new(day: Day, version: Version, status: Status) -> Self {
        VersionDay {
            day,
            version,
            reports: 0,
            anonymous: 0,
            last_at: None,
            status,
        }
    }

    /// Takes in `reports` reports whose latest was received at `at` and
    /// answered `status` (`identified`: they carry a node's identity),
    /// in receive order: ties go to the one taken later.
    pub fn take(&mut self, reports: u64, identified: bool, at: i64, status: Status) {
        self.reports += reports;
        if identified {
            if self.last_at.is_none_or(|last| at >= last) {
                self.last_at = Some(at);
                self.status = status;
            }
        } else {
            self.anonymous += reports;
            if self.last_at.is_none() {
                self.status = status;
            }
        }
    }

    /// Adds the reports of `later`, taken after this row's (a batch after
    /// the rows stored before it).
    pub fn merge(&mut self, later: &VersionDay) {
        self.reports += later.reports;
        self.anonymous += later.anonymous;
        if later.last_at >= self.last_at {
            self.status = later.status;
        }
        self.last_at = self.last_at.max(later.last_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{UpToDate as Fine, UpgradeAvailable as Behind, UpgradeRequired as Insecure};

    fn node_day(at: i64, status: Status, id: u8) -> NodeDay {
        let zone = Text::from("z");
        let key = NodeDayKey {
            day: Day(1),
            zone: &zone,
            cluster: [1; 16],
            node: [2; 16],
        };
        NodeDay::first(key, &Text::from("1.0.0"), at, status, Some(&[id; 12]))
    }

    #[test]
    fn a_node_day_keeps_the_latest_status_and_a_bounded_list_of_ids() {
        let mut d = node_day(100, Fine, 0);
        d.take(90, Insecure, Some(&[1; 12])); // earlier: counted, not the state
        assert_eq!((d.status, d.last_at, d.reports), (Fine, 100, 2));
        d.take(100, Behind, Some(&[2; 12])); // the same second, taken later
        assert_eq!((d.status, d.last_at), (Behind, 100));
        for i in 3..40 {
            d.take(100 + i64::from(i), Fine, Some(&[i; 12]));
        }
        assert_eq!(d.reports, 40);
        assert_eq!(d.ids.len(), IDS_PER_NODE_DAY);
    }

    #[test]
    fn databases_merge_by_report_id_and_fall_back_to_the_larger_count() {
        // Two servers got report 0; each got one more.
        let mut a = node_day(100, Fine, 0);
        a.take(110, Fine, Some(&[1; 12]));
        let mut b = node_day(100, Fine, 0);
        b.take(120, Behind, Some(&[2; 12]));
        let mut m = MergedNodeDay::new(a.clone());
        m.merge(b);
        let row = m.row();
        assert_eq!((row.reports, row.last_at, row.status), (3, 120, Behind));
        assert!(row.ids.is_empty());
        // One database kept no ids for some of its reports: the larger count.
        let mut full = node_day(100, Fine, 9);
        full.reports = 50;
        let mut m = MergedNodeDay::new(full);
        m.merge(a);
        assert_eq!(m.row().reports, 50);
    }

    #[test]
    fn a_version_day_answers_with_the_latest_identified_report() {
        let v = Version::new(1, 0, 0);
        let mut d = VersionDay::new(Day(1), v.clone(), Fine);
        d.take(2, false, 50, Behind);
        assert_eq!(
            (d.reports, d.anonymous, d.last_at, d.status),
            (2, 2, None, Behind)
        );
        d.take(1, true, 40, Insecure);
        d.take(3, false, 60, Fine); // anonymous: the identified one holds
        assert_eq!(
            (d.reports, d.anonymous, d.last_at, d.status),
            (6, 5, Some(40), Insecure)
        );
        d.take(1, true, 40, Behind); // the same second, taken later
        assert_eq!(d.status, Behind);
        d.take(1, true, 30, Fine); // earlier
        assert_eq!((d.last_at, d.status), (Some(40), Behind));
        // A later batch's tally: as if its reports were taken one by one.
        let mut stored = d.clone();
        let mut batch = VersionDay::new(Day(1), v.clone(), Fine);
        batch.take(1, false, 70, Fine);
        stored.merge(&batch);
        assert_eq!(
            (stored.reports, stored.anonymous, stored.status),
            (9, 6, Behind)
        );
        let mut batch = VersionDay::new(Day(1), v, Fine);
        batch.take(1, true, 45, Fine);
        let mut one_by_one = d.clone();
        one_by_one.take(1, true, 45, Fine);
        d.merge(&batch);
        assert_eq!(d, one_by_one);
    }
}
