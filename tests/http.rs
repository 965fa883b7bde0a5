//! The HTTP listener of a real server (RunningServer, HTTP on an ephemeral
//! port) over real connections: /metrics validated by a Prometheus text
//! parser, /api/v1 equal to `vcheckd::stats` on the same database, the
//! dashboard's charts, errors, and the listener's start and stop.

mod common;
mod http_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use http_support::*;
use openmetrics_parser::{prometheus::parse_prometheus, PrometheusType, PrometheusValue};
use vcheckd::clock::date_of_day;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::protocol::ZoneName;
use vcheckd::stats::{self, Bucket, Dataset, Scope};
use vcheckd::store::reader::{SqliteReader, StatsReader};

/// A Setup whose config has `[http]` on an ephemeral port.
fn setup_with_http(top_versions: usize) -> Setup {
    let setup = Setup::new();
    let mut text = std::fs::read_to_string(setup.config_path()).unwrap();
    text.push_str(&http_section(top_versions));
    std::fs::write(setup.config_path(), text).unwrap();
    setup
}

async fn start(setup: &Setup) -> (RunningServer, SocketAddr) {
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let http = server.http_addr().expect("HTTP configured");
    (server, http)
}

type Exposition = openmetrics_parser::MetricsExposition<PrometheusType, PrometheusValue>;

/// Parses with a strict Prometheus text-format parser, and with promtool
/// too when it is installed.
fn parse_metrics(text: &str) -> Exposition {
    let parsed =
        parse_prometheus(text).unwrap_or_else(|e| panic!("/metrics does not parse: {e:?}\n{text}"));
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "promtool: {out:?}");
    }
    parsed
}

/// The value of a counter or gauge sample with these label values (in the
/// family's label order).
fn value(m: &Exposition, family: &str, labels: &[&str]) -> f64 {
    let f = m
        .families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    let s = f
        .get_sample_by_label_values(&labels)
        .unwrap_or_else(|| panic!("no sample {family}{labels:?}"));
    match &s.value {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Gauge(g) | PrometheusValue::Unknown(g) => g.as_f64(),
        other => panic!("{family} is {other:?}"),
    }
}

fn kind(m: &Exposition, family: &str) -> PrometheusType {
    m.families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"))
        .family_type
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_live_traffic_and_parse() {
    let setup = setup_with_http(10);
    let (server, http) = start(&setup).await;
    let dns = server.local_addrs()[0];
    let report = setup.name("cluster-1", "node-1", "2.3.1");
    use hickory_proto::rr::RecordType;
    // A report twice (one stored, one duplicate), another report over TCP,
    // a name that is not a report, and an SOA query.
    udp(dns, &query(&report, RecordType::TXT, None)).await;
    udp(dns, &query(&report, RecordType::TXT, None)).await;
    let other = setup.name("cluster-2", "node-1", "2.4.1");
    tcp(dns, &query(&other, RecordType::A, None)).await;
    udp(
        dns,
        &query("nonsense.vc.example.com.", RecordType::TXT, None),
    )
    .await;
    udp(dns, &query("vc.example.com.", RecordType::SOA, None)).await;
    // Wait for the writer to commit both reports.
    let m = server.metrics().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let batches = || m.batches.load(std::sync::atomic::Ordering::Relaxed);
    while m.reports_stored.load(std::sync::atomic::Ordering::Relaxed) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "writer did not commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Then an idle commit, after which the open day's snapshot is written.
    let after = batches() + 2;
    while batches() < after {
        assert!(
            std::time::Instant::now() < deadline,
            "writer did not commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let r = get(http, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    let m = parse_metrics(&r.body);
    assert_eq!(kind(&m, "vcheckd_queries_total"), PrometheusType::Counter);
    assert_eq!(value(&m, "vcheckd_queries_total", &["udp"]), 4.0);
    assert_eq!(value(&m, "vcheckd_queries_total", &["tcp"]), 1.0);
    assert_eq!(value(&m, "vcheckd_queries_by_type_total", &["txt"]), 3.0);
    assert_eq!(value(&m, "vcheckd_queries_by_type_total", &["a"]), 1.0);
    assert_eq!(value(&m, "vcheckd_queries_by_type_total", &["soa"]), 1.0);
    assert_eq!(value(&m, "vcheckd_responses_total", &["noerror"]), 5.0);
    assert_eq!(value(&m, "vcheckd_reports_accepted_total", &[]), 3.0);
    assert_eq!(value(&m, "vcheckd_reports_stored_total", &[]), 2.0);
    // The report sent twice: an exact repeat, answered and not taken again.
    assert_eq!(value(&m, "vcheckd_reports_duplicate_total", &[]), 0.0);
    assert_eq!(value(&m, "vcheckd_intake_repeats_total", &[]), 1.0);
    assert_eq!(value(&m, "vcheckd_intake_accepted_total", &["v1"]), 2.0);
    assert_eq!(value(&m, "vcheckd_intake_refused_total", &["full"]), 0.0);
    let rejected: f64 = m.families["vcheckd_reports_rejected_total"]
        .iter_samples()
        .map(|s| match &s.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            _ => panic!(),
        })
        .sum();
    assert_eq!(rejected, 1.0);
    assert_eq!(value(&m, "vcheckd_reports_dropped_total", &[]), 0.0);
    assert_eq!(kind(&m, "vcheckd_journal_lag_bytes"), PrometheusType::Gauge);
    assert_eq!(value(&m, "vcheckd_journal_lag_bytes", &[]), 0.0);
    assert!(value(&m, "vcheckd_journal_bytes", &[]) > 0.0);
    // The processor committed at least once: a histogram with a count.
    let h = &m.families["vcheckd_processor_batch_duration_seconds"];
    assert_eq!(h.family_type, PrometheusType::Histogram);
    let PrometheusValue::Histogram(hist) = &h.iter_samples().next().unwrap().value else {
        panic!("not a histogram")
    };
    let count = hist.count.unwrap();
    assert!(count >= 1, "{hist:?}");
    assert_eq!(hist.buckets.last().unwrap().count.as_f64(), count as f64);
    // The fleet: two clusters today, on 2.3.1 and 2.4.1.
    assert_eq!(value(&m, "vcheckd_active_clusters", &["2.3.1", ZONE]), 1.0);
    assert_eq!(value(&m, "vcheckd_active_clusters", &["2.4.1", ZONE]), 1.0);
    assert_eq!(value(&m, "vcheckd_active_nodes", &["2.4.1", ZONE]), 1.0);
    assert_eq!(value(&m, "vcheckd_active_clusters_all", &[ZONE]), 2.0);
    assert_eq!(value(&m, "vcheckd_insecure_clusters", &[ZONE]), 0.0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_gauges_are_bounded_and_agree_with_stats() {
    let setup = setup_with_http(4);
    let truth = write_fleet(&setup.db_path(), 120, 25, &[ZONE]);
    let (server, http) = start(&setup).await;
    let m = parse_metrics(&get(http, "/metrics").await.body);
    let today = today();
    let (first, last) = (today - 6, today);

    let versions: BTreeMap<String, (f64, f64)> = m.families["vcheckd_active_clusters"]
        .iter_samples()
        .map(|s| {
            let labels = s.get_labelset().unwrap();
            let v = labels.get_label_value("version").unwrap().to_string();
            let PrometheusValue::Gauge(g) = s.value else {
                panic!()
            };
            assert_eq!(labels.get_label_value("zone"), Some(ZONE));
            let nodes = value(&m, "vcheckd_active_nodes", &[&v, ZONE]);
            (v, (g.as_f64(), nodes))
        })
        .collect();
    // Top 4 by name and "other": the label set stays small however many
    // versions run (25 pinned old ones here besides the releases).
    assert_eq!(versions.len(), 5, "{versions:?}");
    assert!(versions.contains_key("other"));
    // Against the generator's own counts.
    let clusters_sum: f64 = versions.values().map(|(c, _)| c).sum();
    let nodes_sum: f64 = versions.values().map(|(_, n)| n).sum();
    assert!((clusters_sum - truth.active_clusters(first, last) as f64).abs() < 1e-6);
    assert_eq!(nodes_sum, truth.active_nodes(first, last) as f64);
    assert_eq!(
        value(&m, "vcheckd_active_clusters_all", &[ZONE]),
        truth.active_clusters(first, last) as f64
    );
    let by_version = truth.nodes_by_version(first, last);
    for (v, (_, nodes)) in &versions {
        if v != "other" {
            assert_eq!(*nodes, by_version[v] as f64, "{v}");
        }
    }
    // And against vcheckd::stats' exact path.
    let v = stats::versions(&load(&setup.db_path(), first, last, ZONE), first, last);
    for row in v.grouped(4) {
        let (clusters, nodes) = versions[&row.version];
        assert!((clusters - row.cluster_share).abs() < 1e-9, "{row:?}");
        assert_eq!(nodes, row.nodes as f64);
    }
    assert_eq!(
        value(&m, "vcheckd_mixed_clusters", &[ZONE]),
        v.mixed_clusters as f64
    );
    assert!(v.mixed_clusters > 0, "the fleet upgrades node by node");
    assert_eq!(
        value(&m, "vcheckd_insecure_clusters", &[ZONE]),
        v.insecure_clusters as f64
    );
    assert_eq!(
        value(&m, "vcheckd_insecure_nodes", &[ZONE]),
        v.insecure_nodes as f64
    );
    assert!(v.insecure_nodes > 0);
    server.shutdown().await.unwrap();
}

/// The rows of one zone, read for `vcheckd::stats`' exact path (the one
/// that merges node-days in memory): what the snapshots must agree with.
fn load(db: &std::path::Path, first: i64, last: i64, zone: &str) -> Dataset {
    let reader = SqliteReader::open(db).unwrap();
    Dataset::load(
        &[&reader as &dyn StatsReader],
        &Scope {
            first_day: first,
            last_day: last,
            zone: ZoneName::new(zone).unwrap(),
        },
    )
    .unwrap()
}

const ORG: &str = "vc.example.org";

fn per_zone<T: serde::Serialize>(f: impl Fn(&str) -> T) -> serde_json::Value {
    json(&[ZONE, ORG].map(f))
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

/// Equal JSON, floats up to rounding: clusters by node share are sums of
/// fractions whose order (hash maps) varies between two computations.
fn assert_same(got: &serde_json::Value, want: &serde_json::Value) {
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value::*;
        match (a, b) {
            (Number(x), Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
            }
            (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
            (Object(x), Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }
    assert!(same(got, want), "got {got}\nwant {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_equals_stats_for_the_same_data() {
    let setup = setup_with_http(10);
    let truth = write_fleet(&setup.db_path(), 80, 0, &[ZONE, "vc.example.org"]);
    let (server, http) = start(&setup).await;
    let db = setup.db_path();
    let today = today();

    // versions: default window (7 days, from the snapshots), one result
    // per zone, equal to the exact path.
    let r = get(http, "/api/v1/versions").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let got = r.json();
    let want = per_zone(|z| stats::versions(&load(&db, today - 6, today, z), today - 6, today));
    assert_same(&got, &want);
    // Numbers known from the generator, not from the code under test.
    let zones = got.as_array().unwrap();
    assert_eq!(zones[0]["zone"], ZONE);
    assert_eq!(zones[1]["zone"], ORG);
    let sum = |key: &str| zones.iter().map(|z| z[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        sum("active_clusters"),
        truth.active_clusters(today - 6, today) as u64
    );
    assert_eq!(
        sum("active_nodes"),
        truth.active_nodes(today - 6, today) as u64
    );
    let mut nodes: BTreeMap<String, u64> = BTreeMap::new();
    for zone in zones {
        for r in zone["rows"].as_array().unwrap() {
            let n = r["nodes"].as_u64().unwrap();
            if n > 0 {
                *nodes
                    .entry(r["version"].as_str().unwrap().to_string())
                    .or_default() += n;
            }
        }
    }
    assert_eq!(nodes, truth.nodes_by_version(today - 6, today));

    // Closed days' snapshots (windows of 1 to 92 days ending in the past),
    // and a longer window ending today (from the node states), against the
    // exact path.
    for (since, until) in [
        (today - 9, today - 3),
        (today - 32, today - 3),
        (today - 4, today - 4),
        (today - 20, today - 3),
        (today - 120, today),
    ] {
        let q = format!(
            "since={}&until={}&zone=VC.Example.ORG.",
            date_of_day(since),
            date_of_day(until)
        );
        let got = get(http, &format!("/api/v1/versions?{q}")).await.json();
        let want = stats::versions(&load(&db, since, until, ORG), since, until);
        assert_same(&got, &json(&[&want]));
        assert!(want.active_clusters > 0);
    }

    let (since, until) = (today - 20, today - 3);
    let q = format!(
        "since={}&until={}&zone=vc.example.org",
        date_of_day(since),
        date_of_day(until)
    );
    // summary: snapshots for the window and the span before it.
    let got = get(http, &format!("/api/v1/summary?{q}")).await.json();
    let summary_of = |z: &str, first: i64, last: i64| {
        let reader = SqliteReader::open(&db).unwrap();
        let data = Dataset::load(
            &[&reader as &dyn StatsReader],
            &stats::summary_scope(first, last, ZoneName::new(z).unwrap()),
        )
        .unwrap();
        stats::summary(&data, first, last)
    };
    assert_same(&got, &json(&[summary_of(ORG, since, until)]));
    let got = get(http, "/api/v1/summary").await.json();
    assert_same(&got, &per_zone(|z| summary_of(z, today - 6, today)));
    assert_eq!(got[0]["anonymous_reports"], 3 * 7);
    let q120 = format!("since={}", date_of_day(today - 119));
    let got = get(http, &format!("/api/v1/summary?{q120}")).await.json();
    assert_same(&got, &per_zone(|z| summary_of(z, today - 119, today)));

    // trend: default 30 days by day, and by (whole) week.
    let got = get(http, "/api/v1/trend").await.json();
    let mut want = Vec::new();
    for z in [ZONE, ORG] {
        want.extend(stats::trend(
            &load(&db, today - 29, today, z),
            today - 29,
            today,
            Bucket::Day,
        ));
    }
    assert_same(&got, &json(&want));
    // Days are ISO dates in JSON, as everywhere else.
    assert_eq!(
        got.as_array().unwrap().first().unwrap()["date"],
        vcheckd::clock::date_of_day(today - 29)
    );
    let got = get(http, &format!("/api/v1/trend?{q}&by=week"))
        .await
        .json();
    let data = load(&db, since - 6, until, ORG);
    assert_same(
        &got,
        &json(&stats::trend(&data, since, until, Bucket::Week)),
    );

    // adoption of the newest release, as `stats adoption 2.4.1` computes it.
    let got = get(http, "/api/v1/adoption/v2.4.1").await.json();
    let released = today - 8;
    assert_eq!(got[0]["released"], vcheckd::clock::date_of_day(released));
    let want = per_zone(|z| {
        let data = load(&db, released - stats::ADOPTION_WINDOW_DAYS + 1, today, z);
        stats::adoption(&data, &semver::Version::new(2, 4, 1), today)
    });
    assert_same(&got, &want);
    assert!(got[0]["days_to_50"].is_number());

    // Errors: JSON with a reason, and the right status.
    for (path, status, needle) in [
        ("/api/v1/versions?since=yesterday", 400, "YYYY-MM-DD"),
        ("/api/v1/adoption/2.4.1?until=9999-12-31", 400, "future"),
        (
            "/api/v1/versions?sinse=2026-01-01",
            400,
            "unknown parameter",
        ),
        (
            "/api/v1/versions?since=2026-02-02&until=2026-02-01",
            400,
            "after",
        ),
        (
            "/api/v1/versions?since=1990-01-01&until=2026-02-01",
            400,
            "longer",
        ),
        ("/api/v1/trend?by=month", 400, "day or week"),
        ("/api/v1/adoption/9.9.9", 404, "no report"),
        ("/api/v1/adoption/latest", 400, "semver"),
        (
            "/api/v1/versions?zone=vc.example.net",
            400,
            "zones: vc.example.com, vc.example.org",
        ),
    ] {
        let r = get(http, path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let e = r.json();
        assert!(e["error"].as_str().unwrap().contains(needle), "{path}: {e}");
    }
    assert_eq!(get(http, "/api/v2/versions").await.status, 404);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_draws_the_charts_and_groups_the_tail() {
    let setup = setup_with_http(6);
    let truth = write_fleet(&setup.db_path(), 400, 110, &[ZONE]);
    let (server, http) = start(&setup).await;
    let r = get(http, "/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = &r.body;
    for id in [
        "chart-versions",
        "chart-adoption",
        "chart-activity",
        "chart-insecure",
        "chart-release",
    ] {
        assert!(page.contains(&format!("<svg id=\"{id}\"")), "{id} missing");
    }
    // Nothing is fetched from elsewhere, and there is no script.
    assert!(!page.contains("<script"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    // Over a hundred versions: 6 named bars and "other", in each of the
    // chart's two drawings (a laptop's and a phone's width).
    let bars = page.matches("<g class=\"bar\">").count();
    assert_eq!(bars, 2 * 7);
    assert!(page.contains(">other</text>"));
    // The stacked chart: the named versions of the window and "other".
    let layers = page.matches("<polygon class=\"layer\"").count();
    assert_eq!(layers, 2 * 7, "six named layers and other, twice");
    // The full list stays available, folded.
    let all = truth.versions(today() - 6, today()).len();
    assert!(all > 100, "{all}");
    assert!(
        page.contains(&format!(
            "<details id=\"all-versions\"><summary>All {all} versions"
        )),
        "{all}"
    );
    assert!(page.contains("Adoption of 2.4.1"));

    // Data from the query string is escaped; a bad one is a 400 page.
    let r = get(http, "/?zone=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(r.status, 400);
    assert!(!r.body.contains("<script>alert"));
    assert!(r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(r.body.contains("zones: vc.example.com"), "{}", r.body);
    let r = get(http, "/?since=last-week").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("expected YYYY-MM-DD"));
    let r = get(http, "/?top=0").await;
    assert_eq!(r.status, 400);
    // The release whose adoption is shown can be chosen.
    let r = get(http, "/?version=2.3.1").await;
    assert!(r.body.contains("Adoption of 2.3.1"));
    let r = get(http, "/?version=9.9.9").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("No report has carried version 9.9.9 yet."));
    // A long window is charted by week.
    let r = get(http, &format!("/?since={}", date_of_day(today() - 200))).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("per week"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_is_off_unless_configured_and_stops_with_the_server() {
    let plain = Setup::new();
    let config = Config::load(&plain.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    assert_eq!(server.http_addr(), None);
    server.shutdown().await.unwrap();

    let setup = setup_with_http(10);
    let (server, http) = start(&setup).await;
    assert_eq!(get(http, "/metrics").await.status, 200);
    // A connection left open does not hold the shutdown up.
    let _idle = tokio::net::TcpStream::connect(http).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown in time")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
}

#[test]
fn serve_flag_overrides_the_http_address() {
    let setup = Setup::new();
    let (mut child, rx) = spawn_serve(
        setup.dir.path(),
        &[
            "--config",
            "config.toml",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no HTTP address logged");
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.trim_end_matches('/').parse().unwrap();
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(get(addr, "/api/v1/summary"));
    assert_eq!(r.status, 200, "{}", r.body);
    // No report yet: no zone has data.
    assert_eq!(r.json(), serde_json::json!([]));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// `vcheckd stats --format csv`: one header, then a row per zone and
/// version with the numbers `--format json` gives, days as ISO dates in
/// both (and quoting as RFC 4180 says, read back by the csv crate).
#[test]
fn stats_csv_is_one_table_for_every_zone_and_json_has_iso_dates() {
    let setup = Setup::new();
    write_fleet(&setup.db_path(), 40, 0, &[ZONE, ORG]);
    let stats = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcheckd"))
            .arg("stats")
            .args(args)
            .arg("--db")
            .arg(setup.db_path())
            .env_remove("VCHECKD_DB")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = stats(&["versions", "--format", "csv"]);
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        csv.headers().unwrap(),
        vec![
            "zone",
            "version",
            "status",
            "clusters",
            "clusters_by_node_share",
            "nodes",
            "reports",
            "anonymous"
        ]
    );
    let rows: Vec<Vec<String>> = csv
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let json: serde_json::Value =
        serde_json::from_str(&stats(&["versions", "--format", "json"])).unwrap();
    let mut want = Vec::new();
    for zone in json.as_array().unwrap() {
        assert_eq!(zone["until"], date_of_day(today()), "{zone}");
        assert_eq!(zone["since"], date_of_day(today() - 6), "{zone}");
        for r in zone["rows"].as_array().unwrap() {
            want.push(vec![
                zone["zone"].as_str().unwrap().to_string(),
                r["version"].as_str().unwrap().to_string(),
                r["status"].as_u64().map_or("-".into(), |s| s.to_string()),
                r["clusters"].to_string(),
                format!("{:.2}", r["cluster_share"].as_f64().unwrap()),
                r["nodes"].to_string(),
                r["reports"].to_string(),
                r["anonymous_reports"].to_string(),
            ]);
        }
    }
    assert!(want.iter().any(|r| r[0] == ZONE) && want.iter().any(|r| r[0] == ORG));
    assert_eq!(rows, want);
    // A trend: one row per zone, day and version, the day as a date.
    let trend = stats(&["trend", "--format", "csv"]);
    let first = trend.lines().nth(1).unwrap();
    assert!(
        first.contains(&format!(",{},", date_of_day(today() - 29))),
        "{first}"
    );
}
