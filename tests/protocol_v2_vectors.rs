//! The protocol v2 test vectors of docs/PROTOCOL.md (§16), rebuilt from
//! their inputs with the public API, opened and verified back, and checked
//! against the document's text; and the document's Python reference, run
//! on the same inputs, must produce the same bytes.

use data_encoding::HEXLOWER;
use semver::Version;

use vcheckd::hint::{AdvisoryConfig, Releases, ReleasesConfig};
use vcheckd::protocol::name::{frame_to_labels, frame_to_name};
use vcheckd::protocol::v2::{self, frame, PrivateKey, PrivateKeyring, SignedPolicy};
use vcheckd::protocol::IdKind;
use vcheckd::protocol::{Identity, KeyId, Payload, ZoneName};

const DOC: &str = include_str!("../docs/PROTOCOL.md");
const ZONE: &str = "vc.example.com";
const CLUSTER: &str = "3f2b8c1e-9d4a-4e6b-8f0c-5a7d2e1b9c34";
const NODE: &str = "ip-10-0-12-34.eu-west-1.compute.internal";

fn bytes_from(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start + i as u8)
}

fn key() -> PrivateKey {
    // The X25519 key in its clamped form (RFC 7748): its last byte 0x3f | 0x40.
    let mut x25519 = bytes_from(0x20);
    x25519[31] = 0x7f;
    PrivateKey::from_secrets(KeyId(7), x25519, bytes_from(0x40)).unwrap()
}

fn zone() -> ZoneName {
    ZoneName::new(ZONE).unwrap()
}

fn payload() -> Payload {
    let zone = zone();
    Payload {
        timestamp: 1_790_000_000,
        identity: Identity::Known {
            cluster: v2::anonymize(&zone, IdKind::Cluster, CLUSTER),
            node: v2::anonymize(&zone, IdKind::Node { cluster: CLUSTER }, NODE),
        },
        version: Version::parse("2.4.0").unwrap(),
    }
}

fn releases() -> Releases {
    Releases::try_from(&ReleasesConfig {
        versions: ["1.9.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
            .map(String::from)
            .to_vec(),
        end_of_life: vec!["1".into(), "2.2".into()],
        advisory: vec![AdvisoryConfig {
            id: "CVE-2026-0001".into(),
            fixed: vec!["2.3.1".into(), "2.4.1".into()],
        }],
    })
    .unwrap()
}

fn policy() -> SignedPolicy {
    SignedPolicy {
        key_id: KeyId(7),
        serial: 2_026_112_901,
        issued: 1_790_000_000,
        expires: 1_790_604_800,
        releases: releases(),
    }
}

struct Computed {
    public_token: String,
    anon_cluster: String,
    anon_node: String,
    plaintext: String,
    frame: String,
    report_id: String,
    labels: Vec<String>,
    name: String,
    policy: String,
}

fn compute() -> Computed {
    let key = key();
    let zone = zone();
    let p = payload();
    let (cluster, node) = match p.identity {
        Identity::Known { cluster, node } => (cluster, node),
        Identity::Withheld => unreachable!(),
    };
    let sealed = frame::seal_with_ikm(&key.public(), &zone, &p, bytes_from(0x60)).unwrap();
    let report = frame::open(
        &PrivateKeyring::new(vec![key.clone()]).unwrap(),
        &zone,
        &sealed,
    )
    .unwrap();
    assert_eq!(report.payload, p);
    Computed {
        public_token: key.public().to_token(),
        anon_cluster: cluster.to_hex(),
        anon_node: node.to_hex(),
        plaintext: HEXLOWER.encode(&p.to_bytes().unwrap()),
        frame: HEXLOWER.encode(&sealed),
        report_id: report.id.to_hex(),
        labels: frame_to_labels(&sealed).unwrap(),
        name: frame_to_name(&sealed, &zone).unwrap(),
        policy: HEXLOWER.encode(&policy().sign(&key, &zone).unwrap()),
    }
}

const PUBLIC: &str = "vck2-public:7:358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254:2543b92ff1095511476adc8369db6ddc933665a11978dda1404ee1066ca9559d";
const PRIVATE: &str = "vck2-private:7:202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e7f:404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

#[test]
fn the_documented_vectors_are_what_the_code_computes() {
    let c = compute();
    assert_eq!(key().to_token(), PRIVATE);
    assert_eq!(c.public_token, PUBLIC);
    for (what, value) in [
        ("private key", PRIVATE),
        ("public key", PUBLIC),
        ("anonymized cluster", c.anon_cluster.as_str()),
        ("anonymized node", c.anon_node.as_str()),
        ("plaintext", c.plaintext.as_str()),
        ("frame", c.frame.as_str()),
        ("report id", c.report_id.as_str()),
        ("query name", c.name.as_str()),
        ("policy", c.policy.as_str()),
    ] {
        assert!(
            DOC.contains(value),
            "docs/PROTOCOL.md lacks the {what} {value}"
        );
    }
    assert_eq!(c.labels.len(), 3);
}

#[test]
fn the_documented_policy_verifies_and_refuses_as_documented() {
    let zone = zone();
    let wire = HEXLOWER.decode(compute().policy.as_bytes()).unwrap();
    let public = [key().public()];
    let p = SignedPolicy::verify(&wire, &zone, &public, 1_790_000_001, None).unwrap();
    assert_eq!(p, policy());
    let status = |v: &str| {
        let h = p.releases.hint_for(&Version::parse(v).unwrap());
        (h.status.code(), h.message)
    };
    assert_eq!(status("2.4.1").0, 1);
    assert_eq!(status("2.3.1").0, 2);
    assert_eq!(
        status("2.3.0"),
        (3, "security fix CVE-2026-0001 in 2.3.1".into())
    );
    assert_eq!(status("2.2.0").0, 3);
    assert_eq!(status("2.4.2").0, 0);
    use vcheckd::protocol::v2::PolicyError;
    assert!(matches!(
        SignedPolicy::verify(&wire, &zone, &public, 1_790_604_800, None),
        Err(PolicyError::Expired { .. })
    ));
    let org = ZoneName::new("vc.example.org").unwrap();
    assert_eq!(
        SignedPolicy::verify(&wire, &org, &public, 1_790_000_001, None),
        Err(PolicyError::BadSignature)
    );
    assert!(matches!(
        SignedPolicy::verify(&wire, &zone, &public, 1_790_000_001, Some(2_026_112_902)),
        Err(PolicyError::Rollback { .. })
    ));
}

/// Each row of the size table: the largest version fits, one byte more not.
#[test]
fn the_size_budget_table_holds() {
    let rows = [
        (10, 57),
        (14, 54),
        (20, 51),
        (30, 44),
        (40, 38),
        (50, 32),
        (60, 26),
        (80, 14),
    ];
    let key = key().public();
    for (zone_len, largest) in rows {
        let row = format!("| {zone_len} | {} | {largest} |", 92 + largest);
        assert!(DOC.contains(&row), "docs/PROTOCOL.md lacks the row {row}");
        // A zone of exactly zone_len characters, in labels of at most 9.
        let mut text = "z".repeat(zone_len);
        for i in (9..zone_len - 1).step_by(10) {
            text.replace_range(i..=i, ".");
        }
        let zone = ZoneName::new(&text).unwrap();
        assert_eq!(zone.as_str().len(), zone_len);
        let payload = |len: usize| Payload {
            timestamp: 0,
            identity: Identity::Withheld,
            version: Version::parse(&format!("1.0.0-{}", "a".repeat(len - 6))).unwrap(),
        };
        let fits = |len: usize| {
            let frame = frame::seal(&key, &zone, &payload(len)).unwrap();
            frame_to_name(&frame, &zone).is_ok()
        };
        assert!(fits(largest), "zone {zone_len}: version {largest} must fit");
        assert!(
            !fits(largest + 1),
            "zone {zone_len}: version {} must not fit",
            largest + 1
        );
    }
}

/// The Python reference of §23, run on the vectors' inputs.
#[test]
fn the_python_reference_reproduces_the_vectors() {
    let required = std::env::var_os("VCHECKD_INTEROP_REQUIRE").is_some();
    // The first Python that has the package: the one on PATH, or Debian's
    // (python3-cryptography).
    let python = ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        assert!(!required, "python3 with the cryptography package is required (apt-get install python3-cryptography)");
        eprintln!("SKIPPED: python3 with the cryptography package not found");
        return;
    };
    let start = DOC.find("## 23. v2 Python reference").unwrap();
    let block = &DOC[start..];
    let code_start = block.find("```python\n").unwrap() + "```python\n".len();
    let code = &block[code_start..code_start + block[code_start..].find("```").unwrap()];
    let c = compute();
    let wire = HEXLOWER.decode(c.policy.as_bytes()).unwrap();
    let strings: Vec<String> = vcheckd::protocol::v2::policy::to_txt_strings(&wire)
        .iter()
        .map(|s| HEXLOWER.encode(s))
        .collect();
    let script = format!(
        r#"{code}
name, rid = query_name("{PUBLIC}", "vc.example.com", "2.4.0", "{CLUSTER}", "{NODE}",
                       timestamp=1790000000, ikm_e=bytes(range(0x60, 0x80)))
print(name)
print(rid)
strings = [bytes.fromhex(s) for s in {strings:?}]
policy = verify_policy(strings, "{PUBLIC}", "vc.example.com", 1790000001)
for v in ["2.4.1", "2.4.1+b7", "2.3.1", "2.3.0", "2.4.0", "2.2.0", "1.9.0", "2.5.0-rc.1", "2.4.2"]:
    s, m = status(policy, v)
    print("%s %d %s" % (v, s, m))
for bad in [lambda: verify_policy(strings, "{PUBLIC}", "vc.example.com", 1790604800),
            lambda: verify_policy(strings, "{PUBLIC}", "vc.example.org", 1790000001),
            lambda: verify_policy(strings, "{PUBLIC}", "vc.example.com", 1790000001, 2026112902)]:
    try:
        bad()
        print("accepted")
    except PolicyError as e:
        print("refused")
"#
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(c.name.as_str()));
    assert_eq!(lines.next(), Some(c.report_id.as_str()));
    let releases = releases();
    for v in [
        "2.4.1",
        "2.4.1+b7",
        "2.3.1",
        "2.3.0",
        "2.4.0",
        "2.2.0",
        "1.9.0",
        "2.5.0-rc.1",
        "2.4.2",
    ] {
        let hint = releases.hint_for(&Version::parse(v).unwrap());
        let expected = format!("{v} {} {}", hint.status.code(), hint.message);
        assert_eq!(lines.next(), Some(expected.as_str()));
    }
    assert_eq!(lines.collect::<Vec<_>>(), ["refused"; 3]);
}
