//! Fleet statistics from the daily rollups (docs/STATS.md is the counting
//! model): summary, version distribution, trend and adoption.
//!
//! Every figure is computed here, once, from a [`Dataset`]; the CLI, the
//! HTTP API and the dashboard only format it.

pub mod dataset;
pub mod render;
mod source;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use semver::Version;
use serde::Serialize;

use crate::clock::{iso_date, iso_date_or_null, Day};
use crate::fleet::{self, Member, NodeDay, WindowFigures};
use crate::hint::Status;
use crate::protocol::ZoneName;

pub use dataset::{Dataset, Scope};
pub use source::{Source, StatsError};

/// Newest version first; text that is not semver sorts last.
#[must_use]
pub fn cmp_versions_desc(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => y.cmp(&x),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// A node of the zone: cluster and node.
type NodeKey = ([u8; 16], [u8; 16]);

/// Each node active in a span of days, with its latest row there (the
/// counting model's tie rule, [`fleet::later`]).
fn latest_by_node(data: &Dataset, first: Day, last: Day) -> HashMap<NodeKey, &NodeDay> {
    let mut nodes: HashMap<NodeKey, &NodeDay> = HashMap::new();
    for row in data.days(first, last) {
        nodes
            .entry((row.cluster, row.node))
            .and_modify(|r| {
                if fleet::later(row.last_at, &row.version, r.last_at, &r.version) {
                    *r = row;
                }
            })
            .or_insert(row);
    }
    nodes
}

/// The window of `days` ending on `last` over each node's latest row in
/// it: the counting model's snapshot of those nodes.
fn window_of(nodes: &HashMap<NodeKey, &NodeDay>, last: Day, days: i64) -> WindowFigures {
    let mut members: Vec<(&NodeKey, &&NodeDay)> = nodes.iter().collect();
    members.sort_unstable_by_key(|(k, _)| **k);
    let members = members.into_iter().map(|((cluster, _), r)| Member {
        cluster: *cluster,
        last_day: r.day,
        version: r.version.as_str(),
        status: r.status,
    });
    let snap = fleet::snapshot::compute(last, members, &[days]);
    snap.windows.into_iter().next().unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Active {
    pub days: i64,
    pub clusters: u64,
    pub nodes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub zone: String,
    /// The window, both days included (JSON: `since`, `until`, ISO dates).
    #[serde(rename = "since", serialize_with = "iso_date")]
    pub first_day: i64,
    #[serde(rename = "until", serialize_with = "iso_date")]
    pub last_day: i64,
    /// Active in the 1, 7 and 30 days ending on `last_day`.
    pub active: Vec<Active>,
    /// Clusters first seen (ever) within the window.
    pub new_clusters: u64,
    /// Clusters active in the equally long span before the window, not in it.
    pub gone_clusters: u64,
    pub reports: u64,
    pub anonymous_reports: u64,
    pub duplicates: u64,
    pub rejected_names: u64,
    /// Answered reports the journal could not take (it was full).
    pub dropped: u64,
    /// Report names answered, by protocol version (per server, all zones):
    /// how far a fleet has moved to v2.
    pub reports_v1: u64,
    pub reports_v2: u64,
}

/// The span a summary needs loaded: the window and the span before it, and
/// at least 30 days for the "active in 30 days" figure.
#[must_use]
pub fn summary_scope(first_day: i64, last_day: i64, zone: ZoneName) -> Scope {
    let len = last_day - first_day + 1;
    Scope {
        first_day: (first_day - len).min(last_day - 29),
        last_day,
        zone,
    }
}

#[must_use]
pub fn summary(data: &Dataset, first_day: i64, last_day: i64) -> Summary {
    let (first, last) = (Day(first_day), Day(last_day));
    let active = [1, 7, 30]
        .iter()
        .map(|&days| {
            let nodes = latest_by_node(data, last - days + 1, last);
            let clusters: HashSet<[u8; 16]> = nodes.keys().map(|(c, _)| *c).collect();
            Active {
                days,
                clusters: clusters.len() as u64,
                nodes: nodes.len() as u64,
            }
        })
        .collect();
    let in_window: HashSet<[u8; 16]> = data.days(first, last).map(|r| r.cluster).collect();
    let len = last - first + 1;
    let before: HashSet<[u8; 16]> = data
        .days(first - len, first - 1)
        .map(|r| r.cluster)
        .collect();
    let new_clusters = in_window
        .iter()
        .filter(|cluster| {
            data.cluster_first_day
                .get(*cluster)
                .is_some_and(|d| *d >= first)
        })
        .count() as u64;
    let anonymous_reports = data.anon_days(first, last).map(|a| a.anonymous).sum();
    let identified: u64 = data.days(first, last).map(|r| r.reports).sum();
    Summary {
        zone: data.zone.clone(),
        first_day,
        last_day,
        active,
        new_clusters,
        gone_clusters: before.difference(&in_window).count() as u64,
        reports: identified + anonymous_reports,
        anonymous_reports,
        duplicates: data.counter("reports.duplicate", first, last),
        rejected_names: data.counter("rejected.", first, last),
        dropped: data.counter("reports.dropped", first, last),
        reports_v1: data.counter("reports.v1", first, last),
        reports_v2: data.counter("reports.v2", first, last),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRow {
    pub version: String,
    /// Status answered to the latest report of this version (None: only
    /// grouped rows).
    pub status: Option<Status>,
    /// Clusters all of whose nodes run this version.
    pub clusters: u64,
    /// Clusters counted by node share: a mixed cluster with 3 of 4 nodes on
    /// this version adds 0.75. Sums to the active clusters.
    pub cluster_share: f64,
    pub nodes: u64,
    pub reports: u64,
    pub anonymous_reports: u64,
}

impl VersionRow {
    pub(crate) fn empty(version: &str) -> Self {
        VersionRow {
            version: version.to_string(),
            status: None,
            clusters: 0,
            cluster_share: 0.0,
            nodes: 0,
            reports: 0,
            anonymous_reports: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versions {
    pub zone: String,
    /// The window, both days included (JSON: `since`, `until`, ISO dates).
    #[serde(rename = "since", serialize_with = "iso_date")]
    pub first_day: i64,
    #[serde(rename = "until", serialize_with = "iso_date")]
    pub last_day: i64,
    pub active_clusters: u64,
    pub active_nodes: u64,
    /// Clusters whose nodes run different versions (an upgrade in progress).
    pub mixed_clusters: u64,
    /// Nodes, and clusters with any node, on a version answered status 3.
    pub insecure_nodes: u64,
    pub insecure_clusters: u64,
    pub rows: Vec<VersionRow>,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Versions {
    #[must_use]
    pub fn insecure_node_share(&self) -> f64 {
        share(self.insecure_nodes, self.active_nodes)
    }

    #[must_use]
    pub fn insecure_cluster_share(&self) -> f64 {
        share(self.insecure_clusters, self.active_clusters)
    }

    /// The `top` versions by cluster share, the rest summed into "other":
    /// label cardinality for metrics, legibility for charts.
    #[must_use]
    pub fn grouped(&self, top: usize) -> Vec<VersionRow> {
        let mut rows = self.rows.clone();
        rows.sort_by(|a, b| {
            b.cluster_share
                .total_cmp(&a.cluster_share)
                .then_with(|| b.nodes.cmp(&a.nodes))
                .then_with(|| cmp_versions_desc(&a.version, &b.version))
        });
        if rows.len() <= top {
            rows.sort_by(|a, b| cmp_versions_desc(&a.version, &b.version));
            return rows;
        }
        let rest = rows.split_off(top);
        rows.sort_by(|a, b| cmp_versions_desc(&a.version, &b.version));
        rows.push(
            rest.into_iter()
                .fold(VersionRow::empty("other"), |mut acc, r| {
                    acc.clusters += r.clusters;
                    acc.cluster_share += r.cluster_share;
                    acc.nodes += r.nodes;
                    acc.reports += r.reports;
                    acc.anonymous_reports += r.anonymous_reports;
                    acc
                }),
        );
        rows
    }
}

impl Versions {
    /// The distribution of a window of `first..=last` from its figures
    /// (a snapshot's window) and its active clusters and nodes, with
    /// `rows`: each version's reports and status.
    pub(crate) fn from_figures(
        zone: String,
        (first_day, last_day): (i64, i64),
        figures: WindowFigures,
        (active_clusters, active_nodes): (u64, u64),
        mut rows: BTreeMap<String, VersionRow>,
    ) -> Self {
        for (name, f) in &figures.versions {
            if let Some(row) = rows.get_mut(name) {
                row.clusters = f.clusters;
                row.nodes = f.nodes;
                row.cluster_share = f.clusters as f64 + f.share_mixed;
            }
        }
        let mut rows: Vec<VersionRow> = rows.into_values().collect();
        rows.sort_by(|a, b| cmp_versions_desc(&a.version, &b.version));
        Versions {
            zone,
            first_day,
            last_day,
            active_clusters,
            active_nodes,
            mixed_clusters: figures.mixed_clusters,
            insecure_nodes: figures.insecure_nodes,
            insecure_clusters: figures.insecure_clusters,
            rows,
        }
    }
}

#[must_use]
pub fn versions(data: &Dataset, first_day: i64, last_day: i64) -> Versions {
    let (first, last) = (Day(first_day), Day(last_day));
    let nodes = latest_by_node(data, first, last);
    let mut rows = VersionRows::default();
    for r in data.days(first, last) {
        rows.take(&r.version, r.reports, 0, Some(r.last_at), r.status);
    }
    for a in data.anon_days(first, last) {
        rows.take(
            &a.version.to_string(),
            a.anonymous,
            a.anonymous,
            None,
            a.status,
        );
    }
    let clusters: HashSet<[u8; 16]> = nodes.keys().map(|(c, _)| *c).collect();
    let active = (clusters.len() as u64, nodes.len() as u64);
    let figures = window_of(&nodes, last, last - first + 1);
    Versions::from_figures(
        data.zone.clone(),
        (first_day, last_day),
        figures,
        active,
        rows.rows,
    )
}

/// Each version's reports in a window, and the status answered to its
/// latest identified report (else to an anonymous one).
#[derive(Default)]
pub(crate) struct VersionRows {
    pub(crate) rows: BTreeMap<String, VersionRow>,
    /// Per version, the receive time of the latest identified report.
    status_at: HashMap<String, i64>,
}

impl VersionRows {
    /// Takes in `reports` of `version` (`anonymous` of them), the latest
    /// identified one received at `latest` (None: anonymous only), and
    /// the status answered.
    pub(crate) fn take(
        &mut self,
        version: &str,
        reports: u64,
        anonymous: u64,
        latest: Option<i64>,
        status: Status,
    ) {
        let row = self
            .rows
            .entry(version.to_string())
            .or_insert_with(|| VersionRow::empty(version));
        row.reports += reports;
        row.anonymous_reports += anonymous;
        match latest {
            Some(at) => {
                let seen = self
                    .status_at
                    .entry(version.to_string())
                    .or_insert(i64::MIN);
                if at >= *seen {
                    *seen = at;
                    row.status = Some(status);
                }
            }
            None => {
                row.status.get_or_insert(status);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Week,
}

impl Bucket {
    #[must_use]
    pub fn days(self) -> i64 {
        match self {
            Bucket::Day => 1,
            Bucket::Week => 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub zone: String,
    /// First day of the bucket (JSON: `date`).
    #[serde(rename = "date", serialize_with = "iso_date")]
    pub day: i64,
    pub version: String,
    /// Active clusters in the bucket by node share (see [`VersionRow`]).
    pub clusters: f64,
    pub nodes: u64,
}

/// Per bucket (day or whole week, the newest ending on `last_day`; the
/// oldest may start before `first_day`, so every bucket is comparable), the
/// version distribution of the clusters and nodes active in it. `data`
/// must cover the oldest bucket.
#[must_use]
pub fn trend(data: &Dataset, first_day: i64, last_day: i64, bucket: Bucket) -> Vec<TrendPoint> {
    let step = bucket.days();
    let mut points = Vec::new();
    // Buckets are aligned to end on last_day, so the newest one is whole.
    let mut start = last_day - step + 1;
    while start + step > first_day {
        let from = start;
        let v = versions(data, from, start + step - 1);
        for r in v.rows.into_iter().filter(|r| r.nodes > 0) {
            points.push(TrendPoint {
                zone: data.zone.clone(),
                day: from,
                version: r.version,
                clusters: r.cluster_share,
                nodes: r.nodes,
            });
        }
        start -= step;
    }
    sort_trend(&mut points);
    points
}

/// Oldest bucket first, newest version first within it.
pub(crate) fn sort_trend(points: &mut [TrendPoint]) {
    points.sort_by(|a, b| {
        a.day
            .cmp(&b.day)
            .then_with(|| cmp_versions_desc(&a.version, &b.version))
    });
}

/// Days over which activity is counted for adoption: a cluster that
/// reported in the last week is active, so a quiet day does not undercount.
pub const ADOPTION_WINDOW_DAYS: i64 = 7;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdoptionPoint {
    #[serde(rename = "date", serialize_with = "iso_date")]
    pub day: i64,
    pub active_clusters: u64,
    /// Share of active clusters all of whose nodes run the version or newer.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adoption {
    pub zone: String,
    pub version: String,
    /// First day any report carried the version (the release, as seen;
    /// JSON: `released`, an ISO date or null).
    #[serde(rename = "released", serialize_with = "iso_date_or_null")]
    pub released_day: Option<i64>,
    pub days_to_50: Option<i64>,
    pub days_to_90: Option<i64>,
    pub series: Vec<AdoptionPoint>,
}

#[must_use]
pub fn adoption(data: &Dataset, version: &Version, last_day: i64) -> Adoption {
    let name = version.to_string();
    let released_day = data.version_first_day.get(&name).map(|d| d.0);
    let mut result = Adoption {
        zone: data.zone.clone(),
        version: name,
        released_day,
        days_to_50: None,
        days_to_90: None,
        series: Vec::new(),
    };
    let Some(released) = released_day else {
        return result;
    };
    for day in released..=last_day {
        let day = Day(day);
        let nodes = latest_by_node(data, day - ADOPTION_WINDOW_DAYS + 1, day);
        let clusters: HashSet<[u8; 16]> = nodes.keys().map(|(c, _)| *c).collect();
        let figures = window_of(&nodes, day, ADOPTION_WINDOW_DAYS);
        result.push(day.0, clusters.len() as u64, figures.adopted(version));
    }
    result
}

impl Adoption {
    /// Adds a day's point: `adopted` of `active` clusters run the version
    /// or newer.
    pub(crate) fn push(&mut self, day: i64, active: u64, adopted: u64) {
        let s = share(adopted, active);
        let since = day - self.released_day.unwrap_or(day);
        if s >= 0.5 && self.days_to_50.is_none() {
            self.days_to_50 = Some(since);
        }
        if s >= 0.9 && self.days_to_90.is_none() {
            self.days_to_90 = Some(since);
        }
        self.series.push(AdoptionPoint {
            day,
            active_clusters: active,
            share: s,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nd(day: i64, cluster: u8, node: u8, version: &str, status: u8) -> NodeDay {
        NodeDay {
            day: Day(day),
            zone: "z".into(),
            cluster: [cluster; 16],
            node: [node; 16],
            version: version.into(),
            status: Status::from_code(status).unwrap(),
            last_at: day * 86_400 + i64::from(node),
            reports: 1,
            ids: Vec::new(),
        }
    }

    fn data(rows: Vec<NodeDay>) -> Dataset {
        let mut d = Dataset {
            node_days: rows,
            ..Dataset::default()
        };
        d.node_days.sort_by_key(|r| r.day);
        for r in &d.node_days {
            d.version_first_day
                .entry(r.version.to_string())
                .and_modify(|x| *x = (*x).min(r.day))
                .or_insert(r.day);
            d.cluster_first_day
                .entry(r.cluster)
                .and_modify(|x| *x = (*x).min(r.day))
                .or_insert(r.day);
        }
        d
    }

    #[test]
    fn mixed_clusters_count_by_share_and_latest_report_wins() {
        let d = data(vec![
            nd(10, 1, 1, "1.0.0", 3),
            nd(11, 1, 1, "2.0.0", 1), // node upgraded: latest wins
            nd(11, 1, 2, "1.0.0", 3), // its sibling did not: mixed
            nd(11, 2, 1, "2.0.0", 1),
            nd(11, 2, 2, "2.0.0", 1),
        ]);
        let v = versions(&d, 10, 11);
        assert_eq!(
            (v.active_clusters, v.active_nodes, v.mixed_clusters),
            (2, 4, 1)
        );
        let row = |name: &str| v.rows.iter().find(|r| r.version == name).unwrap().clone();
        assert_eq!((row("2.0.0").clusters, row("2.0.0").nodes), (1, 3));
        assert_eq!(row("2.0.0").cluster_share, 1.5);
        assert_eq!(row("1.0.0").cluster_share, 0.5);
        assert_eq!(row("1.0.0").reports, 2);
        assert_eq!((v.insecure_nodes, v.insecure_clusters), (1, 1));
        let grouped = v.grouped(1);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[1].version, "other");
        assert_eq!(grouped[1].cluster_share, 0.5);
    }

    #[test]
    fn adoption_counts_over_a_trailing_week() {
        // Two clusters; one upgrades on day 3, the other on day 12, and
        // cluster 2 reports only every third day.
        let mut rows = Vec::new();
        for day in 0..20 {
            rows.push(nd(day, 1, 1, if day >= 3 { "2.0.0" } else { "1.0.0" }, 1));
            if day % 3 == 0 {
                rows.push(nd(day, 2, 1, if day >= 12 { "2.0.0" } else { "1.0.0" }, 1));
            }
        }
        let d = data(rows);
        let a = adoption(&d, &Version::new(2, 0, 0), 19);
        assert_eq!(a.released_day, Some(3));
        assert_eq!(a.days_to_50, Some(0));
        assert_eq!(a.days_to_90, Some(9));
        // A quiet day for cluster 2 does not make it disappear.
        assert!(a.series.iter().all(|p| p.active_clusters == 2));
    }

    #[test]
    fn summary_new_and_gone() {
        let d = data(vec![
            nd(0, 1, 1, "1.0.0", 1),
            nd(5, 2, 1, "1.0.0", 1),
            nd(6, 3, 1, "1.0.0", 1),
        ]);
        let s = summary(&d, 4, 7);
        assert_eq!((s.new_clusters, s.gone_clusters, s.reports), (2, 1, 2));
        assert_eq!(s.active[2].clusters, 3);
        assert_eq!(s.active[0].clusters, 0);
    }
}
