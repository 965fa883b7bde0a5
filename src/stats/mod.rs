//! Version statistics read from the store.
//!
//! Counting rules (docs/STATS.md will grow with them): a cluster or node is
//! counted under every version it reported in the window; anonymous reports
//! (identity withheld) count toward reports only; a duplicate delivery of a
//! report is one report.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rusqlite::params;
use semver::Version;
use serde::Serialize;

use crate::store::{day_of, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRow {
    pub version: String,
    pub clusters: u64,
    pub nodes: u64,
    pub reports: u64,
    pub anonymous: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionStats {
    /// Window start and end, unix seconds (end exclusive).
    pub since: i64,
    pub until: i64,
    pub versions: Vec<VersionRow>,
    pub total: VersionRow,
    /// Extra deliveries of reports already counted.
    pub duplicates: u64,
    /// Server counters over the window's days (UTC), e.g. `rejected.authentication`:
    /// names under a zone that were not reports (QNAME-minimisation partial
    /// names among them), queue drops, queries by transport and rcode.
    pub counters: BTreeMap<String, u64>,
}

/// Newest version first; text that is not semver sorts last.
fn by_version_desc(a: &VersionRow, b: &VersionRow) -> Ordering {
    match (Version::parse(&a.version), Version::parse(&b.version)) {
        (Ok(x), Ok(y)) => y.cmp(&x),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.version.cmp(&b.version),
    }
}

pub fn versions(store: &Store, since: i64, until: i64) -> Result<VersionStats, StoreError> {
    let row = |version: String, r: &rusqlite::Row<'_>| -> rusqlite::Result<VersionRow> {
        Ok(VersionRow {
            version,
            clusters: r.get::<_, i64>(1)? as u64,
            nodes: r.get::<_, i64>(2)? as u64,
            reports: r.get::<_, i64>(3)? as u64,
            anonymous: r.get::<_, i64>(4)? as u64,
        })
    };
    const COLUMNS: &str = "COUNT(DISTINCT cluster), COUNT(DISTINCT node), COUNT(*),
                           COALESCE(SUM(cluster IS NULL), 0), COALESCE(SUM(duplicates), 0)";
    let conn = store.conn();
    let mut stmt = conn.prepare(&format!(
        "SELECT version, {COLUMNS} FROM reports
         WHERE received_at >= ?1 AND received_at < ?2 GROUP BY version"
    ))?;
    let mut versions = stmt
        .query_map(params![since, until], |r| row(r.get(0)?, r))?
        .collect::<Result<Vec<_>, _>>()?;
    versions.sort_by(by_version_desc);
    let (total, duplicates) = conn.query_row(
        &format!(
            "SELECT NULL, {COLUMNS} FROM reports WHERE received_at >= ?1 AND received_at < ?2"
        ),
        params![since, until],
        |r| Ok((row("all".into(), r)?, r.get::<_, i64>(5)? as u64)),
    )?;
    let mut stmt = conn.prepare(
        "SELECT name, SUM(value) FROM counters WHERE day >= ?1 AND day <= ?2 GROUP BY name",
    )?;
    let counters = stmt
        .query_map(params![day_of(since), day_of(until)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(VersionStats {
        since,
        until,
        versions,
        total,
        duplicates,
        counters,
    })
}

impl VersionStats {
    /// A fixed-width table for a terminal.
    pub fn to_table(&self) -> String {
        let width = self
            .versions
            .iter()
            .map(|r| r.version.len())
            .chain([7])
            .max()
            .unwrap_or(7);
        let mut out = format!(
            "{:<width$}  {:>8}  {:>8}  {:>8}  {:>9}\n",
            "VERSION", "CLUSTERS", "NODES", "REPORTS", "ANONYMOUS"
        );
        for r in self.versions.iter().chain([&self.total]) {
            out.push_str(&format!(
                "{:<width$}  {:>8}  {:>8}  {:>8}  {:>9}\n",
                r.version, r.clusters, r.nodes, r.reports, r.anonymous
            ));
        }
        out.push_str(&format!(
            "duplicate deliveries (counted once above): {}\n",
            self.duplicates
        ));
        let sum = |prefix: &str| -> u64 {
            self.counters
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v)
                .sum()
        };
        out.push_str(&format!(
            "names that were not reports (partial or invalid): {}\n\
             reports dropped by a full queue: {}\n",
            sum("rejected."),
            sum("reports.queue_dropped"),
        ));
        out
    }
}
