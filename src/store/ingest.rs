//! Taking a batch of received reports into the database: deduplication,
//! the raw rows, the daily rollups, each node's latest state, and closing
//! days into snapshots. All of it in the caller's transaction, so a batch
//! is in the database whole or not at all.
//!
//! Work is aggregated per batch in memory first (versions, clusters and
//! per-version day totals take one write per key and batch, a node's
//! latest state one read and one write), which is what lets one thread
//! keep up with the answer path.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};

use super::latest::NodeLatest;
use super::rollup::IDS_PER_NODE_DAY;
use super::{day_of, snapshot, BatchOutcome, ReceivedReport, StoreError};
use crate::protocol::Identity;

pub(crate) const SCHEMA: &str = r#"
    CREATE TABLE reports_v3 (
        client_day  INTEGER NOT NULL,          -- UTC day of the client's timestamp
        report_id   BLOB    NOT NULL,          -- the frame nonce, 12 bytes
        zone        TEXT    NOT NULL,
        received_at INTEGER NOT NULL,          -- server clock, unix seconds
        client_time INTEGER NOT NULL,          -- client clock, unix seconds
        key_id      INTEGER NOT NULL,
        cluster     BLOB,                      -- 16 bytes; NULL when withheld
        node        BLOB,                      -- 16 bytes; NULL when withheld
        version     TEXT    NOT NULL,
        flags       INTEGER NOT NULL,
        status      INTEGER NOT NULL,          -- the hint status answered
        duplicates  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (client_day, report_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO reports_v3
        SELECT client_time / 86400, report_id, zone, received_at, client_time, key_id,
               cluster, node, version, flags, status, duplicates
        FROM reports;
    DROP TABLE reports;
    ALTER TABLE reports_v3 RENAME TO reports;

    CREATE TABLE version_days (
        day       INTEGER NOT NULL,
        zone      TEXT    NOT NULL,
        version   TEXT    NOT NULL,
        reports   INTEGER NOT NULL,   -- all reports, anonymous included
        anonymous INTEGER NOT NULL,
        last_at   INTEGER NOT NULL,   -- latest identified report; -1: none
        status    INTEGER NOT NULL,   -- answered to it (else to an anonymous one)
        PRIMARY KEY (day, zone, version)
    ) WITHOUT ROWID;
    INSERT INTO version_days (day, zone, version, reports, anonymous, last_at, status)
        SELECT day, zone, version, SUM(reports), 0, MAX(last_at), status
        FROM node_days GROUP BY day, zone, version;
    INSERT INTO version_days (day, zone, version, reports, anonymous, last_at, status)
        SELECT day, zone, version, reports, reports, -1, status FROM anon_days WHERE true
        ON CONFLICT (day, zone, version) DO UPDATE SET
            reports = reports + excluded.reports, anonymous = anonymous + excluded.anonymous;
    DROP TABLE anon_days;

    CREATE TABLE node_latest (
        zone         TEXT    NOT NULL,
        cluster      BLOB    NOT NULL,
        node         BLOB    NOT NULL,
        last_day     INTEGER NOT NULL,
        last_at      INTEGER NOT NULL,
        version      TEXT    NOT NULL,
        status       INTEGER NOT NULL,
        prev_day     INTEGER,            -- latest state on an earlier day
        prev_version TEXT,
        prev_status  INTEGER,
        PRIMARY KEY (zone, cluster, node)
    ) WITHOUT ROWID;

    -- Where each journal consumer stands, committed with the rows it wrote.
    CREATE TABLE consumers (
        name     TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- The newest day a report was taken in for; days before it are closed.
    CREATE TABLE open_day (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        day INTEGER NOT NULL
    );
"#;

type NodeKey = (String, [u8; 16], [u8; 16]);

/// One version's reports of one day in a batch.
struct VersionDay {
    reports: u64,
    anonymous: u64,
    /// Latest identified report; -1: none yet.
    last_at: i64,
    status: u8,
}

/// Per-batch aggregates, written once per key.
#[derive(Default)]
struct Pending {
    nodes: HashMap<NodeKey, NodeLatest>,
    version_days: HashMap<(i64, String, String), VersionDay>,
    /// (zone, cluster) -> (first_day, last_day)
    clusters: HashMap<(String, [u8; 16]), (i64, i64)>,
    /// (zone, version) -> first_day
    versions: HashMap<(String, String), i64>,
}

/// Takes `batch` into the database; closes every day before the newest
/// day seen into snapshots. Returns what was stored and what was already
/// there.
pub(crate) fn apply(
    tx: &Transaction<'_>,
    batch: &[ReceivedReport],
) -> Result<BatchOutcome, StoreError> {
    let mut outcome = BatchOutcome::default();
    let mut open: Option<i64> = tx
        .query_row("SELECT day FROM open_day", [], |r| r.get(0))
        .optional()?;
    let mut pending = Pending::default();
    let mut reclose: Option<i64> = None;
    // Per receive day: (stored, duplicates), persisted as the day's
    // counters in this same transaction, so they always equal the rows.
    let mut counted: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut insert = tx.prepare_cached(
        "INSERT INTO reports (client_day, report_id, zone, received_at, client_time, key_id,
                              cluster, node, version, flags, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (client_day, report_id) DO NOTHING",
    )?;
    let mut dup = tx.prepare_cached(
        "UPDATE reports SET duplicates = duplicates + 1 WHERE client_day = ?1 AND report_id = ?2",
    )?;
    let mut node_day = tx.prepare_cached(
        "INSERT INTO node_days (day, zone, cluster, node, version, status, last_at, reports, ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)
         ON CONFLICT (day, zone, cluster, node, version) DO UPDATE SET
            status  = CASE WHEN excluded.last_at >= last_at THEN excluded.status ELSE status END,
            last_at = MAX(last_at, excluded.last_at),
            reports = reports + 1,
            ids     = CASE WHEN length(ids) < ?9 THEN unhex(hex(ids) || hex(excluded.ids)) ELSE ids END",
    )?;
    for r in batch {
        let p = &r.report.payload;
        // Stored as i64: a client clock past 2^63 is nonsense, clamp it.
        let client_time = i64::try_from(p.timestamp).unwrap_or(i64::MAX);
        let client_day = day_of(client_time);
        let (cluster, node) = match p.identity {
            Identity::Withheld => (None, None),
            Identity::Known { cluster, node } => (Some(cluster.0), Some(node.0)),
        };
        let version = p.version.to_string();
        let zone = r.zone.as_str();
        let inserted = insert.execute(params![
            client_day,
            &r.report.id.0[..],
            zone,
            r.received_at,
            client_time,
            r.report.key_id.0,
            cluster.as_ref().map(|c| &c[..]),
            node.as_ref().map(|n| &n[..]),
            version,
            p.flags(),
            r.status.code(),
        ])?;
        let day = day_of(r.received_at);
        if inserted == 0 {
            dup.execute(params![client_day, &r.report.id.0[..]])?;
            outcome.duplicates += 1;
            counted.entry(day).or_default().1 += 1;
            continue;
        }
        outcome.stored += 1;
        counted.entry(day).or_default().0 += 1;
        match open {
            Some(o) if day > o => {
                flush(tx, &mut pending)?;
                close_days(tx, o, day - 1)?;
                open = Some(day);
            }
            Some(o) if day < o => {
                if day == o - 1 {
                    // A straggler of the day that just closed (reports
                    // stamped before midnight, taken in after one stamped
                    // after it): that day's snapshot is made again.
                    reclose = Some(day);
                } else {
                    outcome.late += 1;
                }
            }
            Some(_) => {}
            None => open = Some(day),
        }
        let status = r.status.code();
        let vd = pending
            .version_days
            .entry((day, zone.to_string(), version.clone()))
            .or_insert(VersionDay {
                reports: 0,
                anonymous: 0,
                last_at: -1,
                status,
            });
        vd.reports += 1;
        pending
            .versions
            .entry((zone.to_string(), version.clone()))
            .and_modify(|d| *d = (*d).min(day))
            .or_insert(day);
        let (Some(cluster), Some(node)) = (cluster, node) else {
            vd.anonymous += 1;
            if vd.last_at < 0 {
                vd.status = status;
            }
            continue;
        };
        if r.received_at >= vd.last_at {
            vd.last_at = r.received_at;
            vd.status = status;
        }
        node_day.execute(params![
            day,
            zone,
            &cluster[..],
            &node[..],
            version,
            status,
            r.received_at,
            &r.report.id.0[..],
            (IDS_PER_NODE_DAY * 12) as i64,
        ])?;
        pending
            .clusters
            .entry((zone.to_string(), cluster))
            .and_modify(|(first, last)| {
                *first = (*first).min(day);
                *last = (*last).max(day);
            })
            .or_insert((day, day));
        let key = (zone.to_string(), cluster, node);
        match pending.nodes.get_mut(&key) {
            Some(n) => n.observe(day, r.received_at, &p.version, status),
            None => {
                let latest = match load_node(tx, &key)? {
                    Some(mut n) => {
                        n.observe(day, r.received_at, &p.version, status);
                        n
                    }
                    None => NodeLatest::new(day, r.received_at, &p.version, status),
                };
                pending.nodes.insert(key, latest);
            }
        }
    }
    flush(tx, &mut pending)?;
    if let Some(day) = open {
        tx.execute(
            "INSERT INTO open_day (one, day) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET day = excluded.day",
            [day],
        )?;
    }
    if let Some(day) = reclose {
        close_days(tx, day, day)?;
    }
    let mut up = tx.prepare_cached(
        "INSERT INTO counters (day, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (day, name) DO UPDATE SET value = value + excluded.value",
    )?;
    for (day, (stored, dups)) in counted {
        for (name, n) in [("reports.stored", stored), ("reports.duplicate", dups)] {
            if n > 0 {
                up.execute(params![day, name, i64::try_from(n).unwrap_or(i64::MAX)])?;
            }
        }
    }
    Ok(outcome)
}

fn load_node(tx: &Transaction<'_>, key: &NodeKey) -> Result<Option<NodeLatest>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT last_day, last_at, version, status, prev_day, prev_version, prev_status
             FROM node_latest WHERE zone = ?1 AND cluster = ?2 AND node = ?3",
        )?
        .query_row(params![key.0, &key.1[..], &key.2[..]], |r| {
            let prev = match (
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<u8>>(6)?,
            ) {
                (Some(day), Some(version), Some(status)) => Some(super::latest::DayState {
                    day,
                    version,
                    status,
                }),
                _ => None,
            };
            Ok(NodeLatest {
                last_day: r.get(0)?,
                last_at: r.get(1)?,
                version: r.get(2)?,
                status: r.get(3)?,
                prev,
            })
        })
        .optional()?)
}

/// Writes the batch's aggregates so far.
fn flush(tx: &Transaction<'_>, pending: &mut Pending) -> Result<(), StoreError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut up = tx.prepare_cached(
        "INSERT INTO version_days (day, zone, version, reports, anonymous, last_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (day, zone, version) DO UPDATE SET
            reports   = reports + excluded.reports,
            anonymous = anonymous + excluded.anonymous,
            status    = CASE WHEN excluded.last_at >= last_at THEN excluded.status ELSE status END,
            last_at   = MAX(last_at, excluded.last_at)",
    )?;
    for ((day, zone, version), v) in pending.version_days.drain() {
        up.execute(params![
            day,
            zone,
            version,
            n(v.reports),
            n(v.anonymous),
            v.last_at,
            v.status
        ])?;
    }
    let mut up = tx.prepare_cached(
        "INSERT INTO versions (zone, version, first_day) VALUES (?1, ?2, ?3)
         ON CONFLICT (zone, version) DO UPDATE SET first_day = MIN(first_day, excluded.first_day)",
    )?;
    for ((zone, version), day) in pending.versions.drain() {
        up.execute(params![zone, version, day])?;
    }
    let mut up = tx.prepare_cached(
        "INSERT INTO clusters (zone, cluster, first_day, last_day) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (zone, cluster) DO UPDATE SET
            first_day = MIN(first_day, excluded.first_day),
            last_day  = MAX(last_day, excluded.last_day)",
    )?;
    for ((zone, cluster), (first, last)) in pending.clusters.drain() {
        up.execute(params![zone, &cluster[..], first, last])?;
    }
    let mut up = tx.prepare_cached(
        "INSERT OR REPLACE INTO node_latest
            (zone, cluster, node, last_day, last_at, version, status, prev_day, prev_version, prev_status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for ((zone, cluster, node), l) in pending.nodes.drain() {
        let prev = l.prev.as_ref();
        up.execute(params![
            zone,
            &cluster[..],
            &node[..],
            l.last_day,
            l.last_at,
            l.version,
            l.status,
            prev.map(|p| p.day),
            prev.map(|p| p.version.as_str()),
            prev.map(|p| p.status),
        ])?;
    }
    Ok(())
}

/// Computes and stores the snapshots of days `first..=last` from the node
/// states (one read of `node_latest` for all of them).
pub(crate) fn close_days(tx: &Transaction<'_>, first: i64, last: i64) -> Result<(), StoreError> {
    if first > last {
        return Ok(());
    }
    let nodes = snapshot::load_latest(tx)?;
    for day in first..=last {
        snapshot::store(tx, day, &snapshot::compute_all(&nodes, day))?;
    }
    Ok(())
}

/// Backfill for the schema upgrade: node states and snapshots from the
/// node-day rollups, replayed day by day through the same code.
pub(crate) fn backfill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mut stmt = tx.prepare(
        "SELECT day, zone, cluster, node, version, status, last_at FROM node_days ORDER BY day, last_at",
    )?;
    let mut rows = stmt.query([])?;
    let mut nodes: HashMap<NodeKey, NodeLatest> = HashMap::new();
    let mut open: Option<i64> = None;
    let sorted = |nodes: &HashMap<NodeKey, NodeLatest>| {
        let mut v: Vec<(String, [u8; 16], [u8; 16], NodeLatest)> = nodes
            .iter()
            .map(|((z, c, n), l)| (z.clone(), *c, *n, l.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        v.into_iter()
            .map(|(z, c, _, l)| (z, c, l))
            .collect::<Vec<_>>()
    };
    while let Some(r) = rows.next()? {
        let day: i64 = r.get(0)?;
        let (Ok(cluster), Ok(node)) = (
            <[u8; 16]>::try_from(r.get::<_, Vec<u8>>(2)?),
            <[u8; 16]>::try_from(r.get::<_, Vec<u8>>(3)?),
        ) else {
            continue;
        };
        let Ok(version) = semver::Version::parse(&r.get::<_, String>(4)?) else {
            continue;
        };
        if let Some(o) = open.filter(|o| day > *o) {
            let all = sorted(&nodes);
            for d in o..day {
                snapshot::store(tx, d, &snapshot::compute_all(&all, d))?;
            }
        }
        open = Some(open.map_or(day, |o| o.max(day)));
        let (status, at): (u8, i64) = (r.get(5)?, r.get(6)?);
        nodes
            .entry((r.get(1)?, cluster, node))
            .and_modify(|n| n.observe(day, at, &version, status))
            .or_insert_with(|| NodeLatest::new(day, at, &version, status));
    }
    let mut pending = Pending {
        nodes,
        ..Pending::default()
    };
    flush(tx, &mut pending)?;
    if let Some(day) = open {
        tx.execute("INSERT INTO open_day (one, day) VALUES (1, ?1)", [day])?;
    }
    Ok(())
}
