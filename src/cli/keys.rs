//! `vcheckd keygen` and `vcheckd decode`, in both protocols.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::exit::{exit_table, fail, Exit};
use super::{report_json, report_text, write_stdout};
use anyhow::{Context, Result};
use clap::Args;
use vcheckd::protocol::name::{labels_to_frame, payload_labels};
use vcheckd::protocol::v2::{self, PrivateKey, PrivateKeyring};
use vcheckd::protocol::{Key, KeyError, KeyId, Keyring, ZoneName};

#[derive(Debug, Args)]
#[command(after_help = KEYGEN_HELP)]
pub struct KeygenArgs {
    /// Key id (0-255), carried in clear in every report; give each new key
    /// a new id so that old and new keys can be served side by side.
    #[arg(long, default_value_t = 1)]
    id: u8,
    /// Protocol v2: write the private key (for the name servers) here.
    #[arg(long, conflicts_with = "v1", requires = "public")]
    private: Option<PathBuf>,
    /// Protocol v2: write the public key (for clients) here.
    #[arg(long, conflicts_with = "v1", requires = "private")]
    public: Option<PathBuf>,
    /// Make a protocol v1 shared key instead (every client carries it).
    #[arg(long)]
    v1: bool,
    /// Protocol v1: write the key to this file (mode 0600) instead of
    /// standard output.
    #[arg(long, requires = "v1")]
    out: Option<PathBuf>,
    /// Protocol v2: turn the ratchet of this private key file forward to
    /// the oldest epoch a name server still needs, erasing the seeds of
    /// older epochs from the file (forward secrecy for the copy you keep;
    /// a running server keeps its own advanced copy anyway).
    #[arg(long, value_name = "PRIVATE_FILE", conflicts_with_all = ["v1", "private", "public"])]
    advance: Option<PathBuf>,
    /// Make a forwarding key (32 random bytes) in this file (mode 0600):
    /// the same file goes to the secondary (`[forward] key`) and to the
    /// primary (`[[forward_listen.secondary]] key`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["v1", "private", "public", "advance"])]
    forward: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
#[command(after_help = super::exit::HELP)]
pub struct DecodeArgs {
    /// The query name (with or without the trailing dot).
    name: String,
    #[arg(long, env = "VCHECKD_ZONE")]
    zone: String,
    /// Key file: a v2 private key or a v1 shared key; repeat for several.
    #[arg(long, env = "VCHECKD_KEY", required = true)]
    key: Vec<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Writes a file, never replacing an existing one unless asked; a secret
/// file is readable by its owner only.
fn write_file(
    path: &std::path::Path,
    text: impl AsRef<[u8]>,
    secret: bool,
    force: bool,
) -> Result<()> {
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
    let mode = if secret { 0o600 } else { 0o644 };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
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
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {} to {mode:o}", path.display()))?;
    }
    file.write_all(text.as_ref())?;
    Ok(())
}

/// Writes a v1 shared key file (mode 0600).
pub fn write_key_file(path: &std::path::Path, key: &Key, force: bool) -> Result<()> {
    let text = format!(
        "# vcheckd shared key (id {}); keep secret, give to clients and servers\n{}\n",
        key.id,
        key.to_token()
    );
    write_file(path, &text, true, force)
}

/// Writes a v2 key pair: the private file (mode 0600) and the public one.
pub fn write_key_pair(
    private: &std::path::Path,
    public: &std::path::Path,
    key: &PrivateKey,
    force: bool,
) -> Result<()> {
    let private_text = format!(
        "# vcheckd v2 private key (id {}): name servers only (private_keys); keep secret\n{}\n",
        key.id,
        key.to_token()
    );
    let public_text = format!(
        "# vcheckd v2 public key (id {}): for clients; not secret\n{}\n",
        key.id,
        key.public().to_token()
    );
    write_file(private, &private_text, true, force)?;
    write_file(public, &public_text, false, force)
}

const KEYGEN_HELP: &str = concat!(
    "Protocol v2 (default): `vcheckd keygen --id 1 --private zone.v2.private --public zone.v2.public`; \
the private file (mode 0600) goes to every name server (`private_keys`), the public one into the client software.\n\
Protocol v1: `vcheckd keygen --v1 --id 1 --out zone.key`: one shared secret for servers and clients.\n\
Forwarding: `vcheckd keygen --forward ns2.forward.key`: the secret a secondary and its primary share (docs/DEPLOY.md section 2).\n\n",
    exit_table!()
);

pub fn run_keygen(args: KeygenArgs) -> Result<ExitCode> {
    if let Some(path) = &args.forward {
        let key = vcheckd::forward::ForwardKey::generate()?;
        write_file(path, key.as_bytes(), true, args.force)?;
        eprintln!(
            "vcheckd: wrote a forwarding key to {}: copy it to the primary and to one secondary",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.v1 {
        let key = Key::generate(KeyId(args.id));
        match args.out {
            Some(path) => {
                write_key_file(&path, &key, args.force)?;
                eprintln!("vcheckd: wrote v1 key id {} to {}", key.id, path.display());
            }
            None => write_stdout(&format!("{}\n", key.to_token()))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = u64::try_from(vcheckd::clock::unix_now()).unwrap_or(0);
    if let Some(path) = &args.advance {
        let key = PrivateKey::load(path)?;
        let advanced = key.advanced(v2::Epoch::oldest_kept(now));
        if advanced.ratchet.epoch == key.ratchet.epoch {
            eprintln!(
                "vcheckd: {} already holds the seed of epoch {}, the oldest still needed",
                path.display(),
                key.ratchet.epoch
            );
            return Ok(ExitCode::SUCCESS);
        }
        let text = format!(
            "# vcheckd v2 private key (id {}): name servers only (private_keys); keep secret\n{}\n",
            advanced.id,
            advanced.to_token()
        );
        v2::keys::write_private(path, &text)
            .with_context(|| format!("cannot rewrite {}", path.display()))?;
        eprintln!(
            "vcheckd: {}: ratchet turned from epoch {} to {}; the older seeds are gone from it",
            path.display(),
            key.ratchet.epoch,
            advanced.ratchet.epoch
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(private), Some(public)) = (&args.private, &args.public) else {
        return Err(fail(
            Exit::Usage,
            "keygen needs --private FILE and --public FILE (protocol v2), or --v1 for a v1 shared key",
        ));
    };
    let key = PrivateKey::generate(KeyId(args.id), now);
    write_key_pair(private, public, &key, args.force)?;
    eprintln!(
        "vcheckd: wrote v2 key id {}: private {} (name servers only), public {} (clients)",
        key.id,
        private.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A server-side key, as `decode` is given it.
enum ServerKey {
    V1(Key),
    V2(Box<PrivateKey>),
}

fn load_server_key(path: &std::path::Path) -> Result<ServerKey> {
    match PrivateKey::load(path) {
        Ok(k) => Ok(ServerKey::V2(Box::new(k))),
        Err(KeyError::Kind {
            found: "v1 shared", ..
        }) => Ok(ServerKey::V1(Key::load(path)?)),
        Err(e) => Err(e.into()),
    }
}

pub fn run_decode(args: DecodeArgs) -> Result<ExitCode> {
    let zone = ZoneName::new(&args.zone)
        .map_err(|e| fail(Exit::Usage, format!("--zone {:?}: {e}", args.zone)))?;
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for path in &args.key {
        match load_server_key(path)? {
            ServerKey::V1(k) => v1.push(k),
            ServerKey::V2(k) => v2.push(*k),
        }
    }
    let undecodable = |e: &dyn std::fmt::Display| {
        fail(Exit::DataErr, format!("{} does not decode: {e}", args.name))
    };
    let labels = payload_labels(&zone, &args.name).map_err(|e| undecodable(&e))?;
    let frame = labels_to_frame(&labels).map_err(|e| undecodable(&e))?;
    let decoded = if frame.first() == Some(&v2::FORMAT_V2) {
        // Keys as a server held them in the frame's epoch (a name made
        // weeks ago still decodes, if the key file's ratchet is older).
        let at = v2::frame::check_shape(&frame).map_or(0, |h| h.epoch.start() + 3 * 86_400);
        v2::frame::open(&PrivateKeyring::new(&v2, at)?, &zone, &frame)
    } else {
        vcheckd::protocol::frame::open(&Keyring::new(&v1)?, &zone, &frame)
    };
    let report = match decoded {
        Ok(r) => r,
        Err(e) => {
            return Err(fail(
                Exit::DataErr,
                format!("{} does not decode: {e}", args.name),
            ))
        }
    };
    let mut v = report_json(&report);
    v["protocol"] = serde_json::json!(frame.first().copied().unwrap_or(0));
    if args.json {
        write_stdout(&format!("{v}\n"))?;
    } else {
        write_stdout(&report_text(&v))?;
    }
    Ok(ExitCode::SUCCESS)
}
