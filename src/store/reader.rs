//! What statistics read, and nothing else: a typed API over the store's
//! tables, so that `src/stats` holds no SQL and a second backend (for
//! example an analytics database) can answer the same questions.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};

use rusqlite::params;
use semver::Version;

use super::ingest;
use super::snapshot;
use super::{Store, StoreError};
use crate::clock::Day;
use crate::fleet::{FleetStates, Interner, NodeDay, Snapshot, VersionDay};
use crate::hint::Status;
use crate::protocol::ZoneName;

/// The questions statistics ask of a store.
pub trait StatsReader {
    /// Zones with any report, in name order.
    fn zones(&self) -> Result<Vec<ZoneName>, StoreError>;
    /// The fleet of `zone` in the windows ending on `day`: as stored when
    /// the day closed, or computed now from each node's latest state for
    /// the days still open.
    fn snapshot(&self, zone: &ZoneName, day: Day) -> Result<Snapshot, StoreError>;
    /// The fleet of `zone` in a window of `days` (longer than snapshots
    /// keep) ending on `day`, when today's node states can say it: `day`
    /// is the open day or later. `None` otherwise.
    fn long_window(
        &self,
        zone: &ZoneName,
        day: Day,
        days: i64,
    ) -> Result<Option<Snapshot>, StoreError>;
    fn version_days(
        &self,
        zone: &ZoneName,
        first: Day,
        last: Day,
    ) -> Result<Vec<VersionDay>, StoreError>;
    /// Node-days of `zone` (the exact path: merging several databases,
    /// or windows no snapshot keeps), with their report ids if `with_ids`.
    fn node_days(
        &self,
        zone: &ZoneName,
        first: Day,
        last: Day,
        with_ids: bool,
    ) -> Result<Vec<NodeDay>, StoreError>;
    /// The server's counters per day, by name (they are per server, not
    /// per zone).
    fn counters(&self, first: Day, last: Day) -> Result<BTreeMap<(Day, String), u64>, StoreError>;
    /// Each cluster of `zone` with the first day it was ever seen.
    fn cluster_first_days(&self, zone: &ZoneName) -> Result<Vec<([u8; 16], Day)>, StoreError>;
    /// Clusters of `zone` first seen within `first..=last`.
    fn new_clusters(&self, zone: &ZoneName, first: Day, last: Day) -> Result<u64, StoreError>;
    /// Each version of `zone` with the first day any report carried it.
    fn version_first_days(&self, zone: &ZoneName) -> Result<Vec<(Version, Day)>, StoreError>;
}

/// The SQLite reader: one read-only connection, node states loaded at most
/// once (for the open days' snapshots).
pub struct SqliteReader {
    store: Store,
    /// Every node's state as of now, read once (for windows no stored
    /// snapshot answers), and the snapshots computed from it, by day.
    nodes_now: OnceCell<FleetStates>,
    live_snapshots: RefCell<HashMap<Day, BTreeMap<String, Snapshot>>>,
}

impl SqliteReader {
    pub fn new(store: Store) -> Self {
        SqliteReader {
            store,
            nodes_now: OnceCell::new(),
            live_snapshots: RefCell::new(HashMap::new()),
        }
    }

    /// Opens a database read-only (see [`Store::open_read_only`]).
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        Ok(Self::new(Store::open_read_only(path)?))
    }

    fn open_day(&self) -> Result<Option<Day>, StoreError> {
        ingest::open_day(&self.store.conn)
    }

    fn nodes_now(&self) -> Result<&FleetStates, StoreError> {
        if let Some(nodes) = self.nodes_now.get() {
            return Ok(nodes);
        }
        let nodes = ingest::open_states(&self.store.conn)?;
        Ok(self.nodes_now.get_or_init(|| nodes))
    }
}

fn version_of(text: String) -> Option<Version> {
    Version::parse(&text).ok()
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl StatsReader for SqliteReader {
    fn zones(&self) -> Result<Vec<ZoneName>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT DISTINCT zone FROM versions ORDER BY zone")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(zone) = ZoneName::new(&row?) {
                out.push(zone);
            }
        }
        Ok(out)
    }

    fn snapshot(&self, zone: &ZoneName, day: Day) -> Result<Snapshot, StoreError> {
        let open = self.open_day()?;
        if open.is_none_or(|o| day < o) {
            return Ok(snapshot::load(&self.store.conn, zone.as_str(), day)?.unwrap_or_default());
        }
        // The open day's snapshot, as the processor last wrote it (within
        // a few seconds of its latest batch).
        if open == Some(day) {
            if let Some(snap) = snapshot::load(&self.store.conn, zone.as_str(), day)? {
                return Ok(snap);
            }
        }
        let nodes = self.nodes_now()?;
        let mut snapshots = self.live_snapshots.borrow_mut();
        let all = snapshots.entry(day).or_insert_with(|| nodes.snapshots(day));
        Ok(all.get(zone.as_str()).cloned().unwrap_or_default())
    }

    fn long_window(
        &self,
        zone: &ZoneName,
        day: Day,
        days: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        if self.open_day()?.is_some_and(|o| day < o) {
            return Ok(None);
        }
        let all = self.nodes_now()?.windows(day, &[days]);
        Ok(Some(all.get(zone.as_str()).cloned().unwrap_or_default()))
    }

    fn version_days(
        &self,
        zone: &ZoneName,
        first: Day,
        last: Day,
    ) -> Result<Vec<VersionDay>, StoreError> {
        let mut stmt = self.store.conn.prepare_cached(
            "SELECT day, version, reports, anonymous, last_at, status FROM version_days
             WHERE zone = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day, version",
        )?;
        let rows = stmt.query_map(params![zone.as_str(), first, last], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, u8>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (day, version, reports, anonymous, last_at, status) = row?;
            if let (Some(version), Some(status)) = (version_of(version), Status::from_code(status))
            {
                out.push(VersionDay {
                    day: Day(day),
                    version,
                    reports: count(reports),
                    anonymous: count(anonymous),
                    last_at: (last_at >= 0).then_some(last_at),
                    status,
                });
            }
        }
        Ok(out)
    }

    fn node_days(
        &self,
        zone: &ZoneName,
        first: Day,
        last: Day,
        with_ids: bool,
    ) -> Result<Vec<NodeDay>, StoreError> {
        // Closed days from the rollup; the open day grouped from raw rows.
        let conn = &self.store.conn;
        let open = self.open_day()?.unwrap_or(Day(i64::MAX));
        let zone = Some(zone.as_str());
        let mut interner = Interner::default();
        let mut out = ingest::read_node_days(
            conn,
            first,
            last.min(open - 1),
            zone,
            with_ids,
            &mut interner,
        )?;
        if last >= open {
            let open_days =
                ingest::group_node_days(conn, first.max(open), last, zone, &mut interner)?;
            out.extend(open_days.into_iter().map(|mut d| {
                if !with_ids {
                    d.ids = Vec::new();
                }
                d
            }));
        }
        Ok(out)
    }

    fn counters(&self, first: Day, last: Day) -> Result<BTreeMap<(Day, String), u64>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT day, name, value FROM counters WHERE day BETWEEN ?1 AND ?2")?;
        let rows = stmt.query_map(params![first, last], |r| {
            Ok((
                r.get::<_, Day>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (day, name, value) = row?;
            *out.entry((day, name)).or_default() += count(value);
        }
        Ok(out)
    }

    fn cluster_first_days(&self, zone: &ZoneName) -> Result<Vec<([u8; 16], Day)>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT cluster, first_day FROM clusters WHERE zone = ?1")?;
        let rows = stmt.query_map([zone.as_str()], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (cluster, first) = row?;
            if let Ok(cluster) = <[u8; 16]>::try_from(cluster) {
                out.push((cluster, Day(first)));
            }
        }
        Ok(out)
    }

    fn new_clusters(&self, zone: &ZoneName, first: Day, last: Day) -> Result<u64, StoreError> {
        let n: i64 = self.store.conn.query_row(
            "SELECT COUNT(*) FROM clusters WHERE zone = ?1 AND first_day BETWEEN ?2 AND ?3",
            params![zone.as_str(), first, last],
            |r| r.get(0),
        )?;
        Ok(count(n))
    }

    fn version_first_days(&self, zone: &ZoneName) -> Result<Vec<(Version, Day)>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT version, first_day FROM versions WHERE zone = ?1")?;
        let rows = stmt.query_map([zone.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (version, first) = row?;
            if let Some(version) = version_of(version) {
                out.push((version, Day(first)));
            }
        }
        Ok(out)
    }
}
