//! The zones a server answers for, built from the configuration.
//!
//! A `Catalog` is immutable: a reload (SIGHUP) builds a new one and swaps it
//! in whole, so a query never sees half of an old and half of a new zone.

use std::collections::HashMap;
use std::path::Path;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use hickory_proto::serialize::txt::Parser;
use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::hint::{Hint, Releases, ReleasesError};
use crate::protocol::name::decode_labels;
use crate::protocol::{DecodeError, Key, KeyError, Keyring, Report, ZoneName};

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("zone {zone}: invalid name")]
    Name { zone: String },
    #[error("zone {zone}: zone file does not parse: {message}")]
    ZoneFile { zone: String, message: String },
    #[error("zone {zone}: zone file has no {what} at the apex")]
    Missing { zone: String, what: &'static str },
    #[error("zone {zone}: zone file's origin is {found}")]
    Origin { zone: String, found: String },
    #[error("zone {zone}")]
    Key {
        zone: String,
        #[source]
        source: KeyError,
    },
    #[error("zone {zone}: no keys configured")]
    NoKeys { zone: String },
    #[error("zone {zone}: releases")]
    Releases {
        zone: String,
        #[source]
        source: ReleasesError,
    },
    #[error("zone {0} is configured twice")]
    Duplicate(String),
}

/// One record without its owner, as sent: TYPE, CLASS, TTL, RDLENGTH and
/// RDATA. Encoded once when the zone is loaded; the responder writes the
/// owner as a pointer into the question. In SOA and NS data, the part of a
/// name it shares with the zone's origin is a pointer too: every question
/// under the zone ends in the origin's labels, so the pointer's target (in
/// the question) is known only per query, and [`Encoded::pointers`] says
/// where to write it. The answers are then as small as NSD's.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub rtype: u16,
    pub bytes: Box<[u8]>,
    /// Where in `bytes` a two-octet pointer goes, and to the question's
    /// suffix of how many labels.
    pub pointers: Box<[(u16, u8)]>,
}

/// The zone file's records at one name.
#[derive(Debug)]
pub(crate) struct FixedName {
    pub records: Vec<Encoded>,
    /// The one record an ANY query gets (RFC 8482): the SOA at the apex,
    /// as NSD does, elsewhere the name's first record.
    pub any: usize,
}

/// What a payload name under a zone decodes to: the answer's data and the
/// report to record. Protocol v1 decodes and authenticates the report here
/// (its answer depends on the reported version); a later protocol adds its
/// variant beside it.
#[derive(Debug)]
pub(crate) enum ReportAnswer {
    V1 { report: Report, hint: Hint },
}

/// One served zone.
#[derive(Debug)]
pub struct Zone {
    pub name: ZoneName,
    /// Labels of the origin, lower case, root excluded.
    labels: Vec<Vec<u8>>,
    /// The SOA with the negative TTL (RFC 2308: the lesser of the SOA's
    /// TTL and its minimum), for the authority section of negative answers.
    negative_soa: Encoded,
    /// Fixed names from the zone file, by their wire form in lower case.
    fixed: HashMap<Box<[u8]>, FixedName>,
    pub keyring: Keyring,
    pub releases: Releases,
    pub answer_ttl: u32,
}

impl Zone {
    pub fn label_count(&self) -> usize {
        self.labels.len()
    }

    pub(crate) fn negative_soa(&self) -> &Encoded {
        &self.negative_soa
    }

    /// The zone file's records at the name whose wire form, in lower case,
    /// is `lower_wire`, or `None` if the name has none.
    pub(crate) fn fixed(&self, lower_wire: &[u8]) -> Option<&FixedName> {
        self.fixed.get(lower_wire)
    }

    /// Decodes the payload labels (leaf first, as received) of a name under
    /// this zone into the report and what to answer.
    pub(crate) fn report(&self, labels: &[&[u8]]) -> Result<ReportAnswer, DecodeError> {
        let report = decode_labels(&self.keyring, &self.name, labels)?;
        let hint = self.releases.hint_for(&report.payload.version);
        Ok(ReportAnswer::V1 { report, hint })
    }

    /// Whether `labels` (a query name's labels, leaf first) end in this zone.
    fn contains<'l>(&self, labels: impl ExactSizeIterator<Item = &'l [u8]>) -> bool {
        let skip = match labels.len().checked_sub(self.labels.len()) {
            Some(n) => n,
            None => return false,
        };
        labels
            .skip(skip)
            .zip(&self.labels)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    /// Longest origin first, so the first match is the most specific zone.
    zones: Vec<Zone>,
}

impl Catalog {
    pub fn build(config: &Config) -> Result<Self, CatalogError> {
        let mut zones: Vec<Zone> = Vec::with_capacity(config.zones.len());
        for zc in &config.zones {
            let zone_err = || zc.name.clone();
            let name =
                ZoneName::new(&zc.name).map_err(|_| CatalogError::Name { zone: zone_err() })?;
            if zones.iter().any(|z| z.name == name) {
                return Err(CatalogError::Duplicate(name.to_string()));
            }
            let text = config.zone_text(zc)?;
            let keys = zc
                .keys
                .iter()
                .map(|p| Key::load(&config.resolve(p)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| CatalogError::Key {
                    zone: zone_err(),
                    source,
                })?;
            if keys.is_empty() {
                return Err(CatalogError::NoKeys { zone: zone_err() });
            }
            let keyring = Keyring::new(&keys).map_err(|source| CatalogError::Key {
                zone: zone_err(),
                source,
            })?;
            let releases =
                Releases::try_from(&zc.releases).map_err(|source| CatalogError::Releases {
                    zone: zone_err(),
                    source,
                })?;
            zones.push(parse_zone(
                name,
                &text,
                &config.resolve(&zc.file),
                keyring,
                releases,
                zc.answer_ttl,
            )?);
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.labels.len()));
        Ok(Catalog { zones })
    }

    /// The most specific zone that contains the name with these labels
    /// (leaf first).
    pub fn find<'l, I>(&self, labels: I) -> Option<&Zone>
    where
        I: ExactSizeIterator<Item = &'l [u8]> + Clone,
    {
        self.zones.iter().find(|z| z.contains(labels.clone()))
    }

    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }
}

fn parse_zone(
    name: ZoneName,
    text: &str,
    path: &Path,
    keyring: Keyring,
    releases: Releases,
    answer_ttl: u32,
) -> Result<Zone, CatalogError> {
    let zone = || name.to_string();
    let origin =
        Name::from_ascii(format!("{name}.")).map_err(|_| CatalogError::Name { zone: zone() })?;
    let (found, rrsets) = Parser::new(text, Some(path.to_path_buf()), Some(origin.clone()))
        .parse()
        .map_err(|e| CatalogError::ZoneFile {
            zone: zone(),
            message: e.to_string(),
        })?;
    if found != origin {
        return Err(CatalogError::Origin {
            zone: zone(),
            found: found.to_string(),
        });
    }
    let mut records: HashMap<LowerName, Vec<Record>> = HashMap::new();
    for (key, set) in &rrsets {
        let owner = Name::from(&key.name);
        if !origin.zone_of(&owner) {
            return Err(CatalogError::ZoneFile {
                zone: zone(),
                message: format!("{owner} is outside the zone"),
            });
        }
        records
            .entry(key.name.clone())
            .or_default()
            .extend(set.records_without_rrsigs().cloned());
    }
    let apex = LowerName::new(&origin);
    let at_apex = |t: RecordType| {
        records
            .get(&apex)
            .and_then(|rs| rs.iter().find(|r| r.record_type() == t))
            .cloned()
    };
    let mut soa = at_apex(RecordType::SOA).ok_or(CatalogError::Missing {
        zone: zone(),
        what: "SOA",
    })?;
    at_apex(RecordType::NS).ok_or(CatalogError::Missing {
        zone: zone(),
        what: "NS",
    })?;
    if let RData::SOA(s) = &soa.data {
        soa.ttl = s.minimum.min(soa.ttl);
    }
    let zone_text = zone();
    let encode_err = |e: hickory_proto::ProtoError| CatalogError::ZoneFile {
        zone: zone_text.clone(),
        message: e.to_string(),
    };
    let origin_labels: Vec<Vec<u8>> = origin.iter().map(|l| l.to_ascii_lowercase()).collect();
    let mut fixed = HashMap::with_capacity(records.len());
    for (owner, set) in &records {
        let mut encoded = Vec::with_capacity(set.len());
        for r in set {
            encoded.push(encode_record(r, &origin_labels).map_err(encode_err)?);
        }
        let any = set
            .iter()
            .position(|r| r.record_type() == RecordType::SOA)
            .unwrap_or(0);
        let wire = Name::from(owner)
            .to_lowercase()
            .to_bytes()
            .map_err(encode_err)?;
        fixed.insert(
            wire.into_boxed_slice(),
            FixedName {
                records: encoded,
                any,
            },
        );
    }
    let negative_soa = encode_record(&soa, &origin_labels).map_err(encode_err)?;
    Ok(Zone {
        labels: origin_labels,
        name,
        negative_soa,
        fixed,
        keyring,
        releases,
        answer_ttl,
    })
}

/// `record` without its owner. The names in SOA and NS data are
/// compressed against the zone's origin (`origin`: its labels, lower case,
/// leaf first); other types' names are written whole.
fn encode_record(
    record: &Record,
    origin: &[Vec<u8>],
) -> Result<Encoded, hickory_proto::ProtoError> {
    let mut rdata = Vec::with_capacity(64);
    let mut pointers = Vec::new();
    match &record.data {
        RData::SOA(soa) => {
            name_template(&soa.mname, origin, &mut rdata, &mut pointers);
            name_template(&soa.rname, origin, &mut rdata, &mut pointers);
            rdata.extend_from_slice(&soa.serial.to_be_bytes());
            for v in [soa.refresh, soa.retry, soa.expire] {
                rdata.extend_from_slice(&v.to_be_bytes());
            }
            rdata.extend_from_slice(&soa.minimum.to_be_bytes());
        }
        RData::NS(ns) => name_template(&ns.0, origin, &mut rdata, &mut pointers),
        data => {
            let mut encoder = BinEncoder::new(&mut rdata);
            encoder.set_name_encoding(NameEncoding::Uncompressed);
            data.emit(&mut encoder)?;
        }
    }
    let rtype = u16::from(record.record_type());
    let rdlen = u16::try_from(rdata.len())
        .map_err(|_| hickory_proto::ProtoError::from("record data too long"))?;
    let mut bytes = Vec::with_capacity(10 + rdata.len());
    bytes.extend_from_slice(&rtype.to_be_bytes());
    bytes.extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
    bytes.extend_from_slice(&record.ttl.to_be_bytes());
    bytes.extend_from_slice(&rdlen.to_be_bytes());
    let pointers = pointers
        .into_iter()
        .map(|(at, labels)| (at + 10, labels))
        .collect();
    bytes.extend_from_slice(&rdata);
    Ok(Encoded {
        rtype,
        bytes: bytes.into_boxed_slice(),
        pointers,
    })
}

/// Writes `name` into `rdata`: the labels it does not share with `origin`,
/// then a pointer placeholder for the shared ones (recorded in
/// `pointers`), or the root if it shares none.
fn name_template(
    name: &Name,
    origin: &[Vec<u8>],
    rdata: &mut Vec<u8>,
    pointers: &mut Vec<(u16, u8)>,
) {
    let labels: Vec<&[u8]> = name.iter().collect();
    let shared = labels
        .iter()
        .rev()
        .zip(origin.iter().rev())
        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
        .count();
    for label in &labels[..labels.len() - shared] {
        // Labels of a parsed name are at most 63 octets.
        rdata.push(label.len() as u8);
        rdata.extend_from_slice(label);
    }
    if shared == 0 {
        rdata.push(0);
    } else {
        // A name is at most 255 octets, so offsets within SOA or NS data
        // stay below 600, and a name has at most 127 labels.
        pointers.push((rdata.len() as u16, shared as u8));
        rdata.extend_from_slice(&[0xc0, 0]);
    }
}
