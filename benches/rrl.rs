//! The rate limiter's per-packet cost: one `check` per UDP answer, on the
//! hot path of every UDP worker. Many prefixes (real traffic), one prefix
//! under the limit's flood (every check on one slot), and two threads on
//! one slot (the worst contention two UDP workers can have).
//!
//! Run: `cargo bench --bench rrl -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use vcheckd::dns::rrl::RateLimiter;

fn check(c: &mut Criterion) {
    let rrl = RateLimiter::new(200, 2);
    let mut n = 0u32;
    c.bench_function("rrl check, 65k prefixes", |b| {
        b.iter(|| {
            n = n.wrapping_add(0x100);
            black_box(rrl.check(IpAddr::V4(Ipv4Addr::from(n & 0x00ff_ff00 | 0x0a00_0000))))
        })
    });
    let one = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    c.bench_function("rrl check, one prefix flooding", |b| {
        b.iter(|| black_box(rrl.check(one)))
    });
    c.bench_function("rrl check, one prefix, 2 threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..per_thread {
                            black_box(rrl.check(one));
                        }
                    });
                }
            });
            // Wall time of both threads: the cost per check as the
            // workers see it together.
            start.elapsed().max(Duration::from_nanos(1))
        })
    });
}

criterion_group!(benches, check);
criterion_main!(benches);
