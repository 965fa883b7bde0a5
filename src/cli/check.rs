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
use vcheckd::client::v2::SerialState;
use vcheckd::client::versioned::{Sealed, VersionCheck};
use vcheckd::client::{self, Policy};
use vcheckd::hint::Hint;
use vcheckd::protocol::name::decode_query_name;
use vcheckd::protocol::v2::SignedPolicy;
use vcheckd::protocol::{Keyring, Report};

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
    /// Print the exact query name and its plaintext; send no report (v2:
    /// also fetch and verify the zone's policy and show the status it gives).
    #[arg(long)]
    dry_run: bool,
    /// Protocol v2: the file keeping the highest policy serial accepted
    /// per zone, so that an older policy replayed later is refused
    /// (default: $XDG_STATE_HOME/vcheckd/policy-serials or
    /// ~/.local/state/vcheckd/policy-serials).
    #[arg(long, env = "VCHECKD_STATE")]
    state: Option<std::path::PathBuf>,
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

/// What `sealed` carries. v1: decoded back from the name with the key, so
/// the preview shows what the server will read, not what we meant to send.
/// v2: the plaintext as sealed (only the zone's private key opens it).
fn preview_json(sealed: &Sealed, check: &VersionCheck) -> Result<serde_json::Value> {
    let report = match check {
        VersionCheck::V1(c) => decode_query_name(
            &Keyring::new(std::slice::from_ref(&c.key))?,
            &c.zone,
            &sealed.name,
        )
        .context("the name just built does not decode (please report this bug)")?,
        VersionCheck::V2(c) => Report {
            id: sealed.id,
            key_id: c.key.id,
            payload: sealed.payload.clone(),
        },
    };
    let mut v = report_json(&report);
    v["query_name"] = json!(sealed.name);
    v["protocol"] = json!(sealed.protocol);
    Ok(v)
}

fn preview_text(v: &serde_json::Value) -> String {
    let mut text = format!(
        "query name: {}\nquery type: TXT\nprotocol:   {}\nplaintext (what the server reads):\n{}",
        v["query_name"].as_str().unwrap_or_default(),
        v["protocol"],
        report_text(v)
    );
    if let Some(p) = v.get("policy") {
        text.push_str(&format!(
            "verified policy: key id {}, serial {}, expires {} (unix), latest {}\n",
            p["key_id"],
            p["serial"],
            p["expires"],
            p["latest"].as_str().unwrap_or_default()
        ));
    }
    if let Some(c) = v.get("computed") {
        text.push_str(&format!(
            "status from the policy: {} ({}): {}\n",
            c["status"],
            c["status_name"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        ));
    }
    text
}

fn policy_json(policy: &SignedPolicy) -> serde_json::Value {
    json!({
        "key_id": policy.key_id.0,
        "serial": policy.serial,
        "issued": policy.issued,
        "expires": policy.expires,
        "latest": policy.releases.latest().to_string(),
    })
}

fn unix_now() -> u64 {
    u64::try_from(vcheckd::clock::unix_now()).unwrap_or(0)
}

fn serial_state(args: &CheckArgs) -> Result<SerialState> {
    match args.state.clone().or_else(SerialState::default_path) {
        Some(path) => SerialState::load(&path).map_err(|e| {
            fail(
                Exit::NoInput,
                format!(
                    "cannot read the policy state file {}: {e}: fix its permissions, or choose another with --state",
                    path.display()
                ),
            )
        }),
        None => Ok(SerialState::in_memory()),
    }
}

/// What one `check` came to, short of an error.
enum Outcome {
    Disabled,
    Preview(serde_json::Value),
    Hint {
        hint: Hint,
        running: Version,
        report_id: String,
        protocol: u8,
        /// The verified policy the hint was computed from (v2).
        policy: Option<serde_json::Value>,
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
            hint,
            report_id,
            protocol,
            policy,
            ..
        }) => {
            v["status"] = json!(hint.status.code());
            v["status_name"] = json!(hint.status.name());
            v["latest"] = json!(hint.latest.to_string());
            v["message"] = json!(hint.message);
            v["report_id"] = json!(report_id);
            v["protocol"] = json!(protocol);
            v["policy"] = json!(policy);
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
        "protocol": null,
        "policy": null,
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
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Err(fail(
            Exit::Usage,
            "--timeout must be a number of seconds above 0 and at most 3600",
        ));
    }
    let sealed = check.prepare()?;
    let servers = || -> Result<Vec<SocketAddr>> {
        if args.server.is_empty() {
            return Ok(client::system_servers());
        }
        let mut all = Vec::new();
        for s in &args.server {
            all.extend(parse_server(s)?);
        }
        Ok(all)
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.dry_run {
        let mut preview = preview_json(&sealed, &check)?;
        if let VersionCheck::V2(c) = &check {
            // The policy without a report, verified as a real check would.
            let mut state = serial_state(args)?;
            let wire = runtime
                .block_on(client::v2::resolve_policy(
                    &c.policy_name(),
                    &servers()?,
                    timeout,
                ))
                .context("version check failed")?;
            let verified = c
                .verify(&wire, &mut state, unix_now())
                .map_err(client::CheckError::from)
                .context("version check failed")?;
            preview["policy"] = policy_json(&verified.policy);
            preview["computed"] = json!({
                "status": verified.hint.status.code(),
                "status_name": verified.hint.status.name(),
                "message": verified.hint.message,
            });
        }
        return Ok(Outcome::Preview(preview));
    }
    let servers = servers()?;
    // Only v2 has policy serials to keep: a v1 check touches no file.
    let mut state = match check {
        VersionCheck::V2(_) => serial_state(args)?,
        VersionCheck::V1(_) => SerialState::in_memory(),
    };
    let answer = runtime
        .block_on(check.send(&sealed, &servers, timeout, &mut state, unix_now()))
        .context("version check failed")?;
    if let Err(e) = state.save() {
        eprintln!("vcheckd: warning: cannot save the policy state file: {e}");
    }
    Ok(Outcome::Hint {
        hint: answer.hint,
        running: check.version().clone(),
        report_id: sealed.id.to_hex(),
        protocol: sealed.protocol,
        policy: answer.verified.map(|v| policy_json(&v.policy)),
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
    // Sealing a v2 report costs an X25519 key generation and exchange
    // (about 0.2 ms): load-test files of a million names are made on every
    // core, in chunks, and written as they come.
    const CHUNK: u32 = 1_000;
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(args.count.div_ceil(CHUNK).max(1) as usize);
    let next = std::sync::atomic::AtomicU32::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<String>>(workers * 2);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let (tx, check, next) = (tx.clone(), &check, &next);
            scope.spawn(move || loop {
                let start = next.fetch_add(CHUNK, std::sync::atomic::Ordering::Relaxed);
                if start >= args.count {
                    return;
                }
                let chunk = (start..args.count.min(start + CHUNK)).try_fold(
                    String::new(),
                    |mut text, _| -> Result<String> {
                        let sealed = check.prepare()?;
                        let line = if args.json {
                            preview_json(&sealed, check)?.to_string()
                        } else {
                            sealed.name
                        };
                        text.push_str(&line);
                        text.push('\n');
                        Ok(text)
                    },
                );
                if tx.send(chunk).is_err() {
                    return; // the writer stopped (a closed pipe)
                }
            });
        }
        drop(tx);
        for chunk in rx {
            out.write_all(chunk?.as_bytes())?;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
