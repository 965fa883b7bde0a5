//! The rollup ("closer"): what statistics read from ClickHouse, computed
//! once per day instead of per query, as the SQLite writer computes it
//! when a day closes.
//!
//! For each day, from the shipped reports (each counted once: grouped by
//! its key, dated and answered as its first delivery), it writes
//! `version_days`, the fleet snapshot (`snapshot_versions`,
//! `snapshot_totals`, `snapshot_activity`, computed by the store's own
//! [`FleetStates`], so ClickHouse and SQLite count with one
//! implementation), and the first days of new clusters and versions. A
//! day *closes* once it is over and a grace period has passed (copies of
//! a report that crossed midnight, shipping delay): its node states are
//! folded into `node_state` (as of the day) and `rollup_days` records the
//! day as closed, with a fingerprint of its raw rows. The next day's close
//! starts from those node states and reads that day's reports only. The
//! days still open (today, and yesterday within the grace period) are
//! computed again on every run from the last closed day's states, without
//! saving states, so statistics for today read stored rows too.
//!
//! Late reports for a closed day (a ClickHouse outage across midnight, a
//! shipper catching up) change its fingerprint (distinct report ids, and
//! deliveries, received that day): a run compares the fingerprints of the
//! last [`CHECKED_DAYS`] closed days and closes again from the earliest
//! that changed (from the node states of the day before it: the states of
//! [`KEEP_STATE_DAYS`], one more day, are kept). Older days are closed
//! again by hand (`vcheckd clickhouse rollup --from DAY`).
//!
//! Every row is written again whole, with the run's `computed_at`; a
//! merge (or `FINAL`, when read) keeps the newest per key, and a key a
//! computation no longer has gets a row of zeros (readers skip them). So
//! running the rollup again gives the same rows. Two runs at once would
//! not (keys only the older one wrote would stay, and each sees the
//! other's inserts half done): a run takes the lease first (`lease`), and
//! skips while another server holds it. A day's marker in `rollup_days`
//! is written after all of the day's rows, so a run cut short leaves the
//! day to the next one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use data_encoding::HEXLOWER;
use serde::Serialize;
use tracing::{debug, info, warn};

use super::client::{field, id16, num, str_at, ClickHouseError, Client};
use super::dedup::{first_deliveries, COPY_SPAN_DAYS};
use super::lease::Lease;
use super::schema::{self, Topology, NODE_STATE};
use crate::clock::day_of;
use crate::store::fleet::{FleetStates, StoredState};
use crate::store::snapshot::Snapshot;

/// Closed days whose fingerprints each run checks for late reports.
pub const CHECKED_DAYS: i64 = 7;

/// Closed days whose node states are kept (older `node_state` partitions
/// are dropped): one more than the days checked, because closing the
/// oldest checked day again starts from the states of the day before it.
pub(crate) const KEEP_STATE_DAYS: i64 = CHECKED_DAYS + 1;

/// Raw rows (deliveries) read per query at most, roughly: days are closed
/// in chunks of this many rows, or of [`CHUNK_DAYS`] days.
const CHUNK_ROWS: u64 = 2_000_000;
const CHUNK_DAYS: i64 = 31;

/// Node states sent per insert, at most: a million nodes' states are
/// some 200 MB of JSON, which ClickHouse would take as one body (and
/// split into blocks anyway).
const STATE_CHUNK_ROWS: usize = 100_000;

/// A row that does not serialize (it cannot: plain strings and numbers).
fn serialize(e: serde_json::Error) -> ClickHouseError {
    ClickHouseError::Answer(format!("cannot serialize a row: {e}"))
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Days closed (or closed again), first and last.
    pub closed: Option<(i64, i64)>,
    /// Closed again because their reports changed (the first such day).
    pub late_from: Option<i64>,
    /// Open days refreshed, first and last.
    pub open: Option<(i64, i64)>,
    /// With a `--from` day: the day closing started from instead. Later
    /// when no report was received from that day up to it; earlier when
    /// no node states were kept for the day before it (closing starts
    /// after the latest kept ones, or on the first day).
    pub from_start: Option<i64>,
}

/// One day as `rollup_days` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub closed: bool,
    pub reports: u64,
    pub rows: u64,
    pub state_day: i64,
    pub computed_at: u64,
    /// Node states saved as of the day (-1: not counted, or none saved):
    /// what a restore must read back.
    pub nodes: i64,
}

/// Every rolled-up day of the database, by day. Without `nodes` (for
/// readers), `nodes` is -1: a reader then also reads a database of
/// schema 3, whose `rollup_days` lacks the column until it is migrated.
pub(crate) fn markers(
    client: &Client,
    nodes: bool,
) -> Result<BTreeMap<i64, Marker>, ClickHouseError> {
    let mut out = BTreeMap::new();
    client.query_each(
        &format!(
            "SELECT day, closed, reports, rows, state_day, computed_at, {}
             FROM {}.rollup_days FINAL",
            if nodes { "nodes" } else { "-1" },
            client.database()
        ),
        |r| {
            out.insert(
                num(r, 0)?,
                Marker {
                    closed: num::<u8>(r, 1)? == 1,
                    reports: num(r, 2)?,
                    rows: num(r, 3)?,
                    state_day: num(r, 4)?,
                    computed_at: num(r, 5)?,
                    nodes: num(r, 6)?,
                },
            );
            Ok(())
        },
    )?;
    Ok(out)
}

/// One node's reports of one version on one day (anonymous reports: one
/// row per zone, day and version, without ids), each report counted once.
struct NodeDay {
    zone: Rc<str>,
    anonymous: bool,
    cluster: [u8; 16],
    node: [u8; 16],
    version: Rc<str>,
    reports: u64,
    /// Receive time of the latest report, and the status answered to it.
    last_at: i64,
    last_status: u8,
}

/// Node states as of a closed day, with the zone's versions seen by then:
/// where the next day's close starts.
#[derive(Clone)]
struct Base {
    /// The day the states are as of (`None`: before the first day).
    day: Option<i64>,
    /// `computed_at` of that day's marker when the states were read.
    stamp: u64,
    states: FleetStates,
    versions: HashSet<(String, String)>,
}

/// The rollup job; keeps the last closed day's node states between runs
/// (a daemon refreshes the open day every few minutes).
pub struct Rollup {
    client: Client,
    topology: Topology,
    /// Seconds after midnight (UTC) before the day before is closed.
    grace_secs: i64,
    base: Option<Base>,
    lease: Lease,
    /// Node states per insert (see [`STATE_CHUNK_ROWS`]).
    state_chunk_rows: usize,
}

/// A day's rows to insert, as JSONEachRow, per table.
#[derive(Default)]
struct Inserts {
    tables: BTreeMap<&'static str, Vec<u8>>,
    /// The first row that did not serialize: nothing is sent then.
    failed: Option<ClickHouseError>,
}

impl Inserts {
    fn push(&mut self, table: &'static str, row: &impl Serialize) {
        let body = self.tables.entry(table).or_default();
        match serde_json::to_writer(&mut *body, row) {
            Ok(()) => body.push(b'\n'),
            Err(e) => {
                self.failed.get_or_insert(serialize(e));
            }
        }
    }

    /// Sends every table's rows, `last` (the markers) after the others.
    fn send(self, client: &Client, last: &str) -> Result<(), ClickHouseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut marker = None;
        for (table, body) in self.tables {
            if table == last {
                marker = Some(body);
            } else if !body.is_empty() {
                insert(client, table, &body)?;
            }
        }
        if let Some(body) = marker {
            insert(client, last, &body)?;
        }
        Ok(())
    }
}

fn insert(client: &Client, table: &str, body: &[u8]) -> Result<(), ClickHouseError> {
    client.insert_json(table, body, &[("insert_distributed_sync", "1")])
}

#[derive(Serialize)]
struct VersionDayRow<'a> {
    zone: &'a str,
    day: i64,
    version: &'a str,
    reports: u64,
    anonymous: u64,
    last_at: i64,
    status: u8,
    computed_at: u64,
}

#[derive(Serialize)]
struct SnapshotVersionRow<'a> {
    zone: &'a str,
    day: i64,
    window: i64,
    version: &'a str,
    clusters: u64,
    share_mixed_bits: u64,
    nodes: u64,
    min_clusters: u64,
    computed_at: u64,
}

#[derive(Serialize)]
struct SnapshotTotalRow<'a> {
    zone: &'a str,
    day: i64,
    window: i64,
    mixed_clusters: u64,
    insecure_clusters: u64,
    insecure_nodes: u64,
    computed_at: u64,
}

#[derive(Serialize)]
struct SnapshotActivityRow<'a> {
    zone: &'a str,
    day: i64,
    age: i64,
    clusters: u64,
    nodes: u64,
    computed_at: u64,
}

#[derive(Serialize)]
struct FirstDayRow<'a> {
    zone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    first_day: i64,
    keep: u32,
}

#[derive(Serialize)]
struct NodeStateRow<'a> {
    as_of: i64,
    zone: &'a str,
    cluster: String,
    node: String,
    last_day: i64,
    last_at: i64,
    version: &'a str,
    status: u8,
    computed_at: u64,
}

#[derive(Serialize)]
struct MarkerRow {
    day: i64,
    closed: u8,
    reports: u64,
    rows: u64,
    state_day: i64,
    computed_at: u64,
    nodes: i64,
}

/// A merge keeps the largest `keep`: the earliest first day.
fn keep_earliest(day: i64) -> u32 {
    u32::MAX - u32::try_from(day.clamp(0, i64::from(u32::MAX))).unwrap_or(0)
}

/// Keys of rows already stored for some days, with counts not zero: the
/// keys a new computation of those days must zero if it lacks them.
#[derive(Default)]
struct Stored {
    versions: HashSet<(String, i64, i64, String)>,
    activity: HashSet<(String, i64, i64)>,
    version_days: HashSet<(String, i64, String)>,
}

impl Rollup {
    /// `grace_secs`: how long after midnight (UTC) the day before stays
    /// open (copies crossing midnight, shipping delay).
    /// The lease is taken as `vcheckd` with a 15-minute ttl: see
    /// [`with_lease`](Self::with_lease).
    pub fn new(client: Client, topology: Topology, grace_secs: u64) -> Self {
        Rollup {
            lease: Lease::new(client.clone(), "vcheckd", Duration::from_secs(900)),
            client,
            topology,
            grace_secs: i64::try_from(grace_secs).unwrap_or(i64::MAX / 2),
            base: None,
            state_chunk_rows: STATE_CHUNK_ROWS,
        }
    }

    /// Node states sent per insert: [`STATE_CHUNK_ROWS`] unless a test
    /// makes a small fleet's states span several inserts.
    #[doc(hidden)]
    pub fn with_state_chunk_rows(mut self, rows: usize) -> Self {
        self.state_chunk_rows = rows.max(1);
        self
    }

    /// Takes the lease as `server` (this name server's name; a random id
    /// is added per process), for `ttl` from each renewal: several runs'
    /// interval, so that a holder that stops is replaced soon.
    pub fn with_lease(mut self, server: &str, ttl: Duration) -> Self {
        self.lease = Lease::new(self.client.clone(), server, ttl);
        self
    }

    /// Skips a run, too, while another server's run ended less than
    /// `interval` ago (see `lease`): for the name servers' rollup threads,
    /// so that one server does the work while it runs.
    pub(crate) fn defer_to_recent(&mut self, interval: Duration) {
        self.lease.defer_to_recent(interval);
    }

    /// Whether this process holds the lease (a release that failed).
    pub(crate) fn holds_lease(&self) -> bool {
        self.lease.is_held()
    }

    /// This process's name as a lease holder.
    pub fn holder(&self) -> &str {
        self.lease.holder_name()
    }

    /// Gives the lease up (a process that stops, or ran once), so that
    /// another server's rollup need not wait for it to expire.
    pub fn release(&mut self) -> Result<(), ClickHouseError> {
        if self.lease.is_held() {
            self.lease.give_up()?;
        }
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn db(&self) -> &str {
        self.client.database()
    }

    /// Closes every day not closed yet up to the last closable one (given
    /// `now`, unix seconds), or every day from `from` on, closes again
    /// the recent days whose reports changed, and refreshes the open days.
    /// Takes (or renews) the lease first, and keeps it: an error
    /// [`ClickHouseError::RollupBusy`] when another holds it.
    pub fn run(&mut self, now: i64, from: Option<i64>) -> Result<RollupReport, ClickHouseError> {
        self.lease.acquire()?;
        let mut report = RollupReport::default();
        let markers = markers(&self.client, true)?;
        let today = day_of(now);
        let closable = day_of(now - self.grace_secs) - 1;
        let mut first_day = match markers.keys().next() {
            Some(d) => *d,
            None => match self.first_report_day(None)? {
                Some(d) => d,
                None => return Ok(report),
            },
        };
        // Asked to start before the first day rolled up: reports received
        // before it (a shipper that caught up late) start the rollup.
        if from.is_some_and(|f| f < first_day) {
            if let Some(d) = self.first_report_day(Some(first_day))? {
                info!(
                    day = d,
                    "reports before the first day rolled up: closing from the first of them"
                );
                first_day = d;
            }
        }
        let last_closed = markers
            .iter()
            .rev()
            .find(|(_, m)| m.closed)
            .map(|(d, _)| *d);
        let mut start = last_closed.map_or(first_day, |d| d + 1);
        if let Some(f) = from {
            start = start.min(f.max(first_day));
        } else if let Some(last) = last_closed {
            let checked = (last - CHECKED_DAYS + 1).max(first_day);
            if let Some(late) = self.changed_since_closed(&markers, checked, last)? {
                info!(
                    day = late,
                    "reports arrived for a closed day: closing again from it"
                );
                report.late_from = Some(late);
                start = start.min(late);
            }
        }
        let stamp = markers
            .values()
            .map(|m| m.computed_at.saturating_add(1))
            .max()
            .unwrap_or(0)
            .max(now_nanos());
        let mut base = self.base_before(start, first_day, &markers)?;
        let start = base.day.map_or(first_day, |d| d + 1);
        report.from_start = from.map(|_| start);
        if start <= closable {
            self.close(&mut base, start, closable, stamp)?;
            report.closed = Some((start, closable));
            self.drop_old_states(closable)?;
        }
        // The open days go into the states on trial: undone after, what
        // the next run starts from is the closed days' states (no copy of
        // every state, which at a million nodes is a few hundred MB).
        let open_from = (closable + 1).max(first_day);
        let mut refreshed = Ok(());
        if open_from <= today {
            let versions = base.versions.clone();
            base.states.begin_trial();
            refreshed = self.refresh_open(&mut base, open_from, today, &markers, stamp);
            base.states.rollback();
            base.versions = versions;
            report.open = Some((open_from, today));
        }
        self.base = Some(base);
        refreshed.map(|()| report)
    }

    /// The first receive day of any report (before `before`), if there
    /// is any.
    fn first_report_day(&self, before: Option<i64>) -> Result<Option<i64>, ClickHouseError> {
        let filter = before.map_or(String::new(), |d| format!(" WHERE day < {d}"));
        let rows = self.client.query(&format!(
            "SELECT count(), min(day) FROM {}.reports{filter}",
            self.db()
        ))?;
        match rows.first() {
            Some(r) if field::<u64>(r, 0)? > 0 => Ok(Some(field(r, 1)?)),
            _ => Ok(None),
        }
    }

    /// Distinct report ids and deliveries received on each day of
    /// `first..=last` that has any. Ids are counted by their 64-bit hash:
    /// a set of numbers instead of strings, a fraction of the memory at a
    /// million reports a day (a collision only hides one late report).
    /// Counts equal those of earlier versions, which counted the ids.
    fn fingerprints(
        &self,
        first: i64,
        last: i64,
    ) -> Result<BTreeMap<i64, (u64, u64)>, ClickHouseError> {
        let mut out = BTreeMap::new();
        self.client.query_each(
            &format!(
                "SELECT day, uniqExact(sipHash64(report_id)), count() FROM {}.reports
                 WHERE day BETWEEN {first} AND {last} GROUP BY day",
                self.db()
            ),
            |r| {
                out.insert(num(r, 0)?, (num(r, 1)?, num(r, 2)?));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The first closed day of `first..=last` whose raw rows changed since
    /// it was closed: other report ids, or more deliveries (a merge only
    /// ever removes copies).
    fn changed_since_closed(
        &self,
        markers: &BTreeMap<i64, Marker>,
        first: i64,
        last: i64,
    ) -> Result<Option<i64>, ClickHouseError> {
        let now = self.fingerprints(first, last)?;
        Ok((first..=last).find(|day| {
            let (reports, rows) = now.get(day).copied().unwrap_or((0, 0));
            markers
                .get(day)
                .is_none_or(|m| m.reports != reports || rows > m.rows)
        }))
    }

    /// Node states as of the closed day before `start` (or an earlier
    /// one, when that day's were not kept: closing then starts after it),
    /// from the last run's if they are still current.
    fn base_before(
        &mut self,
        start: i64,
        first_day: i64,
        markers: &BTreeMap<i64, Marker>,
    ) -> Result<Base, ClickHouseError> {
        let empty = Base {
            day: None,
            stamp: 0,
            states: FleetStates::new(),
            versions: HashSet::new(),
        };
        if start <= first_day {
            return Ok(empty);
        }
        if let Some(b) = self.base.take() {
            let current = b.day == Some(start - 1)
                && markers
                    .get(&(start - 1))
                    .is_some_and(|m| m.closed && m.computed_at == b.stamp);
            if current {
                return Ok(b);
            }
        }
        let kept = self.kept_states()?;
        let mut candidates = markers
            .range(..start)
            .rev()
            .filter(|(_, m)| m.closed && kept.contains(&m.state_day));
        // The latest kept states that read back whole: a count that
        // differs from the one saved (an insert cut short, a partition
        // dropped or merged away by hand) sends the close further back.
        let (day, marker, states) = loop {
            let Some((&day, marker)) = candidates.next() else {
                info!("no node states kept before day {start}: closing again from the first day");
                return Ok(empty);
            };
            let states = self.restore_states(marker.state_day)?;
            let n = i64::try_from(states.len()).unwrap_or(i64::MAX);
            if marker.nodes >= 0 && marker.nodes != n {
                warn!(
                    day,
                    saved = marker.nodes,
                    read = n,
                    "node states read back differ in count from those saved: closing again from an earlier day"
                );
                continue;
            }
            debug!(day, nodes = n, "node states read");
            break (day, *marker, states);
        };
        if day < start - 1 {
            info!(
                day,
                "node states are kept from this day on: closing again from the day after it"
            );
        }
        let mut versions = HashSet::new();
        self.client.query_each(
            &format!(
                "SELECT zone, version, min(first_day) FROM {}.versions GROUP BY zone, version",
                self.db()
            ),
            |r| {
                if num::<i64>(r, 2)? <= day {
                    versions.insert((str_at(r, 0)?.to_string(), str_at(r, 1)?.to_string()));
                }
                Ok(())
            },
        )?;
        Ok(Base {
            day: Some(day),
            stamp: marker.computed_at,
            states,
            versions,
        })
    }

    /// The node states saved as of `day`.
    fn restore_states(&self, day: i64) -> Result<FleetStates, ClickHouseError> {
        let mut states = FleetStates::new();
        self.client.query_each(
            &format!(
                "SELECT zone, cluster, node, last_day, last_at, version, status
                 FROM {}.node_state FINAL WHERE as_of = {day}",
                self.db()
            ),
            |r| {
                states.restore(&StoredState {
                    zone: str_at(r, 0)?,
                    cluster: id16(str_at(r, 1)?)?,
                    node: id16(str_at(r, 2)?)?,
                    last_day: num(r, 3)?,
                    last_at: num(r, 4)?,
                    version: str_at(r, 5)?,
                    status: num(r, 6)?,
                });
                Ok(())
            },
        )?;
        Ok(states)
    }

    /// The days whose node states `node_state` holds.
    fn kept_states(&self) -> Result<BTreeSet<i64>, ClickHouseError> {
        let mut out = BTreeSet::new();
        self.client.query_each(
            &format!("SELECT DISTINCT as_of FROM {}.node_state", self.db()),
            |r| {
                out.insert(num(r, 0)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Closes `first..=last`, in chunks of days, renewing the lease
    /// between days.
    fn close(
        &mut self,
        base: &mut Base,
        first: i64,
        last: i64,
        stamp: u64,
    ) -> Result<(), ClickHouseError> {
        let prints = self.fingerprints(first, last)?;
        let mut day = first;
        while day <= last {
            let mut end = day;
            let mut rows = prints.get(&day).map_or(0, |p| p.1);
            while end < last && end - day + 1 < CHUNK_DAYS {
                let next = prints.get(&(end + 1)).map_or(0, |p| p.1);
                if rows + next > CHUNK_ROWS {
                    break;
                }
                rows += next;
                end += 1;
            }
            let mut days = self.node_days(day, end)?;
            let stored = self.stored(day, end)?;
            let mut inserts = Inserts::default();
            for d in day..=end {
                self.lease.keep()?;
                self.fold_day(
                    base,
                    d,
                    days.remove(&d).unwrap_or_default(),
                    &stored,
                    stamp,
                    &mut inserts,
                );
                let keep = d > last - KEEP_STATE_DAYS;
                if keep {
                    self.save_states(&base.states, d, stamp)?;
                }
                let (reports, rows) = prints.get(&d).copied().unwrap_or((0, 0));
                inserts.push(
                    "rollup_days",
                    &MarkerRow {
                        day: d,
                        closed: 1,
                        reports,
                        rows,
                        state_day: if keep { d } else { -1 },
                        computed_at: stamp,
                        nodes: if keep {
                            i64::try_from(base.states.len()).unwrap_or(i64::MAX)
                        } else {
                            -1
                        },
                    },
                );
            }
            inserts.send(&self.client, "rollup_days")?;
            debug!(first = day, last = end, "days closed");
            base.day = Some(end);
            base.stamp = stamp;
            day = end + 1;
        }
        Ok(())
    }

    /// Computes the open days `first..=last` again from the closed days'
    /// states (which it changes: the caller undoes that).
    fn refresh_open(
        &self,
        base: &mut Base,
        first: i64,
        last: i64,
        markers: &BTreeMap<i64, Marker>,
        stamp: u64,
    ) -> Result<(), ClickHouseError> {
        let mut days = self.node_days(first, last)?;
        let stored = self.stored(first, last)?;
        let mut inserts = Inserts::default();
        for d in first..=last {
            if markers.get(&d).is_some_and(|m| m.closed) {
                // Closed by a server whose clock is ahead: its rows stay.
                let mut ignored = Inserts::default();
                let rows = days.remove(&d).unwrap_or_default();
                self.fold_day(base, d, rows, &stored, stamp, &mut ignored);
                continue;
            }
            let rows = days.remove(&d).unwrap_or_default();
            self.fold_day(base, d, rows, &stored, stamp, &mut inserts);
            inserts.push(
                "rollup_days",
                &MarkerRow {
                    day: d,
                    closed: 0,
                    reports: 0,
                    rows: 0,
                    state_day: -1,
                    computed_at: stamp,
                    nodes: -1,
                },
            );
        }
        inserts.send(&self.client, "rollup_days")
    }

    /// Each day's node-days in `first..=last`, every report once, dated and
    /// answered as its first delivery.
    fn node_days(
        &self,
        first: i64,
        last: i64,
    ) -> Result<BTreeMap<i64, Vec<NodeDay>>, ClickHouseError> {
        let mut out: BTreeMap<i64, Vec<NodeDay>> = BTreeMap::new();
        let mut texts: HashMap<String, Rc<str>> = HashMap::new();
        let mut intern = |s: &str| -> Rc<str> {
            if let Some(t) = texts.get(s) {
                return t.clone();
            }
            let t: Rc<str> = Rc::from(s);
            texts.insert(s.to_string(), t.clone());
            t
        };
        self.client.query_each(
            &format!(
                "SELECT d, zone, anon, cluster, node, v, count(), max(at), argMax(st, at)
                 FROM ({} HAVING d BETWEEN {first} AND {last})
                 GROUP BY d, zone, anon, cluster, node, v",
                first_deliveries(
                    &format!("{}.reports", self.db()),
                    &format!(
                        "day BETWEEN {} AND {}",
                        first - COPY_SPAN_DAYS,
                        last + COPY_SPAN_DAYS
                    )
                )
            ),
            |r| {
                let anonymous = num::<u8>(r, 2)? == 1;
                let (cluster, node) = if anonymous {
                    ([0; 16], [0; 16])
                } else {
                    (id16(str_at(r, 3)?)?, id16(str_at(r, 4)?)?)
                };
                out.entry(num(r, 0)?).or_default().push(NodeDay {
                    zone: intern(str_at(r, 1)?),
                    anonymous,
                    cluster,
                    node,
                    version: intern(str_at(r, 5)?),
                    reports: num(r, 6)?,
                    last_at: num(r, 7)?,
                    last_status: num(r, 8)?,
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The keys stored with counts for the days `first..=last`.
    fn stored(&self, first: i64, last: i64) -> Result<Stored, ClickHouseError> {
        let db = self.db();
        let mut out = Stored::default();
        let days = format!("WHERE day BETWEEN {first} AND {last}");
        self.client.query_each(
            &format!(
                "SELECT zone, day, window, version, nodes FROM {db}.snapshot_versions FINAL {days}"
            ),
            |r| {
                if num::<u64>(r, 4)? > 0 {
                    out.versions.insert((
                        str_at(r, 0)?.to_string(),
                        num(r, 1)?,
                        num(r, 2)?,
                        str_at(r, 3)?.to_string(),
                    ));
                }
                Ok(())
            },
        )?;
        self.client.query_each(
            &format!(
                "SELECT zone, day, age, clusters, nodes FROM {db}.snapshot_activity FINAL {days}"
            ),
            |r| {
                if num::<u64>(r, 3)? > 0 || num::<u64>(r, 4)? > 0 {
                    out.activity
                        .insert((str_at(r, 0)?.to_string(), num(r, 1)?, num(r, 2)?));
                }
                Ok(())
            },
        )?;
        self.client.query_each(
            &format!("SELECT zone, day, version, reports FROM {db}.version_days FINAL {days}"),
            |r| {
                if num::<u64>(r, 3)? > 0 {
                    out.version_days.insert((
                        str_at(r, 0)?.to_string(),
                        num(r, 1)?,
                        str_at(r, 2)?.to_string(),
                    ));
                }
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Takes one day's node-days into the states, and adds the day's rows
    /// (version days, snapshot, first days) to `inserts`.
    fn fold_day(
        &self,
        base: &mut Base,
        day: i64,
        mut rows: Vec<NodeDay>,
        stored: &Stored,
        stamp: u64,
        inserts: &mut Inserts,
    ) {
        // Version days: every report; the status of the latest identified
        // one, else of the latest anonymous one, as SQLite's writer keeps
        // it (store::ingest: each anonymous report replaces the status
        // while no identified one has set `last_at`).
        struct Tally {
            reports: u64,
            anonymous: u64,
            last_at: i64,
            status: u8,
            last_anon_at: i64,
        }
        let mut tallies: BTreeMap<(Rc<str>, Rc<str>), Tally> = BTreeMap::new();
        let mut new_clusters: BTreeSet<(Rc<str>, [u8; 16])> = BTreeSet::new();
        for r in &rows {
            let t = tallies
                .entry((r.zone.clone(), r.version.clone()))
                .or_insert(Tally {
                    reports: 0,
                    anonymous: 0,
                    last_at: -1,
                    status: r.last_status,
                    last_anon_at: i64::MIN,
                });
            t.reports += r.reports;
            if r.anonymous {
                t.anonymous += r.reports;
                if t.last_at < 0 && r.last_at >= t.last_anon_at {
                    t.last_anon_at = r.last_at;
                    t.status = r.last_status;
                }
            } else {
                if r.last_at > t.last_at {
                    t.last_at = r.last_at;
                    t.status = r.last_status;
                }
                if !base.states.knows_cluster(&r.zone, r.cluster) {
                    new_clusters.insert((r.zone.clone(), r.cluster));
                }
            }
        }
        for ((zone, version), t) in &tallies {
            inserts.push(
                "version_days",
                &VersionDayRow {
                    zone,
                    day,
                    version,
                    reports: t.reports,
                    anonymous: t.anonymous,
                    last_at: t.last_at,
                    status: t.status,
                    computed_at: stamp,
                },
            );
            if base
                .versions
                .insert((zone.to_string(), version.to_string()))
            {
                inserts.push(
                    "versions",
                    &FirstDayRow {
                        zone,
                        cluster: None,
                        version: Some(version),
                        first_day: day,
                        keep: keep_earliest(day),
                    },
                );
            }
        }
        for (zone, _, v) in stored.version_days.iter().filter(|k| k.1 == day) {
            if !tallies.contains_key(&(Rc::from(zone.as_str()), Rc::from(v.as_str()))) {
                inserts.push(
                    "version_days",
                    &VersionDayRow {
                        zone,
                        day,
                        version: v,
                        reports: 0,
                        anonymous: 0,
                        last_at: -1,
                        status: 0,
                        computed_at: stamp,
                    },
                );
            }
        }
        for (zone, cluster) in &new_clusters {
            inserts.push(
                "clusters",
                &FirstDayRow {
                    zone,
                    cluster: Some(HEXLOWER.encode(cluster)),
                    version: None,
                    first_day: day,
                    keep: keep_earliest(day),
                },
            );
        }
        // The node states: the day's latest reports last.
        rows.retain(|r| !r.anonymous);
        rows.sort_by_key(|r| r.last_at);
        for r in &rows {
            base.states.observe(&StoredState {
                zone: &r.zone,
                cluster: r.cluster,
                node: r.node,
                last_day: day,
                last_at: r.last_at,
                version: &r.version,
                status: r.last_status,
            });
        }
        let snaps = base.states.snapshots(day);
        snapshot_rows(&snaps, day, stored, stamp, inserts);
    }

    /// Saves the node states as of `day` (a closed day) in `node_state`.
    fn save_states(
        &self,
        states: &FleetStates,
        day: i64,
        stamp: u64,
    ) -> Result<(), ClickHouseError> {
        let mut body = Vec::with_capacity(states.len().min(self.state_chunk_rows) * 200);
        let mut rows = 0;
        for s in states.iter() {
            let row = NodeStateRow {
                as_of: day,
                zone: s.zone,
                cluster: HEXLOWER.encode(&s.cluster),
                node: HEXLOWER.encode(&s.node),
                last_day: s.last_day,
                last_at: s.last_at,
                version: s.version,
                status: s.status,
                computed_at: stamp,
            };
            serde_json::to_writer(&mut body, &row).map_err(serialize)?;
            body.push(b'\n');
            rows += 1;
            if rows == self.state_chunk_rows {
                insert(&self.client, "node_state", &body)?;
                body.clear();
                rows = 0;
            }
        }
        if !body.is_empty() {
            insert(&self.client, "node_state", &body)?;
        }
        Ok(())
    }

    /// Drops the node states of days before the kept ones, on every node.
    fn drop_old_states(&self, last_closed: i64) -> Result<(), ClickHouseError> {
        let oldest_kept = last_closed - KEEP_STATE_DAYS + 1;
        for day in self.kept_states()?.range(..oldest_kept) {
            for (client, table) in schema::local_tables(&self.client, &self.topology, NODE_STATE) {
                client.execute(&format!("ALTER TABLE {table} DROP PARTITION {day}"))?;
            }
        }
        Ok(())
    }
}

/// A day's snapshot rows (and zero rows for stored keys it lacks).
fn snapshot_rows(
    snaps: &BTreeMap<String, Snapshot>,
    day: i64,
    stored: &Stored,
    stamp: u64,
    inserts: &mut Inserts,
) {
    let mut versions: HashSet<(&str, i64, &str)> = HashSet::new();
    let mut ages: HashSet<(&str, i64)> = HashSet::new();
    for (zone, snap) in snaps {
        for (age, (clusters, nodes)) in snap.activity.iter().enumerate() {
            if *clusters > 0 || *nodes > 0 {
                ages.insert((zone.as_str(), age as i64));
                inserts.push(
                    "snapshot_activity",
                    &SnapshotActivityRow {
                        zone,
                        day,
                        age: age as i64,
                        clusters: *clusters,
                        nodes: *nodes,
                        computed_at: stamp,
                    },
                );
            }
        }
        for (window, figures) in snap.lengths.iter().zip(&snap.windows) {
            inserts.push(
                "snapshot_totals",
                &SnapshotTotalRow {
                    zone,
                    day,
                    window: *window,
                    mixed_clusters: figures.mixed_clusters,
                    insecure_clusters: figures.insecure_clusters,
                    insecure_nodes: figures.insecure_nodes,
                    computed_at: stamp,
                },
            );
            for (name, v) in &figures.versions {
                versions.insert((zone.as_str(), *window, name.as_str()));
                inserts.push(
                    "snapshot_versions",
                    &SnapshotVersionRow {
                        zone,
                        day,
                        window: *window,
                        version: name,
                        clusters: v.clusters,
                        share_mixed_bits: v.share_mixed.to_bits(),
                        nodes: v.nodes,
                        min_clusters: v.min_clusters,
                        computed_at: stamp,
                    },
                );
            }
        }
    }
    for (zone, d, window, version) in &stored.versions {
        if *d == day && !versions.contains(&(zone.as_str(), *window, version.as_str())) {
            inserts.push(
                "snapshot_versions",
                &SnapshotVersionRow {
                    zone,
                    day,
                    window: *window,
                    version,
                    clusters: 0,
                    share_mixed_bits: 0,
                    nodes: 0,
                    min_clusters: 0,
                    computed_at: stamp,
                },
            );
        }
    }
    for (zone, d, age) in &stored.activity {
        if *d == day && !ages.contains(&(zone.as_str(), *age)) {
            inserts.push(
                "snapshot_activity",
                &SnapshotActivityRow {
                    zone,
                    day,
                    age: *age,
                    clusters: 0,
                    nodes: 0,
                    computed_at: stamp,
                },
            );
        }
    }
}

/// Now in nanoseconds since 1970: a run's `computed_at`.
pub(crate) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_rows_are_errors_not_panics() {
        let row = ["20500", "vc.example.com"];
        assert_eq!(num::<i64>(&row, 0).unwrap(), 20_500);
        assert_eq!(str_at(&row, 1).unwrap(), "vc.example.com");
        assert!(str_at(&row, 2).is_err());
        assert!(num::<u64>(&row, 5).is_err());
        assert!(id16("abc").is_err());
    }
}
