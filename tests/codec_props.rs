//! Property tests of the protocol v1 codec (docs/PROTOCOL.md §3-§6): round
//! trips for arbitrary reports and zones, rejection of every altered,
//! truncated, moved or relabelled frame, and no panics on arbitrary input.
//!
//! Case counts are kept small: the whole file runs in a few seconds in a
//! debug build.

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use proptest::prelude::*;
use semver::Version;

use vcheckd::protocol::anon::IdKind;
use vcheckd::protocol::frame::{self, OVERHEAD};
use vcheckd::protocol::name::{
    decode_labels, decode_query_name, frame_to_labels, labels_to_frame, query_name, MAX_LABEL_LEN,
    MAX_NAME_LEN, MAX_PAYLOAD_LABELS,
};
use vcheckd::protocol::{
    anonymize, AnonId, DecodeError, EncodeError, Identity, Key, KeyId, Keyring, Payload, Report,
    ReportId, ZoneName, FORMAT_V1,
};

// ---------------------------------------------------------------- strategies

/// A number as versions have them: mostly small, sometimes anything.
fn version_number() -> impl Strategy<Value = u64> {
    prop_oneof![6 => 0u64..30, 3 => 0u64..100_000, 1 => any::<u64>()]
}

/// A pre-release identifier: numeric without leading zero, or alphanumeric.
fn pre_ident() -> impl Strategy<Value = String> {
    prop_oneof!["0|[1-9][0-9]{0,5}", "[A-Za-z-][0-9A-Za-z-]{0,7}"]
}

/// A build identifier: any non-empty run of `[0-9A-Za-z-]`.
fn build_ident() -> impl Strategy<Value = String> {
    "[0-9A-Za-z-]{1,8}"
}

/// SemVer 2.0.0 versions, with and without pre-release and build parts.
fn version() -> impl Strategy<Value = Version> {
    (
        version_number(),
        version_number(),
        version_number(),
        prop::collection::vec(pre_ident(), 0..3),
        prop::collection::vec(build_ident(), 0..3),
    )
        .prop_map(|(major, minor, patch, pre, build)| {
            let mut text = format!("{major}.{minor}.{patch}");
            if !pre.is_empty() {
                text.push('-');
                text.push_str(&pre.join("."));
            }
            if !build.is_empty() {
                text.push('+');
                text.push_str(&build.join("."));
            }
            Version::parse(&text).unwrap_or_else(|e| panic!("strategy made {text:?}: {e}"))
        })
}

fn anon_id() -> impl Strategy<Value = AnonId> {
    any::<[u8; 16]>().prop_map(AnonId)
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        Just(Identity::Withheld),
        (anon_id(), anon_id()).prop_map(|(cluster, node)| Identity::Known { cluster, node }),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    (any::<u64>(), identity(), version()).prop_map(|(timestamp, identity, version)| Payload {
        timestamp,
        identity,
        version,
    })
}

/// Short payloads, so that the name fits under every zone of [`zone_text`].
fn small_payload() -> impl Strategy<Value = Payload> {
    (any::<u64>(), identity(), version())
        .prop_filter("version too long for the name", |(_, _, v)| {
            v.to_string().len() <= 40
        })
        .prop_map(|(timestamp, identity, version)| Payload {
            timestamp,
            identity,
            version,
        })
}

fn key() -> impl Strategy<Value = Key> {
    (any::<u8>(), any::<[u8; 32]>()).prop_map(|(id, secret)| Key::new(KeyId(id), secret))
}

fn nonce() -> impl Strategy<Value = ReportId> {
    any::<[u8; 12]>().prop_map(ReportId)
}

/// Zone names as a configuration may spell them: 1-4 labels, any letter
/// case, with or without the trailing dot. At most 63 characters.
fn zone_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9_-]{0,10}[a-zA-Z0-9_])?", 1..5),
        any::<bool>(),
    )
        .prop_map(|(labels, dot)| {
            let mut text = labels.join(".");
            if dot {
                text.push('.');
            }
            text
        })
}

fn zone() -> impl Strategy<Value = ZoneName> {
    zone_text().prop_map(|t| ZoneName::new(&t).expect("strategy makes valid zones"))
}

// ------------------------------------------------------------------- helpers

fn keyring(keys: &[Key]) -> Keyring {
    Keyring::new(keys).expect("distinct key ids")
}

fn seal(key: &Key, zone: &ZoneName, id: ReportId, payload: &Payload) -> Vec<u8> {
    frame::seal(key, zone, id, payload).expect("seal")
}

/// The AAD of docs/PROTOCOL.md §5, built by hand.
fn aad(key_id: u8, zone: &ZoneName) -> Vec<u8> {
    let mut aad = vec![FORMAT_V1, key_id];
    aad.extend_from_slice(zone.as_str().as_bytes());
    aad
}

/// A frame sealed around arbitrary plaintext bytes, straight with AES-GCM:
/// it authenticates, so `open` has to parse what is inside.
fn seal_raw(key: &Key, zone: &ZoneName, id: ReportId, plaintext: &[u8]) -> Vec<u8> {
    let aead = Aes256Gcm::new(key.secret().into());
    let sealed = aead
        .encrypt(
            Nonce::from_slice(&id.0),
            AeadPayload {
                msg: plaintext,
                aad: &aad(key.id.0, zone),
            },
        )
        .expect("encrypt");
    let mut frame = vec![FORMAT_V1, key.id.0];
    frame.extend_from_slice(&id.0);
    frame.extend_from_slice(&sealed);
    frame
}

/// What `query_name` must do with a version of `version_len` bytes under a
/// zone of `zone_len` characters (docs/PROTOCOL.md §10).
fn expected_encode(version_len: usize, zone_len: usize) -> Result<(), EncodeError> {
    let frame_len = 72 + version_len;
    let chars = (8 * frame_len).div_ceil(5);
    let labels = chars.div_ceil(MAX_LABEL_LEN);
    let name_len = chars + labels + zone_len;
    if labels > MAX_PAYLOAD_LABELS {
        Err(EncodeError::TooManyLabels(labels))
    } else if name_len > MAX_NAME_LEN {
        Err(EncodeError::NameTooLong {
            len: name_len,
            max: MAX_NAME_LEN,
        })
    } else {
        Ok(())
    }
}

/// `name` with the letter case chosen by `mask`, bit by bit, cycling.
fn recase(name: &str, mask: &[bool]) -> String {
    name.chars()
        .zip(mask.iter().cycle())
        .map(|(c, upper)| {
            if *upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// The payload labels of a query name under `zone`.
fn payload_labels<'a>(name: &'a str, zone: &ZoneName) -> Vec<&'a [u8]> {
    let text = name.trim_end_matches('.');
    let head = &text[..text.len() - zone.as_str().len() - 1];
    head.split('.').map(str::as_bytes).collect()
}

// ------------------------------------------------------------- round trips

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn frame_round_trip(key in key(), zone in zone(), id in nonce(), payload in payload()) {
        let plaintext = payload.to_bytes().unwrap();
        let frame = seal(&key, &zone, id, &payload);
        prop_assert_eq!(frame.len(), OVERHEAD + plaintext.len());
        prop_assert_eq!(frame[0], FORMAT_V1);
        prop_assert_eq!(frame[1], key.id.0);
        prop_assert_eq!(&frame[2..14], &id.0[..]);
        // The plaintext layout of §4.
        prop_assert_eq!(&plaintext[..8], &payload.timestamp.to_be_bytes()[..]);
        prop_assert_eq!(plaintext[40], payload.flags());
        let version = payload.version.to_string();
        prop_assert_eq!(usize::from(plaintext[41]), version.len());
        prop_assert_eq!(&plaintext[42..], version.as_bytes());
        match payload.identity {
            Identity::Withheld => prop_assert!(plaintext[8..40].iter().all(|b| *b == 0)),
            Identity::Known { cluster, node } => {
                prop_assert_eq!(&plaintext[8..24], &cluster.0[..]);
                prop_assert_eq!(&plaintext[24..40], &node.0[..]);
            }
        }
        // The frame is AES-256-GCM with the documented AAD.
        prop_assert_eq!(&seal_raw(&key, &zone, id, &plaintext), &frame);

        let report = frame::open(&keyring(std::slice::from_ref(&key)), &zone, &frame).unwrap();
        prop_assert_eq!(report, Report { id, key_id: key.id, payload });
    }

    #[test]
    fn name_round_trip(
        key in key(),
        zone_text in zone_text(),
        id in nonce(),
        payload in payload(),
    ) {
        let zone = ZoneName::new(&zone_text).unwrap();
        prop_assert_eq!(zone.as_str(), zone_text.trim_end_matches('.').to_ascii_lowercase());
        let version_len = payload.version.to_string().len();
        let result = query_name(&key, &zone, id, &payload);
        match expected_encode(version_len, zone.as_str().len()) {
            Err(expected) => prop_assert_eq!(result, Err(expected)),
            Ok(()) => {
                let name = result.unwrap();
                let suffix = format!(".{}.", zone.as_str());
                prop_assert!(name.ends_with(&suffix));
                prop_assert!(name.len() - 1 <= MAX_NAME_LEN);
                prop_assert_eq!(name.to_ascii_lowercase(), name.clone());
                let labels = payload_labels(&name, &zone);
                prop_assert!((1..=MAX_PAYLOAD_LABELS).contains(&labels.len()));
                let longest = labels.iter().map(|l| l.len()).max().unwrap();
                let shortest = labels.iter().map(|l| l.len()).min().unwrap();
                prop_assert!(longest <= MAX_LABEL_LEN);
                prop_assert!(longest - shortest <= 1, "unbalanced split");
                // Longer labels come first.
                prop_assert!(labels.windows(2).all(|w| w[0].len() >= w[1].len()));

                let ring = keyring(std::slice::from_ref(&key));
                let expected = Report { id, key_id: key.id, payload };
                prop_assert_eq!(decode_query_name(&ring, &zone, &name).unwrap(), expected.clone());
                prop_assert_eq!(decode_labels(&ring, &zone, &labels).unwrap(), expected);
            }
        }
    }

    #[test]
    fn mixed_case_name_decodes_to_the_same_report(
        key in key(),
        zone in zone(),
        id in nonce(),
        payload in small_payload(),
        mask in prop::collection::vec(any::<bool>(), 1..64),
    ) {
        let name = query_name(&key, &zone, id, &payload).unwrap();
        let ring = keyring(std::slice::from_ref(&key));
        let expected = decode_query_name(&ring, &zone, &name).unwrap();
        prop_assert_eq!(&expected.payload, &payload);
        for variant in [recase(&name, &mask), name.to_ascii_uppercase()] {
            prop_assert_eq!(&decode_query_name(&ring, &zone, &variant).unwrap(), &expected);
            let labels = payload_labels(&variant, &zone);
            prop_assert_eq!(&decode_labels(&ring, &zone, &labels).unwrap(), &expected);
        }
    }

    #[test]
    fn any_split_of_the_base32_text_decodes(
        key in key(),
        zone in zone(),
        id in nonce(),
        payload in small_payload(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let frame = seal(&key, &zone, id, &payload);
        let text = frame_to_labels(&frame).unwrap().concat();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
        points.push(0);
        points.push(text.len());
        points.sort_unstable();
        points.dedup();
        let labels: Vec<&[u8]> =
            points.windows(2).map(|w| &text.as_bytes()[w[0]..w[1]]).collect();
        let result = labels_to_frame(&labels);
        if labels.iter().all(|l| l.len() <= MAX_LABEL_LEN) {
            prop_assert_eq!(result.unwrap(), frame);
        } else {
            prop_assert_eq!(result, Err(DecodeError::LabelTooLong));
        }
    }

    #[test]
    fn anonymized_ids_are_stable_and_separated(
        key in key(),
        other in key(),
        cluster in ".{0,40}",
        node in ".{0,40}",
        other_cluster in ".{0,40}",
    ) {
        let c = anonymize(&key, IdKind::Cluster, &cluster);
        let n = anonymize(&key, IdKind::Node { cluster: &cluster }, &node);
        prop_assert_eq!(c, anonymize(&key, IdKind::Cluster, &cluster));
        prop_assert_eq!(n, anonymize(&key, IdKind::Node { cluster: &cluster }, &node));
        if other_cluster != cluster {
            prop_assert_ne!(c, anonymize(&key, IdKind::Cluster, &other_cluster));
            prop_assert_ne!(n, anonymize(&key, IdKind::Node { cluster: &other_cluster }, &node));
        }
        if other.secret() != key.secret() {
            prop_assert_ne!(c, anonymize(&other, IdKind::Cluster, &cluster));
        }
    }
}

// -------------------------------------------------------------- rejections

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_single_bit_flip_is_rejected(
        key in key(),
        zone in zone(),
        id in nonce(),
        payload in payload(),
    ) {
        let ring = keyring(std::slice::from_ref(&key));
        let frame = seal(&key, &zone, id, &payload);
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut bad = frame.clone();
                bad[byte] ^= 1 << bit;
                let err = frame::open(&ring, &zone, &bad);
                let expected = match byte {
                    0 => Err(DecodeError::UnknownFormat(bad[0])),
                    1 => Err(DecodeError::UnknownKey(bad[1])),
                    _ => Err(DecodeError::Authentication),
                };
                prop_assert_eq!(err, expected, "byte {} bit {}", byte, bit);
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected(
        key in key(),
        zone in zone(),
        id in nonce(),
        payload in payload(),
        tail in prop::collection::vec(any::<u8>(), 1..20),
    ) {
        let ring = keyring(std::slice::from_ref(&key));
        let frame = seal(&key, &zone, id, &payload);
        for len in 0..frame.len() {
            let err = frame::open(&ring, &zone, &frame[..len]).unwrap_err();
            if len < OVERHEAD {
                prop_assert_eq!(err, DecodeError::TooShort(len));
            } else {
                prop_assert_eq!(err, DecodeError::Authentication);
            }
        }
        let mut longer = frame.clone();
        longer.extend_from_slice(&tail);
        prop_assert_eq!(frame::open(&ring, &zone, &longer), Err(DecodeError::Authentication));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn wrong_secret_is_rejected(
        key in key(),
        other_secret in any::<[u8; 32]>(),
        zone in zone(),
        id in nonce(),
        payload in payload(),
    ) {
        prop_assume!(&other_secret != key.secret());
        let frame = seal(&key, &zone, id, &payload);
        let impostor = Key::new(key.id, other_secret);
        prop_assert_eq!(
            frame::open(&keyring(&[impostor]), &zone, &frame),
            Err(DecodeError::Authentication)
        );
    }

    #[test]
    fn wrong_zone_is_rejected(
        key in key(),
        zone in zone(),
        other in zone(),
        id in nonce(),
        payload in small_payload(),
    ) {
        prop_assume!(zone != other);
        let ring = keyring(std::slice::from_ref(&key));
        let frame = seal(&key, &zone, id, &payload);
        prop_assert_eq!(frame::open(&ring, &other, &frame), Err(DecodeError::Authentication));
        // The same labels in front of the other zone do not decode either.
        let name = query_name(&key, &zone, id, &payload).unwrap();
        let labels = payload_labels(&name, &zone);
        prop_assert_eq!(decode_labels(&ring, &other, &labels), Err(DecodeError::Authentication));
    }

    #[test]
    fn relabelled_key_id_is_rejected(
        key in key(),
        other_id in any::<u8>(),
        other_secret in any::<[u8; 32]>(),
        same_secret in any::<bool>(),
        zone in zone(),
        id in nonce(),
        payload in payload(),
    ) {
        prop_assume!(other_id != key.id.0);
        let mut frame = seal(&key, &zone, id, &payload);
        frame[1] = other_id;
        // The keyring has no key with that id.
        prop_assert_eq!(
            frame::open(&keyring(std::slice::from_ref(&key)), &zone, &frame),
            Err(DecodeError::UnknownKey(other_id))
        );
        // It has one: with another secret, or even with the very same secret
        // (the key id is part of the AAD).
        let secret = if same_secret { *key.secret() } else { other_secret };
        let ring = keyring(&[key.clone(), Key::new(KeyId(other_id), secret)]);
        prop_assert_eq!(frame::open(&ring, &zone, &frame), Err(DecodeError::Authentication));
    }
}

// --------------------------------------------------------------- plaintext

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn identity_follows_flag_bit_zero_only(
        payload in payload(),
        flags in any::<u8>(),
        cluster in anon_id(),
        node in anon_id(),
    ) {
        let mut bytes = payload.to_bytes().unwrap();
        bytes[8..24].copy_from_slice(&cluster.0);
        bytes[24..40].copy_from_slice(&node.0);
        bytes[40] = flags;
        let decoded = Payload::from_bytes(&bytes).unwrap();
        let expected = if flags & 1 == 1 {
            Identity::Withheld
        } else {
            Identity::Known { cluster, node }
        };
        prop_assert_eq!(decoded.identity, expected);
        prop_assert_eq!(decoded.version, payload.version);
        prop_assert_eq!(decoded.timestamp, payload.timestamp);
    }

    #[test]
    fn unknown_optional_fields_are_skipped_but_must_be_whole(
        key in key(),
        zone in zone(),
        id in nonce(),
        payload in payload(),
        fields in prop::collection::vec(
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..12)), 1..4),
    ) {
        let base = payload.to_bytes().unwrap();
        let mut bytes = base.clone();
        let mut boundaries = vec![bytes.len()];
        for (kind, value) in &fields {
            bytes.push(*kind);
            bytes.push(u8::try_from(value.len()).unwrap());
            bytes.extend_from_slice(value);
            boundaries.push(bytes.len());
        }
        prop_assert_eq!(&Payload::from_bytes(&bytes).unwrap(), &payload);
        let ring = keyring(std::slice::from_ref(&key));
        let report = frame::open(&ring, &zone, &seal_raw(&key, &zone, id, &bytes)).unwrap();
        prop_assert_eq!(&report.payload, &payload);
        for cut in base.len()..bytes.len() {
            let result = Payload::from_bytes(&bytes[..cut]);
            if boundaries.contains(&cut) {
                prop_assert_eq!(&result.unwrap(), &payload);
            } else {
                prop_assert_eq!(result, Err(DecodeError::Plaintext("truncated field")));
            }
        }
    }

    #[test]
    fn authenticated_garbage_never_panics(
        key in key(),
        zone in zone(),
        id in nonce(),
        plaintext in garbage_plaintext(),
    ) {
        // Garbage that authenticates: the plaintext parser is on its own.
        let ring = keyring(std::slice::from_ref(&key));
        let opened = frame::open(&ring, &zone, &seal_raw(&key, &zone, id, &plaintext));
        let parsed = Payload::from_bytes(&plaintext);
        match (opened, parsed) {
            (Ok(report), Ok(payload)) => prop_assert_eq!(report.payload, payload),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "open {:?} but from_bytes {:?}", a, b),
        }
    }
}

/// Plaintexts a buggy client might send: random bytes, or a valid payload
/// with a few bytes overwritten and maybe cut short.
fn garbage_plaintext() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        (
            payload(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(payload, edits, cut, do_cut)| {
                let mut bytes = payload.to_bytes().unwrap();
                for (at, value) in edits {
                    let at = at.index(bytes.len());
                    bytes[at] = value;
                }
                if do_cut {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                bytes
            }),
    ]
}

// ------------------------------------------------------ arbitrary input

/// Label bytes: base32 letters of either case (to get past the base32
/// check), mixed with anything.
fn label_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[a-zA-Z2-7]{0,70}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..70),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn open_never_panics_on_arbitrary_frames(
        key in key(),
        zone in zone(),
        head in prop_oneof![Just(None), any::<u8>().prop_map(Some)],
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        // Half the time, a header naming the format and a known key, so the
        // bytes reach the AEAD.
        let mut frame = Vec::new();
        if let Some(second) = head {
            frame.push(FORMAT_V1);
            frame.push(if second % 2 == 0 { key.id.0 } else { second });
        }
        frame.extend_from_slice(&bytes);
        let ring = keyring(&[key]);
        // Forging a 128-bit tag by chance does not happen.
        prop_assert!(frame::open(&ring, &zone, &frame).is_err());
    }

    #[test]
    fn decode_labels_never_panics_on_arbitrary_labels(
        key in key(),
        zone in zone(),
        labels in prop::collection::vec(label_bytes(), 0..7),
    ) {
        let ring = keyring(&[key]);
        let labels: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let result = decode_labels(&ring, &zone, &labels);
        if labels.is_empty() || labels.len() > MAX_PAYLOAD_LABELS {
            prop_assert_eq!(result, Err(DecodeError::LabelCount(labels.len())));
        } else {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn decode_query_name_never_panics_on_arbitrary_text(
        key in key(),
        zone in zone(),
        prefix in "\\PC{0,80}",
        suffix in prop_oneof![Just(String::new()), Just(".".to_string()), "\\PC{0,10}"],
    ) {
        let ring = keyring(&[key]);
        let name = format!("{prefix}.{}{suffix}", zone.as_str());
        prop_assert!(decode_query_name(&ring, &zone, &name).is_err());
        prop_assert!(decode_query_name(&ring, &zone, &prefix).is_err());
    }
}
