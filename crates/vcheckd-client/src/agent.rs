//! The periodic version check (docs/CLIENTS.md, "The agent"): the same
//! contract in the Rust, Go and Python clients.
//!
//! - The first check after a random delay in `[0, startup_jitter]`, then
//!   every `interval` ± 10%; a failure is retried after 60 s, doubling per
//!   consecutive failure up to `min(interval, 6 h)`, ± 10%. Jitter comes from
//!   the OS random source, so a fleet started at once does not check at
//!   once (HashiCorp's Checkpoint and PowerDNS's polling do the same).
//! - The status is sticky: a failed check keeps the last verified status,
//!   so it never turns "upgrade required" into "up to date"; a check that
//!   fails once the policy it came from has expired makes it `stale` (so
//!   does a start with an expired policy kept). No timer runs to the
//!   policy's expiry: between checks the status does not change.
//! - DISABLE_VERSION_CHECK: nothing is sent, the status is `disabled`.
//! - Each change of status is reported once ([`Agent::on_change`]); a JSON
//!   status file and a Prometheus textfile are rewritten atomically after
//!   every check.
//!
//! [`Control`] lets another thread (a signal handler) ask for a check now
//! or stop the loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::v2::ClientState;
use crate::versioned::VersionCheck;
use vcheckd_proto::hint::Status;

/// How the agent schedules checks and where it writes.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Between successful checks (± 10%). Default: a day.
    pub interval: Duration,
    /// The first check waits a random time up to this. Default: 5 minutes.
    pub startup_jitter: Duration,
    /// The first retry after a failure; doubled per consecutive failure.
    pub backoff: Duration,
    /// The longest wait after failures (at most `interval`). Default: 6 h.
    pub backoff_cap: Duration,
    /// Name servers to ask (empty: the system's resolvers).
    pub servers: Vec<SocketAddr>,
    /// How long each name server has to answer each query (UDP and a TCP
    /// retry together): a check asks one to three questions.
    pub timeout: Duration,
    /// The JSON status file, for GUIs.
    pub status_file: Option<PathBuf>,
    /// node_exporter's textfile collector file (`.prom`).
    pub textfile: Option<PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            interval: Duration::from_secs(86_400),
            startup_jitter: Duration::from_secs(300),
            backoff: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(21_600),
            servers: Vec::new(),
            timeout: Duration::from_secs(10),
            status_file: None,
            textfile: None,
        }
    }
}

/// What the agent last knew: the status file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub zone: String,
    pub running: String,
    /// `up-to-date`, `upgrade-available`, `upgrade-required`, `unknown`,
    /// `stale` or `disabled`.
    pub status: String,
    /// The last verified status (also when `stale`).
    pub last_status: Option<String>,
    /// 0-3 of the last verified status.
    pub status_code: Option<u8>,
    pub message: String,
    pub latest: Option<String>,
    pub advisory_url: Option<String>,
    pub anonymous: bool,
    pub checked_at: Option<String>,
    pub last_success: Option<String>,
    pub policy_expires: Option<String>,
    pub next_check: Option<String>,
    pub consecutive_failures: u32,
    pub error: Option<String>,
    #[serde(skip)]
    last_success_unix: Option<u64>,
    #[serde(skip)]
    expires_unix: Option<u64>,
}

fn parse_rfc3339(text: &str) -> Option<u64> {
    // The form rfc3339() writes: YYYY-MM-DDTHH:MM:SSZ.
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3_600 + mm * 60 + ss).ok()
}

/// What a [`Control`] asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Nothing,
    CheckNow,
    Stop,
}

/// Wakes the agent: a check now (SIGHUP) or a stop (SIGTERM).
#[derive(Debug)]
pub struct Control {
    ask: Mutex<Ask>,
    wake: Condvar,
}

impl Control {
    fn new() -> Arc<Self> {
        Arc::new(Control {
            ask: Mutex::new(Ask::Nothing),
            wake: Condvar::new(),
        })
    }

    pub fn check_now(&self) {
        let mut ask = self.ask.lock().unwrap_or_else(PoisonError::into_inner);
        if *ask != Ask::Stop {
            *ask = Ask::CheckNow;
        }
        self.wake.notify_all();
    }

    pub fn stop(&self) {
        *self.ask.lock().unwrap_or_else(PoisonError::into_inner) = Ask::Stop;
        self.wake.notify_all();
    }

    /// Waits up to `d`; returns what was asked meanwhile (and clears a
    /// "check now").
    fn wait(&self, d: Duration) -> Ask {
        let guard = self.ask.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut ask, _) = self
            .wake
            .wait_timeout_while(guard, d, |a| *a == Ask::Nothing)
            .unwrap_or_else(PoisonError::into_inner);
        let got = *ask;
        if got == Ask::CheckNow {
            *ask = Ask::Nothing;
        }
        got
    }
}

/// The periodic check.
pub struct Agent {
    check: Option<VersionCheck>,
    state: ClientState,
    config: AgentConfig,
    status: AgentStatus,
    control: Arc<Control>,
    on_change: Box<dyn FnMut(&AgentStatus) + Send>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil from days (Howard Hinnant's algorithm), for 1970 onward.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `d` ± `fraction` of it, uniformly, from the OS random source.
fn jittered(d: Duration, fraction: f64) -> Duration {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return d;
    }
    let unit = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    d.mul_f64(1.0 + fraction * (2.0 * unit - 1.0))
}

/// Uniform in `[0, d]`.
fn up_to(d: Duration) -> Duration {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return Duration::ZERO;
    }
    d.mul_f64((u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64)
}

impl Agent {
    /// An agent checking with `check` (`None`: DISABLE_VERSION_CHECK, the
    /// agent only reports `disabled`), keeping `state`.
    pub fn new(
        zone: &str,
        running: &str,
        check: Option<VersionCheck>,
        anonymous: bool,
        state: ClientState,
        config: AgentConfig,
    ) -> Self {
        let disabled = check.is_none();
        let mut agent = Agent {
            check,
            state,
            config,
            status: AgentStatus {
                zone: zone.to_string(),
                running: running.to_string(),
                status: if disabled { "disabled" } else { "stale" }.into(),
                last_status: None,
                status_code: None,
                message: if disabled {
                    "DISABLE_VERSION_CHECK is set: nothing is sent".into()
                } else {
                    "no check yet".into()
                },
                latest: None,
                advisory_url: None,
                anonymous,
                checked_at: None,
                last_success: None,
                policy_expires: None,
                next_check: None,
                consecutive_failures: 0,
                error: None,
                last_success_unix: None,
                expires_unix: None,
            },
            control: Control::new(),
            on_change: Box::new(|_| {}),
        };
        if !disabled {
            agent.restore();
        }
        agent
    }

    /// Picks up where an earlier run left off (a timer or CronJob runs
    /// `--once` each time): the status from the last verified policy the
    /// client state keeps (stale if it has expired), and the failure count
    /// and times from the status file of the same zone and version.
    fn restore(&mut self) {
        let now = unix_now();
        if let Some(earlier) = self
            .config
            .status_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<AgentStatus>(&t).ok())
            .filter(|e| e.zone == self.status.zone && e.running == self.status.running)
        {
            self.status.consecutive_failures = earlier.consecutive_failures;
            self.status.error = earlier.error;
            self.status.last_success_unix = earlier.last_success.as_deref().and_then(parse_rfc3339);
            self.status.last_success = earlier.last_success;
            self.status.checked_at = earlier.checked_at;
        }
        let Some(VersionCheck::V2(check)) = &self.check else {
            return;
        };
        let Some(policy) = self.state.policy(&check.zone, &check.key) else {
            return;
        };
        let hint = policy.hint_for(&check.version);
        let s = &mut self.status;
        let name = hint.status.name().to_string();
        s.status = name.clone();
        s.last_status = Some(name);
        s.status_code = Some(hint.status.code());
        s.message = hint.message;
        s.latest = Some(hint.latest.to_string());
        s.expires_unix = Some(policy.expires);
        s.policy_expires = Some(rfc3339(policy.expires));
        s.advisory_url = (hint.status == Status::UpgradeRequired)
            .then(|| {
                let url = policy.advisory_url.as_ref()?;
                let adv = policy.releases.advisory_for(&check.version)?;
                Some(url.for_id(&adv.id))
            })
            .flatten();
        self.mark_stale_if_expired(now);
    }

    /// Called once per change of status (not per check): the place for a
    /// log line.
    pub fn on_change(&mut self, f: impl FnMut(&AgentStatus) + Send + 'static) {
        self.on_change = Box::new(f);
    }

    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    pub fn status(&self) -> &AgentStatus {
        &self.status
    }

    /// One check now: the status, the files. Returns the wait until the
    /// next one (interval on success, backoff on failure).
    pub fn check_once(&mut self) -> Duration {
        let before = self.status.status.clone();
        let now = unix_now();
        let Some(check) = &self.check else {
            self.write_files();
            return self.config.interval;
        };
        self.status.checked_at = Some(rfc3339(now));
        let result = check
            .send(
                &self.config.servers,
                self.config.timeout,
                &mut self.state,
                now,
            )
            .map_err(|e| e.to_string())
            .and_then(|answer| {
                self.state
                    .save()
                    .map_err(|e| format!("cannot save the client state: {e}"))?;
                Ok(answer)
            });
        let wait = match result {
            Ok(answer) => {
                let s = &mut self.status;
                let name = answer.hint.status.name().to_string();
                s.status = name.clone();
                s.last_status = Some(name);
                s.status_code = Some(answer.hint.status.code());
                s.message = answer.hint.message.clone();
                s.latest = Some(answer.hint.latest.to_string());
                if let Some(v) = &answer.verified {
                    s.advisory_url = (answer.hint.status == Status::UpgradeRequired)
                        .then(|| {
                            let url = v.policy.advisory_url.as_ref()?;
                            let adv = v.policy.releases.advisory_for(check.version())?;
                            Some(url.for_id(&adv.id))
                        })
                        .flatten();
                    s.expires_unix = Some(v.policy.expires);
                    s.policy_expires = Some(rfc3339(v.policy.expires));
                }
                s.last_success_unix = Some(now);
                s.last_success = Some(rfc3339(now));
                s.consecutive_failures = 0;
                s.error = None;
                jittered(self.config.interval, 0.1)
            }
            Err(e) => {
                let s = &mut self.status;
                s.consecutive_failures += 1;
                s.error = Some(e);
                self.mark_stale_if_expired(now);
                let doublings = self.status.consecutive_failures.saturating_sub(1).min(30);
                let cap = self.config.backoff_cap.min(self.config.interval);
                let wait = self
                    .config
                    .backoff
                    .saturating_mul(1u32 << doublings.min(20))
                    .min(cap);
                jittered(wait, 0.1)
            }
        };
        self.status.next_check = Some(rfc3339(now + wait.as_secs()));
        self.write_files();
        if self.status.status != before {
            (self.on_change)(&self.status);
        }
        wait
    }

    /// The kept status is stale once the policy it came from has expired:
    /// called at a failed check and at the start, never on a timer.
    fn mark_stale_if_expired(&mut self, now: u64) {
        if self.check.is_some() && self.status.expires_unix.is_none_or(|e| now >= e) {
            self.status.status = "stale".into();
        }
    }

    /// Checks until [`Control::stop`]: the first after the startup jitter.
    pub fn run(&mut self) {
        if self.check.is_none() {
            self.write_files();
            (self.on_change)(&self.status);
            while self.control.wait(Duration::from_secs(3_600)) != Ask::Stop {}
            return;
        }
        let mut wait = up_to(self.config.startup_jitter);
        self.status.next_check = Some(rfc3339(unix_now() + wait.as_secs()));
        self.write_files();
        loop {
            // No wake-up at the policy's expiry: the status turns stale only
            // when a check fails (or at the start, from the kept state).
            if self.control.wait(wait) == Ask::Stop {
                break;
            }
            wait = self.check_once();
        }
        self.write_files();
    }

    fn write_files(&self) {
        if let Some(path) = &self.config.status_file {
            if let Ok(text) = serde_json::to_string_pretty(&self.status) {
                let _ = write_atomic(path, &format!("{text}\n"));
            }
        }
        if let Some(path) = &self.config.textfile {
            let _ = write_atomic(path, &self.textfile());
        }
    }

    /// node_exporter's textfile format.
    pub fn textfile(&self) -> String {
        let s = &self.status;
        let esc = |v: &str| {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let zone = esc(&s.zone);
        let mut out = String::new();
        if let Some(code) = s.status_code {
            out.push_str("# HELP vcheckd_version_status Status code of the last verified check: 0 unknown, 1 up to date, 2 upgrade available, 3 upgrade required.\n");
            out.push_str("# TYPE vcheckd_version_status gauge\n");
            out.push_str(&format!(
                "vcheckd_version_status{{zone=\"{zone}\",running=\"{}\",latest=\"{}\"}} {code}\n",
                esc(&s.running),
                esc(s.latest.as_deref().unwrap_or(""))
            ));
        }
        out.push_str(
            "# HELP vcheckd_version_check_state The agent's state: 1 for the current one.\n",
        );
        out.push_str("# TYPE vcheckd_version_check_state gauge\n");
        let state = match s.status.as_str() {
            "stale" => "stale",
            "disabled" => "disabled",
            _ => "ok",
        };
        for st in ["ok", "stale", "disabled"] {
            out.push_str(&format!(
                "vcheckd_version_check_state{{zone=\"{zone}\",state=\"{st}\"}} {}\n",
                u8::from(st == state)
            ));
        }
        out.push_str("# HELP vcheckd_version_check_last_success_timestamp_seconds When a policy was last verified.\n");
        out.push_str("# TYPE vcheckd_version_check_last_success_timestamp_seconds gauge\n");
        out.push_str(&format!(
            "vcheckd_version_check_last_success_timestamp_seconds{{zone=\"{zone}\"}} {}\n",
            s.last_success_unix.unwrap_or(0)
        ));
        out.push_str("# HELP vcheckd_version_check_consecutive_failures Checks failed since the last success.\n");
        out.push_str("# TYPE vcheckd_version_check_consecutive_failures gauge\n");
        out.push_str(&format!(
            "vcheckd_version_check_consecutive_failures{{zone=\"{zone}\"}} {}\n",
            s.consecutive_failures
        ));
        out
    }
}

/// Writes `text` to `path` atomically (a temp file renamed over it), so a
/// reader never sees half a file.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        for t in [0, 1_790_000_000, 951_782_400, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_790_000_000), "2026-09-21T14:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let d = Duration::from_secs(1_000);
        for _ in 0..1_000 {
            let j = jittered(d, 0.1);
            assert!(
                j >= Duration::from_secs(900) && j <= Duration::from_secs(1_100),
                "{j:?}"
            );
            assert!(up_to(d) <= d);
        }
    }

    /// The status turns stale at a failed check, never on a timer: a
    /// running agent whose kept policy expires between two checks keeps
    /// its status until the next check fails.
    #[test]
    fn stale_only_at_a_failed_check() {
        use crate::v2::CheckV2;
        use vcheckd_proto::hint::{Releases, ReleasesConfig};
        use vcheckd_proto::protocol::v2::effort::Effort;
        use vcheckd_proto::protocol::v2::policy::ServedPolicy;
        use vcheckd_proto::protocol::v2::{PrivateKey, PrivateKeyring};
        use vcheckd_proto::protocol::{KeyId, ZoneName};

        let now = unix_now();
        // Signed two hours ago (the shortest validity), expiring in 3 s.
        let at = now - 7_200;
        let issued = at - at % 3_600;
        let zone = ZoneName::new("vc.example.com").unwrap();
        let key = PrivateKey::generate(KeyId(7), at);
        let ring = PrivateKeyring::new(std::slice::from_ref(&key), at).unwrap();
        let releases = Releases::try_from(&ReleasesConfig {
            versions: vec!["2.4.1".into()],
            ..Default::default()
        })
        .unwrap();
        let wire = ServedPolicy::sign(
            &zone,
            &ring,
            releases,
            None,
            1,
            Effort(1),
            at,
            now + 3 - issued,
        )
        .unwrap()
        .wire(KeyId(7))
        .unwrap()
        .to_vec();
        let check = CheckV2::with_ids(
            zone.clone(),
            key.public(),
            semver::Version::new(2, 4, 1),
            None,
        );
        let mut state = ClientState::in_memory();
        let expires = check.verify(&wire, &mut state, now).unwrap().policy.expires;
        assert_eq!(expires, now + 3);

        let dir = tempfile::tempdir().unwrap();
        let status_file = dir.path().join("status.json");
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = AgentConfig {
            // The first check somewhere in the next century: not during
            // this test (a chance of about 1 in 10^9).
            startup_jitter: Duration::from_secs(100 * 365 * 86_400),
            servers: vec![silent.local_addr().unwrap()],
            timeout: Duration::from_millis(300),
            status_file: Some(status_file.clone()),
            ..AgentConfig::default()
        };
        let mut agent = Agent::new(
            "vc.example.com",
            "2.4.1",
            Some(VersionCheck::V2(check)),
            true,
            state,
            config,
        );
        assert_eq!(agent.status().status, "up-to-date", "restored");
        let control = agent.control();
        let running = std::thread::spawn(move || agent.run());
        let read = || -> serde_json::Value {
            std::fs::read_to_string(&status_file)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default()
        };
        let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !ok(&read()) {
                assert!(std::time::Instant::now() < deadline, "{what}: {}", read());
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_for("the first write", &|s| s["status"] == "up-to-date");
        // Past the expiry, no check due: nothing changes.
        while unix_now() <= expires + 1 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let s = read();
        assert_eq!(s["status"], "up-to-date", "no timer at the expiry: {s}");
        assert_eq!(s["consecutive_failures"], 0, "{s}");
        // The next check fails: now it is stale, the last status kept.
        control.check_now();
        wait_for("stale at the failed check", &|s| s["status"] == "stale");
        let s = read();
        assert_eq!(s["last_status"], "up-to-date", "{s}");
        assert_eq!(s["consecutive_failures"], 1, "{s}");
        control.stop();
        running.join().unwrap();
    }

    #[test]
    fn a_disabled_agent_sends_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig {
            status_file: Some(dir.path().join("status.json")),
            textfile: Some(dir.path().join("vcheckd.prom")),
            ..AgentConfig::default()
        };
        let mut agent = Agent::new(
            "vc.example.com",
            "2.4.1",
            None,
            false,
            ClientState::in_memory(),
            config,
        );
        agent.check_once();
        let status: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("status.json")).unwrap())
                .unwrap();
        assert_eq!(status["status"], "disabled");
        let prom = std::fs::read_to_string(dir.path().join("vcheckd.prom")).unwrap();
        assert!(
            prom.contains(
                "vcheckd_version_check_state{zone=\"vc.example.com\",state=\"disabled\"} 1"
            ),
            "{prom}"
        );
        assert!(!prom.contains("vcheckd_version_status{"), "{prom}");
    }
}
