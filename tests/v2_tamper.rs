//! A tampering proxy on loopback between `vcheckd check` (protocol v2) and
//! a real server: it flips bytes in the answer, replays an older policy
//! and serves an expired one. The client refuses each with its own exit
//! code and message; an honest answer passes.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::RData;
use hickory_proto::serialize::binary::BinEncodable;
use tokio::net::UdpSocket;
use vcheckd::config::Config;
use vcheckd::dns::server::RunningServer;
use vcheckd::protocol::v2::policy::from_txt_strings;
use vcheckd::protocol::v2::PrivateKey;
use vcheckd::protocol::KeyId;

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");

/// What the proxy does to the policy TXT of each answer.
#[derive(Clone)]
enum Mode {
    Honest,
    /// Flip one bit at this byte of the policy's wire form.
    Flip(usize),
    /// Put these TXT strings (an earlier answer's) in place of the real ones.
    Replace(Vec<Vec<u8>>),
}

struct Proxy {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// The TXT strings of the last policy that passed through.
    last: Arc<Mutex<Option<Vec<Vec<u8>>>>>,
}

async fn proxy(upstream: SocketAddr) -> Proxy {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let mode = Arc::new(Mutex::new(Mode::Honest));
    let last = Arc::new(Mutex::new(None));
    let (m, l) = (mode.clone(), last.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((len, client)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Some(answer) = udp_raw(upstream, &buf[..len]).await else {
                continue;
            };
            let mut message = Message::from_vec(&answer).unwrap();
            let mode = m.lock().unwrap().clone();
            for record in &mut message.answers {
                let RData::TXT(txt) = &record.data else {
                    continue;
                };
                let mut strings: Vec<Vec<u8>> = txt.txt_data.iter().map(|s| s.to_vec()).collect();
                *l.lock().unwrap() = Some(strings.clone());
                match &mode {
                    Mode::Honest => {}
                    Mode::Flip(at) => {
                        // strings[0] is the marker; the wire form follows.
                        let (mut i, mut at) = (1, *at);
                        while at >= strings[i].len() {
                            at -= strings[i].len();
                            i += 1;
                        }
                        strings[i][at] ^= 0x10;
                    }
                    Mode::Replace(old) => strings = old.clone(),
                }
                record.data =
                    RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()));
            }
            let _ = socket.send_to(&message.to_bytes().unwrap(), client).await;
        }
    });
    Proxy { addr, mode, last }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(setup: &Setup, via: SocketAddr, version: &str) -> Run {
    let out = Command::new(BIN)
        .args([
            "check",
            "--server",
            &via.to_string(),
            "--zone",
            ZONE,
            "--key",
        ])
        .arg(setup.dir.path().join("v2.public"))
        .args([
            "--cluster-id",
            "c1",
            "--node-id",
            "n1",
            "--version",
            version,
            "--json",
        ])
        .args(["--timeout", "5", "--state"])
        .arg(setup.dir.path().join("policy-serials"))
        .env_remove("DISABLE_TELEMETRY")
        .env_remove("DISABLE_VERSION_CHECK")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn setup(validity_secs: u64) -> Setup {
    let setup = Setup::new();
    let private = PrivateKey::generate(KeyId(2));
    write_private(&setup.dir.path().join("v2.private"), &private.to_token());
    std::fs::write(
        setup.dir.path().join("v2.public"),
        private.public().to_token(),
    )
    .unwrap();
    let config = config_text(RELEASES).replace(
        "keys = [\"test.key\"]",
        &format!(
            "keys = [\"test.key\"]\nprivate_keys = [\"v2.private\"]\npolicy_validity_secs = {validity_secs}"
        ),
    );
    std::fs::write(setup.config_path(), config).unwrap();
    setup
}

async fn start(setup: &Setup) -> (RunningServer, SocketAddr) {
    let server = RunningServer::start(&Config::load(&setup.config_path()).unwrap())
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_refuses_altered_replayed_and_expired_policies() {
    let setup = setup(86_400);
    let (server, addr) = start(&setup).await;
    let proxy = proxy(addr).await;

    // Honest: the status computed from the verified policy.
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.3.1"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["status"], 2);
    assert_eq!(v["protocol"], 2);
    assert_eq!(v["policy"]["serial"], 2026112301);
    let old = proxy.last.lock().unwrap().clone().unwrap();
    let wire_len = from_txt_strings(&old).unwrap().len();

    // Altered: a flipped bit anywhere (header, releases, signature).
    for at in [1, 10, wire_len / 2, wire_len - 1] {
        *proxy.mode.lock().unwrap() = Mode::Flip(at);
        let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.3.1"));
        assert_eq!(run.code, 9, "byte {at}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("signature") || run.stderr.contains("key id"),
            "byte {at}: {}",
            run.stderr
        );
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(v["exit_code"], 9);
    }

    // Replayed: the operator raises the serial; after the client has seen
    // it, the old policy (validly signed, not expired) is a rollback.
    std::fs::write(
        setup.dir.path().join("zone.txt"),
        zone_file().replace("2026112301", "2026112302"),
    )
    .unwrap();
    server
        .reload(&Config::load(&setup.config_path()).unwrap())
        .unwrap();
    *proxy.mode.lock().unwrap() = Mode::Honest;
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.3.1"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    *proxy.mode.lock().unwrap() = Mode::Replace(old);
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.3.1"));
    assert_eq!(run.code, 11, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("replayed"), "{}", run.stderr);
    assert!(
        std::fs::read_to_string(setup.dir.path().join("policy-serials"))
            .unwrap()
            .contains("2026112302")
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_refuses_an_expired_policy() {
    // Policies valid for 3 s: the server signs a fresh one every second
    // (a seventh of the validity, at least a second).
    let setup = setup(3);
    let (server, addr) = start(&setup).await;
    let proxy = proxy(addr).await;
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let captured = proxy.last.lock().unwrap().clone().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(4_100)).await;
    // The server still answers fresh policies...
    let fresh = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    assert_eq!(fresh.code, 0, "{}{}", fresh.stdout, fresh.stderr);
    // ... and the captured one, served now, has expired.
    *proxy.mode.lock().unwrap() = Mode::Replace(captured);
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    assert_eq!(run.code, 10, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    server.shutdown().await.unwrap();
}
