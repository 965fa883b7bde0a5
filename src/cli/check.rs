//! `vcheckd check` and `vcheckd encode`.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use super::{chain, print_report, report_json, ReportArgs};
use vcheckd::client::{self, Policy, Prepared};
use vcheckd::protocol::name::decode_query_name;
use vcheckd::protocol::{Key, Keyring, ZoneName};

const EXIT_HELP: &str = "Exit codes: 0 hint received (or checks disabled), 1 usage or key error, \
2 cannot build the name or no name server, 3 timeout, 4 network error, 5 SERVFAIL, \
6 REFUSED, 7 other DNS error, 8 answer without a vcheckd hint.\n\
Environment: DISABLE_VERSION_CHECK=1 sends nothing; DISABLE_TELEMETRY=1 sends no cluster or node identity.";

#[derive(Debug, Args)]
#[command(after_help = EXIT_HELP)]
pub struct CheckArgs {
    #[command(flatten)]
    report: ReportArgs,
    /// Name server to ask, HOST[:PORT] (default: the system's resolvers).
    #[arg(long, env = "VCHECKD_SERVER")]
    server: Vec<String>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print JSON instead of a sentence.
    #[arg(long)]
    json: bool,
    /// Print the exact query name and its decoded plaintext; send nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    report: ReportArgs,
    /// Print the name and the plaintext as JSON.
    #[arg(long)]
    json: bool,
    /// Make this many names (same report, each with a fresh nonce, so each
    /// is a distinct report), one per line: query files for load tests.
    #[arg(long, default_value_t = 1)]
    count: u32,
}

fn parse_server(text: &str) -> Result<Vec<SocketAddr>> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 53)]);
    }
    let with_port = if text.contains(':') {
        text.to_string()
    } else {
        format!("{text}:53")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .with_context(|| format!("--server {text:?}: not HOST[:PORT]"))?
        .collect();
    if addrs.is_empty() {
        bail!("--server {text:?} has no address");
    }
    Ok(addrs)
}

/// The plaintext of `prepared`, decoded back from the name with the key:
/// the preview shows what the server will read, not what we meant to send.
fn preview_json(prepared: &Prepared, args: &ReportArgs) -> Result<serde_json::Value> {
    let key = Key::load(&args.key)?;
    let zone = ZoneName::new(&args.zone)?;
    let report = decode_query_name(&Keyring::new(&[key])?, &zone, &prepared.name)
        .context("the name just built does not decode (please report this bug)")?;
    let mut v = report_json(&report);
    v["query_name"] = json!(prepared.name);
    Ok(v)
}

fn print_preview(v: &serde_json::Value, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    println!(
        "query name: {}",
        v["query_name"].as_str().unwrap_or_default()
    );
    println!("query type: TXT");
    println!("decoded plaintext (what the server reads):");
    print_report(v);
}

fn disabled(json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            json!({"status": "disabled", "reason": "DISABLE_VERSION_CHECK"})
        );
    } else {
        println!("vcheckd: version check disabled (DISABLE_VERSION_CHECK is set); nothing sent");
    }
    ExitCode::SUCCESS
}

pub fn run_check(args: CheckArgs) -> Result<ExitCode> {
    let Some(check) = args.report.check(Policy::from_env())? else {
        return Ok(disabled(args.json));
    };
    let prepared = check.prepare()?;
    if args.dry_run {
        print_preview(&preview_json(&prepared, &args.report)?, args.json);
        return Ok(ExitCode::SUCCESS);
    }
    let servers = if args.server.is_empty() {
        client::system_servers()
    } else {
        let mut all = Vec::new();
        for s in &args.server {
            all.extend(parse_server(s)?);
        }
        all
    };
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        bail!("--timeout must be a number of seconds above 0 and at most 3600");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(client::resolve_hint(&prepared, &servers, timeout)) {
        Ok(hint) => {
            if args.json {
                println!(
                    "{}",
                    json!({
                        "status": hint.status.code(),
                        "status_name": hint.status.name(),
                        "latest": hint.latest.to_string(),
                        "running": check.version.to_string(),
                        "message": hint.message,
                        "report_id": prepared.id.to_hex(),
                    })
                );
            } else {
                println!("{}", client::describe(&hint, &check.version));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    json!({"status": "error", "error": chain(&e), "exit_code": e.exit_code()})
                );
            }
            eprintln!("vcheckd: version check failed: {}", chain(&e));
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

pub fn run_encode(args: EncodeArgs) -> Result<ExitCode> {
    let Some(check) = args.report.check(Policy::from_env())? else {
        eprintln!("vcheckd: version check disabled (DISABLE_VERSION_CHECK is set); no name made");
        return Ok(ExitCode::SUCCESS);
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..args.count {
        let prepared = check.prepare()?;
        if args.json {
            writeln!(out, "{}", preview_json(&prepared, &args.report)?)?;
        } else {
            writeln!(out, "{}", prepared.name)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
