//! The published test vectors of docs/PROTOCOL.md, rebuilt from their inputs
//! with the public API, decoded back, and checked against the document's text
//! so that the document and the code cannot drift apart.

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use data_encoding::HEXLOWER;
use rand::Rng;
use semver::Version;

use vcheckd::config::Config;
use vcheckd::hint::{Hint, Releases, Status};
use vcheckd::protocol::anon::IdKind;
use vcheckd::protocol::frame::{self, OVERHEAD};
use vcheckd::protocol::name::{
    decode_labels, decode_query_name, frame_to_labels, query_name, MAX_NAME_LEN,
};
use vcheckd::protocol::{
    anonymize, DecodeError, EncodeError, Identity, Key, KeyId, Keyring, Payload, ReportId,
    ZoneName, FORMAT_V1,
};

const DOC: &str = include_str!("../docs/PROTOCOL.md");

const KEY_TOKEN: &str = "vck1:7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const ZONE: &str = "vc.example.com";
const AAD_HEX: &str = "010776632e6578616d706c652e636f6d";

/// One documented vector: its inputs, then every intermediate value.
struct Vector {
    label: &'static str,
    /// Real (cluster id, node id); `None` withholds identity.
    real_ids: Option<(&'static str, &'static str)>,
    timestamp: u64,
    version: &'static str,
    nonce_hex: &'static str,
    anon_cluster_hex: &'static str,
    anon_node_hex: &'static str,
    plaintext_hex: &'static str,
    frame_hex: &'static str,
    base32: &'static str,
    label_lengths: &'static [usize],
    query_name: &'static str,
}

const CLUSTER: &str = "3f2b8c1e-9d4a-4e6b-8f0c-5a7d2e1b9c34";

const VECTORS: [Vector; 3] = [
    Vector {
        label: "Vector 1",
        real_ids: Some((CLUSTER, "ip-10-0-12-34.eu-west-1.compute.internal")),
        timestamp: 1_790_000_000,
        version: "2.4.0",
        nonce_hex: "a0a1a2a3a4a5a6a7a8a9aaab",
        anon_cluster_hex: "56e900f39defdb83e199a5cda299563a",
        anon_node_hex: "4e9e5b7ec5e6e0e564ee434dcf4e666f",
        plaintext_hex: "000000006ab13b8056e900f39defdb83e199a5cda299563a4e9e5b7ec5e6e0e564ee434dcf4e666f0005322e342e30",
        frame_hex: "0107a0a1a2a3a4a5a6a7a8a9aaabe6187c2d2f7a393f348c87209a951b5d9135fcdd302e1456d2907df8ba4d95e4b69804b2606c35525f9936e63d54b34d82589ffd60df3ae5c30bf010f63de4",
        base32: "aed2bincuoskljvhvcu2vk7gdb6c2l32he7tjdehecnjkg25se27zxjqfykfnuuqpx4lutmv4s3jqbfsmbwdkus7te3ompkuwngyewe77vqn6oxfymf7aehwhxsa",
        label_lengths: &[62, 62],
        query_name: "aed2bincuoskljvhvcu2vk7gdb6c2l32he7tjdehecnjkg25se27zxjqfykfnu.uqpx4lutmv4s3jqbfsmbwdkus7te3ompkuwngyewe77vqn6oxfymf7aehwhxsa.vc.example.com.",
    },
    Vector {
        label: "Vector 2",
        real_ids: None,
        timestamp: 1_790_003_600,
        version: "2.3.0-rc.1+build.5",
        nonce_hex: "0c0b0a090807060504030201",
        anon_cluster_hex: "00000000000000000000000000000000",
        anon_node_hex: "00000000000000000000000000000000",
        plaintext_hex: "000000006ab1499000000000000000000000000000000000000000000000000000000000000000000112322e332e302d72632e312b6275696c642e35",
        frame_hex: "01070c0b0a0908070605040302011c91e35844f999edfb1e53f0d5beb9f7cb1f5c477624cc80fc6f8b1c45754f41581acdd402938624f0a0d8ee2273bc60bb335a1161094a245f7e2cd85577bbf99eaa95a5d47775ea6ec46520",
        base32: "aedqycykbeeaobqfaqbqeai4shrvqrhzthw7whst6dk35opxzmpvyr3wetgib7dprmoek5kpifmbvtouakjymjhqudmo4ittxrqlwm22cfqqssrel57czwcvo657thvksws5i53v5jxmizja",
        label_lengths: &[48, 48, 48],
        query_name: "aedqycykbeeaobqfaqbqeai4shrvqrhzthw7whst6dk35opx.zmpvyr3wetgib7dprmoek5kpifmbvtouakjymjhqudmo4itt.xrqlwm22cfqqssrel57czwcvo657thvksws5i53v5jxmizja.vc.example.com.",
    },
    Vector {
        label: "Vector 3",
        real_ids: Some((CLUSTER, "ip-10-0-12-35.eu-west-1.compute.internal")),
        timestamp: 1_790_007_200,
        version: "10.20.30-beta.2.exp.sha.5114f85+build.20260101.linux.amd64.g1",
        nonce_hex: "5c0e1f2a3b4c5d6e7f801912",
        anon_cluster_hex: "56e900f39defdb83e199a5cda299563a",
        anon_node_hex: "7f75839e5af8859d83549645ed5d9708",
        plaintext_hex: "000000006ab157a056e900f39defdb83e199a5cda299563a7f75839e5af8859d83549645ed5d9708003d31302e32302e33302d626574612e322e6578702e7368612e353131346638352b6275696c642e32303236303130312e6c696e75782e616d6436342e6731",
        frame_hex: "01075c0e1f2a3b4c5d6e7f801912776405b80ce2af8424f6d901ff02d966467576406d27df148488dcf57bb7629c626232be3c74c2417cf6ea92f35f5c74b532f4587e9f9c2b5fcad3cb904aaa422112bc14d350dab583330233e157e4959e240079f263d1e02d4c381b3eaaca51c5b5fed1070a112f99e6303cd2187fb3f270907bda6464",
        base32: "aedvydq7fi5uyxlop6absetxmqc3qdhcv6ccj5wzah7qfwlgiz2xmqdne7prjbei3t2xxn3ctrrgemv6hr2meql463vjf427lr2lkmxulb7j7hbll7fnhs4qjkveeiisxqkngug2wwbtgart4fl6jfm6eqaht4td2hqc2tbydm7kvssryw275uihbiis7gpgga6negd7wpzhbed33jsgi",
        label_lengths: &[54, 53, 53, 53],
        query_name: "aedvydq7fi5uyxlop6absetxmqc3qdhcv6ccj5wzah7qfwlgiz2xmq.dne7prjbei3t2xxn3ctrrgemv6hr2meql463vjf427lr2lkmxulb7.j7hbll7fnhs4qjkveeiisxqkngug2wwbtgart4fl6jfm6eqaht4td.2hqc2tbydm7kvssryw275uihbiis7gpgga6negd7wpzhbed33jsgi.vc.example.com.",
    },
];

fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

fn unhex(text: &str) -> Vec<u8> {
    HEXLOWER.decode(text.as_bytes()).expect("vector hex")
}

fn key() -> Key {
    Key::parse(KEY_TOKEN).expect("vector key token")
}

fn zone() -> ZoneName {
    ZoneName::new(ZONE).expect("vector zone")
}

fn nonce(v: &Vector) -> ReportId {
    ReportId(unhex(v.nonce_hex).try_into().expect("12-byte nonce"))
}

/// The payload a client builds from the vector's inputs.
fn payload(v: &Vector) -> Payload {
    let key = key();
    let identity = match v.real_ids {
        None => Identity::Withheld,
        Some((cluster, node)) => Identity::Known {
            cluster: anonymize(&key, IdKind::Cluster, cluster),
            node: anonymize(&key, IdKind::Node { cluster }, node),
        },
    };
    Payload {
        timestamp: v.timestamp,
        identity,
        version: Version::parse(v.version).expect("vector version"),
    }
}

/// `name` with its letters' case flipped where `upper(i)` says so.
fn recase(name: &str, mut upper: impl FnMut(usize) -> bool) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if upper(i) {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[test]
fn key_token_and_aad() {
    let key = key();
    assert_eq!(key.id, KeyId(7));
    assert_eq!(key.to_token(), KEY_TOKEN);
    assert_eq!(hex(key.secret()), KEY_TOKEN.rsplit(':').next().unwrap());
    assert_eq!(zone().as_str(), ZONE);
    // Zone names are normalized before they are bound into the AAD.
    assert_eq!(ZoneName::new("VC.Example.COM.").unwrap(), zone());

    let mut aad = vec![FORMAT_V1, key.id.0];
    aad.extend_from_slice(zone().as_str().as_bytes());
    assert_eq!(hex(&aad), AAD_HEX);
}

#[test]
fn vectors_rebuild_from_their_inputs() {
    let key = key();
    let zone = zone();
    for v in &VECTORS {
        let what = v.label;
        let p = payload(v);
        match p.identity {
            Identity::Known { cluster, node } => {
                assert_eq!(cluster.to_hex(), v.anon_cluster_hex, "{what}: cluster");
                assert_eq!(node.to_hex(), v.anon_node_hex, "{what}: node");
            }
            Identity::Withheld => {
                assert_eq!(v.anon_cluster_hex, "0".repeat(32), "{what}");
                assert_eq!(v.anon_node_hex, "0".repeat(32), "{what}");
            }
        }

        let plaintext = p.to_bytes().unwrap();
        assert_eq!(hex(&plaintext), v.plaintext_hex, "{what}: plaintext");

        let frame = frame::seal(&key, &zone, nonce(v), &p).unwrap();
        assert_eq!(hex(&frame), v.frame_hex, "{what}: frame");
        assert_eq!(frame.len(), OVERHEAD + plaintext.len(), "{what}");

        // The frame is plain AES-256-GCM with the documented AAD: check it
        // with the AEAD directly, not only through the crate's own `seal`.
        let aead = Aes256Gcm::new(key.secret().into());
        let sealed = aead
            .encrypt(
                Nonce::from_slice(&unhex(v.nonce_hex)),
                AeadPayload {
                    msg: &plaintext,
                    aad: &unhex(AAD_HEX),
                },
            )
            .unwrap();
        let mut by_hand = vec![FORMAT_V1, 7];
        by_hand.extend_from_slice(&unhex(v.nonce_hex));
        by_hand.extend_from_slice(&sealed);
        assert_eq!(hex(&by_hand), v.frame_hex, "{what}: frame by hand");

        let labels = frame_to_labels(&frame).unwrap();
        assert_eq!(labels.concat(), v.base32, "{what}: base32");
        let lengths: Vec<usize> = labels.iter().map(String::len).collect();
        assert_eq!(lengths, v.label_lengths, "{what}: label split");

        let name = query_name(&key, &zone, nonce(v), &p).unwrap();
        assert_eq!(name, v.query_name, "{what}: query name");
        assert!(name.ends_with(".vc.example.com."));
        assert!(name.len() - 1 <= MAX_NAME_LEN);
    }
}

#[test]
fn vectors_decode_in_any_letter_case() {
    let keyring = Keyring::new(&[key()]).unwrap();
    let zone = zone();
    let mut rng = rand::rng();
    for v in &VECTORS {
        let what = v.label;
        let expected = payload(v);
        let name = v.query_name;
        let mut variants = vec![
            name.to_string(),
            name.to_ascii_uppercase(),
            name.trim_end_matches('.').to_string(),
            recase(name, |i| i % 2 == 0),
        ];
        for _ in 0..16 {
            variants.push(recase(name, |_| rng.random_bool(0.5)));
        }
        for variant in &variants {
            let report = decode_query_name(&keyring, &zone, variant)
                .unwrap_or_else(|e| panic!("{what}: {variant} does not decode: {e}"));
            assert_eq!(report.payload, expected, "{what}: {variant}");
            assert_eq!(report.id, nonce(v), "{what}");
            assert_eq!(report.key_id, KeyId(7), "{what}");

            // As the server sees it: the labels in front of the zone.
            let payload_part = &variant[..v.query_name.len() - ZONE.len() - 2];
            let labels: Vec<&[u8]> = payload_part.split('.').map(str::as_bytes).collect();
            assert_eq!(labels.len(), v.label_lengths.len());
            let report = decode_labels(&keyring, &zone, &labels).unwrap();
            assert_eq!(report.payload, expected, "{what}: labels of {variant}");
        }
        // Any other split of the same base32 text is accepted too: here
        // greedy 63-character labels, upper case.
        let text = v.base32.to_ascii_uppercase();
        let labels: Vec<&[u8]> = text.as_bytes().chunks(63).collect();
        let report = decode_labels(&keyring, &zone, &labels).unwrap();
        assert_eq!(report.payload, expected, "{what}: greedy split");
    }
}

#[test]
fn vectors_fail_where_the_document_says() {
    let key = key();
    let keyring = Keyring::new(std::slice::from_ref(&key)).unwrap();
    let zone = zone();
    for v in &VECTORS {
        let what = v.label;
        let frame = unhex(v.frame_hex);
        // Another zone: the AAD differs.
        let other = ZoneName::new("vc.example.net").unwrap();
        assert_eq!(
            frame::open(&keyring, &other, &frame),
            Err(DecodeError::Authentication),
            "{what}"
        );
        // Same secret, other id: the AAD differs too.
        let relabelled = Key::new(KeyId(8), *key.secret());
        let mut moved = frame.clone();
        moved[1] = 8;
        assert_eq!(
            frame::open(&Keyring::new(&[relabelled]).unwrap(), &zone, &moved),
            Err(DecodeError::Authentication),
            "{what}"
        );
        assert_eq!(
            frame::open(&keyring, &zone, &moved),
            Err(DecodeError::UnknownKey(8)),
            "{what}"
        );
        let mut future = frame.clone();
        future[0] = 2;
        assert_eq!(
            frame::open(&keyring, &zone, &future),
            Err(DecodeError::UnknownFormat(2)),
            "{what}"
        );
        // A non-canonical base32 ending (non-zero unused bits) is rejected.
        let last = v.base32.chars().last().unwrap();
        let used_bits = (frame.len() * 8) % 5;
        if used_bits != 0 {
            let alphabet = "abcdefghijklmnopqrstuvwxyz234567";
            let index = alphabet.find(last).unwrap();
            let tweaked = alphabet.as_bytes()[index ^ 1] as char;
            let mut text = v.base32.to_string();
            text.pop();
            text.push(tweaked);
            let labels: Vec<&[u8]> = text.as_bytes().chunks(63).collect();
            assert_eq!(
                decode_labels(&keyring, &zone, &labels),
                Err(DecodeError::Base32),
                "{what}"
            );
        }
    }
}

#[test]
fn document_shows_every_vector_value() {
    let must_contain = |needle: &str, what: &str| {
        assert!(
            DOC.contains(needle),
            "docs/PROTOCOL.md lacks {what}: {needle}"
        );
    };
    must_contain(KEY_TOKEN, "the vector key token");
    must_contain(AAD_HEX, "the vector AAD");
    for v in &VECTORS {
        let what = v.label;
        must_contain(&format!("### {what}"), "the vector heading");
        must_contain(&v.timestamp.to_string(), what);
        must_contain(v.version, what);
        must_contain(v.nonce_hex, what);
        if let Some((cluster, node)) = v.real_ids {
            must_contain(cluster, what);
            must_contain(node, what);
            must_contain(v.anon_cluster_hex, what);
            must_contain(v.anon_node_hex, what);
        }
        must_contain(v.plaintext_hex, what);
        must_contain(v.frame_hex, what);
        must_contain(v.base32, what);
        must_contain(v.query_name, what);
        // The labels, one per line, as the document lists them.
        for label in v.query_name.split('.').take(v.label_lengths.len()) {
            must_contain(&format!("{label} ({})", label.len()), what);
        }
    }
}

/// Hints as the document shows them: TXT text, A and AAAA.
const HINTS: [(Status, &str, &str, &str, &str, &str); 5] = [
    (
        Status::UpgradeAvailable,
        "2.4.1",
        "2.4.1 is available",
        "v=vc1 status=2 latest=2.4.1 msg=2.4.1 is available",
        "127.2.4.1",
        "fd76:6364:2:2:4:1::",
    ),
    (
        Status::UpToDate,
        "2.4.1",
        "up to date",
        "v=vc1 status=1 latest=2.4.1 msg=up to date",
        "127.2.4.1",
        "fd76:6364:1:2:4:1::",
    ),
    (
        Status::UpgradeRequired,
        "2026.300.1",
        "security fix CVE-2026-0001 in 2026.300.1",
        "v=vc1 status=3 latest=2026.300.1 msg=security fix CVE-2026-0001 in 2026.300.1",
        "127.255.255.255",
        "fd76:6364:3:7ea:12c:1::",
    ),
    (
        Status::Unknown,
        "1.2.255",
        "9.9.9 is not a known release; latest is 1.2.255",
        "v=vc1 status=0 latest=1.2.255 msg=9.9.9 is not a known release; latest is 1.2.255",
        "127.255.255.255",
        "fd76:6364:0:1:2:ff::",
    ),
    (
        Status::UpToDate,
        "70000.254.65535",
        "up to date",
        "v=vc1 status=1 latest=70000.254.65535 msg=up to date",
        "127.255.255.255",
        "fd76:6364:1:ffff:fe:ffff::",
    ),
];

#[test]
fn hint_forms_match_the_document() {
    for (status, latest, message, txt, a, aaaa) in HINTS {
        let hint = Hint {
            status,
            latest: Version::parse(latest).unwrap(),
            message: message.to_string(),
        };
        assert_eq!(hint.to_txt(), txt);
        assert_eq!(Hint::parse_txt(txt).unwrap(), hint);
        assert_eq!(hint.to_a().to_string(), a, "{latest}");
        assert_eq!(hint.to_aaaa().to_string(), aaaa, "{latest}");
        assert!(
            DOC.contains(&format!("| `{txt}` | `{a}` | `{aaaa}` |")),
            "{txt}"
        );
    }
    // The parsing rules the document gives for clients.
    let parsed = Hint::parse_txt("v=vc1 x-sig=abc latest=2.4.1 status=2 msg=a=b  c msg=d").unwrap();
    assert_eq!(parsed.status, Status::UpgradeAvailable);
    assert_eq!(parsed.message, "a=b  c msg=d");
    let no_msg = Hint::parse_txt("v=vc1 status=1 latest=2.4.1").unwrap();
    assert_eq!(no_msg.message, "");
    assert!(Hint::parse_txt("v=vc2 status=1 latest=2.4.1 msg=x").is_err());
    assert!(Hint::parse_txt("v=spf1 -all").is_err());
    assert!(Hint::parse_txt("v=vc1 status=4 latest=2.4.1 msg=x").is_err());
    assert!(Hint::parse_txt("v=vc1 status=1 latest=v2.4.1 msg=x").is_err());
}

/// The embedded default configuration's releases, as the document's
/// operator example shows them.
const RULE_EXAMPLES: [(&str, u8, &str); 10] = [
    ("2.4.1", 1, "up to date"),
    ("2.4.1+build.7", 1, "up to date"),
    ("2.3.1", 2, "2.4.1 is available"),
    ("2.4.0", 3, "security fix CVE-2026-0001 in 2.4.1"),
    ("2.3.0", 3, "security fix CVE-2026-0001 in 2.3.1"),
    ("2.1.0", 3, "security fix CVE-2026-0001 in 2.4.1"),
    ("2.2.0", 3, "2.2 is end of life; upgrade to 2.4.1"),
    ("1.9.0", 3, "1 is end of life; upgrade to 2.4.1"),
    ("2.4.2", 0, "2.4.2 is not a known release; latest is 2.4.1"),
    (
        "2.5.0-rc.1",
        0,
        "2.5.0-rc.1 is not a known release; latest is 2.4.1",
    ),
];

#[test]
fn release_rule_examples_match_the_document() {
    let config = Config::embedded().unwrap();
    let releases = Releases::try_from(&config.zones[0].releases).unwrap();
    assert_eq!(releases.latest().to_string(), "2.4.1");
    for (running, status, message) in RULE_EXAMPLES {
        let hint = releases.hint_for(&Version::parse(running).unwrap());
        assert_eq!(
            (hint.status.code(), hint.message.as_str()),
            (status, message),
            "{running}"
        );
        let row = format!("| `{running}` | {status} | `{message}` |");
        assert!(DOC.contains(&row), "docs/PROTOCOL.md lacks the row {row}");
    }
}

/// Rows of the document's size-budget table: zone length, largest frame,
/// largest version text, labels used at that size.
const BUDGET: [(usize, usize, usize, usize); 10] = [
    (10, 149, 77, 4),
    (14, 146, 74, 4),
    (20, 143, 71, 4),
    (30, 136, 64, 4),
    (40, 130, 58, 4),
    (50, 124, 52, 4),
    (60, 118, 46, 3),
    (80, 106, 34, 3),
    (100, 93, 21, 3),
    (120, 81, 9, 3),
];

/// A valid zone name of exactly `len` characters.
fn zone_of_len(len: usize) -> ZoneName {
    let mut labels = Vec::new();
    let mut rest = len;
    loop {
        let mut n = rest.min(63);
        if rest > n && rest - n < 2 {
            n -= 1; // leave room for a dot and a one-letter label
        }
        labels.push("x".repeat(n));
        if rest == n {
            break;
        }
        rest -= n + 1;
    }
    let zone = ZoneName::new(&labels.join(".")).unwrap();
    assert_eq!(zone.as_str().len(), len);
    zone
}

/// A valid semver text of exactly `len` (>= 7) bytes.
fn version_of_len(len: usize) -> Version {
    let v = Version::parse(&format!("1.0.0+{}", "b".repeat(len - 6))).unwrap();
    assert_eq!(v.to_string().len(), len);
    v
}

#[test]
fn size_budget_matches_the_document() {
    let key = key();
    for (zone_len, frame_max, version_max, labels) in BUDGET {
        let zone = zone_of_len(zone_len);
        let fits = Payload {
            timestamp: 0,
            identity: Identity::Withheld,
            version: version_of_len(version_max),
        };
        let name = query_name(&key, &zone, ReportId([0; 12]), &fits).unwrap();
        assert!(name.len() - 1 <= MAX_NAME_LEN);
        assert_eq!(
            name.split('.').count() - zone.as_str().split('.').count() - 1,
            labels
        );
        let frame = frame::seal(&key, &zone, ReportId([0; 12]), &fits).unwrap();
        assert_eq!(frame.len(), frame_max, "zone length {zone_len}");

        let too_long = Payload {
            version: version_of_len(version_max + 1),
            ..fits
        };
        assert!(
            matches!(
                query_name(&key, &zone, ReportId([0; 12]), &too_long),
                Err(EncodeError::NameTooLong { max: 253, .. })
            ),
            "zone length {zone_len}: version of {} bytes accepted",
            version_max + 1
        );
        let row = format!("| {zone_len} | {frame_max} | {version_max} | {labels} |");
        assert!(DOC.contains(&row), "docs/PROTOCOL.md lacks the row {row}");
    }
}
