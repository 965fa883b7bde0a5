//! Reports for the counting model's property tests: a small fleet's
//! deliveries over a few days (duplicates, anonymous reports, upgrades,
//! reports of the same second, two zones), and the comparison of what a
//! backend stores for them with what the model ([`Fold`]) says it must.
//!
//! The status a report is answered depends on its version and day only, as
//! the server's does (the release list of the day): reports of one node,
//! version and second then agree on it, the one case the model leaves to
//! the order reports are taken in.

use proptest::prelude::*;
use semver::Version;

use vcheckd::clock::Day;
use vcheckd::fleet::{Fold, Reported, VersionDay};
use vcheckd::hint::Status;
use vcheckd::protocol::{AnonId, Identity, KeyId, Payload, Report, ReportId, ZoneName};
use vcheckd::store::reader::StatsReader;
use vcheckd::store::ReceivedReport;

/// The first day reports are received on.
pub const FIRST_DAY: i64 = 20_490;
/// Days with reports: `FIRST_DAY..FIRST_DAY + DAYS`.
pub const DAYS: i64 = 5;
pub const ZONES: [&str; 2] = ["a.example", "b.example"];
const VERSIONS: [&str; 4] = ["1.0.0", "1.1.0-rc.1", "1.1.0", "2.0.0"];
/// Receive times within a day: a few shared seconds (ties), else any.
const SECONDS: [i64; 4] = [0, 1, 43_200, 86_399];

/// One report of a case, before it is dated and delivered.
#[derive(Debug, Clone)]
struct Drawn {
    zone: usize,
    /// Node 0 to 6 (clusters of two: node / 2); `None`: anonymous.
    node: Option<u8>,
    version: usize,
    day: i64,
    second: i64,
    /// Delivered again this many seconds later (a resolver's retry).
    again: Option<i64>,
}

fn drawn() -> impl Strategy<Value = Drawn> {
    (
        0..ZONES.len(),
        prop_oneof![1 => Just(None), 6 => (0u8..7).prop_map(Some)],
        0..VERSIONS.len(),
        0..DAYS,
        prop_oneof![1 => prop::sample::select(&SECONDS[..]), 1 => 0i64..86_400],
        prop_oneof![4 => Just(None), 1 => (0i64..3).prop_map(Some)],
    )
        .prop_map(|(zone, node, version, day, second, again)| Drawn {
            zone,
            node,
            version,
            day,
            second,
            again,
        })
}

/// A case: its distinct reports, and the deliveries in the order a
/// processor takes them in.
#[derive(Debug, Clone)]
pub struct Case {
    /// Each report once, in receive order.
    pub reports: Vec<ReceivedReport>,
    /// Every delivery (retries included), in receive order, except that
    /// the deliveries of `late_day` (if any) come last: history taken in
    /// after later days.
    pub deliveries: Vec<ReceivedReport>,
    /// Where the deliveries are cut into batches (ascending indices).
    pub cuts: Vec<usize>,
    pub late_day: Option<i64>,
}

pub fn status_of(version: usize, day: i64) -> Status {
    let code = (version as i64 + day).rem_euclid(4);
    Status::from_code(u8::try_from(code).unwrap()).unwrap()
}

fn received(i: usize, d: &Drawn) -> ReceivedReport {
    let at = (FIRST_DAY + d.day) * 86_400 + d.second;
    let identity = match d.node {
        None => Identity::Withheld,
        Some(n) => Identity::Known {
            cluster: AnonId([n / 2 + 1; 16]),
            node: AnonId([n + 1; 16]),
        },
    };
    let i = u16::try_from(i).unwrap().to_be_bytes();
    ReceivedReport {
        report: Report {
            id: ReportId([
                i[0], i[1], 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
            ]),
            key_id: KeyId(1),
            payload: Payload {
                timestamp: u64::try_from(at).unwrap(),
                identity,
                version: Version::parse(VERSIONS[d.version]).unwrap(),
            },
        },
        zone: ZoneName::new(ZONES[d.zone]).unwrap(),
        received_at: at,
        status: status_of(d.version, FIRST_DAY + d.day),
    }
}

pub fn case(max_reports: usize) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(drawn(), 1..max_reports),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        prop_oneof![2 => Just(None), 1 => (0..DAYS - 1).prop_map(Some)],
    )
        .prop_map(|(drawn, cuts, late)| {
            let mut reports: Vec<ReceivedReport> = Vec::new();
            let mut deliveries: Vec<ReceivedReport> = Vec::new();
            for (i, d) in drawn.iter().enumerate() {
                let r = received(i, d);
                deliveries.push(r.clone());
                if let Some(after) = d.again {
                    let mut again = r.clone();
                    again.received_at += after;
                    deliveries.push(again);
                }
                reports.push(r);
            }
            // Receive order (a stable sort: a retry stays after its
            // first delivery).
            reports.sort_by_key(|r| r.received_at);
            deliveries.sort_by_key(|r| r.received_at);
            let late_day = late.map(|d| FIRST_DAY + d);
            if let Some(day) = late_day {
                // A report's retries go with it (a retry taken in before
                // its first delivery would be the one kept).
                let late_ids: std::collections::HashSet<ReportId> = reports
                    .iter()
                    .filter(|r| r.received_at.div_euclid(86_400) == day)
                    .map(|r| r.report.id)
                    .collect();
                let (late, rest): (Vec<_>, Vec<_>) = deliveries
                    .into_iter()
                    .partition(|r| late_ids.contains(&r.report.id));
                deliveries = rest.into_iter().chain(late).collect();
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(deliveries.len())).collect();
            cuts.sort_unstable();
            cuts.dedup();
            Case {
                reports,
                deliveries,
                cuts,
                late_day,
            }
        })
}

impl Case {
    /// The deliveries cut into batches.
    pub fn batches(&self) -> Vec<&[ReceivedReport]> {
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in self
            .cuts
            .iter()
            .chain(std::iter::once(&self.deliveries.len()))
        {
            if cut > from {
                out.push(&self.deliveries[from..cut]);
                from = cut;
            }
        }
        out
    }

    /// The model's fold of the case's reports.
    pub fn fold(&self) -> Fold {
        let mut fold = Fold::new();
        for r in &self.reports {
            let node = match r.report.payload.identity {
                Identity::Withheld => None,
                Identity::Known { cluster, node } => Some((cluster.0, node.0)),
            };
            fold.take(&Reported {
                zone: r.zone.as_str(),
                node,
                version: &r.report.payload.version,
                at: r.received_at,
                status: r.status,
                id: r.report.id.0,
            });
        }
        fold
    }
}

/// A node-day as both sides can be compared: its ids sorted (a backend
/// keeps them in its own order).
type NodeDayView = (
    i64,
    [u8; 16],
    [u8; 16],
    String,
    Status,
    i64,
    u64,
    Vec<[u8; 12]>,
);

/// Asserts that `reader` (`what`: which backend) holds what the model
/// says for `case`: each zone's version days and node-days (with report
/// ids), and its snapshot of every day from the day before the first.
pub fn assert_matches_model(reader: &dyn StatsReader, case: &Case, what: &str) {
    let fold = case.fold();
    let (first, last) = (Day(FIRST_DAY), Day(FIRST_DAY + DAYS - 1));
    let zones: Vec<String> = reader
        .zones()
        .unwrap()
        .iter()
        .map(|z| z.as_str().to_string())
        .collect();
    let mut want_zones: Vec<String> = case
        .reports
        .iter()
        .map(|r| r.zone.as_str().to_string())
        .collect();
    want_zones.sort();
    want_zones.dedup();
    assert_eq!(zones, want_zones, "{what}: zones");
    for zone in ZONES {
        let name = ZoneName::new(zone).unwrap();
        // By day and version text (a backend's order).
        let by_text = |v: &VersionDay| (v.day, v.version.to_string());
        let mut got = reader.version_days(&name, first, last).unwrap();
        got.sort_by_key(by_text);
        let mut want: Vec<VersionDay> = fold.version_days(zone).cloned().collect();
        want.sort_by_key(by_text);
        assert_eq!(got, want, "{what}: version days of {zone}");
        let view = |d: &vcheckd::fleet::NodeDay| -> NodeDayView {
            let mut ids = d.ids.clone();
            ids.sort_unstable();
            (
                d.day.0,
                d.cluster,
                d.node,
                d.version.to_string(),
                d.status,
                d.last_at,
                d.reports,
                ids,
            )
        };
        let mut got: Vec<NodeDayView> = reader
            .node_days(&name, first, last, true)
            .unwrap()
            .iter()
            .map(view)
            .collect();
        got.sort();
        let mut want: Vec<NodeDayView> = fold
            .node_days()
            .filter(|d| d.zone.as_str() == zone)
            .map(view)
            .collect();
        want.sort();
        assert_eq!(got, want, "{what}: node-days of {zone}");
        for day in first.0 - 1..=last.0 {
            let got = reader.snapshot(&name, Day(day)).unwrap();
            let want = fold.snapshots(Day(day)).remove(zone).unwrap_or_default();
            assert_eq!(got, want, "{what}: snapshot of {zone} on day {day}");
        }
    }
}
