//! The zone's release policy, compiled and signed: the one TXT answer to
//! every v2 report name, and what tells a client where to seal its next
//! report and how much effort to spend.
//!
//! Wire form (integers big-endian), then an Ed25519 signature:
//!
//! ```text
//! format (1) = 2 | key id (1) | serial (4) | issued (8, unix s) | expires (8, unix s)
//! | epoch (2) | seal key (32, X25519) | effort (1)
//! | advisory URL length (1) | advisory URL (UTF-8, 0-255 bytes)
//! | releases (compact form, see crate::hint) | signature (64)
//! ```
//!
//! The signature covers `"vcheckd v2 policy" 0x00 zone 0x00` followed by
//! every byte before it, so a policy cannot be moved to another zone. In
//! the TXT answer the first character-string is `v=vc2` and the following
//! ones, concatenated, are the wire form.
//!
//! Freshness (after TUF's rules): `issued` lies on a grid (every name
//! server of a zone signs the same `issued` in the same period), the
//! validity is short (a day by default) and capped at
//! [`MAX_VALIDITY_SECS`]; a client keeps the newest serial and issued it
//! accepted per zone and key id ([`Freshness`]) and refuses older ones,
//! measuring expiry against the later of its clock and that issued (a
//! clock running behind does not revive an expired policy it has seen
//! superseded). docs/PROTOCOL.md §21 lists the checks in order.

use ed25519_dalek::{Signature, Signer};
use thiserror::Error;

use super::effort::Effort;
use super::keys::{Epoch, PrivateKeyring, PublicKey, SealKey, ZoneKey};
use crate::hint::{CompactError, Releases};
use crate::protocol::{KeyId, ZoneName};

/// The TXT marker of a v2 policy answer.
pub const TXT_MARKER: &[u8] = b"v=vc2";
const FORMAT: u8 = 2;
/// Format, key id, serial, issued, expires, epoch, seal key, effort.
const HEADER_LEN: usize = 1 + 1 + 4 + 8 + 8 + 2 + 32 + 1;
const SIGNATURE_LEN: usize = 64;
/// The longest validity a client accepts: a policy signed for longer
/// (a misconfigured server, or a leaked key) is refused.
pub const MAX_VALIDITY_SECS: u64 = 8 * 86_400;
/// The grid `issued` lies on: every name server of a zone signs anew at
/// each full hour, so all sign the same `issued` in the same hour and a
/// client that saw one accepts the others.
pub const GRID_SECS: u64 = 3_600;
/// How much older than the newest accepted `issued` a policy may be: one
/// grid step and as much again for name servers whose clocks straddle a
/// grid line. An older one is a replay.
pub const SKEW_SECS: u64 = 2 * GRID_SECS;
/// The shortest validity a server signs: two grid steps, so that a policy
/// is signed anew before it expires.
pub const MIN_VALIDITY_SECS: u64 = 2 * GRID_SECS;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the answer holds no vcheckd v2 policy (no TXT string 'v=vc2')")]
    Missing,
    #[error("the policy is malformed: {0}")]
    Malformed(String),
    #[error("the policy is signed with key id {0}, which this client does not carry")]
    UnknownKey(u8),
    #[error(
        "the policy's signature does not verify: it was altered or not signed by the zone's key"
    )]
    BadSignature,
    #[error("the policy claims a validity of {secs} s, more than the {MAX_VALIDITY_SECS} s a client accepts")]
    Validity { secs: u64 },
    #[error("the policy expired at {expires} (unix time; now {now}): the name server's policy is stale, or this host's clock is wrong")]
    Expired { expires: u64, now: u64 },
    #[error("the policy was issued at {issued}, before one issued at {newest} accepted earlier: an old policy was replayed")]
    Replayed { issued: u64, newest: u64 },
    #[error("the policy's serial {got} is lower than serial {seen} accepted before: an old policy was replayed")]
    Rollback { seen: u32, got: u32 },
}

impl PolicyError {
    /// A short, stable label (metrics, JSON output, the vector file).
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::Missing => "missing",
            PolicyError::Malformed(_) => "malformed",
            PolicyError::UnknownKey(_) => "unknown_key",
            PolicyError::BadSignature => "signature",
            PolicyError::Validity { .. } => "validity",
            PolicyError::Expired { .. } => "expired",
            PolicyError::Replayed { .. } => "replayed",
            PolicyError::Rollback { .. } => "rollback",
        }
    }
}

/// An advisory URL template: `{id}` stands for the advisory's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryUrl(String);

impl AdvisoryUrl {
    /// An `http://` or `https://` URL of at most 255 bytes holding `{id}`
    /// once, without spaces or control characters.
    pub fn new(template: &str) -> Result<Self, String> {
        let ok_scheme = template.starts_with("https://") || template.starts_with("http://");
        if !ok_scheme {
            return Err(format!(
                "advisory URL {template:?} must start with https:// or http://"
            ));
        }
        if template.len() > 255 {
            return Err(format!(
                "advisory URL is {} bytes; at most 255",
                template.len()
            ));
        }
        if template.matches("{id}").count() != 1 {
            return Err(format!(
                "advisory URL {template:?} must hold {{id}} once, where the advisory's id goes"
            ));
        }
        if template
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "advisory URL {template:?} holds a space or control character"
            ));
        }
        Ok(AdvisoryUrl(template.to_string()))
    }

    pub fn template(&self) -> &str {
        &self.0
    }

    /// The URL of advisory `id`.
    pub fn for_id(&self, id: &str) -> String {
        self.0.replace("{id}", id)
    }
}

/// A policy's content: what is signed, and what a verified policy says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPolicy {
    pub key_id: KeyId,
    /// The zone's SOA serial: the server refuses to sign other releases
    /// under a serial it has signed; clients refuse a lower one.
    pub serial: u32,
    pub issued: u64,
    pub expires: u64,
    /// Where the client seals its next report: this epoch's key.
    pub seal: SealKey,
    /// The effort the zone suggests (leading zero bits of the proof).
    pub effort: Effort,
    pub advisory_url: Option<AdvisoryUrl>,
    pub releases: Releases,
}

/// The newest serial and issued a client has accepted for one zone and
/// key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    pub serial: u32,
    pub issued: u64,
}

impl Freshness {
    /// The state after accepting `policy`.
    pub fn after(self, policy: &SignedPolicy) -> Freshness {
        Freshness {
            serial: self.serial.max(policy.serial),
            issued: self.issued.max(policy.issued),
        }
    }
}

fn signed_message(zone: &ZoneName, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + zone.as_str().len() + body.len());
    m.extend_from_slice(b"vcheckd v2 policy\0");
    m.extend_from_slice(zone.as_str().as_bytes());
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// The bytes of the release part (advisory URL and releases): what one
/// serial stands for. Its digest is what a server remembers per serial.
pub fn release_section(
    advisory_url: Option<&AdvisoryUrl>,
    releases: &Releases,
) -> Result<Vec<u8>, CompactError> {
    let mut out = Vec::with_capacity(512);
    let url = advisory_url.map_or("", AdvisoryUrl::template);
    // AdvisoryUrl::new keeps it within 255 bytes.
    out.push(url.len() as u8);
    out.extend_from_slice(url.as_bytes());
    releases.to_compact(&mut out)?;
    Ok(out)
}

/// Any body signed as a policy of `zone`: the test vectors' policies that
/// verify but hold malformed content (a client must refuse them after the
/// signature check, by the parser).
pub fn sign_body(key: &ZoneKey, zone: &ZoneName, body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&key.sign.sign(&signed_message(zone, body)).to_bytes());
    out
}

impl SignedPolicy {
    /// The wire form, signed with `key` (whose id must be `self.key_id`).
    pub fn sign(&self, key: &ZoneKey, zone: &ZoneName) -> Result<Vec<u8>, CompactError> {
        let mut out = Vec::with_capacity(1024);
        out.push(FORMAT);
        out.push(key.id.0);
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.extend_from_slice(&self.issued.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.extend_from_slice(&self.seal.epoch.0.to_be_bytes());
        out.extend_from_slice(&self.seal.to_bytes());
        out.push(self.effort.0);
        out.extend_from_slice(&release_section(
            self.advisory_url.as_ref(),
            &self.releases,
        )?);
        let signature = key.sign.sign(&signed_message(zone, &out));
        out.extend_from_slice(&signature.to_bytes());
        Ok(out)
    }

    /// Verifies `wire` for `zone` under `key` at `now`, against what was
    /// accepted before for this zone and key id (`seen`), and returns what
    /// it says. The checks, in order: shape and key id, signature,
    /// validity cap, expiry, replay (issued), rollback (serial).
    pub fn verify(
        wire: &[u8],
        zone: &ZoneName,
        key: &PublicKey,
        now: u64,
        seen: Option<Freshness>,
    ) -> Result<SignedPolicy, PolicyError> {
        let malformed = |what: &str| PolicyError::Malformed(what.to_string());
        if wire.len() < HEADER_LEN + 1 + SIGNATURE_LEN {
            return Err(malformed("too short"));
        }
        if wire[0] != FORMAT {
            return Err(malformed(&format!("unknown format {}", wire[0])));
        }
        let key_id = KeyId(wire[1]);
        if key_id != key.id {
            return Err(PolicyError::UnknownKey(key_id.0));
        }
        let (body, signature) = wire.split_at(wire.len() - SIGNATURE_LEN);
        let signature = Signature::from_slice(signature).map_err(|_| PolicyError::BadSignature)?;
        key.verify
            .verify_strict(&signed_message(zone, body), &signature)
            .map_err(|_| PolicyError::BadSignature)?;
        // Signed by the zone's key: from here on the content is trusted.
        let be = |range: std::ops::Range<usize>| {
            body[range].iter().fold(0u64, |n, b| n << 8 | u64::from(*b))
        };
        let epoch = Epoch(u16::try_from(be(22..24)).map_err(|_| malformed("epoch"))?);
        let seal_bytes: [u8; 32] = body[24..56].try_into().map_err(|_| malformed("seal key"))?;
        let seal =
            SealKey::from_bytes(key_id, epoch, &seal_bytes).ok_or_else(|| malformed("seal key"))?;
        let url_len = usize::from(body[57]);
        let url = body
            .get(58..58 + url_len)
            .ok_or_else(|| malformed("advisory URL"))?;
        let advisory_url = match url_len {
            0 => None,
            _ => Some(
                std::str::from_utf8(url)
                    .ok()
                    .and_then(|u| AdvisoryUrl::new(u).ok())
                    .ok_or_else(|| malformed("advisory URL"))?,
            ),
        };
        let policy = SignedPolicy {
            key_id,
            serial: u32::try_from(be(2..6)).map_err(|_| malformed("serial"))?,
            issued: be(6..14),
            expires: be(14..22),
            seal,
            effort: Effort(body[56]),
            advisory_url,
            releases: Releases::from_compact(&body[58 + url_len..])
                .map_err(|e| PolicyError::Malformed(e.to_string()))?,
        };
        let validity = policy.expires.saturating_sub(policy.issued);
        if policy.expires <= policy.issued || validity > MAX_VALIDITY_SECS {
            return Err(PolicyError::Validity { secs: validity });
        }
        let seen = seen.unwrap_or_default();
        // A clock behind the newest policy seen is behind: that issued
        // time is a lower bound for now.
        let now = now.max(seen.issued);
        if now >= policy.expires {
            return Err(PolicyError::Expired {
                expires: policy.expires,
                now,
            });
        }
        if policy.issued.saturating_add(SKEW_SECS) < seen.issued {
            return Err(PolicyError::Replayed {
                issued: policy.issued,
                newest: seen.issued,
            });
        }
        if policy.serial < seen.serial {
            return Err(PolicyError::Rollback {
                seen: seen.serial,
                got: policy.serial,
            });
        }
        Ok(policy)
    }

    /// The status line a client shows for `running`: the release rule's
    /// message, with the advisory's URL when an advisory is the reason.
    pub fn hint_for(&self, running: &semver::Version) -> crate::hint::Hint {
        let mut hint = self.releases.hint_for(running);
        if let (Some(url), Some(adv)) = (&self.advisory_url, self.releases.advisory_for(running)) {
            hint.message = format!("{}: {}", hint.message, url.for_id(&adv.id));
        }
        hint
    }
}

/// What a zone's name servers serve for protocol v2: the keys and, for
/// each key id, the policy signed with that key (a client carries the
/// verification key of one id, and the report name says which). Built when
/// the configuration is loaded, signed anew on the grid and when the
/// suggested effort changes, never per query.
#[derive(Debug, Clone)]
pub struct ServedPolicy {
    pub keys: PrivateKeyring,
    pub content: PolicyContent,
    signed: Vec<(KeyId, Vec<u8>)>,
}

/// The part of a policy every key id's copy shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyContent {
    pub serial: u32,
    pub issued: u64,
    pub expires: u64,
    pub validity_secs: u64,
    pub effort: Effort,
    pub advisory_url: Option<AdvisoryUrl>,
    pub releases: Releases,
}

impl ServedPolicy {
    /// Signs `content`'s releases as of `now`: `issued` on the grid, each
    /// key id's copy carrying that key's sealing key of `now`'s epoch.
    /// `keys` is taken as of `now` (older epochs dropped).
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        zone: &ZoneName,
        keys: &PrivateKeyring,
        releases: Releases,
        advisory_url: Option<AdvisoryUrl>,
        serial: u32,
        effort: Effort,
        now: u64,
        validity_secs: u64,
    ) -> Result<Self, CompactError> {
        let validity_secs = validity_secs.clamp(MIN_VALIDITY_SECS, MAX_VALIDITY_SECS);
        let issued = now - now % GRID_SECS;
        let keys = keys.at(now);
        let content = PolicyContent {
            serial,
            issued,
            expires: issued + validity_secs,
            validity_secs,
            effort,
            advisory_url,
            releases,
        };
        let epoch = Epoch::at(now);
        let signed = keys
            .iter()
            .filter_map(|key| Some((key, key.epoch(epoch)?)))
            .map(|(key, current)| {
                let policy = SignedPolicy {
                    key_id: key.id,
                    serial,
                    issued: content.issued,
                    expires: content.expires,
                    seal: SealKey::from_bytes(key.id, epoch, &current.public_bytes())
                        .ok_or(CompactError::Invalid("sealing key"))?,
                    effort,
                    advisory_url: content.advisory_url.clone(),
                    releases: content.releases.clone(),
                };
                Ok((key.id, policy.sign(key, zone)?))
            })
            .collect::<Result<_, CompactError>>()?;
        Ok(ServedPolicy {
            keys,
            content,
            signed,
        })
    }

    /// The same policy signed anew at `now`, with `effort` suggested.
    pub fn resign(&self, zone: &ZoneName, now: u64, effort: Effort) -> Result<Self, CompactError> {
        let c = &self.content;
        Self::sign(
            zone,
            &self.keys,
            c.releases.clone(),
            c.advisory_url.clone(),
            c.serial,
            effort,
            now,
            c.validity_secs,
        )
    }

    /// The wire form signed with key `id`, if the zone has that key.
    pub fn wire(&self, id: KeyId) -> Option<&[u8]> {
        self.signed
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, w)| w.as_slice())
    }
}

/// The TXT character-strings of a policy answer: the marker, then the
/// wire form in pieces of at most 255 bytes.
pub fn to_txt_strings(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut strings = vec![TXT_MARKER.to_vec()];
    strings.extend(wire.chunks(255).map(<[u8]>::to_vec));
    strings
}

/// The wire form from one TXT record's character-strings, if it is a
/// policy answer: its first string is exactly `v=vc2`.
pub fn from_txt_strings<S: AsRef<[u8]>>(strings: &[S]) -> Option<Vec<u8>> {
    let (first, rest) = strings.split_first()?;
    (first.as_ref() == TXT_MARKER).then(|| rest.iter().flat_map(|s| s.as_ref()).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::super::keys::{PrivateKey, EPOCH_SECS};
    use super::*;
    use crate::hint::ReleasesConfig;

    const NOW: u64 = 2_900 * EPOCH_SECS + 86_400 * 3 + 5_000;
    const DAY: u64 = 86_400;

    fn releases(versions: &[&str]) -> Releases {
        Releases::try_from(&ReleasesConfig {
            versions: versions.iter().map(|v| v.to_string()).collect(),
            end_of_life: vec!["1".into()],
            advisory: vec![],
        })
        .unwrap()
    }

    fn setup() -> (PrivateKeyring, PublicKey, ZoneName) {
        let key = PrivateKey::generate(KeyId(1), NOW - EPOCH_SECS);
        let public = key.public();
        (
            PrivateKeyring::new(&[key], NOW).unwrap(),
            public,
            ZoneName::new("vc.example.com").unwrap(),
        )
    }

    fn served(ring: &PrivateKeyring, zone: &ZoneName, serial: u32, now: u64) -> ServedPolicy {
        ServedPolicy::sign(
            zone,
            ring,
            releases(&["2.3.0", "2.4.1"]),
            Some(AdvisoryUrl::new("https://vendor.example/sa/{id}").unwrap()),
            serial,
            Effort(16),
            now,
            DAY,
        )
        .unwrap()
    }

    #[test]
    fn honest_policy_verifies_and_carries_the_current_key() {
        let (ring, public, zone) = setup();
        let served = served(&ring, &zone, 7, NOW);
        let wire = served.wire(KeyId(1)).unwrap();
        let back = from_txt_strings(&to_txt_strings(wire)).unwrap();
        let p = SignedPolicy::verify(&back, &zone, &public, NOW, None).unwrap();
        assert_eq!(p.serial, 7);
        assert_eq!(p.issued % GRID_SECS, 0, "issued on the grid");
        assert_eq!(p.expires, p.issued + DAY);
        assert_eq!(p.effort, Effort(16));
        assert_eq!(p.seal.epoch, Epoch::at(NOW));
        assert_eq!(
            p.seal.to_bytes(),
            ring.epoch_key(KeyId(1), Epoch::at(NOW))
                .unwrap()
                .public_bytes()
        );
        // Two servers signing in the same grid period sign the same issued.
        let other = self::served(&ring, &zone, 7, NOW + 60);
        assert_eq!(other.content.issued, served.content.issued);
    }

    #[test]
    fn tampering_is_refused() {
        let (ring, public, zone) = setup();
        let wire = served(&ring, &zone, 7, NOW)
            .wire(KeyId(1))
            .unwrap()
            .to_vec();
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x40;
            let err = SignedPolicy::verify(&bad, &zone, &public, NOW, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    PolicyError::BadSignature
                        | PolicyError::UnknownKey(_)
                        | PolicyError::Malformed(_)
                ),
                "byte {i}: {err}"
            );
        }
        let other = ZoneName::new("vc.example.org").unwrap();
        assert_eq!(
            SignedPolicy::verify(&wire, &other, &public, NOW, None),
            Err(PolicyError::BadSignature)
        );
        let stranger = PrivateKey::generate(KeyId(1), NOW).public();
        assert_eq!(
            SignedPolicy::verify(&wire, &zone, &stranger, NOW, None),
            Err(PolicyError::BadSignature)
        );
    }

    #[test]
    fn freshness_rules() {
        let (ring, public, zone) = setup();
        let old = served(&ring, &zone, 7, NOW);
        let old_wire = old.wire(KeyId(1)).unwrap();
        let first = SignedPolicy::verify(old_wire, &zone, &public, NOW, None).unwrap();
        // Expired.
        assert!(matches!(
            SignedPolicy::verify(old_wire, &zone, &public, first.expires, None),
            Err(PolicyError::Expired { .. })
        ));
        // A newer policy (next day, next serial) accepted, then the old one
        // replayed: refused by issued, even though its serial is equal.
        let new = served(&ring, &zone, 7, NOW + DAY / 2);
        let seen = Freshness::default().after(&first);
        let second = SignedPolicy::verify(
            new.wire(KeyId(1)).unwrap(),
            &zone,
            &public,
            NOW + DAY / 2,
            Some(seen),
        )
        .unwrap();
        let seen = seen.after(&second);
        assert!(matches!(
            SignedPolicy::verify(old_wire, &zone, &public, NOW + DAY / 2, Some(seen)),
            Err(PolicyError::Replayed { .. })
        ));
        // A client whose clock runs a day behind still refuses it as
        // expired: its now is at least the newest issued it saw.
        assert!(SignedPolicy::verify(old_wire, &zone, &public, NOW - DAY, Some(seen)).is_err());
        // Rollback of the serial.
        let higher = Freshness { serial: 8, ..seen };
        assert_eq!(
            SignedPolicy::verify(
                new.wire(KeyId(1)).unwrap(),
                &zone,
                &public,
                NOW + DAY / 2,
                Some(higher)
            ),
            Err(PolicyError::Rollback { seen: 8, got: 7 })
        );
        // A policy signed one grid step earlier by a server whose clock
        // lags: within the skew, accepted; two steps earlier still; three,
        // a replay.
        let at = |steps: u64| served(&ring, &zone, 7, second.issued - steps * GRID_SECS);
        let verify = |p: &ServedPolicy| {
            SignedPolicy::verify(
                p.wire(KeyId(1)).unwrap(),
                &zone,
                &public,
                NOW + DAY / 2,
                Some(seen),
            )
        };
        assert!(verify(&at(1)).is_ok());
        assert!(verify(&at(2)).is_ok());
        assert!(matches!(verify(&at(3)), Err(PolicyError::Replayed { .. })));
    }

    #[test]
    fn an_overlong_validity_is_refused() {
        let (ring, public, zone) = setup();
        let mut served = served(&ring, &zone, 7, NOW);
        let key = ring.get(KeyId(1)).unwrap();
        let mut p = SignedPolicy::verify(served.wire(KeyId(1)).unwrap(), &zone, &public, NOW, None)
            .unwrap();
        p.expires = p.issued + MAX_VALIDITY_SECS + 1;
        served.signed[0].1 = p.sign(key, &zone).unwrap();
        assert!(matches!(
            SignedPolicy::verify(served.wire(KeyId(1)).unwrap(), &zone, &public, NOW, None),
            Err(PolicyError::Validity { .. })
        ));
    }

    #[test]
    fn advisory_urls_are_checked() {
        assert!(AdvisoryUrl::new("https://v.example/{id}").is_ok());
        for bad in [
            "ftp://v.example/{id}",
            "https://v.example/",
            "https://v.example/{id}/{id}",
            "https://v.example/ {id}",
        ] {
            assert!(AdvisoryUrl::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AdvisoryUrl::new("https://v.example/sa/{id}.html")
                .unwrap()
                .for_id("CVE-1"),
            "https://v.example/sa/CVE-1.html"
        );
    }
}
