//! Protocol v2 key pairs: what the server keeps and what clients carry.
//!
//! One key id names a pair of pairs: an X25519 key that reports are sealed
//! to (HPKE) and an Ed25519 key that signs the zone's release policy. The
//! client's file holds only the two public halves, so extracting it from a
//! shipped binary yields nothing that decrypts a report or forges a policy.
//!
//! Text forms, one token per file (blank and `#` lines ignored):
//! - private: `vck2-private:<id>:<X25519 secret, 64 hex>:<Ed25519 seed, 64 hex>`
//! - public:  `vck2-public:<id>:<X25519 public, 64 hex>:<Ed25519 public, 64 hex>`

use std::fmt;
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, Serializable};

use super::super::error::KeyError;
use super::super::key::{read_private_file, token_line, KeyId};
use super::Kem;

const PRIVATE_PREFIX: &str = "vck2-private";
const PUBLIC_PREFIX: &str = "vck2-public";
const PRIVATE_HINT: &str = "vck2-private:<id 0-255>:<64 hex digits>:<64 hex digits>";
const PUBLIC_HINT: &str = "vck2-public:<id 0-255>:<64 hex digits>:<64 hex digits>";

type KemPrivate = <Kem as hpke::Kem>::PrivateKey;
type KemPublic = <Kem as hpke::Kem>::PublicKey;

/// What a client carries: the key that reports are sealed to, and the key
/// that verifies the policy. Safe to publish.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: KeyId,
    pub(crate) seal_to: KemPublic,
    pub(crate) verify: VerifyingKey,
}

/// What only the name servers hold. `Debug` never prints secrets.
#[derive(Clone)]
pub struct PrivateKey {
    pub id: KeyId,
    pub(crate) open: KemPrivate,
    pub(crate) sign: SigningKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_token())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `prefix:id:hex32:hex32`, or `None`.
fn split_token<'a>(text: &'a str, prefix: &str) -> Option<(KeyId, [u8; 32], [u8; 32])> {
    let token: &'a str = token_line(text)?;
    let mut parts = token.split(':');
    let (Some(p), Some(id), Some(a), Some(b), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if p != prefix || id.is_empty() || !id.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let id: u8 = id.parse().ok()?;
    let hex = |h: &str| -> Option<[u8; 32]> {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(h.as_bytes())
            .ok()?
            .try_into()
            .ok()
    };
    Some((KeyId(id), hex(a)?, hex(b)?))
}

fn kind_of(text: &str) -> &'static str {
    match token_line(text).and_then(|t| t.split(':').next()) {
        Some(PRIVATE_PREFIX) => "v2 private",
        Some(PUBLIC_PREFIX) => "v2 public",
        Some("vck1") => "v1 shared",
        _ => "unknown",
    }
}

impl PrivateKey {
    /// A fresh pair from the operating system's random source.
    pub fn generate(id: KeyId) -> Self {
        let (open, _) = Kem::gen_keypair();
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
        PrivateKey {
            id,
            open,
            sign: SigningKey::from_bytes(&seed),
        }
    }

    /// The pair derived from fixed bytes (published test vectors only).
    pub fn from_secrets(id: KeyId, x25519: [u8; 32], ed25519_seed: [u8; 32]) -> Option<Self> {
        Some(PrivateKey {
            id,
            open: KemPrivate::from_bytes(&x25519).ok()?,
            sign: SigningKey::from_bytes(&ed25519_seed),
        })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            seal_to: Kem::sk_to_pk(&self.open),
            verify: self.sign.verifying_key(),
        }
    }

    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (id, x, seed) = split_token(text, PRIVATE_PREFIX).ok_or(KeyError::Format)?;
        Self::from_secrets(id, x, seed).ok_or(KeyError::Format)
    }

    pub fn to_token(&self) -> String {
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
        format!(
            "{PRIVATE_PREFIX}:{}:{}:{}",
            self.id.0,
            hex(&self.open.to_bytes()),
            hex(self.sign.as_bytes())
        )
    }

    /// Reads a private key file, refusing one that group or others can
    /// access (it decrypts every report and signs the policy).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_private_file(path)?;
        Self::parse(&text).map_err(|_| malformed(path, &text, "v2 private", PRIVATE_HINT))
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (id, x, ed) = split_token(text, PUBLIC_PREFIX).ok_or(KeyError::Format)?;
        Ok(PublicKey {
            id,
            seal_to: KemPublic::from_bytes(&x).map_err(|_| KeyError::Format)?,
            verify: VerifyingKey::from_bytes(&ed).map_err(|_| KeyError::Format)?,
        })
    }

    pub fn to_token(&self) -> String {
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
        format!(
            "{PUBLIC_PREFIX}:{}:{}:{}",
            self.id.0,
            hex(&self.seal_to.to_bytes()),
            hex(self.verify.as_bytes())
        )
    }

    /// Reads a public key file (any mode: nothing in it is secret).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|_| malformed(path, &text, "v2 public", PUBLIC_HINT))
    }
}

/// A file that holds the wrong kind of key says so; anything else is
/// "malformed", without echoing the text (it may be a secret with a typo).
fn malformed(path: &Path, text: &str, expected: &'static str, hint: &'static str) -> KeyError {
    match kind_of(text) {
        "unknown" => KeyError::Malformed {
            path: path.display().to_string(),
            expected: hint,
        },
        found if found == expected => KeyError::Malformed {
            path: path.display().to_string(),
            expected: hint,
        },
        found => KeyError::Kind {
            path: path.display().to_string(),
            found,
            expected,
        },
    }
}

/// The private keys a server holds for one zone, by id.
#[derive(Debug, Clone, Default)]
pub struct PrivateKeyring {
    keys: Vec<PrivateKey>,
}

impl PrivateKeyring {
    pub fn new(keys: Vec<PrivateKey>) -> Result<Self, KeyError> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.id == k.id) {
                return Err(KeyError::DuplicateId(k.id.0));
            }
        }
        Ok(PrivateKeyring { keys })
    }

    pub fn get(&self, id: KeyId) -> Option<&PrivateKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PrivateKey> {
        self.keys.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let private = PrivateKey::generate(KeyId(3));
        let again = PrivateKey::parse(&format!("# server only\n{}\n", private.to_token())).unwrap();
        assert_eq!(again.to_token(), private.to_token());
        let public = private.public();
        assert_eq!(PublicKey::parse(&public.to_token()).unwrap(), public);
        assert_eq!(again.public(), public);
    }

    #[test]
    fn debug_hides_secrets() {
        let private = PrivateKey::generate(KeyId(1));
        let token = private.to_token();
        let secret_hex = token.split(':').nth(2).unwrap();
        assert!(!format!("{private:?}").contains(secret_hex));
    }

    #[test]
    fn wrong_kind_of_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let private = PrivateKey::generate(KeyId(1));
        let path = dir.path().join("client.pub");
        std::fs::write(&path, private.to_token()).unwrap();
        let err = PublicKey::load(&path).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::Kind {
                    found: "v2 private",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_key_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zone.private");
        std::fs::write(&path, PrivateKey::generate(KeyId(1)).to_token()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = PrivateKey::load(&path).unwrap_err().to_string();
        assert!(text.contains("chmod 600"), "{text}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(PrivateKey::load(&path).is_ok());
    }

    #[test]
    fn keyring_rejects_duplicate_ids() {
        let a = PrivateKey::generate(KeyId(1));
        let b = PrivateKey::generate(KeyId(1));
        assert!(matches!(
            PrivateKeyring::new(vec![a, b]),
            Err(KeyError::DuplicateId(1))
        ));
    }
}
