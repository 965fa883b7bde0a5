//! Keys of rows already stored for some days: those a new computation
//! of the days must write again as zeros if it lacks them.

use std::collections::HashSet;

use super::Rollup;
use crate::clickhouse::client::{num, str_at, ClickHouseError};

/// Keys of rows already stored for some days, with counts not zero: the
/// keys a new computation of those days must zero if it lacks them.
#[derive(Default)]
pub(super) struct Stored {
    pub(super) versions: HashSet<(String, i64, i64, String)>,
    pub(super) activity: HashSet<(String, i64, i64)>,
    pub(super) version_days: HashSet<(String, i64, String)>,
}

impl Rollup {
    /// The keys stored with counts for the days `first..=last`.
    pub(super) fn stored(&self, first: i64, last: i64) -> Result<Stored, ClickHouseError> {
        let db = self.db();
        let mut out = Stored::default();
        let days = format!("WHERE day BETWEEN {first} AND {last}");
        self.client.query_each(
            &format!(
                "SELECT zone, day, window, version, nodes FROM {db}.snapshot_versions FINAL {days}"
            ),
            |r| {
                if num::<u64>(r, 4)? > 0 {
                    out.versions.insert((
                        str_at(r, 0)?.to_string(),
                        num(r, 1)?,
                        num(r, 2)?,
                        str_at(r, 3)?.to_string(),
                    ));
                }
                Ok(())
            },
        )?;
        self.client.query_each(
            &format!(
                "SELECT zone, day, age, clusters, nodes FROM {db}.snapshot_activity FINAL {days}"
            ),
            |r| {
                if num::<u64>(r, 3)? > 0 || num::<u64>(r, 4)? > 0 {
                    out.activity
                        .insert((str_at(r, 0)?.to_string(), num(r, 1)?, num(r, 2)?));
                }
                Ok(())
            },
        )?;
        self.client.query_each(
            &format!("SELECT zone, day, version, reports FROM {db}.version_days FINAL {days}"),
            |r| {
                if num::<u64>(r, 3)? > 0 {
                    out.version_days.insert((
                        str_at(r, 0)?.to_string(),
                        num(r, 1)?,
                        str_at(r, 2)?.to_string(),
                    ));
                }
                Ok(())
            },
        )?;
        Ok(out)
    }
}
