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
use crate::hint::{CompactError, Hint, Releases, ReleasesError, Status};
use crate::protocol::name::{labels_to_frame_in, MAX_FRAME_LEN};
use crate::protocol::v2::effort::Effort;
use crate::protocol::v2::policy::{self as v2policy, to_txt_strings, AdvisoryUrl};
use crate::protocol::v2::{self, PrivateKey, PrivateKeyring, RatchetStore, ServedPolicy};
use crate::protocol::{frame, DecodeError, Key, KeyError, KeyId, Keyring, Report, ZoneName};
use crate::report::Opener;

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
    #[error("zone {zone}: no keys configured: list v2 private_keys (make them with `vcheckd keygen --private FILE --public FILE`), or v1 keys with accept_v1 = true")]
    NoKeys { zone: String },
    #[error("zone {zone}: accept_v1 is on but `keys` lists no v1 key: list the v1 keys, or set accept_v1 = false")]
    NoV1Keys { zone: String },
    #[error("zone {zone}: the release policy cannot be compiled")]
    Policy {
        zone: String,
        #[source]
        source: CompactError,
    },
    #[error("zone {zone}: releases")]
    Releases {
        zone: String,
        #[source]
        source: ReleasesError,
    },
    #[error("zone {0} is configured twice")]
    Duplicate(String),
    #[error(transparent)]
    Serial(#[from] super::serials::SerialError),
    #[error("zone {zone}: {message}")]
    Setting { zone: String, message: String },
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
#[derive(Debug, Clone)]
pub(crate) struct FixedName {
    pub records: Vec<Encoded>,
    /// The one record an ANY query gets (RFC 8482): the SOA at the apex,
    /// as NSD does, elsewhere the name's first record.
    pub any: usize,
}

/// What a payload name under a zone decodes to: the answer's data and the
/// report to record. Protocol v1 decodes and authenticates the report here
/// (its answer depends on the reported version). Protocol v2 is only
/// checked for shape: its answer is the zone's pre-encoded policy, and the
/// frame (in the caller's buffer) goes to the journal still sealed.
#[derive(Debug)]
pub(crate) enum ReportAnswer<'z> {
    V1 {
        report: Report,
        hint: Hint,
    },
    V2 {
        answers: &'z V2Answers,
        key_id: KeyId,
        /// The frame's length in the caller's buffer, or why it is not
        /// recorded though answered: sealed to an epoch's key this server
        /// does not accept now. The answer (the policy, with the current
        /// key) tells the client where to seal its next report.
        record: Result<usize, DecodeError>,
    },
    /// `<key id>._policy.<zone>`: the policy without a report.
    Policy {
        txt: &'z Encoded,
    },
}

/// A v2 zone's answers, encoded when the policy is signed.
#[derive(Debug, Clone)]
pub(crate) struct V2Answers {
    pub policy: ServedPolicy,
    /// The policy's TXT record, per key id.
    pub txt: Box<[(KeyId, Encoded)]>,
    /// The latest version, as A and AAAA carry it (status 0 in AAAA: the
    /// status is the client's to compute).
    pub a: Encoded,
    pub aaaa: Encoded,
}

impl V2Answers {
    fn new(policy: ServedPolicy, ttl: u32) -> Result<Self, hickory_proto::ProtoError> {
        use hickory_proto::rr::rdata::{A, AAAA, TXT};
        let latest = Hint {
            status: Status::Unknown,
            latest: policy.content.releases.latest().clone(),
            message: String::new(),
        };
        let root = Name::root();
        let record = |data: RData| encode_record(&Record::from_rdata(root.clone(), ttl, data), &[]);
        let txt = policy
            .keys
            .iter()
            .filter_map(|k| Some((k.id, policy.wire(k.id)?)))
            .map(|(id, wire)| {
                let strings = to_txt_strings(wire);
                let data = RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()));
                Ok((id, record(data)?))
            })
            .collect::<Result<_, hickory_proto::ProtoError>>()?;
        Ok(V2Answers {
            a: record(RData::A(A(latest.to_a())))?,
            aaaa: record(RData::AAAA(AAAA(latest.to_aaaa())))?,
            txt,
            policy,
        })
    }

    pub fn txt(&self, id: KeyId) -> Option<&Encoded> {
        self.txt.iter().find(|(k, _)| *k == id).map(|(_, e)| e)
    }
}

/// One served zone.
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: ZoneName,
    /// Labels of the origin, lower case, root excluded.
    labels: Vec<Vec<u8>>,
    /// The SOA with the negative TTL (RFC 2308: the lesser of the SOA's
    /// TTL and its minimum), for the authority section of negative answers.
    negative_soa: Encoded,
    /// Fixed names from the zone file, by their wire form in lower case.
    fixed: HashMap<Box<[u8]>, FixedName>,
    /// The zone file's SOA serial: the v2 policy's serial.
    serial: u32,
    /// Protocol v1 keys; empty when v1 is not accepted.
    pub keyring: Keyring,
    pub accept_v1: bool,
    /// Protocol v2: the signed policy and its answers, if configured.
    v2: Option<V2Answers>,
    pub releases: Releases,
    pub answer_ttl: u32,
}

impl Zone {
    /// Takes a newly signed policy and encodes its answers.
    fn set_policy(&mut self, policy: ServedPolicy) -> Result<(), CatalogError> {
        let answers =
            V2Answers::new(policy, self.answer_ttl).map_err(|e| CatalogError::ZoneFile {
                zone: self.name.to_string(),
                message: format!("the policy answer does not encode: {e}"),
            })?;
        self.v2 = Some(answers);
        Ok(())
    }

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

    /// The zone's protocol v2 policy, if it serves v2.
    pub fn policy(&self) -> Option<&ServedPolicy> {
        self.v2.as_ref().map(|v| &v.policy)
    }

    /// Decodes the payload labels (leaf first, as received) of a name under
    /// this zone into the report and what to answer. The frame is decoded
    /// into `frame` (no allocation on the answer path).
    pub(crate) fn report(
        &self,
        labels: &[&[u8]],
        frame: &mut [u8; MAX_FRAME_LEN],
        now: u64,
    ) -> Result<ReportAnswer<'_>, DecodeError> {
        if let Some(txt) = self.policy_name(labels) {
            return Ok(ReportAnswer::Policy { txt });
        }
        let len = labels_to_frame_in(labels, frame)?;
        let frame = &frame[..len];
        match (frame.first(), &self.v2) {
            (Some(&v2::FORMAT_V2), Some(answers)) => {
                let header = v2::frame::check_shape(frame)?;
                if answers.txt(header.key_id).is_none() {
                    return Err(DecodeError::UnknownKey(header.key_id.0));
                }
                let held = answers
                    .policy
                    .keys
                    .epoch_key(header.key_id, header.epoch)
                    .is_some();
                let record = if held && header.epoch.accepted_at(now) {
                    Ok(len)
                } else {
                    Err(DecodeError::UnknownEpoch(header.epoch.0))
                };
                Ok(ReportAnswer::V2 {
                    answers,
                    key_id: header.key_id,
                    record,
                })
            }
            (Some(&format), _) if !self.accept_v1 => Err(DecodeError::UnknownFormat(format)),
            _ => {
                let report = frame::open(&self.keyring, &self.name, frame)?;
                let hint = self.releases.hint_for(&report.payload.version);
                Ok(ReportAnswer::V1 { report, hint })
            }
        }
    }

    /// The TXT of `<key id>._policy.<zone>`, if `labels` name it and the
    /// zone signs a policy with that key id.
    fn policy_name(&self, labels: &[&[u8]]) -> Option<&Encoded> {
        let [id, policy] = labels else {
            return None;
        };
        if !policy.eq_ignore_ascii_case(b"_policy") {
            return None;
        }
        let id: u8 = std::str::from_utf8(id).ok()?.parse().ok()?;
        self.v2.as_ref()?.txt(KeyId(id))
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

#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Longest origin first, so the first match is the most specific zone.
    zones: Vec<Zone>,
    /// Where this server's advanced ratchet seeds are kept.
    ratchets: Option<std::path::PathBuf>,
}

impl Catalog {
    /// Builds the zones of `config`, signing v2 policies as of `now`
    /// (unix seconds).
    pub fn build(config: &Config, now: u64) -> Result<Self, CatalogError> {
        Self::build_in(config, now, Some(config.state_dir()))
    }

    /// As [`Catalog::build`], without reading or writing the server's
    /// state folder (its advanced ratchet seeds, the serials it signed):
    /// for commands that only look (`policy show`) and for fuzzing. Keys
    /// are derived from the key files alone.
    pub fn build_stateless(config: &Config, now: u64) -> Result<Self, CatalogError> {
        Self::build_in(config, now, None)
    }

    fn build_in(
        config: &Config,
        now: u64,
        state: Option<std::path::PathBuf>,
    ) -> Result<Self, CatalogError> {
        let mut zones: Vec<Zone> = Vec::with_capacity(config.zones.len());
        let mut signed = Vec::new();
        for zc in &config.zones {
            let zone_err = || zc.name.clone();
            let name =
                ZoneName::new(&zc.name).map_err(|_| CatalogError::Name { zone: zone_err() })?;
            if zones.iter().any(|z| z.name == name) {
                return Err(CatalogError::Duplicate(name.to_string()));
            }
            let text = config.zone_text(zc)?;
            let key_err = |source| CatalogError::Key {
                zone: zone_err(),
                source,
            };
            let v1_keys = if zc.accept_v1 {
                zc.keys
                    .iter()
                    .map(|p| Key::load(&config.resolve(p)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(key_err)?
            } else {
                Vec::new()
            };
            let v2_keys = zc
                .private_keys
                .iter()
                .map(|p| PrivateKey::load(&config.resolve(p)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(key_err)?;
            if v1_keys.is_empty() && v2_keys.is_empty() {
                return Err(CatalogError::NoKeys { zone: zone_err() });
            }
            if zc.accept_v1 && v1_keys.is_empty() {
                return Err(CatalogError::NoV1Keys { zone: zone_err() });
            }
            let keyring = Keyring::new(&v1_keys).map_err(key_err)?;
            // This server's own advanced copy of each ratchet: seeds of
            // epochs no longer needed are erased from its state folder.
            let store = state
                .as_ref()
                .map(|dir| RatchetStore::new(dir.join("keys")));
            let v2_keys = v2_keys
                .iter()
                .map(|k| {
                    let Some(store) = &store else {
                        return Ok(k.clone());
                    };
                    let synced = store.sync(k, now)?;
                    if synced.file_is_behind {
                        tracing::warn!(
                            zone = %zc.name,
                            key_id = k.id.0,
                            "a v2 private key file holds the ratchet seed of an older epoch than this server needs: whoever copies the file can open reports sealed since then; replace it with `vcheckd keygen --advance FILE` (this server keeps its own advanced copy in its state folder)"
                        );
                    }
                    Ok(synced.key)
                })
                .collect::<Result<Vec<_>, KeyError>>()
                .map_err(key_err)?;
            let v2_keys = PrivateKeyring::new(&v2_keys, now).map_err(key_err)?;
            if let Some(k) = v2_keys
                .iter()
                .find(|k| k.epoch(v2::Epoch::at(now)).is_none())
            {
                return Err(CatalogError::Setting {
                    zone: zone_err(),
                    message: format!(
                        "v2 key {}'s ratchet starts after this week (epoch {}): the clock is wrong, or the key file was made by a host whose clock runs ahead",
                        k.id,
                        v2::Epoch::at(now)
                    ),
                });
            }
            let releases =
                Releases::try_from(&zc.releases).map_err(|source| CatalogError::Releases {
                    zone: zone_err(),
                    source,
                })?;
            let mut zone = parse_zone(
                name,
                &text,
                &config.resolve(&zc.file),
                keyring,
                releases,
                zc.answer_ttl,
            )?;
            zone.accept_v1 = zc.accept_v1;
            if !v2_keys.is_empty() {
                let setting = |message: String| CatalogError::Setting {
                    zone: zone_err(),
                    message,
                };
                let validity = zc.policy_validity_secs;
                if !(v2policy::MIN_VALIDITY_SECS..=v2policy::MAX_VALIDITY_SECS).contains(&validity)
                {
                    return Err(setting(format!(
                        "policy_validity_secs = {validity}: set it between {} (two hours) and {} (eight days)",
                        v2policy::MIN_VALIDITY_SECS,
                        v2policy::MAX_VALIDITY_SECS
                    )));
                }
                let advisory_url = zc
                    .advisory_url
                    .as_deref()
                    .map(AdvisoryUrl::new)
                    .transpose()
                    .map_err(|e| setting(format!("advisory_url: {e}")))?;
                // The policy's serial is the zone's SOA serial: every name
                // server of the zone serves the same one, and operators
                // already raise it when the zone changes. One serial names
                // one release section, remembered in the state folder.
                let section = v2policy::release_section(advisory_url.as_ref(), &zone.releases)
                    .map_err(|source| CatalogError::Policy {
                        zone: zone_err(),
                        source,
                    })?;
                signed.push((
                    zone.name.to_string(),
                    zone.serial,
                    super::serials::digest(&section),
                ));
                let policy = ServedPolicy::sign(
                    &zone.name,
                    &v2_keys,
                    zone.releases.clone(),
                    advisory_url,
                    zone.serial,
                    Effort(zc.effort),
                    now,
                    validity,
                )
                .map_err(|source| CatalogError::Policy {
                    zone: zone_err(),
                    source,
                })?;
                zone.set_policy(policy)?;
            }
            zones.push(zone);
        }
        // Every zone checked before any serial is recorded: a refused
        // reload records nothing.
        if let Some(dir) = state.as_ref().filter(|_| !signed.is_empty()) {
            let mut serials = super::serials::SignedSerials::load(dir)?;
            let mut changed = false;
            for (zone, serial, digest) in &signed {
                changed |= serials.admit(zone, *serial, digest)?;
            }
            if changed {
                serials.save()?;
            }
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.labels.len()));
        Ok(Catalog {
            zones,
            ratchets: state.map(|dir| dir.join("keys")),
        })
    }

    /// The same zones with every v2 policy signed anew at `now`: `issued`
    /// on the current grid step, the current epoch's sealing key, keys of
    /// epochs no longer kept dropped (and erased from the state folder),
    /// and `effort` suggested where given (else each zone's own).
    pub fn resign(&self, now: u64, effort: Option<Effort>) -> Result<Self, CatalogError> {
        let mut next = self.clone();
        for zone in &mut next.zones {
            if let Some(policy) = zone.policy() {
                if let Some(dir) = &self.ratchets {
                    let store = RatchetStore::new(dir.clone());
                    for key in policy.keys.iter() {
                        store
                            .sync(&key.private(), now)
                            .map_err(|source| CatalogError::Key {
                                zone: zone.name.to_string(),
                                source,
                            })?;
                    }
                }
                let effort = effort.unwrap_or(policy.content.effort);
                let policy = policy.resign(&zone.name, now, effort).map_err(|source| {
                    CatalogError::Policy {
                        zone: zone.name.to_string(),
                        source,
                    }
                })?;
                zone.set_policy(policy)?;
            }
        }
        Ok(next)
    }

    /// How long until the policies must be signed anew: the next full hour
    /// (the grid `issued` lies on), a few seconds past it so that a clock
    /// a little behind is on the new step too.
    pub fn resign_interval(&self, now: u64) -> Option<std::time::Duration> {
        self.zones.iter().find_map(Zone::policy)?;
        let next = now - now % v2policy::GRID_SECS + v2policy::GRID_SECS + 2;
        Some(std::time::Duration::from_secs(next - now))
    }

    /// What the journal's consumers need to open v2 frames of these zones.
    pub fn opener(&self) -> Opener {
        let mut opener = Opener::default();
        for zone in &self.zones {
            if let Some(policy) = zone.policy() {
                opener.insert(
                    zone.name.clone(),
                    policy.keys.clone(),
                    zone.releases.clone(),
                );
            }
        }
        opener
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
    let serial = match &soa.data {
        RData::SOA(s) => s.serial,
        _ => 0,
    };
    Ok(Zone {
        labels: origin_labels,
        name,
        negative_soa,
        fixed,
        serial,
        keyring,
        accept_v1: true,
        v2: None,
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
