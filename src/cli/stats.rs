//! `vcheckd stats`: the statistics of src/stats, as table, JSON or CSV.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use vcheckd::stats::render::{self, Tabular, TrendTable};
use vcheckd::stats::{self, Bucket, Dataset, Scope};
use vcheckd::store::Store;

#[derive(Debug, Args)]
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

fn parse_day(flag: &str, text: &str) -> Result<i64> {
    stats::day_of_date(text).with_context(|| format!("{flag} {text:?}: expected YYYY-MM-DD"))
}

fn print(value: &(impl Serialize + Tabular), format: Format) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Csv => print!("{}", render::csv(value)),
        Format::Table => print!("{}", render::table(value)),
    }
    Ok(())
}

pub fn run(args: StatsArgs) -> Result<ExitCode> {
    let mut stores = Vec::new();
    for db in &args.db {
        if !db.exists() {
            bail!(
                "no database at {} (start the server first, or pass --db)",
                db.display()
            );
        }
        stores
            .push(Store::open_read_only(db).with_context(|| format!("opening {}", db.display()))?);
    }
    let today = vcheckd::clock::today();
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
        bail!("--since is after --until");
    }
    if until > today + 1 {
        bail!("--until is in the future: there is no data after today");
    }
    let format = if args.json { Format::Json } else { args.format };
    let zone = args.zone.clone();
    match what {
        What::Summary => {
            let data = Dataset::load(&stores, &stats::summary_scope(since, until, zone))?;
            print(&stats::summary(&data, since, until), format)?;
        }
        What::Versions => {
            let scope = Scope {
                first_day: since,
                last_day: until,
                zone,
            };
            let data = Dataset::load(&stores, &scope)?;
            print(&stats::versions(&data, since, until), format)?;
        }
        What::Trend { by } => {
            let scope = Scope {
                first_day: since,
                last_day: until,
                zone,
            };
            let data = Dataset::load(&stores, &scope)?;
            let bucket = match by {
                By::Day => Bucket::Day,
                By::Week => Bucket::Week,
            };
            let points = stats::trend(&data, since, until, bucket);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&points)?),
                Format::Csv => print!("{}", render::csv(&TrendTable(&points))),
                Format::Table => print!("{}", render::table(&TrendTable(&points))),
            }
        }
        What::Adoption { version } => {
            let version = vcheckd::hint::parse_version(&version)
                .with_context(|| format!("{version:?} is not a semver version"))?;
            let Some(adoption) = stats::adoption_for(&stores, &version, until, zone)? else {
                bail!("no report has carried version {version} yet");
            };
            let released = adoption.released_day.unwrap_or(until);
            if format == Format::Table {
                let days =
                    |d: Option<i64>| d.map_or("not yet".to_string(), |d| format!("after {d} days"));
                println!(
                    "{version}: first seen {}; 50% of active clusters: {}; 90%: {}",
                    stats::date_of_day(released),
                    days(adoption.days_to_50),
                    days(adoption.days_to_90)
                );
            }
            print(&adoption, format)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
