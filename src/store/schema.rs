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
        sql: &[r#"
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
    "#],
        backfill: None,
    },
    // 2: daily rollups, so that stats never scan raw reports (which expire).
    Migration {
        sql: &[rollup::SCHEMA],
        backfill: Some(rollup::backfill),
    },
    // 3: the journal's processor: raw reports keyed for deduplication by
    // client day, per-version day totals, each node's latest state, daily
    // snapshots, consumer positions.
    Migration {
        sql: &[ingest::SCHEMA, snapshot::SCHEMA],
        backfill: Some(ingest::backfill),
    },
];

pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: CURRENT_VERSION,
        });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
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
