//! The days' markers in `rollup_days`: which days are rolled up, which
//! closed, and with which fingerprint and node states.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clickhouse::client::{num, ClickHouseError, Client};

/// One day as `rollup_days` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub closed: bool,
    pub reports: u64,
    pub rows: u64,
    pub state_day: i64,
    pub computed_at: u64,
    /// Node states saved as of the day (-1: not counted, or none saved):
    /// what a restore must read back.
    pub nodes: i64,
}

/// Every rolled-up day of the database, by day. Without `nodes` (for
/// readers), `nodes` is -1: a reader then also reads a database of
/// schema 3, whose `rollup_days` lacks the column until it is migrated.
pub(crate) fn markers(
    client: &Client,
    nodes: bool,
) -> Result<BTreeMap<i64, Marker>, ClickHouseError> {
    let mut out = BTreeMap::new();
    client.query_each(
        &format!(
            "SELECT day, closed, reports, rows, state_day, computed_at, {}
             FROM {}.rollup_days FINAL",
            if nodes { "nodes" } else { "-1" },
            client.database()
        ),
        |r| {
            out.insert(
                num(r, 0)?,
                Marker {
                    closed: num::<u8>(r, 1)? == 1,
                    reports: num(r, 2)?,
                    rows: num(r, 3)?,
                    state_day: num(r, 4)?,
                    computed_at: num(r, 5)?,
                    nodes: num(r, 6)?,
                },
            );
            Ok(())
        },
    )?;
    Ok(out)
}

#[derive(Serialize)]
pub(super) struct MarkerRow {
    pub(super) day: i64,
    pub(super) closed: u8,
    pub(super) reports: u64,
    pub(super) rows: u64,
    pub(super) state_day: i64,
    pub(super) computed_at: u64,
    pub(super) nodes: i64,
}
