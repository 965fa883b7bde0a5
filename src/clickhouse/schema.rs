//! The ClickHouse schema, created and migrated by vcheckd (on start of a
//! server that ships, and by `vcheckd clickhouse migrate`).
//!
//! One table of reports, one row per delivery, and one of each name
//! server's counters (see `counters`). Single server: `reports` and
//! `counters` are ReplacingMergeTrees. Cluster: `reports_local` and
//! `counters_local` on every node, and `reports` and `counters`,
//! Distributed tables over them; reports sharded by cluster id (so all
//! deliveries of a report, and every node of a cluster, land on one
//! shard), counters by server (so each server's totals are on one). Replication is the cluster's business: make `reports_local` a
//! ReplicatedMergeTree by hand before the first start (docs/DEPLOY.md §9).
//!
//! `vcheckd_schema` holds the versions applied. Every statement is
//! idempotent (`IF NOT EXISTS`), so a migration cut short is simply run
//! again.

use super::client::{field, ClickHouseError, Client};
use super::url::ClickHouseUrl;

/// Where the schema lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One ClickHouse server.
    Single,
    /// A cluster from ClickHouse's `remote_servers`: `name`, and the HTTP
    /// address of every node (each gets the local table and the
    /// Distributed table).
    Cluster {
        name: String,
        nodes: Vec<ClickHouseUrl>,
    },
}

/// The columns of a report row (see `row::Row`), and the storage order:
/// by node, so per-node questions read adjacent rows, and with the
/// deduplication key last.
const COLUMNS: &str = "
    zone        String,
    cluster     FixedString(32),   -- hex; zeros when withheld
    node        FixedString(32),
    client_time Int64,             -- client clock, unix seconds
    report_id   FixedString(24),   -- hex of the frame nonce
    anonymous   UInt8,
    received_at Int64,             -- this server's clock, unix seconds
    day         Int32,             -- UTC day of received_at
    version     String,
    version_key String,            -- semver order as bytes (hex)
    status      UInt8,             -- the hint status answered
    key_id      UInt8,
    server      String,            -- the name server that received it
    keep        UInt32             -- larger for an earlier delivery
";

/// Deliveries of one report share the key: a merge keeps one of them, the
/// one received first (largest `keep`). Queries never rely on merges
/// having happened (they deduplicate exactly); merges only give the space
/// back. Partitions are 30 receive days.
const ENGINE: &str = "ReplacingMergeTree(keep)
    PARTITION BY intDiv(day, 30)
    ORDER BY (zone, cluster, node, client_time, report_id)";

/// Each name server's counters: per UTC day, counter and process run,
/// the run's running total (see `counters`). A total only grows, so a
/// merge keeps the largest; queries take the largest per key themselves.
const COUNTER_COLUMNS: &str = "
    day    Int32,
    name   String,
    server String,
    run    UInt64,   -- one process run of the server
    value  UInt64    -- the run's total of the counter on the day
";

const COUNTER_ENGINE: &str = "ReplacingMergeTree(value)
    PARTITION BY intDiv(day, 30)
    ORDER BY (day, name, server, run)";

/// The schema version this vcheckd writes and reads. 2: `counters`.
pub const SCHEMA_VERSION: u32 = 2;

fn single_statements(db: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE IF NOT EXISTS {db}.reports ({COLUMNS}) ENGINE = {ENGINE}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.counters ({COUNTER_COLUMNS}) ENGINE = {COUNTER_ENGINE}"
        ),
    ]
}

fn node_statements(db: &str, cluster: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE IF NOT EXISTS {db}.reports_local ({COLUMNS}) ENGINE = {ENGINE}"),
        // A report's deliveries, and a cluster's nodes, on one shard; an
        // anonymous report (no cluster) by its id.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.reports AS {db}.reports_local
             ENGINE = Distributed({cluster}, {db}, reports_local,
                 sipHash64(if(anonymous = 1, toString(report_id), toString(cluster))))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.counters_local ({COUNTER_COLUMNS})
             ENGINE = {COUNTER_ENGINE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.counters AS {db}.counters_local
             ENGINE = Distributed({cluster}, {db}, counters_local, sipHash64(server))"
        ),
    ]
}

fn schema_version(client: &Client) -> Result<u32, ClickHouseError> {
    let db = client.database();
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.vcheckd_schema (version UInt32) ENGINE = TinyLog"
    ))?;
    let rows = client.query(&format!("SELECT max(version) FROM {db}.vcheckd_schema"))?;
    match rows.first() {
        Some(row) => field(row, 0),
        None => Ok(0),
    }
}

/// Creates the database and tables, or brings them to [`SCHEMA_VERSION`].
/// A schema newer than this vcheckd is refused rather than half-understood.
pub fn migrate(client: &Client, topology: &Topology) -> Result<(), ClickHouseError> {
    let targets: Vec<Client> = match topology {
        Topology::Single => vec![client.clone()],
        Topology::Cluster { nodes, .. } => nodes
            .iter()
            .map(|u| Client::new(u, std::time::Duration::from_secs(30)))
            .collect(),
    };
    for node in &targets {
        let db = node.database();
        node.execute_without_database(&format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
        let found = schema_version(node)?;
        if found > SCHEMA_VERSION {
            return Err(ClickHouseError::TooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            continue;
        }
        let statements = match topology {
            Topology::Single => single_statements(db),
            Topology::Cluster { name, .. } => node_statements(db, name),
        };
        for sql in statements {
            node.execute(&sql)?;
        }
        node.execute(&format!(
            "INSERT INTO {db}.vcheckd_schema (version) VALUES ({SCHEMA_VERSION})"
        ))?;
    }
    Ok(())
}
