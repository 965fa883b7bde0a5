//! Protocol v1: the payload a client packs into a query name.
//!
//! The layers, outermost first (see docs/PROTOCOL.md for the normative text):
//! - [`name`]: base32 labels placed in front of the zone name;
//! - [`frame`]: format version, key id, nonce and AES-256-GCM ciphertext;
//! - [`payload`]: the plaintext report (timestamp, anonymized ids, version, flags).
//!
//! Everything here is pure computation with no I/O, so the server, the client
//! CLI and the tests share one implementation of the wire format.

pub mod anon;
pub mod error;
pub mod frame;
pub mod key;
pub mod name;
pub mod payload;
pub mod v2;
pub mod zone;

pub use anon::{anonymize, IdKind};
pub use error::{DecodeError, EncodeError, KeyError};
pub use frame::{Report, ReportId};
pub use key::{Key, KeyId, Keyring};
pub use payload::{AnonId, Identity, Payload};
pub use zone::ZoneName;

/// The only frame format this code reads and writes.
pub const FORMAT_V1: u8 = 1;
