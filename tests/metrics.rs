//! The /metrics an operator alerts on, from a real `vcheckd serve`: the
//! process metrics, the build, each zone's v2 policy (serial and expiry per
//! key id), and reloads by result with the last good one's time.
//! monitoring/prometheus/vcheckd.rules.yml alerts on these names.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

struct Server {
    child: Child,
    http: SocketAddr,
}

impl Server {
    fn start(cwd: &Path) -> Server {
        let (child, log) = spawn_serve(cwd, &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        let http = loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .expect("server did not start");
            if let Some(rest) = line.split("on http://").nth(1) {
                break rest.trim().trim_end_matches('/').parse().unwrap();
            }
        };
        Server { child, http }
    }

    fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.http).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(
            text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
            "{text}"
        );
        text
    }

    /// The value of the sample `series` (name and labels as exposed).
    fn value(&self, series: &str) -> f64 {
        let text = self.metrics();
        sample(&text, series).unwrap_or_else(|| panic!("{series} missing in\n{text}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until `series` has `want`.
fn wait_for(server: &Server, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.value(series) != want {
        assert!(Instant::now() < deadline, "{series} never became {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn process_build_policy_and_reload_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let text = server.metrics();
    let get = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing"));

    // The process, as Prometheus's own clients name it.
    assert!(get("process_cpu_seconds_total") > 0.0);
    assert!(get("process_resident_memory_bytes") > 1e6);
    assert!(get("process_virtual_memory_bytes") >= get("process_resident_memory_bytes"));
    assert!(get("process_open_fds") >= 3.0);
    assert!(get("process_max_fds") >= get("process_open_fds"));
    assert!(get("process_threads") >= 2.0);
    let started = get("process_start_time_seconds");
    assert!(
        started <= now() + 1.0 && started > now() - 300.0,
        "{started}"
    );
    assert_eq!(
        get(&format!(
            "vcheckd_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );

    // The embedded default's zone: v2 key id 1, the sample zone's serial,
    // valid for 7 days from now.
    let policy = "{zone=\"vc.example.com\",key_id=\"1\"}";
    assert_eq!(get(&format!("vcheckd_policy_serial{policy}")), 2026112301.0);
    let expires = get(&format!("vcheckd_policy_expiry_timestamp_seconds{policy}"));
    let week = 7.0 * 86_400.0;
    assert!((expires - now() - week).abs() < 300.0, "{expires}");

    // Started: one good load, no reload yet.
    assert_eq!(get("vcheckd_reloads_total{result=\"success\"}"), 0.0);
    assert_eq!(get("vcheckd_reloads_total{result=\"failure\"}"), 0.0);
    assert_eq!(get("vcheckd_last_reload_successful"), 1.0);
    let loaded = get("vcheckd_last_reload_success_timestamp_seconds");
    assert!((loaded - now()).abs() < 300.0, "{loaded}");

    // A reload that cannot read the zone's private key keeps the old zones
    // and says so.
    let key = dir.path().join("data/demo.v2.private");
    let aside = dir.path().join("demo.v2.private.aside");
    std::fs::rename(&key, &aside).unwrap();
    server.hup();
    wait_for(&server, "vcheckd_reloads_total{result=\"failure\"}", 1.0);
    assert_eq!(server.value("vcheckd_last_reload_successful"), 0.0);
    assert_eq!(
        server.value("vcheckd_last_reload_success_timestamp_seconds"),
        loaded
    );
    assert_eq!(
        server.value(&format!("vcheckd_policy_serial{policy}")),
        2026112301.0
    );

    // Put back, the next reload works.
    std::fs::rename(&aside, &key).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    server.hup();
    wait_for(&server, "vcheckd_reloads_total{result=\"success\"}", 1.0);
    assert_eq!(server.value("vcheckd_last_reload_successful"), 1.0);
    assert!(server.value("vcheckd_last_reload_success_timestamp_seconds") > loaded);
}
