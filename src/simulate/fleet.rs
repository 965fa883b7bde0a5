//! The fleet model: clusters, their nodes, each node's version over time,
//! and every report the fleet sends over the simulated days.

use std::ops::Range;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use semver::Version;

use super::{mix, SimConfig, SimError};
use crate::clock::day_of;
use crate::hint::{Releases, Status};
use crate::protocol::ReportId;

/// Index into [`Fleet::versions`] (ascending, so indices compare as versions).
pub type VersionIdx = u16;

const DAY: i64 = 86_400;
/// Spread of the upgrade lag: log-normal with this sigma (a 90th
/// percentile about 3.6 times the median).
const LAG_SIGMA: f64 = 1.0;
/// Stream number of the snapshot's generator (clusters use 0, 1, 2, ...).
const SNAPSHOT_STREAM: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Upgrades some (random) time after each release it has not got.
    Upgrades,
    /// Stays on the version it started with.
    NeverUpgrades,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    /// The real cluster id (a UUID); only its keyed hash is ever sent.
    pub real_id: String,
    /// `DISABLE_TELEMETRY` is set: reports carry no identity.
    pub anonymous: bool,
    pub behaviour: Behaviour,
    /// First day (UTC day number) the cluster may report: the first
    /// simulated day, or later for a cluster that joined late.
    pub join_day: i64,
    /// First day it no longer reports, for a cluster that churned away.
    pub leave_day: Option<i64>,
    /// Its nodes, as indices into [`Fleet::nodes`].
    pub nodes: Range<u32>,
}

impl Cluster {
    /// May report on `day` (it may still miss the day).
    #[must_use]
    pub fn alive_on(&self, day: i64) -> bool {
        day >= self.join_day && self.leave_day.is_none_or(|l| day < l)
    }

    #[must_use]
    pub fn joined_late(&self, start_day: i64) -> bool {
        self.join_day > start_day
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub cluster: u32,
    pub real_id: String,
    /// `(from, version)` steps, ascending in time; the first starts at
    /// `i64::MIN`. May hold upgrades later than `now` (not yet visible).
    pub timeline: Vec<(i64, VersionIdx)>,
}

impl Node {
    #[must_use]
    pub fn version_at(&self, time: i64) -> VersionIdx {
        let i = self.timeline.partition_point(|(from, _)| *from <= time);
        self.timeline[i.saturating_sub(1)].1
    }
}

/// One report as the fleet sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimReport {
    /// Unix seconds; the server's receive time.
    pub time: i64,
    pub node: u32,
    pub version: VersionIdx,
    pub id: ReportId,
    /// How many times it reaches the server (2: a resolver retried and
    /// both copies arrived).
    pub deliveries: u8,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    pub seed: u64,
    /// First and last simulated day (UTC day numbers), both included.
    pub start_day: i64,
    pub end_day: i64,
    /// Unix seconds; nothing happens later.
    pub now: i64,
    /// Released versions, ascending.
    pub versions: Vec<Version>,
    /// Each version's release day (UTC day number), by [`VersionIdx`].
    pub release_day: Vec<i64>,
    pub releases: Releases,
    /// The server's answer to each version, by [`VersionIdx`].
    pub status: Vec<Status>,
    pub clusters: Vec<Cluster>,
    pub nodes: Vec<Node>,
    /// Every report of the simulated days, sorted by time (then node).
    pub history: Vec<SimReport>,
}

fn uuid(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.random();
    let h = data_encoding::HEXLOWER.encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Nodes per cluster: many small clusters (1 to 3 nodes), a tail up to
/// `max` nodes.
fn node_count(rng: &mut StdRng, max: u32) -> u32 {
    const WEIGHTS: [u32; 8] = [15, 10, 30, 15, 10, 8, 6, 6];
    let weight = |n: u32| WEIGHTS.get(n as usize - 1).copied().unwrap_or(4);
    let total: u32 = (1..=max).map(weight).sum();
    let mut pick = rng.random_range(0..total);
    for n in 1..=max {
        if pick < weight(n) {
            return n;
        }
        pick -= weight(n);
    }
    max
}

/// A log-normal delay in seconds with the given median in days.
fn lag_seconds(rng: &mut StdRng, median_days: f64) -> i64 {
    // Box-Muller; 1 - u keeps the logarithm finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let days = (median_days * (LAG_SIGMA * z).exp()).min(3_650.0);
    (days * DAY as f64) as i64
}

/// What a cluster does over time, before nodes are laid out.
struct Plan {
    initial: VersionIdx,
    /// `(start, rollout duration, target)`, seconds.
    upgrades: Vec<(i64, i64, VersionIdx)>,
}

impl Fleet {
    pub fn generate(config: &SimConfig) -> Result<Fleet, SimError> {
        config.validate()?;
        let end_day = day_of(config.now);
        let start_day = end_day - i64::from(config.days) + 1;
        let mut schedule = config.schedule.clone();
        schedule.sort_by(|a, b| a.version.cmp(&b.version).then(a.day.cmp(&b.day)));
        // A version listed twice is released on its earliest day.
        schedule.dedup_by(|later, earlier| later.version == earlier.version);
        let versions: Vec<Version> = schedule.iter().map(|r| r.version.clone()).collect();
        let release_day: Vec<i64> = schedule.iter().map(|r| start_day + r.day).collect();
        let status = versions
            .iter()
            .map(|v| config.releases.hint_for(v).status)
            .collect();
        let mut fleet = Fleet {
            seed: config.seed,
            start_day,
            end_day,
            now: config.now,
            versions,
            release_day,
            releases: config.releases.clone(),
            status,
            clusters: Vec::with_capacity(config.clusters as usize),
            nodes: Vec::new(),
            history: Vec::new(),
        };
        for index in 0..config.clusters {
            fleet.add_cluster(config, index);
        }
        fleet
            .history
            .sort_unstable_by_key(|r| (r.time, r.node, r.id));
        Ok(fleet)
    }

    /// Versions released on or before `day`, newest first.
    fn available(&self, day: i64) -> Vec<VersionIdx> {
        let mut out: Vec<VersionIdx> = (0..self.versions.len() as VersionIdx)
            .filter(|&v| self.release_day[usize::from(v)] <= day)
            .collect();
        out.reverse();
        out
    }

    /// The earliest-released version (what a fleet starts on when nothing
    /// had been released before the first simulated day).
    fn first_released(&self) -> VersionIdx {
        (0..self.versions.len() as VersionIdx)
            .min_by_key(|&v| (self.release_day[usize::from(v)], v))
            .unwrap_or(0)
    }

    fn plan(
        &self,
        config: &SimConfig,
        rng: &mut StdRng,
        behaviour: Behaviour,
        join_day: i64,
    ) -> Plan {
        let late = join_day > self.start_day;
        let initial = if late {
            // A new install takes the newest release, or the one before.
            let avail = self.available(join_day);
            let pick = usize::from(avail.len() > 1 && rng.random_bool(0.25));
            avail
                .get(pick)
                .copied()
                .unwrap_or_else(|| self.first_released())
        } else {
            // Already running: newer releases are likelier (halving).
            let avail = self.available(self.start_day);
            let mut chosen = None;
            for (i, v) in avail.iter().enumerate() {
                if i + 1 == avail.len() || rng.random_bool(0.5) {
                    chosen = Some(*v);
                    break;
                }
            }
            chosen.unwrap_or_else(|| self.first_released())
        };
        let mut plan = Plan {
            initial,
            upgrades: Vec::new(),
        };
        if behaviour == Behaviour::NeverUpgrades {
            return plan;
        }
        // A cluster that was there before the history began may have
        // upgraded before it too; a new one only after it joined.
        let mut free = if late { join_day * DAY } else { i64::MIN };
        let mut current = initial;
        let mut by_release: Vec<VersionIdx> = (0..self.versions.len() as VersionIdx).collect();
        by_release.sort_by_key(|&v| (self.release_day[usize::from(v)], v));
        for r in by_release {
            let lag = lag_seconds(rng, config.median_lag_days);
            if r <= current {
                continue;
            }
            let start = (self.release_day[usize::from(r)] * DAY + lag).max(free);
            if start > self.now {
                break;
            }
            // Upgrade to the newest release out by then, which may skip some.
            let target = self.available(day_of(start))[0].max(r);
            let rollout = rng.random_range(DAY..=3 * DAY);
            plan.upgrades.push((start, rollout, target));
            current = target;
            free = start + rollout + 3_600;
        }
        plan
    }

    fn add_cluster(&mut self, config: &SimConfig, index: u32) {
        let mut rng = StdRng::seed_from_u64(mix(config.seed, u64::from(index)));
        let days = i64::from(config.days);
        let real_id = uuid(&mut rng);
        let anonymous = rng.random_bool(config.anonymous_share);
        let behaviour = if rng.random_bool(config.never_upgrade_share) {
            Behaviour::NeverUpgrades
        } else {
            Behaviour::Upgrades
        };
        let join_day = if days > 1 && rng.random_bool(config.late_join_share) {
            self.start_day + rng.random_range(1..days)
        } else {
            self.start_day
        };
        let leave_day = (rng.random_bool(config.leave_share) && join_day < self.end_day)
            .then(|| rng.random_range(join_day + 1..=self.end_day));
        let count = node_count(&mut rng, config.max_nodes);
        let plan = self.plan(config, &mut rng, behaviour, join_day);

        let cluster = self.clusters.len() as u32;
        let first_node = self.nodes.len() as u32;
        let mut timelines = vec![vec![(i64::MIN, plan.initial)]; count as usize];
        // Rolling upgrades: one node after another, in a random order.
        let mut order: Vec<usize> = (0..count as usize).collect();
        for &(start, rollout, target) in &plan.upgrades {
            order.shuffle(&mut rng);
            for (k, &node) in order.iter().enumerate() {
                let at = if count > 1 {
                    start + rollout * k as i64 / i64::from(count - 1)
                } else {
                    start
                };
                timelines[node].push((at, target));
            }
        }
        let last_day = leave_day.map_or(self.end_day, |l| l - 1);
        for (k, timeline) in timelines.into_iter().enumerate() {
            let node = Node {
                cluster,
                real_id: format!("node-{}", k + 1),
                timeline,
            };
            let index = first_node + k as u32;
            let report = |time: i64, rng: &mut StdRng| SimReport {
                time,
                node: index,
                version: node.version_at(time),
                id: ReportId(rng.random()),
                deliveries: 1 + u8::from(rng.random_bool(config.duplicate_share)),
            };
            // Once a day, at a random time (today: up to now).
            for day in join_day..=last_day {
                if rng.random_bool(config.miss_share) {
                    continue;
                }
                let span = if day == self.end_day {
                    self.now - day * DAY + 1
                } else {
                    DAY
                };
                let time = day * DAY + rng.random_range(0..span);
                self.history.push(report(time, &mut rng));
            }
            // And right after each upgrade, as the new version starts.
            for &(at, _) in &node.timeline[1..] {
                if at >= join_day * DAY && at <= self.now && day_of(at) <= last_day {
                    self.history.push(report(at, &mut rng));
                }
            }
            self.nodes.push(node);
        }
        self.clusters.push(Cluster {
            real_id,
            anonymous,
            behaviour,
            join_day,
            leave_day,
            nodes: first_node..self.nodes.len() as u32,
        });
    }

    #[must_use]
    pub fn version(&self, v: VersionIdx) -> &Version {
        &self.versions[usize::from(v)]
    }

    #[must_use]
    pub fn cluster_of(&self, node: u32) -> &Cluster {
        &self.clusters[self.nodes[node as usize].cluster as usize]
    }

    /// Today's state, as a server would see it if every node of every
    /// cluster still alive reported now: one report per node, at `now`,
    /// with fresh ids (seeded too).
    #[must_use]
    pub fn snapshot(&self) -> Vec<SimReport> {
        let mut rng = StdRng::seed_from_u64(mix(self.seed, SNAPSHOT_STREAM));
        let mut out = Vec::new();
        for cluster in self.clusters.iter().filter(|c| c.alive_on(self.end_day)) {
            for node in cluster.nodes.clone() {
                out.push(SimReport {
                    time: self.now,
                    node,
                    version: self.nodes[node as usize].version_at(self.now),
                    id: ReportId(rng.random()),
                    deliveries: 1,
                });
            }
        }
        out
    }

    /// The reports of the history received before `day` (UTC day number).
    #[must_use]
    pub fn history_before(&self, day: i64) -> &[SimReport] {
        let end = self.history.partition_point(|r| r.time < day * DAY);
        &self.history[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::ReleasesConfig;
    use crate::simulate::Release;

    fn fleet() -> Fleet {
        let versions = ["1.0.0", "1.1.0", "1.2.0", "2.0.0"];
        let releases = Releases::try_from(&ReleasesConfig {
            versions: versions.map(String::from).to_vec(),
            ..ReleasesConfig::default()
        })
        .unwrap();
        let schedule = versions
            .iter()
            .zip([-20, 5, 15, 25])
            .map(|(v, day)| Release {
                version: Version::parse(v).unwrap(),
                day,
            })
            .collect();
        let config = SimConfig {
            clusters: 200,
            days: 40,
            ..SimConfig::new(1, 1_000 * DAY + 5_000, schedule, releases)
        };
        Fleet::generate(&config).unwrap()
    }

    #[test]
    fn behaviours_show_in_the_history() {
        let f = fleet();
        assert_eq!((f.start_day, f.end_day), (961, 1_000));
        let mut kinds = [0; 4];
        for c in &f.clusters {
            let nodes = &f.nodes[c.nodes.start as usize..c.nodes.end as usize];
            assert!((1..=8).contains(&nodes.len()));
            if c.behaviour == Behaviour::NeverUpgrades {
                assert!(nodes.iter().all(|n| n.timeline.len() == 1));
                kinds[0] += 1;
            }
            kinds[1] += usize::from(c.joined_late(f.start_day));
            kinds[2] += usize::from(c.leave_day.is_some());
            kinds[3] += usize::from(c.anonymous);
            // A rolling upgrade: every node moves, within three days.
            let steps = nodes[0].timeline.len();
            assert!(nodes.iter().all(|n| n.timeline.len() == steps));
            for s in 1..steps {
                let times: Vec<i64> = nodes.iter().map(|n| n.timeline[s].0).collect();
                let spread = times.iter().max().unwrap() - times.iter().min().unwrap();
                assert!(spread <= 3 * DAY);
                assert!(nodes.iter().all(|n| n.timeline[s].1 > n.timeline[s - 1].1));
            }
        }
        assert!(kinds.iter().all(|k| *k > 0), "{kinds:?}");
        for r in &f.history {
            let c = f.cluster_of(r.node);
            assert!(
                c.alive_on(day_of(r.time)),
                "report outside the cluster's life"
            );
            assert!(r.time <= f.now && day_of(r.time) >= f.start_day);
            assert_eq!(r.version, f.nodes[r.node as usize].version_at(r.time));
        }
        // The snapshot: one report per node of each cluster alive today.
        let alive: usize = (f.clusters.iter().filter(|c| c.alive_on(f.end_day)))
            .map(|c| c.nodes.len())
            .sum();
        assert_eq!(f.snapshot().len(), alive);
    }
}
