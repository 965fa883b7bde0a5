//! The UDP receive loop: one task per socket, buffers reused, no task or
//! log line per packet (the telemetry path has to keep up with NSD).

use std::io;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::warn;

use super::handler::Handler;
use super::responder::Transport;
use super::rrl::{self, Action, RateLimiter};
use crate::metrics::bump;

/// Serves `socket` until `shutdown` turns true. Every response passes the
/// rate limiter (shared by all UDP sockets) before it is sent.
pub async fn serve(
    socket: UdpSocket,
    responder: Arc<Handler>,
    limiter: Arc<RateLimiter>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut request = vec![0u8; 65_535];
    let mut response = Vec::with_capacity(4_096);
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut request) => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (len, peer) = match received {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here on Linux; they
            // concern one peer, not the socket.
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                // Not one peer's doing: pause, so that a lasting fault is a
                // log line a second, not a busy loop.
                warn!(error = %e, "UDP receive failed");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if !responder.handle(&request[..len], Transport::Udp, &mut response) {
            continue;
        }
        match limiter.check(peer.ip()) {
            Action::Send => {}
            Action::Slip if rrl::truncate_to_question(&mut response) => {
                bump(&responder.metrics().rrl_slipped);
            }
            Action::Slip | Action::Drop => {
                bump(&responder.metrics().rrl_dropped);
                continue;
            }
        }
        if let Err(e) = socket.send_to(&response, peer).await {
            if !is_transient(&e) {
                warn!(error = %e, "UDP send failed");
            }
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
    )
}
