//! Durability of the answer path, end to end: real `vcheckd serve`
//! processes, real UDP sockets, real files and (as root) real tmpfs volumes.
//!
//! What is checked is the promise the journal makes: a report that was
//! answered is recorded (or, past `journal_max_bytes`, counted as dropped),
//! a crash loses at most the last group commit, a full disk never stops the
//! answers nor hangs a shutdown, and zones (products) are never merged.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{query, spawn_serve};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncodable;
use vcheckd::client::v1::Check;
use vcheckd::client::Reporter;
use vcheckd::protocol::{Key, KeyId, ZoneName};

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");

/// These tests run one at a time: they measure a loss window and fill
/// disks, and side by side on a small machine they would measure the
/// scheduler instead.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// A `vcheckd serve` process and its log.

/// A running `vcheckd serve`; killed if a test fails before stopping it.
struct Server {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    addr: SocketAddr,
    http: Option<SocketAddr>,
}

impl Server {
    /// Starts `serve --config CONFIG` on an ephemeral port and waits for the
    /// DNS address (and the HTTP one when the config has `[http]`).
    fn start(cwd: &Path, config: &Path) -> Server {
        let config = config.to_str().unwrap();
        let (child, lines) = spawn_serve(cwd, &["--config", config, "--listen", "127.0.0.1:0"]);
        let mut server = Server {
            child,
            lines,
            log: Vec::new(),
            addr: "0.0.0.0:0".parse().unwrap(),
            http: None,
        };
        let line = server
            .wait_log("listening on UDP and TCP", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("server did not listen:\n{}", server.log.join("\n")));
        server.addr = field(&line, "addr=").parse().unwrap();
        if std::fs::read_to_string(config).unwrap().contains("[http]") {
            let line = server
                .wait_log("/metrics and /api/v1 on http://", Duration::from_secs(10))
                .expect("no HTTP listener");
            let rest = line.split("http://").nth(1).unwrap();
            server.http = Some(rest.split('/').next().unwrap().parse().unwrap());
        }
        server
    }

    /// Takes the log lines written so far.
    fn pump(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// The first log line (already read or arriving within `wait`) that
    /// contains `needle`.
    fn wait_log(&mut self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            self.pump();
            if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) => self.log.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => return None, // the process is gone
            }
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit; `None` if it is still running at
    /// `wait`. The log is read to its end.
    fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // stderr closes with the process: read what is left.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.log.push(line);
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status and how long the exit took.
    fn stop(&mut self, wait: Duration) -> (ExitStatus, Duration) {
        let asked = Instant::now();
        self.signal("TERM");
        let status = self.wait_exit(wait).unwrap_or_else(|| {
            panic!(
                "no exit within {wait:?} of SIGTERM:\n{}",
                self.log.join("\n")
            )
        });
        (status, asked.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value after `key` in a log line (`addr=127.0.0.1:5300`).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let rest = line
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {line:?}"));
    rest.split_whitespace().next().unwrap().trim_matches('"')
}

// ---------------------------------------------------------------------------
// Configuration: any number of zones, each with its own zone file and key.

struct Zone {
    name: &'static str,
    key: Key,
    releases: &'static str,
}

impl Zone {
    fn new(name: &'static str, key_id: u8, releases: &'static str) -> Zone {
        Zone {
            name,
            key: Key::generate(KeyId(key_id)),
            releases,
        }
    }

    /// `n` distinct reports (distinct clusters, so distinct rows), as
    /// (query name, report id).
    fn reports(&self, prefix: &str, n: usize, version: &str) -> Vec<(String, [u8; 12])> {
        (0..n)
            .map(|i| {
                let p = Check {
                    zone: ZoneName::new(self.name).unwrap(),
                    key: self.key.clone(),
                    version: semver::Version::parse(version).unwrap(),
                    reporter: Some(Reporter {
                        cluster_id: format!("{prefix}-cluster-{i}"),
                        node_id: "node".into(),
                    }),
                }
                .prepare()
                .unwrap();
                (p.name, p.id.0)
            })
            .collect()
    }
}

const RELEASES: &str = r#"versions = ["2.3.0", "2.4.0", "2.4.1"]"#;

/// Writes zone files, keys and `config.toml` into `dir`. `server_extra`
/// adds lines to `[server]` (paths are absolute or relative to `dir`).
fn write_config(
    dir: &Path,
    database: &Path,
    server_extra: &str,
    zones: &[&Zone],
    http: bool,
) -> PathBuf {
    // Rate limiting off: the load comes from one loopback address.
    let mut text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ndatabase = {:?}\nrrl_rate = 0\n{server_extra}\n",
        database.to_str().unwrap()
    );
    if http {
        text.push_str("[http]\nlisten = \"127.0.0.1:0\"\n\n");
    }
    for z in zones {
        let zone_file = format!("{}.zone", z.name);
        let key_file = format!("{}.key", z.name);
        std::fs::write(
            dir.join(&zone_file),
            format!(
                "$ORIGIN {n}.\n$TTL 300\n\
                 @ IN SOA ns1.{n}. hostmaster.{n}. 2026112301 3600 600 1209600 60\n\
                 @ IN NS ns1.{n}.\nns1 IN A 127.0.0.1\n",
                n = z.name
            ),
        )
        .unwrap();
        common::write_private(&dir.join(&key_file), &z.key.to_token());
        text.push_str(&format!(
            "[[zone]]\nname = \"{}\"\nfile = \"{zone_file}\"\nkeys = [\"{key_file}\"]\n\n[zone.releases]\n{}\n\n",
            z.name, z.releases
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------
// Load: lock-step batches over UDP, each answer time-stamped.

/// One answered report: its index in the names sent, and when the answer
/// arrived.
#[derive(Clone, Copy)]
struct Answer {
    index: usize,
    at: Instant,
}

/// Sends `names` from `threads` sockets in lock-step batches of `batch`
/// (send a batch, collect its answers, then the next), so that at most
/// `threads * batch` queries are in flight and no client receive buffer
/// overflows: an answer the server sent is an answer counted. A thread
/// stops at the end of its share, or after a batch with no answer at all
/// (the server is gone). `answered` counts answers as they come.
fn send_load(
    addr: SocketAddr,
    names: &[String],
    threads: usize,
    batch: usize,
    answered: &AtomicUsize,
) -> Vec<Answer> {
    let share = names.len().div_ceil(threads);
    assert!(
        share <= usize::from(u16::MAX),
        "DNS ids index a thread's share"
    );
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .chunks(share)
            .enumerate()
            .map(|(t, chunk)| {
                scope.spawn(move || {
                    let base = t * share;
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    socket
                        .set_read_timeout(Some(Duration::from_millis(20)))
                        .unwrap();
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; 4096];
                    for (b, group) in chunk.chunks(batch).enumerate() {
                        let mut waiting: HashSet<u16> = HashSet::new();
                        for (i, name) in group.iter().enumerate() {
                            let id = (b * batch + i) as u16;
                            let mut q = query(name, RecordType::TXT, None);
                            q.metadata.id = id;
                            if socket.send_to(&q.to_bytes().unwrap(), addr).is_ok() {
                                waiting.insert(id);
                            }
                        }
                        let before = got.len();
                        let mut last_progress = Instant::now();
                        while !waiting.is_empty()
                            && last_progress.elapsed() < Duration::from_millis(500)
                        {
                            let Ok((len, _)) = socket.recv_from(&mut buf) else {
                                continue;
                            };
                            let Ok(m) = Message::from_vec(&buf[..len]) else {
                                continue;
                            };
                            if !waiting.remove(&m.metadata.id) {
                                continue; // a late answer from an earlier batch
                            }
                            last_progress = Instant::now();
                            if m.metadata.response_code == ResponseCode::NoError
                                && !m.answers.is_empty()
                            {
                                got.push(Answer {
                                    index: base + usize::from(m.metadata.id),
                                    at: Instant::now(),
                                });
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if got.len() == before {
                            break; // nothing answered: the server is gone
                        }
                    }
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// One query at a time: the response code `name` got (one retry after a
/// 2 s silence), `None` if no answer came.
fn ask_rcode(addr: SocketAddr, name: &str) -> Option<ResponseCode> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let q = query(name, RecordType::TXT, None).to_bytes().unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        socket.send_to(&q, addr).unwrap();
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            return Some(
                Message::from_vec(&buf[..len])
                    .unwrap()
                    .metadata
                    .response_code,
            );
        }
    }
    None
}

/// `dig`'s status line for `name` (a real DNS client), or `None` when dig
/// is not installed (outside CI: the caller skips; in CI it fails).
fn dig_status(addr: SocketAddr, name: &str) -> Option<String> {
    let out = match Command::new("dig")
        .args([
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            name,
            "TXT",
            "+tries=1",
            "+time=3",
        ])
        .output()
    {
        Ok(o) => o,
        Err(e) if std::env::var_os("VCHECKD_INTEROP_REQUIRE").is_none() => {
            println!("skipped the dig check: cannot run dig ({e}); apt-get install dnsutils");
            return None;
        }
        Err(e) => panic!("dig is required in CI: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("none")
        .to_string();
    Some(status)
}

/// One query at a time, for "every query is answered": true if `name` got
/// a NOERROR answer with records (one retry after a 2 s silence).
fn ask(addr: SocketAddr, name: &str) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let q = query(name, RecordType::TXT, None).to_bytes().unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        socket.send_to(&q, addr).unwrap();
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let m = Message::from_vec(&buf[..len]).unwrap();
            return m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty();
        }
    }
    false
}

// ---------------------------------------------------------------------------
// The database, read as an operator would.

struct DbState {
    integrity: String,
    rows: u64,
    distinct_ids: u64,
    /// Sum of the `reports.stored` counters, all days.
    stored_counter: i64,
    /// Sum of the `reports.dropped` counters, all days.
    dropped_counter: i64,
    ids: HashSet<[u8; 12]>,
}

fn db_state(path: &Path) -> DbState {
    let conn = rusqlite::Connection::open(path).unwrap();
    let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let ids = conn
        .prepare("SELECT report_id FROM reports")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|id| id.unwrap().try_into().expect("12-byte report id"))
        .collect();
    DbState {
        integrity,
        rows: one("SELECT COUNT(*) FROM reports") as u64,
        distinct_ids: one("SELECT COUNT(DISTINCT report_id) FROM reports") as u64,
        stored_counter: one(
            "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'reports.stored'",
        ),
        dropped_counter: one(
            "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'reports.dropped'",
        ),
        ids,
    }
}

/// Rows in `reports` now (0 while the database cannot be read).
fn row_count(path: &Path) -> u64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row("SELECT COUNT(*) FROM reports", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as u64)
}

/// Waits until `reports` holds at least `want` rows (true), or `max` passes.
fn wait_rows(path: &Path, want: u64, max: Duration) -> bool {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if row_count(path) >= want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    row_count(path) >= want
}

/// Waits until the row count has not moved for `quiet` (at most `max`).
fn wait_rows_settle(path: &Path, quiet: Duration, max: Duration) -> u64 {
    let deadline = Instant::now() + max;
    let mut last = row_count(path);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = row_count(path);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}

/// Whole records in the raw lanes' segments (`dir/lanes/*/`), read from
/// their headers (`[u32 LE len][u32 LE crc][payload]`) up to the first
/// torn one.
fn journal_records(dir: &Path) -> usize {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("lanes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|lane| {
            std::fs::read_dir(lane)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect::<Vec<_>>()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let mut n = 0;
    for seg in segments {
        let bytes = std::fs::read(seg).unwrap();
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if len == 0 || at + 8 + len > bytes.len() {
                break;
            }
            at += 8 + len;
            n += 1;
        }
    }
    n
}

// ---------------------------------------------------------------------------
// Small volumes (root only).

/// A tmpfs mounted for one test; unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(path.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs, or says why the test cannot run: outside CI a test that
/// needs root says "skipped" and passes; in CI (which runs as root) it fails.
fn tmpfs_or_skip(path: &Path, size: &str, test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(path, size) {
        Ok(t) => Some(t),
        Err(e) if std::env::var_os("CI").is_none() => {
            println!("skipped: {test}: cannot mount a tmpfs ({e}); run as root");
            None
        }
        Err(e) => panic!("{test}: cannot mount a tmpfs in CI: {e}"),
    }
}

/// Fills the volume holding `path` with a file of zeros until the disk
/// refuses; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut written = 0u64;
    while let Ok(n) = f.write(&chunk) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = f.sync_all();
    written
}

// ---------------------------------------------------------------------------
// HTTP and the CLI.

/// GET `path` over HTTP/1.0; the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_string()
}

/// Samples of one metric family from a Prometheus exposition: labels and
/// value.
fn samples(text: &str, family: &str) -> Vec<(HashMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Some((labels, value.trim().parse().unwrap()))
        })
        .collect()
}

fn vcheckd(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------------------

/// kill -9 in the middle of a load, then a restart: the database is sound,
/// holds each report once, and lost only what was answered during the
/// last group commit before the kill.
#[test]
fn kill_9_under_load_loses_at_most_the_last_group_commit() {
    let _serial = one_at_a_time();
    // The loss bound asserted. A record becomes durable at the group commit
    // after its answer left: within `journal_commit_ms` (2 ms) plus one
    // write and fdatasync, plus the time the commit thread waits for a CPU.
    // Measured here (debug build, 2 shared cores, load average about 5):
    // often under 5 ms, but often 100-140 ms too, when the fdatasync of the
    // growing segment waits for the filesystem's journal commit, which first
    // writes SQLite's dirty pages on the same disk. So the bound is
    // time-based and generous, for CI: every lost report was answered within
    // the last 500 ms before the kill (or after it), and no more were lost
    // than were answered in that window. The exact, timing-free check is the
    // other one: every record the journal holds after the kill is a row.
    const WINDOW: Duration = Duration::from_millis(500);
    const REPORTS: usize = 16_000;
    const KILL_AFTER: usize = 12_000;

    let dir = tempfile::tempdir().unwrap();
    let zone = Zone::new("vc.example.com", 3, RELEASES);
    let db = dir.path().join("vcheckd.sqlite");
    let config = write_config(dir.path(), &db, "journal_commit_ms = 2", &[&zone], false);
    let reports = zone.reports("kill", REPORTS, "2.4.0");
    let names: Vec<String> = reports.iter().map(|(n, _)| n.clone()).collect();

    let mut server = Server::start(dir.path(), &config);
    let addr = server.addr;
    let answered = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let (answers, kill_at) = std::thread::scope(|scope| {
        let load = scope.spawn(|| send_load(addr, &names, 2, 32, &answered));
        // Mid-load: a few seconds into it, with a quarter still to send.
        let deadline = Instant::now() + Duration::from_secs(120);
        while answered.load(Ordering::Relaxed) < KILL_AFTER {
            assert!(Instant::now() < deadline, "the load did not get half way");
            assert!(!load.is_finished(), "the load ended before the kill");
            std::thread::sleep(Duration::from_millis(1));
        }
        let kill_at = Instant::now();
        server.child.kill().unwrap(); // SIGKILL
        killed.store(true, Ordering::Relaxed);
        (load.join().unwrap(), kill_at)
    });
    assert!(killed.load(Ordering::Relaxed));
    let status = server.child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
    drop(server);
    let journaled = journal_records(&dir.path().join("journal"));

    // Restart: the journal's unprocessed records go into the database.
    let mut server = Server::start(dir.path(), &config);
    let backlog = server
        .wait_log(
            "taking the journal's unprocessed reports",
            Duration::from_secs(2),
        )
        .map_or(0, |l| field(&l, "reports=").parse::<u64>().unwrap());
    // Every record the raw lanes held at the kill, through the opener and
    // the processor.
    assert!(
        wait_rows(&db, journaled as u64, Duration::from_secs(180)),
        "the restarted server did not store the {journaled} journaled reports:\n{}",
        server.log.join("\n")
    );
    let settled = wait_rows_settle(&db, Duration::from_millis(1500), Duration::from_secs(120));
    let (status, _) = server.stop(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(
        server
            .wait_log("every report is in the database", Duration::ZERO)
            .is_some(),
        "the restarted server did not drain the journal:\n{}",
        server.log.join("\n")
    );

    let state = db_state(&db);
    assert_eq!(state.integrity, "ok");
    assert_eq!(state.rows, settled, "rows grew after they had settled");
    assert_eq!(state.distinct_ids, state.rows, "a report id stored twice");
    assert_eq!(
        state.stored_counter, state.rows as i64,
        "reports.stored != rows"
    );
    // The restart resumed exactly after the last commit: each record that
    // was durable in the journal at the kill is one row, none missing.
    assert_eq!(
        state.rows, journaled as u64,
        "rows after the restart != records the journal held after the kill"
    );

    let sent: HashMap<[u8; 12], usize> = reports
        .iter()
        .enumerate()
        .map(|(i, (_, id))| (*id, i))
        .collect();
    let answered_ix: HashSet<usize> = answers.iter().map(|a| a.index).collect();
    assert_eq!(answered_ix.len(), answers.len(), "an answer counted twice");
    // Every row is a report that was sent; a row without an answer can only
    // be a query in flight at the kill (journaled, then killed before its
    // answer left), and at most 2 threads x 32 were in flight.
    let mut stored_unanswered = 0;
    for id in &state.ids {
        let i = sent.get(id).expect("a row that no query carried");
        if !answered_ix.contains(i) {
            stored_unanswered += 1;
        }
    }
    assert!(
        stored_unanswered <= 64,
        "{stored_unanswered} rows never answered"
    );
    let stored_ix: HashSet<usize> = state.ids.iter().map(|id| sent[id]).collect();
    let lost: Vec<&Answer> = answers
        .iter()
        .filter(|a| !stored_ix.contains(&a.index))
        .collect();
    let recent = answers.iter().filter(|a| a.at + WINDOW >= kill_at).count();
    let earliest_lost = lost
        .iter()
        .map(|a| kill_at.saturating_duration_since(a.at))
        .max();
    println!("kill -9: {journaled} whole records in the journal after the kill");
    println!(
        "kill -9: {} answered, {} rows ({} of them unanswered, in flight), {} replayed from \
         the journal at restart; lost {} answered reports (bound: {recent} answered in the last \
         {WINDOW:?} before the kill or after it); earliest lost answer {:?} before the kill",
        answers.len(),
        state.rows,
        stored_unanswered,
        backlog,
        lost.len(),
        earliest_lost
    );
    assert!(state.rows as usize <= answers.len() + stored_unanswered);
    assert!(
        lost.len() <= recent,
        "lost {} answered reports, more than the {recent} answered within {WINDOW:?} of the kill",
        lost.len()
    );
    assert!(
        lost.iter().all(|a| a.at + WINDOW >= kill_at),
        "a report answered more than {WINDOW:?} before the kill was lost ({earliest_lost:?})"
    );
}

/// SQLite cannot write (its volume is full) while the journal can: SIGTERM
/// still exits 0 within `shutdown_timeout_secs`, says how many reports stay
/// in the journal, and the next start stores every one of them.
#[test]
fn sigterm_with_a_full_database_volume_keeps_every_report_for_the_next_start() {
    let _serial = one_at_a_time();
    const TEST: &str = "sigterm_with_a_full_database_volume";
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = tmpfs_or_skip(&dir.path().join("dbvol"), "4m", TEST) else {
        return;
    };
    let zone = Zone::new("vc.example.com", 3, RELEASES);
    let db = volume.0.join("vcheckd.sqlite");
    // The journal on the ordinary disk, so that only SQLite is refused.
    let config = write_config(
        dir.path(),
        &db,
        "journal_dir = \"journal\"\nshutdown_timeout_secs = 3",
        &[&zone],
        false,
    );
    let mut server = Server::start(dir.path(), &config);
    let filler = volume.0.join("filler");
    let filled = fill(&filler);

    // Reports in rounds until the processor says it cannot store them (the
    // write-ahead log may have room for a few batches first), then one more
    // round that is certainly only in the journal.
    let reports = zone.reports("full", 4_000, "2.4.0");
    let names: Vec<String> = reports.iter().map(|(n, _)| n.clone()).collect();
    let mut answers = Vec::new();
    let mut sent = 0;
    let counter = AtomicUsize::new(0);
    for round in names.chunks(500) {
        let base = sent;
        answers.extend(
            send_load(server.addr, round, 1, 50, &counter)
                .into_iter()
                .map(|a| base + a.index),
        );
        sent += round.len();
        if server
            .wait_log("cannot store reports", Duration::from_millis(500))
            .is_some()
            && sent < names.len()
        {
            let base = sent;
            let last = &names[sent..(sent + 500).min(names.len())];
            answers.extend(
                send_load(server.addr, last, 1, 50, &counter)
                    .into_iter()
                    .map(|a| base + a.index),
            );
            sent += last.len();
            break;
        }
    }
    assert!(
        server
            .wait_log("cannot store reports", Duration::ZERO)
            .is_some(),
        "SQLite never failed with {filled} filler bytes on its volume:\n{}",
        server.log.join("\n")
    );
    assert!(!answers.is_empty());

    // Stop: within the bound (3 s) plus a margin for process start-up and
    // teardown on a loaded machine.
    let (status, took) = server.stop(Duration::from_secs(30));
    println!(
        "full database volume: {} answered, SIGTERM exit after {took:?} (bound 3 s + 1.5 s margin)",
        answers.len()
    );
    assert!(status.success(), "{status:?}\n{}", server.log.join("\n"));
    assert!(
        took <= Duration::from_millis(4_500),
        "SIGTERM took {took:?}, bound is 3 s:\n{}",
        server.log.join("\n")
    );
    let line = server
        .wait_log("remain in the journal for the next start", Duration::ZERO)
        .unwrap_or_else(|| panic!("no count of reports left:\n{}", server.log.join("\n")));
    let remaining: u64 = field(&line, "reports=").parse().unwrap();
    println!("full database volume: the log says {remaining} reports remain in the journal");
    drop(server);

    std::fs::remove_file(&filler).unwrap();
    let stored_before = row_count(&db);
    assert!(remaining > 0);
    assert!(
        stored_before + remaining >= answers.len() as u64,
        "{stored_before} rows + {remaining} in the journal < {} answered",
        answers.len()
    );

    // With room again, the next start takes the journal in: nothing lost.
    let mut server = Server::start(dir.path(), &config);
    assert!(wait_rows(
        &db,
        answers.len() as u64,
        Duration::from_secs(120)
    ));
    let (status, _) = server.stop(Duration::from_secs(30));
    assert!(status.success());
    let state = db_state(&db);
    assert_eq!(state.integrity, "ok");
    assert_eq!(state.distinct_ids, state.rows);
    assert_eq!(state.stored_counter, state.rows as i64);
    let missing = answers
        .iter()
        .filter(|&&i| !state.ids.contains(&reports[i].1))
        .count();
    assert_eq!(missing, 0, "answered reports not stored after the restart");
    assert!(state.rows <= sent as u64);
}

/// Database and journal on one 2 MiB volume: the answers never stop while
/// it is full, recording resumes once it has room, and every answered
/// report is stored or counted as dropped.
#[test]
fn two_mib_volume_keeps_answering_and_recovers() {
    let _serial = one_at_a_time();
    const TEST: &str = "two_mib_volume_keeps_answering_and_recovers";
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = tmpfs_or_skip(&dir.path().join("vol"), "2m", TEST) else {
        return;
    };
    let zone = Zone::new("vc.example.com", 3, RELEASES);
    let db = volume.0.join("vcheckd.sqlite");
    // Journal beside the database (the default), both on the volume, with a
    // journal bound well below the volume, as the operator of a 2 MiB disk
    // sets it: the run goes past that bound several times over, so the
    // journal must give back what the processor has consumed.
    let config = write_config(
        dir.path(),
        &db,
        "journal_max_bytes = 262144",
        &[&zone],
        true,
    );
    let mut server = Server::start(dir.path(), &config);
    let http = server.http.unwrap();

    // Fill: rounds of reports until a write is refused (journal or SQLite)
    // or the journal says it is full.
    let reports = zone.reports("vol", 70_000, "2.4.0");
    let names: Vec<String> = reports.iter().map(|(n, _)| n.clone()).collect();
    let mut answered: Vec<usize> = Vec::new();
    let mut sent = 0;
    let counter = AtomicUsize::new(0);
    // Full: the journal itself is refused (out of space, or at its bound),
    // not only SQLite, whose write-ahead log may still have room to reuse.
    let full = |s: &mut Server| {
        ["cannot write the journal", "reports refused"]
            .iter()
            .any(|n| s.wait_log(n, Duration::ZERO).is_some())
    };
    while sent < 50_000 && !full(&mut server) {
        let round = &names[sent..sent + 1_000];
        let base = sent;
        answered.extend(
            send_load(server.addr, round, 2, 32, &counter)
                .into_iter()
                .map(|a| base + a.index),
        );
        sent += round.len();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        full(&mut server),
        "the 2 MiB volume never filled after {sent} reports"
    );
    let filled_at = sent;
    for line in server
        .log
        .iter()
        .filter(|l| l.contains("cannot") || l.contains("journal full"))
    {
        println!("2 MiB volume, log: {line}");
    }

    // Full: every query is still answered, SERVFAIL when its report
    // cannot be recorded (the resolver then asks another name server),
    // NOERROR only when it was taken.
    // (The journal frees room as the database takes reports in, until the
    // database's own writes fail too: go on until SERVFAIL comes.)
    let mut servfail = 0;
    let mut asked = 0;
    while asked < 300 || (servfail == 0 && asked < 8_000) {
        let i = sent + asked;
        match ask_rcode(server.addr, &names[i]) {
            Some(ResponseCode::NoError) => answered.push(i),
            Some(ResponseCode::ServFail) => servfail += 1,
            other => panic!("query {i} got {other:?} while the disk is full"),
        }
        asked += 1;
    }
    sent += asked;
    println!(
        "2 MiB volume: full after {filled_at} reports; {asked} more answered one by one while full, \
         {servfail} SERVFAIL"
    );
    assert!(servfail > 0, "no SERVFAIL while the journal's disk is full");
    // A real DNS client sees the same.
    let mut dig_servfail = false;
    for _ in 0..20 {
        let i = sent;
        sent += 1;
        match dig_status(server.addr, &names[i]).as_deref() {
            None => {
                dig_servfail = true;
                break;
            }
            Some("SERVFAIL") => {
                println!("2 MiB volume: dig while full: status SERVFAIL");
                dig_servfail = true;
                break;
            }
            Some("NOERROR") => answered.push(i),
            Some(other) => panic!("dig while full: status {other}"),
        }
    }
    assert!(
        dig_servfail,
        "dig never saw SERVFAIL while the disk is full"
    );

    // Room again: recording resumes and new reports are stored.
    volume.resize("64m");
    // Enough reports after the resize to pass the journal bound again.
    for round in names[sent..sent + 6_000].chunks(1_000) {
        let base = sent;
        answered.extend(
            send_load(server.addr, round, 2, 32, &counter)
                .into_iter()
                .map(|a| base + a.index),
        );
        sent += round.len();
        wait_rows_settle(&db, Duration::from_millis(500), Duration::from_secs(30));
    }
    let later: Vec<usize> = (sent..sent + 200).collect();
    for &i in &later {
        assert!(
            ask(server.addr, &names[i]),
            "query {i} unanswered after the resize"
        );
        answered.push(i);
    }
    sent += 200;
    let later_ids: HashSet<[u8; 12]> = later.iter().map(|&i| reports[i].1).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let recovered = loop {
        let state = db_state(&db);
        if later_ids.iter().all(|id| state.ids.contains(id)) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let metrics = http_get(http, "/metrics");
    let dropped_metric = samples(&metrics, "vcheckd_reports_dropped_total")
        .first()
        .map_or(0.0, |s| s.1) as u64;
    let (status, _) = server.stop(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");

    let state = db_state(&db);
    let stored_answered = answered
        .iter()
        .filter(|&&i| state.ids.contains(&reports[i].1))
        .count();
    let unstored = answered.len() - stored_answered;
    println!(
        "2 MiB volume: {} answered, {} rows, {unstored} answered and not stored, \
         {dropped_metric} dropped (metric), {} dropped (counter)",
        answered.len(),
        state.rows,
        state.dropped_counter
    );
    assert!(
        recovered,
        "reports answered after the volume grew were never stored:\n{}",
        server.log.join("\n")
    );
    assert_eq!(state.integrity, "ok");
    assert_eq!(state.distinct_ids, state.rows);
    assert_eq!(state.stored_counter, state.rows as i64);
    assert!(state.rows <= sent as u64);
    assert!(
        unstored as u64 <= dropped_metric,
        "{unstored} answered reports neither stored nor counted as dropped ({dropped_metric})"
    );
}

/// Two products on one server: the same version string has a different
/// status in each, and stats and metrics keep them apart.
#[test]
fn two_zones_are_never_merged() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // 2.4.0 is behind 2.4.1 in the first product, the latest in the second.
    let a = Zone::new("vc.example.com", 3, RELEASES);
    let b = Zone::new("vc.example.net", 4, r#"versions = ["2.3.0", "2.4.0"]"#);
    let db = dir.path().join("vcheckd.sqlite");
    let config = write_config(dir.path(), &db, "", &[&a, &b], true);
    let mut server = Server::start(dir.path(), &config);
    let mut reports = a.reports("a", 3, "2.4.0");
    reports.extend(b.reports("b", 5, "2.4.0"));
    for (name, _) in &reports {
        assert!(ask(server.addr, name));
    }
    assert!(wait_rows(&db, 8, Duration::from_secs(30)));
    let stats = |extra: &[&str]| -> Output {
        let db = db.to_str().unwrap();
        vcheckd(
            dir.path(),
            &[&["stats", "versions", "--db", db, "--json"], extra].concat(),
        )
    };
    let json = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{o:?}");
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // The open day's snapshot, which the figures read, is written when the
    // processor goes idle after the rows: wait for it (a wait with a
    // deadline, not a speed check).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = json(&stats(&[]));
        let nodes = |zone: &str| {
            (all.as_array().unwrap().iter())
                .find(|v| v["zone"] == zone)
                .map(|v| v["active_nodes"].clone())
        };
        if nodes("vc.example.com") == Some(3.into()) && nodes("vc.example.net") == Some(5.into()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the figures never showed every report: {all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The fleet gauges, first computed now that the rows are in.
    let metrics = http_get(server.http.unwrap(), "/metrics");
    let by_zone = |family: &str| -> HashMap<String, f64> {
        samples(&metrics, family)
            .into_iter()
            .map(|(l, v)| {
                let zone = l
                    .get("zone")
                    .cloned()
                    .unwrap_or_else(|| panic!("{family} sample without a zone label:\n{metrics}"));
                if let Some(version) = l.get("version") {
                    assert_eq!(version, "2.4.0");
                }
                (zone, v)
            })
            .collect()
    };
    let expect = HashMap::from([
        ("vc.example.com".to_string(), 3.0),
        ("vc.example.net".to_string(), 5.0),
    ]);
    assert_eq!(by_zone("vcheckd_active_nodes"), expect, "{metrics}");
    assert_eq!(by_zone("vcheckd_active_clusters"), expect, "{metrics}");
    assert_eq!(by_zone("vcheckd_active_clusters_all"), expect, "{metrics}");
    let (status, _) = server.stop(Duration::from_secs(30));
    assert!(status.success());

    let all = json(&stats(&[]));
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let get = |zone: &str| all.iter().find(|v| v["zone"] == zone).unwrap().clone();
    for (zone, n, status) in [("vc.example.com", 3, 2), ("vc.example.net", 5, 1)] {
        let v = get(zone);
        assert_eq!(v["active_clusters"], n, "{v}");
        assert_eq!(v["active_nodes"], n, "{v}");
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{v}");
        assert_eq!(rows[0]["version"], "2.4.0");
        assert_eq!(rows[0]["nodes"], n);
        assert_eq!(rows[0]["reports"], n);
        assert_eq!(rows[0]["status"], status, "{zone}: {v}");
    }

    // Zone names are normalised: letter case and the trailing dot.
    let upper = json(&stats(&["--zone", "VC.EXAMPLE.COM."]));
    let lower = json(&stats(&["--zone", "vc.example.com"]));
    assert_eq!(upper, lower);
    assert_eq!(upper, serde_json::Value::Array(vec![get("vc.example.com")]));

    let unknown = stats(&["--zone", "nope.example"]);
    assert!(!unknown.status.success(), "{unknown:?}");
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("vc.example.com") && err.contains("vc.example.net"),
        "the error does not list the zones: {err}"
    );
}
