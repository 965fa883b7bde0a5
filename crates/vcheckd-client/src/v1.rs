//! Protocol v1, for software already in the field: the report sealed with
//! the zone's shared AES key, the answer a per-client TXT hint.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use semver::Version;

use crate::{identity, resolve, CheckError, Reporter};
use vcheckd_proto::hint::{Hint, HintError};
use vcheckd_proto::protocol::name::encode_query_name;
use vcheckd_proto::protocol::{anonymize, EncodeError, Key, Payload, ReportId, ZoneName};

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
pub fn resolve_hint(
    prepared: &Prepared,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Hint, CheckError> {
    let name = Name::from_ascii(&prepared.name)
        .map_err(|_| CheckError::Encode(EncodeError::Zone(prepared.name.clone())))?;
    let mut last = CheckError::NoServer;
    for server in servers {
        match ask(*server, &name, timeout) {
            Ok(hint) => return Ok(hint),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn ask(server: SocketAddr, name: &Name, timeout: Duration) -> Result<Hint, CheckError> {
    let answer = resolve::exchange(server, name, RecordType::TXT, timeout)?;
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
