//! One check in either protocol, chosen by the key file the client is
//! given: a v2 public key (`vck2-public:...`) speaks v2, a v1 shared key
//! (`vck1:...`) speaks v1. `vcheckd keygen` makes v2 keys by default.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use semver::Version;

use crate::v1::{resolve_hint, Check, Prepared};
use crate::v2::{self, CheckV2, ClientState, PreparedV2, Verified};
use crate::{CheckError, Reporter};
use vcheckd_proto::hint::Hint;
use vcheckd_proto::protocol::v2::effort::Effort;
use vcheckd_proto::protocol::v2::{PrivateKey, PublicKey, SignedPolicy};
use vcheckd_proto::protocol::{EncodeError, Key, KeyError, Payload, ReportId, ZoneName};

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
    /// v2: the effort its proof reached.
    pub effort: Option<Effort>,
}

impl From<PreparedV2> for Sealed {
    fn from(p: PreparedV2) -> Self {
        Sealed {
            name: p.name,
            id: p.id,
            payload: p.payload,
            protocol: 2,
            effort: Some(p.effort),
        }
    }
}

/// What a check learned.
#[derive(Debug, Clone)]
pub struct Answer {
    pub hint: Hint,
    /// The verified policy (protocol v2 only).
    pub verified: Option<Verified>,
    /// The report sent (the second one, if the first was sealed to a key
    /// the server no longer took).
    pub sealed: Sealed,
    /// v2: queries sent, the `_policy` fetch and a resend included.
    pub queries: u32,
}

impl VersionCheck {
    /// A check of `version` by `reporter` (`None`: identity withheld). In
    /// v2 this derives the cluster secret (Argon2id): build it once.
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
            ClientKey::V2(key) => {
                VersionCheck::V2(CheckV2::new(zone, key, version, reporter.as_ref()))
            }
        }
    }

    pub fn version(&self) -> &Version {
        match self {
            VersionCheck::V1(c) => &c.version,
            VersionCheck::V2(c) => &c.version,
        }
    }

    /// The v1 query name (fresh nonce); sends nothing.
    fn prepare_v1(c: &Check) -> Result<Sealed, EncodeError> {
        let Prepared { name, id, payload } = c.prepare().map_err(|e| match e {
            CheckError::Encode(e) => e,
            other => EncodeError::Zone(other.to_string()),
        })?;
        Ok(Sealed {
            name,
            id,
            payload,
            protocol: 1,
            effort: None,
        })
    }

    /// The policy a v2 report is sealed under: the kept one if its key is
    /// still accepted, else the zone's `_policy`, fetched and verified
    /// (one more query: a first check, or one more than a week after the
    /// last). Returns it and whether it was fetched.
    fn seal_policy(
        c: &CheckV2,
        servers: &[SocketAddr],
        timeout: Duration,
        state: &mut ClientState,
        now: u64,
    ) -> Result<(SignedPolicy, bool), CheckError> {
        if let Some(kept) = c.usable(state, now) {
            return Ok((kept, false));
        }
        let records = v2::resolve_policy(&c.policy_name(), servers, timeout)?;
        Ok((c.verify_any(&records, state, now)?.policy, true))
    }

    /// What would be sent, without sending a report; v2 verifies the
    /// policy it seals under (fetching `_policy` if none is kept).
    pub fn preview(
        &self,
        servers: &[SocketAddr],
        timeout: Duration,
        state: &mut ClientState,
        now: u64,
    ) -> Result<(Sealed, Option<Verified>), CheckError> {
        match self {
            VersionCheck::V1(c) => Ok((Self::prepare_v1(c)?, None)),
            VersionCheck::V2(c) => {
                let (policy, _) = Self::seal_policy(c, servers, timeout, state, now)?;
                let sealed = c.prepare_at(&policy.seal, policy.effort, now)?;
                let hint = policy.hint_for(&c.version);
                Ok((sealed.into(), Some(Verified { policy, hint })))
            }
        }
    }

    /// Sends one report and reads the answer: v1's hint, or v2's policy,
    /// verified (signature, validity, expiry, replay and rollback against
    /// `state`) and turned into a hint with the release rule.
    pub fn send(
        &self,
        servers: &[SocketAddr],
        timeout: Duration,
        state: &mut ClientState,
        now: u64,
    ) -> Result<Answer, CheckError> {
        match self {
            VersionCheck::V1(c) => {
                let sealed = Self::prepare_v1(c)?;
                let prepared = Prepared {
                    name: sealed.name.clone(),
                    id: sealed.id,
                    payload: sealed.payload.clone(),
                };
                Ok(Answer {
                    hint: resolve_hint(&prepared, servers, timeout)?,
                    verified: None,
                    sealed,
                    queries: 1,
                })
            }
            VersionCheck::V2(c) => {
                let (policy, fetched) = Self::seal_policy(c, servers, timeout, state, now)?;
                let mut queries = u32::from(fetched);
                let mut prepared = c.prepare_at(&policy.seal, policy.effort, now)?;
                let mut verified = Self::ask(c, &prepared, servers, timeout, state, now)?;
                queries += 1;
                // Sealed to a key the server no longer takes (the kept
                // policy was older than its epoch window): the answer
                // carries the current key; send once more, sealed to it.
                if !prepared.epoch.accepted_at(verified.policy.issued) {
                    prepared = c.prepare_at(&verified.policy.seal, verified.policy.effort, now)?;
                    verified = Self::ask(c, &prepared, servers, timeout, state, now)?;
                    queries += 1;
                }
                Ok(Answer {
                    hint: verified.hint.clone(),
                    verified: Some(verified),
                    sealed: prepared.into(),
                    queries,
                })
            }
        }
    }

    fn ask(
        c: &CheckV2,
        prepared: &PreparedV2,
        servers: &[SocketAddr],
        timeout: Duration,
        state: &mut ClientState,
        now: u64,
    ) -> Result<Verified, CheckError> {
        let records = v2::resolve_policy(&prepared.name, servers, timeout)?;
        Ok(c.verify_any(&records, state, now)?)
    }
}

/// Makes v2 report names without a resolver, from the zone's private key:
/// for operators' load tests and debugging (`vcheckd encode --key
/// PRIVATE`), sealed to the current epoch's key with the effort asked.
pub fn seal_with_private(
    check: &CheckV2,
    key: &PrivateKey,
    effort: Effort,
    now: u64,
) -> Result<Sealed, EncodeError> {
    let ring = vcheckd_proto::protocol::v2::PrivateKeyring::new(std::slice::from_ref(key), now)
        .map_err(|e| EncodeError::Zone(e.to_string()))?;
    let epoch = vcheckd_proto::protocol::v2::Epoch::at(now);
    let seal = ring.seal_key(key.id, epoch).ok_or_else(|| {
        EncodeError::Zone(format!("the key file's ratchet starts after epoch {epoch}"))
    })?;
    Ok(check.prepare_at(&seal, effort, now)?.into())
}
