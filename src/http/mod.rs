//! The optional HTTP listener: Prometheus metrics (`/metrics`), the JSON
//! API (`/api/v1/...`, the `vcheckd stats` subcommands) and a dashboard
//! page (`/`) whose charts the server draws as SVG.
//!
//! Live counters come from the server's shared [`Metrics`]; every statistic
//! is computed by [`crate::stats`] on a blocking thread, from a read-only
//! connection of its own (never the writer's). docs/STATS.md documents the
//! endpoints and metric names.

mod api;
mod dashboard;
mod exposition;
mod query;
mod server;
mod svg;

use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics::Metrics;

pub use server::{bind, serve};

/// What every request handler shares.
pub struct Context {
    /// The server's database, opened read-only for each statistic.
    pub database: PathBuf,
    /// Statistics from ClickHouse instead (`[clickhouse] stats = true`),
    /// each request bounded by the duration.
    pub clickhouse: Option<(crate::clickhouse::ClickHouseUrl, std::time::Duration)>,
    pub metrics: Arc<Metrics>,
    /// Versions named in charts and metric labels; the rest are "other".
    pub top_versions: usize,
    /// Statistics computed at once (each holds a blocking thread).
    permits: Arc<tokio::sync::Semaphore>,
    fleet: exposition::FleetCache,
    pages: dashboard::PageCache,
}

/// Statistics computed at the same time; more requests wait their turn.
const CONCURRENT_STATS: usize = 2;

impl Context {
    pub fn new(database: PathBuf, metrics: Arc<Metrics>, top_versions: usize) -> Self {
        Context {
            database,
            clickhouse: None,
            metrics,
            top_versions: top_versions.max(1),
            permits: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_STATS)),
            fleet: exposition::FleetCache::default(),
            pages: dashboard::PageCache::default(),
        }
    }
}
