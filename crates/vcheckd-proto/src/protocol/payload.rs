//! The plaintext report, before encryption.
//!
//! Layout (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | client timestamp, unix seconds |
//! | 16 | anonymized cluster id (zero when identity is withheld) |
//! | 16 | anonymized node id (zero when identity is withheld) |
//! | 1 | flags: bit 0 = identity withheld; other bits reserved, ignored |
//! | 1 + n | software version, semver text, length-prefixed |
//! | ... | optional TLV fields: type (1), length (1), value; unknown types are skipped |

use std::fmt;

use semver::Version;

use super::error::{DecodeError, EncodeError};

/// A 16-byte keyed hash of a real cluster or node id (see [`super::anonymize`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnonId(pub [u8; 16]);

impl AnonId {
    pub const ZERO: AnonId = AnonId([0; 16]);

    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
}

impl fmt::Debug for AnonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnonId({})", self.to_hex())
    }
}

impl fmt::Display for AnonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Who sent the report, as far as the server may know.
///
/// `Withheld` is what DISABLE_TELEMETRY produces: the version is still
/// checked, but no cluster or node identity leaves the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    Withheld,
    Known { cluster: AnonId, node: AnonId },
}

/// Flags bit: the sender withheld its identity; ids are zero.
pub const FLAG_IDENTITY_WITHHELD: u8 = 0x01;

const FIXED_LEN: usize = 8 + 16 + 16 + 1 + 1;
/// The smallest plaintext: the fixed fields and the shortest version, "0.0.0".
pub const MIN_LEN: usize = FIXED_LEN + 5;

/// A decoded (or to-be-encoded) report plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Client clock, unix seconds. Informational only: the server records
    /// its own receive time, since client clocks cannot be trusted.
    pub timestamp: u64,
    pub identity: Identity,
    pub version: Version,
}

impl Payload {
    pub fn flags(&self) -> u8 {
        match self.identity {
            Identity::Withheld => FLAG_IDENTITY_WITHHELD,
            Identity::Known { .. } => 0,
        }
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let version = self.version.to_string();
        let vlen =
            u8::try_from(version.len()).map_err(|_| EncodeError::VersionTooLong(version.len()))?;
        let (cluster, node) = match self.identity {
            Identity::Withheld => (AnonId::ZERO, AnonId::ZERO),
            Identity::Known { cluster, node } => (cluster, node),
        };
        let mut out = Vec::with_capacity(FIXED_LEN + version.len());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&cluster.0);
        out.extend_from_slice(&node.0);
        out.push(self.flags());
        out.push(vlen);
        out.extend_from_slice(version.as_bytes());
        Ok(out)
    }

    /// Parses an authenticated plaintext. It came from a key holder, but is
    /// still parsed defensively: a buggy client must not crash the server.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let timestamp = u64::from_be_bytes(r.array().ok_or(TRUNCATED)?);
        let cluster = AnonId(r.array().ok_or(TRUNCATED)?);
        let node = AnonId(r.array().ok_or(TRUNCATED)?);
        let [flags] = r.array().ok_or(TRUNCATED)?;
        let [vlen] = r.array().ok_or(TRUNCATED)?;
        let vtext = r.take(usize::from(vlen)).ok_or(TRUNCATED)?;
        let vtext = std::str::from_utf8(vtext).map_err(|_| DecodeError::Version)?;
        let version = Version::parse(vtext).map_err(|_| DecodeError::Version)?;
        // Optional fields: none are defined in v1, but their framing must be
        // intact so that a later reader can trust what follows.
        while !r.0.is_empty() {
            let [_kind, len] = r.array().ok_or(DecodeError::Plaintext("truncated field"))?;
            r.take(usize::from(len))
                .ok_or(DecodeError::Plaintext("truncated field"))?;
        }
        let identity = if flags & FLAG_IDENTITY_WITHHELD != 0 {
            Identity::Withheld
        } else {
            Identity::Known { cluster, node }
        };
        Ok(Payload {
            timestamp,
            identity,
            version,
        })
    }
}

const TRUNCATED: DecodeError = DecodeError::Plaintext("truncated");

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Payload {
        Payload {
            timestamp: 1_790_000_000,
            identity: Identity::Known {
                cluster: AnonId([1; 16]),
                node: AnonId([2; 16]),
            },
            version: Version::parse("2.3.0-rc.1+build.5").unwrap(),
        }
    }

    #[test]
    fn round_trip() {
        let p = sample();
        assert_eq!(Payload::from_bytes(&p.to_bytes().unwrap()).unwrap(), p);
    }

    #[test]
    fn withheld_identity_sends_zero_ids() {
        let p = Payload {
            identity: Identity::Withheld,
            ..sample()
        };
        let bytes = p.to_bytes().unwrap();
        assert!(bytes[8..40].iter().all(|b| *b == 0));
        assert_eq!(bytes[40], FLAG_IDENTITY_WITHHELD);
        assert_eq!(Payload::from_bytes(&bytes).unwrap(), p);
    }

    #[test]
    fn skips_unknown_fields_but_not_broken_ones() {
        let mut bytes = sample().to_bytes().unwrap();
        bytes.extend_from_slice(&[0x7f, 2, 0xaa, 0xbb]);
        assert_eq!(Payload::from_bytes(&bytes).unwrap(), sample());
        bytes.extend_from_slice(&[0x7e, 3, 0xaa]);
        assert!(Payload::from_bytes(&bytes).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().to_bytes().unwrap();
        for n in 0..bytes.len() {
            assert!(Payload::from_bytes(&bytes[..n]).is_err(), "length {n}");
        }
    }

    #[test]
    fn rejects_invalid_version_text() {
        let mut bytes = sample().to_bytes().unwrap();
        bytes.truncate(FIXED_LEN - 1);
        bytes.push(3);
        bytes.extend_from_slice(b"x.y");
        assert_eq!(Payload::from_bytes(&bytes), Err(DecodeError::Version));
    }
}
