//! Loading the daily rollups of one or more databases (one per name server)
//! and merging them into one view, so that every statistic is computed
//! once, in Rust, from the same rows: the counting model's node-days and
//! version days ([`crate::fleet`]).

use std::collections::{BTreeMap, HashMap};

use crate::clock::Day;
use crate::fleet::{MergedNodeDay, NodeDay, VersionDay};
use crate::protocol::ZoneName;
use crate::store::reader::StatsReader;
use crate::store::StoreError;

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
    /// Each report once across databases; sorted by day, cluster and node.
    pub node_days: Vec<NodeDay>,
    /// Version days with anonymous reports, their counts summed over
    /// databases (anonymous reports carry nothing to deduplicate by).
    pub anon_days: Vec<VersionDay>,
    /// (day, counter name) -> value, summed over databases.
    pub counters: BTreeMap<(Day, String), u64>,
    /// cluster -> first day ever seen, over all time.
    pub cluster_first_day: HashMap<[u8; 16], Day>,
    /// version -> first day ever seen, over all time.
    pub version_first_day: HashMap<String, Day>,
}

/// A node-day's place: day, cluster, node, version.
type Key = (Day, [u8; 16], [u8; 16], String);

impl Dataset {
    /// Reads the rows of `scope` from every reader (one per name server)
    /// and merges them: the exact path, for several databases and for
    /// windows that no snapshot keeps.
    pub fn load(readers: &[&dyn StatsReader], scope: &Scope) -> Result<Self, StoreError> {
        let mut merged: HashMap<Key, MergedNodeDay> = HashMap::new();
        let mut anon: BTreeMap<(Day, semver::Version), VersionDay> = BTreeMap::new();
        let zone = &scope.zone;
        let mut data = Dataset {
            zone: zone.as_str().to_string(),
            ..Dataset::default()
        };
        let (first, last) = (Day(scope.first_day), Day(scope.last_day));
        // Report ids only matter when rows of several databases meet.
        let merging = readers.len() > 1;
        for reader in readers {
            for row in reader.node_days(zone, first, last, merging)? {
                let key = (row.day, row.cluster, row.node, row.version.to_string());
                match merged.get_mut(&key) {
                    None => {
                        merged.insert(key, MergedNodeDay::new(row));
                    }
                    Some(m) => m.merge(row),
                }
            }
            for v in reader.version_days(zone, first, last)? {
                if v.anonymous == 0 {
                    continue;
                }
                anon.entry((v.day, v.version.clone()))
                    .and_modify(|a| a.anonymous += v.anonymous)
                    .or_insert(v);
            }
            for ((day, name), value) in reader.counters(first, last)? {
                *data.counters.entry((day, name)).or_default() += value;
            }
            for (cluster, day) in reader.cluster_first_days(zone)? {
                data.cluster_first_day
                    .entry(cluster)
                    .and_modify(|d| *d = (*d).min(day))
                    .or_insert(day);
            }
            for (version, day) in reader.version_first_days(zone)? {
                data.version_first_day
                    .entry(version.to_string())
                    .and_modify(|d| *d = (*d).min(day))
                    .or_insert(day);
            }
        }
        data.node_days = merged.into_values().map(MergedNodeDay::row).collect();
        data.node_days.sort_by_key(|r| (r.day, r.cluster, r.node));
        data.anon_days = anon.into_values().collect();
        Ok(data)
    }

    /// The first day any of the readers saw `version` in `zone`.
    pub fn version_first_day(
        readers: &[&dyn StatsReader],
        version: &semver::Version,
        zone: &ZoneName,
    ) -> Result<Option<Day>, StoreError> {
        let mut first: Option<Day> = None;
        for reader in readers {
            for (v, day) in reader.version_first_days(zone)? {
                if v == *version {
                    first = Some(first.map_or(day, |f| f.min(day)));
                }
            }
        }
        Ok(first)
    }

    /// Sum of counters whose name starts with `prefix`, over days in range.
    #[must_use]
    pub fn counter(&self, prefix: &str, first: Day, last: Day) -> u64 {
        self.counters
            .range((first, String::new())..)
            .take_while(|((day, _), _)| *day <= last)
            .filter(|((_, name), _)| name.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Node days within `first..=last`.
    pub fn days(&self, first: Day, last: Day) -> impl Iterator<Item = &NodeDay> {
        let start = self.node_days.partition_point(|r| r.day < first);
        self.node_days[start..]
            .iter()
            .take_while(move |r| r.day <= last)
    }

    /// Version days with anonymous reports within `first..=last`.
    pub fn anon_days(&self, first: Day, last: Day) -> impl Iterator<Item = &VersionDay> {
        self.anon_days
            .iter()
            .filter(move |a| (first..=last).contains(&a.day))
    }
}
