//! The authoritative responder and its transports.
//!
//! [`responder`] turns one request's bytes into one response's bytes and
//! an outcome, and knows nothing of sockets, clocks or the journal; a
//! [`RequestHandler`] (the daemon's gives the responder the zones and the
//! time and takes its outcome to the journal and the metrics) is what the
//! transports call; [`udp`] and [`tcp`] move bytes ([`rrl`] limits
//! what UDP sends) on the sockets [`listen`] binds. What the process does
//! around them (journals, consumers, HTTP, signals) is src/daemon's.

pub mod catalog;
pub mod listen;
mod request;
pub mod responder;
pub mod rrl;
mod serials;
pub mod tcp;
pub mod udp;

pub use catalog::{Catalog, CatalogError};
pub use responder::{respond, servfail, Answered, NameOutcome, Outcome, Rcode, Transport};

/// What the transports hand every request to, as hickory's
/// `Server::new(handler)` takes a `RequestHandler`: the DNS room moves
/// bytes and limits rates, and leaves the rest (zones, clock, where
/// reports go, what is counted) to the handler it is given.
pub trait RequestHandler: Send + Sync + 'static {
    /// Writes the response to `request` into `out`; false: send nothing
    /// (a request not worth an answer).
    fn handle(&self, request: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool;
    /// Rate limiting decided `action` for a UDP response.
    fn rate_limited(&self, action: rrl::Action);
    /// A TCP connection was refused: its source already had its share open.
    fn tcp_refused_per_source(&self);
}

/// Largest UDP answer we send, whatever the client offers (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
