//! The statistics' store reader over ClickHouse: the same questions
//! [`SqliteReader`](crate::store::reader::SqliteReader) answers, from what
//! every name server shipped.
//!
//! What the statistics of one database ask (snapshots, version days, first
//! days of clusters and versions) is read from the rollup's tables (see
//! `rollup`), a few small rows per zone and day, whatever the fleet's
//! size: no statistic of `stats::Source`'s single-database path reads the
//! raw reports. A day the rollup has not reached is an error that says
//! so (`vcheckd clickhouse rollup`), never a silent zero. The exact path
//! (node-days, windows longer than snapshots keep) still groups the raw
//! reports: each report once (grouped by its key: zone, cluster, node,
//! client time and report id), with the receive time and status of its
//! first delivery, as SQLite keeps the first delivery.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use data_encoding::HEXLOWER_PERMISSIVE;
use semver::Version;

use serde::Deserialize;

use super::client::{hex16, one, ClickHouseError, Client};
use super::dedup::{first_deliveries, COPY_SPAN_DAYS};
use super::rollup::{self, Marker};
use super::url::ClickHouseUrl;
use crate::clock::Day;
use crate::fleet::{self, Interner, Member, NodeDay, Snapshot, VersionDay, VersionFigures};
use crate::hint::Status;
use crate::protocol::ZoneName;
use crate::store::reader::StatsReader;
use crate::store::StoreError;

impl From<ClickHouseError> for StoreError {
    fn from(e: ClickHouseError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// One node's state as of a day: the day of its latest report, that
/// report's version and the status answered.
#[derive(Deserialize)]
struct NodeState {
    #[serde(deserialize_with = "hex16")]
    cluster: [u8; 16],
    last_day: Day,
    version: String,
    status: Status,
}

/// A row of `snapshot_totals`.
#[derive(Deserialize)]
struct TotalsRow {
    day: i64,
    window: i64,
    mixed_clusters: u64,
    insecure_clusters: u64,
    insecure_nodes: u64,
}

/// A row of `snapshot_versions`.
#[derive(Deserialize)]
struct VersionsRow {
    day: i64,
    window: i64,
    version: String,
    clusters: u64,
    share_mixed_bits: u64,
    nodes: u64,
    min_clusters: u64,
}

/// A row of `snapshot_activity`.
#[derive(Deserialize)]
struct ActivityRow {
    day: i64,
    age: usize,
    clusters: u64,
    nodes: u64,
}

/// A row of `version_days`.
#[derive(Deserialize)]
struct VersionDayRow {
    day: Day,
    version: String,
    reports: u64,
    anonymous: u64,
    last_at: i64,
    status: Status,
}

/// A node-day grouped from the raw reports, with its report ids (hex).
#[derive(Deserialize)]
struct NodeDayRow {
    day: Day,
    #[serde(deserialize_with = "hex16")]
    cluster: [u8; 16],
    #[serde(deserialize_with = "hex16")]
    node: [u8; 16],
    version: String,
    status: Status,
    last_at: i64,
    reports: u64,
    ids: Vec<String>,
}

/// The row of a `count() AS n` query.
#[derive(Deserialize)]
struct Count {
    n: u64,
}

/// Node states of a zone as of a day, by (zone, day).
type StateCache = HashMap<(String, i64), Arc<Vec<NodeState>>>;

/// Days of snapshots read at once after a zone's first (a trend or an
/// adoption asks for many days, one by one).
const SNAPSHOT_BLOCK: i64 = 32;

/// Reads statistics from a ClickHouse database (a single server's
/// tables, or a cluster's Distributed tables).
pub struct ClickHouseReader {
    client: Client,
    /// Node states by (zone, day), for the exact path's long windows.
    states: RefCell<StateCache>,
    /// The rolled-up days, read once.
    markers: OnceCell<BTreeMap<i64, Marker>>,
    /// Snapshots read, by (zone, day).
    snapshots: RefCell<HashMap<(String, i64), Snapshot>>,
    /// A zone's version days, every day, once asked twice.
    version_days: RefCell<HashMap<String, Vec<VersionDay>>>,
    /// Reads per zone so far (snapshots, version days): the second reads
    /// ahead.
    reads: RefCell<HashMap<(String, &'static str), u32>>,
}

/// `text` as a ClickHouse string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl ClickHouseReader {
    #[must_use]
    pub fn new(client: Client) -> Self {
        ClickHouseReader {
            client,
            states: RefCell::new(HashMap::new()),
            markers: OnceCell::new(),
            snapshots: RefCell::new(HashMap::new()),
            version_days: RefCell::new(HashMap::new()),
            reads: RefCell::new(HashMap::new()),
        }
    }

    /// A reader of the database at `url` (each query bounded by `timeout`).
    #[must_use]
    pub fn open(url: &ClickHouseUrl, timeout: std::time::Duration) -> Self {
        Self::new(Client::new(url, timeout))
    }

    fn table(&self) -> String {
        format!("{}.reports", self.client.database())
    }

    fn markers(&self) -> Result<&BTreeMap<i64, Marker>, ClickHouseError> {
        if let Some(m) = self.markers.get() {
            return Ok(m);
        }
        let m = rollup::markers(&self.client, false)?;
        Ok(self.markers.get_or_init(|| m))
    }

    /// The first rolled-up day (the first day with reports), after making
    /// sure the rollup reached `last`.
    fn rolled_up_to(&self, last: i64) -> Result<i64, ClickHouseError> {
        let markers = self.markers()?;
        match (markers.keys().next(), markers.keys().next_back()) {
            (Some(first), Some(through)) if *through >= last => Ok(*first),
            (_, through) => Err(ClickHouseError::NotRolledUp {
                day: last,
                through: through.copied(),
            }),
        }
    }

    /// How many times `what` was read for `zone` before this one.
    fn reads(&self, zone: &ZoneName, what: &'static str) -> u32 {
        let mut reads = self.reads.borrow_mut();
        let n = reads.entry((zone.as_str().to_string(), what)).or_default();
        *n += 1;
        *n - 1
    }

    /// Reads the stored snapshots of `zone` for `first..=last` into the
    /// cache (a day without rows: the zone had no node then, an empty
    /// snapshot, as SQLite has it).
    fn load_snapshots(
        &self,
        zone: &ZoneName,
        first: i64,
        last: i64,
    ) -> Result<(), ClickHouseError> {
        let db = self.client.database();
        let filter = format!(
            "FINAL WHERE zone = {} AND day BETWEEN {first} AND {last}",
            quote(zone.as_str())
        );
        let mut days: BTreeMap<i64, Snapshot> = BTreeMap::new();
        self.client.each(
            &format!(
                "SELECT day, window, mixed_clusters, insecure_clusters, insecure_nodes
                 FROM {db}.snapshot_totals {filter}"
            ),
            |r: TotalsRow| {
                let snap = days.entry(r.day).or_insert_with(Snapshot::stored_empty);
                if let Some(w) = window_of(&mut snap.windows, r.window) {
                    w.mixed_clusters = r.mixed_clusters;
                    w.insecure_clusters = r.insecure_clusters;
                    w.insecure_nodes = r.insecure_nodes;
                }
                Ok(())
            },
        )?;
        self.client.each(
            &format!(
                "SELECT day, window, version, clusters, share_mixed_bits, nodes, min_clusters
                 FROM {db}.snapshot_versions {filter}"
            ),
            |r: VersionsRow| {
                let Some(snap) = days.get_mut(&r.day).filter(|_| r.nodes > 0) else {
                    return Ok(());
                };
                if let Some(w) = window_of(&mut snap.windows, r.window) {
                    w.versions.insert(
                        r.version,
                        VersionFigures {
                            clusters: r.clusters,
                            share_mixed: f64::from_bits(r.share_mixed_bits),
                            nodes: r.nodes,
                            min_clusters: r.min_clusters,
                        },
                    );
                }
                Ok(())
            },
        )?;
        self.client.each(
            &format!("SELECT day, age, clusters, nodes FROM {db}.snapshot_activity {filter}"),
            |r: ActivityRow| {
                let slot = days
                    .get_mut(&r.day)
                    .and_then(|snap| snap.activity.get_mut(r.age));
                if let Some(slot) = slot {
                    *slot = (r.clusters, r.nodes);
                }
                Ok(())
            },
        )?;
        let mut cache = self.snapshots.borrow_mut();
        for day in first..=last {
            let snap = days.remove(&day).unwrap_or_default();
            cache.insert((zone.as_str().to_string(), day), snap);
        }
        Ok(())
    }

    /// The stored version days of `zone` in `first..=last` (all days:
    /// `None`).
    fn load_version_days(
        &self,
        zone: &ZoneName,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<VersionDay>, StoreError> {
        let days = range.map_or(String::new(), |(first, last)| {
            format!("AND day BETWEEN {first} AND {last}")
        });
        let mut out = Vec::new();
        self.client.each(
            &format!(
                "SELECT day, version, reports, anonymous, last_at, status
                 FROM {}.version_days FINAL WHERE zone = {} {days} ORDER BY day, version",
                self.client.database(),
                quote(zone.as_str())
            ),
            |r: VersionDayRow| {
                // Rows of zeros: keys a later computation no longer has.
                let Ok(version) = Version::parse(&r.version) else {
                    return Ok(());
                };
                if r.reports > 0 {
                    out.push(VersionDay {
                        day: r.day,
                        version,
                        reports: r.reports,
                        anonymous: r.anonymous,
                        last_at: (r.last_at >= 0).then_some(r.last_at),
                        status: r.status,
                    });
                }
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Each report of `zone` once, first received on a day in
    /// `first..=last` (`None`: any day up to `last`), with the columns
    /// `cluster, node, anon, v, vk, at, st, d` (receive time, status and
    /// day of its first delivery).
    fn reports(&self, zone: &ZoneName, first: Option<i64>, last: i64, identified: bool) -> String {
        let table = self.table();
        let zone = quote(zone.as_str());
        let lower = first.map_or(String::new(), |f| {
            format!("AND day >= {}", f - COPY_SPAN_DAYS)
        });
        let having = first.map_or(String::new(), |f| format!("HAVING d >= {f}"));
        let anon = if identified { "AND anonymous = 0" } else { "" };
        let reports = first_deliveries(
            &table,
            &format!("zone = {zone} AND day <= {last} {lower} {anon}"),
        );
        format!("{reports} {having}")
    }

    /// Every node's state as of the end of `day` (its latest report on or
    /// before it), sorted by cluster and node.
    fn states(&self, zone: &ZoneName, day: i64) -> Result<Arc<Vec<NodeState>>, StoreError> {
        let key = (zone.as_str().to_string(), day);
        if let Some(s) = self.states.borrow().get(&key) {
            return Ok(s.clone());
        }
        let out: Vec<NodeState> = self.client.rows(&format!(
            "SELECT cluster, node, max(d) AS last_day, argMax(v, (at, vk)) AS version,
                    argMax(st, (at, vk)) AS status
             FROM ({}) GROUP BY cluster, node ORDER BY cluster, node",
            self.reports(zone, None, day, true)
        ))?;
        let out = Arc::new(out);
        self.states.borrow_mut().insert(key, out.clone());
        Ok(out)
    }

    fn compute(&self, zone: &ZoneName, day: i64, lengths: &[i64]) -> Result<Snapshot, StoreError> {
        let states = self.states(zone, day)?;
        let members = states.iter().map(|s| Member {
            cluster: s.cluster,
            last_day: s.last_day,
            version: &s.version,
            status: s.status,
        });
        Ok(fleet::snapshot::compute(Day(day), members, lengths))
    }
}

impl StatsReader for ClickHouseReader {
    /// Zones with any report, from the rollup's `versions` (raw reports
    /// never rolled up are an error that says so).
    fn zones(&self) -> Result<Vec<ZoneName>, StoreError> {
        /// A row of the query below.
        #[derive(Deserialize)]
        struct Zone {
            zone: String,
        }
        let rows: Vec<Zone> = self.client.rows(&format!(
            "SELECT DISTINCT zone FROM {}.versions ORDER BY zone",
            self.client.database()
        ))?;
        if rows.is_empty() && self.markers()?.is_empty() {
            let any: Count = one(self.client.rows(&format!(
                "SELECT count() AS n FROM (SELECT 1 FROM {} LIMIT 1)",
                self.table()
            ))?)?;
            if any.n > 0 {
                return Err(ClickHouseError::NotRolledUp {
                    day: crate::clock::today().0,
                    through: None,
                }
                .into());
            }
        }
        Ok(rows
            .iter()
            .filter_map(|r| ZoneName::new(&r.zone).ok())
            .collect())
    }

    /// The stored snapshot (read a block of days at a time after a zone's
    /// first).
    fn snapshot(&self, zone: &ZoneName, day: Day) -> Result<Snapshot, StoreError> {
        let first = self.rolled_up_to(day.0)?;
        if day.0 < first {
            return Ok(Snapshot::default());
        }
        let key = (zone.as_str().to_string(), day.0);
        if let Some(s) = self.snapshots.borrow().get(&key) {
            return Ok(s.clone());
        }
        let (from, to) = if self.reads(zone, "snapshot") == 0 {
            (day.0, day.0)
        } else {
            let block = day.0.div_euclid(SNAPSHOT_BLOCK) * SNAPSHOT_BLOCK;
            let through = self.markers()?.keys().next_back().copied().unwrap_or(day.0);
            (
                block.max(first),
                (block + SNAPSHOT_BLOCK - 1).min(through).max(day.0),
            )
        };
        self.load_snapshots(zone, from, to)?;
        Ok(self
            .snapshots
            .borrow()
            .get(&key)
            .cloned()
            .unwrap_or_default())
    }

    /// Any window, ending on any day: ClickHouse keeps every report.
    fn long_window(
        &self,
        zone: &ZoneName,
        day: Day,
        days: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.compute(zone, day.0, &[days]).map(Some)
    }

    fn version_days(
        &self,
        zone: &ZoneName,
        first: Day,
        last: Day,
    ) -> Result<Vec<VersionDay>, StoreError> {
        self.rolled_up_to(last.0)?;
        if self.reads(zone, "version_days") == 0 {
            return self.load_version_days(zone, Some((first.0, last.0)));
        }
        let mut cache = self.version_days.borrow_mut();
        let all = match cache.entry(zone.as_str().to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.load_version_days(zone, None)?)
            }
        };
        Ok(all
            .iter()
            .filter(|v| (first..=last).contains(&v.day))
            .cloned()
            .collect())
    }

    fn node_days(
        &self,
        zone: &ZoneName,
        first: Day,
        last: Day,
        with_ids: bool,
    ) -> Result<Vec<NodeDay>, StoreError> {
        let ids = if with_ids {
            format!("groupArray({})(report_id)", crate::fleet::IDS_PER_NODE_DAY)
        } else {
            "emptyArrayString()".to_string()
        };
        let rows: Vec<NodeDayRow> = self.client.rows(&format!(
            "SELECT d AS day, cluster, node, v AS version, argMax(st, at) AS status,
                    max(at) AS last_at, count() AS reports, {ids} AS ids
             FROM ({}) GROUP BY d, cluster, node, v",
            self.reports(zone, Some(first.0), last.0, true)
        ))?;
        let mut out = Vec::with_capacity(rows.len());
        let mut interner = Interner::default();
        let zone = interner.zone(zone.as_str());
        for row in rows {
            let Some(version) = interner.version(&row.version) else {
                continue;
            };
            out.push(NodeDay {
                day: row.day,
                zone: zone.clone(),
                cluster: row.cluster,
                node: row.node,
                version,
                status: row.status,
                last_at: row.last_at,
                reports: row.reports,
                ids: row
                    .ids
                    .iter()
                    .filter_map(|h| HEXLOWER_PERMISSIVE.decode(h.as_bytes()).ok())
                    .filter_map(|b| <[u8; 12]>::try_from(b).ok())
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Every name server's counters, summed: each process run's largest
    /// total per day and counter (see `counters`).
    fn counters(&self, first: Day, last: Day) -> Result<BTreeMap<(Day, String), u64>, StoreError> {
        /// A row of the query below.
        #[derive(Deserialize)]
        struct Counter {
            day: Day,
            name: String,
            total: u64,
        }
        let rows: Vec<Counter> = self.client.rows(&format!(
            "SELECT day, name, sum(v) AS total FROM (
                 SELECT day, name, server, run, max(value) AS v FROM {}.counters
                 WHERE day BETWEEN {} AND {} GROUP BY day, name, server, run)
             GROUP BY day, name",
            self.client.database(),
            first.0,
            last.0
        ))?;
        Ok(rows
            .into_iter()
            .map(|r| ((r.day, r.name), r.total))
            .collect())
    }

    fn cluster_first_days(&self, zone: &ZoneName) -> Result<Vec<([u8; 16], Day)>, StoreError> {
        /// A row of the query below.
        #[derive(Deserialize)]
        struct Cluster {
            #[serde(deserialize_with = "hex16")]
            cluster: [u8; 16],
            first: Day,
        }
        let rows: Vec<Cluster> = self.client.rows(&format!(
            "SELECT cluster, min(first_day) AS first FROM {}.clusters WHERE zone = {}
             GROUP BY cluster",
            self.client.database(),
            quote(zone.as_str())
        ))?;
        Ok(rows.into_iter().map(|r| (r.cluster, r.first)).collect())
    }

    fn new_clusters(&self, zone: &ZoneName, first: Day, last: Day) -> Result<u64, StoreError> {
        self.rolled_up_to(last.0)?;
        let count: Count = one(self.client.rows(&format!(
            "SELECT count() AS n FROM (SELECT min(first_day) AS f FROM {}.clusters
             WHERE zone = {} GROUP BY cluster) WHERE f BETWEEN {} AND {}",
            self.client.database(),
            quote(zone.as_str()),
            first.0,
            last.0
        ))?)?;
        Ok(count.n)
    }

    fn version_first_days(&self, zone: &ZoneName) -> Result<Vec<(Version, Day)>, StoreError> {
        /// A row of the query below.
        #[derive(Deserialize)]
        struct First {
            version: String,
            first: Day,
        }
        let rows: Vec<First> = self.client.rows(&format!(
            "SELECT version, min(first_day) AS first FROM {}.versions WHERE zone = {}
             GROUP BY version",
            self.client.database(),
            quote(zone.as_str())
        ))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((Version::parse(&r.version).ok()?, r.first)))
            .collect())
    }
}

/// Window `length` (days) of a stored snapshot's windows.
fn window_of(
    windows: &mut [fleet::WindowFigures],
    length: i64,
) -> Option<&mut fleet::WindowFigures> {
    usize::try_from(length - 1)
        .ok()
        .and_then(|i| windows.get_mut(i))
}
