//! The answer path's side of recording: each report the responder found
//! valid becomes a record in a raw lane, or is refused for a reason.
//!
//! The checks, in order, after the responder's shape check (a v2 frame of
//! a plausible size under a key id the zone serves) or v1 authentication:
//! 1. **Effort** (v2): one SHA-256 of the frame
//!    ([`crate::protocol::v2::effort`]): its leading zero bits pick the
//!    lane; the digest is the frame's fingerprint. v1: the v1 lane, the
//!    fingerprint a hash of the report id.
//! 2. **Exact repeat**: a fingerprint taken lately ([`Recent`], 4 MiB,
//!    about 500,000 reports) is answered as usual and not taken again: a
//!    resolver's retry, or the same name sent twice.
//! 3. **Journal** ([`Lanes::append`]): taken, possibly evicting the oldest
//!    records of the lowest lower lane; or refused (full with nothing
//!    lower, the disk failing, closing), and then the handler answers
//!    SERVFAIL. The fingerprint is remembered only once taken, so a retry
//!    of a refused report is tried again.
//!
//! Every decision is counted ([`Metrics`]: accepted by lane, repeats,
//! refused by reason); refusals are logged at most every 10 s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tracing::warn;

use crate::lanes::{Lane, Lanes, Refused};
use crate::metrics::{bump, Metrics};
use crate::protocol::v2::effort::effort;
use crate::recent::Recent;
use crate::report::Incoming;
use crate::report::{NotRecorded, ReportSink};

/// Fingerprints remembered for the repeat check (8 bytes each).
const REPEATS_REMEMBERED: usize = 1 << 19;
/// At most one refusal warning per this many milliseconds.
const REFUSED_LOG_MILLIS: u64 = 10_000;

pub struct Intake {
    lanes: Arc<Lanes>,
    repeats: Recent,
    metrics: Arc<Metrics>,
    refused_log: RefusedLog,
}

impl Intake {
    pub fn new(lanes: Arc<Lanes>, metrics: Arc<Metrics>) -> Self {
        Intake {
            lanes,
            repeats: Recent::new(REPEATS_REMEMBERED),
            metrics,
            refused_log: RefusedLog {
                since_log: AtomicU64::new(0),
                last_ms: AtomicU64::new(0),
                epoch: Instant::now(),
            },
        }
    }
}

thread_local! {
    /// One record buffer per answer thread: no allocation per report.
    static RECORD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The lane of a report and its fingerprint (16 bytes of a SHA-256).
fn classify(report: &Incoming<'_>) -> (Lane, [u8; 16]) {
    let mut key = [0u8; 16];
    match report {
        Incoming::V2 { frame, .. } => {
            let (e, digest) = effort(frame);
            // The digest's tail: its head holds the effort's zero bits.
            key.copy_from_slice(&digest[16..]);
            (Lane::for_effort(e.0), key)
        }
        Incoming::V1(r) => {
            let digest = Sha256::new()
                .chain_update(b"vcheckd v1 repeat\0")
                .chain_update(r.zone.as_str().as_bytes())
                .chain_update(r.report.id.0)
                .finalize();
            key.copy_from_slice(&digest[..16]);
            (Lane::V1, key)
        }
    }
}

/// The lane and fingerprint of a journal record, as [`classify`] gives
/// them for the report it was made from: a record forwarded by a
/// secondary is judged as the same report received here by DNS.
fn classify_record(record: &[u8]) -> Option<(Lane, [u8; 16])> {
    if let Some(frame) = crate::report::sealed_frame(record) {
        let (e, digest) = effort(frame);
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[16..]);
        return Some((Lane::for_effort(e.0), key));
    }
    let report = crate::report::ReceivedReport::from_record(record).ok()?;
    Some(classify(&Incoming::V1(&report)))
}

/// What the intake did with a report it did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Appended to this lane (durable at its next group commit).
    New(Lane),
    /// An exact repeat of one taken lately into this lane: not taken again.
    Repeat(Lane),
}

impl Intake {
    /// Takes a record forwarded by a secondary (its raw lane record, as
    /// made here on the answer path) through the same checks as a report
    /// received by DNS: the lane and fingerprint are computed here again,
    /// never trusted from the sender. [`Refused::Record`]: the record does
    /// not parse.
    pub fn accept_record(&self, record: &[u8]) -> Result<Taken, Refused> {
        let Some((lane, key)) = classify_record(record) else {
            bump(&self.metrics.intake_refused[Refused::Record.index()]);
            return Err(Refused::Record);
        };
        self.take(lane, key, |buf| {
            buf.clear();
            buf.extend_from_slice(record);
            Ok(())
        })
    }

    /// The repeat check, then the append; every decision counted.
    fn take(
        &self,
        lane: Lane,
        key: [u8; 16],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::report::RecordError>,
    ) -> Result<Taken, Refused> {
        if self.repeats.contains(&key) {
            bump(&self.metrics.intake_repeats);
            return Ok(Taken::Repeat(lane));
        }
        let taken = RECORD.with_borrow_mut(|buf| match write(buf) {
            Ok(()) => self.lanes.append(lane, buf),
            Err(_) => Err(Refused::Record),
        });
        match taken {
            Ok(_) => {
                self.repeats.insert(&key);
                bump(&self.metrics.intake_accepted[lane.index()]);
                Ok(Taken::New(lane))
            }
            Err(why) => {
                bump(&self.metrics.intake_refused[why.index()]);
                self.refused_log.record(&self.lanes, why);
                Err(why)
            }
        }
    }

    pub fn lanes(&self) -> &Arc<Lanes> {
        &self.lanes
    }
}

impl ReportSink for Intake {
    fn accept(&self, report: Incoming<'_>) -> Result<(), NotRecorded> {
        let (lane, key) = classify(&report);
        self.take(lane, key, |buf| report.to_record(buf))
            .map(|_| ())
            .map_err(|_| NotRecorded)
    }
}

/// Rate-limits the refusal warning while every refusal is counted.
struct RefusedLog {
    since_log: AtomicU64,
    /// Milliseconds after `epoch` (plus one) of the last warning; 0: never.
    last_ms: AtomicU64,
    epoch: Instant,
}

impl RefusedLog {
    fn record(&self, lanes: &Lanes, why: Refused) {
        self.since_log.fetch_add(1, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= REFUSED_LOG_MILLIS)
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let n = self.since_log.swap(0, Ordering::Relaxed);
            warn!(
                refused = n,
                last_reason = %why,
                used_bytes = lanes.budget().used(),
                max_bytes = lanes.budget().max(),
                "journal full or not writable: reports refused (answered SERVFAIL) since the last warning"
            );
        }
    }
}

/// Moves the records of a journal written by an earlier vcheckd (one log,
/// segments directly in `journal_dir`) into the lanes, v2 frames by their
/// effort, then deletes its segments. Records its consumers had already
/// taken are taken again (the store and ClickHouse keep each report
/// once). If the lanes refuse a record, what is left stays for the next
/// start. Returns the records moved.
pub fn take_legacy(
    journal_dir: &std::path::Path,
    lanes: &Lanes,
) -> Result<u64, crate::journal::JournalError> {
    use crate::journal::{Journal, JournalConfig, Position};
    let has_segments = std::fs::read_dir(journal_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .unwrap_or(false);
    if !has_segments {
        return Ok(0);
    }
    let legacy = Journal::open(JournalConfig {
        dir: journal_dir.to_path_buf(),
        max_bytes: u64::MAX,
        ..JournalConfig::default()
    })?;
    let mut reader = legacy.subscribe("upgrade", Position::ZERO)?;
    let mut moved = 0u64;
    let mut last = Lane::V1;
    let mut ends = [Position::ZERO; crate::lanes::COUNT];
    let mut refused = None;
    loop {
        let before = reader.position();
        let mut records: Vec<Vec<u8>> = Vec::new();
        let next = reader.read_batch(8_192, std::time::Duration::ZERO, |_, r| {
            records.push(r.to_vec())
        })?;
        if next == before {
            break;
        }
        for r in &records {
            let lane = crate::report::sealed_frame(r)
                .map_or(Lane::V1, |f| Lane::for_effort(effort(f).0 .0));
            match lanes.append(lane, r) {
                Ok(end) => {
                    ends[lane.index()] = end;
                    last = lane;
                    moved += 1;
                }
                Err(why) => {
                    refused = Some(why);
                    break;
                }
            }
        }
        if refused.is_some() {
            break;
        }
    }
    let _ = last;
    for lane in Lane::all() {
        let end = ends[lane.index()];
        if end > Position::ZERO
            && !lanes
                .journal(lane)
                .wait_durable(end, std::time::Duration::from_secs(30))
        {
            warn!("the earlier journal's records are not durable in the lanes yet; it is kept");
            return Ok(moved);
        }
    }
    match refused {
        Some(why) => {
            warn!(moved, reason = %why, "the lanes refused records of the earlier journal; the rest is kept for the next start")
        }
        None => {
            tracing::info!(
                records = moved,
                "records of the earlier journal moved into the lanes"
            );
            let end = reader.position();
            reader.commit(end)?;
            legacy.close(std::time::Duration::from_secs(5));
            drop(legacy);
            if let Ok(entries) = std::fs::read_dir(journal_dir) {
                for e in entries.filter_map(Result::ok) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".seg") || name == "lock" || name == "clickhouse.position" {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ZoneName;

    fn intake(dir: &std::path::Path) -> Intake {
        let lanes = Lanes::open(dir, 1 << 20, std::time::Duration::from_millis(1)).unwrap();
        Intake::new(Arc::new(lanes), Arc::new(Metrics::default()))
    }

    #[test]
    fn a_forwarded_record_is_the_same_report_as_the_frame_received_by_dns() {
        let dir = tempfile::tempdir().unwrap();
        let intake = intake(dir.path());
        let zone = ZoneName::new("vc.example.com").unwrap();
        let frame = [5u8; 120];
        let incoming = Incoming::V2 {
            zone: &zone,
            received_at: 1_800_000_000,
            frame: &frame,
        };
        let mut record = Vec::new();
        incoming.to_record(&mut record).unwrap();
        let lane = Lane::for_effort(effort(&frame).0 .0);
        // Forwarded first: taken, into the lane DNS would have chosen.
        assert_eq!(intake.accept_record(&record), Ok(Taken::New(lane)));
        // The same frame by DNS, and forwarded again: repeats.
        assert!(intake.accept(incoming).is_ok());
        assert_eq!(intake.accept_record(&record), Ok(Taken::Repeat(lane)));
        assert_eq!(
            intake.metrics.intake_repeats.load(Ordering::Relaxed),
            2,
            "one record, two repeats"
        );
        assert_eq!(intake.lanes.journal(lane).stats().appended_records, 1);
    }

    #[test]
    fn a_forwarded_record_that_does_not_parse_is_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let intake = intake(dir.path());
        for garbage in [&[9u8, 1, 2][..], &[1u8; 4][..], &[2u8][..]] {
            assert_eq!(intake.accept_record(garbage), Err(Refused::Record));
        }
        assert_eq!(
            intake.metrics.intake_refused[Refused::Record.index()].load(Ordering::Relaxed),
            3
        );
    }
}
