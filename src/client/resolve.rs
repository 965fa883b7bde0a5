//! Asking one name server one question: UDP first, TCP when the answer is
//! truncated (RFC 7766), with the response matched to the query by id and
//! question so that a stray or spoofed datagram is ignored.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

#[derive(Debug, Error)]
pub enum ExchangeError {
    #[error("no answer from {0} in time")]
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

/// Sends `qtype` for `name` to `server` and returns its answer, whatever the
/// response code. `deadline` covers the UDP try and the TCP retry together.
pub async fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Result<Message, ExchangeError> {
    let deadline = Instant::now() + timeout;
    let mut query = Message::query();
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
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(&bytes).await.map_err(io)?;
    let mut buf = vec![0u8; 65_535];
    let answer = loop {
        let len = timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| ExchangeError::Timeout(server))?
            .map_err(io)?;
        match Message::from_vec(&buf[..len]) {
            Ok(m) if matches(&query, &m) => break m,
            _ => continue, // not ours: keep waiting for the real answer
        }
    };
    if !answer.metadata.truncation {
        return Ok(answer);
    }

    let mut stream = timeout_at(deadline, TcpStream::connect(server))
        .await
        .map_err(|_| ExchangeError::Timeout(server))?
        .map_err(io)?;
    let len = u16::try_from(bytes.len()).map_err(|_| ExchangeError::Malformed(server))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    let read = async {
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        Ok::<_, io::Error>(buf)
    };
    let buf = timeout_at(deadline, read)
        .await
        .map_err(|_| ExchangeError::Timeout(server))?
        .map_err(io)?;
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
