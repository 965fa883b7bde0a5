//! vcheckd: an authoritative DNS server for version-check telemetry.
//!
//! Clients phone home with one DNS lookup whose name carries an encrypted,
//! anonymized report ([`protocol`]); the server ([`dns`]) records it
//! ([`store`]) and answers with the latest-version [`hint`]. The [`client`]
//! module is the other side, used by `vcheckd check` and embeddable.

pub mod clickhouse;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod fleet;
pub mod forward;
pub mod forwarding;
pub mod http;
pub mod intake;
pub mod journal;
pub mod lanes;
pub mod metrics;
pub mod opener;
pub mod processor;
pub mod recent;
pub mod replay;
pub mod report;
pub mod simulate;
pub mod stats;
pub mod store;

/// The wire format and the release rule live in `vcheckd-proto`, the client
/// in `vcheckd-client` (both workspace members): the server and the client
/// share one implementation. Re-exported under their old paths.
pub use vcheckd_client as client;
pub use vcheckd_proto::{hint, protocol};
