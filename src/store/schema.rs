//! The database schema and its forward migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each
//! migration runs once, in its own transaction, so a crash mid-upgrade leaves
//! the previous version intact. A database written by a newer vcheckd is
//! refused rather than half-understood.

use rusqlite::{Connection, Transaction};

use super::{ingest, rollup, snapshot, StoreError};

type Backfill = fn(&Transaction<'_>) -> Result<(), StoreError>;

/// One step: SQL, then optional Rust (to backfill with the same code the
/// writer uses, rather than a second implementation in SQL).
struct Migration {
    sql: &'static [&'static str],
    backfill: Option<Backfill>,
}

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    // 1: reports and daily counters. No client or resolver address is stored.
    Migration {
        sql: &[r"
    CREATE TABLE reports (
        id          INTEGER PRIMARY KEY,
        report_id   BLOB    NOT NULL UNIQUE,   -- the frame nonce, 12 bytes
        zone        TEXT    NOT NULL,
        received_at INTEGER NOT NULL,          -- server clock, unix seconds
        client_time INTEGER NOT NULL,          -- client clock, unix seconds
        key_id      INTEGER NOT NULL,
        cluster     BLOB,                      -- 16 bytes; NULL when withheld
        node        BLOB,                      -- 16 bytes; NULL when withheld
        version     TEXT    NOT NULL,
        flags       INTEGER NOT NULL,
        status      INTEGER NOT NULL,          -- the hint status answered
        duplicates  INTEGER NOT NULL DEFAULT 0 -- later arrivals of the same report
    );
    CREATE INDEX reports_received_at ON reports(received_at);
    CREATE TABLE counters (
        day   INTEGER NOT NULL,                -- days since 1970-01-01, UTC
        name  TEXT    NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (day, name)
    ) WITHOUT ROWID;
    "],
        backfill: None,
    },
    // 2: daily rollups, so that stats never scan raw reports (which expire).
    Migration {
        sql: &[rollup::SCHEMA],
        backfill: Some(rollup::backfill),
    },
    // 3: the journal's processor: raw reports keyed for deduplication by
    // client time (with a receive-time index), per-version day totals, each
    // node's latest state, daily snapshots, consumer positions.
    Migration {
        // (With migration 4's table, which its backfill writes.)
        sql: &[
            ingest::SCHEMA,
            snapshot::SCHEMA,
            ingest::SCHEMA_LAGGING_STATES,
        ],
        backfill: Some(ingest::backfill),
    },
    // 4: node states written lazily (a bulk load closes many days).
    Migration {
        sql: &[ingest::SCHEMA_LAGGING_STATES],
        backfill: None,
    },
];

pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, CURRENT_VERSION)
}

/// Migrates up to schema `target` (tests build older databases with it).
fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: CURRENT_VERSION,
        });
    }
    for (i, m) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(found as usize)
    {
        let tx = conn.transaction()?;
        for sql in m.sql {
            tx.execute_batch(sql)?;
        }
        if let Some(backfill) = m.backfill {
            backfill(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Day;
    use crate::hint::Status;
    use crate::protocol::{AnonId, Identity, KeyId, Payload, Report, ReportId, ZoneName};
    use crate::store::reader::{SqliteReader, StatsReader};
    use crate::store::{ReceivedReport, Store};

    /// A database of schema 2, written as vcheckd of that schema wrote it
    /// (raw rows, then rollups by `rollup::add`), upgraded to the current
    /// schema: the same node-days and per-version totals, and snapshots of
    /// the closed days.
    #[test]
    fn a_schema_2_database_upgrades_with_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, 2).unwrap();
        let zone = ZoneName::new("vc.example.com").unwrap();
        let tx = conn.transaction().unwrap();
        for (i, day, node, version, identity) in [
            (1u8, 10i64, 1u8, "2.3.1", true),
            (2, 11, 1, "2.4.1", true),
            (3, 11, 2, "2.3.1", true),
            (4, 12, 2, "2.4.1", true),
            (5, 12, 0, "2.4.1", false),
        ] {
            let r = ReceivedReport {
                report: Report {
                    id: ReportId([i; 12]),
                    key_id: KeyId(1),
                    payload: Payload {
                        timestamp: (day * 86_400 + 100) as u64,
                        identity: if identity {
                            Identity::Known {
                                cluster: AnonId([7; 16]),
                                node: AnonId([node; 16]),
                            }
                        } else {
                            Identity::Withheld
                        },
                        version: semver::Version::parse(version).unwrap(),
                    },
                },
                zone: zone.clone(),
                received_at: day * 86_400 + 100 + i64::from(i),
                status: Status::UpToDate,
            };
            let (cluster, node) = match r.report.payload.identity {
                Identity::Known { cluster, node } => {
                    (Some(cluster.0.to_vec()), Some(node.0.to_vec()))
                }
                Identity::Withheld => (None, None),
            };
            tx.execute(
                "INSERT INTO reports (report_id, zone, received_at, client_time, key_id, cluster, node, version, flags, status)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, 1)",
                rusqlite::params![
                    &r.report.id.0[..],
                    zone.as_str(),
                    r.received_at,
                    r.report.payload.timestamp as i64,
                    cluster,
                    node,
                    version,
                    r.report.payload.flags()
                ],
            )
            .unwrap();
            rollup::add(&tx, &r).unwrap();
        }
        tx.commit().unwrap();
        drop(conn);

        drop(Store::open(&path).unwrap());
        let reader = SqliteReader::open(&path).unwrap();
        let nodes = reader.node_days(&zone, Day(10), Day(12), false).unwrap();
        assert_eq!(nodes.len(), 4);
        let totals: Vec<(i64, String, u64, u64)> = reader
            .version_days(&zone, Day(10), Day(12))
            .unwrap()
            .into_iter()
            .map(|v| (v.day.0, v.version.to_string(), v.reports, v.anonymous))
            .collect();
        assert_eq!(
            totals,
            vec![
                (10, "2.3.1".into(), 1, 0),
                (11, "2.3.1".into(), 1, 0),
                (11, "2.4.1".into(), 1, 0),
                (12, "2.4.1".into(), 2, 1)
            ]
        );
        // Days 10 and 11 closed in the upgrade; 12 is open (read live).
        let day11 = reader.snapshot(&zone, Day(11)).unwrap();
        assert_eq!(day11.active(2), Some((1, 2)));
        let w = day11.window(1).unwrap();
        assert_eq!(w.mixed_clusters, 1);
        assert_eq!(
            (w.versions["2.4.1"].nodes, w.versions["2.3.1"].nodes),
            (1, 1)
        );
        let day12 = reader.snapshot(&zone, Day(12)).unwrap();
        assert_eq!(day12.window(7).unwrap().versions["2.4.1"].clusters, 1);
        // The raw rows came along, keyed for deduplication.
        let rows: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 5);
    }
}
