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
//! Schema 3 adds the rollup tables (`version_days`, the `snapshot_*`
//! tables, `clusters`, `versions`, `node_state`, `rollup_days`; see
//! `rollup`), laid out the same way; schema 4 the rollup's lease
//! (`rollup_lease`, see `lease`). On a replicated cluster every `_local`
//! table needs a Replicated engine (docs/DEPLOY.md §9).
//!
//! Queries over the Distributed tables keep to shapes that ClickHouse
//! 18.16 (Debian's) runs the same whether a shard is read in-process (its
//! address is one of the server's own and `prefer_localhost_replica` = 1)
//! or over TCP. Checked on 18.16.1 with two servers, each shard read both
//! ways, and through a server holding no shard:
//! - a scalar subquery in the SELECT list (`SELECT a, (SELECT count() FROM
//!   dist) FROM dist`) fails every way ("Not found column _subquery1 in
//!   block"): run two queries;
//! - `x IN (SELECT .. FROM dist)` is refused (`distributed_product_mode` =
//!   'deny'); `GLOBAL IN` works;
//! - a derived table (`SELECT .. FROM (SELECT .. FROM dist GROUP BY ..)`)
//!   and a scalar subquery in WHERE work every way.
//!
//! vcheckd's readers use derived tables only; tests/clickhouse.rs runs the
//! cluster both ways.
//!
//! `vcheckd_schema` holds the versions applied. Every statement is
//! idempotent (`IF NOT EXISTS`), so a migration cut short is simply run
//! again.

use serde::Deserialize;

use super::client::{one, ClickHouseError, Client};
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
/// 3: the rollup tables (see `rollup`). 4: `rollup_lease` (see `lease`).
pub const SCHEMA_VERSION: u32 = 4;

/// A table of the schema: its columns, engine, and on a cluster the
/// Distributed table's sharding expression.
struct Table {
    name: &'static str,
    columns: &'static str,
    engine: &'static str,
    shard: &'static str,
}

/// Rollup rows are written again whenever a day is computed again (the
/// open day every few minutes, a closed day after late reports): each
/// carries the time it was computed, and a merge, or `FINAL` when read,
/// keeps the newest per key. A key the newer computation no longer has
/// is written with zero counts, and readers skip zero rows. One rollup
/// runs at a time (the lease, `rollup_lease`): two at once could leave
/// keys only the older one wrote. On a cluster, a day's rows are on one shard
/// (sharded by day), so `FINAL` sees every copy of a key.
///
/// The tables, in creation order.
const TABLES: &[Table] = &[
    Table {
        name: "reports",
        columns: COLUMNS,
        engine: ENGINE,
        // A report's deliveries, and a cluster's nodes, on one shard; an
        // anonymous report (no cluster) by its id.
        shard: "sipHash64(if(anonymous = 1, toString(report_id), toString(cluster)))",
    },
    Table {
        name: "counters",
        columns: COUNTER_COLUMNS,
        engine: COUNTER_ENGINE,
        shard: "sipHash64(server)",
    },
    // Per zone, day and version: reports counted once (as SQLite's
    // `version_days`).
    Table {
        name: "version_days",
        columns: "zone String, day Int32, version String,
            reports UInt64, anonymous UInt64,
            last_at Int64,        -- latest identified report; -1: none
            status UInt8,         -- answered to it, else to the latest anonymous one
            computed_at UInt64",
        engine: concat!(
            "ReplacingMergeTree(computed_at) PARTITION BY intDiv(day, 360) ",
            "ORDER BY (zone, day, version)"
        ),
        shard: "day",
    },
    // The fleet snapshots, as SQLite's tables of the same names
    // (`store::snapshot`), share_mixed as the bits of its f64 so that it
    // reads back exactly.
    Table {
        name: "snapshot_versions",
        columns: "zone String, day Int32, window UInt16, version String,
            clusters UInt64, share_mixed_bits UInt64, nodes UInt64, min_clusters UInt64,
            computed_at UInt64",
        engine: concat!(
            "ReplacingMergeTree(computed_at) PARTITION BY intDiv(day, 360) ",
            "ORDER BY (zone, day, window, version)"
        ),
        shard: "day",
    },
    Table {
        name: "snapshot_totals",
        columns: "zone String, day Int32, window UInt16,
            mixed_clusters UInt64, insecure_clusters UInt64, insecure_nodes UInt64,
            computed_at UInt64",
        engine: concat!(
            "ReplacingMergeTree(computed_at) PARTITION BY intDiv(day, 360) ",
            "ORDER BY (zone, day, window)"
        ),
        shard: "day",
    },
    Table {
        name: "snapshot_activity",
        columns: "zone String, day Int32, age UInt16, clusters UInt64, nodes UInt64,
            computed_at UInt64",
        engine: concat!(
            "ReplacingMergeTree(computed_at) PARTITION BY intDiv(day, 360) ",
            "ORDER BY (zone, day, age)"
        ),
        shard: "day",
    },
    // First days: a merge keeps the earliest (`keep` = 2^32-1 - first_day);
    // readers take min(first_day) themselves.
    Table {
        name: "clusters",
        columns: "zone String, cluster FixedString(32), first_day Int32, keep UInt32",
        engine: "ReplacingMergeTree(keep) ORDER BY (zone, cluster)",
        shard: "sipHash64(toString(cluster))",
    },
    Table {
        name: "versions",
        columns: "zone String, version String, first_day Int32, keep UInt32",
        engine: "ReplacingMergeTree(keep) ORDER BY (zone, version)",
        shard: "sipHash64(version)",
    },
    // Every node's state as of a closed day (`as_of`), one partition per
    // day: the next day's close starts from it. The rollup keeps the last
    // few and drops older partitions.
    Table {
        name: "node_state",
        columns: "as_of Int32, zone String, cluster FixedString(32), node FixedString(32),
            last_day Int32, last_at Int64, version String, status UInt8,
            computed_at UInt64",
        engine: "ReplacingMergeTree(computed_at) PARTITION BY as_of
            ORDER BY (as_of, zone, cluster, node)",
        shard: "sipHash64(toString(cluster))",
    },
    // One row per day rolled up, written after the day's rows: closed (1)
    // or open (0, refreshed), the day's raw rows when it was closed
    // (`reports` distinct report ids and `rows` deliveries: its
    // fingerprint), which `node_state` partition holds the node states
    // as of it (-1: none kept), and how many there are (`nodes`, schema
    // 4; -1: not counted), checked when they are read back.
    Table {
        name: "rollup_days",
        columns: "day Int32, closed UInt8, reports UInt64, rows UInt64, state_day Int32,
            computed_at UInt64, nodes Int64 DEFAULT -1",
        engine: "ReplacingMergeTree(computed_at) ORDER BY day",
        shard: "day",
    },
    // The rollup lease (see `lease`): one row per holder, its latest
    // renewal kept. A row per holder rather than one per key, so that
    // the earliest claim among fresh ones decides, whichever was
    // written last. One shard holds them all.
    Table {
        name: "rollup_lease",
        columns: "lease String, holder String, claimed_at UInt64, expires Int64, at UInt64",
        engine: "ReplacingMergeTree(at) ORDER BY (lease, holder)",
        shard: "sipHash64(lease)",
    },
];

/// Columns added to a table after it was first created: (schema
/// version, table, column, type). `CREATE TABLE IF NOT EXISTS` leaves an
/// older table as it is, so a migration adds them.
const ADDED_COLUMNS: &[(u32, &str, &str, &str)] =
    &[(4, "rollup_days", "nodes", "Int64 DEFAULT -1")];

/// Adds the columns a database of schema `found` lacks, to the local
/// table and, on a cluster, the Distributed one (18.16 has no `ADD
/// COLUMN IF NOT EXISTS`: `system.columns` says what is there).
fn add_columns(node: &Client, topology: &Topology, found: u32) -> Result<(), ClickHouseError> {
    let db = node.database();
    for (version, table, column, kind) in ADDED_COLUMNS {
        if found >= *version {
            continue;
        }
        let tables = match topology {
            Topology::Single => vec![table.to_string()],
            Topology::Cluster { .. } => vec![format!("{table}_local"), table.to_string()],
        };
        for t in tables {
            let present: Count = one(node.rows(&format!(
                "SELECT count() AS n FROM system.columns
                 WHERE database = '{db}' AND table = '{t}' AND name = '{column}'"
            ))?)?;
            if present.n == 0 {
                node.execute(&format!("ALTER TABLE {db}.{t} ADD COLUMN {column} {kind}"))?;
            }
        }
    }
    Ok(())
}

/// The node states' table, whose old partitions the rollup drops on
/// every node.
pub(crate) const NODE_STATE: &str = "node_state";

fn single_statements(db: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{} ({}) ENGINE = {}",
                t.name, t.columns, t.engine
            )
        })
        .collect()
}

fn node_statements(db: &str, cluster: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in TABLES {
        let name = t.name;
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{name}_local ({}) ENGINE = {}",
            t.columns, t.engine
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{name} AS {db}.{name}_local
             ENGINE = Distributed({cluster}, {db}, {name}_local, {})",
            t.shard
        ));
    }
    out
}

/// The local table of `name` on each node: the table itself on a single
/// server, `<name>_local` on every node of a cluster.
pub(crate) fn local_tables(
    client: &Client,
    topology: &Topology,
    name: &str,
) -> Vec<(Client, String)> {
    match topology {
        Topology::Single => vec![(client.clone(), format!("{}.{name}", client.database()))],
        Topology::Cluster { nodes, .. } => nodes
            .iter()
            .map(|u| {
                let c = Client::new(u, std::time::Duration::from_secs(60));
                let t = format!("{}.{name}_local", c.database());
                (c, t)
            })
            .collect(),
    }
}

fn schema_version(client: &Client) -> Result<u32, ClickHouseError> {
    let db = client.database();
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.vcheckd_schema (version UInt32) ENGINE = TinyLog"
    ))?;
    /// The row of the query below.
    #[derive(Deserialize)]
    struct Applied {
        version: u32,
    }
    let rows: Vec<Applied> = client.rows(&format!(
        "SELECT max(version) AS version FROM {db}.vcheckd_schema"
    ))?;
    Ok(rows.first().map_or(0, |r| r.version))
}

/// The row of a `count() AS n` query.
#[derive(Deserialize)]
struct Count {
    n: u64,
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
        add_columns(node, topology, found)?;
        node.execute(&format!(
            "INSERT INTO {db}.vcheckd_schema (version) VALUES ({SCHEMA_VERSION})"
        ))?;
    }
    Ok(())
}
