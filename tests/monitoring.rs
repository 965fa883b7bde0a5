//! monitoring/: the alert rules and the Grafana dashboard, checked by real
//! Prometheus (Debian's `prometheus` package: `prometheus` and `promtool`).
//!
//! - `promtool check rules` and `promtool test rules`, and every alert has a
//!   unit test in vcheckd.rules.test.yml;
//! - a real Prometheus scrapes a real `vcheckd serve` fed by `vcheckd
//!   simulate --server`, loads the rules (each evaluates without error), and
//!   every query of every dashboard panel, asked through its HTTP API
//!   (`/api/v1/query`), returns data. Grafana's variables are given the
//!   values of "All" (`$zone`, `$instance`: `.*`) and `$__rate_interval` a
//!   minute (Debian has no Grafana package to load the dashboard itself).
//!
//! Without the package each test says "skipped" and passes; with
//! VCHECKD_INTEROP_REQUIRE=1 (CI) a missing tool is a failure.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");
const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

/// Whether `tool` is there; if not, a skip, or a failure in CI.
fn have(tool: &str) -> bool {
    if Path::new(tool).exists() {
        return true;
    }
    let msg = format!("monitoring: skipped: {tool} is missing (apt-get install -y prometheus)");
    assert!(
        std::env::var_os("VCHECKD_INTEROP_REQUIRE").is_none(),
        "{msg}, and VCHECKD_INTEROP_REQUIRE is set"
    );
    let _ = writeln!(std::io::stderr(), "{msg}");
    false
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {}\n{text}", out.status);
    text
}

#[test]
fn promtool_checks_the_rules_and_tests_every_alert() {
    if !have(PROMTOOL) {
        return;
    }
    let dir = monitoring().join("prometheus");
    let checked = run(Command::new(PROMTOOL)
        .args(["check", "rules", "vcheckd.rules.yml"])
        .current_dir(&dir));
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run(Command::new(PROMTOOL)
        .args(["test", "rules", "vcheckd.rules.test.yml"])
        .current_dir(&dir));
    assert!(tested.contains("SUCCESS"), "{tested}");

    let rules = std::fs::read_to_string(dir.join("vcheckd.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("vcheckd.rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for alert in alerts {
        // A test that expects it to fire, not only one that expects silence.
        let fired = tests
            .split("alertname: ")
            .skip(1)
            .filter(|t| t.starts_with(&format!("{alert}\n")))
            .any(|t| t.contains("exp_labels"));
        assert!(
            fired,
            "alert {alert} has no promtool unit test that fires it"
        );
    }
}

/// A child process killed when the test ends, with its output in a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
    let file = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Proc { child, log }
}

fn http_get(url: &str) -> Option<String> {
    let mut response = ureq::get(url).call().ok()?;
    response.body_mut().read_to_string().ok()
}

/// Prometheus on a free loopback port, scraping `target` every second and
/// loading the rules; a port taken in between is tried again.
fn start_prometheus(dir: &Path, target: SocketAddr) -> (Proc, String) {
    let rules = monitoring().join("prometheus/vcheckd.rules.yml");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: vcheckd\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    for attempt in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.join(format!("data{attempt}"));
        let proc = spawn(
            Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}")),
            dir.join(format!("prometheus{attempt}.log")),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut proc = proc;
        loop {
            if http_get(&format!("{url}/-/ready")).is_some() {
                return (proc, url);
            }
            if let Ok(Some(_)) = proc.child.try_wait() {
                break; // exited: the port was taken, or worse (logged)
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready in 60 s:\n{}",
                proc.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = proc.log();
        assert!(
            log.contains("address already in use"),
            "Prometheus exited:\n{log}"
        );
    }
    panic!("no free port for Prometheus in 5 tries");
}

/// Every `expr` of every panel, with Grafana's variables set to "All".
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring().join("grafana/vcheckd.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("vcheckd.json is JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$zone", ".*");
            assert!(!expr.contains('$'), "{title}: a variable left in {expr}");
            out.push((title.clone(), expr));
        }
    }
    out
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    if !have(PROMETHEUS) {
        return;
    }
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{}", queries.len());
    let dir = tempfile::tempdir().unwrap();

    // vcheckd on the embedded default (v1 and v2, the sample zone), and a
    // simulated fleet's reports of today as real DNS queries.
    let (child, log) = spawn_serve(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let server = Proc {
        child,
        log: dir.path().join("unused"),
    };
    let (mut dns, mut http) = (None, None);
    while dns.is_none() || http.is_none() {
        let line = log
            .recv_timeout(Duration::from_secs(30))
            .expect("vcheckd did not start");
        if let Some(rest) = line.split("addr=").nth(1) {
            dns = Some(rest.trim().trim_matches('"').to_string());
        }
        if let Some(rest) = line.split("on http://").nth(1) {
            http = Some(
                rest.trim()
                    .trim_end_matches('/')
                    .parse::<SocketAddr>()
                    .unwrap(),
            );
        }
    }
    let (dns, http) = (dns.unwrap(), http.unwrap());
    let sim = run(Command::new(BIN)
        .args(["simulate", "--server", &dns, "--key", "data/demo.key"])
        .args(["--clusters", "200", "--rate", "5000"])
        .current_dir(dir.path()));
    assert!(sim.contains("answered"), "{sim}");

    let (prometheus, url) = start_prometheus(dir.path(), http);

    // Rates need two scrapes and the fleet gauges a processor commit:
    // asked until each query has data, a minute at most.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing: Vec<(String, String)> = queries.clone();
    while !missing.is_empty() && Instant::now() < deadline {
        missing.retain(|(_, expr)| {
            let body = ureq::get(&format!("{url}/api/v1/query"))
                .query("query", expr)
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            assert_ne!(v["status"], "error", "{expr}: {body}");
            !(v["status"] == "success"
                && v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()))
        });
        if !missing.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        missing.is_empty(),
        "dashboard queries without data from a real Prometheus scraping vcheckd:\n{}\nPrometheus log:\n{}",
        missing
            .iter()
            .map(|(t, e)| format!("  {t}: {e}"))
            .collect::<Vec<_>>()
            .join("\n"),
        prometheus.log()
    );

    // The rules load and evaluate against real series without error.
    let rules = http_get(&format!("{url}/api/v1/rules")).unwrap();
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let groups = rules["data"]["groups"].as_array().unwrap();
    let all: Vec<&serde_json::Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(all.len() >= 8, "{rules}");
    for rule in all {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    drop(server);
}
