//! The daemon's rollup thread: every name server with `[clickhouse]
//! rollup = true` tries the rollup every `rollup_interval_secs` (closing
//! the days that are over, refreshing the open ones). One runs it at a
//! time, the holder of the lease (see `lease`), given up after each run;
//! the others skip their turn while a run is on or the last one ended
//! within one and a half of their interval (counted in
//! `vcheckd_clickhouse_rollup_skipped_total`), and take over when the
//! server that ran stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::client::ClickHouseError;
use super::rollup::Rollup;
use super::schema;
use crate::metrics::Metrics;

/// How often a lease that could not be given up is tried again.
const RELEASE_RETRY: Duration = Duration::from_secs(5);

/// The running rollup thread.
pub(crate) struct Closer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Closer {
    /// Runs `rollup` now and then every `interval`, on a thread of its own
    /// at background priority (never on the answer path).
    pub fn start(
        mut rollup: Rollup,
        interval: Duration,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // One and a half intervals: a run that ended a little over one
        // interval ago is this server's predecessor's, about to run again.
        rollup.defer_to_recent(interval + interval / 2);
        metrics.clickhouse_enabled.store(true, Ordering::Relaxed);
        let handle = std::thread::Builder::new()
            .name("vcheckd-rollup".into())
            .spawn(move || {
                crate::processor::background_priority();
                let mut failing = false;
                // Migrated once, and again after a failure (the database
                // may have been dropped or restored meanwhile).
                let mut migrated = false;
                while !flag.load(Ordering::Relaxed) {
                    let result = if migrated {
                        Ok(())
                    } else {
                        schema::migrate(rollup.client(), rollup.topology())
                    }
                    .and_then(|()| {
                        migrated = true;
                        rollup.run(crate::clock::unix_now(), None)
                    });
                    // Between runs the lease is free: `vcheckd clickhouse
                    // rollup` may take it (the others defer to this run).
                    if !matches!(result, Err(ClickHouseError::RollupBusy { .. })) {
                        if let Err(e) = rollup.release() {
                            debug!(error = %e, "the ClickHouse rollup lease was not given up");
                        }
                    }
                    match result {
                        Ok(done) => {
                            if failing {
                                info!("the ClickHouse rollup works again");
                            }
                            failing = false;
                            if let Some((first, last)) = done.closed {
                                info!(first, last, "ClickHouse rollup: days closed");
                            }
                        }
                        Err(ClickHouseError::RollupBusy { holder, expires }) => {
                            debug!(%holder, expires, "ClickHouse rollup: another server holds the lease");
                            crate::metrics::bump(&metrics.rollup_skipped);
                        }
                        Err(e) => {
                            if !failing {
                                warn!(error = %e, "ClickHouse rollup failed; will retry");
                            }
                            failing = true;
                            migrated = false;
                        }
                    }
                    let until = Instant::now() + interval;
                    let mut tried = Instant::now();
                    while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                        // A release that failed (ClickHouse went away in
                        // the run) is tried again: the lease would keep the
                        // others and `vcheckd clickhouse rollup` waiting.
                        if rollup.holds_lease() && tried.elapsed() >= RELEASE_RETRY {
                            tried = Instant::now();
                            let _ = rollup.release();
                        }
                    }
                }
                if rollup.holds_lease() {
                    let _ = rollup.release();
                }
            })?;
        Ok(Closer {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops after the run in hand, waiting up to `deadline` (a run cut
    /// short leaves rows the next run writes again).
    pub fn stop(mut self, deadline: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(handle) = self.handle.take() else {
            return;
        };
        let started = Instant::now();
        while !handle.is_finished() && started.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            warn!("the ClickHouse rollup did not stop within the shutdown bound");
        }
    }
}

impl Drop for Closer {
    /// A server dropped without a shutdown: the thread ends after its run.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
