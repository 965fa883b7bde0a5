//! `Responder::respond`, the whole per-query work of the server minus the
//! socket calls: parse the request, find the zone, decode the payload,
//! compute the hint, queue the report, encode the answer.
//!
//! The responder is built as `vcheckd serve` builds it: a TOML config and
//! a key file in a temp folder, the sample zone file, a real SQLite file and
//! the real writer thread behind the report queue.
//!
//! The queue: a valid query submits one report. If the writer thread fell
//! behind and the queue filled up, `submit` would take its cheaper
//! "drop and count" branch and the figure would no longer be the one of a
//! query whose report is kept. So the main fixture uses a queue of
//! `QUEUE_CAPACITY` reports, more than a default-length run submits, and
//! the bench prints how many reports were dropped at the end; a second,
//! separate fixture with a one-slot queue measures the drop path on purpose
//! (`valid_txt_queue_full`).
//!
//! Run: `cargo bench --bench responder` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quick pass).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use vcheckd::client::{Check, Reporter};
use vcheckd::config::{Config, SAMPLE_ZONE};
use vcheckd::dns::{Catalog, Responder, Transport};
use vcheckd::metrics::Metrics;
use vcheckd::protocol::{Key, KeyId, ZoneName};
use vcheckd::store::recorder::{self, Writer, WriterConfig};
use vcheckd::store::Store;

const ZONE: &str = "vc.example.com";
/// Room for every report a `--measurement-time 3` run submits (a few
/// hundred thousand per second at most), so no submit meets a full queue.
const QUEUE_CAPACITY: usize = 1 << 21;
/// Distinct valid names cycled through, so the store sees new report ids.
const POOL: usize = 4096;

/// The responder, the writer behind it, and the temp folder they live in.
struct Fixture {
    responder: Responder,
    metrics: Arc<Metrics>,
    writer: Writer,
    key: Key,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(queue_capacity: usize) -> Self {
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
queue_capacity = {queue_capacity}

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
        let catalog = Catalog::build(&config).expect("catalog builds");
        let store = Store::open(&config.resolve(&config.server.database)).expect("store opens");
        let metrics = Arc::new(Metrics::default());
        // As RunningServer::start does.
        let (recorder, writer) =
            recorder::start(store, WriterConfig::from(&config.server), metrics.clone());
        Fixture {
            responder: Responder::new(catalog, recorder, metrics.clone()),
            metrics,
            writer,
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

    fn counter(&self, name: &str) -> u64 {
        self.metrics
            .snapshot()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v)
    }

    /// Stops the writer (it drains the queue first) and prints what the
    /// queue did during the run.
    fn finish(self, what: &str) {
        let Fixture {
            responder,
            metrics,
            writer,
            ..
        } = self;
        drop(responder);
        writer.join().expect("writer stops cleanly");
        let get = |name: &str| {
            metrics
                .snapshot()
                .into_iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| v)
        };
        eprintln!(
            "{what}: reports accepted {}, queue_dropped {}, stored {}, duplicate {}",
            get("reports.accepted"),
            get("reports.queue_dropped"),
            get("reports.stored"),
            get("reports.duplicate"),
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
    assert!(f.responder.respond(request, Transport::Udp, &mut out));
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, rcode);
    assert_eq!(m.answers.len(), answers, "answers");
    assert_eq!(m.authorities.len(), authority, "authority");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();

    let f = Fixture::new(QUEUE_CAPACITY);
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

    check_answer(&f, &valid[0], ResponseCode::NoError, 1, 0);
    check_answer(&f, &qmin, ResponseCode::NoError, 0, 1);
    check_answer(&f, &garbage, ResponseCode::NoError, 0, 1);
    check_answer(&f, &out_of_zone, ResponseCode::Refused, 0, 0);

    let mut g = c.benchmark_group("respond");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    let mut i = 0usize;
    g.bench_function("valid_txt", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            f.responder
                .respond(black_box(&valid[i]), Transport::Udp, &mut out)
        })
    });
    for (what, request) in [
        ("nodata_qmin_partial", &qmin),
        ("nodata_garbage", &garbage),
        ("refused_out_of_zone", &out_of_zone),
    ] {
        g.bench_function(what, |b| {
            b.iter(|| {
                f.responder
                    .respond(black_box(request), Transport::Udp, &mut out)
            })
        });
    }
    let dropped = f.counter("reports.queue_dropped");
    if dropped > 0 {
        eprintln!(
            "WARNING: {dropped} reports met a full queue during valid_txt: \
             its figure mixes the queued and the dropped path"
        );
    }
    f.finish("valid_txt fixture (queue capacity 2^21)");

    // The same query when the queue is full: with one slot, nearly every
    // submit is dropped and counted.
    let full = Fixture::new(1);
    let valid_full: Vec<Vec<u8>> = (0..POOL)
        .map(|i| query(&full.payload_name(i), RecordType::TXT))
        .collect();
    g.bench_function("valid_txt_queue_full", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            full.responder
                .respond(black_box(&valid_full[i]), Transport::Udp, &mut out)
        })
    });
    g.finish();
    full.finish("valid_txt_queue_full fixture (queue capacity 1)");

    c.final_summary();
}
