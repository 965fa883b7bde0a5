//! Segment files: naming, record framing, the scan that recovers the last
//! segment after a crash, and the header walk that counts records.
//!
//! A segment is named by the global position of its first byte, so a
//! position maps to a file without any index: the last segment whose start
//! is not after the position holds it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::JournalError;

/// `[u32 LE payload length][u32 LE CRC-32 of the payload]`.
pub(crate) const HEADER_LEN: usize = 8;

/// The largest payload a record may carry.
pub const MAX_RECORD: usize = 64 * 1024;

const SUFFIX: &str = ".seg";

pub(crate) fn path_of(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}{SUFFIX}"))
}

/// The start position a segment file name encodes, if it is one.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends one framed record to `buf`.
pub(crate) fn frame_into(buf: &mut Vec<u8>, payload: &[u8], crc: u32) {
    // The caller has checked the length against MAX_RECORD.
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// `(payload length, crc)` from the first [`HEADER_LEN`] bytes of `bytes`.
pub(crate) fn parse_header(bytes: &[u8]) -> (usize, u32) {
    let mut len = [0u8; 4];
    let mut crc = [0u8; 4];
    len.copy_from_slice(&bytes[0..4]);
    crc.copy_from_slice(&bytes[4..8]);
    (u32::from_le_bytes(len) as usize, u32::from_le_bytes(crc))
}

/// Why a header cannot start a valid record, if it cannot. Empty payloads
/// are refused at append, so a zero length is never valid: a tail of zeros
/// (what some filesystems leave after a crash) then reads as damage rather
/// than as a run of empty records, whose CRC would match.
pub(crate) fn header_problem(len: usize) -> Option<&'static str> {
    if len == 0 {
        Some("zero-length record")
    } else if len > MAX_RECORD {
        Some("record length above the 64 KiB maximum")
    } else {
        None
    }
}

pub(crate) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io { op, path, source }
}

/// Makes a file's creation or deletion durable: without it, a crash could
/// forget a segment whose contents were fsynced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync the journal folder", dir))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The length of the longest prefix of whole, valid records.
fn valid_prefix(file: &File, path: &Path) -> Result<u64, JournalError> {
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let mut header = [0u8; HEADER_LEN];
    let mut payload = Vec::with_capacity(MAX_RECORD);
    let mut valid = 0u64;
    loop {
        let n = read_full(&mut r, &mut header).map_err(io_error("read journal segment", path))?;
        if n < HEADER_LEN {
            return Ok(valid);
        }
        let (len, crc) = parse_header(&header);
        if header_problem(len).is_some() {
            return Ok(valid);
        }
        payload.resize(len, 0);
        let n = read_full(&mut r, &mut payload).map_err(io_error("read journal segment", path))?;
        if n < len || crc32fast::hash(&payload) != crc {
            return Ok(valid);
        }
        valid += (HEADER_LEN + len) as u64;
    }
}

/// The segment the commit thread appends to.
pub(crate) struct ActiveSegment {
    pub(crate) start: u64,
    /// Bytes known durable in this file; the next write goes here.
    pub(crate) len: u64,
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl ActiveSegment {
    /// Creates an empty segment starting at `start` and makes its name durable.
    pub(crate) fn create(dir: &Path, start: u64) -> Result<Self, JournalError> {
        let path = path_of(dir, start);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_error("create journal segment", &path))?;
        sync_dir(dir)?;
        Ok(ActiveSegment {
            start,
            len: 0,
            file,
            path,
        })
    }

    pub(crate) fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// What [`recover`] found on disk.
pub(crate) struct Recovered {
    /// Start positions of the segments, oldest first; never empty.
    pub(crate) starts: Vec<u64>,
    pub(crate) bytes_on_disk: u64,
    pub(crate) active: ActiveSegment,
}

/// Opens the journal folder after a clean stop or a crash: the last segment
/// is cut after its last whole, valid record (a crash can leave a torn
/// write there, never in an earlier segment, which was fsynced before the
/// next one started).
pub(crate) fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    std::fs::create_dir_all(dir).map_err(io_error("create the journal folder", dir))?;
    let mut found: Vec<(u64, u64)> = Vec::new();
    let mut changed = false;
    let entries = std::fs::read_dir(dir).map_err(io_error("list the journal folder", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error("list the journal folder", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name.ends_with(".tmp") {
            std::fs::remove_file(&path).map_err(io_error("delete stray file", &path))?;
            info!(path = %path.display(), "deleted a stray temporary file from the journal");
            changed = true;
        } else if let Some(start) = parse_name(name) {
            let len = entry
                .metadata()
                .map_err(io_error("read journal segment", &path))?
                .len();
            found.push((start, len));
        }
    }
    found.sort_unstable();
    // Empty segments other than the last hold nothing. The last one is kept
    // even when empty: its name is what carries the position forward once
    // every older segment was consumed and deleted.
    let mut kept = Vec::with_capacity(found.len());
    let count = found.len();
    for (i, (start, len)) in found.into_iter().enumerate() {
        if len == 0 && i + 1 < count {
            let path = path_of(dir, start);
            std::fs::remove_file(&path).map_err(io_error("delete journal segment", &path))?;
            info!(path = %path.display(), "deleted an empty journal segment");
            changed = true;
        } else {
            kept.push((start, len));
        }
    }
    let active = match kept.last().copied() {
        None => {
            // A fresh journal; `create` syncs the folder.
            kept.push((0, 0));
            ActiveSegment::create(dir, 0)?
        }
        Some((start, len)) => {
            let path = path_of(dir, start);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_error("open journal segment", &path))?;
            let valid = valid_prefix(&file, &path)?;
            if valid < len {
                file.set_len(valid)
                    .and_then(|()| file.sync_all())
                    .map_err(io_error("truncate journal segment", &path))?;
                warn!(
                    path = %path.display(),
                    cut_bytes = len - valid,
                    kept_bytes = valid,
                    "cut a torn or damaged tail off the journal (records not durable at a crash)"
                );
            }
            if let Some(last) = kept.last_mut() {
                last.1 = valid;
            }
            ActiveSegment {
                start,
                len: valid,
                file,
                path,
            }
        }
    };
    for pair in kept.windows(2) {
        let ((a, a_len), (b, _)) = (pair[0], pair[1]);
        if a + a_len != b {
            warn!(
                path = %path_of(dir, a).display(),
                expected_end = b,
                actual_end = a + a_len,
                "journal segment does not end where the next one starts; readers will report it"
            );
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(Recovered {
        starts: kept.iter().map(|(s, _)| *s).collect(),
        bytes_on_disk: kept.iter().map(|(_, l)| *l).sum(),
        active,
    })
}

/// Counts the records starting in `[from, to)` by walking headers only
/// (payloads are skipped with a relative seek). `starts` are the segment
/// starts, oldest first; `from` must be a record boundary at or after the
/// first and `to` at most the durable end.
pub(crate) fn count_records(
    dir: &Path,
    starts: &[u64],
    from: u64,
    to: u64,
) -> Result<u64, JournalError> {
    let mut count = 0;
    let mut pos = from;
    let first = starts.partition_point(|s| *s <= from).saturating_sub(1);
    for (i, &start) in starts.iter().enumerate().skip(first) {
        if pos >= to {
            break;
        }
        let end = starts.get(i + 1).copied().unwrap_or(u64::MAX).min(to);
        if pos >= end {
            continue;
        }
        let path = path_of(dir, start);
        let file = File::open(&path).map_err(io_error("open journal segment", &path))?;
        let mut r = BufReader::with_capacity(64 * 1024, file);
        r.seek(io::SeekFrom::Start(pos - start))
            .map_err(io_error("read journal segment", &path))?;
        let mut header = [0u8; HEADER_LEN];
        while pos < end {
            let n =
                read_full(&mut r, &mut header).map_err(io_error("read journal segment", &path))?;
            let offset = pos - start;
            if n < HEADER_LEN {
                return Err(JournalError::Corrupt {
                    path,
                    offset,
                    reason: "segment ends inside a record header",
                });
            }
            let (len, _) = parse_header(&header);
            if let Some(reason) = header_problem(len) {
                return Err(JournalError::Corrupt {
                    path,
                    offset,
                    reason,
                });
            }
            r.seek_relative(len as i64)
                .map_err(io_error("read journal segment", &path))?;
            pos += (HEADER_LEN + len) as u64;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_segment_names_round_trip() {
        let p = path_of(Path::new("/x"), 1234);
        assert_eq!(p, Path::new("/x/00000000000000001234.seg"));
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert_eq!(parse_name(name), Some(1234));
        assert_eq!(parse_name("1234.seg"), None);
        assert_eq!(parse_name("0000000000000000123x.seg"), None);
        assert_eq!(parse_name("00000000000000001234.seg.tmp"), None);
    }

    #[test]
    fn journal_scan_stops_at_the_first_bad_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut bytes = Vec::new();
        for p in [&b"one"[..], b"two", b"three"] {
            frame_into(&mut bytes, p, crc32fast::hash(p));
        }
        let good = bytes.len() as u64;
        bytes.extend_from_slice(&[0u8; 20]);
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(valid_prefix(&file, &path).unwrap(), good);
    }
}
