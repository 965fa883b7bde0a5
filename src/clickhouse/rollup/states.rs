//! Node states kept in `node_state`: read back where a close starts
//! ([`Base`]), saved as of closed days, and the old ones dropped.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use data_encoding::HEXLOWER;
use tracing::{debug, info, warn};

use super::rows::{insert, serialize, NodeStateRow};
use super::{Base, Marker, Rollup, KEEP_STATE_DAYS};
use serde::Deserialize;

use crate::clickhouse::client::{hex16, ClickHouseError};
use crate::clickhouse::schema::{self, NODE_STATE};
use crate::clock::Day;
use crate::fleet::{FleetStates, StoredState};
use crate::hint::Status;

impl Rollup {
    /// Node states as of the closed day before `start` (or an earlier
    /// one, when that day's were not kept: closing then starts after it),
    /// from the last run's if they are still current.
    pub(super) fn base_before(
        &mut self,
        start: i64,
        first_day: i64,
        markers: &BTreeMap<i64, Marker>,
    ) -> Result<Base, ClickHouseError> {
        let empty = Base {
            day: None,
            stamp: 0,
            states: FleetStates::new(),
            versions: HashSet::new(),
        };
        if start <= first_day {
            return Ok(empty);
        }
        if let Some(b) = self.base.take() {
            let current = b.day == Some(start - 1)
                && markers
                    .get(&(start - 1))
                    .is_some_and(|m| m.closed && m.computed_at == b.stamp);
            if current {
                return Ok(b);
            }
        }
        let kept = self.kept_states()?;
        let mut candidates = markers
            .range(..start)
            .rev()
            .filter(|(_, m)| m.closed && kept.contains(&m.state_day));
        // The latest kept states that read back whole: a count that
        // differs from the one saved (an insert cut short, a partition
        // dropped or merged away by hand) sends the close further back.
        let (day, marker, states) = loop {
            let Some((&day, marker)) = candidates.next() else {
                info!("no node states kept before day {start}: closing again from the first day");
                return Ok(empty);
            };
            let states = self.restore_states(marker.state_day)?;
            let n = i64::try_from(states.len()).unwrap_or(i64::MAX);
            if marker.nodes >= 0 && marker.nodes != n {
                warn!(
                    day,
                    saved = marker.nodes,
                    read = n,
                    "node states read back differ in count from those saved: closing again from an earlier day"
                );
                continue;
            }
            debug!(day, nodes = n, "node states read");
            break (day, *marker, states);
        };
        if day < start - 1 {
            info!(
                day,
                "node states are kept from this day on: closing again from the day after it"
            );
        }
        /// A row of the query below.
        #[derive(Deserialize)]
        struct FirstDay {
            zone: String,
            version: String,
            first: i64,
        }
        let mut versions = HashSet::new();
        self.client.each(
            &format!(
                "SELECT zone, version, min(first_day) AS first FROM {}.versions
                 GROUP BY zone, version",
                self.db()
            ),
            |r: FirstDay| {
                if r.first <= day {
                    versions.insert((r.zone, r.version));
                }
                Ok(())
            },
        )?;
        Ok(Base {
            day: Some(day),
            stamp: marker.computed_at,
            states,
            versions,
        })
    }

    /// The node states saved as of `day`.
    fn restore_states(&self, day: i64) -> Result<FleetStates, ClickHouseError> {
        /// A row of the query below.
        #[derive(Deserialize)]
        struct State {
            zone: String,
            #[serde(deserialize_with = "hex16")]
            cluster: [u8; 16],
            #[serde(deserialize_with = "hex16")]
            node: [u8; 16],
            last_day: Day,
            last_at: i64,
            version: String,
            status: Status,
        }
        let mut states = FleetStates::new();
        self.client.each(
            &format!(
                "SELECT zone, cluster, node, last_day, last_at, version, status
                 FROM {}.node_state FINAL WHERE as_of = {day}",
                self.db()
            ),
            |r: State| {
                states.restore(&StoredState {
                    zone: &r.zone,
                    cluster: r.cluster,
                    node: r.node,
                    last_day: r.last_day,
                    last_at: r.last_at,
                    version: &r.version,
                    status: r.status,
                });
                Ok(())
            },
        )?;
        Ok(states)
    }

    /// The days whose node states `node_state` holds.
    fn kept_states(&self) -> Result<BTreeSet<i64>, ClickHouseError> {
        /// A row of the query below.
        #[derive(Deserialize)]
        struct Kept {
            as_of: i64,
        }
        let rows: Vec<Kept> = self.client.rows(&format!(
            "SELECT DISTINCT as_of FROM {}.node_state",
            self.db()
        ))?;
        Ok(rows.into_iter().map(|r| r.as_of).collect())
    }

    /// Saves the node states as of `day` (a closed day) in `node_state`.
    pub(super) fn save_states(
        &self,
        states: &FleetStates,
        day: i64,
        stamp: u64,
    ) -> Result<(), ClickHouseError> {
        let mut body = Vec::with_capacity(states.len().min(self.state_chunk_rows) * 200);
        let mut rows = 0;
        for s in states.iter() {
            let row = NodeStateRow {
                as_of: Day(day),
                zone: s.zone,
                cluster: HEXLOWER.encode(&s.cluster),
                node: HEXLOWER.encode(&s.node),
                last_day: s.last_day,
                last_at: s.last_at,
                version: s.version,
                status: s.status,
                computed_at: stamp,
            };
            serde_json::to_writer(&mut body, &row).map_err(serialize)?;
            body.push(b'\n');
            rows += 1;
            if rows == self.state_chunk_rows {
                insert(&self.client, "node_state", &body)?;
                body.clear();
                rows = 0;
            }
        }
        if !body.is_empty() {
            insert(&self.client, "node_state", &body)?;
        }
        Ok(())
    }

    /// Drops the node states of days before the kept ones, on every node.
    pub(super) fn drop_old_states(&self, last_closed: i64) -> Result<(), ClickHouseError> {
        let oldest_kept = last_closed - KEEP_STATE_DAYS + 1;
        for day in self.kept_states()?.range(..oldest_kept) {
            for (client, table) in schema::local_tables(&self.client, &self.topology, NODE_STATE) {
                client.execute(&format!("ALTER TABLE {table} DROP PARTITION {day}"))?;
            }
        }
        Ok(())
    }
}
