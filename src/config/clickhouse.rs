//! The `[clickhouse]` section: shipping reports to ClickHouse, and reading
//! statistics from it (docs/DEPLOY.md §7 and §9).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::clickhouse::{ClickHouseUrl, Client, Rollup, ShipperConfig, Topology};

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// `clickhouse://HOST:PORT/DATABASE`, the HTTP interface of one
    /// ClickHouse server (for a cluster: any node; inserts go through its
    /// Distributed table).
    pub url: ClickHouseUrl,
    /// Ship every report to ClickHouse (a second journal consumer).
    #[serde(default = "defaults::ship")]
    pub ship: bool,
    /// The dashboard, JSON API and fleet gauges read from ClickHouse
    /// instead of this server's SQLite database.
    #[serde(default)]
    pub stats: bool,
    /// This name server's name in ClickHouse (per-server counts). Default:
    /// the host name.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Reports per insert, at most.
    #[serde(default = "defaults::batch")]
    pub batch: usize,
    /// How long the shipper waits for a batch to fill before it sends what
    /// it has: the usual shipping delay.
    #[serde(default = "defaults::interval_ms")]
    pub interval_ms: u64,
    /// Bound on one request to ClickHouse.
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
    /// Longest pause between retries while ClickHouse is unreachable.
    #[serde(default = "defaults::max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// A cluster from ClickHouse's `remote_servers`: `reports` is then a
    /// Distributed table over `reports_local` on each of `nodes`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// With `cluster`: every node's HTTP address, for creating the tables.
    #[serde(default)]
    pub nodes: Vec<ClickHouseUrl>,
    /// Take part in the rollup (closing days, refreshing the open day)
    /// that statistics from ClickHouse read: one server at a time runs
    /// it, by a lease in ClickHouse. On for every server, so that another
    /// takes over when the one running it stops.
    #[serde(default = "defaults::rollup")]
    pub rollup: bool,
    /// How often the rollup runs: the most the open day's statistics lag.
    #[serde(default = "defaults::rollup_interval_secs")]
    pub rollup_interval_secs: u64,
    /// How long after midnight (UTC) the day before stays open, for copies
    /// and shipping delays across midnight.
    #[serde(default = "defaults::rollup_grace_secs")]
    pub rollup_grace_secs: u64,
}

mod defaults {
    pub fn ship() -> bool {
        true
    }
    pub fn batch() -> usize {
        10_000
    }
    pub fn interval_ms() -> u64 {
        1_000
    }
    pub fn timeout_secs() -> u64 {
        10
    }
    pub fn max_backoff_secs() -> u64 {
        30
    }
    pub fn rollup() -> bool {
        true
    }
    pub fn rollup_interval_secs() -> u64 {
        300
    }
    pub fn rollup_grace_secs() -> u64 {
        900
    }
}

/// Names written into SQL and rows as they are: a conservative alphabet.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl ClickHouseConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let bad = |what: String| Err(ConfigError::ClickHouse(what));
        match &self.cluster {
            Some(c) if !plain(c) || c.contains(['-', '.']) => {
                bad(format!("cluster {c:?}: letters, digits and _ only"))
            }
            Some(_) if self.nodes.is_empty() => {
                bad("cluster needs nodes, the HTTP address of every node".into())
            }
            None if !self.nodes.is_empty() => bad("nodes without cluster".into()),
            _ => match &self.server_name {
                Some(n) if !plain(n) => {
                    bad(format!("server_name {n:?}: letters, digits, _ - . only"))
                }
                _ => Ok(()),
            },
        }
    }

    pub fn topology(&self) -> Topology {
        match &self.cluster {
            Some(name) => Topology::Cluster {
                name: name.clone(),
                nodes: self.nodes.clone(),
            },
            None => Topology::Single,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    /// The configured server name, else the host name (made plain).
    pub fn server_name(&self) -> String {
        if let Some(n) = &self.server_name {
            return n.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_default();
        let name: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(64)
            .collect();
        if name.is_empty() {
            "vcheckd".into()
        } else {
            name
        }
    }

    /// The rollup job for this database.
    pub fn rollup_job(&self) -> Rollup {
        Rollup::new(
            Client::new(&self.url, self.rollup_timeout()),
            self.topology(),
            self.rollup_grace_secs,
        )
        .with_lease(&self.server_name(), self.rollup_lease_ttl())
    }

    /// How long the rollup lease lasts from each renewal: three runs'
    /// interval, at least 15 minutes (a day's close at a large fleet
    /// takes minutes; the lease is renewed between days).
    pub fn rollup_lease_ttl(&self) -> Duration {
        Duration::from_secs(self.rollup_interval_secs.saturating_mul(3).max(900))
    }

    /// Bound on one rollup request: it reads a day's reports and every
    /// node's state, longer than the shipper's inserts take.
    pub fn rollup_timeout(&self) -> Duration {
        self.timeout().max(Duration::from_secs(600))
    }

    pub fn shipper(&self) -> ShipperConfig {
        ShipperConfig {
            client: Client::new(&self.url, self.timeout()),
            topology: self.topology(),
            server: self.server_name(),
            max_batch: self.batch.max(1),
            interval: Duration::from_millis(self.interval_ms.max(1)),
            max_backoff: Duration::from_secs(self.max_backoff_secs.max(1)),
            // The [server] setting: the server sets it when it starts the shipper.
            replay_window: crate::replay::ReplayWindow::DEFAULT,
        }
    }
}
