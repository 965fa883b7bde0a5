//! A simulated fleet, for demos, the dashboard and tests: `vcheckd simulate`.
//!
//! One module per job:
//! - [`schedule`]: which releases come out on which day;
//! - [`fleet`]: the model. Clusters of 1 to 8 nodes, each cluster with an
//!   upgrade behaviour (upgrades after a random lag, rolling node by node
//!   over 1 to 3 days; never upgrades; joins late; stops reporting), each
//!   node reporting once a day at a random time and once more right after
//!   each upgrade. The whole history is generated up front, deterministically
//!   from a seed;
//! - [`truth`]: the statistics of docs/STATS.md computed from the model's
//!   own reports, never from a database, so that tests can hold
//!   [`crate::stats`] to them;
//! - [`db`]: writes the history straight into a database file, with the
//!   simulated receive times, through [`crate::store::Store::insert_batch`];
//! - [`dns`]: sends today's snapshot of the fleet to a running server as
//!   real DNS queries, at a bounded rate.
//!
//! Determinism: every cluster draws from its own random generator, seeded
//! from the run's seed and the cluster's index, so the same seed and the
//! same `now` give the same fleet, and a smaller fleet is a prefix of a
//! larger one. The generator is `rand`'s [`rand::rngs::StdRng`], whose
//! stream is stable for a given `rand` release (pinned by Cargo.lock).

pub mod db;
pub mod dns;
pub mod fleet;
pub mod schedule;
pub mod truth;

use thiserror::Error;

use crate::hint::Releases;

pub use fleet::{Behaviour, Cluster, Fleet, Node, SimReport, VersionIdx};
pub use schedule::Release;
pub use truth::Truth;

#[derive(Debug, Error, PartialEq)]
pub enum SimError {
    #[error("the release schedule is empty")]
    NoReleases,
    #[error("{0} must be between 0 and 1, got {1}")]
    Share(&'static str, f64),
    #[error("days must be at least 1")]
    Days,
    #[error("nodes per cluster must be between 1 and 64, got {0}")]
    Nodes(u32),
    #[error("median upgrade lag must be a positive number of days, got {0}")]
    Lag(f64),
    #[error("{0:?} is not VERSION@DAY (e.g. 2.4.1@60: released 60 days after the start)")]
    ReleaseSyntax(String),
    #[error("too many releases in the schedule (at most 65535)")]
    TooManyReleases,
}

/// Everything a simulated fleet is generated from.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub clusters: u32,
    /// Days of history; the last of them is the day of `now`.
    pub days: u32,
    /// The simulation's present, unix seconds: no report is later.
    pub now: i64,
    /// Release days, relative to the first simulated day (negative: before
    /// the simulated history; those versions are what clusters start on).
    pub schedule: Vec<Release>,
    /// The release rule answering each report (status, as the server would).
    pub releases: Releases,
    /// Largest cluster, in nodes (clusters have 1 to this many).
    pub max_nodes: u32,
    /// Clusters that set `DISABLE_TELEMETRY`: their reports carry no identity.
    pub anonymous_share: f64,
    /// Clusters that never upgrade.
    pub never_upgrade_share: f64,
    /// Clusters that appear after the first day.
    pub late_join_share: f64,
    /// Clusters that stop reporting before the last day.
    pub leave_share: f64,
    /// Chance that a node skips one day's report (down, offline, cron missed).
    pub miss_share: f64,
    /// Chance that a report reaches the server twice (a resolver retry).
    pub duplicate_share: f64,
    /// Median days between a release and a cluster starting to upgrade
    /// (log-normal, so a long tail of late upgraders).
    pub median_lag_days: f64,
}

/// The defaults of [`SimConfig::new`] and `vcheckd simulate`.
pub mod defaults {
    pub const CLUSTERS: u32 = 2_000;
    pub const DAYS: u32 = 90;
    pub const MAX_NODES: u32 = 8;
    pub const ANONYMOUS_SHARE: f64 = 0.05;
    pub const NEVER_UPGRADE_SHARE: f64 = 0.15;
    pub const LATE_JOIN_SHARE: f64 = 0.2;
    pub const LEAVE_SHARE: f64 = 0.1;
    pub const MISS_SHARE: f64 = 0.05;
    pub const DUPLICATE_SHARE: f64 = 0.01;
    pub const MEDIAN_LAG_DAYS: f64 = 7.0;
}

impl SimConfig {
    /// A configuration with the [`defaults`].
    #[must_use]
    pub fn new(seed: u64, now: i64, schedule: Vec<Release>, releases: Releases) -> Self {
        SimConfig {
            seed,
            clusters: defaults::CLUSTERS,
            days: defaults::DAYS,
            now,
            schedule,
            releases,
            max_nodes: defaults::MAX_NODES,
            anonymous_share: defaults::ANONYMOUS_SHARE,
            never_upgrade_share: defaults::NEVER_UPGRADE_SHARE,
            late_join_share: defaults::LATE_JOIN_SHARE,
            leave_share: defaults::LEAVE_SHARE,
            miss_share: defaults::MISS_SHARE,
            duplicate_share: defaults::DUPLICATE_SHARE,
            median_lag_days: defaults::MEDIAN_LAG_DAYS,
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        if self.schedule.is_empty() {
            return Err(SimError::NoReleases);
        }
        if self.schedule.len() > usize::from(u16::MAX) {
            return Err(SimError::TooManyReleases);
        }
        if self.days == 0 {
            return Err(SimError::Days);
        }
        if !(1..=64).contains(&self.max_nodes) {
            return Err(SimError::Nodes(self.max_nodes));
        }
        if !(self.median_lag_days > 0.0 && self.median_lag_days.is_finite()) {
            return Err(SimError::Lag(self.median_lag_days));
        }
        for (name, v) in [
            ("anonymous share", self.anonymous_share),
            ("never-upgrade share", self.never_upgrade_share),
            ("late-join share", self.late_join_share),
            ("leave share", self.leave_share),
            ("miss share", self.miss_share),
            ("duplicate share", self.duplicate_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(SimError::Share(name, v));
            }
        }
        Ok(())
    }
}

/// SplitMix64: spreads (seed, stream) into independent generator seeds.
pub(crate) fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
