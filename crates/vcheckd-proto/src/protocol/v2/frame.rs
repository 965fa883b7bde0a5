//! The v2 frame:
//!
//! ```text
//! format (1) = 2 | key id (1) | epoch (2) | enc (32) | ciphertext + tag (56 or 74, + 16) | proof (4)
//! ```
//!
//! The padded plaintext ([`super::plaintext`]) is sealed with HPKE base
//! mode (RFC 9180; DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305) to the X25519 key of `epoch` under `key id` (the
//! zone's signed policy carries it): `info = "vcheckd v2 report" 0x00
//! zone`, `aad = format | key id | epoch`. Binding the zone into `info`
//! keeps a frame from being replayed under another zone; the header as
//! `aad` keeps it from being relabelled. The proof ([`super::effort`])
//! follows the ciphertext and is not sealed: the client searches it after
//! sealing, and it binds to every byte before it.
//!
//! A frame is 112 or 130 bytes, nothing else. The answer path checks only
//! the shape ([`check_shape`]) and the effort; opening it (one X25519
//! operation) is the journal consumer's job.

use hpke::{OpModeS, Serializable};
use sha2::{Digest, Sha256};

use super::super::error::{DecodeError, EncodeError};
use super::super::frame::{Report, ReportId, NONCE_LEN};
use super::super::key::KeyId;
use super::super::payload::Payload;
use super::super::zone::ZoneName;
use super::effort::PROOF_LEN;
use super::keys::{Epoch, PrivateKeyring, SealKey};
use super::{plaintext, Aead, Kdf, Kem, FORMAT_V2};

/// Length of the encapsulated key (an X25519 public key).
pub const ENC_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
/// Format, key id and epoch.
pub const HEADER_LEN: usize = 4;
/// Header, encapsulated key, tag and proof.
pub const OVERHEAD: usize = HEADER_LEN + ENC_LEN + TAG_LEN + PROOF_LEN;
/// The two frame lengths: small and large plaintext.
pub const SIZES: [usize; 2] = [
    OVERHEAD + plaintext::SIZES[0],
    OVERHEAD + plaintext::SIZES[1],
];

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

/// The report id of a frame of valid shape.
pub fn frame_report_id(frame: &[u8]) -> ReportId {
    report_id(&frame[HEADER_LEN..HEADER_LEN + ENC_LEN])
}

/// What the answer path may know of a frame without opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub key_id: KeyId,
    pub epoch: Epoch,
}

/// The frame's header, if it has the shape of a v2 frame: one of the two
/// lengths and format 2. Whether its key id and epoch are served is the
/// caller's question.
pub fn check_shape(frame: &[u8]) -> Result<Header, DecodeError> {
    if !SIZES.contains(&frame.len()) {
        return Err(DecodeError::FrameLength(frame.len()));
    }
    if frame[0] != FORMAT_V2 {
        return Err(DecodeError::UnknownFormat(frame[0]));
    }
    Ok(Header {
        key_id: KeyId(frame[1]),
        epoch: Epoch(u16::from_be_bytes([frame[2], frame[3]])),
    })
}

/// Seals `payload` to `key` with a fresh ephemeral key from the operating
/// system's random source (never a user-space generator a fork could
/// copy). The proof is left zero: see [`super::effort::prove`].
pub fn seal(key: &SealKey, zone: &ZoneName, payload: &Payload) -> Result<Vec<u8>, EncodeError> {
    seal_with_rng(key, zone, payload, &mut OsBytes)
}

/// Seals with the ephemeral key derived from `ikm_e` (RFC 9180
/// `DeriveKeyPair`): reproducible frames for published test vectors only.
pub fn seal_with_ikm(
    key: &SealKey,
    zone: &ZoneName,
    payload: &Payload,
    ikm_e: [u8; 32],
) -> Result<Vec<u8>, EncodeError> {
    seal_with_rng(key, zone, payload, &mut FixedIkm(Some(ikm_e)))
}

/// Seals any plaintext bytes with the ephemeral key derived from `ikm_e`:
/// the test vectors' frames that open but hold a malformed plaintext.
pub fn seal_plaintext_with_ikm(
    key: &SealKey,
    zone: &ZoneName,
    plaintext: &[u8],
    ikm_e: [u8; 32],
) -> Result<Vec<u8>, EncodeError> {
    seal_bytes(key, zone, plaintext, &mut FixedIkm(Some(ikm_e)))
}

fn seal_with_rng(
    key: &SealKey,
    zone: &ZoneName,
    payload: &Payload,
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<Vec<u8>, EncodeError> {
    seal_bytes(key, zone, &plaintext::encode(payload)?, rng)
}

fn seal_bytes(
    key: &SealKey,
    zone: &ZoneName,
    plaintext: &[u8],
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<Vec<u8>, EncodeError> {
    let e = key.epoch.0.to_be_bytes();
    let header = [FORMAT_V2, key.key_id.0, e[0], e[1]];
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &key.public,
        &info(zone),
        plaintext,
        &header,
        rng,
    )
    .map_err(|_| EncodeError::Encrypt)?;
    let mut frame = Vec::with_capacity(OVERHEAD + plaintext.len());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&enc.to_bytes());
    frame.extend_from_slice(&ciphertext);
    frame.extend_from_slice(&[0; PROOF_LEN]);
    Ok(frame)
}

/// Authenticates and decodes a frame received under `zone`.
pub fn open(keys: &PrivateKeyring, zone: &ZoneName, frame: &[u8]) -> Result<Report, DecodeError> {
    let header = check_shape(frame)?;
    let key = keys
        .get(header.key_id)
        .ok_or(DecodeError::UnknownKey(header.key_id.0))?
        .epoch(header.epoch)
        .ok_or(DecodeError::UnknownEpoch(header.epoch.0))?;
    let sealed = &frame[HEADER_LEN..frame.len() - PROOF_LEN];
    let (enc, ciphertext) = sealed.split_at(ENC_LEN);
    let plaintext = key
        .recipient
        .open(enc, &info(zone), &frame[..HEADER_LEN], ciphertext)?;
    Ok(Report {
        id: report_id(enc),
        key_id: header.key_id,
        payload: plaintext::decode(&plaintext)?,
    })
}

/// The operating system's random source (getrandom(2)), as the `rand_core`
/// version that `hpke` speaks. Each call asks the kernel: a forked child
/// never repeats its parent's ephemeral key.
struct OsBytes;

impl hpke::rand_core::TryRng for OsBytes {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        // The kernel's generator does not fail once seeded; a process that
        // cannot read it must not seal with anything weaker.
        getrandom::fill(dst).expect("the operating system's random source is readable");
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
    use super::super::effort;
    use super::super::keys::{PrivateKey, EPOCH_SECS};
    use super::*;
    use crate::protocol::{AnonId, Identity};

    const NOW: u64 = 2_900 * EPOCH_SECS + 86_400 * 3;

    fn payload(version: &str) -> Payload {
        Payload {
            timestamp: NOW,
            identity: Identity::Known {
                cluster: AnonId([1; 16]),
                node: AnonId([2; 16]),
            },
            version: semver::Version::parse(version).unwrap(),
        }
    }

    fn setup() -> (PrivateKeyring, SealKey, ZoneName) {
        let private = PrivateKey::generate(KeyId(4), NOW - EPOCH_SECS * 3);
        let ring = PrivateKeyring::new(&[private], NOW).unwrap();
        let current = ring.epoch_key(KeyId(4), Epoch::at(NOW)).unwrap();
        let seal = SealKey::from_bytes(KeyId(4), current.epoch, &current.public_bytes()).unwrap();
        (ring, seal, ZoneName::new("vc.example.com").unwrap())
    }

    #[test]
    fn round_trip_sizes_and_id_from_enc() {
        let (ring, key, zone) = setup();
        for (version, size) in [("2.4.1", 112), ("1.2.3-beta.1+exp.sha.5114f85", 130)] {
            let mut frame = seal(&key, &zone, &payload(version)).unwrap();
            assert_eq!(frame.len(), size);
            effort::prove(&mut frame, effort::Effort(8), 1 << 20);
            let report = open(&ring, &zone, &frame).unwrap();
            assert_eq!(report.payload, payload(version));
            assert_eq!(report.key_id, KeyId(4));
            assert_eq!(report.id, frame_report_id(&frame));
        }
        // A fresh ephemeral key each time: a new id, unlinkable frames.
        let a = seal(&key, &zone, &payload("2.4.1")).unwrap();
        let b = seal(&key, &zone, &payload("2.4.1")).unwrap();
        assert_ne!(a[4..36], b[4..36]);
    }

    #[test]
    fn fixed_ikm_is_reproducible() {
        let (_, key, zone) = setup();
        let a = seal_with_ikm(&key, &zone, &payload("2.4.1"), [7; 32]).unwrap();
        let b = seal_with_ikm(&key, &zone, &payload("2.4.1"), [7; 32]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn every_sealed_alteration_fails_and_the_proof_is_not_sealed() {
        let (ring, key, zone) = setup();
        let frame = seal(&key, &zone, &payload("2.4.1")).unwrap();
        for i in 0..frame.len() - PROOF_LEN {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            assert!(open(&ring, &zone, &bad).is_err(), "byte {i}");
        }
        let mut proof = frame.clone();
        let last = proof.len() - 1;
        proof[last] ^= 0xff;
        assert!(open(&ring, &zone, &proof).is_ok());
        let other = ZoneName::new("vc.example.org").unwrap();
        assert_eq!(
            open(&ring, &other, &frame),
            Err(DecodeError::Authentication)
        );
        assert_eq!(
            open(&ring, &zone, &frame[..111]),
            Err(DecodeError::FrameLength(111))
        );
    }

    #[test]
    fn an_epoch_no_longer_held_does_not_open() {
        let (ring, key, zone) = setup();
        let frame = seal(&key, &zone, &payload("2.4.1")).unwrap();
        let much_later = ring.at(NOW + 5 * EPOCH_SECS);
        assert_eq!(
            open(&much_later, &zone, &frame),
            Err(DecodeError::UnknownEpoch(key.epoch.0))
        );
    }

    #[test]
    fn shape_check_needs_no_key() {
        let (_, key, zone) = setup();
        let frame = seal(&key, &zone, &payload("2.4.1")).unwrap();
        assert_eq!(
            check_shape(&frame),
            Ok(Header {
                key_id: KeyId(4),
                epoch: key.epoch
            })
        );
        let mut v1 = frame.clone();
        v1[0] = 1;
        assert_eq!(check_shape(&v1), Err(DecodeError::UnknownFormat(1)));
    }

    /// The ephemeral key comes from the kernel on every seal: a forked
    /// child (as a forking vendor daemon would) never repeats the parent's.
    #[cfg(unix)]
    #[test]
    fn a_forked_child_never_repeats_enc() {
        let (_, key, zone) = setup();
        // Warm anything that could cache randomness in this process.
        let parent_first = seal(&key, &zone, &payload("2.4.1")).unwrap();
        let mut fds = [0i32; 2];
        // SAFETY: pipe(2) fills two descriptors; fork(2) in a test process
        // whose child only seals, writes 32 bytes and exits (no locks held
        // across the fork in this single-threaded section).
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let frame = seal(&key, &zone, &payload("2.4.1")).unwrap();
                libc::write(fds[1], frame[4..36].as_ptr().cast(), 32);
                libc::_exit(0);
            }
            let parent = seal(&key, &zone, &payload("2.4.1")).unwrap();
            let mut child = [0u8; 32];
            assert_eq!(libc::read(fds[0], child.as_mut_ptr().cast(), 32), 32);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert_ne!(child[..], parent[4..36]);
            assert_ne!(child[..], parent_first[4..36]);
        }
    }
}
