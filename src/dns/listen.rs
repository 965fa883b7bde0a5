//! Listening: the UDP receive threads and the TCP listener on one address,
//! bound the way other name servers bind (SO_REUSEPORT for one receive
//! loop per worker, IPv6-only sockets beside IPv4 ones). Knows the
//! [`RequestHandler`] it hands requests to and nothing of what the process does
//! with reports: the daemon (src/daemon) wires that.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::net::TcpListener;

use super::rrl::RateLimiter;
use super::udp;
use super::RequestHandler;

/// A listen address that could not be served.
#[derive(Debug, Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start a UDP thread")]
    UdpThread(#[source] io::Error),
}

/// The UDP receive threads, stopped and joined on drop.
#[derive(Default)]
pub struct UdpThreads {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpThreads {
    /// Starts one receive loop on `socket`.
    pub fn spawn<H: RequestHandler>(
        &mut self,
        socket: UdpSocket,
        handler: Arc<H>,
        limiter: Arc<RateLimiter>,
    ) -> Result<(), ListenError> {
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name("vcheckd-udp".into())
            .spawn(move || udp::serve(socket, handler, limiter, stop))
            .map_err(ListenError::UdpThread)?;
        self.threads.push(thread);
        Ok(())
    }
}

impl Drop for UdpThreads {
    /// Each thread sees the flag within [`udp::STOP_POLL`].
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Binds `udp_workers` UDP sockets (SO_REUSEPORT: the kernel spreads
/// datagrams over them, one receive loop each) and a TCP listener on the
/// same address. With port 0, the kernel picks the port for the first UDP
/// socket and the others take the same number, retrying if TCP's is taken.
pub fn bind_pair(
    want: SocketAddr,
    udp_workers: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), ListenError> {
    let bind_err = |source| ListenError::Bind { addr: want, source };
    let mut attempts = 0;
    loop {
        let first = bind_socket(want, socket2::Type::DGRAM)?;
        let addr = first
            .local_addr()
            .map_err(bind_err)?
            .as_socket()
            .ok_or_else(|| bind_err(std::io::Error::other("not an IP socket")))?;
        let mut udp = vec![first];
        for _ in 1..udp_workers.max(1) {
            udp.push(bind_socket(addr, socket2::Type::DGRAM)?);
        }
        let udp = udp.into_iter().map(UdpSocket::from).collect();
        let tcp = bind_socket(addr, socket2::Type::STREAM)
            .and_then(|s| TcpListener::from_std(s.into()).map_err(bind_err));
        match tcp {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(_) if want.port() == 0 && attempts < 16 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A non-blocking socket bound to `addr` (and listening, for TCP). IPv6
/// sockets are IPv6-only, so that "0.0.0.0:53" and "[::]:53" can both be
/// listened on, as with other name servers.
fn bind_socket(addr: SocketAddr, ty: socket2::Type) -> Result<socket2::Socket, ListenError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind_err = |source| ListenError::Bind { addr, source };
    let protocol = if ty == Type::STREAM {
        Protocol::TCP
    } else {
        Protocol::UDP
    };
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol)).map_err(bind_err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(bind_err)?;
    }
    if ty == Type::STREAM {
        socket.set_reuse_address(true).map_err(bind_err)?;
    } else {
        socket.set_reuse_port(true).map_err(bind_err)?;
    }
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    if ty == Type::STREAM {
        socket.listen(1024).map_err(bind_err)?;
    }
    Ok(socket)
}
