//! DNS over TCP (RFC 7766): length-prefixed messages, several per
//! connection, with an idle timeout, a cap on open connections, and a
//! smaller cap per source so that one source cannot hold them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::warn;

use super::responder::Transport;
use super::RequestHandler;

#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Open connections per source (see [`Source`]); 0: no per-source cap.
    pub max_per_source: usize,
}

/// Whom a connection counts against: an IPv4 address, or an IPv6 /56 (one
/// host or site can use any address of its /56, as in rate limiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.into()),
                None => Source::V6((u128::from(v6) >> 72) as u64),
            },
        }
    }
}

/// Open connections by source. Touched once per accepted and per closed
/// connection, never per query, so a plain mutex is enough.
#[derive(Debug, Default)]
struct PerSource(Mutex<HashMap<Source, usize>>);

impl PerSource {
    /// Counts a new connection from `source`, unless it holds `cap` already.
    fn try_open(self: &Arc<Self>, source: Source, cap: usize) -> Option<SourceSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(source).or_insert(0);
        if cap != 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            table: self.clone(),
            source,
        })
    }
}

/// One open connection's place in [`PerSource`], given back on drop.
struct SourceSlot {
    table: Arc<PerSource>,
    source: Source,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

/// Accepts connections until `shutdown` turns true, then closes them all.
pub async fn serve<H: RequestHandler>(
    listener: TcpListener,
    responder: Arc<H>,
    limits: TcpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_source = Arc::new(PerSource::default());
    let mut connections = JoinSet::new();
    loop {
        // Wait for a free slot before accepting: excess connections queue in
        // the kernel's backlog instead of costing us memory.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(source_slot) =
                    per_source.try_open(peer.ip().into(), limits.max_per_source)
                else {
                    // Closed at once (dropping the stream) rather than left
                    // in the backlog, where it would block other sources.
                    responder.tcp_refused_per_source();
                    continue;
                };
                let responder = responder.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    connection(stream, responder, limits.idle_timeout, shutdown).await;
                    drop(source_slot);
                    drop(permit);
                });
            }
            Err(e) => warn!(error = %e, "TCP accept failed"),
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn connection<H: RequestHandler>(
    mut stream: TcpStream,
    responder: Arc<H>,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut request = Vec::with_capacity(512);
    let mut response = Vec::with_capacity(4_096);
    let mut framed = Vec::with_capacity(4_096);
    loop {
        let len = tokio::select! {
            r = tokio::time::timeout(idle_timeout, stream.read_u16()) => match r {
                Ok(Ok(len)) => usize::from(len),
                _ => return, // idle, closed or reset
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        request.resize(len, 0);
        tokio::select! {
            r = tokio::time::timeout(idle_timeout, stream.read_exact(&mut request)) => match r {
                Ok(Ok(_)) => {}
                _ => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if !responder.handle(&request, Transport::Tcp, &mut response) {
            return;
        }
        // The responder never produces more than 65535 bytes over TCP.
        let Ok(prefix) = u16::try_from(response.len()) else {
            return;
        };
        framed.clear();
        framed.extend_from_slice(&prefix.to_be_bytes());
        framed.extend_from_slice(&response);
        // A client that stops reading must neither hold its slot forever
        // nor keep the server from shutting down.
        tokio::select! {
            r = tokio::time::timeout(idle_timeout, stream.write_all(&framed)) => match r {
                Ok(Ok(())) => {}
                _ => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
