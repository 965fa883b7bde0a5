//! Reading a request: the header, the question and the OPT record, and
//! nothing else.
//!
//! An authoritative answer needs only these, so the work per request is
//! bounded by one name (at most 255 octets) and one OPT record, whatever the
//! counts in the header claim: a request with records in the answer or
//! authority section, or more than one record in the additional section, is
//! refused with FORMERR before any of them is read, as NSD 4.6 does.
//! Nothing here allocates.

/// The largest number of labels a name can have (255 octets on the wire).
pub(crate) const MAX_LABELS: usize = 127;

/// Resource record types and classes the reader and the responder name.
pub(crate) mod code {
    pub const A: u16 = 1;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
    pub const CLASS_IN: u16 = 1;
    pub const CLASS_NONE: u16 = 254;
    pub const CLASS_ANY: u16 = 255;
}

/// Why a request gets no regular answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not a DNS request: shorter than a header, or a response (answering
    /// responses invites reflection loops). Nothing is sent.
    Drop,
    /// Malformed: FORMERR, header only (NSD sends neither question nor OPT,
    /// since neither could be trusted).
    FormErr,
    /// An opcode other than QUERY: NOTIMP, header only.
    NotImp,
}

/// The parts of a request an answer needs, borrowed from its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub id: u16,
    /// The second header octet's RD bit and the third's CD bit, to copy.
    pub rd: bool,
    pub cd: bool,
    pub question: Option<Question<'a>>,
    pub edns: Option<Edns>,
}

/// The question, with its bytes as received (so that the answer echoes the
/// letter case a resolver chose, RFC 5452 / "0x20").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Question<'a> {
    /// Name, type and class, as received.
    pub wire: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    /// Offset in `wire` where each label's length octet is, leaf first.
    label_at: [u8; MAX_LABELS],
    label_count: u8,
}

impl<'a> Question<'a> {
    /// The name's labels, leaf first, without their length octets.
    pub fn label(&self, i: usize) -> &'a [u8] {
        let at = usize::from(self.label_at[i]);
        let len = usize::from(self.wire[at]);
        &self.wire[at + 1..at + 1 + len]
    }

    pub fn label_count(&self) -> usize {
        usize::from(self.label_count)
    }

    /// Offset in `wire` of the name made of the last `n` labels (the root,
    /// for 0): where a compression pointer to that suffix points.
    pub fn suffix_at(&self, n: usize) -> usize {
        let count = self.label_count();
        if n >= count {
            return 0;
        }
        if n == 0 {
            return self.name().len() - 1;
        }
        usize::from(self.label_at[count - n])
    }

    /// The name in wire form, as received.
    pub fn name(&self) -> &'a [u8] {
        &self.wire[..self.wire.len() - 4]
    }
}

/// What the request's OPT record says (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

const HEADER: usize = 12;

/// Reads `bytes` as a request.
pub(crate) fn parse(bytes: &[u8]) -> Result<Request<'_>, Reject> {
    let header: &[u8; HEADER] = bytes.first_chunk().ok_or(Reject::Drop)?;
    if header[2] & 0x80 != 0 {
        return Err(Reject::Drop);
    }
    let opcode = (header[2] >> 3) & 0x0f;
    if opcode != 0 {
        // NSD answers NOTIMP without reading the body, so a body that
        // does not parse gets NOTIMP too.
        return Err(Reject::NotImp);
    }
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let (qdcount, ancount, nscount, arcount) = (count(4), count(6), count(8), count(10));
    // A query carries no rcode and no records but its question and OPT.
    if header[3] & 0x0f != 0 || ancount != 0 || nscount != 0 || qdcount > 1 || arcount > 1 {
        return Err(Reject::FormErr);
    }
    let mut at = HEADER;
    let question = if qdcount == 1 {
        let q = read_question(bytes, at)?;
        at += q.wire.len();
        Some(q)
    } else {
        None
    };
    let edns = if arcount == 1 {
        Some(read_opt(bytes, at)?)
    } else {
        None
    };
    // QDCOUNT=0 is answered only with an OPT (a cookie or EDNS probe,
    // RFC 7873 5.4): NSD does so, and without OPT there is nothing to say.
    if question.is_none() && edns.is_none() {
        return Err(Reject::FormErr);
    }
    Ok(Request {
        id: count(0),
        rd: header[2] & 0x01 != 0,
        cd: header[3] & 0x10 != 0,
        question,
        edns,
    })
}

fn read_question(bytes: &[u8], start: usize) -> Result<Question<'_>, Reject> {
    let mut label_at = [0u8; MAX_LABELS];
    let mut label_count = 0usize;
    let mut at = start;
    loop {
        let len = usize::from(*bytes.get(at).ok_or(Reject::FormErr)?);
        if len == 0 {
            at += 1;
            break;
        }
        // A compression pointer in the question can only point into the
        // header (nothing else precedes it), and the extended label types
        // (0x40, 0x80) are obsolete: both are FORMERR, as in NSD.
        if len > 63 || label_count == MAX_LABELS {
            return Err(Reject::FormErr);
        }
        // `at - start` < 255 is checked below before it could overflow u8.
        label_at[label_count] = u8::try_from(at - start).map_err(|_| Reject::FormErr)?;
        label_count += 1;
        at += 1 + len;
        if at - start >= 255 {
            return Err(Reject::FormErr);
        }
    }
    let end = at + 4;
    let wire = bytes.get(start..end).ok_or(Reject::FormErr)?;
    let field = |i: usize| u16::from_be_bytes([wire[i], wire[i + 1]]);
    let name_len = wire.len() - 4;
    Ok(Question {
        wire,
        qtype: field(name_len),
        qclass: field(name_len + 2),
        label_at,
        label_count: u8::try_from(label_count).map_err(|_| Reject::FormErr)?,
    })
}

/// Reads the one additional record, which must be an OPT owned by the root.
/// Its options are checked for framing only: none changes our answer, so a
/// malformed one (say, ECS with a bad prefix) is ignored, as NSD does.
fn read_opt(bytes: &[u8], at: usize) -> Result<Edns, Reject> {
    let fixed: &[u8; 11] = bytes
        .get(at..)
        .and_then(|rest| rest.first_chunk())
        .ok_or(Reject::FormErr)?;
    let field = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
    if fixed[0] != 0 || field(1) != code::OPT {
        return Err(Reject::FormErr);
    }
    let rdlen = usize::from(field(9));
    let mut options = bytes.get(at + 11..at + 11 + rdlen).ok_or(Reject::FormErr)?;
    while !options.is_empty() {
        let len = match options {
            [_, _, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => return Err(Reject::FormErr),
        };
        options = options.get(4 + len..).ok_or(Reject::FormErr)?;
    }
    Ok(Edns {
        payload: field(3),
        version: fixed[6],
        dnssec_ok: fixed[7] & 0x80 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], counts: [u16; 4], rest: &[u8]) -> Vec<u8> {
        let mut b = vec![0x12, 0x34, 0x01, 0x00];
        for c in counts {
            b.extend_from_slice(&c.to_be_bytes());
        }
        b.extend_from_slice(name);
        b.extend_from_slice(&[0, 16, 0, 1]);
        b.extend_from_slice(rest);
        b
    }

    const NAME: &[u8] = b"\x01X\x02vc\x07example\x03com\x00";

    #[test]
    fn reads_labels_and_suffixes() {
        let bytes = query(NAME, [1, 0, 0, 0], &[]);
        let r = parse(&bytes).unwrap();
        let q = r.question.unwrap();
        assert!(r.rd && !r.cd);
        assert_eq!(r.id, 0x1234);
        assert_eq!(q.label_count(), 4);
        assert_eq!(q.label(0), b"X");
        assert_eq!(q.label(3), b"com");
        assert_eq!(&q.name()[q.suffix_at(2)..], b"\x07example\x03com\x00");
        assert_eq!(&q.name()[q.suffix_at(0)..], b"\x00");
        assert_eq!(q.suffix_at(4), 0);
        assert_eq!((q.qtype, q.qclass), (16, 1));
    }

    #[test]
    fn bounded_and_strict() {
        // Pointer into the header, extended label type, truncated name.
        for name in [&b"\x01x\xc0\x02"[..], b"\x41x\x00", b"\x01x"] {
            let bytes = query(name, [1, 0, 0, 0], &[]);
            assert_eq!(parse(&bytes).unwrap_err(), Reject::FormErr);
        }
        // 128 one-octet labels: more than 255 octets.
        let long: Vec<u8> = (0..128).flat_map(|_| [1u8, b'a']).chain([0]).collect();
        assert_eq!(
            parse(&query(&long, [1, 0, 0, 0], &[])).unwrap_err(),
            Reject::FormErr
        );
        // Exactly 255 octets is fine.
        let max: Vec<u8> = (0..127).flat_map(|_| [1u8, b'a']).chain([0]).collect();
        assert_eq!(max.len(), 255);
        assert_eq!(
            parse(&query(&max, [1, 0, 0, 0], &[]))
                .unwrap()
                .question
                .unwrap()
                .label_count(),
            127
        );
        assert_eq!(parse(&[0; 11]).unwrap_err(), Reject::Drop);
    }
}
