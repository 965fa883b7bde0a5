//! The daily fleet snapshots (computed by the counting model,
//! [`crate::fleet::snapshot`]) as SQLite keeps them, and each node's
//! latest state (`node_latest`) they are computed from.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, Transaction};

use super::{ids_at, StoreError};
use crate::clock::Day;
use crate::fleet::{DayState, FleetStates, Interner, NodeLatest, Snapshot, VersionFigures};
use crate::hint::Status;

pub(crate) const SCHEMA: &str = r"
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
";

/// Every zone's node states as stored in `node_latest`, texts interned in
/// `interner`. A row whose version is not semver, or whose status is no
/// status code, is left out (as the writer never writes one).
pub(crate) fn load_latest(
    conn: &Connection,
    interner: &mut Interner,
) -> Result<FleetStates, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT zone, cluster, node, last_day, last_at, version, status,
                prev_day, prev_version, prev_status
         FROM node_latest ORDER BY zone, cluster, node",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = FleetStates::new();
    while let Some(r) = rows.next()? {
        let Some((cluster, node)) = ids_at(r, 1)? else {
            continue;
        };
        let text = |i: usize| r.get_ref(i).map(|v| v.as_str().unwrap_or_default());
        let (Some(version), Some(status)) =
            (interner.version(text(5)?), Status::from_code(r.get(6)?))
        else {
            continue;
        };
        let key = interner.node(text(0)?, cluster, node);
        let prev = match (r.get::<_, Option<Day>>(7)?, r.get::<_, Option<u8>>(9)?) {
            (Some(day), Some(status)) if r.get_ref(8)?.as_str().is_ok() => {
                match (interner.version(text(8)?), Status::from_code(status)) {
                    (Some(version), Some(status)) => Some(DayState {
                        day,
                        version,
                        status,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        let latest = NodeLatest {
            last_day: r.get(3)?,
            last_at: r.get(4)?,
            version,
            status,
            prev,
        };
        out.insert(key, latest);
    }
    Ok(out)
}

/// Replaces the stored snapshots of `day` with `snaps`.
pub(crate) fn store(
    tx: &Transaction<'_>,
    day: Day,
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
    day: Day,
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
