//! One check in either protocol, chosen by the key file the client is
//! given: a v2 public key (`vck2-public:...`) speaks v2, a v1 shared key
//! (`vck1:...`) speaks v1. `vcheckd keygen` makes v2 keys by default.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use semver::Version;

use super::v2::{self, CheckV2, SerialState, Verified};
use super::{resolve_hint, Check, CheckError, Prepared, Reporter};
use crate::hint::Hint;
use crate::protocol::v2::PublicKey;
use crate::protocol::{EncodeError, Key, KeyError, Payload, ReportId, ZoneName};

/// The key a client holds.
#[derive(Debug, Clone)]
pub enum ClientKey {
    V1(Key),
    V2(PublicKey),
}

impl ClientKey {
    /// Reads a client's key file: a v2 public key, else a v1 shared key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        match PublicKey::load(path) {
            Ok(key) => Ok(ClientKey::V2(key)),
            Err(KeyError::Kind {
                found: "v1 shared", ..
            }) => Key::load(path).map(ClientKey::V1),
            Err(e) => Err(e),
        }
    }
}

/// A check ready to be previewed or sent, in the key's protocol.
#[derive(Debug, Clone)]
pub enum VersionCheck {
    V1(Check),
    V2(CheckV2),
}

/// Exactly what a check sends, in either protocol.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub name: String,
    pub id: ReportId,
    pub payload: Payload,
    pub protocol: u8,
}

/// What a check learned.
#[derive(Debug, Clone)]
pub struct Answer {
    pub hint: Hint,
    /// The verified policy (protocol v2 only).
    pub verified: Option<Verified>,
}

impl VersionCheck {
    pub fn new(
        zone: ZoneName,
        key: ClientKey,
        version: Version,
        reporter: Option<Reporter>,
    ) -> Self {
        match key {
            ClientKey::V1(key) => VersionCheck::V1(Check {
                zone,
                key,
                version,
                reporter,
            }),
            ClientKey::V2(key) => VersionCheck::V2(CheckV2 {
                zone,
                key,
                version,
                reporter,
            }),
        }
    }

    pub fn version(&self) -> &Version {
        match self {
            VersionCheck::V1(c) => &c.version,
            VersionCheck::V2(c) => &c.version,
        }
    }

    /// Builds the query name (fresh nonce or ephemeral key); sends nothing.
    pub fn prepare(&self) -> Result<Sealed, EncodeError> {
        match self {
            VersionCheck::V1(c) => {
                let Prepared { name, id, payload } = c.prepare().map_err(|e| match e {
                    CheckError::Encode(e) => e,
                    other => EncodeError::Zone(other.to_string()),
                })?;
                Ok(Sealed {
                    name,
                    id,
                    payload,
                    protocol: 1,
                })
            }
            VersionCheck::V2(c) => {
                let p = c.prepare()?;
                Ok(Sealed {
                    name: p.name,
                    id: p.id,
                    payload: p.payload,
                    protocol: 2,
                })
            }
        }
    }

    /// Sends `sealed` and reads the answer: v1's hint, or v2's policy,
    /// verified (signature, expiry, rollback against `state`) and turned
    /// into a hint with the release rule.
    pub async fn send(
        &self,
        sealed: &Sealed,
        servers: &[SocketAddr],
        timeout: Duration,
        state: &mut SerialState,
        now: u64,
    ) -> Result<Answer, CheckError> {
        match self {
            VersionCheck::V1(_) => {
                let prepared = Prepared {
                    name: sealed.name.clone(),
                    id: sealed.id,
                    payload: sealed.payload.clone(),
                };
                Ok(Answer {
                    hint: resolve_hint(&prepared, servers, timeout).await?,
                    verified: None,
                })
            }
            VersionCheck::V2(c) => {
                let wire = v2::resolve_policy(&sealed.name, servers, timeout).await?;
                let verified = c.verify(&wire, state, now)?;
                Ok(Answer {
                    hint: verified.hint.clone(),
                    verified: Some(verified),
                })
            }
        }
    }
}
