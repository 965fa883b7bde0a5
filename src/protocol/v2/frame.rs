//! The v2 frame: `format (1) = 2 | key id (1) | enc (32) | ciphertext + tag (16)`.
//!
//! The plaintext (the same layout as v1, see [`crate::protocol::payload`])
//! is sealed with HPKE base mode (RFC 9180) to the zone's X25519 key:
//! `info = "vcheckd v2 report" 0x00 zone`, `aad = format | key id`. Binding
//! the zone into `info` keeps a frame from being replayed under another
//! zone; the header as `aad` keeps its key id from being relabelled.
//!
//! The answer path only checks a frame's shape ([`check_shape`]); opening
//! it (one X25519 operation, about 0.15 ms) is the processor's job.

use hpke::{OpModeS, Serializable};
use sha2::{Digest, Sha256};

use super::super::error::{DecodeError, EncodeError};
use super::super::frame::{Report, ReportId, NONCE_LEN};
use super::super::key::KeyId;
use super::super::name::ZoneName;
use super::super::payload::{self, Payload};
use super::keys::{PrivateKey, PrivateKeyring, PublicKey};
use super::open::Recipient;
use super::{Aead, Kdf, Kem, FORMAT_V2};

/// Length of the encapsulated key (an X25519 public key).
pub const ENC_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2;
/// Header, encapsulated key and tag.
pub const OVERHEAD: usize = HEADER_LEN + ENC_LEN + TAG_LEN;
/// The shortest frame that can hold a report.
pub const MIN_FRAME: usize = OVERHEAD + payload::MIN_LEN;

fn info(zone: &ZoneName) -> Vec<u8> {
    let mut info = b"vcheckd v2 report\0".to_vec();
    info.extend_from_slice(zone.as_str().as_bytes());
    info
}

/// `SHA-256("vcheckd v2 report id" || enc)[..12]`: every seal draws a
/// fresh ephemeral key, so the id is unique per report, the same on every
/// name server that sees the frame, and computable without the private key.
pub fn report_id(enc: &[u8]) -> ReportId {
    let digest = Sha256::new()
        .chain_update(b"vcheckd v2 report id")
        .chain_update(enc)
        .finalize();
    let mut id = [0u8; NONCE_LEN];
    id.copy_from_slice(&digest[..NONCE_LEN]);
    ReportId(id)
}

/// The report id of a frame of any content (from its `enc`), without
/// opening it; `None` if it is too short to hold one.
pub fn id_of(frame: &[u8]) -> Option<ReportId> {
    frame.get(HEADER_LEN..HEADER_LEN + ENC_LEN).map(report_id)
}

/// What the answer path may know of a frame without decrypting: that it
/// is a v2 frame of a plausible size under a key id the zone serves.
pub fn check_shape(frame: &[u8], known: impl Fn(KeyId) -> bool) -> Result<KeyId, DecodeError> {
    if frame.len() < MIN_FRAME {
        return Err(DecodeError::TooShort(frame.len()));
    }
    if frame[0] != FORMAT_V2 {
        return Err(DecodeError::UnknownFormat(frame[0]));
    }
    let key_id = KeyId(frame[1]);
    if !known(key_id) {
        return Err(DecodeError::UnknownKey(key_id.0));
    }
    Ok(key_id)
}

/// Seals `payload` to `key` with a fresh ephemeral key.
pub fn seal(key: &PublicKey, zone: &ZoneName, payload: &Payload) -> Result<Vec<u8>, EncodeError> {
    seal_with_rng(key, zone, payload, &mut rand_source())
}

/// Seals with the ephemeral key derived from `ikm_e` (RFC 9180
/// `DeriveKeyPair`): reproducible frames for published test vectors only.
pub fn seal_with_ikm(
    key: &PublicKey,
    zone: &ZoneName,
    payload: &Payload,
    ikm_e: [u8; 32],
) -> Result<Vec<u8>, EncodeError> {
    seal_with_rng(key, zone, payload, &mut FixedIkm(Some(ikm_e)))
}

fn seal_with_rng(
    key: &PublicKey,
    zone: &ZoneName,
    payload: &Payload,
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<Vec<u8>, EncodeError> {
    let plaintext = payload.to_bytes()?;
    let header = [FORMAT_V2, key.id.0];
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &key.seal_to,
        &info(zone),
        &plaintext,
        &header,
        rng,
    )
    .map_err(|_| EncodeError::Encrypt)?;
    let mut frame = Vec::with_capacity(OVERHEAD + plaintext.len());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&enc.to_bytes());
    frame.extend_from_slice(&ciphertext);
    Ok(frame)
}

/// The [`Recipient`] that opens frames sealed to `key` under `zone`: what
/// a server computes once per key and zone.
pub fn recipient(key: &PrivateKey, zone: &ZoneName) -> Recipient {
    Recipient::new(key, &info(zone))
}

/// Authenticates and decodes a frame received under `zone`.
pub fn open(keys: &PrivateKeyring, zone: &ZoneName, frame: &[u8]) -> Result<Report, DecodeError> {
    let key_id = check_shape(frame, |id| keys.get(id).is_some())?;
    let key = keys.get(key_id).ok_or(DecodeError::UnknownKey(key_id.0))?;
    let recipient = recipient(key, zone);
    open_prepared(|id| (id == key_id).then_some(&recipient), frame)
}

/// [`open`] with each key's [`Recipient`] prepared (for the frame's zone).
pub fn open_prepared<'r>(
    recipient: impl Fn(KeyId) -> Option<&'r Recipient>,
    frame: &[u8],
) -> Result<Report, DecodeError> {
    let key_id = check_shape(frame, |id| recipient(id).is_some())?;
    let r = recipient(key_id).ok_or(DecodeError::UnknownKey(key_id.0))?;
    let (enc, ciphertext) = frame[HEADER_LEN..].split_at(ENC_LEN);
    let plaintext = r.open(enc, &frame[..HEADER_LEN], ciphertext)?;
    Ok(Report {
        id: report_id(enc),
        key_id,
        payload: Payload::from_bytes(&plaintext)?,
    })
}

/// The operating system's random source, as the `rand_core` version that
/// `hpke` speaks.
fn rand_source() -> impl hpke::rand_core::CryptoRng {
    OsBytes
}

struct OsBytes;

impl hpke::rand_core::TryRng for OsBytes {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(rand::random())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(rand::random())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand::RngCore::fill_bytes(&mut rand::rng(), dst);
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for OsBytes {}

/// Hands out one fixed 32-byte block (the ephemeral IKM), then zeros.
struct FixedIkm(Option<[u8; 32]>);

impl hpke::rand_core::TryRng for FixedIkm {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(0);
        if let Some(ikm) = self.0.take() {
            let n = dst.len().min(ikm.len());
            dst[..n].copy_from_slice(&ikm[..n]);
        }
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for FixedIkm {}

#[cfg(test)]
mod tests {
    use super::super::keys::PrivateKey;
    use super::*;
    use crate::protocol::{AnonId, Identity};

    fn payload() -> Payload {
        Payload {
            timestamp: 1_790_000_000,
            identity: Identity::Known {
                cluster: AnonId([1; 16]),
                node: AnonId([2; 16]),
            },
            version: semver::Version::parse("2.4.1").unwrap(),
        }
    }

    fn setup() -> (PrivateKeyring, PublicKey, ZoneName) {
        let private = PrivateKey::generate(KeyId(4));
        let public = private.public();
        (
            PrivateKeyring::new(vec![private]).unwrap(),
            public,
            ZoneName::new("vc.example.com").unwrap(),
        )
    }

    #[test]
    fn round_trip_and_id_from_enc() {
        let (ring, public, zone) = setup();
        let frame = seal(&public, &zone, &payload()).unwrap();
        assert_eq!(frame.len(), OVERHEAD + payload().to_bytes().unwrap().len());
        let report = open(&ring, &zone, &frame).unwrap();
        assert_eq!(report.payload, payload());
        assert_eq!(report.key_id, KeyId(4));
        assert_eq!(report.id, report_id(&frame[2..34]));
        // A fresh ephemeral key each time: a new id, unlinkable frames.
        let again = seal(&public, &zone, &payload()).unwrap();
        assert_ne!(again[2..34], frame[2..34]);
    }

    #[test]
    fn fixed_ikm_is_reproducible() {
        let (_, public, zone) = setup();
        let a = seal_with_ikm(&public, &zone, &payload(), [7; 32]).unwrap();
        let b = seal_with_ikm(&public, &zone, &payload(), [7; 32]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn every_alteration_fails() {
        let (ring, public, zone) = setup();
        let frame = seal(&public, &zone, &payload()).unwrap();
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            assert!(open(&ring, &zone, &bad).is_err(), "byte {i}");
        }
        let other = ZoneName::new("vc.example.org").unwrap();
        assert_eq!(
            open(&ring, &other, &frame),
            Err(DecodeError::Authentication)
        );
        assert!(matches!(
            open(&ring, &zone, &frame[..MIN_FRAME - 1]),
            Err(DecodeError::TooShort(_))
        ));
    }

    #[test]
    fn shape_check_needs_no_key() {
        let (_, public, zone) = setup();
        let frame = seal(&public, &zone, &payload()).unwrap();
        assert_eq!(check_shape(&frame, |id| id == KeyId(4)), Ok(KeyId(4)));
        assert_eq!(
            check_shape(&frame, |_| false),
            Err(DecodeError::UnknownKey(4))
        );
        let mut v1 = frame.clone();
        v1[0] = 1;
        assert_eq!(
            check_shape(&v1, |_| true),
            Err(DecodeError::UnknownFormat(1))
        );
    }
}
