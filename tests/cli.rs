//! The `vcheckd` binary as a user runs it: `serve` in a real process,
//! `check`, `encode`, `decode`, `keygen` and `stats` against it, signals.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");

/// A `vcheckd serve` process; killed if the test fails before stopping it.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The server's log lines after its address.
    log: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(cwd: &Path, args: &[&str]) -> Server {
        let args = [args, &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]].concat();
        let (child, rx) = spawn_serve(cwd, &args);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .expect("server did not report its address");
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.trim().trim_matches('"').parse().unwrap();
            }
        };
        Server {
            child,
            addr,
            log: rx,
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vcheckd(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd);
    for var in [
        "DISABLE_VERSION_CHECK",
        "DISABLE_TELEMETRY",
        "VCHECKD_ZONE",
        "VCHECKD_KEY",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn check_args<'a>(server: &'a str, key: &'a str, version: &'a str) -> Vec<&'a str> {
    vec![
        "check",
        "--server",
        server,
        "--zone",
        ZONE,
        "--key",
        key,
        "--cluster-id",
        "cluster-a",
        "--node-id",
        "node-1",
        "--version",
        version,
    ]
}

#[test]
fn dry_run_disabled_and_anonymous() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let key = setup.key_path();
    let key = key.to_str().unwrap();
    let server = Server::start(dir, &["--config", "config.toml"]);
    let addr = server.addr.to_string();

    // Dry run: the exact name and its decoded plaintext, nothing sent.
    let out = vcheckd(
        dir,
        &[
            &check_args(&addr, key, "2.3.0")[..],
            &["--dry-run", "--json"],
        ]
        .concat(),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = v["query_name"].as_str().unwrap();
    assert!(name.ends_with(".vc.example.com."));
    assert_eq!(v["version"], "2.3.0");
    assert_eq!(v["cluster"].as_str().unwrap().len(), 32);
    // decode agrees with the preview.
    let out = vcheckd(
        dir,
        &["decode", name, "--zone", ZONE, "--key", key, "--json"],
        &[],
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["cluster"], v["cluster"]);
    assert_eq!(d["report_id"], v["report_id"]);

    let out = vcheckd(
        dir,
        &check_args(&addr, key, "2.3.0"),
        &[("DISABLE_VERSION_CHECK", "1")],
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("disabled"));

    let mut anon = check_args(&addr, key, "2.4.0");
    anon.drain(7..11); // no --cluster-id / --node-id needed
    let out = vcheckd(dir, &anon, &[("DISABLE_TELEMETRY", "1")]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with("vcheckd: upgrade required"),
        "{}",
        stdout(&out)
    );
    // Without DISABLE_TELEMETRY the ids are required.
    let out = vcheckd(dir, &anon, &[]);
    assert_eq!(out.status.code(), Some(64), "usage");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster-id is required"));

    assert!(server.stop().success());
    // Only the two real checks reached the server; the anonymous one has no ids.
    let mut got = rows(&setup.db_path());
    got.sort();
    assert_eq!(got, vec![("2.4.0".to_string(), 0, true)]);
}

#[test]
fn failures_have_distinct_exit_codes() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let key = setup.key_path();
    let key = key.to_str().unwrap();
    let server = Server::start(dir, &["--config", "config.toml"]);
    let addr = server.addr.to_string();

    // A zone the server does not serve: REFUSED.
    let mut args = check_args(&addr, key, "2.4.1");
    args[4] = "other.example.org";
    let out = vcheckd(dir, &args, &[]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("answered REFUSED"),
        "{out:?}"
    );

    // A resolver that fails: SERVFAIL.
    let failing = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let failing_addr = failing.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((len, peer)) = failing.recv_from(&mut buf) {
            let mut m = hickory_proto::op::Message::from_vec(&buf[..len]).unwrap();
            m.metadata.message_type = hickory_proto::op::MessageType::Response;
            m.metadata.response_code = hickory_proto::op::ResponseCode::ServFail;
            let bytes = hickory_proto::serialize::binary::BinEncodable::to_bytes(&m).unwrap();
            let _ = failing.send_to(&bytes, peer);
        }
    });
    let out = vcheckd(dir, &check_args(&failing_addr, key, "2.4.1"), &[]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("answered SERVFAIL"), "{stderr}");

    // A server that never answers: timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let out = vcheckd(
        dir,
        &[
            &check_args(&silent_addr, key, "2.4.1")[..],
            &["--timeout", "0.5"],
        ]
        .concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // Bad input: a clear error, not a panic.
    let out = vcheckd(dir, &check_args(&addr, key, "two"), &[]);
    assert_eq!(out.status.code(), Some(64), "usage");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a semver version"));
    let out = vcheckd(dir, &check_args(&addr, "/nonexistent.key", "2.4.1"), &[]);
    assert_eq!(out.status.code(), Some(66), "no input");
    let out = vcheckd(
        dir,
        &["decode", "abc.vc.example.com", "--zone", ZONE, "--key", key],
        &[],
    );
    assert_eq!(out.status.code(), Some(65), "bad data");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not decode"));
    assert!(server.stop().success());
}

#[test]
fn sigterm_drains_and_sighup_reloads() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let server = Server::start(dir, &["--config", "config.toml"]);
    let addr = server.addr;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hint = |name: String| {
        rt.block_on(async {
            let m = udp(
                addr,
                &query(&name, hickory_proto::rr::RecordType::TXT, None),
            )
            .await;
            let hickory_proto::rr::RData::TXT(t) = &m.answers[0].data else {
                panic!()
            };
            vcheckd::hint::Hint::parse_txt(&String::from_utf8(t.txt_data.concat()).unwrap())
                .unwrap()
        })
    };
    assert_eq!(
        hint(setup.name("c", "n", "2.4.1")).latest.to_string(),
        "2.4.1"
    );
    std::fs::write(
        setup.config_path(),
        config_text(r#"versions = ["2.4.1", "2.6.0"]"#),
    )
    .unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hint(setup.name("c", "n", "2.4.1")).latest.to_string() != "2.6.0" {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Fire many reports without waiting, then SIGTERM: each answered report
    // must be in the database after a clean exit.
    let answered = rt.block_on(async {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let names: Vec<String> = (0..200)
            .map(|i| setup.name(&format!("c{i}"), "n", "2.4.1"))
            .collect();
        for name in &names {
            let q = query(name, hickory_proto::rr::RecordType::TXT, None);
            socket
                .send_to(
                    &hickory_proto::serialize::binary::BinEncodable::to_bytes(&q).unwrap(),
                    addr,
                )
                .await
                .unwrap();
        }
        let mut buf = vec![0u8; 2048];
        let mut n = 0;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
        {
            n += 1;
            if n == names.len() {
                break;
            }
        }
        n
    });
    // On a loaded machine the kernel may drop a datagram; what matters is
    // that no answered report is lost.
    assert!(answered > 0);
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    // The answered reports plus the reload probes (at least two), and never
    // more than was sent.
    let stored = rows(&setup.db_path()).len();
    assert!(
        stored >= answered + 2,
        "{stored} rows for {answered} answers"
    );
    assert!(stored <= 200 + 10, "{stored} rows");
}

#[test]
fn keygen_writes_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcheckd(
        dir.path(),
        &["keygen", "--v1", "--id", "9", "--out", "k/new.key"],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let path = dir.path().join("k/new.key");
    let key = vcheckd::protocol::Key::load(&path).unwrap();
    assert_eq!(key.id.0, 9);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Never silently replaced.
    let again = vcheckd(dir.path(), &["keygen", "--v1", "--out", "k/new.key"], &[]);
    assert_eq!(again.status.code(), Some(73), "cannot create");
    assert_eq!(vcheckd::protocol::Key::load(&path).unwrap(), key);
    let printed = stdout(&vcheckd(dir.path(), &["keygen", "--v1"], &[]));
    assert!(vcheckd::protocol::Key::parse(&printed).is_ok());
}

#[test]
fn keygen_writes_a_v2_pair_private_for_servers_public_for_clients() {
    use vcheckd::protocol::v2::{PrivateKey, PublicKey};
    let dir = tempfile::tempdir().unwrap();
    let out = vcheckd(
        dir.path(),
        &[
            "keygen",
            "--id",
            "4",
            "--private",
            "k/z.private",
            "--public",
            "k/z.public",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let private = PrivateKey::load(&dir.path().join("k/z.private")).unwrap();
    let public = PublicKey::load(&dir.path().join("k/z.public")).unwrap();
    assert_eq!((private.id.0, private.public()), (4, public));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode("k/z.private"), mode("k/z.public")), (0o600, 0o644));
    }
    // The public file holds nothing secret.
    let public_text = std::fs::read_to_string(dir.path().join("k/z.public")).unwrap();
    assert!(!public_text.contains(private.to_token().split(':').nth(2).unwrap()));
    // A v2 pair needs both files.
    let half = vcheckd(dir.path(), &["keygen", "--private", "k/y.private"], &[]);
    assert!(!half.status.success());
}

#[test]
fn encode_count_makes_distinct_decodable_names() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let key = setup.key_path();
    let key = key.to_str().unwrap();
    let out = vcheckd(
        dir,
        &[
            "encode",
            "--zone",
            ZONE,
            "--key",
            key,
            "--cluster-id",
            "c",
            "--node-id",
            "n",
            "--version",
            "2.4.1",
            "--count",
            "50",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let names: std::collections::HashSet<&str> = text.lines().collect();
    assert_eq!(text.lines().count(), 50);
    assert_eq!(names.len(), 50, "every name has its own nonce");
    let keyring = vcheckd::protocol::Keyring::new(std::slice::from_ref(&setup.key)).unwrap();
    let zone = vcheckd::protocol::ZoneName::new(ZONE).unwrap();
    for name in names {
        let report = vcheckd::protocol::name::decode_query_name(&keyring, &zone, name).unwrap();
        assert_eq!(report.payload.version.to_string(), "2.4.1");
    }
}

/// Runs a command expected to fail: its code, and its one stderr line.
fn failing(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = vcheckd(cwd, args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    (out.status.code(), lines[0].to_string())
}

fn assert_fails(cwd: &Path, args: &[&str], code: i32, says: &[&str]) {
    let (got, line) = failing(cwd, args);
    assert_eq!(got, Some(code), "{args:?}: {line}");
    for s in says {
        assert!(line.contains(s), "{args:?} should say {s:?}: {line}");
    }
}

const SERVE: [&str; 3] = ["serve", "--config", "config.toml"];

#[test]
fn exit_64_usage() {
    let dir = tempfile::tempdir().unwrap();
    assert_fails(
        dir.path(),
        &["check", "--bogus"],
        64,
        &["--bogus", "--help"],
    );
    assert_fails(
        dir.path(),
        &["stats", "--since", "2026-01-05", "--until", "2026-01-01"],
        64,
        &["--since is after --until"],
    );
    drop(vcheckd::store::Store::open(&dir.path().join("db.sqlite")).unwrap());
    assert_fails(
        dir.path(),
        &["stats", "--db", "db.sqlite", "--zone", "nope.example"],
        64,
        &["no zone \"nope.example\"", "give --zone one of those"],
    );
    // Every command's help carries the same table.
    for cmd in ["serve", "check", "stats", "encode", "decode", "keygen"] {
        let help = stdout(&vcheckd(dir.path(), &[cmd, "--help"], &[]));
        for code in [
            "64  usage",
            "66  no input",
            "69  unavailable",
            "75  temporary",
            "78  configuration",
        ] {
            assert!(help.contains(code), "{cmd} --help lacks {code}");
        }
    }
}

#[test]
fn exit_65_bad_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("empty.sqlite"), "").unwrap();
    assert_fails(
        d,
        &["stats", "--db", "empty.sqlite"],
        65,
        &["empty.sqlite", "not a vcheckd database"],
    );
    std::fs::write(
        d.join("notes.txt"),
        "not SQLite at all, but long enough to look at",
    )
    .unwrap();
    assert_fails(
        d,
        &["stats", "--db", "notes.txt"],
        65,
        &["notes.txt", "not a vcheckd database"],
    );
    // A database from a newer vcheckd: which schema, and what to run.
    let newer = d.join("newer.sqlite");
    drop(vcheckd::store::Store::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    assert_fails(
        d,
        &["stats", "--db", "newer.sqlite"],
        65,
        &[
            "newer.sqlite",
            "schema version 999",
            "run the newer vcheckd",
        ],
    );
}

#[test]
fn exit_66_no_input() {
    let setup = Setup::new();
    let d = setup.dir.path();
    assert_fails(
        d,
        &["stats", "--db", "missing.sqlite"],
        66,
        &["missing.sqlite", "vcheckd serve"],
    );
    assert_fails(
        d,
        &["serve", "--config", "missing.toml"],
        66,
        &["cannot read config missing.toml"],
    );
    std::fs::remove_file(d.join("zone.txt")).unwrap();
    assert_fails(
        d,
        &SERVE,
        66,
        &["cannot read zone file", "zone.txt", "[[zone]] file"],
    );
    std::fs::write(d.join("zone.txt"), zone_file()).unwrap();
    std::fs::remove_file(setup.key_path()).unwrap();
    // The path as the config names it, from where the server runs.
    assert_fails(
        d,
        &SERVE,
        66,
        &[
            "cannot read key file test.key",
            "`vcheckd keygen --v1 --out test.key`",
        ],
    );
}

#[test]
fn exit_69_unavailable() {
    let setup = Setup::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = [&SERVE[..], &["--listen", &addr]].concat();
    assert_fails(
        setup.dir.path(),
        &args,
        69,
        &[&addr, "already in use", "[server] listen"],
    );
}

#[test]
fn exit_73_cannot_create() {
    let setup = Setup::new();
    let d = setup.dir.path();
    std::fs::write(d.join("a-file"), "").unwrap();
    let text = config_text(RELEASES).replace("vcheckd.sqlite", "a-file/vcheckd.sqlite");
    std::fs::write(setup.config_path(), text).unwrap();
    assert_fails(d, &SERVE, 73, &["a-file"]);
    assert_fails(
        d,
        &["keygen", "--v1", "--out", "a-file"],
        73,
        &["a-file", "--force"],
    );
}

#[test]
fn exit_74_io_error() {
    let setup = Setup::new();
    let key = setup.key_path();
    let out = Command::new(BIN)
        .args(["encode", "--zone", ZONE, "--key", key.to_str().unwrap()])
        .args(["--cluster-id", "c", "--node-id", "n", "--version", "2.4.1"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(74), "{out:?}");
}

#[test]
fn exit_75_temporary_failure() {
    // The journal is held by a running server (as while an old process is
    // still stopping): a second one on the same files is told to retry.
    let setup = Setup::new();
    let d = setup.dir.path();
    let server = Server::start(d, &["--config", "config.toml"]);
    assert_fails(d, &SERVE, 75, &["journal", "in use"]);
    assert!(server.stop().success());
}

#[test]
fn exit_78_configuration() {
    let setup = Setup::new();
    let d = setup.dir.path();
    let good = config_text(RELEASES);
    std::fs::write(
        setup.config_path(),
        good.replace("rrl_rate = 0", "rrl_rate = \"many\""),
    )
    .unwrap();
    assert_fails(d, &SERVE, 78, &["config.toml, line 6"]);
    std::fs::write(
        setup.config_path(),
        good.replace("rrl_rate = 0", "rrl_rate = 0\nretention_days = 0"),
    )
    .unwrap();
    assert_fails(d, &SERVE, 78, &["retention_days = 0", "at least 2"]);
    std::fs::write(setup.config_path(), &good).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(setup.key_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_fails(d, &SERVE, 78, &["chmod 600"]);
}

/// Binding port 53 as an unprivileged user says which capability to grant.
/// Needs root, to run the server as `nobody`.
#[test]
fn exit_78_privileged_port_names_the_capability() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
    {
        eprintln!("skipped: needs root to run the server as an unprivileged user");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("VCHECKD_INTEROP_REQUIRE").is_none(),
            "setpriv (util-linux) is missing"
        );
        eprintln!("skipped: setpriv (util-linux) is missing");
        return;
    }
    let setup = Setup::new();
    let d = setup.dir.path();
    for entry in std::fs::read_dir(d).unwrap() {
        std::os::unix::fs::chown(entry.unwrap().path(), Some(65534), Some(65534)).unwrap();
    }
    std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args([&SERVE[..], &["--listen", "127.0.0.1:53"]].concat())
        .current_dir(d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_BIND_SERVICE") && stderr.contains("AmbientCapabilities"),
        "{stderr}"
    );
}

#[test]
fn check_json_has_one_schema_for_every_outcome() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let key = setup.key_path();
    let key = key.to_str().unwrap();
    let server = Server::start(dir, &["--config", "config.toml"]);
    let addr = server.addr.to_string();
    let json = |args: Vec<&str>, env: &[(&str, &str)]| {
        let out = vcheckd(dir, &[&args[..], &["--json"]].concat(), env);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert_eq!(v["exit_code"], out.status.code().unwrap(), "{v}");
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "effort",
                "error",
                "exit_code",
                "last_known",
                "latest",
                "message",
                "policy",
                "protocol",
                "queries",
                "report_id",
                "running",
                "status",
                "status_name"
            ],
            "{v}"
        );
        assert!(v["status"].is_i64(), "{v}");
        v
    };
    let ok = json(check_args(&addr, key, "2.3.1"), &[]);
    assert_eq!(
        (ok["status"].as_i64(), ok["error"].is_null()),
        (Some(2), true)
    );
    let refused = json(
        check_args(&addr, key, "2.3.1")
            .into_iter()
            .map(|a| if a == ZONE { "other.example.org" } else { a })
            .collect(),
        &[],
    );
    assert_eq!(
        (refused["status"].as_i64(), refused["exit_code"].as_i64()),
        (Some(-1), Some(6))
    );
    assert!(refused["error"].as_str().unwrap().contains("REFUSED"));
    // Errors before anything is sent print the same object.
    let bad_version = json(check_args(&addr, key, "two"), &[]);
    assert_eq!(bad_version["exit_code"], 64);
    assert!(bad_version["running"].is_null());
    let unknown_flag = json(
        [&check_args(&addr, key, "2.3.1")[..], &["--bogus"]].concat(),
        &[],
    );
    assert_eq!(unknown_flag["exit_code"], 64);
    assert!(unknown_flag["error"].as_str().unwrap().contains("--bogus"));
    let no_key = json(check_args(&addr, "/nonexistent.key", "2.3.1"), &[]);
    assert_eq!(no_key["exit_code"], 66);
    let disabled = json(
        check_args(&addr, key, "2.3.1"),
        &[("DISABLE_VERSION_CHECK", "1")],
    );
    assert_eq!(
        (
            disabled["status_name"].as_str(),
            disabled["exit_code"].as_i64()
        ),
        (Some("disabled"), Some(0))
    );
    assert!(server.stop().success());
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let setup = Setup::new();
    let key = setup.key_path();
    let script = format!(
        "{BIN} encode --zone {ZONE} --key {} --cluster-id c --node-id n --version 2.4.1 --count 100000 | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        key.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(stdout(&out).trim(), "0", "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("{BIN} serve --print-config | true; echo ${{PIPESTATUS[0]}}"),
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "0", "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sighup_warns_about_each_setting_it_cannot_apply() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let server = Server::start(dir, &["--config", "config.toml"]);
    let text = config_text(RELEASES).replace("rrl_rate = 0", "rrl_rate = 5\nretention_days = 40");
    std::fs::write(setup.config_path(), text).unwrap();
    server.signal("HUP");
    let mut warned = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !warned.iter().any(|l: &String| l.contains("reloaded")) {
        let line = server
            .log
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("no reload logged");
        if line.contains("reload") {
            warned.push(line);
        }
    }
    let cannot: Vec<&String> = warned
        .iter()
        .filter(|l| l.contains("cannot apply"))
        .collect();
    assert_eq!(cannot.len(), 2, "{warned:?}");
    assert!(cannot[0].contains("[server] retention_days"), "{warned:?}");
    assert!(cannot[1].contains("[server] rrl_rate"), "{warned:?}");
    assert!(server.stop().success());
}
