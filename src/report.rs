//! A report as the server received it, and its form in the journal.
//!
//! The answer path turns each valid report into a [`ReceivedReport`] and
//! writes it to the journal as bytes; the processor reads them back. The
//! record reuses the protocol's plaintext encoding for the payload, so
//! there is one encoding of a report's fields, not two.

use thiserror::Error;

use crate::hint::Status;
use crate::protocol::{DecodeError, KeyId, Payload, Report, ReportId, ZoneName};

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
        let zone = std::str::from_utf8(zone)
            .ok()
            .and_then(|z| ZoneName::new(z).ok())
            .ok_or(RecordError::Field)?;
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
}
