//! The authoritative responder and its transports.
//!
//! [`responder`] turns one request's bytes into one response's bytes and
//! an outcome, and knows nothing of sockets, clocks or the journal;
//! [`handler`] gives it the zones and the time and takes its outcome to the
//! journal and the metrics; [`udp`] and [`tcp`] move bytes ([`rrl`] limits
//! what UDP sends); [`server`] binds them together with signals and shutdown.

pub mod catalog;
pub mod handler;
mod request;
pub mod responder;
pub mod rrl;
mod serials;
pub mod server;
pub mod tcp;
pub mod udp;

pub use catalog::{Catalog, CatalogError};
pub use handler::Handler;
pub use responder::{respond, Answered, NameOutcome, Outcome, Rcode, Transport};

/// Where the answer path hands each valid report. Called on the answer
/// path for every report, so it must never block (the journal's append
/// copies into memory; a full journal drops and counts).
pub trait ReportSink: Send + Sync {
    fn accept(&self, report: crate::report::Incoming<'_>);
}

/// Largest UDP answer we send, whatever the client offers (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
