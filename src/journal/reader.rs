//! A consumer's cursor: reads durable records in order, across segments.
//!
//! Reads go through a buffer filled with positioned reads (`pread`) that
//! never reach past the durable end, so bytes a failed write left for a
//! moment (before the commit thread cut them) are never seen.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::segment::{self, HEADER_LEN, MAX_RECORD};
use super::{lock, JournalError, Position, Shared};

const BUFFER_BYTES: usize = 256 * 1024;

/// The open segment a reader is in.
struct Cursor {
    start: u64,
    /// Start of the next segment, once one exists.
    end: Option<u64>,
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Segment offset of `buf[0]`.
    buf_offset: u64,
}

impl Cursor {
    /// `len` bytes at segment offset `offset`, reading ahead up to `limit`.
    fn bytes(&mut self, offset: u64, len: usize, limit: u64) -> Result<&[u8], JournalError> {
        let have = offset >= self.buf_offset
            && offset + len as u64 <= self.buf_offset + self.buf.len() as u64;
        if !have {
            let want = (limit.saturating_sub(offset) as usize).min(BUFFER_BYTES.max(len));
            self.buf.resize(want, 0);
            let mut got = 0;
            while got < want {
                match self.file.read_at(&mut self.buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        self.buf.clear();
                        return Err(JournalError::Io {
                            op: "read journal segment",
                            path: self.path.clone(),
                            source,
                        });
                    }
                }
            }
            self.buf.truncate(got);
            self.buf_offset = offset;
            if got < len {
                return Err(JournalError::Corrupt {
                    path: self.path.clone(),
                    offset,
                    reason: "segment ends before its durable end",
                });
            }
        }
        let at = (offset - self.buf_offset) as usize;
        Ok(&self.buf[at..at + len])
    }
}

/// One consumer's view of the journal, from [`Journal::subscribe`](super::Journal::subscribe).
pub struct Reader {
    shared: Arc<Shared>,
    name: String,
    next: u64,
    skipped: u64,
    cursor: Option<Cursor>,
    /// `next`, published for eviction to count what no reader reached.
    live: Arc<AtomicU64>,
}

impl Reader {
    pub(crate) fn new(
        shared: Arc<Shared>,
        name: String,
        next: u64,
        skipped: u64,
        live: Arc<AtomicU64>,
    ) -> Self {
        Reader {
            shared,
            name,
            next,
            skipped,
            cursor: None,
            live,
        }
    }

    /// Whether durable records wait past this reader's position.
    pub fn has_unread(&self) -> bool {
        self.shared.durable_end.load(Ordering::Acquire)
            > self.next.max(self.shared.floor.load(Ordering::SeqCst))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The position of the next record to read.
    pub fn position(&self) -> Position {
        Position(self.next)
    }

    /// How far behind the journal's durable end this consumer is, as a
    /// fraction of the journal's bound (`journal_max_bytes`): near 1, the
    /// journal is about to refuse new records for want of this consumer.
    pub fn backlog(&self) -> f64 {
        let end = self
            .shared
            .durable_end
            .load(std::sync::atomic::Ordering::Acquire);
        let from = self.next.max(self.shared.floor.load(Ordering::SeqCst));
        end.saturating_sub(from) as f64 / self.shared.budget.max().max(1) as f64
    }

    /// Bytes between the requested start and the oldest segment, which
    /// were deleted before this consumer subscribed (0 normally).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Calls `f(position, payload)` for up to `max_records` durable records,
    /// in order, waiting up to `max_wait` for the first if none is durable
    /// yet. Returns the position after the last record delivered: where the
    /// next call starts, and what to store and [`commit`](Reader::commit)
    /// once the records are processed. A damaged record is an error naming
    /// its file and offset; the reader stays before it. Records evicted
    /// (below the floor) are skipped, even in the middle of a batch.
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_wait: Duration,
        mut f: impl FnMut(Position, &[u8]),
    ) -> Result<Position, JournalError> {
        if max_records == 0 {
            return Ok(Position(self.next));
        }
        let durable = self.shared.wait_durable(self.next, max_wait);
        let mut delivered = 0;
        while delivered < max_records && self.next < durable {
            let floor = self.shared.floor.load(Ordering::SeqCst);
            if self.next < floor {
                self.next = floor;
                self.live.store(floor, Ordering::SeqCst);
                continue;
            }
            self.seek_segment()?;
            let Some(cursor) = self.cursor.as_mut() else {
                break;
            };
            let limit = cursor.end.unwrap_or(durable).min(durable) - cursor.start;
            let offset = self.next - cursor.start;
            let (len, crc) = segment::parse_header(cursor.bytes(offset, HEADER_LEN, limit)?);
            let bad = segment::header_problem(len).or_else(|| {
                (offset + (HEADER_LEN + len) as u64 > limit)
                    .then_some("record runs past the segment's durable end")
            });
            if let Some(reason) = bad {
                return Err(JournalError::Corrupt {
                    path: cursor.path.clone(),
                    offset,
                    reason,
                });
            }
            let record = cursor.bytes(offset, HEADER_LEN + len, limit)?;
            let payload = &record[HEADER_LEN..];
            if crc32fast::hash(payload) != crc {
                return Err(JournalError::Corrupt {
                    path: cursor.path.clone(),
                    offset,
                    reason: "CRC mismatch",
                });
            }
            f(Position(self.next), payload);
            self.next += (HEADER_LEN + len) as u64;
            self.live.store(self.next, Ordering::SeqCst);
            delivered += 1;
        }
        Ok(Position(self.next))
    }

    /// Makes `cursor` the segment holding `next`, opening it if needed.
    fn seek_segment(&mut self) -> Result<(), JournalError> {
        let next = self.next;
        if let Some(c) = self.cursor.as_mut() {
            if c.end.is_none() {
                // A roll may have happened since the cursor was opened.
                let segs = lock(&self.shared.segments);
                let i = segs.starts.partition_point(|s| *s <= c.start);
                c.end = segs.starts.get(i).copied();
            }
            if next >= c.start && c.end.is_none_or(|e| next < e) {
                return Ok(());
            }
        }
        let (start, end) = {
            let segs = lock(&self.shared.segments);
            let i = segs.starts.partition_point(|s| *s <= next);
            if i == 0 {
                return Err(JournalError::Deleted {
                    requested: Position(next),
                    oldest: Position(segs.starts.first().copied().unwrap_or(next)),
                });
            }
            (segs.starts[i - 1], segs.starts.get(i).copied())
        };
        let path = segment::path_of(&self.shared.config.dir, start);
        let file = File::open(&path).map_err(segment::io_error("open journal segment", &path))?;
        self.cursor = Some(Cursor {
            start,
            end,
            file,
            path,
            buf: Vec::with_capacity(BUFFER_BYTES.max(MAX_RECORD + HEADER_LEN)),
            buf_offset: 0,
        });
        Ok(())
    }

    /// Records that this consumer has durably processed everything before
    /// `pos`; segments every consumer is past are then deleted. A position
    /// behind the last committed one is ignored (positions only move on).
    pub fn commit(&self, pos: Position) -> Result<(), JournalError> {
        let s = &*self.shared;
        let durable_end = s.durable_end.load(Ordering::Acquire);
        if pos.0 > durable_end {
            return Err(JournalError::Ahead {
                requested: pos,
                durable_end: Position(durable_end),
            });
        }
        {
            let mut segs = lock(&s.segments);
            let entry = segs.consumers.entry(self.name.clone()).or_insert(pos.0);
            *entry = (*entry).max(pos.0);
            s.refresh_min_committed(&segs);
        }
        s.collect_garbage();
        Ok(())
    }
}
