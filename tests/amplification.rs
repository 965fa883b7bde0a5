//! How much bigger an answer is than its query (the amplification a forged
//! source gets), for every kind of answer vcheckd gives, over real UDP:
//! each query is sent by BIND's dig and by a plain socket, and both must
//! see the same sizes. Report names are made by the real clients (v1 and
//! v2), and the v2 answers verify as the zone's signed policy. Two zones:
//! the small test policy, and a realistic one (100 releases, 20 advisories).
//!
//! Every query is the attacker's best: the smallest that asks for the answer
//! (no cookie), with EDNS offering 1,232 bytes (what vcheckd sends at most).
//! Each answer's rate-limit class ([`Class::of`], the function the UDP loop
//! applies to the same bytes) is printed with it, and the worst case a
//! forged source gets toward one victim prefix under the default limits is
//! computed from the measured sizes (docs/DEPLOY.md, "Forged sources and
//! greedy clients", quotes this table). Run with `-- --nocapture` to see it.
//!
//! Skips (with a message) where dig is not installed; with
//! VCHECKD_INTEROP_REQUIRE=1 (CI) that is a failure.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;
use hickory_proto::op::{Edns, Message, OpCode};
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use vcheckd::client::v2::{CheckV2, ClientState};
use vcheckd::client::Reporter;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::dns::rrl::{Class, LARGE_BYTES, LARGE_FACTOR};
use vcheckd::protocol::v2::effort::Effort;
use vcheckd::protocol::v2::policy::from_txt_strings;
use vcheckd::protocol::v2::{Epoch, PrivateKeyring, SealKey};
use vcheckd::protocol::{KeyId, ZoneName};

/// The defaults of a configuration file (`rrl_rate`, `rrl_large_rate`).
const RATE: u64 = 200;
const LARGE_RATE: u64 = 50;

/// How a query is sent, as dig options and as a message.
#[derive(Clone, Copy)]
enum Shape {
    /// EDNS version 0 offering 1,232 bytes: the attacker's usual query.
    Edns,
    /// EDNS version 1: BADVERS.
    EdnsVersion1,
    /// A header and nothing else, no EDNS: FORMERR.
    HeaderOnly,
    /// Opcode NOTIFY with EDNS: NOTIMP.
    Notify,
}

struct Case {
    what: &'static str,
    name: String,
    qtype: RecordType,
    shape: Shape,
}

fn case(what: &'static str, name: &str, qtype: RecordType) -> Case {
    Case {
        what,
        name: name.to_string(),
        qtype,
        shape: Shape::Edns,
    }
}

/// One measured answer.
struct Row {
    what: &'static str,
    qtype: RecordType,
    query: usize,
    answer: usize,
    class: Class,
    message: Message,
}

impl Row {
    fn factor(&self) -> f64 {
        self.answer as f64 / self.query as f64
    }
}

fn request(case: &Case) -> Message {
    match case.shape {
        Shape::HeaderOnly => Message::query(),
        Shape::Edns | Shape::Notify => {
            let mut m = query(&case.name, case.qtype, Some(1232));
            if let Shape::Notify = case.shape {
                m.metadata.op_code = OpCode::Notify;
            }
            m
        }
        Shape::EdnsVersion1 => {
            let mut m = query(&case.name, case.qtype, None);
            let mut edns = Edns::new();
            edns.set_max_payload(1232).set_version(1);
            m.set_edns(edns);
            m
        }
    }
}

fn dig_args(case: &Case) -> Vec<String> {
    let mut args: Vec<String> = ["+qr", "+ignore", "+nocookie", "+tries=1", "+time=3"]
        .map(String::from)
        .to_vec();
    let shape: &[&str] = match case.shape {
        Shape::Edns => &["+bufsize=1232"],
        Shape::EdnsVersion1 => &["+bufsize=1232", "+edns=1", "+noednsnegotiation"],
        Shape::HeaderOnly => &["+header-only", "+noedns"],
        Shape::Notify => &["+bufsize=1232", "+opcode=notify"],
    };
    args.extend(shape.iter().map(|s| s.to_string()));
    args.extend([case.name.clone(), case.qtype.to_string()]);
    args
}

/// The query and answer sizes dig reports, if dig is installed.
fn dig_sizes(port: u16, case: &Case) -> Option<(usize, usize)> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string()])
        .args(dig_args(case))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let size = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} from dig {:?}:\n{text}", dig_args(case)))
    };
    Some((size(";; QUERY SIZE:"), size(";; MSG SIZE  rcvd:")))
}

fn dig_installed() -> bool {
    if Command::new("dig").arg("-v").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("VCHECKD_INTEROP_REQUIRE").as_deref() != Ok("1"),
        "dig is missing and VCHECKD_INTEROP_REQUIRE=1: install bind9-dnsutils"
    );
    eprintln!("skipped: dig is not installed (apt-get install bind9-dnsutils)");
    false
}

/// Sends `case` from a socket and with dig; both must see the same sizes.
async fn measure(addr: SocketAddr, case: &Case) -> Row {
    let request = request(case).to_bytes().unwrap();
    let answer = udp_raw(addr, &request)
        .await
        .unwrap_or_else(|| panic!("{}: no answer", case.what));
    let (port, dig_case) = (
        addr.port(),
        Case {
            name: case.name.clone(),
            ..*case
        },
    );
    let seen = tokio::task::spawn_blocking(move || dig_sizes(port, &dig_case))
        .await
        .unwrap()
        .expect("dig ran");
    assert_eq!(
        seen,
        (request.len(), answer.len()),
        "{}: dig and the socket disagree",
        case.what
    );
    Row {
        what: case.what,
        qtype: case.qtype,
        query: request.len(),
        answer: answer.len(),
        class: Class::of(&answer),
        message: Message::from_vec(&answer).unwrap(),
    }
}

/// A zone serving v1 (the test key) and v2 with `releases`, its v2 client,
/// and the key the client seals to this week.
fn v2_zone(releases: &str) -> (Setup, CheckV2, SealKey) {
    let setup = Setup::new();
    let private = add_v2(&setup, releases);
    let now = now();
    let seal = PrivateKeyring::new(std::slice::from_ref(&private), now)
        .unwrap()
        .seal_key(private.id, Epoch::at(now))
        .unwrap();
    let check = CheckV2::new(
        ZoneName::new(ZONE).unwrap(),
        private.public(),
        semver::Version::new(2, 3, 1),
        Some(&Reporter {
            cluster_id: "cluster-1".into(),
            node_id: "node-1".into(),
        }),
    );
    (setup, check, seal)
}

fn now() -> u64 {
    u64::try_from(vcheckd::clock::unix_now()).unwrap()
}

/// Every kind of answer the zone gives.
fn cases(setup: &Setup, check: &CheckV2, seal: &SealKey) -> Vec<Case> {
    use RecordType::*;
    let apex = format!("{ZONE}.");
    let v1 = setup.name("cluster-1", "node-1", "2.3.1");
    // No effort: the attacker's cheapest name, answered all the same.
    let v2 = check.prepare(seal, Effort(0)).unwrap().name;
    let policy = check.policy_name();
    // What a QNAME-minimising resolver asks first: the report name's last
    // payload label under the zone.
    let labels: Vec<&str> = v2.trim_end_matches('.').split('.').collect();
    let partial = format!("{}.{apex}", labels[labels.len() - 4]);
    let mut cases = vec![
        case("apex", &apex, SOA),
        case("apex", &apex, NS),
        case("apex", &apex, ANY),
        case("apex NODATA", &apex, TXT),
        case("glue", &format!("ns1.{apex}"), A),
        case("partial name", &partial, A),
        case("zone-file TXT", &format!("big.{apex}"), TXT),
        case("over 1232: TC", &format!("huge.{apex}"), TXT),
        case("v1 report", &v1, TXT),
        case("v1 report", &v1, A),
        case("v2 report", &v2, TXT),
        case("v2 report", &v2, A),
        case("v2 report", &v2, AAAA),
        case("v2 report", &v2, ANY),
        case("_policy", &policy, TXT),
        case("_policy", &policy, ANY),
        case(
            "_policy, other key",
            &vcheckd::client::v2::policy_name(&check.zone, KeyId(9)),
            TXT,
        ),
        case("REFUSED", "example.org.", A),
    ];
    cases.extend([
        Case {
            shape: Shape::EdnsVersion1,
            ..case("BADVERS", &apex, SOA)
        },
        Case {
            shape: Shape::HeaderOnly,
            ..case("FORMERR", &apex, SOA)
        },
        Case {
            shape: Shape::Notify,
            ..case("NOTIMP", &apex, SOA)
        },
    ]);
    cases
}

/// The signed policy in a v2 answer, verified as the client does.
fn verified(check: &CheckV2, row: &Row) {
    let wire = row
        .message
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::TXT(t) => from_txt_strings(&t.txt_data),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{} {}: no policy", row.what, row.qtype));
    check
        .verify(&wire, &mut ClientState::in_memory(), now())
        .unwrap_or_else(|e| panic!("{} {}: {e}", row.what, row.qtype));
}

async fn measure_zone(label: &str, releases: &str) -> Vec<Row> {
    let (setup, check, seal) = v2_zone(releases);
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut rows = Vec::new();
    for case in cases(&setup, &check, &seal) {
        rows.push(measure(addr, &case).await);
    }
    server.shutdown().await.unwrap();

    eprintln!("\n{label}: query and answer bytes over UDP, EDNS 1232, no cookie");
    eprintln!("| answer | type | rcode | query | answer | factor | class |");
    eprintln!("|---|---|---|---:|---:|---:|---|");
    for r in &rows {
        let m = &r.message.metadata;
        let rcode = match (u16::from(m.response_code), m.truncation) {
            (0, true) => "NOERROR, TC",
            (0, false) if r.message.answers.is_empty() => "NODATA",
            (0, false) => "NOERROR",
            (1, _) => "FORMERR",
            (4, _) => "NOTIMP",
            (5, _) => "REFUSED",
            (16, _) => "BADVERS",
            (code, _) => panic!("{}: rcode {code}", r.what),
        };
        eprintln!(
            "| {} | {} | {rcode} | {} | {} | {:.2} | {} |",
            r.what,
            r.qtype,
            r.query,
            r.answer,
            r.factor(),
            r.class.name()
        );
        if ["v2 report", "_policy"].contains(&r.what)
            && [RecordType::TXT, RecordType::ANY].contains(&r.qtype)
        {
            verified(&check, r);
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_class_measured_and_classed() {
    if !dig_installed() {
        return;
    }
    let smallest = measure_zone("Smallest policy (1 release)", "versions = [\"2.3.1\"]\n").await;
    let small = measure_zone("Test policy (5 releases, 1 advisory)", RELEASES).await;
    let realistic = measure_zone(
        "Realistic policy (100 releases, 20 advisories)",
        &realistic_releases(),
    )
    .await;

    let zones = [
        ("smallest policy", &smallest),
        ("test policy", &small),
        ("realistic policy", &realistic),
    ];
    for (label, rows) in zones {
        let row = |what: &str, qtype: RecordType| {
            rows.iter()
                .find(|r| r.what == what && r.qtype == qtype)
                .unwrap()
        };
        // The policy without a report is the best amplifier vcheckd has:
        // in the large class whatever the policy's size.
        for qtype in [RecordType::TXT, RecordType::ANY] {
            assert_eq!(row("_policy", qtype).class, Class::Large, "{label}");
        }
        // So is a big record of the zone file at a short name.
        assert_eq!(row("zone-file TXT", RecordType::TXT).class, Class::Large);
        // What stays in the normal class is small and amplifies little,
        // with room below the factor the large class starts at.
        for r in rows.iter().filter(|r| r.class == Class::Normal) {
            assert!(r.answer < LARGE_BYTES, "{label}: {} {}", r.what, r.qtype);
            assert!(
                r.factor() <= 2.5 && r.factor() < LARGE_FACTOR as f64,
                "{label}: {} {}: {:.2}",
                r.what,
                r.qtype,
                r.factor()
            );
        }
        // Errors never amplify by more than the OPT record's Extended DNS
        // Error; header-only errors not at all.
        for what in ["REFUSED", "BADVERS"] {
            let r = rows.iter().find(|r| r.what == what).unwrap();
            assert!(
                r.answer <= r.query + 6,
                "{what}: {} > {} + 6",
                r.answer,
                r.query
            );
        }
        for what in ["FORMERR", "NOTIMP"] {
            assert_eq!(rows.iter().find(|r| r.what == what).unwrap().answer, 12);
        }
        // Answers over the UDP cap are cut to the question and OPT: no
        // bigger than their query.
        let tc = row("over 1232: TC", RecordType::TXT);
        assert!(tc.message.metadata.truncation && tc.answer <= tc.query);
        // ANY is answered with one record (RFC 8482), so it is never a
        // better amplifier than asking for that record's type.
        for (what, one) in [
            ("apex", RecordType::SOA),
            ("v2 report", RecordType::TXT),
            ("_policy", RecordType::TXT),
        ] {
            let any = row(what, RecordType::ANY);
            assert_eq!(any.message.answers.len(), 1, "ANY at {what}");
            assert_eq!(any.message.answers[0].record_type(), one, "ANY at {what}");
            assert_eq!(any.answer, row(what, one).answer, "ANY at {what}");
        }
        // Nothing is sent over UDP past the cap.
        assert!(rows.iter().all(|r| r.answer <= 1232));
    }
    // With a realistic policy, a report's answer is large too.
    let report = realistic
        .iter()
        .find(|r| r.what == "v2 report" && r.qtype == RecordType::TXT)
        .unwrap();
    assert_eq!(report.class, Class::Large, "{} bytes", report.answer);

    // The worst a forged source gets toward one victim prefix (/24 or /56)
    // with the default limits: `rrl_large_rate` of the largest large answer
    // and the rest of `rrl_rate` in the largest normal one (slips add one
    // truncated answer, no bigger than its query, per two queries over).
    // vcheckd's own answers: the test zone's big TXT is the operator's to
    // add or not. With one budget for every answer, as before classes, it
    // was `rrl_rate` of the largest answer.
    eprintln!(
        "\n| policy | largest large answer | largest normal answer | worst case, bytes/s per prefix | one budget of {RATE} |"
    );
    eprintln!("|---|---|---|---:|---:|");
    let row = |label: &str, large: u64, normal: u64, why: String| {
        let worst = LARGE_RATE * large + (RATE - LARGE_RATE) * normal;
        let before = RATE * large.max(normal);
        eprintln!(
            "| {label} | {why} | {worst} ({:.2} Mbit/s) | {before} ({:.2} Mbit/s) |",
            worst as f64 * 8e-6,
            before as f64 * 8e-6,
        );
        assert!(worst < before, "{label}: {worst} >= {before}");
    };
    for (label, rows) in zones {
        let own: Vec<&Row> = rows.iter().filter(|r| r.what != "zone-file TXT").collect();
        let largest = |class| {
            // The first of equals: TXT before ANY.
            own.iter()
                .rev()
                .filter(|r| r.class == class)
                .max_by_key(|r| r.answer)
                .expect("an answer of every class")
        };
        let (large, normal) = (largest(Class::Large), largest(Class::Normal));
        row(
            label,
            large.answer as u64,
            normal.answer as u64,
            format!(
                "{} B ({} {}) | {} B ({} {})",
                large.answer, large.what, large.qtype, normal.answer, normal.what, normal.qtype
            ),
        );
    }
    // Whatever the zone holds: large answers stop at the UDP cap, normal
    // ones below LARGE_BYTES.
    row(
        "any",
        1232,
        LARGE_BYTES as u64 - 1,
        format!(
            "1232 B (the cap) | {} B (the class's bound)",
            LARGE_BYTES - 1
        ),
    );
}
