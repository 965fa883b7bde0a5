//! The path from the opened journal to SQLite.
//!
//! The answer path takes each valid report into a raw lane (src/intake.rs),
//! the opener (src/opener.rs) opens it once into the opened journal, and
//! the [`Processor`] thread reads that journal at its own pace from the
//! position committed in the database, and commits each batch of reports,
//! the counters that count them and the new position in one transaction.
//! A burst grows the journals instead of dropping reports; a crash or a
//! stop resumes exactly after the last committed batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::fleet::{CounterBase, CounterDelta};
use crate::journal::{Journal, JournalError, Position, Reader};
use crate::metrics::Metrics;
use crate::replay::{Outside, ReplayWindow};
use crate::report::ReceivedReport;
use crate::store::{BatchOutcome, Store};

/// The consumer name under which the SQLite processor keeps its position
/// in the opened journal.
pub const CONSUMER: &str = "sqlite.opened";

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

/// One batch of the opened journal, as reports.
pub(crate) struct ReadReports {
    /// The position after the records read.
    pub next: Position,
    /// Records that do not decode (damaged, or from a newer vcheckd).
    pub damaged: u64,
    /// Reports outside the replay window, not in `batch`.
    pub outside: Vec<Outside>,
}

/// Reads up to `max` records of the opened journal (waiting up to `wait`
/// for the first) into `batch` (cleared first), inside the replay
/// `window`: what every consumer of opened reports (the SQLite processor,
/// the ClickHouse shipper) reads, so that both keep the same reports.
pub(crate) fn read_reports(
    reader: &mut Reader,
    max: usize,
    wait: Duration,
    window: ReplayWindow,
    batch: &mut Vec<ReceivedReport>,
) -> Result<ReadReports, JournalError> {
    batch.clear();
    let mut damaged = 0u64;
    let next = reader.read_batch(max, wait, |_, bytes| {
        match ReceivedReport::from_record(bytes) {
            Ok(r) => batch.push(r),
            Err(_) => damaged += 1,
        }
    })?;
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
        outside,
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
                    metrics,
                    config,
                    stop: flag,
                    drain_to: target,
                    committed: Position::ZERO,
                    persisted: CounterBase::new(),
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
    metrics: Arc<Metrics>,
    config: ProcessorConfig,
    stop: Arc<AtomicBool>,
    /// Stop once the database holds everything before this position.
    drain_to: Arc<AtomicU64>,
    /// The position the database holds.
    committed: Position,
    /// The answer-path counters as last persisted.
    persisted: CounterBase,
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
            let read = read_reports(
                &mut self.reader,
                self.config.max_batch,
                Duration::from_millis(100),
                self.config.replay_window,
                &mut batch,
            );
            let (next, damaged) = match read {
                Ok(read) => {
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
                .journal_pending_bytes
                .store(stats.pending_bytes, Ordering::Relaxed);
            self.metrics
                .journal_write_failures
                .store(stats.commit_failures, Ordering::Relaxed);
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
        let deltas = self.persisted.deltas(&current, crate::clock::today());
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
                    self.persisted.take(current);
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
