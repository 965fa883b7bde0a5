//! `systemd/vcheckd.service` as systemd reads it: `systemd-analyze verify`
//! and the offline security review, where systemd-analyze is installed
//! (skipped with a message otherwise), plus the hardening the unit must keep
//! (docs/DEPLOY.md explains each line), which is checked everywhere.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");
const UNIT: &str = include_str!("../systemd/vcheckd.service");
/// The production configuration the unit runs (installed as
/// /etc/vcheckd/vcheckd.toml).
const SHIPPED_CONFIG: &str = include_str!("../systemd/vcheckd.toml");
const SAMPLE_ZONE: &str = include_str!("../zones/vc.example.com.zone");
/// Where the unit expects the binary, as the Debian package installs it.
const INSTALLED_BIN: &str = "/usr/bin/vcheckd";

/// Printed past the test harness's capture, so that a skip shows in a plain
/// `cargo test` run too.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn systemd_analyze(args: &[&str]) -> Option<Output> {
    Command::new("systemd-analyze").args(args).output().ok()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The unit with ExecStart pointing at the binary cargo built: verify checks
/// that the ExecStart binary exists and is executable, and this machine has
/// may have no /usr/bin/vcheckd (the package is not installed).
fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    let needle = format!("ExecStart={INSTALLED_BIN} ");
    assert!(
        UNIT.contains(&needle),
        "the unit's ExecStart no longer starts with {INSTALLED_BIN}; update this test"
    );
    let path = dir.join("vcheckd.service");
    std::fs::write(&path, UNIT.replace(&needle, &format!("ExecStart={BIN} "))).unwrap();
    path
}

fn directives(section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in UNIT.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        if current == section {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn unit_keeps_its_hardening() {
    let service = directives("Service");
    let get = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let want = [
        ("User", "vcheckd"),
        ("Group", "vcheckd"),
        ("StateDirectory", "vcheckd"),
        ("RemoveIPC", "yes"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
    ];
    for (key, value) in want {
        assert_eq!(
            get(key),
            vec![value],
            "systemd/vcheckd.service: expected exactly {key}={value}"
        );
    }
    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    assert!(
        exec[0].contains(" serve --config "),
        "ExecStart runs `vcheckd serve --config FILE`: {}",
        exec[0]
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(version) = systemd_analyze(&["--version"]) else {
        notice("systemd: skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(
        version.status.success(),
        "systemd-analyze --version: {version:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = systemd_analyze(&["verify", unit.to_str().unwrap()]).unwrap();
    // verify exits 0 on unknown keys but warns on stderr: any output is a
    // finding.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify {}:\nstatus {}\nstdout:\n{}\nstderr:\n{}",
        unit.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );

    // The unit exactly as shipped: on a machine without the installed
    // binary, the only complaint may be that binary.
    let shipped = dir.path().join("shipped");
    std::fs::create_dir(&shipped).unwrap();
    let path = shipped.join("vcheckd.service");
    std::fs::write(&path, UNIT).unwrap();
    let out = systemd_analyze(&["verify", path.to_str().unwrap()]).unwrap();
    if !Path::new(INSTALLED_BIN).exists() {
        let stderr = text(&out.stderr);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.contains(INSTALLED_BIN),
                "systemd-analyze verify (shipped unit): unexpected complaint: {line}"
            );
        }
    } else {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify (shipped unit): {out:?}"
        );
    }
}

/// `systemd-analyze security --offline=true` scores the sandboxing from 0
/// (locked down) to 10; the unit scores 2.0 ("OK") with systemd 252. Fail
/// if it gets worse than 2.5, so a dropped hardening line is noticed.
#[test]
fn systemd_analyze_security_exposure_stays_low() {
    if systemd_analyze(&["--version"]).is_none() {
        notice("systemd: skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = systemd_analyze(&[
        "security",
        "--offline=true",
        "--threshold=25",
        "--no-pager",
        unit.to_str().unwrap(),
    ])
    .unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    if !stdout.contains("Overall exposure level") {
        // systemd before 250 has no --offline: nothing to score here.
        notice(&format!(
            "systemd: security review skipped: this systemd-analyze cannot score a unit file offline ({})",
            stderr.lines().next().unwrap_or("no output")
        ));
        return;
    }
    let overall = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default()
        .to_string();
    assert!(
        out.status.success(),
        "exposure above 2.5: {overall}\n{}",
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A port free for UDP and TCP on both the IPv4 and the IPv6 wildcard.
fn free_port() -> u16 {
    for _ in 0..50 {
        let port = UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let free = UdpSocket::bind(("::", port)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
            && std::net::TcpListener::bind(("::", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port");
}

fn soa_over_udp(server: SocketAddr) -> Result<Message, String> {
    let mut query = Message::query();
    query.add_query(Query::query(
        Name::from_ascii("vc.example.com.").unwrap(),
        RecordType::SOA,
    ));
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let socket = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    socket
        .send_to(&query.to_bytes().unwrap(), server)
        .map_err(|e| format!("send to {server}: {e}"))?;
    let mut buf = [0u8; 4096];
    let (len, _) = socket
        .recv_from(&mut buf)
        .map_err(|e| format!("no answer from {server}: {e}"))?;
    Message::from_vec(&buf[..len]).map_err(|e| e.to_string())
}

/// systemd/vcheckd.toml listens on "0.0.0.0:53" and "[::]:53", as most
/// name servers do. Both must bind in one process on a stock Linux
/// (net.ipv6.bindv6only = 0, where an IPv6 wildcard socket also claims
/// IPv4 unless it is set IPv6-only), and both must answer. The shipped file
/// is run as it is, with only the database moved to a temp folder and port
/// 53 replaced by a free port.
#[test]
fn shipped_config_listens_on_ipv4_and_ipv6_together() {
    if UdpSocket::bind("[::1]:0").is_err() {
        notice("systemd: dual-stack listen test skipped: no IPv6 loopback (::1) here");
        return;
    }
    let mut config: toml::Table = toml::from_str(SHIPPED_CONFIG).expect("systemd/vcheckd.toml");
    let server = config["server"].as_table_mut().unwrap();
    let shipped_listen: Vec<SocketAddr> = server["listen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        shipped_listen.iter().any(|a| a.is_ipv4()) && shipped_listen.iter().any(|a| a.is_ipv6()),
        "systemd/vcheckd.toml no longer listens on IPv4 and IPv6: {shipped_listen:?}; update this test"
    );
    let dir = tempfile::tempdir().unwrap();
    server.insert(
        "database".into(),
        dir.path().join("vcheckd.sqlite").to_str().unwrap().into(),
    );
    // The key lives where the unit's LoadCredential= puts it; here, beside
    // the config.
    for zone in config["zone"].as_array_mut().unwrap() {
        let zone = zone.as_table_mut().unwrap();
        zone.insert("keys".into(), vec!["vc.example.com.key"].into());
        zone.insert(
            "private_keys".into(),
            vec!["vc.example.com.v2.private"].into(),
        );
    }
    std::fs::write(dir.path().join("vcheckd.toml"), config.to_string()).unwrap();
    std::fs::write(dir.path().join("vc.example.com.zone"), SAMPLE_ZONE).unwrap();
    let keygen = Command::new(BIN)
        .args(["keygen", "--v1", "--id", "1", "--out"])
        .arg(dir.path().join("vc.example.com.key"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "keygen: {keygen:?}");
    let keygen = Command::new(BIN)
        .args(["keygen", "--id", "1", "--private"])
        .arg(dir.path().join("vc.example.com.v2.private"))
        .arg("--public")
        .arg(dir.path().join("vc.example.com.v2.public"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "keygen: {keygen:?}");

    let port = free_port();
    let listen: Vec<SocketAddr> = shipped_listen
        .iter()
        .map(|a| SocketAddr::new(a.ip(), port))
        .collect();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--config")
        .arg(dir.path().join("vcheckd.toml"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for a in &listen {
        cmd.arg("--listen").arg(a.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let mut listening = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while listening < listen.len() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if line.contains("listening on UDP and TCP") {
                    listening += 1;
                }
                log.push(line);
            }
            Err(_) => break, // exited (channel closed) or too slow
        }
    }
    let exited = child.try_wait().unwrap();
    let answers: Vec<Result<Message, String>> = if listening == listen.len() {
        [
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::new("::1".parse().unwrap(), port),
        ]
        .into_iter()
        .map(soa_over_udp)
        .collect()
    } else {
        Vec::new()
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < stop_deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    while let Ok(line) = rx.try_recv() {
        log.push(line);
    }

    assert!(
        listening == listen.len(),
        "vcheckd serve with systemd/vcheckd.toml's listen addresses {listen:?} \
         did not listen on all of them ({listening} of {}; exited: {exited:?}). \
         Its log:\n{}",
        listen.len(),
        log.join("\n")
    );
    for answer in answers {
        let m = answer.unwrap_or_else(|e| panic!("{e}\nlog:\n{}", log.join("\n")));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
        assert_eq!(m.answers.len(), 1, "{m:?}");
    }
}
