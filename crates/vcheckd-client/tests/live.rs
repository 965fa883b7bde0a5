//! The client library against a real `vcheckd serve` (the workspace's
//! binary, or VCHECKD_BIN): a check's status equals `vcheckd check`'s, its
//! report is recorded once, a dry run records nothing, DISABLE_VERSION_CHECK
//! sends nothing, and the vendor's example (examples/check.rs) runs as
//! docs/CLIENTS.md shows it. Skipped where the binary is missing, unless
//! VCHECKD_INTEROP_REQUIRE=1.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vcheckd_client::{Client, Outcome, Reporter};

/// target/debug (or wherever this test binary was built).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn vcheckd() -> Option<PathBuf> {
    let path = std::env::var_os("VCHECKD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("vcheckd"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("VCHECKD_INTEROP_REQUIRE").as_deref() != Ok("1"),
        "{} is missing and VCHECKD_INTEROP_REQUIRE=1: build it with `cargo build --bin vcheckd`",
        path.display()
    );
    eprintln!(
        "live: skipped, {} is missing (cargo build --bin vcheckd)",
        path.display()
    );
    None
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, dir: &Path) -> Server {
    let zone = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zones/vc.example.com.zone"),
    )
    .unwrap();
    std::fs::write(dir.join("zone.txt"), zone).unwrap();
    let out = Command::new(bin)
        .args(["keygen", "--id", "3", "--private"])
        .arg(dir.join("v2.private"))
        .arg("--public")
        .arg(dir.join("v2.public"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(
        dir.join("config.toml"),
        r#"[server]
listen = ["127.0.0.1:0"]
database = "vcheckd.sqlite"
rrl_rate = 0

[[zone]]
name = "vc.example.com"
file = "zone.txt"
private_keys = ["v2.private"]
accept_v1 = false
advisory_url = "https://vendor.example/security/{id}"

[zone.releases]
versions = ["2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["2.2"]
[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
"#,
    )
    .unwrap();
    let mut child = Command::new(bin)
        .args(["serve", "--config", "config.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not start");
        if let Some(rest) = line.split("listening on UDP and TCP addr=").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    Server { child, addr }
}

fn client(dir: &Path, addr: SocketAddr, version: &str) -> Client {
    let key = std::fs::read_to_string(dir.join("v2.public")).unwrap();
    Client::new(
        "vc.example.com",
        &key,
        version,
        Some(Reporter {
            cluster_id: "live-cluster".into(),
            node_id: "node-1".into(),
        }),
    )
    .unwrap()
    .servers(vec![addr])
    .state_file(dir.join("state.json"))
}

fn stored_v2(bin: &Path, dir: &Path) -> u64 {
    let out = Command::new(bin)
        .args(["stats", "summary", "--json", "--db"])
        .arg(dir.join("vcheckd.sqlite"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["reports_v2"].as_u64().unwrap_or(0)
}

#[test]
fn checks_against_a_real_server() {
    let Some(bin) = vcheckd() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(&bin, dir.path());

    // A dry run sends no report.
    let sealed = client(dir.path(), server.addr, "2.3.0")
        .dry_run()
        .unwrap()
        .unwrap();
    assert!(sealed.name.ends_with(".vc.example.com."), "{}", sealed.name);

    for version in ["2.3.0", "2.3.1", "2.4.1", "2.2.0", "9.9.9"] {
        let Outcome::Checked(answer) = client(dir.path(), server.addr, version).check().unwrap()
        else {
            panic!("not disabled");
        };
        // The same status and message as `vcheckd check`.
        let out = Command::new(&bin)
            .args([
                "check",
                "--server",
                &server.addr.to_string(),
                "--zone",
                "vc.example.com",
                "--key",
            ])
            .arg(dir.path().join("v2.public"))
            .args([
                "--cluster-id",
                "cli",
                "--node-id",
                "n",
                "--version",
                version,
                "--json",
                "--state",
            ])
            .arg(dir.path().join("cli-state.json"))
            .output()
            .unwrap();
        let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            u64::from(answer.hint.status.code()),
            cli["status"].as_u64().unwrap(),
            "{version}: {cli}"
        );
        assert_eq!(
            answer.hint.message,
            cli["message"].as_str().unwrap(),
            "{version}"
        );
    }
    let Outcome::Checked(answer) = client(dir.path(), server.addr, "2.3.0").check().unwrap() else {
        panic!();
    };
    assert_eq!(
        answer.hint.message,
        "security fix CVE-2026-0001 in 2.3.1: https://vendor.example/security/CVE-2026-0001"
    );

    // The vendor's example, as docs/CLIENTS.md shows it.
    let example = target_dir().join("examples").join("check");
    if example.exists() {
        let out = Command::new(&example)
            .arg(dir.path().join("v2.public"))
            .env("VCHECKD_SERVER", server.addr.to_string())
            .env("VCHECKD_STATE", dir.path().join("example-state.json"))
            .env_remove("DISABLE_VERSION_CHECK")
            .env_remove("DISABLE_TELEMETRY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "2.4.1 is available"
        );
        // Disabled: nothing sent, and it says so.
        let out = Command::new(&example)
            .arg(dir.path().join("v2.public"))
            .env("VCHECKD_SERVER", server.addr.to_string())
            .env("DISABLE_VERSION_CHECK", "1")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "version check disabled"
        );
    }
    drop(server);
    // Reports: 6 from the library, 5 from the CLI, 1 from the example; the
    // dry run and the disabled run sent none. Each recorded once.
    let expected = if example.exists() { 12 } else { 11 };
    assert_eq!(stored_v2(&bin, dir.path()), expected);
}
