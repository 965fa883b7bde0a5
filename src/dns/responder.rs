//! One request in, one response out: the whole DNS logic, as a pure
//! function of the request's bytes, the zones, the time and the transport.
//!
//! Nothing here reaches a socket, a clock, the journal or the metrics: the
//! caller ([`super::handler`]) gets an [`Outcome`] saying what happened and
//! which report to record, and does both. That keeps one behaviour for every
//! transport, lets the RFC scenario tables (tests/rfc) and the fuzzer drive
//! it directly, and keeps the answer path free of allocation: the request is
//! read only as far as an answer needs ([`super::request`]), what does not
//! change per query is encoded when the zone is loaded
//! ([`super::catalog::Encoded`]), and the response is written as bytes
//! into the caller's buffer, its owner names as pointers into the question
//! (echoed as received, letter case included).
//!
//! Where the RFCs leave a choice, the answers follow NSD 4.6; docs/DNS.md
//! lists each case and the few deliberate differences.

use super::catalog::{Catalog, Encoded, FixedName, ReportAnswer, Zone};
use super::request::{self, code, Edns, Question, Reject, Request, MAX_LABELS};
use super::MAX_UDP_PAYLOAD;
use crate::protocol::name::MAX_FRAME_LEN;
use crate::protocol::{DecodeError, ZoneName};
use crate::report::ReceivedReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The response codes the responder sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NotImp,
    Refused,
    /// RFC 6891: an EDNS version we do not speak (extended rcode 16).
    BadVers,
}

impl Rcode {
    /// The 12-bit extended code (RFC 6891 6.1.3).
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::BadVers => 16,
        }
    }
}

/// What one request came to, for the caller to count and record.
#[derive(Debug)]
pub enum Outcome<'c> {
    /// Not a request (too short, or a response): nothing was written.
    Dropped,
    /// A response was written.
    Answered(Answered<'c>),
}

#[derive(Debug)]
pub struct Answered<'c> {
    pub rcode: Rcode,
    /// The question's type, when the request had a readable question.
    pub qtype: Option<u16>,
    pub name: NameOutcome<'c>,
}

/// A v2 frame as received, still sealed, in a fixed buffer (no allocation
/// on the answer path).
#[derive(Clone)]
pub struct SealedFrame {
    bytes: [u8; MAX_FRAME_LEN],
    len: usize,
}

impl SealedFrame {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for SealedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedFrame({} bytes)", self.len)
    }
}

/// What the question's name was, under one of our zones.
#[derive(Debug)]
pub enum NameOutcome<'c> {
    /// Not looked at as a payload name: no question, outside our zones, the
    /// zone file's own names, or a request refused before.
    Other,
    /// A valid protocol v1 report: the caller hands it to the journal.
    Report(ReceivedReport),
    /// A protocol v2 frame of the right shape under `zone`: the caller
    /// hands it to the journal, where the processor opens it.
    Sealed {
        zone: &'c ZoneName,
        frame: SealedFrame,
    },
    /// A name under a zone that is neither a zone-file name nor a report
    /// (QNAME-minimisation partial names land here), with the reason.
    Rejected(DecodeError),
}

impl<'c> Outcome<'c> {
    fn answered(rcode: Rcode, qtype: Option<u16>, name: NameOutcome<'c>) -> Self {
        Outcome::Answered(Answered { rcode, qtype, name })
    }
}

/// Extended DNS Errors (RFC 8914) NSD attaches to its refusals.
mod ede {
    pub const PROHIBITED: u16 = 18;
    pub const NOT_AUTHORITATIVE: u16 = 20;
    pub const NOT_SUPPORTED: u16 = 21;
}

const HEADER: usize = 12;

/// Writes the response to `request` into `out` (cleared first; nothing is
/// written for [`Outcome::Dropped`]). `now` is the receive time in unix
/// seconds, stamped on the report.
pub fn respond<'c>(
    catalog: &'c Catalog,
    request: &[u8],
    now: i64,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Outcome<'c> {
    out.clear();
    let req = match request::parse(request) {
        Ok(req) => req,
        Err(Reject::Drop) => return Outcome::Dropped,
        Err(Reject::FormErr) => {
            header_only(request, Rcode::FormErr, out);
            return Outcome::answered(Rcode::FormErr, None, NameOutcome::Other);
        }
        Err(Reject::NotImp) => {
            header_only(request, Rcode::NotImp, out);
            return Outcome::answered(Rcode::NotImp, None, NameOutcome::Other);
        }
    };
    let max_size = max_size(transport, req.edns);
    let mut w = Writer::new(out, &req, max_size);
    let Some(q) = req.question else {
        // QDCOUNT=0 with an OPT: an EDNS or cookie probe (RFC 7873 5.4).
        w.finish(Flags::default(), Rcode::NoError, None);
        return Outcome::answered(Rcode::NoError, None, NameOutcome::Other);
    };
    let qtype = Some(q.qtype);
    if req.edns.is_some_and(|e| e.version > 0) {
        w.question(&q);
        w.finish(Flags::default(), Rcode::BadVers, None);
        return Outcome::answered(Rcode::BadVers, qtype, NameOutcome::Other);
    }
    // QCLASS ANY is answered from class IN, without AA (NSD; RFC 1035
    // 6.2 leaves it open); NONE is refused without the question, as NSD.
    let authoritative = match q.qclass {
        code::CLASS_IN => true,
        code::CLASS_ANY => false,
        code::CLASS_NONE => return refuse(w, &q, ede::NOT_SUPPORTED, false),
        _ => return refuse(w, &q, ede::NOT_SUPPORTED, true),
    };
    match (q.qtype, transport) {
        // Zone transfer needs TCP (RFC 5936 4.2): NOTIMP over UDP, as NSD.
        (code::AXFR, Transport::Udp) => {
            w.question(&q);
            w.finish(Flags::default(), Rcode::NotImp, None);
            return Outcome::answered(Rcode::NotImp, qtype, NameOutcome::Other);
        }
        (code::AXFR | code::IXFR, _) => return refuse(w, &q, ede::PROHIBITED, true),
        _ => {}
    }
    let labels = (0..q.label_count()).map(|i| q.label(i));
    let Some(zone) = catalog.find(labels) else {
        return refuse(w, &q, ede::NOT_AUTHORITATIVE, true);
    };
    w.question(&q);
    let flags = Flags { authoritative };
    let mut lower = [0u8; 255];
    let name = q.name();
    lower[..name.len()].copy_from_slice(name);
    lower[..name.len()].make_ascii_lowercase();
    let outcome = if let Some(fixed) = zone.fixed(&lower[..name.len()]) {
        fixed_answer(&mut w, zone, &q, fixed);
        NameOutcome::Other
    } else {
        report_answer(&mut w, zone, &q, now)
    };
    w.finish(flags, Rcode::NoError, None);
    Outcome::answered(Rcode::NoError, qtype, outcome)
}

/// The largest response the client takes over `transport`.
fn max_size(transport: Transport, edns: Option<Edns>) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(e)) => usize::from(e.payload.clamp(512, MAX_UDP_PAYLOAD)),
        (Transport::Udp, None) => 512,
    }
}

/// SERVFAIL for `request` (its question echoed, no records, no AA): what
/// an authoritative server answers when it cannot serve, here when a
/// report cannot be recorded, so that the resolver tries another name
/// server of the zone. Writes nothing for a request [`respond`] drops.
pub fn servfail(request: &[u8], transport: Transport, out: &mut Vec<u8>) {
    out.clear();
    let Ok(req) = request::parse(request) else {
        return;
    };
    let max_size = max_size(transport, req.edns);
    let mut w = Writer::new(out, &req, max_size);
    if let Some(q) = req.question {
        w.question(&q);
    }
    w.finish(Flags::default(), Rcode::ServFail, None);
}

/// REFUSED, with an Extended DNS Error as NSD gives it.
fn refuse<'c>(
    mut w: Writer<'_, '_>,
    q: &Question<'_>,
    ede: u16,
    with_question: bool,
) -> Outcome<'c> {
    if with_question {
        w.question(q);
    }
    w.finish(Flags::default(), Rcode::Refused, Some(ede));
    Outcome::answered(Rcode::Refused, Some(q.qtype), NameOutcome::Other)
}

/// The zone file's records at the question's name, the one ANY gets
/// (RFC 8482), or NODATA with the SOA.
fn fixed_answer(w: &mut Writer<'_, '_>, zone: &Zone, q: &Question<'_>, fixed: &FixedName) {
    let mut any = false;
    if q.qtype == code::ANY {
        if let Some(r) = fixed.records.get(fixed.any) {
            w.answer(q, r);
            any = true;
        }
    } else {
        for r in fixed.records.iter().filter(|r| r.rtype == q.qtype) {
            w.answer(q, r);
            any = true;
        }
    }
    if !any {
        w.negative(zone, q);
    }
}

/// A payload name: the hint if it decodes to a report (TXT for TXT and
/// ANY, A, AAAA), NODATA with the SOA otherwise. Never NXDOMAIN:
/// QNAME-minimising resolvers ask each ancestor of a payload name first,
/// and NXDOMAIN there (RFC 8020) would stop them from asking the full name.
fn report_answer<'c>(
    w: &mut Writer<'_, '_>,
    zone: &'c Zone,
    q: &Question<'_>,
    now: i64,
) -> NameOutcome<'c> {
    let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
    let payload = q.label_count() - zone.label_count();
    for (i, slot) in labels.iter_mut().enumerate().take(payload) {
        *slot = q.label(i);
    }
    let mut frame = [0u8; MAX_FRAME_LEN];
    match zone.report(
        &labels[..payload],
        &mut frame,
        u64::try_from(now).unwrap_or(0),
    ) {
        Ok(ReportAnswer::V2 {
            answers,
            key_id,
            record: recorded,
        }) => {
            let record = match q.qtype {
                code::TXT | code::ANY => answers.txt(key_id),
                code::A => Some(&answers.a),
                code::AAAA => Some(&answers.aaaa),
                _ => None,
            };
            match record {
                Some(r) => w.answer(q, r),
                None => w.negative(zone, q),
            }
            match recorded {
                Ok(len) => NameOutcome::Sealed {
                    zone: &zone.name,
                    frame: SealedFrame { bytes: frame, len },
                },
                Err(why) => NameOutcome::Rejected(why),
            }
        }
        Ok(ReportAnswer::Policy { txt }) => {
            match q.qtype {
                code::TXT | code::ANY => w.answer(q, txt),
                _ => w.negative(zone, q),
            }
            NameOutcome::Other
        }
        Ok(ReportAnswer::V1 { report, hint }) => {
            let ttl = zone.answer_ttl;
            match q.qtype {
                code::TXT | code::ANY => w.answer_with(code::TXT, ttl, |out| {
                    // Character-strings of at most 255 octets each.
                    for s in hint.to_txt_strings() {
                        let s = &s.as_bytes()[..s.len().min(255)];
                        out.push(s.len() as u8);
                        out.extend_from_slice(s);
                    }
                }),
                code::A => w.answer_with(code::A, ttl, |out| {
                    out.extend_from_slice(&hint.to_a().octets())
                }),
                code::AAAA => w.answer_with(code::AAAA, ttl, |out| {
                    out.extend_from_slice(&hint.to_aaaa().octets())
                }),
                _ => w.negative(zone, q),
            }
            NameOutcome::Report(ReceivedReport {
                report,
                zone: zone.name.clone(),
                received_at: now,
                status: hint.status,
            })
        }
        Err(why) => {
            w.negative(zone, q);
            NameOutcome::Rejected(why)
        }
    }
}

/// A FORMERR or NOTIMP answer: the header alone, as NSD sends it (the
/// question is not echoed, since it may be what is malformed). FORMERR
/// keeps the RD bit; NOTIMP keeps RD and CD.
fn header_only(request: &[u8], rcode: Rcode, out: &mut Vec<u8>) {
    out.clear();
    let (id, opcode_rd, cd) = match request {
        [a, b, c, d, ..] => ([*a, *b], c & 0x79, d & 0x10),
        _ => return,
    };
    let cd = if rcode == Rcode::NotImp { cd } else { 0 };
    // The low four bits of the rcode (FORMERR and NOTIMP fit them).
    let low = (rcode.code() & 0x0f) as u8;
    out.extend_from_slice(&[id[0], id[1], 0x80 | opcode_rd, cd | low]);
    out.extend_from_slice(&[0; 8]);
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    authoritative: bool,
}

/// Writes a response into the caller's buffer: the header last (when the
/// counts are known), sections in order, the OPT record at the end.
struct Writer<'o, 'r> {
    out: &'o mut Vec<u8>,
    req: &'r Request<'r>,
    max_size: usize,
    /// Offset just past the question (12 until one is written).
    question_end: usize,
    has_question: bool,
    answers: u16,
    authority: u16,
}

impl<'o, 'r> Writer<'o, 'r> {
    fn new(out: &'o mut Vec<u8>, req: &'r Request<'r>, max_size: usize) -> Self {
        out.clear();
        out.extend_from_slice(&[0; HEADER]);
        Writer {
            out,
            req,
            max_size,
            question_end: HEADER,
            has_question: false,
            answers: 0,
            authority: 0,
        }
    }

    /// Echoes the question as received; must come before any record.
    fn question(&mut self, q: &Question<'_>) {
        self.out.extend_from_slice(q.wire);
        self.question_end = self.out.len();
        self.has_question = true;
    }

    /// A pointer to the name at `at` (an offset in the response).
    fn owner(&mut self, at: usize) {
        // `at` is within the question: below 12 + 255, far below 0x3fff.
        let at = at as u16;
        self.out.extend_from_slice(&(0xc000 | at).to_be_bytes());
    }

    /// A pre-encoded record owned by the question's name.
    fn answer(&mut self, q: &Question<'_>, record: &Encoded) {
        self.owner(HEADER);
        self.copy(q, record);
        self.answers += 1;
    }

    /// Copies `record`, pointing its compressed names into the question.
    fn copy(&mut self, q: &Question<'_>, record: &Encoded) {
        let base = self.out.len();
        self.out.extend_from_slice(&record.bytes);
        for &(at, labels) in record.pointers.iter() {
            let target = 0xc000 | (HEADER + q.suffix_at(usize::from(labels))) as u16;
            let at = base + usize::from(at);
            self.out[at..at + 2].copy_from_slice(&target.to_be_bytes());
        }
    }

    /// A record owned by the question's name, its RDATA written by `rdata`.
    fn answer_with(&mut self, rtype: u16, ttl: u32, rdata: impl FnOnce(&mut Vec<u8>)) {
        self.owner(HEADER);
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&code::CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        rdata(self.out);
        let len = (self.out.len() - len_at - 2) as u16;
        self.out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        self.answers += 1;
    }

    /// The zone's SOA in the authority section (NODATA, RFC 2308), owned
    /// by the zone's apex: the question name's suffix.
    fn negative(&mut self, zone: &Zone, q: &Question<'_>) {
        self.owner(HEADER + q.suffix_at(zone.label_count()));
        self.copy(q, zone.negative_soa());
        self.authority += 1;
    }

    /// Adds the OPT record (if the request had one) and the header. If the
    /// response is larger than the client takes, it is cut to the question
    /// with TC set (RFC 1035 4.2.1, RFC 6891 7), and the client retries
    /// over TCP.
    fn finish(mut self, flags: Flags, rcode: Rcode, ede: Option<u16>) {
        let edns = self.req.edns;
        let opt_len = match (edns, ede) {
            (None, _) => 0,
            (Some(_), None) => 11,
            (Some(_), Some(_)) => 17,
        };
        let mut truncated = false;
        if self.out.len() + opt_len > self.max_size {
            self.out.truncate(self.question_end);
            self.answers = 0;
            self.authority = 0;
            truncated = true;
        }
        if let Some(e) = edns {
            write_opt(self.out, e, rcode, ede);
        }
        let r = self.req;
        let byte2 =
            0x80 | if flags.authoritative && rcode == Rcode::NoError {
                0x04
            } else {
                0
            } | if truncated { 0x02 } else { 0 }
                | u8::from(r.rd);
        let byte3 = if r.cd { 0x10 } else { 0 } | (rcode.code() & 0x0f) as u8;
        let id = r.id.to_be_bytes();
        let header = [
            id[0],
            id[1],
            byte2,
            byte3,
            0,
            u8::from(self.has_question),
            (self.answers >> 8) as u8,
            self.answers as u8,
            (self.authority >> 8) as u8,
            self.authority as u8,
            0,
            u8::from(edns.is_some()),
        ];
        self.out[..HEADER].copy_from_slice(&header);
    }
}

/// Our OPT record: the payload size we accept, the upper bits of the rcode,
/// version 0, the DO bit echoed (RFC 3225) except with BADVERS, and an
/// Extended DNS Error when we have one to give (RFC 8914).
fn write_opt(out: &mut Vec<u8>, theirs: Edns, rcode: Rcode, ede: Option<u16>) {
    let ext = (rcode.code() >> 4) as u8;
    let dnssec_ok = theirs.dnssec_ok && rcode != Rcode::BadVers;
    out.push(0);
    out.extend_from_slice(&code::OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[ext, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    match ede {
        None => out.extend_from_slice(&[0, 0]),
        Some(info) => {
            out.extend_from_slice(&[0, 6, 0, 15, 0, 2]);
            out.extend_from_slice(&info.to_be_bytes());
        }
    }
}
