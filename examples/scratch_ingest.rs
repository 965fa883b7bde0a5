use std::time::Instant;
use vcheckd::hint::Status;
use vcheckd::protocol::{AnonId, Identity, KeyId, Payload, Report, ReportId, ZoneName};
use vcheckd::store::{ReceivedReport, Store};

fn main() {
    let nodes: u32 = std::env::args()
        .nth(1)
        .map_or(250_000, |a| a.parse().unwrap());
    let total: u32 = std::env::args()
        .nth(2)
        .map_or(1_000_000, |a| a.parse().unwrap());
    let path = std::path::Path::new("/tmp/scratch.sqlite");
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file("/tmp/scratch.sqlite-wal");
    let mut store = Store::open(path).unwrap();
    let zone = ZoneName::new("vc.example.com").unwrap();
    let now = vcheckd::clock::unix_now();
    let mk = |i: u32, day_off: i64| {
        let node = i % nodes;
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&i.to_le_bytes());
        id[4..8].copy_from_slice(&(i.wrapping_mul(2654435761)).to_le_bytes());
        id[8..12].copy_from_slice(&(day_off as u32).to_le_bytes());
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(&(node / 4).wrapping_mul(2654435761).to_le_bytes());
        let mut n = [0u8; 16];
        n[..4].copy_from_slice(&node.wrapping_mul(40503).to_le_bytes());
        n[4..8].copy_from_slice(&node.to_le_bytes());
        let at = now + day_off * 86_400 + (i as i64 % 80_000);
        ReceivedReport {
            report: Report {
                id: ReportId(id),
                key_id: KeyId(1),
                payload: Payload {
                    timestamp: at as u64,
                    identity: Identity::Known {
                        cluster: AnonId(c),
                        node: AnonId(n),
                    },
                    version: semver::Version::new(2, 4, (node % 3) as u64),
                },
            },
            zone: zone.clone(),
            received_at: at,
            status: Status::UpToDate,
        }
    };
    // history: 3 days of every node
    for d in -3..0i64 {
        let mut batch: Vec<ReceivedReport> = (0..nodes).map(|i| mk(i, d)).collect();
        batch.sort_by_key(|r| r.received_at);
        let t = Instant::now();
        for chunk in batch.chunks(8192) {
            store.commit(chunk, &[], None).unwrap();
        }
        eprintln!(
            "day {d}: {} reports in {:?} = {:.0}/s",
            batch.len(),
            t.elapsed(),
            batch.len() as f64 / t.elapsed().as_secs_f64()
        );
    }
    let mut batch: Vec<ReceivedReport> = (0..total).map(|i| mk(i + 1_000_000_000, 0)).collect();
    batch.sort_by_key(|r| r.received_at);
    let bs: usize = std::env::var("BS").map_or(8192, |v| v.parse().unwrap());
    let t = Instant::now();
    for chunk in batch.chunks(bs) {
        store.commit(chunk, &[], None).unwrap();
    }
    eprintln!("timers insert/nodeday/flush ms: {:?}", {
        let t = vcheckd::store::ingest::timers();
        (t.0 / 1_000_000, t.1 / 1_000_000, t.2 / 1_000_000)
    });
    eprintln!(
        "today: {} reports in {:?} = {:.0}/s",
        batch.len(),
        t.elapsed(),
        batch.len() as f64 / t.elapsed().as_secs_f64()
    );
}
