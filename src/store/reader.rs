//! What statistics read, and nothing else: a typed API over the store's
//! tables, so that `src/stats` holds no SQL and a second backend (for
//! example an analytics database) can answer the same questions.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};

use rusqlite::params;
use semver::Version;

use super::ingest;
use super::snapshot::{self, Snapshot};
use super::{Store, StoreError};
use crate::clock::Day;
use crate::hint::Status;
use crate::protocol::ZoneName;

/// One version's reports on one day in one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDay {
    pub day: Day,
    pub version: Version,
    /// All reports, anonymous ones included.
    pub reports: u64,
    pub anonymous: u64,
    /// Receive time of the latest identified report (None: only anonymous).
    pub last_at: Option<i64>,
    /// Answered to the latest identified report, else to an anonymous one.
    pub status: Status,
}

/// A node's reports of one version on one day (the exact path: merging
/// several databases, or windows no snapshot keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDayRow {
    pub day: Day,
    pub cluster: [u8; 16],
    pub node: [u8; 16],
    pub version: Version,
    pub status: Status,
    pub last_at: i64,
    pub reports: u64,
    /// Up to 32 report ids, for deduplication across databases.
    pub ids: Vec<[u8; 12]>,
}

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
    fn node_days(
        &self,
        zone: &ZoneName,
        first: Day,
        last: Day,
        with_ids: bool,
    ) -> Result<Vec<NodeDayRow>, StoreError>;
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
    nodes_now: OnceCell<ingest::States>,
    live_snapshots: RefCell<HashMap<i64, BTreeMap<String, Snapshot>>>,
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

    fn open_day(&self) -> Result<Option<i64>, StoreError> {
        ingest::open_day(&self.store.conn)
    }

    fn nodes_now(&self) -> Result<&ingest::States, StoreError> {
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
        if open.is_none_or(|o| day.0 < o) {
            return Ok(snapshot::load(&self.store.conn, zone.as_str(), day.0)?.unwrap_or_default());
        }
        // The open day's snapshot, as the processor last wrote it (within
        // a few seconds of its latest batch).
        if open == Some(day.0) {
            if let Some(snap) = snapshot::load(&self.store.conn, zone.as_str(), day.0)? {
                return Ok(snap);
            }
        }
        let nodes = self.nodes_now()?;
        let mut snapshots = self.live_snapshots.borrow_mut();
        let all = snapshots
            .entry(day.0)
            .or_insert_with(|| snapshot::compute_all(nodes.iter(), day.0));
        Ok(all.get(zone.as_str()).cloned().unwrap_or_default())
    }

    fn long_window(
        &self,
        zone: &ZoneName,
        day: Day,
        days: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        if self.open_day()?.is_some_and(|o| day.0 < o) {
            return Ok(None);
        }
        let all = snapshot::compute_windows(self.nodes_now()?.iter(), day.0, &[days]);
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
        let rows = stmt.query_map(params![zone.as_str(), first.0, last.0], |r| {
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
    ) -> Result<Vec<NodeDayRow>, StoreError> {
        let mut out = Vec::new();
        // Closed days from the rollup; the open day grouped from raw rows.
        let open = self.open_day()?.unwrap_or(i64::MAX);
        let mut stmt = self.store.conn.prepare_cached(
            "SELECT day, zone, cluster, node, version, status, last_at, reports,
                    CASE WHEN ?4 THEN ids ELSE x'' END
             FROM node_days WHERE day BETWEEN ?2 AND ?3 AND zone = ?1",
        )?;
        let rows = stmt.query_map(
            params![zone.as_str(), first.0, last.0.min(open - 1), with_ids],
            |r| {
                Ok(ingest::GroupedNodeDay {
                    day: r.get(0)?,
                    zone: r.get(1)?,
                    cluster: <[u8; 16]>::try_from(r.get::<_, Vec<u8>>(2)?).unwrap_or_default(),
                    node: <[u8; 16]>::try_from(r.get::<_, Vec<u8>>(3)?).unwrap_or_default(),
                    version: r.get(4)?,
                    status: r.get(5)?,
                    last_at: r.get(6)?,
                    reports: r.get(7)?,
                    ids: r.get(8)?,
                })
            },
        )?;
        let mut grouped = Vec::new();
        for row in rows {
            grouped.push(row?);
        }
        if last.0 >= open {
            grouped.extend(ingest::group_node_days(
                &self.store.conn,
                first.0.max(open),
                last.0,
                Some(zone.as_str()),
            )?);
        }
        for g in grouped {
            if let (Some(version), Some(status)) =
                (version_of(g.version), Status::from_code(g.status))
            {
                out.push(NodeDayRow {
                    day: Day(g.day),
                    cluster: g.cluster,
                    node: g.node,
                    version,
                    status,
                    last_at: g.last_at,
                    reports: count(g.reports),
                    ids: if with_ids {
                        g.ids
                            .chunks_exact(12)
                            .filter_map(|c| c.try_into().ok())
                            .collect()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        Ok(out)
    }

    fn counters(&self, first: Day, last: Day) -> Result<BTreeMap<(Day, String), u64>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT day, name, value FROM counters WHERE day BETWEEN ?1 AND ?2")?;
        let rows = stmt.query_map(params![first.0, last.0], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (day, name, value) = row?;
            *out.entry((Day(day), name)).or_default() += count(value);
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
            params![zone.as_str(), first.0, last.0],
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
