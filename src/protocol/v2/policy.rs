//! The zone's release policy, compiled and signed: the one TXT answer to
//! every v2 report name.
//!
//! Wire form (integers big-endian), then an Ed25519 signature:
//!
//! ```text
//! format (1) = 1 | key id (1) | serial (4) | issued (8, unix s) | expires (8, unix s)
//! | releases (compact form, see crate::hint) | signature (64)
//! ```
//!
//! The signature covers `"vcheckd v2 policy" 0x00 zone 0x00` followed by
//! every byte before it, so a policy cannot be moved to another zone. In
//! the TXT answer the first character-string is `v=vc2` and the following
//! ones, concatenated, are the wire form.
//!
//! A client accepts a policy only if the signature verifies under the
//! public key it carries for that key id, it has not expired, and its
//! serial is not lower than one it has accepted before (rollback).

use ed25519_dalek::{Signature, Signer, Verifier};
use thiserror::Error;

use super::keys::{PrivateKey, PrivateKeyring, PublicKey};
use crate::hint::{CompactError, Releases};
use crate::protocol::{KeyId, ZoneName};

/// The TXT marker of a v2 policy answer.
pub const TXT_MARKER: &[u8] = b"v=vc2";
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 1 + 4 + 8 + 8;
const SIGNATURE_LEN: usize = 64;

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
    #[error("the policy expired at {expires} (unix time; now {now}): the name server's policy is stale, or this host's clock is wrong")]
    Expired { expires: u64, now: u64 },
    #[error("the policy's serial {got} is lower than serial {seen} accepted before: an old policy was replayed")]
    Rollback { seen: u32, got: u32 },
}

/// A policy's content: what is signed, and what a verified policy says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPolicy {
    pub key_id: KeyId,
    /// Raised by the operator whenever the releases change (the zone's SOA
    /// serial): clients refuse a lower one.
    pub serial: u32,
    pub issued: u64,
    pub expires: u64,
    pub releases: Releases,
}

fn signed_message(zone: &ZoneName, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + zone.as_str().len() + body.len());
    m.extend_from_slice(b"vcheckd v2 policy\0");
    m.extend_from_slice(zone.as_str().as_bytes());
    m.push(0);
    m.extend_from_slice(body);
    m
}

impl SignedPolicy {
    /// The wire form, signed with `key` (whose id must be `self.key_id`).
    pub fn sign(&self, key: &PrivateKey, zone: &ZoneName) -> Result<Vec<u8>, CompactError> {
        let mut out = Vec::with_capacity(1024);
        out.push(FORMAT);
        out.push(key.id.0);
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.extend_from_slice(&self.issued.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        self.releases.to_compact(&mut out)?;
        let signature = key.sign.sign(&signed_message(zone, &out));
        out.extend_from_slice(&signature.to_bytes());
        Ok(out)
    }

    /// Verifies `wire` for `zone` and returns what it says. `seen` is the
    /// highest serial accepted before, if any.
    pub fn verify(
        wire: &[u8],
        zone: &ZoneName,
        keys: &[PublicKey],
        now: u64,
        seen: Option<u32>,
    ) -> Result<SignedPolicy, PolicyError> {
        let malformed = |what: &str| PolicyError::Malformed(what.to_string());
        if wire.len() < HEADER_LEN + SIGNATURE_LEN {
            return Err(malformed("too short"));
        }
        if wire[0] != FORMAT {
            return Err(malformed(&format!("unknown format {}", wire[0])));
        }
        let key_id = KeyId(wire[1]);
        let key = keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(PolicyError::UnknownKey(key_id.0))?;
        let (body, signature) = wire.split_at(wire.len() - SIGNATURE_LEN);
        let signature = Signature::from_slice(signature).map_err(|_| PolicyError::BadSignature)?;
        key.verify
            .verify(&signed_message(zone, body), &signature)
            .map_err(|_| PolicyError::BadSignature)?;
        // Signed by the zone's key: from here on the content is trusted.
        let be = |range: std::ops::Range<usize>| {
            body[range].iter().fold(0u64, |n, b| n << 8 | u64::from(*b))
        };
        let policy = SignedPolicy {
            key_id,
            serial: u32::try_from(be(2..6)).map_err(|_| malformed("serial"))?,
            issued: be(6..14),
            expires: be(14..22),
            releases: Releases::from_compact(&body[HEADER_LEN..])
                .map_err(|e| PolicyError::Malformed(e.to_string()))?,
        };
        if now >= policy.expires {
            return Err(PolicyError::Expired {
                expires: policy.expires,
                now,
            });
        }
        if let Some(seen) = seen.filter(|seen| policy.serial < *seen) {
            return Err(PolicyError::Rollback {
                seen,
                got: policy.serial,
            });
        }
        Ok(policy)
    }
}

/// What a zone's name servers serve for protocol v2: the private keys and,
/// for each key id, the policy signed with that key (a client carries the
/// public key of one id, and the report name says which). Built when the
/// configuration is loaded, and signed anew before it expires, never per
/// query.
#[derive(Debug, Clone)]
pub struct ServedPolicy {
    pub keys: PrivateKeyring,
    pub content: SignedPolicyContent,
    signed: Vec<(KeyId, Vec<u8>)>,
}

/// The part of a policy every key id's copy shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPolicyContent {
    pub serial: u32,
    pub issued: u64,
    pub expires: u64,
    pub releases: Releases,
}

impl ServedPolicy {
    pub fn sign(
        zone: &ZoneName,
        keys: PrivateKeyring,
        releases: Releases,
        serial: u32,
        now: u64,
        validity_secs: u64,
    ) -> Result<Self, CompactError> {
        let content = SignedPolicyContent {
            serial,
            issued: now,
            expires: now.saturating_add(validity_secs),
            releases,
        };
        let signed = keys
            .iter()
            .map(|key| {
                let policy = SignedPolicy {
                    key_id: key.id,
                    serial,
                    issued: content.issued,
                    expires: content.expires,
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

    /// The same policy signed anew at `now` (before the old one expires).
    pub fn resign(&self, zone: &ZoneName, now: u64) -> Result<Self, CompactError> {
        let c = &self.content;
        Self::sign(
            zone,
            self.keys.clone(),
            c.releases.clone(),
            c.serial,
            now,
            c.expires.saturating_sub(c.issued),
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
/// policy answer.
pub fn from_txt_strings<S: AsRef<[u8]>>(strings: &[S]) -> Option<Vec<u8>> {
    let (first, rest) = strings.split_first()?;
    (first.as_ref() == TXT_MARKER).then(|| rest.iter().flat_map(|s| s.as_ref()).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::ReleasesConfig;

    fn releases() -> Releases {
        Releases::try_from(&ReleasesConfig {
            versions: vec!["2.3.0".into(), "2.4.1".into()],
            end_of_life: vec!["1".into()],
            advisory: vec![],
        })
        .unwrap()
    }

    fn policy(serial: u32) -> SignedPolicy {
        SignedPolicy {
            key_id: KeyId(1),
            serial,
            issued: 1_000,
            expires: 2_000,
            releases: releases(),
        }
    }

    fn setup() -> (PrivateKey, Vec<PublicKey>, ZoneName) {
        let key = PrivateKey::generate(KeyId(1));
        let public = vec![key.public()];
        (key, public, ZoneName::new("vc.example.com").unwrap())
    }

    #[test]
    fn honest_policy_verifies() {
        let (key, public, zone) = setup();
        let wire = policy(7).sign(&key, &zone).unwrap();
        let txt = to_txt_strings(&wire);
        let back = from_txt_strings(&txt).unwrap();
        assert_eq!(
            SignedPolicy::verify(&back, &zone, &public, 1_500, Some(7)),
            Ok(policy(7))
        );
    }

    #[test]
    fn tampering_expiry_and_rollback_are_refused() {
        let (key, public, zone) = setup();
        let wire = policy(7).sign(&key, &zone).unwrap();
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x40;
            let err = SignedPolicy::verify(&bad, &zone, &public, 1_500, None).unwrap_err();
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
            SignedPolicy::verify(&wire, &other, &public, 1_500, None),
            Err(PolicyError::BadSignature)
        );
        assert_eq!(
            SignedPolicy::verify(&wire, &zone, &public, 2_000, None),
            Err(PolicyError::Expired {
                expires: 2_000,
                now: 2_000
            })
        );
        assert_eq!(
            SignedPolicy::verify(&wire, &zone, &public, 1_500, Some(8)),
            Err(PolicyError::Rollback { seen: 8, got: 7 })
        );
        let stranger = vec![PrivateKey::generate(KeyId(1)).public()];
        assert_eq!(
            SignedPolicy::verify(&wire, &zone, &stranger, 1_500, None),
            Err(PolicyError::BadSignature)
        );
        assert_eq!(from_txt_strings(&[b"v=vc1 status=1".to_vec()]), None);
    }
}
