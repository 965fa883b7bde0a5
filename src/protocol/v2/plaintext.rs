//! The v2 plaintext: fixed fields, the version, and zero padding to one of
//! two sizes, so that a name's length does not give the version away.
//!
//! ```text
//! timestamp (4, big-endian, unix s) | flags (1) | cluster (16) | node (16)
//! | version length (1) | version (ASCII SemVer) | zeros up to 56 or 74 bytes
//! ```
//!
//! Every version of up to [`SMALL_VERSION`] bytes makes a 56-byte plaintext
//! (a 112-byte frame); longer ones, up to [`LARGE_VERSION`] bytes, a 74-byte
//! one (130 bytes). An observer of the name learns only which of the two.
//! Flags: bit 0 = identity withheld (DISABLE_TELEMETRY; both ids zero);
//! the other bits are zero. The reader refuses anything else: a length
//! other than 56 or 74, set reserved bits, ids with the withheld flag, a
//! non-zero padding byte, a version that is not ASCII SemVer.

use semver::Version;

use super::super::error::{DecodeError, EncodeError};
use super::super::payload::{AnonId, Identity, Payload, FLAG_IDENTITY_WITHHELD};

/// Bytes before the version text.
const FIXED_LEN: usize = 4 + 1 + 16 + 16 + 1;
/// The plaintext sizes: small, then large.
pub const SIZES: [usize; 2] = [56, 74];
/// The longest version a small plaintext holds.
pub const SMALL_VERSION: usize = SIZES[0] - FIXED_LEN;
/// The longest version any plaintext holds.
pub const LARGE_VERSION: usize = SIZES[1] - FIXED_LEN;

/// The padded plaintext of `payload`.
pub fn encode(payload: &Payload) -> Result<Vec<u8>, EncodeError> {
    let version = payload.version.to_string();
    let size = SIZES
        .into_iter()
        .find(|s| FIXED_LEN + version.len() <= *s)
        .ok_or(EncodeError::VersionTooLong(version.len()))?;
    let timestamp =
        u32::try_from(payload.timestamp).map_err(|_| EncodeError::Timestamp(payload.timestamp))?;
    let (cluster, node) = match payload.identity {
        Identity::Withheld => (AnonId::ZERO, AnonId::ZERO),
        Identity::Known { cluster, node } => (cluster, node),
    };
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.push(payload.flags());
    out.extend_from_slice(&cluster.0);
    out.extend_from_slice(&node.0);
    // At most LARGE_VERSION (36) bytes: fits the length byte.
    out.push(version.len() as u8);
    out.extend_from_slice(version.as_bytes());
    out.resize(size, 0);
    Ok(out)
}

/// Parses an authenticated plaintext, refusing anything not exactly as
/// [`encode`] writes it (a buggy client must not crash the server, nor be
/// counted as something it did not say).
pub fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
    if !SIZES.contains(&bytes.len()) {
        return Err(DecodeError::Plaintext("length is neither 56 nor 74 bytes"));
    }
    let timestamp = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let flags = bytes[4];
    if flags & !FLAG_IDENTITY_WITHHELD != 0 {
        return Err(DecodeError::Plaintext("reserved flag bits set"));
    }
    let mut cluster = [0u8; 16];
    cluster.copy_from_slice(&bytes[5..21]);
    let mut node = [0u8; 16];
    node.copy_from_slice(&bytes[21..37]);
    let vlen = usize::from(bytes[37]);
    let rest = &bytes[FIXED_LEN..];
    if vlen > rest.len() {
        return Err(DecodeError::Plaintext("version longer than the plaintext"));
    }
    let (vtext, padding) = rest.split_at(vlen);
    if padding.iter().any(|b| *b != 0) {
        return Err(DecodeError::Plaintext("non-zero padding"));
    }
    if bytes.len() == SIZES[1] && vlen <= SMALL_VERSION {
        return Err(DecodeError::Plaintext(
            "large plaintext for a short version",
        ));
    }
    if !vtext.is_ascii() {
        return Err(DecodeError::Version);
    }
    let vtext = std::str::from_utf8(vtext).map_err(|_| DecodeError::Version)?;
    let version = Version::parse(vtext).map_err(|_| DecodeError::Version)?;
    let identity = if flags & FLAG_IDENTITY_WITHHELD != 0 {
        if cluster != [0; 16] || node != [0; 16] {
            return Err(DecodeError::Plaintext("ids sent with identity withheld"));
        }
        Identity::Withheld
    } else {
        Identity::Known {
            cluster: AnonId(cluster),
            node: AnonId(node),
        }
    };
    Ok(Payload {
        timestamp: u64::from(timestamp),
        identity,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(version: &str) -> Payload {
        Payload {
            timestamp: 1_790_000_000,
            identity: Identity::Known {
                cluster: AnonId([1; 16]),
                node: AnonId([2; 16]),
            },
            version: Version::parse(version).unwrap(),
        }
    }

    #[test]
    fn every_short_version_pads_to_one_size() {
        for v in [
            "0.0.0",
            "2.4.1",
            "10.20.30",
            "1.2.3-rc.1+b.7",
            "123456.7890.12345",
        ] {
            let p = payload(v);
            let bytes = encode(&p).unwrap();
            assert_eq!(bytes.len(), 56, "{v}");
            assert_eq!(decode(&bytes).unwrap(), p);
        }
        let long = payload("1.2.3-beta.1+exp.sha.5114f85");
        let bytes = encode(&long).unwrap();
        assert_eq!(bytes.len(), 74);
        assert_eq!(decode(&bytes).unwrap(), long);
        let too_long = payload("1.2.3-beta.1+exp.sha.5114f85abcdef01234");
        assert!(matches!(
            encode(&too_long),
            Err(EncodeError::VersionTooLong(39))
        ));
    }

    #[test]
    fn withheld_identity_and_strict_reading() {
        let p = Payload {
            identity: Identity::Withheld,
            ..payload("2.4.1")
        };
        let bytes = encode(&p).unwrap();
        assert!(bytes[5..37].iter().all(|b| *b == 0));
        assert_eq!(decode(&bytes).unwrap(), p);
        let mut ids = bytes.clone();
        ids[6] = 1;
        assert!(decode(&ids).is_err(), "ids with the withheld flag");
        let mut flags = bytes.clone();
        flags[4] |= 0x80;
        assert!(decode(&flags).is_err(), "reserved flag");
        let mut pad = encode(&payload("2.4.1")).unwrap();
        pad[55] = 1;
        assert!(decode(&pad).is_err(), "padding");
        let mut vlen = encode(&payload("2.4.1")).unwrap();
        vlen[37] = 19;
        assert!(decode(&vlen).is_err(), "version length past the end");
        for n in 0..80 {
            if !SIZES.contains(&n) {
                assert!(decode(&vec![0; n]).is_err(), "length {n}");
            }
        }
        let mut large = encode(&payload("2.4.1")).unwrap();
        large.resize(74, 0);
        assert!(
            decode(&large).is_err(),
            "large plaintext of a short version"
        );
    }

    #[test]
    fn timestamps_past_2106_do_not_encode() {
        let p = Payload {
            timestamp: u64::from(u32::MAX) + 1,
            ..payload("2.4.1")
        };
        assert!(matches!(encode(&p), Err(EncodeError::Timestamp(_))));
    }
}
