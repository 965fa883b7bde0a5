//! Sink 2: reports sent to a running server as real DNS queries over UDP,
//! one TXT query per report, built as a client builds it
//! ([`crate::client::Check::prepare`]: anonymized ids, a fresh nonce).
//!
//! Queries go out at a bounded rate to the one given address, from one
//! connected socket; answers are matched by message id and question, and a
//! query unanswered within the timeout is sent again (same name, as a
//! resolver retries) up to `retries` times, then counted as lost.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::fleet::{Fleet, SimReport};
use crate::client::v1::Check;
use crate::client::Reporter;
use crate::hint::{Hint, Status};
use crate::protocol::{Key, ReportId, ZoneName};

/// Where and how fast to send.
#[derive(Debug, Clone)]
pub struct DnsTarget {
    pub server: SocketAddr,
    pub zone: ZoneName,
    pub key: Key,
    /// Queries per second, retries included.
    pub rate: f64,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// Sends of the same query after the first, when unanswered.
    pub retries: u32,
}

/// One report the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// Index into the reports given to [`send`].
    pub index: usize,
    /// The report id (nonce) in the query name.
    pub id: ReportId,
    /// The hint's status; `None` if the answer held no hint.
    pub status: Option<Status>,
}

#[derive(Debug, Clone, Default)]
pub struct DnsOutcome {
    pub reports: u64,
    /// Queries sent, retries included.
    pub queries: u64,
    pub answered: Vec<Answered>,
    /// Answered with an rcode other than NOERROR.
    pub errors: u64,
    /// No answer after every retry.
    pub lost: u64,
    pub elapsed: Duration,
}

impl DnsOutcome {
    /// Answered reports per hint status code (0 to 3).
    #[must_use]
    pub fn by_status(&self) -> [u64; 4] {
        let mut out = [0; 4];
        for a in &self.answered {
            if let Some(s) = a.status {
                out[usize::from(s.code())] += 1;
            }
        }
        out
    }
}

/// A query waiting for its answer.
struct Pending {
    index: usize,
    name: Name,
    id: ReportId,
    /// Sends so far.
    sends: u32,
    /// Tells this send's expiry from an older one of the same message id.
    serial: u64,
}

fn encode(qid: u16, name: &Name) -> io::Result<Vec<u8>> {
    let mut m = Message::new(qid, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), RecordType::TXT));
    m.to_bytes()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// The hint in an answer's TXT records, if any.
fn hint_of(m: &Message) -> Option<Hint> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::TXT(txt) => {
            let text: String = txt
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect();
            Hint::parse_txt(&text).ok()
        }
        _ => None,
    })
}

fn prepare(fleet: &Fleet, r: &SimReport, target: &DnsTarget) -> io::Result<(Name, ReportId)> {
    let node = &fleet.nodes[r.node as usize];
    let cluster = &fleet.clusters[node.cluster as usize];
    let check = Check {
        zone: target.zone.clone(),
        key: target.key.clone(),
        version: fleet.version(r.version).clone(),
        reporter: (!cluster.anonymous).then(|| Reporter {
            cluster_id: cluster.real_id.clone(),
            node_id: node.real_id.clone(),
        }),
    };
    let prepared = check
        .prepare()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let name = Name::from_ascii(&prepared.name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok((name, prepared.id))
}

/// Sends one query per report and waits for the answers.
pub async fn send(
    fleet: &Fleet,
    reports: &[SimReport],
    target: &DnsTarget,
) -> io::Result<DnsOutcome> {
    if !(target.rate > 0.0 && target.rate.is_finite()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the rate must be a positive number of queries per second",
        ));
    }
    let local: SocketAddr = if target.server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target.server).await?;

    let started = Instant::now();
    let mut outcome = DnsOutcome {
        reports: reports.len() as u64,
        ..DnsOutcome::default()
    };
    let mut pending: HashMap<u16, Pending> = HashMap::new();
    // Expiries in send order; the timeout is the same for all, so this is
    // also deadline order. Answered entries are skipped when they come up.
    let mut expiries: VecDeque<(Instant, u16, u64)> = VecDeque::new();
    let mut retry: VecDeque<Pending> = VecDeque::new();
    let mut next_report = 0;
    let mut next_qid: u16 = 0;
    let mut serial = 0u64;
    let mut buf = vec![0u8; 65_535];
    let due = |sent: u64| started + Duration::from_secs_f64(sent as f64 / target.rate);

    loop {
        let now = Instant::now();
        while let Some(&(deadline, qid, s)) = expiries.front() {
            if deadline > now {
                break;
            }
            expiries.pop_front();
            if pending.get(&qid).is_some_and(|p| p.serial == s) {
                let p = pending.remove(&qid).expect("present");
                if p.sends <= target.retries {
                    retry.push_back(p);
                } else {
                    outcome.lost += 1;
                }
            }
        }
        while due(outcome.queries) <= now && pending.len() < usize::from(u16::MAX) {
            let mut p = match retry.pop_front() {
                Some(p) => p,
                None if next_report < reports.len() => {
                    let (name, id) = prepare(fleet, &reports[next_report], target)?;
                    next_report += 1;
                    Pending {
                        index: next_report - 1,
                        name,
                        id,
                        sends: 0,
                        serial: 0,
                    }
                }
                None => break,
            };
            while pending.contains_key(&next_qid) {
                next_qid = next_qid.wrapping_add(1);
            }
            let qid = next_qid;
            next_qid = next_qid.wrapping_add(1);
            match socket.send(&encode(qid, &p.name)?).await {
                Ok(_) => {}
                // An earlier ICMP "port unreachable" surfaces here: the
                // query is as good as lost, its timeout will say so.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
            serial += 1;
            p.sends += 1;
            p.serial = serial;
            expiries.push_back((Instant::now() + target.timeout, qid, serial));
            pending.insert(qid, p);
            outcome.queries += 1;
        }
        let more_to_send = !retry.is_empty() || next_report < reports.len();
        if pending.is_empty() && !more_to_send {
            break;
        }
        let mut wake = expiries.front().map(|e| e.0);
        // With every message id in flight, only an answer or expiry helps.
        if more_to_send && pending.len() < usize::from(u16::MAX) {
            let at = due(outcome.queries);
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        let wake = wake.unwrap_or_else(|| Instant::now() + target.timeout);
        tokio::select! {
            received = socket.recv(&mut buf) => {
                let len = match received {
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e),
                };
                let Ok(m) = Message::from_vec(&buf[..len]) else { continue };
                let ours = m.metadata.message_type == MessageType::Response
                    && pending.get(&m.metadata.id).is_some_and(|p| {
                        m.queries.len() == 1 && m.queries[0].name == p.name
                    });
                if !ours {
                    continue; // late, stray or spoofed
                }
                let p = pending.remove(&m.metadata.id).expect("present");
                if m.metadata.response_code == ResponseCode::NoError {
                    outcome.answered.push(Answered {
                        index: p.index,
                        id: p.id,
                        status: hint_of(&m).map(|h| h.status),
                    });
                } else {
                    outcome.errors += 1;
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    outcome.answered.sort_by_key(|a| a.index);
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}
