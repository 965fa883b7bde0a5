//! `vcheckd stats`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;

use vcheckd::stats;
use vcheckd::store::Store;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The server's database.
    #[arg(long, env = "VCHECKD_DB", default_value = "data/vcheckd.sqlite")]
    db: PathBuf,
    /// Window: the last N days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatsArgs) -> Result<ExitCode> {
    if !args.db.exists() {
        anyhow::bail!(
            "no database at {} (start the server first, or pass --db)",
            args.db.display()
        );
    }
    let store = Store::open_read_only(&args.db)
        .with_context(|| format!("opening {}", args.db.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let since = now - i64::from(args.days) * 86_400;
    let result = stats::versions(&store, since, now + 1)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("last {} days:", args.days);
        print!("{}", result.to_table());
    }
    Ok(ExitCode::SUCCESS)
}
