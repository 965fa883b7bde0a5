//! Taking a batch of received reports into the database, and closing days.
//!
//! Per report, one row: the raw report, keyed by client time and report id,
//! which is the deduplication (a second delivery of an id conflicts) and
//! lands near the end of the table (client times are close to now), plus an
//! append to the receive-time index. Per batch, a handful of aggregate rows
//! (per-version day totals, first days of versions and clusters).
//!
//! The per-node rollups are written when a day closes (the processor takes
//! in the first report of a later day): the writer keeps the open day's
//! node-days and node states in memory as it takes reports in (read from
//! the raw rows again after a restart), writes the node-days in key order,
//! folds them into each node's latest state, and computes the day's fleet
//! snapshot. That is one bulk pass a day instead of three random writes
//! per report, which is what lets one thread keep far ahead of the answer
//! path. Readers read the open day from the raw rows ([`open_states`]);
//! `node_latest` follows the closed days lazily ([`load_states`]).
//!
//! Everything happens in the caller's transaction: a batch, and a day
//! close, are in the database whole or not at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{ids_at, snapshot, BatchOutcome, ReceivedReport, StoreError};
use crate::clock::Day;
use crate::fleet::{
    FleetStates, Id, Interner, NodeDay, NodeDayKey, NodeKey, NodeLatest, ReportId, Text, VersionDay,
};
use crate::hint::Status;
use crate::protocol::Identity;

pub(crate) const SCHEMA: &str = r"
    CREATE TABLE reports_v3 (
        client_time INTEGER NOT NULL,          -- client clock, unix seconds
        report_id   BLOB    NOT NULL,          -- the frame nonce, 12 bytes
        zone        TEXT    NOT NULL,
        received_at INTEGER NOT NULL,          -- server clock, unix seconds
        key_id      INTEGER NOT NULL,
        cluster     BLOB,                      -- 16 bytes; NULL when withheld
        node        BLOB,                      -- 16 bytes; NULL when withheld
        version     TEXT    NOT NULL,
        flags       INTEGER NOT NULL,
        status      INTEGER NOT NULL,          -- the hint status answered
        duplicates  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (client_time, report_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO reports_v3
        SELECT client_time, report_id, zone, received_at, key_id,
               cluster, node, version, flags, status, duplicates
        FROM reports;
    DROP TABLE reports;
    ALTER TABLE reports_v3 RENAME TO reports;
    CREATE INDEX reports_received_at ON reports(received_at);

    CREATE TABLE version_days (
        day       INTEGER NOT NULL,
        zone      TEXT    NOT NULL,
        version   TEXT    NOT NULL,
        reports   INTEGER NOT NULL,   -- all reports, anonymous included
        anonymous INTEGER NOT NULL,
        last_at   INTEGER NOT NULL,   -- latest identified report; -1: none
        status    INTEGER NOT NULL,   -- answered to it (else to an anonymous one)
        PRIMARY KEY (day, zone, version)
    ) WITHOUT ROWID;
    INSERT INTO version_days (day, zone, version, reports, anonymous, last_at, status)
        SELECT day, zone, version, SUM(reports), 0, MAX(last_at), status
        FROM node_days GROUP BY day, zone, version;
    INSERT INTO version_days (day, zone, version, reports, anonymous, last_at, status)
        SELECT day, zone, version, reports, reports, -1, status FROM anon_days WHERE true
        ON CONFLICT (day, zone, version) DO UPDATE SET
            reports = reports + excluded.reports, anonymous = anonymous + excluded.anonymous;
    DROP TABLE anon_days;

    -- Each node's latest state as of the last closed day.
    CREATE TABLE node_latest (
        zone         TEXT    NOT NULL,
        cluster      BLOB    NOT NULL,
        node         BLOB    NOT NULL,
        last_day     INTEGER NOT NULL,
        last_at      INTEGER NOT NULL,
        version      TEXT    NOT NULL,
        status       INTEGER NOT NULL,
        prev_day     INTEGER,            -- latest state on an earlier day
        prev_version TEXT,
        prev_status  INTEGER,
        PRIMARY KEY (zone, cluster, node)
    ) WITHOUT ROWID;

    -- Where each journal consumer stands, committed with the rows it wrote.
    CREATE TABLE consumers (
        name     TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- The newest day a report was received on; days before it are closed.
    CREATE TABLE open_day (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        day INTEGER NOT NULL
    );
    -- Reports taken in for days long closed (history written into a
    -- database that already has later days): node states and snapshots
    -- from this day on are made again from the node-days.
    CREATE TABLE stale_from (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        day INTEGER NOT NULL
    );
";

/// Schema 4: `node_latest` may lag the closed days.
pub(crate) const SCHEMA_LAGGING_STATES: &str = r"
    -- Present when `node_latest` holds the node-days of the closed days up
    -- to `day` only: the later closed days' node-days are folded in when
    -- node states are loaded. Absent: it holds every closed day.
    CREATE TABLE IF NOT EXISTS node_latest_day (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        day INTEGER NOT NULL
    );
";

/// Closed days `node_latest` may lag behind before a day's close rewrites
/// it (else the writer rewrites it when it goes idle, or a bulk load ends):
/// rewriting every node's row costs about as much as closing the day, and
/// loading node states folds in at most this many days of node-days.
const STATES_LAG_DAYS: i64 = 7;

/// Per-batch aggregates, written once per key; keyed by what the batch
/// holds (no allocation per report).
#[derive(Default)]
struct Pending<'b> {
    version_days: HashMap<(Day, &'b str, &'b semver::Version), VersionDay>,
    /// (zone, cluster) -> (first day, last day)
    clusters: HashMap<(&'b str, [u8; 16]), (Day, Day)>,
    /// (zone, version) -> first day
    versions: HashMap<(&'b str, &'b semver::Version), Day>,
    /// Per receive day: (stored, duplicates), persisted as the day's
    /// counters in this same transaction, so they always equal the rows.
    counted: HashMap<Day, (u64, u64)>,
}

/// The open day (the newest receive day taken in), if any report was.
pub(crate) fn open_day(conn: &Connection) -> Result<Option<Day>, StoreError> {
    Ok(conn
        .query_row("SELECT day FROM open_day", [], |r| r.get(0))
        .optional()?)
}

/// Takes `batch` into the database, then closes every day before the
/// newest receive day seen. Returns what was stored and what was already
/// there.
pub(crate) fn apply(
    tx: &Transaction<'_>,
    batch: &[ReceivedReport],
    writer: &mut WriterState,
) -> Result<BatchOutcome, StoreError> {
    let mut outcome = BatchOutcome::default();
    let open = open_day(tx)?;
    let mut pending = Pending::default();
    let mut newest = open;
    let mut oldest: Option<Day> = None;
    let mut straggled = false;
    let mut late_days: BTreeSet<Day> = BTreeSet::new();
    // Stored reports with an identity: they move their node's state.
    let mut fresh: Vec<Fresh<'_>> = Vec::new();
    let mut insert = tx.prepare_cached(
        "INSERT INTO reports (client_time, report_id, zone, received_at, key_id,
                              cluster, node, version, flags, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (client_time, report_id) DO NOTHING",
    )?;
    let mut dup = tx.prepare_cached(
        "UPDATE reports SET duplicates = duplicates + 1 WHERE client_time = ?1 AND report_id = ?2",
    )?;
    let mut version_text: HashMap<&semver::Version, (String, Option<Text>)> = HashMap::new();
    for r in batch {
        let p = &r.report.payload;
        // Stored as i64: a client clock past 2^63 is nonsense, clamp it.
        let client_time = i64::try_from(p.timestamp).unwrap_or(i64::MAX);
        let (cluster, node) = match p.identity {
            Identity::Withheld => (None, None),
            Identity::Known { cluster, node } => (Some(cluster.0), Some(node.0)),
        };
        let (text, version) = version_text.entry(&p.version).or_insert_with(|| {
            let text = p.version.to_string();
            let interned = writer.interner.version(&text);
            (text, interned)
        });
        let zone = r.zone.as_str();
        let inserted = insert.execute(params![
            client_time,
            &r.report.id.0[..],
            zone,
            r.received_at,
            r.report.key_id.0,
            cluster.as_ref().map(|c| &c[..]),
            node.as_ref().map(|n| &n[..]),
            text.as_str(),
            p.flags(),
            r.status.code(),
        ])?;
        let day = Day::of(r.received_at);
        if inserted == 0 {
            dup.execute(params![client_time, &r.report.id.0[..]])?;
            outcome.duplicates += 1;
            pending.counted.entry(day).or_default().1 += 1;
            continue;
        }
        outcome.stored += 1;
        pending.counted.entry(day).or_default().0 += 1;
        match open {
            Some(o) if day == o - 1 => straggled = true,
            Some(o) if day < o => {
                outcome.late += 1;
                late_days.insert(day);
            }
            _ => {}
        }
        newest = Some(newest.map_or(day, |n| n.max(day)));
        oldest = Some(oldest.map_or(day, |o| o.min(day)));
        pending
            .version_days
            .entry((day, zone, &p.version))
            .or_insert_with(|| VersionDay::new(day, p.version.clone(), r.status))
            .take(1, cluster.is_some(), r.received_at, r.status);
        pending
            .versions
            .entry((zone, &p.version))
            .and_modify(|d| *d = (*d).min(day))
            .or_insert(day);
        let (Some(cluster), Some(node)) = (cluster, node) else {
            continue;
        };
        if let Some(version) = version {
            fresh.push(Fresh {
                report: r,
                cluster,
                node,
                version: version.clone(),
            });
        }
        pending
            .clusters
            .entry((zone, cluster))
            .and_modify(|(first, last)| {
                *first = (*first).min(day);
                *last = (*last).max(day);
            })
            .or_insert((day, day));
    }
    write_pending(tx, pending, writer)?;
    if let Some(newest) = newest {
        tx.execute(
            "INSERT INTO open_day (one, day) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET day = excluded.day",
            [newest],
        )?;
        match open {
            // The first reports ever: every day of the batch but its newest.
            None => close_days(tx, oldest.unwrap_or(newest), newest - 1, writer)?,
            Some(o) => {
                // A straggler of the day that just closed (stamped before
                // midnight, taken in after one stamped after it): that day
                // is closed again, now with it, also when the batch goes
                // on past the open day.
                if straggled {
                    close_days(tx, o - 1, o - 1, writer)?;
                }
                if newest > o {
                    // The day closing is closed from what the writer kept
                    // of it, this batch's reports of it included.
                    follow_open_day(tx, writer, o, &fresh, false)?;
                    close_days(tx, o, newest - 1, writer)?;
                }
            }
        }
        // A day newer than the open one has no stored reports but this
        // batch's.
        let new_day = open.is_none_or(|o| newest > o);
        follow_open_day(tx, writer, newest, &fresh, new_day)?;
    }
    if let Some(&first) = late_days.first() {
        for &day in &late_days {
            regroup_day(tx, day, &mut writer.interner)?;
        }
        tx.execute(
            "INSERT INTO stale_from (one, day) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET day = MIN(day, excluded.day)",
            [first],
        )?;
    }
    Ok(outcome)
}

/// A stored report with an identity (and a semver version), as the
/// writer's states take it.
struct Fresh<'b> {
    report: &'b ReceivedReport,
    cluster: [u8; 16],
    node: [u8; 16],
    version: Text,
}

/// Keeps the open day `day` current in the writer: its node-days and node
/// states. Taken from the raw rows when the writer holds another day (or
/// none: after a restart), unless `new_day` says that the day has no
/// stored reports but `fresh`'s; else moved by `fresh`'s reports of it.
fn follow_open_day(
    tx: &Transaction<'_>,
    writer: &mut WriterState,
    day: Day,
    fresh: &[Fresh<'_>],
    new_day: bool,
) -> Result<(), StoreError> {
    if writer.states.is_none() {
        writer.states = Some(load_states(tx, &mut writer.interner)?);
    }
    if new_day && writer.open.as_ref().is_none_or(|o| o.day != day) {
        writer.open = Some(OpenDay {
            day,
            nodes: BTreeMap::new(),
        });
    }
    let WriterState {
        interner,
        states,
        open,
        dirty,
        ..
    } = writer;
    let states = states.as_ref().unwrap_or_else(|| unreachable!());
    match open {
        Some(o) if o.day == day => {
            for f in fresh {
                let r = f.report;
                if Day::of(r.received_at) == day {
                    let key = interner.node(r.zone.as_str(), f.cluster, f.node);
                    o.take(
                        states,
                        key,
                        r.received_at,
                        &f.version,
                        r.status,
                        Some(&r.report.id.0),
                    );
                    *dirty = true;
                }
            }
        }
        _ => {
            let today = read_open_day(tx, day, states, interner)?;
            *open = Some(today);
            *dirty = true;
        }
    }
    Ok(())
}

/// One raw row of a day, as the writer groups it into node-days.
struct RawRow<'r> {
    at: i64,
    zone: &'r str,
    cluster: [u8; 16],
    node: [u8; 16],
    version: &'r str,
    status: Status,
    id: Option<ReportId>,
}

/// Hands each identified raw row received on the days `first..=last`
/// (of `zone` only, if given) to `each`, in receive order (an index
/// range). Rows whose status is no status code are skipped.
fn raw_rows(
    conn: &Connection,
    first: Day,
    last: Day,
    zone: Option<&str>,
    mut each: impl FnMut(RawRow<'_>),
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT received_at, zone, cluster, node, version, status, report_id
         FROM reports
         WHERE received_at >= ?1 * 86400 AND received_at < (?2 + 1) * 86400
           AND cluster IS NOT NULL AND (?3 IS NULL OR zone = ?3)
         ORDER BY received_at",
    )?;
    let mut rows = stmt.query(params![first, last, zone])?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get_ref(i).map(|v| v.as_str().unwrap_or_default());
        let Some((cluster, node)) = ids_at(r, 2)? else {
            continue;
        };
        let Some(status) = Status::from_code(r.get(5)?) else {
            continue;
        };
        each(RawRow {
            at: r.get(0)?,
            zone: text(1)?,
            cluster,
            node,
            version: text(4)?,
            status,
            id: ReportId::try_from(r.get_ref(6)?.as_blob().unwrap_or_default()).ok(),
        });
    }
    Ok(())
}

/// The open day as the writer keeps it, taken from its stored raw rows in
/// receive order, report by report as [`apply`] takes them: after a
/// restart, or when another connection wrote.
fn read_open_day(
    conn: &Connection,
    day: Day,
    states: &FleetStates,
    interner: &mut Interner,
) -> Result<OpenDay, StoreError> {
    let mut today = OpenDay {
        day,
        nodes: BTreeMap::new(),
    };
    raw_rows(conn, day, day, None, |r| {
        let Some(version) = interner.version(r.version) else {
            return;
        };
        let key = interner.node(r.zone, r.cluster, r.node);
        today.take(states, key, r.at, &version, r.status, r.id.as_ref());
    })?;
    Ok(today)
}

/// Writes the open day's snapshot from the writer's states, if it changed:
/// readers then take it as they take a closed day's.
pub(crate) fn write_open_snapshot(
    tx: &Transaction<'_>,
    writer: &mut WriterState,
) -> Result<(), StoreError> {
    let (Some(states), Some(open)) = (&writer.states, &writer.open) else {
        return Ok(());
    };
    if !writer.dirty {
        return Ok(());
    }
    snapshot::store(
        tx,
        open.day,
        &crate::fleet::snapshot::compute_all(merged(states, &open.nodes), open.day),
    )?;
    writer.dirty = false;
    Ok(())
}

/// Writes the batch's aggregates. A version day already stored takes the
/// batch's tally in as the counting model merges them.
fn write_pending(
    tx: &Transaction<'_>,
    pending: Pending<'_>,
    writer: &mut WriterState,
) -> Result<(), StoreError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut stored = tx.prepare_cached(
        "SELECT reports, anonymous, last_at, status FROM version_days
         WHERE day = ?1 AND zone = ?2 AND version = ?3",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT INTO version_days (day, zone, version, reports, anonymous, last_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (day, zone, version) DO UPDATE SET
            reports = excluded.reports, anonymous = excluded.anonymous,
            last_at = excluded.last_at, status = excluded.status",
    )?;
    for ((day, zone, version), batch) in pending.version_days {
        let text = version.to_string();
        let before = stored
            .query_row(params![day, zone, text], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, u8>(3)?,
                ))
            })
            .optional()?;
        let mut row = match before {
            Some((reports, anonymous, last_at, status)) => VersionDay {
                day,
                version: version.clone(),
                reports: u64::try_from(reports).unwrap_or(0),
                anonymous: u64::try_from(anonymous).unwrap_or(0),
                last_at: (last_at >= 0).then_some(last_at),
                status: Status::from_code(status).unwrap_or(batch.status),
            },
            None => VersionDay::new(day, version.clone(), batch.status),
        };
        row.merge(&batch);
        put.execute(params![
            day,
            zone,
            text,
            n(row.reports),
            n(row.anonymous),
            row.last_at.unwrap_or(-1),
            row.status.code()
        ])?;
    }
    let mut up = tx.prepare_cached(
        "INSERT INTO versions (zone, version, first_day) VALUES (?1, ?2, ?3)
         ON CONFLICT (zone, version) DO UPDATE SET first_day = MIN(first_day, excluded.first_day)",
    )?;
    for ((zone, version), day) in pending.versions {
        up.execute(params![zone, version.to_string(), day])?;
    }
    let mut up = tx.prepare_cached(
        "INSERT INTO clusters (zone, cluster, first_day, last_day) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (zone, cluster) DO UPDATE SET
            first_day = MIN(first_day, excluded.first_day),
            last_day  = MAX(last_day, excluded.last_day)",
    )?;
    for ((zone, cluster), (first, last)) in pending.clusters {
        // Most clusters report many times a day: written once a day each.
        let key = (writer.interner.zone(zone), Id::from(cluster));
        let known = writer
            .clusters
            .entry(key)
            .or_insert((Day(i64::MAX), Day(i64::MIN)));
        if known.0 <= first && last <= known.1 {
            continue;
        }
        up.execute(params![zone, &cluster[..], first, last])?;
        // The row now spans at least this (it may span more).
        *known = (known.0.min(first), known.1.max(last));
    }
    let mut up = tx.prepare_cached(
        "INSERT INTO counters (day, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (day, name) DO UPDATE SET value = value + excluded.value",
    )?;
    for (day, (stored, dups)) in pending.counted {
        for (name, count) in [("reports.stored", stored), ("reports.duplicate", dups)] {
            if count > 0 {
                up.execute(params![day, name, n(count)])?;
            }
        }
    }
    Ok(())
}

/// Node-days of the days `first..=last` grouped from the raw rows (sorted
/// by the receive time of their latest report), for the days not closed
/// yet and for closing a day. `zone`: only that zone. The rows are read in
/// receive-time order (an index range) and grouped here, which is several
/// times faster than SQL's sort-based GROUP BY. Texts are interned in
/// `interner`; rows whose version is not semver are left out.
pub(crate) fn group_node_days(
    conn: &Connection,
    first: Day,
    last: Day,
    zone: Option<&str>,
    interner: &mut Interner,
) -> Result<Vec<NodeDay>, StoreError> {
    let mut index: HashMap<(Day, NodeKey, Text), usize> = HashMap::new();
    let mut out: Vec<NodeDay> = Vec::new();
    raw_rows(conn, first, last, zone, |r| {
        let Some(version) = interner.version(r.version) else {
            return;
        };
        let node = interner.node(r.zone, r.cluster, r.node);
        let day = Day::of(r.at);
        match index.entry((day, node, version)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                out[*e.get()].take(r.at, r.status, r.id.as_ref());
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let (_, node, version) = e.key();
                let key = NodeDayKey {
                    day,
                    zone: &node.zone,
                    cluster: r.cluster,
                    node: r.node,
                };
                out.push(NodeDay::first(key, version, r.at, r.status, r.id.as_ref()));
                e.insert(out.len() - 1);
            }
        }
    })?;
    out.sort_by_key(|g| g.last_at);
    Ok(out)
}

/// A node that reported on the open day: its state with the day's reports
/// taken in, and the day's node-days (one per version; two on the day of
/// an upgrade).
struct OpenNode {
    latest: NodeLatest,
    days: Vec<NodeDay>,
}

/// The open day as the writer keeps it: its node-days are written from
/// here when it closes, instead of grouped again from the raw rows.
struct OpenDay {
    day: Day,
    nodes: BTreeMap<NodeKey, OpenNode>,
}

impl OpenDay {
    /// Takes in one stored report of the open day (its node's state as of
    /// the closed days is in `states`).
    fn take(
        &mut self,
        states: &FleetStates,
        key: NodeKey,
        at: i64,
        version: &Text,
        status: Status,
        id: Option<&ReportId>,
    ) {
        let day = self.day;
        let (zone, cluster, node) = (key.zone.clone(), key.cluster.bytes(), key.node.bytes());
        let n = match self.nodes.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let latest = states
                    .get(e.key())
                    .cloned()
                    .unwrap_or_else(|| NodeLatest::new(day, at, version, status));
                e.insert(OpenNode {
                    latest,
                    // Room for an upgrade without growing.
                    days: Vec::with_capacity(1),
                })
            }
        };
        n.latest.observe(day, at, version, status);
        if let Some(d) = n.days.iter_mut().find(|d| d.version == *version) {
            d.take(at, status, id)
        } else {
            let key = NodeDayKey {
                day,
                zone: &zone,
                cluster,
                node,
            };
            n.days.push(NodeDay::first(key, version, at, status, id));
        }
    }
}

/// What the one writer keeps between commits, so that neither a day's close
/// nor the open day's snapshot reads every node's row again. Emptied when a
/// commit fails (it may be ahead of the database); rebuilt from the tables.
#[derive(Default)]
pub(crate) struct WriterState {
    interner: Interner,
    /// Node states as of the last closed day.
    states: Option<FleetStates>,
    /// The open day's node-days and node states.
    open: Option<OpenDay>,
    /// The open day changed since its snapshot was last written.
    dirty: bool,
    /// Per (zone, cluster), days the `clusters` row is known to span: a
    /// batch within them writes nothing.
    clusters: HashMap<(Text, Id), (Day, Day)>,
}

/// Node states with the open day's folded in, in key order: a merge of the
/// two sorted maps.
fn merged<'a>(
    states: &'a FleetStates,
    open: &'a BTreeMap<NodeKey, OpenNode>,
) -> impl Iterator<Item = (&'a NodeKey, &'a NodeLatest)> {
    let mut a = states.nodes().peekable();
    let mut b = open.iter().map(|(k, n)| (k, &n.latest)).peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
            std::cmp::Ordering::Less => a.next(),
            std::cmp::Ordering::Greater => b.next(),
            std::cmp::Ordering::Equal => {
                a.next();
                b.next()
            }
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// Folds node-days (latest last) into node states.
fn fold(states: &mut FleetStates, rows: &[NodeDay]) {
    for r in rows {
        states.take(r);
    }
}

/// Every node's state as of the last closed day: `node_latest`, with the
/// node-days of the closed days it lags behind folded in.
fn load_states(conn: &Connection, interner: &mut Interner) -> Result<FleetStates, StoreError> {
    let mut states = snapshot::load_latest(conn, interner)?;
    if let (Some(from), Some(open)) = (states_lag(conn)?, open_day(conn)?) {
        let mut day = from + 1;
        while day < open {
            fold(&mut states, &stored_node_days(conn, day, interner)?);
            day += 1;
        }
    }
    Ok(states)
}

/// The last closed day `node_latest` holds, if it lags behind.
fn states_lag(conn: &Connection) -> Result<Option<Day>, StoreError> {
    Ok(conn
        .query_row("SELECT day FROM node_latest_day", [], |r| r.get(0))
        .optional()?)
}

/// Rewrites `node_latest` from the writer's node states (as of the last
/// closed day) if it lags behind.
pub(crate) fn write_lagging_states(
    tx: &Transaction<'_>,
    writer: &mut WriterState,
) -> Result<(), StoreError> {
    if states_lag(tx)?.is_none() {
        return Ok(());
    }
    if writer.states.is_none() {
        writer.states = Some(load_states(tx, &mut writer.interner)?);
    }
    if let Some(states) = &writer.states {
        rewrite_states(tx, states)?;
    }
    Ok(())
}

/// Replaces `node_latest` with `states`, written in key order, and marks
/// it current.
fn rewrite_states(tx: &Transaction<'_>, states: &FleetStates) -> Result<(), StoreError> {
    tx.execute("DELETE FROM node_latest", [])?;
    put_node_states(tx, states.nodes())?;
    tx.execute("DELETE FROM node_latest_day", [])?;
    Ok(())
}

/// Node states as of now: the closed days' states with the open day's raw
/// rows folded in.
pub(crate) fn open_states(conn: &Connection) -> Result<FleetStates, StoreError> {
    let mut interner = Interner::default();
    let mut states = load_states(conn, &mut interner)?;
    if let Some(open) = open_day(conn)? {
        fold(
            &mut states,
            &group_node_days(conn, open, open, None, &mut interner)?,
        );
    }
    Ok(states)
}

/// Closes days `first..=last`: writes each day's node-days (from what the
/// writer kept of the open day, else grouped from the raw rows), folds
/// them into the node states, and stores the day's snapshot. The writer's
/// node states are loaded when it has none; it is left without them if
/// this fails, since the transaction will not commit.
pub(crate) fn close_days(
    tx: &Transaction<'_>,
    first: Day,
    last: Day,
    writer: &mut WriterState,
) -> Result<(), StoreError> {
    if first > last {
        return Ok(());
    }
    let mut states = match writer.states.take() {
        Some(states) => states,
        None => load_states(tx, &mut writer.interner)?,
    };
    let mut day = first;
    while day <= last {
        if let Some(open) = writer.open.take_if(|o| o.day == day) {
            put_node_days(
                tx,
                day,
                open.nodes.values().flat_map(|n| {
                    let mut days: Vec<&NodeDay> = n.days.iter().collect();
                    days.sort_by(|a, b| a.version.as_str().cmp(b.version.as_str()));
                    days
                }),
            )?;
            for node in open.nodes.into_values() {
                let mut days = node.days;
                days.sort_by_key(|d| d.last_at);
                fold(&mut states, &days);
            }
        } else {
            let rows = regroup_day(tx, day, &mut writer.interner)?;
            fold(&mut states, &rows);
        }
        snapshot::store(tx, day, &states.snapshots(day))?;
        day += 1;
    }
    // `node_latest` follows the closed days lazily (the node-days written
    // above are what it lags by).
    let held = states_lag(tx)?.unwrap_or(first - 1).min(first - 1);
    if last - held >= STATES_LAG_DAYS {
        rewrite_states(tx, &states)?;
    } else {
        tx.execute(
            "INSERT INTO node_latest_day (one, day) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET day = MIN(day, excluded.day)",
            [held],
        )?;
    }
    writer.states = Some(states);
    // The open day's snapshot starts from these states: a day closed
    // again (a straggler) changes it too.
    writer.dirty = true;
    Ok(())
}

/// Replaces the stored node-days of `day` with `rows`, given in key order
/// (sequential pages).
fn put_node_days<'a>(
    tx: &Transaction<'_>,
    day: Day,
    rows: impl Iterator<Item = &'a NodeDay>,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM node_days WHERE day = ?1", [day])?;
    let mut put = tx.prepare_cached(
        "INSERT INTO node_days (day, zone, cluster, node, version, status, last_at, reports, ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for r in rows {
        put.execute(params![
            r.day,
            r.zone.as_str(),
            &r.cluster[..],
            &r.node[..],
            r.version.as_str(),
            r.status.code(),
            r.last_at,
            i64::try_from(r.reports).unwrap_or(i64::MAX),
            r.ids.as_flattened()
        ])?;
    }
    Ok(())
}

/// A day's node-days grouped again from its raw rows and stored in place of
/// the old ones; returned in time order.
fn regroup_day(
    tx: &Transaction<'_>,
    day: Day,
    interner: &mut Interner,
) -> Result<Vec<NodeDay>, StoreError> {
    let rows = group_node_days(tx, day, day, None, interner)?;
    let mut by_key: Vec<&NodeDay> = rows.iter().collect();
    by_key.sort_by(|a, b| {
        (a.zone.as_str(), a.cluster, a.node, a.version.as_str()).cmp(&(
            b.zone.as_str(),
            b.cluster,
            b.node,
            b.version.as_str(),
        ))
    });
    put_node_days(tx, day, by_key.into_iter())?;
    Ok(rows)
}

/// Makes node states and snapshots again from the stored node-days, day by
/// day from the first, for the closed days before `open`: after history
/// was taken in for days long closed, and for the schema upgrade. Returns
/// the node states as of the last closed day.
fn replay(
    tx: &Transaction<'_>,
    open: Day,
    interner: &mut Interner,
) -> Result<FleetStates, StoreError> {
    let oldest: Option<Day> = tx.query_row("SELECT MIN(day) FROM node_days", [], |r| r.get(0))?;
    let mut states = FleetStates::new();
    let mut day = oldest.unwrap_or(open);
    while day < open {
        fold(&mut states, &stored_node_days(tx, day, interner)?);
        snapshot::store(tx, day, &states.snapshots(day))?;
        day += 1;
    }
    rewrite_states(tx, &states)?;
    tx.execute("DELETE FROM stale_from", [])?;
    Ok(states)
}

/// If history was taken in for days long closed, makes node states and
/// snapshots again (see [`replay`]) and resets what the writer kept.
pub(crate) fn repair_stale(
    tx: &Transaction<'_>,
    writer: &mut WriterState,
) -> Result<(), StoreError> {
    let stale: Option<Day> = tx
        .query_row("SELECT day FROM stale_from", [], |r| r.get(0))
        .optional()?;
    let (Some(_), Some(open)) = (stale, open_day(tx)?) else {
        return Ok(());
    };
    writer.states = Some(replay(tx, open, &mut writer.interner)?);
    writer.open = None;
    follow_open_day(tx, writer, open, &[], false)?;
    Ok(())
}

/// Writes node states to `node_latest` (inserted, or replacing the row).
fn put_node_states<'a>(
    tx: &Transaction<'_>,
    states: impl Iterator<Item = (&'a NodeKey, &'a NodeLatest)>,
) -> Result<(), StoreError> {
    let mut up = tx.prepare_cached(
        "INSERT INTO node_latest
            (zone, cluster, node, last_day, last_at, version, status, prev_day, prev_version, prev_status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (zone, cluster, node) DO UPDATE SET
            last_day = excluded.last_day, last_at = excluded.last_at,
            version = excluded.version, status = excluded.status,
            prev_day = excluded.prev_day, prev_version = excluded.prev_version,
            prev_status = excluded.prev_status",
    )?;
    for (key, l) in states {
        let prev = l.prev.as_ref();
        up.execute(params![
            key.zone.as_str(),
            &key.cluster.bytes()[..],
            &key.node.bytes()[..],
            l.last_day,
            l.last_at,
            l.version.as_str(),
            l.status.code(),
            prev.map(|p| p.day),
            prev.map(|p| p.version.as_str()),
            prev.map(|p| p.status.code()),
        ])?;
    }
    Ok(())
}

/// Backfill for the schema upgrade: node states and snapshots from the
/// node-day rollups, replayed day by day through the same code. The newest
/// day stays open: its node-days are regrouped from the raw rows when it
/// closes.
pub(crate) fn backfill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let newest: Option<Day> = tx.query_row("SELECT MAX(day) FROM node_days", [], |r| r.get(0))?;
    let Some(newest) = newest else {
        return Ok(());
    };
    replay(tx, newest, &mut Interner::default())?;
    tx.execute("INSERT INTO open_day (one, day) VALUES (1, ?1)", [newest])?;
    Ok(())
}

/// Stored node-days of the days `first..=last` (of `zone` only, if
/// given), in key order, with their ids if `with_ids`. Rows whose version
/// is not semver, or whose status is no status code, are left out.
pub(crate) fn read_node_days(
    conn: &Connection,
    first: Day,
    last: Day,
    zone: Option<&str>,
    with_ids: bool,
    interner: &mut Interner,
) -> Result<Vec<NodeDay>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, zone, cluster, node, version, status, last_at, reports,
                CASE WHEN ?4 THEN ids ELSE x'' END
         FROM node_days WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR zone = ?3)",
    )?;
    let mut rows = stmt.query(params![first, last, zone, with_ids])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get_ref(i).map(|v| v.as_str().unwrap_or_default());
        let Some((cluster, node)) = ids_at(r, 2)? else {
            continue;
        };
        let (Some(version), Some(status)) =
            (interner.version(text(4)?), Status::from_code(r.get(5)?))
        else {
            continue;
        };
        out.push(NodeDay {
            day: r.get(0)?,
            zone: interner.zone(text(1)?),
            cluster,
            node,
            version,
            status,
            last_at: r.get(6)?,
            reports: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
            ids: r
                .get_ref(8)?
                .as_blob()
                .unwrap_or_default()
                .chunks_exact(12)
                .filter_map(|c| ReportId::try_from(c).ok())
                .collect(),
        });
    }
    Ok(out)
}

/// A closed day's stored node-days, latest last.
fn stored_node_days(
    conn: &Connection,
    day: Day,
    interner: &mut Interner,
) -> Result<Vec<NodeDay>, StoreError> {
    let mut rows = read_node_days(conn, day, day, None, false, interner)?;
    rows.sort_by_key(|r| r.last_at);
    Ok(rows)
}
