//! `vcheckd keygen` and `vcheckd decode`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::exit::{self, fail, Exit};
use super::{report_json, report_text, write_stdout};
use anyhow::{Context, Result};
use clap::Args;
use vcheckd::protocol::name::decode_query_name;
use vcheckd::protocol::{Key, KeyId, Keyring, ZoneName};

#[derive(Debug, Args)]
#[command(after_help = exit::HELP)]
pub struct KeygenArgs {
    /// Key id (0-255), carried in clear in every report; give each new key
    /// a new id so that old and new keys can be served side by side.
    #[arg(long, default_value_t = 1)]
    id: u8,
    /// Write the key to this file (mode 0600) instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
#[command(after_help = exit::HELP)]
pub struct DecodeArgs {
    /// The query name (with or without the trailing dot).
    name: String,
    #[arg(long, env = "VCHECKD_ZONE")]
    zone: String,
    /// Key file; repeat for several keys.
    #[arg(long, env = "VCHECKD_KEY", required = true)]
    key: Vec<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Writes a secret file readable by its owner only, never replacing an
/// existing file unless asked.
pub fn write_key_file(path: &std::path::Path, key: &Key, force: bool) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create key file {} (if it exists, --force replaces it)",
            path.display()
        )
    })?;
    // The mode above applies to a new file only; a replaced one keeps its
    // old mode unless set here, and the server refuses a key others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private (mode 0600)", path.display()))?;
    }
    writeln!(
        file,
        "# vcheckd shared key (id {}); keep secret, give to clients and servers\n{}",
        key.id,
        key.to_token()
    )?;
    Ok(())
}

pub fn run_keygen(args: KeygenArgs) -> Result<ExitCode> {
    let key = Key::generate(KeyId(args.id));
    match args.out {
        Some(path) => {
            write_key_file(&path, &key, args.force)?;
            eprintln!("vcheckd: wrote key id {} to {}", key.id, path.display());
        }
        None => write_stdout(&format!("{}\n", key.to_token()))?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_decode(args: DecodeArgs) -> Result<ExitCode> {
    let zone = ZoneName::new(&args.zone)
        .map_err(|e| fail(Exit::Usage, format!("--zone {:?}: {e}", args.zone)))?;
    let keys = args
        .key
        .iter()
        .map(|p| Key::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let report = match decode_query_name(&Keyring::new(&keys)?, &zone, &args.name) {
        Ok(r) => r,
        Err(e) => {
            return Err(fail(
                Exit::DataErr,
                format!("{} does not decode: {e}", args.name),
            ))
        }
    };
    let v = report_json(&report);
    if args.json {
        write_stdout(&format!("{v}\n"))?;
    } else {
        write_stdout(&report_text(&v))?;
    }
    Ok(ExitCode::SUCCESS)
}
