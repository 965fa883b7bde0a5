//! DNS over TCP (RFC 7766): length-prefixed messages, several per
//! connection, with an idle timeout and a cap on open connections.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::warn;

use super::responder::{Responder, Transport};

#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts connections until `shutdown` turns true, then closes them all.
pub async fn serve(
    listener: TcpListener,
    responder: Arc<Responder>,
    limits: TcpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
            Ok((stream, _peer)) => {
                let responder = responder.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    connection(stream, responder, limits.idle_timeout, shutdown).await;
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

async fn connection(
    mut stream: TcpStream,
    responder: Arc<Responder>,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut request = Vec::with_capacity(512);
    let mut response = Vec::with_capacity(4_096);
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
        if !responder.respond(&request, Transport::Tcp, &mut response) {
            return;
        }
        // The responder never produces more than 65535 bytes over TCP.
        let Ok(prefix) = u16::try_from(response.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(2 + response.len());
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
