//! Command-line interface: argument definitions and one module per command.

mod check;
mod clickhouse;
pub mod exit;
mod keys;
mod policy;
mod serve;
mod simulate;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};
use semver::Version;

use exit::{fail, Exit};
use serde_json::json;
use vcheckd::client::versioned::{ClientKey, VersionCheck};
use vcheckd::client::{Policy, Reporter};
use vcheckd::protocol::{Identity, Report, ZoneName};

#[derive(Debug, Parser)]
#[command(
    name = "vcheckd",
    version,
    about = "Authoritative DNS server for version-check telemetry, and its client",
    after_help = exit::HELP
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `vcheckd man | man -l -`.
    Man {
        /// Write every page instead (vcheckd.1 and one per command, such
        /// as vcheckd-serve.1) into this folder, as the package installs them.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

const COMPLETIONS_HELP: &str = "Install, e.g.:\n  \
vcheckd completions bash > /usr/share/bash-completion/completions/vcheckd\n  \
vcheckd completions zsh > /usr/share/zsh/vendor-completions/_vcheckd\n  \
vcheckd completions fish > /usr/share/fish/vendor_completions.d/vcheckd.fish\n\
(the Debian package installs all three)";

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
        let Some((zone, version, reporter)) = self.check_without_key(policy)? else {
            return Ok(None);
        };
        let key = ClientKey::load(&self.key).map_err(|e| match e {
            // A client is given the vendor's public key: it makes none.
            vcheckd::protocol::KeyError::Io { path, source }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                fail(
                    Exit::NoInput,
                    format!(
                        "--key {path}: no such file: give the zone's public key file (vck2-public:...), which the vendor ships with its software (the vendor makes it with `vcheckd keygen`; a name server's private key is of no use here)"
                    ),
                )
            }
            e => e.into(),
        })?;
        Ok(Some(VersionCheck::new(zone, key, version, reporter)))
    }

    /// As [`Self::check`], with the v2 key given (`encode` with the zone's
    /// private key file).
    fn check_with_v2_key(
        &self,
        policy: Policy,
        key: vcheckd::protocol::v2::PublicKey,
    ) -> Result<Option<VersionCheck>> {
        let Some((zone, version, reporter)) = self.check_without_key(policy)? else {
            return Ok(None);
        };
        Ok(Some(VersionCheck::new(
            zone,
            ClientKey::V2(key),
            version,
            reporter,
        )))
    }

    /// The zone, version and reporter the arguments and environment give.
    fn check_without_key(
        &self,
        policy: Policy,
    ) -> Result<Option<(ZoneName, Version, Option<Reporter>)>> {
        if policy == Policy::Disabled {
            return Ok(None);
        }
        let zone = ZoneName::new(&self.zone)
            .map_err(|e| fail(Exit::Usage, format!("--zone {:?}: {e}", self.zone)))?;
        let version = vcheckd::hint::parse_version(&self.software_version).map_err(|_| {
            fail(
                Exit::Usage,
                format!(
                    "--version {:?} is not a semver version (like 2.4.1)",
                    self.software_version
                ),
            )
        })?;
        let required = |value: &Option<String>, flag: &str| {
            value.clone().ok_or_else(|| {
                fail(
                    Exit::Usage,
                    format!("{flag} is required (or set DISABLE_TELEMETRY=1 to send no identity)"),
                )
            })
        };
        let reporter = match policy {
            Policy::Disabled => return Ok(None),
            Policy::Anonymous => None,
            Policy::Full => Some(Reporter {
                cluster_id: required(&self.cluster_id, "--cluster-id")?,
                node_id: required(&self.node_id, "--node-id")?,
            }),
        };
        Ok(Some((zone, version, reporter)))
    }
}

pub use check::print_usage_json as print_check_usage_json;

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
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vcheckd", &mut out);
            write_stdout(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
                .map_err(|e| fail(Exit::CantCreate, format!("--dir {}: {e}", dir.display())))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir: None } => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            write_stdout(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
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

/// [`report_json`]'s fields for a person, one per line.
fn report_text(v: &serde_json::Value) -> String {
    let mut text = String::new();
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
        text.push_str(&format!("  {:<10} {value}\n", format!("{label}:")));
    }
    text
}

/// Writes to stdout without panicking when the reader went away: the
/// error goes up, and `main` ends quietly on a closed pipe.
fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
