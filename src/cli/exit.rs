//! Exit codes, in the sysexits(3) style, and the one place that decides
//! which code an error gets and which fix its message ends with: scripts
//! and service managers tell failures apart by code, people by the line.

use std::io;

use hickory_proto::op::ResponseCode;
use vcheckd::client::{CheckError, ExchangeError};
use vcheckd::config::ConfigError;
use vcheckd::daemon::ServerError;
use vcheckd::dns::catalog::CatalogError;
use vcheckd::dns::listen::ListenError;
use vcheckd::journal::JournalError;
use vcheckd::protocol::v2::PolicyError;
use vcheckd::protocol::KeyError;
use vcheckd::stats::StatsError;
use vcheckd::store::StoreError;

/// Every code the binary exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// An error no row below describes (please report it).
    Other = 1,
    /// `check`: no answer in time.
    Timeout = 3,
    /// `check`: the name server could not be reached.
    Network = 4,
    /// `check`: the name server answered SERVFAIL.
    ServFail = 5,
    /// `check`: the name server answered REFUSED.
    Refused = 6,
    /// `check`: another DNS error (NXDOMAIN, FORMERR, ...).
    DnsError = 7,
    /// `check`: an answer without a vcheckd hint (or v2 policy).
    NoHint = 8,
    /// `check` (v2): a policy whose signature does not verify, signed with
    /// a key id the client does not carry, or malformed.
    BadPolicy = 9,
    /// `check` (v2): a policy past its expiry.
    PolicyExpired = 10,
    /// `check` (v2): a policy with a serial lower than one accepted before.
    PolicyRollback = 11,
    Usage = 64,
    DataErr = 65,
    NoInput = 66,
    Unavailable = 69,
    CantCreate = 73,
    IoErr = 74,
    TempFail = 75,
    Config = 78,
}

/// The table every command's `--help` ends with, and docs/DEPLOY.md too.
macro_rules! exit_table {
    () => {
        "Exit codes:
  0   success
  64  usage: a wrong flag or value on the command line
  65  bad data: input that does not decode (a query name, a database that is not vcheckd's or is newer)
  66  no input: a file that does not exist or cannot be read (config, zone, key, database)
  69  unavailable: an address already in use, no name server to ask
  73  cannot create: a file or folder that cannot be created (key, database, journal)
  74  I/O error: reading or writing failed (disk full, output closed with an error)
  75  temporary failure: try again later (database or journal held by another process, the ClickHouse rollup run by another server)
  78  configuration: a setting or key file is wrong (the message names it and the fix)
  1   anything else (please report it)"
    };
}

pub(crate) use exit_table;

pub const HELP: &str = exit_table!();

/// `check`'s help: the common table plus the DNS outcomes, and the
/// environment it obeys.
pub const CHECK_HELP: &str = concat!(
    exit_table!(),
    "
`check` only:
  3   timeout: no answer in time
  4   network error: the name server could not be reached
  5   the name server answered SERVFAIL
  6   the name server answered REFUSED
  7   another DNS error (NXDOMAIN, FORMERR, ...)
  8   an answer without a vcheckd hint or policy (is the zone delegated to vcheckd?)
  9   protocol v2: the policy's signature does not verify (altered, or not the zone's key)
  10  protocol v2: the policy has expired (a stale server, a replay, or this host's clock)
  11  protocol v2: the policy's serial is lower than one accepted before (a replayed policy)
With --json, one JSON object is printed for every outcome (docs/DEPLOY.md).
Environment: DISABLE_VERSION_CHECK=1 sends nothing; DISABLE_TELEMETRY=1 sends no cluster or node identity."
);

/// An error the CLI itself raises, with its code chosen where it is raised.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    message: String,
}

/// An error that exits with `exit`.
pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    Failure {
        exit,
        message: message.into(),
    }
    .into()
}

/// What an error means for the person running the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub exit: Exit,
    /// Appended to the message when the message does not say the fix.
    pub fix: Option<String>,
}

impl Diagnosis {
    fn new(exit: Exit) -> Self {
        Diagnosis { exit, fix: None }
    }

    fn fix(exit: Exit, fix: impl Into<String>) -> Self {
        Diagnosis {
            exit,
            fix: Some(fix.into()),
        }
    }
}

/// The code and fix for `error`: the outermost error in its chain that
/// this knows decides.
pub fn diagnose(error: &anyhow::Error) -> Diagnosis {
    error
        .chain()
        .find_map(known)
        .unwrap_or(Diagnosis::new(Exit::Other))
}

/// Whether `error` is a reader that went away (`| head`): not a failure.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// The one line printed for `error`: its chain, then the fix.
pub fn line(error: &anyhow::Error) -> String {
    // Causes joined as anyhow's `{:#}` does, but a cause that only repeats
    // the end of the one before (SQLite's "Error code 26: file is not a
    // database" under "file is not a database") is left out.
    let mut text = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if !previous.is_empty() && part.ends_with(&previous) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        previous = part;
    }
    if let Some(fix) = diagnose(error).fix {
        text.push_str(": ");
        text.push_str(&fix);
    }
    // A source may hold a newline (a snippet, a path): one line for logs.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn known(e: &(dyn std::error::Error + 'static)) -> Option<Diagnosis> {
    if let Some(f) = e.downcast_ref::<Failure>() {
        return Some(Diagnosis::new(f.exit));
    }
    if let Some(e) = e.downcast_ref::<ConfigError>() {
        return Some(config(e));
    }
    if let Some(e) = e.downcast_ref::<KeyError>() {
        return Some(key(e));
    }
    if let Some(e) = e.downcast_ref::<CatalogError>() {
        return catalog(e);
    }
    if let Some(e) = e.downcast_ref::<StatsError>() {
        return Some(match e {
            StatsError::Store(e) => store(e.innermost()),
            StatsError::UnknownZone { .. } => {
                Diagnosis::fix(Exit::Usage, "give --zone one of those")
            }
        });
    }
    // `clickhouse rollup` while a server holds the lease: the message
    // names the holder and when its lease expires.
    if let Some(vcheckd::clickhouse::ClickHouseError::RollupBusy { .. }) =
        e.downcast_ref::<vcheckd::clickhouse::ClickHouseError>()
    {
        return Some(Diagnosis::new(Exit::TempFail));
    }
    if let Some(e) = e.downcast_ref::<StoreError>() {
        return Some(store(e.innermost()));
    }
    if let Some(e) = e.downcast_ref::<rusqlite::Error>() {
        return Some(sqlite(e));
    }
    if let Some(e) = e.downcast_ref::<ServerError>() {
        return server(e);
    }
    if let Some(e) = e.downcast_ref::<JournalError>() {
        return Some(journal(e));
    }
    if let Some(e) = e.downcast_ref::<CheckError>() {
        return Some(check(e));
    }
    // `check` and `encode` build the name before any exchange: too long a
    // zone or version given on the command line.
    if e.downcast_ref::<vcheckd::protocol::EncodeError>().is_some() {
        return Some(Diagnosis::new(Exit::Usage));
    }
    if let Some(e) = e.downcast_ref::<io::Error>() {
        return Some(io_error(e));
    }
    None
}

fn config(e: &ConfigError) -> Diagnosis {
    match e {
        ConfigError::Io { source, path } => Diagnosis::fix(
            read_exit(source),
            match source.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    "make {path} readable by the user vcheckd runs as (`chmod 644 {path}`; it holds no secret)"
                ),
                io::ErrorKind::IsADirectory => format!(
                    "{path} is a folder: give the configuration file in it (the package's is /etc/vcheckd/vcheckd.toml)"
                ),
                _ => "give the path of a configuration file (`vcheckd serve --print-config` prints one to start from)".to_string(),
            },
        ),
        ConfigError::ZoneFile { source, .. } => Diagnosis::fix(
            read_exit(source),
            "create the zone file, or fix the path (relative paths start at the config file's folder)",
        ),
        ConfigError::Toml {
            setting: Some(setting),
            ..
        } => Diagnosis::fix(
            Exit::Config,
            format!("fix {setting} (docs/DEPLOY.md section 7 lists every setting and its values)"),
        ),
        ConfigError::Toml { .. }
        | ConfigError::NoZones
        | ConfigError::NoListen
        | ConfigError::ClickHouse(_)
        | ConfigError::Forward(_)
        | ConfigError::RetentionShorterThanWindow { .. } => Diagnosis::new(Exit::Config),
    }
}

fn key(e: &KeyError) -> Diagnosis {
    match e {
        KeyError::Io { path, source } if source.kind() == io::ErrorKind::NotFound => {
            Diagnosis::fix(
                Exit::NoInput,
                format!("make it with `vcheckd keygen --private {path} --public FILE` (a v2 pair; the public file is for clients), or `vcheckd keygen --v1 --out {path}` (a v1 key); add --id N for a key beside an old one"),
            )
        }
        KeyError::Io { source, .. } => Diagnosis::new(read_exit(source)),
        KeyError::Format
        | KeyError::Malformed { .. }
        | KeyError::Kind { .. }
        | KeyError::Permissions { .. }
        | KeyError::DuplicateId(_)
        | KeyError::RatchetMismatch { .. } => Diagnosis::new(Exit::Config),
    }
}

/// Zone-file and release errors are configuration; a key error is judged
/// by the [`KeyError`] below it, which the chain goes on to.
fn catalog(e: &CatalogError) -> Option<Diagnosis> {
    match e {
        // Transparent: the chain skips the inner error, so it is read here.
        CatalogError::Config(e) => Some(config(e)),
        CatalogError::Key { .. } => None,
        _ => Some(Diagnosis::new(Exit::Config)),
    }
}

fn store(e: &StoreError) -> Diagnosis {
    match e {
        StoreError::Sqlite(e) => sqlite(e),
        StoreError::NotVcheckd => Diagnosis::fix(
            Exit::DataErr,
            "point --db (or [server] database) at the file vcheckd serve writes",
        ),
        StoreError::TooNew { .. } => Diagnosis::new(Exit::DataErr),
        StoreError::Folder { .. } => Diagnosis::fix(
            Exit::CantCreate,
            "create the folder, or set [server] database to a writable place",
        ),
        StoreError::Open { source, .. } => store(source),
        // ClickHouse (stats --store): the rollup has not reached the days
        // asked (the message says what to run).
        StoreError::Backend(e)
            if matches!(
                e.downcast_ref::<vcheckd::clickhouse::ClickHouseError>(),
                Some(vcheckd::clickhouse::ClickHouseError::NotRolledUp { .. })
            ) =>
        {
            Diagnosis::new(Exit::Unavailable)
        }
        // Not reachable, or it refused a query.
        StoreError::Backend(_) => Diagnosis::fix(
            Exit::Unavailable,
            "check that the ClickHouse server in --store (or [clickhouse] url) runs and answers",
        ),
    }
}

fn sqlite(e: &rusqlite::Error) -> Diagnosis {
    use rusqlite::ErrorCode as C;
    let Some(code) = e.sqlite_error_code() else {
        return Diagnosis::new(Exit::Other);
    };
    match code {
        C::NotADatabase => Diagnosis::fix(
            Exit::DataErr,
            "it is not a vcheckd database: point --db (or [server] database) at the file vcheckd serve writes",
        ),
        C::DatabaseBusy | C::DatabaseLocked => Diagnosis::fix(
            Exit::TempFail,
            "another process holds the database; try again",
        ),
        C::CannotOpen => Diagnosis::fix(
            Exit::CantCreate,
            "check that the file exists, or that its folder is writable by this user",
        ),
        C::ReadOnly | C::PermissionDenied => Diagnosis::fix(
            Exit::IoErr,
            "make the database, its folder and its -wal/-shm files writable by this user",
        ),
        C::DiskFull => Diagnosis::fix(Exit::IoErr, "free space on the database's disk"),
        C::DatabaseCorrupt => Diagnosis::new(Exit::DataErr),
        _ => Diagnosis::new(Exit::IoErr),
    }
}

fn server(e: &ServerError) -> Option<Diagnosis> {
    let (setting, addr, source) = match e {
        ServerError::Listen(ListenError::Bind { source, addr }) => {
            ("[server] listen (or --listen)", addr, source)
        }
        ServerError::HttpBind { source, addr } => ("[http] listen (or --http)", addr, source),
        ServerError::ForwardBind { source, addr } => ("[forward_listen] listen", addr, source),
        ServerError::ForwardKey(vcheckd::forward::KeyFileError::Io { source, .. }) => {
            return Some(Diagnosis::fix(
                read_exit(source),
                "make the key file with `vcheckd keygen --forward FILE` and give its path ([forward] key, [[forward_listen.secondary]] key)",
            ))
        }
        ServerError::ForwardKey(_) => return Some(Diagnosis::new(Exit::Config)),
        // Transparent variants: the chain skips the inner error.
        ServerError::Catalog(e) => return catalog(e),
        ServerError::Store(e) => return Some(store(e.innermost())),
        ServerError::Journal(e) => return Some(journal(e)),
        ServerError::Lanes(vcheckd::lanes::LanesError::Journal(e)) => return Some(journal(e)),
        ServerError::Lanes(vcheckd::lanes::LanesError::Positions { .. }) => {
            return Some(Diagnosis::fix(
                Exit::IoErr,
                "make [server] journal_dir (default: `journal` beside the database) writable by this user, with free space",
            ))
        }
        ServerError::Processor(_)
        | ServerError::Listen(ListenError::UdpThread(_))
        | ServerError::Rollup(_) => {
            return None
        }
    };
    let holder = match e {
        ServerError::HttpBind { .. } => "another vcheckd, or another web server or exporter",
        _ if addr.port() == 53 => {
            "another name server, or a local resolver such as systemd-resolved or dnsmasq"
        }
        _ => "another vcheckd, or another program",
    };
    Some(match source.kind() {
        io::ErrorKind::AddrInUse => Diagnosis::fix(
            Exit::Unavailable,
            format!("{holder} holds {addr} (`ss -lntup` shows which): stop that process or change {setting}"),
        ),
        io::ErrorKind::PermissionDenied => Diagnosis::fix(
            Exit::Config,
            "ports below 1024 need the CAP_NET_BIND_SERVICE capability: run under systemd/vcheckd.service (AmbientCapabilities=CAP_NET_BIND_SERVICE) or `setcap cap_net_bind_service=+ep` on the binary, or listen on a port above 1023",
        ),
        io::ErrorKind::AddrNotAvailable => Diagnosis::fix(
            Exit::Config,
            format!("no interface of this machine has that address: fix {setting}"),
        ),
        _ => Diagnosis::new(Exit::IoErr),
    })
}

fn journal(e: &JournalError) -> Diagnosis {
    match e {
        JournalError::Io { op, source, .. } => {
            let exit =
                if op.starts_with("create") || source.kind() == io::ErrorKind::PermissionDenied {
                    Exit::CantCreate
                } else {
                    Exit::IoErr
                };
            Diagnosis::fix(
                exit,
                "make [server] journal_dir (default: `journal` beside the database) writable by this user, with free space",
            )
        }
        // Also while an old process is still stopping: try again.
        JournalError::InUse { .. } => Diagnosis::new(Exit::TempFail),
        JournalError::Corrupt { .. } => Diagnosis::new(Exit::DataErr),
        JournalError::Ahead { .. } | JournalError::Deleted { .. } => Diagnosis::new(Exit::DataErr),
        JournalError::Thread(_) => Diagnosis::new(Exit::Other),
    }
}

fn check(e: &CheckError) -> Diagnosis {
    match e {
        CheckError::Exchange(ExchangeError::Timeout(_)) => {
            return Diagnosis::fix(
                Exit::Timeout,
                "check that the name server runs and that UDP and TCP port 53 reach it (firewall, `dig @SERVER ZONE SOA`), or give --timeout more seconds",
            )
        }
        CheckError::Rcode {
            rcode: ResponseCode::Refused,
            ..
        } => {
            return Diagnosis::fix(
                Exit::Refused,
                "that name server does not serve --zone: check the zone name, and that --server (or the resolver's delegation) points at the zone's name servers",
            )
        }
        _ => {}
    }
    Diagnosis::new(match e {
        // A name too long for DNS: the zone or version given is too long.
        CheckError::Encode(_) => Exit::Usage,
        CheckError::State(_) => Exit::CantCreate,
        CheckError::NoServer => Exit::Unavailable,
        CheckError::Exchange(ExchangeError::Timeout(_)) => Exit::Timeout,
        CheckError::Exchange(_) => Exit::Network,
        CheckError::Rcode {
            rcode: ResponseCode::ServFail,
            ..
        } => Exit::ServFail,
        CheckError::Rcode {
            rcode: ResponseCode::Refused,
            ..
        } => Exit::Refused,
        CheckError::Rcode { .. } => Exit::DnsError,
        CheckError::NoHint(_) | CheckError::NotReadable(_) | CheckError::BadHint { .. } => {
            Exit::NoHint
        }
        CheckError::Policy(PolicyError::Missing) => Exit::NoHint,
        CheckError::Policy(PolicyError::Expired { .. }) => Exit::PolicyExpired,
        CheckError::Policy(PolicyError::Rollback { .. } | PolicyError::Replayed { .. }) => {
            Exit::PolicyRollback
        }
        CheckError::Policy(
            PolicyError::BadSignature
            | PolicyError::UnknownKey(_)
            | PolicyError::Malformed(_)
            | PolicyError::Validity { .. },
        ) => Exit::BadPolicy,
    })
}

fn io_error(e: &io::Error) -> Diagnosis {
    match e.kind() {
        io::ErrorKind::AlreadyExists => Diagnosis::new(Exit::CantCreate),
        io::ErrorKind::NotFound => Diagnosis::new(Exit::NoInput),
        _ => Diagnosis::new(Exit::IoErr),
    }
}

/// Reading a file that is missing, not readable or a folder is "no input".
fn read_exit(e: &io::Error) -> Exit {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::IsADirectory => {
            Exit::NoInput
        }
        _ => Exit::IoErr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_help_table() {
        for exit in [
            Exit::Usage,
            Exit::DataErr,
            Exit::NoInput,
            Exit::Unavailable,
            Exit::CantCreate,
            Exit::IoErr,
            Exit::TempFail,
            Exit::Config,
            Exit::Other,
        ] {
            assert!(
                HELP.contains(&format!("\n  {:<3} ", exit as u8)),
                "{exit:?}"
            );
        }
        for exit in [3, 4, 5, 6, 7, 8] {
            assert!(CHECK_HELP.contains(&format!("\n  {exit}   ")), "{exit}");
        }
    }

    #[test]
    fn the_outermost_known_error_decides_and_lines_are_single() {
        let key = KeyError::Io {
            path: "/etc/vcheckd/a.key".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let e = anyhow::Error::new(key).context("zone vc.example.com");
        assert_eq!(diagnose(&e).exit, Exit::NoInput);
        let text = line(&e);
        assert!(
            text.ends_with("make it with `vcheckd keygen --private /etc/vcheckd/a.key --public FILE` (a v2 pair; the public file is for clients), or `vcheckd keygen --v1 --out /etc/vcheckd/a.key` (a v1 key); add --id N for a key beside an old one"),
            "{text}"
        );
        let e = fail(Exit::Usage, "two\nlines");
        assert_eq!(
            (diagnose(&e).exit, line(&e)),
            (Exit::Usage, "two lines".into())
        );
        assert!(is_closed_pipe(
            &anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("x")
        ));
    }
}
