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

use rusqlite::{params, Connection, Transaction};
use semver::Version;

use super::keys::{ids_at, Interner, NodeKey};
use super::latest::{DayState, NodeLatest};
use super::StoreError;

/// Windows (days) whose composition is kept per day: every length from 1
/// to this.
pub const MAX_WINDOW: i64 = 92;

/// Ages (days since last active) counted per day: active counts are exact
/// for windows up to this length, ending on any snapshot day. Twice the
/// longest window a statistic may cover (ten years), for "gone" clusters:
/// active in the span before the window. Only ages that occur are stored.
pub const ACTIVITY_DAYS: i64 = 2 * 3_660;

/// Status code of "upgrade required" (security fix or end of life).
const INSECURE: u8 = 3;

pub(crate) const SCHEMA: &str = r#"
    CREATE TABLE snapshot_versions (
        day           INTEGER NOT NULL,
        zone          TEXT    NOT NULL,
        window        INTEGER NOT NULL,   -- days, ending on `day`
        version       TEXT    NOT NULL,
        clusters      INTEGER NOT NULL,   -- clusters entirely on the version
        share_mixed   REAL    NOT NULL,   -- node-share fractions of mixed clusters
        nodes         INTEGER NOT NULL,
        min_clusters  INTEGER NOT NULL,   -- clusters whose oldest node runs it
        PRIMARY KEY (day, zone, window, version)
    ) WITHOUT ROWID;
    CREATE TABLE snapshot_totals (
        day               INTEGER NOT NULL,
        zone              TEXT    NOT NULL,
        window            INTEGER NOT NULL,
        mixed_clusters    INTEGER NOT NULL,
        insecure_clusters INTEGER NOT NULL,
        insecure_nodes    INTEGER NOT NULL,
        PRIMARY KEY (day, zone, window)
    ) WITHOUT ROWID;
    CREATE TABLE snapshot_activity (
        day      INTEGER NOT NULL,
        zone     TEXT    NOT NULL,
        age      INTEGER NOT NULL,        -- days between last activity and `day`
        clusters INTEGER NOT NULL,
        nodes    INTEGER NOT NULL,
        PRIMARY KEY (day, zone, age)
    ) WITHOUT ROWID;
"#;

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
    pub(crate) fn stored_empty() -> Self {
        Snapshot {
            activity: vec![(0, 0); ACTIVITY_DAYS as usize],
            lengths: (1..=MAX_WINDOW).collect(),
            windows: vec![WindowFigures::default(); MAX_WINDOW as usize],
        }
    }

    /// Clusters and nodes active in the `days` ending on the snapshot's day
    /// (`None` beyond [`ACTIVITY_DAYS`]).
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

    pub fn window(&self, days: i64) -> Option<&WindowFigures> {
        self.lengths
            .iter()
            .position(|l| *l == days)
            .and_then(|i| self.windows.get(i))
    }
}

/// A node's state as of the snapshot day: its cluster, the day of its
/// latest report on or before that day, version and status.
pub(crate) struct Member<'a> {
    pub cluster: [u8; 16],
    pub last_day: i64,
    pub version: &'a str,
    pub status: u8,
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
pub(crate) fn compute<'a>(
    day: i64,
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
    let mut cluster: Vec<(i64, usize, u8)> = Vec::new();
    let flush = |cluster: &mut Vec<(i64, usize, u8)>,
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
                    if m.2 == INSECURE {
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
            match part.whole {
                Some(v) => figures[v].clusters += 1,
                None => {
                    totals[w].0 += 1;
                    for (v, f) in &part.shares {
                        figures[*v].share_mixed += f;
                    }
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
        let v = match index.get(m.version) {
            Some(v) => *v,
            None => {
                names.push(m.version);
                index.insert(m.version, names.len() - 1);
                names.len() - 1
            }
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

/// Every zone's node states as stored in `node_latest`, in key order,
/// texts interned in `interner`.
pub(crate) fn load_latest(
    conn: &Connection,
    interner: &mut Interner,
) -> Result<Vec<(NodeKey, NodeLatest)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT zone, cluster, node, last_day, last_at, version, status,
                prev_day, prev_version, prev_status
         FROM node_latest ORDER BY zone, cluster, node",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let Some((cluster, node)) = ids_at(r, 1)? else {
            continue;
        };
        let text = |i: usize| r.get_ref(i).map(|v| v.as_str().unwrap_or_default());
        let key = interner.node(text(0)?, cluster, node);
        let prev = match (r.get::<_, Option<i64>>(7)?, r.get::<_, Option<u8>>(9)?) {
            (Some(day), Some(status)) if r.get_ref(8)?.as_str().is_ok() => Some(DayState {
                day,
                version: interner.version(text(8)?),
                status,
            }),
            _ => None,
        };
        let latest = NodeLatest {
            last_day: r.get(3)?,
            last_at: r.get(4)?,
            version: interner.version(text(5)?),
            status: r.get(6)?,
            prev,
        };
        out.push((key, latest));
    }
    Ok(out)
}

/// Snapshots of `day` for every zone, from node states (in key order)
/// taken as of that day.
pub(crate) fn compute_all<'a>(
    nodes: impl Iterator<Item = (&'a NodeKey, &'a NodeLatest)>,
    day: i64,
) -> BTreeMap<String, Snapshot> {
    let lengths: Vec<i64> = (1..=MAX_WINDOW).collect();
    compute_windows(nodes, day, &lengths)
}

/// [`compute_all`] for the windows of the `lengths` given (ascending).
pub(crate) fn compute_windows<'a>(
    nodes: impl Iterator<Item = (&'a NodeKey, &'a NodeLatest)>,
    day: i64,
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

/// Replaces the stored snapshots of `day` with `snaps`.
pub(crate) fn store(
    tx: &Transaction<'_>,
    day: i64,
    snaps: &BTreeMap<String, Snapshot>,
) -> Result<(), StoreError> {
    for table in ["snapshot_versions", "snapshot_totals", "snapshot_activity"] {
        tx.execute(&format!("DELETE FROM {table} WHERE day = ?1"), [day])?;
    }
    let mut version = tx.prepare_cached(
        "INSERT INTO snapshot_versions (day, zone, window, version, clusters, share_mixed, nodes, min_clusters)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut totals = tx.prepare_cached(
        "INSERT INTO snapshot_totals (day, zone, window, mixed_clusters, insecure_clusters, insecure_nodes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut activity = tx.prepare_cached(
        "INSERT INTO snapshot_activity (day, zone, age, clusters, nodes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (zone, snap) in snaps {
        for (age, (clusters, nodes)) in snap.activity.iter().enumerate() {
            if *clusters > 0 || *nodes > 0 {
                activity.execute(params![day, zone, age as i64, n(*clusters), n(*nodes)])?;
            }
        }
        for (w, figures) in snap.lengths.iter().zip(&snap.windows) {
            totals.execute(params![
                day,
                zone,
                w,
                n(figures.mixed_clusters),
                n(figures.insecure_clusters),
                n(figures.insecure_nodes)
            ])?;
            for (name, v) in &figures.versions {
                version.execute(params![
                    day,
                    zone,
                    w,
                    name,
                    n(v.clusters),
                    v.share_mixed,
                    n(v.nodes),
                    n(v.min_clusters)
                ])?;
            }
        }
    }
    Ok(())
}

/// The stored snapshot of `day` for `zone`, if that day was closed.
pub(crate) fn load(
    conn: &Connection,
    zone: &str,
    day: i64,
) -> Result<Option<Snapshot>, StoreError> {
    let mut snap = Snapshot::stored_empty();
    let mut found = false;
    let mut stmt = conn.prepare_cached(
        "SELECT window, mixed_clusters, insecure_clusters, insecure_nodes
         FROM snapshot_totals WHERE day = ?1 AND zone = ?2",
    )?;
    let mut rows = stmt.query(params![day, zone])?;
    while let Some(r) = rows.next()? {
        found = true;
        let w: i64 = r.get(0)?;
        if let Some(f) = usize::try_from(w - 1)
            .ok()
            .and_then(|i| snap.windows.get_mut(i))
        {
            f.mixed_clusters = r.get::<_, i64>(1)? as u64;
            f.insecure_clusters = r.get::<_, i64>(2)? as u64;
            f.insecure_nodes = r.get::<_, i64>(3)? as u64;
        }
    }
    if !found {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT window, version, clusters, share_mixed, nodes, min_clusters
         FROM snapshot_versions WHERE day = ?1 AND zone = ?2",
    )?;
    let mut rows = stmt.query(params![day, zone])?;
    while let Some(r) = rows.next()? {
        let w: i64 = r.get(0)?;
        if let Some(f) = usize::try_from(w - 1)
            .ok()
            .and_then(|i| snap.windows.get_mut(i))
        {
            f.versions.insert(
                r.get(1)?,
                VersionFigures {
                    clusters: r.get::<_, i64>(2)? as u64,
                    share_mixed: r.get(3)?,
                    nodes: r.get::<_, i64>(4)? as u64,
                    min_clusters: r.get::<_, i64>(5)? as u64,
                },
            );
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT age, clusters, nodes FROM snapshot_activity WHERE day = ?1 AND zone = ?2",
    )?;
    let mut rows = stmt.query(params![day, zone])?;
    while let Some(r) = rows.next()? {
        let age: i64 = r.get(0)?;
        if let Some(slot) = usize::try_from(age)
            .ok()
            .and_then(|a| snap.activity.get_mut(a))
        {
            *slot = (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64);
        }
    }
    Ok(Some(snap))
}
