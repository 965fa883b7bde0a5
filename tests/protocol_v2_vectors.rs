//! docs/vectors/v2.json: the protocol v2 test vectors that every client
//! (Rust, Go, Python) reads.
//!
//! `the_vector_file_is_what_the_code_computes` computes every value from
//! fixed inputs with the implementation (and each HPKE step once more, by
//! hand from RFC 9180, so that the intermediate values are checked, not
//! just copied) and compares it with the file. After a deliberate change
//! of the format, `VCHECKD_WRITE_VECTORS=1 cargo test --test
//! protocol_v2_vectors` writes the file instead.
//!
//! `every_vector_in_the_file_holds` reads the file and checks each vector
//! through the library's API as a client and a server use it; and
//! `the_python_reference_reproduces_the_file` runs the Python reference of
//! docs/PROTOCOL.md §23 (python3 with `cryptography` 44 or newer, for
//! Argon2id) against the file: a client written from the spec alone.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use vcheckd::hint::{AdvisoryConfig, Releases, ReleasesConfig};
use vcheckd::protocol::name::{frame_to_name, labels_to_frame, payload_labels};
use vcheckd::protocol::v2::effort::{self, Effort};
use vcheckd::protocol::v2::keys::Ratchet;
use vcheckd::protocol::v2::policy::{self, to_txt_strings, AdvisoryUrl, Freshness};
use vcheckd::protocol::v2::{
    frame, plaintext, ClusterSecret, Epoch, PrivateKey, PrivateKeyring, PublicKey, SealKey,
    ServedPolicy, SignedPolicy,
};
use vcheckd::protocol::{AnonId, Identity, KeyId, Payload, ZoneName};

/// The time the vectors are made at: 2026-09-21T14:13:20Z, in epoch 2959.
const NOW: u64 = 1_790_000_000;
const ZONE: &str = "vc.example.com";
const CLUSTER: &str = "3f2b8c1e-9d4a-4e6b-8f0c-5a7d2e1b9c34";
const NODE: &str = "ip-10-0-12-34.eu-west-1.compute.internal";

fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

fn unhex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .unwrap()
}

fn bytes_from(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first + i as u8)
}

fn file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/vectors/v2.json")
}

fn zone() -> ZoneName {
    ZoneName::new(ZONE).unwrap()
}

/// The zone's key: id 7, Ed25519 seed 0x40..0x5f, ratchet seed
/// 0x20..0x3f as of epoch 2958.
fn private_key() -> PrivateKey {
    PrivateKey::from_secrets(
        KeyId(7),
        bytes_from(0x40),
        Ratchet::new(Epoch(2958), bytes_from(0x20)),
    )
}

fn ring() -> PrivateKeyring {
    PrivateKeyring::new(&[private_key()], NOW).unwrap()
}

fn seal_key(epoch: u16) -> SealKey {
    ring().seal_key(KeyId(7), Epoch(epoch)).unwrap()
}

// RFC 9180 by hand, for the intermediate values.
const KEM_ID: [u8; 5] = *b"KEM\x00\x20";
const HPKE_ID: [u8; 10] = *b"HPKE\x00\x20\x00\x01\x00\x03";

fn extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
    let salt = if salt.is_empty() {
        &[0u8; 32][..]
    } else {
        salt
    };
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(salt).unwrap();
    m.update(ikm);
    m.finalize().into_bytes().into()
}

fn expand(prk: &[u8; 32], info: &[u8], len: usize) -> Vec<u8> {
    let (mut out, mut block, mut i) = (Vec::new(), Vec::new(), 1u8);
    while out.len() < len {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(prk).unwrap();
        m.update(&block);
        m.update(info);
        m.update(&[i]);
        block = m.finalize().into_bytes().to_vec();
        out.extend_from_slice(&block);
        i += 1;
    }
    out.truncate(len);
    out
}

fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    extract(salt, &[b"HPKE-v1".as_slice(), suite, label, ikm].concat())
}

fn labeled_expand(suite: &[u8], prk: &[u8; 32], label: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let l = (len as u16).to_be_bytes();
    expand(prk, &[&l[..], b"HPKE-v1", suite, label, info].concat(), len)
}

/// DeriveKeyPair of DHKEM(X25519): (sk, pk).
fn derive_key_pair(ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let prk = labeled_extract(&KEM_ID, b"", b"dkp_prk", ikm);
    let sk: [u8; 32] = labeled_expand(&KEM_ID, &prk, b"sk", b"", 32)
        .try_into()
        .unwrap();
    (
        sk,
        x25519_dalek::x25519(sk, x25519_dalek::X25519_BASEPOINT_BYTES),
    )
}

struct Hpke {
    sk_e: [u8; 32],
    enc: [u8; 32],
    shared_secret: Vec<u8>,
    key: Vec<u8>,
    base_nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn hpke_seal(pk_r: &[u8; 32], info: &[u8], aad: &[u8], plaintext: &[u8], ikm_e: &[u8]) -> Hpke {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
    let (sk_e, enc) = derive_key_pair(ikm_e);
    let dh = x25519_dalek::x25519(sk_e, *pk_r);
    let eae_prk = labeled_extract(&KEM_ID, b"", b"eae_prk", &dh);
    let shared_secret = labeled_expand(
        &KEM_ID,
        &eae_prk,
        b"shared_secret",
        &[&enc[..], pk_r].concat(),
        32,
    );
    let psk_id_hash = labeled_extract(&HPKE_ID, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&HPKE_ID, b"", b"info_hash", info);
    let context = [&[0u8][..], &psk_id_hash, &info_hash].concat();
    let secret = labeled_extract(&HPKE_ID, &shared_secret, b"secret", b"");
    let key = labeled_expand(&HPKE_ID, &secret, b"key", &context, 32);
    let base_nonce = labeled_expand(&HPKE_ID, &secret, b"base_nonce", &context, 12);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key).unwrap();
    let ciphertext = cipher
        .encrypt(
            base_nonce.as_slice().try_into().unwrap(),
            AeadPayload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap();
    Hpke {
        sk_e,
        enc,
        shared_secret,
        key,
        base_nonce,
        ciphertext,
    }
}

fn ratchet_vectors() -> Value {
    let key = private_key();
    let ring = ring();
    let epochs: Vec<Value> = (2958..=2960)
        .map(|e| {
            let r = key.ratchet.advance_to(Epoch(e)).unwrap();
            let ikm: [u8; 32] = {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(r.seed()).unwrap();
                m.update(b"vcheckd v2 epoch key");
                m.finalize().into_bytes().into()
            };
            let (sk, pk) = derive_key_pair(&ikm);
            assert_eq!(
                ring.epoch_key(KeyId(7), Epoch(e)).unwrap().public_bytes(),
                pk
            );
            json!({"epoch": e, "start": Epoch(e).start(), "seed": hex(r.seed()), "ikm": hex(&ikm),
                   "x25519_private": hex(&sk), "x25519_public": hex(&pk)})
        })
        .collect();
    json!({
        "private": key.to_token(),
        "public": key.public().to_token(),
        "ed25519_seed": hex(&bytes_from(0x40)),
        "now": NOW,
        "epoch_of_now": Epoch::at(NOW).0,
        "oldest_kept_at_now": Epoch::oldest_kept(NOW).0,
        "epochs": epochs,
    })
}

fn id_vectors() -> Value {
    let cases = [
        (ZONE, CLUSTER, NODE),
        (ZONE, "prod", "nœud-1"),
        ("vc.example.org", CLUSTER, NODE),
    ];
    Value::Array(
        cases
            .iter()
            .map(|(z, c, n)| {
                let zone = ZoneName::new(z).unwrap();
                let secret = ClusterSecret::derive(&zone, c);
                json!({"zone": z, "cluster_id": c, "node_id": n,
                       "salt": hex(&vcheckd::protocol::v2::ids::salt(&zone)),
                       "cluster_secret": hex(secret.as_bytes()),
                       "cluster": secret.cluster().to_hex(), "node": secret.node(n).to_hex()})
            })
            .collect(),
    )
}

struct ReportCase {
    name: &'static str,
    version: &'static str,
    /// `None`: identity withheld.
    ids: Option<(&'static str, &'static str)>,
    epoch: u16,
    ikm_first: u8,
    target: u8,
}

fn report_cases() -> Vec<ReportCase> {
    vec![
        ReportCase {
            name: "small plaintext",
            version: "2.4.0",
            ids: Some((CLUSTER, NODE)),
            epoch: 2959,
            ikm_first: 0x60,
            target: 12,
        },
        ReportCase {
            name: "large plaintext",
            version: "1.2.3-beta.1+exp.sha.5114f85",
            ids: Some((CLUSTER, NODE)),
            epoch: 2959,
            ikm_first: 0x80,
            target: 8,
        },
        ReportCase {
            name: "identity withheld",
            version: "10.20.30-rc.1",
            ids: None,
            epoch: 2959,
            ikm_first: 0xa0,
            target: 0,
        },
        ReportCase {
            name: "sealed to the previous epoch's key",
            version: "2.3.1",
            ids: Some(("prod", "nœud-1")),
            epoch: 2958,
            ikm_first: 0xc0,
            target: 4,
        },
    ]
}

fn report_vectors() -> Value {
    let zone = zone();
    let ring = ring();
    Value::Array(
        report_cases()
            .iter()
            .map(|c| {
                let identity = match c.ids {
                    None => Identity::Withheld,
                    Some((cluster, node)) => {
                        let s = ClusterSecret::derive(&zone, cluster);
                        Identity::Known {
                            cluster: s.cluster(),
                            node: s.node(node),
                        }
                    }
                };
                let payload = Payload {
                    timestamp: NOW,
                    identity,
                    version: semver::Version::parse(c.version).unwrap(),
                };
                let seal = seal_key(c.epoch);
                let ikm_e = bytes_from(c.ikm_first);
                let mut sealed = frame::seal_with_ikm(&seal, &zone, &payload, ikm_e).unwrap();
                let zero_proof = sealed.clone();
                let reached = effort::prove(&mut sealed, Effort(c.target), 1 << 32);
                let (got, digest) = effort::effort(&sealed);
                assert_eq!(got, reached);
                // Every step of the seal, by hand.
                let pt = plaintext::encode(&payload).unwrap();
                let header = &sealed[..4];
                let info = [b"vcheckd v2 report\0".as_slice(), ZONE.as_bytes()].concat();
                let h = hpke_seal(&seal.to_bytes(), &info, header, &pt, &ikm_e);
                assert_eq!(&sealed[4..36], &h.enc);
                assert_eq!(&sealed[36..sealed.len() - 4], &h.ciphertext[..]);
                let name = frame_to_name(&sealed, &zone).unwrap();
                let report = frame::open(&ring, &zone, &sealed).unwrap();
                assert_eq!(report.payload, payload);
                let labels: Vec<String> = name
                    .trim_end_matches('.')
                    .split('.')
                    .take(name.split('.').count() - 4)
                    .map(String::from)
                    .collect();
                json!({
                    "description": c.name,
                    "inputs": {
                        "zone": ZONE,
                        "cluster_id": c.ids.map(|i| i.0), "node_id": c.ids.map(|i| i.1),
                        "timestamp": NOW, "version": c.version,
                        "key_id": 7, "epoch": c.epoch, "seal_key": hex(&seal.to_bytes()),
                        "ikm_e": hex(&ikm_e), "effort_target": c.target,
                    },
                    "plaintext": hex(&pt),
                    "sk_e": hex(&h.sk_e),
                    "enc": hex(&h.enc),
                    "shared_secret": hex(&h.shared_secret),
                    "key": hex(&h.key),
                    "base_nonce": hex(&h.base_nonce),
                    "ciphertext": hex(&h.ciphertext),
                    "frame_before_proof": hex(&zero_proof),
                    "proof": hex(&sealed[sealed.len() - 4..]),
                    "effort_digest": hex(&digest),
                    "effort": reached.0,
                    "frame": hex(&sealed),
                    "report_id": report.id.to_hex(),
                    "labels": labels,
                    "name": name,
                    "name_length": name.trim_end_matches('.').len(),
                })
            })
            .collect(),
    )
}

fn releases(versions: &[&str], eol: &[&str], advisories: &[(&str, &[&str])]) -> (Value, Releases) {
    let config = ReleasesConfig {
        versions: versions.iter().map(|v| v.to_string()).collect(),
        end_of_life: eol.iter().map(|v| v.to_string()).collect(),
        advisory: advisories
            .iter()
            .map(|(id, fixed)| AdvisoryConfig {
                id: id.to_string(),
                fixed: fixed.iter().map(|v| v.to_string()).collect(),
            })
            .collect(),
    };
    let as_json = json!({
        "versions": versions, "end_of_life": eol,
        "advisories": advisories.iter().map(|(id, fixed)| json!({"id": id, "fixed": fixed})).collect::<Vec<_>>(),
    });
    (as_json, Releases::try_from(&config).unwrap())
}

struct PolicyCase {
    name: &'static str,
    releases: (Value, Releases),
    serial: u32,
    effort: u8,
    advisory_url: Option<&'static str>,
    versions: Vec<&'static str>,
}

fn policy_cases() -> Vec<PolicyCase> {
    // 100 releases on 5 lines, 20 advisories each fixed on every line: a
    // policy over 255 bytes, so its TXT holds several strings.
    let many: Vec<String> = (0..5)
        .flat_map(|m| (0..20).map(move |p| format!("3.{m}.{p}")))
        .collect();
    let many: Vec<&'static str> = many
        .into_iter()
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect();
    let advisories: Vec<(String, Vec<&'static str>)> = (0..20)
        .map(|i| {
            (
                format!("CVE-2026-{:05}", 31_000 + i),
                (0..5)
                    .map(|m| &*Box::leak(format!("3.{m}.{i}").into_boxed_str()))
                    .collect(),
            )
        })
        .collect();
    let advisories: Vec<(&'static str, &'static [&'static str])> = advisories
        .into_iter()
        .map(|(id, f)| {
            (
                &*Box::leak(id.into_boxed_str()),
                &*Box::leak(f.into_boxed_slice()),
            )
        })
        .collect();
    vec![
        PolicyCase {
            name: "the release rule's example (§11)",
            releases: releases(
                &["1.9.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"],
                &["1", "2.2"],
                &[("CVE-2026-0001", &["2.3.1", "2.4.1"])],
            ),
            serial: 2026112901,
            effort: 16,
            advisory_url: Some("https://vendor.example/security/{id}"),
            versions: vec![
                "2.4.1",
                "2.4.1+build.7",
                "2.3.1",
                "2.3.0",
                "2.2.0",
                "2.2.5",
                "1.9.0",
                "2.4.0",
                "2.4.2",
                "3.0.0-rc.1",
            ],
        },
        PolicyCase {
            name: "pre-releases, a fix written inline (not a listed release), multi-byte varints",
            releases: releases(
                &["300.1.0", "300.2.0-rc.1", "300.2.0-rc.2", "1000.0.70000"],
                &[],
                &[("GHSA-xxxx-yyyy", &["300.1.9", "1000.0.70000"])],
            ),
            serial: 7,
            effort: 0,
            advisory_url: None,
            versions: vec![
                "300.1.0",
                "300.1.9",
                "300.2.0-rc.1",
                "300.2.0-rc.2",
                "1000.0.70000",
                "1000.0.69999",
                "299.0.0",
            ],
        },
        PolicyCase {
            name: "only pre-releases: the newest is latest",
            releases: releases(&["0.9.0-beta.1", "0.9.0-beta.2"], &[], &[]),
            serial: 1,
            effort: 20,
            advisory_url: None,
            versions: vec!["0.9.0-beta.2", "0.9.0-beta.1", "0.9.0-alpha"],
        },
        PolicyCase {
            name: "a realistic history: TXT split over several strings",
            releases: releases(&many, &["1", "2"], &advisories),
            serial: 2026120701,
            effort: 18,
            advisory_url: Some("https://vendor.example/sa/{id}.html"),
            versions: vec!["3.4.19", "3.2.4", "3.0.19", "2.9.9", "3.4.20"],
        },
    ]
}

fn sign(case: &PolicyCase, at: u64) -> Vec<u8> {
    ServedPolicy::sign(
        &zone(),
        &ring(),
        case.releases.1.clone(),
        case.advisory_url.map(|u| AdvisoryUrl::new(u).unwrap()),
        case.serial,
        Effort(case.effort),
        at,
        86_400,
    )
    .unwrap()
    .wire(KeyId(7))
    .unwrap()
    .to_vec()
}

fn policy_vectors() -> Value {
    let public = private_key().public();
    Value::Array(
        policy_cases()
            .iter()
            .map(|c| {
                let wire = sign(c, NOW);
                let p = SignedPolicy::verify(&wire, &zone(), &public, NOW, None).unwrap();
                let statuses: Vec<Value> = c
                    .versions
                    .iter()
                    .map(|v| {
                        let h = p.hint_for(&semver::Version::parse(v).unwrap());
                        json!({"version": v, "status": h.status.code(), "message": h.message})
                    })
                    .collect();
                json!({
                    "description": c.name,
                    "inputs": {
                        "zone": ZONE, "key_id": 7, "serial": c.serial, "signed_at": NOW, "validity": 86_400,
                        "effort": c.effort, "advisory_url": c.advisory_url, "releases": c.releases.0,
                        "epoch": Epoch::at(NOW).0, "seal_key": hex(&seal_key(Epoch::at(NOW).0).to_bytes()),
                    },
                    "issued": p.issued, "expires": p.expires,
                    "latest": p.releases.latest().to_string(),
                    "wire": hex(&wire),
                    "txt_strings": to_txt_strings(&wire).iter().map(|s| hex(s)).collect::<Vec<_>>(),
                    "verify_at": NOW,
                    "statuses": statuses,
                })
            })
            .collect(),
    )
}

/// A policy body as the implementation writes it, for the malformed cases
/// (signed, so that only the parser can refuse them).
fn body_with(releases_bytes: &[u8], url: &[u8]) -> Vec<u8> {
    let seal = seal_key(Epoch::at(NOW).0);
    let issued = NOW - NOW % policy::GRID_SECS;
    let mut b = vec![2, 7];
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&issued.to_be_bytes());
    b.extend_from_slice(&(issued + 86_400).to_be_bytes());
    b.extend_from_slice(&Epoch::at(NOW).0.to_be_bytes());
    b.extend_from_slice(&seal.to_bytes());
    b.push(16);
    b.push(url.len() as u8);
    b.extend_from_slice(url);
    b.extend_from_slice(releases_bytes);
    b
}

fn invalid_policy_vectors() -> Value {
    let zone = zone();
    let ring = ring();
    let key = ring.get(KeyId(7)).unwrap();
    let base = &policy_cases()[0];
    let good = sign(base, NOW);
    let issued = NOW - NOW % policy::GRID_SECS;
    let signed = |body: Vec<u8>| policy::sign_body(key, &zone, &body);
    let mut flipped_sig = good.clone();
    let last = flipped_sig.len() - 1;
    flipped_sig[last] ^= 1;
    let mut flipped_release = good.clone();
    flipped_release[100] ^= 1;
    let mut other_key = good.clone();
    other_key[1] = 8;
    // A one-release list: count 1, 2.4.1 (patch 1 -> 2).
    let one = [1u8, 2, 4, 2, 0, 0];
    let mut too_long = one.to_vec();
    too_long.push(0);
    let mut validity = body_with(&one, b"");
    validity[14..22].copy_from_slice(&(issued + 8 * 86_400 + 1).to_be_bytes());
    let mut bad_format = body_with(&one, b"");
    bad_format[0] = 1;
    // (what, wire, zone, now, state seen, the reason it is refused)
    type Case<'a> = (&'a str, Vec<u8>, &'a str, u64, Option<Freshness>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "a flipped bit in the signature",
            flipped_sig,
            ZONE,
            NOW,
            None,
            "signature",
        ),
        (
            "a flipped bit in the releases",
            flipped_release,
            ZONE,
            NOW,
            None,
            "signature",
        ),
        (
            "signed for another zone",
            good.clone(),
            "vc.example.org",
            NOW,
            None,
            "signature",
        ),
        (
            "another key id than the client carries",
            other_key,
            ZONE,
            NOW,
            None,
            "unknown_key",
        ),
        (
            "expired (checked at its expiry)",
            good.clone(),
            ZONE,
            issued + 86_400,
            None,
            "expired",
        ),
        (
            "a clock behind: the newest issued seen is past its expiry",
            good.clone(),
            ZONE,
            NOW - 10 * 86_400,
            Some(Freshness {
                serial: 0,
                issued: issued + 86_400,
            }),
            "expired",
        ),
        (
            "older than the newest accepted by more than two hours",
            good.clone(),
            ZONE,
            NOW,
            Some(Freshness {
                serial: 0,
                issued: issued + 2 * policy::GRID_SECS + 1,
            }),
            "replayed",
        ),
        (
            "a lower serial than accepted",
            good.clone(),
            ZONE,
            NOW,
            Some(Freshness {
                serial: base.serial + 1,
                issued,
            }),
            "rollback",
        ),
        (
            "signed for more than eight days",
            signed(validity),
            ZONE,
            NOW,
            None,
            "validity",
        ),
        (
            "an unknown format byte",
            signed(bad_format),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "an empty release list",
            signed(body_with(&[0, 0, 0], b"")),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "trailing bytes after the advisories",
            signed(body_with(&too_long, b"")),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "truncated releases",
            signed(body_with(&[2, 2, 4, 2], b"")),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "a fix index past the inline marker",
            signed(body_with(&[1, 2, 4, 2, 0, 1, 1, b'A', 1, 5], b"")),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "an advisory without a fix",
            signed(body_with(&[1, 2, 4, 2, 0, 1, 1, b'A', 0], b"")),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "a varint longer than 64 bits",
            signed(body_with(
                &[
                    1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0,
                ],
                b"",
            )),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "a pre-release tag that is not SemVer",
            signed(body_with(&[1, 2, 4, 3, 2, b'!', b'!', 0, 0], b"")),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
        (
            "an advisory URL without {id}",
            signed(body_with(&one, b"https://vendor.example/")),
            ZONE,
            NOW,
            None,
            "malformed",
        ),
    ];
    let public = private_key().public();
    Value::Array(
        cases
            .into_iter()
            .map(|(what, wire, z, now, seen, error)| {
                let got = SignedPolicy::verify(&wire, &ZoneName::new(z).unwrap(), &public, now, seen)
                    .map(|_| ())
                    .map_err(|e| e.reason());
                assert_eq!(got, Err(error), "{what}");
                json!({"description": what, "txt_strings": to_txt_strings(&wire).iter().map(|s| hex(s)).collect::<Vec<_>>(),
                       "zone": z, "now": now,
                       "seen": seen.map(|s| json!({"serial": s.serial, "issued": s.issued})),
                       "error": error})
            })
            .collect(),
    )
}

fn invalid_frame_vectors() -> Value {
    let zone = zone();
    let ring = ring();
    let seal = seal_key(2959);
    let good_payload = Payload {
        timestamp: NOW,
        identity: Identity::Known {
            cluster: AnonId([1; 16]),
            node: AnonId([2; 16]),
        },
        version: semver::Version::parse("2.4.1").unwrap(),
    };
    let good = frame::seal_with_ikm(&seal, &zone, &good_payload, bytes_from(0x10)).unwrap();
    let pt = plaintext::encode(&good_payload).unwrap();
    let with_plaintext = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = pt.clone();
        f(&mut p);
        frame::seal_plaintext_with_ikm(&seal, &zone, &p, bytes_from(0x10)).unwrap()
    };
    let mut flipped = good.clone();
    flipped[50] ^= 1;
    let mut format = good.clone();
    format[0] = 3;
    let mut key_id = good.clone();
    key_id[1] = 9;
    let old = seal_key(2958);
    let mut stale = frame::seal_with_ikm(&old, &zone, &good_payload, bytes_from(0x10)).unwrap();
    stale[2..4].copy_from_slice(&2957u16.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a length other than 112 or 130",
            good[..111].to_vec(),
            "frame_length",
        ),
        ("format byte 3", format, "unknown_format"),
        ("a key id the zone does not have", key_id, "unknown_key"),
        ("an epoch whose key is not held", stale, "unknown_epoch"),
        ("a flipped bit in the ciphertext", flipped, "authentication"),
        (
            "the right key, another zone (opened as vc.example.org)",
            good.clone(),
            "authentication",
        ),
        (
            "non-zero padding",
            with_plaintext(&|p| p[55] = 1),
            "plaintext",
        ),
        (
            "a reserved flag bit",
            with_plaintext(&|p| p[4] = 0x02),
            "plaintext",
        ),
        (
            "ids with the withheld flag",
            with_plaintext(&|p| p[4] = 0x01),
            "plaintext",
        ),
        (
            "a version length past the plaintext",
            with_plaintext(&|p| p[37] = 19),
            "plaintext",
        ),
        (
            "a version that is not SemVer",
            with_plaintext(&|p| p[38] = b'x'),
            "version",
        ),
    ];
    Value::Array(
        cases
            .into_iter()
            .map(|(what, frame_bytes, error)| {
                let z = if what.contains("another zone") { ZoneName::new("vc.example.org").unwrap() } else { zone.clone() };
                let got = frame::open(&ring, &z, &frame_bytes).map(|_| ()).map_err(|e| e.reason());
                assert_eq!(got, Err(error), "{what}");
                json!({"description": what, "zone": z.as_str(), "frame": hex(&frame_bytes), "error": error})
            })
            .collect(),
    )
}

fn generate() -> Value {
    json!({
        "about": "Protocol v2 test vectors (docs/PROTOCOL.md §22). Byte strings are lower-case hex. Generated and checked by tests/protocol_v2_vectors.rs; the Python reference (§23) and the Go and Python clients read this file.",
        "format": 1,
        "constants": {
            "epoch_secs": vcheckd::protocol::v2::keys::EPOCH_SECS,
            "keep_after_secs": vcheckd::protocol::v2::keys::KEEP_AFTER_SECS,
            "grid_secs": policy::GRID_SECS,
            "skew_secs": policy::SKEW_SECS,
            "min_validity_secs": policy::MIN_VALIDITY_SECS,
            "max_validity_secs": policy::MAX_VALIDITY_SECS,
            "argon2id": {"memory_kib": vcheckd::protocol::v2::ids::ARGON2_MEMORY_KIB, "iterations": vcheckd::protocol::v2::ids::ARGON2_ITERATIONS, "lanes": vcheckd::protocol::v2::ids::ARGON2_LANES, "length": 32},
            "plaintext_sizes": plaintext::SIZES,
            "frame_sizes": frame::SIZES,
        },
        "keys": ratchet_vectors(),
        "ids": id_vectors(),
        "reports": report_vectors(),
        "policies": policy_vectors(),
        "invalid_policies": invalid_policy_vectors(),
        "invalid_frames": invalid_frame_vectors(),
    })
}

fn read_file() -> Value {
    serde_json::from_str(&std::fs::read_to_string(file()).expect("docs/vectors/v2.json")).unwrap()
}

#[test]
fn the_vector_file_is_what_the_code_computes() {
    let generated = generate();
    let text = format!("{}\n", serde_json::to_string_pretty(&generated).unwrap());
    if std::env::var("VCHECKD_WRITE_VECTORS").as_deref() == Ok("1") {
        std::fs::create_dir_all(file().parent().unwrap()).unwrap();
        std::fs::write(file(), &text).unwrap();
        return;
    }
    let on_disk = read_file();
    assert!(
        on_disk == generated,
        "docs/vectors/v2.json differs from what the code computes: if the format changed on purpose, run VCHECKD_WRITE_VECTORS=1 cargo test --test protocol_v2_vectors"
    );
}

/// Each vector, read from the file, through the API a client and a server
/// use: names and ids, policies and statuses, every refusal.
#[test]
fn every_vector_in_the_file_holds() {
    let v = read_file();
    let keys = &v["keys"];
    let private = PrivateKey::parse(keys["private"].as_str().unwrap()).unwrap();
    let public = PublicKey::parse(keys["public"].as_str().unwrap()).unwrap();
    assert_eq!(private.public(), public);
    let now = keys["now"].as_u64().unwrap();
    let ring = PrivateKeyring::new(&[private], now).unwrap();
    for e in keys["epochs"].as_array().unwrap() {
        let epoch = Epoch(e["epoch"].as_u64().unwrap() as u16);
        let pk = ring.epoch_key(public.id, epoch).unwrap().public_bytes();
        assert_eq!(hex(&pk), e["x25519_public"].as_str().unwrap());
    }
    for i in v["ids"].as_array().unwrap() {
        let zone = ZoneName::new(i["zone"].as_str().unwrap()).unwrap();
        let s = ClusterSecret::derive(&zone, i["cluster_id"].as_str().unwrap());
        assert_eq!(s.cluster().to_hex(), i["cluster"].as_str().unwrap());
        assert_eq!(
            s.node(i["node_id"].as_str().unwrap()).to_hex(),
            i["node"].as_str().unwrap()
        );
    }
    for r in v["reports"].as_array().unwrap() {
        let inputs = &r["inputs"];
        let zone = ZoneName::new(inputs["zone"].as_str().unwrap()).unwrap();
        let seal = SealKey::from_bytes(
            public.id,
            Epoch(inputs["epoch"].as_u64().unwrap() as u16),
            &unhex(inputs["seal_key"].as_str().unwrap())
                .try_into()
                .unwrap(),
        )
        .unwrap();
        // The name decodes to the frame; the frame opens to the inputs.
        let name = r["name"].as_str().unwrap();
        let labels = payload_labels(&zone, name).unwrap();
        let frame_bytes = labels_to_frame(&labels).unwrap();
        assert_eq!(hex(&frame_bytes), r["frame"].as_str().unwrap());
        assert_eq!(
            effort::effort(&frame_bytes).0 .0 as u64,
            r["effort"].as_u64().unwrap()
        );
        let report = frame::open(&ring, &zone, &frame_bytes).unwrap();
        assert_eq!(report.id.to_hex(), r["report_id"].as_str().unwrap());
        assert_eq!(
            report.payload.version.to_string(),
            inputs["version"].as_str().unwrap()
        );
        let ikm: [u8; 32] = unhex(r["inputs"]["ikm_e"].as_str().unwrap())
            .try_into()
            .unwrap();
        let again = frame::seal_with_ikm(&seal, &zone, &report.payload, ikm).unwrap();
        assert_eq!(hex(&again), r["frame_before_proof"].as_str().unwrap());
    }
    for p in v["policies"].as_array().unwrap() {
        let wire = unhex(p["wire"].as_str().unwrap());
        let strings: Vec<Vec<u8>> = p["txt_strings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| unhex(s.as_str().unwrap()))
            .collect();
        assert_eq!(policy::from_txt_strings(&strings).unwrap(), wire);
        let verified = SignedPolicy::verify(
            &wire,
            &zone(),
            &public,
            p["verify_at"].as_u64().unwrap(),
            None,
        )
        .unwrap();
        for s in p["statuses"].as_array().unwrap() {
            let h =
                verified.hint_for(&semver::Version::parse(s["version"].as_str().unwrap()).unwrap());
            assert_eq!(
                u64::from(h.status.code()),
                s["status"].as_u64().unwrap(),
                "{s}"
            );
            assert_eq!(h.message, s["message"].as_str().unwrap());
        }
    }
    for p in v["invalid_policies"].as_array().unwrap() {
        let strings: Vec<Vec<u8>> = p["txt_strings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| unhex(s.as_str().unwrap()))
            .collect();
        let wire = policy::from_txt_strings(&strings).unwrap();
        let seen = p["seen"].as_object().map(|s| Freshness {
            serial: s["serial"].as_u64().unwrap() as u32,
            issued: s["issued"].as_u64().unwrap(),
        });
        let zone = ZoneName::new(p["zone"].as_str().unwrap()).unwrap();
        let err = SignedPolicy::verify(&wire, &zone, &public, p["now"].as_u64().unwrap(), seen)
            .unwrap_err();
        assert_eq!(
            err.reason(),
            p["error"].as_str().unwrap(),
            "{}",
            p["description"]
        );
    }
    for f in v["invalid_frames"].as_array().unwrap() {
        let zone = ZoneName::new(f["zone"].as_str().unwrap()).unwrap();
        let err = frame::open(&ring, &zone, &unhex(f["frame"].as_str().unwrap())).unwrap_err();
        assert_eq!(
            err.reason(),
            f["error"].as_str().unwrap(),
            "{}",
            f["description"]
        );
    }
}

/// The Python block of docs/PROTOCOL.md §23, run on the vector file: it
/// must reproduce every value. Skipped where python3 lacks `cryptography`
/// 44 or newer; required in CI.
#[test]
fn the_python_reference_reproduces_the_file() {
    let doc =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/PROTOCOL.md"))
            .unwrap();
    let start = doc.find("## 23.").expect("§23");
    let block = &doc[start..];
    let code_start = block.find("```python\n").expect("a python block") + "```python\n".len();
    let code = &block[code_start..code_start + block[code_start..].find("```").unwrap()];
    let probe = std::process::Command::new("python3")
        .args([
            "-c",
            "from cryptography.hazmat.primitives.kdf.argon2 import Argon2id",
        ])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("VCHECKD_INTEROP_REQUIRE").as_deref() != Ok("1"),
            "python3 with cryptography >= 44 is missing and VCHECKD_INTEROP_REQUIRE=1: pip install 'cryptography>=44'"
        );
        eprintln!("skipped: python3 with cryptography >= 44 (Argon2id) is not available (pip install 'cryptography>=44')");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("reference.py");
    std::fs::write(&script, format!("{code}\n\nif __name__ == '__main__':\n    import sys\n    check_vectors(sys.argv[1])\n")).unwrap();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(file())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("all vectors reproduced"), "{stdout}");
}

#[test]
fn the_budget_table_holds() {
    // Every report of a zone has one of two name lengths; the large one
    // fits a 40-character zone, the small one a 70-character zone.
    for (z, small, large) in [
        (14usize, true, true),
        (40, true, true),
        (41, true, true),
        (42, true, false),
        (70, true, false),
        (71, false, false),
    ] {
        let zone = format!("{}.example", "a".repeat(z - 8));
        let zone = ZoneName::new(&zone).unwrap();
        assert_eq!(zone.as_str().len(), z);
        for (size, fits) in [(frame::SIZES[0], small), (frame::SIZES[1], large)] {
            let got = frame_to_name(&vec![2u8; size], &zone);
            assert_eq!(got.is_ok(), fits, "zone of {z}, frame of {size}: {got:?}");
        }
    }
}
