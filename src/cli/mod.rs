//! Command-line interface: argument definitions and one module per command.

mod check;
mod clickhouse;
mod keys;
mod policy;
mod serve;
mod simulate;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use serde_json::json;
use vcheckd::client::versioned::{ClientKey, VersionCheck};
use vcheckd::client::{Policy, Reporter};
use vcheckd::protocol::{Identity, Report, ZoneName};

#[derive(Debug, Parser)]
#[command(
    name = "vcheckd",
    version,
    about = "Authoritative DNS server for version-check telemetry, and its client"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the DNS server (without --config: the embedded demo default).
    Serve(serve::ServeArgs),
    /// Check for a newer version: send one report and print the hint.
    Check(check::CheckArgs),
    /// Print the query name for a report, for scripts (sends nothing).
    Encode(check::EncodeArgs),
    /// Decode a query name with the key, as the server would.
    Decode(keys::DecodeArgs),
    /// Create a new key pair (protocol v2), or a v1 shared key.
    Keygen(keys::KeygenArgs),
    /// The zones' compiled, signed release policies (protocol v2).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Version statistics from the database.
    Stats(stats::StatsArgs),
    /// Generate a realistic fleet's reports: weeks of history into a
    /// database file, or today's reports as queries to a running server.
    Simulate(simulate::SimulateArgs),
    /// The ClickHouse schema (`migrate`).
    #[command(name = "clickhouse")]
    ClickHouse(clickhouse::ClickHouseArgs),
}

/// What a report is made of; shared by `check` and `encode`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The delegated telemetry zone, e.g. vc.example.com.
    #[arg(long, env = "VCHECKD_ZONE")]
    zone: String,
    /// The zone's key file, as made by `vcheckd keygen`: a v2 public key
    /// (`vck2-public:...`: protocol v2) or a v1 shared key (`vck1:...`).
    #[arg(long, env = "VCHECKD_KEY")]
    key: PathBuf,
    /// The real cluster id; only its keyed hash is sent.
    #[arg(long, env = "VCHECKD_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// The real node id; only its keyed hash is sent.
    #[arg(long, env = "VCHECKD_NODE_ID")]
    node_id: Option<String>,
    /// The running software version (semver; a leading "v" is accepted).
    #[arg(long = "version", value_name = "VERSION")]
    software_version: String,
}

impl ReportArgs {
    /// Builds the check the environment allows (`None`: checks disabled).
    fn check(&self, policy: Policy) -> Result<Option<VersionCheck>> {
        // Disabled means nothing is done at all: not even a key is read.
        if policy == Policy::Disabled {
            return Ok(None);
        }
        let zone = ZoneName::new(&self.zone).with_context(|| format!("--zone {:?}", self.zone))?;
        let key = ClientKey::load(&self.key)?;
        let version = vcheckd::hint::parse_version(&self.software_version).with_context(|| {
            format!(
                "--version {:?} is not a semver version (like 2.4.1)",
                self.software_version
            )
        })?;
        let reporter = match policy {
            Policy::Disabled => return Ok(None),
            Policy::Anonymous => None,
            Policy::Full => Some(Reporter {
                cluster_id: self.cluster_id.clone().context(
                    "--cluster-id is required (or set DISABLE_TELEMETRY=1 to send no identity)",
                )?,
                node_id: self.node_id.clone().context(
                    "--node-id is required (or set DISABLE_TELEMETRY=1 to send no identity)",
                )?,
            }),
        };
        Ok(Some(VersionCheck::new(zone, key, version, reporter)))
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Check(a) => check::run_check(a),
        Command::Encode(a) => check::run_encode(a),
        Command::Decode(a) => keys::run_decode(a),
        Command::Keygen(a) => keys::run_keygen(a),
        Command::Policy(c) => policy::run(c),
        Command::Stats(a) => stats::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::ClickHouse(a) => clickhouse::run(a),
    }
}

/// A decoded report as JSON: what `check --dry-run`, `encode --json` and
/// `decode` all show, so that the preview and the decoder read alike.
fn report_json(report: &Report) -> serde_json::Value {
    let p = &report.payload;
    let (cluster, node) = match p.identity {
        Identity::Withheld => (None, None),
        Identity::Known { cluster, node } => (Some(cluster.to_hex()), Some(node.to_hex())),
    };
    json!({
        "report_id": report.id.to_hex(),
        "key_id": report.key_id.0,
        "timestamp": p.timestamp,
        "cluster": cluster,
        "node": node,
        "version": p.version.to_string(),
        "flags": p.flags(),
    })
}

/// Prints [`report_json`]'s fields for a person, one per line.
fn print_report(v: &serde_json::Value) {
    for (label, field) in [
        ("report id", "report_id"),
        ("key id", "key_id"),
        ("timestamp", "timestamp"),
        ("cluster", "cluster"),
        ("node", "node"),
        ("version", "version"),
        ("flags", "flags"),
    ] {
        let value = match &v[field] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "(withheld: DISABLE_TELEMETRY)".into(),
            other => other.to_string(),
        };
        println!("  {:<10} {value}", format!("{label}:"));
    }
}

/// An error and its causes on one line, as `outer: inner: innermost`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
