//! `vcheckd stats`: the statistics of src/stats, as table, JSON or CSV.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::exit::{self, fail, Exit};
use super::write_stdout;
use vcheckd::stats::render::{self, Tabular, TrendTable};
use vcheckd::stats::{Bucket, Source};

#[derive(Debug, Args)]
#[command(after_help = exit::HELP)]
pub struct StatsArgs {
    #[command(subcommand)]
    what: Option<What>,
    /// Database file; repeat to merge several name servers' databases
    /// (a report that reached two servers counts once).
    #[arg(
        long,
        env = "VCHECKD_DB",
        default_value = "data/vcheckd.sqlite",
        global = true
    )]
    db: Vec<PathBuf>,
    /// Read from ClickHouse instead: clickhouse://HOST:PORT/DATABASE (its
    /// HTTP interface), where name servers ship their reports.
    #[arg(long, env = "VCHECKD_STORE", global = true, conflicts_with = "db")]
    store: Option<vcheckd::clickhouse::ClickHouseUrl>,
    /// First day, YYYY-MM-DD (UTC). Default: 7 days before --until (30 for trend).
    #[arg(long, global = true)]
    since: Option<String>,
    /// Last day, YYYY-MM-DD (UTC), included. Default: today.
    #[arg(long, global = true)]
    until: Option<String>,
    /// Only this zone.
    #[arg(long, global = true)]
    zone: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    format: Format,
    /// Same as --format json.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Active clusters and nodes, new and gone clusters, reports, rejects.
    Summary,
    /// Clusters and nodes by version, mixed clusters, share on insecure versions.
    Versions,
    /// Version distribution per day or week.
    Trend {
        #[arg(long, value_enum, default_value_t = By::Day)]
        by: By,
    },
    /// Days from a version's release (first report) until 50% and 90% of
    /// active clusters run it or newer.
    Adoption { version: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum By {
    Day,
    Week,
}

pub(super) fn parse_day(flag: &str, text: &str) -> Result<i64> {
    vcheckd::clock::day_of_date(text)
        .ok_or_else(|| fail(Exit::Usage, format!("{flag} {text:?}: expected YYYY-MM-DD")))
}

/// Prints one result per zone: JSON as an array, CSV as one table (the
/// zone is a column), tables one after the other.
fn print<T: Serialize + Tabular>(values: &[T], format: Format) -> Result<()> {
    let out = match format {
        Format::Json => serde_json::to_string_pretty(values)? + "\n",
        Format::Csv => {
            let tables: Vec<&dyn Tabular> = values.iter().map(|v| v as &dyn Tabular).collect();
            render::csv(&tables)?
        }
        Format::Table => {
            let tables: Vec<String> = values.iter().map(|v| render::table(v)).collect();
            tables.join("\n")
        }
    };
    Ok(write_stdout(&out)?)
}

/// A ClickHouse query of the statistics may read a row per node.
const CLICKHOUSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

pub fn run(args: StatsArgs) -> Result<ExitCode> {
    let today = vcheckd::clock::today().0;
    let until = match &args.until {
        Some(t) => parse_day("--until", t)?,
        None => today,
    };
    let what = args.what.unwrap_or(What::Versions);
    let default_len = if matches!(what, What::Trend { .. }) {
        30
    } else {
        7
    };
    let since = match &args.since {
        Some(t) => parse_day("--since", t)?,
        None => until - default_len + 1,
    };
    if since > until {
        return Err(fail(Exit::Usage, "--since is after --until"));
    }
    if until > today + 1 {
        return Err(fail(
            Exit::Usage,
            "--until is in the future: there is no data after today",
        ));
    }
    let source = match &args.store {
        Some(url) => Source::clickhouse(url, CLICKHOUSE_TIMEOUT),
        None => {
            for db in &args.db {
                if !db.exists() {
                    return Err(fail(
                        Exit::NoInput,
                        format!(
                            "no database at {}: start `vcheckd serve` first, or give --db the file its [server] database names",
                            db.display()
                        ),
                    ));
                }
            }
            // The store's errors name the file and the fix.
            Source::open(&args.db)?
        }
    };
    let format = if args.json { Format::Json } else { args.format };
    let zones = source.select_zones(args.zone.as_deref())?;
    match what {
        What::Summary => {
            let all = zones
                .iter()
                .map(|z| source.summary(z, since, until))
                .collect::<Result<Vec<_>, _>>()?;
            print(&all, format)?;
        }
        What::Versions => {
            let all = zones
                .iter()
                .map(|z| source.versions(z, since, until))
                .collect::<Result<Vec<_>, _>>()?;
            print(&all, format)?;
        }
        What::Trend { by } => {
            let bucket = match by {
                By::Day => Bucket::Day,
                By::Week => Bucket::Week,
            };
            let mut points = Vec::new();
            for z in &zones {
                points.extend(source.trend(z, since, until, bucket)?);
            }
            match format {
                Format::Json => write_stdout(&(serde_json::to_string_pretty(&points)? + "\n"))?,
                Format::Csv => write_stdout(&render::csv(&[&TrendTable(&points)])?)?,
                Format::Table => write_stdout(&render::table(&TrendTable(&points)))?,
            }
        }
        What::Adoption { version } => {
            let version = vcheckd::hint::parse_version(&version).map_err(|_| {
                fail(
                    Exit::Usage,
                    format!("{version:?} is not a semver version (like 2.4.1)"),
                )
            })?;
            let mut all = Vec::new();
            for z in &zones {
                all.extend(source.adoption(z, &version, until)?);
            }
            if all.is_empty() {
                return Err(fail(
                    Exit::NoInput,
                    format!("no report has carried version {version} yet: nothing to measure"),
                ));
            }
            if format == Format::Table {
                let days =
                    |d: Option<i64>| d.map_or("not yet".to_string(), |d| format!("after {d} days"));
                let mut lines = String::new();
                for adoption in &all {
                    let released = adoption.released_day.unwrap_or(until);
                    lines.push_str(&format!(
                        "{} {version}: first seen {}; 50% of active clusters: {}; 90%: {}\n",
                        adoption.zone,
                        vcheckd::clock::date_of_day(released),
                        days(adoption.days_to_50),
                        days(adoption.days_to_90)
                    ));
                }
                write_stdout(&lines)?;
            }
            print(&all, format)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
