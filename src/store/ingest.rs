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

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::keys::{ids_at, Id, Interner, NodeKey, Text};
use super::latest::NodeLatest;
use super::rollup::IDS_PER_NODE_DAY;
use super::{day_of, snapshot, BatchOutcome, ReceivedReport, StoreError};
use crate::protocol::Identity;

pub(crate) const SCHEMA: &str = r#"
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
"#;

/// Schema 4: `node_latest` may lag the closed days.
pub(crate) const SCHEMA_LAGGING_STATES: &str = r#"
    -- Present when `node_latest` holds the node-days of the closed days up
    -- to `day` only: the later closed days' node-days are folded in when
    -- node states are loaded. Absent: it holds every closed day.
    CREATE TABLE IF NOT EXISTS node_latest_day (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        day INTEGER NOT NULL
    );
"#;

/// Closed days `node_latest` may lag behind before a day's close rewrites
/// it (else the writer rewrites it when it goes idle, or a bulk load ends):
/// rewriting every node's row costs about as much as closing the day, and
/// loading node states folds in at most this many days of node-days.
const STATES_LAG_DAYS: i64 = 7;

/// One version's reports of one day in a batch.
struct VersionDay {
    reports: u64,
    anonymous: u64,
    /// Latest identified report; -1: none yet.
    last_at: i64,
    status: u8,
}

/// Per-batch aggregates, written once per key; keyed by what the batch
/// holds (no allocation per report).
#[derive(Default)]
struct Pending<'b> {
    version_days: HashMap<(i64, &'b str, &'b semver::Version), VersionDay>,
    /// (zone, cluster) -> (first_day, last_day)
    clusters: HashMap<(&'b str, [u8; 16]), (i64, i64)>,
    /// (zone, version) -> first_day
    versions: HashMap<(&'b str, &'b semver::Version), i64>,
    /// Per receive day: (stored, duplicates), persisted as the day's
    /// counters in this same transaction, so they always equal the rows.
    counted: HashMap<i64, (u64, u64)>,
}

/// The open day (the newest receive day taken in), if any report was.
pub(crate) fn open_day(conn: &Connection) -> Result<Option<i64>, StoreError> {
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
    let mut oldest: Option<i64> = None;
    let mut straggled = false;
    let mut late_days: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
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
    let mut version_text: HashMap<&semver::Version, Text> = HashMap::new();
    for r in batch {
        let p = &r.report.payload;
        // Stored as i64: a client clock past 2^63 is nonsense, clamp it.
        let client_time = i64::try_from(p.timestamp).unwrap_or(i64::MAX);
        let (cluster, node) = match p.identity {
            Identity::Withheld => (None, None),
            Identity::Known { cluster, node } => (Some(cluster.0), Some(node.0)),
        };
        let version = version_text
            .entry(&p.version)
            .or_insert_with(|| writer.interner.version(&p.version.to_string()));
        let zone = r.zone.as_str();
        let inserted = insert.execute(params![
            client_time,
            &r.report.id.0[..],
            zone,
            r.received_at,
            r.report.key_id.0,
            cluster.as_ref().map(|c| &c[..]),
            node.as_ref().map(|n| &n[..]),
            version.as_str(),
            p.flags(),
            r.status.code(),
        ])?;
        let day = day_of(r.received_at);
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
        let status = r.status.code();
        let vd = pending
            .version_days
            .entry((day, zone, &p.version))
            .or_insert(VersionDay {
                reports: 0,
                anonymous: 0,
                last_at: -1,
                status,
            });
        vd.reports += 1;
        pending
            .versions
            .entry((zone, &p.version))
            .and_modify(|d| *d = (*d).min(day))
            .or_insert(day);
        let (Some(cluster), Some(node)) = (cluster, node) else {
            vd.anonymous += 1;
            if vd.last_at < 0 {
                vd.status = status;
            }
            continue;
        };
        if r.received_at >= vd.last_at {
            vd.last_at = r.received_at;
            vd.status = status;
        }
        fresh.push(Fresh {
            report: r,
            cluster,
            node,
            version: version.clone(),
        });
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
            Some(o) if newest > o => {
                // The day closing is closed from what the writer kept of
                // it, this batch's reports of it included.
                follow_open_day(tx, writer, o, &fresh, false)?;
                close_days(tx, o, newest - 1, writer)?;
            }
            // A straggler of the day that just closed (stamped before
            // midnight, taken in after one stamped after it): that day is
            // closed again, now with it.
            Some(o) if straggled => close_days(tx, o - 1, o - 1, writer)?,
            _ => {}
        }
        // A day newer than the open one has no stored reports but this
        // batch's.
        let new_day = open.is_none_or(|o| newest > o);
        follow_open_day(tx, writer, newest, &fresh, new_day)?;
    }
    if let Some(&first) = late_days.first() {
        for &day in &late_days {
            regroup_day(tx, day)?;
        }
        tx.execute(
            "INSERT INTO stale_from (one, day) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET day = MIN(day, excluded.day)",
            [first],
        )?;
    }
    Ok(outcome)
}

/// A stored report with an identity, as the writer's states take it.
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
    day: i64,
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
                if day_of(f.report.received_at) == day {
                    let key = interner.node(f.report.zone.as_str(), f.cluster, f.node);
                    let r = f.report;
                    o.take(
                        states,
                        key,
                        r.received_at,
                        &f.version,
                        r.status.code(),
                        &r.report.id.0,
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

/// The open day as the writer keeps it, taken from its stored raw rows in
/// receive order, report by report as [`apply`] takes them: after a
/// restart, or when another connection wrote.
fn read_open_day(
    conn: &Connection,
    day: i64,
    states: &States,
    interner: &mut Interner,
) -> Result<OpenDay, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT received_at, zone, cluster, node, version, status, report_id
         FROM reports
         WHERE received_at >= ?1 * 86400 AND received_at < (?1 + 1) * 86400
           AND cluster IS NOT NULL
         ORDER BY received_at",
    )?;
    let mut rows = stmt.query([day])?;
    let mut today = OpenDay {
        day,
        nodes: BTreeMap::new(),
    };
    let mut versions = HashMap::new();
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get_ref(i).map(|v| v.as_str().unwrap_or_default());
        let Some((cluster, node)) = ids_at(r, 2)? else {
            continue;
        };
        let Some(version) = parsed_version(&mut versions, interner, text(4)?) else {
            continue;
        };
        let key = interner.node(text(1)?, cluster, node);
        today.take(
            states,
            key,
            r.get(0)?,
            &version,
            r.get(5)?,
            r.get_ref(6)?.as_blob().unwrap_or_default(),
        );
    }
    Ok(today)
}

/// The interned text of a stored version, if it parses (rows whose text no
/// longer does are left out of node states, as they always were).
fn parsed_version(
    cache: &mut HashMap<String, Option<Text>>,
    interner: &mut Interner,
    text: &str,
) -> Option<Text> {
    if let Some(v) = cache.get(text) {
        return v.clone();
    }
    let v = semver::Version::parse(text)
        .ok()
        .map(|_| interner.version(text));
    cache.insert(text.to_string(), v.clone());
    v
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
        &snapshot::compute_all(merged(states, &open.nodes), open.day),
    )?;
    writer.dirty = false;
    Ok(())
}

/// Writes the batch's aggregates.
fn write_pending(
    tx: &Transaction<'_>,
    pending: Pending<'_>,
    writer: &mut WriterState,
) -> Result<(), StoreError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut up = tx.prepare_cached(
        "INSERT INTO version_days (day, zone, version, reports, anonymous, last_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (day, zone, version) DO UPDATE SET
            reports   = reports + excluded.reports,
            anonymous = anonymous + excluded.anonymous,
            status    = CASE WHEN excluded.last_at >= last_at THEN excluded.status ELSE status END,
            last_at   = MAX(last_at, excluded.last_at)",
    )?;
    for ((day, zone, version), v) in pending.version_days {
        up.execute(params![
            day,
            zone,
            version.to_string(),
            n(v.reports),
            n(v.anonymous),
            v.last_at,
            v.status
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
        let known = writer.clusters.entry(key).or_insert((i64::MAX, i64::MIN));
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

/// One node's reports of one version on one day, grouped from raw rows.
pub(crate) struct GroupedNodeDay {
    pub day: i64,
    pub zone: String,
    pub cluster: [u8; 16],
    pub node: [u8; 16],
    pub version: String,
    pub status: u8,
    pub last_at: i64,
    pub reports: i64,
    pub ids: Vec<u8>,
}

/// A node-day's key: day, zone, cluster, node, version.
type NodeDayKey = (i64, String, [u8; 16], [u8; 16], String);

/// Node-days of the days `first..=last` grouped from the raw rows (sorted
/// by the receive time of their latest report), for the days not closed
/// yet and for closing a day. `zone`: only that zone. The rows are read in
/// receive-time order (an index range) and grouped here, which is several
/// times faster than SQL's sort-based GROUP BY.
pub(crate) fn group_node_days(
    conn: &Connection,
    first: i64,
    last: i64,
    zone: Option<&str>,
) -> Result<Vec<GroupedNodeDay>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT received_at, zone, cluster, node, version, status, report_id
         FROM reports
         WHERE received_at >= ?1 * 86400 AND received_at < (?2 + 1) * 86400
           AND cluster IS NOT NULL AND (?3 IS NULL OR zone = ?3)
         ORDER BY received_at",
    )?;
    let mut rows = stmt.query(params![first, last, zone])?;
    let mut index: HashMap<NodeDayKey, usize> = HashMap::new();
    let mut out: Vec<GroupedNodeDay> = Vec::new();
    while let Some(r) = rows.next()? {
        let at: i64 = r.get(0)?;
        let Some((cluster, node)) = ids_at(r, 2)? else {
            continue;
        };
        let key = (day_of(at), r.get(1)?, cluster, node, r.get(4)?);
        let status: u8 = r.get(5)?;
        let id = r.get_ref(6)?.as_blob().unwrap_or_default();
        match index.get(&key) {
            Some(&i) => {
                let g = &mut out[i];
                // Rows come in receive order: the later one is the latest.
                g.last_at = at;
                g.status = status;
                g.reports += 1;
                if g.ids.len() < IDS_PER_NODE_DAY * 12 {
                    g.ids.extend_from_slice(id);
                }
            }
            None => {
                index.insert(key.clone(), out.len());
                out.push(GroupedNodeDay {
                    day: key.0,
                    zone: key.1,
                    cluster,
                    node,
                    version: key.4,
                    status,
                    last_at: at,
                    reports: 1,
                    ids: id.to_vec(),
                });
            }
        }
    }
    out.sort_by_key(|g| g.last_at);
    Ok(out)
}

/// Every node's state, in key order (zone, cluster, node): the order
/// snapshots take clusters in.
pub(crate) type States = BTreeMap<NodeKey, NodeLatest>;

/// One node's reports of one version on the open day, as taken in.
struct OpenNodeDay {
    version: Text,
    status: u8,
    last_at: i64,
    reports: i64,
    ids: Vec<u8>,
}

/// A node that reported on the open day: its state with the day's reports
/// taken in, and the day's node-days (one per version; two on the day of
/// an upgrade).
struct OpenNode {
    latest: NodeLatest,
    days: Vec<OpenNodeDay>,
}

/// The open day as the writer keeps it: its node-days are written from
/// here when it closes, instead of grouped again from the raw rows.
struct OpenDay {
    day: i64,
    nodes: BTreeMap<NodeKey, OpenNode>,
}

impl OpenDay {
    /// The node's entry, started from its state as of the closed days.
    fn node(
        &mut self,
        states: &States,
        key: NodeKey,
        make: impl FnOnce() -> NodeLatest,
    ) -> &mut OpenNode {
        match self.nodes.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let latest = states.get(e.key()).cloned().unwrap_or_else(make);
                e.insert(OpenNode {
                    latest,
                    days: Vec::new(),
                })
            }
        }
    }

    /// Takes in one stored report of the open day.
    fn take(
        &mut self,
        states: &States,
        key: NodeKey,
        at: i64,
        version: &Text,
        status: u8,
        id: &[u8],
    ) {
        let day = self.day;
        let n = self.node(states, key, || NodeLatest::new(day, at, version, status));
        n.latest.observe(day, at, version, status);
        match n.days.iter_mut().find(|d| d.version == *version) {
            Some(d) => {
                if at >= d.last_at {
                    d.last_at = at;
                    d.status = status;
                }
                d.reports += 1;
                if d.ids.len() < IDS_PER_NODE_DAY * 12 {
                    d.ids.extend_from_slice(id);
                }
            }
            None => n.days.push(OpenNodeDay {
                version: version.clone(),
                status,
                last_at: at,
                reports: 1,
                ids: {
                    // Room for a few reports without growing.
                    let mut ids = Vec::with_capacity(4 * id.len());
                    ids.extend_from_slice(id);
                    ids
                },
            }),
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
    states: Option<States>,
    /// The open day's node-days and node states.
    open: Option<OpenDay>,
    /// The open day changed since its snapshot was last written.
    dirty: bool,
    /// Per (zone, cluster), days the `clusters` row is known to span: a
    /// batch within them writes nothing.
    clusters: HashMap<(Text, Id), (i64, i64)>,
}

/// Node states with the open day's folded in, in key order: a merge of the
/// two sorted maps.
fn merged<'a>(
    states: &'a States,
    open: &'a BTreeMap<NodeKey, OpenNode>,
) -> impl Iterator<Item = (&'a NodeKey, &'a NodeLatest)> {
    let mut a = states.iter().peekable();
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

/// Folds grouped node-days (latest last) into node states.
fn fold(states: &mut States, rows: &[GroupedNodeDay], interner: &mut Interner) {
    let mut parsed = HashMap::new();
    for r in rows {
        let Some(version) = parsed_version(&mut parsed, interner, &r.version) else {
            continue;
        };
        let key = interner.node(&r.zone, r.cluster, r.node);
        observe(states, key, r.day, r.last_at, &version, r.status);
    }
}

/// Takes one node-day into a node's state.
fn observe(states: &mut States, key: NodeKey, day: i64, at: i64, version: &Text, status: u8) {
    match states.get_mut(&key) {
        Some(n) => n.observe(day, at, version, status),
        None => {
            states.insert(key, NodeLatest::new(day, at, version, status));
        }
    }
}

/// Every node's state as of the last closed day: `node_latest`, with the
/// node-days of the closed days it lags behind folded in.
fn load_states(conn: &Connection, interner: &mut Interner) -> Result<States, StoreError> {
    let mut states: States = snapshot::load_latest(conn, interner)?.into_iter().collect();
    if let (Some(from), Some(open)) = (states_lag(conn)?, open_day(conn)?) {
        for day in from + 1..open {
            fold(&mut states, &stored_node_days(conn, day)?, interner);
        }
    }
    Ok(states)
}

/// The last closed day `node_latest` holds, if it lags behind.
fn states_lag(conn: &Connection) -> Result<Option<i64>, StoreError> {
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
fn rewrite_states(tx: &Transaction<'_>, states: &States) -> Result<(), StoreError> {
    tx.execute("DELETE FROM node_latest", [])?;
    put_node_states(tx, states.iter())?;
    tx.execute("DELETE FROM node_latest_day", [])?;
    Ok(())
}

/// Node states as of now: the closed days' states with the open day's raw
/// rows folded in.
pub(crate) fn open_states(conn: &Connection) -> Result<States, StoreError> {
    let mut interner = Interner::default();
    let mut states = load_states(conn, &mut interner)?;
    if let Some(open) = open_day(conn)? {
        fold(
            &mut states,
            &group_node_days(conn, open, open, None)?,
            &mut interner,
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
    first: i64,
    last: i64,
    writer: &mut WriterState,
) -> Result<(), StoreError> {
    if first > last {
        return Ok(());
    }
    let mut states = match writer.states.take() {
        Some(states) => states,
        None => load_states(tx, &mut writer.interner)?,
    };
    for day in first..=last {
        match writer.open.take_if(|o| o.day == day) {
            Some(open) => {
                put_open_node_days(tx, &open)?;
                for (key, node) in open.nodes {
                    let mut days = node.days;
                    days.sort_by_key(|d| d.last_at);
                    for d in &days {
                        observe(
                            &mut states,
                            key.clone(),
                            day,
                            d.last_at,
                            &d.version,
                            d.status,
                        );
                    }
                }
            }
            None => {
                let rows = regroup_day(tx, day)?;
                fold(&mut states, &rows, &mut writer.interner);
            }
        }
        snapshot::store(tx, day, &snapshot::compute_all(states.iter(), day))?;
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
    Ok(())
}

/// Writes the open day's node-days, in key order (sequential pages).
fn put_open_node_days(tx: &Transaction<'_>, open: &OpenDay) -> Result<(), StoreError> {
    tx.execute("DELETE FROM node_days WHERE day = ?1", [open.day])?;
    let mut put = tx.prepare_cached(
        "INSERT INTO node_days (day, zone, cluster, node, version, status, last_at, reports, ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut days: Vec<&OpenNodeDay> = Vec::new();
    for (key, node) in &open.nodes {
        days.clear();
        days.extend(&node.days);
        days.sort_by(|a, b| a.version.as_str().cmp(b.version.as_str()));
        let (cluster, id) = (key.cluster.bytes(), key.node.bytes());
        for d in &days {
            put.execute(params![
                open.day,
                key.zone.as_str(),
                &cluster[..],
                &id[..],
                d.version.as_str(),
                d.status,
                d.last_at,
                d.reports,
                &d.ids[..]
            ])?;
        }
    }
    Ok(())
}

/// A day's node-days grouped again from its raw rows and stored in place of
/// the old ones; returned in time order.
fn regroup_day(tx: &Transaction<'_>, day: i64) -> Result<Vec<GroupedNodeDay>, StoreError> {
    let rows = group_node_days(tx, day, day, None)?;
    tx.execute("DELETE FROM node_days WHERE day = ?1", [day])?;
    // Inserted in key order (sequential pages).
    let mut by_key: Vec<&GroupedNodeDay> = rows.iter().collect();
    by_key.sort_by(|a, b| {
        (&a.zone, a.cluster, a.node, &a.version).cmp(&(&b.zone, b.cluster, b.node, &b.version))
    });
    let mut put = tx.prepare_cached(
        "INSERT INTO node_days (day, zone, cluster, node, version, status, last_at, reports, ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for r in by_key {
        put.execute(params![
            r.day,
            r.zone,
            &r.cluster[..],
            &r.node[..],
            r.version,
            r.status,
            r.last_at,
            r.reports,
            r.ids
        ])?;
    }
    Ok(rows)
}

/// Makes node states and snapshots again from the stored node-days, day by
/// day from the first, for the closed days before `open`: after history
/// was taken in for days long closed, and for the schema upgrade. Returns
/// the node states as of the last closed day.
fn replay(tx: &Transaction<'_>, open: i64, interner: &mut Interner) -> Result<States, StoreError> {
    let oldest: Option<i64> = tx.query_row("SELECT MIN(day) FROM node_days", [], |r| r.get(0))?;
    let mut states = States::new();
    for day in oldest.unwrap_or(open)..open {
        fold(&mut states, &stored_node_days(tx, day)?, interner);
        snapshot::store(tx, day, &snapshot::compute_all(states.iter(), day))?;
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
    let stale: Option<i64> = tx
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
            l.status,
            prev.map(|p| p.day),
            prev.map(|p| p.version.as_str()),
            prev.map(|p| p.status),
        ])?;
    }
    Ok(())
}

/// Backfill for the schema upgrade: node states and snapshots from the
/// node-day rollups, replayed day by day through the same code. The newest
/// day stays open: its node-days are regrouped from the raw rows when it
/// closes.
pub(crate) fn backfill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let newest: Option<i64> = tx.query_row("SELECT MAX(day) FROM node_days", [], |r| r.get(0))?;
    let Some(newest) = newest else {
        return Ok(());
    };
    replay(tx, newest, &mut Interner::default())?;
    tx.execute("INSERT INTO open_day (one, day) VALUES (1, ?1)", [newest])?;
    Ok(())
}

/// A closed day's stored node-days, latest last.
fn stored_node_days(conn: &Connection, day: i64) -> Result<Vec<GroupedNodeDay>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT zone, cluster, node, version, status, last_at, reports FROM node_days
         WHERE day = ?1 ORDER BY last_at",
    )?;
    let rows = stmt.query_map([day], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, u8>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (zone, cluster, node, version, status, last_at, reports) = row?;
        if let (Ok(cluster), Ok(node)) = (<[u8; 16]>::try_from(cluster), <[u8; 16]>::try_from(node))
        {
            out.push(GroupedNodeDay {
                day,
                zone,
                cluster,
                node,
                version,
                status,
                last_at,
                reports,
                ids: Vec::new(),
            });
        }
    }
    Ok(out)
}
