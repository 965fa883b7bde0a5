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
use crate::hint::{Releases, ReleasesError};
use crate::protocol::{Key, KeyError, Keyring, ZoneName};

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

/// One served zone.
#[derive(Debug)]
pub struct Zone {
    pub name: ZoneName,
    /// Labels of the origin, lower case, root excluded.
    labels: Vec<Vec<u8>>,
    soa: Record,
    /// TTL of negative answers (RFC 2308: the lesser of SOA TTL and minimum).
    negative_ttl: u32,
    /// Fixed names from the zone file, by owner.
    records: HashMap<LowerName, Vec<Record>>,
    pub keyring: Keyring,
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
        releases,
        answer_ttl,
    })
}
