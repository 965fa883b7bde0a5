//! The embedding API: a [`Client`] from the zone, the zone's public key,
//! the running version and who is reporting; [`Client::check`] sends one
//! report and returns the verified status; [`Client::agent`] runs it
//! periodically. It honours the administrator's switches
//! (DISABLE_VERSION_CHECK, DISABLE_TELEMETRY) and keeps the client state
//! where docs/PROTOCOL.md §21 says.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::agent::{Agent, AgentConfig};
use crate::v2::{CheckV2, ClientState};
use crate::versioned::{Answer, Sealed, VersionCheck};
use crate::{system_servers, CheckError, Policy, Reporter};
use vcheckd_proto::protocol::v2::PublicKey;
use vcheckd_proto::protocol::{KeyError, ZoneName};

/// Why a client could not be built: the vendor's mistake, not the site's.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("zone {0:?} is not a valid DNS name")]
    Zone(String),
    #[error("the zone's public key: {0}")]
    Key(#[from] KeyError),
    #[error("version {0:?} is not SemVer (like 2.4.1)")]
    Version(String),
    #[error("no place for the client state: set XDG_STATE_HOME, HOME or STATE_DIRECTORY, or give one with Client::state_file")]
    NoState,
}

/// What one check came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// DISABLE_VERSION_CHECK is set: nothing was sent.
    Disabled,
    /// A report was sent and the answer verified.
    Checked(Box<Answer>),
}

/// A version check, ready to run.
#[derive(Debug, Clone)]
pub struct Client {
    zone: String,
    version: String,
    check: Option<VersionCheck>,
    anonymous: bool,
    servers: Vec<SocketAddr>,
    timeout: Duration,
    state_file: Option<PathBuf>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Client {
    /// `public_key` is the text of the zone's public key file
    /// (`vck2-public:<id>:<hex>`), e.g. `include_str!` of the file the
    /// vendor ships. `reporter` is who reports (`None`: no identity). Reads
    /// DISABLE_VERSION_CHECK and DISABLE_TELEMETRY now, and VCHECKD_SERVER
    /// (HOST:PORT, name servers to ask instead of the system's) and
    /// VCHECKD_STATE (the state file) if set; derives the cluster secret
    /// (Argon2id, a fraction of a second) unless disabled.
    pub fn new(
        zone: &str,
        public_key: &str,
        version: &str,
        reporter: Option<Reporter>,
    ) -> Result<Client, SetupError> {
        let zone_name = ZoneName::new(zone).map_err(|_| SetupError::Zone(zone.to_string()))?;
        let running = vcheckd_proto::hint::parse_version(version)
            .map_err(|_| SetupError::Version(version.to_string()))?;
        let key = PublicKey::parse(public_key)?;
        let policy = Policy::from_env();
        let reporter = if policy == Policy::Full {
            reporter
        } else {
            None
        };
        let check = (policy != Policy::Disabled).then(|| {
            VersionCheck::V2(CheckV2::new(
                zone_name.clone(),
                key,
                running.clone(),
                reporter.as_ref(),
            ))
        });
        let servers = std::env::var("VCHECKD_SERVER")
            .ok()
            .map(|v| {
                v.split([',', ' '])
                    .filter_map(|s| std::net::ToSocketAddrs::to_socket_addrs(s).ok())
                    .flatten()
                    .collect()
            })
            .unwrap_or_default();
        Ok(Client {
            zone: zone_name.to_string(),
            version: running.to_string(),
            anonymous: reporter.is_none(),
            check,
            servers,
            timeout: Duration::from_secs(10),
            state_file: std::env::var_os("VCHECKD_STATE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }

    /// Ask these name servers instead of the system's resolvers.
    pub fn servers(mut self, servers: Vec<SocketAddr>) -> Self {
        self.servers = servers;
        self
    }

    /// How long each name server has to answer each query (UDP and a TCP
    /// retry together); the next server is asked after a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keep the client state here instead of the default place.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// At most this much of one core on a report's effort proof.
    pub fn effort_budget(mut self, budget: Duration) -> Self {
        if let Some(VersionCheck::V2(c)) = &mut self.check {
            c.effort_budget = budget;
        }
        self
    }

    fn state(&self) -> Result<ClientState, CheckError> {
        let path = self
            .state_file
            .clone()
            .or_else(ClientState::default_path)
            .ok_or(CheckError::State(SetupError::NoState.to_string()))?;
        ClientState::load(&path).map_err(|e| CheckError::State(format!("{}: {e}", path.display())))
    }

    fn servers_or_system(&self) -> Vec<SocketAddr> {
        if self.servers.is_empty() {
            system_servers()
        } else {
            self.servers.clone()
        }
    }

    /// Sends one report and verifies the answer; saves the state.
    pub fn check(&self) -> Result<Outcome, CheckError> {
        let Some(check) = &self.check else {
            return Ok(Outcome::Disabled);
        };
        let mut state = self.state()?;
        let answer = check.send(
            &self.servers_or_system(),
            self.timeout,
            &mut state,
            unix_now(),
        )?;
        state
            .save()
            .map_err(|e| CheckError::State(format!("cannot save: {e}")))?;
        Ok(Outcome::Checked(Box::new(answer)))
    }

    /// What a check would send, without sending a report (the policy may
    /// be fetched first). `None` when disabled.
    pub fn dry_run(&self) -> Result<Option<Sealed>, CheckError> {
        let Some(check) = &self.check else {
            return Ok(None);
        };
        let mut state = self.state()?;
        let (sealed, _) = check.preview(
            &self.servers_or_system(),
            self.timeout,
            &mut state,
            unix_now(),
        )?;
        state
            .save()
            .map_err(|e| CheckError::State(format!("cannot save: {e}")))?;
        Ok(Some(sealed))
    }

    /// The periodic check (docs/CLIENTS.md): run it with [`Agent::run`] on a
    /// thread of its own.
    pub fn agent(self, mut config: AgentConfig) -> Result<Agent, CheckError> {
        let state = match &self.check {
            Some(_) => self.state()?,
            None => ClientState::in_memory(),
        };
        if config.servers.is_empty() {
            config.servers = self.servers_or_system();
        }
        Ok(Agent::new(
            &self.zone,
            &self.version,
            self.check,
            self.anonymous,
            state,
            config,
        ))
    }
}
