//! The authoritative responder and its transports.
//!
//! [`responder`] turns one request's bytes into one response's bytes and
//! an outcome, and knows nothing of sockets, clocks or the journal;
//! [`handler`] gives it the zones and the time and takes its outcome to the
//! journal and the metrics; [`udp`] and [`tcp`] move bytes ([`rrl`] limits
//! what UDP sends) on the sockets [`listen`] binds. What the process does
//! around them (journals, consumers, HTTP, signals) is src/daemon's.

pub mod catalog;
pub mod handler;
pub mod listen;
mod request;
pub mod responder;
pub mod rrl;
mod serials;
pub mod tcp;
pub mod udp;

pub use catalog::{Catalog, CatalogError};
pub use handler::Handler;
pub use responder::{respond, servfail, Answered, NameOutcome, Outcome, Rcode, Transport};

/// Where the answer path hands each valid report. Called on the answer
/// path for every report, so it must never block (the journal's append
/// copies into memory).
pub trait ReportSink: Send + Sync {
    /// Takes the report, or says it could not be recorded: then the answer
    /// becomes SERVFAIL, so that the resolver asks another name server of
    /// the zone rather than the client believing it was counted.
    fn accept(&self, report: crate::report::Incoming<'_>) -> Result<(), NotRecorded>;
}

/// A report that cannot be made durable (journal full with nothing lower to
/// evict, its disk failing, closing); the sink has counted why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRecorded;

/// Largest UDP answer we send, whatever the client offers (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
