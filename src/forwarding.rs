//! Two name servers, one record: a secondary forwards the raw records of
//! its lanes to the primary, which takes them as if they had arrived by
//! DNS. The wire and its authentication are [`crate::forward`]'s.
//!
//! **Secondary** (`[forward]`, [`Forwarder`]): the lanes' one consumer
//! (the opener and the database are not fed: the primary's database is
//! the zone's record). A thread reads a batch in the lanes' order, sends
//! it, and stores the lane's position only once the primary acknowledged
//! it, so the lanes hold every record not acknowledged: while the primary
//! is away the secondary answers as before and its journal keeps the
//! backlog (bounded by `journal_max_bytes`, then evicted by effort as
//! always). A failed attempt is counted by reason and retried on a new
//! connection after a pause that doubles up to `max_backoff_secs`; the
//! batch in hand is sent again first.
//!
//! **Primary** (`[forward_listen]`, [`ForwardListener`]): a thread per
//! connection, for the secondaries configured by name and key. Each record
//! of a batch goes through [`Intake::accept_record`], the DNS path's
//! checks (lane and fingerprint computed here; exact repeats not taken
//! again), then the opener opens it once and the processor applies the
//! replay window and keeps each report id once. A batch is acknowledged
//! only once every lane it touched is durable up to where it was appended
//! (repeats included: the first copy may still be in memory). So a batch
//! sent again after a lost acknowledgement, or after the primary was killed,
//! counts nothing twice, and an acknowledged one survives a crash.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::forward::{Failure, ForwardError, ForwardKey, Receiver, Refusal, Sender};
use crate::intake::{Intake, Taken};
use crate::lanes::{Lane, LaneReaders, Lanes, LanesError, COUNT};
use crate::metrics::Metrics;

/// The forwarder's consumer name in the raw lanes.
pub const CONSUMER: &str = "forwarder";

/// An idle secondary sends an empty batch this often: both ends see a
/// dead connection, and the last-success gauge stays fresh.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long either end waits for the other's next message.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the primary gives a new connection to prove its key.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the forwarder looks for new records when caught up.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// Secondaries' connections held at once, at most.
const MAX_CONNECTIONS: usize = 64;

/// What a secondary needs to forward.
#[derive(Debug, Clone)]
pub(crate) struct ForwarderConfig {
    /// `host:port`, resolved at each connection.
    pub primary: String,
    /// This server's name at the primary (its per-server counters).
    pub name: String,
    pub key: ForwardKey,
    /// Records per batch, at most.
    pub batch: usize,
    pub max_backoff: Duration,
}

/// The running forwarder (secondary side).
pub(crate) struct Forwarder {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Forwarder {
    /// Subscribes to the lanes at the positions stored in their folder and
    /// starts forwarding.
    pub fn start(
        lanes: Arc<Lanes>,
        config: ForwarderConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Forwarder, LanesError> {
        let readers = lanes.subscribe(CONSUMER)?;
        metrics.forward_enabled.store(true, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let mut run = Run {
            lanes,
            readers,
            config,
            metrics,
            stop: stop.clone(),
            pending: None,
            lag_checked: None,
            counted: None,
        };
        let handle = std::thread::Builder::new()
            .name("vcheckd-forward".into())
            .spawn(move || run.main())
            .map_err(|source| LanesError::Positions {
                op: "start the forwarding thread for",
                path: std::path::PathBuf::new(),
                source,
            })?;
        Ok(Forwarder { stop, handle })
    }

    /// Stops after the batch in hand (within about [`IO_TIMEOUT`] at
    /// worst, `deadline` normally); what is not acknowledged stays in the
    /// lanes for the next start.
    pub fn stop(self, deadline: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let until = Instant::now() + deadline;
        while !self.handle.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.handle.is_finished() {
            let _ = self.handle.join();
        } else {
            warn!("the forwarder did not stop within the shutdown bound");
        }
    }
}

/// A batch read from one lane and not acknowledged yet.
struct Pending {
    lane: Lane,
    next: crate::journal::Position,
    records: Vec<Vec<u8>>,
}

struct Run {
    lanes: Arc<Lanes>,
    readers: LaneReaders,
    config: ForwarderConfig,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    pending: Option<Pending>,
    lag_checked: Option<Instant>,
    counted: Option<Counted>,
}

/// The last full count of the records not acknowledged, from which the
/// gauge is kept in between: plus records appended since, minus records
/// acknowledged since (evictions show at the next full count).
struct Counted {
    at: Instant,
    unsent: u64,
    appended: u64,
    acked: u64,
}

/// How often the records not acknowledged are counted from the journal
/// (reading every record header: a large backlog is read whole).
const FULL_COUNT: Duration = Duration::from_secs(60);

impl Run {
    fn main(&mut self) {
        let mut backoff = Duration::from_millis(250);
        let mut logged_down: Option<Instant> = None;
        while !self.stopped() {
            self.refresh_lag();
            let result = self.connect().and_then(|sender| self.session(sender));
            let Err(failure) = result else { return };
            self.metrics.count_forward_failure(failure.0);
            if logged_down.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                warn!(
                    primary = %self.config.primary,
                    reason = Failure::REASONS[failure.0.index()],
                    error = %failure.1,
                    "cannot forward to the primary; reports wait in the journal and are sent when it answers"
                );
                logged_down = Some(Instant::now());
            }
            if failure.0 == Failure::Refused {
                // A wrong name or key does not fix itself soon.
                backoff = self.config.max_backoff;
            }
            self.pause(backoff);
            backoff = (backoff * 2).min(self.config.max_backoff.max(Duration::from_millis(250)));
            if failure.2 {
                // The session had made progress: the next failure starts
                // the backoff again.
                backoff = Duration::from_millis(250);
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn connect(&self) -> Result<Sender<TcpStream>, (Failure, String, bool)> {
        let fail = |why, e: &dyn std::fmt::Display| (why, e.to_string(), false);
        let addrs: Vec<SocketAddr> = self
            .config
            .primary
            .to_socket_addrs()
            .map_err(|e| fail(Failure::Connect, &e))?
            .collect();
        let mut last = io::Error::other("the primary's name has no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT) {
                Ok(stream) => {
                    let setup = stream
                        .set_read_timeout(Some(IO_TIMEOUT))
                        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
                        .and_then(|()| stream.set_nodelay(true));
                    if let Err(e) = setup {
                        return Err(fail(Failure::Connection, &e));
                    }
                    return Sender::handshake(stream, &self.config.key, &self.config.name)
                        .map_err(|e| fail(e.failure(), &e));
                }
                Err(e) => last = e,
            }
        }
        Err(fail(Failure::Connect, &last))
    }

    /// Sends batches until stopped or an error; the error's third field
    /// says whether any batch was acknowledged first.
    fn session(&mut self, mut sender: Sender<TcpStream>) -> Result<(), (Failure, String, bool)> {
        let mut progress = false;
        let mut last_sent = Instant::now();
        let fail = |e: ForwardError, progress| (e.failure(), e.to_string(), progress);
        loop {
            if self.stopped() {
                return Ok(());
            }
            self.refresh_lag();
            if self.pending.is_none() {
                self.pending = self.read().map_err(|e| {
                    (
                        Failure::Connection,
                        format!("reading the lanes: {e}"),
                        progress,
                    )
                })?;
            }
            match &self.pending {
                Some(p) => {
                    sender.send(&p.records).map_err(|e| fail(e, progress))?;
                }
                None => {
                    if last_sent.elapsed() >= KEEPALIVE {
                        sender.send::<&[u8]>(&[]).map_err(|e| fail(e, progress))?;
                        self.acknowledged(0);
                        last_sent = Instant::now();
                    }
                    std::thread::sleep(IDLE_POLL);
                    continue;
                }
            }
            last_sent = Instant::now();
            progress = true;
            if let Some(p) = self.pending.take() {
                let n = p.records.len() as u64;
                if let Err(e) = self.commit(p.lane, p.next) {
                    // Sent and held by the primary, but the position is not
                    // stored: read again from it and sent again (the primary
                    // keeps each report once).
                    return Err((Failure::Connection, e.to_string(), progress));
                }
                self.acknowledged(n);
            }
        }
    }

    fn read(&mut self) -> Result<Option<Pending>, crate::journal::JournalError> {
        let mut records = Vec::new();
        let got = self
            .readers
            .read_batch(self.config.batch.max(1), |r| records.push(r.to_vec()))?;
        Ok(got.map(|(lane, next)| {
            if let Some(at) = records.first().and_then(|r| crate::report::received_at(r)) {
                let _ = self.metrics.forward_oldest_unsent.compare_exchange(
                    0,
                    at,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Pending {
                lane,
                next,
                records,
            }
        }))
    }

    fn commit(&mut self, lane: Lane, next: crate::journal::Position) -> Result<(), LanesError> {
        self.readers.commit(lane, next)
    }

    fn acknowledged(&mut self, n: u64) {
        let m = &self.metrics;
        m.forwarded.fetch_add(n, Ordering::Relaxed);
        m.forward_last_success
            .store(crate::clock::unix_now(), Ordering::Relaxed);
        // The oldest unsent record is the next batch's first, read later.
        m.forward_oldest_unsent.store(0, Ordering::Relaxed);
        if let Some(c) = &mut self.counted {
            c.acked += n;
        }
    }

    /// Records appended to every lane since they were opened.
    fn appended(&self) -> u64 {
        self.lanes.stats().iter().map(|s| s.appended_records).sum()
    }

    /// Keeps the gauge of records not acknowledged (about once a second;
    /// counted from the journal every [`FULL_COUNT`]) and the receive time
    /// of the oldest one (the first of the batch in hand) for the lag in
    /// seconds.
    fn refresh_lag(&mut self) {
        if self
            .lag_checked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.lag_checked = Some(Instant::now());
        let appended = self.appended();
        let stale = self
            .counted
            .as_ref()
            .is_none_or(|c| c.at.elapsed() >= FULL_COUNT);
        if stale {
            if let Ok(unsent) = self.lanes.unread_records(CONSUMER) {
                self.counted = Some(Counted {
                    at: Instant::now(),
                    unsent,
                    appended,
                    acked: 0,
                });
            }
        }
        if let Some(c) = &self.counted {
            let n = (c.unsent + appended.saturating_sub(c.appended)).saturating_sub(c.acked);
            self.metrics.forward_unsent.store(n, Ordering::Relaxed);
        }
        if self.pending.is_none() {
            if self.readers.has_unread() {
                // Read ahead while the primary is away, so the age of the
                // oldest waiting report is known: it is sent first.
                if let Ok(next) = self.read() {
                    self.pending = next;
                }
            } else {
                self.metrics
                    .forward_oldest_unsent
                    .store(0, Ordering::Relaxed);
            }
        }
    }

    /// Sleeps up to `d`, waking early on stop.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stopped() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The secondaries a primary takes records from: name to key.
pub(crate) type Secondaries = HashMap<String, ForwardKey>;

/// The running listener (primary side).
pub(crate) struct ForwardListener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    /// Open connections, shut down at stop so their reads return.
    open: Arc<Open>,
}

impl ForwardListener {
    /// Binds `addr` (port 0: any free port) and starts taking batches from
    /// `secondaries` into `intake`.
    pub fn start(
        addr: SocketAddr,
        secondaries: Secondaries,
        intake: Arc<Intake>,
        metrics: Arc<Metrics>,
    ) -> io::Result<ForwardListener> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        metrics
            .forward_listen_enabled
            .store(true, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Open::default());
        let shared = Arc::new(Shared {
            secondaries,
            intake,
            metrics,
            stop: stop.clone(),
            connections: AtomicUsize::new(0),
        });
        let open2 = open.clone();
        let handle = std::thread::Builder::new()
            .name("vcheckd-fwd-listen".into())
            .spawn(move || accept_loop(listener, shared, open2))?;
        info!(%addr, "taking forwarded reports from secondaries");
        Ok(ForwardListener {
            addr,
            stop,
            handle,
            open,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection; a batch whose records
    /// are not durable yet is not acknowledged (its secondary sends it
    /// again).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.open.shutdown_all();
        let _ = self.handle.join();
    }
}

struct Shared {
    secondaries: Secondaries,
    intake: Arc<Intake>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    connections: AtomicUsize,
}

/// A handle on each open connection (a clone of its socket), by id: the
/// connection's thread removes its own when it ends, so the socket closes.
#[derive(Default)]
struct Open {
    next: AtomicUsize,
    streams: Mutex<HashMap<usize, TcpStream>>,
}

impl Open {
    fn add(&self, s: TcpStream) -> usize {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.streams.lock() {
            m.insert(id, s);
        }
        id
    }

    fn remove(&self, id: usize) {
        if let Ok(mut m) = self.streams.lock() {
            m.remove(&id);
        }
    }

    fn shutdown_all(&self) {
        if let Ok(m) = self.streams.lock() {
            for s in m.values() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, open: Arc<Open>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        threads.retain(|t| !t.is_finished());
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cannot accept a forwarding connection");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        let ready = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .and_then(|()| stream.set_nodelay(true));
        if ready.is_err() {
            continue;
        }
        if shared.connections.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            shared.metrics.count_forward_refused(Refusal::Busy);
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = open.add(clone);
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared2 = shared.clone();
        let open2 = open.clone();
        let spawned = std::thread::Builder::new()
            .name("vcheckd-fwd-conn".into())
            .spawn(move || {
                serve_connection(stream, peer, &shared2);
                open2.remove(id);
                shared2.connections.fetch_sub(1, Ordering::Relaxed);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                open.remove(id);
                shared.connections.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    open.shutdown_all();
    for t in threads {
        let _ = t.join();
    }
}

fn serve_connection(stream: TcpStream, peer: Option<SocketAddr>, shared: &Shared) {
    let m = &shared.metrics;
    let mut rx = match Receiver::handshake(stream, |name| shared.secondaries.get(name).cloned()) {
        Ok(rx) => rx,
        Err(e) => {
            let why = e.refusal().unwrap_or(Refusal::Protocol);
            m.count_forward_refused(why);
            warn!(peer = ?peer, reason = Refusal::REASONS[why.index()], error = %e, "refused a forwarding connection");
            return;
        }
    };
    let name = rx.name().to_owned();
    info!(server = %name, peer = ?peer, "a secondary is forwarding");
    // Past the handshake, an idle secondary sends a keep-alive every
    // KEEPALIVE: a longer silence is a dead connection.
    let _ = rx.get_ref().set_read_timeout(Some(IO_TIMEOUT));
    loop {
        let batch = match rx.next_batch() {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                if let Some(why) = e.refusal() {
                    m.count_forward_refused(why);
                    warn!(server = %name, reason = Refusal::REASONS[why.index()], error = %e, "refused a forwarded batch; closing the connection");
                }
                return;
            }
        };
        match take_batch(shared, &batch.records) {
            Ok(n) => {
                m.count_forward_received(&name, n);
                if rx.ack(batch.seq).is_err() {
                    return;
                }
            }
            Err(why) => {
                m.count_forward_refused(why);
                rx.refuse(why);
                return;
            }
        }
    }
}

/// Takes a batch's records into the intake and waits until every lane it
/// touched is durable past them; the records taken or repeated. Refused
/// when the journal takes no more now (nothing is acknowledged: the
/// secondary sends the batch again later), or when stopping.
fn take_batch(shared: &Shared, records: &[Vec<u8>]) -> Result<u64, Refusal> {
    let mut touched = [false; COUNT];
    let mut n = 0u64;
    for r in records {
        match shared.intake.accept_record(r) {
            Ok(Taken::New(lane) | Taken::Repeat(lane)) => {
                touched[lane.index()] = true;
                n += 1;
            }
            // A record that does not parse is counted (intake refused,
            // record) and skipped: sending it again would not mend it.
            Err(crate::lanes::Refused::Record) => {}
            Err(_) => return Err(Refusal::Unavailable),
        }
    }
    let lanes = shared.intake.lanes();
    for lane in Lane::all().filter(|l| touched[l.index()]) {
        let journal = lanes.journal(lane);
        let end = journal.appended_end();
        while !journal.wait_durable(end, Duration::from_millis(100)) {
            if shared.stop.load(Ordering::Relaxed) {
                return Err(Refusal::Unavailable);
            }
        }
    }
    Ok(n)
}
