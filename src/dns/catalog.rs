//! The zones a server answers for, built from the configuration.
//!
//! A `Catalog` is immutable: a reload (SIGHUP) builds a new one and swaps it
//! in whole, so a query never sees half of an old and half of a new zone.

use std::collections::HashMap;
use std::path::Path;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::hint::{CompactError, Releases, ReleasesError};
use crate::protocol::v2::{PrivateKey, PrivateKeyring, ServedPolicy};
use crate::protocol::{Key, KeyError, Keyring, ZoneName};
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
}

/// One served zone.
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: ZoneName,
    /// Labels of the origin, lower case, root excluded.
    labels: Vec<Vec<u8>>,
    soa: Record,
    /// TTL of negative answers (RFC 2308: the lesser of SOA TTL and minimum).
    negative_ttl: u32,
    /// Fixed names from the zone file, by owner.
    records: HashMap<LowerName, Vec<Record>>,
    /// Protocol v1 keys; empty when v1 is not accepted.
    pub keyring: Keyring,
    pub accept_v1: bool,
    /// Protocol v2: private keys and the signed policy, if configured.
    pub v2: Option<ServedPolicy>,
    pub releases: Releases,
    pub answer_ttl: u32,
}

impl Zone {
    pub fn label_count(&self) -> usize {
        self.labels.len()
    }

    /// The SOA to put in the authority section of a negative answer.
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        soa.ttl = self.negative_ttl;
        soa
    }

    /// The SOA serial of the zone file.
    pub fn soa_serial(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(s) => s.serial,
            _ => 0,
        }
    }

    /// The zone file's records at `name` (any case), or `None` if the name
    /// has none.
    pub fn fixed_records(&self, name: &Name) -> Option<&[Record]> {
        self.records.get(&LowerName::new(name)).map(Vec::as_slice)
    }

    /// Whether `labels` (a query name's labels, leaf first) end in this zone.
    fn contains(&self, labels: &[&[u8]]) -> bool {
        labels.len() >= self.labels.len()
            && labels[labels.len() - self.labels.len()..]
                .iter()
                .zip(&self.labels)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Longest origin first, so the first match is the most specific zone.
    zones: Vec<Zone>,
}

impl Catalog {
    /// Builds the zones of `config`, signing v2 policies as of `now`
    /// (unix seconds).
    pub fn build(config: &Config, now: u64) -> Result<Self, CatalogError> {
        let mut zones: Vec<Zone> = Vec::with_capacity(config.zones.len());
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
            let v2_keys = PrivateKeyring::new(v2_keys).map_err(key_err)?;
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
                // The policy's serial is the zone's SOA serial: every name
                // server of the zone serves the same one, and operators
                // already raise it when the zone changes.
                zone.v2 = Some(
                    ServedPolicy::sign(
                        &zone.name,
                        v2_keys,
                        zone.releases.clone(),
                        zone.soa_serial(),
                        now,
                        zc.policy_validity_secs.max(1),
                    )
                    .map_err(|source| CatalogError::Policy {
                        zone: zone_err(),
                        source,
                    })?,
                );
            }
            zones.push(zone);
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.labels.len()));
        Ok(Catalog { zones })
    }

    /// The same zones with every v2 policy signed anew at `now`.
    pub fn resign(&self, now: u64) -> Result<Self, CatalogError> {
        let mut next = self.clone();
        for zone in &mut next.zones {
            if let Some(policy) = &zone.v2 {
                zone.v2 = Some(policy.resign(&zone.name, now).map_err(|source| {
                    CatalogError::Policy {
                        zone: zone.name.to_string(),
                        source,
                    }
                })?);
            }
        }
        Ok(next)
    }

    /// How often policies must be signed anew: a seventh of the shortest
    /// validity, so that a client whose clock runs ahead still accepts.
    pub fn resign_interval(&self) -> Option<std::time::Duration> {
        self.zones
            .iter()
            .filter_map(|z| z.v2.as_ref())
            .map(|p| (p.content.expires.saturating_sub(p.content.issued) / 7).max(1))
            .min()
            .map(std::time::Duration::from_secs)
    }

    /// What the processor needs to open v2 frames of these zones.
    pub fn opener(&self) -> Opener {
        let mut opener = Opener::default();
        for zone in &self.zones {
            if let Some(policy) = &zone.v2 {
                opener.insert(
                    zone.name.clone(),
                    policy.keys.clone(),
                    zone.releases.clone(),
                );
            }
        }
        opener
    }

    /// The most specific zone that contains the name with these labels.
    pub fn find(&self, labels: &[&[u8]]) -> Option<&Zone> {
        self.zones.iter().find(|z| z.contains(labels))
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
    let soa = at_apex(RecordType::SOA).ok_or(CatalogError::Missing {
        zone: zone(),
        what: "SOA",
    })?;
    at_apex(RecordType::NS).ok_or(CatalogError::Missing {
        zone: zone(),
        what: "NS",
    })?;
    let negative_ttl = match &soa.data {
        RData::SOA(s) => s.minimum.min(soa.ttl),
        _ => soa.ttl,
    };
    Ok(Zone {
        labels: origin.iter().map(|l| l.to_ascii_lowercase()).collect(),
        name,
        soa,
        negative_ttl,
        records,
        keyring,
        accept_v1: true,
        v2: None,
        releases,
        answer_ttl,
    })
}
