//! The errors an operator meets, against the real binary: each is one line
//! on stderr that names the thing and the fix, with the exit code of the
//! table in docs/DEPLOY.md section 7. One test per case of issue 22's
//! "Found" (each failed before its fix).

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");

fn vcheckd(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd);
    for var in [
        "DISABLE_VERSION_CHECK",
        "DISABLE_TELEMETRY",
        "VCHECKD_ZONE",
        "VCHECKD_KEY",
        "VCHECKD_SERVER",
        "VCHECKD_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

/// The exit code and the one stderr line, checked to be one line that
/// starts as every error does.
fn failure(out: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default().to_string();
    assert!(
        last.starts_with("vcheckd: error: "),
        "no error line: status {:?}, stderr:\n{stderr}",
        out.status
    );
    (out.status.code().unwrap_or(-1), last)
}

fn assert_mentions(line: &str, parts: &[&str]) {
    for part in parts {
        assert!(line.contains(part), "{part:?} missing in: {line}");
    }
}

fn check_args<'a>(server: &'a str, zone: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "check",
        "--server",
        server,
        "--zone",
        zone,
        "--key",
        key,
        "--cluster-id",
        "c",
        "--node-id",
        "n",
        "--version",
        "2.3.1",
    ]
}

/// Found 1: `keygen --id 1 --out FILE` named no argument.
#[test]
fn missing_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcheckd(dir.path(), &["keygen", "--id", "1", "--out", "x.key"]);
    let (code, line) = failure(&out);
    assert_eq!(code, 64, "{line}");
    assert_mentions(&line, &["--v1", "(see --help)"]);
}

/// Found 2: a client was told to make the key it must be given.
#[test]
fn a_missing_client_key_asks_for_the_vendors_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcheckd(
        dir.path(),
        &check_args("127.0.0.1:9", ZONE, "/nonexistent/key.pub"),
    );
    let (code, line) = failure(&out);
    assert_eq!(code, 66, "{line}");
    assert_mentions(&line, &["/nonexistent/key.pub", "public key", "vendor"]);
    assert!(!line.contains("--private /nonexistent"), "{line}");
}

/// Found 2: a busy HTTP port blamed systemd-resolved on port 53.
#[test]
fn a_busy_http_port_names_the_http_setting() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = vcheckd(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--http", &addr],
    );
    let (code, line) = failure(&out);
    assert_eq!(code, 69, "{line}");
    assert_mentions(&line, &[&addr, "[http] listen (or --http)", "web server"]);
    assert!(!line.contains("systemd-resolved"), "{line}");
}

/// Found 2: the simulator called a v2 public key secret, then wanted vck1.
#[test]
fn the_simulator_says_it_needs_the_v1_key() {
    let dir = tempfile::tempdir().unwrap();
    let made = vcheckd(
        dir.path(),
        &[
            "keygen",
            "--private",
            "z.v2.private",
            "--public",
            "z.v2.public",
        ],
    );
    assert!(made.status.success(), "{made:?}");
    for key in ["z.v2.public", "z.v2.private"] {
        let out = vcheckd(
            dir.path(),
            &["simulate", "--server", "127.0.0.1:9", "--key", key],
        );
        let (code, line) = failure(&out);
        assert_eq!(code, 64, "{line}");
        assert_mentions(&line, &[key, "protocol v2", "v1 reports only", "keys"]);
        assert!(!line.contains("chmod"), "{line}");
    }
}

/// A running server of the embedded default in `dir`, on a free port.
struct Demo {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        let (child, log) = spawn_serve(dir, &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        let addr = loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .expect("server did not start");
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.trim().trim_matches('"').parse().unwrap();
            }
        };
        Demo { child, addr }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Found 2: a wrong v1 key was blamed on the delegation; REFUSED named no
/// fix.
#[test]
fn check_names_a_wrong_key_and_a_zone_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Demo::start(dir.path());
    let addr = server.addr.to_string();
    let made = vcheckd(dir.path(), &["keygen", "--v1", "--out", "other.key"]);
    assert!(made.status.success(), "{made:?}");

    let out = vcheckd(dir.path(), &check_args(&addr, ZONE, "other.key"));
    let (code, line) = failure(&out);
    assert_eq!(code, 8, "{line}");
    assert_mentions(
        &line,
        &["serves the zone", "--key is not the key of --zone"],
    );
    assert!(!line.contains("delegated"), "{line}");

    let out = vcheckd(
        dir.path(),
        &check_args(&addr, "vc.other.example", "data/demo.v2.public"),
    );
    let (code, line) = failure(&out);
    assert_eq!(code, 6, "{line}");
    assert_mentions(&line, &["REFUSED", "does not serve --zone"]);
}

/// Found 2: a timeout named no fix.
#[test]
fn a_timeout_says_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    // Takes the queries and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let made = vcheckd(dir.path(), &["keygen", "--v1", "--out", "z.key"]);
    assert!(made.status.success(), "{made:?}");
    let out = vcheckd(
        dir.path(),
        &[&check_args(&addr, ZONE, "z.key")[..], &["--timeout", "0.5"]].concat(),
    );
    let (code, line) = failure(&out);
    assert_eq!(code, 3, "{line}");
    assert_mentions(&line, &["port 53", "--timeout"]);
}

/// Found 2: a folder given as the configuration exited 74.
#[test]
fn a_config_folder_is_no_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let out = vcheckd(dir.path(), &["serve", "--config", path]);
    let (code, line) = failure(&out);
    assert_eq!(code, 66, "{line}");
    assert_mentions(&line, &[path, "is a folder", "configuration file in it"]);
}

/// Found 2: an unreadable configuration asked for a path; the fix is its
/// mode. As root (CI), run as nobody, as a service's own user would be.
#[test]
fn an_unreadable_config_asks_for_read_permission() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vcheckd.toml");
    std::fs::write(&config, vcheckd::config::DEFAULT_CONFIG).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
    let root = std::fs::read(&config).is_ok();
    let out = if root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(["serve", "--config", config.to_str().unwrap()])
            .current_dir("/")
            .output()
            .expect("setpriv (util-linux) runs the binary as nobody")
    } else {
        vcheckd(dir.path(), &["serve", "--config", config.to_str().unwrap()])
    };
    let (code, line) = failure(&out);
    assert_eq!(code, 66, "{line}");
    assert_mentions(
        &line,
        &["Permission denied", "readable by the user", "chmod 644"],
    );
}

/// Found 2: `rrl_rate = "lots"` named no setting.
#[test]
fn a_wrong_value_names_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        vcheckd::config::DEFAULT_CONFIG.replace("[server]\n", "[server]\nrrl_rate = \"lots\"\n");
    assert!(text.contains("rrl_rate = \"lots\""));
    // The default sets rrl_rate too: keep the one under test.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("rrl_rate = ") || l.contains("lots"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("vcheckd.toml"), text).unwrap();
    let out = vcheckd(dir.path(), &["serve", "--config", "vcheckd.toml"]);
    let (code, line) = failure(&out);
    assert_eq!(code, 78, "{line}");
    assert_mentions(
        &line,
        &[
            "[server] rrl_rate",
            "a whole number",
            "fix [server] rrl_rate",
        ],
    );
}

/// Found 2: a name over 253 characters exited 1, "please report it".
#[test]
fn a_name_too_long_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let made = vcheckd(dir.path(), &["keygen", "--v1", "--out", "z.key"]);
    assert!(made.status.success(), "{made:?}");
    let zone = ["a".repeat(60), "b".repeat(60), "c".repeat(60), "com".into()].join(".");
    let out = vcheckd(dir.path(), &check_args("127.0.0.1:9", &zone, "z.key"));
    let (code, line) = failure(&out);
    assert_eq!(code, 64, "{line}");
    assert_mentions(&line, &["253", "shorter zone or version"]);
}
