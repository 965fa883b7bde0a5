//! Protocol v2: reports sealed to a weekly key the zone's signed policy
//! carries, with a client effort proof, and that policy as the one answer
//! to every report.
//!
//! The layers (docs/PROTOCOL.md §15-§22 has the normative text):
//! - [`keys`]: the client carries only the zone's Ed25519 verification
//!   key; the name servers hold the signing key and a ratchet of weekly
//!   X25519 sealing keys (forward secrecy).
//! - [`ids`]: cluster and node ids anonymized with Argon2id and HMAC, so
//!   that the operator cannot guess them back cheaply.
//! - [`plaintext`]: the report, padded to one of two sizes.
//! - [`frame`]: HPKE (RFC 9180, X25519-HKDF-SHA256, HKDF-SHA256,
//!   ChaCha20-Poly1305); the report id is derived from the encapsulated key.
//! - [`effort`]: the proof of work bound to the frame.
//! - [`policy`]: the zone's releases, sealing key and suggested effort,
//!   signed (Ed25519) with a serial, an issued time on a grid and an
//!   expiry; the client verifies it and computes its own status, so the
//!   answer is the same for every client and tells an observer nothing
//!   about the one who asked.
//!
//! The name layer (base32 labels) is v1's.

pub mod effort;
pub mod frame;
pub mod ids;
pub mod keys;
pub mod open;
pub mod plaintext;
pub mod policy;

pub use ids::ClusterSecret;
pub use keys::{Epoch, PrivateKey, PrivateKeyring, PublicKey, RatchetStore, SealKey, ZoneKey};
pub use policy::{AdvisoryUrl, Freshness, PolicyError, ServedPolicy, SignedPolicy};

/// The frame format byte of protocol v2.
pub const FORMAT_V2: u8 = 2;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
/// ChaCha20-Poly1305: constant-time in software on every CPU a client may
/// run on (no AES instructions needed), and the `hpke` crate's default.
type Aead = hpke::aead::ChaCha20Poly1305;
