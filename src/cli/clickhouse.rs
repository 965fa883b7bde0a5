//! `vcheckd clickhouse migrate`: creates or upgrades the ClickHouse schema
//! of a configuration's `[clickhouse]` section (a shipping server also
//! does it on start). `vcheckd clickhouse rollup`: closes the days that
//! are over and refreshes the open ones (a server with `rollup = true`
//! does it every `rollup_interval_secs`), holding the rollup lease while
//! it runs: when a server holds it, it exits 75 (EX_TEMPFAIL) naming the
//! holder and when its lease expires.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use vcheckd::clickhouse::{self, Client};
use vcheckd::clock::date_of_day as date;
use vcheckd::config::Config;

#[derive(Debug, Args)]
pub struct ClickHouseArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Create the database and tables, or bring them to this vcheckd's
    /// schema (every node of a cluster).
    Migrate {
        /// The server's configuration, with a [clickhouse] section.
        #[arg(long)]
        config: PathBuf,
    },
    /// Compute what statistics read from ClickHouse: close every day not
    /// closed yet (up to yesterday, after the grace period), close again
    /// recent days that got late reports, refresh the open days.
    Rollup {
        /// The server's configuration, with a [clickhouse] section.
        #[arg(long)]
        config: PathBuf,
        /// Close again every day from this one on (YYYY-MM-DD, UTC), e.g.
        /// after late reports older than the days checked on every run.
        #[arg(long)]
        from: Option<String>,
    },
}

pub fn run(args: ClickHouseArgs) -> Result<ExitCode> {
    match args.what {
        What::Migrate { config } => {
            let config = Config::load(&config)?;
            let ch = config
                .clickhouse
                .context("the configuration has no [clickhouse] section")?;
            let client = Client::new(&ch.url, ch.timeout());
            clickhouse::migrate(&client, &ch.topology())
                .with_context(|| format!("migrating {}", ch.url))?;
            println!("{}: schema version {}", ch.url, clickhouse::SCHEMA_VERSION);
        }
        What::Rollup { config, from } => {
            let from = from
                .map(|f| super::stats::parse_day("--from", &f))
                .transpose()?;
            let config = Config::load(&config)?;
            let ch = config
                .clickhouse
                .context("the configuration has no [clickhouse] section")?;
            let mut job = ch.rollup_job();
            clickhouse::migrate(job.client(), &ch.topology())
                .with_context(|| format!("migrating {}", ch.url))?;
            let started = std::time::Instant::now();
            // The lease is given up whatever happened: a server's rollup
            // takes over at once, not when it expires.
            let done = job.run(vcheckd::clock::unix_now(), from);
            let released = job.release();
            let done = done.with_context(|| format!("rolling up {}", ch.url))?;
            released.with_context(|| format!("giving up the rollup lease of {}", ch.url))?;
            let days = |r: Option<(i64, i64)>| match r {
                Some((a, b)) => format!("{} to {} ({} days)", date(a), date(b), b - a + 1),
                None => "none".to_string(),
            };
            println!(
                "{}: closed {}; open days refreshed {}; {:.1} s",
                ch.url,
                days(done.closed),
                days(done.open),
                started.elapsed().as_secs_f64()
            );
            match (from, done.from_start) {
                (Some(f), Some(s)) if s > f => println!(
                    "--from {}: closed from {} instead, the first day with reports",
                    date(f),
                    date(s)
                ),
                (Some(f), Some(s)) if s < f => println!(
                    "--from {}: closed from {} instead: closing starts after the latest node states kept before that day (or on the first day)",
                    date(f),
                    date(s)
                ),
                _ => {}
            }
            if let Some(late) = done.late_from {
                println!("late reports: closed again from {}", date(late));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
