//! SQLite storage of reports and counters.
//!
//! One writer (the [`recorder`] thread) and any number of readers (stats);
//! WAL mode lets them run side by side. Durability: `synchronous=FULL`, one
//! fsync per batch commit, so every report acknowledged as stored survives a
//! crash or power loss.

pub mod recorder;
pub mod rollup;
mod schema;

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};
use thiserror::Error;

pub use crate::clock::day_of;
use crate::hint::Status;
use crate::protocol::{Identity, Report, ZoneName};

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this vcheckd understands ({known}); upgrade vcheckd")]
    TooNew { found: i64, known: i64 },
    #[error("cannot create the database folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A report as the server received it: what the store keeps.
#[derive(Debug, Clone)]
pub struct ReceivedReport {
    pub report: Report,
    pub zone: ZoneName,
    /// Server clock, unix seconds.
    pub received_at: i64,
    /// The hint status the server answered with.
    pub status: Status,
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub stored: u64,
    pub duplicates: u64,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// Opens an existing database for reading only (stats); never creates
    /// or migrates, so a typo in `--db` is an error, not a new empty file.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        Ok(Store { conn })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Stores a batch in one transaction. A report id seen before is not
    /// stored again; its row's `duplicates` count goes up instead.
    pub fn insert_batch(&mut self, batch: &[ReceivedReport]) -> Result<BatchOutcome, StoreError> {
        let tx = self.conn.transaction()?;
        let mut outcome = BatchOutcome::default();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO reports (report_id, zone, received_at, client_time, key_id,
                                      cluster, node, version, flags, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (report_id) DO NOTHING",
            )?;
            let mut dup = tx.prepare_cached(
                "UPDATE reports SET duplicates = duplicates + 1 WHERE report_id = ?1",
            )?;
            for r in batch {
                let p = &r.report.payload;
                let (cluster, node) = match p.identity {
                    Identity::Withheld => (None, None),
                    Identity::Known { cluster, node } => (Some(cluster.0), Some(node.0)),
                };
                let inserted = insert.execute(params![
                    &r.report.id.0[..],
                    r.zone.as_str(),
                    r.received_at,
                    // Stored as i64: a client clock past 2^63 is nonsense, clamp it.
                    i64::try_from(p.timestamp).unwrap_or(i64::MAX),
                    r.report.key_id.0,
                    cluster.as_ref().map(|c| &c[..]),
                    node.as_ref().map(|n| &n[..]),
                    p.version.to_string(),
                    p.flags(),
                    r.status.code(),
                ])?;
                if inserted == 1 {
                    rollup::add(&tx, r)?;
                    outcome.stored += 1;
                } else {
                    dup.execute(params![&r.report.id.0[..]])?;
                    outcome.duplicates += 1;
                }
            }
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// Deletes raw reports received before `before` (unix seconds), at most
    /// `limit` rows per call so that the writer never holds the database for
    /// long; the rollups keep their counts. Returns the rows deleted.
    pub fn prune(&mut self, before: i64, limit: usize) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM reports WHERE id IN
               (SELECT id FROM reports WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)",
            params![before, limit as i64],
        )?)
    }

    /// Adds counter deltas to the given day's totals.
    pub fn add_counters(&mut self, day: i64, deltas: &[(String, u64)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO counters (day, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (day, name) DO UPDATE SET value = value + excluded.value",
            )?;
            for (name, delta) in deltas.iter().filter(|(_, d)| *d > 0) {
                up.execute(params![
                    day,
                    name,
                    i64::try_from(*delta).unwrap_or(i64::MAX)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{AnonId, KeyId, Payload, ReportId};

    fn received(id: u8, identity: Identity) -> ReceivedReport {
        ReceivedReport {
            report: Report {
                id: ReportId([id; 12]),
                key_id: KeyId(1),
                payload: Payload {
                    timestamp: 5,
                    identity,
                    version: semver::Version::new(2, 4, 1),
                },
            },
            zone: ZoneName::new("vc.example.com").unwrap(),
            received_at: 1_000,
            status: Status::UpToDate,
        }
    }

    #[test]
    fn duplicates_are_stored_once_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let known = Identity::Known {
            cluster: AnonId([1; 16]),
            node: AnonId([2; 16]),
        };
        let batch = [
            received(1, known),
            received(2, Identity::Withheld),
            received(1, known),
        ];
        assert_eq!(
            store.insert_batch(&batch).unwrap(),
            BatchOutcome {
                stored: 2,
                duplicates: 1
            }
        );
        assert_eq!(
            store.insert_batch(&batch[..1]).unwrap(),
            BatchOutcome {
                stored: 0,
                duplicates: 1
            }
        );
        let (rows, dups, anon): (i64, i64, i64) = store
            .conn()
            .query_row(
                "SELECT COUNT(*), SUM(duplicates), SUM(cluster IS NULL) FROM reports",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((rows, dups, anon), (2, 2, 1));
    }

    #[test]
    fn schema_is_versioned_and_newer_databases_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(Store::open(&path).unwrap());
        // Reopening an up-to-date database migrates nothing and keeps data.
        let store = Store::open(&path).unwrap();
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        store
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(store);
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
        assert!(matches!(
            Store::open_read_only(&path),
            Err(StoreError::TooNew { .. })
        ));
    }

    #[test]
    fn rollups_track_the_latest_version_and_backfill_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let known = Identity::Known {
            cluster: AnonId([1; 16]),
            node: AnonId([2; 16]),
        };
        let mut a = received(1, known);
        let mut b = received(2, known);
        b.received_at = 2_000; // same day, later: the node upgraded
        b.report.payload.version = semver::Version::new(2, 5, 0);
        a.received_at = 1_500;
        // Out of order, and one of them twice.
        store
            .insert_batch(&[b.clone(), a.clone(), a.clone()])
            .unwrap();
        store
            .insert_batch(&[received(3, Identity::Withheld)])
            .unwrap();
        let read = |store: &Store| -> Vec<(i64, String, i64, i64, i64)> {
            let mut stmt = store
                .conn()
                .prepare(
                    "SELECT day, version, last_at, reports, length(CAST(ids AS BLOB)) * (typeof(ids) = 'blob') FROM node_days
                     UNION ALL SELECT day, version, 0, reports, 0 FROM anon_days ORDER BY 1, 2, 3",
                )
                .unwrap();
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let live = read(&store);
        assert_eq!(
            live,
            vec![
                (0, "2.4.1".to_string(), 0, 1, 0),
                (0, "2.4.1".to_string(), 1_500, 1, 12),
                (0, "2.5.0".to_string(), 2_000, 1, 12)
            ]
        );
        let tx = store.conn.transaction().unwrap();
        tx.execute_batch(
            "DELETE FROM node_days; DELETE FROM anon_days; DELETE FROM clusters; DELETE FROM versions;",
        )
        .unwrap();
        rollup::backfill(&tx).unwrap();
        tx.commit().unwrap();
        assert_eq!(read(&store), live);
    }
}
