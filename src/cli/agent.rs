//! `vcheckd agent`: the periodic version check (docs/CLIENTS.md), on the
//! client library's [`Agent`]: checks at startup after a random delay and
//! then daily with jitter, backs off on failure, keeps its status sticky
//! and says `stale` when it cannot get a fresh policy, writes a JSON status
//! file and a Prometheus textfile. SIGHUP checks now; SIGTERM and SIGINT
//! stop it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tracing::{info, warn};

use super::check::parse_server;
use super::exit::{fail, Exit};
use super::ReportArgs;
use vcheckd::client::agent::{Agent, AgentConfig};
use vcheckd::client::v2::ClientState;
use vcheckd::client::versioned::VersionCheck;
use vcheckd::client::Policy;

#[derive(Debug, Args)]
#[command(after_help = super::exit::HELP)]
pub struct AgentArgs {
    #[command(flatten)]
    report: ReportArgs,
    /// Name server to ask, HOST[:PORT] (default: the system's resolvers).
    #[arg(long, env = "VCHECKD_SERVER")]
    server: Vec<String>,
    /// Seconds between checks (± 10%).
    #[arg(long, default_value_t = 86_400)]
    interval_secs: u64,
    /// The first check waits a random time of up to this many seconds.
    #[arg(long, default_value_t = 300)]
    startup_jitter_secs: u64,
    /// Seconds before the first retry after a failure (doubled per
    /// failure, up to 6 hours or the interval).
    #[arg(long, default_value_t = 60)]
    backoff_secs: u64,
    /// Seconds to wait for each name server's answer to each query (UDP
    /// and a TCP retry together).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// The client state (newest policy accepted); default as for `check`.
    #[arg(long, env = "VCHECKD_STATE")]
    state: Option<PathBuf>,
    /// Write the status as JSON here after every check (for GUIs).
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Write node_exporter's textfile-collector metrics here (a `.prom` file).
    #[arg(long)]
    textfile: Option<PathBuf>,
    /// Milliseconds of one core to spend, at most, on a report's effort proof.
    #[arg(long, default_value_t = 250)]
    effort_budget_ms: u64,
    /// Check once (no startup delay), write the files, and exit with the
    /// check's outcome: for a systemd timer or a Kubernetes CronJob.
    #[arg(long)]
    once: bool,
}

pub fn run(args: AgentArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let policy = Policy::from_env();
    let check = args.report.check(policy)?.map(|c| match c {
        VersionCheck::V2(mut c) => {
            c.effort_budget = Duration::from_millis(args.effort_budget_ms);
            VersionCheck::V2(c)
        }
        v1 => v1,
    });
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Err(fail(
            Exit::Usage,
            "--timeout must be a number of seconds above 0 and at most 3600",
        ));
    }
    if args.interval_secs < 60 {
        return Err(fail(Exit::Usage, "--interval-secs must be at least 60"));
    }
    let state = match &check {
        Some(VersionCheck::V2(_)) => {
            let path = args.state.clone().or_else(ClientState::default_path).ok_or_else(|| {
                fail(
                    Exit::Usage,
                    "no place for the v2 client state: give --state FILE or set VCHECKD_STATE (or run as a systemd service with StateDirectory=)",
                )
            })?;
            ClientState::load(&path)
                .with_context(|| format!("cannot read the client state file {}", path.display()))?
        }
        _ => ClientState::in_memory(),
    };
    let mut servers = Vec::new();
    for s in &args.server {
        servers.extend(parse_server(s)?);
    }
    if servers.is_empty() {
        servers = vcheckd::client::system_servers();
    }
    let config = AgentConfig {
        interval: Duration::from_secs(args.interval_secs),
        startup_jitter: if args.once {
            Duration::ZERO
        } else {
            Duration::from_secs(args.startup_jitter_secs)
        },
        backoff: Duration::from_secs(args.backoff_secs.max(1)),
        servers,
        timeout: Duration::from_secs_f64(args.timeout),
        status_file: args.status_file.clone(),
        textfile: args.textfile.clone(),
        ..AgentConfig::default()
    };
    let running = vcheckd::hint::parse_version(&args.report.software_version)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| args.report.software_version.clone());
    let zone = vcheckd::protocol::ZoneName::new(&args.report.zone)
        .map(|z| z.to_string())
        .unwrap_or_else(|_| args.report.zone.clone());
    let mut agent = Agent::new(
        &zone,
        &running,
        check,
        policy == Policy::Anonymous,
        state,
        config,
    );
    let log = |s: &vcheckd::client::agent::AgentStatus| {
        let message = s.message.as_str();
        match s.status.as_str() {
            "upgrade-required" | "stale" => {
                warn!(zone = %s.zone, running = %s.running, status = %s.status, error = s.error.as_deref().unwrap_or(""), "{message}")
            }
            _ => info!(zone = %s.zone, running = %s.running, status = %s.status, "{message}"),
        }
    };
    if args.once {
        // One run of a timer: its one line is the outcome, changed or not.
        agent.check_once();
        let s = agent.status();
        log(s);
        return match (&s.error, s.status.as_str()) {
            (_, "disabled") => Ok(ExitCode::SUCCESS),
            (Some(e), _) => Err(fail(
                Exit::Unavailable,
                format!("version check failed: {e}"),
            )),
            (None, _) => Ok(ExitCode::SUCCESS),
        };
    }
    agent.on_change(log);
    let control = agent.control();
    // Signals on a thread of their own: the agent's loop is blocking.
    std::thread::Builder::new()
        .name("vcheckd-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::hangup()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = hup.recv() => control.check_now(),
                        _ = term.recv() => { control.stop(); return; }
                        _ = int.recv() => { control.stop(); return; }
                    }
                }
            });
        })
        .context("starting the signal thread")?;
    info!(zone = %zone, running = %running, "version-check agent started");
    agent.run();
    info!("version-check agent stopped");
    Ok(ExitCode::SUCCESS)
}
