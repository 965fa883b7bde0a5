//! Schema 2's daily rollups as they were first built: this module creates
//! and backfills them for a database that predates them. Later schema
//! versions maintain them in [`super::ingest`] (docs/STATS.md has the
//! counting model).

use rusqlite::{params, Transaction};

use super::{day_of, ReceivedReport, StoreError};
use crate::fleet::IDS_PER_NODE_DAY;
use crate::hint::Status;
use crate::protocol::{AnonId, Identity, KeyId, Payload, Report, ReportId, ZoneName};

pub const SCHEMA: &str = r"
    CREATE TABLE node_days (
        day     INTEGER NOT NULL,
        zone    TEXT    NOT NULL,
        cluster BLOB    NOT NULL,
        node    BLOB    NOT NULL,
        version TEXT    NOT NULL,
        status  INTEGER NOT NULL,   -- hint status answered to the latest report
        last_at INTEGER NOT NULL,   -- the latest report's receive time
        reports INTEGER NOT NULL,
        ids     BLOB    NOT NULL,   -- up to 32 report ids, 12 bytes each
        PRIMARY KEY (day, zone, cluster, node, version)
    ) WITHOUT ROWID;
    CREATE TABLE anon_days (
        day     INTEGER NOT NULL,
        zone    TEXT    NOT NULL,
        version TEXT    NOT NULL,
        status  INTEGER NOT NULL,
        reports INTEGER NOT NULL,
        PRIMARY KEY (day, zone, version)
    ) WITHOUT ROWID;
    CREATE TABLE clusters (
        zone      TEXT    NOT NULL,
        cluster   BLOB    NOT NULL,
        first_day INTEGER NOT NULL,
        last_day  INTEGER NOT NULL,
        PRIMARY KEY (zone, cluster)
    ) WITHOUT ROWID;
    CREATE TABLE versions (
        zone      TEXT    NOT NULL,
        version   TEXT    NOT NULL,
        first_day INTEGER NOT NULL,
        PRIMARY KEY (zone, version)
    ) WITHOUT ROWID;
";

/// Adds one newly stored (not duplicate) report to the rollups.
pub fn add(tx: &Transaction<'_>, r: &ReceivedReport) -> Result<(), StoreError> {
    let day = day_of(r.received_at);
    let zone = r.zone.as_str();
    let version = r.report.payload.version.to_string();
    let status = r.status.code();
    tx.prepare_cached(
        "INSERT INTO versions (zone, version, first_day) VALUES (?1, ?2, ?3)
         ON CONFLICT (zone, version) DO UPDATE SET first_day = MIN(first_day, excluded.first_day)",
    )?
    .execute(params![zone, version, day])?;
    match r.report.payload.identity {
        Identity::Withheld => {
            tx.prepare_cached(
                "INSERT INTO anon_days (day, zone, version, status, reports)
                 VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (day, zone, version) DO UPDATE SET reports = reports + 1",
            )?
            .execute(params![day, zone, version, status])?;
        }
        Identity::Known { cluster, node } => {
            tx.prepare_cached(
                "INSERT INTO node_days (day, zone, cluster, node, version, status, last_at, reports, ids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)
                 ON CONFLICT (day, zone, cluster, node, version) DO UPDATE SET
                    status  = CASE WHEN excluded.last_at >= last_at THEN excluded.status ELSE status END,
                    last_at = MAX(last_at, excluded.last_at),
                    reports = reports + 1,
                    ids     = CASE WHEN length(ids) < ?9 THEN unhex(hex(ids) || hex(excluded.ids)) ELSE ids END",
            )?
            .execute(params![
                day,
                zone,
                &cluster.0[..],
                &node.0[..],
                version,
                status,
                r.received_at,
                &r.report.id.0[..],
                (IDS_PER_NODE_DAY * 12) as i64,
            ])?;
            tx.prepare_cached(
                "INSERT INTO clusters (zone, cluster, first_day, last_day) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (zone, cluster) DO UPDATE SET
                    first_day = MIN(first_day, excluded.first_day),
                    last_day  = MAX(last_day, excluded.last_day)",
            )?
            .execute(params![zone, &cluster.0[..], day])?;
        }
    }
    Ok(())
}

/// Builds the rollups from the raw reports already stored (schema upgrade).
/// Rows whose stored text no longer parses are left out of the rollups, not
/// deleted.
pub fn backfill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mut stmt = tx.prepare(
        "SELECT report_id, zone, received_at, client_time, key_id, cluster, node, version, status
         FROM reports ORDER BY received_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, u8>(4)?,
            r.get::<_, Option<Vec<u8>>>(5)?,
            r.get::<_, Option<Vec<u8>>>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, u8>(8)?,
        ))
    })?;
    for row in rows {
        let (id, zone, received_at, client_time, key_id, cluster, node, version, status) = row?;
        let parsed = (|| {
            let identity = match (cluster, node) {
                (Some(c), Some(n)) => Identity::Known {
                    cluster: AnonId(c.try_into().ok()?),
                    node: AnonId(n.try_into().ok()?),
                },
                _ => Identity::Withheld,
            };
            Some(ReceivedReport {
                report: Report {
                    id: ReportId(id.try_into().ok()?),
                    key_id: KeyId(key_id),
                    payload: Payload {
                        timestamp: u64::try_from(client_time).unwrap_or(0),
                        identity,
                        version: semver::Version::parse(&version).ok()?,
                    },
                },
                zone: ZoneName::new(&zone).ok()?,
                received_at,
                status: Status::from_code(status)?,
            })
        })();
        if let Some(report) = parsed {
            add(tx, &report)?;
        }
    }
    Ok(())
}
