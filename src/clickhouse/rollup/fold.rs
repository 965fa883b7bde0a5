//! A day's reports, each counted once, folded through the counting model
//! (`crate::fleet`): node-days into the node states, every report into its
//! version day, and the day's rows (version days, snapshot, first days)
//! written from what the model gives.

use std::collections::{BTreeMap, BTreeSet};

use data_encoding::HEXLOWER;
use serde::Deserialize;

use super::rows::{keep_earliest, FirstDayRow, Inserts, VersionDayRow};
use super::snapshot_rows::snapshot_rows;
use super::stored::Stored;
use super::{Base, Rollup};
use crate::clickhouse::client::{hex16, ClickHouseError};
use crate::clickhouse::dedup::{first_deliveries, COPY_SPAN_DAYS};
use crate::clock::Day;
use crate::fleet::{Interner, NodeDay, NodeDayKey, Text, VersionDay};
use crate::hint::Status;

/// Anonymous reports of one version on one day in a zone, each counted
/// once: how many, and the latest one's receive time and status.
pub(super) struct Anonymous {
    zone: Text,
    version: Text,
    reports: u64,
    last_at: i64,
    status: Status,
}

/// A day's reports as the rollup reads them.
#[derive(Default)]
pub(super) struct DayReports {
    nodes: Vec<NodeDay>,
    anonymous: Vec<Anonymous>,
}

impl Rollup {
    /// Each day's reports in `first..=last`, every report once, dated and
    /// answered as its first delivery; texts interned in `interner`.
    /// Reports whose version is not semver are left out (the shipper
    /// never writes one).
    pub(super) fn node_days(
        &self,
        first: Day,
        last: Day,
        interner: &mut Interner,
    ) -> Result<BTreeMap<Day, DayReports>, ClickHouseError> {
        /// A row of the query below: one node's reports of a version
        /// (all anonymous reports of one, `anon` = 1), each once.
        #[derive(Deserialize)]
        struct Row {
            day: Day,
            zone: String,
            anon: u8,
            #[serde(deserialize_with = "hex16")]
            cluster: [u8; 16],
            #[serde(deserialize_with = "hex16")]
            node: [u8; 16],
            version: String,
            reports: u64,
            last_at: i64,
            status: Status,
        }
        let mut out: BTreeMap<Day, DayReports> = BTreeMap::new();
        self.client.each(
            &format!(
                "SELECT d AS day, zone, anon, cluster, node, v AS version, count() AS reports,
                        max(at) AS last_at, argMax(st, at) AS status
                 FROM ({} HAVING d BETWEEN {} AND {})
                 GROUP BY d, zone, anon, cluster, node, v",
                first_deliveries(
                    &format!("{}.reports", self.db()),
                    &format!(
                        "day BETWEEN {} AND {}",
                        first.0 - COPY_SPAN_DAYS,
                        last.0 + COPY_SPAN_DAYS
                    )
                ),
                first.0,
                last.0
            ),
            |r: Row| {
                let Some(version) = interner.version(&r.version) else {
                    return Ok(());
                };
                let zone = interner.zone(&r.zone);
                let reports_of_day = out.entry(r.day).or_default();
                if r.anon == 1 {
                    reports_of_day.anonymous.push(Anonymous {
                        zone,
                        version,
                        reports: r.reports,
                        last_at: r.last_at,
                        status: r.status,
                    });
                    return Ok(());
                }
                let key = NodeDayKey {
                    day: r.day,
                    zone: &zone,
                    cluster: r.cluster,
                    node: r.node,
                };
                let mut row = NodeDay::first(key, &version, r.last_at, r.status, None);
                row.reports = r.reports;
                reports_of_day.nodes.push(row);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Takes one day's reports into the states, and adds the day's rows
    /// (version days, snapshot, first days) to `inserts`.
    pub(super) fn fold_day(
        &self,
        base: &mut Base,
        day: Day,
        reports: DayReports,
        stored: &Stored,
        stamp: u64,
        inserts: &mut Inserts,
    ) {
        let DayReports {
            nodes: mut rows,
            anonymous,
        } = reports;
        // In receive order, as the model takes reports in (the rows of one
        // second in key order, so that a run gives what the last gave).
        rows.sort_by_key(|r| (r.last_at, r.cluster, r.node));
        let mut taken: Vec<(i64, bool, &Text, &Text, u64, Status)> = rows
            .iter()
            .map(|r| (r.last_at, true, &r.zone, &r.version, r.reports, r.status))
            .chain(
                anonymous
                    .iter()
                    .map(|a| (a.last_at, false, &a.zone, &a.version, a.reports, a.status)),
            )
            .collect();
        taken.sort_by_key(|t| t.0);
        let mut version_days: BTreeMap<(&Text, &Text), VersionDay> = BTreeMap::new();
        for (at, identified, zone, version, reports, status) in taken {
            let Ok(parsed) = semver::Version::parse(version) else {
                continue;
            };
            version_days
                .entry((zone, version))
                .or_insert_with(|| VersionDay::new(day, parsed, status))
                .take(reports, identified, at, status);
        }
        let mut new_clusters: BTreeSet<(&str, [u8; 16])> = BTreeSet::new();
        for r in &rows {
            if !base.states.knows_cluster(&r.zone, r.cluster) {
                new_clusters.insert((&r.zone, r.cluster));
            }
        }
        for ((zone, version), v) in &version_days {
            inserts.push(
                "version_days",
                &VersionDayRow {
                    zone,
                    day,
                    version,
                    reports: v.reports,
                    anonymous: v.anonymous,
                    last_at: v.last_at.unwrap_or(-1),
                    status: v.status,
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
        let computed: BTreeSet<(&str, &str)> = version_days
            .keys()
            .map(|(z, v)| (z.as_str(), v.as_str()))
            .collect();
        for (zone, _, v) in stored.version_days.iter().filter(|k| k.1 == day) {
            if !computed.contains(&(zone.as_str(), v.as_str())) {
                inserts.push(
                    "version_days",
                    &VersionDayRow {
                        zone,
                        day,
                        version: v,
                        reports: 0,
                        anonymous: 0,
                        last_at: -1,
                        status: Status::Unknown,
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
        for r in &rows {
            base.states.take(r);
        }
        let snaps = base.states.snapshots(day);
        snapshot_rows(&snaps, day, stored, stamp, inserts);
    }
}
