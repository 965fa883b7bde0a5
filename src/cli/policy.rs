//! `vcheckd policy show`: each zone's compiled, signed release policy (the
//! one TXT answer to every v2 report name), its size, and the answer each
//! version would get from it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use vcheckd::config::Config;
use vcheckd::dns::Catalog;
use vcheckd::protocol::v2::policy::to_txt_strings;
use vcheckd::protocol::ZoneName;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the compiled policy of each v2 zone, its size, and the status
    /// each listed version (and each --version) gets from it.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Configuration file (default: the embedded default, as `serve`).
    #[arg(long, env = "VCHECKD_CONFIG")]
    config: Option<PathBuf>,
    /// Only this zone.
    #[arg(long)]
    zone: Option<String>,
    /// Also show the answer for this version (repeatable).
    #[arg(long = "version", value_name = "VERSION")]
    versions: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: PolicyCommand) -> Result<ExitCode> {
    let PolicyCommand::Show(args) = command;
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    let now = u64::try_from(vcheckd::clock::unix_now()).unwrap_or(0);
    let catalog = Catalog::build_stateless(&config, now).context("cannot build the zones")?;
    let wanted = args
        .zone
        .as_deref()
        .map(ZoneName::new)
        .transpose()
        .with_context(|| format!("--zone {:?}", args.zone))?;
    let extra = args
        .versions
        .iter()
        .map(|v| {
            vcheckd::hint::parse_version(v)
                .with_context(|| format!("--version {v:?} is not a semver version"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut shown = Vec::new();
    for zone in catalog.zones() {
        if wanted.as_ref().is_some_and(|w| *w != zone.name) {
            continue;
        }
        let Some(policy) = zone.policy() else {
            continue;
        };
        let c = &policy.content;
        let mut versions = c.releases.versions().to_vec();
        versions.extend(extra.iter().cloned());
        let answers: Vec<_> = versions
            .iter()
            .map(|v| {
                let h = c.releases.hint_for(v);
                json!({"version": v.to_string(), "status": h.status.code(), "status_name": h.status.name(), "message": h.message})
            })
            .collect();
        let keys: Vec<_> = policy
            .keys
            .iter()
            .filter_map(|k| {
                let wire = policy.wire(k.id)?;
                let rdata: usize = to_txt_strings(wire).iter().map(|s| s.len() + 1).sum();
                Some(json!({"key_id": k.id.0, "wire_bytes": wire.len(), "txt_rdata_bytes": rdata}))
            })
            .collect();
        shown.push(json!({
            "zone": zone.name.to_string(),
            "serial": c.serial,
            "issued": c.issued,
            "expires": c.expires,
            "issued_utc": vcheckd::stats::utc_time(i64::try_from(c.issued).unwrap_or(i64::MAX)),
            "expires_utc": vcheckd::stats::utc_time(i64::try_from(c.expires).unwrap_or(i64::MAX)),
            "latest": c.releases.latest().to_string(),
            "accept_v1": zone.accept_v1,
            "keys": keys,
            "answers": answers,
        }));
    }
    if shown.is_empty() {
        match &wanted {
            Some(w) => bail!("zone {w} serves no protocol v2 policy: list private_keys in its [[zone]]"),
            None => bail!("no zone serves protocol v2: list private_keys in a [[zone]] (make them with `vcheckd keygen --private FILE --public FILE`)"),
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Array(shown));
        return Ok(ExitCode::SUCCESS);
    }
    for z in &shown {
        println!(
            "zone {}: serial {}, signed {}, expires {}, latest {}, v1 {}",
            z["zone"].as_str().unwrap_or_default(),
            z["serial"],
            z["issued_utc"].as_str().unwrap_or_default(),
            z["expires_utc"].as_str().unwrap_or_default(),
            z["latest"].as_str().unwrap_or_default(),
            if z["accept_v1"] == true {
                "accepted"
            } else {
                "refused"
            }
        );
        for k in z["keys"].as_array().into_iter().flatten() {
            println!(
                "  key id {}: policy {} bytes, TXT record {} bytes (a UDP answer holds 1232 with the question)",
                k["key_id"], k["wire_bytes"], k["txt_rdata_bytes"]
            );
        }
        println!("  {:<16} {:<6} message", "version", "status");
        for a in z["answers"].as_array().into_iter().flatten() {
            println!(
                "  {:<16} {:<6} {}",
                a["version"].as_str().unwrap_or_default(),
                a["status"],
                a["message"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
