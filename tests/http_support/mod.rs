//! Shared by tests/http.rs and tests/dashboard.rs: a deterministic fleet
//! written straight into a database over several weeks (with the numbers
//! it should give, counted here from the generated reports, not by
//! `vcheckd::stats`), a server with HTTP on an ephemeral port, and a
//! minimal HTTP/1.1 client.
#![allow(dead_code)] // each test binary uses a different part of this

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use vcheckd::hint::{AdvisoryConfig, Releases, ReleasesConfig};
use vcheckd::protocol::{AnonId, Identity, KeyId, Payload, Report, ReportId, ZoneName};
use vcheckd::store::{ReceivedReport, Store};

pub fn today() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86_400
}

/// Releases (version, day offset from today).
pub const RELEASES: [(&str, i64); 5] = [
    ("2.2.0", -45),
    ("2.3.0", -38),
    ("2.3.1", -30),
    ("2.4.0", -18),
    ("2.4.1", -8),
];

/// One identified report as generated: (day, zone, cluster, node, version).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sent {
    pub day: i64,
    pub zone: String,
    pub cluster: u32,
    pub node: u32,
    pub at: i64,
    pub version: String,
}

/// What was written, to count expectations from.
#[derive(Debug, Default)]
pub struct Truth {
    pub sent: Vec<Sent>,
    pub anonymous: u64,
    pub duplicates: u64,
}

impl Truth {
    fn window(&self, first: i64, last: i64) -> impl Iterator<Item = &Sent> {
        self.sent
            .iter()
            .filter(move |s| s.day >= first && s.day <= last)
    }

    pub fn active_clusters(&self, first: i64, last: i64) -> usize {
        self.window(first, last)
            .map(|s| (&s.zone, s.cluster))
            .collect::<BTreeSet<_>>()
            .len()
    }

    pub fn active_nodes(&self, first: i64, last: i64) -> usize {
        self.window(first, last)
            .map(|s| (&s.zone, s.cluster, s.node))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Versions of the identified reports in the window.
    pub fn versions(&self, first: i64, last: i64) -> BTreeSet<String> {
        self.window(first, last)
            .map(|s| s.version.clone())
            .collect()
    }

    /// Nodes by the version of their latest report in the window.
    pub fn nodes_by_version(&self, first: i64, last: i64) -> BTreeMap<String, u64> {
        let mut latest: HashMap<(&str, u32, u32), &Sent> = HashMap::new();
        for s in self.window(first, last) {
            let e = latest.entry((&s.zone, s.cluster, s.node)).or_insert(s);
            if s.at > e.at {
                *e = s;
            }
        }
        let mut out = BTreeMap::new();
        for s in latest.values() {
            *out.entry(s.version.clone()).or_default() += 1;
        }
        out
    }
}

fn releases() -> Releases {
    let mut versions: Vec<String> = RELEASES.iter().map(|(v, _)| v.to_string()).collect();
    versions.push("1.9.0".into());
    Releases::try_from(&ReleasesConfig {
        versions,
        end_of_life: vec!["1".into(), "2.2".into()],
        advisory: vec![AdvisoryConfig {
            id: "CVE-2026-0001".into(),
            fixed: vec!["2.3.1".into(), "2.4.1".into()],
        }],
    })
    .unwrap()
}

fn anon_id(kind: u8, a: u32, b: u32) -> AnonId {
    let mut id = [kind; 16];
    id[..4].copy_from_slice(&a.to_be_bytes());
    id[4..8].copy_from_slice(&b.to_be_bytes());
    AnonId(id)
}

/// Writes `clusters` clusters of 1 to 4 nodes reporting daily (with quiet
/// days) from up to 45 days ago until today, upgrading through [`RELEASES`]
/// with a lag and node by node (so some clusters are mixed); every tenth
/// never upgrades, some stop reporting, and with `long_tail` > 0 every
/// third is pinned to one of `long_tail` old 1.x versions. A few reports
/// are anonymous, a few delivered twice. `zones` are cycled over clusters.
pub fn write_fleet(db: &Path, clusters: u32, long_tail: u32, zones: &[&str]) -> Truth {
    let today = today();
    let releases = releases();
    let mut store = Store::open(db).unwrap();
    let mut truth = Truth::default();
    let mut batch = Vec::new();
    let mut next_id: u64 = 1;
    let mut report = |zone: &str, at: i64, identity: Identity, version: &str| {
        let version = semver::Version::parse(version).unwrap();
        let mut id = [0u8; 12];
        id[4..].copy_from_slice(&next_id.to_be_bytes());
        next_id += 1;
        ReceivedReport {
            report: Report {
                id: ReportId(id),
                key_id: KeyId(1),
                payload: Payload {
                    timestamp: at as u64,
                    identity,
                    version: version.clone(),
                },
            },
            zone: ZoneName::new(zone).unwrap(),
            received_at: at,
            status: releases.hint_for(&version).status,
        }
    };
    for i in 0..clusters {
        let zone = zones[i as usize % zones.len()];
        let nodes = 1 + i % 4;
        let join = -45 + i64::from(i % 9);
        let stop = (i % 11 == 5).then_some(-12);
        let lag = i64::from((i * 5) % 14);
        let never = i % 10 == 0;
        let pinned = (long_tail > 0 && i % 3 == 1).then(|| format!("1.{}.0", i % long_tail));
        for day in join..=0 {
            if stop.is_some_and(|s| day >= s) {
                break;
            }
            for j in 0..nodes {
                if day != join && (day + i64::from(i + j)) % 6 == 0 {
                    continue; // a quiet day
                }
                let version = match &pinned {
                    Some(v) => v.clone(),
                    None => {
                        let upto = if never {
                            join
                        } else {
                            day - lag - i64::from(j / 2)
                        };
                        RELEASES
                            .iter()
                            .rfind(|(_, d)| *d <= upto)
                            .unwrap_or(&RELEASES[0])
                            .0
                            .to_string()
                    }
                };
                let at = (today + day) * 86_400 + i64::from((i * 3_571 + j * 977) % 86_000);
                let r = report(
                    zone,
                    at,
                    Identity::Known {
                        cluster: anon_id(1, i, 0),
                        node: anon_id(2, i, j),
                    },
                    &version,
                );
                if (i + j) % 17 == 0 && day % 5 == 0 {
                    batch.push(r.clone());
                    truth.duplicates += 1;
                }
                batch.push(r);
                truth.sent.push(Sent {
                    day: today + day,
                    zone: zone.to_string(),
                    cluster: i,
                    node: j,
                    at,
                    version,
                });
            }
        }
    }
    for day in -20..=0 {
        let newest = RELEASES.iter().rfind(|(_, d)| *d <= day).unwrap();
        for k in 0..3 {
            batch.push(report(
                zones[0],
                (today + day) * 86_400 + 3_600 * k,
                Identity::Withheld,
                newest.0,
            ));
            truth.anonymous += 1;
        }
    }
    // In the order the journal delivers them: by receive time.
    batch.sort_by_key(|r| r.received_at);
    for chunk in batch.chunks(2_000) {
        store.insert_batch(chunk).unwrap();
    }
    store.flush_open_day().unwrap();
    truth
}

/// A `[http]` section for a test config: an ephemeral port.
pub fn http_section(top_versions: usize) -> String {
    format!("\n[http]\nlisten = \"127.0.0.1:0\"\ntop_versions = {top_versions}\n")
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One `GET` over a fresh connection (HTTP/1.1, `Connection: close`).
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: test\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), s.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16)
                .unwrap();
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    } else if let Some((_, len)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        assert_eq!(body.len(), len.parse::<usize>().unwrap(), "content-length");
    }
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}
