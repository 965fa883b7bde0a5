//! Journal tests on real files. Waiting is on the journal's own condvar or
//! by polling with a generous deadline; nothing asserts timing.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::segment::HEADER_LEN;
use super::*;

const PATIENCE: Duration = Duration::from_secs(20);

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.join("journal"),
        commit_interval: Duration::from_millis(1),
        ..JournalConfig::default()
    }
}

fn framed(payload: &[u8]) -> u64 {
    (HEADER_LEN + payload.len()) as u64
}

/// Distinct, variable-length payloads (18..=60 bytes).
fn payload(thread: usize, i: usize) -> Vec<u8> {
    let mut p = format!("t{thread}-{i:08}-").into_bytes();
    p.resize(p.len() + i % 43, b'x');
    p
}

fn wait_durable(j: &Journal, end: u64) {
    let got = j.shared.wait_durable(end.saturating_sub(1), PATIENCE);
    assert!(got >= end, "durable end {got} never reached {end}");
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads until `n` records came or the patience runs out.
fn read_n(reader: &mut Reader, n: usize) -> Vec<(Position, Vec<u8>)> {
    let mut out = Vec::with_capacity(n);
    let start = Instant::now();
    while out.len() < n && start.elapsed() < PATIENCE {
        reader
            .read_batch(n - out.len(), Duration::from_millis(50), |pos, p| {
                out.push((pos, p.to_vec()))
            })
            .unwrap();
    }
    out
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Fails every write step while `failing` is set, after writing half of
/// the bytes (a torn write); notes if a step ever starts past a torn write
/// that was not cut away.
fn install_fault(j: &Journal, failing: Arc<AtomicBool>, untrimmed: Arc<AtomicBool>) {
    *lock(&j.shared.fault) = Some(Box::new(move |file, offset, bytes| {
        if file.metadata().map(|m| m.len()).unwrap_or(u64::MAX) != offset {
            untrimmed.store(true, Ordering::SeqCst);
        }
        if !failing.load(Ordering::SeqCst) {
            return None;
        }
        let _ = file.write_all_at(&bytes[..bytes.len() / 2], offset);
        Some(std::io::Error::from_raw_os_error(28)) // ENOSPC
    }));
}

#[test]
fn journal_appends_from_threads_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(Journal::open(config(dir.path())).unwrap());
    let mut reader = j.subscribe("processor", Position::ZERO).unwrap();
    const THREADS: usize = 4;
    const EACH: usize = 5_000;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    j.append(&payload(t, i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let records = read_n(&mut reader, THREADS * EACH);
    assert_eq!(records.len(), THREADS * EACH);
    let mut next = [0usize; THREADS];
    let mut expected_pos = 0u64;
    for (pos, p) in &records {
        assert_eq!(pos.0, expected_pos, "positions are byte offsets");
        expected_pos += framed(p);
        let t = usize::from(p[1] - b'0');
        assert_eq!(*p, payload(t, next[t]), "each thread's records in order");
        next[t] += 1;
    }
    assert_eq!(next, [EACH; THREADS]);
    assert_eq!(reader.position().0, expected_pos);
    let stats = j.stats();
    assert_eq!(stats.appended_records, (THREADS * EACH) as u64);
    assert_eq!(stats.dropped_records, 0);
    assert_eq!(stats.durable_end.0, expected_pos);
    assert_eq!(stats.bytes_on_disk, expected_pos);
    assert_eq!(stats.pending_bytes, 0);
    assert!(stats.commits >= 1);
    assert_eq!(
        j.records_between(Position::ZERO, stats.durable_end)
            .unwrap(),
        (THREADS * EACH) as u64
    );
}

#[test]
fn journal_records_cross_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 1_000,
        ..config(dir.path())
    };
    let j = Journal::open(cfg.clone()).unwrap();
    let mut end = 0;
    for i in 0..500 {
        let p = payload(0, i);
        end += framed(&p);
        j.append(&p).unwrap();
    }
    wait_durable(&j, end);
    let files = segment_files(&cfg.dir);
    assert!(files.len() > 10, "{} segments", files.len());
    let mut expected_start = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, format!("{expected_start:020}.seg"));
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 1_000, "{name} holds {len} bytes");
        expected_start += len;
    }
    assert_eq!(expected_start, end);
    let mut reader = j.subscribe("p", Position::ZERO).unwrap();
    let records = read_n(&mut reader, 500);
    for (i, (_, p)) in records.iter().enumerate() {
        assert_eq!(*p, payload(0, i));
    }
    assert_eq!(reader.position().0, end);
    // From a position in the middle of the log, in a later segment.
    let mut mid = j.subscribe("mid", records[321].0).unwrap();
    let rest = read_n(&mut mid, 500 - 321);
    assert_eq!(rest[0], records[321]);
    assert_eq!(rest.last(), records.last());
}

#[test]
fn journal_reopen_keeps_everything_appended_before_drop() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 4_096,
        ..config(dir.path())
    };
    let mut end = 0;
    {
        let j = Journal::open(cfg.clone()).unwrap();
        for i in 0..300 {
            let p = payload(1, i);
            end += framed(&p);
            j.append(&p).unwrap();
        }
        // Dropped at once: the drop flushes.
    }
    let j = Journal::open(cfg.clone()).unwrap();
    assert_eq!(j.stats().durable_end.0, end);
    let mut reader = j.subscribe("p", Position::ZERO).unwrap();
    let records = read_n(&mut reader, 300);
    assert_eq!(records.len(), 300);
    assert_eq!(records[299].1, payload(1, 299));
    // Appends go on from where the log ended.
    j.append(b"after").unwrap();
    let more = read_n(&mut reader, 1);
    assert_eq!(more, vec![(Position(end), b"after".to_vec())]);
    let out = j.close(PATIENCE);
    assert_eq!(out.durable_end.0, end + framed(b"after"));
    assert_eq!(out.lost_records, 0);
}

/// Writes 10 records, closes, then damages the last segment with `damage`
/// (given the file and the offset of the last record); returns the
/// reopened journal and the offset of the last record.
fn damaged_tail(dir: &Path, damage: impl FnOnce(&Path, u64)) -> (Journal, u64) {
    let cfg = config(dir);
    let mut last = 0;
    {
        let j = Journal::open(cfg.clone()).unwrap();
        let mut end = 0;
        for i in 0..10 {
            let p = payload(2, i);
            last = end;
            end += framed(&p);
            j.append(&p).unwrap();
        }
        assert_eq!(j.close(PATIENCE).durable_end.0, end);
    }
    let files = segment_files(&cfg.dir);
    assert_eq!(files.len(), 1);
    damage(&files[0], last);
    (Journal::open(cfg).unwrap(), last)
}

fn assert_first_nine_survive(j: &Journal, last: u64) {
    assert_eq!(j.stats().durable_end.0, last);
    assert_eq!(j.stats().bytes_on_disk, last);
    let mut reader = j.subscribe("p", Position::ZERO).unwrap();
    let records = read_n(&mut reader, 9);
    assert_eq!(records.len(), 9);
    assert_eq!(records[8].1, payload(2, 8));
    // Nothing past the cut, and the next append lands at the cut.
    j.append(b"next").unwrap();
    assert_eq!(
        read_n(&mut reader, 1),
        vec![(Position(last), b"next".to_vec())]
    );
}

#[test]
fn journal_open_cuts_a_truncated_tail() {
    // Cut inside the last record's header, then inside its payload.
    for cut in [5, HEADER_LEN as u64 + 3] {
        let dir = tempfile::tempdir().unwrap();
        let (j, last) = damaged_tail(dir.path(), |file, last| {
            let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
            f.set_len(last + cut).unwrap();
        });
        assert_first_nine_survive(&j, last);
    }
}

#[test]
fn journal_open_cuts_a_record_with_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (j, last) = damaged_tail(dir.path(), |file, last| {
        let mut bytes = std::fs::read(file).unwrap();
        let at = last as usize + HEADER_LEN + 2;
        bytes[at] ^= 0x40;
        std::fs::write(file, bytes).unwrap();
    });
    assert_first_nine_survive(&j, last);
}

#[test]
fn journal_reader_reports_a_damaged_earlier_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 500,
        ..config(dir.path())
    };
    {
        let j = Journal::open(cfg.clone()).unwrap();
        for i in 0..100 {
            j.append(&payload(3, i)).unwrap();
        }
        j.close(PATIENCE);
    }
    let files = segment_files(&cfg.dir);
    let first_len = std::fs::metadata(&files[0]).unwrap().len();
    let second = payload(3, 0).len() + HEADER_LEN; // offset of the 2nd record
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[second + HEADER_LEN] ^= 1;
    std::fs::write(&files[0], bytes).unwrap();
    let j = Journal::open(cfg).unwrap();
    let mut reader = j.subscribe("p", Position::ZERO).unwrap();
    let mut seen = 0;
    let err = reader
        .read_batch(100, Duration::ZERO, |_, _| seen += 1)
        .unwrap_err();
    assert_eq!(seen, 1);
    match &err {
        JournalError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &files[0]);
            assert_eq!(*offset, second as u64);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains(&files[0].display().to_string()));
    // The reader stays before the damage rather than skipping it.
    assert_eq!(reader.position().0, second as u64);
    assert!(first_len > second as u64);
}

#[test]
fn journal_drops_and_counts_past_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        max_bytes: 1_000,
        segment_bytes: 300,
        ..config(dir.path())
    };
    let j = Journal::open(cfg).unwrap();
    let p = [7u8; 100]; // 108 bytes framed
    let mut taken = 0;
    let mut refused = 0;
    for _ in 0..20 {
        match j.append(&p) {
            Ok(_) => taken += 1,
            Err(AppendError::Full) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(taken, 9); // 9 * 108 = 972 <= 1000
    assert_eq!(refused, 11);
    let stats = j.stats();
    assert_eq!(stats.appended_records, 9);
    assert_eq!(stats.dropped_records, 11);
    wait_durable(&j, 972);
    // Durable bytes still count: full until a consumer frees segments.
    assert_eq!(j.append(&p), Err(AppendError::Full));
    let mut reader = j.subscribe("p", Position::ZERO).unwrap();
    let end = reader.read_batch(100, Duration::ZERO, |_, _| {}).unwrap();
    assert_eq!(end.0, 972);
    reader.commit(end).unwrap();
    // Two records per 300-byte segment: all but the last one are deleted.
    let stats = j.stats();
    assert_eq!(stats.bytes_on_disk, 108);
    assert_eq!(stats.oldest.0, 864);
    assert_eq!(stats.min_committed, Some(Position(972)));
    j.append(&p).unwrap();
    assert_eq!(j.stats().dropped_records, 12);
}

#[test]
fn journal_refuses_empty_and_oversized_records() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(config(dir.path())).unwrap();
    assert_eq!(j.append(b""), Err(AppendError::Empty));
    let big = vec![0u8; MAX_RECORD + 1];
    assert_eq!(
        j.append(&big),
        Err(AppendError::TooLarge {
            len: MAX_RECORD + 1
        })
    );
    j.append(&big[..MAX_RECORD]).unwrap();
    wait_durable(&j, framed(&big[..MAX_RECORD]));
    j.close(PATIENCE);
    assert_eq!(j.append(b"late"), Err(AppendError::Closed));
}

#[test]
fn journal_deletes_segments_only_past_every_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 500,
        ..config(dir.path())
    };
    let mut end = 0;
    let mut positions = Vec::new();
    {
        let j = Journal::open(cfg.clone()).unwrap();
        for i in 0..100 {
            let p = payload(4, i);
            positions.push(end);
            end += framed(&p);
            j.append(&p).unwrap();
        }
        wait_durable(&j, end);
        assert_eq!(j.stats().min_committed, None);
    }
    let all = segment_files(&cfg.dir);
    assert!(all.len() > 5);
    // Reopening without subscribers deletes nothing either.
    let j = Journal::open(cfg.clone()).unwrap();
    assert_eq!(segment_files(&cfg.dir), all);

    let mut a = j.subscribe("processor", Position::ZERO).unwrap();
    let mut b = j.subscribe("shipper", Position::ZERO).unwrap();
    let a_end = a.read_batch(1_000, Duration::ZERO, |_, _| {}).unwrap();
    assert_eq!(a_end.0, end);
    a.commit(a_end).unwrap();
    assert_eq!(segment_files(&cfg.dir), all, "the shipper still needs them");

    let b_mid = b.read_batch(50, Duration::ZERO, |_, _| {}).unwrap();
    assert_eq!(b_mid.0, positions[50]);
    b.commit(b_mid).unwrap();
    let left = segment_files(&cfg.dir);
    let oldest = j.stats().oldest.0;
    assert!(left.len() < all.len());
    assert!(oldest <= b_mid.0, "the segment holding {b_mid} stays");
    assert_eq!(left[0], segment::path_of(&cfg.dir, oldest));
    assert_eq!(j.stats().min_committed, Some(b_mid));
    assert_eq!(
        j.consumers(),
        vec![
            ("processor".to_string(), a_end),
            ("shipper".to_string(), b_mid)
        ]
    );

    // The shipper reads on from deleted-behind-it territory unharmed.
    let rest = read_n(&mut b, 50);
    assert_eq!(rest[0].0 .0, positions[50]);
    b.commit(b.position()).unwrap();
    let left = segment_files(&cfg.dir);
    assert_eq!(left.len(), 1, "only the segment being written stays");
    assert_eq!(j.stats().bytes_on_disk, end - j.stats().oldest.0);
    // Committing past the durable end is refused.
    assert!(matches!(
        a.commit(Position(end + 1)),
        Err(JournalError::Ahead { .. })
    ));
}

#[test]
fn journal_subscribe_before_the_oldest_segment_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 500,
        ..config(dir.path())
    };
    let (oldest, end) = {
        let j = Journal::open(cfg.clone()).unwrap();
        for i in 0..60 {
            j.append(&payload(5, i)).unwrap();
        }
        let mut r = j.subscribe("p", Position::ZERO).unwrap();
        let got = read_n(&mut r, 60);
        r.commit(got[40].0).unwrap();
        (j.stats().oldest.0, r.position().0)
    };
    assert!(oldest > 0);
    let j = Journal::open(cfg).unwrap();
    assert_eq!(j.stats().oldest.0, oldest);
    let mut r = j.subscribe("p", Position::ZERO).unwrap();
    assert_eq!(r.skipped(), oldest);
    assert_eq!(r.position().0, oldest);
    let first = read_n(&mut r, 1);
    assert_eq!(first[0].0 .0, oldest);
    assert!(matches!(
        j.subscribe("q", Position(end + 1)),
        Err(JournalError::Ahead { .. })
    ));
}

#[test]
fn journal_counts_records_between_positions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 700,
        ..config(dir.path())
    };
    let j = Journal::open(cfg).unwrap();
    let mut positions = Vec::new();
    let mut end = 0;
    for i in 0..120 {
        let p = payload(6, i);
        positions.push(Position(end));
        end += framed(&p);
        j.append(&p).unwrap();
    }
    wait_durable(&j, end);
    let end = Position(end);
    assert_eq!(j.records_between(Position::ZERO, end).unwrap(), 120);
    assert_eq!(j.records_between(positions[10], positions[60]).unwrap(), 50);
    assert_eq!(j.records_between(positions[119], end).unwrap(), 1);
    assert_eq!(j.records_between(end, end).unwrap(), 0);
    assert_eq!(j.records_between(positions[60], positions[10]).unwrap(), 0);
    // `to` past the durable end is clamped.
    assert_eq!(
        j.records_between(positions[100], Position(u64::MAX))
            .unwrap(),
        20
    );
}

#[test]
fn journal_close_returns_by_its_deadline_when_writes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(config(dir.path())).unwrap();
    let untrimmed = Arc::new(AtomicBool::new(false));
    install_fault(&j, Arc::new(AtomicBool::new(true)), untrimmed.clone());
    for i in 0..25 {
        j.append(&payload(7, i)).unwrap();
    }
    eventually("a failed commit", || j.stats().commit_failures >= 1);
    let deadline = Duration::from_millis(300);
    let started = Instant::now();
    let out = j.close(deadline);
    let took = started.elapsed();
    assert!(
        took < deadline + Duration::from_secs(2),
        "close took {took:?}"
    );
    assert_eq!(out.lost_records, 25);
    assert_eq!(out.durable_end, Position::ZERO);
    assert!(!untrimmed.load(Ordering::SeqCst));
    let files = segment_files(&config(dir.path()).dir);
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), 0);
}

#[test]
fn journal_close_returns_by_its_deadline_when_a_write_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(config(dir.path())).unwrap();
    let entered = Arc::new(AtomicBool::new(false));
    let seen = entered.clone();
    *lock(&j.shared.fault) = Some(Box::new(move |_, _, _| {
        seen.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(2));
        None
    }));
    j.append(b"stuck").unwrap();
    eventually("the write to start", || entered.load(Ordering::SeqCst));
    let started = Instant::now();
    let out = j.close(Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(out.lost_records, 1);
}

#[test]
fn journal_failed_writes_then_success_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 2_000,
        ..config(dir.path())
    };
    let j = Journal::open(cfg.clone()).unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let untrimmed = Arc::new(AtomicBool::new(false));
    let mut end = 0;
    for i in 0..40 {
        let p = payload(8, i);
        end += framed(&p);
        j.append(&p).unwrap();
    }
    // Some records durable first, so the cut goes back to a non-zero length.
    wait_durable(&j, end);
    install_fault(&j, failing.clone(), untrimmed.clone());
    // Taken until the first write failed: kept in memory and retried.
    let mut taken = 40;
    for i in 40..200 {
        let p = payload(8, i);
        match j.append(&p) {
            Ok(_) => {
                end += framed(&p);
                taken += 1;
            }
            Err(AppendError::Unwritable) => break,
            Err(e) => panic!("{e}"),
        }
    }
    eventually("three failed commits", || j.stats().commit_failures >= 3);
    let stats = j.stats();
    assert!(stats.pending_bytes > 0);
    assert!(stats.durable_end.0 < end);
    // While the disk fails, nothing more is taken: the caller can say so.
    assert_eq!(j.append(b"refused"), Err(AppendError::Unwritable));
    failing.store(false, Ordering::SeqCst);
    wait_durable(&j, end);
    let out = j.close(PATIENCE);
    assert_eq!(out.lost_records, 0);
    assert_eq!(out.durable_end.0, end);
    assert!(
        !untrimmed.load(Ordering::SeqCst),
        "a torn write was retried over"
    );
    assert!(j.stats().dropped_records >= 1);
    drop(j);

    // On disk: exactly the records, no torn bytes anywhere.
    let on_disk: u64 = segment_files(&cfg.dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(on_disk, end);
    let j = Journal::open(cfg).unwrap();
    assert_eq!(j.stats().durable_end.0, end);
    let mut r = j.subscribe("p", Position::ZERO).unwrap();
    let records = read_n(&mut r, taken);
    assert_eq!(records.len(), taken);
    for (i, (_, p)) in records.iter().enumerate() {
        assert_eq!(*p, payload(8, i));
    }
}

#[test]
fn journal_record_above_segment_bytes_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 100,
        ..config(dir.path())
    };
    let j = Journal::open(cfg.clone()).unwrap();
    let small = [1u8; 20];
    let big = [2u8; 500];
    for p in [&small[..], &big, &small, &big, &small] {
        j.append(p).unwrap();
    }
    let end = 3 * framed(&small) + 2 * framed(&big);
    wait_durable(&j, end);
    let lens: Vec<u64> = segment_files(&cfg.dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    assert_eq!(lens, vec![28, 508, 28, 508, 28]);
    let mut r = j.subscribe("p", Position::ZERO).unwrap();
    let got = read_n(&mut r, 5);
    assert_eq!(got[3], (Position(28 + 508 + 28), big.to_vec()));
}

#[test]
fn journal_bounds_memory_while_writes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        max_bytes: 10_000,
        ..config(dir.path())
    };
    let j = Journal::open(cfg).unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    install_fault(&j, failing.clone(), Arc::new(AtomicBool::new(false)));
    let p = [3u8; 92]; // 100 bytes framed
    let mut taken = 0u64;
    for _ in 0..150 {
        match j.append(&p) {
            Ok(_) => taken += 1,
            // The first failed write stops the taking.
            Err(AppendError::Unwritable) => break,
            Err(AppendError::Full) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(taken <= 100, "{taken}");
    let stats = j.stats();
    assert!(stats.pending_bytes <= 10_000);

    // Space comes back: everything taken is written, and room returns
    // only as consumers free segments (none here), so still full.
    failing.store(false, Ordering::SeqCst);
    wait_durable(&j, taken * 100);
    assert_eq!(j.stats().pending_bytes, 0);
    assert_eq!(j.close(PATIENCE).lost_records, 0);
}

#[test]
fn journal_a_second_opener_of_the_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::open(config(dir.path())).unwrap();
    match Journal::open(config(dir.path())) {
        Err(JournalError::InUse { dir: d, lock }) => assert_eq!(lock, d.join("lock")),
        other => panic!("expected InUse, got {:?}", other.map(|_| ())),
    }
    drop(first);
    // Released with the first journal: the folder opens again.
    Journal::open(config(dir.path())).unwrap();
}

#[test]
fn backlog_is_the_unread_durable_bytes_as_a_share_of_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        max_bytes: 1_000,
        ..config(dir.path())
    };
    let j = Journal::open(cfg).unwrap();
    let mut reader = j.subscribe("p", Position::ZERO).unwrap();
    assert_eq!(reader.backlog(), 0.0);
    let p = [7u8; 100]; // 108 bytes framed
    for _ in 0..5 {
        j.append(&p).unwrap();
    }
    wait_durable(&j, 540);
    assert_eq!(reader.backlog(), 0.54);
    reader.read_batch(2, Duration::ZERO, |_, _| {}).unwrap();
    assert_eq!(reader.backlog(), 0.324);
    reader.read_batch(100, Duration::ZERO, |_, _| {}).unwrap();
    assert_eq!(reader.backlog(), 0.0);
}

/// Two journals in one budget: the bound covers both; evicting the oldest
/// segment of one makes room for the other at once, its records are
/// skipped by its reader and counted, and its files go.
#[test]
fn journals_share_a_budget_and_eviction_gives_up_whole_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Budget::new(2_000);
    let cfg = |name: &str| JournalConfig {
        dir: dir.path().join(name),
        segment_bytes: 300,
        commit_interval: Duration::from_millis(1),
        ..JournalConfig::default()
    };
    let low = Journal::open_in(cfg("low"), budget.clone()).unwrap();
    let high = Journal::open_in(cfg("high"), budget.clone()).unwrap();
    let p = [5u8; 92]; // 100 bytes framed, 3 per segment
    let mut end = Position::ZERO;
    for _ in 0..15 {
        end = low.append(&p).unwrap();
    }
    for _ in 0..5 {
        high.append(&p).unwrap();
    }
    assert_eq!(budget.used(), 2_000);
    assert_eq!(high.append(&p), Err(AppendError::Full));
    assert!(low.wait_durable(end, PATIENCE));
    let mut reader = low.subscribe("opener", Position::ZERO).unwrap();
    // One record read: the first segment is evicted all the same.
    reader.read_batch(1, Duration::ZERO, |_, _| {}).unwrap();
    assert_eq!(low.evict_oldest(), 300);
    assert_eq!(budget.used(), 1_700);
    for _ in 0..3 {
        high.append(&p).unwrap();
    }
    assert_eq!(high.append(&p), Err(AppendError::Full));
    eventually("the evicted segment deleted", || {
        low.stats().evicted_records == 2
    });
    let mut got = Vec::new();
    reader
        .read_batch(100, Duration::ZERO, |pos, _| got.push(pos.0))
        .unwrap();
    assert_eq!(got.first(), Some(&300), "resumes after the evicted segment");
    assert_eq!(got.len(), 12);
    // Down to the segment being written: it is closed and given up whole.
    for _ in 0..4 {
        assert_eq!(low.evict_oldest(), 300);
    }
    assert_eq!(
        low.evict_oldest(),
        0,
        "a close of the written segment is pending"
    );
    assert_eq!(low.stats().live_bytes, 0);
    assert_eq!(budget.used(), 800);
    eventually("every evicted file deleted", || {
        low.stats().bytes_on_disk == 0
    });
    assert_eq!(
        low.stats().evicted_records,
        2,
        "only the 2 never read count"
    );
    // A tail smaller than a segment, only in the segment being written.
    let tail = low.append(&p).unwrap();
    assert!(low.wait_durable(tail, PATIENCE));
    assert_eq!(low.evict_oldest(), 100);
    assert_eq!(low.evict_oldest(), 0, "a close is pending");
    eventually("the written segment closed and deleted", || {
        low.stats().bytes_on_disk == 0 && low.stats().evicted_records == 3
    });
    let after = low.append(&p).unwrap();
    assert!(low.wait_durable(after, PATIENCE));
    let mut got = Vec::new();
    reader
        .read_batch(100, Duration::ZERO, |pos, _| got.push(pos.0))
        .unwrap();
    assert_eq!(got, vec![after.0 - 100]);
    assert_eq!(budget.used(), 900);
}
