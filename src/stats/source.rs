//! Where statistics come from, and which way they are computed.
//!
//! One database: from the daily snapshots (one small read per day, however
//! large the fleet), for the windows snapshots keep (1 to 92 days ending on
//! any day), and for longer windows ending today from each node's current
//! state. Several databases (one
//! per name server), or another window: the exact path, node-days merged
//! in memory ([`Dataset`]). Both give the same figures (a test holds them
//! to it); the exact path's cost grows with nodes times days.

use semver::Version;
use thiserror::Error;

use super::{
    summary_scope, Adoption, Bucket, Dataset, Scope, Summary, TrendPoint, VersionRows, Versions,
    ADOPTION_WINDOW_DAYS,
};
use crate::clock::Day;
use crate::fleet::{Snapshot, ACTIVITY_DAYS, MAX_WINDOW};
use crate::protocol::ZoneName;
use crate::store::reader::{SqliteReader, StatsReader};
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum StatsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no zone {asked:?} in the data (zones: {})", list(.known))]
    UnknownZone { asked: String, known: Vec<String> },
}

fn list(zones: &[String]) -> String {
    if zones.is_empty() {
        "none yet".to_string()
    } else {
        zones.join(", ")
    }
}

/// The databases statistics read.
pub struct Source {
    readers: Vec<Box<dyn StatsReader + Send>>,
}

impl Source {
    #[must_use]
    pub fn new(readers: Vec<Box<dyn StatsReader + Send>>) -> Self {
        Source { readers }
    }

    /// Opens each database read-only.
    pub fn open(paths: &[std::path::PathBuf]) -> Result<Self, StoreError> {
        let mut readers: Vec<Box<dyn StatsReader + Send>> = Vec::new();
        for path in paths {
            readers.push(Box::new(SqliteReader::open(path)?));
        }
        Ok(Source { readers })
    }

    /// Reads from a ClickHouse database (every name server's shipped
    /// reports), each query bounded by `timeout`.
    #[must_use]
    pub fn clickhouse(
        url: &crate::clickhouse::ClickHouseUrl,
        timeout: std::time::Duration,
    ) -> Self {
        Source {
            readers: vec![Box::new(crate::clickhouse::ClickHouseReader::open(
                url, timeout,
            ))],
        }
    }

    fn refs(&self) -> Vec<&dyn StatsReader> {
        self.readers
            .iter()
            .map(|r| r.as_ref() as &dyn StatsReader)
            .collect()
    }

    /// The one reader, when snapshots can answer.
    fn single(&self) -> Option<&dyn StatsReader> {
        match self.readers.as_slice() {
            [one] => Some(one.as_ref()),
            _ => None,
        }
    }

    /// Every zone with data, in name order.
    pub fn zones(&self) -> Result<Vec<ZoneName>, StoreError> {
        let mut all = Vec::new();
        for r in &self.readers {
            all.extend(r.zones()?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// The zones a request covers: the one asked for (normalised: letter
    /// case, trailing dot), or every zone. An unknown zone is an error that
    /// lists the known ones.
    pub fn select_zones(&self, asked: Option<&str>) -> Result<Vec<ZoneName>, StatsError> {
        let known = self.zones()?;
        let Some(asked) = asked else {
            return Ok(known);
        };
        match ZoneName::new(asked) {
            Ok(zone) if known.contains(&zone) => Ok(vec![zone]),
            _ => Err(StatsError::UnknownZone {
                asked: asked.to_string(),
                known: known.iter().map(|z| z.as_str().to_string()).collect(),
            }),
        }
    }

    fn exact(&self, zone: &ZoneName, first: i64, last: i64) -> Result<Dataset, StoreError> {
        let scope = Scope {
            first_day: first,
            last_day: last,
            zone: zone.clone(),
        };
        Dataset::load(&self.refs(), &scope)
    }

    pub fn summary(&self, zone: &ZoneName, first: i64, last: i64) -> Result<Summary, StoreError> {
        let len = last - first + 1;
        let Some(reader) = self.single().filter(|_| 2 * len <= ACTIVITY_DAYS) else {
            let scope = summary_scope(first, last, zone.clone());
            let data = Dataset::load(&self.refs(), &scope)?;
            return Ok(super::summary(&data, first, last));
        };
        let snap = reader.snapshot(zone, Day(last))?;
        let active = |days: i64| snap.active(days).unwrap_or((0, 0));
        let mut reports = 0;
        let mut anonymous = 0;
        for v in reader.version_days(zone, Day(first), Day(last))? {
            reports += v.reports;
            anonymous += v.anonymous;
        }
        let counters = reader.counters(Day(first), Day(last))?;
        let counter = |prefix: &str| -> u64 {
            counters
                .iter()
                .filter(|((_, name), _)| name.starts_with(prefix))
                .map(|(_, v)| v)
                .sum()
        };
        Ok(Summary {
            zone: zone.as_str().to_string(),
            first_day: first,
            last_day: last,
            active: [1, 7, 30]
                .iter()
                .map(|&days| super::Active {
                    days,
                    clusters: active(days).0,
                    nodes: active(days).1,
                })
                .collect(),
            new_clusters: reader.new_clusters(zone, Day(first), Day(last))?,
            gone_clusters: active(2 * len).0 - active(len).0,
            reports,
            anonymous_reports: anonymous,
            duplicates: counter("reports.duplicate"),
            rejected_names: counter("rejected."),
            dropped: counter("reports.dropped"),
            reports_v1: counter("reports.v1"),
            reports_v2: counter("reports.v2"),
        })
    }

    pub fn versions(&self, zone: &ZoneName, first: i64, last: i64) -> Result<Versions, StoreError> {
        let len = last - first + 1;
        match self.single().filter(|_| (1..=MAX_WINDOW).contains(&len)) {
            Some(reader) => {
                let snap = reader.snapshot(zone, Day(last))?;
                versions_from(reader, &snap, zone, first, last)
            }
            None => Ok(super::versions(
                &self.exact(zone, first, last)?,
                first,
                last,
            )),
        }
    }

    /// Per day or week (whole weeks, the newest ending on `last`), the
    /// version distribution of the clusters and nodes active in it.
    pub fn trend(
        &self,
        zone: &ZoneName,
        first: i64,
        last: i64,
        bucket: Bucket,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        let step = bucket.days();
        let Some(reader) = self.single() else {
            let data = self.exact(zone, first - step + 1, last)?;
            return Ok(super::trend(&data, first, last, bucket));
        };
        let mut points = Vec::new();
        let mut end = last;
        while end >= first {
            let snap = reader.snapshot(zone, Day(end))?;
            let v = versions_from(reader, &snap, zone, end - step + 1, end)?;
            points.extend(
                v.rows
                    .into_iter()
                    .filter(|r| r.nodes > 0)
                    .map(|r| TrendPoint {
                        zone: zone.as_str().to_string(),
                        day: end - step + 1,
                        version: r.version,
                        clusters: r.cluster_share,
                        nodes: r.nodes,
                    }),
            );
            end -= step;
        }
        super::sort_trend(&mut points);
        Ok(points)
    }

    /// Adoption of `version` up to `last`; `None`: no report carried it.
    pub fn adoption(
        &self,
        zone: &ZoneName,
        version: &Version,
        last: i64,
    ) -> Result<Option<Adoption>, StoreError> {
        let refs = self.refs();
        let Some(Day(released)) = Dataset::version_first_day(&refs, version, zone)? else {
            return Ok(None);
        };
        let Some(reader) = self.single() else {
            let data = self.exact(zone, released - ADOPTION_WINDOW_DAYS + 1, last)?;
            return Ok(Some(super::adoption(&data, version, last)));
        };
        let mut result = Adoption {
            zone: zone.as_str().to_string(),
            version: version.to_string(),
            released_day: Some(released),
            days_to_50: None,
            days_to_90: None,
            series: Vec::new(),
        };
        for day in released..=last {
            let snap = reader.snapshot(zone, Day(day))?;
            let active = snap.active(ADOPTION_WINDOW_DAYS).unwrap_or((0, 0)).0;
            let adopted = snap
                .window(ADOPTION_WINDOW_DAYS)
                .map_or(0, |w| w.adopted(version));
            result.push(day, active, adopted);
        }
        Ok(Some(result))
    }
}

/// A window's version distribution from its snapshot, with the report
/// counts of the days it covers.
fn versions_from(
    reader: &dyn StatsReader,
    snap: &Snapshot,
    zone: &ZoneName,
    first: i64,
    last: i64,
) -> Result<Versions, StoreError> {
    let len = last - first + 1;
    let mut rows = VersionRows::default();
    for v in reader.version_days(zone, Day(first), Day(last))? {
        let version = v.version.to_string();
        rows.take(&version, v.reports, v.anonymous, v.last_at, v.status);
    }
    Ok(Versions::from_figures(
        zone.as_str().to_string(),
        (first, last),
        snap.window(len).cloned().unwrap_or_default(),
        snap.active(len).unwrap_or((0, 0)),
        rows.rows,
    ))
}
