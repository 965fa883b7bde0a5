//! Response rate limiting over real UDP sockets: a flood from one source
//! gets `rrl_rate` full answers a second, the rest half slipped (TC=1, no
//! records) and half dropped, while a source in another /24 is answered in
//! full; the counts show in `/metrics`.

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
use vcheckd::dns::server::RunningServer;

const RATE: u64 = 10;
/// Small enough that the answers fit the test socket's receive buffer.
const FLOOD: u64 = 200;

async fn start_limited() -> (Setup, RunningServer, SocketAddr) {
    let setup = Setup::new();
    let text = config_text(RELEASES).replace(
        "rrl_rate = 0\n",
        &format!("rrl_rate = {RATE}\nrrl_slip = 2\n"),
    ) + &http_section(10);
    std::fs::write(setup.config_path(), text).unwrap();
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    (setup, server, addr)
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
    let (_setup, server, addr) = start_limited().await;
    let metrics = server.metrics().clone();

    // One source: 127.0.0.1. Every query distinct by id.
    let flooder = bind_with_big_buffer("127.0.0.1:0".parse().unwrap());
    flooder.connect(addr).await.unwrap();
    let started = Instant::now();
    for id in 0..FLOOD {
        let mut q = query("vc.example.com.", RecordType::SOA, None);
        q.metadata.id = id as u16;
        flooder.send(&q.to_bytes().unwrap()).await.unwrap();
    }

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

    let answers = drain(&flooder).await;
    // Seconds the flood's answers can have spread over, each a fresh count.
    let windows = started.elapsed().as_secs() + 2;
    let mut ids = HashSet::new();
    let (mut full, mut slipped) = (0u64, 0u64);
    for a in &answers {
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
    let silent = FLOOD - full - slipped;
    eprintln!(
        "{FLOOD} queries at rate {RATE}: {full} answered, {slipped} slipped, {silent} dropped \
         (over {windows} one-second windows at most)"
    );
    assert!(
        (RATE..=RATE * windows).contains(&full),
        "{full} full answers"
    );
    // Slip 2: of the limited answers in each second, every second one
    // slips; each window can leave one more drop than slips.
    assert!(
        slipped <= silent && silent <= slipped + windows,
        "{slipped} slipped, {silent} dropped"
    );
    // The server counted the same (every query reached it on loopback).
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(metrics.rrl_slipped.load(Relaxed), slipped);
    assert_eq!(metrics.rrl_dropped.load(Relaxed), silent);

    let http = server.http_addr().unwrap();
    let text = get(http, "/metrics").await.body;
    for line in [
        format!("vcheckd_rrl_total{{action=\"slip\"}} {slipped}"),
        format!("vcheckd_rrl_total{{action=\"drop\"}} {silent}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
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
