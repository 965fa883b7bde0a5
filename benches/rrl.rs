//! The rate limiter's cost per UDP answer (`RateLimiter::check`, on the hot
//! path of every UDP worker), before and after answer classes, side by side
//! in one run: "before" is the one-budget check as it was (kept below, the
//! same table and counting), "after" classifies the answer from its bytes
//! and counts it against its prefix's budgets (one for a normal answer,
//! two for a large one). The answers are the sizes tests/amplification.rs
//! measures: the apex SOA (94 bytes, normal), the policy at `_policy` (200
//! bytes with a one-release policy, large by its factor) and a v2 report's
//! answer with a realistic policy (1,097 bytes, large by its size).
//!
//! Cases: many prefixes (real traffic), one prefix under a flood (every
//! check on one slot) and two threads on one prefix (the worst contention
//! two UDP workers can have).
//!
//! Run: `cargo bench --bench rrl -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use vcheckd::dns::rrl::{Class, Limits, RateLimiter};

/// The limiter before answer classes: one budget per prefix, for every
/// answer (src/dns/rrl.rs at c4058a3, its slip decision and all).
mod before {
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    pub struct RateLimiter {
        rate: u32,
        slip: u32,
        seed: u64,
        start: Instant,
        slots: Box<[AtomicU64]>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Action {
        Send,
        Slip,
        Drop,
    }

    impl RateLimiter {
        pub fn new(rate: u32, slip: u32) -> Self {
            RateLimiter {
                rate,
                slip,
                seed: rand::random(),
                start: Instant::now(),
                slots: (0..1 << 16).map(|_| AtomicU64::new(0)).collect(),
            }
        }

        pub fn check(&self, client: IpAddr) -> Action {
            let now = self.start.elapsed().as_secs() as u32;
            let prefix = match client {
                IpAddr::V4(v4) => u64::from(u32::from(v4) & 0xffff_ff00),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => u64::from(u32::from(v4) & 0xffff_ff00),
                    None => ((u128::from(v6) >> 72) as u64) | (1 << 63),
                },
            };
            let mut x = prefix ^ self.seed;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let slot = &self.slots[((x ^ (x >> 31)) as usize) & (self.slots.len() - 1)];
            let mut current = slot.load(Ordering::Relaxed);
            let count = loop {
                let (second, count) = ((current >> 32) as u32, current as u32);
                let count = if second == now {
                    count.saturating_add(1)
                } else {
                    1
                };
                let next = (u64::from(now) << 32) | u64::from(count);
                match slot.compare_exchange_weak(
                    current,
                    next,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break count,
                    Err(seen) => current = seen,
                }
            };
            if count <= self.rate {
                return Action::Send;
            }
            let over = count - self.rate;
            if self.slip != 0 && over.is_multiple_of(self.slip) {
                Action::Slip
            } else {
                Action::Drop
            }
        }
    }
}

/// An authoritative answer at `name` with one record, and an OPT record.
fn answer(name: &str, qtype: RecordType, data: RData) -> Vec<u8> {
    let mut m = Message::response(0x1234, OpCode::Query);
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    let name = Name::from_ascii(name).unwrap();
    m.add_query(Query::query(name.clone(), qtype));
    m.add_answer(Record::from_rdata(name, 60, data));
    m.set_edns(Edns::new());
    m.to_bytes().unwrap()
}

fn txt(bytes: usize) -> RData {
    let strings = (0..bytes.div_ceil(255))
        .map(|i| "x".repeat((bytes - i * 255).min(255)))
        .collect();
    RData::TXT(TXT::new(strings))
}

fn check(c: &mut Criterion) {
    let zone = Name::from_ascii("vc.example.com.").unwrap();
    let soa = answer(
        "vc.example.com.",
        RecordType::SOA,
        RData::SOA(SOA::new(
            Name::from_ascii("ns1.vc.example.com.").unwrap(),
            Name::from_ascii("hostmaster.example.com.").unwrap(),
            2026112301,
            3600,
            600,
            1_209_600,
            60,
        )),
    );
    let policy = answer("5._policy.vc.example.com.", RecordType::TXT, txt(134));
    let report_name = format!("{}.{zone}", vec!["a".repeat(60); 3].join("."));
    let report = answer(&report_name, RecordType::TXT, txt(855));
    let answers = [
        ("normal", &soa),
        ("large _policy", &policy),
        ("large report", &report),
    ];
    for (what, bytes) in answers {
        let want = if what == "normal" {
            Class::Normal
        } else {
            Class::Large
        };
        assert_eq!(Class::of(bytes), want, "{what}: {} bytes", bytes.len());
        eprintln!("{what} answer: {} bytes", bytes.len());
    }

    let old = before::RateLimiter::new(200, 2);
    let new = RateLimiter::new(Limits {
        rate: 200,
        large_rate: 50,
        slip: 2,
    });
    let many = |n: &mut u32| {
        *n = n.wrapping_add(0x100);
        IpAddr::V4(Ipv4Addr::from(*n & 0x00ff_ff00 | 0x0a00_0000))
    };
    let one = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    let mut g = c.benchmark_group("rrl check");
    let mut n = 0u32;
    g.bench_function("65k prefixes, before", |b| {
        b.iter(|| black_box(old.check(many(&mut n))))
    });
    for (what, bytes) in answers {
        g.bench_function(format!("65k prefixes, after, {what}"), |b| {
            b.iter(|| black_box(new.check(many(&mut n), black_box(bytes))))
        });
    }
    g.bench_function("one prefix flooding, before", |b| {
        b.iter(|| black_box(old.check(one)))
    });
    for (what, bytes) in answers {
        g.bench_function(format!("one prefix flooding, after, {what}"), |b| {
            b.iter(|| black_box(new.check(one, black_box(bytes))))
        });
    }
    // Wall time of both threads: the cost per check as the workers see it
    // together.
    let two_threads = |check: &(dyn Fn() + Sync), iters: u64| {
        let per_thread = iters.div_ceil(2);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| (0..per_thread).for_each(|_| check()));
            }
        });
        start.elapsed().max(Duration::from_nanos(1))
    };
    g.bench_function("one prefix, 2 threads, before", |b| {
        b.iter_custom(|iters| {
            two_threads(
                &|| {
                    black_box(old.check(one));
                },
                iters,
            )
        })
    });
    g.bench_function("one prefix, 2 threads, after, large report", |b| {
        b.iter_custom(|iters| {
            two_threads(
                &|| {
                    black_box(new.check(one, black_box(&report)));
                },
                iters,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
