//! The client side: build a report's query name, resolve it, read the hint.
//!
//! Used by `vcheckd check`, and meant to be the library a vendor's software
//! calls. Everything a cluster administrator may want to see before anything
//! is sent is available from [`Check::preview`].

pub mod policy;
pub mod resolve;
pub mod v2;
pub mod versioned;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use semver::Version;
use thiserror::Error;

use crate::hint::{Hint, HintError};
use crate::protocol::anon::IdKind;
use crate::protocol::name::encode_query_name;
use crate::protocol::{anonymize, EncodeError, Identity, Key, Payload, ReportId, ZoneName};

pub use policy::Policy;
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
    Policy(#[from] crate::protocol::v2::PolicyError),
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
    anonymize: impl Fn(IdKind<'_>, &str) -> crate::protocol::AnonId,
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

/// One version check, ready to be previewed or sent.
#[derive(Debug, Clone)]
pub struct Check {
    pub zone: ZoneName,
    pub key: Key,
    pub version: Version,
    /// `None` withholds identity (DISABLE_TELEMETRY).
    pub reporter: Option<Reporter>,
}

/// Exactly what a check sends.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Absolute query name, with the trailing dot (so that search domains,
    /// e.g. Kubernetes' ndots:5, are never appended).
    pub name: String,
    pub id: ReportId,
    pub payload: Payload,
}

impl Check {
    pub fn payload(&self, timestamp: u64) -> Payload {
        Payload {
            timestamp,
            identity: identity(self.reporter.as_ref(), |kind, id| {
                anonymize(&self.key, kind, id)
            }),
            version: self.version.clone(),
        }
    }

    /// Builds the query name with a fresh nonce; sends nothing.
    pub fn prepare(&self) -> Result<Prepared, CheckError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let payload = self.payload(now);
        let (name, id) = encode_query_name(&self.key, &self.zone, &payload)?;
        Ok(Prepared { name, id, payload })
    }
}

/// Asks each server in turn for the TXT hint of `prepared`; the first
/// usable answer wins, and the last failure is reported if none is.
pub async fn resolve_hint(
    prepared: &Prepared,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Hint, CheckError> {
    let name = Name::from_ascii(&prepared.name)
        .map_err(|_| CheckError::Encode(EncodeError::Zone(prepared.name.clone())))?;
    let mut last = CheckError::NoServer;
    for server in servers {
        match ask(*server, &name, timeout).await {
            Ok(hint) => return Ok(hint),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn ask(server: SocketAddr, name: &Name, timeout: Duration) -> Result<Hint, CheckError> {
    let answer = resolve::exchange(server, name, RecordType::TXT, timeout).await?;
    hint_from_answer(server, &answer)
}

/// Reads the hint out of `server`'s answer: the first TXT record that is a
/// vcheckd hint wins. Public so that the answer parser can be fuzzed
/// (fuzz/fuzz_targets/client_answer.rs) with whatever a server may send.
pub fn hint_from_answer(server: SocketAddr, answer: &Message) -> Result<Hint, CheckError> {
    let rcode = answer.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(CheckError::Rcode { server, rcode });
    }
    let soa = answer
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA);
    let mut last = if answer.answers.is_empty() && soa {
        CheckError::NotReadable(server)
    } else {
        CheckError::NoHint(server)
    };
    for record in &answer.answers {
        if let RData::TXT(txt) = &record.data {
            let text: String = txt
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect();
            match Hint::parse_txt(&text) {
                Ok(hint) => return Ok(hint),
                Err(HintError::NotAHint) => {}
                Err(source) => last = CheckError::BadHint { server, source },
            }
        }
    }
    Err(last)
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
    use crate::hint::Status;
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
