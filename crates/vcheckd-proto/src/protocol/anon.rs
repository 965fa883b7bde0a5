//! Anonymizing real cluster and node ids on the client, before encryption.
//!
//! The server only ever sees `HMAC-SHA256(k_anon, ...)[..16]`, where `k_anon`
//! is derived from the shared key. The same real id always maps to the same
//! anonymized id (so clusters can be counted over time), and a vendor who
//! holds the key can at most confirm a guessed id: ids should therefore be
//! high-entropy (UUIDs), which cluster ids almost always are.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::Key;
use super::payload::AnonId;

type HmacSha256 = Hmac<Sha256>;

const DERIVE_LABEL: &[u8] = b"vcheckd v1 anonymize";

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// Which id is being anonymized. Node ids are hashed together with their
/// cluster id, so two clusters that both name a node "node-1" stay distinct.
pub enum IdKind<'a> {
    Cluster,
    Node { cluster: &'a str },
}

/// The anonymized form of a real id, as a compatible client must compute it:
///
/// ```text
/// k_anon  = HMAC-SHA256(secret, "vcheckd v1 anonymize")
/// cluster = HMAC-SHA256(k_anon, "cluster" 0x00 cluster_id)[..16]
/// node    = HMAC-SHA256(k_anon, "node" 0x00 cluster_id 0x00 node_id)[..16]
/// ```
pub fn anonymize(key: &Key, kind: IdKind<'_>, real_id: &str) -> AnonId {
    let mut derive = mac(key.secret());
    derive.update(DERIVE_LABEL);
    let k_anon = derive.finalize().into_bytes();

    let mut m = mac(&k_anon);
    match kind {
        IdKind::Cluster => m.update(b"cluster\0"),
        IdKind::Node { cluster } => {
            m.update(b"node\0");
            m.update(cluster.as_bytes());
            m.update(b"\0");
        }
    }
    m.update(real_id.as_bytes());
    let digest = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    AnonId(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::KeyId;

    #[test]
    fn stable_and_separated() {
        let key = Key::new(KeyId(1), [7; 32]);
        let c = anonymize(&key, IdKind::Cluster, "c1");
        assert_eq!(c, anonymize(&key, IdKind::Cluster, "c1"));
        assert_ne!(c, anonymize(&key, IdKind::Cluster, "c2"));
        let n1 = anonymize(&key, IdKind::Node { cluster: "c1" }, "node-1");
        let n2 = anonymize(&key, IdKind::Node { cluster: "c2" }, "node-1");
        assert_ne!(n1, n2);
        let other = Key::new(KeyId(1), [8; 32]);
        assert_ne!(c, anonymize(&other, IdKind::Cluster, "c1"));
    }
}
