//! The forwarding protocol: a secondary name server hands the raw records
//! of its journal to the primary over TCP, in batches the primary
//! authenticates and acknowledges.
//!
//! This module is the wire and the cryptography only; it imports nothing
//! of the crate. What a record is, where batches come from and where they
//! go is `crate::forwarding`'s business.
//!
//! **Guarantees.**
//! - Both ends prove they hold the shared 32-byte key of the secondary's
//!   name before any record moves, by HMAC-SHA256 over fresh nonces of
//!   both: a party without the key is refused at the handshake, and a
//!   primary without it cannot make a secondary drop its backlog (its
//!   acknowledgement would not verify).
//! - Every batch and every acknowledgement carries a tag under a session
//!   key derived from both nonces, over its sequence number and its bytes:
//!   a tampered batch, a batch replayed from another session (another
//!   nonce) or out of sequence in this one is refused
//!   ([`ForwardError::BadTag`], [`ForwardError::Sequence`]).
//! - The records themselves are opaque here; a sealed report stays sealed.
//!   Nothing is encrypted: the records are either sealed already (v2) or
//!   the v1 protocol's, which every client's key opens anyway.
//! - An acknowledgement of sequence `n` means the primary holds batch `n`
//!   durably; a sender that gets no acknowledgement sends the batch again
//!   on a new connection (the primary keeps each report once).
//!
//! **Wire format.** Every message is `[u32 BE length][u8 type][body]`,
//! the length counting the type byte and the body, at most
//! [`MAX_MESSAGE`]. Integers are big-endian.
//!
//! | type | from | body |
//! |---|---|---|
//! | 1 hello | secondary | `b"vcheckd-forward"`, version `1`, client nonce (32), name length (u8), name |
//! | 2 challenge | primary | server nonce (32) |
//! | 3 proof | secondary | tag(`"proof"`) |
//! | 4 welcome | primary | tag(`"welcome"`) |
//! | 5 batch | secondary | sequence (u64, from 1), count (u32), each record as `[u32 length][bytes]`, then tag(`"batch"`, sequence, everything before the tag) |
//! | 6 ack | primary | sequence (u64), tag(`"ack"`, sequence) |
//! | 7 refuse | primary | reason ([`Refusal`] code, u8) |
//!
//! The session key is `HMAC-SHA256(key, "vcheckd forward v1" || client
//! nonce || server nonce || name length || name)`; tag(`label`, ...) is
//! HMAC-SHA256 under the session key over the label's bytes, a zero byte,
//! then the rest. A batch of no records is a keep-alive: an idle secondary
//! sends one now and then, so both ends notice a dead connection.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Protocol version carried in the hello.
pub const VERSION: u8 = 1;
const MAGIC: &[u8] = b"vcheckd-forward";
/// Largest message, type byte included.
pub const MAX_MESSAGE: usize = 16 << 20;
/// Largest record in a batch.
pub const MAX_RECORD: usize = 64 << 10;
/// Bytes of the shared key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 32;

const HELLO: u8 = 1;
const CHALLENGE: u8 = 2;
const PROOF: u8 = 3;
const WELCOME: u8 = 4;
const BATCH: u8 = 5;
const ACK: u8 = 6;
const REFUSE: u8 = 7;

/// The secret a secondary and the primary share: 32 random bytes in a
/// file readable by its owner only (`vcheckd keygen --forward FILE`, or
/// `head -c 32 /dev/urandom` under `umask 077`).
#[derive(Clone)]
pub struct ForwardKey([u8; KEY_LEN]);

impl std::fmt::Debug for ForwardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardKey(..)")
    }
}

impl ForwardKey {
    pub fn generate() -> Result<ForwardKey, ForwardError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).map_err(|e| ForwardError::Random(e.to_string()))?;
        Ok(ForwardKey(k))
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> ForwardKey {
        ForwardKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Reads a key file: exactly 32 bytes, which group and others may not
    /// read (the key lets anyone feed the primary's database).
    pub fn load(path: &Path) -> Result<ForwardKey, KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let key: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyFileError::Length {
                path: path.to_path_buf(),
                len: b.len(),
            })?;
        Ok(ForwardKey(key))
    }
}

#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("cannot read forwarding key file {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("forwarding key file {} has mode {mode:o}: others may read it; run `chmod 600 {}`", .path.display(), .path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("forwarding key file {} holds {len} bytes, not 32: make one with `vcheckd keygen --forward FILE`", .path.display())]
    Length { path: PathBuf, len: usize },
}

/// Why the primary refused a connection or a batch: sent to the
/// secondary, and counted by the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    /// No key is configured for the name the secondary gave.
    #[error("unknown server name")]
    UnknownServer,
    /// The proof of the key did not verify: a wrong or forged credential.
    #[error("wrong credential")]
    BadProof,
    /// A batch whose tag or sequence did not verify: tampered or replayed.
    #[error("batch failed authentication")]
    BadBatch,
    /// A message that does not parse, or of an unknown version.
    #[error("protocol error")]
    Protocol,
    /// Too many connections already.
    #[error("too many connections")]
    Busy,
    /// The primary's journal takes no more now (full, its disk failing,
    /// closing): try again later.
    #[error("journal cannot take the batch now")]
    Unavailable,
}

impl Refusal {
    /// Metric labels, in code order.
    pub const REASONS: [&'static str; 6] = [
        "unknown_server",
        "bad_proof",
        "bad_batch",
        "protocol",
        "busy",
        "unavailable",
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Refusal {
        match c {
            0 => Refusal::UnknownServer,
            1 => Refusal::BadProof,
            2 => Refusal::BadBatch,
            4 => Refusal::Busy,
            5 => Refusal::Unavailable,
            _ => Refusal::Protocol,
        }
    }
}

#[derive(Debug, Error)]
pub enum ForwardError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A tag that does not verify: the other end lacks the key, or the
    /// message was changed on the way.
    #[error("authentication failed: {0}")]
    BadTag(&'static str),
    #[error("batch sequence {got}, expected {expected}")]
    Sequence { got: u64, expected: u64 },
    #[error("the primary refused: {0}")]
    Refused(Refusal),
    #[error("no randomness: {0}")]
    Random(String),
}

/// Why a secondary's attempt failed, for its failure counter by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No TCP connection to the primary.
    Connect,
    /// The primary refused the handshake (unknown name, wrong key).
    Refused,
    /// The primary could not take a batch now (its journal, its
    /// connection limit): the batch is sent again later.
    Unavailable,
    /// The primary's welcome or acknowledgement did not verify.
    Auth,
    /// The connection failed or timed out mid-way.
    Connection,
    /// A message that does not parse.
    Protocol,
}

impl Failure {
    /// Metric labels, in index order.
    pub const REASONS: [&'static str; 6] = [
        "connect",
        "refused",
        "unavailable",
        "auth",
        "connection",
        "protocol",
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

impl ForwardError {
    /// What this error means to the secondary that got it.
    pub fn failure(&self) -> Failure {
        match self {
            ForwardError::Io(_) | ForwardError::Random(_) => Failure::Connection,
            ForwardError::Malformed(_) | ForwardError::Sequence { .. } => Failure::Protocol,
            ForwardError::BadTag(_) => Failure::Auth,
            ForwardError::Refused(Refusal::Busy | Refusal::Unavailable) => Failure::Unavailable,
            ForwardError::Refused(_) => Failure::Refused,
        }
    }

    /// The refusal the primary sends back for this error, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ForwardError::Malformed(_) => Some(Refusal::Protocol),
            ForwardError::BadTag(_) | ForwardError::Sequence { .. } => Some(Refusal::BadBatch),
            ForwardError::Refused(r) => Some(*r),
            _ => None,
        }
    }
}

fn read_message<S: Read>(s: &mut S) -> Result<(u8, Vec<u8>), ForwardError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_MESSAGE {
        return Err(ForwardError::Malformed("message length"));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    let kind = body.remove(0);
    Ok((kind, body))
}

fn write_message<S: Write>(s: &mut S, kind: u8, body: &[u8]) -> Result<(), ForwardError> {
    let len = u32::try_from(body.len() + 1)
        .ok()
        .filter(|&l| l as usize <= MAX_MESSAGE)
        .ok_or(ForwardError::Malformed("message too large"))?;
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    s.write_all(&out)?;
    s.flush()?;
    Ok(())
}

/// A message of `want`, or the refusal the other end sent instead.
fn expect<S: Read>(s: &mut S, want: u8) -> Result<Vec<u8>, ForwardError> {
    match read_message(s)? {
        (k, body) if k == want => Ok(body),
        (REFUSE, body) => Err(ForwardError::Refused(Refusal::from_code(
            body.first().copied().unwrap_or(u8::MAX),
        ))),
        _ => Err(ForwardError::Malformed("unexpected message type")),
    }
}

fn nonce() -> Result<[u8; NONCE_LEN], ForwardError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| ForwardError::Random(e.to_string()))?;
    Ok(n)
}

/// The per-connection key and the tags made with it.
struct Session(HmacSha256);

impl Session {
    fn new(key: &ForwardKey, client: &[u8], server: &[u8], name: &[u8]) -> Session {
        let mut derive = mac(&key.0);
        derive.update(b"vcheckd forward v1");
        derive.update(client);
        derive.update(server);
        derive.update(&[name.len() as u8]);
        derive.update(name);
        Session(mac(&derive.finalize().into_bytes()))
    }

    fn tag(&self, label: &str, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut m = self.0.clone();
        m.update(label.as_bytes());
        m.update(&[0]);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Constant-time check of `tag`.
    fn verify(&self, label: &str, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut m = self.0.clone();
        m.update(label.as_bytes());
        m.update(&[0]);
        for p in parts {
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

/// The secondary's end of a connection.
pub(crate) struct Sender<S> {
    stream: S,
    session: Session,
    next_seq: u64,
}

impl<S: Read + Write> Sender<S> {
    /// Runs the handshake as the server `name` holding `key`; fails if the
    /// primary refuses or cannot prove it holds the key too.
    pub fn handshake(mut stream: S, key: &ForwardKey, name: &str) -> Result<Self, ForwardError> {
        let name = name.as_bytes();
        let name_len = u8::try_from(name.len()).map_err(|_| ForwardError::Malformed("name"))?;
        let client = nonce()?;
        let mut hello = Vec::with_capacity(MAGIC.len() + 2 + NONCE_LEN + name.len());
        hello.extend_from_slice(MAGIC);
        hello.push(VERSION);
        hello.extend_from_slice(&client);
        hello.push(name_len);
        hello.extend_from_slice(name);
        write_message(&mut stream, HELLO, &hello)?;
        let server = expect(&mut stream, CHALLENGE)?;
        if server.len() != NONCE_LEN {
            return Err(ForwardError::Malformed("challenge"));
        }
        let session = Session::new(key, &client, &server, name);
        write_message(&mut stream, PROOF, &session.tag("proof", &[]))?;
        let welcome = expect(&mut stream, WELCOME)?;
        if !session.verify("welcome", &[], &welcome) {
            return Err(ForwardError::BadTag("the primary's welcome"));
        }
        Ok(Sender {
            stream,
            session,
            next_seq: 1,
        })
    }

    /// Sends one batch and waits for its acknowledgement: once this
    /// returns `Ok`, the primary holds every record durably.
    pub fn send<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), ForwardError> {
        let seq = self.next_seq;
        let count =
            u32::try_from(records.len()).map_err(|_| ForwardError::Malformed("batch size"))?;
        let size: usize = records.iter().map(|r| 4 + r.as_ref().len()).sum();
        let mut body = Vec::with_capacity(12 + size + TAG_LEN);
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend_from_slice(&count.to_be_bytes());
        for r in records {
            let r = r.as_ref();
            if r.is_empty() || r.len() > MAX_RECORD {
                return Err(ForwardError::Malformed("record size"));
            }
            body.extend_from_slice(&(r.len() as u32).to_be_bytes());
            body.extend_from_slice(r);
        }
        let tag = self.session.tag("batch", &[&seq.to_be_bytes(), &body]);
        body.extend_from_slice(&tag);
        write_message(&mut self.stream, BATCH, &body)?;
        let ack = expect(&mut self.stream, ACK)?;
        let (got, tag) = ack
            .split_first_chunk::<8>()
            .ok_or(ForwardError::Malformed("ack"))?;
        if !self.session.verify("ack", &[got], tag) {
            return Err(ForwardError::BadTag("the primary's acknowledgement"));
        }
        let got = u64::from_be_bytes(*got);
        if got != seq {
            return Err(ForwardError::Sequence { got, expected: seq });
        }
        self.next_seq += 1;
        Ok(())
    }
}

/// The primary's end of a connection.
pub(crate) struct Receiver<S> {
    stream: S,
    session: Session,
    name: String,
    next_seq: u64,
}

/// One authenticated batch.
#[derive(Debug)]
pub(crate) struct Batch {
    pub seq: u64,
    pub records: Vec<Vec<u8>>,
}

impl<S: Read + Write> Receiver<S> {
    /// Runs the handshake; `key_of` gives the key configured for a server
    /// name. A refused handshake is answered with its reason (so the
    /// secondary can log it) and returned as [`ForwardError::Refused`].
    pub fn handshake(
        mut stream: S,
        key_of: impl Fn(&str) -> Option<ForwardKey>,
    ) -> Result<Self, ForwardError> {
        let hello = match expect(&mut stream, HELLO) {
            Ok(h) => h,
            Err(e) => return Err(refuse(&mut stream, e)),
        };
        let parsed = (|| {
            let rest = hello.strip_prefix(MAGIC)?;
            let (&version, rest) = rest.split_first()?;
            let (client, rest) = rest.split_first_chunk::<NONCE_LEN>()?;
            let (&len, name) = rest.split_first()?;
            (version == VERSION && name.len() == usize::from(len))
                .then(|| {
                    std::str::from_utf8(name)
                        .ok()
                        .map(|n| (*client, n.to_owned()))
                })
                .flatten()
        })();
        let Some((client, name)) = parsed else {
            return Err(refuse(
                &mut stream,
                ForwardError::Refused(Refusal::Protocol),
            ));
        };
        let Some(key) = key_of(&name) else {
            return Err(refuse(
                &mut stream,
                ForwardError::Refused(Refusal::UnknownServer),
            ));
        };
        let server = nonce()?;
        write_message(&mut stream, CHALLENGE, &server)?;
        let session = Session::new(&key, &client, &server, name.as_bytes());
        let proof = match expect(&mut stream, PROOF) {
            Ok(p) => p,
            Err(e) => return Err(refuse(&mut stream, e)),
        };
        if !session.verify("proof", &[], &proof) {
            return Err(refuse(
                &mut stream,
                ForwardError::Refused(Refusal::BadProof),
            ));
        }
        write_message(&mut stream, WELCOME, &session.tag("welcome", &[]))?;
        Ok(Receiver {
            stream,
            session,
            name,
            next_seq: 1,
        })
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The authenticated server name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next batch, verified; `None` when the secondary closed the
    /// connection between batches. A batch that fails verification is
    /// refused (the secondary is told why) and returned as an error.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, ForwardError> {
        let body = match expect(&mut self.stream, BATCH) {
            Ok(b) => b,
            Err(ForwardError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None)
            }
            Err(e) => return Err(refuse(&mut self.stream, e)),
        };
        match self.parse_batch(&body) {
            Ok(b) => {
                self.next_seq += 1;
                Ok(Some(b))
            }
            Err(e) => Err(refuse(&mut self.stream, e)),
        }
    }

    fn parse_batch(&self, body: &[u8]) -> Result<Batch, ForwardError> {
        let signed_len = body
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(ForwardError::Malformed("batch"))?;
        let (signed, tag) = body.split_at(signed_len);
        let (seq, rest) = signed
            .split_first_chunk::<8>()
            .ok_or(ForwardError::Malformed("batch"))?;
        if !self.session.verify("batch", &[seq, signed], tag) {
            return Err(ForwardError::BadTag("batch"));
        }
        let seq = u64::from_be_bytes(*seq);
        if seq != self.next_seq {
            return Err(ForwardError::Sequence {
                got: seq,
                expected: self.next_seq,
            });
        }
        let (count, mut rest) = rest
            .split_first_chunk::<4>()
            .ok_or(ForwardError::Malformed("batch"))?;
        let count = u32::from_be_bytes(*count) as usize;
        let mut records = Vec::with_capacity(count.min(rest.len() / 5));
        for _ in 0..count {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or(ForwardError::Malformed("record length"))?;
            let len = u32::from_be_bytes(*len) as usize;
            if len == 0 || len > MAX_RECORD {
                return Err(ForwardError::Malformed("record size"));
            }
            let (record, tail) = tail
                .split_at_checked(len)
                .ok_or(ForwardError::Malformed("record"))?;
            records.push(record.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(ForwardError::Malformed("bytes after the records"));
        }
        Ok(Batch { seq, records })
    }

    /// Acknowledges batch `seq`: call only once its records are durable.
    pub fn ack(&mut self, seq: u64) -> Result<(), ForwardError> {
        let seq = seq.to_be_bytes();
        let mut body = seq.to_vec();
        body.extend_from_slice(&self.session.tag("ack", &[&seq]));
        write_message(&mut self.stream, ACK, &body)
    }

    /// Tells the secondary this batch is not taken, for `why`.
    pub fn refuse(&mut self, why: Refusal) {
        let _ = write_message(&mut self.stream, REFUSE, &[why.code()]);
    }
}

/// Tells the other end why (best effort), and turns `e` into the error
/// the caller counts.
fn refuse<S: Write>(stream: &mut S, e: ForwardError) -> ForwardError {
    if let Some(why) = e.refusal() {
        let _ = write_message(stream, REFUSE, &[why.code()]);
    }
    e
}

#[cfg(test)]
mod tests;
