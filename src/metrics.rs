//! Process-wide counters, bumped on the answer path with relaxed atomics.
//!
//! The processor persists the answer path's deltas into SQLite with each
//! batch, at least once a second (so `vcheckd stats` sees them after a
//! restart); the reports stored and duplicate are counted by the store in
//! the transaction that writes them. An HTTP exporter reads the same
//! values; nothing here does I/O.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::dns::responder::{NameOutcome, Outcome, Rcode, Transport};
use crate::dns::rrl::{Action, Class};
use crate::protocol::{DecodeError, Identity};

use crate::replay::Outside;

const RCODES: [(&str, Rcode); 6] = [
    ("noerror", Rcode::NoError),
    ("formerr", Rcode::FormErr),
    ("servfail", Rcode::ServFail),
    ("notimp", Rcode::NotImp),
    ("refused", Rcode::Refused),
    ("badvers", Rcode::BadVers),
];

/// Query types counted by name, by their codes; the rest count as "other".
const QTYPES: [(&str, Option<u16>); 7] = [
    ("a", Some(1)),
    ("aaaa", Some(28)),
    ("txt", Some(16)),
    ("soa", Some(6)),
    ("ns", Some(2)),
    ("any", Some(255)),
    ("other", None),
];

/// What the rate limiter did with a response over a limit: sent it
/// truncated, or not at all (the `action` label of `vcheckd_rrl_total`).
pub const RRL_ACTIONS: [&str; 2] = ["slip", "drop"];

/// Upper bounds (seconds) of the processor's batch latency histogram.
pub const BATCH_SECONDS_BUCKETS: [f64; 10] =
    [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

#[derive(Default)]
pub struct Metrics {
    pub queries_udp: AtomicU64,
    pub queries_tcp: AtomicU64,
    /// Packets too short for a DNS header, or responses sent to us: dropped
    /// without an answer.
    pub dropped_packets: AtomicU64,
    /// UDP responses over a rate limit, by [`RRL_ACTIONS`] and class
    /// ([`Class::ALL`]): sent truncated (slip) or not sent (drop).
    rrl: [[AtomicU64; Class::ALL.len()]; RRL_ACTIONS.len()],
    /// TCP connections closed at once: their source held its cap already.
    pub tcp_refused_per_source: AtomicU64,
    rcodes: [AtomicU64; RCODES.len()],
    qtypes: [AtomicU64; QTYPES.len()],
    /// Processor commits: count, total microseconds, and per-bucket counts
    /// (cumulative buckets are formed when exported).
    pub batches: AtomicU64,
    pub batch_micros: AtomicU64,
    batch_buckets: [AtomicU64; BATCH_SECONDS_BUCKETS.len() + 1],
    /// Valid payload names, before deduplication: v1 names decrypted, and
    /// v2 names of the right shape (opened later, by the processor).
    pub reports_accepted: AtomicU64,
    /// Of those, by protocol version.
    pub reports_v1: AtomicU64,
    pub reports_v2: AtomicU64,
    pub reports_anonymous: AtomicU64,
    /// Answered reports given up before they were opened: evicted by
    /// reports of higher effort when the journal was full (the sum of
    /// `intake_evicted`).
    pub reports_dropped: AtomicU64,
    /// The intake's decisions (src/intake.rs): reports taken, by lane
    /// ([`crate::lanes::Lane::index`]); exact repeats answered and not
    /// taken again; reports refused (answered SERVFAIL), by
    /// [`crate::lanes::Refused::index`].
    pub intake_accepted: [AtomicU64; crate::lanes::COUNT],
    pub intake_repeats: AtomicU64,
    pub intake_refused: [AtomicU64; crate::lanes::Refused::REASONS.len()],
    /// Reports evicted by lane before they were opened (copied from the
    /// lanes by the opener).
    pub intake_evicted: [AtomicU64; crate::lanes::COUNT],
    /// The opener: reports opened (v2) or passed on (v1) into the opened
    /// journal, and frames skipped because their report id was opened
    /// already.
    pub opened: AtomicU64,
    pub opened_repeats: AtomicU64,
    /// Rows written, and reports already stored (same report id), by this
    /// process's processor.
    pub reports_stored: AtomicU64,
    pub reports_duplicate: AtomicU64,
    /// Stored reports of a day whose snapshot was already made.
    pub reports_late: AtomicU64,
    /// Journal gauges, copied from the journal by the processor: the
    /// durable end, the position the database holds, bytes on disk.
    pub journal_end: AtomicU64,
    pub processed_position: AtomicU64,
    pub journal_bytes: AtomicU64,
    /// The journal's bound (`journal_max_bytes`), bytes held in memory
    /// that are not written yet, and failed write+fsync rounds (a full or
    /// failing disk: the journal keeps the records in memory and retries).
    pub journal_max_bytes: AtomicU64,
    pub journal_pending_bytes: AtomicU64,
    pub journal_write_failures: AtomicU64,
    /// The ClickHouse shipper, when configured: the position ClickHouse
    /// holds everything before, reports shipped (deliveries, copies
    /// included) and failed requests (each retried).
    pub clickhouse_enabled: AtomicBool,
    pub shipped_position: AtomicU64,
    pub shipped_reports: AtomicU64,
    pub ship_errors: AtomicU64,
    /// Rollup turns skipped because another server held the lease.
    pub rollup_skipped: AtomicU64,
    /// Forwarding to a primary (`[forward]`, src/forwarding.rs): records
    /// the primary acknowledged; records in the lanes not acknowledged yet
    /// (refreshed about once a second, counted from the journal every
    /// minute); the receive time (unix seconds) of
    /// the oldest record not acknowledged, 0 when there is none; the last
    /// acknowledged batch (unix seconds); failures by
    /// [`crate::forward::Failure`].
    pub forward_enabled: AtomicBool,
    pub forwarded: AtomicU64,
    pub forward_unsent: AtomicU64,
    pub forward_oldest_unsent: AtomicI64,
    pub forward_last_success: AtomicI64,
    forward_failures: [AtomicU64; crate::forward::Failure::REASONS.len()],
    /// Taking forwarded records (`[forward_listen]`): records taken (new,
    /// or repeats of ones taken lately) by secondary name, and connections
    /// or batches refused by [`crate::forward::Refusal`].
    pub forward_listen_enabled: AtomicBool,
    forward_received: Mutex<std::collections::BTreeMap<String, u64>>,
    forward_refused: [AtomicU64; crate::forward::Refusal::REASONS.len()],
    /// Names under a zone that are neither static records nor reports,
    /// by reason. QNAME-minimisation partial names land here.
    rejected: [AtomicU64; DecodeError::REASONS.len()],
    /// Valid reports the processor did not record: their client timestamp
    /// was outside the replay window, by reason.
    outside_window: [AtomicU64; Outside::REASONS.len()],
    /// SIGHUP reloads that swapped the new zones in, and those that failed
    /// (the old zones kept).
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Whether the last load (start or reload) succeeded, and when the
    /// last successful one was (unix seconds).
    pub last_reload_ok: AtomicBool,
    pub last_reload_success: AtomicI64,
    /// The v2 policies served, as last signed.
    policies: Mutex<Vec<PolicyGauge>>,
}

/// One zone's signed v2 policy as served under one key id: what a client
/// will accept, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyGauge {
    pub zone: String,
    pub key_id: u8,
    /// The zone file's SOA serial.
    pub serial: u32,
    /// Unix seconds.
    pub issued: u64,
    pub expires: u64,
}

/// Adds one; relaxed, since counters order nothing.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one request by what the responder made of it.
    pub fn count_query(&self, transport: Transport, outcome: &Outcome) {
        bump(match transport {
            Transport::Udp => &self.queries_udp,
            Transport::Tcp => &self.queries_tcp,
        });
        let answered = match outcome {
            Outcome::Dropped => return bump(&self.dropped_packets),
            Outcome::Answered(a) => a,
        };
        self.count_rcode(answered.rcode);
        if let Some(qtype) = answered.qtype {
            self.count_qtype(qtype);
        }
        match &answered.name {
            NameOutcome::Other => {}
            NameOutcome::Report(r) => {
                bump(&self.reports_accepted);
                bump(&self.reports_v1);
                if r.report.payload.identity == Identity::Withheld {
                    bump(&self.reports_anonymous);
                }
            }
            NameOutcome::Sealed { .. } => {
                bump(&self.reports_accepted);
                bump(&self.reports_v2);
            }
            NameOutcome::Rejected(why) => self.count_rejected(why),
        }
    }

    fn count_rcode(&self, rcode: Rcode) {
        if let Some(i) = RCODES.iter().position(|(_, r)| *r == rcode) {
            bump(&self.rcodes[i]);
        }
    }

    fn count_qtype(&self, qtype: u16) {
        let i = QTYPES
            .iter()
            .position(|(_, t)| *t == Some(qtype))
            .unwrap_or(QTYPES.len() - 1);
        bump(&self.qtypes[i]);
    }

    /// Counts what the rate limiter did with a response, if it limited it.
    pub fn count_rrl(&self, action: Action) {
        let (i, class) = match action {
            Action::Send => return,
            Action::Slip(class) => (0, class),
            Action::Drop(class) => (1, class),
        };
        bump(&self.rrl[i][class.index()]);
    }

    /// Limited responses as `(action, class, value)`, every pair.
    pub fn rrl(&self) -> Vec<(&'static str, &'static str, u64)> {
        RRL_ACTIONS
            .iter()
            .zip(&self.rrl)
            .flat_map(|(action, by_class)| {
                Class::ALL
                    .iter()
                    .zip(by_class)
                    .map(|(class, c)| (*action, class.name(), c.load(Ordering::Relaxed)))
            })
            .collect()
    }

    pub fn observe_batch(&self, elapsed: std::time::Duration) {
        bump(&self.batches);
        self.batch_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let i = BATCH_SECONDS_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BATCH_SECONDS_BUCKETS.len());
        bump(&self.batch_buckets[i]);
    }

    /// Batch counts per bucket (not cumulative), the last one past 1 s.
    pub fn batch_buckets(&self) -> Vec<u64> {
        self.batch_buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Queries by type, as `(name, value)`.
    pub fn qtypes(&self) -> Vec<(&'static str, u64)> {
        QTYPES
            .iter()
            .zip(&self.qtypes)
            .map(|((name, _), c)| (*name, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Responses by rcode, as `(name, value)`.
    pub fn rcodes(&self) -> Vec<(&'static str, u64)> {
        RCODES
            .iter()
            .zip(&self.rcodes)
            .map(|((name, _), c)| (*name, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Rejected names by reason, as `(reason, value)`.
    pub fn rejected(&self) -> Vec<(&'static str, u64)> {
        DecodeError::REASONS
            .iter()
            .zip(&self.rejected)
            .map(|(reason, c)| (*reason, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn count_rejected(&self, why: &DecodeError) {
        bump(&self.rejected[why.index()]);
    }

    /// Reports outside the replay window by reason, as `(reason, value)`.
    pub fn outside_window(&self) -> Vec<(&'static str, u64)> {
        Outside::REASONS
            .iter()
            .zip(&self.outside_window)
            .map(|(reason, c)| (*reason, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn count_outside_window(&self, why: Outside) {
        bump(&self.outside_window[why.index()]);
    }

    pub fn count_forward_failure(&self, why: crate::forward::Failure) {
        bump(&self.forward_failures[why.index()]);
    }

    /// Forwarding failures by reason, as `(reason, value)`.
    pub fn forward_failures(&self) -> Vec<(&'static str, u64)> {
        crate::forward::Failure::REASONS
            .iter()
            .zip(&self.forward_failures)
            .map(|(reason, c)| (*reason, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn count_forward_refused(&self, why: crate::forward::Refusal) {
        bump(&self.forward_refused[why.index()]);
    }

    /// Refused forwarding connections and batches by reason.
    pub fn forward_refused(&self) -> Vec<(&'static str, u64)> {
        crate::forward::Refusal::REASONS
            .iter()
            .zip(&self.forward_refused)
            .map(|(reason, c)| (*reason, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Counts `n` records taken from secondary `server` (a configured name).
    pub fn count_forward_received(&self, server: &str, n: u64) {
        if let Ok(mut m) = self.forward_received.lock() {
            *m.entry(server.to_owned()).or_default() += n;
        }
    }

    /// Records taken by secondary name.
    pub fn forward_received(&self) -> Vec<(String, u64)> {
        self.forward_received
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// A configuration loaded at `now` (unix seconds): at start, or by a
    /// reload (`reload`), which is counted.
    pub fn record_load(&self, ok: bool, reload: bool, now: i64) {
        if reload {
            bump(if ok {
                &self.reloads_ok
            } else {
                &self.reloads_failed
            });
        }
        self.last_reload_ok.store(ok, Ordering::Relaxed);
        if ok {
            self.last_reload_success.store(now, Ordering::Relaxed);
        }
    }

    /// The policies now served (after a start, a reload or a new signing).
    pub fn set_policies(&self, policies: Vec<PolicyGauge>) {
        if let Ok(mut p) = self.policies.lock() {
            *p = policies;
        }
    }

    pub fn policies(&self) -> Vec<PolicyGauge> {
        self.policies.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The answer path's counters as `(name, value)`, in a fixed order.
    /// Names are the stable keys used in the database's `counters` table.
    /// (`reports.stored` and `reports.duplicate` are written there by the
    /// store itself.)
    pub fn persisted_counters(&self) -> Vec<(String, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = vec![
            ("queries.udp".to_string(), get(&self.queries_udp)),
            ("queries.tcp".to_string(), get(&self.queries_tcp)),
            ("packets.dropped".to_string(), get(&self.dropped_packets)),
            (
                "tcp.refused_per_source".to_string(),
                get(&self.tcp_refused_per_source),
            ),
            ("reports.accepted".to_string(), get(&self.reports_accepted)),
            ("reports.v1".to_string(), get(&self.reports_v1)),
            ("reports.v2".to_string(), get(&self.reports_v2)),
            (
                "reports.anonymous".to_string(),
                get(&self.reports_anonymous),
            ),
            ("reports.dropped".to_string(), get(&self.reports_dropped)),
            ("intake.repeat".to_string(), get(&self.intake_repeats)),
            ("opener.opened".to_string(), get(&self.opened)),
            ("opener.repeat_id".to_string(), get(&self.opened_repeats)),
        ];
        for (action, class, v) in self.rrl() {
            out.push((format!("rrl.{action}.{class}"), v));
        }
        for lane in crate::lanes::Lane::all() {
            let i = lane.index();
            let label = lane.label();
            out.push((
                format!("intake.accepted.{label}"),
                get(&self.intake_accepted[i]),
            ));
            out.push((
                format!("intake.evicted.{label}"),
                get(&self.intake_evicted[i]),
            ));
        }
        for (i, reason) in crate::lanes::Refused::REASONS.iter().enumerate() {
            out.push((
                format!("intake.refused.{reason}"),
                get(&self.intake_refused[i]),
            ));
        }
        for (name, v) in self.rcodes() {
            out.push((format!("rcode.{name}"), v));
        }
        for (name, v) in self.qtypes() {
            out.push((format!("qtype.{name}"), v));
        }
        for (reason, v) in self.rejected() {
            out.push((format!("rejected.{reason}"), v));
        }
        for (reason, v) in self.outside_window() {
            out.push((format!("outside_window.{reason}"), v));
        }
        out
    }
}
