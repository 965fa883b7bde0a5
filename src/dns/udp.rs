//! The UDP receive loops: one OS thread per socket (the sockets share the
//! port with SO_REUSEPORT, so the kernel spreads datagrams over them),
//! blocking receive and send, buffers reused, no task, allocation or log
//! line per packet. A plain blocking loop answers more queries per second
//! than an async one on the same cores (docs/PERFORMANCE.md): a datagram
//! needs no readiness bookkeeping, and one thread per core is all the
//! parallelism UDP has.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::handler::Handler;
use super::responder::Transport;
use super::rrl::{self, Action, RateLimiter};
use crate::metrics::bump;

/// How often a blocked receive wakes up to look at the stop flag: the
/// longest a stop waits for the UDP threads.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(100);

/// Serves `socket` (blocking, with a read timeout of [`STOP_POLL`]) until
/// `stop` is set. Every response passes the rate limiter (shared by all
/// UDP sockets) before it is sent.
pub(crate) fn serve(
    socket: UdpSocket,
    handler: Arc<Handler>,
    limiter: Arc<RateLimiter>,
    stop: Arc<AtomicBool>,
) {
    if let Err(e) = socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(Some(STOP_POLL)))
    {
        warn!(error = %e, "cannot set up the UDP socket");
        return;
    }
    let mut request = vec![0u8; 65_535];
    let mut response = Vec::with_capacity(65_535);
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut request) {
            Ok(r) => r,
            // Timeouts (to look at `stop`), and ICMP errors from earlier
            // sends, which Linux reports here: they concern one peer.
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                // Not one peer's doing: pause, so that a lasting fault is a
                // log line a second, not a busy loop.
                warn!(error = %e, "UDP receive failed");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if !handler.handle(&request[..len], Transport::Udp, &mut response) {
            continue;
        }
        match limiter.check(peer.ip()) {
            Action::Send => {}
            Action::Slip if rrl::truncate_to_question(&mut response) => {
                bump(&handler.metrics().rrl_slipped);
            }
            Action::Slip | Action::Drop => {
                bump(&handler.metrics().rrl_dropped);
                continue;
            }
        }
        if let Err(e) = socket.send_to(&response, peer) {
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
            | io::ErrorKind::TimedOut
            | io::ErrorKind::Interrupted
    )
}
