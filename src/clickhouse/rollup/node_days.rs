//! A day's reports, each counted once, as node-days ([`NodeDay`]), and
//! how they are folded into the node states and the day's rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use data_encoding::HEXLOWER;

use super::rows::{keep_earliest, FirstDayRow, Inserts, VersionDayRow};
use super::snapshot_rows::snapshot_rows;
use super::stored::Stored;
use super::{Base, Rollup};
use crate::clickhouse::client::{id16, num, str_at, ClickHouseError};
use crate::clickhouse::dedup::{first_deliveries, COPY_SPAN_DAYS};
use crate::store::fleet::StoredState;

/// One node's reports of one version on one day (anonymous reports: one
/// row per zone, day and version, without ids), each report counted once.
pub(super) struct NodeDay {
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

impl Rollup {
    /// Each day's node-days in `first..=last`, every report once, dated and
    /// answered as its first delivery.
    pub(super) fn node_days(
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

    /// Takes one day's node-days into the states, and adds the day's rows
    /// (version days, snapshot, first days) to `inserts`.
    pub(super) fn fold_day(
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
}
