//! Opening v2 frames with everything that depends only on the key
//! computed once: HPKE base mode (RFC 9180) for DHKEM(X25519,
//! HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, receiver side, one
//! message (sequence number 0).
//!
//! Why not `hpke::single_shot_open`: its DHKEM decapsulation derives the
//! recipient's public key from the private key on every call (a fixed-base
//! scalar multiplication, about a fifth of an open) and hashes the
//! constant `psk_id_hash` again; the crate offers no way to pass them in.
//! A [`Recipient`] holds them per key: each epoch key builds its own once
//! ([`super::keys::EpochKey`]). The zone's `info_hash` is one HMAC over a
//! short string, hashed per open (under a microsecond of the open's tens).
//!
//! The X25519 function itself: for an `enc` on the curve (every honest
//! one), the shared point is computed as `[k]P` on the Edwards form with
//! curve25519-dalek's vectorized (AVX2) variable-base multiplication, then
//! mapped back to its Montgomery u-coordinate; `k` is the clamped private
//! scalar, a multiple of 8, so any small-order part of `P` is cleared
//! exactly as the Montgomery ladder clears it. An `enc` on the twist (not
//! on the curve) takes the ladder (`MontgomeryPoint::mul_clamped`): X25519
//! is defined for every 32-byte string, and both paths give RFC 7748's
//! result. An all-zero shared secret (a small-order `enc`) is refused, as
//! RFC 9180 section 7.1.4 requires. Tests compare every step with the
//! `hpke` crate.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use sha2::Sha256;

use super::super::error::DecodeError;

/// `suite_id` of the KEM: "KEM" || I2OSP(0x0020, 2).
const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// `suite_id` of HPKE: "HPKE" || kem 0x0020 || kdf 0x0001 || aead 0x0003.
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";
const VERSION: &[u8] = b"HPKE-v1";

/// `LabeledExtract(salt, label, ikm)` (RFC 9180 section 4).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let mut input = Vec::with_capacity(VERSION.len() + suite.len() + label.len() + ikm.len());
    input.extend_from_slice(VERSION);
    input.extend_from_slice(suite);
    input.extend_from_slice(label);
    input.extend_from_slice(ikm);
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &input);
    prk.into()
}

/// `LabeledExpand(prk, label, info, L)` for `L <= 32`.
fn labeled_expand<const L: usize>(
    suite: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
) -> [u8; L] {
    let mut labeled =
        Vec::with_capacity(2 + VERSION.len() + suite.len() + label.len() + info.len());
    labeled.extend_from_slice(&(L as u16).to_be_bytes());
    labeled.extend_from_slice(VERSION);
    labeled.extend_from_slice(suite);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(info);
    let mut out = [0u8; L];
    // A 32-byte PRK is a valid HMAC key and L <= 32 is one block: neither
    // call can fail.
    if let Ok(hk) = Hkdf::<Sha256>::from_prk(prk) {
        let _ = hk.expand(&labeled, &mut out);
    }
    out
}

/// One sealing key, ready to open frames: the private scalar, its public
/// key and the key schedule's constant `psk_id_hash`.
#[derive(Clone)]
pub struct Recipient {
    secret: [u8; 32],
    public: [u8; 32],
    /// `mode (0) || psk_id_hash`, the start of the key schedule's context.
    psk_context: [u8; 33],
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient").finish_non_exhaustive()
    }
}

impl Recipient {
    /// `secret` is the recipient's X25519 private key (as HPKE serializes
    /// it).
    pub fn new(secret: [u8; 32]) -> Self {
        let public = MontgomeryPoint::mul_base_clamped(secret).to_bytes();
        let mut psk_context = [0u8; 33];
        psk_context[1..].copy_from_slice(&labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b""));
        Recipient {
            secret,
            public,
            psk_context,
        }
    }

    /// The public key, as a policy carries it.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.public
    }

    /// X25519(secret, enc), or `None` for a small-order `enc`.
    fn dh(&self, enc: &[u8; 32]) -> Option<[u8; 32]> {
        let u = MontgomeryPoint(*enc);
        let shared = match u.to_edwards(0) {
            Some(p) => p.mul_clamped(self.secret).to_montgomery(),
            None => u.mul_clamped(self.secret),
        };
        (shared.0 != [0; 32]).then_some(shared.0)
    }

    /// Decrypts `ciphertext || tag` sealed to this key with `enc`, the
    /// HPKE `info` and `aad`; the plaintext, or an authentication error
    /// for anything that was not sealed so.
    pub fn open(
        &self,
        enc: &[u8],
        info: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, DecodeError> {
        let enc: &[u8; 32] = enc.try_into().map_err(|_| DecodeError::Authentication)?;
        let (ciphertext, tag) = sealed
            .split_at_checked(
                sealed
                    .len()
                    .checked_sub(16)
                    .ok_or(DecodeError::Authentication)?,
            )
            .ok_or(DecodeError::Authentication)?;
        let dh = self.dh(enc).ok_or(DecodeError::Authentication)?;
        // DHKEM Decap: shared_secret = ExtractAndExpand(dh, enc || pkR).
        let mut kem_context = [0u8; 64];
        kem_context[..32].copy_from_slice(enc);
        kem_context[32..].copy_from_slice(&self.public);
        let eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", &dh);
        let shared: [u8; 32] = labeled_expand(KEM_SUITE, &eae_prk, b"shared_secret", &kem_context);
        // KeySchedule, base mode: the PSK is empty.
        let mut context = [0u8; 65];
        context[..33].copy_from_slice(&self.psk_context);
        context[33..].copy_from_slice(&labeled_extract(HPKE_SUITE, b"", b"info_hash", info));
        let secret = labeled_extract(HPKE_SUITE, &shared, b"secret", b"");
        let key: [u8; 32] = labeled_expand(HPKE_SUITE, &secret, b"key", &context);
        let nonce: [u8; 12] = labeled_expand(HPKE_SUITE, &secret, b"base_nonce", &context);
        let mut plaintext = ciphertext.to_vec();
        let mut tag_bytes = [0u8; 16];
        tag_bytes.copy_from_slice(tag);
        ChaCha20Poly1305::new(&key.into())
            .decrypt_inout_detached(
                &nonce.into(),
                aad,
                plaintext.as_mut_slice().into(),
                &tag_bytes.into(),
            )
            .map_err(|_| DecodeError::Authentication)?;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

    type Kem = hpke::kem::X25519HkdfSha256;
    type Kdf = hpke::kdf::HkdfSha256;
    type Aead = hpke::aead::ChaCha20Poly1305;

    /// Sealed by the `hpke` crate, opened here: the same plaintext for
    /// every key, `info`, `aad` and length; any other input fails as it
    /// does in the crate.
    #[test]
    fn opens_what_the_hpke_crate_seals_and_refuses_what_it_refuses() {
        for i in 0..64u8 {
            let (sk, pk) = Kem::gen_keypair();
            let info = format!("vcheckd v2 report\0zone{i}.example");
            let r = Recipient::new(sk.to_bytes().into());
            assert_eq!(
                r.public_bytes().as_slice(),
                Kem::sk_to_pk(&sk).to_bytes().as_slice()
            );
            let plaintext: Vec<u8> = (0..usize::from(i) + 1).map(|b| b as u8 ^ i).collect();
            let aad = [2, i, 0, 1];
            let (enc, sealed) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
                &OpModeS::Base,
                &pk,
                info.as_bytes(),
                &plaintext,
                &aad,
            )
            .unwrap();
            let enc = enc.to_bytes();
            assert_eq!(
                r.open(&enc, info.as_bytes(), &aad, &sealed).unwrap(),
                plaintext
            );
            let mut bad = sealed.clone();
            bad[usize::from(i) % sealed.len()] ^= 1;
            assert_eq!(
                r.open(&enc, info.as_bytes(), &aad, &bad),
                Err(DecodeError::Authentication)
            );
            assert_eq!(
                r.open(&enc, info.as_bytes(), &[9], &sealed),
                Err(DecodeError::Authentication)
            );
            assert_eq!(
                r.open(&enc, b"another info", &aad, &sealed),
                Err(DecodeError::Authentication)
            );
            // The crate agrees on the key it derived.
            let crate_open = hpke::single_shot_open::<Aead, Kdf, Kem>(
                &OpModeR::Base,
                &sk,
                &<Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap(),
                info.as_bytes(),
                &sealed,
                &aad,
            );
            assert_eq!(crate_open.unwrap(), plaintext);
        }
    }

    /// X25519 by the Edwards path equals the Montgomery ladder for points
    /// on the curve, on its twist and of small order; small-order points
    /// give the all-zero secret, which is refused.
    #[test]
    fn the_edwards_path_equals_the_ladder_for_every_kind_of_enc() {
        let (sk, _) = Kem::gen_keypair();
        let r = Recipient::new(sk.to_bytes().into());
        let mut checked = (0, 0);
        for i in 0..400u32 {
            let mut u = [0u8; 32];
            let h = <sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes());
            u.copy_from_slice(&h);
            u[31] &= 0x7f;
            let ladder = MontgomeryPoint(u).mul_clamped(r.secret).0;
            let ours = r.dh(&u);
            if ladder == [0; 32] {
                assert_eq!(ours, None);
            } else {
                assert_eq!(ours, Some(ladder), "u = {u:?}");
            }
            if MontgomeryPoint(u).to_edwards(0).is_some() {
                checked.0 += 1;
            } else {
                checked.1 += 1;
            }
        }
        assert!(checked.0 > 100 && checked.1 > 100, "{checked:?}");
        // Small order: u = 0 and u = 1 (RFC 7748's low-order points).
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(r.dh(&[0; 32]), None);
        assert_eq!(r.dh(&one), None);
    }
}
