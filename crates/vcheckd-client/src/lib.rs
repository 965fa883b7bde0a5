//! The vcheckd client: build a version report's query name, resolve it,
//! verify the zone's signed policy and compute the status; and an agent
//! that does so periodically (docs/CLIENTS.md).
//!
//! What a vendor's Rust software embeds: it depends on the wire format
//! (`vcheckd-proto`), a DNS message codec and the standard library's
//! sockets, and needs no async runtime, database or server code. The
//! `vcheckd check` and `vcheckd agent` commands are built on it, so there
//! is one client implementation in Rust.
//!
//! - [`versioned`]: one check in the protocol the key file says (v2: a
//!   public key; v1: a shared key), sent or previewed.
//! - [`v2`]: the v2 check itself and its kept state ([`v2::ClientState`]).
//! - [`agent`]: the periodic check, its status file and Prometheus textfile.
//! - [`env`]: the administrator's opt-out switches.

pub mod agent;
mod client;
pub mod env;
pub mod resolve;
pub mod v1;
pub mod v2;
pub mod versioned;

pub use agent::{Agent, AgentConfig, AgentStatus};
pub use client::{Client, Outcome, SetupError};
pub use vcheckd_proto as proto;

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use semver::Version;
use thiserror::Error;

use vcheckd_proto::hint::{Hint, HintError};
use vcheckd_proto::protocol::anon::IdKind;
use vcheckd_proto::protocol::{EncodeError, Identity};

pub use env::Policy;
pub use resolve::ExchangeError;

#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("no name server to ask: none given and none in /etc/resolv.conf")]
    NoServer,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("{server} answered {}", rcode_name(*rcode))]
    Rcode {
        server: SocketAddr,
        rcode: ResponseCode,
    },
    #[error("{0} answered without a vcheckd hint (is the zone delegated to vcheckd?)")]
    NoHint(SocketAddr),
    /// NODATA with the zone's SOA: the zone is served, but the name did not
    /// read as a report there (vcheckd answers a name it cannot open so).
    #[error("{0} serves the zone but could not read the report: --key is not the key of --zone (or the name servers no longer accept protocol v1: use the zone's v2 public key)")]
    NotReadable(SocketAddr),
    #[error(transparent)]
    Policy(#[from] vcheckd_proto::protocol::v2::PolicyError),
    /// The client state (PROTOCOL §21) could not be read or saved: a
    /// check that cannot keep it would accept a replayed policy next time.
    #[error("client state: {0}")]
    State(String),
    #[error("bad hint from {server}")]
    BadHint {
        server: SocketAddr,
        #[source]
        source: HintError,
    },
}

/// The mnemonic an operator knows from dig.
fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// Who is reporting. Real ids never leave this struct: only their
/// anonymized forms go into the payload.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub cluster_id: String,
    pub node_id: String,
}

/// The identity a report carries: the anonymized ids (by the protocol's
/// `anonymize`), or none when withheld.
pub(crate) fn identity(
    reporter: Option<&Reporter>,
    anonymize: impl Fn(IdKind<'_>, &str) -> vcheckd_proto::protocol::AnonId,
) -> Identity {
    match reporter {
        None => Identity::Withheld,
        Some(r) => Identity::Known {
            cluster: anonymize(IdKind::Cluster, &r.cluster_id),
            node: anonymize(
                IdKind::Node {
                    cluster: &r.cluster_id,
                },
                &r.node_id,
            ),
        },
    }
}

/// The system's name servers, from /etc/resolv.conf.
pub fn system_servers() -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read("/etc/resolv.conf") else {
        return Vec::new();
    };
    match resolv_conf::Config::parse(&text) {
        Ok(conf) => conf
            .nameservers
            .iter()
            .map(|ns| SocketAddr::new(ns.into(), 53))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// One line a person reading a log understands.
pub fn describe(hint: &Hint, running: &Version) -> String {
    use vcheckd_proto::hint::Status;
    match hint.status {
        Status::UpToDate => format!("vcheckd: {running} is up to date"),
        Status::UpgradeAvailable => {
            format!("vcheckd: {} is available (running {running})", hint.latest)
        }
        Status::UpgradeRequired => format!(
            "vcheckd: upgrade required (running {running}; latest {}): {}",
            hint.latest, hint.message
        ),
        Status::Unknown => format!(
            "vcheckd: {running} is not a known release; latest is {}",
            hint.latest
        ),
    }
}
