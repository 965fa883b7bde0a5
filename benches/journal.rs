//! Append throughput of the journal: 100-byte records from two threads,
//! with the group-commit thread writing and fsyncing to a temporary folder
//! (so the figure includes the contention of the real commit path).
//!
//! Run: `cargo bench --bench journal`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use vcheckd::journal::{Journal, JournalConfig};

const THREADS: u64 = 2;

fn append_two_threads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let journal = Arc::new(
        Journal::open(JournalConfig {
            dir: dir.path().join("journal"),
            // Large enough that no append in the run is refused as full.
            max_bytes: 64 << 30,
            ..JournalConfig::default()
        })
        .expect("open journal"),
    );
    let record = [0x5au8; 100];
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(THREADS));
    group.bench_function("append_100B_2_threads", |b| {
        // One iteration = one append on each thread.
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    let journal = &journal;
                    s.spawn(move || {
                        for _ in 0..iters {
                            let _ = journal.append(&record);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();
    let stats = journal.stats();
    let out = journal.close(Duration::from_secs(10));
    eprintln!(
        "journal: appended {} dropped {} commits {} durable_end {} lost {}",
        stats.appended_records,
        stats.dropped_records,
        stats.commits,
        out.durable_end,
        out.lost_records
    );
}

criterion_group!(benches, append_two_threads);
criterion_main!(benches);
