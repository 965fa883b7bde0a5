//! `vcheckd agent` against a real server that goes away and comes back:
//! the status is verified, then sticky while the server is away (never
//! "up to date" in place of "upgrade required"), backed off, `stale` once
//! the policy it came from has expired (a client clock moved ahead with
//! `faketime`), and current again when the server returns; `disabled`
//! sends nothing; SIGHUP checks at once and SIGTERM stops it; the
//! Kubernetes CronJob example (docs/examples) runs as written.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::protocol::v2::PrivateKey;
use vcheckd::protocol::KeyId;

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");

fn setup() -> Setup {
    let setup = Setup::new();
    let private = PrivateKey::generate(KeyId(2), vcheckd::clock::unix_now() as u64);
    write_private(&setup.dir.path().join("v2.private"), &private.to_token());
    std::fs::write(
        setup.dir.path().join("v2.public"),
        private.public().to_token(),
    )
    .unwrap();
    let config = config_text(RELEASES).replace(
        "keys = [\"test.key\"]",
        "keys = [\"test.key\"]\nprivate_keys = [\"v2.private\"]",
    );
    std::fs::write(setup.config_path(), config).unwrap();
    setup
}

/// The server on `addr` (a port chosen by the first start, kept after).
async fn start(setup: &Setup, addr: Option<SocketAddr>) -> RunningServer {
    let mut config = Config::load(&setup.config_path()).unwrap();
    if let Some(addr) = addr {
        config.server.listen = vec![addr];
    }
    RunningServer::start(&config).await.unwrap()
}

fn agent(
    dir: &Path,
    addr: SocketAddr,
    version: &str,
    extra: &[&str],
    clock: Option<&str>,
) -> Output {
    let mut cmd = match clock {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.args(["-f", offset, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args([
        "agent",
        "--server",
        &addr.to_string(),
        "--zone",
        ZONE,
        "--key",
    ])
    .arg(dir.join("v2.public"))
    .args([
        "--cluster-id",
        "c1",
        "--node-id",
        "n1",
        "--version",
        version,
        "--timeout",
        "3",
    ])
    .arg("--state")
    .arg(dir.join("client-state.json"))
    .arg("--status-file")
    .arg(dir.join("status.json"))
    .arg("--textfile")
    .arg(dir.join("vcheckd.prom"))
    .args(extra)
    .env_remove("DISABLE_TELEMETRY")
    .env_remove("DISABLE_VERSION_CHECK")
    .output()
    .unwrap()
}

fn status(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap()
}

fn secs(v: &serde_json::Value) -> i64 {
    v.as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second()
}

fn faketime_works() -> bool {
    let ok = Command::new("faketime")
        .args(["-f", "+2d", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("VCHECKD_INTEROP_REQUIRE").as_deref() != Ok("1"),
            "faketime is missing and VCHECKD_INTEROP_REQUIRE=1: install faketime"
        );
        eprintln!("the stale case: skipped, faketime is not installed (apt-get install faketime)");
    }
    ok
}

#[tokio::test(flavor = "multi_thread")]
async fn sticky_backed_off_stale_and_back() {
    let setup = setup();
    let dir = setup.dir.path().to_path_buf();
    let server = start(&setup, None).await;
    let addr = server.local_addrs()[0];

    // Verified: 2.3.0 needs the security fix.
    let out = tokio::task::block_in_place(|| agent(&dir, addr, "2.3.0", &["--once"], None));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = status(&dir);
    assert_eq!(s["status"], "upgrade-required", "{s}");
    assert_eq!(s["status_code"], 3);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("WARN") && log.contains("security fix CVE-2026-0001"),
        "one line per change: {log}"
    );
    let prom = std::fs::read_to_string(dir.join("vcheckd.prom")).unwrap();
    assert!(
        prom.contains(
            "vcheckd_version_status{zone=\"vc.example.com\",running=\"2.3.0\",latest=\"2.4.1\"} 3"
        ),
        "{prom}"
    );

    // The server goes away: the check fails, the status stays (sticky),
    // and the next try is backed off to about a minute.
    server.shutdown().await.unwrap();
    let out = tokio::task::block_in_place(|| agent(&dir, addr, "2.3.0", &["--once"], None));
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = status(&dir);
    assert_eq!(s["status"], "upgrade-required", "sticky: {s}");
    assert_eq!(s["consecutive_failures"], 1, "{s}");
    assert!(s["error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
    let wait = secs(&s["next_check"]) - secs(&s["checked_at"]);
    assert!((54..=66).contains(&wait), "backoff 60 s ± 10%: {wait}");

    // A day and a half later the policy it came from has expired: stale,
    // the last verified status kept beside it.
    if faketime_works() {
        let out =
            tokio::task::block_in_place(|| agent(&dir, addr, "2.3.0", &["--once"], Some("+36h")));
        assert_eq!(out.status.code(), Some(69));
        let s = status(&dir);
        assert_eq!(s["status"], "stale", "{s}");
        assert_eq!(s["last_status"], "upgrade-required", "{s}");
        let prom = std::fs::read_to_string(dir.join("vcheckd.prom")).unwrap();
        assert!(prom.contains("state=\"stale\"} 1"), "{prom}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("stale"));
    }

    // The server comes back: current again.
    let server = start(&setup, Some(addr)).await;
    let out = tokio::task::block_in_place(|| agent(&dir, addr, "2.3.0", &["--once"], None));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = status(&dir);
    assert_eq!(s["status"], "upgrade-required", "{s}");
    assert_eq!(s["consecutive_failures"], 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_sends_nothing_and_signals_work() {
    let setup = setup();
    let dir = setup.dir.path().to_path_buf();
    let server = start(&setup, None).await;
    let addr = server.local_addrs()[0];
    use std::sync::atomic::Ordering::Relaxed;
    let before = server.metrics().reports_v2.load(Relaxed);

    let out = tokio::task::block_in_place(|| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "agent",
            "--once",
            "--server",
            &addr.to_string(),
            "--zone",
            ZONE,
            "--key",
        ])
        .arg(dir.join("v2.public"))
        .args(["--version", "2.4.1", "--status-file"])
        .arg(dir.join("status.json"))
        .env("DISABLE_VERSION_CHECK", "1");
        cmd.output().unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(&dir)["status"], "disabled");

    // A running agent with an hour of startup delay: SIGHUP checks at once,
    // SIGTERM stops it.
    let mut child = Command::new(BIN)
        .args([
            "agent",
            "--startup-jitter-secs",
            "3600",
            "--server",
            &addr.to_string(),
            "--zone",
            ZONE,
            "--key",
        ])
        .arg(dir.join("v2.public"))
        .args([
            "--cluster-id",
            "c1",
            "--node-id",
            "n1",
            "--version",
            "2.4.1",
            "--state",
        ])
        .arg(dir.join("client-state.json"))
        .arg("--status-file")
        .arg(dir.join("status.json"))
        .env_remove("DISABLE_VERSION_CHECK")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // The first write (before any check) marks it started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&dir)["status"] == "disabled" {
        assert!(Instant::now() < deadline, "the agent did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&dir)["status"], "stale", "nothing verified yet");
    // SAFETY: kill(2) with a child's pid.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&dir)["status"] != "up-to-date" {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not check: {}",
            status(&dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let code = tokio::task::block_in_place(|| child.wait().unwrap());
    assert!(code.success(), "{code:?}");
    assert_eq!(
        server.metrics().reports_v2.load(Relaxed),
        before + 1,
        "disabled sent nothing; the SIGHUP check one report"
    );
    server.shutdown().await.unwrap();
}

/// docs/examples/vcheckd-agent-cronjob.yaml's container runs as written:
/// its args, with the paths the pod mounts moved into a folder here and the
/// ids Kubernetes would fill in, plus the server to ask (the pod's
/// resolvers in a cluster).
#[tokio::test(flavor = "multi_thread")]
async fn the_cronjob_example_runs() {
    let setup = setup();
    let dir = setup.dir.path().to_path_buf();
    let server = start(&setup, None).await;
    let addr = server.local_addrs()[0];
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/vcheckd-agent-cronjob.yaml"
    ))
    .unwrap();
    let args: Vec<String> = yaml
        .lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .map_while(|l| l.trim_start().strip_prefix("- "))
        .map(|a| {
            a.trim()
                .replace(
                    "/etc/vcheckd/vc.example.com.v2.public",
                    dir.join("v2.public").to_str().unwrap(),
                )
                .replace("/var/lib/vcheckd-agent", dir.to_str().unwrap())
                .replace("$(CLUSTER_ID)", "0b8e6f1c-2d7a-4c55-9e3f-6a1d8b2c4e70")
                .replace("$(NODE_NAME)", "worker-1")
        })
        .collect();
    assert_eq!(args[..2], ["agent", "--once"], "{args:?}");
    let out = tokio::task::block_in_place(|| {
        Command::new(BIN)
            .args(&args)
            .args(["--server", &addr.to_string()])
            .env_remove("DISABLE_TELEMETRY")
            .env_remove("DISABLE_VERSION_CHECK")
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = status(&dir);
    assert_eq!(s["status"], "up-to-date", "{s}");
    assert_eq!(s["running"], "2.4.1", "{s}");
    assert!(
        dir.join("client-state.json").exists(),
        "the state on the volume"
    );
    server.shutdown().await.unwrap();
}
