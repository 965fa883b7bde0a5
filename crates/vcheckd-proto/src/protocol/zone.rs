//! A zone's name in its one canonical form (docs/PROTOCOL.md §5): the
//! thing both the v1 frame and the v2 seal bind into their ciphertexts, and
//! under which report names are placed. A module of its own, below the
//! frames and the names, so that neither has to import the other for it.

use std::fmt;

use super::error::EncodeError;

pub const MAX_LABEL_LEN: usize = 63;
/// A name's text form without the trailing dot (RFC 1035: 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;

/// A zone's name in the one form the protocol binds into the ciphertext:
/// lower case ASCII, labels separated by dots, no trailing dot.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneName(String);

impl ZoneName {
    pub fn new(text: &str) -> Result<Self, EncodeError> {
        let trimmed = text.trim();
        let norm = trimmed
            .strip_suffix('.')
            .unwrap_or(trimmed)
            .to_ascii_lowercase();
        let ok = !norm.is_empty()
            && norm.len() <= MAX_NAME_LEN
            && norm.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= MAX_LABEL_LEN
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if ok {
            Ok(ZoneName(norm))
        } else {
            Err(EncodeError::Zone(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoneName({})", self.0)
    }
}

impl fmt::Display for ZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
