//! Errors of the wire format, kept as enums so that the server can count
//! rejected names by reason and the CLI can say exactly what was wrong.

use thiserror::Error;

/// Why a query name did not decode into a report.
///
/// Every variant is a normal outcome for a name under the zone (partial
/// names sent by QNAME-minimising resolvers end up here too), so the server
/// answers NODATA and counts the reason; nothing here is a server fault.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    #[error("the name has {0} payload labels; protocol v1 allows 1 to 4")]
    LabelCount(usize),
    #[error("a payload label is longer than 63 characters")]
    LabelTooLong,
    #[error("{0} payload characters: too few for any report (a partial name, as QNAME-minimising resolvers send first)")]
    Partial(usize),
    #[error("payload labels are not valid unpadded base32")]
    Base32,
    #[error("frame is {0} bytes, shorter than header, nonce and tag (30 bytes)")]
    TooShort(usize),
    #[error("unknown frame format version {0}")]
    UnknownFormat(u8),
    #[error("unknown key id {0}")]
    UnknownKey(u8),
    #[error("authentication failed (wrong key, wrong zone or altered payload)")]
    Authentication,
    #[error("plaintext is malformed: {0}")]
    Plaintext(&'static str),
    #[error("software version is not valid semver")]
    Version,
    #[error("frame is {0} bytes; protocol v2 frames are 112 or 130")]
    FrameLength(usize),
    #[error("sealed to the key of epoch {0}, which this server no longer (or not yet) holds")]
    UnknownEpoch(u16),
}

impl DecodeError {
    /// A short, stable label for metrics and stats output.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::LabelCount(_) => "label_count",
            DecodeError::LabelTooLong => "label_too_long",
            DecodeError::Partial(_) => "partial",
            DecodeError::Base32 => "base32",
            DecodeError::TooShort(_) => "too_short",
            DecodeError::UnknownFormat(_) => "unknown_format",
            DecodeError::UnknownKey(_) => "unknown_key",
            DecodeError::Authentication => "authentication",
            DecodeError::Plaintext(_) => "plaintext",
            DecodeError::Version => "version",
            DecodeError::FrameLength(_) => "frame_length",
            DecodeError::UnknownEpoch(_) => "unknown_epoch",
        }
    }

    /// All reasons, in a fixed order, for counters indexed by reason.
    pub const REASONS: [&'static str; 12] = [
        "label_count",
        "label_too_long",
        "partial",
        "base32",
        "too_short",
        "unknown_format",
        "unknown_key",
        "authentication",
        "plaintext",
        "version",
        "frame_length",
        "unknown_epoch",
    ];

    /// Index of [`Self::reason`] in [`Self::REASONS`].
    pub fn index(&self) -> usize {
        match self {
            DecodeError::LabelCount(_) => 0,
            DecodeError::LabelTooLong => 1,
            DecodeError::Partial(_) => 2,
            DecodeError::Base32 => 3,
            DecodeError::TooShort(_) => 4,
            DecodeError::UnknownFormat(_) => 5,
            DecodeError::UnknownKey(_) => 6,
            DecodeError::Authentication => 7,
            DecodeError::Plaintext(_) => 8,
            DecodeError::Version => 9,
            DecodeError::FrameLength(_) => 10,
            DecodeError::UnknownEpoch(_) => 11,
        }
    }
}

/// Why a report could not be turned into a query name.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    #[error(
        "software version is {0} bytes, more than a report carries (protocol v1: 255, v2: 36)"
    )]
    VersionTooLong(usize),
    #[error("client clock {0} is past what protocol v2 carries (2106-02-07): check the clock")]
    Timestamp(u64),
    #[error(
        "the query name would be {len} characters; DNS allows {max}: use a shorter zone or version"
    )]
    NameTooLong { len: usize, max: usize },
    #[error("the payload needs {0} labels; protocol v1 allows at most 4")]
    TooManyLabels(usize),
    #[error("invalid zone name {0:?}")]
    Zone(String),
    #[error("encryption failed")]
    Encrypt,
}

/// Why a key could not be read or made.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("key text must look like 'vck1:<id 0-255>:<64 hex digits>'")]
    Format,
    #[error("cannot read key file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file's text, never echoed: it may be a key with a typo.
    #[error("key file {path} does not hold a key: its text must look like '{expected}'")]
    Malformed {
        path: String,
        expected: &'static str,
    },
    #[error("key file {path} is accessible by group or others (mode {mode:04o}); a secret key must be private: run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("two keys share the id {0}")]
    DuplicateId(u8),
    #[error("key file {path} holds a {found} key; {expected} key expected here")]
    Kind {
        path: String,
        found: &'static str,
        expected: &'static str,
    },
    /// The server's stored ratchet does not follow from the key file's.
    #[error("ratchet state {path} does not follow from the private key file with the same id and signing key: the key file was replaced by another chain; restore the right key file, or delete {path} if the new key file is the one to use")]
    RatchetMismatch { path: String },
}
