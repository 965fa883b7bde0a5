//! Process-wide counters, bumped on the answer path with relaxed atomics.
//!
//! The writer thread persists their deltas into SQLite once per batch or
//! second (so `vcheckd stats` sees them after a restart), and an HTTP
//! exporter can read the same values; nothing here does I/O.

use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;

use crate::protocol::DecodeError;

const RCODES: [(&str, ResponseCode); 6] = [
    ("noerror", ResponseCode::NoError),
    ("formerr", ResponseCode::FormErr),
    ("servfail", ResponseCode::ServFail),
    ("notimp", ResponseCode::NotImp),
    ("refused", ResponseCode::Refused),
    ("badvers", ResponseCode::BADVERS),
];

#[derive(Default)]
pub struct Metrics {
    pub queries_udp: AtomicU64,
    pub queries_tcp: AtomicU64,
    /// Packets too short for a DNS header, or responses sent to us: dropped
    /// without an answer.
    pub dropped_packets: AtomicU64,
    rcodes: [AtomicU64; RCODES.len()],
    /// Valid payload names, before deduplication.
    pub reports_accepted: AtomicU64,
    pub reports_anonymous: AtomicU64,
    /// Reports the bounded queue could not take (the writer was behind).
    pub reports_queue_dropped: AtomicU64,
    /// Rows written, and reports already stored (same report id).
    pub reports_stored: AtomicU64,
    pub reports_duplicate: AtomicU64,
    /// Names under a zone that are neither static records nor reports,
    /// by reason. QNAME-minimisation partial names land here.
    rejected: [AtomicU64; DecodeError::REASONS.len()],
}

/// Adds one; relaxed, since counters order nothing.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn count_rcode(&self, rcode: ResponseCode) {
        if let Some(i) = RCODES.iter().position(|(_, r)| *r == rcode) {
            bump(&self.rcodes[i]);
        }
    }

    pub fn count_rejected(&self, why: &DecodeError) {
        bump(&self.rejected[why.index()]);
    }

    /// Every counter as `(name, value)`, in a fixed order. Names are the
    /// stable keys used in the database's `counters` table.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = vec![
            ("queries.udp".to_string(), get(&self.queries_udp)),
            ("queries.tcp".to_string(), get(&self.queries_tcp)),
            ("packets.dropped".to_string(), get(&self.dropped_packets)),
            ("reports.accepted".to_string(), get(&self.reports_accepted)),
            (
                "reports.anonymous".to_string(),
                get(&self.reports_anonymous),
            ),
            (
                "reports.queue_dropped".to_string(),
                get(&self.reports_queue_dropped),
            ),
            ("reports.stored".to_string(), get(&self.reports_stored)),
            (
                "reports.duplicate".to_string(),
                get(&self.reports_duplicate),
            ),
        ];
        for ((name, _), c) in RCODES.iter().zip(&self.rcodes) {
            out.push((format!("rcode.{name}"), get(c)));
        }
        for (reason, c) in DecodeError::REASONS.iter().zip(&self.rejected) {
            out.push((format!("rejected.{reason}"), get(c)));
        }
        out
    }
}
