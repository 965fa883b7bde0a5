//! Daily fleet snapshots: per zone, who was active in the windows ending on
//! a day, and on which versions, computed once from each node's latest
//! state (one row per node) when the day closes.
//!
//! A snapshot answers, for a window of `W` days ending on its day (W from 1
//! to [`MAX_WINDOW`]), everything the counting model (docs/STATS.md) derives from
//! node states: clusters by version (whole, and by node share), nodes by
//! version, mixed and insecure clusters, and each cluster's oldest version
//! (adoption). It also keeps, for up to [`ACTIVITY_DAYS`], how many clusters
//! and nodes were last active `age` days before it, so active counts over
//! any window up to that length, and "gone" clusters, need no node rows.

use std::collections::{BTreeMap, HashMap};

use semver::Version;

use super::keys::NodeKey;
use super::node::NodeLatest;
use crate::clock::Day;
use crate::hint::Status;

/// Windows (days) whose composition is kept per day: every length from 1
/// to this.
pub const MAX_WINDOW: i64 = 92;

/// Ages (days since last active) counted per day: active counts are exact
/// for windows up to this length, ending on any snapshot day. Twice the
/// longest window a statistic may cover (ten years), for "gone" clusters:
/// active in the span before the window. Only ages that occur are stored.
pub const ACTIVITY_DAYS: i64 = 2 * 3_660;

/// One version's figures in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionFigures {
    pub clusters: u64,
    /// Sum of node-share fractions of the mixed clusters that run it, added
    /// in cluster order (so the sum is the same on every run).
    pub share_mixed: f64,
    pub nodes: u64,
    pub min_clusters: u64,
}

/// One window of a snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowFigures {
    pub mixed_clusters: u64,
    pub insecure_clusters: u64,
    pub insecure_nodes: u64,
    pub versions: BTreeMap<String, VersionFigures>,
}

impl WindowFigures {
    /// Clusters all of whose nodes run `version` or newer: those whose
    /// oldest node does (adoption).
    #[must_use]
    pub fn adopted(&self, version: &Version) -> u64 {
        self.versions
            .iter()
            .filter(|(v, _)| Version::parse(v).is_ok_and(|v| v >= *version))
            .map(|(_, f)| f.min_clusters)
            .sum()
    }
}

/// One zone's snapshot of one day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Index = age in days; (clusters, nodes) last active that many days
    /// before the snapshot's day.
    pub activity: Vec<(u64, u64)>,
    /// The windows' lengths (days, ending on the snapshot's day): 1 to
    /// [`MAX_WINDOW`] for a stored snapshot.
    pub lengths: Vec<i64>,
    pub windows: Vec<WindowFigures>,
}

impl Snapshot {
    /// A stored snapshot before its rows are read in: every window and
    /// age, all zero (a store writes only the rows that are not).
    #[must_use]
    pub fn stored_empty() -> Self {
        Snapshot {
            activity: vec![(0, 0); ACTIVITY_DAYS as usize],
            lengths: (1..=MAX_WINDOW).collect(),
            windows: vec![WindowFigures::default(); MAX_WINDOW as usize],
        }
    }

    /// Clusters and nodes active in the `days` ending on the snapshot's day
    /// (`None` beyond [`ACTIVITY_DAYS`]).
    #[must_use]
    pub fn active(&self, days: i64) -> Option<(u64, u64)> {
        if !(1..=ACTIVITY_DAYS).contains(&days) {
            return None;
        }
        Some(
            self.activity
                .iter()
                .take(days as usize)
                .fold((0, 0), |(c, n), (dc, dn)| (c + dc, n + dn)),
        )
    }

    #[must_use]
    pub fn window(&self, days: i64) -> Option<&WindowFigures> {
        self.lengths
            .iter()
            .position(|l| *l == days)
            .and_then(|i| self.windows.get(i))
    }
}

/// A node's state as of the snapshot day: its cluster, the day of its
/// latest report on or before that day, version and status.
pub struct Member<'a> {
    pub cluster: [u8; 16],
    pub last_day: Day,
    pub version: &'a str,
    pub status: Status,
}

/// Oldest first; text that is not semver is older than any version.
fn cmp_oldest(a: &str, b: &str) -> std::cmp::Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
        (Err(_), Ok(_)) => std::cmp::Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// One cluster's part in one window: what it adds to each figure.
#[derive(Default)]
struct Part {
    /// (version index, nodes on it)
    nodes: Vec<(usize, u64)>,
    /// The one version of a cluster not mixed.
    whole: Option<usize>,
    /// Node-share fractions of a mixed cluster, by version index, in
    /// version order (so sums are the same on every run).
    shares: Vec<(usize, f64)>,
    oldest: Option<usize>,
    insecure_nodes: u64,
}

/// Computes one zone's snapshot of `day` from its nodes, given sorted by
/// cluster (the order the exact computation also sums fractions in), for
/// windows of the `lengths` given (ascending).
pub fn compute<'a>(
    day: Day,
    members: impl Iterator<Item = Member<'a>>,
    lengths: &[i64],
) -> Snapshot {
    let windows = lengths.len();
    let mut activity = vec![(0u64, 0u64); ACTIVITY_DAYS as usize];
    // Versions by index, so that the per-window sums are array slots.
    let mut names: Vec<&'a str> = Vec::new();
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    let mut oldest_cache: HashMap<(usize, usize), std::cmp::Ordering> = HashMap::new();
    // Per window: per version (clusters, share_mixed, nodes, min_clusters),
    // and (mixed, insecure clusters, insecure nodes).
    let mut per_version: Vec<Vec<VersionFigures>> = vec![Vec::new(); windows];
    let mut totals = vec![(0u64, 0u64, 0u64); windows];
    let mut cluster: Vec<(i64, usize, Status)> = Vec::new();
    let flush = |cluster: &mut Vec<(i64, usize, Status)>,
                 names: &Vec<&'a str>,
                 per_version: &mut Vec<Vec<VersionFigures>>,
                 totals: &mut Vec<(u64, u64, u64)>,
                 activity: &mut Vec<(u64, u64)>,
                 oldest_cache: &mut HashMap<(usize, usize), std::cmp::Ordering>| {
        if cluster.is_empty() {
            return;
        }
        // Youngest first: a window of W days holds the members younger
        // than W, a prefix of this order.
        cluster.sort_by_key(|m| m.0);
        if let Some(slot) = activity.get_mut(cluster[0].0 as usize) {
            slot.0 += 1;
        }
        for m in cluster.iter() {
            if let Some(slot) = activity.get_mut(m.0 as usize) {
                slot.1 += 1;
            }
        }
        let mut part = Part::default();
        let mut taken = 0;
        for (w, length) in lengths.iter().enumerate() {
            let mut k = taken;
            while k < cluster.len() && cluster[k].0 < *length {
                k += 1;
            }
            if k == 0 {
                continue;
            }
            if k != taken {
                taken = k;
                part = Part::default();
                let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
                for m in &cluster[..k] {
                    counts.entry(names[m.1]).or_insert((m.1, 0)).1 += 1;
                    if m.2 == Status::UpgradeRequired {
                        part.insecure_nodes += 1;
                    }
                }
                for (v, n) in counts.values() {
                    part.nodes.push((*v, *n as u64));
                }
                if counts.len() == 1 {
                    part.whole = Some(cluster[0].1);
                } else {
                    part.shares = counts
                        .values()
                        .map(|(v, n)| (*v, *n as f64 / k as f64))
                        .collect();
                }
                part.oldest = counts.values().map(|(v, _)| *v).reduce(|a, b| {
                    let order = *oldest_cache
                        .entry((a, b))
                        .or_insert_with(|| cmp_oldest(names[a], names[b]));
                    if order == std::cmp::Ordering::Greater {
                        b
                    } else {
                        a
                    }
                });
            }
            let figures = &mut per_version[w];
            if figures.len() < names.len() {
                figures.resize(names.len(), VersionFigures::default());
            }
            for (v, n) in &part.nodes {
                figures[*v].nodes += n;
            }
            if let Some(v) = part.whole {
                figures[v].clusters += 1
            } else {
                totals[w].0 += 1;
                for (v, f) in &part.shares {
                    figures[*v].share_mixed += f;
                }
            }
            if let Some(v) = part.oldest {
                figures[v].min_clusters += 1;
            }
            if part.insecure_nodes > 0 {
                totals[w].1 += 1;
                totals[w].2 += part.insecure_nodes;
            }
        }
        cluster.clear();
    };
    let mut members = members.peekable();
    while let Some(m) = members.next() {
        let v = if let Some(v) = index.get(m.version) {
            *v
        } else {
            names.push(m.version);
            index.insert(m.version, names.len() - 1);
            names.len() - 1
        };
        cluster.push((day - m.last_day, v, m.status));
        if members.peek().is_none_or(|next| next.cluster != m.cluster) {
            flush(
                &mut cluster,
                &names,
                &mut per_version,
                &mut totals,
                &mut activity,
                &mut oldest_cache,
            );
        }
    }
    let windows = per_version
        .into_iter()
        .zip(totals)
        .map(
            |(figures, (mixed, insecure_clusters, insecure_nodes))| WindowFigures {
                mixed_clusters: mixed,
                insecure_clusters,
                insecure_nodes,
                versions: figures
                    .into_iter()
                    .enumerate()
                    .filter(|(_, f)| f.nodes > 0)
                    .map(|(v, f)| (names[v].to_string(), f))
                    .collect(),
            },
        )
        .collect();
    Snapshot {
        activity,
        lengths: lengths.to_vec(),
        windows,
    }
}

/// Snapshots of `day` for every zone, from node states (in key order)
/// taken as of that day.
pub fn compute_all<'a>(
    nodes: impl Iterator<Item = (&'a NodeKey, &'a NodeLatest)>,
    day: Day,
) -> BTreeMap<String, Snapshot> {
    let lengths: Vec<i64> = (1..=MAX_WINDOW).collect();
    compute_windows(nodes, day, &lengths)
}

/// [`compute_all`] for the windows of the `lengths` given (ascending).
pub fn compute_windows<'a>(
    nodes: impl Iterator<Item = (&'a NodeKey, &'a NodeLatest)>,
    day: Day,
    lengths: &[i64],
) -> BTreeMap<String, Snapshot> {
    let mut out = BTreeMap::new();
    let mut zones = nodes.peekable();
    while let Some((key, _)) = zones.peek() {
        let zone = key.zone.clone();
        let members =
            std::iter::from_fn(|| zones.next_if(|(k, _)| k.zone == zone)).filter_map(|(key, n)| {
                n.as_of(day).map(|(last_day, version, status)| Member {
                    cluster: key.cluster.bytes(),
                    last_day,
                    version,
                    status,
                })
            });
        let snap = compute(day, members, lengths);
        out.insert(zone.to_string(), snap);
    }
    out
}
