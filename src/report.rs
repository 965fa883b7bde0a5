//! A report as the server received it, and its form in the journal.
//!
//! The answer path hands each report it answered to the journal as an
//! [`Incoming`]: a protocol v1 report it had to decrypt anyway (the answer
//! depends on the version), or a protocol v2 frame it only checked for
//! shape. Every journal consumer turns a record back into a
//! [`ReceivedReport`] with one call, [`decode`]: v2 frames are opened
//! there, with the zone's private key, off the answer path. The record
//! reuses the protocol's plaintext encoding, so there is one encoding of a
//! report's fields, not two.

use std::collections::HashMap;

use thiserror::Error;

use crate::hint::{Releases, Status};
use crate::protocol::v2::{self, PrivateKeyring};
use crate::protocol::{DecodeError, KeyId, Payload, Report, ReportId, ZoneName};

/// Where the answer path hands each valid report. Called on the answer
/// path for every report, so it must never block (the journal's append
/// copies into memory).
pub trait ReportSink: Send + Sync {
    /// Takes the report, or says it could not be recorded: then the answer
    /// becomes SERVFAIL, so that the resolver asks another name server of
    /// the zone rather than the client believing it was counted.
    fn accept(&self, report: Incoming<'_>) -> Result<(), NotRecorded>;
}

/// A report that cannot be made durable (journal full with nothing lower to
/// evict, its disk failing, closing); the sink has counted why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRecorded;

/// What the answer path hands to the journal.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    /// Protocol v1: decoded and authenticated already.
    V1(&'a ReceivedReport),
    /// Protocol v2: a frame of the right shape, still sealed.
    V2 {
        zone: &'a ZoneName,
        /// Server clock, unix seconds.
        received_at: i64,
        frame: &'a [u8],
    },
}

/// Record kind: a protocol v2 frame, still sealed.
const KIND_V2: u8 = 2;

impl Incoming<'_> {
    /// The journal record. A v2 record: kind, receive time, zone
    /// (length-prefixed), then the frame as received.
    pub fn to_record(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        match self {
            Incoming::V1(report) => report.to_record(out),
            Incoming::V2 {
                zone,
                received_at,
                frame,
            } => {
                out.clear();
                let zone = zone.as_str().as_bytes();
                out.push(KIND_V2);
                out.extend_from_slice(&received_at.to_be_bytes());
                out.push(u8::try_from(zone.len()).map_err(|_| RecordError::Field)?);
                out.extend_from_slice(zone);
                out.extend_from_slice(frame);
                Ok(())
            }
        }
    }
}

/// What opens v2 frames: each zone's private keys, and its releases to
/// compute the status the client computed from the policy.
#[derive(Debug, Default)]
pub struct Opener {
    zones: HashMap<ZoneName, (PrivateKeyring, Releases)>,
}

impl Opener {
    pub fn insert(&mut self, zone: ZoneName, keys: PrivateKeyring, releases: Releases) {
        self.zones.insert(zone, (keys, releases));
    }

    /// Opens a v2 frame received under `zone`. A zone no longer served
    /// counts as an unknown key: the server holds none for it.
    fn open(&self, zone: &ZoneName, frame: &[u8]) -> Result<(Report, Status), DecodeError> {
        let (keys, releases) = self
            .zones
            .get(zone)
            .ok_or(DecodeError::UnknownKey(frame.get(1).copied().unwrap_or(0)))?;
        let report = v2::frame::open(keys, zone, frame)?;
        let status = releases.hint_for(&report.payload.version).status;
        Ok((report, status))
    }
}

/// Why a journal record gave no report.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Undecodable {
    /// The record itself is damaged (or from a newer version of vcheckd).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A well-formed v2 record whose frame does not open: counted by
    /// reason, as names rejected on the answer path are.
    #[error("report rejected: {0}")]
    Rejected(DecodeError),
}

/// Whether a record holds a frame still to open (costly: keep it off the
/// answer path and spread it over threads).
pub fn is_sealed(record: &[u8]) -> bool {
    record.first() == Some(&KIND_V2)
}

/// A sealed record's frame, if it is one.
pub fn sealed_frame(record: &[u8]) -> Option<&[u8]> {
    if !is_sealed(record) {
        return None;
    }
    split_sealed(record).ok().map(|(_, f)| f)
}

/// The report id of a sealed record's frame, computed without opening it.
pub fn sealed_id(record: &[u8]) -> Option<ReportId> {
    let (_, frame) = split_sealed(record).ok()?;
    (frame.len() >= v2::frame::HEADER_LEN + v2::frame::ENC_LEN)
        .then(|| v2::frame::frame_report_id(frame))
}

/// When the server that made a record received its report (unix
/// seconds, its clock): both kinds carry it after the kind byte.
pub fn received_at(record: &[u8]) -> Option<i64> {
    record
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
}

/// A sealed record's zone bytes and frame.
fn split_sealed(record: &[u8]) -> Result<(&[u8], &[u8]), RecordError> {
    let rest = record.get(1 + 8..).ok_or(RecordError::Truncated)?;
    let (&zone_len, rest) = rest.split_first().ok_or(RecordError::Truncated)?;
    rest.split_at_checked(usize::from(zone_len))
        .ok_or(RecordError::Truncated)
}

/// A journal record back to the report it holds: the one decoding every
/// journal consumer calls.
pub fn decode(record: &[u8], opener: &Opener) -> Result<ReceivedReport, Undecodable> {
    if !is_sealed(record) {
        return Ok(ReceivedReport::from_record(record)?);
    }
    let (at, _) = record[1..]
        .split_first_chunk::<8>()
        .ok_or(RecordError::Truncated)?;
    let (zone, frame) = split_sealed(record)?;
    let zone = zone_name(zone)?;
    let (report, status) = opener.open(&zone, frame).map_err(Undecodable::Rejected)?;
    Ok(ReceivedReport {
        report,
        zone,
        received_at: i64::from_be_bytes(*at),
        status,
    })
}

fn zone_name(bytes: &[u8]) -> Result<ZoneName, RecordError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|z| ZoneName::new(z).ok())
        .ok_or(RecordError::Field)
}

/// A report as the server received it: what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedReport {
    pub report: Report,
    pub zone: ZoneName,
    /// Server clock, unix seconds.
    pub received_at: i64,
    /// The hint status the server answered with.
    pub status: Status,
}

/// Record kind: a protocol v1 report, decoded and authenticated on the
/// answer path (v1 needs the version to answer).
const KIND_V1: u8 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("journal record too short")]
    Truncated,
    #[error("unknown journal record kind {0}")]
    Kind(u8),
    #[error("journal record has an invalid zone or status")]
    Field,
    #[error("journal record payload: {0}")]
    Payload(#[from] DecodeError),
    #[error("report cannot be encoded: {0}")]
    Encode(String),
}

impl ReceivedReport {
    /// The journal record: kind, receive time, status, report id, key id,
    /// zone (length-prefixed), then the protocol plaintext.
    pub fn to_record(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        out.clear();
        let zone = self.zone.as_str().as_bytes();
        let zone_len = u8::try_from(zone.len()).map_err(|_| RecordError::Field)?;
        out.push(KIND_V1);
        out.extend_from_slice(&self.received_at.to_be_bytes());
        out.push(self.status.code());
        out.extend_from_slice(&self.report.id.0);
        out.push(self.report.key_id.0);
        out.push(zone_len);
        out.extend_from_slice(zone);
        let payload = self
            .report
            .payload
            .to_bytes()
            .map_err(|e| RecordError::Encode(e.to_string()))?;
        out.extend_from_slice(&payload);
        Ok(())
    }

    pub fn from_record(bytes: &[u8]) -> Result<Self, RecordError> {
        let (&kind, rest) = bytes.split_first().ok_or(RecordError::Truncated)?;
        if kind != KIND_V1 {
            return Err(RecordError::Kind(kind));
        }
        let (at, rest) = rest
            .split_first_chunk::<8>()
            .ok_or(RecordError::Truncated)?;
        let (&status, rest) = rest.split_first().ok_or(RecordError::Truncated)?;
        let (id, rest) = rest
            .split_first_chunk::<12>()
            .ok_or(RecordError::Truncated)?;
        let (&key_id, rest) = rest.split_first().ok_or(RecordError::Truncated)?;
        let (&zone_len, rest) = rest.split_first().ok_or(RecordError::Truncated)?;
        let (zone, payload) = rest
            .split_at_checked(usize::from(zone_len))
            .ok_or(RecordError::Truncated)?;
        let zone = zone_name(zone)?;
        Ok(ReceivedReport {
            report: Report {
                id: ReportId(*id),
                key_id: KeyId(key_id),
                payload: Payload::from_bytes(payload)?,
            },
            zone,
            received_at: i64::from_be_bytes(*at),
            status: Status::from_code(status).ok_or(RecordError::Field)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{AnonId, Identity};

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let r = ReceivedReport {
            report: Report {
                id: ReportId([7; 12]),
                key_id: KeyId(3),
                payload: Payload {
                    timestamp: 1_700_000_000,
                    identity: Identity::Known {
                        cluster: AnonId([1; 16]),
                        node: AnonId([2; 16]),
                    },
                    version: semver::Version::parse("2.4.1-rc.1").unwrap(),
                },
            },
            zone: ZoneName::new("vc.example.com").unwrap(),
            received_at: 1_700_000_005,
            status: Status::UpgradeAvailable,
        };
        let mut bytes = Vec::new();
        r.to_record(&mut bytes).unwrap();
        assert_eq!(ReceivedReport::from_record(&bytes).unwrap(), r);
        for cut in 0..bytes.len() {
            assert!(ReceivedReport::from_record(&bytes[..cut]).is_err(), "{cut}");
        }
        bytes[0] = 9;
        assert_eq!(
            ReceivedReport::from_record(&bytes),
            Err(RecordError::Kind(9))
        );
    }

    #[test]
    fn v2_records_open_in_decode_and_count_failures_by_reason() {
        use crate::hint::ReleasesConfig;
        use crate::protocol::v2::PrivateKey;
        let zone = ZoneName::new("vc.example.com").unwrap();
        let key = PrivateKey::generate(KeyId(2), 1_700_000_000);
        let releases = Releases::try_from(&ReleasesConfig {
            versions: vec!["2.4.0".into(), "2.4.1".into()],
            ..Default::default()
        })
        .unwrap();
        let mut opener = Opener::default();
        opener.insert(
            zone.clone(),
            PrivateKeyring::new(std::slice::from_ref(&key), 1_700_000_009).unwrap(),
            releases,
        );
        let seal = PrivateKeyring::new(std::slice::from_ref(&key), 1_700_000_000)
            .unwrap()
            .seal_key(KeyId(2), v2::Epoch::at(1_700_000_000))
            .unwrap();
        let payload = Payload {
            timestamp: 1_700_000_000,
            identity: Identity::Withheld,
            version: semver::Version::parse("2.4.0").unwrap(),
        };
        let frame = v2::frame::seal(&seal, &zone, &payload).unwrap();
        let mut record = Vec::new();
        Incoming::V2 {
            zone: &zone,
            received_at: 1_700_000_009,
            frame: &frame,
        }
        .to_record(&mut record)
        .unwrap();
        assert!(is_sealed(&record));
        let r = decode(&record, &opener).unwrap();
        assert_eq!(
            (r.report.payload, r.received_at, r.status, r.zone.clone()),
            (payload, 1_700_000_009, Status::UpgradeAvailable, zone)
        );
        // A byte of the ciphertext (the last 4 are the proof, not sealed).
        let sealed_byte = record.len() - 5;
        record[sealed_byte] ^= 1;
        assert_eq!(
            decode(&record, &opener),
            Err(Undecodable::Rejected(DecodeError::Authentication))
        );
        assert_eq!(
            decode(&record, &Opener::default()),
            Err(Undecodable::Rejected(DecodeError::UnknownKey(2)))
        );
        for cut in 1..11 {
            assert!(matches!(
                decode(&record[..cut], &opener),
                Err(Undecodable::Record(_))
            ));
        }
    }
}
