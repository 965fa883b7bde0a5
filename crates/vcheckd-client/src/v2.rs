//! The protocol v2 client: fetch the zone's signed policy when no usable
//! one is kept, seal a report to the sealing key it carries with the
//! effort it suggests, ask for it, verify the signed policy in the answer,
//! and compute the status from it with the server's own rule.
//!
//! Nothing here is secret: the client carries the zone's verification key
//! only. What it must keep, per zone and key id ([`ClientState`]), is the
//! newest serial and issued time it accepted (so that an old policy
//! replayed by someone on the path is refused) and the last verified
//! policy (whose sealing key and effort the next report uses, so that a
//! report costs one query, not two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::{resolve, CheckError, Reporter};
use vcheckd_proto::hint::Hint;
use vcheckd_proto::protocol::name::frame_to_name;
use vcheckd_proto::protocol::v2::effort::{self, Effort};
use vcheckd_proto::protocol::v2::policy::{from_txt_strings, Freshness, PolicyError, SignedPolicy};
use vcheckd_proto::protocol::v2::{frame, ClusterSecret, Epoch, PublicKey, SealKey};
use vcheckd_proto::protocol::{AnonId, EncodeError, Identity, KeyId, Payload, ReportId, ZoneName};

/// How long a client spends on the effort proof, at most (one core). It
/// stops as soon as the suggested effort is reached; when time runs out it
/// sends the best proof found (a lower priority, but still a report).
pub const DEFAULT_EFFORT_BUDGET: Duration = Duration::from_millis(250);

/// One v2 version check, ready to be previewed or sent. Building it derives
/// the cluster secret (Argon2id, about a third of a second): build it once
/// per process and keep it.
#[derive(Debug, Clone)]
pub struct CheckV2 {
    pub zone: ZoneName,
    pub key: PublicKey,
    pub version: Version,
    identity: Identity,
    pub effort_budget: Duration,
}

/// Exactly what a check sends.
#[derive(Debug, Clone)]
pub struct PreparedV2 {
    /// Absolute query name, with the trailing dot.
    pub name: String,
    pub id: ReportId,
    pub payload: Payload,
    /// The effort its proof reached.
    pub effort: Effort,
    /// The epoch whose key it is sealed to.
    pub epoch: Epoch,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The anonymized ids of `reporter` under `zone` (docs/PROTOCOL.md §17).
pub fn identity(zone: &ZoneName, reporter: Option<&Reporter>) -> Identity {
    match reporter {
        None => Identity::Withheld,
        Some(r) => {
            let secret = ClusterSecret::derive(zone, &r.cluster_id);
            Identity::Known {
                cluster: secret.cluster(),
                node: secret.node(&r.node_id),
            }
        }
    }
}

impl CheckV2 {
    pub fn new(
        zone: ZoneName,
        key: PublicKey,
        version: Version,
        reporter: Option<&Reporter>,
    ) -> Self {
        let identity = identity(&zone, reporter);
        CheckV2 {
            zone,
            key,
            version,
            identity,
            effort_budget: DEFAULT_EFFORT_BUDGET,
        }
    }

    /// A check with ids already anonymized (a process that keeps them).
    pub fn with_ids(
        zone: ZoneName,
        key: PublicKey,
        version: Version,
        ids: Option<(AnonId, AnonId)>,
    ) -> Self {
        CheckV2 {
            zone,
            key,
            version,
            identity: match ids {
                None => Identity::Withheld,
                Some((cluster, node)) => Identity::Known { cluster, node },
            },
            effort_budget: DEFAULT_EFFORT_BUDGET,
        }
    }

    pub fn payload(&self, timestamp: u64) -> Payload {
        Payload {
            timestamp,
            identity: self.identity,
            version: self.version.clone(),
        }
    }

    /// Seals the report to `seal` with a fresh ephemeral key and searches a
    /// proof of `target` effort within the budget; sends nothing.
    pub fn prepare(&self, seal: &SealKey, target: Effort) -> Result<PreparedV2, EncodeError> {
        self.prepare_at(seal, target, unix_now())
    }

    pub fn prepare_at(
        &self,
        seal: &SealKey,
        target: Effort,
        now: u64,
    ) -> Result<PreparedV2, EncodeError> {
        let payload = self.payload(now);
        let mut sealed = frame::seal(seal, &self.zone, &payload)?;
        let effort = prove_within(&mut sealed, target, self.effort_budget);
        Ok(PreparedV2 {
            name: frame_to_name(&sealed, &self.zone)?,
            id: frame::frame_report_id(&sealed),
            payload,
            effort,
            epoch: seal.epoch,
        })
    }

    /// The name that serves the signed policy without a report.
    pub fn policy_name(&self) -> String {
        policy_name(&self.zone, self.key.id)
    }

    /// Verifies a policy answer against `state`, records it there, and
    /// computes the status for this version.
    pub fn verify(
        &self,
        wire: &[u8],
        state: &mut ClientState,
        now: u64,
    ) -> Result<Verified, PolicyError> {
        let policy = SignedPolicy::verify(
            wire,
            &self.zone,
            &self.key,
            now,
            state.freshness(&self.zone, self.key.id),
        )?;
        state.accept(&self.zone, &policy, wire);
        let hint = policy.hint_for(&self.version);
        Ok(Verified { policy, hint })
    }

    /// Verifies the `v=vc2` records of one answer in their order and keeps
    /// the first that verifies (docs/PROTOCOL.md §20); when none does, the
    /// first one's refusal. `records` is never empty ([`resolve_policy`]).
    pub fn verify_any(
        &self,
        records: &[Vec<u8>],
        state: &mut ClientState,
        now: u64,
    ) -> Result<Verified, PolicyError> {
        let mut first = None;
        for wire in records {
            match self.verify(wire, state, now) {
                Ok(verified) => return Ok(verified),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or(PolicyError::Missing))
    }

    /// The kept policy whose sealing key a report may use at `now`, if any.
    pub fn usable(&self, state: &ClientState, now: u64) -> Option<SignedPolicy> {
        state
            .policy(&self.zone, &self.key)
            .filter(|p| p.seal.epoch.accepted_at(now))
    }
}

/// Searches a proof of `target` effort for `frame`, for at most `budget`
/// of this thread's time, in slices of 4096 tries; keeps the best found.
pub fn prove_within(frame: &mut [u8], target: Effort, budget: Duration) -> Effort {
    const SLICE: u64 = 4_096;
    let start = Instant::now();
    let mut best = (Effort(0), frame[frame.len() - effort::PROOF_LEN..].to_vec());
    let mut base = 0u64;
    loop {
        let got = effort::prove_from(frame, target, base, SLICE);
        if got > best.0 || base == 0 {
            best = (got, frame[frame.len() - effort::PROOF_LEN..].to_vec());
        }
        base += SLICE;
        if best.0 >= target || start.elapsed() >= budget || base >= 1 << 32 {
            break;
        }
    }
    let n = frame.len();
    frame[n - effort::PROOF_LEN..].copy_from_slice(&best.1);
    best.0
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

/// Asks each server in turn for the TXT of `name` and returns the wire
/// forms of the answer's `v=vc2` records, in the answer's order
/// (unverified; at least one). A server that does not answer in time,
/// fails on the network, sends a malformed answer, or answers SERVFAIL or
/// REFUSED is passed over for the next one (docs/PROTOCOL.md §21); any
/// other answer ends the search: another response code, or NOERROR
/// without a `v=vc2` record (missing). When every server fails, the last
/// one's error.
pub fn resolve_policy(
    name: &str,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, CheckError> {
    let qname = Name::from_ascii(name)
        .map_err(|_| CheckError::Encode(EncodeError::Zone(name.to_string())))?;
    let mut last = CheckError::NoServer;
    for server in servers {
        match ask(*server, &qname, timeout) {
            Ok(records) => return Ok(records),
            Err(e @ CheckError::Exchange(_)) => last = e,
            Err(
                e @ CheckError::Rcode {
                    rcode: ResponseCode::ServFail | ResponseCode::Refused,
                    ..
                },
            ) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Every TXT record of the answer section whose first string is exactly
/// `v=vc2`, whatever its owner name (a recursive resolver that followed a
/// CNAME puts the target's records there; the client asks no second
/// question itself).
fn ask(server: SocketAddr, name: &Name, timeout: Duration) -> Result<Vec<Vec<u8>>, CheckError> {
    let answer = resolve::exchange(server, name, RecordType::TXT, timeout)?;
    let rcode = answer.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(CheckError::Rcode { server, rcode });
    }
    let records: Vec<Vec<u8>> = answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => from_txt_strings(&txt.txt_data),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(CheckError::Policy(PolicyError::Missing));
    }
    Ok(records)
}

/// One zone and key id's kept state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    zone: String,
    key_id: u8,
    serial: u32,
    issued: u64,
    /// The last verified policy's wire form, hex.
    policy: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    policies: Vec<Kept>,
}

/// What a client keeps between checks, per zone and key id: the newest
/// serial and issued accepted, and the last verified policy. A JSON file
/// (docs/PROTOCOL.md §21 says where); a state of another key id is
/// separate, so a new key starts afresh (a rotation) and a leaked old key
/// cannot lock out the new one.
#[derive(Debug, Default)]
pub struct ClientState {
    path: Option<PathBuf>,
    kept: Vec<Kept>,
}

impl ClientState {
    /// Reads `path`; a missing file is an empty state (first run).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let file: StateFile = if text.trim().is_empty() {
            StateFile::default()
        } else {
            serde_json::from_str(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a vcheckd client state: {e}"),
                )
            })?
        };
        Ok(ClientState {
            path: Some(path.to_path_buf()),
            kept: file.policies,
        })
    }

    /// A state that is not kept between runs.
    pub fn in_memory() -> Self {
        ClientState::default()
    }

    /// The default place, first found: `$STATE_DIRECTORY/client-state.json`
    /// (a systemd service with `StateDirectory=`),
    /// `$XDG_STATE_HOME/vcheckd/client-state.json`,
    /// `~/.local/state/vcheckd/client-state.json`; `None` when none is set.
    pub fn default_path() -> Option<PathBuf> {
        Self::default_path_in(&|k| std::env::var_os(k))
    }

    pub fn default_path_in(get: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
        let set = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = get("STATE_DIRECTORY").filter(|v| !v.is_empty()) {
            // systemd may list several, separated by colons: the first.
            let first = dir
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string();
            return Some(PathBuf::from(first).join("client-state.json"));
        }
        let base = set("XDG_STATE_HOME")
            .or_else(|| set("HOME").map(|h| h.join(".local").join("state")))?;
        Some(base.join("vcheckd").join("client-state.json"))
    }

    fn find(&self, zone: &ZoneName, id: KeyId) -> Option<&Kept> {
        self.kept
            .iter()
            .find(|k| k.key_id == id.0 && k.zone == zone.as_str())
    }

    /// The newest serial and issued accepted for `zone` under key `id`.
    pub fn freshness(&self, zone: &ZoneName, id: KeyId) -> Option<Freshness> {
        self.find(zone, id).map(|k| Freshness {
            serial: k.serial,
            issued: k.issued,
        })
    }

    /// The last verified policy for `zone` under `key`, read back (and
    /// verified again, as of when it was issued).
    pub fn policy(&self, zone: &ZoneName, key: &PublicKey) -> Option<SignedPolicy> {
        let kept = self.find(zone, key.id)?;
        let wire = data_encoding::HEXLOWER_PERMISSIVE
            .decode(kept.policy.as_bytes())
            .ok()?;
        let issued = u64::from_be_bytes(wire.get(6..14)?.try_into().ok()?);
        SignedPolicy::verify(&wire, zone, key, issued, None).ok()
    }

    fn accept(&mut self, zone: &ZoneName, policy: &SignedPolicy, wire: &[u8]) {
        let fresh = self
            .freshness(zone, policy.key_id)
            .unwrap_or_default()
            .after(policy);
        let newest_policy = self
            .find(zone, policy.key_id)
            .is_none_or(|k| policy.issued >= k.issued);
        let entry = Kept {
            zone: zone.as_str().to_string(),
            key_id: policy.key_id.0,
            serial: fresh.serial,
            issued: fresh.issued,
            policy: if newest_policy {
                data_encoding::HEXLOWER.encode(wire)
            } else {
                self.find(zone, policy.key_id)
                    .map(|k| k.policy.clone())
                    .unwrap_or_default()
            },
        };
        match self
            .kept
            .iter_mut()
            .find(|k| k.key_id == policy.key_id.0 && k.zone == zone.as_str())
        {
            Some(k) => *k = entry,
            None => self.kept.push(entry),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes the state (atomically: a temp file synced and renamed over
    /// the old one). A state that is not saved lets a replayed policy in
    /// on the next run: callers treat a failure as an error.
    pub fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&StateFile {
            version: 1,
            policies: self.kept.clone(),
        })
        .map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vcheckd_proto::hint::ReleasesConfig;
    use vcheckd_proto::protocol::v2::keys::{PrivateKey, EPOCH_SECS};
    use vcheckd_proto::protocol::v2::policy::ServedPolicy;
    use vcheckd_proto::protocol::v2::PrivateKeyring;

    const NOW: u64 = 2_900 * EPOCH_SECS + 3 * 86_400;

    #[test]
    fn state_survives_a_restart_and_only_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("client-state.json");
        let zone = ZoneName::new("vc.example.com").unwrap();
        let key = PrivateKey::generate(KeyId(7), NOW);
        let ring = PrivateKeyring::new(std::slice::from_ref(&key), NOW).unwrap();
        let releases = vcheckd_proto::hint::Releases::try_from(&ReleasesConfig {
            versions: vec!["2.4.1".into()],
            ..Default::default()
        })
        .unwrap();
        let sign = |serial: u32, at: u64| {
            ServedPolicy::sign(
                &zone,
                &ring,
                releases.clone(),
                None,
                serial,
                Effort(3),
                at,
                86_400,
            )
            .unwrap()
            .wire(KeyId(7))
            .unwrap()
            .to_vec()
        };
        let check = CheckV2::with_ids(zone.clone(), key.public(), Version::new(2, 4, 1), None);
        let mut state = ClientState::load(&path).unwrap();
        assert_eq!(state.freshness(&zone, KeyId(7)), None);
        check
            .verify(&sign(7, NOW + 7_200), &mut state, NOW + 7_200)
            .unwrap();
        // An older policy of a higher serial: freshness keeps both maxima,
        // the kept policy stays the newest issued.
        check
            .verify(&sign(8, NOW), &mut state, NOW + 7_200)
            .unwrap();
        state.save().unwrap();
        let again = ClientState::load(&path).unwrap();
        let f = again.freshness(&zone, KeyId(7)).unwrap();
        assert_eq!(f.serial, 8);
        assert_eq!(f.issued, NOW + 7_200);
        let kept = again.policy(&zone, &key.public()).unwrap();
        assert_eq!((kept.serial, kept.issued), (7, NOW + 7_200));
        assert!(check.usable(&again, NOW + 7_200).is_some());
        assert!(check.usable(&again, NOW + 3 * EPOCH_SECS).is_none());
        // Another key id starts afresh.
        assert_eq!(again.freshness(&zone, KeyId(8)), None);
    }

    #[test]
    fn the_first_record_that_verifies_is_used() {
        let zone = ZoneName::new("vc.example.com").unwrap();
        let key = PrivateKey::generate(KeyId(7), NOW);
        let ring = PrivateKeyring::new(std::slice::from_ref(&key), NOW).unwrap();
        let releases = vcheckd_proto::hint::Releases::try_from(&ReleasesConfig {
            versions: vec!["2.4.1".into()],
            ..Default::default()
        })
        .unwrap();
        let good = ServedPolicy::sign(&zone, &ring, releases, None, 9, Effort(3), NOW, 86_400)
            .unwrap()
            .wire(KeyId(7))
            .unwrap()
            .to_vec();
        let mut forged = good.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let check = CheckV2::with_ids(zone.clone(), key.public(), Version::new(2, 4, 1), None);
        let mut state = ClientState::in_memory();
        // A forged record first, the real one after it: the real one.
        let got = check
            .verify_any(&[forged.clone(), good.clone()], &mut state, NOW)
            .unwrap();
        assert_eq!(got.policy.serial, 9);
        // None verifies: the first one's refusal, and nothing is kept.
        let mut fresh = ClientState::in_memory();
        let err = check
            .verify_any(&[forged, vec![2u8; 10]], &mut fresh, NOW)
            .unwrap_err();
        assert!(matches!(err, PolicyError::BadSignature), "{err:?}");
        assert_eq!(fresh.freshness(&zone, KeyId(7)), None);
    }

    /// A name server on loopback that answers each query with `rcode` and
    /// no records; counts the queries it got.
    fn answering(
        rcode: ResponseCode,
    ) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use hickory_proto::op::Message;
        use hickory_proto::serialize::binary::BinEncodable;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = asked.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1_500];
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
                answer.metadata.response_code = rcode;
                answer.add_queries(query.queries.clone());
                let _ = socket.send_to(&answer.to_bytes().unwrap(), from);
            }
        });
        (addr, asked)
    }

    #[test]
    fn servfail_refused_and_silence_move_on_other_answers_end_the_search() {
        use std::sync::atomic::Ordering::SeqCst;
        let name = "7._policy.vc.example.com.";
        let timeout = Duration::from_millis(300);
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (servfail, _) = answering(ResponseCode::ServFail);
        let (refused, _) = answering(ResponseCode::Refused);
        let (nxdomain, _) = answering(ResponseCode::NXDomain);
        let (nodata, _) = answering(ResponseCode::NoError);
        let (after, asked_after) = answering(ResponseCode::ServFail);
        let servers = [
            silent.local_addr().unwrap(),
            servfail,
            refused,
            nxdomain,
            after,
        ];
        let err = resolve_policy(name, &servers, timeout).unwrap_err();
        assert!(
            matches!(err, CheckError::Rcode { rcode: ResponseCode::NXDomain, server } if server == nxdomain),
            "{err:?}"
        );
        let err = resolve_policy(name, &[servfail, nodata, after], timeout).unwrap_err();
        assert!(
            matches!(err, CheckError::Policy(PolicyError::Missing)),
            "{err:?}"
        );
        assert_eq!(asked_after.load(SeqCst), 0, "an answer ends the search");
        // Every server failing: the last one's error.
        let err = resolve_policy(name, &[refused, servfail], timeout).unwrap_err();
        assert!(
            matches!(
                err,
                CheckError::Rcode {
                    rcode: ResponseCode::ServFail,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn default_state_path() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            ClientState::default_path_in(&env(&[
                ("STATE_DIRECTORY", "/var/lib/app:/x"),
                ("HOME", "/h")
            ])),
            Some(PathBuf::from("/var/lib/app/client-state.json"))
        );
        assert_eq!(
            ClientState::default_path_in(&env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/h")])),
            Some(PathBuf::from("/s/vcheckd/client-state.json"))
        );
        assert_eq!(
            ClientState::default_path_in(&env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/vcheckd/client-state.json"))
        );
        assert_eq!(ClientState::default_path_in(&env(&[])), None);
    }

    #[test]
    fn the_effort_budget_bounds_the_search() {
        let mut frame = vec![3u8; 112];
        // 60 bits are out of reach: only the budget ends the search.
        let got = prove_within(&mut frame, Effort(60), Duration::from_millis(50));
        assert_eq!(effort::effort(&frame).0, got);
        assert!(
            got >= Effort(8),
            "thousands of tries find 8 zero bits: {got}"
        );
    }
}
