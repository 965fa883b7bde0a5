//! The binary frame: `format (1) | key id (1) | nonce (12) | ciphertext + tag (16)`.
//!
//! AES-256-GCM with associated data `format | key id | zone name`, so that a
//! frame cannot be moved to another zone or relabelled with another key id
//! without failing authentication.

use std::fmt;

use aes_gcm::aead::{Aead, Payload as AeadPayload};
use aes_gcm::Nonce;

use super::error::{DecodeError, EncodeError};
use super::key::{Key, KeyId, Keyring};
use super::payload::Payload;
use super::zone::ZoneName;
use super::FORMAT_V1;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2;
/// Header, nonce and tag: a frame shorter than this cannot authenticate.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// The frame's nonce, which doubles as the report's identity: resolvers
/// retry and ask several name servers, and the nonce is what lets the
/// store keep each report once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportId(pub [u8; NONCE_LEN]);

impl ReportId {
    pub fn random() -> Self {
        let mut n = [0u8; NONCE_LEN];
        // The kernel's generator on every call: a forked child never
        // repeats its parent's nonce (a repeated AES-GCM nonce under one
        // key gives away the authentication key).
        getrandom::fill(&mut n).expect("the operating system's random source is readable");
        ReportId(n)
    }

    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
}

impl fmt::Debug for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportId({})", self.to_hex())
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An authenticated, decoded report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub id: ReportId,
    pub key_id: KeyId,
    pub payload: Payload,
}

fn aad(key_id: KeyId, zone: &ZoneName) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + zone.as_str().len());
    aad.push(FORMAT_V1);
    aad.push(key_id.0);
    aad.extend_from_slice(zone.as_str().as_bytes());
    aad
}

/// Encrypts `payload` into a frame. The caller picks the nonce so that tests
/// and published test vectors are reproducible; real clients use
/// [`ReportId::random`].
pub fn seal(
    key: &Key,
    zone: &ZoneName,
    id: ReportId,
    payload: &Payload,
) -> Result<Vec<u8>, EncodeError> {
    let plaintext = payload.to_bytes()?;
    let ciphertext = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&id.0),
            AeadPayload {
                msg: &plaintext,
                aad: &aad(key.id, zone),
            },
        )
        .map_err(|_| EncodeError::Encrypt)?;
    let mut frame = Vec::with_capacity(OVERHEAD + plaintext.len());
    frame.push(FORMAT_V1);
    frame.push(key.id.0);
    frame.extend_from_slice(&id.0);
    frame.extend_from_slice(&ciphertext);
    Ok(frame)
}

/// Authenticates and decodes a frame received under `zone`.
pub fn open(keyring: &Keyring, zone: &ZoneName, frame: &[u8]) -> Result<Report, DecodeError> {
    if frame.len() < OVERHEAD {
        return Err(DecodeError::TooShort(frame.len()));
    }
    if frame[0] != FORMAT_V1 {
        return Err(DecodeError::UnknownFormat(frame[0]));
    }
    let key_id = KeyId(frame[1]);
    let cipher = keyring
        .get(key_id)
        .ok_or(DecodeError::UnknownKey(key_id.0))?;
    let (nonce, ciphertext) = frame[HEADER_LEN..].split_at(NONCE_LEN);
    let plaintext = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            AeadPayload {
                msg: ciphertext,
                aad: &aad(key_id, zone),
            },
        )
        .map_err(|_| DecodeError::Authentication)?;
    let mut id = [0u8; NONCE_LEN];
    id.copy_from_slice(nonce);
    Ok(Report {
        id: ReportId(id),
        key_id,
        payload: Payload::from_bytes(&plaintext)?,
    })
}
