//! The UDP receive loops: one OS thread per socket (the sockets share the
//! port with SO_REUSEPORT, so the kernel spreads datagrams over them),
//! blocking receive and send, buffers reused, no task, allocation or log
//! line per packet (a batch allocates its two small lists of I/O slices). A plain blocking loop answers more queries per second
//! than an async one on the same cores (docs/PERFORMANCE.md): a datagram
//! needs no readiness bookkeeping, and one thread per core is all the
//! parallelism UDP has.
//!
//! Datagrams move in batches: one `recvmmsg` takes every datagram waiting
//! (up to [`BATCH`]), and one `sendmmsg` sends their answers, as NSD does.
//! Under load that is two system calls per batch instead of two per query;
//! idle, a batch is one datagram and nothing waits for company.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tracing::warn;

use super::responder::Transport;
use super::rrl::{self, Action, RateLimiter};
use super::RequestHandler;

/// How often a blocked receive wakes up to look at the stop flag: the
/// longest a stop waits for the UDP threads.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(100);

/// Datagrams taken by one receive call. NSD takes up to 100; past a few
/// dozen the system calls saved no longer show, and a batch's answers wait
/// for the whole batch to be answered (32 x about 1 µs).
const BATCH: usize = 32;

/// The largest UDP payload: no datagram is cut short.
const MAX_DATAGRAM: usize = 65_535;

/// One datagram of a batch: its length and sender.
struct Received {
    len: usize,
    peer: Option<SockaddrStorage>,
}

/// Serves `socket` (blocking, with a read timeout of [`STOP_POLL`]) until
/// `stop` is set. Every response passes the rate limiter (shared by all
/// UDP sockets) before it is sent.
pub(crate) fn serve<H: RequestHandler>(
    socket: UdpSocket,
    handler: Arc<H>,
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
    let fd = socket.as_raw_fd();
    let mut requests: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect();
    let mut responses: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| Vec::with_capacity(MAX_DATAGRAM))
        .collect();
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut received: Vec<Received> = Vec::with_capacity(BATCH);
    // Per answer to send: the index of its response, and its peer.
    let mut answers: Vec<usize> = Vec::with_capacity(BATCH);
    let mut peers: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        received.clear();
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                requests.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(
                fd,
                &mut recv_headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(batch) => received.extend(batch.map(|m| Received {
                    len: m.bytes,
                    peer: m.address,
                })),
                // Timeouts (to look at `stop`), and ICMP errors from earlier
                // sends, which Linux reports here: they concern one peer.
                Err(e) if is_transient(&io::Error::from(e)) => continue,
                Err(e) => {
                    // Not one peer's doing: pause, so that a lasting fault
                    // is a log line a second, not a busy loop.
                    warn!(error = %e, "UDP receive failed");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        answers.clear();
        peers.clear();
        for (i, datagram) in received.iter().enumerate() {
            let Some(peer) = datagram.peer else { continue };
            let response = &mut responses[i];
            if !handler.handle(&requests[i][..datagram.len], Transport::Udp, response) {
                continue;
            }
            let action = match limiter.check(ip_of(&peer), response) {
                Action::Slip(class) if !rrl::truncate_to_question(response) => Action::Drop(class),
                action => action,
            };
            handler.rate_limited(action);
            if let Action::Drop(_) = action {
                continue;
            }
            answers.push(i);
            peers.push(Some(peer));
        }
        send_all(fd, &mut send_headers, &responses, &answers, &peers);
    }
}

/// Sends `responses[answers[k]]` to `peers[k]` for every k, with as few
/// `sendmmsg` calls as the kernel allows. A datagram the kernel refuses is
/// skipped (logged unless it concerns one peer); the rest still go.
fn send_all(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    responses: &[Vec<u8>],
    answers: &[usize],
    peers: &[Option<SockaddrStorage>],
) {
    let slices: Vec<[IoSlice<'_>; 1]> = answers
        .iter()
        .map(|&i| [IoSlice::new(&responses[i])])
        .collect();
    let mut start = 0;
    while start < slices.len() {
        match sendmmsg(
            fd,
            headers,
            slices[start..].iter(),
            &peers[start..],
            [],
            MsgFlags::empty(),
        ) {
            Ok(sent) => start += sent.count().max(1),
            Err(e) => {
                let e = io::Error::from(e);
                if !is_transient(&e) {
                    warn!(error = %e, "UDP send failed");
                }
                start += 1;
            }
        }
    }
}

fn ip_of(peer: &SockaddrStorage) -> IpAddr {
    if let Some(v4) = peer.as_sockaddr_in() {
        IpAddr::V4(v4.ip())
    } else if let Some(v6) = peer.as_sockaddr_in6() {
        IpAddr::V6(v6.ip())
    } else {
        // Not an IP socket: cannot happen on a UDP socket bound to an IP
        // address; rate-limit such peers together.
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
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
