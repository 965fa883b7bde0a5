//! The path from the answer loops to SQLite: the journal in between.
//!
//! The answer path hands each valid report to [`JournalSink`], which
//! appends its record to the journal and never waits on the disk. The
//! [`Processor`] thread reads the journal at its own pace from the position
//! committed in the database, and commits each batch of reports, the
//! counters that count them and the new position in one transaction. A
//! burst grows the journal instead of dropping reports; a crash or a stop
//! resumes exactly after the last committed batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::dns::ReportSink;
use crate::journal::{Journal, JournalError, Position, Reader};
use crate::metrics::{bump, Metrics};
use crate::protocol::DecodeError;
use crate::replay::{Outside, ReplayWindow};
use crate::report::{self, Incoming, Opener, ReceivedReport, Undecodable};
use crate::store::{BatchOutcome, CounterDelta, Store};

/// The consumer name under which the SQLite processor keeps its position.
pub const CONSUMER: &str = "sqlite";

/// The answer path's side: a report becomes a journal record.
pub struct JournalSink {
    journal: Arc<Journal>,
    metrics: Arc<Metrics>,
}

impl JournalSink {
    pub fn new(journal: Arc<Journal>, metrics: Arc<Metrics>) -> Self {
        JournalSink { journal, metrics }
    }
}

thread_local! {
    /// One record buffer per answer thread: no allocation per report.
    static RECORD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ReportSink for JournalSink {
    fn accept(&self, report: Incoming<'_>) {
        let appended = RECORD.with_borrow_mut(|buf| {
            report.to_record(buf).ok()?;
            Some(self.journal.append(buf))
        });
        // A full journal counts and logs its drops; every report it did
        // not take (full, closing, or one that cannot be encoded) is a drop.
        if !matches!(appended, Some(Ok(_))) {
            bump(&self.metrics.reports_dropped);
        }
    }
}

/// How the processor batches and prunes.
#[derive(Debug, Clone, Copy)]
pub struct ProcessorConfig {
    /// Records per transaction, at most.
    pub max_batch: usize,
    /// Raw reports are deleted this many days after their client day (the
    /// rollups stay).
    pub retention_days: u32,
    /// How often to look for expired raw reports.
    pub prune_interval: Duration,
    /// Counters are persisted at least this often, reports or not.
    pub flush_interval: Duration,
    /// Reports whose client timestamp is outside it are counted, not stored.
    pub replay_window: ReplayWindow,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            max_batch: 8_192,
            retention_days: 30,
            prune_interval: Duration::from_secs(3_600),
            flush_interval: Duration::from_secs(1),
            replay_window: ReplayWindow::DEFAULT,
        }
    }
}

/// Lowers the calling thread's CPU priority (nice 10): a journal
/// consumer's own thread (reading, v1 decoding, committing) yields to the
/// answer loops when the two compete for the cores. A lowered priority
/// cannot be raised again without CAP_SYS_NICE (the systemd unit runs
/// unprivileged), so only threads that never need more get it.
pub(crate) fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; on Linux, PRIO_PROCESS
    // with who = 0 applies to the calling thread alone.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// How the threads that open v2 frames run, chosen per batch from the
/// consumer's backlog. They are started for each batch, so each starts
/// from its consumer thread's priority and may only go lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenPriority {
    /// Only CPU time nothing else wants (SCHED_IDLE): opening (0.15 ms a
    /// frame) never slows the answer loops; it catches up when the load
    /// falls, and the journal holds what it has not reached. (Nice 10
    /// still took a tenth of the cores from the answer loops under full
    /// load: docs/PERFORMANCE.md.)
    Idle,
    /// The consumer thread's own priority: the consumer is so far behind
    /// that the journal would soon refuse reports, and losing them is
    /// worse than answering more slowly.
    CatchUp,
}

impl OpenPriority {
    /// The backlog (a fraction of `journal_max_bytes`) from which a
    /// consumer's opening stops yielding to everything else.
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

/// One batch of the journal, as reports.
pub(crate) struct ReadReports {
    /// The position after the records read.
    pub next: Position,
    /// Records that do not decode (damaged, or from a newer vcheckd).
    pub damaged: u64,
    /// v2 frames that do not open, by reason.
    pub rejected: Vec<DecodeError>,
    /// Reports outside the replay window, not in `batch`.
    pub outside: Vec<Outside>,
}

/// Reads up to `max` records (waiting up to `wait` for the first) into
/// `batch` (cleared first), v1 decoded and v2 opened, inside the replay
/// `window`: what every journal consumer (the SQLite processor, the
/// ClickHouse shipper) reads, so that both keep the same reports.
pub(crate) fn read_reports(
    reader: &mut Reader,
    max: usize,
    wait: Duration,
    opener: &Opener,
    window: ReplayWindow,
    batch: &mut Vec<ReceivedReport>,
) -> Result<ReadReports, JournalError> {
    batch.clear();
    let priority = OpenPriority::for_backlog(reader.backlog());
    let mut sealed: Vec<Vec<u8>> = Vec::new();
    let mut damaged = 0u64;
    let next = reader.read_batch(max, wait, |_, bytes| {
        if report::is_sealed(bytes) {
            sealed.push(bytes.to_vec());
        } else {
            match report::decode(bytes, opener) {
                Ok(r) => batch.push(r),
                Err(_) => damaged += 1,
            }
        }
    })?;
    let mut rejected = Vec::new();
    for result in open_sealed(&sealed, opener, priority) {
        match result {
            Ok(r) => batch.push(r),
            Err(Undecodable::Rejected(why)) => rejected.push(why),
            Err(Undecodable::Record(_)) => damaged += 1,
        }
    }
    let mut outside = Vec::new();
    batch.retain(|r| match window.check(r) {
        Ok(()) => true,
        Err(why) => {
            outside.push(why);
            false
        }
    });
    Ok(ReadReports {
        next,
        damaged,
        rejected,
        outside,
    })
}

/// Opens sealed (protocol v2) records, spread over the machine's cores:
/// one HPKE open costs about 0.15 ms, so a core opens only 6-16k a second.
fn open_sealed(
    sealed: &[Vec<u8>],
    opener: &Opener,
    priority: OpenPriority,
) -> Vec<Result<ReceivedReport, Undecodable>> {
    const PER_THREAD_MIN: usize = 64;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(sealed.len().div_ceil(PER_THREAD_MIN))
        .max(1);
    if sealed.is_empty() {
        return Vec::new();
    }
    // One thread's worth is opened right here, unless it must yield to
    // everything else: the consumer's own thread cannot take back a
    // lowered priority, so idle opening always runs on a thread of its own.
    if threads == 1 && priority == OpenPriority::CatchUp {
        return sealed.iter().map(|r| report::decode(r, opener)).collect();
    }
    let chunk = sealed.len().div_ceil(threads);
    let open_part = move |part: &[Vec<u8>]| -> Vec<_> {
        part.iter().map(|r| report::decode(r, opener)).collect()
    };
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
                // counted damaged rather than take the processor down.
                Ok(Err(_)) => (0..part.len())
                    .map(|_| Err(Undecodable::Record(report::RecordError::Field)))
                    .collect(),
            })
            .collect()
    })
}

/// The running processor thread.
pub struct Processor {
    stop: Arc<AtomicBool>,
    drain_to: Arc<AtomicU64>,
    done: mpsc::Receiver<Position>,
    handle: JoinHandle<()>,
}

impl Processor {
    /// Starts taking records from `reader` (subscribed at the position the
    /// store holds for [`CONSUMER`]) into `store`.
    pub fn start(
        store: Store,
        journal: Arc<Journal>,
        reader: Reader,
        opener: Arc<ArcSwap<Opener>>,
        metrics: Arc<Metrics>,
        config: ProcessorConfig,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let drain_to = Arc::new(AtomicU64::new(u64::MAX));
        let (tx, done) = mpsc::channel();
        let flag = stop.clone();
        let target = drain_to.clone();
        let handle = std::thread::Builder::new()
            .name("vcheckd-processor".into())
            .spawn(move || {
                background_priority();
                let mut run = Run {
                    store,
                    journal,
                    reader,
                    opener,
                    metrics,
                    config,
                    stop: flag,
                    drain_to: target,
                    committed: Position::ZERO,
                    persisted: Vec::new(),
                    last_flush: Instant::now(),
                };
                run.committed = run.reader.position();
                run.main();
                let _ = tx.send(run.committed);
            })?;
        Ok(Processor {
            stop,
            drain_to,
            done,
            handle,
        })
    }

    /// Takes what the journal holds up to `end` into the database, for at
    /// most `deadline`; then stops after the batch in hand (what is not
    /// committed stays in the journal for the next start). Returns the
    /// position committed, or `None` if the thread did not finish in time
    /// (a database call that does not return).
    pub fn stop(self, end: Position, deadline: Duration) -> Option<Position> {
        let started = Instant::now();
        self.drain_to.store(end.0, Ordering::Relaxed);
        // Most of the bound for draining; the rest for a batch in hand.
        let drain = deadline.saturating_sub(deadline / 5);
        let mut position = self.done.recv_timeout(drain).ok();
        if position.is_none() {
            self.stop.store(true, Ordering::Relaxed);
            position = self
                .done
                .recv_timeout(deadline.saturating_sub(started.elapsed()))
                .ok();
        }
        if position.is_some() {
            let _ = self.handle.join();
        }
        position
    }
}

struct Run {
    store: Store,
    journal: Arc<Journal>,
    reader: Reader,
    /// Opens protocol v2 frames; swapped when the configuration is reloaded.
    opener: Arc<ArcSwap<Opener>>,
    metrics: Arc<Metrics>,
    config: ProcessorConfig,
    stop: Arc<AtomicBool>,
    /// Stop once the database holds everything before this position.
    drain_to: Arc<AtomicU64>,
    /// The position the database holds.
    committed: Position,
    /// The answer-path counters as last persisted.
    persisted: Vec<(String, u64)>,
    last_flush: Instant,
}

impl Run {
    fn main(&mut self) {
        self.work();
        // The answer path's counters since the last commit (rejected names,
        // duplicates...): without this, a shutdown within a flush interval
        // of the last batch would lose them.
        if !self.stop.load(Ordering::Relaxed) {
            self.commit(&[], self.committed);
        }
        self.flush_open_day();
    }

    fn work(&mut self) {
        let mut batch: Vec<ReceivedReport> = Vec::with_capacity(self.config.max_batch);
        let mut last_prune: Option<Instant> = None;
        let mut pruning = true;
        while !self.stop.load(Ordering::Relaxed)
            && self.committed.0 < self.drain_to.load(Ordering::Relaxed)
        {
            let opener = self.opener.load();
            let read = read_reports(
                &mut self.reader,
                self.config.max_batch,
                Duration::from_millis(100),
                &opener,
                self.config.replay_window,
                &mut batch,
            );
            let (next, damaged) = match read {
                Ok(read) => {
                    for why in &read.rejected {
                        self.metrics.count_rejected(why);
                    }
                    for why in &read.outside {
                        self.metrics.count_outside_window(*why);
                    }
                    (read.next, read.damaged)
                }
                Err(e) => {
                    error!(error = %e, "cannot read the journal; will retry");
                    self.pause(Duration::from_secs(1));
                    continue;
                }
            };
            let stats = self.journal.stats();
            self.metrics
                .journal_end
                .store(stats.durable_end.0, Ordering::Relaxed);
            self.metrics
                .journal_bytes
                .store(stats.bytes_on_disk, Ordering::Relaxed);
            if damaged > 0 {
                warn!(
                    records = damaged,
                    "journal records that do not decode were skipped"
                );
            }
            let moved = next != self.committed;
            let due = moved || self.last_flush.elapsed() >= self.config.flush_interval;
            if due && !self.commit(&batch, next) {
                return;
            }
            if !moved {
                // Idle: the open day's snapshot catches up with the last
                // batches (a large fleet's commits write it only now and
                // then).
                self.flush_open_day();
            }
            if pruning || last_prune.is_none_or(|t| t.elapsed() >= self.config.prune_interval) {
                pruning = self.prune_step();
                last_prune = Some(Instant::now());
            }
        }
    }

    fn flush_open_day(&mut self) {
        if let Err(e) = self.store.flush_open_day() {
            warn!(error = %e, "cannot write the open day's snapshot");
        }
    }

    /// Sleeps up to `d`, waking early on stop.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The answer-path counters' gains since the last commit, dated today.
    fn counter_deltas(&self) -> (Vec<CounterDelta>, Vec<(String, u64)>) {
        let current = self.metrics.persisted_counters();
        let today = crate::clock::today();
        let deltas = current
            .iter()
            .map(|(name, v)| {
                let before = self
                    .persisted
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, b)| *b);
                CounterDelta {
                    day: today,
                    name: name.clone(),
                    delta: v.saturating_sub(before),
                }
            })
            .collect();
        (deltas, current)
    }

    /// Commits a batch with its counters and position, retrying for as
    /// long as SQLite refuses (a full disk, a long-held lock): a batch is
    /// never discarded, and the journal keeps it meanwhile. False: stopped
    /// while retrying; the batch stays in the journal for the next start.
    fn commit(&mut self, batch: &[ReceivedReport], next: Position) -> bool {
        let mut delay = Duration::from_millis(50);
        let mut logged: Option<Instant> = None;
        loop {
            let (deltas, current) = self.counter_deltas();
            let started = Instant::now();
            match self.store.commit(batch, &deltas, Some((CONSUMER, next.0))) {
                Ok(outcome) => {
                    self.metrics.observe_batch(started.elapsed());
                    self.count(outcome);
                    self.persisted = current;
                    self.last_flush = Instant::now();
                    if let Err(e) = self.reader.commit(next) {
                        warn!(error = %e, "cannot release journal segments");
                    }
                    self.committed = next;
                    self.metrics
                        .processed_position
                        .store(next.0, Ordering::Relaxed);
                    return true;
                }
                Err(e) => {
                    if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        error!(error = %e, reports = batch.len(), "cannot store reports; they stay in the journal, will retry");
                        logged = Some(Instant::now());
                    }
                    // A failed commit on a full disk leaves the write-ahead
                    // log grown: give the space back before trying again.
                    let _ = self.store.checkpoint();
                    if self.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    self.pause(delay);
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn count(&self, outcome: BatchOutcome) {
        self.metrics
            .reports_stored
            .fetch_add(outcome.stored, Ordering::Relaxed);
        self.metrics
            .reports_duplicate
            .fetch_add(outcome.duplicates, Ordering::Relaxed);
        self.metrics
            .reports_late
            .fetch_add(outcome.late, Ordering::Relaxed);
    }

    /// Deletes one step of expired raw reports; true if more may remain.
    fn prune_step(&mut self) -> bool {
        const STEP: usize = 10_000;
        let before = crate::clock::today() - i64::from(self.config.retention_days.max(1));
        match self.store.prune(before, STEP) {
            Ok(n) => {
                if n > 0 {
                    info!(rows = n, "pruned raw reports past retention");
                }
                n == STEP
            }
            Err(e) => {
                warn!(error = %e, "cannot prune expired reports");
                false
            }
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
    fn idle_opening_runs_at_sched_idle_and_catching_up_keeps_the_consumers_priority() {
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
