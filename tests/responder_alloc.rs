//! The answer path allocates nothing per query: the responder reads the
//! request in place and writes into the caller's buffer, from records
//! encoded when the zone was loaded. Counted with a global allocator that
//! counts, for the queries that involve no report and for protocol v2
//! reports (answered with the pre-built policy); a v1 report's decryption
//! and hint allocate.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncodable;
use vcheckd::config::Config;
use vcheckd::dns::{respond, Catalog, Outcome, Transport};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn queries_without_a_report_and_v2_reports_allocate_nothing() {
    let setup = common::Setup::new();
    let now = vcheckd::clock::unix_now() as u64;
    let private = vcheckd::protocol::v2::PrivateKey::generate(vcheckd::protocol::KeyId(2), now);
    common::write_private(&setup.dir.path().join("v2.private"), &private.to_token());
    let text = std::fs::read_to_string(setup.config_path())
        .unwrap()
        .replace(
            "keys = [\"test.key\"]",
            "keys = [\"test.key\"]\nprivate_keys = [\"v2.private\"]",
        );
    std::fs::write(setup.config_path(), text).unwrap();
    let config = Config::load(&setup.config_path()).unwrap();
    let catalog = Catalog::build(&config, now).unwrap();
    let q = |name: &str, t: RecordType, edns: Option<u16>| {
        common::query(name, t, edns).to_bytes().unwrap()
    };
    let name = setup.name("c", "n", "2.3.1");
    let partial = name.split_once('.').unwrap().1.to_string();
    let check = vcheckd::client::v2::CheckV2::new(
        vcheckd::protocol::ZoneName::new(common::ZONE).unwrap(),
        private.public(),
        semver::Version::parse("2.3.1").unwrap(),
        None,
    );
    let seal = vcheckd::protocol::v2::PrivateKeyring::new(std::slice::from_ref(&private), now)
        .unwrap()
        .seal_key(private.id, vcheckd::protocol::v2::Epoch::at(now))
        .unwrap();
    let v2_name = check
        .prepare(&seal, vcheckd::protocol::v2::effort::Effort(2))
        .unwrap()
        .name;
    let requests = [
        q(&v2_name, RecordType::TXT, Some(1232)),
        q(&v2_name.to_uppercase(), RecordType::A, None),
        q(&check.policy_name(), RecordType::TXT, Some(1232)),
        q("vc.example.com.", RecordType::SOA, Some(1232)),
        q("VC.example.COM.", RecordType::ANY, None),
        q("ns1.vc.example.com.", RecordType::A, Some(1232)),
        q("ns1.vc.example.com.", RecordType::AAAA, Some(1232)),
        q("big.vc.example.com.", RecordType::TXT, None),
        q(&partial, RecordType::A, Some(1232)),
        q(
            "www.not-a-report.vc.example.com.",
            RecordType::TXT,
            Some(1232),
        ),
        q("www.example.org.", RecordType::TXT, Some(1232)),
        vec![0x12, 0x34, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0],
        vec![0x12, 0x34, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    let mut out = Vec::with_capacity(65_535);
    for r in &requests {
        assert!(matches!(
            respond(&catalog, r, now as i64, Transport::Udp, &mut out),
            Outcome::Answered(_)
        ));
    }
    // The v2 report is one (the sealed frame is handed out, not copied to
    // the heap).
    assert!(matches!(
        respond(&catalog, &requests[0], now as i64, Transport::Udp, &mut out),
        Outcome::Answered(vcheckd::dns::Answered {
            name: vcheckd::dns::NameOutcome::Sealed { .. },
            ..
        })
    ));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        for r in &requests {
            let outcome = respond(&catalog, r, now as i64, Transport::Udp, &mut out);
            std::hint::black_box(outcome);
        }
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations in 1,300 queries");

    // The counter does count: a v1 report decrypts and builds its hint.
    let report = q(&name, RecordType::TXT, Some(1232));
    respond(&catalog, &report, now as i64, Transport::Udp, &mut out);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > after);
}
