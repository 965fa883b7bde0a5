//! Protocol v2: reports sealed to the zone's public key, and a signed
//! release policy as the one answer to every report.
//!
//! What changes from v1 (docs/PROTOCOL.md has the normative text):
//! - [`keys`]: the client carries only public keys; the private halves
//!   stay on the name servers.
//! - [`frame`]: HPKE (RFC 9180, X25519-HKDF-SHA256, HKDF-SHA256,
//!   ChaCha20-Poly1305) instead of a shared AES key; the report id is
//!   derived from the encapsulated key.
//! - [`policy`]: the zone's releases, compiled and signed (Ed25519) with a
//!   serial and an expiry; the client verifies it and computes its own
//!   status, so the answer is the same for every client and tells an
//!   observer nothing about the one who asked.
//!
//! The name layer (base32 labels) and the plaintext layout are v1's.

pub mod effort;
pub mod frame;
pub mod keys;
pub mod open;
pub mod policy;

use sha2::{Digest, Sha256};

use super::name::{frame_to_name, ZoneName};
use super::{AnonId, EncodeError, IdKind, Payload, ReportId};

pub use keys::{PrivateKey, PrivateKeyring, PublicKey};
pub use policy::{PolicyError, ServedPolicy, SignedPolicy};

/// The frame format byte of protocol v2.
pub const FORMAT_V2: u8 = 2;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
/// ChaCha20-Poly1305: constant-time in software on every CPU a client may
/// run on (no AES instructions needed), and the `hpke` crate's default.
type Aead = hpke::aead::ChaCha20Poly1305;

/// The anonymized form of a real id, without any client secret:
///
/// ```text
/// cluster = SHA-256("vcheckd v2 anonymize" 0x00 zone 0x00 "cluster" 0x00 cluster_id)[..16]
/// node    = SHA-256("vcheckd v2 anonymize" 0x00 zone 0x00 "node" 0x00 cluster_id 0x00 node_id)[..16]
/// ```
///
/// The id travels only inside the sealed frame, so only the operator, who
/// holds the private key, ever sees it; the zone in the hash keeps two
/// vendors from linking one cluster's ids. The operator can confirm a
/// guessed real id (as in v1): real ids should be random (UUIDs).
pub fn anonymize(zone: &ZoneName, kind: IdKind<'_>, real_id: &str) -> AnonId {
    let mut h = Sha256::new()
        .chain_update(b"vcheckd v2 anonymize\0")
        .chain_update(zone.as_str().as_bytes())
        .chain_update(b"\0");
    match kind {
        IdKind::Cluster => h.update(b"cluster\0"),
        IdKind::Node { cluster } => {
            h.update(b"node\0");
            h.update(cluster.as_bytes());
            h.update(b"\0");
        }
    }
    h.update(real_id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    AnonId(out)
}

/// A report's absolute query name (trailing dot) and its id.
pub fn encode_query_name(
    key: &PublicKey,
    zone: &ZoneName,
    payload: &Payload,
) -> Result<(String, ReportId), EncodeError> {
    let frame = frame::seal(key, zone, payload)?;
    let id = frame::report_id(&frame[2..2 + frame::ENC_LEN]);
    Ok((frame_to_name(&frame, zone)?, id))
}
