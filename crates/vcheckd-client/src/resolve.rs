//! Asking one name server one question: UDP first, TCP when the answer is
//! truncated (RFC 7766), with the response matched to the query by id and
//! question so that a stray or spoofed datagram is ignored. Blocking
//! sockets from the standard library: no async runtime is needed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExchangeError {
    #[error("no answer from {0} in time: check that it is reachable over UDP and TCP port 53 and that the zone is delegated (docs/DEPLOY.md section 8)")]
    Timeout(SocketAddr),
    #[error("network error talking to {server}")]
    Io {
        server: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("malformed answer from {0}")]
    Malformed(SocketAddr),
}

fn remaining(deadline: Instant, server: SocketAddr) -> Result<Duration, ExchangeError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(ExchangeError::Timeout(server))
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sends `qtype` for `name` to `server` and returns its answer, whatever the
/// response code. `timeout` covers the UDP try and the TCP retry together.
pub fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Result<Message, ExchangeError> {
    let deadline = Instant::now() + timeout;
    let mut query = Message::query();
    // A random id (the kernel picks the source port): an off-path spoofer
    // must guess both.
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).map_err(|e| ExchangeError::Io {
        server,
        source: io::Error::other(e.to_string()),
    })?;
    query.metadata.id = u16::from_be_bytes(id);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let io = |source| ExchangeError::Io { server, source };
    let bytes = query
        .to_bytes()
        .map_err(|e| io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;

    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.send(&bytes).map_err(io)?;
    let mut buf = vec![0u8; 65_535];
    let answer = loop {
        socket
            .set_read_timeout(Some(remaining(deadline, server)?))
            .map_err(io)?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if timed_out(&e) => return Err(ExchangeError::Timeout(server)),
            Err(e) => return Err(io(e)),
        };
        match Message::from_vec(&buf[..len]) {
            Ok(m) if matches(&query, &m) => break m,
            _ => continue, // not ours: keep waiting for the real answer
        }
    };
    if !answer.metadata.truncation {
        return Ok(answer);
    }

    let mut stream =
        TcpStream::connect_timeout(&server, remaining(deadline, server)?).map_err(|e| {
            if timed_out(&e) {
                ExchangeError::Timeout(server)
            } else {
                io(e)
            }
        })?;
    let len = u16::try_from(bytes.len()).map_err(|_| ExchangeError::Malformed(server))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    let mut read = || -> io::Result<Vec<u8>> {
        stream.set_write_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))?;
        stream.write_all(&framed)?;
        stream.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf)?;
        Ok(buf)
    };
    let buf = read().map_err(|e| {
        if timed_out(&e) {
            ExchangeError::Timeout(server)
        } else {
            io(e)
        }
    })?;
    match Message::from_vec(&buf) {
        Ok(m) if matches(&query, &m) => Ok(m),
        _ => Err(ExchangeError::Malformed(server)),
    }
}

/// Same id and the same question (names compared without regard to case).
fn matches(query: &Message, answer: &Message) -> bool {
    answer.metadata.id == query.metadata.id
        && (answer.queries.is_empty() || answer.queries == query.queries)
}
