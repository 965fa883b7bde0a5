//! The protocol v2 client: seal a report to the zone's public key, ask for
//! it, verify the signed policy in the answer, and compute the status from
//! it with the server's own rule.
//!
//! Nothing here is secret: the client carries the zone's public key file
//! only. What it must keep is the highest policy serial it has accepted
//! per zone ([`SerialState`]), so that an old policy replayed by someone
//! on the path is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use semver::Version;

use super::{resolve, CheckError, Reporter};
use crate::hint::Hint;
use crate::protocol::v2::policy::{from_txt_strings, PolicyError, SignedPolicy};
use crate::protocol::v2::{self, PublicKey};
use crate::protocol::{EncodeError, KeyId, Payload, ReportId, ZoneName};

/// One v2 version check, ready to be previewed or sent.
#[derive(Debug, Clone)]
pub struct CheckV2 {
    pub zone: ZoneName,
    pub key: PublicKey,
    pub version: Version,
    /// `None` withholds identity (DISABLE_TELEMETRY).
    pub reporter: Option<Reporter>,
}

/// Exactly what a check sends.
#[derive(Debug, Clone)]
pub struct PreparedV2 {
    /// Absolute query name, with the trailing dot.
    pub name: String,
    pub id: ReportId,
    pub payload: Payload,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl CheckV2 {
    pub fn payload(&self, timestamp: u64) -> Payload {
        Payload {
            timestamp,
            identity: super::identity(self.reporter.as_ref(), |kind, id| {
                v2::anonymize(&self.zone, kind, id)
            }),
            version: self.version.clone(),
        }
    }

    /// Seals the report with a fresh ephemeral key; sends nothing.
    pub fn prepare(&self) -> Result<PreparedV2, EncodeError> {
        let payload = self.payload(unix_now());
        let (name, id) = v2::encode_query_name(&self.key, &self.zone, &payload)?;
        Ok(PreparedV2 { name, id, payload })
    }

    /// The name that serves the signed policy without a report.
    pub fn policy_name(&self) -> String {
        policy_name(&self.zone, self.key.id)
    }

    /// Verifies a policy answer, computes the status for this version, and
    /// records the serial in `state`.
    pub fn verify(
        &self,
        wire: &[u8],
        state: &mut SerialState,
        now: u64,
    ) -> Result<Verified, PolicyError> {
        let policy = SignedPolicy::verify(
            wire,
            &self.zone,
            std::slice::from_ref(&self.key),
            now,
            state.seen(&self.zone),
        )?;
        state.accept(&self.zone, policy.serial);
        let hint = policy.releases.hint_for(&self.version);
        Ok(Verified { policy, hint })
    }
}

/// `<key id>._policy.<zone>.`
pub fn policy_name(zone: &ZoneName, key: KeyId) -> String {
    format!("{}._policy.{}.", key.0, zone)
}

/// A verified policy and the hint this client computed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub policy: SignedPolicy,
    pub hint: Hint,
}

/// Asks each server in turn for the TXT of `name` and returns the first
/// policy answer's wire form (unverified).
pub async fn resolve_policy(
    name: &str,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<u8>, CheckError> {
    let qname = Name::from_ascii(name)
        .map_err(|_| CheckError::Encode(EncodeError::Zone(name.to_string())))?;
    let mut last = CheckError::NoServer;
    for server in servers {
        match ask(*server, &qname, timeout).await {
            Ok(wire) => return Ok(wire),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn ask(server: SocketAddr, name: &Name, timeout: Duration) -> Result<Vec<u8>, CheckError> {
    let answer = resolve::exchange(server, name, RecordType::TXT, timeout).await?;
    let rcode = answer.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(CheckError::Rcode { server, rcode });
    }
    answer
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::TXT(txt) => from_txt_strings(&txt.txt_data),
            _ => None,
        })
        .ok_or(CheckError::Policy(PolicyError::Missing))
}

/// The highest policy serial accepted per zone, in a small text file
/// (`<zone> <serial>` per line), so that a replayed older policy is
/// refused even after a restart.
#[derive(Debug, Default)]
pub struct SerialState {
    path: Option<PathBuf>,
    seen: Vec<(ZoneName, u32)>,
}

impl SerialState {
    /// Reads `path`; a missing file is an empty state (first run).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let seen = text
            .lines()
            .filter_map(|l| {
                let (zone, serial) = l.trim().split_once(' ')?;
                Some((ZoneName::new(zone).ok()?, serial.trim().parse().ok()?))
            })
            .collect();
        Ok(SerialState {
            path: Some(path.to_path_buf()),
            seen,
        })
    }

    /// A state that is not kept between runs.
    pub fn in_memory() -> Self {
        SerialState::default()
    }

    /// The default place: `$XDG_STATE_HOME/vcheckd/policy-serials`, else
    /// `~/.local/state/vcheckd/policy-serials`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
            })?;
        Some(base.join("vcheckd").join("policy-serials"))
    }

    pub fn seen(&self, zone: &ZoneName) -> Option<u32> {
        self.seen.iter().find(|(z, _)| z == zone).map(|(_, s)| *s)
    }

    fn accept(&mut self, zone: &ZoneName, serial: u32) {
        match self.seen.iter_mut().find(|(z, _)| z == zone) {
            Some((_, s)) => *s = (*s).max(serial),
            None => self.seen.push((zone.clone(), serial)),
        }
    }

    /// Writes the state (atomically: a temp file renamed over the old one).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let text: String = self
            .seen
            .iter()
            .map(|(z, s)| format!("{z} {s}\n"))
            .collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_state_survives_a_restart_and_only_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("serials");
        let zone = ZoneName::new("vc.example.com").unwrap();
        let mut state = SerialState::load(&path).unwrap();
        assert_eq!(state.seen(&zone), None);
        state.accept(&zone, 7);
        state.accept(&zone, 5);
        state.save().unwrap();
        let again = SerialState::load(&path).unwrap();
        assert_eq!(again.seen(&zone), Some(7));
    }
}
