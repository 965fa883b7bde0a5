//! `vcheckd simulate`'s fleet written into a real database (and sent to a
//! real server), then `vcheckd::stats` held to numbers the generator knows:
//! its ground truth, computed from the reports it sent, and counts that
//! follow from the configuration alone.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use semver::Version;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::hint::Releases;
use vcheckd::protocol::{Key, KeyId, ZoneName};
use vcheckd::simulate::truth::{TruthSummary, TruthVersions};
use vcheckd::simulate::{db, dns, Fleet, Release, SimConfig, SimReport, Truth};
use vcheckd::stats::{self, Bucket, Dataset, Scope, Source, Summary, Versions};
use vcheckd::store::reader::{SqliteReader, StatsReader};
use vcheckd::store::{day_of, Store};

const DAY: i64 = 86_400;
/// A fixed present: day 20500, 13:00:17 UTC (so the last day is partial).
const NOW: i64 = 20_500 * DAY + 13 * 3_600 + 17;

fn schedule() -> Vec<Release> {
    ["2.2.0@-40", "2.3.0@-10", "2.3.1@8", "2.4.0@24", "2.4.1@36"]
        .iter()
        .map(|r| Release::parse(r).unwrap())
        .collect()
}

/// A few hundred clusters over 60 days: small enough for a debug build.
fn config(seed: u64) -> SimConfig {
    SimConfig {
        clusters: 300,
        days: 60,
        anonymous_share: 0.06,
        never_upgrade_share: 0.05,
        late_join_share: 0.2,
        leave_share: 0.12,
        miss_share: 0.08,
        duplicate_share: 0.05,
        median_lag_days: 3.0,
        ..SimConfig::new(seed, NOW, schedule(), common::releases())
    }
}

fn key() -> Key {
    Key::new(KeyId(7), [42; 32])
}

fn zone() -> ZoneName {
    ZoneName::new("vc.example.com").unwrap()
}

/// Writes the whole history into a fresh database; returns its dataset.
fn written(fleet: &Fleet, dir: &Path) -> (Dataset, db::DbOutcome) {
    let path = dir.join("sim.sqlite");
    let mut store = Store::open(&path).unwrap();
    let out = db::write(fleet, &fleet.history, &key(), &zone(), &mut store).unwrap();
    drop(store);
    (load(&path, fleet.start_day - 70, fleet.end_day), out)
}

/// The exact path: node-days merged in memory.
fn load(path: &Path, first_day: i64, last_day: i64) -> Dataset {
    let reader = SqliteReader::open(path).unwrap();
    let scope = Scope {
        first_day,
        last_day,
        zone: zone(),
    };
    Dataset::load(&[&reader as &dyn StatsReader], &scope).unwrap()
}

fn check_summary(got: &Summary, want: &TruthSummary) {
    let what = format!("summary {}..{}", want.first_day, want.last_day);
    let active: Vec<(i64, u64, u64)> = got
        .active
        .iter()
        .map(|a| (a.days, a.clusters, a.nodes))
        .collect();
    let truth: Vec<(i64, u64, u64)> = want
        .active
        .iter()
        .map(|a| (a.days, a.clusters, a.nodes))
        .collect();
    assert_eq!(active, truth, "{what}: active (days, clusters, nodes)");
    assert_eq!(got.new_clusters, want.new_clusters, "{what}: new clusters");
    assert_eq!(
        got.gone_clusters, want.gone_clusters,
        "{what}: gone clusters"
    );
    assert_eq!(got.reports, want.reports, "{what}: reports");
    assert_eq!(
        got.anonymous_reports, want.anonymous_reports,
        "{what}: anonymous reports"
    );
    assert_eq!(got.duplicates, want.duplicates, "{what}: duplicates");
}

fn check_versions(got: &Versions, want: &TruthVersions) {
    let what = format!("versions {}..{}", want.first_day, want.last_day);
    assert_eq!(
        (got.active_clusters, got.active_nodes, got.mixed_clusters),
        (want.active_clusters, want.active_nodes, want.mixed_clusters),
        "{what}: active clusters, nodes, mixed clusters"
    );
    assert_eq!(
        (got.insecure_clusters, got.insecure_nodes),
        (want.insecure_clusters, want.insecure_nodes),
        "{what}: insecure clusters, nodes"
    );
    let names: Vec<&str> = got.rows.iter().map(|r| r.version.as_str()).collect();
    let truth: Vec<&str> = want.rows.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(names, truth, "{what}: versions");
    for (g, w) in got.rows.iter().zip(&want.rows) {
        let what = format!("{what}, {}", w.version);
        assert_eq!(g.status, Some(w.status), "{what}: status");
        assert_eq!(
            (g.clusters, g.nodes, g.reports, g.anonymous_reports),
            (w.clusters, w.nodes, w.reports, w.anonymous_reports),
            "{what}: clusters, nodes, reports, anonymous reports"
        );
        assert!(
            (g.cluster_share - w.cluster_share).abs() < 1e-9,
            "{what}: cluster share {} != {}",
            g.cluster_share,
            w.cluster_share
        );
    }
}

#[test]
fn stats_agree_with_the_generators_truth() {
    let fleet = Fleet::generate(&config(11)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = written(&fleet, dir.path());
    let source = Source::open(&[dir.path().join("sim.sqlite")]).unwrap();
    let truth = Truth::of_history(&fleet);
    let (start, end) = (fleet.start_day, fleet.end_day);

    // Every report stored once; every extra delivery counted as a duplicate.
    let extra: u64 = fleet
        .history
        .iter()
        .map(|r| u64::from(r.deliveries) - 1)
        .sum();
    assert_eq!(out.stored, fleet.history.len() as u64);
    assert_eq!(out.duplicates, extra);
    let whole = truth.summary(start, end);
    assert_eq!(whole.duplicates, extra);
    check_summary(&stats::summary(&data, start, end), &whole);

    for (first, last) in [
        (end, end),
        (end - 6, end),
        (end - 29, end),
        (start + 20, start + 33),
        (start, start + 6),
        (start, end),
    ] {
        check_summary(
            &stats::summary(&data, first, last),
            &truth.summary(first, last),
        );
        check_versions(
            &stats::versions(&data, first, last),
            &truth.versions(first, last),
        );
        // The daily snapshots (for the windows they keep) say the same.
        check_summary(
            &source.summary(&zone(), first, last).unwrap(),
            &truth.summary(first, last),
        );
        check_versions(
            &source.versions(&zone(), first, last).unwrap(),
            &truth.versions(first, last),
        );
    }
    for day in start..=end {
        check_versions(
            &source.versions(&zone(), day, day).unwrap(),
            &truth.versions(day, day),
        );
        if day - 6 >= start {
            check_versions(
                &source.versions(&zone(), day - 6, day).unwrap(),
                &truth.versions(day - 6, day),
            );
        }
    }

    // Trend: each bucket is the version distribution of its days.
    // Weeks are whole: the oldest starts on or before `first`.
    for (bucket, first) in [(Bucket::Week, end - 25), (Bucket::Day, end - 9)] {
        let step = bucket.days();
        let mut expected = Vec::new();
        let mut from = end - step + 1;
        while from + step > first {
            let v = truth.versions(from, from + step - 1);
            for r in v.rows.iter().filter(|r| r.nodes > 0) {
                expected.push((from, r.version.clone(), r.cluster_share, r.nodes));
            }
            from -= step;
        }
        expected.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| stats::cmp_versions_desc(&a.1, &b.1))
        });
        for points in [
            stats::trend(&data, first, end, bucket),
            source.trend(&zone(), first, end, bucket).unwrap(),
        ] {
            assert_eq!(points.len(), expected.len(), "{bucket:?} trend points");
            for (p, (day, version, share, nodes)) in points.iter().zip(&expected) {
                assert_eq!((p.day, &p.version, p.nodes), (*day, version, *nodes));
                assert!(
                    (p.clusters - share).abs() < 1e-9,
                    "{bucket:?} {day} {version}"
                );
            }
        }
    }

    // Adoption of each release of the simulated days.
    let mut reached_90 = 0;
    for v in ["2.3.1", "2.4.0", "2.4.1"] {
        let version = Version::parse(v).unwrap();
        let got = stats::adoption(&data, &version, end);
        let want = truth.adoption(&version, end);
        let fast = source.adoption(&zone(), &version, end).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&fast).unwrap(),
            serde_json::to_value(&got).unwrap(),
            "{v}: adoption from snapshots"
        );
        assert_eq!(got.released_day, want.released_day, "{v}: released day");
        assert_eq!(
            (got.days_to_50, got.days_to_90),
            (want.days_to_50, want.days_to_90),
            "{v}: days to 50% and 90%"
        );
        assert_eq!(got.series.len(), want.series.len());
        for (g, w) in got.series.iter().zip(&want.series) {
            assert_eq!((g.day, g.active_clusters), (w.day, w.active_clusters));
            assert_eq!(
                g.share,
                w.adopted_clusters as f64 / w.active_clusters as f64
            );
        }
        // Released on its scheduled day or a little after (first upgrade).
        let scheduled =
            fleet.release_day[fleet.versions.iter().position(|x| *x == version).unwrap()];
        let seen = want.released_day.expect("released and adopted");
        assert!(
            (scheduled..scheduled + 3).contains(&seen),
            "{v}: {seen} vs {scheduled}"
        );
        assert!(want.days_to_50.is_some(), "{v} never reached 50%");
        reached_90 += usize::from(want.days_to_90.is_some());
    }

    // The data is worth testing against: each effect the model claims shows.
    let recent = truth.summary(end - 6, end);
    assert!(
        recent.gone_clusters > 0 && recent.new_clusters > 0,
        "{recent:?}"
    );
    assert!(whole.anonymous_reports > 0 && whole.duplicates > 0);
    let mixed_days = (start..=end)
        .filter(|d| truth.versions(*d, *d).mixed_clusters > 0)
        .count();
    assert!(mixed_days > 10, "mixed clusters on {mixed_days} days only");
    let last_week = truth.versions(end - 6, end);
    assert!(last_week.rows.len() >= 4 && last_week.insecure_clusters > 0);
    assert!(reached_90 >= 1, "no release reached 90%");
    let upgraded = (fleet.nodes.iter())
        .filter(|n| n.timeline.len() > 1)
        .count();
    assert!(upgraded > fleet.nodes.len() / 2);
}

/// Counts that follow from the configuration and the fleet's structure
/// alone (cluster sizes, initial versions, upgrade times), not from the
/// truth module: no churn, no misses, no anonymity.
#[test]
fn counts_known_from_the_configuration() {
    let steady = |never: f64| SimConfig {
        clusters: 150,
        days: 20,
        late_join_share: 0.0,
        leave_share: 0.0,
        miss_share: 0.0,
        anonymous_share: 0.0,
        duplicate_share: 0.0,
        never_upgrade_share: never,
        ..config(5)
    };
    let dir = tempfile::tempdir().unwrap();

    // Nobody upgrades: every node reports its first version once a day.
    let fleet = Fleet::generate(&steady(1.0)).unwrap();
    let (data, _) = written(&fleet, &dir.path().join("static"));
    let (start, end) = (fleet.start_day, fleet.end_day);
    let nodes = fleet.nodes.len() as u64;
    let v = stats::versions(&data, start, end);
    assert_eq!(
        (v.active_clusters, v.active_nodes, v.mixed_clusters),
        (150, nodes, 0)
    );
    for row in &v.rows {
        let idx = fleet
            .versions
            .iter()
            .position(|x| x.to_string() == row.version)
            .unwrap() as u16;
        let on = |c: &vcheckd::simulate::Cluster| {
            fleet.nodes[c.nodes.start as usize].timeline[0].1 == idx
        };
        let clusters = fleet.clusters.iter().filter(|c| on(c)).count() as u64;
        let nodes_on: u64 = (fleet.clusters.iter().filter(|c| on(c)))
            .map(|c| c.nodes.len() as u64)
            .sum();
        assert_eq!(
            (row.clusters, row.nodes),
            (clusters, nodes_on),
            "{}",
            row.version
        );
        // Not bit-exact: stats adds 1/n per node (see the report).
        assert!((row.cluster_share - clusters as f64).abs() < 1e-9);
        assert_eq!(row.reports, nodes_on * 20);
    }
    let s = stats::summary(&data, start, end);
    assert_eq!((s.active[0].clusters, s.active[0].nodes), (150, nodes));
    assert_eq!((s.new_clusters, s.gone_clusters), (150, 0));
    assert_eq!((s.reports, s.duplicates), (nodes * 20, 0));

    // Everybody may upgrade: one extra report per node upgrade in the days.
    let fleet = Fleet::generate(&steady(0.0)).unwrap();
    let (data, _) = written(&fleet, &dir.path().join("upgrading"));
    let nodes = fleet.nodes.len() as u64;
    let upgrades = (fleet.nodes.iter().flat_map(|n| &n.timeline[1..]))
        .filter(|(at, _)| (start * DAY..=NOW).contains(at))
        .count() as u64;
    assert!(upgrades > nodes / 2, "{upgrades} upgrades of {nodes} nodes");
    let s = stats::summary(&data, start, end);
    assert_eq!(s.reports, nodes * 20 + upgrades);
    assert_eq!((s.active[0].clusters, s.active[0].nodes), (150, nodes));
    // Today each node runs its version as of now.
    let v = stats::versions(&data, end, end);
    for row in &v.rows {
        let now_on = (fleet.nodes.iter())
            .filter(|n| fleet.version(n.version_at(NOW)).to_string() == row.version)
            .count() as u64;
        assert_eq!(row.nodes, now_on, "{}", row.version);
    }
}

#[test]
fn writing_the_same_history_twice_adds_only_duplicates() {
    let fleet = Fleet::generate(&SimConfig {
        clusters: 60,
        days: 15,
        ..config(3)
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.sqlite");
    let mut store = Store::open(&path).unwrap();
    let first = db::write(&fleet, &fleet.history, &key(), &zone(), &mut store).unwrap();
    let before = stats::versions(
        &load(&path, fleet.start_day, fleet.end_day),
        fleet.start_day,
        fleet.end_day,
    );
    let again = db::write(&fleet, &fleet.history, &key(), &zone(), &mut store).unwrap();
    assert_eq!(first.stored, fleet.history.len() as u64);
    assert_eq!((again.stored, again.duplicates), (0, first.deliveries));
    drop(store);
    let rows: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, fleet.history.len());

    let data = load(&path, fleet.start_day, fleet.end_day);
    let after = stats::versions(&data, fleet.start_day, fleet.end_day);
    assert_eq!(
        (
            after.active_clusters,
            after.active_nodes,
            after.mixed_clusters
        ),
        (
            before.active_clusters,
            before.active_nodes,
            before.mixed_clusters
        )
    );
    assert_eq!(after.rows.len(), before.rows.len());
    for (a, b) in after.rows.iter().zip(&before.rows) {
        assert_eq!(
            (
                &a.version,
                a.clusters,
                a.nodes,
                a.reports,
                a.anonymous_reports
            ),
            (
                &b.version,
                b.clusters,
                b.nodes,
                b.reports,
                b.anonymous_reports
            )
        );
        // The sum order of stats' shares varies between loads.
        assert!((a.cluster_share - b.cluster_share).abs() < 1e-9);
    }
    let s = stats::summary(&data, fleet.start_day, fleet.end_day);
    assert_eq!(s.duplicates, first.duplicates + again.duplicates);
}

#[test]
fn the_seed_decides_the_fleet() {
    let a = Fleet::generate(&config(9)).unwrap();
    let b = Fleet::generate(&config(9)).unwrap();
    assert_eq!(a.history, b.history);
    let c = Fleet::generate(&config(10)).unwrap();
    assert_ne!(a.history, c.history);
    // A smaller fleet is the start of a larger one.
    let small = Fleet::generate(&SimConfig {
        clusters: 40,
        ..config(9)
    })
    .unwrap();
    assert_eq!(small.clusters[39].real_id, a.clusters[39].real_id);
    let n = small.nodes.len() as u32;
    let prefix: Vec<&SimReport> = a.history.iter().filter(|r| r.node < n).collect();
    assert_eq!(prefix, small.history.iter().collect::<Vec<_>>());
    // Nothing later than now; today only up to now.
    assert!(a.history.iter().all(|r| r.time <= NOW));
    assert_eq!(day_of(a.history.last().unwrap().time), day_of(NOW));
}

/// Today's reports as real queries to a server started in-process: every
/// answered report is in its database exactly once, answered with the
/// status the release rule gives, and the stats of the day match the truth
/// of the answered reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sink_answers_are_stored_once() {
    let setup = common::Setup::new();
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let releases = &config.zones[0].releases;
    let fleet = Fleet::generate(&SimConfig {
        clusters: 120,
        days: 30,
        anonymous_share: 0.1,
        ..SimConfig::new(
            4,
            now,
            vcheckd::simulate::schedule::derive(&releases.versions, 30),
            Releases::try_from(releases).unwrap(),
        )
    })
    .unwrap();
    let snapshot = fleet.snapshot();
    let target = dns::DnsTarget {
        server: addr,
        zone: ZoneName::new(common::ZONE).unwrap(),
        key: setup.key.clone(),
        rate: 1_000.0,
        timeout: Duration::from_secs(2),
        retries: 2,
    };
    let out = dns::send(&fleet, &snapshot, &target).await.unwrap();
    server.shutdown().await.unwrap();

    assert_eq!(out.reports, snapshot.len() as u64);
    assert_eq!((out.lost, out.errors), (0, 0), "{out:?}");
    assert_eq!(out.answered.len(), snapshot.len());
    let conn = rusqlite::Connection::open(setup.db_path()).unwrap();
    for a in &out.answered {
        let rows: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM reports WHERE report_id = ?1",
                [&a.id.0[..]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 1, "report {} stored {rows} times", a.id);
        let want = fleet.status[usize::from(snapshot[a.index].version)];
        assert_eq!(a.status, Some(want), "status of report {}", a.index);
    }
    let total: i64 = conn
        .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total as usize, snapshot.len());

    // The server stamps its own receive time: compare over today +- 1 day.
    let answered: Vec<SimReport> = out.answered.iter().map(|a| snapshot[a.index]).collect();
    let truth = Truth::new(&fleet, &answered);
    let today = day_of(now);
    let data = load(&setup.db_path(), today - 1, today + 1);
    check_versions(
        &stats::versions(&data, today - 1, today + 1),
        &truth.versions(today - 1, today + 1),
    );
    let alive = fleet.clusters.iter().filter(|c| c.alive_on(today));
    let identified: u64 = alive
        .filter(|c| !c.anonymous)
        .map(|c| c.nodes.len() as u64)
        .sum();
    assert_eq!(
        stats::versions(&data, today - 1, today + 1).active_nodes,
        identified
    );
}

/// The command line end to end: `vcheckd simulate --db --truth`, then
/// `vcheckd stats versions --format json` gives the generator's numbers.
#[test]
fn cli_history_and_stats_agree() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.sqlite");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcheckd"))
            .args(args)
            .env_remove("VCHECKD_ZONE")
            .env_remove("VCHECKD_KEY")
            .env_remove("VCHECKD_DB")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let db_arg = db.to_str().unwrap();
    let out = run(&[
        "simulate",
        "--db",
        db_arg,
        "--clusters",
        "60",
        "--days",
        "20",
        "--seed",
        "5",
        "--truth",
    ]);
    let (line, json) = out.split_once('\n').unwrap();
    assert!(line.starts_with("vcheckd simulate: 60 clusters"), "{line}");
    let truth: serde_json::Value = serde_json::from_str(json).unwrap();
    let truth = &truth["history"]["versions"];
    let stats: serde_json::Value = serde_json::from_str(&run(&[
        "stats", "versions", "--db", db_arg, "--format", "json",
    ]))
    .unwrap();
    // The simulated fleet has one zone: one result.
    let stats = &stats[0];
    for field in [
        "since",
        "until",
        "active_clusters",
        "active_nodes",
        "mixed_clusters",
    ] {
        assert_eq!(stats[field], truth[field], "{field}");
    }
    // Days are ISO dates in JSON (YYYY-MM-DD), as in every other output.
    let until = stats["until"].as_str().unwrap_or_default();
    assert_eq!(
        vcheckd::clock::day_of_date(until),
        Some(vcheckd::clock::today().0),
        "{until}"
    );
    let rows = |v: &serde_json::Value| -> Vec<(String, u64, u64, u64)> {
        (v["rows"].as_array().unwrap().iter())
            .map(|r| {
                let n = |f: &str| r[f].as_u64().unwrap();
                (
                    r["version"].as_str().unwrap().to_string(),
                    n("clusters"),
                    n("nodes"),
                    n("reports"),
                )
            })
            .collect()
    };
    assert_eq!(rows(stats), rows(truth));
    assert!(truth["active_clusters"].as_u64().unwrap() > 30);
}
