//! The counting model (docs/STATS.md) as values and rules, with no storage,
//! clock or I/O: what a report adds to a node-day and to its version's
//! day, how a node's state follows its reports, what a fleet snapshot
//! counts, and what counters gained. Every backend reads and writes its
//! rows through these types, so no rule exists twice:
//!
//! - SQLite's writer (`store::ingest`) takes reports into [`NodeDay`]s
//!   and [`VersionDay`]s one by one, folds closed days into
//!   [`FleetStates`] and stores their [`Snapshot`]s;
//! - the ClickHouse rollup takes the node-days its server groups (each
//!   report once) through the same [`VersionDay`] and [`FleetStates`];
//! - the statistics' exact path merges [`NodeDay`]s of several databases
//!   ([`MergedNodeDay`]) and reads each node's latest by [`later`];
//! - the processor and the ClickHouse shipper date counter gains through
//!   [`CounterBase`];
//! - [`Fold`] runs the model alone over a set of reports: the property
//!   tests (`tests/fleet_props.rs`, `tests/clickhouse.rs`) hold both backends
//!   to it.
//!
//! Guarantees: every type uses [`Day`] and [`Status`], never bare numbers;
//! versions in node-days and node states are semver (interned once by
//! [`Interner::version`], which refuses other text); node states and
//! snapshots do not depend on the order node-days are taken in, except
//! for reports of the same second and version, where the one taken later
//! wins. Snapshots iterate clusters in key order, so their sums of
//! fractions are the same on every run and every backend.
//!
//! Floor: imports [`crate::clock`] and [`crate::hint`] only (and semver).
//!
//! [`Day`]: crate::clock::Day
//! [`Status`]: crate::hint::Status

mod counters;
mod days;
mod fold;
mod keys;
mod node;
pub mod snapshot;
mod states;

pub use counters::{CounterBase, CounterDelta};
pub use days::{MergedNodeDay, NodeDay, NodeDayKey, ReportId, VersionDay, IDS_PER_NODE_DAY};
pub use fold::{Fold, Reported};
pub use keys::{Id, Interner, NodeKey, Text};
pub use node::{later, DayState, NodeLatest};
pub use snapshot::{Member, Snapshot, VersionFigures, WindowFigures, ACTIVITY_DAYS, MAX_WINDOW};
pub use states::{FleetStates, StoredState};
