//! Keys of rows already stored for some days: those a new computation
//! of the days must write again as zeros if it lacks them.

use std::collections::HashSet;

use super::Rollup;
use serde::Deserialize;

use crate::clickhouse::client::{ClickHouseError, Client};
use crate::clock::Day;

/// Keys of rows already stored for some days, with counts not zero: the
/// keys a new computation of those days must zero if it lacks them.
#[derive(Default)]
pub(super) struct Stored {
    pub(super) versions: HashSet<(String, Day, i64, String)>,
    pub(super) activity: HashSet<(String, Day, i64)>,
    pub(super) version_days: HashSet<(String, Day, String)>,
}

/// A stored row's key (zone, day, and window and version, or age, or
/// version) and whether its counts are not all zero.
#[derive(Deserialize)]
struct Row {
    zone: String,
    day: Day,
    #[serde(default)]
    window: i64,
    #[serde(default)]
    age: i64,
    #[serde(default)]
    version: String,
    counted: u8,
}

/// Hands `add` each row `sql` answers whose counts are not all zero.
fn read(client: &Client, sql: &str, mut add: impl FnMut(Row)) -> Result<u64, ClickHouseError> {
    client.each(sql, |r: Row| {
        if r.counted == 1 {
            add(r);
        }
        Ok(())
    })
}

impl Rollup {
    /// The keys stored with counts for the days `first..=last`.
    pub(super) fn stored(&self, first: i64, last: i64) -> Result<Stored, ClickHouseError> {
        let db = self.db();
        let mut out = Stored::default();
        let days = format!("WHERE day BETWEEN {first} AND {last}");
        read(
            &self.client,
            &format!(
                "SELECT zone, day, window, version, nodes > 0 AS counted
                 FROM {db}.snapshot_versions FINAL {days}"
            ),
            |r| {
                out.versions.insert((r.zone, r.day, r.window, r.version));
            },
        )?;
        read(
            &self.client,
            &format!(
                "SELECT zone, day, age, clusters > 0 OR nodes > 0 AS counted
                 FROM {db}.snapshot_activity FINAL {days}"
            ),
            |r| {
                out.activity.insert((r.zone, r.day, r.age));
            },
        )?;
        read(
            &self.client,
            &format!(
                "SELECT zone, day, version, reports > 0 AS counted
                 FROM {db}.version_days FINAL {days}"
            ),
            |r| {
                out.version_days.insert((r.zone, r.day, r.version));
            },
        )?;
        Ok(out)
    }
}
