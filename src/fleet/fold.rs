//! The counting model over a whole set of reports, in memory: every
//! node-day, version day and day's snapshot that a backend must end up
//! storing for them, made by the model's rules alone. Tests feed the same
//! reports to SQLite, to ClickHouse and to a [`Fold`], and compare.

use std::collections::BTreeMap;

use semver::Version;

use super::days::{NodeDay, NodeDayKey, ReportId, VersionDay};
use super::keys::{Interner, NodeKey, Text};
use super::snapshot::Snapshot;
use super::states::FleetStates;
use crate::clock::Day;
use crate::hint::Status;

/// One report as the model takes it.
#[derive(Debug, Clone, Copy)]
pub struct Reported<'a> {
    pub zone: &'a str,
    /// Cluster and node; `None`: the identity was withheld.
    pub node: Option<([u8; 16], [u8; 16])>,
    pub version: &'a Version,
    /// Receive time, unix seconds.
    pub at: i64,
    pub status: Status,
    pub id: ReportId,
}

/// Reports folded through the model, each taken once (deduplicating
/// deliveries is a backend's business), in receive order.
#[derive(Default)]
pub struct Fold {
    interner: Interner,
    node_days: BTreeMap<(Day, NodeKey, Text), NodeDay>,
    version_days: BTreeMap<(Text, Day, Version), VersionDay>,
}

impl Fold {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one report in.
    pub fn take(&mut self, r: &Reported<'_>) {
        let day = Day::of(r.at);
        let zone = self.interner.zone(r.zone);
        self.version_days
            .entry((zone.clone(), day, r.version.clone()))
            .or_insert_with(|| VersionDay::new(day, r.version.clone(), r.status))
            .take(1, r.node.is_some(), r.at, r.status);
        let Some((cluster, node)) = r.node else {
            return;
        };
        let Some(version) = self.interner.version(&r.version.to_string()) else {
            return;
        };
        let key = self.interner.node(r.zone, cluster, node);
        match self.node_days.entry((day, key, version.clone())) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                e.get_mut().take(r.at, r.status, Some(&r.id));
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                let key = NodeDayKey {
                    day,
                    zone: &zone,
                    cluster,
                    node,
                };
                e.insert(NodeDay::first(key, &version, r.at, r.status, Some(&r.id)));
            }
        }
    }

    /// Every node-day, in key order (day, zone, cluster, node, version).
    pub fn node_days(&self) -> impl Iterator<Item = &NodeDay> {
        self.node_days.values()
    }

    /// Every version day of `zone`, by day and version.
    pub fn version_days<'a>(&'a self, zone: &'a str) -> impl Iterator<Item = &'a VersionDay> {
        self.version_days
            .iter()
            .filter(move |((z, _, _), _)| z.as_str() == zone)
            .map(|(_, v)| v)
    }

    /// Every zone's snapshot of `day`, from the node-days up to it.
    #[must_use]
    pub fn snapshots(&self, day: Day) -> BTreeMap<String, Snapshot> {
        let mut days: Vec<&NodeDay> = self.node_days.values().filter(|d| d.day <= day).collect();
        days.sort_by_key(|d| (d.day, d.last_at));
        let mut states = FleetStates::new();
        for d in days {
            states.take(d);
        }
        states.snapshots(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: Option<u8>, version: &Version, at: i64, id: u8) -> Reported<'_> {
        Reported {
            zone: "z",
            node: node.map(|n| ([1; 16], [n; 16])),
            version,
            at,
            status: Status::UpToDate,
            id: [id; 12],
        }
    }

    #[test]
    fn reports_fold_into_node_days_version_days_and_snapshots() {
        let (old, new) = (&Version::new(1, 0, 0), &Version::new(2, 0, 0));
        let mut f = Fold::new();
        for r in [
            report(Some(1), old, 100, 1),
            report(Some(1), new, 200, 2), // an upgrade the same day
            report(Some(2), old, 300, 3),
            report(None, old, 400, 4),
            report(Some(2), old, 86_400 + 5, 5),
        ] {
            f.take(&r);
        }
        let days: Vec<(i64, u8, String, u64)> = f
            .node_days()
            .map(|d| (d.day.0, d.node[0], d.version.to_string(), d.reports))
            .collect();
        assert_eq!(
            days,
            [
                (0, 1, "1.0.0".into(), 1),
                (0, 1, "2.0.0".into(), 1),
                (0, 2, "1.0.0".into(), 1),
                (1, 2, "1.0.0".into(), 1),
            ]
        );
        let v: Vec<(i64, u64, u64)> = f
            .version_days("z")
            .map(|v| (v.day.0, v.reports, v.anonymous))
            .collect();
        assert_eq!(v, [(0, 3, 1), (0, 1, 0), (1, 1, 0)]);
        let snap = &f.snapshots(Day(0))["z"];
        let w = snap.window(1).unwrap();
        assert_eq!((w.mixed_clusters, w.versions["2.0.0"].nodes), (1, 1));
        assert_eq!(f.snapshots(Day(1))["z"].active(1), Some((1, 1)));
    }
}
