//! `vcheckd simulate`: a realistic fleet's reports, written into a database
//! file (weeks of history) or sent to a running server (today's reports).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use vcheckd::config::Config;
use vcheckd::hint::{Releases, ReleasesConfig};
use vcheckd::protocol::{Key, KeyId, ZoneName};
use vcheckd::simulate::dns::{self, DnsTarget};
use vcheckd::simulate::{db, defaults, schedule, Fleet, Release, SimConfig, SimReport, Truth};
use vcheckd::stats::date_of_day;
use vcheckd::store::Store;

const AFTER_HELP: &str = "Examples:\n  \
vcheckd simulate --db data/vcheckd.sqlite              # 90 days of history for the dashboard\n  \
vcheckd simulate --server 127.0.0.1:5300 --key data/demo.key   # today's reports, as DNS queries\n\
With both --db and --server, the days before today go into the file and today's reports to the server.\n\
The same --seed gives the same fleet; writing the same history twice only adds duplicates.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SimulateArgs {
    /// Write the simulated history straight into this database file
    /// (created if missing; a running server's file is fine).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Send today's reports to this server as DNS queries, HOST:PORT.
    #[arg(long)]
    server: Option<String>,
    /// The telemetry zone.
    #[arg(long, env = "VCHECKD_ZONE", default_value = "vc.example.com")]
    zone: String,
    /// The zone's protocol v1 key file (`vcheckd keygen --v1`; the
    /// simulator speaks v1 only). Required with --server; with --db alone
    /// a key derived from the seed is used.
    #[arg(long, env = "VCHECKD_KEY")]
    key: Option<PathBuf>,
    /// Server configuration whose [zone.releases] answer the reports and,
    /// without --release, make the schedule (default: the embedded default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A release and its day, counted from the first simulated day (may be
    /// negative); repeat. Default: the configuration's stable versions,
    /// evenly spaced from a third of --days before the start to two thirds in.
    #[arg(long = "release", value_name = "VERSION@DAY")]
    releases: Vec<String>,
    /// Clusters in the fleet.
    #[arg(long, default_value_t = defaults::CLUSTERS)]
    clusters: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days of history, ending today (at most ten years).
    #[arg(long, default_value_t = defaults::DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Largest cluster, in nodes.
    #[arg(long, default_value_t = defaults::MAX_NODES)]
    max_nodes: u32,
    /// Share of clusters with DISABLE_TELEMETRY (anonymous reports).
    #[arg(long, default_value_t = defaults::ANONYMOUS_SHARE)]
    anonymous_share: f64,
    /// Share of clusters that never upgrade.
    #[arg(long, default_value_t = defaults::NEVER_UPGRADE_SHARE)]
    never_upgrade_share: f64,
    /// Share of clusters that join after the first day.
    #[arg(long, default_value_t = defaults::LATE_JOIN_SHARE)]
    late_join_share: f64,
    /// Share of clusters that stop reporting before today.
    #[arg(long, default_value_t = defaults::LEAVE_SHARE)]
    leave_share: f64,
    /// Chance that a node misses a day's report.
    #[arg(long, default_value_t = defaults::MISS_SHARE)]
    miss_share: f64,
    /// Chance that a report is delivered twice (--db only; the server sees
    /// real retries).
    #[arg(long, default_value_t = defaults::DUPLICATE_SHARE)]
    duplicate_share: f64,
    /// Median days from a release until a cluster starts upgrading.
    #[arg(long, default_value_t = defaults::MEDIAN_LAG_DAYS)]
    median_lag_days: f64,
    /// Queries per second to the server.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// Times an unanswered query is sent again.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Also print the generator's own figures (last 7 days; adoption of
    /// the newest release) as JSON, to compare with `vcheckd stats`.
    #[arg(long)]
    truth: bool,
}

fn parse_server(text: &str) -> Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .with_context(|| format!("--server {text:?}: not HOST:PORT"))?
        .next()
        .with_context(|| format!("--server {text:?} has no address"))
}

/// The simulator sends protocol v1 reports only: a v2 key file (the
/// public one, or the private one) is named as such, with the fix.
fn load_v1_key(path: &std::path::Path) -> Result<Key> {
    use vcheckd::client::versioned::ClientKey;
    match Key::load(path) {
        Ok(key) => Ok(key),
        Err(e) => {
            let v2 = matches!(ClientKey::load(path), Ok(ClientKey::V2(_)))
                || vcheckd::protocol::v2::PrivateKey::load(path).is_ok();
            if v2 {
                return Err(super::exit::fail(
                    super::exit::Exit::Usage,
                    format!(
                        "--key {}: a protocol v2 key; the simulator sends protocol v1 reports only: give it the zone's v1 key (a `keys` file of the server's [[zone]]; the embedded default's is data/demo.key)",
                        path.display()
                    ),
                ));
            }
            Err(e.into())
        }
    }
}

/// The release rule and schedule the fleet runs on.
fn releases(args: &SimulateArgs, zone: &ZoneName) -> Result<(Releases, Vec<Release>)> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    let mut schedule = args
        .releases
        .iter()
        .map(|r| Release::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let found = config
        .zones
        .iter()
        .find(|z| ZoneName::new(&z.name).is_ok_and(|n| n == *zone));
    let rules = match found {
        Some(z) => z.releases.clone(),
        // Without a configured zone, the schedule's versions are the releases.
        None if !schedule.is_empty() => ReleasesConfig {
            versions: schedule.iter().map(|r| r.version.to_string()).collect(),
            ..ReleasesConfig::default()
        },
        None => bail!(
            "zone {zone} is not in the configuration{}: pass --config with it, or --release",
            args.config
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default()
        ),
    };
    if schedule.is_empty() {
        schedule = schedule::derive(&rules.versions, args.days);
    }
    Ok((Releases::try_from(&rules)?, schedule))
}

fn truth_json(fleet: &Fleet, reports: &[SimReport]) -> serde_json::Value {
    let truth = Truth::new(fleet, reports);
    let last = fleet.end_day;
    let newest = fleet.versions.last().expect("a release");
    json!({
        "summary": truth.summary(last - 6, last),
        "versions": truth.versions(last - 6, last),
        "adoption": truth.adoption(newest, last),
    })
}

pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    if args.db.is_none() && args.server.is_none() {
        bail!("say where the reports go: --db FILE, --server HOST:PORT, or both");
    }
    let zone = ZoneName::new(&args.zone).with_context(|| format!("--zone {:?}", args.zone))?;
    let server = args.server.as_deref().map(parse_server).transpose()?;
    let key = match &args.key {
        Some(path) => load_v1_key(path)?,
        None if server.is_some() => {
            bail!("--server needs --key (the key the server decrypts with)")
        }
        None => Key::new(
            KeyId(1),
            StdRng::seed_from_u64(args.seed ^ 0x6b65_7973).random(),
        ),
    };
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let (rules, schedule) = releases(&args, &zone)?;
    let now = vcheckd::clock::unix_now();
    let config = SimConfig {
        clusters: args.clusters,
        days: args.days,
        max_nodes: args.max_nodes,
        anonymous_share: args.anonymous_share,
        never_upgrade_share: args.never_upgrade_share,
        late_join_share: args.late_join_share,
        leave_share: args.leave_share,
        miss_share: args.miss_share,
        duplicate_share: args.duplicate_share,
        median_lag_days: args.median_lag_days,
        ..SimConfig::new(args.seed, now, schedule, rules)
    };
    let fleet = Fleet::generate(&config)?;
    let mut truth = serde_json::Map::new();

    if let Some(path) = &args.db {
        let started = Instant::now();
        let reports = if server.is_some() {
            fleet.history_before(fleet.end_day)
        } else {
            &fleet.history[..]
        };
        let mut store = Store::open(path).with_context(|| format!("opening {}", path.display()))?;
        let out = db::write(&fleet, reports, &key, &zone, &mut store)?;
        let last_day = if server.is_some() {
            fleet.end_day - 1
        } else {
            fleet.end_day
        };
        println!(
            "vcheckd simulate: {} clusters ({} nodes) over {}..{}, releases {}: wrote {} reports \
             ({} stored, {} duplicates, {} anonymous) to {} in {:.1} s",
            fleet.clusters.len(),
            fleet.nodes.len(),
            date_of_day(fleet.start_day),
            date_of_day(last_day),
            schedule_text(&fleet),
            out.deliveries,
            out.stored,
            out.duplicates,
            out.anonymous,
            path.display(),
            started.elapsed().as_secs_f64()
        );
        if args.truth {
            truth.insert("history".into(), truth_json(&fleet, reports));
        }
    }

    if let Some(addr) = server {
        let snapshot = fleet.snapshot();
        let target = DnsTarget {
            server: addr,
            zone: zone.clone(),
            key: key.clone(),
            rate: args.rate,
            timeout: Duration::try_from_secs_f64(args.timeout)
                .ok()
                .filter(|t| !t.is_zero() && t.as_secs() <= 3600)
                .context("--timeout must be a number of seconds above 0 and at most 3600")?,
            retries: args.retries,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let out = runtime.block_on(dns::send(&fleet, &snapshot, &target))?;
        let alive = fleet
            .clusters
            .iter()
            .filter(|c| c.alive_on(fleet.end_day))
            .count();
        let [unknown, current, available, required] = out.by_status();
        println!(
            "vcheckd simulate: sent {} reports of {alive} clusters to {addr} in {:.1} s \
             ({} queries, at most {}/s): answered {}, lost {}, errors {}; \
             up-to-date {current}, upgrade-available {available}, upgrade-required {required}, unknown {unknown}",
            out.reports,
            out.elapsed.as_secs_f64(),
            out.queries,
            args.rate,
            out.answered.len(),
            out.lost,
            out.errors,
        );
        if args.truth {
            let answered: Vec<SimReport> = out.answered.iter().map(|a| snapshot[a.index]).collect();
            truth.insert("today".into(), truth_json(&fleet, &answered));
        }
        if out.answered.is_empty() && out.reports > 0 {
            eprintln!("vcheckd simulate: no answer from {addr}; is the server running?");
            return Ok(ExitCode::from(3));
        }
    }
    if args.truth {
        println!("{}", serde_json::to_string_pretty(&truth)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `2.2.0 (day -30), 2.3.0 (day 0), ...`: the schedule as simulated.
fn schedule_text(fleet: &Fleet) -> String {
    fleet
        .versions
        .iter()
        .zip(&fleet.release_day)
        .map(|(v, d)| format!("{v} ({})", date_of_day(*d)))
        .collect::<Vec<_>>()
        .join(", ")
}
