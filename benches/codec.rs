//! The wire format's hot functions, without sockets or SQLite:
//! building a query name (client side), decoding its labels (the server's
//! per-query crypto in v1) and computing the hint the server answers with;
//! for protocol v2, sealing (client), the shape check (the answer path's
//! only work) and opening (the processor's).
//!
//! Run: `cargo bench --bench codec` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quick pass).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use semver::Version;

use vcheckd::hint::{AdvisoryConfig, Releases, ReleasesConfig, Status};
use vcheckd::protocol::name::{decode_labels, encode_query_name, query_name};
use vcheckd::protocol::{
    anonymize, IdKind, Identity, Key, KeyId, Keyring, Payload, ReportId, ZoneName,
};

const ZONE: &str = "vc.example.com";

fn key() -> Key {
    // A fixed key keeps runs comparable (same name lengths every time).
    Key::new(KeyId(1), [0x42; 32])
}

/// A report with identity, as `vcheckd check` sends by default.
fn payload(key: &Key) -> Payload {
    Payload {
        timestamp: 1_790_000_000,
        identity: Identity::Known {
            cluster: anonymize(key, IdKind::Cluster, "cluster-0001"),
            node: anonymize(
                key,
                IdKind::Node {
                    cluster: "cluster-0001",
                },
                "node-0001",
            ),
        },
        version: Version::parse("2.4.1").unwrap(),
    }
}

/// The payload labels of `name` (its labels before the zone's), as the
/// responder hands them to `decode_labels`.
fn payload_labels(name: &str) -> Vec<Vec<u8>> {
    let suffix = format!(".{ZONE}.");
    name.strip_suffix(&suffix)
        .expect("name ends in the zone")
        .split('.')
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn encode(c: &mut Criterion) {
    let key = key();
    let zone = ZoneName::new(ZONE).unwrap();
    let payload = payload(&key);
    let mut g = c.benchmark_group("encode");
    // What a client does once per check: fresh nonce, seal, base32, join.
    g.bench_function("encode_query_name", |b| {
        b.iter(|| encode_query_name(black_box(&key), black_box(&zone), black_box(&payload)))
    });
    // The same without the random nonce: isolates the OS/thread RNG cost.
    let id = ReportId([7; 12]);
    g.bench_function("query_name_fixed_nonce", |b| {
        b.iter(|| {
            query_name(
                black_box(&key),
                black_box(&zone),
                black_box(id),
                black_box(&payload),
            )
        })
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let key = key();
    let zone = ZoneName::new(ZONE).unwrap();
    let keyring = Keyring::new(std::slice::from_ref(&key)).unwrap();
    let name = query_name(&key, &zone, ReportId([7; 12]), &payload(&key)).unwrap();
    let owned = payload_labels(&name);
    let labels: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    // Upper case, as a resolver applying 0x20 randomisation may send it.
    let upper_owned: Vec<Vec<u8>> = owned.iter().map(|l| l.to_ascii_uppercase()).collect();
    let upper: Vec<&[u8]> = upper_owned.iter().map(Vec::as_slice).collect();
    // Same length, one character changed: base32 decodes, the tag fails.
    let mut forged_owned = owned.clone();
    forged_owned[0][0] = if forged_owned[0][0] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let forged: Vec<&[u8]> = forged_owned.iter().map(Vec::as_slice).collect();
    // A QNAME-minimisation probe: one short label, not base32 of a frame.
    let partial: Vec<&[u8]> = vec![b"_"];

    assert!(decode_labels(&keyring, &zone, &labels).is_ok());
    assert!(decode_labels(&keyring, &zone, &upper).is_ok());
    assert!(decode_labels(&keyring, &zone, &forged).is_err());
    assert!(decode_labels(&keyring, &zone, &partial).is_err());

    let mut g = c.benchmark_group("decode_labels");
    for (what, labels) in [
        ("valid", &labels),
        ("valid_upper_case", &upper),
        ("forged_auth_fails", &forged),
        ("partial_name", &partial),
    ] {
        g.bench_function(what, |b| {
            b.iter(|| decode_labels(black_box(&keyring), black_box(&zone), black_box(labels)))
        });
    }
    g.finish();
}

fn hint(c: &mut Criterion) {
    // The embedded default configuration's releases.
    let releases = Releases::try_from(&ReleasesConfig {
        versions: ["1.9.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
            .map(String::from)
            .to_vec(),
        end_of_life: vec!["1".into(), "2.2".into()],
        advisory: vec![AdvisoryConfig {
            id: "CVE-2026-0001".into(),
            fixed: vec!["2.3.1".into(), "2.4.1".into()],
        }],
    })
    .unwrap();
    let mut g = c.benchmark_group("hint_for");
    for (what, version, status) in [
        ("up_to_date", "2.4.1", Status::UpToDate),
        ("upgrade_available", "2.3.1", Status::UpgradeAvailable),
        ("advisory", "2.3.0", Status::UpgradeRequired),
        ("end_of_life", "1.9.0", Status::UpgradeRequired),
        ("unknown", "9.9.9", Status::Unknown),
    ] {
        let v = Version::parse(version).unwrap();
        assert_eq!(releases.hint_for(&v).status, status, "{what}");
        g.bench_function(what, |b| b.iter(|| releases.hint_for(black_box(&v))));
    }
    g.finish();
}

fn v2(c: &mut Criterion) {
    use vcheckd::protocol::name::{frame_to_name, labels_to_frame};
    use vcheckd::protocol::v2::effort::{self, Effort};
    use vcheckd::protocol::v2::keys::Ratchet;
    use vcheckd::protocol::v2::{frame, ClusterSecret, Epoch, PrivateKey, PrivateKeyring};
    let now = 2_970 * 604_800 + 86_400;
    let private = PrivateKey::from_secrets(
        KeyId(1),
        [0x42; 32],
        Ratchet::new(Epoch::at(now), [0x21; 32]),
    );
    let ring = PrivateKeyring::new(std::slice::from_ref(&private), now).unwrap();
    let seal = ring.seal_key(KeyId(1), Epoch::at(now)).unwrap();
    let zone = ZoneName::new(ZONE).unwrap();
    let payload = payload(&key());
    let mut sealed = frame::seal(&seal, &zone, &payload).unwrap();
    effort::prove(&mut sealed, Effort(8), 1 << 20);
    let name = frame_to_name(&sealed, &zone).unwrap();
    let owned = payload_labels(&name);
    let labels: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    assert!(frame::open(&ring, &zone, &sealed).is_ok());
    let mut g = c.benchmark_group("v2");
    g.bench_function("seal_client", |b| {
        b.iter(|| frame::seal(black_box(&seal), black_box(&zone), black_box(&payload)))
    });
    // The client's one-time cost per process: the cluster secret.
    g.sample_size(10);
    g.bench_function("cluster_secret_argon2id", |b| {
        b.iter(|| ClusterSecret::derive(black_box(&zone), black_box("cluster-1")))
    });
    g.sample_size(100);
    // A try of the effort search (one or two SHA-256 compressions): a
    // proof of effort e costs 2^e of them on average.
    g.bench_function("effort_try", |b| {
        let mut f = sealed.clone();
        b.iter(|| effort::prove_from(black_box(&mut f), Effort(255), 0, 1))
    });
    // What the answer path does with a v2 name: base32, the shape and the
    // effort (one hash of the frame).
    g.bench_function("answer_path_shape_and_effort", |b| {
        b.iter(|| {
            let f = labels_to_frame(black_box(&labels)).unwrap();
            (frame::check_shape(&f).is_ok(), effort::effort(&f).0)
        })
    });
    g.bench_function("effort_verify", |b| {
        b.iter(|| effort::effort(black_box(&sealed)))
    });
    // What the processor does with it.
    g.bench_function("open_processor", |b| {
        b.iter(|| frame::open(black_box(&ring), black_box(&zone), black_box(&sealed)))
    });
    // The same frame through the `hpke` crate's `single_shot_open`, the
    // opener's path before the prepared recipient (it derives the public
    // key from the private one and hashes the constants on every open):
    // the two side by side give the ratio in one run.
    g.bench_function("open_hpke_crate", |b| {
        use hmac::{Hmac, Mac};
        use hpke::{Deserializable, Kem as _};
        type Kem = hpke::kem::X25519HkdfSha256;
        let seed = private.ratchet.advance_to(Epoch::at(now)).unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(seed.seed()).unwrap();
        mac.update(b"vcheckd v2 epoch key");
        let (sk, _) = Kem::derive_keypair(&mac.finalize().into_bytes());
        let info = format!("vcheckd v2 report\0{}", zone.as_str());
        let (header, rest) = sealed.split_at(frame::HEADER_LEN);
        let (enc, rest) = rest.split_at(frame::ENC_LEN);
        let ciphertext = &rest[..rest.len() - effort::PROOF_LEN];
        let open = |enc: &[u8]| {
            hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
                &hpke::OpModeR::Base,
                &sk,
                &<Kem as hpke::Kem>::EncappedKey::from_bytes(enc).unwrap(),
                info.as_bytes(),
                ciphertext,
                header,
            )
        };
        assert!(open(enc).is_ok());
        b.iter(|| open(black_box(enc)))
    });
    g.finish();
}

criterion_group!(benches, encode, decode, hint, v2);
criterion_main!(benches);
