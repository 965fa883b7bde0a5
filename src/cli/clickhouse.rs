//! `vcheckd clickhouse migrate`: creates or upgrades the ClickHouse schema
//! of a configuration's `[clickhouse]` section (a shipping server also
//! does it on start).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use vcheckd::clickhouse::{self, Client};
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
    }
    Ok(ExitCode::SUCCESS)
}
