//! The server, started in-process on an ephemeral port, queried over real
//! UDP and TCP sockets: answers, negative answers, EDNS, truncation, and the
//! report rows in the SQLite file.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use common::*;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::hint::{Hint, Status};

async fn start(setup: &Setup) -> (RunningServer, SocketAddr) {
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

async fn udp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let conn = UdpClientStream::builder(addr, TokioRuntimeProvider::default()).build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    client
}

async fn tcp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (future, sender) = TcpClientStream::new(addr, None, None, TokioRuntimeProvider::new());
    let (client, bg) = Client::<TokioRuntimeProvider>::new(future.await.unwrap(), sender);
    tokio::spawn(bg);
    client
}

fn txt_of(m: &Message) -> Hint {
    let RData::TXT(txt) = &m.answers[0].data else {
        panic!("not TXT: {m:?}")
    };
    Hint::parse_txt(&String::from_utf8(txt.txt_data.concat()).unwrap()).unwrap()
}

fn assert_nodata(m: &Message) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty(), "{m:?}");
    assert_eq!(m.authorities.len(), 1);
    let soa = &m.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert_eq!(soa.name, Name::from_ascii("vc.example.com.").unwrap());
    assert_eq!(soa.ttl, 60, "negative TTL is the SOA minimum");
}

#[tokio::test]
async fn txt_a_aaaa_answers_over_udp_and_tcp_and_one_row() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let name = Name::from_ascii(setup.name("cluster-1", "node-1", "2.3.1")).unwrap();

    let mut udp = udp_client(addr).await;
    let txt = udp
        .query(name.clone(), DNSClass::IN, RecordType::TXT)
        .await
        .unwrap();
    assert!(txt.metadata.authoritative);
    assert_eq!(txt.answers.len(), 1);
    assert_eq!(txt.answers[0].ttl, 60);
    let hint = txt_of(&txt);
    assert_eq!(hint.status, Status::UpgradeAvailable);
    assert_eq!(hint.latest.to_string(), "2.4.1");

    let a = udp
        .query(name.clone(), DNSClass::IN, RecordType::A)
        .await
        .unwrap();
    assert_eq!(
        a.answers[0].data,
        RData::A(Ipv4Addr::new(127, 2, 4, 1).into())
    );
    let aaaa = udp
        .query(name.clone(), DNSClass::IN, RecordType::AAAA)
        .await
        .unwrap();
    assert_eq!(
        aaaa.answers[0].data,
        RData::AAAA(Ipv6Addr::from_str("fd76:6364:2:2:4:1::").unwrap().into())
    );

    let mut tcp = tcp_client(addr).await;
    let over_tcp = tcp
        .query(name.clone(), DNSClass::IN, RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(txt_of(&over_tcp), hint);

    // Four deliveries of one report: taken once, three exact repeats
    // answered and not taken again.
    let repeats = server
        .metrics()
        .intake_repeats
        .load(std::sync::atomic::Ordering::Relaxed);
    server.shutdown().await.unwrap();
    assert_eq!(repeats, 3);
    assert_eq!(
        rows(&setup.db_path()),
        vec![("2.3.1".to_string(), 0, false)]
    );
}

#[tokio::test]
async fn mixed_case_name_is_echoed_and_answers_like_lower_case() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let lower = setup.name("c", "n", "2.3.0");
    // 0x20: every other letter upper-cased, zone included.
    let mixed: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let answer = udp(addr, &query(&mixed, RecordType::TXT, Some(1232))).await;
    let echoed = answer.queries[0].name().to_ascii();
    assert_eq!(echoed, mixed, "question must be echoed byte for byte");
    let hint = txt_of(&answer);
    assert_eq!(hint.status, Status::UpgradeRequired);
    assert_eq!(hint.message, "security fix CVE-2026-0001 in 2.3.1");
    server.shutdown().await.unwrap();
    assert_eq!(rows(&setup.db_path()).len(), 1);
}

#[tokio::test]
async fn partial_and_garbage_names_get_nodata_and_are_not_recorded() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let full = setup.name("c", "n", "2.4.1");
    // What a QNAME-minimising resolver asks first: one more label at a time.
    let labels: Vec<&str> = full.trim_end_matches('.').split('.').collect();
    let payload_labels = labels.len() - 3;
    assert!(payload_labels >= 2, "test needs a multi-label name");
    for keep in 1..payload_labels {
        let partial = labels[payload_labels - keep..].join(".") + ".";
        for qtype in [RecordType::A, RecordType::NS, RecordType::TXT] {
            assert_nodata(&udp(addr, &query(&partial, qtype, None)).await);
        }
    }
    for garbage in [
        "www.vc.example.com.",
        "n0t-base32-1089.vc.example.com.",
        "a.b.c.d.e.vc.example.com.",
        "x.ns1.vc.example.com.",
    ] {
        assert_nodata(&udp(addr, &query(garbage, RecordType::TXT, None)).await);
    }
    // A valid name, but a type with no synthesized answer: NODATA, yet recorded.
    assert_nodata(&udp(addr, &query(&full, RecordType::MX, None)).await);
    // A rejected name after the last report is in the database, right
    // before the shutdown: no batch follows it, yet the shutdown keeps its
    // count.
    let started = std::time::Instant::now();
    while server
        .metrics()
        .reports_stored
        .load(std::sync::atomic::Ordering::Relaxed)
        < 1
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_nodata(&udp(addr, &query("zz.vc.example.com.", RecordType::TXT, None)).await);
    server.shutdown().await.unwrap();
    assert_eq!(rows(&setup.db_path()).len(), 1);
    // The rejected names are counted, by reason, and kept apart from reports.
    use vcheckd::store::reader::StatsReader;
    let reader = vcheckd::store::reader::SqliteReader::open(&setup.db_path()).unwrap();
    let counters = reader
        .counters(vcheckd::clock::Day(0), vcheckd::clock::Day::today())
        .unwrap();
    let count = |prefix: &str| -> u64 {
        counters
            .iter()
            .filter(|((_, name), _)| name.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    let rejected = count("rejected.");
    assert_eq!(rejected as usize, (payload_labels - 1) * 3 + 5);
    assert_eq!(count("reports.accepted"), 1);
    // The QNAME-minimisation partials, www, the non-base32 label, x.ns1
    // and zz are all too short for any report; five labels are too many.
    assert_eq!(
        count("rejected.partial") as usize,
        (payload_labels - 1) * 3 + 4,
        "{counters:?}"
    );
    assert_eq!(count("rejected.label_count"), 1);
}

#[tokio::test]
async fn apex_and_fixed_names_come_from_the_zone_file() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let soa = udp(addr, &query("vc.example.com.", RecordType::SOA, None)).await;
    assert!(soa.metadata.authoritative);
    assert_eq!(soa.answers[0].record_type(), RecordType::SOA);
    let ns = udp(addr, &query("VC.Example.COM.", RecordType::NS, None)).await;
    assert_eq!(ns.answers[0].record_type(), RecordType::NS);
    let a = udp(addr, &query("ns1.vc.example.com.", RecordType::A, None)).await;
    assert_eq!(a.answers[0].data, RData::A(Ipv4Addr::LOCALHOST.into()));
    assert_nodata(&udp(addr, &query("ns1.vc.example.com.", RecordType::TXT, None)).await);
    assert_nodata(&udp(addr, &query("vc.example.com.", RecordType::TXT, None)).await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn outside_every_zone_is_refused() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    for name in ["example.com.", "other.test.", "xvc.example.com.", "."] {
        let m = udp(addr, &query(name, RecordType::A, None)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!m.metadata.authoritative);
    }
    // Class CH is not served either.
    let mut ch = query("vc.example.com.", RecordType::TXT, None);
    let mut q = ch.queries.pop().unwrap();
    q.set_query_class(DNSClass::CH);
    ch.add_query(q);
    assert_eq!(
        udp(addr, &ch).await.metadata.response_code,
        ResponseCode::Refused
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn edns_notimp_badvers_formerr() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let name = setup.name("c", "n", "2.4.1");

    // EDNS: OPT echoed, size capped at 1232; without OPT, none in the answer.
    let with = udp(addr, &query(&name, RecordType::TXT, Some(4096))).await;
    assert_eq!(with.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    let without = udp(addr, &query(&name, RecordType::TXT, None)).await;
    assert!(without.edns.is_none());

    // Unknown opcode.
    let mut m = query(&name, RecordType::TXT, None);
    m.metadata.op_code = OpCode::Unknown(14);
    let r = udp(addr, &m).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(r.metadata.message_type, MessageType::Response);

    // EDNS version 1.
    let mut m = query("vc.example.com.", RecordType::SOA, Some(1232));
    if let Some(e) = m.edns.as_mut() {
        e.set_version(1);
    }
    let r = udp(addr, &m).await;
    // 16 is BADVERS in an OPT answer (hickory names the shared code BADSIG).
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert_eq!(r.edns.as_ref().map(|e| e.version()), Some(0));

    // No question, and two questions.
    let mut none = query("vc.example.com.", RecordType::SOA, None);
    none.queries.clear();
    assert_eq!(
        udp(addr, &none).await.metadata.response_code,
        ResponseCode::FormErr
    );
    let mut two = query("vc.example.com.", RecordType::SOA, None);
    let q = two.queries[0].clone();
    two.add_query(q);
    assert_eq!(
        udp(addr, &two).await.metadata.response_code,
        ResponseCode::FormErr
    );

    // A header followed by garbage: FORMERR with the same id.
    let mut bytes = query("vc.example.com.", RecordType::SOA, None)
        .to_bytes()
        .unwrap();
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    bytes.truncate(12);
    bytes[5] = 1; // claims one question that is not there
    bytes.extend_from_slice(&[0xff, 0xff, 0xff]);
    let r = Message::from_vec(&udp_raw(addr, &bytes).await.unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(r.metadata.id, id);

    // Shorter than a header, or a response: no answer at all.
    assert!(udp_raw(addr, &[1, 2, 3]).await.is_none());
    let mut resp = query("vc.example.com.", RecordType::SOA, None);
    resp.metadata.message_type = MessageType::Response;
    assert!(udp_raw(addr, &resp.to_bytes().unwrap()).await.is_none());

    // The server still answers after all that.
    assert_eq!(
        txt_of(&udp(addr, &query(&name, RecordType::TXT, None)).await).status,
        Status::UpToDate
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn truncation_over_udp_and_full_answer_over_tcp() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    // ~620 bytes of TXT: too big for 512 (no EDNS, or a tiny EDNS size).
    for edns in [None, Some(100), Some(512)] {
        let r = udp(addr, &query("big.vc.example.com.", RecordType::TXT, edns)).await;
        assert!(r.metadata.truncation, "edns {edns:?}");
        assert!(r.answers.is_empty());
        assert_eq!(r.queries.len(), 1);
        assert_eq!(r.edns.is_some(), edns.is_some());
    }
    let r = udp(
        addr,
        &query("big.vc.example.com.", RecordType::TXT, Some(1232)),
    )
    .await;
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 1);
    // ~1420 bytes: over the 1232 cap whatever the client offers.
    let r = udp(
        addr,
        &query("huge.vc.example.com.", RecordType::TXT, Some(4096)),
    )
    .await;
    assert!(r.metadata.truncation);
    let r = tcp(addr, &query("huge.vc.example.com.", RecordType::TXT, None)).await;
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn anonymous_report_is_stored_without_identity() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let mut check = setup.check("c", "n", "2.4.0");
    check.reporter = None;
    let name = check.prepare().unwrap().name;
    let hint = txt_of(&udp(addr, &query(&name, RecordType::TXT, None)).await);
    assert_eq!(hint.status, Status::UpgradeRequired);
    server.shutdown().await.unwrap();
    assert_eq!(rows(&setup.db_path()), vec![("2.4.0".to_string(), 0, true)]);
}

#[tokio::test]
async fn wrong_key_or_zone_is_not_a_report() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let other = Setup::new(); // same key id, another secret
    let name = other.name("c", "n", "2.4.1");
    assert_nodata(&udp(addr, &query(&name, RecordType::TXT, None)).await);
    server.shutdown().await.unwrap();
    assert!(rows(&setup.db_path()).is_empty());
}

#[tokio::test]
async fn reload_swaps_releases_without_restart() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let ask = |name: String| async move {
        txt_of(&udp(addr, &query(&name, RecordType::TXT, None)).await)
    };
    assert_eq!(
        ask(setup.name("c", "n", "2.4.1")).await.status,
        Status::UpToDate
    );
    std::fs::write(
        setup.config_path(),
        config_text(r#"versions = ["2.4.1", "2.5.0"]"#),
    )
    .unwrap();
    let config = Config::load(&setup.config_path()).unwrap();
    server.reload(&config).unwrap();
    let hint = ask(setup.name("c", "n", "2.4.1")).await;
    assert_eq!(hint.status, Status::UpgradeAvailable);
    assert_eq!(hint.latest.to_string(), "2.5.0");
    // A broken config is refused and the old zones keep serving.
    std::fs::write(setup.config_path(), config_text(r#"versions = ["nope"]"#)).unwrap();
    let broken = Config::load(&setup.config_path()).unwrap();
    assert!(server.reload(&broken).is_err());
    assert_eq!(
        ask(setup.name("c", "n", "2.4.1")).await.latest.to_string(),
        "2.5.0"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn queued_reports_are_all_stored_on_shutdown() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    let names: Vec<String> = (0..300)
        .map(|i| setup.name(&format!("c{i}"), "n", "2.4.1"))
        .collect();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for name in &names {
        socket
            .send_to(
                &query(name, RecordType::TXT, None).to_bytes().unwrap(),
                addr,
            )
            .await
            .unwrap();
    }
    // Collect the answers: each answered report has been queued.
    let mut buf = vec![0u8; 2048];
    let mut answered = 0;
    while answered < names.len() {
        match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.recv_from(&mut buf),
        )
        .await
        {
            Ok(Ok(_)) => answered += 1,
            _ => break, // a datagram dropped on a loaded machine
        }
    }
    assert!(answered > 0);
    server.shutdown().await.unwrap();
    let stored = rows(&setup.db_path()).len();
    assert!(
        stored >= answered && stored <= names.len(),
        "{stored} rows, {answered} answers"
    );
}

#[tokio::test]
async fn hints_longer_than_one_character_string_are_split() {
    let setup = Setup::new();
    let long_id = "ADVISORY-".repeat(40);
    std::fs::write(
        setup.config_path(),
        config_text(&format!(
            "versions = [\"2.4.0\", \"2.4.1\"]\n[[zone.releases.advisory]]\nid = \"{long_id}\"\nfixed = [\"2.4.1\"]\n"
        )),
    )
    .unwrap();
    let (server, addr) = start(&setup).await;
    let name = setup.name("c", "n", "2.4.0");
    for answer in [
        udp(addr, &query(&name, RecordType::TXT, Some(1232))).await,
        tcp(addr, &query(&name, RecordType::TXT, None)).await,
    ] {
        let RData::TXT(txt) = &answer.answers[0].data else {
            panic!("{answer:?}")
        };
        assert!(txt.txt_data.len() >= 2);
        assert!(txt.txt_data.iter().all(|s| s.len() <= 255));
        let hint = txt_of(&answer);
        assert_eq!(hint.message, format!("security fix {long_id} in 2.4.1"));
    }
    // The client library joins the strings too.
    let prepared = setup.check("c", "n", "2.4.0").prepare().unwrap();
    let hint = tokio::task::spawn_blocking(move || {
        vcheckd::client::v1::resolve_hint(&prepared, &[addr], std::time::Duration::from_secs(3))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(hint.status, Status::UpgradeRequired);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tcp_client_that_never_reads_does_not_block_shutdown() {
    let setup = Setup::new();
    let (server, addr) = start(&setup).await;
    // A small receive buffer, so the server's answers back up quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = query("vc.example.com.", RecordType::SOA, None)
        .to_bytes()
        .unwrap();
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    // Keep writing queries and never read an answer, until the server's
    // answers fill both socket buffers and it stops reading us.
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = written.clone();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while stream.write_all(&framed).await.is_ok() {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Wait until the server has stopped reading us: it is stuck writing.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = written.load(std::sync::atomic::Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    // A hang here is the bug; the limit only turns it into a failure.
    tokio::time::timeout(std::time::Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown waited for a client that does not read")
        .unwrap();
    writer.abort();
}
