//! Sink 1: the history written straight into a database file through the
//! processor's own commit (the same deduplication, rollups, node states
//! and day closing), as if the reports had arrived over the simulated
//! days, with the daily counters the answer path would have kept.

use crate::clock::day_of;
use crate::clock::Day;
use crate::fleet::CounterDelta;
use crate::protocol::{anonymize, IdKind, Identity, Key, Payload, Report, ZoneName};
use crate::store::{ReceivedReport, Store, StoreError};

use super::fleet::{Fleet, SimReport};

/// Reports per transaction: a commit rewrites the pages it touched (the
/// tables' ends, the clusters' rows), so fewer, larger ones write less.
const BATCH: usize = 65_536;

/// What [`write`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DbOutcome {
    /// Distinct reports offered, and deliveries (duplicates included).
    pub reports: u64,
    pub deliveries: u64,
    /// What the store did with the deliveries.
    pub stored: u64,
    pub duplicates: u64,
    pub anonymous: u64,
}

/// Each node's identity as its reports carry it (anonymized with `key`,
/// as a client does; withheld for clusters with `DISABLE_TELEMETRY`).
#[must_use]
pub fn identities(fleet: &Fleet, key: &Key) -> Vec<Identity> {
    fleet
        .nodes
        .iter()
        .map(|node| {
            let cluster = &fleet.clusters[node.cluster as usize];
            if cluster.anonymous {
                Identity::Withheld
            } else {
                Identity::Known {
                    cluster: anonymize(key, IdKind::Cluster, &cluster.real_id),
                    node: anonymize(
                        key,
                        IdKind::Node {
                            cluster: &cluster.real_id,
                        },
                        &node.real_id,
                    ),
                }
            }
        })
        .collect()
}

/// Stores `reports` (sorted by time) with their simulated receive times, a
/// day at a time, each delivery once more for a duplicate, and adds the
/// day's counters as the server would have (queries, accepted, anonymous,
/// stored, duplicate).
pub fn write(
    fleet: &Fleet,
    reports: &[SimReport],
    key: &Key,
    zone: &ZoneName,
    store: &mut Store,
) -> Result<DbOutcome, StoreError> {
    let ids = identities(fleet, key);
    let mut outcome = DbOutcome::default();
    store.set_bulk_load(true);
    let written = write_days(fleet, reports, key, zone, &ids, store, &mut outcome);
    store.set_bulk_load(false);
    written?;
    store.flush_open_day()?;
    Ok(outcome)
}

/// [`write`]'s days, in time order.
fn write_days(
    fleet: &Fleet,
    reports: &[SimReport],
    key: &Key,
    zone: &ZoneName,
    ids: &[Identity],
    store: &mut Store,
    outcome: &mut DbOutcome,
) -> Result<(), StoreError> {
    let mut rest = reports;
    while let Some(first) = rest.first() {
        let day = day_of(first.time);
        let end = rest.partition_point(|r| day_of(r.time) == day);
        let (today, later) = rest.split_at(end);
        rest = later;
        let mut counts = DbOutcome::default();
        for chunk in today.chunks(BATCH) {
            let mut batch = Vec::with_capacity(chunk.len() * 2);
            for r in chunk {
                let identity = ids[r.node as usize];
                let version = fleet.version(r.version).clone();
                let received = ReceivedReport {
                    report: Report {
                        id: r.id,
                        key_id: key.id,
                        payload: Payload {
                            timestamp: u64::try_from(r.time).unwrap_or(0),
                            identity,
                            version,
                        },
                    },
                    zone: zone.clone(),
                    received_at: r.time,
                    status: fleet.status[usize::from(r.version)],
                };
                counts.reports += 1;
                for _ in 1..r.deliveries {
                    batch.push(received.clone());
                }
                batch.push(received);
                counts.deliveries += u64::from(r.deliveries);
                if identity == Identity::Withheld {
                    counts.anonymous += u64::from(r.deliveries);
                }
            }
            let done = store.commit(&batch, &[], None)?;
            counts.stored += done.stored;
            counts.duplicates += done.duplicates;
        }
        // What the answer path would have counted that day (the store
        // counted stored and duplicate reports itself).
        let n = |name: &str, delta: u64| CounterDelta {
            day: Day(day),
            name: name.to_string(),
            delta,
        };
        store.commit(
            &[],
            &[
                n("queries.udp", counts.deliveries),
                n("qtype.txt", counts.deliveries),
                n("rcode.noerror", counts.deliveries),
                n("reports.accepted", counts.deliveries),
                n("reports.anonymous", counts.anonymous),
            ],
            None,
        )?;
        outcome.reports += counts.reports;
        outcome.deliveries += counts.deliveries;
        outcome.stored += counts.stored;
        outcome.duplicates += counts.duplicates;
        outcome.anonymous += counts.anonymous;
    }
    Ok(())
}
