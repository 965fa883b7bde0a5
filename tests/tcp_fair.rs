//! The per-source TCP connection cap, over real connections: one source
//! holding its whole cap of idle connections gets its next one closed at
//! once, and cannot keep another source from a prompt answer even when the
//! global cap is only one more than the per-source cap.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;

const PER_SOURCE: usize = 4;

async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// One query on an open connection; `None` if the server closed it.
async fn ask(stream: &mut TcpStream) -> Option<Message> {
    let request = query("vc.example.com.", RecordType::SOA, None)
        .to_bytes()
        .unwrap();
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    // A write to a connection the server already closed may fail or not;
    // the read says what happened.
    let _ = stream.write_all(&framed).await;
    // The limit turns a hang (the bug) into a failure; not a speed check.
    let len = tokio::time::timeout(Duration::from_secs(30), stream.read_u16())
        .await
        .expect("an answer or a close, not silence")
        .ok()?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

#[tokio::test]
async fn one_source_cannot_hold_every_tcp_slot() {
    let setup = Setup::new();
    let text = config_text(RELEASES).replace(
        "[server]\n",
        &format!(
            "[server]\nmax_tcp_connections = {}\nmax_tcp_connections_per_source = {PER_SOURCE}\n\
             tcp_idle_timeout_secs = 120\n",
            PER_SOURCE + 1
        ),
    );
    std::fs::write(setup.config_path(), text).unwrap();
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];

    // Source A fills its cap; each connection answered once (so accepted),
    // then left idle and open.
    let mut held = Vec::new();
    for _ in 0..PER_SOURCE {
        let mut s = connect_from("127.0.0.1", addr).await;
        assert!(ask(&mut s).await.is_some(), "within the cap");
        held.push(s);
    }
    // One more from A: closed at once, without an answer.
    let mut extra = connect_from("127.0.0.1", addr).await;
    assert!(ask(&mut extra).await.is_none(), "over the cap: closed");

    // Source B (another address) still gets the last global slot.
    let mut b = connect_from("127.0.1.2", addr).await;
    let answer = ask(&mut b).await.expect("another source is answered");
    assert_eq!(answer.answers.len(), 1);

    // A's held connections still work, and a closed one frees its place.
    assert!(ask(&mut held[0]).await.is_some());
    drop(b);
    drop(held.pop());
    let mut again = loop {
        // The server notices the close on its next read: retry until the
        // slot is given back (each try is closed at once until then).
        let mut s = connect_from("127.0.0.1", addr).await;
        if ask(&mut s).await.is_some() {
            break s;
        }
        tokio::task::yield_now().await;
    };
    assert!(ask(&mut again).await.is_some());
    use std::sync::atomic::Ordering::Relaxed;
    assert!(server.metrics().tcp_refused_per_source.load(Relaxed) >= 1);
    server.shutdown().await.unwrap();
}
