//! Each report counted once, in SQL: a report's deliveries (resolver
//! retries, several name servers, a batch shipped again) grouped by its
//! key and dated and answered as its first delivery, as SQLite keeps the
//! first. The rollup and the reader's exact path both read raw reports
//! through [`first_deliveries`], so the two count alike.

/// Copies of one report arrive within seconds (resolver retries, several
/// name servers): a day either side of a range is read so that a report
/// is dated by its first delivery even when a copy crossed midnight.
pub(crate) const COPY_SPAN_DAYS: i64 = 1;

/// The reports in `table` whose raw rows match `filter` (an SQL
/// condition), each once, with the columns `zone, cluster, node,
/// client_time, report_id` (the key), `anon`, `v` and `vk` (version and
/// its sort key), and the receive time `at`, status `st` and day `d` of
/// its first delivery. Callers add a `HAVING` on `d`.
pub(crate) fn first_deliveries(table: &str, filter: &str) -> String {
    format!(
        "SELECT zone, cluster, node, client_time, report_id,
                any(anonymous) AS anon, any(version) AS v, any(version_key) AS vk,
                min(received_at) AS at, argMin(status, (received_at, server)) AS st,
                intDiv(at, 86400) AS d
         FROM {table}
         WHERE {filter}
         GROUP BY zone, cluster, node, client_time, report_id"
    )
}
