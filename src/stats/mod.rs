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

use crate::protocol::ZoneName;

pub use dataset::{AnonDay, Dataset, NodeDay, Scope};
pub use source::{Source, StatsError};

/// Status code of "upgrade required" (security fix or end of life).
const INSECURE: u8 = 3;

/// Newest version first; text that is not semver sorts last.
pub fn cmp_versions_desc(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => y.cmp(&x),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

type NodeKey<'a> = (&'a str, [u8; 16], [u8; 16]);
type ClusterKey<'a> = (&'a str, [u8; 16]);

/// Each node active in a span of days, with its latest row there.
fn latest_by_node(data: &Dataset, first: i64, last: i64) -> HashMap<NodeKey<'_>, &NodeDay> {
    let mut nodes: HashMap<NodeKey<'_>, &NodeDay> = HashMap::new();
    for row in data.days(first, last) {
        nodes
            .entry((row.zone.as_str(), row.cluster, row.node))
            .and_modify(|r| {
                // Same second (receive times are whole seconds): the higher
                // version is taken as the later one, an upgrade.
                let later = row.last_at > r.last_at
                    || (row.last_at == r.last_at
                        && cmp_versions_desc(&row.version, &r.version) == Ordering::Less);
                if later {
                    *r = row
                }
            })
            .or_insert(row);
    }
    nodes
}

/// Each active cluster's nodes' latest rows.
fn clusters_of<'a>(
    nodes: &HashMap<NodeKey<'a>, &'a NodeDay>,
) -> HashMap<ClusterKey<'a>, Vec<&'a NodeDay>> {
    let mut clusters: HashMap<ClusterKey<'a>, Vec<&'a NodeDay>> = HashMap::new();
    for ((zone, cluster, _), row) in nodes {
        clusters.entry((zone, *cluster)).or_default().push(row);
    }
    clusters
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
    pub first_day: i64,
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
pub fn summary_scope(first_day: i64, last_day: i64, zone: ZoneName) -> Scope {
    let len = last_day - first_day + 1;
    Scope {
        first_day: (first_day - len).min(last_day - 29),
        last_day,
        zone,
    }
}

pub fn summary(data: &Dataset, first_day: i64, last_day: i64) -> Summary {
    let active = [1, 7, 30]
        .iter()
        .map(|&days| {
            let nodes = latest_by_node(data, last_day - days + 1, last_day);
            let clusters: HashSet<ClusterKey<'_>> =
                nodes.keys().map(|(z, c, _)| (*z, *c)).collect();
            Active {
                days,
                clusters: clusters.len() as u64,
                nodes: nodes.len() as u64,
            }
        })
        .collect();
    let in_window: HashSet<ClusterKey<'_>> = data
        .days(first_day, last_day)
        .map(|r| (r.zone.as_str(), r.cluster))
        .collect();
    let len = last_day - first_day + 1;
    let before: HashSet<ClusterKey<'_>> = data
        .days(first_day - len, first_day - 1)
        .map(|r| (r.zone.as_str(), r.cluster))
        .collect();
    let new_clusters = in_window
        .iter()
        .filter(|(zone, cluster)| {
            data.cluster_first_day
                .get(&(zone.to_string(), *cluster))
                .is_some_and(|d| *d >= first_day)
        })
        .count() as u64;
    let anonymous_reports = data
        .anon_days
        .iter()
        .filter(|a| a.day >= first_day && a.day <= last_day)
        .map(|a| a.reports)
        .sum();
    let identified: u64 = data.days(first_day, last_day).map(|r| r.reports).sum();
    Summary {
        zone: data.zone.clone(),
        first_day,
        last_day,
        active,
        new_clusters,
        gone_clusters: before.difference(&in_window).count() as u64,
        reports: identified + anonymous_reports,
        anonymous_reports,
        duplicates: data.counter("reports.duplicate", first_day, last_day),
        rejected_names: data.counter("rejected.", first_day, last_day),
        dropped: data.counter("reports.dropped", first_day, last_day),
        reports_v1: data.counter("reports.v1", first_day, last_day),
        reports_v2: data.counter("reports.v2", first_day, last_day),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRow {
    pub version: String,
    /// Status answered to the latest report of this version (None: only
    /// grouped rows).
    pub status: Option<u8>,
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
    pub first_day: i64,
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
    pub fn insecure_node_share(&self) -> f64 {
        share(self.insecure_nodes, self.active_nodes)
    }

    pub fn insecure_cluster_share(&self) -> f64 {
        share(self.insecure_clusters, self.active_clusters)
    }

    /// The `top` versions by cluster share, the rest summed into "other":
    /// label cardinality for metrics, legibility for charts.
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

pub fn versions(data: &Dataset, first_day: i64, last_day: i64) -> Versions {
    let nodes = latest_by_node(data, first_day, last_day);
    let clusters = clusters_of(&nodes);
    let mut rows: BTreeMap<&str, VersionRow> = BTreeMap::new();
    let mut status_at: HashMap<&str, i64> = HashMap::new();
    for r in data.days(first_day, last_day) {
        let entry = rows
            .entry(r.version.as_str())
            .or_insert_with(|| VersionRow::empty(&r.version));
        entry.reports += r.reports;
        let seen = status_at.entry(r.version.as_str()).or_insert(i64::MIN);
        if r.last_at >= *seen {
            *seen = r.last_at;
            entry.status = Some(r.status);
        }
    }
    for a in data
        .anon_days
        .iter()
        .filter(|a| a.day >= first_day && a.day <= last_day)
    {
        let entry = rows
            .entry(a.version.as_str())
            .or_insert_with(|| VersionRow::empty(&a.version));
        entry.anonymous_reports += a.reports;
        entry.reports += a.reports;
        entry.status.get_or_insert(a.status);
    }
    for r in nodes.values() {
        if let Some(entry) = rows.get_mut(r.version.as_str()) {
            entry.nodes += 1;
        }
    }
    let (mut mixed, mut insecure_clusters) = (0, 0);
    // Whole clusters are counted as integers and the fractions of mixed ones
    // summed in a fixed order, so the shares are exact where they can be
    // and the same on every run.
    let mut fractions: BTreeMap<&str, f64> = BTreeMap::new();
    let mut keys: Vec<&ClusterKey<'_>> = clusters.keys().collect();
    keys.sort();
    for key in keys {
        let members = &clusters[key];
        let mut per_version: BTreeMap<&str, usize> = BTreeMap::new();
        for m in members {
            *per_version.entry(m.version.as_str()).or_default() += 1;
        }
        if per_version.len() == 1 {
            if let Some(entry) = rows.get_mut(members[0].version.as_str()) {
                entry.clusters += 1;
            }
        } else {
            mixed += 1;
            for (version, count) in per_version {
                *fractions.entry(version).or_default() += count as f64 / members.len() as f64;
            }
        }
        if members.iter().any(|m| m.status == INSECURE) {
            insecure_clusters += 1;
        }
    }
    for row in rows.values_mut() {
        row.cluster_share =
            row.clusters as f64 + fractions.get(row.version.as_str()).copied().unwrap_or(0.0);
    }
    let mut rows: Vec<VersionRow> = rows.into_values().collect();
    rows.sort_by(|a, b| cmp_versions_desc(&a.version, &b.version));
    Versions {
        zone: data.zone.clone(),
        first_day,
        last_day,
        active_clusters: clusters.len() as u64,
        active_nodes: nodes.len() as u64,
        mixed_clusters: mixed,
        insecure_nodes: nodes.values().filter(|r| r.status == INSECURE).count() as u64,
        insecure_clusters,
        rows,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Week,
}

impl Bucket {
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
    /// First day of the bucket.
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
    pub day: i64,
    pub active_clusters: u64,
    /// Share of active clusters all of whose nodes run the version or newer.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adoption {
    pub zone: String,
    pub version: String,
    /// First day any report carried the version (the release, as seen).
    pub released_day: Option<i64>,
    pub days_to_50: Option<i64>,
    pub days_to_90: Option<i64>,
    pub series: Vec<AdoptionPoint>,
}

pub fn adoption(data: &Dataset, version: &Version, last_day: i64) -> Adoption {
    let name = version.to_string();
    let released_day = data.version_first_day.get(&name).copied();
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
    let at_least = |v: &str| Version::parse(v).is_ok_and(|v| v >= *version);
    for day in released..=last_day {
        let nodes = latest_by_node(data, day - ADOPTION_WINDOW_DAYS + 1, day);
        let clusters = clusters_of(&nodes);
        let adopted = clusters
            .values()
            .filter(|members| members.iter().all(|m| at_least(&m.version)))
            .count() as u64;
        result.push(day, clusters.len() as u64, adopted);
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

/// A day number as `YYYY-MM-DD` (UTC); a day outside years 1-9999 as
/// `day N`.
pub fn date_of_day(day: i64) -> String {
    // 0001-01-01T00:00:00Z in unix seconds: jiff goes back to year -9999.
    const YEAR_1: i64 = -62_135_596_800;
    day.checked_mul(86_400)
        .filter(|s| *s >= YEAR_1)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || format!("day {day}"),
            |t| t.strftime("%Y-%m-%d").to_string(),
        )
}

/// Unix seconds as an ISO 8601 UTC time, `2026-11-23T10:00:00Z`.
pub fn utc_time(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map_or_else(|_| format!("{unix_seconds} (unix)"), |t| t.to_string())
}

/// `YYYY-MM-DD` to a day number; `None` if malformed or not a date.
pub fn day_of_date(text: &str) -> Option<i64> {
    let date: jiff::civil::Date = text.trim().parse().ok()?;
    if !(1..=9999).contains(&date.year()) {
        return None;
    }
    let epoch = jiff::civil::date(1970, 1, 1);
    Some(i64::from(date.since(epoch).ok()?.get_days()))
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

    fn nd(day: i64, cluster: u8, node: u8, version: &str, status: u8) -> NodeDay {
        NodeDay {
            day,
            zone: "z".into(),
            cluster: [cluster; 16],
            node: [node; 16],
            version: version.into(),
            status,
            last_at: day * 86_400 + i64::from(node),
            reports: 1,
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
                .entry(r.version.clone())
                .and_modify(|x| *x = (*x).min(r.day))
                .or_insert(r.day);
            d.cluster_first_day
                .entry((r.zone.clone(), r.cluster))
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
