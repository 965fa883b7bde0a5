//! Shared secret keys and the keyring the server decrypts with.
//!
//! A key is written as one token, `vck1:<id>:<64 hex digits>`, so that it fits
//! in a file, an environment variable or a configuration-management secret
//! alike. The id travels in clear in every frame, which is what lets a vendor
//! roll keys: old and new keys are served side by side until old clients age out.

use std::fmt;
use std::path::Path;

use aes_gcm::{Aes256Gcm, KeyInit};

use super::error::KeyError;

const PREFIX: &str = "vck1";
/// What a v1 key's text looks like, for error messages.
pub(crate) const FORMAT_HINT: &str = "vck1:<id 0-255>:<64 hex digits>";

/// Reads a file that holds secret key material. On unix, a file that group
/// or others may access in any way is refused: the key decrypts every
/// report, and a server that silently accepted a world-readable key would
/// teach operators that this is fine.
pub(crate) fn read_private_file(path: &Path) -> Result<String, KeyError> {
    let shown = || path.display().to_string();
    let io = |source| KeyError::Io {
        path: shown(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    // The mode of the file opened, not of whatever the path names later.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: shown(),
                mode,
            });
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(io)?;
    Ok(text)
}

/// The first line of a key file that is neither blank nor a `#` comment.
pub(crate) fn token_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The one-byte key identifier carried in each frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u8);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A 256-bit secret with its id. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub id: KeyId,
    secret: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Key {
    pub fn new(id: KeyId, secret: [u8; 32]) -> Self {
        Key { id, secret }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate(id: KeyId) -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source is readable");
        Key { id, secret }
    }

    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Parses the `vck1:<id>:<hex>` token; surrounding whitespace and
    /// `#` comment lines (as in a key file) are ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let token = token_line(text).ok_or(KeyError::Format)?;
        let mut parts = token.split(':');
        let (Some(PREFIX), Some(id), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::Format);
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KeyError::Format);
        }
        let id: u8 = id.parse().map_err(|_| KeyError::Format)?;
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| KeyError::Format)?;
        let secret: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Format)?;
        Ok(Key::new(KeyId(id), secret))
    }

    /// Reads a key file (see [`read_private_file`]).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_private_file(path)?;
        Key::parse(&text).map_err(|_| KeyError::Malformed {
            path: path.display().to_string(),
            expected: FORMAT_HINT,
        })
    }

    /// The token form, as `parse` reads it.
    pub fn to_token(&self) -> String {
        format!(
            "{PREFIX}:{}:{}",
            self.id.0,
            data_encoding::HEXLOWER.encode(&self.secret)
        )
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.secret.into())
    }
}

/// The keys a server accepts, with their AES key schedules computed once at
/// load time rather than per query.
#[derive(Clone, Default)]
pub struct Keyring {
    slots: Vec<(KeyId, Aes256Gcm)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|(id, _)| id))
            .finish()
    }
}

impl Keyring {
    pub fn new(keys: &[Key]) -> Result<Self, KeyError> {
        let mut slots: Vec<(KeyId, Aes256Gcm)> = Vec::with_capacity(keys.len());
        for key in keys {
            if slots.iter().any(|(id, _)| *id == key.id) {
                return Err(KeyError::DuplicateId(key.id.0));
            }
            slots.push((key.id, key.cipher()));
        }
        Ok(Keyring { slots })
    }

    pub(crate) fn get(&self, id: KeyId) -> Option<&Aes256Gcm> {
        self.slots.iter().find(|(k, _)| *k == id).map(|(_, c)| c)
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.slots.iter().map(|(id, _)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let key = Key::generate(KeyId(7));
        let parsed = Key::parse(&format!("# comment\n{}\n", key.to_token())).unwrap();
        assert_eq!(parsed, key);
    }

    #[test]
    fn rejects_malformed_tokens() {
        for bad in [
            "",
            "vck1:1:abcd",
            "vck2:1:0000000000000000000000000000000000000000000000000000000000000000",
            "vck1:256:0000000000000000000000000000000000000000000000000000000000000000",
            "vck1:1:000000000000000000000000000000000000000000000000000000000000000g",
            "vck1:1:00:00",
            "vck1:+1:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn keyring_rejects_duplicate_ids() {
        let a = Key::generate(KeyId(1));
        let b = Key::generate(KeyId(1));
        assert!(matches!(
            Keyring::new(&[a, b]),
            Err(KeyError::DuplicateId(1))
        ));
    }

    #[cfg(unix)]
    fn key_file(dir: &Path, mode: u32, text: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("k.key");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn load_refuses_keys_others_can_access() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate(KeyId(2));
        for mode in [0o640, 0o604, 0o644, 0o620, 0o601] {
            let path = key_file(dir.path(), mode, &key.to_token());
            let err = Key::load(&path).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, KeyError::Permissions { .. }), "{mode:o}");
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
        }
        for mode in [0o600, 0o400] {
            let path = key_file(dir.path(), mode, &key.to_token());
            assert_eq!(Key::load(&path).unwrap(), key, "{mode:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn malformed_key_file_is_named_and_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "0123456789abcdef".repeat(4);
        let path = key_file(dir.path(), 0o600, &format!("vck1:1:{}", &hex[1..]));
        let text = Key::load(&path).unwrap_err().to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(!text.contains(&hex[1..]), "{text}");
    }

    #[test]
    fn debug_hides_secret() {
        let key = Key::new(KeyId(1), [0xab; 32]);
        assert!(!format!("{key:?}").contains("ab"));
    }
}
