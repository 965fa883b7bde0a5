//! Shared set-up for the integration tests: a real configuration in a temp
//! folder, a real key, a real SQLite file, and raw DNS exchanges over real
//! sockets for the cases a client library will not send.
#![allow(dead_code)] // each test binary uses a different part of this

pub mod fleet;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use vcheckd::client::v1::Check;
use vcheckd::client::Reporter;
use vcheckd::protocol::{Key, KeyId, ZoneName};

pub const ZONE: &str = "vc.example.com";

/// Starts `vcheckd serve ARGS` in `cwd`, with its log lines (stderr, plain
/// text) arriving on the channel as they are written.
pub fn spawn_serve(
    cwd: &Path,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    spawn_serve_logging(cwd, args, "info")
}

/// [`spawn_serve`] at the log level `level` (`RUST_LOG`).
pub fn spawn_serve_logging(
    cwd: &Path,
    args: &[&str],
    level: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vcheckd"))
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", level)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// A zone file with a TXT record too big for a 512-byte UDP answer and one
/// too big even for 1232 bytes, to exercise truncation.
pub fn zone_file() -> String {
    let chunk = "x".repeat(200);
    let big = vec![format!("\"{chunk}\""); 3].join(" ");
    let huge = vec![format!("\"{chunk}\""); 7].join(" ");
    format!(
        "$ORIGIN {ZONE}.\n$TTL 300\n\
         @ IN SOA ns1.{ZONE}. hostmaster.example.com. 2026112301 3600 600 1209600 60\n\
         @ IN NS ns1.{ZONE}.\n\
         ns1 IN A 127.0.0.1\n\
         big IN TXT {big}\n\
         huge IN TXT {huge}\n"
    )
}

pub fn config_text(releases: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
database = "vcheckd.sqlite"
journal_max_bytes = 268435456
# Load tests send from one loopback address; tests/rrl.rs turns it on.
rrl_rate = 0

[[zone]]
name = "{ZONE}"
file = "zone.txt"
keys = ["test.key"]
answer_ttl = 60

[zone.releases]
{releases}
"#
    )
}

pub const RELEASES: &str = r#"versions = ["2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["2.2"]
[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
"#;

/// A realistic release policy: 100 releases on 5 maintained lines (3.0 to
/// 3.4, 20 patch releases each), two end-of-life majors, and 20 advisories
/// each fixed on every maintained line.
pub fn realistic_releases() -> String {
    let versions: Vec<String> = (0..5)
        .flat_map(|minor| (0..20).map(move |patch| format!("\"3.{minor}.{patch}\"")))
        .collect();
    let mut releases = format!(
        "versions = [{}]\nend_of_life = [\"1\", \"2\"]\n",
        versions.join(", ")
    );
    for i in 0..20 {
        let fixed: Vec<String> = (0..5).map(|m| format!("\"3.{m}.{i}\"")).collect();
        releases.push_str(&format!(
            "[[zone.releases.advisory]]\nid = \"CVE-2026-{:05}\"\nfixed = [{}]\n",
            31_000 + i,
            fixed.join(", ")
        ));
    }
    releases
}

/// [`RELEASES`] as the server reads it.
pub fn releases() -> vcheckd::hint::Releases {
    let doc: toml::Table = toml::from_str(&format!("[zone.releases]\n{RELEASES}")).unwrap();
    let config: vcheckd::hint::ReleasesConfig = doc["zone"]["releases"].clone().try_into().unwrap();
    vcheckd::hint::Releases::try_from(&config).unwrap()
}

/// A temp folder holding config.toml, zone.txt, test.key; the database
/// (vcheckd.sqlite) appears there when the server starts.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub key: Key,
}

impl Setup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = Key::generate(KeyId(3));
        write_private(&dir.path().join("test.key"), &key.to_token());
        std::fs::write(dir.path().join("zone.txt"), zone_file()).unwrap();
        std::fs::write(dir.path().join("config.toml"), config_text(RELEASES)).unwrap();
        Setup { dir, key }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("vcheckd.sqlite")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("test.key")
    }

    pub fn check(&self, cluster: &str, node: &str, version: &str) -> Check {
        Check {
            zone: ZoneName::new(ZONE).unwrap(),
            key: self.key.clone(),
            version: semver::Version::parse(version).unwrap(),
            reporter: Some(Reporter {
                cluster_id: cluster.into(),
                node_id: node.into(),
            }),
        }
    }

    /// A fresh query name for a report.
    pub fn name(&self, cluster: &str, node: &str, version: &str) -> String {
        self.check(cluster, node, version).prepare().unwrap().name
    }
}

/// Gives the setup's zone a protocol v2 key (id 5) and `releases` as its
/// signed policy, v1 still accepted; returns the key.
pub fn add_v2(setup: &Setup, releases: &str) -> vcheckd::protocol::v2::PrivateKey {
    let now = u64::try_from(vcheckd::clock::unix_now()).unwrap();
    let private = vcheckd::protocol::v2::PrivateKey::generate(KeyId(5), now);
    write_private(&setup.dir.path().join("v2.private"), &private.to_token());
    let text = config_text(releases).replace(
        "keys = [\"test.key\"]",
        "keys = [\"test.key\"]\nprivate_keys = [\"v2.private\"]\naccept_v1 = true",
    );
    std::fs::write(setup.config_path(), text).unwrap();
    private
}

/// Writes a secret file as the server wants it: mode 0600 (it refuses key
/// files that group or others can read).
pub fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).unwrap();
    // The mode above applies to new files only.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Rows in the reports table: (version, duplicates, cluster is null).
pub fn rows(db: &Path) -> Vec<(String, i64, bool)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT version, duplicates, cluster IS NULL FROM reports ORDER BY received_at, report_id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Waits until the database at `db` holds at least `n` reports: an
/// answered report reaches SQLite through the journal, the opener and the
/// processor, which on a loaded machine can take seconds. A wait, not a
/// speed check: the deadline is only there so a lost report fails the test.
pub fn wait_for_rows(db: &Path, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let stored = db.exists().then(|| {
            rusqlite::Connection::open(db)
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM reports", [], |r| r.get::<_, i64>(0))
                })
                .unwrap_or(0)
        });
        if stored.unwrap_or(0) >= i64::try_from(n).unwrap() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} holds {stored:?} reports after two minutes, {n} expected",
            db.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn query(name: &str, qtype: RecordType, edns_size: Option<u16>) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns_size {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

pub async fn udp_raw(server: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(request, server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

pub async fn udp(server: SocketAddr, request: &Message) -> Message {
    let bytes = udp_raw(server, &request.to_bytes().unwrap())
        .await
        .expect("no UDP answer");
    Message::from_vec(&bytes).expect("answer parses")
}

pub async fn tcp_raw(server: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server).await.unwrap();
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    s.write_all(&framed).await.unwrap();
    let len = s.read_u16().await.unwrap();
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

pub async fn tcp(server: SocketAddr, request: &Message) -> Message {
    Message::from_vec(&tcp_raw(server, &request.to_bytes().unwrap()).await).unwrap()
}
