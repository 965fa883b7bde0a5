//! The intake's raw lanes: received reports kept apart by what their
//! sender spent on them, one journal per lane under one shared budget.
//!
//! **Lanes.** A v2 frame goes to the lane of its effort (the leading zero
//! bits of its digest, `protocol::v2::effort`), one lane per bit up to
//! [`CAP`] (frames of more effort share the top lane); v1 reports go to a
//! lane of their own ([`Lane::V1`]).
//!
//! **Guarantees.**
//! - One bound: every lane's bytes on disk plus bytes not yet written count
//!   against `max_bytes` ([`Budget`]).
//! - When the bound is reached, a record evicts the oldest records of the
//!   lowest-ranked lane *below its own* that holds anything durable (one
//!   whole segment at a time: [`Journal::evict_oldest`]); with no lower
//!   lane holding anything durable, it is refused ([`Refused::Full`]). So
//!   a record is never evicted while a durable one of a lower rank is kept
//!   (records not yet written, a group commit's worth, are never evicted),
//!   and a record is never taken in place of one of the same or a higher
//!   rank.
//! - Eviction rank, lowest first: effort 0, then v1, then effort 1, 2, ...
//!   [`CAP`]. A v1 report is authenticated with a key every client carries
//!   (proof of nothing spent) but is never garbage that fails to open; a
//!   v2 frame of effort 0 is what a flood makes for free. Above that, any
//!   effort shown outranks v1.
//! - Reading order ([`LaneReaders::read_batch`]), first to last: v1 (no
//!   opening needed), then effort [`CAP`] down to 0: under a flood the
//!   bottom lanes, where a free flood's frames land, are read last.
//! - A refused record is refused for a reason the caller can act on
//!   (answer SERVFAIL, so that the resolver asks another name server):
//!   full, the disk failing, closing.
//! - Consumers read every lane from positions they store themselves;
//!   [`Positions`] keeps them in one small file written atomically, so a
//!   consumer that commits a lane's position only after its own output is
//!   durable loses nothing at a crash and repeats at most its last batch.
//!
//! **On disk.** `{dir}/v1/` and `{dir}/e00/` ... `{dir}/e24/`, each a
//! journal folder (`crate::journal`'s format); `{dir}/{consumer}.positions`
//! holds one line per lane, `{lane name} {position}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::journal::{
    AppendError, Budget, CloseOutcome, Journal, JournalConfig, JournalError, JournalStats,
    Position, Reader,
};

/// The top lane: frames of this effort or more share it.
pub const CAP: u8 = 24;

/// Lanes in all: v1 and one per effort bit up to [`CAP`].
pub const COUNT: usize = CAP as usize + 2;

/// A raw lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Protocol v1 reports (decoded and authenticated on the answer path).
    V1,
    /// Protocol v2 frames of this effort (capped at [`CAP`]).
    Effort(u8),
}

impl Lane {
    /// The lane of a v2 frame of `effort` leading zero bits.
    pub fn for_effort(effort: u8) -> Lane {
        Lane::Effort(effort.min(CAP))
    }

    /// Position in per-lane arrays: v1 first, then effort 0 up.
    pub fn index(self) -> usize {
        match self {
            Lane::V1 => 0,
            Lane::Effort(e) => 1 + usize::from(e.min(CAP)),
        }
    }

    pub fn from_index(i: usize) -> Option<Lane> {
        match i {
            0 => Some(Lane::V1),
            i if i < COUNT => Some(Lane::Effort((i - 1) as u8)),
            _ => None,
        }
    }

    /// Every lane, in index order.
    pub fn all() -> impl Iterator<Item = Lane> {
        (0..COUNT).filter_map(Lane::from_index)
    }

    /// Eviction rank: lower ranks are evicted first.
    fn rank(self) -> usize {
        match self {
            Lane::Effort(0) => 0,
            Lane::V1 => 1,
            Lane::Effort(e) => 1 + usize::from(e.min(CAP)),
        }
    }

    /// Folder name, and the lane's name in position files.
    pub fn name(self) -> String {
        match self {
            Lane::V1 => "v1".to_string(),
            Lane::Effort(e) => format!("e{e:02}"),
        }
    }

    /// The lane's label in metrics: `v1`, or the effort in bits.
    pub fn label(self) -> String {
        match self {
            Lane::V1 => "v1".to_string(),
            Lane::Effort(e) => e.to_string(),
        }
    }

    fn parse(name: &str) -> Option<Lane> {
        if name == "v1" {
            return Some(Lane::V1);
        }
        let e: u8 = name.strip_prefix('e')?.parse().ok()?;
        (e <= CAP).then_some(Lane::Effort(e))
    }
}

/// Why a record was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refused {
    /// The budget is full and no lower lane holds anything to evict.
    #[error("journal full: no lower-effort records to evict")]
    Full,
    /// The lane's disk refuses writes.
    #[error("journal disk not writable")]
    Disk,
    #[error("journal closing")]
    Closing,
    /// Empty or above the record size limit (a bug upstream).
    #[error("record cannot be journaled")]
    Record,
}

impl Refused {
    pub const REASONS: [&'static str; 4] = ["full", "disk", "closing", "record"];

    pub fn index(self) -> usize {
        match self {
            Refused::Full => 0,
            Refused::Disk => 1,
            Refused::Closing => 2,
            Refused::Record => 3,
        }
    }
}

/// Evictions tried for one record before it is refused: each gives up a
/// whole segment, so one is nearly always enough.
const MAX_EVICTIONS: usize = 4;

/// The raw lanes.
pub struct Lanes {
    dir: PathBuf,
    budget: Arc<Budget>,
    /// By [`Lane::index`].
    journals: Vec<Journal>,
    /// Lane indexes, lowest eviction rank first.
    by_rank: Vec<usize>,
}

impl Lanes {
    /// Opens (creating) every lane's journal under `dir`. Segments are a
    /// small part of the bound (`max_bytes` / 64, 4 KiB to 16 MiB), since
    /// eviction gives up one whole segment at a time.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        commit_interval: Duration,
    ) -> Result<Lanes, JournalError> {
        let budget = Budget::new(max_bytes);
        let segment_bytes = (max_bytes / 64).clamp(4096, 16 << 20);
        let journals = Lane::all()
            .map(|lane| {
                Journal::open_in(
                    JournalConfig {
                        dir: dir.join(lane.name()),
                        max_bytes,
                        segment_bytes,
                        commit_interval,
                    },
                    budget.clone(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_rank: Vec<usize> = (0..COUNT).collect();
        by_rank.sort_by_key(|&i| Lane::from_index(i).map_or(usize::MAX, Lane::rank));
        Ok(Lanes {
            dir: dir.to_path_buf(),
            budget,
            journals,
            by_rank,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub fn journal(&self, lane: Lane) -> &Journal {
        &self.journals[lane.index()]
    }

    /// Takes `record` into `lane`, evicting lower lanes' oldest records if
    /// the budget is full. Never blocks on the disk.
    pub fn append(&self, lane: Lane, record: &[u8]) -> Result<Position, Refused> {
        let journal = self.journal(lane);
        for _ in 0..=MAX_EVICTIONS {
            match journal.append(record) {
                Ok(end) => return Ok(end),
                Err(AppendError::Full) => {
                    // Full for want of budget (not for a lane's unwritten
                    // backlog, which eviction would not help): evict.
                    let framed = record.len() as u64 + 8;
                    if self.budget.used() + framed <= self.budget.max() || !self.evict_below(lane) {
                        return Err(Refused::Full);
                    }
                }
                Err(AppendError::Unwritable) => return Err(Refused::Disk),
                Err(AppendError::Closed) => return Err(Refused::Closing),
                Err(AppendError::Empty | AppendError::TooLarge { .. }) => {
                    return Err(Refused::Record)
                }
            }
        }
        Err(Refused::Full)
    }

    /// Evicts from the lowest lane ranked below `lane` that has anything
    /// durable to give up; false if none has. A lower lane whose records
    /// are all still being written (or whose segment's close is pending)
    /// is passed over for the next one up: refusing the record instead
    /// would drop it while every lane between kept theirs. (Measured with
    /// benches/flood/run.sh: at 20,000 q/s of garbage the bottom lane,
    /// emptied by earlier evictions, had only unwritten records most of the
    /// time, and 2,415 of 24,000 real reports of effort 16 were refused
    /// while lanes 1-15 held the flood's frames.)
    fn evict_below(&self, lane: Lane) -> bool {
        let rank = lane.rank();
        self.by_rank
            .iter()
            .copied()
            .take_while(|&i| Lane::from_index(i).is_some_and(|l| l.rank() < rank))
            .filter(|&i| self.journals[i].live_bytes() > 0)
            .any(|i| self.journals[i].evict_oldest() > 0)
    }

    /// Subscribes `consumer` to every lane at the positions it stored
    /// (none: from each lane's start).
    pub fn subscribe(&self, consumer: &str) -> Result<LaneReaders, LanesError> {
        let positions = Positions::load(&self.dir, consumer)?;
        let readers = Lane::all()
            .map(|lane| {
                let from = positions.get(lane);
                let journal = self.journal(lane);
                match journal.subscribe(consumer, from) {
                    // A lane folder made anew: its positions start again.
                    Err(JournalError::Ahead { .. }) => journal.subscribe(consumer, Position::ZERO),
                    other => other,
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LaneReaders {
            readers,
            positions,
            max_bytes: self.budget.max(),
        })
    }

    /// Stops taking records and writes what is pending, every lane within
    /// `deadline` (in parallel: each has its own commit thread).
    pub fn close(&self, deadline: Duration) -> Vec<CloseOutcome> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .journals
                .iter()
                .map(|j| scope.spawn(move || j.close(deadline)))
                .collect();
            handles
                .into_iter()
                .zip(&self.journals)
                .map(|(h, j)| h.join().unwrap_or_else(|_| j.close(Duration::ZERO)))
                .collect()
        })
    }

    /// Each lane's journal statistics, by [`Lane::index`].
    pub fn stats(&self) -> Vec<JournalStats> {
        self.journals.iter().map(Journal::stats).collect()
    }

    /// Records in every lane past `consumer`'s committed positions (all of
    /// them for a consumer that never subscribed).
    pub fn unread_records(&self, consumer: &str) -> Result<u64, JournalError> {
        let mut n = 0;
        for j in &self.journals {
            let from = j
                .consumers()
                .into_iter()
                .find(|(c, _)| c == consumer)
                .map_or(Position::ZERO, |(_, p)| p);
            n += j.records_between(from, j.stats().durable_end)?;
        }
        Ok(n)
    }

    /// Records evicted from every lane since open.
    pub fn evicted_records(&self) -> u64 {
        self.journals
            .iter()
            .map(|j| j.stats().evicted_records)
            .sum()
    }
}

#[derive(Debug, Error)]
pub enum LanesError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot {op} {}", .path.display())]
    Positions {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A consumer's committed position in each lane: one small text file,
/// replaced atomically (written, fsynced, renamed, folder fsynced).
#[derive(Debug, Clone)]
pub struct Positions {
    path: PathBuf,
    at: [Position; COUNT],
}

impl Positions {
    fn load(dir: &Path, consumer: &str) -> Result<Positions, LanesError> {
        let path = dir.join(format!("{consumer}.positions"));
        let mut at = [Position::ZERO; COUNT];
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let mut parts = line.split_whitespace();
                    if let (Some(lane), Some(pos), None) = (
                        parts.next().and_then(Lane::parse),
                        parts.next().and_then(|p| p.parse().ok()),
                        parts.next(),
                    ) {
                        at[lane.index()] = Position(pos);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LanesError::Positions {
                    op: "read",
                    path,
                    source,
                })
            }
        }
        Ok(Positions { path, at })
    }

    pub fn get(&self, lane: Lane) -> Position {
        self.at[lane.index()]
    }

    fn store(&self) -> Result<(), LanesError> {
        use std::io::Write;
        let err = |op| {
            let path = self.path.clone();
            move |source| LanesError::Positions { op, path, source }
        };
        let tmp = self.path.with_extension("positions.tmp");
        let mut text = String::new();
        for lane in Lane::all() {
            text.push_str(&format!("{} {}\n", lane.name(), self.get(lane)));
        }
        let mut f = std::fs::File::create(&tmp).map_err(err("write"))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(err("write"))?;
        std::fs::rename(&tmp, &self.path).map_err(err("replace"))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err("sync the folder of"))?;
        }
        Ok(())
    }
}

/// One consumer's readers of every lane.
pub struct LaneReaders {
    readers: Vec<Reader>,
    positions: Positions,
    max_bytes: u64,
}

impl LaneReaders {
    /// Reading order: v1, then effort CAP down to 0.
    fn order() -> impl Iterator<Item = Lane> {
        std::iter::once(Lane::V1).chain((0..=CAP).rev().map(Lane::Effort))
    }

    /// Reads up to `max` records from the first lane in reading order that
    /// has any, calling `f(payload)` for each; returns the lane and the
    /// position after the records, or `None` when every lane is read to
    /// its durable end. Does not wait.
    pub fn read_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<Option<(Lane, Position)>, JournalError> {
        for lane in Self::order() {
            let reader = &mut self.readers[lane.index()];
            if !reader.has_unread() {
                continue;
            }
            let before = reader.position();
            let next = reader.read_batch(max, Duration::ZERO, |_, p| f(p))?;
            if next != before {
                return Ok(Some((lane, next)));
            }
        }
        Ok(None)
    }

    /// Whether any lane has records past this consumer's position.
    pub fn has_unread(&self) -> bool {
        self.readers.iter().any(Reader::has_unread)
    }

    /// Unread bytes of every lane as a share of the budget.
    pub fn backlog(&self) -> f64 {
        self.readers.iter().map(Reader::backlog).sum::<f64>()
    }

    /// Stores `pos` as this consumer's position in `lane` (durably), then
    /// lets the lane delete what every consumer is past. Call only once
    /// the consumer's own output for the records before `pos` is durable.
    pub fn commit(&mut self, lane: Lane, pos: Position) -> Result<(), LanesError> {
        self.positions.at[lane.index()] = pos;
        self.positions.store()?;
        self.readers[lane.index()].commit(pos)?;
        Ok(())
    }

    pub fn position(&self, lane: Lane) -> Position {
        self.readers[lane.index()].position()
    }

    /// The budget's bound, for backlog figures.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests;
