//! How much bigger an answer is than its query (the amplification a forged
//! source gets), over real UDP, for ANY, SOA, NS and TXT at the apex and at
//! a report name. ANY is answered with one record (RFC 8482), so it is
//! never a better amplifier than asking for that record's type.
//!
//! The bounds, with EDNS (an attacker's best case, 1232-byte answers allowed):
//! - at a report name the query carries the payload (169 bytes here) and
//!   the answer adds one TXT hint after a compressed owner name: at most
//!   1.5 times the query (1.37 measured; NSD answering a long name with one
//!   short record is in the same class);
//! - at the apex the query is short (43 bytes) and the SOA alone makes a
//!   94-byte answer (2.19); ANY may not exceed the largest single type
//!   there, and stays under 3x. (Before RFC 8482 answers, ANY at the apex
//!   of this one-NS zone gave 108 bytes, 2.51x, and grew with every record.)

mod common;

use std::net::SocketAddr;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncodable;
use vcheckd::config::Config;
use vcheckd::dns::server::RunningServer;

/// (query bytes, answer bytes, answer)
async fn exchange(addr: SocketAddr, name: &str, qtype: RecordType) -> (usize, usize, Message) {
    let request = query(name, qtype, Some(1232)).to_bytes().unwrap();
    let answer = udp_raw(addr, &request).await.expect("an answer");
    let message = Message::from_vec(&answer).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::NoError);
    assert!(!message.metadata.truncation);
    (request.len(), answer.len(), message)
}

#[tokio::test]
async fn any_amplifies_no_more_than_one_record() {
    let setup = Setup::new();
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    let report = setup.name("cluster-1", "node-1", "2.3.1");

    for (label, name, bound) in [("apex", "vc.example.com.", 3.0), ("report", &*report, 1.5)] {
        let mut ratios = Vec::new();
        for qtype in [
            RecordType::SOA,
            RecordType::NS,
            RecordType::TXT,
            RecordType::ANY,
        ] {
            let (q, a, m) = exchange(addr, name, qtype).await;
            let ratio = a as f64 / q as f64;
            eprintln!(
                "{label:6} {:4}: query {q:3} B, answer {a:4} B, ratio {ratio:.2}, {} answer records",
                qtype.to_string(),
                m.answers.len()
            );
            ratios.push((qtype, ratio, m));
        }
        let (_, any_ratio, any) = ratios.pop().unwrap();
        assert_eq!(any.answers.len(), 1, "ANY at the {label}: {any:?}");
        let want = if label == "apex" {
            RecordType::SOA
        } else {
            RecordType::TXT
        };
        assert_eq!(any.answers[0].record_type(), want, "{label}");
        let largest = ratios.iter().map(|(_, r, _)| *r).fold(0.0, f64::max);
        assert!(
            any_ratio <= largest,
            "ANY ({any_ratio:.2}) amplifies more than any one type ({largest:.2}) at the {label}"
        );
        assert!(any_ratio <= bound, "{label}: {any_ratio:.2} > {bound}");
    }
    server.shutdown().await.unwrap();
}
