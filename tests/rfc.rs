//! RFC scenario tables: one file per RFC in tests/rfc/, each a list of
//! queries and the response expected, run through the pure responder
//! (`vcheckd::dns::respond`) with a fixed clock, without sockets.
//!
//! The format, one directive a line (`#` starts a comment):
//!
//! ```text
//! SCENARIO <title>                    starts a scenario
//! QUERY <name> <TYPE> [token ...]     the request (built byte by byte)
//! EXPECT [token ...]                  the header, OPT and outcome expected
//! SECTION answer|authority            records expected, in zone-file text
//! <name> <ttl> <class> <TYPE> <rdata>
//! ```
//!
//! QUERY tokens: `tcp`; `id=N`; `rd`, `cd`, `ad`; `opcode=N`; `rcode=N`;
//! `class=IN|CH|NONE|ANY|N`; `edns=SIZE` (adds an OPT); `ednsver=N`; `do`;
//! `ednsflags=0xNNNN` (the OPT's flag bits); `opt=CODE:HEX` (an option);
//! `owner=NAME` (the OPT's owner); `noq` (QDCOUNT=0, no question);
//! `counts=QD,AN,NS,AR` (overrides the header counts); `append=HEX` (bytes
//! after everything else); `rr=N` (appends N copies of a 15-octet A record
//! owned by the root). Names may use `{report}` (a valid report name for
//! version 2.3.1), `{report:VERSION}`, and `{partial}` (the report name's
//! last payload label under the zone, as a QNAME-minimising resolver asks
//! it first).
//!
//! EXPECT tokens: `nothing` (no response at all); `rcode=NAME`; `flags=a,b`
//! (exactly these of qr, aa, tc, rd, ra, ad, cd); `opcode=N`; `qd=`, `an=`,
//! `ns=`, `ar=N`; `edns=SIZE` or `noedns`; `ednsver=N`; `do` / `nodo`;
//! `ede=N` / `noede`; `options=N` (number of EDNS options); `record=report`,
//! `record=none` or `record=rejected`. A response with a question must echo
//! the request's question bytes exactly (letter case included), and must
//! parse with hickory-proto; both are checked for every scenario.

mod common;

use std::collections::HashMap;
use std::path::Path;

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use vcheckd::config::Config;
use vcheckd::dns::{respond, Catalog, NameOutcome, Outcome, Transport};

/// The fixed clock every scenario runs at.
const NOW: i64 = 1_800_000_000;

struct Fixture {
    catalog: Catalog,
    setup: common::Setup,
    names: HashMap<String, String>,
}

impl Fixture {
    fn new() -> Self {
        let setup = common::Setup::new();
        let config = Config::load(&setup.config_path()).expect("config loads");
        let catalog = Catalog::build(&config, 0).expect("catalog builds");
        Fixture {
            catalog,
            setup,
            names: HashMap::new(),
        }
    }

    /// `text` with its placeholders replaced (one name per version, the
    /// same for the whole file, so expectations can name it).
    fn expand(&mut self, text: &str) -> String {
        let mut out = text.to_string();
        while let Some(start) = out.find('{') {
            let end = start + out[start..].find('}').expect("unclosed {");
            let key = out[start + 1..end].to_string();
            let value = match key.split_once(':') {
                Some(("report", version)) => self.report_name(version),
                None if key == "report" => self.report_name("2.3.1"),
                None if key == "partial" => {
                    let full = self.report_name("2.3.1");
                    let labels: Vec<&str> = full.split('.').collect();
                    let zone_at = labels.len() - 4; // vc.example.com. + root
                    format!("{}.{}", labels[zone_at - 1], labels[zone_at..].join("."))
                }
                _ => panic!("unknown placeholder {{{key}}}"),
            };
            out.replace_range(start..=end, &value);
        }
        out
    }

    fn report_name(&mut self, version: &str) -> String {
        let setup = &self.setup;
        self.names
            .entry(version.to_string())
            .or_insert_with(|| setup.name("rfc-cluster", "rfc-node", version))
            .clone()
    }
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(u8::try_from(label.len()).expect("label length"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn rtype(text: &str) -> u16 {
    match text {
        "A" => 1,
        "NS" => 2,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "OPT" => 41,
        "IXFR" => 251,
        "AXFR" => 252,
        "ANY" => 255,
        t => t
            .strip_prefix("TYPE")
            .unwrap_or(t)
            .parse()
            .unwrap_or_else(|_| panic!("unknown type {t}")),
    }
}

fn class(text: &str) -> u16 {
    match text {
        "IN" => 1,
        "CH" => 3,
        "NONE" => 254,
        "ANY" => 255,
        n => n.parse().expect("class"),
    }
}

/// A request built from a QUERY line.
struct Query {
    bytes: Vec<u8>,
    transport: Transport,
    /// The question's bytes, when there is one.
    question: Option<Vec<u8>>,
}

fn build_query(words: &[&str]) -> Query {
    let (name, qtype) = (words[0], rtype(words[1]));
    let mut transport = Transport::Udp;
    let (mut id, mut flags, mut qclass) = (0x1234u16, 0u16, 1u16);
    let mut edns: Option<u16> = None;
    let (mut version, mut ednsflags) = (0u8, 0u16);
    let mut options = Vec::new();
    let mut owner = vec![0u8];
    let mut counts: Option<[u16; 4]> = None;
    let mut append = Vec::new();
    let mut has_question = true;
    for w in &words[2..] {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        match k {
            "tcp" => transport = Transport::Tcp,
            "id" => id = v.parse().expect("id"),
            "rd" => flags |= 0x0100,
            "cd" => flags |= 0x0010,
            "ad" => flags |= 0x0020,
            "opcode" => flags |= v.parse::<u16>().expect("opcode") << 11,
            "rcode" => flags |= v.parse::<u16>().expect("rcode"),
            "class" => qclass = class(v),
            "edns" => edns = Some(v.parse().expect("edns size")),
            "ednsver" => version = v.parse().expect("ednsver"),
            "do" => ednsflags |= 0x8000,
            "ednsflags" => {
                ednsflags |= u16::from_str_radix(v.trim_start_matches("0x"), 16).expect("flags")
            }
            "opt" => {
                let (code, data) = v.split_once(':').expect("opt=CODE:HEX");
                let data = hex(data);
                options.extend_from_slice(&code.parse::<u16>().expect("code").to_be_bytes());
                options.extend_from_slice(&(data.len() as u16).to_be_bytes());
                options.extend_from_slice(&data);
            }
            "owner" => owner = wire_name(v),
            "noq" => has_question = false,
            "counts" => {
                let c: Vec<u16> = v.split(',').map(|n| n.parse().expect("count")).collect();
                counts = Some([c[0], c[1], c[2], c[3]]);
            }
            "append" => append.extend(hex(v)),
            "rr" => {
                let a = hex("000001000100000e1000047f000001");
                for _ in 0..v.parse::<usize>().expect("rr") {
                    append.extend_from_slice(&a);
                }
            }
            _ => panic!("unknown QUERY token {w}"),
        }
    }
    let mut question = None;
    let mut body = Vec::new();
    if has_question {
        let mut q = wire_name(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&qclass.to_be_bytes());
        body.extend_from_slice(&q);
        question = Some(q);
    }
    if let Some(size) = edns {
        body.extend_from_slice(&owner);
        body.extend_from_slice(&41u16.to_be_bytes());
        body.extend_from_slice(&size.to_be_bytes());
        body.extend_from_slice(&[0, version]);
        body.extend_from_slice(&ednsflags.to_be_bytes());
        body.extend_from_slice(&(options.len() as u16).to_be_bytes());
        body.extend_from_slice(&options);
    }
    body.extend_from_slice(&append);
    let counts = counts.unwrap_or([u16::from(has_question), 0, 0, u16::from(edns.is_some())]);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        bytes.extend_from_slice(&c.to_be_bytes());
    }
    bytes.extend_from_slice(&body);
    Query {
        bytes,
        transport,
        question,
    }
}

fn rcode_name(name: &str) -> u16 {
    match name {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        "BADVERS" => 16,
        n => panic!("unknown rcode {n}"),
    }
}

/// One scenario being read, then checked.
#[derive(Default)]
struct Scenario {
    title: String,
    line: usize,
    query: Option<Vec<String>>,
    expect: Vec<String>,
    sections: Vec<(String, Vec<String>)>,
}

fn normalize(record: &str) -> String {
    record.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check(fx: &mut Fixture, s: &Scenario) -> Result<(), String> {
    let query = s.query.as_ref().ok_or("no QUERY")?;
    let words: Vec<&str> = query.iter().map(String::as_str).collect();
    let q = build_query(&words);
    let mut out = Vec::new();
    let outcome = respond(&fx.catalog, &q.bytes, NOW, q.transport, &mut out);
    let expect: HashMap<&str, &str> = s
        .expect
        .iter()
        .map(|w| w.split_once('=').unwrap_or((w.as_str(), "")))
        .collect();
    if expect.contains_key("nothing") {
        return match outcome {
            Outcome::Dropped if out.is_empty() => Ok(()),
            _ => Err(format!("expected no response, got {out:02x?}")),
        };
    }
    let Outcome::Answered(answered) = outcome else {
        return Err("expected a response, got none".into());
    };
    if out.len() < 12 {
        return Err(format!("response shorter than a header: {out:02x?}"));
    }
    let message = Message::from_vec(&out)
        .map_err(|e| format!("response does not parse ({e}): {out:02x?}"))?;
    let field = |i: usize| u16::from_be_bytes([out[i], out[i + 1]]);
    let (id, flags) = (field(0), field(2));
    let counts = [field(4), field(6), field(8), field(10)];
    let request_id = u16::from_be_bytes([q.bytes[0], q.bytes[1]]);
    if id != request_id {
        return Err(format!("id {id:#x}, request's {request_id:#x}"));
    }
    if flags & 0x8000 == 0 {
        return Err("QR not set".into());
    }
    // The question, when echoed, is the request's, byte for byte.
    if counts[0] == 1 {
        let Some(question) = &q.question else {
            return Err("a question appeared in the response".into());
        };
        if out.get(12..12 + question.len()) != Some(question.as_slice()) {
            return Err("the question is not echoed byte for byte".into());
        }
    }
    let opt: Option<&Edns> = message.edns.as_ref();
    let rcode = (flags & 0x0f) | opt.map_or(0, |e| u16::from(e.rcode_high()) << 4);
    if answered.rcode.code() != rcode {
        return Err(format!(
            "outcome says {:?}, response says {rcode}",
            answered.rcode
        ));
    }
    for (k, v) in &expect {
        let ok = match *k {
            "rcode" => rcode == rcode_name(v),
            "flags" => {
                let names = [
                    (0x8000, "qr"),
                    (0x0400, "aa"),
                    (0x0200, "tc"),
                    (0x0100, "rd"),
                    (0x0080, "ra"),
                    (0x0020, "ad"),
                    (0x0010, "cd"),
                ];
                let want: Vec<&str> = v.split(',').filter(|f| !f.is_empty()).collect();
                let got: Vec<&str> = names
                    .iter()
                    .filter(|(bit, _)| flags & bit != 0)
                    .map(|(_, n)| *n)
                    .collect();
                if flags & 0x0040 != 0 {
                    return Err("the Z bit is set".into());
                }
                let mut want = want.clone();
                want.sort_unstable();
                let mut sorted = got.clone();
                sorted.sort_unstable();
                if want != sorted {
                    return Err(format!("flags {got:?}, expected {v}"));
                }
                true
            }
            "opcode" => (flags >> 11) & 0x0f == v.parse::<u16>().map_err(|e| e.to_string())?,
            "qd" => counts[0] == v.parse::<u16>().map_err(|e| e.to_string())?,
            "an" => counts[1] == v.parse::<u16>().map_err(|e| e.to_string())?,
            "ns" => counts[2] == v.parse::<u16>().map_err(|e| e.to_string())?,
            "ar" => counts[3] == v.parse::<u16>().map_err(|e| e.to_string())?,
            "edns" => opt.is_some_and(|e| e.max_payload().to_string() == *v),
            "noedns" => opt.is_none(),
            "ednsver" => opt.is_some_and(|e| e.version().to_string() == *v),
            "do" => opt.is_some_and(|e| e.flags().dnssec_ok),
            "nodo" => opt.is_some_and(|e| !e.flags().dnssec_ok),
            "ede" => match opt.and_then(|e| e.option(EdnsCode::from(15))) {
                Some(EdnsOption::Unknown(_, data)) => {
                    data.len() >= 2 && u16::from_be_bytes([data[0], data[1]]).to_string() == *v
                }
                _ => false,
            },
            "noede" => opt.is_none_or(|e| e.option(EdnsCode::from(15)).is_none()),
            "options" => opt.is_some_and(|e| e.options().as_ref().len().to_string() == *v),
            "record" => match (&answered.name, *v) {
                (NameOutcome::Report(r), "report") => {
                    if r.received_at != NOW {
                        return Err(format!("report stamped {}, not {NOW}", r.received_at));
                    }
                    true
                }
                (NameOutcome::Other, "none") | (NameOutcome::Rejected(_), "rejected") => true,
                _ => false,
            },
            other => return Err(format!("unknown EXPECT token {other}")),
        };
        if !ok {
            return Err(format!(
                "{k}={v} does not hold: flags {flags:#06x}, counts {counts:?}, opt {opt:?}, \
                 outcome {:?}",
                answered.name
            ));
        }
    }
    for (section, want) in &s.sections {
        let records = match section.as_str() {
            "answer" => &message.answers,
            "authority" => &message.authorities,
            other => return Err(format!("unknown SECTION {other}")),
        };
        let got: Vec<String> = records.iter().map(|r| normalize(&r.to_string())).collect();
        let want: Vec<String> = want.iter().map(|w| normalize(&fx.expand(w))).collect();
        if got != want {
            return Err(format!(
                "{section} section:\n  got  {got:#?}\n  want {want:#?}"
            ));
        }
    }
    Ok(())
}

fn run(file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rfc")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("table file");
    let mut fx = Fixture::new();
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (directive, rest) = line.split_once(' ').unwrap_or((line, ""));
        match directive {
            "SCENARIO" => {
                scenarios.push(Scenario {
                    title: rest.to_string(),
                    line: n + 1,
                    ..Scenario::default()
                });
                section = None;
            }
            _ => {
                let s = scenarios
                    .last_mut()
                    .unwrap_or_else(|| panic!("{file}:{}: before any SCENARIO", n + 1));
                match directive {
                    "QUERY" => {
                        let expanded = fx.expand(rest);
                        s.query = Some(expanded.split_whitespace().map(String::from).collect());
                    }
                    "EXPECT" => s.expect.extend(rest.split_whitespace().map(String::from)),
                    "SECTION" => {
                        s.sections.push((rest.to_string(), Vec::new()));
                        section = Some(rest.to_string());
                    }
                    _ if section.is_some() => {
                        if let Some((_, lines)) = s.sections.last_mut() {
                            lines.push(line.to_string());
                        }
                    }
                    _ => panic!("{file}:{}: unknown directive {directive}", n + 1),
                }
            }
        }
    }
    assert!(!scenarios.is_empty(), "{file}: no scenarios");
    let failures: Vec<String> = scenarios
        .iter()
        .filter_map(|s| {
            check(&mut fx, s)
                .err()
                .map(|e| format!("{file}:{} {}: {e}", s.line, s.title))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios fail:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
    eprintln!("{file}: {} scenarios pass", scenarios.len());
}

#[test]
fn rfc1035_messages_and_queries() {
    run("rfc1035.txt");
}

#[test]
fn rfc2308_negative_answers() {
    run("rfc2308.txt");
}

#[test]
fn rfc6891_edns() {
    run("rfc6891.txt");
}

#[test]
fn rfc7766_tcp() {
    run("rfc7766.txt");
}

#[test]
fn rfc8020_nxdomain_means_nothing_below() {
    run("rfc8020.txt");
}

#[test]
fn rfc8482_minimal_any() {
    run("rfc8482.txt");
}

#[test]
fn rfc8906_always_answer() {
    run("rfc8906.txt");
}

/// The runner itself fails on a wrong expectation, so a table cannot pass
/// by checking nothing.
#[test]
fn a_wrong_expectation_fails() {
    let mut fx = Fixture::new();
    let s = Scenario {
        title: "wrong on purpose".into(),
        query: Some(vec!["vc.example.com".into(), "SOA".into()]),
        expect: vec!["rcode=REFUSED".into()],
        ..Scenario::default()
    };
    assert!(check(&mut fx, &s).is_err());
    let s = Scenario {
        title: "wrong record".into(),
        query: Some(vec!["ns1.vc.example.com".into(), "A".into()]),
        expect: vec!["rcode=NOERROR".into()],
        sections: vec![(
            "answer".into(),
            vec!["ns1.vc.example.com. 300 IN A 127.0.0.2".into()],
        )],
        ..Scenario::default()
    };
    assert!(check(&mut fx, &s).is_err());
}
