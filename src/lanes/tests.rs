//! Lanes on real files: eviction order, refusals, reading order, positions.

use std::time::{Duration, Instant};

use super::*;

const PATIENCE: Duration = Duration::from_secs(20);

fn open(dir: &Path, max: u64) -> Lanes {
    Lanes::open(dir, max, Duration::from_millis(1)).unwrap()
}

/// A 100-byte framed record naming its lane and number.
fn record(lane: Lane, i: usize) -> Vec<u8> {
    let mut r = format!("{}-{i:06}", lane.name()).into_bytes();
    r.resize(92, b'.');
    r
}

fn durable(lanes: &Lanes, lane: Lane, end: Position) {
    assert!(lanes.journal(lane).wait_durable(end, PATIENCE));
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Everything a consumer reads, in reading order, as the records' names.
fn read_all(readers: &mut LaneReaders) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((lane, pos)) = readers
        .read_batch(1000, |p| {
            out.push(String::from_utf8_lossy(&p[..9]).into_owned())
        })
        .unwrap()
    {
        readers.commit(lane, pos).unwrap();
    }
    out
}

#[test]
fn a_full_budget_evicts_the_lowest_lane_first_and_never_a_higher_one() {
    let dir = tempfile::tempdir().unwrap();
    // 64 records of 100 bytes; segments of 4096 bytes (40 records).
    let lanes = open(dir.path(), 6_400);
    let mut end = Position::ZERO;
    for i in 0..44 {
        end = lanes
            .append(Lane::Effort(0), &record(Lane::Effort(0), i))
            .unwrap();
    }
    durable(&lanes, Lane::Effort(0), end);
    for i in 0..10 {
        lanes.append(Lane::V1, &record(Lane::V1, i)).unwrap();
    }
    let mut e3 = Position::ZERO;
    for i in 0..10 {
        e3 = lanes
            .append(Lane::Effort(3), &record(Lane::Effort(3), i))
            .unwrap();
    }
    durable(&lanes, Lane::Effort(3), e3);
    assert_eq!(lanes.budget().used(), 6_400);
    // Same rank: refused, nothing evicted.
    assert_eq!(
        lanes.append(Lane::Effort(0), &record(Lane::Effort(0), 99)),
        Err(Refused::Full)
    );
    // Higher: the oldest segment of effort 0 goes (40 records).
    lanes
        .append(Lane::Effort(5), &record(Lane::Effort(5), 0))
        .unwrap();
    assert_eq!(lanes.journal(Lane::Effort(0)).live_bytes(), 400);
    // v1 outranks effort 0 only: it fills the room, evicts what is left
    // of effort 0, and is then refused: it never evicts effort 1 and up.
    let mut v1_taken = 10;
    loop {
        match lanes.append(Lane::V1, &record(Lane::V1, v1_taken)) {
            Ok(end) => {
                durable(&lanes, Lane::V1, end);
                v1_taken += 1;
            }
            Err(Refused::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(v1_taken, 10 + 39 + 4);
    eventually("effort 0 given up", || {
        lanes.journal(Lane::Effort(0)).live_bytes() == 0
    });
    assert_eq!(lanes.journal(Lane::Effort(3)).live_bytes(), 1_000);
    // Effort 1 evicts v1 (which now is the lowest non-empty lane).
    lanes
        .append(Lane::Effort(1), &record(Lane::Effort(1), 0))
        .unwrap();
    assert_eq!(lanes.journal(Lane::Effort(3)).live_bytes(), 1_000);
    let stats = lanes.stats();
    eventually("evictions counted", || {
        lanes.stats()[Lane::Effort(0).index()].evicted_records == 44
    });
    assert_eq!(stats[Lane::Effort(3).index()].evicted_records, 0);

    // Read order: v1, then the highest effort first.
    let mut readers = lanes.subscribe("opener").unwrap();
    let names = read_all(&mut readers);
    let lanes_read: Vec<&str> = names.iter().map(|n| &n[..3]).collect();
    let first_e5 = lanes_read.iter().position(|l| *l == "e05").unwrap();
    let first_e3 = lanes_read.iter().position(|l| *l == "e03").unwrap();
    let first_e1 = lanes_read.iter().position(|l| *l == "e01").unwrap();
    assert!(
        lanes_read[..first_e5].iter().all(|l| *l == "v1-"),
        "{names:?}"
    );
    assert!(first_e5 < first_e3 && first_e3 < first_e1, "{names:?}");
    assert!(!lanes_read.contains(&"e00"), "effort 0 was evicted whole");
}

#[test]
fn positions_survive_a_reopen_and_each_lane_resumes_after_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let lanes = open(dir.path(), 1 << 20);
        let (mut end, mut v1) = (Position::ZERO, Position::ZERO);
        for i in 0..5 {
            end = lanes
                .append(Lane::Effort(7), &record(Lane::Effort(7), i))
                .unwrap();
            v1 = lanes.append(Lane::V1, &record(Lane::V1, i)).unwrap();
        }
        durable(&lanes, Lane::Effort(7), end);
        durable(&lanes, Lane::V1, v1);
        let mut readers = lanes.subscribe("opener").unwrap();
        // v1 first, committed; effort 7 read but not committed.
        let (lane, pos) = readers.read_batch(100, |_| {}).unwrap().unwrap();
        assert_eq!(lane, Lane::V1);
        readers.commit(lane, pos).unwrap();
        let (lane, _) = readers.read_batch(100, |_| {}).unwrap().unwrap();
        assert_eq!(lane, Lane::Effort(7));
        lanes.close(PATIENCE);
    }
    let lanes = open(dir.path(), 1 << 20);
    let mut readers = lanes.subscribe("opener").unwrap();
    let names = read_all(&mut readers);
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("e07")));
    // A second consumer has its own positions: it reads everything.
    let mut other = lanes.subscribe("forwarder").unwrap();
    assert_eq!(read_all(&mut other).len(), 10);
}
