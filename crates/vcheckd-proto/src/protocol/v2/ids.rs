//! v2 anonymized ids: anonymous against the operator too.
//!
//! ```text
//! salt           = SHA-256("vcheckd v2 cluster salt" 0x00 zone)[..16]
//! cluster secret = Argon2id(password = cluster id, salt, t = 3, m = 64 MiB, p = 1, 32 bytes)
//! cluster        = HMAC-SHA256(cluster secret, "vcheckd v2 cluster")[..16]
//! node           = HMAC-SHA256(cluster secret, "vcheckd v2 node" 0x00 node id)[..16]
//! ```
//!
//! The operator opens every report, so it sees these ids. To recover a
//! real cluster id it must guess it and pay one Argon2id per guess
//! (64 MiB, about 0.1-0.35 s of one core here: 40 bits of entropy cost
//! thousands of CPU-years); a node id is keyed by the cluster secret, so it
//! cannot be guessed at all without first guessing its cluster's id. The
//! ids stay stable, so clusters and nodes are still counted over time; the
//! zone in the salt keeps two vendors from linking one cluster's ids.
//!
//! A client computes the cluster secret once per process ([`ClusterSecret`]
//! is what it keeps), then each report costs two HMACs.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::super::payload::AnonId;
use super::super::zone::ZoneName;

/// Argon2id's memory cost in KiB (64 MiB, RFC 9106 §4's second choice).
pub const ARGON2_MEMORY_KIB: u32 = 65_536;
/// Argon2id's passes over the memory.
pub const ARGON2_ITERATIONS: u32 = 3;
/// Argon2id's lanes: one, so that a client needs one thread.
pub const ARGON2_LANES: u32 = 1;

/// The secret a client derives from its real cluster id, once. Never sent;
/// `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret([u8; 32]);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// The Argon2id salt for `zone`.
pub fn salt(zone: &ZoneName) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"vcheckd v2 cluster salt\0")
        .chain_update(zone.as_str().as_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl ClusterSecret {
    /// Derives the secret of `cluster_id` under `zone` (the slow step).
    pub fn derive(zone: &ZoneName, cluster_id: &str) -> Self {
        let params =
            argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, Some(32))
                .expect("fixed Argon2 parameters are valid");
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(cluster_id.as_bytes(), &salt(zone), &mut out)
            .expect("a 16-byte salt and a 32-byte output are within Argon2's limits");
        ClusterSecret(out)
    }

    /// The secret from its bytes (test vectors, a client's own cache).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ClusterSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self, parts: &[&[u8]]) -> AnonId {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(p);
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        AnonId(out)
    }

    /// The anonymized cluster id.
    pub fn cluster(&self) -> AnonId {
        self.mac(&[b"vcheckd v2 cluster"])
    }

    /// The anonymized id of `node_id` in this cluster.
    pub fn node(&self, node_id: &str) -> AnonId {
        self.mac(&[b"vcheckd v2 node\0", node_id.as_bytes()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_zone_and_keyed_by_the_cluster() {
        let zone = ZoneName::new("vc.example.com").unwrap();
        let a = ClusterSecret::derive(&zone, "cluster-a");
        assert_eq!(a, ClusterSecret::derive(&zone, "cluster-a"));
        let b = ClusterSecret::derive(&zone, "cluster-b");
        assert_ne!(a.cluster(), b.cluster());
        // The same node name in two clusters: unlinkable.
        assert_ne!(a.node("node-1"), b.node("node-1"));
        assert_ne!(a.node("node-1"), a.node("node-2"));
        let other = ZoneName::new("vc.example.org").unwrap();
        assert_ne!(
            ClusterSecret::derive(&other, "cluster-a").cluster(),
            a.cluster()
        );
        assert_eq!(format!("{a:?}"), "ClusterSecret(..)");
    }
}
