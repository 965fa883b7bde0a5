//! The authoritative responder and its transports.
//!
//! [`responder`] turns one request's bytes into one response's bytes and
//! knows nothing of sockets; [`udp`] and [`tcp`] move bytes ([`rrl`] limits
//! what UDP sends); [`server`] binds them together with signals and shutdown.

pub mod catalog;
pub mod responder;
pub mod rrl;
pub mod server;
pub mod tcp;
pub mod udp;

pub use catalog::{Catalog, CatalogError};
pub use responder::{Responder, Transport};

/// Largest UDP answer we send, whatever the client offers (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
