//! SQLite storage of reports, rollups, snapshots and counters.
//!
//! One writer (the processor, which takes reports from the journal) and any
//! number of readers (stats, through [`reader`]); WAL mode lets them run
//! side by side. Durability: the journal is the durable record of every
//! answered report, and each batch commits the journal position it reached
//! in the same transaction as its rows. So `synchronous=NORMAL` is enough:
//! a power loss may roll back the last commits, position included, and the
//! processor takes the same records again from the journal, exactly once.

mod ingest;
pub mod reader;
pub mod rollup;
mod schema;
mod snapshot;

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use thiserror::Error;

pub use crate::clock::day_of;
use crate::clock::Day;
use crate::fleet::CounterDelta;
pub use crate::report::ReceivedReport;

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Opening failed: names the file, since a person has to find it.
    #[error("database {}", .path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: Box<StoreError>,
    },
    /// SQLite, but without vcheckd's schema: an empty file or another
    /// program's database (opened for reading, so nothing was created).
    #[error("not a vcheckd database (an empty file, or another program's)")]
    NotVcheckd,
    #[error("schema version {found} is newer than this vcheckd ({}) understands (up to {known}): run the newer vcheckd release that wrote it", env!("CARGO_PKG_VERSION"))]
    TooNew { found: i64, known: i64 },
    #[error("cannot create the database folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Another backend behind the same reader API (ClickHouse).
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// This error, naming the database file it happened on.
    fn at(self, path: &Path) -> Self {
        StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(self),
        }
    }

    /// The error below any [`StoreError::Open`] wrapping.
    #[must_use]
    pub fn innermost(&self) -> &StoreError {
        match self {
            StoreError::Open { source, .. } => source.innermost(),
            other => other,
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub stored: u64,
    pub duplicates: u64,
    /// Stored reports of a day whose snapshot was already made (and is not
    /// made again: see docs/STATS.md).
    pub late: u64,
}

pub struct Store {
    conn: Connection,
    /// What the one writer keeps between commits (empty for readers).
    writer: ingest::WriterState,
    /// When the open day's snapshot was last written, and how long that
    /// took: a commit writes it again if that took under 5 ms (a small
    /// fleet: current with every commit) or once twenty times that has
    /// passed (a large fleet: at most a twentieth of the writer's time,
    /// seconds behind).
    open_written: Option<(std::time::Instant, std::time::Duration)>,
    /// SQLite's `data_version` at this writer's last commit: a change means
    /// another connection wrote, and the writer's states are read again.
    data_version: Option<i64>,
    /// A bulk load of history (`vcheckd simulate --db`): commits do not
    /// write the open day's snapshot, which the next batches would make
    /// stale at once; [`Store::flush_open_day`] writes it at the end.
    bulk_load: bool,
    /// Whether [`Store::flush_open_day`] makes stale days again (node
    /// states and snapshots replayed from the first stored day: seconds,
    /// in one write transaction). Set when this writer opens (a writer
    /// before it may have left days stale) and when it stores late reports
    /// itself; not for days another connection marks stale while this one
    /// runs. That writer is a bulk load (`vcheckd simulate --db` into a
    /// running server's file), which repairs them once when it ends: the
    /// server's processor, idle every 100 ms, used to replay every day
    /// after each of the loader's batches, holding the database for longer
    /// than the loader's busy timeout on a loaded machine ("database is
    /// locked"). A loader that is killed leaves them to the server's next
    /// start.
    repair_due: bool,
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_writer(path).map_err(|e| e.at(path))
    }

    /// A store over `conn`; `repair_due` for a writer, whose first idle
    /// moment replays what an interrupted loader left stale.
    fn new(conn: Connection, repair_due: bool) -> Self {
        Store {
            conn,
            writer: ingest::WriterState::default(),
            open_written: None,
            data_version: None,
            bulk_load: false,
            repair_due,
        }
    }

    fn open_writer(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The writer's working set (today's node-days, node states, the
        // dedup range of recent days) stays in memory.
        conn.pragma_update(None, "cache_size", -65_536)?;
        // Keep a checkpointed write-ahead log from growing past 64 MiB,
        // which on a small volume would otherwise refill the disk.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        // Checkpoint the write-ahead log every 32 MiB rather than 4: a hot
        // page (today's rows) is then copied to the database once, not
        // after every few batches.
        conn.pragma_update(None, "wal_autocheckpoint", 8_192)?;
        schema::migrate(&mut conn)?;
        Ok(Store::new(conn, true))
    }

    /// Opens an existing database for reading only (stats); never creates
    /// or migrates, so a typo in `--db` is an error, not a new empty file.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        Self::open_reader(path).map_err(|e| e.at(path))
    }

    fn open_reader(path: &Path) -> Result<Self, StoreError> {
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
        if found == 0 {
            return Err(StoreError::NotVcheckd);
        }
        Ok(Store::new(conn, false))
    }

    /// Stores a batch in one transaction. A report id seen before is not
    /// stored again; its row's `duplicates` count goes up instead.
    pub fn insert_batch(&mut self, batch: &[ReceivedReport]) -> Result<BatchOutcome, StoreError> {
        self.commit(batch, &[], None)
    }

    /// Stores a batch, the counters that count it, and the position a
    /// journal consumer reached, in one transaction: after a crash the
    /// three agree, so the consumer resumes exactly after this batch.
    pub fn commit(
        &mut self,
        batch: &[ReceivedReport],
        counters: &[CounterDelta],
        consumer: Option<(&str, u64)>,
    ) -> Result<BatchOutcome, StoreError> {
        // Whatever fails below, the writer's states may be ahead of the
        // database: they are kept only if the transaction commits.
        let mut writer = std::mem::take(&mut self.writer);
        let tx = write_transaction(&mut self.conn)?;
        // Another process wrote (`vcheckd simulate --db` into a running
        // server's file): what this writer kept may be stale.
        let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version.is_some_and(|v| v != version) {
            writer = ingest::WriterState::default();
        }
        let outcome = ingest::apply(&tx, batch, &mut writer)?;
        let due = !self.bulk_load
            && self.open_written.is_none_or(|(at, took)| {
                took < std::time::Duration::from_millis(5) || at.elapsed() >= took * 20
            });
        if due {
            let started = std::time::Instant::now();
            ingest::write_open_snapshot(&tx, &mut writer)?;
            self.open_written = Some((std::time::Instant::now(), started.elapsed()));
        }
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO counters (day, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (day, name) DO UPDATE SET value = value + excluded.value",
            )?;
            for c in counters.iter().filter(|c| c.delta > 0) {
                up.execute(params![
                    c.day,
                    c.name,
                    i64::try_from(c.delta).unwrap_or(i64::MAX)
                ])?;
            }
        }
        if let Some((name, position)) = consumer {
            tx.prepare_cached(
                "INSERT INTO consumers (name, position) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            )?
            .execute(params![name, i64::try_from(position).unwrap_or(i64::MAX)])?;
        }
        tx.commit()?;
        self.writer = writer;
        self.data_version = Some(version);
        self.repair_due |= outcome.late > 0;
        Ok(outcome)
    }

    /// Starts or ends a bulk load of history: see [`Store::flush_open_day`],
    /// which a bulk load ends with.
    pub fn set_bulk_load(&mut self, on: bool) {
        self.bulk_load = on;
    }

    /// Writes the open day's snapshot now if it changed since it was last
    /// written, after making node states and snapshots again if history was
    /// taken in for days long closed (by this writer, or before it opened:
    /// see `repair_due`): when the writer goes idle or stops, or at the end
    /// of a bulk load.
    pub fn flush_open_day(&mut self) -> Result<(), StoreError> {
        let mut writer = std::mem::take(&mut self.writer);
        let tx = write_transaction(&mut self.conn)?;
        let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version.is_some_and(|v| v != version) {
            writer = ingest::WriterState::default();
        }
        if self.repair_due {
            ingest::repair_stale(&tx, &mut writer)?;
        }
        ingest::write_open_snapshot(&tx, &mut writer)?;
        ingest::write_lagging_states(&tx, &mut writer)?;
        tx.commit()?;
        self.writer = writer;
        self.data_version = Some(version);
        self.repair_due = false;
        Ok(())
    }

    /// The journal position a consumer committed last (0: never).
    pub fn consumer_position(&self, name: &str) -> Result<u64, StoreError> {
        let pos: Option<i64> = self
            .conn
            .query_row(
                "SELECT position FROM consumers WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        Ok(pos.map_or(0, |p| u64::try_from(p).unwrap_or(0)))
    }

    /// Writes what the write-ahead log holds into the database and shrinks
    /// it: after a failed commit on a full disk, this is what gives the
    /// space back.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Deletes raw reports received before `before_day`, at most `limit`
    /// rows per call so that the writer never holds the database for long;
    /// the rollups keep their counts. Never a day that is not closed yet
    /// (its node-days are grouped from these rows). Returns the rows
    /// deleted.
    pub fn prune(&mut self, before_day: Day, limit: usize) -> Result<usize, StoreError> {
        let open = ingest::open_day(&self.conn)?.unwrap_or(Day(i64::MIN));
        Ok(self.conn.execute(
            "DELETE FROM reports WHERE (client_time, report_id) IN
               (SELECT client_time, report_id FROM reports
                WHERE received_at < MIN(?1, ?3) * 86400 LIMIT ?2)",
            params![before_day, limit as i64, open],
        )?)
    }
}

/// Days are stored as their number.
impl rusqlite::ToSql for Day {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.0.into())
    }
}

impl rusqlite::types::FromSql for Day {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(value).map(Day)
    }
}

/// The cluster and node ids in columns `at` and `at + 1` of a row: `None`
/// if either is not 16 bytes (NULL: an anonymous report), and the row is
/// skipped.
pub(crate) fn ids_at(
    r: &rusqlite::Row<'_>,
    at: usize,
) -> rusqlite::Result<Option<([u8; 16], [u8; 16])>> {
    let id = |i: usize| {
        r.get_ref(i)
            .map(|v| <[u8; 16]>::try_from(v.as_blob().unwrap_or_default()).ok())
    };
    Ok(id(at)?.zip(id(at + 1)?))
}

/// A write transaction that takes the write lock at its start: waiting (up
/// to the busy timeout) for another writer, rather than failing at once
/// when a read inside it would have to become a write.
fn write_transaction(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::Status;
    use crate::protocol::{AnonId, Identity, KeyId, Payload, Report, ReportId, ZoneName};
    use crate::store::reader::{SqliteReader, StatsReader};

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
                duplicates: 1,
                late: 0
            }
        );
        assert_eq!(
            store.insert_batch(&batch[..1]).unwrap(),
            BatchOutcome {
                stored: 0,
                duplicates: 1,
                late: 0
            }
        );
        let (rows, dups, anon): (i64, i64, i64) = store
            .conn
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
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        store
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(store);
        for opened in [Store::open(&path), Store::open_read_only(&path)] {
            let e = opened.err().unwrap();
            assert!(matches!(e.innermost(), StoreError::TooNew { .. }), "{e}");
            assert!(matches!(e, StoreError::Open { .. }), "names the file: {e}");
        }
    }

    #[test]
    fn rollups_track_the_latest_version_and_days_close_into_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut store = Store::open(&path).unwrap();
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
        let zone = ZoneName::new("vc.example.com").unwrap();
        let reader = SqliteReader::open(&path).unwrap();
        let days = reader.version_days(&zone, Day(0), Day(0)).unwrap();
        let got: Vec<(String, u64, u64, Option<i64>)> = days
            .iter()
            .map(|v| (v.version.to_string(), v.reports, v.anonymous, v.last_at))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2.4.1".to_string(), 2, 1, Some(1_500)),
                ("2.5.0".to_string(), 1, 0, Some(2_000))
            ]
        );
        // Day 0 is still open: its snapshot is computed from node states.
        let live = reader.snapshot(&zone, Day(0)).unwrap();
        assert_eq!(live.active(1), Some((1, 1)));
        assert_eq!(live.window(1).unwrap().versions["2.5.0"].nodes, 1);
        drop(reader);
        // A report of day 2 closes days 0 and 1; the stored snapshot of day
        // 0 is the one computed live before.
        let mut c = received(4, known);
        c.received_at = 2 * 86_400 + 10;
        store.insert_batch(&[c]).unwrap();
        let reader = SqliteReader::open(&path).unwrap();
        assert_eq!(reader.snapshot(&zone, Day(0)).unwrap(), live);
        let day1 = reader.snapshot(&zone, Day(1)).unwrap();
        assert_eq!(day1.active(1), Some((0, 0)));
        assert_eq!(day1.active(2), Some((1, 1)));
        assert_eq!(day1.window(7).unwrap().versions["2.5.0"].clusters, 1);
    }

    /// History written into a database that already holds a later day
    /// (`vcheckd simulate --db` into a running server's file) ends in the
    /// same snapshots as the same reports taken in in time order, repaired
    /// by the loader, not by the server's writer while the loader runs.
    #[test]
    fn history_taken_in_late_ends_as_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let zone = ZoneName::new("vc.example.com").unwrap();
        let report = |id: u8, day: i64, node: u8, version: (u64, u64, u64)| {
            let mut r = received(
                id,
                Identity::Known {
                    cluster: AnonId([node / 2; 16]),
                    node: AnonId([node; 16]),
                },
            );
            r.received_at = day * 86_400 + 100 + i64::from(id);
            r.report.payload.timestamp = r.received_at as u64;
            r.report.payload.version = semver::Version::new(version.0, version.1, version.2);
            r
        };
        let today = report(1, 20, 1, (2, 5, 0));
        let history: Vec<ReceivedReport> = (0..20u8)
            .flat_map(|i| {
                let day = 5 + i64::from(i / 2);
                [
                    report(10 + i, day, 2 + i % 4, (2, 4, u64::from(i % 3))),
                    report(40 + i, day, 3, (2, 3, 0)),
                ]
            })
            .collect();
        let in_order = dir.path().join("in-order.sqlite");
        let mut store = Store::open(&in_order).unwrap();
        store.insert_batch(&history).unwrap();
        store.insert_batch(std::slice::from_ref(&today)).unwrap();
        store.flush_open_day().unwrap();
        drop(store);
        // The server's writer holds today; a bulk load of history, another
        // connection, writes two days per batch while the server's writer
        // goes idle between them. The server leaves the days the loader
        // makes stale to the loader, which repairs them once at its end; or,
        // if it is killed first, to the server's next start. (Replaying
        // every day after each batch held the database longer than the
        // loader's busy timeout: "database is locked".)
        let stale = |s: &Store| -> i64 {
            s.conn
                .query_row("SELECT COUNT(*) FROM stale_from", [], |r| r.get(0))
                .unwrap()
        };
        for killed in [false, true] {
            let late = dir.path().join(format!("late-{killed}.sqlite"));
            let mut server = Store::open(&late).unwrap();
            server.insert_batch(std::slice::from_ref(&today)).unwrap();
            server.flush_open_day().unwrap();
            let mut loader = Store::open(&late).unwrap();
            loader.set_bulk_load(true);
            for part in history.chunks(8) {
                assert!(loader.insert_batch(part).unwrap().late > 0);
                server.flush_open_day().unwrap();
                assert_eq!(stale(&server), 1, "the server replayed the loader's days");
            }
            loader.set_bulk_load(false);
            if !killed {
                loader.flush_open_day().unwrap();
                assert_eq!(stale(&loader), 0);
            }
            drop(loader);
            server.flush_open_day().unwrap();
            assert_eq!(stale(&server), i64::from(killed));
            drop(server);
            let mut restarted = Store::open(&late).unwrap();
            restarted.flush_open_day().unwrap();
            assert_eq!(stale(&restarted), 0);
            drop(restarted);
            let (a, b) = (
                SqliteReader::open(&in_order).unwrap(),
                SqliteReader::open(&late).unwrap(),
            );
            for day in 4..=20 {
                assert_eq!(
                    a.snapshot(&zone, Day(day)).unwrap(),
                    b.snapshot(&zone, Day(day)).unwrap(),
                    "day {day}, loader killed: {killed}"
                );
            }
        }
        let a = SqliteReader::open(&in_order).unwrap();
        assert!(a.snapshot(&zone, Day(12)).unwrap().active(3).unwrap().1 > 0);
    }

    /// A day a writer followed while it was open is closed from what the
    /// writer kept, and `node_latest` follows the closed days lazily; a
    /// day taken in whole is grouped from its raw rows. Both end in the
    /// same node-days, node states and snapshots, also for a writer that
    /// starts on a database whose `node_latest` lags.
    #[test]
    fn days_closed_from_memory_or_raw_rows_agree() {
        let dir = tempfile::tempdir().unwrap();
        let zone = ZoneName::new("vc.example.com").unwrap();
        // 10 nodes in 4 clusters over 12 days, upgrading on the way, some
        // reporting twice a day, one day with a report out of order.
        let mut reports: Vec<ReceivedReport> = Vec::new();
        for day in 0..12i64 {
            for node in 0..10u8 {
                for k in 0..(1 + i64::from(node % 3 == 0)) {
                    let mut r = received(
                        0,
                        Identity::Known {
                            cluster: AnonId([node / 3; 16]),
                            node: AnonId([node; 16]),
                        },
                    );
                    let n = reports.len() as u32;
                    r.report.id = ReportId([n as u8, (n >> 8) as u8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
                    r.received_at = day * 86_400 + 1_000 * i64::from(node) + 40_000 * k;
                    r.report.payload.timestamp = r.received_at as u64;
                    let minor = (day + i64::from(node) + k) / 4;
                    r.report.payload.version = semver::Version::new(2, minor as u64, 0);
                    reports.push(r);
                }
            }
            if day == 6 {
                let n = reports.len();
                reports.swap(n - 1, n - 5);
            }
        }
        let by_day = |d: i64| -> Vec<ReceivedReport> {
            reports
                .iter()
                .filter(|r| day_of(r.received_at) == d)
                .cloned()
                .collect()
        };
        // A: a day per batch, one writer; left with node_latest lagging.
        let a = dir.path().join("a.sqlite");
        let mut store = Store::open(&a).unwrap();
        for day in 0..11 {
            store.insert_batch(&by_day(day)).unwrap();
        }
        let lag: Option<i64> = store
            .conn
            .query_row("SELECT day FROM node_latest_day", [], |r| r.get(0))
            .optional()
            .unwrap();
        assert!(lag.is_some_and(|d| d < 9), "node_latest lags: {lag:?}");
        drop(store);
        // B: every day but the last in one batch, closed from raw rows.
        let b = dir.path().join("b.sqlite");
        let mut store = Store::open(&b).unwrap();
        let history: Vec<ReceivedReport> = (0..11).flat_map(by_day).collect();
        store.insert_batch(&history).unwrap();
        drop(store);
        // The last day, each by a new writer: A's loads lagging states.
        for path in [&a, &b] {
            let mut store = Store::open(path).unwrap();
            store.insert_batch(&by_day(11)).unwrap();
            store.flush_open_day().unwrap();
        }
        let dump = |path: &Path, sql: &str| -> Vec<String> {
            let conn = Connection::open(path).unwrap();
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([], |r| {
                    let n = r.as_ref().column_count();
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join(","))
                })
                .unwrap();
            rows.map(Result::unwrap).collect()
        };
        for sql in [
            "SELECT day, zone, cluster, node, version, status, last_at, reports, ids FROM node_days ORDER BY 1, 2, 3, 4, 5",
            "SELECT * FROM node_latest ORDER BY zone, cluster, node",
            "SELECT * FROM snapshot_versions ORDER BY day, zone, window, version",
            "SELECT * FROM snapshot_activity ORDER BY day, zone, age",
            "SELECT * FROM node_latest_day",
        ] {
            let (x, y) = (dump(&a, sql), dump(&b, sql));
            assert!(!x.is_empty() || sql.contains("node_latest_day"), "{sql}");
            assert_eq!(x, y, "{sql}");
        }
        let conn = Connection::open(&a).unwrap();
        let now = ingest::open_states(&conn).unwrap();
        assert_eq!(now.len(), 10);
        assert_eq!(
            now,
            ingest::open_states(&Connection::open(&b).unwrap()).unwrap()
        );
        let reader = SqliteReader::open(&a).unwrap();
        assert_eq!(
            reader.snapshot(&zone, Day(11)).unwrap().active(1),
            Some((4, 10))
        );
    }
}
