//! A day's fleet snapshot as rows of `snapshot_versions`,
//! `snapshot_totals` and `snapshot_activity`.

use std::collections::{BTreeMap, HashSet};

use super::rows::{Inserts, SnapshotActivityRow, SnapshotTotalRow, SnapshotVersionRow};
use super::stored::Stored;
use crate::clock::Day;
use crate::fleet::Snapshot;

/// A day's snapshot rows (and zero rows for stored keys it lacks).
pub(super) fn snapshot_rows(
    snaps: &BTreeMap<String, Snapshot>,
    day: Day,
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
