//! A received report as one ClickHouse row, and the order of versions as
//! bytes ClickHouse can compare.

use data_encoding::HEXLOWER;
use semver::{Prerelease, Version};
use serde::Serialize;

use crate::clock::day_of;
use crate::protocol::Identity;
use crate::report::ReceivedReport;

/// The identity columns of an anonymous report: it has no cluster or node.
pub(crate) const NO_ID: &str = "00000000000000000000000000000000";

/// One row of `reports`: the report's own fields (the same for every
/// delivery of it: the deduplication key), and the delivery's (receive
/// time, status answered, which server).
#[derive(Serialize)]
pub(crate) struct Row<'a> {
    zone: &'a str,
    /// Hex, 32 characters; [`NO_ID`] when withheld.
    cluster: String,
    node: String,
    client_time: i64,
    /// Hex, 24 characters.
    report_id: String,
    anonymous: u8,
    received_at: i64,
    day: i64,
    version: String,
    version_key: String,
    status: u8,
    key_id: u8,
    server: &'a str,
    /// The ReplacingMergeTree version: larger for the earlier delivery,
    /// so a merge keeps the copy the queries count (the first received).
    keep: u32,
}

impl<'a> Row<'a> {
    pub(crate) fn new(r: &'a ReceivedReport, server: &'a str) -> Self {
        let p = &r.report.payload;
        let (cluster, node, anonymous) = match p.identity {
            Identity::Known { cluster, node } => {
                (HEXLOWER.encode(&cluster.0), HEXLOWER.encode(&node.0), 0)
            }
            Identity::Withheld => (NO_ID.to_string(), NO_ID.to_string(), 1),
        };
        Row {
            zone: r.zone.as_str(),
            cluster,
            node,
            client_time: i64::try_from(p.timestamp).unwrap_or(i64::MAX),
            report_id: HEXLOWER.encode(&r.report.id.0),
            anonymous,
            received_at: r.received_at,
            day: day_of(r.received_at),
            version: p.version.to_string(),
            version_key: version_key(&p.version),
            status: r.status.code(),
            key_id: r.report.key_id.0,
            server,
            keep: u32::try_from(r.received_at.clamp(0, i64::from(u32::MAX)))
                .map_or(0, |at| u32::MAX - at),
        }
    }
}

/// Hex of bytes whose byte order is semver precedence (then build
/// metadata, as `semver::Version`'s `Ord` does): the counting model's tie
/// rule ("within the same second, the higher version") as a ClickHouse
/// `argMax` over `(received_at, version_key)`.
pub(crate) fn version_key(v: &Version) -> String {
    let mut out = Vec::with_capacity(32);
    for n in [v.major, v.minor, v.patch] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    // A release sorts after every pre-release of it.
    if v.pre == Prerelease::EMPTY {
        out.push(0xff);
    } else {
        for ident in v.pre.as_str().split('.') {
            match ident.parse::<u64>() {
                // Numeric identifiers sort below alphanumeric ones.
                Ok(n) if !ident.starts_with('0') || ident == "0" => {
                    out.push(1);
                    out.extend_from_slice(&n.to_be_bytes());
                }
                _ => {
                    out.push(2);
                    out.extend_from_slice(ident.as_bytes());
                    out.push(0);
                }
            }
        }
        // Fewer identifiers sort first.
        out.push(0);
    }
    out.extend_from_slice(v.build.as_str().as_bytes());
    HEXLOWER.encode(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_as_semver() {
        let mut versions: Vec<Version> = [
            "1.0.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "0.9.9",
            "1.0.1",
            "1.10.0",
            "1.9.0",
            "10.0.0",
            "2.0.0-0",
            "2.0.0-1a",
            "1.0.0+build.2",
            "1.0.0+build.1",
        ]
        .iter()
        .map(|s| Version::parse(s).unwrap())
        .collect();
        let mut by_key = versions.clone();
        versions.sort();
        by_key.sort_by_key(version_key);
        assert_eq!(by_key, versions);
    }
}
