//! The opener: the one stage that opens v2 frames, between the raw lanes
//! (src/lanes) and the opened journal that the SQLite processor and the
//! ClickHouse shipper read with positions of their own.
//!
//! **Order.** Lanes are read v1 first, then from the highest effort down
//! ([`LaneReaders::read_batch`]), a batch at a time, looking again at the
//! higher lanes after every batch.
//!
//! **Each frame once.** A frame whose report id (computed from its `enc`,
//! before opening) was opened successfully lately is skipped and counted
//! ([`Recent`], 4 MiB, about 500,000 ids); the store deduplicates by
//! report id what this memory no longer holds, as before. Frames that do
//! not open are counted by reason, as names rejected on the answer path
//! are. v1 records (decoded on the answer path) are passed on as they are.
//!
//! **Durability.** A batch's reports are appended to the opened journal;
//! once they are durable there, the lane's position is stored (the
//! positions file) and the lane may delete what it no longer needs. A
//! crash before the position is stored opens the batch again: its reports
//! reach the opened journal twice, and the store (and ClickHouse's key)
//! keeps each once. Nothing answered and taken is lost at any point.
//!
//! **Priority.** Opening runs on threads started per batch, at SCHED_IDLE
//! (only CPU time nothing else wants) while the raw lanes' unread bytes are
//! under a quarter of `journal_max_bytes`, and at the stage's nice 10 past
//! that, when the journal would soon evict or refuse reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::{error, warn};

use crate::journal::{AppendError, Journal, Position};
use crate::lanes::{Lane, LaneReaders, Lanes, LanesError};
use crate::metrics::Metrics;
use crate::processor::background_priority;
use crate::recent::Recent;
use crate::report::{self, Opener, ReceivedReport, Undecodable};

/// The opener's consumer name in the raw lanes.
pub const CONSUMER: &str = "opener";

/// Report ids remembered as opened (8 bytes each).
const IDS_REMEMBERED: usize = 1 << 19;
/// How long the stage sleeps when every lane is read.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// How the threads that open v2 frames run, chosen per batch from the
/// raw lanes' backlog. They are started for each batch, so each starts
/// from the stage's priority and may only go lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenPriority {
    /// Only CPU time nothing else wants (SCHED_IDLE): opening never slows
    /// the answer loops; it catches up when the load falls, and the lanes
    /// hold what it has not reached. (Nice 10 still took a tenth of the
    /// cores from the answer loops under full load: docs/PERFORMANCE.md.)
    Idle,
    /// The stage's own priority: so far behind that the lanes would soon
    /// evict or refuse reports.
    CatchUp,
}

impl OpenPriority {
    /// The backlog (a fraction of `journal_max_bytes`) from which opening
    /// stops yielding to everything else.
    pub(crate) const CATCH_UP_BACKLOG: f64 = 0.25;

    pub(crate) fn for_backlog(backlog: f64) -> Self {
        if backlog >= Self::CATCH_UP_BACKLOG {
            OpenPriority::CatchUp
        } else {
            OpenPriority::Idle
        }
    }

    /// Applies the priority to the calling thread (and only to it).
    fn apply(self) {
        #[cfg(target_os = "linux")]
        if self == OpenPriority::Idle {
            // SAFETY: sched_setscheduler reads the parameter struct and has
            // no other memory effects; on Linux, pid 0 is the calling thread
            // alone. Lowering a thread's own priority needs no privilege.
            unsafe {
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
            }
        }
    }
}

/// Opens sealed (protocol v2) records, spread over the machine's cores.
fn open_sealed(
    sealed: &[&[u8]],
    opener: &Opener,
    priority: OpenPriority,
) -> Vec<Result<ReceivedReport, Undecodable>> {
    const PER_THREAD_MIN: usize = 64;
    if sealed.is_empty() {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(sealed.len().div_ceil(PER_THREAD_MIN))
        .max(1);
    let open_part = move |part: &[&[u8]]| -> Vec<_> {
        part.iter().map(|r| report::decode(r, opener)).collect()
    };
    // One thread's worth is opened right here, unless it must yield to
    // everything else: the stage's own thread cannot take back a lowered
    // priority, so idle opening always runs on a thread of its own.
    if threads == 1 && priority == OpenPriority::CatchUp {
        return open_part(sealed);
    }
    let chunk = sealed.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sealed
            .chunks(chunk)
            .map(|part| {
                let handle = std::thread::Builder::new()
                    .name("vcheckd-open".into())
                    .spawn_scoped(scope, move || {
                        priority.apply();
                        open_part(part)
                    });
                (part, handle)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, handle)| match handle.map(|h| h.join()) {
                Ok(Ok(results)) => results,
                // No thread to be had (a process limit): open them here.
                Err(_) => open_part(part),
                // decode does not panic; were it to, its records would be
                // counted damaged rather than take the stage down.
                Ok(Err(_)) => (0..part.len())
                    .map(|_| Err(Undecodable::Record(report::RecordError::Field)))
                    .collect(),
            })
            .collect()
    })
}

/// The running stage.
pub struct OpenerStage {
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    handle: JoinHandle<()>,
}

impl OpenerStage {
    /// Subscribes to the raw lanes at the positions stored in their folder
    /// and starts opening into `opened`.
    pub fn start(
        lanes: Arc<Lanes>,
        opened: Arc<Journal>,
        opener: Arc<ArcSwap<Opener>>,
        metrics: Arc<Metrics>,
        max_batch: usize,
    ) -> Result<Self, LanesError> {
        let readers = lanes.subscribe(CONSUMER)?;
        let stop = Arc::new(AtomicBool::new(false));
        let drain = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::channel();
        let mut run = Run {
            lanes,
            readers,
            opened,
            opener,
            metrics,
            max_batch: max_batch.max(1),
            ids: Recent::new(IDS_REMEMBERED),
            stop: stop.clone(),
            drain: drain.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("vcheckd-opener".into())
            .spawn(move || {
                background_priority();
                run.main();
                let _ = tx.send(());
            })
            .map_err(|source| LanesError::Positions {
                op: "start the opener thread for",
                path: std::path::PathBuf::new(),
                source,
            })?;
        Ok(OpenerStage {
            stop,
            drain,
            done,
            handle,
        })
    }

    /// Opens what the lanes hold (call after closing them: nothing more
    /// comes) for most of `deadline`, then stops after the batch in hand;
    /// what is left stays in the lanes for the next start. True if every
    /// lane was read to its end.
    pub fn stop(self, deadline: Duration) -> bool {
        let started = Instant::now();
        self.drain.store(true, Ordering::Relaxed);
        let drained = self
            .done
            .recv_timeout(deadline.saturating_sub(deadline / 5))
            .is_ok();
        if !drained {
            self.stop.store(true, Ordering::Relaxed);
            let _ = self
                .done
                .recv_timeout(deadline.saturating_sub(started.elapsed()));
        }
        if self.handle.is_finished() {
            let _ = self.handle.join();
        } else {
            warn!("the opener did not stop within the shutdown bound");
        }
        drained
    }
}

struct Run {
    lanes: Arc<Lanes>,
    readers: LaneReaders,
    opened: Arc<Journal>,
    opener: Arc<ArcSwap<Opener>>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    ids: Recent,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
}

/// The [`Recent`] key of a report id (already a hash).
fn id_key(id: &crate::protocol::ReportId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..12].copy_from_slice(&id.0);
    k[12..].copy_from_slice(&id.0[..4]);
    k
}

impl Run {
    fn main(&mut self) {
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut out: Vec<u8> = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            self.copy_gauges();
            let priority = OpenPriority::for_backlog(self.readers.backlog());
            records.clear();
            let read = self
                .readers
                .read_batch(self.max_batch, |p| records.push(p.to_vec()));
            let (lane, next) = match read {
                Ok(Some(got)) => got,
                Ok(None) => {
                    if self.drain.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(IDLE_POLL);
                    continue;
                }
                Err(e) => {
                    error!(error = %e, "cannot read the raw lanes; will retry");
                    self.pause(Duration::from_secs(1));
                    continue;
                }
            };
            let reports = self.open(&records, priority, &mut out);
            if !self.hand_on(&reports) || !self.commit(lane, next) {
                return;
            }
        }
    }

    /// The batch's reports as opened-journal records.
    fn open(&self, records: &[Vec<u8>], priority: OpenPriority, buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
        let mut reports = Vec::with_capacity(records.len());
        let mut sealed: Vec<&[u8]> = Vec::new();
        let mut damaged = 0u64;
        for r in records {
            if report::is_sealed(r) {
                match report::sealed_id(r) {
                    Some(id) if self.ids.contains(&id_key(&id)) => {
                        crate::metrics::bump(&self.metrics.opened_repeats);
                    }
                    _ => sealed.push(r),
                }
            } else if ReceivedReport::from_record(r).is_ok() {
                reports.push(r.clone());
            } else {
                damaged += 1;
            }
        }
        let opener = self.opener.load();
        for result in open_sealed(&sealed, &opener, priority) {
            match result {
                Ok(r) => {
                    self.ids.insert(&id_key(&r.report.id));
                    match r.to_record(buf) {
                        Ok(()) => reports.push(buf.clone()),
                        Err(_) => damaged += 1,
                    }
                }
                Err(Undecodable::Rejected(why)) => self.metrics.count_rejected(&why),
                Err(Undecodable::Record(_)) => damaged += 1,
            }
        }
        if damaged > 0 {
            warn!(
                records = damaged,
                "raw journal records that do not decode were skipped"
            );
        }
        reports
    }

    /// Appends `reports` to the opened journal and waits until they are
    /// durable, retrying while it is full or its disk fails (the lanes
    /// hold the batch meanwhile). False: stopped first.
    fn hand_on(&mut self, reports: &[Vec<u8>]) -> bool {
        let mut end = Position::ZERO;
        let mut logged: Option<Instant> = None;
        for r in reports {
            loop {
                match self.opened.append(r) {
                    Ok(e) => {
                        end = e;
                        break;
                    }
                    Err(AppendError::Closed) => return false,
                    Err(AppendError::Empty | AppendError::TooLarge { .. }) => break,
                    Err(e @ (AppendError::Full | AppendError::Unwritable)) => {
                        if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            warn!(error = %e, "the opened journal takes no more (a consumer far behind, or its disk); reports wait in the raw lanes");
                            logged = Some(Instant::now());
                        }
                        if self.stop.load(Ordering::Relaxed) {
                            return false;
                        }
                        self.copy_gauges();
                        self.pause(Duration::from_millis(50));
                    }
                }
            }
        }
        while end > Position::ZERO && !self.opened.wait_durable(end, Duration::from_millis(100)) {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
        }
        self.metrics
            .opened
            .fetch_add(reports.len() as u64, Ordering::Relaxed);
        true
    }

    /// Stores the lane's new position, retrying while it cannot be written.
    fn commit(&mut self, lane: Lane, next: Position) -> bool {
        loop {
            match self.readers.commit(lane, next) {
                Ok(()) => return true,
                Err(e) => {
                    error!(error = %e, "cannot store the opener's position; will retry");
                    if self.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    self.pause(Duration::from_secs(1));
                }
            }
        }
    }

    /// Copies the lanes' eviction counts and sizes into the metrics.
    fn copy_gauges(&self) {
        let mut evicted_total = 0;
        let mut bytes = 0;
        for (lane, stats) in Lane::all().zip(self.lanes.stats()) {
            self.metrics.intake_evicted[lane.index()]
                .store(stats.evicted_records, Ordering::Relaxed);
            evicted_total += stats.evicted_records;
            bytes += stats.bytes_on_disk;
        }
        let opened = self.opened.stats();
        self.metrics
            .reports_dropped
            .store(evicted_total, Ordering::Relaxed);
        self.metrics
            .journal_bytes
            .store(bytes + opened.bytes_on_disk, Ordering::Relaxed);
        self.metrics
            .journal_end
            .store(opened.durable_end.0, Ordering::Relaxed);
    }

    /// Sleeps up to `d`, waking early on stop.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_yields_until_a_quarter_of_the_journal_is_unread() {
        assert_eq!(OpenPriority::for_backlog(0.0), OpenPriority::Idle);
        assert_eq!(OpenPriority::for_backlog(0.249), OpenPriority::Idle);
        assert_eq!(OpenPriority::for_backlog(0.25), OpenPriority::CatchUp);
        assert_eq!(OpenPriority::for_backlog(3.0), OpenPriority::CatchUp);
    }

    /// The kernel's view of the thread, not our bookkeeping.
    #[cfg(target_os = "linux")]
    fn policy_of_a_thread_that_applies(p: OpenPriority) -> libc::c_int {
        std::thread::spawn(move || {
            background_priority();
            p.apply();
            // SAFETY: reads the calling thread's policy; no memory effects.
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_opening_runs_at_sched_idle_and_catching_up_keeps_the_stages_priority() {
        assert_eq!(
            policy_of_a_thread_that_applies(OpenPriority::Idle),
            libc::SCHED_IDLE
        );
        assert_eq!(
            policy_of_a_thread_that_applies(OpenPriority::CatchUp),
            libc::SCHED_OTHER
        );
    }
}
