//! The days' markers in `rollup_days`: which days are rolled up, which
//! closed, and with which fingerprint and node states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clickhouse::client::{ClickHouseError, Client};

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
    /// A row of the query below.
    #[derive(Deserialize)]
    struct Row {
        day: i64,
        closed: u8,
        reports: u64,
        rows: u64,
        state_day: i64,
        computed_at: u64,
        nodes: i64,
    }
    let mut out = BTreeMap::new();
    let sql = format!(
        "SELECT day, closed, reports, rows, state_day, computed_at, {}
         FROM {}.rollup_days FINAL",
        if nodes { "nodes" } else { "-1 AS nodes" },
        client.database()
    );
    client.each(&sql, |r: Row| {
        out.insert(
            r.day,
            Marker {
                closed: r.closed == 1,
                reports: r.reports,
                rows: r.rows,
                state_day: r.state_day,
                computed_at: r.computed_at,
                nodes: r.nodes,
            },
        );
        Ok(())
    })?;
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
