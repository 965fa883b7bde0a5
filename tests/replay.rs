//! The replay window, end to end: real server, real UDP queries, the SQLite
//! file and its counters. A report dated too far back or ahead is answered
//! (the answer path cannot know: protocol v2 decrypts in the processor) but
//! counted by reason and not recorded; a frame replayed after its window
//! is not counted twice.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use hickory_proto::rr::RecordType;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::protocol::name::encode_query_name;
use vcheckd::protocol::ZoneName;
use vcheckd::store::reader::{SqliteReader, StatsReader};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A query name for a report dated `timestamp` (the client's clock).
fn name_dated(setup: &Setup, node: &str, timestamp: u64) -> String {
    let check = setup.check("cluster", node, "2.4.1");
    let zone = ZoneName::new(ZONE).unwrap();
    encode_query_name(&setup.key, &zone, &check.payload(timestamp))
        .unwrap()
        .0
}

/// Starts the server with the given window, sends each name once over UDP
/// (each is answered), and stops it: everything answered is then processed.
async fn serve_and_send(setup: &Setup, window: &str, names: &[&str]) {
    let text = config_text(RELEASES).replace(
        "rrl_rate = 0\n",
        &format!("rrl_rate = 0\nretention_days = 2\n{window}\n"),
    );
    std::fs::write(setup.config_path(), text).unwrap();
    let config = Config::load(&setup.config_path()).unwrap();
    let server = RunningServer::start(&config).await.unwrap();
    let addr = server.local_addrs()[0];
    for name in names {
        let answer = udp(addr, &query(name, RecordType::TXT, None)).await;
        assert_eq!(answer.answers.len(), 1, "{name} gets its hint");
    }
    server.shutdown().await.unwrap();
}

fn counter(setup: &Setup, name: &str) -> u64 {
    let reader = SqliteReader::open(&setup.db_path()).unwrap();
    reader
        .counters(vcheckd::clock::Day(0), vcheckd::clock::Day::today())
        .unwrap()
        .iter()
        .filter(|((_, n), _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn old_and_future_reports_are_counted_by_reason_not_recorded() {
    let setup = Setup::new();
    let t = now();
    let fresh = name_dated(&setup, "fresh", t);
    let late = name_dated(&setup, "late", t - 600); // inside a 1-hour window
    let old = name_dated(&setup, "old", t - 7_200);
    let older = name_dated(&setup, "older", t - 30 * 86_400);
    let future = name_dated(&setup, "future", t + 3_600);
    serve_and_send(
        &setup,
        "replay_window_secs = 3600\nreplay_future_secs = 300",
        &[&fresh, &late, &old, &older, &future],
    )
    .await;
    assert_eq!(rows(&setup.db_path()).len(), 2, "only fresh and late");
    assert_eq!(counter(&setup, "outside_window.too_old"), 2);
    assert_eq!(counter(&setup, "outside_window.future"), 1);
    assert_eq!(counter(&setup, "reports.accepted"), 5, "all were answered");
}

#[tokio::test]
async fn a_frame_replayed_after_its_window_is_not_counted_again() {
    let setup = Setup::new();
    // Sent two hours ago by the client's clock: inside a one-day window.
    let name = name_dated(&setup, "node", now() - 7_200);
    serve_and_send(&setup, "replay_window_secs = 86400", &[&name]).await;
    assert_eq!(
        rows(&setup.db_path()),
        vec![("2.4.1".to_string(), 0, false)]
    );
    // The same frame again, judged by a one-hour window: as a replay after
    // the window is judged (the server's clock has moved past it).
    serve_and_send(&setup, "replay_window_secs = 3600", &[&name]).await;
    assert_eq!(
        rows(&setup.db_path()),
        vec![("2.4.1".to_string(), 0, false)],
        "neither a second row nor a duplicate"
    );
    assert_eq!(counter(&setup, "outside_window.too_old"), 1);
}

#[test]
fn retention_shorter_than_the_window_is_refused_at_load() {
    let setup = Setup::new();
    let text = config_text(RELEASES).replace(
        "rrl_rate = 0\n",
        "rrl_rate = 0\nretention_days = 2\nreplay_window_secs = 172800\nreplay_future_secs = 1\n",
    );
    std::fs::write(setup.config_path(), text).unwrap();
    let e = Config::load(&setup.config_path()).unwrap_err().to_string();
    assert!(e.contains("retention_days = 2"), "{e}");
    assert!(e.contains("at least 3"), "{e}");
}
