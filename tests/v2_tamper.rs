//! A tampering proxy on loopback between `vcheckd check` (protocol v2) and
//! a real server: it flips bytes in the answer, replays an older policy,
//! serves an expired one (to a client whose clock runs behind, too), and
//! serves the policy of a rotated key. The client refuses each with its own
//! exit code and message; an honest answer passes; a same-serial content
//! change never reaches it (the server refuses to sign one).

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
use vcheckd::daemon::RunningServer;
use vcheckd::protocol::v2::effort::Effort;
use vcheckd::protocol::v2::policy::{from_txt_strings, to_txt_strings};
use vcheckd::protocol::v2::{PrivateKey, PrivateKeyring, ServedPolicy};
use vcheckd::protocol::{KeyId, ZoneName};

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
    check_with(setup, via, version, "v2.public", &[])
}

/// `vcheckd check` with the public key file `key` and, if given, a
/// `faketime` offset for the client's clock (e.g. "-3d").
fn check_with(setup: &Setup, via: SocketAddr, version: &str, key: &str, clock: &[&str]) -> Run {
    let mut cmd = if clock.is_empty() {
        Command::new(BIN)
    } else {
        let mut c = Command::new("faketime");
        c.args(clock).arg(BIN);
        c
    };
    let out = cmd
        .args([
            "check",
            "--server",
            &via.to_string(),
            "--zone",
            ZONE,
            "--key",
        ])
        .arg(setup.dir.path().join(key))
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
        .arg(setup.dir.path().join("client-state.json"))
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

fn now() -> u64 {
    u64::try_from(vcheckd::clock::unix_now()).unwrap()
}

/// The zone's key (id 2) and a second one (id 3) for a rotation; clients
/// carry `v2.public` (id 2) or `v3.public` (id 3).
fn setup() -> (Setup, PrivateKey) {
    let setup = Setup::new();
    let private = PrivateKey::generate(KeyId(2), now());
    let next = PrivateKey::generate(KeyId(3), now());
    for (k, name) in [(&private, "v2"), (&next, "v3")] {
        write_private(
            &setup.dir.path().join(format!("{name}.private")),
            &k.to_token(),
        );
        std::fs::write(
            setup.dir.path().join(format!("{name}.public")),
            k.public().to_token(),
        )
        .unwrap();
    }
    let config = config_text(RELEASES).replace(
        "keys = [\"test.key\"]",
        "keys = [\"test.key\"]\nprivate_keys = [\"v2.private\", \"v3.private\"]",
    );
    std::fs::write(setup.config_path(), config).unwrap();
    (setup, private)
}

/// A policy of the test zone signed with `key` as a server would have
/// signed it at `at` (valid a day), as TXT strings.
fn signed_at(key: &PrivateKey, serial: u32, at: u64) -> Vec<Vec<u8>> {
    let zone = ZoneName::new(ZONE).unwrap();
    let ring = PrivateKeyring::new(std::slice::from_ref(key), at).unwrap();
    let served = ServedPolicy::sign(
        &zone,
        &ring,
        releases(),
        None,
        serial,
        Effort(4),
        at,
        86_400,
    )
    .unwrap();
    to_txt_strings(served.wire(key.id).unwrap())
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
    let (setup, _) = setup();
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
async fn expired_older_and_rotated_policies() {
    let (setup, private) = setup();
    let (server, addr) = start(&setup).await;
    let proxy = proxy(addr).await;
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["queries"], 2, "the first check fetches the policy: {v}");
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["queries"], 1,
        "later checks seal under the kept policy: {v}"
    );

    // Expired: validly signed three days ago, valid for one.
    *proxy.mode.lock().unwrap() =
        Mode::Replace(signed_at(&private, 2026112301, now() - 3 * 86_400));
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    assert_eq!(run.code, 10, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    // A failed check is stale, never the old status as if current.
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["status_name"], "stale", "{v}");
    assert_eq!(v["last_known"]["status_name"], "up-to-date", "{v}");

    // The same, to a client whose clock runs three days behind (so that
    // the old policy looks current to it): it has seen a newer issued time,
    // and its now is never earlier than that.
    if faketime_works() {
        let run = tokio::task::block_in_place(|| {
            check_with(&setup, proxy.addr, "2.4.1", "v2.public", &["-f", "-3d"])
        });
        assert_eq!(run.code, 10, "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("expired"), "{}", run.stderr);
    }

    // Older: signed five hours ago (not expired), after the client saw the
    // current hour's: a replay.
    *proxy.mode.lock().unwrap() = Mode::Replace(signed_at(&private, 2026112301, now() - 5 * 3_600));
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    assert_eq!(run.code, 11, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("replayed"), "{}", run.stderr);

    // A rotation: software shipped with key 3 starts its own state (the
    // serial may be lower than key 2's); key 2's policy is refused by it.
    *proxy.mode.lock().unwrap() = Mode::Honest;
    let run =
        tokio::task::block_in_place(|| check_with(&setup, proxy.addr, "2.4.1", "v3.public", &[]));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["policy"]["key_id"], 3, "{v}");
    *proxy.mode.lock().unwrap() = Mode::Replace(signed_at(&private, 2026112399, now()));
    let run =
        tokio::task::block_in_place(|| check_with(&setup, proxy.addr, "2.4.1", "v3.public", &[]));
    assert_eq!(run.code, 9, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("key id"), "{}", run.stderr);

    // A same-serial content change: the operator edits the releases and
    // forgets the serial; the reload is refused, clients keep seeing the
    // signed content.
    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(
        setup.config_path(),
        text.replacen("\"2.4.1\"]", "\"2.4.1\", \"2.5.0\"]", 1),
    )
    .unwrap();
    let err = server
        .reload(&Config::load(&setup.config_path()).unwrap())
        .unwrap_err();
    assert!(format!("{err:#}").contains("raise the serial"), "{err:#}");
    *proxy.mode.lock().unwrap() = Mode::Honest;
    let run = tokio::task::block_in_place(|| check(&setup, proxy.addr, "2.4.1"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["status_name"], "up-to-date", "{v}");
    server.shutdown().await.unwrap();
}

/// Whether `faketime` (Debian's package of libfaketime) runs here; in CI
/// (VCHECKD_INTEROP_REQUIRE=1) it must.
fn faketime_works() -> bool {
    let ok = Command::new("faketime")
        .args(["-f", "-3d", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("VCHECKD_INTEROP_REQUIRE").as_deref() != Ok("1"),
            "faketime is missing and VCHECKD_INTEROP_REQUIRE=1: install faketime"
        );
        eprintln!(
            "the clock-behind case: skipped, faketime is not installed (apt-get install faketime)"
        );
    }
    ok
}
