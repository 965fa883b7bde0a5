//! Client effort: a proof of work bound to every byte of a v2 frame.
//!
//! ```text
//! digest = SHA-256("vcheckd v2 effort" 0x00 || frame)     (the whole frame)
//! effort = the number of leading zero bits of digest
//! ```
//!
//! The frame's last [`PROOF_LEN`] bytes are the proof: a value the client
//! varies, the rest of the frame fixed, until the digest has as many
//! leading zero bits as the zone's signed policy suggests (or its time
//! bound runs out; then it sends the best proof it found). Sealed reports
//! cost an attacker nothing to make without it; with it, each frame of
//! effort `e` costs about `2^e` SHA-256 compressions, while the name
//! server checks it with one hash of the frame (well under a microsecond)
//! before anything else is spent on the frame: the journal keeps and
//! opens frames in order of effort (docs/PROTOCOL.md).
//!
//! Why a hashcash over SHA-256: every client language has SHA-256 in its
//! standard library, and verifying it is as cheap as reading the frame. A
//! GPU computes it several hundred times faster than one CPU core, so it
//! prices out a flood from commodity machines and botnets of small
//! devices, not a determined attacker with GPUs; the effort ordering still
//! keeps the cost of displacing a client's report at the client's own
//! effort per frame (docs/PROTOCOL.md weighs Equi-X, which resists GPUs
//! but costs 50 µs to verify).
//!
//! The digest is also the frame's fingerprint: two deliveries with equal
//! digests are byte-for-byte repeats.

use sha2::{Digest, Sha256};

/// The proof's length at the end of a frame.
pub const PROOF_LEN: usize = 4;

/// The domain-separation prefix hashed before the frame.
const PREFIX: &[u8] = b"vcheckd v2 effort\0";

/// A frame's effort: leading zero bits of its digest, saturating at 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Effort(pub u8);

impl std::fmt::Display for Effort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The SHA-256 digest that carries a frame's effort.
pub type EffortDigest = [u8; 32];

/// The effort of `frame` (its whole bytes, proof included) and the digest
/// it was read from.
pub fn effort(frame: &[u8]) -> (Effort, EffortDigest) {
    let digest: EffortDigest = Sha256::new()
        .chain_update(PREFIX)
        .chain_update(frame)
        .finalize()
        .into();
    (leading_zero_bits(&digest), digest)
}

fn leading_zero_bits(digest: &EffortDigest) -> Effort {
    let mut bits = 0u32;
    for b in digest {
        if *b == 0 {
            bits += 8;
        } else {
            bits += b.leading_zeros();
            break;
        }
    }
    Effort(bits.min(255) as u8)
}

/// The best proof found for `frame` (whose last [`PROOF_LEN`] bytes are
/// overwritten) within `max_tries` tries from proof 0 upward, stopping at
/// the first that reaches `target`. The frame is left holding the best
/// proof; returns its effort. (Test vectors use this order: the lowest
/// proof reaching the target.)
pub fn prove(frame: &mut [u8], target: Effort, max_tries: u64) -> Effort {
    prove_from(frame, target, 0, max_tries)
}

/// As [`prove`], trying proofs `first`, `first + 1`, ... (at most
/// `tries`, never past 2^32 - 1). The prefix and the frame up to its proof
/// are hashed once; each try hashes only the rest (SHA-256's state is
/// copied), so a try costs one or two compressions.
pub fn prove_from(frame: &mut [u8], target: Effort, first: u64, tries: u64) -> Effort {
    let Some(split) = frame.len().checked_sub(PROOF_LEN) else {
        return Effort(0);
    };
    let head = Sha256::new()
        .chain_update(PREFIX)
        .chain_update(&frame[..split]);
    let end = first.saturating_add(tries).min(1 << 32);
    let mut best: Option<(Effort, u32)> = None;
    for proof in first.min(end)..end {
        // Below 2^32 by `end`.
        let proof = proof as u32;
        let digest: EffortDigest = head
            .clone()
            .chain_update(proof.to_be_bytes())
            .finalize()
            .into();
        let got = leading_zero_bits(&digest);
        if best.is_none_or(|(b, _)| got > b) {
            best = Some((got, proof));
        }
        if got >= target {
            break;
        }
    }
    match best {
        Some((reached, proof)) => {
            frame[split..].copy_from_slice(&proof.to_be_bytes());
            reached
        }
        // No try left: the frame keeps its proof.
        None => effort(frame).0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_reaches_its_target_and_is_checked_by_one_hash() {
        let mut frame = vec![7u8; 112];
        let got = prove(&mut frame, Effort(12), 1 << 24);
        assert!(got >= Effort(12), "{got}");
        assert_eq!(effort(&frame).0, got);
        // Any other byte changed: the proof no longer holds (with
        // overwhelming probability at 12 bits: 1 in 4096).
        frame[40] ^= 1;
        assert!(effort(&frame).0 < Effort(12));
    }

    #[test]
    fn out_of_tries_keeps_the_best_proof_found() {
        let mut frame = vec![9u8; 130];
        let got = prove(&mut frame, Effort(200), 300);
        assert_eq!(effort(&frame).0, got);
        assert!(got >= Effort(1), "300 tries find at least one zero bit");
    }

    #[test]
    fn leading_zero_bits_count_across_bytes() {
        let mut d = [0xffu8; 32];
        assert_eq!(leading_zero_bits(&d), Effort(0));
        d[0] = 0;
        d[1] = 0x10;
        assert_eq!(leading_zero_bits(&d), Effort(11));
        assert_eq!(leading_zero_bits(&[0; 32]), Effort(255));
    }
}
