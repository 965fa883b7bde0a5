//! The ClickHouse shipper and reader against real ClickHouse servers
//! started here on loopback (Debian's clickhouse-server, 18.16): a
//! simulated fleet shipped from two name servers' journals with
//! overlapping deliveries gives the numbers SQLite gives and the
//! simulator's truth, on one server and on two shards behind a Distributed
//! table (one clickhouse-server per shard, queried once with the shard of
//! the server asked read in-process and once with every shard read over
//! TCP, so that both of 18.16's paths run on every machine); and an outage
//! loses nothing while DNS keeps answering.
//!
//! Without clickhouse-server the tests say "skipped" and pass, unless
//! VCHECKD_INTEROP_REQUIRE=1 (set by .ci/run), where they fail.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{query, udp, Setup};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use vcheckd::clickhouse::{self, ClickHouseUrl, Client, Rollup, Shipper, ShipperConfig, Topology};
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::hint::Status;
use vcheckd::journal::{Journal, JournalConfig};
use vcheckd::metrics::Metrics;
use vcheckd::protocol::{Identity, Key, KeyId, Payload, Report, ReportId, ZoneName};
use vcheckd::simulate::{db, Fleet, Release, SimConfig, SimReport, Truth};
use vcheckd::stats::{Bucket, Source};
use vcheckd::store::{ReceivedReport, Store};

const SERVER: &str = "/usr/sbin/clickhouse-server";
const DAY: i64 = 86_400;
const NOW: i64 = 20_500 * DAY + 13 * 3_600 + 17;

/// Whether to run: the server exists, or it is missing and that is
/// allowed here (then the caller returns).
fn available(test: &str) -> bool {
    if Path::new(SERVER).exists() {
        return true;
    }
    assert!(
        std::env::var("VCHECKD_INTEROP_REQUIRE").as_deref() != Ok("1"),
        "{SERVER} is missing and VCHECKD_INTEROP_REQUIRE=1: install clickhouse-server"
    );
    eprintln!("{test}: skipped, {SERVER} is not installed (apt-get install clickhouse-server)");
    false
}

/// A port free now, from below Linux's ephemeral range (32768-60999): a
/// port the kernel hands out for binding to 0 is released before
/// ClickHouse binds it, and meanwhile any outgoing connection (the tests
/// make many) may take it as its local port, and ClickHouse then exits.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let draw = RandomState::new().hash_one(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = 20_000 + (draw % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One ClickHouse server of our own, from a config in a temp folder.
struct ClickHouse {
    dir: PathBuf,
    http: u16,
    child: Option<Child>,
}

impl ClickHouse {
    /// `remote_servers`: XML for a cluster, or empty.
    fn start(dir: &Path, remote_servers: &str, ports: (u16, u16)) -> Self {
        Self::start_with(dir, remote_servers, ports, "")
    }

    /// As [`ClickHouse::start`], with `profile`: settings (XML) of the
    /// default profile, which every query of vcheckd's runs under.
    fn start_with(dir: &Path, remote_servers: &str, ports: (u16, u16), profile: &str) -> Self {
        let (http, tcp) = ports;
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("users.xml"),
            format!(
                "<yandex><profiles><default>{profile}</default></profiles><users><default><password></password>\
                 <networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>\
                 </default></users><quotas><default/></quotas></yandex>"
            ),
        )
        .unwrap();
        let interserver = free_port();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<yandex><logger><level>warning</level><log>{d}/log.txt</log><errorlog>{d}/err.txt</errorlog></logger>\
                 <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><interserver_http_port>{interserver}</interserver_http_port>\
                 <listen_host>127.0.0.1</listen_host><path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>\
                 <users_config>users.xml</users_config><default_profile>default</default_profile>\
                 <default_database>default</default_database><mark_cache_size>268435456</mark_cache_size>\
                 <remote_servers>{remote_servers}</remote_servers></yandex>"
            ),
        )
        .unwrap();
        let mut ch = ClickHouse {
            dir: dir.to_path_buf(),
            http,
            child: None,
        };
        ch.resume();
        ch
    }

    fn url(&self, db: &str) -> ClickHouseUrl {
        format!("clickhouse://127.0.0.1:{}/{db}", self.http)
            .parse()
            .unwrap()
    }

    /// Starts the process and waits until it answers.
    fn resume(&mut self) {
        let child = Command::new(SERVER)
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let client = Client::new(&self.url("default"), Duration::from_secs(2));
        let started = Instant::now();
        // What the server said, for the failure message (the temp folder
        // is gone once the test ends).
        let errors = || {
            let text = std::fs::read_to_string(self.dir.join("err.txt")).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(5)..].join("\n")
        };
        while client.query("SELECT 1").is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "ClickHouse exited ({status}) before answering:\n{}",
                    errors()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "ClickHouse did not answer within 60 s:\n{}",
                errors()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the process (an outage) and waits for it to end.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

fn fleet() -> Fleet {
    let schedule = ["2.2.0@-40", "2.3.0@-10", "2.3.1@8", "2.4.0@18", "2.4.1@26"]
        .iter()
        .map(|r| Release::parse(r).unwrap())
        .collect();
    Fleet::generate(&SimConfig {
        clusters: 80,
        days: 35,
        anonymous_share: 0.06,
        never_upgrade_share: 0.05,
        late_join_share: 0.2,
        leave_share: 0.12,
        miss_share: 0.08,
        duplicate_share: 0.05,
        median_lag_days: 3.0,
        ..SimConfig::new(5, NOW, schedule, common::releases())
    })
    .unwrap()
}

fn key() -> Key {
    Key::new(KeyId(7), [42; 32])
}

fn zone() -> ZoneName {
    ZoneName::new("vc.example.com").unwrap()
}

/// The deliveries of `reports` as the answer path hands them over.
fn received(fleet: &Fleet, reports: &[SimReport]) -> Vec<ReceivedReport> {
    let ids = db::identities(fleet, &key());
    let mut out = Vec::new();
    for r in reports {
        let one = ReceivedReport {
            report: Report {
                id: r.id,
                key_id: key().id,
                payload: Payload {
                    timestamp: u64::try_from(r.time).unwrap_or(0),
                    identity: ids[r.node as usize],
                    version: fleet.version(r.version).clone(),
                },
            },
            zone: zone(),
            received_at: r.time,
            status: fleet.status[usize::from(r.version)],
        };
        for _ in 0..r.deliveries {
            out.push(one.clone());
        }
    }
    out
}

/// A name server's counters while it shipped: duplicates, names that were
/// not reports (base32), dropped reports.
#[derive(Clone, Copy)]
struct Counted {
    duplicate: u64,
    rejected: u64,
    dropped: u64,
}

/// One name server: its reports through its journal and the real
/// shipper into ClickHouse (the SQLite side written by the simulator's
/// database sink, the processor's own commit), with `counted` on its
/// counters.
fn ship(
    dir: &Path,
    name: &str,
    reports: &[ReceivedReport],
    counted: Counted,
    client: &Client,
    topology: &Topology,
) {
    let journal_dir = dir.join(format!("journal-{name}"));
    let journal = Arc::new(
        Journal::open(JournalConfig {
            dir: journal_dir.clone(),
            ..JournalConfig::default()
        })
        .unwrap(),
    );
    let mut buf = Vec::new();
    for r in reports {
        r.to_record(&mut buf).unwrap();
        journal.append(&buf).unwrap();
    }
    let metrics = Arc::new(Metrics::default());
    metrics
        .reports_duplicate
        .store(counted.duplicate, Ordering::Relaxed);
    metrics
        .reports_dropped
        .store(counted.dropped, Ordering::Relaxed);
    for _ in 0..counted.rejected {
        metrics.count_rejected(&vcheckd::protocol::DecodeError::Base32);
    }
    let shipper = Shipper::start(
        journal.clone(),
        journal_dir,
        metrics.clone(),
        ShipperConfig {
            client: client.clone(),
            topology: topology.clone(),
            server: name.into(),
            max_batch: 997,
            interval: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            replay_window: vcheckd::replay::ReplayWindow::DEFAULT,
        },
    )
    .unwrap();
    let started = Instant::now();
    while metrics.shipped_reports.load(Ordering::Relaxed) < reports.len() as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "shipping stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    shipper.stop(Duration::from_secs(5));
    journal.close(Duration::from_secs(5));
}

/// Two servers each got two thirds of the fleet's reports (a third went
/// to both); each kept its SQLite database and shipped to ClickHouse.
/// Every statistic from ClickHouse equals the two databases merged, and
/// the simulator's truth.
fn compare(client: &Client, topology: &Topology) {
    let fleet = fleet();
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let counted = [
        Counted {
            duplicate: 7,
            rejected: 3,
            dropped: 1,
        },
        Counted {
            duplicate: 4,
            rejected: 2,
            dropped: 0,
        },
    ];
    // Two anonymous reports of one version on a day after the fleet's,
    // answered different statuses (a release list changed between them):
    // the day's status is the latest's, in both stores.
    let anon_day = fleet.end_day + 3;
    let extra: Vec<ReceivedReport> = [(3_600, Status::UpgradeAvailable), (7_200, Status::UpToDate)]
        .into_iter()
        .enumerate()
        .map(|(i, (at, status))| ReceivedReport {
            report: Report {
                id: ReportId([0xa0 + i as u8; 12]),
                key_id: key().id,
                payload: Payload {
                    timestamp: u64::try_from(anon_day * DAY + at).unwrap(),
                    identity: Identity::Withheld,
                    version: semver::Version::parse("2.4.1").unwrap(),
                },
            },
            zone: zone(),
            received_at: anon_day * DAY + at,
            status,
        })
        .collect();
    for ((name, skip), counted) in [("ns1", 2), ("ns2", 0)].into_iter().zip(counted) {
        let mine: Vec<SimReport> = fleet
            .history
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != skip)
            .map(|(_, r)| *r)
            .collect();
        let path = dir.path().join(format!("{name}.sqlite"));
        let mut store = Store::open(&path).unwrap();
        db::write(&fleet, &mine, &key(), &zone(), &mut store).unwrap();
        let mut deliveries = received(&fleet, &mine);
        if name == "ns1" {
            store.insert_batch(&extra).unwrap();
            store.flush_open_day().unwrap();
            deliveries.extend(extra.iter().cloned());
        }
        drop(store);
        paths.push(path);
        ship(dir.path(), name, &deliveries, counted, client, topology);
    }
    // Statistics from ClickHouse read the rollup: none yet is an error
    // that says what to run.
    let early = Source::clickhouse(client.url(), Duration::from_secs(60))
        .zones()
        .unwrap_err()
        .to_string();
    assert!(early.contains("vcheckd clickhouse rollup"), "{early}");
    // Two servers' rollups started at the same moment: one runs, the
    // other finds the lease held and skips (the outputs below equal
    // SQLite's). Never both; neither only when both claims were slower
    // than the lease trusts (a very loaded machine), and then the race is
    // run again.
    let mut attempts = 0;
    let (mut ran, skipped) = loop {
        attempts += 1;
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = ["ns1", "ns2"]
            .into_iter()
            .map(|name| {
                let (client, topology, barrier) =
                    (client.clone(), topology.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut job = Rollup::new(client, topology, 900)
                        .with_lease(name, Duration::from_secs(900));
                    barrier.wait();
                    let done = job.run(vcheckd::clock::unix_now(), None);
                    (job, done)
                })
            })
            .collect();
        let mut ran = Vec::new();
        let mut skipped = Vec::new();
        for racer in racers {
            match racer.join().unwrap() {
                (job, Ok(done)) => ran.push((job, done)),
                (_, Err(e)) => skipped.push(e),
            }
        }
        assert!(ran.len() <= 1, "two rollups ran at once");
        if ran.len() == 1 || attempts == 3 {
            break (ran, skipped);
        }
    };
    assert_eq!((ran.len(), skipped.len()), (1, 1), "{skipped:?}");
    let (mut job, done) = ran.pop().unwrap();
    match &skipped[0] {
        clickhouse::ClickHouseError::RollupBusy { holder, .. } => {
            assert_eq!(holder, job.holder())
        }
        e => panic!("the other rollup failed: {e}"),
    }
    assert_eq!(done.closed.map(|c| c.0), Some(fleet.start_day));
    job.release().unwrap();
    let sqlite = Source::open(&paths).unwrap();
    let ch = Source::clickhouse(client.url(), Duration::from_secs(60));
    let truth = Truth::of_history(&fleet);
    let z = zone();
    assert_eq!(ch.zones().unwrap(), vec![z.clone()]);
    let (start, end) = (fleet.start_day, fleet.end_day);
    for (first, last) in [
        (end, end),
        (end - 6, end),
        (end - 29, end),
        (start + 10, start + 20),
        (start, start + 6),
        (start, end),
    ] {
        let what = format!("{first}..{last}");
        // Merged SQLite files sum anonymous reports (a copy that reached
        // both servers counts twice) and each server's duplicates;
        // ClickHouse counts each report once, and has the counters the
        // servers shipped (dated the day they shipped, today, checked
        // below): those figures are held to the truth instead.
        let (a, mut b) = (
            ch.summary(&z, first, last).unwrap(),
            sqlite.summary(&z, first, last).unwrap(),
        );
        let t = truth.summary(first, last);
        assert_eq!(
            (a.reports, a.anonymous_reports, a.duplicates),
            (t.reports, t.anonymous_reports, 0),
            "summary {what}: reports against the truth"
        );
        (b.reports, b.anonymous_reports, b.duplicates) = (a.reports, a.anonymous_reports, 0);
        assert_eq!(a, b, "summary {what}");
        assert_eq!(
            (a.new_clusters, a.gone_clusters),
            (t.new_clusters, t.gone_clusters),
            "summary {what} against the truth"
        );
        let (a, mut b) = (
            ch.versions(&z, first, last).unwrap(),
            sqlite.versions(&z, first, last).unwrap(),
        );
        let t = truth.versions(first, last);
        assert_eq!(a.rows.len(), t.rows.len(), "versions {what}");
        for ((ra, rb), rt) in a.rows.iter().zip(b.rows.iter_mut()).zip(&t.rows) {
            assert_eq!(
                (&ra.version, ra.reports, ra.anonymous_reports),
                (&rt.version, rt.reports, rt.anonymous_reports),
                "versions {what}: reports against the truth"
            );
            (rb.reports, rb.anonymous_reports) = (ra.reports, ra.anonymous_reports);
        }
        assert_eq!(a, b, "versions {what}");
        assert_eq!(
            (
                a.active_clusters,
                a.active_nodes,
                a.mixed_clusters,
                a.insecure_clusters,
                a.insecure_nodes
            ),
            (
                t.active_clusters,
                t.active_nodes,
                t.mixed_clusters,
                t.insecure_clusters,
                t.insecure_nodes
            ),
            "versions {what} against the truth"
        );
    }
    let (a, b) = (
        ch.versions(&z, anon_day, anon_day).unwrap(),
        sqlite.versions(&z, anon_day, anon_day).unwrap(),
    );
    assert_eq!(a.rows, b.rows, "an anonymous-only version day");
    assert_eq!(
        a.rows
            .iter()
            .map(|r| (r.anonymous_reports, r.status))
            .collect::<Vec<_>>(),
        vec![(2, Some(Status::UpToDate))],
        "an anonymous-only version day: the latest report's status"
    );
    for bucket in [Bucket::Day, Bucket::Week] {
        assert_eq!(
            ch.trend(&z, start, end, bucket).unwrap(),
            sqlite.trend(&z, start, end, bucket).unwrap(),
            "trend by {bucket:?}"
        );
    }
    for v in ["2.3.1", "2.4.1", "9.9.9"] {
        let v = semver::Version::parse(v).unwrap();
        assert_eq!(
            ch.adoption(&z, &v, end).unwrap(),
            sqlite.adoption(&z, &v, end).unwrap(),
            "adoption of {v}"
        );
    }
    // The servers' counters, shipped today, summed over both.
    let today = vcheckd::clock::today().0;
    let s = ch.summary(&z, today, today).unwrap();
    let sum = |f: fn(&Counted) -> u64| counted.iter().map(f).sum::<u64>();
    assert_eq!(
        (s.duplicates, s.rejected_names, s.dropped),
        (
            sum(|c| c.duplicate),
            sum(|c| c.rejected),
            sum(|c| c.dropped)
        ),
        "the servers' counters"
    );
    // A third of the reports reached both servers: ClickHouse holds every
    // delivery, and counts each report once.
    let rows = client
        .query("SELECT count(), uniqExact(client_time, report_id) FROM reports")
        .unwrap();
    let distinct: u64 = rows[0][1].parse().unwrap();
    let deliveries: u64 = rows[0][0].parse().unwrap();
    assert_eq!(distinct, (fleet.history.len() + extra.len()) as u64);
    assert!(deliveries > distinct, "{deliveries} deliveries");
    rollup_again_and_late_reports(client, topology, &fleet);
}

/// Every statistic compared above, as text.
fn outputs(ch: &Source, fleet: &Fleet) -> Vec<String> {
    let z = zone();
    let (start, end) = (fleet.start_day, fleet.end_day);
    let mut out = Vec::new();
    for (first, last) in [(end, end), (end - 6, end), (start, end)] {
        out.push(format!("{:?}", ch.summary(&z, first, last).unwrap()));
        out.push(format!("{:?}", ch.versions(&z, first, last).unwrap()));
    }
    for bucket in [Bucket::Day, Bucket::Week] {
        out.push(format!("{:?}", ch.trend(&z, start, end, bucket).unwrap()));
    }
    for v in ["2.3.1", "2.4.1"] {
        let v = semver::Version::parse(v).unwrap();
        out.push(format!("{:?}", ch.adoption(&z, &v, end).unwrap()));
    }
    out
}

/// One more delivery of a stored report under a new id (a late report),
/// received at `at`.
fn late_report(client: &Client, at: i64, id: &str) {
    let rows = client
        .query(
            "SELECT zone, cluster, node, client_time, version, version_key, status
             FROM reports WHERE anonymous = 0 LIMIT 1",
        )
        .unwrap();
    let r = &rows[0];
    let row = format!(
        r#"{{"zone":"{}","cluster":"{}","node":"{}","client_time":{},"report_id":"{id}","anonymous":0,"received_at":{at},"day":{},"version":"{}","version_key":"{}","status":{},"key_id":7,"server":"late","keep":1}}"#,
        r[0],
        r[1],
        r[2],
        at,
        at.div_euclid(DAY),
        r[4],
        r[5],
        r[6]
    );
    client
        .insert_json(
            "reports",
            row.as_bytes(),
            &[("insert_distributed_sync", "1")],
        )
        .unwrap();
}

/// Running the rollup again (every day closed again) changes no output;
/// a late report for a recently closed day is taken in by the next run,
/// and one for an older day by a run `--from` it.
fn rollup_again_and_late_reports(client: &Client, topology: &Topology, fleet: &Fleet) {
    let ch = || Source::clickhouse(client.url(), Duration::from_secs(60));
    let before = outputs(&ch(), fleet);
    let now = vcheckd::clock::unix_now();
    let mut job = Rollup::new(client.clone(), topology.clone(), 900);
    let done = job.run(now, Some(fleet.start_day)).unwrap();
    assert_eq!(done.closed.map(|c| c.0), Some(fleet.start_day));
    assert_eq!(outputs(&ch(), fleet), before, "the rollup run again");
    let closed = done.closed.unwrap().1;
    // And by another server's job, which has no states in memory: it
    // reads the node states kept for the day before the one it starts.
    // (Its node states sent 7 rows per insert, as a million nodes' are
    // sent 100,000 per insert: every one arrives.)
    job.release().unwrap();
    let mut other = Rollup::new(client.clone(), topology.clone(), 900).with_state_chunk_rows(7);
    let done = other.run(now, Some(closed - 2)).unwrap();
    assert_eq!(done.closed, Some((closed - 2, closed)), "{done:?}");
    other.release().unwrap();
    assert_eq!(outputs(&ch(), fleet), before, "the rollup run by another");
    // Two queries, not one with a scalar subquery: ClickHouse 18.16 fails
    // a scalar subquery in the SELECT list of a query over a Distributed
    // table ("Not found column _subquery1 in block"), whichever way its
    // shards are read (see src/clickhouse/schema.rs).
    let count = |sql: String| -> u64 { client.query(&sql).unwrap()[0][0].parse().unwrap() };
    let saved = count(format!(
        "SELECT nodes FROM rollup_days FINAL WHERE day = {closed}"
    ));
    let states = count(format!(
        "SELECT count() FROM node_state FINAL WHERE as_of = {closed}"
    ));
    assert_eq!(saved, states, "node states saved in chunks");
    assert!(saved > 7, "{saved} node states");
    // Node states that do not read back as many as were saved are not
    // trusted: the close starts from the kept day before them.
    let marker = client
        .query(&format!(
            "SELECT closed, reports, rows, state_day, computed_at, nodes FROM rollup_days FINAL
             WHERE day = {}",
            closed - 3
        ))
        .unwrap();
    let m = &marker[0];
    let row = format!(
        r#"{{"day":{},"closed":{},"reports":{},"rows":{},"state_day":{},"computed_at":{},"nodes":{}}}"#,
        closed - 3,
        m[0],
        m[1],
        m[2],
        m[3],
        m[4].parse::<u64>().unwrap() + 1,
        m[5].parse::<i64>().unwrap() + 1
    );
    client
        .insert_json(
            "rollup_days",
            row.as_bytes(),
            &[("insert_distributed_sync", "1")],
        )
        .unwrap();
    let mut other = Rollup::new(client.clone(), topology.clone(), 900);
    let done = other.run(now, Some(closed - 2)).unwrap();
    other.release().unwrap();
    assert_eq!(done.closed, Some((closed - 3, closed)), "{done:?}");
    assert_eq!(
        outputs(&ch(), fleet),
        before,
        "after states read back short"
    );

    let z = zone();
    let reports = |day: i64| ch().summary(&z, day, day).unwrap().reports;
    let nodes = |day: i64| ch().versions(&z, day, day).unwrap().active_nodes;
    let (was, was_nodes) = (reports(closed), nodes(closed));
    late_report(client, closed * DAY + 3_600, "aaaaaaaaaaaaaaaaaaaaaaa1");
    let done = job.run(now, None).unwrap();
    assert_eq!(done.late_from, Some(closed), "{done:?}");
    assert_eq!(reports(closed), was + 1, "a late report of a closed day");
    // The day had no report: its node is active on it now.
    assert_eq!(
        nodes(closed),
        was_nodes + 1,
        "active nodes after a late report"
    );
    // The oldest day checked: closed again from it, starting from the
    // node states of the day before (kept one day longer than the days
    // checked), not from the first day.
    let oldest = closed - clickhouse::CHECKED_DAYS + 1;
    let was = reports(oldest);
    late_report(client, oldest * DAY + 3_600, "aaaaaaaaaaaaaaaaaaaaaaa3");
    job.release().unwrap();
    let mut other = Rollup::new(client.clone(), topology.clone(), 900);
    let done = other.run(now, None).unwrap();
    other.release().unwrap();
    assert_eq!(done.late_from, Some(oldest), "{done:?}");
    assert_eq!(done.closed, Some((oldest, closed)), "{done:?}");
    assert_eq!(
        reports(oldest),
        was + 1,
        "a late report, oldest day checked"
    );
    // Older than the days every run checks: closed again from it by hand.
    let end = fleet.end_day;
    let was = reports(end);
    late_report(client, end * DAY + 7_200, "aaaaaaaaaaaaaaaaaaaaaaa2");
    assert_eq!(job.run(now, None).unwrap().late_from, None);
    assert_eq!(reports(end), was);
    job.run(now, Some(end)).unwrap();
    assert_eq!(
        reports(end),
        was + 1,
        "a late report, rolled up --from its day"
    );
    // Reports received for days before the first day rolled up: a run
    // --from before them starts on the first of them, and says so.
    let early = fleet.start_day - 5;
    late_report(client, early * DAY + 3_600, "aaaaaaaaaaaaaaaaaaaaaaa4");
    let done = job.run(now, Some(early - 5)).unwrap();
    assert_eq!(done.from_start, Some(early), "{done:?}");
    assert_eq!(done.closed.map(|c| c.0), Some(early), "{done:?}");
    assert_eq!(reports(early), 1, "a report before the first day rolled up");
    job.release().unwrap();
}

#[test]
fn one_server_gives_the_numbers_sqlite_gives() {
    if !available("one_server_gives_the_numbers_sqlite_gives") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(&dir.path().join("ch"), "", (free_port(), free_port()));
    let client = Client::new(&ch.url("vc"), Duration::from_secs(30));
    compare(&client, &Topology::Single);
    // Migrating again changes nothing.
    clickhouse::migrate(&client, &Topology::Single).unwrap();
    from_schema_3(&[&client], &Topology::Single);
}

/// How the server asked reads its own shard: in-process (18.16's default,
/// `prefer_localhost_replica` = 1, where it recognises the shard's address
/// as its own) or over TCP like the other shard.
#[derive(Clone, Copy, Debug)]
enum OwnShard {
    InProcess,
    OverTcp,
}

/// A cluster of two shards, one clickhouse-server each.
fn two_shards(own: OwnShard) {
    let dir = tempfile::tempdir().unwrap();
    let ports = [(free_port(), free_port()), (free_port(), free_port())];
    let shard = |tcp: u16| {
        format!("<shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>")
    };
    let remote = format!("<two>{}{}</two>", shard(ports[0].1), shard(ports[1].1));
    let profile = match own {
        OwnShard::InProcess => "",
        OwnShard::OverTcp => "<prefer_localhost_replica>0</prefer_localhost_replica>",
    };
    let a = ClickHouse::start_with(&dir.path().join("a"), &remote, ports[0], profile);
    let b = ClickHouse::start_with(&dir.path().join("b"), &remote, ports[1], profile);
    let client = Client::new(&a.url("vc"), Duration::from_secs(30));
    // Which path this run takes, as ClickHouse sees it (for the failure
    // message: whether 18.16 takes a shard for its own depends on the
    // machine's interface list; OverTcp does not depend on it).
    let seen = Client::new(&a.url("default"), Duration::from_secs(30))
        .query(
            "SELECT shard_num, is_local, \
             (SELECT value FROM system.settings WHERE name = 'prefer_localhost_replica') \
             FROM system.clusters WHERE cluster = 'two' ORDER BY shard_num",
        )
        .unwrap();
    eprintln!("{own:?}: shard, is_local, prefer_localhost_replica: {seen:?}");
    if let OwnShard::OverTcp = own {
        assert!(seen.iter().all(|r| r[2] == "0"), "{seen:?}");
    }
    let topology = Topology::Cluster {
        name: "two".into(),
        nodes: vec![a.url("vc"), b.url("vc")],
    };
    compare(&client, &topology);
    let nodes = [a.url("vc"), b.url("vc")].map(|u| Client::new(&u, Duration::from_secs(30)));
    from_schema_3(&[&nodes[0], &nodes[1]], &topology);
    // Both shards hold rows.
    for node in [&a, &b] {
        let local = Client::new(&node.url("vc"), Duration::from_secs(30));
        let n: u64 = local.query("SELECT count() FROM reports_local").unwrap()[0][0]
            .parse()
            .unwrap();
        assert!(n > 0, "a shard is empty");
    }
}

#[test]
fn two_shards_give_the_numbers_sqlite_gives() {
    if !available("two_shards_give_the_numbers_sqlite_gives") {
        return;
    }
    two_shards(OwnShard::InProcess);
}

#[test]
fn two_shards_read_over_tcp_give_the_numbers_sqlite_gives() {
    if !available("two_shards_read_over_tcp_give_the_numbers_sqlite_gives") {
        return;
    }
    two_shards(OwnShard::OverTcp);
}

/// A schema 3 database (`rollup_days` without `nodes`, no lease) is
/// brought to the current schema, and the rollup runs on it.
fn from_schema_3(nodes: &[&Client], topology: &Topology) {
    for node in nodes {
        let tables: &[&str] = match topology {
            Topology::Single => &["rollup_days"],
            Topology::Cluster { .. } => &["rollup_days", "rollup_days_local"],
        };
        for t in tables {
            node.execute(&format!("ALTER TABLE {t} DROP COLUMN nodes"))
                .unwrap();
        }
        node.execute("DROP TABLE vcheckd_schema").unwrap();
        node.execute("CREATE TABLE vcheckd_schema (version UInt32) ENGINE = TinyLog")
            .unwrap();
        node.execute("INSERT INTO vcheckd_schema (version) VALUES (3)")
            .unwrap();
    }
    clickhouse::migrate(nodes[0], topology).unwrap();
    let mut job = Rollup::new(nodes[0].clone(), topology.clone(), 900);
    job.run(vcheckd::clock::unix_now(), None).unwrap();
    job.release().unwrap();
    let rows = nodes[0]
        .query("SELECT max(version) FROM vcheckd_schema")
        .unwrap();
    assert_eq!(rows[0][0], clickhouse::SCHEMA_VERSION.to_string());
}

async fn report(setup: &Setup, addr: std::net::SocketAddr, i: usize) {
    let name = setup.name(&format!("c{}", i % 7), &format!("n{i}"), "2.4.0");
    let r = udp(addr, &query(&name, RecordType::TXT, None)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1, "report {i} got no hint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_dns_keeps_answering() {
    if !available("an_outage_loses_nothing_and_dns_keeps_answering") {
        return;
    }
    let setup = Setup::new();
    let mut ch = ClickHouse::start(&setup.dir.path().join("ch"), "", (free_port(), free_port()));
    let url = ch.url("vc");
    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(
        setup.config_path(),
        format!(
            "{text}\n[clickhouse]\nurl = \"{url}\"\nserver_name = \"ns1\"\ninterval_ms = 50\nmax_backoff_secs = 1\ntimeout_secs = 2\n"
        ),
    )
    .unwrap();
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    let metrics = server.metrics().clone();
    let client = Client::new(&url, Duration::from_secs(5));
    let count = || -> (u64, u64) {
        let rows = client
            .query("SELECT count(), uniqExact(report_id) FROM reports")
            .unwrap_or_default();
        rows.first()
            .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
            .unwrap_or((0, 0))
    };
    let wait_for = |n: u64| {
        let started = Instant::now();
        while metrics.shipped_reports.load(Ordering::Relaxed) < n {
            assert!(started.elapsed() < Duration::from_secs(60), "not shipped");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for i in 0..40 {
        report(&setup, addr, i).await;
    }
    tokio::task::block_in_place(|| wait_for(40));
    assert_eq!(count(), (40, 40));

    // ClickHouse goes away; every query is still answered.
    ch.kill();
    for i in 40..140 {
        report(&setup, addr, i).await;
    }
    // And a report asked twice (an exact repeat, answered and taken once),
    // and names that are no report: counters the server ships once
    // ClickHouse is back.
    let twice = setup.name("c1", "n-twice", "2.4.0");
    for _ in 0..2 {
        let r = udp(addr, &query(&twice, RecordType::TXT, None)).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    }
    for bad in ["aaaa", "bbbb", "cccc"] {
        let name = format!("{bad}.{}", common::ZONE);
        udp(addr, &query(&name, RecordType::TXT, None)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metrics.shipped_reports.load(Ordering::Relaxed), 40);
    assert!(metrics.ship_errors.load(Ordering::Relaxed) > 0);

    ch.resume();
    tokio::task::block_in_place(|| wait_for(141));
    // Every report exactly once: no copy, none missing.
    assert_eq!(count(), (141, 141));
    assert_eq!(metrics.intake_repeats.load(Ordering::Relaxed), 1);
    // The shipper counts a batch shipped, then writes its position: the
    // position reaches the journal's end just after.
    let end = metrics.journal_end.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| {
        let started = Instant::now();
        while metrics.shipped_position.load(Ordering::Relaxed) < end {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "position never written"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(metrics.shipped_position.load(Ordering::Relaxed), end);
    // The processor has taken everything before the shipper's last
    // counters go out (it stops first).
    tokio::task::block_in_place(|| {
        let started = Instant::now();
        while metrics.processed_position.load(Ordering::Relaxed) < end {
            assert!(started.elapsed() < Duration::from_secs(60), "not processed");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    server.shutdown().await.unwrap();

    // The same statistics from the server's SQLite and from ClickHouse
    // (after a rollup: the server's own ran before the last reports; its
    // thread gives the lease up as it ends, which may be just after the
    // shutdown's bound for it).
    let mut job = Rollup::new(client.clone(), Topology::Single, 900);
    let started = Instant::now();
    loop {
        match job.run(vcheckd::clock::unix_now(), None) {
            Ok(_) => break,
            Err(clickhouse::ClickHouseError::RollupBusy { .. })
                if started.elapsed() < Duration::from_secs(30) =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("rollup: {e}"),
        }
    }
    let sqlite = Source::open(&[setup.db_path()]).unwrap();
    let from_ch = Source::clickhouse(&url, Duration::from_secs(30));
    let today = vcheckd::clock::today().0;
    let z = ZoneName::new(common::ZONE).unwrap();
    let (a, b) = (
        from_ch.summary(&z, today - 6, today).unwrap(),
        sqlite.summary(&z, today - 6, today).unwrap(),
    );
    assert_eq!(a, b, "summary, counters included");
    assert_eq!((a.reports, a.duplicates, a.rejected_names), (141, 0, 3));
    assert_eq!(
        from_ch.versions(&z, today - 6, today).unwrap(),
        sqlite.versions(&z, today - 6, today).unwrap()
    );
}

/// `vcheckd clickhouse rollup` while a name server holds the lease: one
/// line naming the holder and when its lease expires, exit 75; once the
/// holder gives it up, the rollup runs.
#[test]
fn a_rollup_by_hand_waits_while_a_server_holds_the_lease() {
    if !available("a_rollup_by_hand_waits_while_a_server_holds_the_lease") {
        return;
    }
    let setup = Setup::new();
    let ch = ClickHouse::start(&setup.dir.path().join("ch"), "", (free_port(), free_port()));
    let url = ch.url("vc");
    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(
        setup.config_path(),
        format!("{text}\n[clickhouse]\nurl = \"{url}\"\nserver_name = \"ns2\"\n"),
    )
    .unwrap();
    let client = Client::new(&url, Duration::from_secs(30));
    clickhouse::migrate(&client, &Topology::Single).unwrap();
    let mut server = Rollup::new(client.clone(), Topology::Single, 900)
        .with_lease("ns1", Duration::from_secs(900));
    server.run(vcheckd::clock::unix_now(), None).unwrap();
    let by_hand = || {
        Command::new(env!("CARGO_BIN_EXE_vcheckd"))
            .args(["clickhouse", "rollup", "--config"])
            .arg(setup.config_path())
            .output()
            .unwrap()
    };
    let out = by_hand();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(server.holder()) && err.contains("expires at") && err.contains(" UTC"),
        "{err}"
    );
    server.release().unwrap();
    let out = by_hand();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It gave the lease up: the server's next turn runs.
    server.run(vcheckd::clock::unix_now(), None).unwrap();
}

/// The counting model holds ClickHouse to it as it holds SQLite
/// (tests/fleet_props.rs): the same generated reports (retries, anonymous
/// ones, upgrades, reports of one second, two zones, a day's history
/// shipped after later days), shipped by the real shipper and rolled up,
/// read back as the node-days, version days and daily snapshots the model
/// makes of them. A database per case, on one server; few cases, since
/// each ships and rolls up.
#[test]
fn clickhouse_stores_what_the_model_counts() {
    if !available("clickhouse_stores_what_the_model_counts") {
        return;
    }
    use proptest::test_runner::{Config, TestRunner};
    let dir = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(&dir.path().join("ch"), "", (free_port(), free_port()));
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 8,
        max_shrink_iters: 32,
        ..Config::default()
    });
    let none = Counted {
        duplicate: 0,
        rejected: 0,
        dropped: 0,
    };
    runner
        .run(&common::fleet::case(30), |case| {
            let i = cases.fetch_add(1, Ordering::Relaxed);
            let client = Client::new(&ch.url(&format!("props{i}")), Duration::from_secs(30));
            let here = dir.path().join(format!("case{i}"));
            ship(
                &here,
                "ns1",
                &case.deliveries,
                none,
                &client,
                &Topology::Single,
            );
            let mut job = Rollup::new(client.clone(), Topology::Single, 900);
            job.run(NOW, None).unwrap();
            job.release().unwrap();
            let reader = clickhouse::ClickHouseReader::new(client);
            common::fleet::assert_matches_model(&reader, &case, "ClickHouse");
            Ok(())
        })
        .unwrap();
}

/// Every query vcheckd sends ClickHouse, each checked (by name, in the
/// failure message) on a fixture whose answers are known: two nodes of one
/// cluster, an upgrade the same day, an anonymous report, a retry. The
/// rollup's queries (markers, the first report day, fingerprints, the
/// day's reports, stored keys, kept states, the lease) show in what a run
/// did; a second process's run from a later day restores node states and
/// first days; the reader's in what it answers.
#[test]
fn every_query_reads_its_rows_by_name() {
    if !available("every_query_reads_its_rows_by_name") {
        return;
    }
    use vcheckd::clock::Day;
    use vcheckd::fleet::{NodeDay, VersionDay, VersionFigures};
    use vcheckd::store::reader::StatsReader;
    let dir = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(&dir.path().join("ch"), "", (free_port(), free_port()));
    let client = Client::new(&ch.url("fixture"), Duration::from_secs(30));
    let z = ZoneName::new("q.example").unwrap();
    let d = 20_497;
    let (c1, n1, n2) = ([0xc1; 16], [0x01; 16], [0x02; 16]);
    let report =
        |id: u8, node: Option<[u8; 16]>, version: &str, at: i64, status: Status| ReceivedReport {
            report: Report {
                id: ReportId([id; 12]),
                key_id: key().id,
                payload: Payload {
                    timestamp: u64::try_from(at).unwrap(),
                    identity: match node {
                        Some(n) => Identity::Known {
                            cluster: vcheckd::protocol::AnonId(c1),
                            node: vcheckd::protocol::AnonId(n),
                        },
                        None => Identity::Withheld,
                    },
                    version: semver::Version::parse(version).unwrap(),
                },
            },
            zone: z.clone(),
            received_at: at,
            status,
        };
    let a = report(0xa, Some(n1), "1.0.0", d * DAY + 100, Status::UpToDate);
    let mut retry = a.clone();
    retry.received_at += 5;
    let deliveries = [
        a,
        retry,
        report(0xb, Some(n1), "2.0.0", d * DAY + 200, Status::UpToDate),
        report(
            0xc,
            Some(n2),
            "1.0.0",
            (d + 1) * DAY + 300,
            Status::UpgradeRequired,
        ),
        report(
            0xd,
            None,
            "1.0.0",
            (d + 1) * DAY + 400,
            Status::UpgradeRequired,
        ),
    ];
    let counted = Counted {
        duplicate: 1,
        rejected: 2,
        dropped: 0,
    };
    ship(
        dir.path(),
        "ns1",
        &deliveries,
        counted,
        &client,
        &Topology::Single,
    );
    // markers (none yet), the first report day, fingerprints, the days'
    // reports, stored keys, kept states and the lease.
    let mut job = Rollup::new(client.clone(), Topology::Single, 900);
    let done = job.run(NOW, None).unwrap();
    job.release().unwrap();
    let closable = (NOW - 900) / DAY - 1;
    assert_eq!(
        done.closed,
        Some((d, closable)),
        "rollup: markers, first report day"
    );
    assert_eq!(done.late_from, None, "rollup: fingerprints");
    let reader = clickhouse::ClickHouseReader::new(client.clone());
    assert_eq!(reader.zones().unwrap(), std::slice::from_ref(&z), "zones");
    let at = |day: i64, s: i64| Some(day * DAY + s);
    let v = |text: &str| semver::Version::parse(text).unwrap();
    assert_eq!(
        reader.version_days(&z, Day(d), Day(d + 1)).unwrap(),
        [
            (d, "1.0.0", 1, 0, at(d, 100), Status::UpToDate),
            (d, "2.0.0", 1, 0, at(d, 200), Status::UpToDate),
            (
                d + 1,
                "1.0.0",
                2,
                1,
                at(d + 1, 300),
                Status::UpgradeRequired
            ),
        ]
        .map(
            |(day, version, reports, anonymous, last_at, status)| VersionDay {
                day: Day(day),
                version: v(version),
                reports,
                anonymous,
                last_at,
                status,
            }
        ),
        "version_days"
    );
    let mut days = reader.node_days(&z, Day(d), Day(d + 1), true).unwrap();
    days.sort_by_key(|r| (r.day, r.node, r.version.to_string()));
    let row = |day: i64, node: [u8; 16], version: &str, s: i64, status, id: u8| {
        (
            Day(day),
            node,
            version.to_string(),
            status,
            day * DAY + s,
            1,
            vec![[id; 12]],
        )
    };
    let view = |r: &NodeDay| {
        assert_eq!(
            (r.zone.as_str(), r.cluster),
            (z.as_str(), c1),
            "node-days: zone, cluster"
        );
        (
            r.day,
            r.node,
            r.version.to_string(),
            r.status,
            r.last_at,
            r.reports,
            r.ids.clone(),
        )
    };
    assert_eq!(
        days.iter().map(view).collect::<Vec<_>>(),
        [
            row(d, n1, "1.0.0", 100, Status::UpToDate, 0xa),
            row(d, n1, "2.0.0", 200, Status::UpToDate, 0xb),
            row(d + 1, n2, "1.0.0", 300, Status::UpgradeRequired, 0xc),
        ],
        "node_days (raw reports, each once)"
    );
    // snapshot_totals, snapshot_versions, snapshot_activity.
    let snap = reader.snapshot(&z, Day(d + 1)).unwrap();
    assert_eq!(
        &snap.activity[..3],
        [(1, 1), (0, 1), (0, 0)],
        "snapshot_activity"
    );
    let one = snap.window(1).unwrap();
    assert_eq!(
        (
            one.mixed_clusters,
            one.insecure_clusters,
            one.insecure_nodes
        ),
        (0, 1, 1),
        "snapshot_totals"
    );
    let figures = |clusters, share_mixed, nodes, min_clusters| VersionFigures {
        clusters,
        share_mixed,
        nodes,
        min_clusters,
    };
    assert_eq!(
        one.versions,
        [("1.0.0".to_string(), figures(1, 0.0, 1, 1))].into(),
        "snapshot_versions"
    );
    let two = snap.window(2).unwrap().clone();
    assert_eq!(two.mixed_clusters, 1, "snapshot_totals: mixed");
    assert_eq!(
        two.versions,
        [
            ("1.0.0".to_string(), figures(0, 0.5, 1, 1)),
            ("2.0.0".to_string(), figures(0, 0.5, 1, 0)),
        ]
        .into(),
        "snapshot_versions: shares"
    );
    // Node states from the raw reports (a window no snapshot keeps).
    let long = reader.long_window(&z, Day(d + 1), 100).unwrap().unwrap();
    assert_eq!(long.window(100), Some(&two), "node states as of a day");
    assert_eq!(
        reader.cluster_first_days(&z).unwrap(),
        [(c1, Day(d))],
        "clusters' first days"
    );
    assert_eq!(
        (
            reader.new_clusters(&z, Day(d), Day(d)).unwrap(),
            reader.new_clusters(&z, Day(d + 1), Day(d + 1)).unwrap()
        ),
        (1, 0),
        "new clusters"
    );
    let mut firsts = reader.version_first_days(&z).unwrap();
    firsts.sort();
    assert_eq!(
        firsts,
        [(v("1.0.0"), Day(d)), (v("2.0.0"), Day(d))],
        "versions' first days"
    );
    let counters = reader.counters(Day(0), vcheckd::clock::today()).unwrap();
    let total = |name: &str| -> u64 {
        counters
            .iter()
            .filter(|((_, n), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        (total("reports.duplicate"), total("rejected.base32")),
        (1, 2),
        "counters"
    );
    // Another process closes again from the day after the first: it
    // restores the node states of `d` and the versions seen by then.
    let mut again = Rollup::new(client.clone(), Topology::Single, 900);
    let redone = again.run(NOW, Some(d + 1)).unwrap();
    again.release().unwrap();
    assert_eq!(
        (redone.from_start, redone.closed),
        (Some(d + 1), Some((d + 1, closable))),
        "node_state read back, versions' first days"
    );
    let reread = clickhouse::ClickHouseReader::new(client.clone());
    assert_eq!(
        reread.snapshot(&z, Day(d + 1)).unwrap(),
        snap,
        "states restored"
    );
    // A late report of a closed day: its fingerprint changed.
    let late = [report(
        0xe,
        Some([3; 16]),
        "2.0.0",
        d * DAY + 900,
        Status::UpToDate,
    )];
    ship(
        dir.path(),
        "ns2",
        &late,
        Counted {
            duplicate: 0,
            rejected: 0,
            dropped: 0,
        },
        &client,
        &Topology::Single,
    );
    let mut job = Rollup::new(client.clone(), Topology::Single, 900);
    let done = job.run(NOW, None).unwrap();
    job.release().unwrap();
    assert_eq!(done.late_from, Some(d), "fingerprints: a late report");
    // The schema's version and columns, read again: nothing to do.
    clickhouse::migrate(&client, &Topology::Single).unwrap();
}
