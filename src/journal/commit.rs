//! The group-commit thread: one write and one fsync for everything appended
//! during an interval, so that tens of thousands of appends per second cost
//! a few hundred fsyncs.
//!
//! Bytes taken from the pending buffer stay in this thread's `unwritten`
//! buffer until they are durable. A failed write or fsync (ENOSPC, EIO)
//! truncates the segment back to its durable length, so no partial record
//! ever stays on disk, and the same bytes are retried with a backoff of up
//! to 1 s; meanwhile appends are refused (`Unwritable`) until a write
//! succeeds again. Evictions are carried out here too: closing the segment
//! being written, deleting the evicted files.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::segment::{self, ActiveSegment, HEADER_LEN};
use super::{lock, JournalError, Shared, WAKE_BYTES};

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one error line per this interval while writes keep failing.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// After an outage, a buffer grown past this is given back.
const KEEP_CAPACITY: usize = 4 * WAKE_BYTES;

pub(crate) fn run(shared: Arc<Shared>, mut active: ActiveSegment) {
    let interval = shared.config.commit_interval;
    let mut unwritten: Vec<u8> = Vec::new();
    // The first record is written as soon as it comes.
    let mut last_commit = Instant::now()
        .checked_sub(interval)
        .unwrap_or_else(Instant::now);
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    let mut last_error_log: Option<Instant> = None;
    loop {
        let (closing, evict_due) = {
            let mut p = lock(&shared.pending);
            loop {
                if p.closing.is_some() || p.evict_due {
                    break;
                }
                let due = match retry_at {
                    Some(t) => Some(t),
                    None if p.buf.len() >= WAKE_BYTES => break,
                    None if !p.buf.is_empty() => Some(last_commit + interval),
                    None => None,
                };
                p = match due {
                    Some(t) => {
                        let now = Instant::now();
                        if now >= t {
                            break;
                        }
                        shared
                            .wake
                            .wait_timeout(p, t - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => shared.wake.wait(p).unwrap_or_else(PoisonError::into_inner),
                };
            }
            if unwritten.is_empty() {
                std::mem::swap(&mut unwritten, &mut p.buf);
            } else {
                unwritten.extend_from_slice(&p.buf);
                p.buf.clear();
            }
            (p.closing, std::mem::take(&mut p.evict_due))
        };
        if !unwritten.is_empty() {
            last_commit = Instant::now();
            match write_out(&shared, &mut active, &mut unwritten) {
                Ok(()) => {
                    shared.failing.store(false, Ordering::Release);
                    if let Some(since) = failing_since.take() {
                        info!(after = ?since.elapsed(), "journal writes resumed");
                    }
                    backoff = FIRST_BACKOFF;
                    retry_at = None;
                    if unwritten.capacity() > KEEP_CAPACITY {
                        unwritten.shrink_to(KEEP_CAPACITY);
                    }
                }
                Err(e) => {
                    shared.failing.store(true, Ordering::Release);
                    shared.commit_failures.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    failing_since.get_or_insert(now);
                    if last_error_log.is_none_or(|t| now - t >= ERROR_LOG_INTERVAL) {
                        last_error_log = Some(now);
                        error!(
                            error = %e,
                            unwritten_bytes = unwritten.len(),
                            retry_in = ?backoff,
                            "cannot write the journal; keeping records in memory and retrying"
                        );
                    }
                    retry_at = Some(now + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if evict_due && !evict(&shared, &mut active) {
            // The next segment could not be made: try again with the retry.
            lock(&shared.pending).evict_due = true;
            retry_at.get_or_insert(Instant::now() + backoff);
        }
        if let Some(deadline) = closing {
            let now = Instant::now();
            if unwritten.is_empty() || now >= deadline {
                finish(&shared);
                return;
            }
            // Only a failed write leaves bytes here: wait for the retry.
            let until = retry_at.map_or(deadline, |t| t.min(deadline));
            std::thread::sleep(until.saturating_duration_since(now));
        }
    }
}

/// Carries out evictions: closes the segment being written if an eviction
/// reached into it (crediting what was written since the request), then
/// deletes the evicted segments. False if the next segment cannot be made.
fn evict(shared: &Shared, active: &mut ActiveSegment) -> bool {
    let Some(request) = lock(&shared.segments).roll else {
        shared.collect_garbage();
        return true;
    };
    let end = active.end();
    if active.len > 0 {
        if let Err(e) = roll(shared, active) {
            warn!(error = %e, "cannot start a journal segment to evict the one being written");
            return false;
        }
    }
    {
        let mut segs = lock(&shared.segments);
        segs.roll = None;
        segs.floor = segs.floor.max(end);
        shared.floor.store(segs.floor, Ordering::SeqCst);
    }
    shared.release(end.saturating_sub(request.credited_to));
    shared.collect_garbage();
    true
}

/// Tells `close` this thread is done and how many records it could not write.
fn finish(shared: &Shared) {
    let lost = shared.unwritten_records.load(Ordering::Relaxed);
    *lock(&shared.finished) = Some(lost);
    shared.finished_cv.notify_all();
}

/// Bytes and records of the whole records at the front of `bytes` that fit
/// in `room` bytes.
fn fitting(bytes: &[u8], room: u64) -> (usize, u64) {
    let mut taken = 0usize;
    let mut records = 0u64;
    while taken + HEADER_LEN <= bytes.len() {
        let (len, _) = segment::parse_header(&bytes[taken..]);
        let size = HEADER_LEN + len;
        if (taken + size) as u64 > room {
            break;
        }
        taken += size;
        records += 1;
    }
    (taken, records)
}

/// Writes and fsyncs `unwritten`, starting new segments as they fill;
/// removes from it what became durable, even when a later piece fails.
fn write_out(
    shared: &Shared,
    active: &mut ActiveSegment,
    unwritten: &mut Vec<u8>,
) -> Result<(), JournalError> {
    let limit = shared.config.segment_bytes;
    let mut done = 0;
    let result = loop {
        if done == unwritten.len() {
            break Ok(());
        }
        let (mut take, mut records) = fitting(&unwritten[done..], limit.saturating_sub(active.len));
        if take == 0 && active.len == 0 {
            // An empty segment takes one record, however large, so that a
            // record above `segment_bytes` cannot stall the log.
            take = HEADER_LEN + segment::parse_header(&unwritten[done..]).0;
            records = 1;
        }
        if take == 0 {
            if let Err(e) = roll(shared, active) {
                break Err(e);
            }
            continue;
        }
        if let Err(e) = write_durably(shared, active, &unwritten[done..done + take]) {
            break Err(e);
        }
        done += take;
        active.len += take as u64;
        shared
            .bytes_on_disk
            .fetch_add(take as u64, Ordering::Relaxed);
        shared
            .unwritten_bytes
            .fetch_sub(take as u64, Ordering::Relaxed);
        shared
            .unwritten_records
            .fetch_sub(records, Ordering::Relaxed);
        shared.commits.fetch_add(1, Ordering::Relaxed);
        shared.publish_durable(active.end());
    };
    unwritten.drain(..done);
    result
}

/// One write and fsync at the segment's durable end. On failure the file
/// is cut back to that end: a torn record must not sit where the retry, or
/// a recovery after a crash, would find it.
fn write_durably(
    shared: &Shared,
    active: &ActiveSegment,
    bytes: &[u8],
) -> Result<(), JournalError> {
    let result = write_step(shared, active, bytes).and_then(|()| active.file.sync_data());
    result.map_err(|source| {
        if let Err(e) = active.file.set_len(active.len) {
            warn!(error = %e, path = %active.path.display(), "cannot cut a failed write off the journal segment");
        }
        JournalError::Io {
            op: "write journal segment",
            path: active.path.clone(),
            source,
        }
    })
}

#[cfg(not(test))]
fn write_step(_shared: &Shared, active: &ActiveSegment, bytes: &[u8]) -> std::io::Result<()> {
    active.file.write_all_at(bytes, active.len)
}

/// The fault-injection seam: a hook set by a test runs first and may fail
/// the step.
#[cfg(test)]
fn write_step(shared: &Shared, active: &ActiveSegment, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(hook) = lock(&shared.fault).as_mut() {
        if let Some(e) = hook(&active.file, active.len, bytes) {
            return Err(e);
        }
    }
    active.file.write_all_at(bytes, active.len)
}

/// Starts the next segment where the current one ends. The current one is
/// already fsynced (every write is), so a crash never tears an earlier
/// segment.
fn roll(shared: &Shared, active: &mut ActiveSegment) -> Result<(), JournalError> {
    let next = ActiveSegment::create(&shared.config.dir, active.end())?;
    // Published before any byte of it is durable, so a reader that sees a
    // durable end inside it also sees it in the list.
    lock(&shared.segments).starts.push(next.start);
    *active = next;
    shared.collect_garbage();
    Ok(())
}
