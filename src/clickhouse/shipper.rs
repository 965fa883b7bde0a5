//! The shipper: a second consumer of the opened journal that copies every report into
//! ClickHouse, in batches, on a thread of its own (never on the answer
//! path: DNS answers only append to the journal).
//!
//! Its position is a small file beside the journal's segments, written
//! (atomically) only after ClickHouse acknowledged the batch before it.
//! ClickHouse has no transactions to commit a position with the rows, so
//! delivery is at least once: a crash between the acknowledgement and the
//! file write ships that batch again, and the copies share their key,
//! which every query counts once (and a merge later removes). The file is
//! local so that, with ClickHouse down at start, the journal still knows
//! which segments to keep: it deletes none the shipper has not passed.
//! While ClickHouse is unreachable the shipper retries the same batch with
//! a growing pause, and the journal grows (up to `journal_max_bytes`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::client::{ClickHouseError, Client};
use super::counters::{self, Tally};
use super::row::Row;
use super::schema::{self, Topology};
use crate::journal::{Journal, JournalError, Position, Reader};
use crate::metrics::Metrics;
use crate::processor::read_reports;
use crate::report::ReceivedReport;

/// The consumer name under which the shipper reads the journal.
pub const CONSUMER: &str = "clickhouse";

/// The position file's name, in the journal's folder.
const POSITION_FILE: &str = "clickhouse.position";

/// How the shipper ships.
#[derive(Clone)]
pub struct ShipperConfig {
    pub client: Client,
    pub topology: Topology,
    /// This name server's name, stored with each row (per-server counts).
    pub server: String,
    /// Reports per insert, at most.
    pub max_batch: usize,
    /// How long a batch waits to fill before it is sent anyway.
    pub interval: Duration,
    /// The longest pause between retries while ClickHouse is unreachable.
    pub max_backoff: Duration,
    /// The server's replay window: the shipper keeps the reports the
    /// SQLite processor keeps.
    pub replay_window: crate::replay::ReplayWindow,
}

/// The running shipper thread.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// The committed position stored in `dir`, if any.
fn load_position(dir: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(dir.join(POSITION_FILE)).ok()?;
    text.trim().parse().ok().map(Position)
}

/// Writes the position durably: a new file renamed over the old one.
fn store_position(dir: &Path, pos: Position) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{POSITION_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{}", pos.0)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(POSITION_FILE))
}

impl Shipper {
    /// Subscribes to the opened journal (in `journal_dir`) at the position
    /// last acknowledged, and starts shipping. Call before the SQLite
    /// processor starts, so that no segment the shipper still needs is
    /// deleted.
    pub fn start(
        journal: Arc<Journal>,
        journal_dir: PathBuf,
        metrics: Arc<Metrics>,
        config: ShipperConfig,
    ) -> Result<Self, JournalError> {
        let from = load_position(&journal_dir).unwrap_or(Position::ZERO);
        let reader = match journal.subscribe(CONSUMER, from) {
            // A journal folder made anew: its positions start again.
            Err(JournalError::Ahead { .. }) => {
                warn!(
                    position = from.0,
                    "the shipper's position is past the journal's end; shipping from its start"
                );
                journal.subscribe(CONSUMER, Position::ZERO)?
            }
            other => other?,
        };
        metrics.clickhouse_enabled.store(true, Ordering::Relaxed);
        metrics
            .shipped_position
            .store(reader.position().0, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("vcheckd-shipper".into())
            .spawn(move || {
                crate::processor::background_priority();
                Run {
                    journal,
                    dir: journal_dir,
                    reader,
                    metrics,
                    config,
                    stop: flag,
                    tally: Tally::new(counters::run_id()),
                    counters_at: Instant::now(),
                    counters_failing: false,
                }
                .main()
            })
            .map_err(|e| JournalError::Io {
                op: "start the shipper thread",
                path: PathBuf::new(),
                source: e,
            })?;
        Ok(Shipper { stop, handle })
    }

    /// Stops after the request in hand (at most the client's timeout);
    /// what is not shipped stays in the journal for the next start. Waits
    /// up to `deadline`.
    pub fn stop(self, deadline: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let started = Instant::now();
        while !self.handle.is_finished() && started.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.handle.is_finished() {
            let _ = self.handle.join();
        } else {
            warn!("the shipper did not stop within the shutdown bound");
        }
    }
}

struct Run {
    journal: Arc<Journal>,
    dir: PathBuf,
    reader: Reader,
    metrics: Arc<Metrics>,
    config: ShipperConfig,
    stop: Arc<AtomicBool>,
    /// The server's counters, shipped every `interval` and on stop.
    tally: Tally,
    counters_at: Instant,
    counters_failing: bool,
}

impl Run {
    fn main(mut self) {
        if !self.retry("create the ClickHouse schema", |run| {
            schema::migrate(&run.config.client, &run.config.topology)
        }) {
            return;
        }
        info!(url = %self.config.client.url(), "shipping reports to ClickHouse");
        let mut batch: Vec<ReceivedReport> = Vec::with_capacity(self.config.max_batch);
        let mut body: Vec<u8> = Vec::new();
        let mut committed = self.reader.position();
        while !self.stop.load(Ordering::Relaxed) {
            if self.counters_at.elapsed() >= self.config.interval {
                self.ship_counters();
            }
            // The one reading of the opened journal, shared with the
            // processor (frames were opened once, by the opener).
            let read = read_reports(
                &mut self.reader,
                self.config.max_batch.max(1),
                self.config.interval,
                self.config.replay_window,
                &mut batch,
            );
            let (next, damaged) = match read {
                Ok(read) => (read.next, read.damaged),
                Err(e) => {
                    error!(error = %e, "shipper cannot read the journal; will retry");
                    self.pause(Duration::from_secs(1));
                    continue;
                }
            };
            self.metrics
                .journal_end
                .store(self.journal.stats().durable_end.0, Ordering::Relaxed);
            if damaged > 0 {
                warn!(
                    records = damaged,
                    "journal records that do not decode were not shipped"
                );
            }
            if next == committed {
                continue;
            }
            if !batch.is_empty() {
                body.clear();
                for r in &batch {
                    // Serializing plain strings and numbers cannot fail.
                    if serde_json::to_writer(&mut body, &Row::new(r, &self.config.server)).is_ok() {
                        body.push(b'\n');
                    }
                }
                let shipped = self.retry("ship reports to ClickHouse", |run| {
                    run.config.client.insert_json(
                        "reports",
                        &body,
                        // A cluster's Distributed table acknowledges once
                        // every shard has its rows.
                        &[("insert_distributed_sync", "1")],
                    )
                });
                if !shipped {
                    return;
                }
                self.metrics
                    .shipped_reports
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            if let Err(e) = store_position(&self.dir, next) {
                // Shipped; the worst case is shipping it again (counted
                // once). Segments stay until the position is written.
                warn!(error = %e, "cannot write the shipper's position");
                continue;
            }
            if let Err(e) = self.reader.commit(next) {
                warn!(error = %e, "cannot release journal segments");
            }
            committed = next;
            self.metrics
                .shipped_position
                .store(next.0, Ordering::Relaxed);
        }
        // What the counters gained since the last shipping (one try).
        self.ship_counters();
    }

    /// Ships the counters' changed totals, once: a failure is logged and
    /// they go with the next try (totals, so nothing is lost or doubled).
    fn ship_counters(&mut self) {
        self.counters_at = Instant::now();
        self.tally
            .observe(counters::current(&self.metrics), crate::clock::today());
        let Some(rows) = self.tally.rows(&self.config.server) else {
            return;
        };
        match self
            .config
            .client
            .insert_json("counters", &rows, &[("insert_distributed_sync", "1")])
        {
            Ok(()) => {
                self.tally.shipped();
                self.counters_failing = false;
            }
            Err(e) => {
                self.metrics.ship_errors.fetch_add(1, Ordering::Relaxed);
                // Once per outage: the reports' retries log it too.
                if !self.counters_failing {
                    warn!(error = %e, "cannot ship the server's counters; will retry");
                }
                self.counters_failing = true;
            }
        }
    }

    /// Runs `f` until it succeeds, pausing longer after each failure (up
    /// to `max_backoff`). False: stopped first.
    fn retry(
        &mut self,
        what: &str,
        mut f: impl FnMut(&Self) -> Result<(), ClickHouseError>,
    ) -> bool {
        let mut delay = Duration::from_millis(100);
        let mut logged: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            match f(self) {
                Ok(()) => {
                    if logged.is_some() {
                        info!("ClickHouse answers again");
                    }
                    return true;
                }
                Err(e) => {
                    self.metrics.ship_errors.fetch_add(1, Ordering::Relaxed);
                    if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                        warn!(error = %e, "cannot {what}; reports stay in the journal, will retry");
                        logged = Some(Instant::now());
                    }
                    self.pause(delay);
                    delay =
                        (delay * 2).min(self.config.max_backoff.max(Duration::from_millis(100)));
                }
            }
        }
    }

    /// Sleeps up to `d`, waking early on stop.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_file_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_position(dir.path()), None);
        store_position(dir.path(), Position(12_345)).unwrap();
        assert_eq!(load_position(dir.path()), Some(Position(12_345)));
        store_position(dir.path(), Position(99)).unwrap();
        assert_eq!(load_position(dir.path()), Some(Position(99)));
        std::fs::write(dir.path().join(POSITION_FILE), "garbage").unwrap();
        assert_eq!(load_position(dir.path()), None);
    }
}
