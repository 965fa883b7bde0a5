//! Append throughput of the journal: 100-byte records from two threads,
//! with the group-commit thread writing and fsyncing to a temporary folder
//! concurrently (so the figure includes contention with the commit path).
//!
//! Only the appends are timed. After each chunk, untimed, the commit
//! thread is let catch up and a consumer commits, so segments are deleted
//! and no append in the run is refused: the figure is the cost of a taken
//! append, not of a dropped one. The disk's own sustained rate (what a
//! long burst can keep) is printed at the end from the commit counters.
//!
//! Run: `cargo bench --bench journal`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use vcheckd::journal::{Journal, JournalConfig};

const THREADS: u64 = 2;
/// Appends per thread between drains: 2 x 100k x 108 bytes stays under
/// the 64 MiB pending bound, so criterion's growing warm-up calls never
/// make the journal drop.
const CHUNK: u64 = 100_000;

fn append_two_threads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let journal = Arc::new(
        Journal::open(JournalConfig {
            dir: dir.path().join("journal"),
            ..JournalConfig::default()
        })
        .expect("open journal"),
    );
    let consumer = journal
        .subscribe("bench", vcheckd::journal::Position::ZERO)
        .expect("subscribe");
    let record = [0x5au8; 100];
    let mut write_time = Duration::ZERO;
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(THREADS));
    group.bench_function("append_100B_2_threads", |b| {
        // One iteration = one append on each thread.
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(CHUNK);
                left -= chunk;
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..THREADS {
                        let journal = &journal;
                        s.spawn(move || {
                            for _ in 0..chunk {
                                let _ = journal.append(&record);
                            }
                        });
                    }
                });
                let elapsed = start.elapsed();
                timed += elapsed;
                // Untimed: let the disk catch up, then free the segments.
                let drain = Instant::now();
                while journal.stats().pending_bytes > 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                write_time += drain.elapsed() + elapsed;
                let _ = consumer.commit(journal.stats().durable_end);
            }
            timed
        })
    });
    group.finish();
    let stats = journal.stats();
    let out = journal.close(Duration::from_secs(10));
    eprintln!(
        "journal: appended {} dropped {} commits {} failures {} durable bytes {} lost {}; \
         durable rate ~{:.0} records/s ({:.0} MB/s) over the appends plus drains",
        stats.appended_records,
        stats.dropped_records,
        stats.commits,
        stats.commit_failures,
        out.durable_end,
        out.lost_records,
        stats.appended_records as f64 / write_time.as_secs_f64(),
        out.durable_end.0 as f64 / write_time.as_secs_f64() / 1e6,
    );
}

criterion_group!(benches, append_two_threads);
criterion_main!(benches);
