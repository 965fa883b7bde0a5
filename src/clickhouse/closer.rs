//! The daemon's rollup thread: every name server with `[clickhouse]
//! rollup = true` runs the rollup every `rollup_interval_secs` (closing
//! the days that are over, refreshing the open ones). Several servers
//! doing it at once write the same rows (see `rollup`), so no election is
//! needed; one is enough.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::rollup::Rollup;
use super::schema;

/// The running rollup thread.
pub struct Closer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Closer {
    /// Runs `rollup` now and then every `interval`, on a thread of its own
    /// at background priority (never on the answer path).
    pub fn start(mut rollup: Rollup, interval: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("vcheckd-rollup".into())
            .spawn(move || {
                crate::processor::background_priority();
                let mut failing = false;
                while !flag.load(Ordering::Relaxed) {
                    let result = schema::migrate(rollup.client(), rollup.topology())
                        .and_then(|()| rollup.run(crate::clock::unix_now(), None));
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
                        Err(e) => {
                            if !failing {
                                warn!(error = %e, "ClickHouse rollup failed; will retry");
                            }
                            failing = true;
                        }
                    }
                    let until = Instant::now() + interval;
                    while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
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
