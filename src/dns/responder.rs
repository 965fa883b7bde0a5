//! One request in, one response out: the whole DNS logic, without sockets.
//!
//! Keeping this a plain function of bytes makes every transport (the UDP
//! loop, TCP, a future fuzzer) share one behaviour, and lets the UDP loop
//! reuse its buffers: nothing here spawns, logs or blocks per query.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use super::catalog::{Catalog, Zone};
use super::MAX_UDP_PAYLOAD;
use crate::hint::Hint;
use crate::metrics::{bump, Metrics};
use crate::protocol::name::labels_to_frame;
use crate::protocol::v2::{self, policy::to_txt_strings};
use crate::protocol::{frame, DecodeError, Identity, KeyId};
use crate::report::{Incoming, ReceivedReport};

use super::ReportSink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

pub struct Responder {
    catalog: ArcSwap<Catalog>,
    sink: Arc<dyn ReportSink>,
    metrics: Arc<Metrics>,
}

/// Largest number of labels a valid name can have (255 octets on the wire).
const MAX_LABELS: usize = 127;

impl Responder {
    pub fn new(catalog: Catalog, sink: Arc<dyn ReportSink>, metrics: Arc<Metrics>) -> Self {
        Responder {
            catalog: ArcSwap::from_pointee(catalog),
            sink,
            metrics,
        }
    }

    /// Replaces the zones; queries in flight finish on the old ones.
    pub fn swap_catalog(&self, catalog: Catalog) {
        self.catalog.store(Arc::new(catalog));
    }

    /// How often the policies must be signed anew (see [`Catalog::resign_interval`]).
    pub fn resign_interval(&self) -> Option<std::time::Duration> {
        self.catalog.load().resign_interval()
    }

    /// Signs every v2 policy anew at `now`, keeping everything else. Returns
    /// when to do it again (a seventh of the shortest validity), or `None`
    /// when no zone serves v2.
    pub fn resign_policies(&self, now: u64) -> Option<std::time::Duration> {
        self.catalog.rcu(|current| match current.resign(now) {
            Ok(next) => Arc::new(next),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the v2 policies anew; serving the old ones");
                current.clone()
            }
        });
        self.catalog.load().resign_interval()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Writes the response to `request` into `out`. Returns false when no
    /// response must be sent (not a DNS request, or itself a response).
    pub fn respond(&self, request: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        out.clear();
        bump(match transport {
            Transport::Udp => &self.metrics.queries_udp,
            Transport::Tcp => &self.metrics.queries_tcp,
        });
        let Ok(header) = Header::read(&mut BinDecoder::new(request)) else {
            bump(&self.metrics.dropped_packets);
            return false;
        };
        if header.metadata.message_type == MessageType::Response {
            // Answering a response invites reflection loops.
            bump(&self.metrics.dropped_packets);
            return false;
        }
        let mut response = Message::response(header.metadata.id, header.metadata.op_code);
        response.metadata.recursion_desired = header.metadata.recursion_desired;
        response.metadata.checking_disabled = header.metadata.checking_disabled;
        let max_size = match Message::from_vec(request) {
            Ok(request) => self.answer(&request, transport, &mut response),
            Err(_) => {
                response.metadata.response_code = ResponseCode::FormErr;
                512
            }
        };
        self.metrics.count_rcode(response.metadata.response_code);
        encode(&response, max_size, out)
    }

    /// Fills `response` and returns the largest size it may be sent at.
    fn answer(&self, request: &Message, transport: Transport, response: &mut Message) -> u16 {
        let edns = request.edns.as_ref();
        let max_size = match (transport, edns) {
            (Transport::Tcp, _) => u16::MAX,
            (Transport::Udp, Some(e)) => e.max_payload().clamp(512, MAX_UDP_PAYLOAD),
            (Transport::Udp, None) => 512,
        };
        if let Some(e) = edns {
            let mut ours = Edns::new();
            ours.set_max_payload(MAX_UDP_PAYLOAD);
            ours.set_dnssec_ok(e.flags().dnssec_ok);
            response.set_edns(ours);
        }
        if request.metadata.op_code != OpCode::Query {
            response.add_queries(request.queries.iter().take(1).cloned());
            response.metadata.response_code = ResponseCode::NotImp;
            return max_size;
        }
        if edns.is_some_and(|e| e.version() > 0) {
            response.metadata.response_code = ResponseCode::BADVERS;
            return max_size;
        }
        let [query] = request.queries.as_slice() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return max_size;
        };
        response.add_query(query.clone());
        self.metrics.count_qtype(query.query_type());
        if query.query_class() != DNSClass::IN
            || matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            response.metadata.response_code = ResponseCode::Refused;
            return max_size;
        }
        let qname = query.name();
        let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
        let mut count = 0;
        for label in qname.iter().take(MAX_LABELS) {
            labels[count] = label;
            count += 1;
        }
        let labels = &labels[..count];
        let catalog = self.catalog.load();
        let Some(zone) = catalog.find(labels) else {
            response.metadata.response_code = ResponseCode::Refused;
            return max_size;
        };
        response.metadata.authoritative = true;
        let payload_labels = &labels[..labels.len() - zone.label_count()];
        let qtype = query.query_type();
        if payload_labels.is_empty() {
            fixed_answer(zone, zone.fixed_records(qname), qname, qtype, response);
            return max_size;
        }
        if let Some(txt) = policy_name(zone, payload_labels) {
            // `<key id>._policy.<zone>`: the signed policy without a report
            // (what a client's dry run verifies).
            match qtype {
                RecordType::TXT | RecordType::ANY => response.add_answer(Record::from_rdata(
                    qname.clone(),
                    zone.answer_ttl,
                    RData::TXT(txt),
                )),
                _ => response.add_authority(zone.negative_soa()),
            };
            return max_size;
        }
        let frame = labels_to_frame(payload_labels);
        match frame.as_deref().map(|f| (f.first().copied(), f)) {
            Ok((Some(v2::FORMAT_V2), frame)) if zone.v2.is_some() => {
                self.answer_v2(zone, frame, qname, qtype, response)
            }
            Ok((_, frame)) if zone.accept_v1 => match frame::open(&zone.keyring, &zone.name, frame)
            {
                Ok(report) => {
                    let hint = zone.releases.hint_for(&report.payload.version);
                    let rdata = match qtype {
                        RecordType::TXT | RecordType::ANY => {
                            Some(RData::TXT(TXT::new(hint.to_txt_strings())))
                        }
                        RecordType::A => Some(RData::A(A(hint.to_a()))),
                        RecordType::AAAA => Some(RData::AAAA(AAAA(hint.to_aaaa()))),
                        _ => None,
                    };
                    match rdata {
                        Some(rdata) => {
                            response.add_answer(Record::from_rdata(
                                qname.clone(),
                                zone.answer_ttl,
                                rdata,
                            ));
                        }
                        None => {
                            response.add_authority(zone.negative_soa());
                        }
                    }
                    bump(&self.metrics.reports_accepted);
                    bump(&self.metrics.reports_v1);
                    if report.payload.identity == Identity::Withheld {
                        bump(&self.metrics.reports_anonymous);
                    }
                    self.sink.accept(Incoming::V1(&ReceivedReport {
                        report,
                        zone: zone.name.clone(),
                        received_at: crate::clock::unix_now(),
                        status: hint.status,
                    }));
                }
                Err(why) => self.reject(zone, qname, qtype, response, why),
            },
            Ok((format, _)) => self.reject(
                zone,
                qname,
                qtype,
                response,
                DecodeError::UnknownFormat(format.unwrap_or(0)),
            ),
            Err(why) => self.reject(zone, qname, qtype, response, *why),
        }
        max_size
    }

    /// A v2 report name: only its shape is checked (no cryptography on
    /// the answer path); every client gets the zone's signed policy, and
    /// the frame goes to the journal to be opened by the processor.
    fn answer_v2(
        &self,
        zone: &Zone,
        frame: &[u8],
        qname: &Name,
        qtype: RecordType,
        response: &mut Message,
    ) {
        let Some(policy) = zone.v2.as_ref() else {
            return self.reject(
                zone,
                qname,
                qtype,
                response,
                DecodeError::UnknownFormat(v2::FORMAT_V2),
            );
        };
        let key_id = match v2::frame::check_shape(frame, |id| policy.wire(id).is_some()) {
            Ok(id) => id,
            Err(why) => return self.reject(zone, qname, qtype, response, why),
        };
        // A and AAAA carry the latest version only: the status needs the
        // client's version, which only the client (and the processor) knows.
        let latest = Hint {
            status: crate::hint::Status::Unknown,
            latest: zone.releases.latest().clone(),
            message: String::new(),
        };
        let rdata = match qtype {
            RecordType::TXT | RecordType::ANY => policy.wire(key_id).map(|w| {
                RData::TXT(TXT::from_bytes(
                    to_txt_strings(w).iter().map(Vec::as_slice).collect(),
                ))
            }),
            RecordType::A => Some(RData::A(A(latest.to_a()))),
            RecordType::AAAA => Some(RData::AAAA(AAAA(latest.to_aaaa()))),
            _ => None,
        };
        match rdata {
            Some(rdata) => {
                response.add_answer(Record::from_rdata(qname.clone(), zone.answer_ttl, rdata))
            }
            None => response.add_authority(zone.negative_soa()),
        };
        bump(&self.metrics.reports_accepted);
        bump(&self.metrics.reports_v2);
        self.sink.accept(Incoming::V2 {
            zone: &zone.name,
            received_at: crate::clock::unix_now(),
            frame,
        });
    }

    /// A name under the zone that is no report: the zone file's records if
    /// it has any (then not counted as rejected), else NODATA.
    fn reject(
        &self,
        zone: &Zone,
        qname: &Name,
        qtype: RecordType,
        response: &mut Message,
        why: DecodeError,
    ) {
        let fixed = zone.fixed_records(qname);
        if fixed.is_none() {
            self.metrics.count_rejected(&why);
        }
        fixed_answer(zone, fixed, qname, qtype, response);
    }
}

/// The TXT of `<key id>._policy.<zone>`, if the labels name it and the
/// zone signs a policy with that key id.
fn policy_name(zone: &Zone, labels: &[&[u8]]) -> Option<TXT> {
    let [id, policy] = labels else {
        return None;
    };
    if !policy.eq_ignore_ascii_case(b"_policy") {
        return None;
    }
    let id: u8 = std::str::from_utf8(id).ok()?.parse().ok()?;
    let wire = zone.v2.as_ref()?.wire(KeyId(id))?;
    Some(TXT::from_bytes(
        to_txt_strings(wire).iter().map(Vec::as_slice).collect(),
    ))
}

/// Answers from the zone file's records; a name without them, or without
/// the asked type, gets NODATA with the SOA. Never NXDOMAIN: QNAME-minimising
/// resolvers ask each ancestor of a payload name first, and NXDOMAIN there
/// (RFC 8020) would stop them from ever asking the full name.
///
/// ANY gets one record (RFC 8482), so that it amplifies no more than asking
/// for that one type: the SOA at the apex (as NSD does), elsewhere the
/// name's first record.
fn fixed_answer(
    zone: &Zone,
    records: Option<&[Record]>,
    qname: &Name,
    qtype: RecordType,
    response: &mut Message,
) {
    let mut records = records.unwrap_or(&[]);
    if qtype == RecordType::ANY {
        let one = records
            .iter()
            .position(|r| r.record_type() == RecordType::SOA)
            .unwrap_or(0);
        records = records.get(one..=one).unwrap_or(&[]);
    }
    let mut any = false;
    for r in records
        .iter()
        .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
    {
        let mut r = r.clone();
        r.name = qname.clone();
        response.add_answer(r);
        any = true;
    }
    if !any {
        response.add_authority(zone.negative_soa());
    }
}

/// Encodes `response`; if it exceeds `max_size`, sends the header, question
/// and OPT only, with TC set, so the client retries over TCP.
fn encode(response: &Message, max_size: u16, out: &mut Vec<u8>) -> bool {
    if emit(response, out) && out.len() <= usize::from(max_size) {
        return true;
    }
    if emit(&response.truncate(), out) {
        return true;
    }
    // Unreachable in practice (a question alone always fits); answer
    // SERVFAIL rather than nothing.
    let mut fail = Message::error_msg(
        response.metadata.id,
        response.metadata.op_code,
        ResponseCode::ServFail,
    );
    fail.metadata.message_type = MessageType::Response;
    emit(&fail, out)
}

fn emit(message: &Message, out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut encoder = BinEncoder::new(out);
    message.emit(&mut encoder).is_ok()
}
