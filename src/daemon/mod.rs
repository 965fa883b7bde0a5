//! The process, wired: one place that builds every runtime object from the
//! configuration and starts, reloads and stops them in order. The DNS
//! room (src/dns) answers and listens; the intake, the raw lanes, the
//! opener, the opened journal and its consumers (the SQLite processor, the
//! ClickHouse shipper and closer), the policy re-signer and the HTTP
//! listener are started here, above all of them, so that no lower module
//! has to know the others (docs/ARCHITECTURE.md).

mod handler;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use thiserror::Error;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

pub use handler::Handler;

use crate::config::Config;
use crate::dns::listen::{bind_pair, ListenError, UdpThreads};
use crate::dns::rrl::{Limits, RateLimiter};
use crate::dns::tcp::{self, TcpLimits};
use crate::dns::{Catalog, CatalogError};
use crate::forward::ForwardKey;
use crate::forwarding::{ForwardListener, Forwarder, ForwarderConfig};
use crate::intake::Intake;
use crate::journal::{Journal, JournalConfig, JournalError};
use crate::lanes::Lanes;
use crate::metrics::Metrics;
use crate::opener::OpenerStage;
use crate::processor::{Processor, ProcessorConfig, CONSUMER};
use crate::report::Opener;
use crate::store::{Store, StoreError};

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot listen for HTTP on {addr}")]
    HttpBind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Lanes(#[from] crate::lanes::LanesError),
    #[error("cannot start the processor thread")]
    Processor(#[source] io::Error),
    #[error("cannot start the ClickHouse rollup thread")]
    Rollup(#[source] io::Error),
    #[error(transparent)]
    ForwardKey(#[from] crate::forward::KeyFileError),
    #[error("cannot listen for forwarding secondaries on {addr} ([forward_listen] listen)")]
    ForwardBind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A started server. Dropping it without [`RunningServer::shutdown`] stops
/// the listeners but does not wait for the processor: what it has not taken
/// in stays in the journal for the next start.
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    http_addr: Option<SocketAddr>,
    responder: Arc<Handler>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    udp: UdpThreads,
    journal: Arc<Journal>,
    lanes: Arc<Lanes>,
    /// None on a secondary: its lanes are forwarded, not opened.
    opener_stage: Option<OpenerStage>,
    forwarder: Option<Forwarder>,
    forward_listener: Option<ForwardListener>,
    processor: Processor,
    /// Opens v2 frames in the processor and the shipper; swapped with the
    /// catalog.
    opener: Arc<ArcSwap<Opener>>,
    shipper: Option<crate::clickhouse::Shipper>,
    closer: Option<crate::clickhouse::Closer>,
    shutdown_timeout: Duration,
}

impl RunningServer {
    /// Opens the database, loads the zones and binds every listen address
    /// (UDP and TCP on the same port; port 0 picks a free one).
    pub async fn start(config: &Config) -> Result<Self, ServerError> {
        let catalog = Catalog::build(config, u64::try_from(crate::clock::unix_now()).unwrap_or(0))?;
        let opener = Arc::new(ArcSwap::from_pointee(catalog.opener()));
        let database = config.resolve(&config.server.database);
        let store = Store::open(&database)?;
        let metrics = Arc::new(Metrics::default());
        // Only whole segments other than the one being written are deleted
        // once consumed, so a segment must be a small part of the bound:
        // with the default 64 MiB segments and a smaller `journal_max_bytes`,
        // the one segment would reach the bound and every later report be
        // dropped, however far the processor had read.
        let max_segment = JournalConfig::default().segment_bytes;
        let max_bytes = config.server.journal_max_bytes;
        let commit_interval = Duration::from_millis(config.server.journal_commit_ms.max(1));
        // Raw reports by effort (src/lanes), then the opened journal that
        // SQLite and ClickHouse read; each bounded by `journal_max_bytes`.
        let lanes = Arc::new(Lanes::open(
            &config.journal_dir().join("lanes"),
            max_bytes,
            commit_interval,
        )?);
        let opened_dir = config.journal_dir().join("opened");
        let journal = Arc::new(Journal::open(JournalConfig {
            dir: opened_dir.clone(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(4096, max_segment),
            commit_interval,
        })?);
        crate::intake::take_legacy(&config.journal_dir(), &lanes)?;
        // Before the processor can release segments the shipper still needs.
        let shipper = match &config.clickhouse {
            Some(ch) if ch.ship => Some(crate::clickhouse::Shipper::start(
                journal.clone(),
                opened_dir,
                metrics.clone(),
                crate::clickhouse::ShipperConfig {
                    replay_window: config.server.replay_window(),
                    ..ch.shipper()
                },
            )?),
            _ => None,
        };
        let closer = match &config.clickhouse {
            Some(ch) if ch.rollup => Some(
                crate::clickhouse::Closer::start(
                    ch.rollup_job(),
                    Duration::from_secs(ch.rollup_interval_secs.max(1)),
                    metrics.clone(),
                )
                .map_err(ServerError::Rollup)?,
            ),
            _ => None,
        };
        let from = crate::journal::Position(store.consumer_position(CONSUMER)?);
        let reader = journal.subscribe(CONSUMER, from)?;
        let backlog = journal.records_between(reader.position(), journal.stats().durable_end)?;
        if backlog > 0 {
            info!(
                reports = backlog,
                "taking the journal's unprocessed reports into the database"
            );
        }
        // A secondary forwards its lanes to the primary instead of opening
        // them: the primary's database is the zone's one record.
        let (opener_stage, forwarder) = match &config.forward {
            Some(f) => {
                let forwarder = Forwarder::start(
                    lanes.clone(),
                    ForwarderConfig {
                        primary: f.primary.clone(),
                        name: f.name.clone(),
                        key: ForwardKey::load(&config.resolve(&f.key))?,
                        batch: f.batch.max(1),
                        max_backoff: Duration::from_secs(f.max_backoff_secs.max(1)),
                    },
                    metrics.clone(),
                )?;
                info!(primary = %f.primary, name = %f.name, "a secondary: forwarding reports to the primary");
                (None, Some(forwarder))
            }
            None => (
                Some(OpenerStage::start(
                    lanes.clone(),
                    journal.clone(),
                    opener.clone(),
                    metrics.clone(),
                    config.server.max_batch.max(1),
                )?),
                None,
            ),
        };
        let processor = Processor::start(
            store,
            journal.clone(),
            reader,
            metrics.clone(),
            ProcessorConfig {
                max_batch: config.server.max_batch.max(1),
                retention_days: config.server.retention_days,
                replay_window: config.server.replay_window(),
                ..ProcessorConfig::default()
            },
        )
        .map_err(ServerError::Processor)?;
        let sink = Arc::new(Intake::new(lanes.clone(), metrics.clone()));
        let forward_listener = match &config.forward_listen {
            Some(l) => {
                let mut secondaries = crate::forwarding::Secondaries::new();
                for s in &l.secondaries {
                    secondaries.insert(s.name.clone(), ForwardKey::load(&config.resolve(&s.key))?);
                }
                Some(
                    ForwardListener::start(l.listen, secondaries, sink.clone(), metrics.clone())
                        .map_err(|source| ServerError::ForwardBind {
                            addr: l.listen,
                            source,
                        })?,
                )
            }
            None => None,
        };
        let responder = Arc::new(Handler::new(catalog, sink, metrics));
        let (stop, stopped) = watch::channel(false);
        let limits = TcpLimits {
            idle_timeout: Duration::from_secs(config.server.tcp_idle_timeout_secs.max(1)),
            max_connections: config.server.max_tcp_connections,
            max_per_source: config.server.max_tcp_connections_per_source,
        };
        let limiter = Arc::new(RateLimiter::new(Limits {
            rate: config.server.rrl_rate,
            large_rate: config.server.rrl_large_rate,
            slip: config.server.rrl_slip,
        }));
        let mut tasks = JoinSet::new();
        let mut udp_threads = UdpThreads::default();
        let mut addrs = Vec::new();
        let udp_workers = match config.server.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        for want in &config.server.listen {
            let (udp_sockets, tcp_listener, addr) = bind_pair(*want, udp_workers)?;
            for socket in udp_sockets {
                udp_threads.spawn(socket, responder.clone(), limiter.clone())?;
            }
            tasks.spawn(tcp::serve(
                tcp_listener,
                responder.clone(),
                limits,
                stopped.clone(),
            ));
            info!(%addr, "listening on UDP and TCP");
            addrs.push(addr);
        }
        {
            // v2 policies expire: sign them anew well before (a reload
            // signs them too).
            let responder = responder.clone();
            let opener = opener.clone();
            let mut stopped = stopped.clone();
            let mut every =
                responder.resign_interval(u64::try_from(crate::clock::unix_now()).unwrap_or(0));
            tasks.spawn(async move {
                loop {
                    let wait = every.unwrap_or(Duration::from_secs(3_600));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped.wait_for(|stop| *stop) => return,
                    }
                    every = responder
                        .resign_policies(u64::try_from(crate::clock::unix_now()).unwrap_or(0));
                    // Keys of a new epoch, and none of one no longer kept.
                    opener.store(Arc::new(responder.opener()));
                }
            });
        }
        let mut http_addr = None;
        if let Some(http) = &config.http {
            let bind_err = |source| ServerError::HttpBind {
                addr: http.listen,
                source,
            };
            let listener = crate::http::bind(http.listen).await.map_err(bind_err)?;
            let addr = listener.local_addr().map_err(bind_err)?;
            let mut ctx =
                crate::http::Context::new(database, responder.metrics().clone(), http.top_versions);
            if let Some(ch) = config.clickhouse.as_ref().filter(|c| c.stats) {
                ctx.clickhouse = Some((ch.url.clone(), ch.timeout()));
            }
            tasks.spawn(crate::http::serve(listener, Arc::new(ctx), stopped.clone()));
            info!("dashboard, /metrics and /api/v1 on http://{addr}/");
            http_addr = Some(addr);
        }
        Ok(RunningServer {
            addrs,
            http_addr,
            responder,
            stop,
            tasks,
            udp: udp_threads,
            journal,
            lanes,
            opener_stage,
            forwarder,
            forward_listener,
            processor,
            opener,
            shipper,
            closer,
            shutdown_timeout: Duration::from_secs(config.server.shutdown_timeout_secs.max(1)),
        })
    }

    /// The bound addresses (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The address secondaries forward to, if `[forward_listen]` is set.
    pub fn forward_addr(&self) -> Option<SocketAddr> {
        self.forward_listener
            .as_ref()
            .map(ForwardListener::local_addr)
    }

    /// The HTTP listener's bound address, if `[http]` is configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        self.responder.metrics()
    }

    /// Re-reads zones, keys and releases; on error the old ones stay.
    pub fn reload(&self, config: &Config) -> Result<(), ServerError> {
        let catalog = Catalog::build(config, u64::try_from(crate::clock::unix_now()).unwrap_or(0))?;
        self.opener.store(Arc::new(catalog.opener()));
        self.responder.swap_catalog(catalog);
        Ok(())
    }

    /// Stops listening, writes what the journal holds in memory, lets the
    /// processor take the journal into the database while the bound allows,
    /// and logs what remains in the journal for the next start. Returns within the configured shutdown
    /// bound, whatever the disk does.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let started = std::time::Instant::now();
        let _ = self.stop.send(true);
        let udp = std::mem::take(&mut self.udp);
        let _ = tokio::task::spawn_blocking(move || drop(udp)).await;
        while self.tasks.join_next().await.is_some() {}
        let bound = self.shutdown_timeout;
        let journal = self.journal.clone();
        let lanes = self.lanes.clone();
        let opener_stage = self.opener_stage;
        let forwarder = self.forwarder.take();
        let forward_listener = self.forward_listener.take();
        let raw_consumer = if forwarder.is_some() {
            crate::forwarding::CONSUMER
        } else {
            crate::opener::CONSUMER
        };
        let processor = self.processor;
        let shipper = self.shipper.take();
        let closer = self.closer.take();
        let (lost, drained, opened_end, position) = tokio::task::spawn_blocking(move || {
            // What is not shipped stays in the journal for the next start.
            if let Some(closer) = closer {
                closer.stop(bound / 8);
            }
            if let Some(shipper) = shipper {
                shipper.stop(bound / 8);
            }
            // No more forwarded batches; what is unacknowledged is sent
            // again by its secondary.
            if let Some(listener) = forward_listener {
                listener.stop();
            }
            if let Some(forwarder) = forwarder {
                forwarder.stop(bound / 8);
            }
            // The raw lanes' last writes, then the opener drains them into
            // the opened journal, then the processor drains that.
            let lost: u64 = lanes.close(bound / 4).iter().map(|c| c.lost_records).sum();
            let drained = opener_stage.is_none_or(|o| o.stop(bound / 4));
            let closed = journal.close(bound / 8);
            let left = bound.saturating_sub(started.elapsed());
            (
                lost + closed.lost_records,
                drained,
                closed.durable_end,
                processor.stop(closed.durable_end, left),
            )
        })
        .await
        .map_err(|e| ServerError::Processor(io::Error::other(e.to_string())))?;
        if lost > 0 {
            tracing::error!(
                reports = lost,
                "could not write these answered reports to the journal before the shutdown bound; they are lost"
            );
        }
        let evicted = self.lanes.evicted_records();
        let raw = self.lanes.unread_records(raw_consumer).ok();
        let opened = match position {
            Some(pos) => self.journal.records_between(pos, opened_end).ok(),
            None => {
                tracing::warn!("the processor did not stop within the shutdown bound");
                None
            }
        };
        if !drained {
            tracing::warn!("the opener did not open every raw report within the shutdown bound");
        }
        let remaining = raw.zip(opened).map(|(a, b)| a + b);
        match remaining {
            Some(n) if raw_consumer == crate::forwarding::CONSUMER => info!(
                unforwarded = n,
                lost,
                evicted,
                "stopped; reports the primary has not acknowledged stay in the journal for the next start"
            ),
            Some(0) if lost == 0 && evicted == 0 => {
                info!("stopped; every report is in the database")
            }
            Some(0) => info!(
                lost,
                evicted,
                "stopped; every report kept is in the database (the others were lost or evicted, as counted)"
            ),
            Some(n) => info!(
                reports = n,
                lost,
                evicted,
                "stopped; reports remain in the journal for the next start"
            ),
            None => info!(
                lost,
                evicted,
                "stopped; unprocessed reports remain in the journal for the next start"
            ),
        }
        Ok(())
    }
}
