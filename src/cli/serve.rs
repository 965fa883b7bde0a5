//! `vcheckd serve`: run until SIGTERM/SIGINT, reload on SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use super::exit;
use super::keys::{write_key_file, write_key_pair};
use super::write_stdout;
use vcheckd::config::{Config, ConfigOrigin, DEFAULT_CONFIG};
use vcheckd::daemon::RunningServer;
use vcheckd::protocol::v2::PrivateKey;
use vcheckd::protocol::{Key, KeyId};

#[derive(Debug, Args)]
#[command(after_help = exit::HELP)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, the embedded default serves
    /// the sample zone vc.example.com on 127.0.0.1:5300 with a demo key.
    #[arg(long, env = "VCHECKD_CONFIG")]
    config: Option<PathBuf>,
    /// Listen on these addresses instead of the configured ones (UDP and
    /// TCP; port 0 picks a free port).
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Serve the dashboard, /metrics and /api/v1 on this address instead of
    /// the configured one (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_config: bool,
}

/// With the embedded default, a missing key is made on first start, so the
/// quick start needs no set-up. It is a demo key: anyone with this checkout's
/// data folder has it. A real configuration's missing key is an error.
fn ensure_demo_keys(config: &Config) -> Result<()> {
    if config.origin != ConfigOrigin::Embedded {
        return Ok(());
    }
    for zone in &config.zones {
        for path in &zone.keys {
            let path = config.resolve(path);
            if !path.exists() {
                write_key_file(&path, &Key::generate(KeyId(1)), false)?;
                warn!(
                    path = %path.display(),
                    "created a DEMO v1 key for zone {}: for trying vcheckd only",
                    zone.name
                );
            }
        }
        for path in &zone.private_keys {
            let path = config.resolve(path);
            if !path.exists() {
                let public = demo_public_path(&path);
                write_key_pair(
                    &path,
                    &public,
                    &PrivateKey::generate(KeyId(1), vcheckd::clock::unix_now().max(0) as u64),
                    false,
                )?;
                warn!(
                    private = %path.display(),
                    public = %public.display(),
                    "created a DEMO v2 key pair for zone {}: for trying vcheckd only; \
                     make real ones with `vcheckd keygen --private FILE --public FILE` and a config file",
                    zone.name
                );
            }
        }
    }
    Ok(())
}

/// Where the demo's public key goes: beside the private one, `.public`
/// instead of `.private`.
pub fn demo_public_path(private: &std::path::Path) -> std::path::PathBuf {
    private.with_extension("public")
}

fn load(args: &ServeArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    if !args.listen.is_empty() {
        config.server.listen = args.listen.clone();
    }
    if let Some(addr) = args.http {
        let top_versions = config
            .http
            .as_ref()
            .map_or(vcheckd::config::DEFAULT_TOP_VERSIONS, |h| h.top_versions);
        config.http = Some(vcheckd::config::HttpConfig {
            listen: addr,
            top_versions,
        });
    }
    Ok(config)
}

/// SIGHUP: zones, keys and releases are swapped in; each other setting
/// that changed gets a warning, since it takes a restart (`running` is the
/// configuration the process started with).
fn reload(args: &ServeArgs, running: &Config, server: &RunningServer) {
    let now = vcheckd::clock::unix_now();
    let new = match load(args) {
        Ok(new) => new,
        Err(e) => {
            server.metrics().record_load(false, true, now);
            error!(
                "reload failed, still serving the previous zones: {}",
                exit::line(&e)
            );
            return;
        }
    };
    for setting in running.changes_needing_restart(&new) {
        warn!("reload cannot apply the change to {setting}: restart vcheckd to apply it");
    }
    let result = server.reload(&new);
    server.metrics().record_load(result.is_ok(), true, now);
    match result {
        Ok(()) => info!("reloaded zones, keys and releases"),
        Err(e) => error!(
            "reload failed, still serving the previous zones: {}",
            exit::line(&e.into())
        ),
    }
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    if args.print_config {
        write_stdout(DEFAULT_CONFIG)?;
        return Ok(ExitCode::SUCCESS);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = load(&args)?;
    if config.origin == ConfigOrigin::Embedded {
        info!("no --config: running the embedded default (sample zone vc.example.com)");
    }
    ensure_demo_keys(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // Handlers first: a SIGHUP that arrived between "listening" and
        // their installation would otherwise kill the process.
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let server = RunningServer::start(&config).await?;
        let metrics = server.metrics();
        metrics.record_load(true, false, vcheckd::clock::unix_now());
        metrics.journal_max_bytes.store(
            config.server.journal_max_bytes,
            std::sync::atomic::Ordering::Relaxed,
        );
        loop {
            tokio::select! {
                _ = hup.recv() => reload(&args, &config, &server),
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        info!("shutting down");
        server.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}
