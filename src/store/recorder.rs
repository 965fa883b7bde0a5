//! The path from the answer loop to SQLite: a bounded queue and one writer
//! thread that commits in batches.
//!
//! The answer path never waits on SQLite: [`Recorder::submit`] either queues
//! the report or, when the queue is full, drops it and counts the drop (a UDP
//! server cannot push back on its clients). The writer exits only after every
//! `Recorder` clone is gone and the queue is drained, so a clean shutdown
//! loses nothing that was queued.

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{ReceivedReport, Store, StoreError};
use crate::metrics::{bump, Metrics};

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub queue_capacity: usize,
    pub max_batch: usize,
    /// Idle time after which counters are persisted even without reports.
    pub flush_interval: Duration,
    /// Raw reports older than this are deleted (the rollups stay).
    pub retention: Duration,
    /// How often to look for expired raw reports.
    pub prune_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 65_536,
            max_batch: 1_024,
            flush_interval: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 86_400),
            prune_interval: Duration::from_secs(3_600),
        }
    }
}

impl From<&crate::config::ServerConfig> for WriterConfig {
    fn from(c: &crate::config::ServerConfig) -> Self {
        WriterConfig {
            queue_capacity: c.queue_capacity.max(1),
            max_batch: c.max_batch.max(1),
            retention: Duration::from_secs(u64::from(c.retention_days.max(1)) * 86_400),
            ..WriterConfig::default()
        }
    }
}

/// The sending side; cheap to clone into every listener.
#[derive(Clone)]
pub struct Recorder {
    tx: SyncSender<ReceivedReport>,
    metrics: Arc<Metrics>,
}

impl Recorder {
    pub fn submit(&self, report: ReceivedReport) {
        // Counted before sending, so the writer can never take it off the
        // gauge before it was put on.
        bump(&self.metrics.queue_depth);
        match self.tx.try_send(report) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics
                    .queue_depth
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                bump(&self.metrics.reports_queue_dropped)
            }
        }
    }
}

/// The writer thread; `join` returns once the queue is drained.
pub struct Writer {
    handle: JoinHandle<Result<(), StoreError>>,
}

impl Writer {
    pub fn join(self) -> Result<(), StoreError> {
        match self.handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

pub fn start(store: Store, config: WriterConfig, metrics: Arc<Metrics>) -> (Recorder, Writer) {
    let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
    let recorder = Recorder {
        tx,
        metrics: metrics.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("vcheckd-writer".into())
        .spawn(move || run(store, rx, config, metrics))
        .unwrap_or_else(|e| panic!("cannot start the writer thread: {e}"));
    (recorder, Writer { handle })
}

struct CounterSync {
    persisted: Vec<(String, u64)>,
}

impl CounterSync {
    /// Writes what the counters gained since the last call, dated today.
    fn flush(&mut self, store: &mut Store, metrics: &Metrics) -> Result<(), StoreError> {
        let current = metrics.snapshot();
        let deltas: Vec<(String, u64)> = current
            .iter()
            .map(|(name, v)| {
                let before = self
                    .persisted
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, b)| *b);
                (name.clone(), v.saturating_sub(before))
            })
            .collect();
        if deltas.iter().any(|(_, d)| *d > 0) {
            store.add_counters(crate::clock::today(), &deltas)?;
        }
        self.persisted = current;
        Ok(())
    }
}

/// Commits a batch, retrying for as long as SQLite refuses it (a full disk,
/// a read-only remount, a long-held lock): a batch is never discarded. While
/// it waits, the bounded queue fills and later reports are dropped and
/// counted (`reports.queue_dropped`), and every failure is logged.
fn commit_with_retry(store: &mut Store, batch: &[ReceivedReport], metrics: &Metrics) {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.insert_batch(batch) {
            Ok(outcome) => {
                metrics
                    .reports_stored
                    .fetch_add(outcome.stored, std::sync::atomic::Ordering::Relaxed);
                metrics
                    .reports_duplicate
                    .fetch_add(outcome.duplicates, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            Err(e) => {
                error!(error = %e, reports = batch.len(), retry_in = ?delay, "cannot store reports; will retry");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Rows deleted per pruning step: small enough that a step never keeps the
/// queue waiting long.
const PRUNE_STEP: usize = 10_000;

/// Deletes one step of expired raw reports; true if more may remain.
fn prune_step(store: &mut Store, retention: Duration) -> bool {
    let before = crate::clock::unix_now()
        .saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    match store.prune(before, PRUNE_STEP) {
        Ok(n) => {
            if n > 0 {
                info!(rows = n, "pruned raw reports past retention");
            }
            n == PRUNE_STEP
        }
        Err(e) => {
            warn!(error = %e, "cannot prune expired reports");
            false
        }
    }
}

fn run(
    mut store: Store,
    rx: mpsc::Receiver<ReceivedReport>,
    config: WriterConfig,
    metrics: Arc<Metrics>,
) -> Result<(), StoreError> {
    let mut counters = CounterSync {
        persisted: Vec::new(),
    };
    let mut batch = Vec::with_capacity(config.max_batch);
    let mut last_flush = Instant::now();
    // Pruning runs one step per turn of the loop, between batches, so that
    // a large backlog (after an upgrade or a long stop) never stalls the queue.
    let mut pruning = true;
    let mut last_prune = Instant::now();
    loop {
        if !pruning && last_prune.elapsed() >= config.prune_interval {
            pruning = true;
        }
        if pruning {
            pruning = prune_step(&mut store, config.retention);
            last_prune = Instant::now();
        }
        let first = match rx.recv_timeout(config.flush_interval) {
            Ok(report) => report,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = counters.flush(&mut store, &metrics) {
                    warn!(error = %e, "cannot persist counters");
                }
                last_flush = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        batch.push(first);
        while batch.len() < config.max_batch {
            match rx.try_recv() {
                Ok(report) => batch.push(report),
                Err(_) => break,
            }
        }
        metrics
            .queue_depth
            .fetch_sub(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        commit_with_retry(&mut store, &batch, &metrics);
        metrics.observe_batch(started.elapsed());
        batch.clear();
        if last_flush.elapsed() >= config.flush_interval {
            if let Err(e) = counters.flush(&mut store, &metrics) {
                warn!(error = %e, "cannot persist counters");
            }
            last_flush = Instant::now();
        }
    }
    counters.flush(&mut store, &metrics)?;
    info!("report queue drained");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::Status;
    use crate::protocol::{AnonId, Identity, KeyId, Payload, Report, ReportId, ZoneName};
    use std::sync::atomic::Ordering;

    #[test]
    fn everything_queued_is_stored_when_the_senders_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let metrics = Arc::new(Metrics::default());
        let (recorder, writer) = start(
            Store::open(&path).unwrap(),
            WriterConfig {
                queue_capacity: 20_000,
                max_batch: 256,
                ..WriterConfig::default()
            },
            metrics.clone(),
        );
        let zone = ZoneName::new("vc.example.com").unwrap();
        for i in 0..10_000u32 {
            let mut id = [0u8; 12];
            id[..4].copy_from_slice(&i.to_be_bytes());
            recorder.submit(ReceivedReport {
                report: Report {
                    id: ReportId(id),
                    key_id: KeyId(1),
                    payload: Payload {
                        timestamp: 0,
                        identity: Identity::Known {
                            cluster: AnonId([(i % 7) as u8; 16]),
                            node: AnonId([(i % 5) as u8; 16]),
                        },
                        version: semver::Version::new(2, 4, 1),
                    },
                },
                zone: zone.clone(),
                received_at: 1_000,
                status: Status::UpToDate,
            });
        }
        // Submitting is far faster than committing: most are still queued.
        let queued = metrics.queue_depth.load(Ordering::Relaxed);
        drop(recorder);
        writer.join().unwrap();
        let rows: i64 = Store::open_read_only(&path)
            .unwrap()
            .conn()
            .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 10_000, "{queued} were queued at the stop");
        assert_eq!(metrics.queue_depth.load(Ordering::Relaxed), 0);
        assert_eq!(metrics.reports_queue_dropped.load(Ordering::Relaxed), 0);
        assert_eq!(metrics.reports_stored.load(Ordering::Relaxed), 10_000);
    }
}
