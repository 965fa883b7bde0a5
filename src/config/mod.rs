//! The server's configuration file (TOML) and its embedded default.
//!
//! What can change on SIGHUP (zones, keys, releases) is rebuilt from a fresh
//! read of the file; listen addresses and the database need a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hint::ReleasesConfig;
use crate::replay::ReplayWindow;

mod clickhouse;
pub use clickhouse::ClickHouseConfig;

/// The embedded default configuration's text.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");
/// The sample zone the embedded default serves, compiled in so that the
/// binary runs from any working directory.
pub const SAMPLE_ZONE_FILE: &str = "zones/vc.example.com.zone";
pub const SAMPLE_ZONE: &str = include_str!("../../zones/vc.example.com.zone");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// toml's own message is a multi-line snippet for a terminal; a log
    /// line needs it on one line, so its parts are kept instead.
    #[error("invalid config {path}, line {line} column {column}: {}{message}", setting.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
    Toml {
        path: String,
        line: usize,
        column: usize,
        /// The setting at the error, `[table] key`, when the error is in a
        /// value (toml names only the type it expected).
        setting: Option<String>,
        message: String,
    },
    #[error("cannot read zone file {path} of zone {zone} (the [[zone]] file setting)")]
    ZoneFile {
        zone: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config lists no [[zone]]: add one (see `vcheckd serve --print-config`)")]
    NoZones,
    #[error("config lists no listen address: set [server] listen, e.g. [\"0.0.0.0:53\"]")]
    NoListen,
    #[error("config [clickhouse]: {0}")]
    ClickHouse(String),
    #[error("config: {0}")]
    Forward(String),
    /// Deduplication forgets a report id when its raw row is pruned; a
    /// replay accepted after that would count twice.
    #[error("[server] retention_days = {retention_days} is shorter than the replay window (replay_window_secs + replay_future_secs): set retention_days to at least {needed_days}, or shorten the window")]
    RetentionShorterThanWindow {
        retention_days: u32,
        needed_days: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    Embedded,
    File(PathBuf),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub database: PathBuf,
    /// The journal's folder: every answered report is written here before
    /// it reaches the database. Default: `journal` beside the database.
    #[serde(default)]
    pub journal_dir: Option<PathBuf>,
    /// Bound on the journal's size; past it, answered reports are dropped,
    /// counted and logged.
    #[serde(default = "defaults::journal_max_bytes")]
    pub journal_max_bytes: u64,
    /// How long appended reports wait for one write and fsync: the most a
    /// crash can lose.
    #[serde(default = "defaults::journal_commit_ms")]
    pub journal_commit_ms: u64,
    /// Reports per database transaction, at most.
    #[serde(default = "defaults::max_batch")]
    pub max_batch: usize,
    /// SIGTERM exits within this bound, even with a full disk; what is not
    /// in the database yet stays in the journal for the next start.
    #[serde(default = "defaults::shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    /// A TCP connection idle this long is closed.
    #[serde(default = "defaults::tcp_idle_timeout_secs")]
    pub tcp_idle_timeout_secs: u64,
    /// Connections beyond this wait in the kernel's accept queue.
    #[serde(default = "defaults::max_tcp_connections")]
    pub max_tcp_connections: usize,
    /// Open TCP connections one source may hold (an IPv4 address, an IPv6
    /// /56); more are closed at once, so no source can take every slot.
    /// 0: no per-source cap.
    #[serde(default = "defaults::max_tcp_connections_per_source")]
    pub max_tcp_connections_per_source: usize,
    /// UDP responses a second per client prefix (IPv4 /24, IPv6 /56)
    /// before rate limiting starts; 0 turns it off.
    #[serde(default = "defaults::rrl_rate")]
    pub rrl_rate: u32,
    /// Of those, large responses a second per prefix (512 bytes or more,
    /// or more than 3 times their query: the policy at `_policy` names); 0:
    /// no budget of their own (docs/DEPLOY.md, "Forged sources").
    #[serde(default = "defaults::rrl_large_rate")]
    pub rrl_large_rate: u32,
    /// Of the rate-limited responses, every `rrl_slip`-th is sent truncated
    /// (so real resolvers retry over TCP) and the others dropped; 0: all dropped.
    #[serde(default = "defaults::rrl_slip")]
    pub rrl_slip: u32,
    /// UDP receive loops per listen address, on SO_REUSEPORT sockets.
    /// 0: one per CPU.
    #[serde(default)]
    pub udp_workers: usize,
    /// Days raw reports are kept; daily rollups are kept forever. Raw rows
    /// are what deduplication remembers, so this is never shorter than the
    /// replay window (checked at load).
    #[serde(default = "defaults::retention_days")]
    pub retention_days: u32,
    /// A report whose client timestamp is older than this when received is
    /// counted (`outside_window.too_old`) and not recorded: a replayed frame
    /// never counts twice.
    #[serde(default = "defaults::replay_window_secs")]
    pub replay_window_secs: u64,
    /// A report whose client timestamp is this far ahead of the server's
    /// clock is counted (`outside_window.future`) and not recorded.
    #[serde(default = "defaults::replay_future_secs")]
    pub replay_future_secs: u64,
}

impl ServerConfig {
    /// The replay window the processor applies.
    pub fn replay_window(&self) -> ReplayWindow {
        ReplayWindow {
            back_secs: self.replay_window_secs,
            ahead_secs: self.replay_future_secs,
        }
    }
}

/// Versions named in charts and metric labels unless `top_versions` says.
pub const DEFAULT_TOP_VERSIONS: usize = 10;

/// The optional HTTP listener: `/metrics`, `/api/v1/...` and the dashboard.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Versions shown by name in charts and metric labels; the rest are
    /// summed into "other".
    #[serde(default = "defaults::top_versions")]
    pub top_versions: usize,
}

mod defaults {
    pub fn top_versions() -> usize {
        super::DEFAULT_TOP_VERSIONS
    }
    pub fn journal_max_bytes() -> u64 {
        1 << 30
    }
    pub fn journal_commit_ms() -> u64 {
        2
    }
    pub fn max_batch() -> usize {
        8_192
    }
    pub fn forward_batch() -> usize {
        1_000
    }
    pub fn max_backoff_secs() -> u64 {
        30
    }
    pub fn shutdown_timeout_secs() -> u64 {
        10
    }
    pub fn tcp_idle_timeout_secs() -> u64 {
        10
    }
    pub fn max_tcp_connections() -> usize {
        512
    }
    pub fn max_tcp_connections_per_source() -> usize {
        16
    }
    /// NSD's Debian package ships `rrl-ratelimit: 200` and `rrl-slip: 2`.
    pub fn rrl_rate() -> u32 {
        200
    }
    pub fn rrl_slip() -> u32 {
        2
    }
    /// A quarter of `rrl_rate`: 50 answers of at most 1,232 bytes send a
    /// victim prefix about what the other 150 of `rrl_rate` do with the
    /// largest normal answer measured, 404 bytes (docs/DEPLOY.md, "Forged
    /// sources").
    pub fn rrl_large_rate() -> u32 {
        50
    }
    pub fn retention_days() -> u32 {
        30
    }
    pub fn replay_window_secs() -> u64 {
        crate::replay::ReplayWindow::DEFAULT.back_secs
    }
    pub fn replay_future_secs() -> u64 {
        crate::replay::ReplayWindow::DEFAULT.ahead_secs
    }
    pub fn answer_ttl() -> u32 {
        60
    }
    pub fn accept_v1() -> bool {
        true
    }
    pub fn policy_validity_secs() -> u64 {
        86_400
    }
    pub fn effort() -> u8 {
        16
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    /// Zone file with the apex SOA and NS (and any fixed names).
    pub file: PathBuf,
    /// Protocol v1 shared key files (`vck1:<id>:<hex>`); several for key
    /// rollover. Needed while `accept_v1` is on.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Protocol v2 private key files (`vck2-private:...`, made by `vcheckd
    /// keygen`); several ids for rotation. Must be private (mode 0600).
    #[serde(default)]
    pub private_keys: Vec<PathBuf>,
    /// Whether protocol v1 report names are still answered and recorded
    /// (fleets already in the field); turn off once they have upgraded.
    #[serde(default = "defaults::accept_v1")]
    pub accept_v1: bool,
    /// How long a signed v2 policy stays valid (7200 to 691200; default a
    /// day). The server signs it anew every full hour, so clients never see
    /// it expire while the server runs; a stopped server's policy goes
    /// stale within this time, and clients then say so.
    #[serde(default = "defaults::policy_validity_secs")]
    pub policy_validity_secs: u64,
    /// The client effort the v2 policy suggests: leading zero bits of the
    /// report's proof (16: about 65,000 SHA-256 hashes, a few milliseconds
    /// in Rust or Go, under 0.1 s in Python). Reports are kept and opened
    /// in order of effort, so a flood of cheap names cannot push out
    /// reports that paid it.
    #[serde(default = "defaults::effort")]
    pub effort: u8,
    /// Where an advisory is explained, `{id}` standing for its id (for
    /// example "https://example.com/security/{id}"): v2 clients name the URL
    /// when an advisory makes them require an upgrade.
    #[serde(default)]
    pub advisory_url: Option<String>,
    /// TTL of synthesized hint answers.
    #[serde(default = "defaults::answer_ttl")]
    pub answer_ttl: u32,
    pub releases: ReleasesConfig,
}

/// `[forward]`: this server is a secondary; it forwards the reports it
/// receives to the primary instead of recording them (src/forwarding.rs).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// The primary's `[forward_listen]` address, `host:port` (the name is
    /// resolved at each connection).
    pub primary: String,
    /// This server's name at the primary: its per-server counters there.
    pub name: String,
    /// The key shared with the primary for this name (32 bytes, mode 0600).
    pub key: PathBuf,
    /// Reports per batch, at most.
    #[serde(default = "defaults::forward_batch")]
    pub batch: usize,
    /// Longest pause between attempts while the primary is away.
    #[serde(default = "defaults::max_backoff_secs")]
    pub max_backoff_secs: u64,
}

/// `[forward_listen]`: this server is a primary for the listed secondaries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardListenConfig {
    /// TCP address for secondaries (port 0: any free port, logged).
    pub listen: SocketAddr,
    #[serde(rename = "secondary", default)]
    pub secondaries: Vec<SecondaryConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    /// The name the secondary gives (its `[forward] name`).
    pub name: String,
    /// The key it shares with this server.
    pub key: PathBuf,
}

/// A server name as the forwarding protocol and metric labels take it.
fn valid_server_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: ServerConfig,
    /// Absent: no HTTP listener.
    http: Option<HttpConfig>,
    /// Absent: no shipping, statistics from SQLite.
    clickhouse: Option<ClickHouseConfig>,
    /// Present: a secondary, forwarding to a primary.
    forward: Option<ForwardConfig>,
    /// Present: a primary, taking reports from secondaries.
    forward_listen: Option<ForwardListenConfig>,
    #[serde(rename = "zone", default)]
    zones: Vec<ZoneConfig>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub http: Option<HttpConfig>,
    pub clickhouse: Option<ClickHouseConfig>,
    pub forward: Option<ForwardConfig>,
    pub forward_listen: Option<ForwardListenConfig>,
    pub zones: Vec<ZoneConfig>,
    pub origin: ConfigOrigin,
}

impl Config {
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CONFIG, ConfigOrigin::Embedded)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, ConfigOrigin::File(path.to_path_buf()))
    }

    /// Parses and checks a configuration's text; `origin` says where
    /// relative paths start. Public for the fuzz target
    /// (fuzz/fuzz_targets/config.rs); the server uses [`Config::load`].
    pub fn parse(text: &str, origin: ConfigOrigin) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            let (line, column) = line_column(text, at);
            ConfigError::Toml {
                path: match &origin {
                    ConfigOrigin::Embedded => "(embedded default)".into(),
                    ConfigOrigin::File(p) => p.display().to_string(),
                },
                line,
                column,
                setting: setting_at(text, at),
                message: readable_types(
                    &e.message().split_whitespace().collect::<Vec<_>>().join(" "),
                ),
            }
        })?;
        if file.zones.is_empty() {
            return Err(ConfigError::NoZones);
        }
        if file.server.listen.is_empty() {
            return Err(ConfigError::NoListen);
        }
        if let Some(c) = &file.clickhouse {
            c.check()?;
        }
        let span = file.server.replay_window().span_secs();
        let kept = u64::from(file.server.retention_days) * 86_400;
        if kept < span {
            return Err(ConfigError::RetentionShorterThanWindow {
                retention_days: file.server.retention_days,
                needed_days: span.div_ceil(86_400),
            });
        }
        if let Some(f) = &file.forward {
            if !valid_server_name(&f.name) {
                return Err(ConfigError::Forward(format!(
                    "[forward] name = {:?}: use 1 to 63 letters, digits, '-', '_' or '.'",
                    f.name
                )));
            }
            if f.primary
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                return Err(ConfigError::Forward(format!(
                    "[forward] primary = {:?}: give host:port, e.g. \"ns1.example.com:5301\"",
                    f.primary
                )));
            }
        }
        if let Some(l) = &file.forward_listen {
            let mut seen = std::collections::HashSet::new();
            for s in &l.secondaries {
                if !valid_server_name(&s.name) {
                    return Err(ConfigError::Forward(format!("[[forward_listen.secondary]] name = {:?}: use 1 to 63 letters, digits, '-', '_' or '.'", s.name)));
                }
                if !seen.insert(&s.name) {
                    return Err(ConfigError::Forward(format!(
                        "[[forward_listen.secondary]] name = {:?} is listed twice",
                        s.name
                    )));
                }
            }
        }
        Ok(Config {
            server: file.server,
            http: file.http,
            clickhouse: file.clickhouse,
            forward: file.forward,
            forward_listen: file.forward_listen,
            zones: file.zones,
            origin,
        })
    }

    /// The settings that differ between the running configuration and
    /// `new` but that a reload (SIGHUP) cannot apply: everything in
    /// `[server]` and `[http]` (sockets, the database, the journal and the
    /// processor are set up once). Compared field by field through their
    /// TOML form, so a setting added later is covered without a list here.
    pub fn changes_needing_restart(&self, new: &Config) -> Vec<String> {
        fn table<T: Serialize>(v: Option<&T>) -> toml::Table {
            v.and_then(|v| toml::Table::try_from(v).ok())
                .unwrap_or_default()
        }
        let mut changed = Vec::new();
        for (section, old, new) in [
            (
                "server",
                table(Some(&self.server)),
                table(Some(&new.server)),
            ),
            ("http", table(self.http.as_ref()), table(new.http.as_ref())),
            (
                "forward",
                table(self.forward.as_ref()),
                table(new.forward.as_ref()),
            ),
            (
                "forward_listen",
                table(self.forward_listen.as_ref()),
                table(new.forward_listen.as_ref()),
            ),
        ] {
            let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                if old.get(key) != new.get(key) {
                    changed.push(format!("[{section}] {key}"));
                }
            }
        }
        changed
    }

    /// A path from the config, made usable: relative paths are relative to
    /// the config file's folder (the working directory for the embedded default).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.origin {
            ConfigOrigin::File(f) if path.is_relative() => f
                .parent()
                .map_or_else(|| path.to_path_buf(), |dir| dir.join(path)),
            _ => path.to_path_buf(),
        }
    }

    /// The folder of the server's own state beside the database: the v2
    /// ratchet seeds it has advanced (`keys/`) and the policy serials it
    /// has signed (`policy-serials`).
    pub fn state_dir(&self) -> PathBuf {
        self.resolve(&self.server.database)
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// The journal's folder, resolved (default: `journal` beside the
    /// database).
    pub fn journal_dir(&self) -> PathBuf {
        match &self.server.journal_dir {
            Some(dir) => self.resolve(dir),
            None => self
                .resolve(&self.server.database)
                .parent()
                .map_or_else(|| PathBuf::from("journal"), |d| d.join("journal")),
        }
    }

    /// The zone file's text: the compiled-in sample for the embedded default.
    pub fn zone_text(&self, zone: &ZoneConfig) -> Result<String, ConfigError> {
        if self.origin == ConfigOrigin::Embedded && zone.file == Path::new(SAMPLE_ZONE_FILE) {
            return Ok(SAMPLE_ZONE.to_string());
        }
        let path = self.resolve(&zone.file);
        std::fs::read_to_string(&path).map_err(|source| ConfigError::ZoneFile {
            zone: zone.name.clone(),
            path: path.display().to_string(),
            source,
        })
    }
}

/// The setting whose value is at byte `at` of a configuration's text, as
/// `[table] key` (`[[zone]] keys` for an array of tables): toml's errors
/// about a value name the type it wanted, not the setting.
fn setting_at(text: &str, at: usize) -> Option<String> {
    let start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|t| t.split('#').next().unwrap_or(t).trim().to_string());
    Some(match table {
        Some(t) => format!("{t} {key}"),
        None => key.to_string(),
    })
}

/// serde's type names as a person reads them ("expected u32": a whole
/// number).
fn readable_types(message: &str) -> String {
    let mut out = message.to_string();
    for (ty, words) in [
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number of 0 or more"),
        ("usize", "a whole number of 0 or more"),
        ("i64", "a whole number"),
        ("f64", "a number"),
        ("a boolean", "true or false"),
    ] {
        if let Some(rest) = out.strip_suffix(&format!("expected {ty}")) {
            out = format!("{rest}expected {words}");
        }
    }
    out
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::embedded().unwrap();
        assert_eq!(c.server.listen, vec!["127.0.0.1:5300".parse().unwrap()]);
        assert_eq!(c.zones[0].name, "vc.example.com");
        let http = c.http.clone().unwrap();
        assert_eq!(http.listen, "127.0.0.1:8053".parse().unwrap());
        assert_eq!(http.top_versions, 10);
        assert_eq!(c.server.max_tcp_connections_per_source, 16);
        assert!(c.zone_text(&c.zones[0]).unwrap().contains("SOA"));
    }

    #[test]
    fn abuse_limits_default_to_nsds() {
        let text = DEFAULT_CONFIG
            .lines()
            .filter(|l| !l.starts_with("rrl_") && !l.starts_with("max_tcp"))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&text, ConfigOrigin::Embedded).unwrap();
        assert_eq!(
            (
                c.server.rrl_rate,
                c.server.rrl_large_rate,
                c.server.rrl_slip
            ),
            (200, 50, 2)
        );
        assert_eq!(c.server.max_tcp_connections_per_source, 16);
        // The loopback demo turns rate limiting off (see default.toml).
        assert_eq!(Config::embedded().unwrap().server.rrl_rate, 0);
    }

    #[test]
    fn clickhouse_section_parses_and_is_checked() {
        let with = |section: &str| {
            Config::parse(
                &format!("{DEFAULT_CONFIG}\n[clickhouse]\n{section}"),
                ConfigOrigin::Embedded,
            )
        };
        let c = with("url = \"clickhouse://127.0.0.1:8123/vc\"").unwrap();
        let ch = c.clickhouse.unwrap();
        assert!(ch.ship && !ch.stats);
        assert_eq!(ch.topology(), crate::clickhouse::Topology::Single);
        assert_eq!(ch.shipper().max_batch, 10_000);
        let c = with(
            "url = \"clickhouse://127.0.0.1:1/vc\"\ncluster = \"two\"\nnodes = [\"clickhouse://127.0.0.1:1/vc\", \"clickhouse://127.0.0.1:2/vc\"]",
        )
        .unwrap();
        assert!(
            matches!(c.clickhouse.unwrap().topology(), crate::clickhouse::Topology::Cluster { nodes, .. } if nodes.len() == 2)
        );
        for bad in [
            "url = \"http://x/vc\"",
            "url = \"clickhouse://h:1/vc\"\ncluster = \"two\"",
            "url = \"clickhouse://h:1/vc\"\ncluster = \"a;b\"\nnodes = [\"clickhouse://h:1/vc\"]",
            "url = \"clickhouse://h:1/vc\"\nserver_name = \"a b\"",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reload_names_each_setting_it_cannot_apply() {
        let old = Config::embedded().unwrap();
        let same = Config::embedded().unwrap();
        assert!(old.changes_needing_restart(&same).is_empty());
        let mut new = Config::embedded().unwrap();
        new.server.listen = vec!["127.0.0.1:53".parse().unwrap()];
        new.server.journal_dir = Some("/var/lib/vcheckd/j".into());
        new.http = None;
        new.zones[0].answer_ttl = 5; // zones reload: not listed
        assert_eq!(
            old.changes_needing_restart(&new),
            vec![
                "[server] journal_dir",
                "[server] listen",
                "[http] listen",
                "[http] top_versions"
            ]
        );
    }

    #[test]
    fn toml_errors_are_one_line_with_their_place() {
        let e = Config::parse(
            "[server]\nlisten = [\n  \"nope\"]\n",
            ConfigOrigin::Embedded,
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 3 column 3"), "{e}");
    }

    #[test]
    fn retention_never_shorter_than_the_replay_window() {
        let with = |extra: &str| {
            let text = DEFAULT_CONFIG.replace("[server]\n", &format!("[server]\n{extra}\n"));
            Config::parse(&text, ConfigOrigin::Embedded)
        };
        let c = with("").unwrap();
        assert_eq!(
            c.server.replay_window(),
            crate::replay::ReplayWindow::DEFAULT
        );
        assert!(with("retention_days = 1\nreplay_future_secs = 0").is_ok());
        let e = with("retention_days = 1").unwrap_err().to_string();
        assert!(e.contains("at least 2"), "{e}");
    }

    /// docs/DEPLOY.md section 7 is the reference: a setting added here
    /// without a row there fails this test.
    #[test]
    fn every_setting_is_in_the_configuration_reference() {
        let docs = include_str!("../../docs/DEPLOY.md");
        let reference = &docs[docs.find("## 7. Configuration reference").unwrap()..];
        let reference = &reference[..reference.find("\n## 8.").unwrap()];
        let mut c = Config::embedded().unwrap();
        c.server.journal_dir = Some("j".into()); // None is not serialized
        let server = toml::Table::try_from(&c.server).unwrap();
        let http = toml::Table::try_from(c.http.as_ref().unwrap()).unwrap();
        // Options set, so that none is left out.
        let clickhouse: ClickHouseConfig = toml::from_str(
            "url = \"clickhouse://h:1/vc\"\nserver_name = \"a\"\ncluster = \"c\"\nnodes = [\"clickhouse://h:1/vc\"]",
        )
        .unwrap();
        let clickhouse = toml::Table::try_from(&clickhouse).unwrap();
        let forward: ForwardConfig =
            toml::from_str("primary = \"ns1:5301\"\nname = \"ns2\"\nkey = \"k\"").unwrap();
        let forward = toml::Table::try_from(&forward).unwrap();
        let listen: ForwardListenConfig =
            toml::from_str("listen = \"0.0.0.0:5301\"\n[[secondary]]\nname = \"ns2\"\nkey = \"k\"")
                .unwrap();
        let listen = toml::Table::try_from(&listen).unwrap();
        for key in server
            .keys()
            .chain(http.keys())
            .chain(clickhouse.keys())
            .chain(forward.keys())
            .chain(listen.keys())
        {
            assert!(
                reference.contains(&format!("`{key}`")),
                "{key} is not documented"
            );
        }
    }

    #[test]
    fn forwarding_sections_parse_and_are_checked() {
        let base = DEFAULT_CONFIG.to_string();
        let with = |extra: &str| Config::parse(&format!("{extra}\n{base}"), ConfigOrigin::Embedded);
        let c = with(
            "[forward]\nprimary = \"ns1.example.com:5301\"\nname = \"ns2\"\nkey = \"ns2.key\"",
        )
        .unwrap();
        let f = c.forward.unwrap();
        assert_eq!((f.batch, f.max_backoff_secs), (1_000, 30));
        let e = with("[forward]\nprimary = \"ns1.example.com\"\nname = \"ns2\"\nkey = \"k\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("host:port"), "{e}");
        let e = with("[forward]\nprimary = \"ns1:1\"\nname = \"ns 2\"\nkey = \"k\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[forward] name"), "{e}");
        let two = "[forward_listen]\nlisten = \"0.0.0.0:5301\"\n[[forward_listen.secondary]]\nname = \"ns2\"\nkey = \"a\"\n[[forward_listen.secondary]]\nname = \"ns2\"\nkey = \"b\"";
        let e = with(two).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let one = with(&two[..two.rfind("[[").unwrap()]).unwrap();
        assert_eq!(one.forward_listen.unwrap().secondaries.len(), 1);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut c = Config::embedded().unwrap();
        c.origin = ConfigOrigin::File("/etc/vcheckd/vcheckd.toml".into());
        assert_eq!(
            c.resolve(Path::new("keys/a.key")),
            Path::new("/etc/vcheckd/keys/a.key")
        );
        assert_eq!(c.resolve(Path::new("/k")), Path::new("/k"));
    }
}
