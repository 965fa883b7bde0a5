//! Request bytes through the pure responder, as the UDP and TCP loops call
//! it, over the sample zone with a real key: it must never panic; when it
//! answers, the response must parse with hickory-proto, carry the request's
//! id with QR set, echo the question byte for byte, and fit the UDP limit.
//! An input whose question starts with the octet 0xfe gets a valid report
//! name spliced in there, so that the report path (decrypt, hint,
//! TXT/A/AAAA) is fuzzed too.
#![no_main]

use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use vcheckd::dns::{respond, Catalog, Outcome, Transport};
use vcheckd::protocol::name::query_name;
use vcheckd::protocol::{Identity, Key, Payload, ReportId, ZoneName};

#[path = "sample.rs"]
mod sample;
use sample::KEY;

const NOW: i64 = 1_800_000_000;

struct Setup {
    catalog: Catalog,
    /// A valid report's query name in wire form.
    report: Vec<u8>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let zone = format!(
            "{}big IN TXT \"{}\" \"{}\" \"{}\"\n",
            vcheckd::config::SAMPLE_ZONE,
            "x".repeat(250),
            "y".repeat(250),
            "z".repeat(250)
        );
        std::fs::write(dir.path().join("zone"), zone).expect("zone file");
        let config = sample::config(dir.path());
        let catalog = Catalog::build_stateless(&config, 0).expect("catalog");
        let key = Key::parse(KEY).expect("key");
        let zone = ZoneName::new("vc.example.com").expect("zone");
        let payload = Payload {
            timestamp: NOW as u64,
            identity: Identity::Withheld,
            version: semver::Version::new(2, 3, 1),
        };
        let name = query_name(&key, &zone, ReportId([9; 12]), &payload).expect("name");
        let mut report = Vec::new();
        for label in name.trim_end_matches('.').split('.') {
            report.push(label.len() as u8);
            report.extend_from_slice(label.as_bytes());
        }
        report.push(0);
        Setup { catalog, report }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    // Splice the valid report name in as the question, keeping the
    // fuzzer's header and whatever follows its first 5 bytes.
    let spliced;
    let request = if data.len() > 17 && data[12] == 0xfe {
        let mut r = data[..12].to_vec();
        r.extend_from_slice(&s.report);
        r.extend_from_slice(&data[13..]);
        spliced = r;
        &spliced[..]
    } else {
        data
    };
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        match respond(&s.catalog, request, NOW, transport, &mut out) {
            Outcome::Dropped => assert!(out.is_empty(), "dropped but wrote {out:02x?}"),
            Outcome::Answered(_) => {
                let m = Message::from_vec(&out)
                    .unwrap_or_else(|e| panic!("response does not parse: {e}: {out:02x?}"));
                assert_eq!(m.metadata.message_type, MessageType::Response);
                assert_eq!(out[..2], request[..2], "id");
                if transport == Transport::Udp {
                    assert!(out.len() <= 1232, "UDP response of {} octets", out.len());
                }
                if !m.queries.is_empty() {
                    let qlen = out.len().min(12 + 255 + 4);
                    let echoed = &out[12..qlen];
                    let name_end = echoed.iter().position(|b| *b == 0).expect("name end");
                    assert_eq!(
                        &echoed[..name_end + 5],
                        &request[12..12 + name_end + 5],
                        "question echoed"
                    );
                }
            }
        }
    }
});
