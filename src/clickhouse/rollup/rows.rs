//! The rows the rollup writes, and how they are sent: a day's rows as
//! JSONEachRow per table ([`Inserts`]), the markers last.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clickhouse::client::{ClickHouseError, Client};
use crate::clock::Day;
use crate::hint::Status;

/// A row that does not serialize (it cannot: plain strings and numbers).
pub(super) fn serialize(e: serde_json::Error) -> ClickHouseError {
    ClickHouseError::Answer(format!("cannot serialize a row: {e}"))
}

/// A day's rows to insert, as JSONEachRow, per table.
#[derive(Default)]
pub(super) struct Inserts {
    tables: BTreeMap<&'static str, Vec<u8>>,
    /// The first row that did not serialize: nothing is sent then.
    failed: Option<ClickHouseError>,
}

impl Inserts {
    pub(super) fn push(&mut self, table: &'static str, row: &impl Serialize) {
        let body = self.tables.entry(table).or_default();
        match serde_json::to_writer(&mut *body, row) {
            Ok(()) => body.push(b'\n'),
            Err(e) => {
                self.failed.get_or_insert(serialize(e));
            }
        }
    }

    /// Sends every table's rows, `last` (the markers) after the others.
    pub(super) fn send(self, client: &Client, last: &str) -> Result<(), ClickHouseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut marker = None;
        for (table, body) in self.tables {
            if table == last {
                marker = Some(body);
            } else if !body.is_empty() {
                insert(client, table, &body)?;
            }
        }
        if let Some(body) = marker {
            insert(client, last, &body)?;
        }
        Ok(())
    }
}

pub(super) fn insert(client: &Client, table: &str, body: &[u8]) -> Result<(), ClickHouseError> {
    client.insert_json(table, body, &[("insert_distributed_sync", "1")])
}

#[derive(Serialize)]
pub(super) struct VersionDayRow<'a> {
    pub(super) zone: &'a str,
    pub(super) day: Day,
    pub(super) version: &'a str,
    pub(super) reports: u64,
    pub(super) anonymous: u64,
    /// -1: only anonymous reports.
    pub(super) last_at: i64,
    /// Unknown (0) in a row of zeros.
    pub(super) status: Status,
    pub(super) computed_at: u64,
}

#[derive(Serialize)]
pub(super) struct SnapshotVersionRow<'a> {
    pub(super) zone: &'a str,
    pub(super) day: Day,
    pub(super) window: i64,
    pub(super) version: &'a str,
    pub(super) clusters: u64,
    pub(super) share_mixed_bits: u64,
    pub(super) nodes: u64,
    pub(super) min_clusters: u64,
    pub(super) computed_at: u64,
}

#[derive(Serialize)]
pub(super) struct SnapshotTotalRow<'a> {
    pub(super) zone: &'a str,
    pub(super) day: Day,
    pub(super) window: i64,
    pub(super) mixed_clusters: u64,
    pub(super) insecure_clusters: u64,
    pub(super) insecure_nodes: u64,
    pub(super) computed_at: u64,
}

#[derive(Serialize)]
pub(super) struct SnapshotActivityRow<'a> {
    pub(super) zone: &'a str,
    pub(super) day: Day,
    pub(super) age: i64,
    pub(super) clusters: u64,
    pub(super) nodes: u64,
    pub(super) computed_at: u64,
}

#[derive(Serialize)]
pub(super) struct FirstDayRow<'a> {
    pub(super) zone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<&'a str>,
    pub(super) first_day: Day,
    pub(super) keep: u32,
}

#[derive(Serialize)]
pub(super) struct NodeStateRow<'a> {
    pub(super) as_of: Day,
    pub(super) zone: &'a str,
    pub(super) cluster: String,
    pub(super) node: String,
    pub(super) last_day: Day,
    pub(super) last_at: i64,
    pub(super) version: &'a str,
    pub(super) status: Status,
    pub(super) computed_at: u64,
}

/// A merge keeps the largest `keep`: the earliest first day.
pub(super) fn keep_earliest(day: Day) -> u32 {
    u32::MAX - u32::try_from(day.0.clamp(0, i64::from(u32::MAX))).unwrap_or(0)
}
