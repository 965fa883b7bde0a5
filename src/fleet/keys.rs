//! The model's keys: a node as (zone, cluster, node), with the zone and
//! version texts interned.
//!
//! SQLite's writer looks a node up for every report it takes in, and keeps
//! every node's state between commits (so does the ClickHouse rollup). Keyed by owned strings, each lookup
//! was three `memcmp` calls per tree level and each copied state two string
//! allocations; interned, a zone compares by pointer first and a version
//! is copied by a reference count, and the 16-byte ids compare as integers
//! (big-endian, so their order is the byte order the tables sort by).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// An interned text (a zone or a version): equal texts from one
/// [`Interner`] share one allocation, which makes comparing them a pointer
/// comparison. Texts from different interners still compare by content.
#[derive(Debug, Clone, Eq)]
pub struct Text(Arc<str>);

impl Text {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A text of its own (not interned): for rows made by hand, as in tests.
impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text(Arc::from(text))
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A 16-byte anonymized id as an integer whose order is the bytes' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(u128);

impl Id {
    #[must_use]
    pub fn bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl From<[u8; 16]> for Id {
    fn from(bytes: [u8; 16]) -> Self {
        Id(u128::from_be_bytes(bytes))
    }
}

/// A node: zone, cluster, node, ordered as `node_latest` and `node_days`
/// are keyed (the order snapshots take clusters in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey {
    pub zone: Text,
    pub cluster: Id,
    pub node: Id,
}

/// Interned zone and version texts. The few zones are looked up by a
/// linear scan; versions by hash, each checked once for being semver.
#[derive(Default, Clone)]
pub struct Interner {
    zones: Vec<Text>,
    /// Every version text seen, and whether it is semver.
    versions: HashMap<Arc<str>, bool>,
}

impl Interner {
    pub fn zone(&mut self, name: &str) -> Text {
        if let Some(z) = self.zones.iter().find(|z| z.as_str() == name) {
            return z.clone();
        }
        let z = Text(Arc::from(name));
        self.zones.push(z.clone());
        z
    }

    /// The interned text of a version, `None` if it is not semver: rows
    /// whose text does not parse are left out of node-days and node
    /// states (as they always were).
    pub fn version(&mut self, text: &str) -> Option<Text> {
        if let Some((v, semver)) = self.versions.get_key_value(text) {
            return semver.then(|| Text(v.clone()));
        }
        let v: Arc<str> = Arc::from(text);
        let semver = semver::Version::parse(text).is_ok();
        self.versions.insert(v.clone(), semver);
        semver.then_some(Text(v))
    }

    pub fn node(&mut self, zone: &str, cluster: [u8; 16], node: [u8; 16]) -> NodeKey {
        NodeKey {
            zone: self.zone(zone),
            cluster: cluster.into(),
            node: node.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_as_the_tables_do() {
        let mut a = Interner::default();
        let mut b = Interner::default();
        let k = |i: &mut Interner, z: &str, c: u8, n: u8| {
            let mut cluster = [0u8; 16];
            cluster[0] = c;
            let mut node = [0u8; 16];
            node[15] = n;
            i.node(z, cluster, node)
        };
        // Bytes order: the first byte weighs most; zones by text first.
        assert!(k(&mut a, "a.example", 1, 9) < k(&mut a, "a.example", 2, 0));
        assert!(k(&mut a, "a.example", 1, 1) < k(&mut a, "a.example", 1, 2));
        assert!(k(&mut a, "b.example", 0, 0) > k(&mut a, "a.example", 9, 9));
        // Interned once; other interners' keys compare by content.
        assert_eq!(k(&mut a, "a.example", 1, 1), k(&mut b, "a.example", 1, 1));
        assert!(k(&mut b, "a.example", 1, 1) < k(&mut a, "b.example", 1, 1));
        assert_eq!(a.version("2.4.1"), b.version("2.4.1"));
        let v = |i: &mut Interner| i.version("2.4.1").unwrap().0;
        assert!(Arc::ptr_eq(&v(&mut a), &v(&mut a)));
        // Text that is not semver is no version, however often asked.
        assert_eq!(a.version("2.4"), None);
        assert_eq!(a.version("2.4"), None);
    }
}
