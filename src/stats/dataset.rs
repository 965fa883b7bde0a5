//! Loading the daily rollups of one or more databases (one per name server)
//! and merging them into one view, so that every statistic is computed
//! once, in Rust, from the same rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::clock::Day;
use crate::protocol::ZoneName;
use crate::store::reader::StatsReader;
use crate::store::StoreError;

/// A node's reports of one version on one day, merged across databases. A
/// node that upgraded during a day has two; its latest (`last_at`) wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDay {
    pub day: i64,
    pub zone: String,
    pub cluster: [u8; 16],
    pub node: [u8; 16],
    pub version: String,
    /// Status answered to the latest of these reports.
    pub status: u8,
    pub last_at: i64,
    pub reports: u64,
}

/// Reports with identity withheld, per day and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonDay {
    pub day: i64,
    pub zone: String,
    pub version: String,
    pub status: u8,
    pub reports: u64,
}

/// Which days and zone to read (statistics never merge zones). Days are UTC days since 1970-01-01, both ends
/// inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub first_day: i64,
    pub last_day: i64,
    pub zone: ZoneName,
}

/// Everything the statistics need, for the days of a [`Scope`].
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub zone: String,
    /// Sorted by day.
    pub node_days: Vec<NodeDay>,
    pub anon_days: Vec<AnonDay>,
    /// (day, counter name) -> value, summed over databases.
    pub counters: BTreeMap<(i64, String), u64>,
    /// (zone, cluster) -> first day ever seen, over all time.
    pub cluster_first_day: HashMap<(String, [u8; 16]), i64>,
    /// version -> first day ever seen (any zone in scope), over all time.
    pub version_first_day: HashMap<String, i64>,
}

type Key = (i64, String, [u8; 16], [u8; 16], String);

struct Merging {
    row: NodeDay,
    ids: HashSet<[u8; 12]>,
    /// Some database's id list was full: union size undercounts.
    saturated: bool,
}

impl Dataset {
    /// Reads the rows of `scope` from every reader (one per name server)
    /// and merges them: the exact path, for several databases and for
    /// windows that no snapshot keeps.
    pub fn load(readers: &[&dyn StatsReader], scope: &Scope) -> Result<Self, StoreError> {
        let mut merged: HashMap<Key, Merging> = HashMap::new();
        let mut anon: HashMap<(i64, String, String), AnonDay> = HashMap::new();
        let zone = &scope.zone;
        let mut data = Dataset {
            zone: zone.as_str().to_string(),
            ..Dataset::default()
        };
        let (first, last) = (Day(scope.first_day), Day(scope.last_day));
        // Report ids only matter when rows of several databases meet.
        let merging = readers.len() > 1;
        for reader in readers {
            for r in reader.node_days(zone, first, last, merging)? {
                let row = NodeDay {
                    day: r.day.0,
                    zone: zone.as_str().to_string(),
                    cluster: r.cluster,
                    node: r.node,
                    version: r.version.to_string(),
                    status: r.status.code(),
                    last_at: r.last_at,
                    reports: r.reports,
                };
                let ids: HashSet<[u8; 12]> = r.ids.into_iter().collect();
                let saturated = merging && (ids.len() as u64) < row.reports;
                let key = (
                    row.day,
                    row.zone.clone(),
                    row.cluster,
                    row.node,
                    row.version.clone(),
                );
                match merged.get_mut(&key) {
                    None => {
                        merged.insert(
                            key,
                            Merging {
                                row,
                                ids,
                                saturated,
                            },
                        );
                    }
                    Some(m) => {
                        let most = m.row.reports.max(row.reports);
                        if row.last_at > m.row.last_at {
                            m.row.status = row.status;
                            m.row.last_at = row.last_at;
                        }
                        m.ids.extend(ids);
                        m.saturated |= saturated;
                        // Exact while every list is complete; otherwise the
                        // larger of the two counts is a lower bound.
                        m.row.reports = if m.saturated {
                            most.max(m.ids.len() as u64)
                        } else {
                            m.ids.len() as u64
                        };
                    }
                }
            }
            for v in reader.version_days(zone, first, last)? {
                if v.anonymous == 0 {
                    continue;
                }
                let row = AnonDay {
                    day: v.day.0,
                    zone: zone.as_str().to_string(),
                    version: v.version.to_string(),
                    status: v.status.code(),
                    reports: v.anonymous,
                };
                anon.entry((row.day, row.zone.clone(), row.version.clone()))
                    .and_modify(|a| a.reports += row.reports)
                    .or_insert(row);
            }
            for ((day, name), value) in reader.counters(first, last)? {
                *data.counters.entry((day.0, name)).or_default() += value;
            }
            for (cluster, day) in reader.cluster_first_days(zone)? {
                data.cluster_first_day
                    .entry((zone.as_str().to_string(), cluster))
                    .and_modify(|d| *d = (*d).min(day.0))
                    .or_insert(day.0);
            }
            for (version, day) in reader.version_first_days(zone)? {
                data.version_first_day
                    .entry(version.to_string())
                    .and_modify(|d| *d = (*d).min(day.0))
                    .or_insert(day.0);
            }
        }
        data.node_days = merged.into_values().map(|m| m.row).collect();
        data.node_days.sort_by(|a, b| {
            (a.day, &a.zone, a.cluster, a.node).cmp(&(b.day, &b.zone, b.cluster, b.node))
        });
        data.anon_days = anon.into_values().collect();
        data.anon_days
            .sort_by(|a, b| (a.day, &a.zone, &a.version).cmp(&(b.day, &b.zone, &b.version)));
        Ok(data)
    }

    /// The first day any of the readers saw `version` in `zone`.
    pub fn version_first_day(
        readers: &[&dyn StatsReader],
        version: &semver::Version,
        zone: &ZoneName,
    ) -> Result<Option<i64>, StoreError> {
        let mut first: Option<i64> = None;
        for reader in readers {
            for (v, day) in reader.version_first_days(zone)? {
                if v == *version {
                    first = Some(first.map_or(day.0, |f| f.min(day.0)));
                }
            }
        }
        Ok(first)
    }

    /// Sum of counters whose name starts with `prefix`, over days in range.
    pub fn counter(&self, prefix: &str, first_day: i64, last_day: i64) -> u64 {
        self.counters
            .range((first_day, String::new())..)
            .take_while(|((day, _), _)| *day <= last_day)
            .filter(|((_, name), _)| name.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Node days within `first..=last`.
    pub fn days(&self, first: i64, last: i64) -> impl Iterator<Item = &NodeDay> {
        let start = self.node_days.partition_point(|r| r.day < first);
        self.node_days[start..]
            .iter()
            .take_while(move |r| r.day <= last)
    }
}
