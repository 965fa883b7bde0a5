//! Each name server's counters (queries, duplicates, names that were not
//! reports, drops: the ones SQLite keeps per day) in ClickHouse, so that
//! statistics read from ClickHouse count them too.
//!
//! The shipper tallies what each counter gained since it last looked,
//! dated the day it looked (as the processor dates the deltas it commits
//! to SQLite), and ships this process run's running total per day and
//! counter. Totals, not deltas: a total sent twice (a retry, an answer
//! lost after ClickHouse took the rows) replaces itself, where a delta
//! sent twice would count twice. Each run has its own rows (`run`, an id
//! drawn at start), because a restart begins the process's counters at
//! zero again; readers take each run's largest total and sum runs and
//! servers. A crash loses what was not shipped yet, at most one shipping
//! interval, as the processor's in-memory counts since its last commit.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::clock::Day;
use crate::fleet::CounterBase;
use crate::metrics::Metrics;

/// One row of `counters`.
#[derive(Serialize)]
struct Row<'a> {
    day: i64,
    name: &'a str,
    server: &'a str,
    run: u64,
    value: u64,
}

/// The counters a server ships, by the names SQLite's `counters` table
/// uses: the answer path's, and the store's stored and duplicate counts.
pub(crate) fn current(metrics: &Metrics) -> Vec<(String, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = metrics.persisted_counters();
    out.push((
        "reports.stored".into(),
        metrics.reports_stored.load(Relaxed),
    ));
    out.push((
        "reports.duplicate".into(),
        metrics.reports_duplicate.load(Relaxed),
    ));
    out
}

/// This run's counter totals per day, and which changed since shipped.
pub(crate) struct Tally {
    run: u64,
    seen: CounterBase,
    totals: BTreeMap<(i64, String), u64>,
    changed: BTreeSet<(i64, String)>,
}

impl Tally {
    /// Counters start at zero with the process: everything counted so far
    /// belongs to this run.
    pub(crate) fn new(run: u64) -> Self {
        Tally {
            run,
            seen: CounterBase::new(),
            totals: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }

    /// Adds each counter's gain since the last call to `day`.
    pub(crate) fn observe(&mut self, counters: Vec<(String, u64)>, day: Day) {
        for gain in self.seen.deltas(&counters, day) {
            *self.totals.entry((day.0, gain.name.clone())).or_default() += gain.delta;
            self.changed.insert((day.0, gain.name));
        }
        self.seen.take(counters);
    }

    /// The changed totals as JSONEachRow, `None` when nothing changed.
    pub(crate) fn rows(&self, server: &str) -> Option<Vec<u8>> {
        if self.changed.is_empty() {
            return None;
        }
        let mut body = Vec::new();
        for key in &self.changed {
            let row = Row {
                day: key.0,
                name: &key.1,
                server,
                run: self.run,
                value: self.totals.get(key).copied().unwrap_or(0),
            };
            // Serializing plain strings and numbers cannot fail.
            if serde_json::to_writer(&mut body, &row).is_ok() {
                body.push(b'\n');
            }
        }
        Some(body)
    }

    /// ClickHouse has every total [`rows`](Self::rows) gave.
    pub(crate) fn shipped(&mut self) {
        self.changed.clear();
    }
}

/// A run id: the start time in nanoseconds, mixed with the process id, so
/// two runs of one server (or two servers named alike) do not collide.
pub(crate) fn run_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    fn lines(t: &Tally) -> Vec<String> {
        t.rows("ns1")
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn gains_go_to_the_day_observed_and_totals_replace_themselves() {
        let mut t = Tally::new(9);
        assert!(t.rows("ns1").is_none());
        t.observe(
            c(&[("reports.dropped", 2), ("rejected.base32", 0)]),
            Day(100),
        );
        assert_eq!(
            lines(&t),
            [r#"{"day":100,"name":"reports.dropped","server":"ns1","run":9,"value":2}"#]
        );
        t.shipped();
        assert!(t.rows("ns1").is_none(), "nothing changed");
        t.observe(
            c(&[("reports.dropped", 5), ("rejected.base32", 1)]),
            Day(100),
        );
        t.observe(
            c(&[("reports.dropped", 6), ("rejected.base32", 1)]),
            Day(101),
        );
        assert_eq!(
            lines(&t),
            [
                r#"{"day":100,"name":"rejected.base32","server":"ns1","run":9,"value":1}"#,
                r#"{"day":100,"name":"reports.dropped","server":"ns1","run":9,"value":5}"#,
                r#"{"day":101,"name":"reports.dropped","server":"ns1","run":9,"value":1}"#,
            ]
        );
    }
}
