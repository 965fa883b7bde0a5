//! `Handler::handle`, the whole per-query work of the server minus the
//! socket calls: parse the request, find the zone, decode the payload,
//! compute the hint, append the report to the journal, encode the answer.
//!
//! The responder is built as `RunningServer::start` builds it: a TOML
//! config and a key file in a temp folder, the sample zone file, a real
//! set of raw lanes (`Lanes::open` in the temp folder, each lane's
//! group-commit thread writing and fsyncing every `journal_commit_ms`) and
//! the `Intake` in front of them (effort, repeat check, lane). No processor runs: the figure is the
//! answer path's, and the records stay in the journal.
//!
//! The journal: a valid query appends one record. If the journal were
//! full, `append` would take its cheaper "refuse and count" branch and the
//! figure would no longer be the one of a query whose report is kept. So
//! the main fixture's journal may grow to `JOURNAL_MAX_BYTES` (8 GiB, far
//! more than a default-length run appends; the records go to the temp
//! folder, about 100 bytes each), and the bench prints how many reports
//! were dropped at the end; a second, separate fixture whose journal has
//! room for one record measures the drop path on purpose
//! (`valid_txt_journal_full`).
//!
//! Run: `cargo bench --bench responder` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quick pass).

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use vcheckd::client::v1::Check;
use vcheckd::client::Reporter;
use vcheckd::config::{Config, SAMPLE_ZONE};
use vcheckd::daemon::Handler;
use vcheckd::dns::{Catalog, RequestHandler, Transport};
use vcheckd::intake::Intake;
use vcheckd::lanes::{Lane, Lanes};
use vcheckd::metrics::Metrics;
use vcheckd::protocol::{Key, KeyId, ZoneName};

const ZONE: &str = "vc.example.com";
/// Room for every record a default run appends (a few hundred thousand
/// per second at most, about 100 bytes each), so no append meets a full
/// journal.
const JOURNAL_MAX_BYTES: u64 = 8 << 30;
/// Room for one record and not two: every append after the first is
/// refused as full.
const ONE_RECORD_BYTES: u64 = 160;
/// Distinct valid names cycled through.
const POOL: usize = 4096;

/// The responder, the journal behind it, and the temp folder they live in.
struct Fixture {
    responder: Handler,
    metrics: Arc<Metrics>,
    lanes: Arc<Lanes>,
    key: Key,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(journal_max_bytes: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = Key::generate(KeyId(1));
        let key_path = dir.path().join("bench.key");
        std::fs::write(&key_path, key.to_token()).unwrap();
        // The server refuses key files others can read.
        #[cfg(unix)]
        std::fs::set_permissions(
            &key_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(dir.path().join("zone.txt"), SAMPLE_ZONE).unwrap();
        let config_path = dir.path().join("vcheckd.toml");
        std::fs::write(
            &config_path,
            format!(
                r#"[server]
listen = ["127.0.0.1:0"]
database = "bench.sqlite"
journal_max_bytes = {journal_max_bytes}

[[zone]]
name = "{ZONE}"
file = "zone.txt"
keys = ["bench.key"]
answer_ttl = 60

[zone.releases]
versions = ["1.9.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["1", "2.2"]

[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
"#
            ),
        )
        .unwrap();
        let config = Config::load(&config_path).expect("config loads");
        let catalog = Catalog::build(&config, 0).expect("catalog builds");
        let metrics = Arc::new(Metrics::default());
        // As RunningServer::start does (minus the store and the processor).
        let lanes = Arc::new(
            Lanes::open(
                &config.journal_dir().join("lanes"),
                config.server.journal_max_bytes,
                Duration::from_millis(config.server.journal_commit_ms.max(1)),
            )
            .expect("lanes open"),
        );
        let sink = Arc::new(Intake::new(lanes.clone(), metrics.clone()));
        Fixture {
            responder: Handler::new(catalog, sink, metrics.clone()),
            metrics,
            lanes,
            key,
            _dir: dir,
        }
    }

    /// A fresh payload name, as `vcheckd check` builds it.
    fn payload_name(&self, i: usize) -> String {
        Check {
            zone: ZoneName::new(ZONE).unwrap(),
            key: self.key.clone(),
            version: semver::Version::parse("2.3.1").unwrap(),
            reporter: Some(Reporter {
                cluster_id: format!("cluster-{i}"),
                node_id: format!("node-{i}"),
            }),
        }
        .prepare()
        .unwrap()
        .name
    }

    /// Reports refused (answered SERVFAIL), for any reason.
    fn dropped(&self) -> u64 {
        self.metrics
            .intake_refused
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Closes the journal (it writes what is pending first) and prints
    /// what the answer path and the journal did during the run.
    fn finish(self, what: &str) {
        let Fixture {
            responder,
            metrics,
            lanes,
            ..
        } = self;
        drop(responder);
        let stats = lanes.journal(Lane::V1).stats();
        let closed = lanes.journal(Lane::V1).close(Duration::from_secs(30));
        eprintln!(
            "{what}: reports accepted {}, dropped {}; journal appended {}, refused {}, \
             {} group commits, {} bytes durable, lost at close {}",
            metrics.reports_accepted.load(Ordering::Relaxed),
            metrics
                .intake_refused
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u64>(),
            stats.appended_records,
            stats.dropped_records,
            stats.commits,
            closed.durable_end,
            closed.lost_records,
        );
    }
}

/// A query as `vcheckd check` sends it: RD set, EDNS with 1232 bytes.
fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m.to_bytes().unwrap()
}

/// Answers `request` once and checks the outcome, so a broken fixture
/// cannot produce a fast but meaningless figure.
fn check_answer(
    f: &Fixture,
    request: &[u8],
    rcode: ResponseCode,
    answers: usize,
    authority: usize,
) {
    let mut out = Vec::new();
    assert!(f.responder.handle(request, Transport::Udp, &mut out));
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, rcode);
    assert_eq!(m.answers.len(), answers, "answers");
    assert_eq!(m.authorities.len(), authority, "authority");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();

    let f = Fixture::new(JOURNAL_MAX_BYTES);
    let valid: Vec<Vec<u8>> = (0..POOL)
        .map(|i| query(&f.payload_name(i), RecordType::TXT))
        .collect();
    let sample = f.payload_name(POOL);
    // What a QNAME-minimising resolver asks first: the payload's last
    // label alone under the zone. It decodes as base32 but is no frame.
    let last_label = sample.split('.').nth(1).unwrap();
    let qmin = query(&format!("{last_label}.{ZONE}."), RecordType::TXT);
    // Not base32 at all.
    let garbage = query(&format!("www.not-a-report.{ZONE}."), RecordType::TXT);
    let out_of_zone = query("www.example.org.", RecordType::TXT);
    let apex_soa = query(&format!("{ZONE}."), RecordType::SOA);
    // The 65 KB request of issue 10: 4,028 records in the additional
    // section. FORMERR from the header's counts, none of them read.
    let mut flood = query(&format!("{ZONE}."), RecordType::SOA);
    flood[10..12].copy_from_slice(&4028u16.to_be_bytes());
    for _ in 0..4027 {
        flood.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 14, 16, 0, 4, 127, 0, 0, 1]);
    }

    check_answer(&f, &valid[0], ResponseCode::NoError, 1, 0);
    assert_eq!(
        f.lanes.journal(Lane::V1).stats().appended_records,
        1,
        "the report is journaled"
    );
    check_answer(&f, &qmin, ResponseCode::NoError, 0, 1);
    check_answer(&f, &garbage, ResponseCode::NoError, 0, 1);
    check_answer(&f, &out_of_zone, ResponseCode::Refused, 0, 0);
    check_answer(&f, &apex_soa, ResponseCode::NoError, 1, 0);
    check_answer(&f, &flood, ResponseCode::FormErr, 0, 0);

    let mut g = c.benchmark_group("respond");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    let mut i = 0usize;
    g.bench_function("valid_txt", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            f.responder
                .handle(black_box(&valid[i]), Transport::Udp, &mut out)
        })
    });
    for (what, request) in [
        ("nodata_qmin_partial", &qmin),
        ("nodata_garbage", &garbage),
        ("refused_out_of_zone", &out_of_zone),
        ("apex_soa", &apex_soa),
        ("formerr_4028_additional", &flood),
    ] {
        g.bench_function(what, |b| {
            b.iter(|| {
                f.responder
                    .handle(black_box(request), Transport::Udp, &mut out)
            })
        });
    }
    let dropped = f.dropped();
    if dropped > 0 {
        eprintln!(
            "WARNING: {dropped} reports met a full journal during valid_txt: \
             its figure mixes the journaled and the dropped path"
        );
    }
    f.finish("valid_txt fixture (journal_max_bytes 8 GiB)");

    // The same query when the journal is full: it has room for one record,
    // so every append after the first is refused and counted.
    let full = Fixture::new(ONE_RECORD_BYTES);
    let valid_full: Vec<Vec<u8>> = (0..POOL)
        .map(|i| query(&full.payload_name(i), RecordType::TXT))
        .collect();
    check_answer(&full, &valid_full[0], ResponseCode::NoError, 1, 0);
    // Not recorded: SERVFAIL, so that the resolver asks another server.
    check_answer(&full, &valid_full[1], ResponseCode::ServFail, 0, 0);
    let stats = full.lanes.journal(Lane::V1).stats();
    assert_eq!(
        (
            stats.appended_records,
            stats.dropped_records,
            full.dropped()
        ),
        (1, 1, 1),
        "the one-record journal takes one report and refuses the next"
    );
    g.bench_function("valid_txt_journal_full", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            full.responder
                .handle(black_box(&valid_full[i]), Transport::Udp, &mut out)
        })
    });
    g.finish();
    full.finish("valid_txt_journal_full fixture (journal_max_bytes 160)");

    c.final_summary();
}
