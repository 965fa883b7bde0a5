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
use vcheckd::client::v2::ClientState;
use vcheckd::client::versioned::{seal_with_private, Sealed, VersionCheck};
use vcheckd::client::{self, Policy};
use vcheckd::hint::Hint;
use vcheckd::protocol::name::decode_query_name;
use vcheckd::protocol::v2::effort::Effort;
use vcheckd::protocol::v2::{PrivateKey, SignedPolicy};
use vcheckd::protocol::{KeyError, Keyring, Report};

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
    /// Protocol v2: the file keeping, per zone and key id, the newest
    /// policy accepted (so that an older one replayed later is refused, and
    /// the next report is sealed without fetching the policy first).
    /// Default: $STATE_DIRECTORY/client-state.json (a systemd service),
    /// else $XDG_STATE_HOME/vcheckd/client-state.json, else
    /// ~/.local/state/vcheckd/client-state.json.
    #[arg(long, env = "VCHECKD_STATE")]
    state: Option<std::path::PathBuf>,
    /// Protocol v2: milliseconds of one core to spend, at most, on the
    /// effort proof the zone's policy suggests (the best proof found is
    /// sent when time runs out).
    #[arg(long, default_value_t = 250)]
    effort_budget_ms: u64,
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
    /// Protocol v2 with a public key: the name server to fetch the zone's
    /// signed policy from (its sealing key and suggested effort), HOST[:PORT].
    /// With the zone's private key file as --key, no server is needed.
    #[arg(long, env = "VCHECKD_SERVER")]
    server: Vec<String>,
    /// Protocol v2: the effort proof to compute (leading zero bits;
    /// default: what the policy suggests, or 0 with a private key). Load
    /// tests use 0: each bit doubles the time to make a name.
    #[arg(long)]
    effort: Option<u8>,
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
        "epoch": policy.seal.epoch.0,
        "effort": policy.effort.0,
        "advisory_url": policy.advisory_url.as_ref().map(|u| u.template()),
        "latest": policy.releases.latest().to_string(),
    })
}

fn unix_now() -> u64 {
    u64::try_from(vcheckd::clock::unix_now()).unwrap_or(0)
}

/// The client state a v2 check keeps: a file, always (a state kept only in
/// memory would let a replayed policy in on the next run).
fn client_state(args: &CheckArgs) -> Result<ClientState> {
    let Some(path) = args.state.clone().or_else(ClientState::default_path) else {
        return Err(fail(
            Exit::Usage,
            "no place for the v2 client state (newest policy accepted): give --state FILE or set VCHECKD_STATE (neither HOME, XDG_STATE_HOME nor STATE_DIRECTORY is set)",
        ));
    };
    ClientState::load(&path).map_err(|e| {
        fail(
            Exit::NoInput,
            format!(
                "cannot read the client state file {}: {e}: fix its permissions, or choose another with --state",
                path.display()
            ),
        )
    })
}

fn save_state(state: &ClientState) -> Result<()> {
    state.save().map_err(|e| {
        fail(
            Exit::CantCreate,
            format!(
                "cannot save the client state file {}: {e}: make its folder writable, or choose another with --state (without it a replayed policy would be accepted next time)",
                state.path().map(|p| p.display().to_string()).unwrap_or_default()
            ),
        )
    })
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
        /// v2: the effort the report's proof reached, and queries sent.
        effort: Option<Effort>,
        queries: u32,
    },
}

/// v2: what the last verified policy said, when a check cannot get a fresh
/// one: the status is then "stale", never the old status as if current.
fn stale_json(args: &CheckArgs) -> Option<serde_json::Value> {
    let check = args.report.check(Policy::from_env()).ok()??;
    let VersionCheck::V2(c) = &check else {
        return None;
    };
    let state = client_state(args).ok()?;
    let kept = state.policy(&c.zone, &c.key)?;
    let hint = kept.hint_for(&c.version);
    Some(json!({
        "status": hint.status.code(),
        "status_name": hint.status.name(),
        "message": hint.message,
        "issued": kept.issued,
        "expires": kept.expires,
    }))
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
            effort,
            queries,
            ..
        }) => {
            v["effort"] = json!(effort.map(|e| e.0));
            v["queries"] = json!(queries);
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
            if let Some(last) = stale_json(args) {
                v["status_name"] = json!("stale");
                v["last_known"] = last;
            }
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
        "effort": null,
        "queries": null,
        "last_known": null,
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
    let check = match check {
        VersionCheck::V2(mut c) => {
            c.effort_budget = Duration::from_millis(args.effort_budget_ms);
            VersionCheck::V2(c)
        }
        v1 => v1,
    };
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
    // Only v2 keeps a state: a v1 check touches no file.
    let mut state = match check {
        VersionCheck::V2(_) => client_state(args)?,
        VersionCheck::V1(_) => ClientState::in_memory(),
    };
    if args.dry_run {
        let (sealed, verified) = runtime
            .block_on(check.preview(&servers()?, timeout, &mut state, unix_now()))
            .context("version check failed")?;
        save_state(&state)?;
        let mut preview = preview_json(&sealed, &check)?;
        if let Some(verified) = verified {
            preview["policy"] = policy_json(&verified.policy);
            preview["effort"] = json!(sealed.effort.map(|e| e.0));
            preview["computed"] = json!({
                "status": verified.hint.status.code(),
                "status_name": verified.hint.status.name(),
                "message": verified.hint.message,
            });
        }
        return Ok(Outcome::Preview(preview));
    }
    let servers = servers()?;
    let answer = runtime
        .block_on(check.send(&servers, timeout, &mut state, unix_now()))
        .context("version check failed")?;
    save_state(&state)?;
    Ok(Outcome::Hint {
        hint: answer.hint,
        running: check.version().clone(),
        report_id: answer.sealed.id.to_hex(),
        protocol: answer.sealed.protocol,
        policy: answer.verified.map(|v| policy_json(&v.policy)),
        effort: answer.sealed.effort,
        queries: answer.queries,
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
        (Err(_), false) => match stale_json(&args) {
            Some(last) => format!(
                "vcheckd: stale: no fresh policy could be verified; the last one (issued {} unix) said: {}\n",
                last["issued"],
                last["message"].as_str().unwrap_or_default()
            ),
            None => String::new(),
        },
    };
    write_stdout(&text)?;
    // The error still goes to stderr, as one line, and decides the code.
    outcome.map(|_| ExitCode::SUCCESS)
}

/// How `encode` makes each name.
enum Maker<'a> {
    V1(&'a VersionCheck),
    /// Sealed under the policy fetched from a server.
    V2Policy(&'a vcheckd::client::v2::CheckV2, Box<SignedPolicy>, Effort),
    /// Sealed to the current epoch's key, derived from the private key.
    V2Private(Box<vcheckd::client::v2::CheckV2>, Box<PrivateKey>, Effort),
}

impl Maker<'_> {
    fn make(&self) -> Result<Sealed> {
        let now = unix_now();
        Ok(match self {
            Maker::V1(check) => {
                let mut state = ClientState::in_memory();
                let rt = tokio::runtime::Builder::new_current_thread().build()?;
                rt.block_on(check.preview(&[], Duration::ZERO, &mut state, now))?
                    .0
            }
            Maker::V2Policy(c, policy, effort) => c.prepare_at(&policy.seal, *effort, now)?.into(),
            Maker::V2Private(c, key, effort) => seal_with_private(c, key, *effort, now)?,
        })
    }
}

pub fn run_encode(args: EncodeArgs) -> Result<ExitCode> {
    if Policy::from_env() == Policy::Disabled {
        eprintln!("vcheckd: version check disabled (DISABLE_VERSION_CHECK is set); no name made");
        return Ok(ExitCode::SUCCESS);
    }
    // The zone's private key: names sealed without asking a server.
    let private = match PrivateKey::load(&args.report.key) {
        Ok(k) => Some(k),
        Err(KeyError::Kind { .. } | KeyError::Malformed { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let check = match &private {
        Some(k) => args
            .report
            .check_with_v2_key(Policy::from_env(), k.public())?,
        None => args.report.check(Policy::from_env())?,
    };
    let Some(check) = check else {
        return Ok(ExitCode::SUCCESS);
    };
    let maker = match (&check, private) {
        (VersionCheck::V2(c), Some(key)) => Maker::V2Private(
            Box::new(c.clone()),
            Box::new(key),
            Effort(args.effort.unwrap_or(0)),
        ),
        (VersionCheck::V2(c), None) => {
            if args.server.is_empty() {
                return Err(fail(
                    Exit::Usage,
                    "a v2 public key needs --server HOST[:PORT] to fetch the zone's policy (its sealing key), or give the zone's private key file as --key",
                ));
            }
            let mut servers = Vec::new();
            for s in &args.server {
                servers.extend(parse_server(s)?);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mut state = ClientState::in_memory();
            let (_, verified) = rt
                .block_on(check.preview(&servers, Duration::from_secs(5), &mut state, unix_now()))
                .context("fetching the zone's policy")?;
            let policy = verified.map(|v| v.policy).context("no policy")?;
            let effort = args.effort.map_or(policy.effort, Effort);
            Maker::V2Policy(c, Box::new(policy), effort)
        }
        (VersionCheck::V1(_), _) => Maker::V1(&check),
    };
    // Sealing a v2 report costs an X25519 key generation and exchange
    // (about 0.2 ms) and its effort proof: load-test files of a million
    // names are made on every core, in chunks, and written as they come.
    const CHUNK: u32 = 1_000;
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(args.count.div_ceil(CHUNK).max(1) as usize);
    let next = std::sync::atomic::AtomicU32::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<String>>(workers * 2);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let (tx, check, next, maker) = (tx.clone(), &check, &next, &maker);
            scope.spawn(move || loop {
                let start = next.fetch_add(CHUNK, std::sync::atomic::Ordering::Relaxed);
                if start >= args.count {
                    return;
                }
                let chunk = (start..args.count.min(start + CHUNK)).try_fold(
                    String::new(),
                    |mut text, _| -> Result<String> {
                        let sealed = maker.make()?;
                        let line = if args.json {
                            let mut v = preview_json(&sealed, check)?;
                            v["effort"] = json!(sealed.effort.map(|e| e.0));
                            v.to_string()
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
