//! `vcheckd check` and `vcheckd encode`.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use semver::Version;
use serde_json::json;

use super::exit::{self, fail, Exit};
use super::{report_json, report_text, write_stdout, ReportArgs};
use vcheckd::client::{self, Policy, Prepared};
use vcheckd::hint::Hint;
use vcheckd::protocol::name::decode_query_name;
use vcheckd::protocol::{Key, Keyring, ZoneName};

#[derive(Debug, Args)]
#[command(after_help = exit::CHECK_HELP)]
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
#[command(after_help = exit::HELP)]
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
        .map_err(|e| {
            fail(
                Exit::Usage,
                format!("--server {text:?} is not HOST[:PORT]: {e}"),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(fail(
            Exit::Usage,
            format!("--server {text:?} has no address"),
        ));
    }
    Ok(addrs)
}

/// The plaintext of `prepared`, decoded back from the name with the key:
/// the preview shows what the server will read, not what we meant to send.
fn preview_json(prepared: &Prepared, args: &ReportArgs) -> Result<serde_json::Value> {
    let key = Key::load(&args.key)?;
    let zone = ZoneName::new(&args.zone).context("--zone")?;
    let report = decode_query_name(&Keyring::new(&[key])?, &zone, &prepared.name)
        .context("the name just built does not decode (please report this bug)")?;
    let mut v = report_json(&report);
    v["query_name"] = json!(prepared.name);
    Ok(v)
}

fn preview_text(v: &serde_json::Value) -> String {
    format!(
        "query name: {}\nquery type: TXT\ndecoded plaintext (what the server reads):\n{}",
        v["query_name"].as_str().unwrap_or_default(),
        report_text(v)
    )
}

/// What one `check` came to, short of an error.
enum Outcome {
    Disabled,
    Preview(serde_json::Value),
    Hint {
        hint: Hint,
        running: Version,
        report_id: String,
    },
}

/// `check --json`'s one object, the same fields for every outcome
/// (docs/DEPLOY.md): `status` is the hint's status code (0-3) when a hint
/// was received, else -1; `error` is null unless the check failed.
fn outcome_json(outcome: &Result<Outcome>, args: &CheckArgs) -> serde_json::Value {
    let running = vcheckd::hint::parse_version(&args.report.software_version)
        .ok()
        .map(|v| v.to_string());
    let mut v = failed_json(running, Exit::Success, None);
    match outcome {
        Ok(Outcome::Hint {
            hint, report_id, ..
        }) => {
            v["status"] = json!(hint.status.code());
            v["status_name"] = json!(hint.status.name());
            v["latest"] = json!(hint.latest.to_string());
            v["message"] = json!(hint.message);
            v["report_id"] = json!(report_id);
        }
        Ok(Outcome::Disabled) => {
            v["status_name"] = json!("disabled");
            v["message"] = json!("DISABLE_VERSION_CHECK is set; nothing sent");
        }
        Ok(Outcome::Preview(_)) => v["status_name"] = json!("dry-run"),
        Err(e) => {
            v["exit_code"] = json!(exit::diagnose(e).exit as u8);
            v["error"] = json!(exit::line(e));
        }
    }
    v
}

/// The object for a check that got no hint: the fields every outcome has.
fn failed_json(running: Option<String>, exit: Exit, error: Option<String>) -> serde_json::Value {
    json!({
        "status": -1,
        "status_name": "error",
        "latest": null,
        "running": running,
        "message": "",
        "report_id": null,
        "exit_code": exit as u8,
        "error": error,
    })
}

/// `check --json` with arguments that do not parse: the same object, so a
/// script reads every outcome one way.
pub fn print_usage_json(line: &str) {
    let _ = write_stdout(&format!(
        "{}\n",
        failed_json(None, Exit::Usage, Some(line.to_string()))
    ));
}

fn check_once(args: &CheckArgs) -> Result<Outcome> {
    let Some(check) = args.report.check(Policy::from_env())? else {
        return Ok(Outcome::Disabled);
    };
    let prepared = check.prepare()?;
    if args.dry_run {
        return Ok(Outcome::Preview(preview_json(&prepared, &args.report)?));
    }
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Err(fail(
            Exit::Usage,
            "--timeout must be a number of seconds above 0 and at most 3600",
        ));
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
    let timeout = Duration::from_secs_f64(args.timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let hint = runtime
        .block_on(client::resolve_hint(&prepared, &servers, timeout))
        .context("version check failed")?;
    Ok(Outcome::Hint {
        hint,
        running: check.version,
        report_id: prepared.id.to_hex(),
    })
}

pub fn run_check(args: CheckArgs) -> Result<ExitCode> {
    let outcome = check_once(&args);
    let text = match (&outcome, args.json) {
        // The preview keeps its own shape: the decoded report (as `encode
        // --json` and `decode --json` print it).
        (Ok(Outcome::Preview(v)), true) => format!("{v}\n"),
        (_, true) => format!("{}\n", outcome_json(&outcome, &args)),
        (Ok(Outcome::Preview(v)), false) => preview_text(v),
        (Ok(Outcome::Disabled), false) => {
            "vcheckd: version check disabled (DISABLE_VERSION_CHECK is set); nothing sent\n".into()
        }
        (Ok(Outcome::Hint { hint, running, .. }), false) => {
            format!("{}\n", client::describe(hint, running))
        }
        (Err(_), false) => String::new(),
    };
    write_stdout(&text)?;
    // The error still goes to stderr, as one line, and decides the code.
    outcome.map(|_| ExitCode::SUCCESS)
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
