//! ClickHouse: where a fleet that outgrows one machine keeps its record.
//!
//! Every name server keeps its journal and SQLite as before; a second
//! journal consumer, the [`Shipper`], copies each report into a ClickHouse
//! database (one server, or a cluster of shards), and [`ClickHouseReader`]
//! answers the statistics from it through the same [`StatsReader`] API the
//! SQLite store implements, so `src/stats` counts ClickHouse's reports
//! exactly as it counts SQLite's.
//!
//! Only SQL and HTTP features present in both ClickHouse 18.16 (Debian's
//! package) and current releases are used: see docs/DEPLOY.md §9.
//!
//! [`StatsReader`]: crate::store::reader::StatsReader

mod client;
mod closer;
mod counters;
mod dedup;
mod lease;
mod reader;
mod rollup;
mod row;
mod schema;
mod shipper;
mod url;

pub use client::{ClickHouseError, Client};
pub(crate) use closer::Closer;
pub use reader::ClickHouseReader;
pub use rollup::{Rollup, RollupReport, CHECKED_DAYS};
pub use schema::{migrate, Topology, SCHEMA_VERSION};
pub use shipper::{Shipper, ShipperConfig, CONSUMER};
pub use url::{ClickHouseUrl, UrlError};
