//! `/metrics`: the live counters and the fleet's size by version, in the
//! Prometheus text format (version 0.0.4).

use std::fmt::{Display, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::query::today;
use super::Context;
use crate::metrics::{Metrics, BATCH_SECONDS_BUCKETS};
use crate::stats::VersionRow;

/// Days over which the fleet gauges count a cluster or node as active.
pub const FLEET_DAYS: i64 = 7;
/// How long the fleet gauges are reused before they are computed again.
const FLEET_TTL: Duration = Duration::from_secs(30);

/// The fleet gauges, per zone (never summed across zones).
pub type Fleet = Vec<ZoneFleet>;

/// One zone's gauges: active clusters and nodes by version, top versions
/// named and the rest summed into "other".
#[derive(Debug, Clone)]
pub struct ZoneFleet {
    pub zone: String,
    pub rows: Vec<VersionRow>,
    pub active_clusters: u64,
    pub active_nodes: u64,
    pub mixed_clusters: u64,
    pub insecure_clusters: u64,
    pub insecure_nodes: u64,
}

/// The last fleet computation, shared by scrapes. The lock is held while
/// computing, so concurrent scrapes wait for one result.
#[derive(Default)]
pub struct FleetCache(tokio::sync::Mutex<Option<(Instant, Arc<Fleet>)>>);

impl Context {
    async fn fleet(&self) -> Option<Arc<Fleet>> {
        let mut cached = self.fleet.0.lock().await;
        if let Some((at, fleet)) = cached.as_ref() {
            if at.elapsed() < FLEET_TTL {
                return Some(fleet.clone());
            }
        }
        let top = self.top_versions;
        let result = self
            .with_source(move |source| {
                let last = today();
                let first = last - FLEET_DAYS + 1;
                let mut fleet = Fleet::new();
                for zone in source.zones()? {
                    let v = source.versions(&zone, first, last)?;
                    fleet.push(ZoneFleet {
                        zone: v.zone.clone(),
                        rows: v.grouped(top),
                        active_clusters: v.active_clusters,
                        active_nodes: v.active_nodes,
                        mixed_clusters: v.mixed_clusters,
                        insecure_clusters: v.insecure_clusters,
                        insecure_nodes: v.insecure_nodes,
                    });
                }
                Ok(fleet)
            })
            .await;
        match result {
            Ok(fleet) => {
                let fleet = Arc::new(fleet);
                *cached = Some((Instant::now(), fleet.clone()));
                Some(fleet)
            }
            Err(e) => {
                // The live counters are still worth a scrape.
                warn!(error = %e.message, "cannot compute the fleet gauges for /metrics");
                cached.as_ref().map(|(_, f)| f.clone())
            }
        }
    }
}

pub async fn metrics(State(ctx): State<Arc<Context>>) -> Response {
    let fleet = ctx.fleet().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&ctx.metrics, fleet.as_deref()),
    )
        .into_response()
}

/// Escapes a label value: backslash, double quote and line feed.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The whole exposition: counters always, fleet gauges when computed.
pub fn render(m: &Metrics, fleet: Option<&Fleet>) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = Exposition(String::with_capacity(8 * 1024));
    out.family(
        "vcheckd_build_info",
        "gauge",
        "Always 1; the running vcheckd's version as a label.",
    );
    out.sample(
        "vcheckd_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    process(&mut out);
    reloads(&mut out, m);
    policies(&mut out, &m.policies());

    out.family(
        "vcheckd_queries_total",
        "counter",
        "DNS queries received, by transport.",
    );
    out.sample(
        "vcheckd_queries_total",
        &[("transport", "udp")],
        m.queries_udp.load(Relaxed),
    );
    out.sample(
        "vcheckd_queries_total",
        &[("transport", "tcp")],
        m.queries_tcp.load(Relaxed),
    );
    out.family(
        "vcheckd_queries_by_type_total",
        "counter",
        "DNS queries received, by query type (other: any type not listed).",
    );
    for (qtype, v) in m.qtypes() {
        out.sample("vcheckd_queries_by_type_total", &[("type", qtype)], v);
    }
    out.family(
        "vcheckd_responses_total",
        "counter",
        "DNS responses sent, by response code.",
    );
    for (rcode, v) in m.rcodes() {
        out.sample("vcheckd_responses_total", &[("rcode", rcode)], v);
    }
    out.single(
        "vcheckd_packets_dropped_total",
        "counter",
        "Packets dropped without an answer (too short for a DNS header, or responses).",
        m.dropped_packets.load(Relaxed),
    );
    out.family(
        "vcheckd_rrl_total",
        "counter",
        "UDP responses over a per-prefix rate limit, by answer class: sent truncated (slip) or not sent (drop).",
    );
    for (action, class, v) in m.rrl() {
        out.sample(
            "vcheckd_rrl_total",
            &[("action", action), ("class", class)],
            v,
        );
    }
    out.single(
        "vcheckd_tcp_refused_per_source_total",
        "counter",
        "TCP connections closed at once because their source held its connection cap.",
        m.tcp_refused_per_source.load(Relaxed),
    );

    out.single(
        "vcheckd_reports_accepted_total",
        "counter",
        "Valid report names, before deduplication.",
        m.reports_accepted.load(Relaxed),
    );
    out.family(
        "vcheckd_reports_by_protocol_total",
        "counter",
        "Valid report names by protocol version (v2 frames are opened later, by the processor).",
    );
    out.sample(
        "vcheckd_reports_by_protocol_total",
        &[("protocol", "1")],
        m.reports_v1.load(Relaxed),
    );
    out.sample(
        "vcheckd_reports_by_protocol_total",
        &[("protocol", "2")],
        m.reports_v2.load(Relaxed),
    );
    out.single(
        "vcheckd_reports_anonymous_total",
        "counter",
        "Valid reports with the identity withheld.",
        m.reports_anonymous.load(Relaxed),
    );
    out.single(
        "vcheckd_reports_stored_total",
        "counter",
        "Reports written to the database (first delivery of a report id).",
        m.reports_stored.load(Relaxed),
    );
    out.single(
        "vcheckd_reports_duplicate_total",
        "counter",
        "Reports whose id was already stored (resolver retries), not stored again.",
        m.reports_duplicate.load(Relaxed),
    );
    out.family(
        "vcheckd_reports_rejected_total",
        "counter",
        "Names under a zone that are neither records nor valid reports, by reason.",
    );
    for (reason, v) in m.rejected() {
        out.sample("vcheckd_reports_rejected_total", &[("reason", reason)], v);
    }
    out.family(
        "vcheckd_reports_outside_window_total",
        "counter",
        "Valid reports not recorded: client timestamp outside the replay window (replay_window_secs, replay_future_secs), by reason.",
    );
    for (reason, v) in m.outside_window() {
        out.sample(
            "vcheckd_reports_outside_window_total",
            &[("reason", reason)],
            v,
        );
    }
    out.single(
        "vcheckd_reports_dropped_total",
        "counter",
        "Answered reports given up before they were opened: evicted by reports of higher effort from a full journal (journal_max_bytes).",
        m.reports_dropped.load(Relaxed),
    );
    out.family(
        "vcheckd_intake_accepted_total",
        "counter",
        "Reports taken into the journal, by lane (v1, or the v2 frame's effort in bits, capped).",
    );
    for lane in crate::lanes::Lane::all() {
        let v = m.intake_accepted[lane.index()].load(Relaxed);
        out.sample(
            "vcheckd_intake_accepted_total",
            &[("lane", &lane.label())],
            v,
        );
    }
    out.family(
        "vcheckd_intake_evicted_total",
        "counter",
        "Reports evicted from a full journal by reports of higher effort before they were opened, by lane.",
    );
    for lane in crate::lanes::Lane::all() {
        let v = m.intake_evicted[lane.index()].load(Relaxed);
        out.sample(
            "vcheckd_intake_evicted_total",
            &[("lane", &lane.label())],
            v,
        );
    }
    out.single(
        "vcheckd_intake_repeats_total",
        "counter",
        "Exact repeats of a report taken lately (same frame digest or v1 report id): answered, not taken again.",
        m.intake_repeats.load(Relaxed),
    );
    out.family(
        "vcheckd_intake_refused_total",
        "counter",
        "Reports not taken, answered SERVFAIL so that the resolver asks another name server, by reason: full (no lower-effort report to evict), disk (the journal's disk refuses writes), closing, record.",
    );
    for (i, reason) in crate::lanes::Refused::REASONS.iter().enumerate() {
        let v = m.intake_refused[i].load(Relaxed);
        out.sample("vcheckd_intake_refused_total", &[("reason", reason)], v);
    }
    out.single(
        "vcheckd_opener_opened_total",
        "counter",
        "Reports opened (v2) or passed on (v1) from the raw lanes into the opened journal.",
        m.opened.load(Relaxed),
    );
    out.single(
        "vcheckd_opener_repeats_total",
        "counter",
        "v2 frames not opened: a frame with the same report id was opened lately.",
        m.opened_repeats.load(Relaxed),
    );
    out.single(
        "vcheckd_reports_late_total",
        "counter",
        "Reports stored for a day whose snapshot was already made (not in it).",
        m.reports_late.load(Relaxed),
    );
    let end = m.journal_end.load(Relaxed);
    out.single(
        "vcheckd_journal_lag_bytes",
        "gauge",
        "Journal bytes written and not yet taken into the database.",
        end.saturating_sub(m.processed_position.load(Relaxed)),
    );
    out.single(
        "vcheckd_journal_bytes",
        "gauge",
        "Bytes of journal segments on disk.",
        m.journal_bytes.load(Relaxed),
    );
    out.single(
        "vcheckd_journal_max_bytes",
        "gauge",
        "The journal's bound (journal_max_bytes): past it, answered reports are dropped.",
        m.journal_max_bytes.load(Relaxed),
    );
    out.single(
        "vcheckd_journal_pending_bytes",
        "gauge",
        "Journal bytes appended and not yet written to disk (grows while the disk cannot be written).",
        m.journal_pending_bytes.load(Relaxed),
    );
    out.single(
        "vcheckd_journal_write_failures_total",
        "counter",
        "Journal write+fsync rounds that failed (a full or failing disk); each is retried.",
        m.journal_write_failures.load(Relaxed),
    );
    if m.clickhouse_enabled.load(Relaxed) {
        out.single(
            "vcheckd_clickhouse_lag_bytes",
            "gauge",
            "Journal bytes written and not yet acknowledged by ClickHouse.",
            end.saturating_sub(m.shipped_position.load(Relaxed)),
        );
        out.single(
            "vcheckd_clickhouse_shipped_total",
            "counter",
            "Reports ClickHouse acknowledged (a batch shipped again after a crash counts again).",
            m.shipped_reports.load(Relaxed),
        );
        out.single(
            "vcheckd_clickhouse_errors_total",
            "counter",
            "Requests to ClickHouse that failed (each is retried).",
            m.ship_errors.load(Relaxed),
        );
        out.single(
            "vcheckd_clickhouse_rollup_skipped_total",
            "counter",
            "Rollup turns skipped because another name server held the rollup lease.",
            m.rollup_skipped.load(Relaxed),
        );
    }

    if m.forward_enabled.load(Relaxed) {
        out.single(
            "vcheckd_forward_lag_records",
            "gauge",
            "Reports in the journal the primary has not acknowledged yet (refreshed about once a second).",
            m.forward_unsent.load(Relaxed),
        );
        let oldest = m.forward_oldest_unsent.load(Relaxed);
        out.single(
            "vcheckd_forward_lag_seconds",
            "gauge",
            "Age of the oldest report the primary has not acknowledged yet; 0 when caught up.",
            if oldest > 0 {
                (crate::clock::unix_now() - oldest).max(0)
            } else {
                0
            },
        );
        out.single(
            "vcheckd_forwarded_total",
            "counter",
            "Reports the primary acknowledged (a batch sent again after a lost acknowledgement counts again).",
            m.forwarded.load(Relaxed),
        );
        out.single(
            "vcheckd_forward_last_success_timestamp_seconds",
            "gauge",
            "When the primary last acknowledged a batch or keep-alive (unix seconds; 0: never since start).",
            m.forward_last_success.load(Relaxed),
        );
        out.family(
            "vcheckd_forward_failures_total",
            "counter",
            "Failed attempts to forward to the primary, by reason (each is retried).",
        );
        for (reason, v) in m.forward_failures() {
            out.sample("vcheckd_forward_failures_total", &[("reason", reason)], v);
        }
    }
    if m.forward_listen_enabled.load(Relaxed) {
        out.family(
            "vcheckd_forward_received_total",
            "counter",
            "Reports taken from each secondary (repeats of reports taken lately included).",
        );
        for (server, v) in m.forward_received() {
            out.sample("vcheckd_forward_received_total", &[("server", &server)], v);
        }
        out.family(
            "vcheckd_forward_refused_total",
            "counter",
            "Forwarding connections and batches refused, by reason (bad_proof: a wrong key; bad_batch: a tampered or replayed batch).",
        );
        for (reason, v) in m.forward_refused() {
            out.sample("vcheckd_forward_refused_total", &[("reason", reason)], v);
        }
    }

    // Cumulative buckets; +Inf and _count from the same reading, so that
    // they agree even while the processor commits.
    let name = "vcheckd_processor_batch_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time the processor took to commit one batch of reports.",
    );
    let buckets = m.batch_buckets();
    let mut cumulative = 0;
    for (le, n) in BATCH_SECONDS_BUCKETS.iter().zip(&buckets) {
        cumulative += n;
        out.sample(
            &format!("{name}_bucket"),
            &[("le", &le.to_string())],
            cumulative,
        );
    }
    cumulative += buckets.last().copied().unwrap_or(0);
    out.sample(&format!("{name}_bucket"), &[("le", "+Inf")], cumulative);
    out.sample(
        &format!("{name}_sum"),
        &[],
        m.batch_micros.load(Relaxed) as f64 / 1e6,
    );
    out.sample(&format!("{name}_count"), &[], cumulative);

    if let Some(fleet) = fleet {
        out.family(
            "vcheckd_active_clusters",
            "gauge",
            "Clusters active in the last 7 days (UTC) by zone and version; a mixed-version \
             cluster counts by node share, so a zone's values sum to its active clusters. \
             Top versions by name, the rest as \"other\".",
        );
        for f in fleet {
            for r in &f.rows {
                out.sample(
                    "vcheckd_active_clusters",
                    &[("zone", &f.zone), ("version", &r.version)],
                    r.cluster_share,
                );
            }
        }
        out.family(
            "vcheckd_active_nodes",
            "gauge",
            "Nodes active in the last 7 days (UTC) by zone and the version of their latest report.",
        );
        for f in fleet {
            for r in &f.rows {
                out.sample(
                    "vcheckd_active_nodes",
                    &[("zone", &f.zone), ("version", &r.version)],
                    r.nodes,
                );
            }
        }
        type Gauge = (&'static str, &'static str, fn(&ZoneFleet) -> u64);
        let gauges: [Gauge; 5] = [
            (
                "vcheckd_active_clusters_all",
                "Clusters active in the last 7 days (UTC).",
                |f| f.active_clusters,
            ),
            (
                "vcheckd_active_nodes_all",
                "Nodes active in the last 7 days (UTC).",
                |f| f.active_nodes,
            ),
            (
                "vcheckd_mixed_clusters",
                "Active clusters (7 days) whose nodes run different versions.",
                |f| f.mixed_clusters,
            ),
            (
                "vcheckd_insecure_clusters",
                "Active clusters (7 days) with a node on a version answered \"upgrade required\".",
                |f| f.insecure_clusters,
            ),
            (
                "vcheckd_insecure_nodes",
                "Active nodes (7 days) on a version answered \"upgrade required\".",
                |f| f.insecure_nodes,
            ),
        ];
        for (name, help, value) in gauges {
            out.family(name, "gauge", help);
            for f in fleet {
                out.sample(name, &[("zone", &f.zone)], value(f));
            }
        }
    }
    out.0
}

/// The standard process metrics (the names Prometheus's own clients use),
/// from /proc/self; left out where /proc cannot be read.
fn process(out: &mut Exposition) {
    let Ok(me) = procfs::process::Process::myself() else {
        return;
    };
    let Ok(stat) = me.stat() else {
        return;
    };
    let ticks = procfs::ticks_per_second() as f64;
    out.single(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        (stat.utime + stat.stime) as f64 / ticks,
    );
    out.single(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        stat.rss * procfs::page_size(),
    );
    out.single(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        stat.vsize,
    );
    out.single(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        stat.num_threads,
    );
    if let Ok(boot) = procfs::boot_time_secs() {
        out.single(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot as f64 + stat.starttime as f64 / ticks,
        );
    }
    if let Ok(fds) = me.fd_count() {
        out.single(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds,
        );
    }
    if let Ok(limits) = me.limits() {
        if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
            out.single(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max,
            );
        }
    }
}

/// Loads of the configuration: reloads (SIGHUP) by result, whether the last
/// load worked, and when the last good one was.
fn reloads(out: &mut Exposition, m: &Metrics) {
    use std::sync::atomic::Ordering::Relaxed;
    out.family(
        "vcheckd_reloads_total",
        "counter",
        "Reloads (SIGHUP) by result; a failed one keeps serving the previous zones.",
    );
    out.sample(
        "vcheckd_reloads_total",
        &[("result", "success")],
        m.reloads_ok.load(Relaxed),
    );
    out.sample(
        "vcheckd_reloads_total",
        &[("result", "failure")],
        m.reloads_failed.load(Relaxed),
    );
    out.single(
        "vcheckd_last_reload_successful",
        "gauge",
        "1 if the last load of the configuration (start or reload) succeeded, else 0.",
        u8::from(m.last_reload_ok.load(Relaxed)),
    );
    out.single(
        "vcheckd_last_reload_success_timestamp_seconds",
        "gauge",
        "When the configuration was last loaded successfully (start or reload), unix seconds.",
        m.last_reload_success.load(Relaxed),
    );
}

/// Each zone's signed v2 policy, per key id: its serial (the zone file's
/// SOA serial) and when it expires. Policies are signed anew every
/// seventh of their validity; one near its expiry means signing stopped.
fn policies(out: &mut Exposition, policies: &[crate::metrics::PolicyGauge]) {
    if policies.is_empty() {
        return;
    }
    out.family(
        "vcheckd_policy_serial",
        "gauge",
        "Serial of the v2 policy served, by zone and key id (the zone file's SOA serial).",
    );
    for p in policies {
        let id = p.key_id.to_string();
        out.sample(
            "vcheckd_policy_serial",
            &[("zone", &p.zone), ("key_id", &id)],
            p.serial,
        );
    }
    out.family(
        "vcheckd_policy_expiry_timestamp_seconds",
        "gauge",
        "When the v2 policy served expires, unix seconds, by zone and key id (clients refuse it after).",
    );
    for p in policies {
        let id = p.key_id.to_string();
        out.sample(
            "vcheckd_policy_expiry_timestamp_seconds",
            &[("zone", &p.zone), ("key_id", &id)],
            p.expires,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histogram_is_cumulative_and_agrees_with_count() {
        let m = Metrics::default();
        m.observe_batch(Duration::from_micros(500));
        m.observe_batch(Duration::from_millis(30));
        m.observe_batch(Duration::from_secs(3));
        let text = render(&m, None);
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} missing in\n{text}"))
                .to_string()
        };
        let b = "vcheckd_processor_batch_duration_seconds_bucket";
        assert_eq!(
            line(&format!("{b}{{le=\"0.001\"}}")),
            format!("{b}{{le=\"0.001\"}} 1")
        );
        assert_eq!(
            line(&format!("{b}{{le=\"0.05\"}}")),
            format!("{b}{{le=\"0.05\"}} 2")
        );
        assert_eq!(
            line(&format!("{b}{{le=\"1\"}}")),
            format!("{b}{{le=\"1\"}} 2")
        );
        assert_eq!(
            line(&format!("{b}{{le=\"+Inf\"}}")),
            format!("{b}{{le=\"+Inf\"}} 3")
        );
        assert_eq!(
            line("vcheckd_processor_batch_duration_seconds_count"),
            "vcheckd_processor_batch_duration_seconds_count 3"
        );
    }
}
