//! Two name servers, one record, end to end: a primary and a secondary
//! `vcheckd serve` on loopback (real processes, real UDP and TCP sockets,
//! ports chosen by the kernel), reports sent to both by DNS, the primary
//! killed with SIGKILL while the secondary is under load and restarted;
//! then the primary's database holds every report sent, each once. And a
//! secondary with the wrong key is refused and counted on both sides.
//!
//! Waits poll with generous deadlines; nothing here asserts a speed.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{query, spawn_serve, write_private, ZONE};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncodable;
use vcheckd::client::v1::Check;
use vcheckd::client::v2::CheckV2;
use vcheckd::client::Reporter;
use vcheckd::protocol::v2::effort::Effort;
use vcheckd::protocol::v2::{Epoch, PrivateKey, PrivateKeyring};
use vcheckd::protocol::{AnonId, Key, KeyId, ZoneName};

/// How long any wait may take before the test gives up (a wait, never a
/// measure: CI machines are slow and shared).
const PATIENCE: Duration = Duration::from_secs(180);

struct Server {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    dns: SocketAddr,
    http: SocketAddr,
    forward: Option<SocketAddr>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let (child, lines) =
            spawn_serve(dir, &["--config", "config.toml", "--listen", "127.0.0.1:0"]);
        let mut s = Server {
            child,
            lines,
            log: Vec::new(),
            dns: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            forward: None,
        };
        let line = s.wait_log("listening on UDP and TCP");
        s.dns = field(&line, "addr=").parse().unwrap();
        let line = s.wait_log("/metrics and /api/v1 on http://");
        let rest = line.split("http://").nth(1).unwrap();
        s.http = rest.split('/').next().unwrap().parse().unwrap();
        if std::fs::read_to_string(dir.join("config.toml"))
            .unwrap()
            .contains("[forward_listen]")
        {
            let line = s.wait_log("taking forwarded reports from secondaries");
            s.forward = Some(field(&line, "addr=").parse().unwrap());
        }
        s
    }

    fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.log.push(line);
            }
            if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log.join("\n")
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.log.push(line);
            }
        }
    }

    fn metrics(&self) -> String {
        http_get(self.http, "/metrics")
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let rest = line
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {line:?}"));
    rest.split_whitespace().next().unwrap().trim_matches('"')
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.contains(" 200 "), "{head}");
    body.to_string()
}

/// The value of one sample (`family{labels}` exactly as exposed), 0 if
/// absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Waits (at most [`PATIENCE`]) until `ok` holds; false if it never did.
fn wait_until(mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ok()
}

/// The zone's keys, shared by both servers, and the forwarding key.
struct Keys {
    v1: Key,
    v2: PrivateKey,
    forward: [u8; 32],
}

impl Keys {
    fn new() -> Keys {
        let now = u64::try_from(vcheckd::clock::unix_now()).unwrap();
        Keys {
            v1: Key::generate(KeyId(3)),
            v2: PrivateKey::generate(KeyId(5), now),
            forward: rand_key(),
        }
    }

    /// `n` distinct reports named `prefix-i` (v1 and v2 alternately), as
    /// (query name, report id).
    fn reports(&self, prefix: &str, n: usize) -> Vec<(String, [u8; 12])> {
        let now = u64::try_from(vcheckd::clock::unix_now()).unwrap();
        let seal = PrivateKeyring::new(std::slice::from_ref(&self.v2), now)
            .unwrap()
            .seal_key(self.v2.id, Epoch::at(now))
            .unwrap();
        let zone = ZoneName::new(ZONE).unwrap();
        let version = semver::Version::parse("2.4.0").unwrap();
        (0..n)
            .map(|i| {
                let reporter = Reporter {
                    cluster_id: format!("{prefix}-cluster-{i}"),
                    node_id: "node".into(),
                };
                if i % 2 == 0 {
                    let p = Check {
                        zone: zone.clone(),
                        key: self.v1.clone(),
                        version: version.clone(),
                        reporter: Some(reporter),
                    }
                    .prepare()
                    .unwrap();
                    (p.name, p.id.0)
                } else {
                    // Ids as a client keeps them (deriving them takes an
                    // Argon2id per cluster): distinct per report.
                    let mut cluster = [0u8; 16];
                    cluster[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    let tag = &prefix.as_bytes()[..prefix.len().min(8)];
                    cluster[8..8 + tag.len()].copy_from_slice(tag);
                    let ids = Some((AnonId(cluster), AnonId([7; 16])));
                    let p = CheckV2::with_ids(zone.clone(), self.v2.public(), version.clone(), ids)
                        .prepare(&seal, Effort(4))
                        .unwrap();
                    (p.name, p.id.0)
                }
            })
            .collect()
    }
}

fn rand_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).unwrap();
    k
}

/// A server's folder: zone file, keys, forwarding key, and `config.toml`
/// with `extra` appended (its `[forward]` or `[forward_listen]`).
fn server_dir(keys: &Keys, forward_key: &[u8; 32], extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("zone.txt"), common::zone_file()).unwrap();
    write_private(&d.join("test.key"), &keys.v1.to_token());
    write_private(&d.join("v2.private"), &keys.v2.to_token());
    write_key(&d.join("ns2.forward.key"), forward_key);
    write_config(d, extra);
    dir
}

fn write_config(dir: &Path, extra: &str) {
    let text = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
database = "vcheckd.sqlite"
rrl_rate = 0

[http]
listen = "127.0.0.1:0"

{extra}

[[zone]]
name = "{ZONE}"
file = "zone.txt"
keys = ["test.key"]
private_keys = ["v2.private"]

[zone.releases]
{}
"#,
        common::RELEASES
    );
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

/// Writes a forwarding key file as `vcheckd keygen --forward` does: 32
/// bytes, mode 0600.
fn write_key(path: &Path, key: &[u8; 32]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(key).unwrap();
}

fn primary_section(port: u16) -> String {
    format!(
        "[forward_listen]\nlisten = \"127.0.0.1:{port}\"\n\n[[forward_listen.secondary]]\nname = \"ns2\"\nkey = \"ns2.forward.key\"\n"
    )
}

fn secondary_section(primary: SocketAddr) -> String {
    format!(
        "[forward]\nprimary = \"{primary}\"\nname = \"ns2\"\nkey = \"ns2.forward.key\"\nbatch = 200\nmax_backoff_secs = 1\n"
    )
}

/// Sends every name to `addr` over UDP, one at a time with retries, and
/// returns how many got a NOERROR answer with data; `answered` counts
/// them as they come.
fn send(addr: SocketAddr, reports: &[(String, [u8; 12])], answered: &AtomicUsize) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut ok = 0;
    for (i, (name, _)) in reports.iter().enumerate() {
        let mut q = query(name, RecordType::TXT, Some(1232));
        q.metadata.id = i as u16;
        let bytes = q.to_bytes().unwrap();
        'tries: for _ in 0..10 {
            socket.send_to(&bytes, addr).unwrap();
            while let Ok((len, _)) = socket.recv_from(&mut buf) {
                let Ok(m) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if m.metadata.id != i as u16 {
                    continue;
                }
                if m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty() {
                    ok += 1;
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                break 'tries;
            }
        }
    }
    ok
}

fn db_ids(db: &Path) -> (HashSet<[u8; 12]>, u64, i64) {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return (HashSet::new(), 0, 0);
    };
    let ids = conn
        .prepare("SELECT report_id FROM reports")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_default()
        .into_iter()
        .map(|id| id.try_into().expect("12-byte report id"))
        .collect::<HashSet<_>>();
    let rows = conn
        .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get::<_, i64>(0))
        .unwrap_or(0) as u64;
    let stored = conn
        .query_row(
            "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'reports.stored'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0);
    (ids, rows, stored)
}

#[test]
fn the_primary_killed_and_restarted_under_load_records_every_report_once() {
    let keys = Keys::new();
    let fkey = keys.forward;
    let p_dir = server_dir(&keys, &fkey, &primary_section(0));
    let primary = Server::start(p_dir.path());
    let forward_addr = primary.forward.unwrap();
    // Restarts listen where the secondary was told to connect.
    write_config(p_dir.path(), &primary_section(forward_addr.port()));
    let s_dir = server_dir(&keys, &fkey, &secondary_section(forward_addr));
    let secondary = Server::start(s_dir.path());
    let db = p_dir.path().join("vcheckd.sqlite");

    let started = Instant::now();
    let to_primary_1 = keys.reports("p1", 300);
    let to_secondary_1 = keys.reports("s1", 2000);
    let to_secondary_down = keys.reports("s2", 300);
    let to_primary_2 = keys.reports("p2", 300);
    let to_secondary_3 = keys.reports("s3", 300);
    println!("reports made in {:?}", started.elapsed());

    // Straight to the primary, then in its database before the kill (a
    // kill may lose the last group commit of what it answered itself:
    // tests/durability.rs; this test is about what the secondary sends).
    let n = AtomicUsize::new(0);
    assert_eq!(send(primary.dns, &to_primary_1, &n), to_primary_1.len());
    let want: HashSet<[u8; 12]> = to_primary_1.iter().map(|r| r.1).collect();
    assert!(
        wait_until(|| db_ids(&db).0.is_superset(&want)),
        "the primary's own reports never reached its database"
    );

    // The secondary under load; the primary killed half way through.
    let answered = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let load = scope.spawn(|| send(secondary.dns, &to_secondary_1, &answered));
        assert!(wait_until(
            || answered.load(Ordering::Relaxed) * 2 >= to_secondary_1.len()
        ));
        primary.kill();
        let ok = load.join().unwrap();
        assert_eq!(
            ok,
            to_secondary_1.len(),
            "the secondary answers every report"
        );
    });

    println!("kill under load done at {:?}", started.elapsed());
    // The primary away: the secondary still answers, holds the backlog,
    // and says so.
    let n = AtomicUsize::new(0);
    assert_eq!(
        send(secondary.dns, &to_secondary_down, &n),
        to_secondary_down.len(),
        "the secondary answers while the primary is away"
    );
    assert!(
        wait_until(|| {
            let m = secondary.metrics();
            sample(&m, "vcheckd_forward_lag_records") >= 1.0
                && sample(&m, "vcheckd_forward_lag_seconds") >= 1.0
                && sample(&m, "vcheckd_forward_failures_total{reason=\"connect\"}") >= 1.0
        }),
        "the secondary's /metrics does not show the backlog and the failures:\n{}",
        secondary.metrics()
    );

    println!("primary away done at {:?}", started.elapsed());
    // Back: the backlog drains, and both take new reports.
    let primary = Server::start(p_dir.path());
    assert_eq!(primary.forward, Some(forward_addr));
    let n = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let a = scope.spawn(|| send(primary.dns, &to_primary_2, &n));
        let b = scope.spawn(|| send(secondary.dns, &to_secondary_3, &n));
        assert_eq!(a.join().unwrap(), to_primary_2.len());
        assert_eq!(b.join().unwrap(), to_secondary_3.len());
    });

    let truth: HashSet<[u8; 12]> = [
        &to_primary_1,
        &to_secondary_1,
        &to_secondary_down,
        &to_primary_2,
        &to_secondary_3,
    ]
    .iter()
    .flat_map(|v| v.iter().map(|r| r.1))
    .collect();
    assert_eq!(truth.len(), 3200, "distinct reports");
    println!("all sent at {:?}", started.elapsed());
    let caught_up = wait_until(|| {
        db_ids(&db).0.len() >= truth.len()
            && sample(&secondary.metrics(), "vcheckd_forward_lag_records") == 0.0
    });
    let (ids, rows, stored) = db_ids(&db);
    let missing = truth.difference(&ids).count();
    assert!(caught_up, "{missing} reports never reached the primary");
    assert_eq!(
        ids, truth,
        "the primary's database holds exactly the reports sent"
    );
    assert_eq!(rows, truth.len() as u64, "each report once");
    assert_eq!(stored, truth.len() as i64, "counted once");

    // The secondary recorded nothing itself: the primary's is the record.
    assert_eq!(db_ids(&s_dir.path().join("vcheckd.sqlite")).1, 0);
    let m = primary.metrics();
    assert!(
        sample(&m, "vcheckd_forward_received_total{server=\"ns2\"}") >= 1.0,
        "{m}"
    );
    let m = secondary.metrics();
    assert!(
        sample(&m, "vcheckd_forward_last_success_timestamp_seconds") > 0.0,
        "{m}"
    );
    assert!(sample(&m, "vcheckd_forwarded_total") >= 2600.0, "{m}");
    println!("whole test {:?}", started.elapsed());
}

#[test]
fn a_secondary_with_the_wrong_key_is_refused_and_counted() {
    let keys = Keys::new();
    let p_dir = server_dir(&keys, &keys.forward, &primary_section(0));
    let primary = Server::start(p_dir.path());
    let forged = rand_key();
    let s_dir = server_dir(&keys, &forged, &secondary_section(primary.forward.unwrap()));
    let secondary = Server::start(s_dir.path());
    let reports = keys.reports("forged", 20);
    let n = AtomicUsize::new(0);
    assert_eq!(send(secondary.dns, &reports, &n), reports.len());
    assert!(
        wait_until(|| {
            sample(
                &primary.metrics(),
                "vcheckd_forward_refused_total{reason=\"bad_proof\"}",
            ) >= 1.0
                && sample(
                    &secondary.metrics(),
                    "vcheckd_forward_failures_total{reason=\"refused\"}",
                ) >= 1.0
        }),
        "primary:\n{}\nsecondary:\n{}",
        primary.metrics(),
        secondary.metrics()
    );
    // Nothing crossed; the secondary keeps its backlog for when the key
    // is fixed.
    assert_eq!(db_ids(&p_dir.path().join("vcheckd.sqlite")).1, 0);
    assert_eq!(
        sample(
            &primary.metrics(),
            "vcheckd_forward_received_total{server=\"ns2\"}"
        ),
        0.0
    );
    assert!(wait_until(|| sample(
        &secondary.metrics(),
        "vcheckd_forward_lag_records"
    ) >= reports.len() as f64));
}
