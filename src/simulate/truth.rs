//! Ground truth: the figures of docs/STATS.md computed from the reports the
//! model sent, with nothing read back from a database. Tests hold
//! [`crate::stats`] to these numbers.
//!
//! Definitions (the counting model):
//! - a node is active in a span of days if it reported on any of them; a
//!   cluster if any of its nodes did; anonymous reports make nobody active;
//! - a node's version in a span is that of its last report there; a cluster
//!   is mixed if its active nodes' versions differ;
//! - per version: `clusters` all of whose active nodes run it,
//!   `cluster_share` each cluster split by its nodes' share, `nodes`, and
//!   `reports` (each report once, however often it was delivered), of which
//!   `anonymous_reports`;
//! - new clusters: active in the window and first seen (ever) in it; gone:
//!   active in the equally long span before the window and not in it;
//! - adoption of V: each day from V's first report on, the share of the
//!   clusters active in the trailing 7 days all of whose nodes run V or newer.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;
use serde::Serialize;

use super::fleet::{Fleet, SimReport, VersionIdx};
use crate::clock::day_of;
use crate::clock::{iso_date, iso_date_or_null};
use crate::hint::Status;
use crate::stats::ADOPTION_WINDOW_DAYS;

const DAY: i64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthActive {
    pub days: i64,
    pub clusters: u64,
    pub nodes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthSummary {
    // JSON: the window as `vcheckd stats --format json` shows it.
    #[serde(rename = "since", serialize_with = "iso_date")]
    pub first_day: i64,
    #[serde(rename = "until", serialize_with = "iso_date")]
    pub last_day: i64,
    /// Active in the 1, 7 and 30 days ending on `last_day`.
    pub active: Vec<TruthActive>,
    pub new_clusters: u64,
    pub gone_clusters: u64,
    pub reports: u64,
    pub anonymous_reports: u64,
    /// Deliveries beyond the first of each report.
    pub duplicates: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthRow {
    pub version: String,
    /// The server's answer to this version.
    pub status: Status,
    pub clusters: u64,
    pub cluster_share: f64,
    pub nodes: u64,
    pub reports: u64,
    pub anonymous_reports: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthVersions {
    // JSON: the window as `vcheckd stats --format json` shows it.
    #[serde(rename = "since", serialize_with = "iso_date")]
    pub first_day: i64,
    #[serde(rename = "until", serialize_with = "iso_date")]
    pub last_day: i64,
    pub active_clusters: u64,
    pub active_nodes: u64,
    pub mixed_clusters: u64,
    /// Nodes on a version answered "upgrade required", and clusters with any.
    pub insecure_nodes: u64,
    pub insecure_clusters: u64,
    /// Newest version first.
    pub rows: Vec<TruthRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthAdoptionPoint {
    #[serde(rename = "date", serialize_with = "iso_date")]
    pub day: i64,
    pub active_clusters: u64,
    pub adopted_clusters: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthAdoption {
    pub version: String,
    /// Day of the version's first report (any identity).
    #[serde(rename = "released", serialize_with = "iso_date_or_null")]
    pub released_day: Option<i64>,
    pub days_to_50: Option<i64>,
    pub days_to_90: Option<i64>,
    pub series: Vec<TruthAdoptionPoint>,
}

/// The truth about a set of reports of one fleet.
pub struct Truth<'a> {
    fleet: &'a Fleet,
    /// Sorted by time.
    reports: &'a [SimReport],
}

impl<'a> Truth<'a> {
    /// `reports` must be sorted by time, as [`Fleet::history`] and
    /// [`Fleet::snapshot`] are.
    #[must_use]
    pub fn new(fleet: &'a Fleet, reports: &'a [SimReport]) -> Self {
        assert!(
            reports.is_sorted_by_key(|r| r.time),
            "reports must be sorted by time"
        );
        Truth { fleet, reports }
    }

    /// The whole simulated history.
    #[must_use]
    pub fn of_history(fleet: &'a Fleet) -> Self {
        Self::new(fleet, &fleet.history)
    }

    fn anonymous(&self, r: &SimReport) -> bool {
        self.fleet.cluster_of(r.node).anonymous
    }

    fn cluster(&self, node: u32) -> u32 {
        self.fleet.nodes[node as usize].cluster
    }

    /// Reports received on days `first..=last`.
    fn in_days(&self, first: i64, last: i64) -> &'a [SimReport] {
        let from = self.reports.partition_point(|r| r.time < first * DAY);
        let to = self.reports.partition_point(|r| r.time < (last + 1) * DAY);
        &self.reports[from..to.max(from)]
    }

    /// Each identified node active in the span, with its last version there
    /// (two reports in the same second: the higher version is the later).
    fn latest(&self, first: i64, last: i64) -> BTreeMap<u32, (i64, VersionIdx)> {
        let mut nodes: BTreeMap<u32, (i64, VersionIdx)> = BTreeMap::new();
        for r in self.in_days(first, last) {
            if self.anonymous(r) {
                continue;
            }
            let e = nodes.entry(r.node).or_insert((r.time, r.version));
            if (r.time, r.version) > *e {
                *e = (r.time, r.version);
            }
        }
        nodes
    }

    /// Each active cluster's nodes' versions.
    fn clusters(&self, first: i64, last: i64) -> BTreeMap<u32, Vec<VersionIdx>> {
        let mut clusters: BTreeMap<u32, Vec<VersionIdx>> = BTreeMap::new();
        for (node, (_, v)) in self.latest(first, last) {
            clusters.entry(self.cluster(node)).or_default().push(v);
        }
        clusters
    }

    fn active_clusters(&self, first: i64, last: i64) -> BTreeSet<u32> {
        self.in_days(first, last)
            .iter()
            .filter(|r| !self.anonymous(r))
            .map(|r| self.cluster(r.node))
            .collect()
    }

    #[must_use]
    pub fn active(&self, first: i64, last: i64) -> (u64, u64) {
        let latest = self.latest(first, last);
        let clusters: BTreeSet<u32> = latest.keys().map(|n| self.cluster(*n)).collect();
        (clusters.len() as u64, latest.len() as u64)
    }

    #[must_use]
    pub fn summary(&self, first: i64, last: i64) -> TruthSummary {
        let active = [1, 7, 30]
            .into_iter()
            .map(|days| {
                let (clusters, nodes) = self.active(last - days + 1, last);
                TruthActive {
                    days,
                    clusters,
                    nodes,
                }
            })
            .collect();
        let mut first_seen: BTreeMap<u32, i64> = BTreeMap::new();
        for r in self.reports.iter().filter(|r| !self.anonymous(r)) {
            first_seen
                .entry(self.cluster(r.node))
                .or_insert(day_of(r.time));
        }
        let window = self.active_clusters(first, last);
        let len = last - first + 1;
        let before = self.active_clusters(first - len, first - 1);
        let reports = self.in_days(first, last);
        TruthSummary {
            first_day: first,
            last_day: last,
            active,
            new_clusters: window.iter().filter(|c| first_seen[c] >= first).count() as u64,
            gone_clusters: before.difference(&window).count() as u64,
            reports: reports.len() as u64,
            anonymous_reports: reports.iter().filter(|r| self.anonymous(r)).count() as u64,
            duplicates: reports
                .iter()
                .map(|r| u64::from(r.deliveries.saturating_sub(1)))
                .sum(),
        }
    }

    #[must_use]
    pub fn versions(&self, first: i64, last: i64) -> TruthVersions {
        let mut rows: BTreeMap<VersionIdx, TruthRow> = BTreeMap::new();
        let fleet = self.fleet;
        let row = |v: VersionIdx| TruthRow {
            version: fleet.version(v).to_string(),
            status: fleet.status[usize::from(v)],
            clusters: 0,
            cluster_share: 0.0,
            nodes: 0,
            reports: 0,
            anonymous_reports: 0,
        };
        for r in self.in_days(first, last) {
            let e = rows.entry(r.version).or_insert_with(|| row(r.version));
            e.reports += 1;
            if self.anonymous(r) {
                e.anonymous_reports += 1;
            }
        }
        let insecure = |v: VersionIdx| fleet.status[usize::from(v)] == Status::UpgradeRequired;
        let latest = self.latest(first, last);
        for (_, v) in latest.values() {
            rows.get_mut(v).expect("a row per version reported").nodes += 1;
        }
        let clusters = self.clusters(first, last);
        let (mut mixed, mut insecure_clusters) = (0, 0);
        for versions in clusters.values() {
            if versions.iter().all(|v| *v == versions[0]) {
                rows.get_mut(&versions[0]).expect("reported").clusters += 1;
            } else {
                mixed += 1;
            }
            // Whole nodes per version first, then one division: the share
            // as exact as a float allows.
            let mut per_version: BTreeMap<VersionIdx, u64> = BTreeMap::new();
            for v in versions {
                *per_version.entry(*v).or_default() += 1;
            }
            for (v, n) in per_version {
                rows.get_mut(&v).expect("reported").cluster_share +=
                    n as f64 / versions.len() as f64;
            }
            if versions.iter().any(|v| insecure(*v)) {
                insecure_clusters += 1;
            }
        }
        TruthVersions {
            first_day: first,
            last_day: last,
            active_clusters: clusters.len() as u64,
            active_nodes: latest.len() as u64,
            mixed_clusters: mixed,
            insecure_nodes: latest.values().filter(|(_, v)| insecure(*v)).count() as u64,
            insecure_clusters,
            rows: rows.into_values().rev().collect(),
        }
    }

    /// Adoption of `version` from its first report through `last_day`.
    #[must_use]
    pub fn adoption(&self, version: &Version, last_day: i64) -> TruthAdoption {
        let fleet = self.fleet;
        let released_day = self
            .reports
            .iter()
            .find(|r| fleet.version(r.version) == version)
            .map(|r| day_of(r.time));
        let mut out = TruthAdoption {
            version: version.to_string(),
            released_day,
            days_to_50: None,
            days_to_90: None,
            series: Vec::new(),
        };
        let Some(released) = released_day else {
            return out;
        };
        for day in released..=last_day {
            let clusters = self.clusters(day - ADOPTION_WINDOW_DAYS + 1, day);
            let active = clusters.len() as u64;
            let adopted = clusters
                .values()
                .filter(|vs| vs.iter().all(|v| fleet.version(*v) >= version))
                .count() as u64;
            // Integer comparisons: the thresholds exactly, no rounding.
            if active > 0 && 2 * adopted >= active && out.days_to_50.is_none() {
                out.days_to_50 = Some(day - released);
            }
            if active > 0 && 10 * adopted >= 9 * active && out.days_to_90.is_none() {
                out.days_to_90 = Some(day - released);
            }
            out.series.push(TruthAdoptionPoint {
                day,
                active_clusters: active,
                adopted_clusters: adopted,
            });
        }
        out
    }
}
