//! The statistics' store reader over ClickHouse: the same questions
//! [`SqliteReader`](crate::store::reader::SqliteReader) answers, from the
//! shipped reports of every name server.
//!
//! ClickHouse holds one row per delivery. Every query first takes each
//! report once (grouped by its key: zone, cluster, node, client time and
//! report id), with the receive time and status of its first delivery, as
//! SQLite keeps the first delivery and counts the rest as duplicates. This
//! is exact whether or not ClickHouse has merged the copies yet. Fleet
//! snapshots are computed from each node's state by the store's own
//! snapshot code, so both backends count with one implementation of the
//! counting model (docs/STATS.md).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use data_encoding::HEXLOWER_PERMISSIVE;
use semver::Version;

use super::client::{field, text, ClickHouseError, Client};
use super::url::ClickHouseUrl;
use crate::clock::Day;
use crate::hint::Status;
use crate::protocol::ZoneName;
use crate::store::reader::{NodeDayRow, StatsReader, VersionDay};
use crate::store::snapshot::{self, Member, Snapshot, MAX_WINDOW};
use crate::store::StoreError;

/// Copies of one report arrive within seconds (resolver retries, several
/// name servers): a day either side of a range is read so that a report
/// is dated by its first delivery even when a copy crossed midnight.
const COPY_SPAN_DAYS: i64 = 1;

impl From<ClickHouseError> for StoreError {
    fn from(e: ClickHouseError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// One node's state as of a day: cluster, node, day of its latest report,
/// version and status answered.
type NodeState = ([u8; 16], [u8; 16], i64, String, u8);

/// Node states of a zone as of a day, by (zone, day).
type StateCache = HashMap<(String, i64), Arc<Vec<NodeState>>>;

/// Reads statistics from a ClickHouse database (a single server's
/// `reports`, or a cluster's Distributed `reports`).
pub struct ClickHouseReader {
    client: Client,
    /// Node states by (zone, day), read at most once per reader (a trend
    /// or adoption asks for many days' snapshots).
    states: RefCell<StateCache>,
}

/// `text` as a ClickHouse string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn id16(hex: &str) -> Result<[u8; 16], ClickHouseError> {
    HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| ClickHouseError::Answer(format!("not a 16-byte id: {hex:?}")))
}

fn status(code: u8) -> Result<Status, ClickHouseError> {
    Status::from_code(code).ok_or_else(|| ClickHouseError::Answer(format!("status {code}")))
}

impl ClickHouseReader {
    pub fn new(client: Client) -> Self {
        ClickHouseReader {
            client,
            states: RefCell::new(HashMap::new()),
        }
    }

    /// A reader of the database at `url` (each query bounded by `timeout`).
    pub fn open(url: &ClickHouseUrl, timeout: std::time::Duration) -> Self {
        Self::new(Client::new(url, timeout))
    }

    fn table(&self) -> String {
        format!("{}.reports", self.client.database())
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
        format!(
            "SELECT cluster, node, any(anonymous) AS anon, any(version) AS v,
                    any(version_key) AS vk, min(received_at) AS at,
                    argMin(status, (received_at, server)) AS st, intDiv(at, 86400) AS d
             FROM {table}
             WHERE zone = {zone} AND day <= {last} {lower} {anon}
             GROUP BY cluster, node, client_time, report_id
             {having}"
        )
    }

    /// Every node's state as of the end of `day` (its latest report on or
    /// before it), sorted by cluster and node.
    fn states(&self, zone: &ZoneName, day: i64) -> Result<Arc<Vec<NodeState>>, StoreError> {
        let key = (zone.as_str().to_string(), day);
        if let Some(s) = self.states.borrow().get(&key) {
            return Ok(s.clone());
        }
        let rows = self.client.query(&format!(
            "SELECT cluster, node, max(d), argMax(v, (at, vk)), argMax(st, (at, vk))
             FROM ({}) GROUP BY cluster, node ORDER BY cluster, node",
            self.reports(zone, None, day, true)
        ))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push((
                id16(text(row, 0)?)?,
                id16(text(row, 1)?)?,
                field(row, 2)?,
                text(row, 3)?.to_string(),
                field(row, 4)?,
            ));
        }
        let out = Arc::new(out);
        self.states.borrow_mut().insert(key, out.clone());
        Ok(out)
    }

    fn compute(&self, zone: &ZoneName, day: i64, lengths: &[i64]) -> Result<Snapshot, StoreError> {
        let states = self.states(zone, day)?;
        let members = states
            .iter()
            .map(|(cluster, _, last_day, version, status)| Member {
                cluster: *cluster,
                last_day: *last_day,
                version,
                status: *status,
            });
        Ok(snapshot::compute(day, members, lengths))
    }
}

impl StatsReader for ClickHouseReader {
    fn zones(&self) -> Result<Vec<ZoneName>, StoreError> {
        let rows = self.client.query(&format!(
            "SELECT DISTINCT zone FROM {} ORDER BY zone",
            self.table()
        ))?;
        Ok(rows
            .iter()
            .filter_map(|r| r.first().and_then(|z| ZoneName::new(z).ok()))
            .collect())
    }

    fn snapshot(&self, zone: &ZoneName, day: Day) -> Result<Snapshot, StoreError> {
        let lengths: Vec<i64> = (1..=MAX_WINDOW).collect();
        self.compute(zone, day.0, &lengths)
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
        // Status: of the latest identified report, else of the first
        // anonymous one (as the SQLite writer keeps it).
        let rows = self.client.query(&format!(
            "SELECT d, v, count(), sum(anon), countIf(anon = 0), maxIf(at, anon = 0),
                    argMaxIf(st, at, anon = 0), argMinIf(st, at, anon = 1)
             FROM ({}) GROUP BY d, v ORDER BY d, v",
            self.reports(zone, Some(first.0), last.0, false)
        ))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(version) = Version::parse(text(row, 1)?) else {
                continue;
            };
            let identified: u64 = field(row, 4)?;
            let (last_at, code) = if identified > 0 {
                (Some(field(row, 5)?), field(row, 6)?)
            } else {
                (None, field(row, 7)?)
            };
            out.push(VersionDay {
                day: Day(field(row, 0)?),
                version,
                reports: field(row, 2)?,
                anonymous: field(row, 3)?,
                last_at,
                status: status(code)?,
            });
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
        let ids = if with_ids {
            format!(
                "groupArray({})(report_id)",
                crate::store::rollup::IDS_PER_NODE_DAY
            )
        } else {
            "[]".to_string()
        };
        // Two passes over the node-day: the rows, and (as a string of
        // hex ids joined by commas) the ids, which TabSeparated writes
        // unescaped.
        let rows = self.client.query(&format!(
            "SELECT d, cluster, node, v, argMax(st, at), max(at), count(),
                    arrayStringConcat(arrayMap(x -> toString(x), {ids}), ',')
             FROM ({}) GROUP BY d, cluster, node, v",
            self.reports(zone, Some(first.0), last.0, true)
        ))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(version) = Version::parse(text(row, 3)?) else {
                continue;
            };
            let ids = text(row, 7)?
                .split(',')
                .filter(|s| !s.is_empty())
                .filter_map(|h| HEXLOWER_PERMISSIVE.decode(h.as_bytes()).ok())
                .filter_map(|b| <[u8; 12]>::try_from(b).ok())
                .collect();
            out.push(NodeDayRow {
                day: Day(field(row, 0)?),
                cluster: id16(text(row, 1)?)?,
                node: id16(text(row, 2)?)?,
                version,
                status: status(field(row, 4)?)?,
                last_at: field(row, 5)?,
                reports: field(row, 6)?,
                ids,
            });
        }
        Ok(out)
    }

    /// Every name server's counters, summed: each process run's largest
    /// total per day and counter (see `counters`).
    fn counters(&self, first: Day, last: Day) -> Result<BTreeMap<(Day, String), u64>, StoreError> {
        let rows = self.client.query(&format!(
            "SELECT day, name, sum(v) FROM (
                 SELECT day, name, server, run, max(value) AS v FROM {}.counters
                 WHERE day BETWEEN {} AND {} GROUP BY day, name, server, run)
             GROUP BY day, name",
            self.client.database(),
            first.0,
            last.0
        ))?;
        let mut out = BTreeMap::new();
        for row in &rows {
            out.insert(
                (Day(field(row, 0)?), text(row, 1)?.to_string()),
                field(row, 2)?,
            );
        }
        Ok(out)
    }

    fn cluster_first_days(&self, zone: &ZoneName) -> Result<Vec<([u8; 16], Day)>, StoreError> {
        let rows = self.client.query(&format!(
            "SELECT cluster, min(day) FROM {} WHERE zone = {} AND anonymous = 0 GROUP BY cluster",
            self.table(),
            quote(zone.as_str())
        ))?;
        rows.iter()
            .map(|row| Ok((id16(text(row, 0)?)?, Day(field(row, 1)?))))
            .collect()
    }

    fn new_clusters(&self, zone: &ZoneName, first: Day, last: Day) -> Result<u64, StoreError> {
        let rows = self.client.query(&format!(
            "SELECT count() FROM (SELECT min(day) AS f FROM {} WHERE zone = {} AND anonymous = 0
             GROUP BY cluster) WHERE f BETWEEN {} AND {}",
            self.table(),
            quote(zone.as_str()),
            first.0,
            last.0
        ))?;
        Ok(match rows.first() {
            Some(row) => field(row, 0)?,
            None => 0,
        })
    }

    fn version_first_days(&self, zone: &ZoneName) -> Result<Vec<(Version, Day)>, StoreError> {
        let rows = self.client.query(&format!(
            "SELECT version, min(day) FROM {} WHERE zone = {} GROUP BY version",
            self.table(),
            quote(zone.as_str())
        ))?;
        let mut out = Vec::new();
        for row in &rows {
            if let Ok(v) = Version::parse(text(row, 0)?) {
                out.push((v, Day(field(row, 1)?)));
            }
        }
        Ok(out)
    }
}
