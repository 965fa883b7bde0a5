//! A durable, append-only, segmented log of opaque byte records.
//!
//! The answer path appends each report's bytes here, and never waits for
//! the disk: [`Journal::append`] only copies the framed
//! record into a pending buffer under a mutex, and a group-commit thread
//! writes and fsyncs that buffer every `commit_interval` (or sooner when it
//! passes 1 MiB), then publishes the new *durable end*. Consumers read
//! durable records from a position they store with their own results, and
//! tell the journal how far they have durably processed so that whole
//! segments can be deleted.
//!
//! **Loss bound.** A crash (kill -9, power loss) loses at most the records
//! appended since the last completed group commit: about `commit_interval`
//! plus the time of one write and fsync. An append is refused, never
//! silently lost, when the bound is reached ([`AppendError::Full`]), while
//! the disk refuses writes ([`AppendError::Unwritable`]: from the first
//! failed write until one succeeds) and once closing: the caller can then
//! tell its client that nothing was recorded. Records taken before a write
//! failed stay in memory (bounded by the budget and 64 MiB) and are retried
//! with backoff; [`Journal::close`] reports those it could not write as
//! `lost_records`.
//!
//! **Budgets and eviction.** Several journals may share one [`Budget`]
//! (bytes on disk plus bytes not yet written, summed over them), so that
//! one bound covers a set of logs kept apart (the intake's lanes).
//! [`Journal::evict_oldest`] gives up this journal's oldest records, read or
//! not, one whole segment at a time (the segment being written is closed
//! first): the bytes are credited to the budget at once, every reader skips
//! them from then on, the commit thread deletes the files and counts the
//! records no reader had reached (`evicted_records`).
//!
//! **On disk.** `{dir}/{start:020}.seg` files, `start` being the global
//! position (byte offset since the journal's creation) of the file's first
//! byte. Each holds whole records `[u32 LE len][u32 LE CRC-32][payload]`;
//! a record never spans two files. One process at a time may open a folder.

mod commit;
mod reader;
mod segment;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{info, warn};

pub use reader::Reader;
pub use segment::MAX_RECORD;

/// A global byte offset in the log since its creation: monotonic across
/// segments and never reused, so a consumer can store it next to its own
/// results and resume from it after any restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl Position {
    pub const ZERO: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// Bound on segment bytes on disk plus bytes not yet written.
    pub max_bytes: u64,
    /// A new segment starts when a record would take the current one past this.
    pub segment_bytes: u64,
    /// How long appends accumulate before one write and fsync.
    pub commit_interval: Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            dir: PathBuf::from("data/journal"),
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            commit_interval: Duration::from_millis(2),
        }
    }
}

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("cannot {op} {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt journal segment {} at byte {offset}: {reason}", .path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    #[error("journal position {requested} is past the durable end {durable_end}")]
    Ahead {
        requested: Position,
        durable_end: Position,
    },
    #[error("journal position {requested} was deleted (the oldest is {oldest})")]
    Deleted {
        requested: Position,
        oldest: Position,
    },
    #[error("cannot start the journal commit thread")]
    Thread(#[source] std::io::Error),
    #[error("journal folder {} is in use by another process (it holds {}); run one vcheckd per journal_dir", .dir.display(), .lock.display())]
    InUse { dir: PathBuf, lock: PathBuf },
}

/// Takes the folder's lock file (creating the folder if needed).
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, JournalError> {
    std::fs::create_dir_all(dir).map_err(segment::io_error("create the journal folder", dir))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(segment::io_error("open the journal lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::InUse {
            dir: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(segment::io_error("lock the journal lock file", &path)(e))
        }
    }
}

/// Why a record was not taken. The answer path counts these and moves on:
/// a UDP server cannot push back on its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AppendError {
    #[error("journal record of {len} bytes is above the {MAX_RECORD}-byte maximum")]
    TooLarge { len: usize },
    /// Empty records are refused so that a tail of zeros never reads as data.
    #[error("empty journal record")]
    Empty,
    /// The budget (`max_bytes`, or the shared [`Budget`]) or the
    /// pending-memory bound is reached; counted as refused.
    #[error("journal full: record refused")]
    Full,
    /// The last write to disk failed (a full or failing volume): nothing
    /// is taken until a retry succeeds. Counted as refused.
    #[error("journal disk not writable: record refused")]
    Unwritable,
    #[error("journal closed")]
    Closed,
}

/// A bound on bytes shared by journals: each counts its bytes on disk and
/// its bytes not yet written here, and an append that would pass `max` is
/// refused. Reserving is one compare-and-swap: appenders to different
/// journals never wait for each other.
#[derive(Debug)]
pub struct Budget {
    max: u64,
    used: AtomicU64,
}

impl Budget {
    pub fn new(max: u64) -> Arc<Budget> {
        Arc::new(Budget {
            max,
            used: AtomicU64::new(0),
        })
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Bytes counted against `max` by every journal sharing it.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.max).then_some(used + n)
            })
            .is_ok()
    }

    fn add(&self, n: u64) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// What [`Journal::close`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseOutcome {
    pub durable_end: Position,
    /// Records appended but not written before the deadline.
    pub lost_records: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Records taken by `append` since open.
    pub appended_records: u64,
    /// Records refused with `AppendError::Full` or `Unwritable` since open.
    pub dropped_records: u64,
    /// Records given up by [`Journal::evict_oldest`] before any reader
    /// reached them, since open.
    pub evicted_records: u64,
    /// Bytes this journal counts against its budget: on disk past the
    /// eviction floor, plus not yet written.
    pub live_bytes: u64,
    /// Bytes of segment files (durable records).
    pub bytes_on_disk: u64,
    /// Bytes appended and not yet durable.
    pub pending_bytes: u64,
    pub durable_end: Position,
    /// Start of the oldest segment still on disk.
    pub oldest: Position,
    /// Successful write+fsync rounds, and failed ones.
    pub commits: u64,
    pub commit_failures: u64,
    /// The lowest committed position among consumers, if any subscribed.
    pub min_committed: Option<Position>,
}

/// Pending bytes are flushed early past this, not waiting for the interval.
const WAKE_BYTES: usize = 1 << 20;
/// Memory bound on bytes appended and not yet durable, so that a disk that
/// refuses writes cannot grow memory without end.
const PENDING_LIMIT: u64 = 64 << 20;
/// `Drop` gives the final flush this long.
const DROP_DEADLINE: Duration = Duration::from_secs(5);
const NO_CONSUMER: u64 = u64::MAX;

/// A poisoned lock only means another thread panicked while holding it;
/// the journal's state under these locks stays consistent at every step.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct Pending {
    pub(crate) buf: Vec<u8>,
    /// Set by `close`: no more appends; the commit thread flushes until then.
    pub(crate) closing: Option<Instant>,
    /// The position after the last record taken.
    pub(crate) appended_end: u64,
    /// Set by `evict_oldest`: the commit thread has segments to close or
    /// delete.
    pub(crate) evict_due: bool,
}

/// An eviction that reaches into the segment being written: the commit
/// thread closes it and gives up everything durable in it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roll {
    /// The durable end when the request was made: bytes up to it are
    /// credited already, bytes written since are credited at the roll.
    pub(crate) credited_to: u64,
}

pub(crate) struct Segments {
    /// Segment start positions, oldest first; the last is the one written.
    pub(crate) starts: Vec<u64>,
    /// Committed position of each subscribed consumer.
    pub(crate) consumers: BTreeMap<String, u64>,
    /// Each reader's live position: how far it has delivered records.
    pub(crate) reading: BTreeMap<String, Arc<AtomicU64>>,
    /// Everything before this position is evicted (a segment start).
    pub(crate) floor: u64,
    pub(crate) roll: Option<Roll>,
}

/// A test-only stand-in for the commit thread's write step: it gets the
/// segment, the offset and the bytes, may write some of them itself (a torn
/// write), and returns `Some(error)` to make the step fail.
#[cfg(test)]
pub(crate) type FaultHook =
    Box<dyn FnMut(&std::fs::File, u64, &[u8]) -> Option<std::io::Error> + Send>;

/// State shared by appenders, the commit thread and readers.
pub(crate) struct Shared {
    pub(crate) config: JournalConfig,
    pub(crate) budget: Arc<Budget>,
    pending_limit: u64,
    pub(crate) pending: Mutex<Pending>,
    /// Wakes the commit thread (first record in an empty buffer, 1 MiB, close).
    pub(crate) wake: Condvar,
    /// Readers wait here for the durable end to move.
    pub(crate) durable_lock: Mutex<()>,
    pub(crate) durable_cv: Condvar,
    pub(crate) durable_end: AtomicU64,
    pub(crate) segments: Mutex<Segments>,
    pub(crate) oldest: AtomicU64,
    min_committed: AtomicU64,
    /// This journal's segment bytes past the floor plus bytes not yet
    /// durable: its share of the budget.
    pub(crate) used_bytes: AtomicU64,
    /// A copy of `Segments::floor` for readers, which check it per record.
    pub(crate) floor: AtomicU64,
    /// Set by the commit thread while writes fail; appends are refused.
    pub(crate) failing: std::sync::atomic::AtomicBool,
    pub(crate) evicted: AtomicU64,
    pub(crate) unwritten_bytes: AtomicU64,
    pub(crate) unwritten_records: AtomicU64,
    pub(crate) bytes_on_disk: AtomicU64,
    appended: AtomicU64,
    dropped: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) commit_failures: AtomicU64,
    /// Set by the commit thread as it exits: the records it could not write.
    pub(crate) finished: Mutex<Option<u64>>,
    pub(crate) finished_cv: Condvar,
    #[cfg(test)]
    pub(crate) fault: Mutex<Option<FaultHook>>,
}

impl Shared {
    /// Publishes a new durable end and wakes waiting readers.
    pub(crate) fn publish_durable(&self, end: u64) {
        let _g = lock(&self.durable_lock);
        self.durable_end.store(end, Ordering::Release);
        self.durable_cv.notify_all();
    }

    /// The durable end once it is past `after`, or when `max_wait` is over.
    pub(crate) fn wait_durable(&self, after: u64, max_wait: Duration) -> u64 {
        let end = self.durable_end.load(Ordering::Acquire);
        if end > after || max_wait.is_zero() {
            return end;
        }
        let start = Instant::now();
        let mut g = lock(&self.durable_lock);
        loop {
            let end = self.durable_end.load(Ordering::Acquire);
            let waited = start.elapsed();
            if end > after || waited >= max_wait {
                return end;
            }
            g = self
                .durable_cv
                .wait_timeout(g, max_wait - waited)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn refresh_min_committed(&self, segs: &Segments) {
        let min = segs
            .consumers
            .values()
            .min()
            .copied()
            .unwrap_or(NO_CONSUMER);
        self.min_committed.store(min, Ordering::Relaxed);
    }

    /// Takes `n` bytes off this journal's share and the budget.
    pub(crate) fn release(&self, n: u64) {
        self.used_bytes.fetch_sub(n, Ordering::Relaxed);
        self.budget.release(n);
    }

    /// Deletes the segments every consumer has committed past, and those
    /// below the eviction floor (counting the records no reader reached).
    /// The last segment (the one being written) is never deleted, and
    /// nothing is consumed while no consumer has subscribed.
    pub(crate) fn collect_garbage(&self) {
        struct Doomed {
            start: u64,
            end: u64,
            /// Below the floor: credited already; records from `unread` on
            /// were never delivered.
            evicted: Option<u64>,
        }
        let doomed: Vec<Doomed> = {
            let mut segs = lock(&self.segments);
            let floor = segs.floor;
            let min = segs.consumers.values().min().copied();
            let unread = segs
                .reading
                .values()
                .map(|p| p.load(Ordering::SeqCst))
                .min()
                .unwrap_or(0);
            let mut doomed = Vec::new();
            while segs.starts.len() >= 2
                && (segs.starts[1] <= floor || min.is_some_and(|m| segs.starts[1] <= m))
            {
                let start = segs.starts.remove(0);
                let end = segs.starts[0];
                let evicted = (end <= floor).then_some(unread.max(start));
                doomed.push(Doomed {
                    start,
                    end,
                    evicted,
                });
            }
            if floor > 0 {
                for c in segs.consumers.values_mut() {
                    *c = (*c).max(floor);
                }
                self.refresh_min_committed(&segs);
            }
            if let Some(first) = segs.starts.first() {
                self.oldest.store(*first, Ordering::Relaxed);
            }
            doomed
        };
        if doomed.is_empty() {
            return;
        }
        for d in doomed {
            let path = segment::path_of(&self.config.dir, d.start);
            if let Some(unread) = d.evicted {
                if unread < d.end {
                    match segment::count_records(&self.config.dir, &[d.start], unread, d.end) {
                        Ok(n) => {
                            self.evicted.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot count the records of an evicted journal segment")
                        }
                    }
                }
            }
            let len = std::fs::metadata(&path).map_or(d.end - d.start, |m| m.len());
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.bytes_on_disk.fetch_sub(len, Ordering::Relaxed);
                    if d.evicted.is_none() {
                        self.release(len);
                    }
                }
                Err(e) => {
                    warn!(error = %e, path = %path.display(), "cannot delete a consumed journal segment")
                }
            }
        }
        if let Err(e) = segment::sync_dir(&self.config.dir) {
            warn!(error = %e, "cannot sync the journal folder after deleting segments");
        }
    }
}

/// The journal: open once, share by reference (or `Arc`) with every
/// appender; consumers [`subscribe`](Journal::subscribe).
pub struct Journal {
    shared: Arc<Shared>,
    /// Held while open: a second process on the same folder would
    /// interleave writes into one segment.
    _lock: std::fs::File,
    thread: Mutex<Option<JoinHandle<()>>>,
    closed: Mutex<Option<CloseOutcome>>,
}

impl Journal {
    /// Opens (creating if needed) the journal folder, cuts a torn tail off
    /// the last segment, and starts the group-commit thread.
    pub fn open(config: JournalConfig) -> Result<Journal, JournalError> {
        let budget = Budget::new(config.max_bytes);
        Self::open_in(config, budget)
    }

    /// Opens the journal counting its bytes in `budget` (shared with other
    /// journals) instead of a budget of its own `max_bytes`.
    pub fn open_in(config: JournalConfig, budget: Arc<Budget>) -> Result<Journal, JournalError> {
        let lock = lock_dir(&config.dir)?;
        let recovered = segment::recover(&config.dir)?;
        let durable_end = recovered.active.end();
        let oldest = recovered.starts.first().copied().unwrap_or(durable_end);
        info!(
            dir = %config.dir.display(),
            segments = recovered.starts.len(),
            bytes = recovered.bytes_on_disk,
            oldest,
            durable_end,
            "journal opened"
        );
        budget.add(recovered.bytes_on_disk);
        let shared = Arc::new(Shared {
            pending_limit: PENDING_LIMIT.min(budget.max()),
            budget,
            config,
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                closing: None,
                appended_end: durable_end,
                evict_due: false,
            }),
            wake: Condvar::new(),
            durable_lock: Mutex::new(()),
            durable_cv: Condvar::new(),
            durable_end: AtomicU64::new(durable_end),
            segments: Mutex::new(Segments {
                starts: recovered.starts,
                consumers: BTreeMap::new(),
                reading: BTreeMap::new(),
                floor: 0,
                roll: None,
            }),
            oldest: AtomicU64::new(oldest),
            min_committed: AtomicU64::new(NO_CONSUMER),
            used_bytes: AtomicU64::new(recovered.bytes_on_disk),
            floor: AtomicU64::new(0),
            failing: std::sync::atomic::AtomicBool::new(false),
            evicted: AtomicU64::new(0),
            unwritten_bytes: AtomicU64::new(0),
            unwritten_records: AtomicU64::new(0),
            bytes_on_disk: AtomicU64::new(recovered.bytes_on_disk),
            appended: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            finished: Mutex::new(None),
            finished_cv: Condvar::new(),
            #[cfg(test)]
            fault: Mutex::new(None),
        });
        let thread_shared = shared.clone();
        let active = recovered.active;
        let handle = std::thread::Builder::new()
            .name("vcheckd-journal".into())
            .spawn(move || commit::run(thread_shared, active))
            .map_err(JournalError::Thread)?;
        Ok(Journal {
            shared,
            _lock: lock,
            thread: Mutex::new(Some(handle)),
            closed: Mutex::new(None),
        })
    }

    /// Takes one record: frames it into the pending buffer and returns the
    /// position after it. No I/O; the record becomes durable at the next
    /// group commit ([`wait_durable`](Journal::wait_durable) waits for it).
    pub fn append(&self, payload: &[u8]) -> Result<Position, AppendError> {
        if payload.is_empty() {
            return Err(AppendError::Empty);
        }
        if payload.len() > MAX_RECORD {
            return Err(AppendError::TooLarge { len: payload.len() });
        }
        let s = &*self.shared;
        let framed = (segment::HEADER_LEN + payload.len()) as u64;
        let crc = crc32fast::hash(payload);
        let refuse = |why| {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            Err(why)
        };
        let (was_empty, crossed, end) = {
            let mut p = lock(&s.pending);
            if p.closing.is_some() {
                return Err(AppendError::Closed);
            }
            if s.failing.load(Ordering::Acquire) {
                drop(p);
                return refuse(AppendError::Unwritable);
            }
            // The pending bytes are only raised under this lock, so
            // check-then-add cannot overshoot; the budget reserves with a
            // compare-and-swap.
            let unwritten = s.unwritten_bytes.load(Ordering::Relaxed);
            if unwritten + framed > s.pending_limit || !s.budget.try_reserve(framed) {
                drop(p);
                return refuse(AppendError::Full);
            }
            s.used_bytes.fetch_add(framed, Ordering::Relaxed);
            s.unwritten_bytes.fetch_add(framed, Ordering::Relaxed);
            s.unwritten_records.fetch_add(1, Ordering::Relaxed);
            let before = p.buf.len();
            segment::frame_into(&mut p.buf, payload, crc);
            p.appended_end += framed;
            (
                before == 0,
                before < WAKE_BYTES && p.buf.len() >= WAKE_BYTES,
                p.appended_end,
            )
        };
        s.appended.fetch_add(1, Ordering::Relaxed);
        if was_empty || crossed {
            s.wake.notify_one();
        }
        Ok(Position(end))
    }

    /// The position after the last record taken (durable or not): waiting
    /// for it to be durable covers every record appended before the call,
    /// whoever appended it.
    pub fn appended_end(&self) -> Position {
        Position(lock(&self.shared.pending).appended_end)
    }

    /// Waits up to `max_wait` for the durable end to reach `pos` (from
    /// [`append`](Journal::append)); true once it has.
    pub fn wait_durable(&self, pos: Position, max_wait: Duration) -> bool {
        self.shared.wait_durable(pos.0.saturating_sub(1), max_wait) >= pos.0
    }

    /// Gives up this journal's oldest records to make room in the budget:
    /// the oldest whole segment past the floor, or, when only the segment
    /// being written remains, everything durable in it (the commit thread
    /// closes it and starts another). Read or not, the records are gone for
    /// every reader; the bytes are credited to the budget now, the files
    /// deleted by the commit thread. Returns the bytes credited: 0 when
    /// nothing durable is left to give up (records not yet written are
    /// never evicted) or a close of the segment being written is pending.
    pub fn evict_oldest(&self) -> u64 {
        let s = &*self.shared;
        let credit = {
            let mut segs = lock(&s.segments);
            if segs.roll.is_some() {
                return 0;
            }
            let first = segs.starts.first().copied().unwrap_or(0);
            let from = segs.floor.max(first);
            match segs.starts.iter().copied().find(|&b| b > from) {
                Some(b) => {
                    segs.floor = b;
                    s.floor.store(b, Ordering::SeqCst);
                    b - from
                }
                None => {
                    let durable = s.durable_end.load(Ordering::Acquire);
                    if durable <= from {
                        return 0;
                    }
                    segs.roll = Some(Roll {
                        credited_to: durable,
                    });
                    durable - from
                }
            }
        };
        s.release(credit);
        lock(&s.pending).evict_due = true;
        s.wake.notify_one();
        credit
    }

    /// Registers consumer `name` at `from`, its committed position (from
    /// its own storage; `Position::ZERO` the first time). A position before
    /// the oldest segment starts at the oldest, and the reader reports the
    /// bytes skipped; one past the durable end is an error. Subscribing an
    /// existing name again replaces its committed position.
    pub fn subscribe(&self, name: &str, from: Position) -> Result<Reader, JournalError> {
        let s = &self.shared;
        let durable_end = s.durable_end.load(Ordering::Acquire);
        if from.0 > durable_end {
            return Err(JournalError::Ahead {
                requested: from,
                durable_end: Position(durable_end),
            });
        }
        let (start, skipped, live) = {
            let mut segs = lock(&s.segments);
            let oldest = segs.starts.first().copied().unwrap_or(durable_end);
            let start = from.0.max(oldest).max(segs.floor);
            segs.consumers.insert(name.to_owned(), start);
            let live = Arc::new(AtomicU64::new(start));
            segs.reading.insert(name.to_owned(), live.clone());
            s.refresh_min_committed(&segs);
            (start, start - from.0, live)
        };
        if skipped > 0 {
            warn!(
                consumer = name,
                from = from.0,
                oldest = start,
                skipped_bytes = skipped,
                "journal consumer starts at the oldest segment: older records were deleted"
            );
        }
        Ok(Reader::new(
            s.clone(),
            name.to_owned(),
            start,
            skipped,
            live,
        ))
    }

    /// Records in `[from, to)` (clamped to what is on disk and durable),
    /// counted from headers alone: for "N records remain" at shutdown.
    /// `from` must be a record boundary, such as a consumer's position.
    pub fn records_between(&self, from: Position, to: Position) -> Result<u64, JournalError> {
        let s = &self.shared;
        let to = to.0.min(s.durable_end.load(Ordering::Acquire));
        let (starts, floor) = {
            let segs = lock(&s.segments);
            (segs.starts.clone(), segs.floor)
        };
        let from = from.0.max(starts.first().copied().unwrap_or(to)).max(floor);
        if from >= to {
            return Ok(0);
        }
        segment::count_records(&s.config.dir, &starts, from, to)
    }

    /// Stops taking appends, gives the commit thread until `deadline` to
    /// write what is pending (retrying if the disk refuses), and returns
    /// within the deadline even if a write hangs. Calling it again returns
    /// the first outcome.
    pub fn close(&self, deadline: Duration) -> CloseOutcome {
        let mut closed = lock(&self.closed);
        if let Some(outcome) = *closed {
            return outcome;
        }
        let s = &*self.shared;
        let now = Instant::now();
        let until = now.checked_add(deadline).unwrap_or(now + DROP_DEADLINE);
        lock(&s.pending).closing = Some(until);
        s.wake.notify_all();
        let lost = {
            let mut fin = lock(&s.finished);
            loop {
                if let Some(lost) = *fin {
                    break Some(lost);
                }
                let now = Instant::now();
                if now >= until {
                    break None;
                }
                fin = s
                    .finished_cv
                    .wait_timeout(fin, until - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        let lost_records = match lost {
            Some(lost) => {
                if let Some(handle) = lock(&self.thread).take() {
                    // It has already said it is done, so this is quick.
                    let _ = handle.join();
                }
                lost
            }
            None => {
                // A write is stuck in the kernel: leave the thread behind
                // (dropping the handle detaches it) rather than hang.
                warn!("journal commit thread did not finish by the close deadline");
                s.unwritten_records.load(Ordering::Relaxed)
            }
        };
        let outcome = CloseOutcome {
            durable_end: Position(s.durable_end.load(Ordering::Acquire)),
            lost_records,
        };
        if lost_records > 0 {
            warn!(
                lost_records,
                "journal closed with records that could not be written"
            );
        }
        *closed = Some(outcome);
        outcome
    }

    pub fn stats(&self) -> JournalStats {
        let s = &*self.shared;
        let min = s.min_committed.load(Ordering::Relaxed);
        JournalStats {
            appended_records: s.appended.load(Ordering::Relaxed),
            dropped_records: s.dropped.load(Ordering::Relaxed),
            evicted_records: s.evicted.load(Ordering::Relaxed),
            live_bytes: s.used_bytes.load(Ordering::Relaxed),
            bytes_on_disk: s.bytes_on_disk.load(Ordering::Relaxed),
            pending_bytes: s.unwritten_bytes.load(Ordering::Relaxed),
            durable_end: Position(s.durable_end.load(Ordering::Acquire)),
            oldest: Position(s.oldest.load(Ordering::Relaxed)),
            commits: s.commits.load(Ordering::Relaxed),
            commit_failures: s.commit_failures.load(Ordering::Relaxed),
            min_committed: (min != NO_CONSUMER).then_some(Position(min)),
        }
    }

    /// Bytes this journal counts against its budget: on disk past the
    /// eviction floor, plus not yet written. Zero: nothing to evict.
    pub fn live_bytes(&self) -> u64 {
        self.shared.used_bytes.load(Ordering::Relaxed)
    }

    /// Each subscribed consumer's committed position.
    pub fn consumers(&self) -> Vec<(String, Position)> {
        lock(&self.shared.segments)
            .consumers
            .iter()
            .map(|(n, p)| (n.clone(), Position(*p)))
            .collect()
    }
}

impl Drop for Journal {
    /// Flushes what it can within a bounded time; call
    /// [`close`](Journal::close) to choose the deadline and see the outcome.
    fn drop(&mut self) {
        self.close(DROP_DEADLINE);
    }
}

#[cfg(test)]
mod tests;
