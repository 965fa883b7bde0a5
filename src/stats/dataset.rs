//! Loading the daily rollups of one or more databases (one per name server)
//! and merging them into one view, so that every statistic is computed
//! once, in Rust, from the same rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::params;

use crate::store::{Store, StoreError};

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

/// Which days and zone to read. Days are UTC days since 1970-01-01, both ends
/// inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub first_day: i64,
    pub last_day: i64,
    pub zone: Option<String>,
}

/// Everything the statistics need, for the days of a [`Scope`].
#[derive(Debug, Clone, Default)]
pub struct Dataset {
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

fn blob16(v: Vec<u8>) -> Option<[u8; 16]> {
    v.try_into().ok()
}

impl Dataset {
    pub fn load(stores: &[Store], scope: &Scope) -> Result<Self, StoreError> {
        let mut merged: HashMap<Key, Merging> = HashMap::new();
        let mut anon: HashMap<(i64, String, String), AnonDay> = HashMap::new();
        let mut data = Dataset::default();
        let zone = scope.zone.as_deref();
        // Report ids only matter when rows of several databases meet.
        let merging = stores.len() > 1;
        for store in stores {
            let conn = store.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT day, zone, cluster, node, version, status, last_at, reports,
                        CASE WHEN ?4 THEN ids ELSE x'' END
                 FROM node_days WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR zone = ?3)",
            )?;
            let rows = stmt.query_map(
                params![scope.first_day, scope.last_day, zone, merging],
                |r| {
                    Ok((
                        NodeDay {
                            day: r.get(0)?,
                            zone: r.get(1)?,
                            cluster: blob16(r.get(2)?).unwrap_or_default(),
                            node: blob16(r.get(3)?).unwrap_or_default(),
                            version: r.get(4)?,
                            status: r.get(5)?,
                            last_at: r.get(6)?,
                            reports: r.get::<_, i64>(7)? as u64,
                        },
                        r.get::<_, Vec<u8>>(8)?,
                    ))
                },
            )?;
            for row in rows {
                let (row, ids_blob) = row?;
                let ids: HashSet<[u8; 12]> = if merging {
                    ids_blob
                        .chunks_exact(12)
                        .filter_map(|c| c.try_into().ok())
                        .collect()
                } else {
                    HashSet::new()
                };
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

            let mut stmt = conn.prepare_cached(
                "SELECT day, zone, version, status, reports FROM anon_days
                 WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR zone = ?3)",
            )?;
            let rows = stmt.query_map(params![scope.first_day, scope.last_day, zone], |r| {
                Ok(AnonDay {
                    day: r.get(0)?,
                    zone: r.get(1)?,
                    version: r.get(2)?,
                    status: r.get(3)?,
                    reports: r.get::<_, i64>(4)? as u64,
                })
            })?;
            for row in rows {
                let row = row?;
                anon.entry((row.day, row.zone.clone(), row.version.clone()))
                    .and_modify(|a| a.reports += row.reports)
                    .or_insert(row);
            }

            let mut stmt = conn.prepare_cached(
                "SELECT day, name, value FROM counters WHERE day BETWEEN ?1 AND ?2",
            )?;
            let rows = stmt.query_map(params![scope.first_day, scope.last_day], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (day, name, value) = row?;
                *data.counters.entry((day, name)).or_default() += value as u64;
            }

            let mut stmt = conn.prepare_cached(
                "SELECT zone, cluster, first_day FROM clusters WHERE (?1 IS NULL OR zone = ?1)",
            )?;
            let rows = stmt.query_map(params![zone], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (zone, cluster, first) = row?;
                if let Some(cluster) = blob16(cluster) {
                    data.cluster_first_day
                        .entry((zone, cluster))
                        .and_modify(|d| *d = (*d).min(first))
                        .or_insert(first);
                }
            }

            let mut stmt = conn.prepare_cached(
                "SELECT version, MIN(first_day) FROM versions
                 WHERE (?1 IS NULL OR zone = ?1) GROUP BY version",
            )?;
            let rows = stmt.query_map(params![zone], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (version, first) = row?;
                data.version_first_day
                    .entry(version)
                    .and_modify(|d| *d = (*d).min(first))
                    .or_insert(first);
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

    /// The first day any of the databases saw `version` (in `zone`, if given).
    pub fn version_first_day(
        stores: &[Store],
        version: &str,
        zone: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let mut first: Option<i64> = None;
        for store in stores {
            let day: Option<i64> = store.conn().query_row(
                "SELECT MIN(first_day) FROM versions WHERE version = ?1 AND (?2 IS NULL OR zone = ?2)",
                params![version, zone],
                |r| r.get(0),
            )?;
            first = match (first, day) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
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
