//! `vcheckd check` and `vcheckd encode`.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use super::{chain, print_report, report_json, ReportArgs};
use vcheckd::client::v2::SerialState;
use vcheckd::client::versioned::{Sealed, VersionCheck};
use vcheckd::client::{self, CheckError, Policy};
use vcheckd::protocol::name::decode_query_name;
use vcheckd::protocol::v2::SignedPolicy;
use vcheckd::protocol::{Keyring, Report};

const EXIT_HELP: &str = "Exit codes: 0 hint received (or checks disabled), 1 usage or key error, \
2 cannot build the name or no name server, 3 timeout, 4 network error, 5 SERVFAIL, \
6 REFUSED, 7 other DNS error, 8 answer without a vcheckd hint or policy, \
9 policy refused: bad signature, unknown key id or malformed (v2), 10 policy expired (v2), \
11 policy rollback: a serial lower than one accepted before (v2).\n\
Protocol: the key file decides: a v2 public key (vck2-public:...) speaks v2, a v1 key v1.\n\
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
    println!("protocol:   {}", v["protocol"]);
    println!("plaintext (what the server reads):");
    print_report(v);
    if let Some(p) = v.get("policy") {
        println!(
            "verified policy: key id {}, serial {}, expires {} (unix), latest {}",
            p["key_id"],
            p["serial"],
            p["expires"],
            p["latest"].as_str().unwrap_or_default()
        );
    }
    if let Some(c) = v.get("computed") {
        println!(
            "status from the policy: {} ({}): {}",
            c["status"],
            c["status_name"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        );
    }
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

fn servers(args: &CheckArgs) -> Result<Vec<std::net::SocketAddr>> {
    if args.server.is_empty() {
        return Ok(client::system_servers());
    }
    let mut all = Vec::new();
    for s in &args.server {
        all.extend(parse_server(s)?);
    }
    Ok(all)
}

fn serial_state(args: &CheckArgs) -> Result<SerialState> {
    match args.state.clone().or_else(SerialState::default_path) {
        Some(path) => SerialState::load(&path)
            .with_context(|| format!("cannot read the policy state file {}", path.display())),
        None => Ok(SerialState::in_memory()),
    }
}

/// Reports a failed check on stderr (and as JSON), and its exit code.
fn failed(e: &CheckError, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            json!({"status": "error", "error": chain(e), "exit_code": e.exit_code()})
        );
    }
    eprintln!("vcheckd: version check failed: {}", chain(e));
    ExitCode::from(e.exit_code())
}

pub fn run_check(args: CheckArgs) -> Result<ExitCode> {
    let Some(check) = args.report.check(Policy::from_env())? else {
        return Ok(disabled(args.json));
    };
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        bail!("--timeout must be a number of seconds above 0 and at most 3600");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let sealed = check.prepare()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.dry_run {
        let mut preview = preview_json(&sealed, &check)?;
        if let VersionCheck::V2(c) = &check {
            // The policy without a report: verified as a real check would.
            let servers = servers(&args)?;
            let mut state = serial_state(&args)?;
            let verified = runtime
                .block_on(client::v2::resolve_policy(
                    &c.policy_name(),
                    &servers,
                    timeout,
                ))
                .and_then(|wire| Ok(c.verify(&wire, &mut state, unix_now())?));
            match verified {
                Ok(v) => {
                    preview["policy"] = policy_json(&v.policy);
                    preview["computed"] = json!({
                        "status": v.hint.status.code(),
                        "status_name": v.hint.status.name(),
                        "message": v.hint.message,
                    });
                }
                Err(e) => {
                    print_preview(&preview, args.json);
                    return Ok(failed(&e, args.json));
                }
            }
        }
        print_preview(&preview, args.json);
        return Ok(ExitCode::SUCCESS);
    }
    let servers = servers(&args)?;
    let mut state = serial_state(&args)?;
    match runtime.block_on(check.send(&sealed, &servers, timeout, &mut state, unix_now())) {
        Ok(answer) => {
            if let Err(e) = state.save() {
                eprintln!("vcheckd: warning: cannot save the policy state file: {e}");
            }
            let hint = &answer.hint;
            if args.json {
                let mut v = json!({
                    "status": hint.status.code(),
                    "status_name": hint.status.name(),
                    "latest": hint.latest.to_string(),
                    "running": check.version().to_string(),
                    "message": hint.message,
                    "report_id": sealed.id.to_hex(),
                    "protocol": sealed.protocol,
                });
                if let Some(verified) = &answer.verified {
                    v["policy"] = policy_json(&verified.policy);
                }
                println!("{v}");
            } else {
                println!("{}", client::describe(hint, check.version()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&e, args.json)),
    }
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
