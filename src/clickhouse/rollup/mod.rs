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

mod fold;
mod late;
mod markers;
mod rows;
mod snapshot_rows;
mod states;
mod stored;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use tracing::{debug, info};

use super::client::{one, ClickHouseError, Client};
use super::lease::Lease;
use super::schema::Topology;
use crate::clock::{day_of, Day};
use crate::fleet::FleetStates;
use markers::MarkerRow;
pub(crate) use markers::{markers, Marker};
use rows::Inserts;

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

impl Rollup {
    /// `grace_secs`: how long after midnight (UTC) the day before stays
    /// open (copies crossing midnight, shipping delay).
    /// The lease is taken as `vcheckd` with a 15-minute ttl: see
    /// [`with_lease`](Self::with_lease).
    #[must_use]
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
    #[must_use]
    pub fn with_state_chunk_rows(mut self, rows: usize) -> Self {
        self.state_chunk_rows = rows.max(1);
        self
    }

    /// Takes the lease as `server` (this name server's name; a random id
    /// is added per process), for `ttl` from each renewal: several runs'
    /// interval, so that a holder that stops is replaced soon.
    #[must_use]
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
    #[must_use]
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

    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    #[must_use]
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
            .max(crate::clock::now_nanos());
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
        /// The row of the query below.
        #[derive(serde::Deserialize)]
        struct First {
            reports: u64,
            first: i64,
        }
        let filter = before.map_or(String::new(), |d| format!(" WHERE day < {d}"));
        let row: First = one(self.client.rows(&format!(
            "SELECT count() AS reports, min(day) AS first FROM {}.reports{filter}",
            self.db()
        ))?)?;
        Ok((row.reports > 0).then_some(row.first))
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
            let mut days = self.node_days(Day(day), Day(end), base.states.interner())?;
            let stored = self.stored(day, end)?;
            let mut inserts = Inserts::default();
            for d in day..=end {
                self.lease.keep()?;
                self.fold_day(
                    base,
                    Day(d),
                    days.remove(&Day(d)).unwrap_or_default(),
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
        let mut days = self.node_days(Day(first), Day(last), base.states.interner())?;
        let stored = self.stored(first, last)?;
        let mut inserts = Inserts::default();
        for d in first..=last {
            let rows = days.remove(&Day(d)).unwrap_or_default();
            if markers.get(&d).is_some_and(|m| m.closed) {
                // Closed by a server whose clock is ahead: its rows stay.
                let mut ignored = Inserts::default();
                self.fold_day(base, Day(d), rows, &stored, stamp, &mut ignored);
                continue;
            }
            self.fold_day(base, Day(d), rows, &stored, stamp, &mut inserts);
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
}
