//! Late reports for closed days: the fingerprints of days' raw rows,
//! compared with those the markers recorded when the days closed.

use std::collections::BTreeMap;

use super::{Marker, Rollup};
use serde::Deserialize;

use crate::clickhouse::client::ClickHouseError;

impl Rollup {
    /// Distinct report ids and deliveries received on each day of
    /// `first..=last` that has any. Ids are counted by their 64-bit hash:
    /// a set of numbers instead of strings, a fraction of the memory at a
    /// million reports a day (a collision only hides one late report).
    /// Counts equal those of earlier versions, which counted the ids.
    pub(super) fn fingerprints(
        &self,
        first: i64,
        last: i64,
    ) -> Result<BTreeMap<i64, (u64, u64)>, ClickHouseError> {
        /// A row of the query below.
        #[derive(Deserialize)]
        struct Row {
            day: i64,
            reports: u64,
            rows: u64,
        }
        let mut out = BTreeMap::new();
        self.client.each(
            &format!(
                "SELECT day, uniqExact(sipHash64(report_id)) AS reports, count() AS rows
                 FROM {}.reports WHERE day BETWEEN {first} AND {last} GROUP BY day",
                self.db()
            ),
            |r: Row| {
                out.insert(r.day, (r.reports, r.rows));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The first closed day of `first..=last` whose raw rows changed since
    /// it was closed: other report ids, or more deliveries (a merge only
    /// ever removes copies).
    pub(super) fn changed_since_closed(
        &self,
        markers: &BTreeMap<i64, Marker>,
        first: i64,
        last: i64,
    ) -> Result<Option<i64>, ClickHouseError> {
        let now = self.fingerprints(first, last)?;
        Ok((first..=last).find(|day| {
            let (reports, rows) = now.get(day).copied().unwrap_or((0, 0));
            markers
                .get(day)
                .is_none_or(|m| m.reports != reports || rows > m.rows)
        }))
    }
}
