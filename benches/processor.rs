//! The processor's throughput into a database that already holds a large
//! fleet's history: "the processor alone sustains at least 100,000
//! reports/s into a database that already holds 90 days of 250,000 nodes".
//!
//! 1. The fleet: `vcheckd::simulate` generates `FLEET_CLUSTERS` clusters
//!    (default 67,000: about 250,000 nodes, 3.73 nodes per cluster on
//!    average) over `FLEET_DAYS` days (default 90) and writes the history
//!    into `target/bench-fleet/fleet-<clusters>c-<days>d-s1.sqlite` with
//!    `simulate::db::write`, as `vcheckd simulate --db` does (same seed,
//!    same key derivation, so the file is interchangeable with the one
//!    `benches/stats/run.sh` makes). The build is timed (generation and
//!    writing apart) and cached: a later run reuses the file and prints
//!    the figure recorded when it was built.
//! 2. `REPORTS` new reports with distinct random ids (default: 4 per node
//!    of the fleet, at most 1,000,000: about 1,000,000 at 250,000 nodes):
//!    existing nodes (read from the database's node states) reporting on
//!    the database's open day with their current version, each node in
//!    turn, spread over the day and sorted by receive time; `ANON_SHARE`
//!    (5%) of them anonymous. Reports per node matter: each one of a node
//!    already seen that day extends its node-day row.
//! 3. `Store::commit` alone, in batches of `BATCH` (default 8192, the
//!    processor's `max_batch`), each with a consumer position as the
//!    processor commits it, on a copy of the fleet database.
//! 4. The whole path: the same reports appended to a `Journal` in a temp
//!    folder (made durable before the clock starts), then the real
//!    `vcheckd::processor::Processor` started on another copy of the fleet
//!    database, timed until `Metrics::processed_position` reaches the
//!    journal's durable end: reading, checking and decoding the records,
//!    and committing them.
//!
//! Retention covers the whole fleet in step 4 (the processor prunes
//! nothing): raw reports of all `FLEET_DAYS` days stay, a larger table than
//! the default 30-day retention keeps, so the figure errs on the slow side.
//!
//! Run: `cargo bench --bench processor` (scaled down:
//! `FLEET_CLUSTERS=6700 cargo bench --bench processor`: ~25,000 nodes).
//! Prints figures; asserts nothing about speed.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use vcheckd::config::Config;
use vcheckd::hint::{Releases, Status};
use vcheckd::journal::{AppendError, Journal, JournalConfig, Position};
use vcheckd::metrics::Metrics;
use vcheckd::processor::{Processor, ProcessorConfig, CONSUMER};
use vcheckd::protocol::{AnonId, Identity, Key, KeyId, Payload, Report, ReportId, ZoneName};
use vcheckd::simulate::{db, schedule, Fleet, SimConfig};
use vcheckd::store::{ReceivedReport, Store};

const ZONE: &str = "vc.example.com";
const SEED: u64 = 1;
const DAY: i64 = 86_400;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid number")),
        Err(_) => default,
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// CPU time of this process's threads so far (Linux: each thread's
/// `schedstat`), so that a rate can be read per CPU-second as well: on a
/// shared machine the wall-clock rate falls with the other jobs' load,
/// the rate per CPU-second much less.
fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Builds the fleet database at `path` (through a temporary name, so a
/// half-built file is never reused) unless it exists; returns a line that
/// says how long building took.
fn fleet_db(path: &Path, clusters: u32, days: u32) -> String {
    let info = path.with_extension("build.txt");
    if path.exists() {
        let recorded = std::fs::read_to_string(&info).unwrap_or_default();
        return format!(
            "reused {} (built earlier: {})",
            path.display(),
            recorded.trim()
        );
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("building");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let zone = ZoneName::new(ZONE).unwrap();
    // As `vcheckd simulate --db FILE` does with its defaults.
    let config = Config::embedded().unwrap();
    let rules = config
        .zones
        .iter()
        .find(|z| z.name == ZONE)
        .expect("the embedded default serves vc.example.com")
        .releases
        .clone();
    let sim = SimConfig {
        clusters,
        days,
        ..SimConfig::new(
            SEED,
            vcheckd::clock::unix_now(),
            schedule::derive(&rules.versions, days),
            Releases::try_from(&rules).unwrap(),
        )
    };
    let key = Key::new(KeyId(1), StdRng::seed_from_u64(SEED ^ 0x6b65_7973).random());
    let started = Instant::now();
    let fleet = Fleet::generate(&sim).expect("fleet generates");
    let generated = started.elapsed();
    let mut store = Store::open(&tmp).unwrap();
    let out = db::write(&fleet, &fleet.history, &key, &zone, &mut store).expect("history written");
    store.checkpoint().unwrap();
    drop(store);
    let total = started.elapsed();
    let line = format!(
        "{} clusters, {} nodes, {} days: {} reports ({} stored, {} duplicates) in {:.1} s \
         (generate {:.1} s, write {:.1} s = {:.0} reports/s), {:.2} GB",
        fleet.clusters.len(),
        fleet.nodes.len(),
        days,
        out.deliveries,
        out.stored,
        out.duplicates,
        secs(total),
        secs(generated),
        secs(total - generated),
        out.deliveries as f64 / secs(total - generated),
        std::fs::metadata(&tmp).map_or(0, |m| m.len()) as f64 / 1e9,
    );
    std::fs::rename(&tmp, path).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    std::fs::write(&info, format!("{line}\n")).unwrap();
    format!("built {}: {line}", path.display())
}

/// A copy of the database (main file and any write-ahead log) in `dir`.
fn copy_db(from: &Path, dir: &Path, name: &str) -> (PathBuf, Duration) {
    let started = Instant::now();
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    let wal = PathBuf::from(format!("{}-wal", from.display()));
    if wal.exists() {
        std::fs::copy(&wal, format!("{}-wal", to.display())).unwrap();
    }
    (to, started.elapsed())
}

/// `n` new reports of the fleet's nodes on the database's open day, in
/// receive-time order, with distinct random ids.
fn todays_reports(path: &Path, n: usize, anon_share: f64) -> (Vec<ReceivedReport>, i64, usize) {
    // The bench reads the fleet's tables directly: it picks real nodes.
    let conn = rusqlite::Connection::open(path).unwrap();
    let day: i64 = conn
        .query_row("SELECT day FROM open_day", [], |r| r.get(0))
        .expect("the fleet database has an open day");
    let mut stmt = conn
        .prepare("SELECT cluster, node, version, status FROM node_latest WHERE zone = ?1")
        .unwrap();
    let nodes: Vec<(AnonId, AnonId, semver::Version, Status)> = stmt
        .query_map([ZONE], |r| {
            let c: Vec<u8> = r.get(0)?;
            let n: Vec<u8> = r.get(1)?;
            let v: String = r.get(2)?;
            let s: u8 = r.get(3)?;
            Ok((
                AnonId(c.try_into().unwrap()),
                AnonId(n.try_into().unwrap()),
                semver::Version::parse(&v).unwrap(),
                Status::from_code(s).unwrap(),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!nodes.is_empty(), "the fleet database has node states");
    let zone = ZoneName::new(ZONE).unwrap();
    let mut rng = StdRng::seed_from_u64(0xbe4c);
    let mut times: Vec<i64> = (0..n)
        .map(|_| day * DAY + rng.random_range(0..DAY))
        .collect();
    times.sort_unstable();
    let reports = times
        .into_iter()
        .enumerate()
        .map(|(i, at)| {
            // Each node in turn (a node reports several times a day when
            // there are more reports than nodes), in time order.
            let (cluster, node, version, status) = &nodes[i % nodes.len()];
            let identity = if rng.random_bool(anon_share) {
                Identity::Withheld
            } else {
                Identity::Known {
                    cluster: *cluster,
                    node: *node,
                }
            };
            ReceivedReport {
                report: Report {
                    id: ReportId(rng.random()),
                    key_id: KeyId(1),
                    payload: Payload {
                        timestamp: at as u64,
                        identity,
                        version: version.clone(),
                    },
                },
                zone: zone.clone(),
                received_at: at,
                status: *status,
            }
        })
        .collect();
    (reports, day, nodes.len())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn rows(path: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let clusters: u32 = env_or("FLEET_CLUSTERS", 67_000);
    let days: u32 = env_or("FLEET_DAYS", 90);
    let batch: usize = env_or("BATCH", 8_192);
    let anon_share: f64 = env_or("ANON_SHARE", 0.05);
    let root = PathBuf::from(
        std::env::var("FLEET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-fleet").into()),
    );
    let fleet = root.join(format!("fleet-{clusters}c-{days}d-s{SEED}.sqlite"));

    println!("fleet: {}", fleet_db(&fleet, clusters, days));
    let before = rows(&fleet, "SELECT count(*) FROM reports");

    let nodes = rows(&fleet, "SELECT count(*) FROM node_latest") as usize;
    let n: usize = env_or("REPORTS", (4 * nodes).min(1_000_000));
    let (reports, day, nodes) = todays_reports(&fleet, n, anon_share);
    println!(
        "load: {n} new reports with distinct ids from {nodes} nodes on day {day} (the open day), \
         {:.0}% anonymous, in time order; the database holds {before} raw reports",
        anon_share * 100.0
    );
    let work = tempfile::tempdir_in(&root).unwrap();

    // --- Store::commit alone -------------------------------------------------
    let (copy, took) = copy_db(&fleet, work.path(), "commit.sqlite");
    println!("copied the fleet database in {:.1} s", secs(took));
    let mut store = Store::open(&copy).unwrap();
    let mut lat = Vec::new();
    let (mut stored, mut dups) = (0u64, 0u64);
    let started = Instant::now();
    let cpu = cpu_time();
    for (i, chunk) in reports.chunks(batch).enumerate() {
        let t = Instant::now();
        let out = store
            .commit(chunk, &[], Some(("bench", i as u64 + 1)))
            .unwrap();
        lat.push(t.elapsed());
        stored += out.stored;
        dups += out.duplicates;
    }
    let commit_time = started.elapsed();
    let commit_cpu = cpu_time() - cpu;
    drop(store);
    lat.sort_unstable();
    let commit_rate = n as f64 / secs(commit_time);
    println!(
        "Store::commit: {n} reports in {:.2} s = {commit_rate:.0} reports/s ({:.0} per CPU-second); \
         batches of {batch}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; stored {stored}, duplicates {dups}",
        secs(commit_time),
        n as f64 / secs(commit_cpu),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
    );
    assert_eq!(stored, n as u64, "every report is new");
    let _ = std::fs::remove_file(&copy);

    // --- journal + processor -------------------------------------------------
    let journal = Arc::new(
        Journal::open(JournalConfig {
            dir: work.path().join("journal"),
            max_bytes: 64 << 30,
            ..JournalConfig::default()
        })
        .unwrap(),
    );
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut waits = 0u64;
    for r in &reports {
        r.to_record(&mut buf).unwrap();
        loop {
            match journal.append(&buf) {
                Ok(_) => break,
                // The group commit is behind (64 MiB unwritten): wait.
                Err(AppendError::Full) => {
                    waits += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("append: {e}"),
            }
        }
    }
    while journal.stats().pending_bytes > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = journal.stats();
    let end = stats.durable_end;
    println!(
        "journal: {} records, {} bytes durable, appended and written in {:.2} s ({} waits for the group commit)",
        stats.appended_records,
        end,
        secs(started.elapsed()),
        waits
    );
    drop(reports);

    let (copy, _) = copy_db(&fleet, work.path(), "processor.sqlite");
    let store = Store::open(&copy).unwrap();
    let from = Position(store.consumer_position(CONSUMER).unwrap());
    let reader = journal.subscribe(CONSUMER, from).unwrap();
    assert_eq!(reader.position(), Position::ZERO);
    let metrics = Arc::new(Metrics::default());
    let started = Instant::now();
    let cpu = cpu_time();
    let processor = Processor::start(
        store,
        journal.clone(),
        reader,
        metrics.clone(),
        ProcessorConfig {
            max_batch: batch,
            retention_days: days + 30,
            ..ProcessorConfig::default()
        },
    )
    .unwrap();
    while metrics.processed_position.load(Ordering::Relaxed) < end.0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let proc_time = started.elapsed();
    // The bench's own thread polls every millisecond meanwhile: a little
    // CPU counted with the processor's.
    let proc_cpu = cpu_time() - cpu;
    let committed = processor.stop(end, Duration::from_secs(60));
    let batches = metrics.batches.load(Ordering::Relaxed);
    let proc_rate = n as f64 / secs(proc_time);
    println!(
        "journal -> Processor: {n} reports in {:.2} s = {proc_rate:.0} reports/s ({:.0} per CPU-second); \
         {batches} batches, mean commit {:.1} ms; stored {}, duplicates {}; committed position {:?}",
        secs(proc_time),
        n as f64 / secs(proc_cpu),
        metrics.batch_micros.load(Ordering::Relaxed) as f64 / 1e3 / batches.max(1) as f64,
        metrics.reports_stored.load(Ordering::Relaxed),
        metrics.reports_duplicate.load(Ordering::Relaxed),
        committed.map(|p| p.0),
    );
    journal.close(Duration::from_secs(10));
    println!(
        "ratio journal->Processor / Store::commit: {:.3}; against the 100,000 reports/s target: \
         Store::commit {:.2}x, Processor {:.2}x",
        proc_rate / commit_rate,
        commit_rate / 100_000.0,
        proc_rate / 100_000.0
    );
}
