//! Every node's state, folded in day by day, and the fleet snapshots it
//! gives: the counting model's node states as a value every backend
//! drives. SQLite's writer folds each closed day's node-days into one of
//! these; the ClickHouse rollup folds each day's reports into one and
//! stores the snapshots it computes, so both backends' snapshots come from
//! the very same code ([`snapshot::compute_all`] over [`NodeLatest`]
//! states).

use std::collections::BTreeMap;

use super::days::NodeDay;
use super::keys::{Id, Interner, NodeKey, Text};
use super::node::NodeLatest;
use super::snapshot::{self, Snapshot};
use crate::clock::Day;
use crate::hint::Status;

/// One node's state as a backend stores it: the day and receive time of
/// its latest report, that report's version and the status answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState<'a> {
    pub zone: &'a str,
    pub cluster: [u8; 16],
    pub node: [u8; 16],
    pub last_day: Day,
    pub last_at: i64,
    pub version: &'a str,
    pub status: Status,
}

/// Node states of every zone, in key order (zone, cluster, node): the
/// order snapshots take clusters in.
#[derive(Default, Clone)]
pub struct FleetStates {
    interner: Interner,
    states: BTreeMap<NodeKey, NodeLatest>,
    /// While on trial: each state's value before its first change (None:
    /// it was new), to undo them (see [`FleetStates::begin_trial`]).
    undo: Option<Vec<(NodeKey, Option<NodeLatest>)>>,
}

impl FleetStates {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.states.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The texts of the states taken in by [`restore`](Self::restore) and
    /// [`observe`](Self::observe): keys made with it compare by pointer.
    pub fn interner(&mut self) -> &mut Interner {
        &mut self.interner
    }

    /// Puts a stored state back (loading a backend's saved states).
    /// Versions that are not semver are left out, as the SQLite writer
    /// leaves them out of node states.
    pub fn restore(&mut self, s: &StoredState<'_>) {
        let Some(version) = self.interner.version(s.version) else {
            return;
        };
        let key = self.interner.node(s.zone, s.cluster, s.node);
        self.states.insert(
            key,
            NodeLatest::new(s.last_day, s.last_at, &version, s.status),
        );
    }

    /// Puts a node's whole state back, its previous day's included (as
    /// SQLite's `node_latest` keeps it).
    pub fn insert(&mut self, key: NodeKey, state: NodeLatest) {
        self.states.insert(key, state);
    }

    /// Takes in a node's latest report of one version on a day (`s`: its
    /// day, receive time, version and status), in any order: the counting
    /// model's rule ([`NodeLatest::observe`]: a later day wins; the same
    /// day, the later report, and within one second the higher version).
    pub fn observe(&mut self, s: &StoredState<'_>) {
        let Some(version) = self.interner.version(s.version) else {
            return;
        };
        let key = self.interner.node(s.zone, s.cluster, s.node);
        self.observe_node(key, s.last_day, s.last_at, &version, s.status);
    }

    /// Takes in a node-day (its latest report), as [`observe`] does.
    ///
    /// [`observe`]: Self::observe
    pub fn take(&mut self, d: &NodeDay) {
        let key = NodeKey {
            zone: d.zone.clone(),
            cluster: Id::from(d.cluster),
            node: Id::from(d.node),
        };
        self.observe_node(key, d.day, d.last_at, &d.version, d.status);
    }

    /// Takes in one report of the node `key`, as [`observe`] does.
    ///
    /// [`observe`]: Self::observe
    pub fn observe_node(
        &mut self,
        key: NodeKey,
        day: Day,
        at: i64,
        version: &Text,
        status: Status,
    ) {
        if let Some(log) = &mut self.undo {
            log.push((key.clone(), self.states.get(&key).cloned()));
        }
        match self.states.get_mut(&key) {
            Some(n) => n.observe(day, at, version, status),
            None => {
                self.states
                    .insert(key, NodeLatest::new(day, at, version, status));
            }
        }
    }

    /// The state of the node `key`, if it has one.
    #[must_use]
    pub fn get(&self, key: &NodeKey) -> Option<&NodeLatest> {
        self.states.get(key)
    }

    /// Every node's state, in key order.
    pub fn nodes(&self) -> impl Iterator<Item = (&NodeKey, &NodeLatest)> {
        self.states.iter()
    }

    /// Records the changes from now on, so that [`rollback`] undoes
    /// them: days folded in on trial (the ClickHouse rollup's open days,
    /// computed again on every run), without a copy of every state.
    ///
    /// [`rollback`]: Self::rollback
    pub fn begin_trial(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Undoes every change since [`begin_trial`](Self::begin_trial).
    pub fn rollback(&mut self) {
        let Some(log) = self.undo.take() else {
            return;
        };
        for (key, before) in log.into_iter().rev() {
            match before {
                Some(n) => {
                    self.states.insert(key, n);
                }
                None => {
                    self.states.remove(&key);
                }
            }
        }
    }

    /// Whether any node of `cluster` in `zone` has a state (the cluster
    /// was seen before).
    pub fn knows_cluster(&mut self, zone: &str, cluster: [u8; 16]) -> bool {
        let from = self.interner.node(zone, cluster, [0; 16]);
        let cluster = Id::from(cluster);
        self.states
            .range(from..)
            .next()
            .is_some_and(|(k, _)| k.zone.as_str() == zone && k.cluster == cluster)
    }

    /// Every zone's snapshot of `day` (every window the stored snapshots
    /// keep), from the states as of that day.
    #[must_use]
    pub fn snapshots(&self, day: Day) -> BTreeMap<String, Snapshot> {
        snapshot::compute_all(self.states.iter(), day)
    }

    /// Every zone's snapshot of `day` for the windows of the `lengths`
    /// given (ascending), from the states as of that day.
    #[must_use]
    pub fn windows(&self, day: Day, lengths: &[i64]) -> BTreeMap<String, Snapshot> {
        snapshot::compute_windows(self.states.iter(), day, lengths)
    }

    /// Every state as of the last day folded in, in key order.
    pub fn iter(&self) -> impl Iterator<Item = StoredState<'_>> {
        self.states.iter().map(|(k, n)| StoredState {
            zone: k.zone.as_str(),
            cluster: k.cluster.bytes(),
            node: k.node.bytes(),
            last_day: n.last_day,
            last_at: n.last_at,
            version: n.version.as_str(),
            status: n.status,
        })
    }
}

/// Equal when they hold the same states (whatever they undo, whichever
/// texts they interned).
impl PartialEq for FleetStates {
    fn eq(&self, other: &Self) -> bool {
        self.states == other.states
    }
}

impl std::fmt::Debug for FleetStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.states.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st<'a>(
        zone: &'a str,
        cluster: [u8; 16],
        node: [u8; 16],
        last_day: i64,
        last_at: i64,
        version: &'a str,
        status: u8,
    ) -> StoredState<'a> {
        StoredState {
            zone,
            cluster,
            node,
            last_day: Day(last_day),
            last_at,
            version,
            status: Status::from_code(status).unwrap(),
        }
    }

    #[test]
    fn folds_like_the_writer_and_round_trips_through_stored_states() {
        let mut f = FleetStates::new();
        let (c1, c2) = ([1; 16], [2; 16]);
        f.observe(&st("z", c1, [1; 16], 10, 100, "1.0.0", 1));
        f.observe(&st("z", c1, [2; 16], 10, 100, "1.0.0", 1));
        f.observe(&st("z", c2, [3; 16], 11, 200, "2.0.0", 3));
        f.observe(&st("z", c2, [3; 16], 11, 200, "1.5.0", 1)); // same second, lower
        f.observe(&st("z", c2, [4; 16], 11, 200, "not semver", 1));
        assert!(f.knows_cluster("z", c1) && f.knows_cluster("z", c2));
        assert!(!f.knows_cluster("z", [3; 16]) && !f.knows_cluster("y", c1));
        let mut g = FleetStates::new();
        for s in f.iter() {
            g.restore(&s);
        }
        assert_eq!(f.iter().collect::<Vec<_>>(), g.iter().collect::<Vec<_>>());
        assert_eq!(g.len(), 3);
        let snaps = g.snapshots(Day(12));
        let w = snaps["z"].window(2).unwrap();
        assert_eq!(w.versions["2.0.0"].nodes, 1);
        assert_eq!(w.insecure_clusters, 1);
        assert_eq!(snaps["z"].active(3), Some((2, 3)));
        // Days folded in on trial are undone whole.
        let before: Vec<String> = g.iter().map(|s| format!("{s:?}")).collect();
        g.begin_trial();
        g.observe(&st("z", c1, [1; 16], 13, 300, "2.0.0", 3));
        g.observe(&st("z", c1, [1; 16], 14, 400, "2.1.0", 3));
        g.observe(&st("z", [9; 16], [9; 16], 13, 300, "2.0.0", 3));
        assert_eq!(g.len(), 4);
        g.rollback();
        let after: Vec<String> = g.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(after, before);
    }
}
