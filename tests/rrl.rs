//! Response rate limiting over real UDP sockets: a flood from one source
//! gets `rrl_rate` full answers a second, the rest half slipped (TC=1, no
//! records) and half dropped, while a source in another /24 is answered in
//! full; large answers (the policy at `_policy`) get their own smaller
//! budget inside the rate, while the prefix's normal answers still go out;
//! the counts show in `/metrics`, by class.

mod common;
mod http_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncodable;
use http_support::{get, http_section};
use tokio::net::UdpSocket;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::metrics::Metrics;
use vcheckd::protocol::{KeyId, ZoneName};

const RATE: u64 = 10;
/// Small enough that the answers fit the test socket's receive buffer.
const FLOOD: u64 = 200;

/// A server with a v2 zone (the test policy), the given limits and HTTP.
async fn start_limited(rate: u64, large_rate: u64) -> (Setup, RunningServer, SocketAddr) {
    let setup = Setup::new();
    add_v2(&setup, RELEASES);
    let text = std::fs::read_to_string(setup.config_path())
        .unwrap()
        .replace(
            "rrl_rate = 0\n",
            &format!("rrl_rate = {rate}\nrrl_large_rate = {large_rate}\nrrl_slip = 2\n"),
        )
        + &http_section(10);
    std::fs::write(setup.config_path(), text).unwrap();
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    (setup, server, addr)
}

/// Sends `n` queries for `name` from `socket`, every one distinct by id.
async fn send_flood(socket: &UdpSocket, name: &str, qtype: RecordType, n: u64) {
    for id in 0..n {
        let mut q = query(name, qtype, Some(1232));
        q.metadata.id = id as u16;
        socket.send(&q.to_bytes().unwrap()).await.unwrap();
    }
}

/// Full and slipped answers among `answers` (one per query, each with its
/// question; a full one has one record, a slipped one none).
fn tally(answers: &[Message]) -> (u64, u64) {
    let mut ids = HashSet::new();
    let (mut full, mut slipped) = (0u64, 0u64);
    for a in answers {
        assert!(ids.insert(a.metadata.id), "one answer per query");
        assert_eq!(a.queries.len(), 1, "the question is kept: {a:?}");
        if a.metadata.truncation {
            assert!(a.answers.is_empty() && a.authorities.is_empty(), "{a:?}");
            assert!(a.additionals.is_empty() && a.edns.is_none(), "{a:?}");
            slipped += 1;
        } else {
            assert_eq!(a.answers.len(), 1, "{a:?}");
            full += 1;
        }
    }
    (full, slipped)
}

/// Checks the answers to `sent` queries of one class against a budget of
/// `budget` a second, over the one-second windows they can have spread
/// over since `started` (each a fresh count); returns the limited ones as
/// (slipped, dropped).
fn within_budget(
    answers: &[Message],
    sent: u64,
    budget: u64,
    started: Instant,
    what: &str,
) -> (u64, u64) {
    let windows = started.elapsed().as_secs() + 2;
    let (full, slipped) = tally(answers);
    let silent = sent - full - slipped;
    eprintln!(
        "{sent} {what} queries at {budget} a second: {full} answered, {slipped} slipped, \
         {silent} dropped (over {windows} one-second windows at most)"
    );
    assert!(
        (budget.min(sent)..=budget * windows).contains(&full),
        "{full} full answers"
    );
    // Slip 2: of the limited answers in each second, every second one
    // slips; each window can leave one more drop than slips.
    assert!(
        slipped <= silent && silent <= slipped + windows,
        "{slipped} slipped, {silent} dropped"
    );
    (slipped, silent)
}

/// What the server counted as limited, for one class: (slipped, dropped).
fn limited(metrics: &Metrics, class: &str) -> (u64, u64) {
    let get = |action| {
        metrics
            .rrl()
            .iter()
            .find(|(a, c, _)| *a == action && *c == class)
            .map(|(_, _, v)| *v)
            .unwrap()
    };
    (get("slip"), get("drop"))
}

/// Asserts that `/metrics` shows the counts for `class`.
async fn assert_exported(server: &RunningServer, class: &str, (slipped, dropped): (u64, u64)) {
    let http = server.http_addr().unwrap();
    let text = get(http, "/metrics").await.body;
    for line in [
        format!("vcheckd_rrl_total{{action=\"slip\",class=\"{class}\"}} {slipped}"),
        format!("vcheckd_rrl_total{{action=\"drop\",class=\"{class}\"}} {dropped}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

/// Receives until the socket has been quiet for a while (a drain, not an
/// assertion on speed).
async fn drain(socket: &UdpSocket) -> Vec<Message> {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while let Ok(Ok(len)) =
        tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await
    {
        got.push(Message::from_vec(&buf[..len]).expect("answer parses"));
    }
    got
}

#[tokio::test]
async fn a_flood_from_one_prefix_is_limited_with_slip_and_others_are_not() {
    let (_setup, server, addr) = start_limited(RATE, RATE).await;
    let metrics = server.metrics().clone();

    // One source: 127.0.0.1.
    let flooder = bind_with_big_buffer("127.0.0.1:0".parse().unwrap());
    flooder.connect(addr).await.unwrap();
    let started = Instant::now();
    send_flood(&flooder, "vc.example.com.", RecordType::SOA, FLOOD).await;

    // Another /24 on loopback (127.0.0.0/8 is all local), asking while the
    // first is over its rate: every answer in full.
    let other = UdpSocket::bind("127.1.0.1:0").await.unwrap();
    other.connect(addr).await.unwrap();
    for id in 0..RATE / 2 {
        let mut q = query("vc.example.com.", RecordType::SOA, None);
        q.metadata.id = id as u16;
        other.send(&q.to_bytes().unwrap()).await.unwrap();
        let answer = drain_one(&other)
            .await
            .expect("the other prefix is answered");
        assert!(!answer.metadata.truncation, "{answer:?}");
        assert_eq!(answer.answers.len(), 1);
    }

    let limited_normal = within_budget(&drain(&flooder).await, FLOOD, RATE, started, "SOA");
    // The server counted the same (every query reached it on loopback),
    // all in the normal class: the apex SOA is small.
    assert_eq!(limited(&metrics, "normal"), limited_normal);
    assert_eq!(limited(&metrics, "large"), (0, 0));
    assert_exported(&server, "normal", limited_normal).await;
    assert_exported(&server, "large", (0, 0)).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn large_answers_have_their_own_smaller_budget_inside_the_rate() {
    const RATE: u64 = 60;
    const LARGE_RATE: u64 = 5;
    /// Under RATE, so that the large budget alone limits them.
    const LARGE_FLOOD: u64 = 40;
    /// What the rate leaves for normal answers.
    const NORMAL: u64 = RATE - LARGE_FLOOD;
    let (_setup, server, addr) = start_limited(RATE, LARGE_RATE).await;
    let metrics = server.metrics().clone();
    // The policy at `_policy`: 231 bytes for a 53-byte query, large by
    // its factor (tests/amplification.rs).
    let policy = vcheckd::client::v2::policy_name(&ZoneName::new(ZONE).unwrap(), KeyId(5));

    let flooder = bind_with_big_buffer("127.0.0.1:0".parse().unwrap());
    flooder.connect(addr).await.unwrap();
    let started = Instant::now();
    send_flood(&flooder, &policy, RecordType::TXT, LARGE_FLOOD).await;
    // The same /24 then asks for normal answers: the rest of the rate is
    // theirs, every one in full.
    let neighbour = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    neighbour.connect(addr).await.unwrap();
    send_flood(&neighbour, "vc.example.com.", RecordType::SOA, NORMAL).await;
    let normal = drain(&neighbour).await;
    assert_eq!(tally(&normal), (NORMAL, 0));

    let answers = drain(&flooder).await;
    let limited_large = within_budget(&answers, LARGE_FLOOD, LARGE_RATE, started, "_policy");
    assert_eq!(limited(&metrics, "large"), limited_large);
    assert_eq!(limited(&metrics, "normal"), (0, 0));
    assert_exported(&server, "large", limited_large).await;
    server.shutdown().await.unwrap();
}

/// A UDP socket that can hold every answer to the flood until read.
fn bind_with_big_buffer(addr: SocketAddr) -> UdpSocket {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    // Capped by net.core.rmem_max; the default is enough for FLOOD.
    let _ = socket.set_recv_buffer_size(1 << 20);
    socket.set_nonblocking(true).unwrap();
    socket.bind(&addr.into()).unwrap();
    UdpSocket::from_std(socket.into()).unwrap()
}

async fn drain_one(socket: &UdpSocket) -> Option<Message> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf)).await {
        Ok(Ok(len)) => Some(Message::from_vec(&buf[..len]).expect("answer parses")),
        _ => None,
    }
}
