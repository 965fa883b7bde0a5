//! Protocol v2 keys: a long-lived signing key per key id, and weekly
//! sealing keys that ratchet forward.
//!
//! A client carries only the zone's Ed25519 **verification** key. The
//! X25519 key it seals reports to travels inside the signed policy and
//! changes every epoch (a week): every name server of the zone derives
//! the same epoch keys from a **ratchet seed**, without talking to the
//! others, and keeps only the seeds of the epochs it may still need, so a
//! stolen server cannot open reports recorded long before (forward
//! secrecy; docs/PROTOCOL.md §16).
//!
//! ```text
//! epoch(t)   = floor(t / 604800)                       (weeks since 1970, Thursdays 00:00 UTC)
//! seed(e+1)  = HMAC-SHA256(seed(e), "vcheckd v2 ratchet")
//! key(e)     = DHKEM(X25519, HKDF-SHA256).DeriveKeyPair(HMAC-SHA256(seed(e), "vcheckd v2 epoch key"))
//! ```
//!
//! Text forms, one token per file (blank and `#` lines ignored):
//! - private: `vck2-private:<id>:<Ed25519 seed, 64 hex>:<epoch>:<ratchet seed of that epoch, 64 hex>`
//! - public:  `vck2-public:<id>:<Ed25519 public key, 64 hex>`
//! - a server's own advanced copy of the seed, kept in its data folder:
//!   `vck2-ratchet:<id>:<epoch>:<seed, 64 hex>`

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use hpke::{Kem as _, Serializable};
use sha2::Sha256;

use super::super::error::KeyError;
use super::super::key::{read_private_file, token_line, KeyId};
use super::open::Recipient;
use super::Kem;

const PRIVATE_PREFIX: &str = "vck2-private";
const PUBLIC_PREFIX: &str = "vck2-public";
const RATCHET_PREFIX: &str = "vck2-ratchet";
const PRIVATE_HINT: &str = "vck2-private:<id 0-255>:<64 hex digits>:<epoch>:<64 hex digits>";
const PUBLIC_HINT: &str = "vck2-public:<id 0-255>:<64 hex digits>";

pub(crate) type KemPublic = <Kem as hpke::Kem>::PublicKey;

/// Seconds in an epoch: one week.
pub const EPOCH_SECS: u64 = 604_800;

/// How long past the end of its acceptance a sealing key is kept, so that
/// a frame received just before can still be opened from the journal.
pub const KEEP_AFTER_SECS: u64 = 86_400;

/// A week of sealing keys: `floor(unix time / 604800)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u16);

impl Epoch {
    /// The epoch of unix time `t` (saturating in the year 3226).
    pub fn at(t: u64) -> Epoch {
        Epoch(u16::try_from(t / EPOCH_SECS).unwrap_or(u16::MAX))
    }

    /// Its first second.
    pub fn start(self) -> u64 {
        u64::from(self.0) * EPOCH_SECS
    }

    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }

    pub fn prev(self) -> Epoch {
        Epoch(self.0.saturating_sub(1))
    }

    /// Whether a frame sealed to this epoch's key is accepted at `now`:
    /// the current epoch, the one before (a client's key from last week's
    /// policy) and the one after (a name server whose clock runs ahead).
    pub fn accepted_at(self, now: u64) -> bool {
        let current = Epoch::at(now);
        current.prev() <= self && self <= current.next()
    }

    /// The oldest epoch whose key a server keeps at `now`: every epoch
    /// accepted at `now`, and for [`KEEP_AFTER_SECS`] after an epoch stops
    /// being accepted, that one too (frames received just before wait in
    /// the journal to be opened).
    pub fn oldest_kept(now: u64) -> Epoch {
        Epoch::at(now.saturating_sub(KEEP_AFTER_SECS)).prev()
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn hmac(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// The ratchet seed of one epoch. `Debug` prints no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Ratchet {
    pub epoch: Epoch,
    seed: [u8; 32],
}

impl fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ratchet(epoch {})", self.epoch)
    }
}

impl Ratchet {
    pub fn new(epoch: Epoch, seed: [u8; 32]) -> Self {
        Ratchet { epoch, seed }
    }

    /// The seed of epoch `to`, or `None` if `to` is earlier (the ratchet
    /// only turns forward: that is what erases the past).
    pub fn advance_to(&self, to: Epoch) -> Option<Ratchet> {
        if to < self.epoch {
            return None;
        }
        let mut seed = self.seed;
        for _ in self.epoch.0..to.0 {
            seed = hmac(&seed, b"vcheckd v2 ratchet");
        }
        Some(Ratchet { epoch: to, seed })
    }

    /// This epoch's HPKE key pair.
    pub fn epoch_key(&self) -> EpochKey {
        let ikm = hmac(&self.seed, b"vcheckd v2 epoch key");
        let (private, public) = Kem::derive_keypair(&ikm);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&private.to_bytes());
        EpochKey {
            epoch: self.epoch,
            recipient: Recipient::new(secret),
            public,
        }
    }

    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }
}

/// One epoch's sealing key pair, as a name server holds it: the private
/// half prepared to open frames once, when the epoch's key is derived
/// (its public key and the key schedule's constants), so that no open
/// derives them again.
#[derive(Clone)]
pub struct EpochKey {
    pub epoch: Epoch,
    pub(crate) recipient: Recipient,
    pub(crate) public: KemPublic,
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochKey(epoch {})", self.epoch)
    }
}

impl EpochKey {
    /// The public half's bytes, as the policy carries it.
    pub fn public_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.public.to_bytes());
        out
    }
}

/// What a client seals a report to: learned from a verified policy.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey {
    pub key_id: KeyId,
    pub epoch: Epoch,
    pub(crate) public: KemPublic,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealKey(key {}, epoch {}, {})",
            self.key_id,
            self.epoch,
            data_encoding::HEXLOWER.encode(&self.public.to_bytes())
        )
    }
}

impl SealKey {
    /// From the 32 bytes of an X25519 public key.
    pub fn from_bytes(key_id: KeyId, epoch: Epoch, bytes: &[u8; 32]) -> Option<Self> {
        use hpke::Deserializable;
        Some(SealKey {
            key_id,
            epoch,
            public: KemPublic::from_bytes(bytes).ok()?,
        })
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.public.to_bytes());
        out
    }
}

/// What a client carries: the key that verifies the zone's policy. Safe to
/// publish.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: KeyId,
    pub(crate) verify: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_token())
    }
}

/// What only the name servers hold: the signing key and the ratchet.
/// `Debug` never prints secrets.
#[derive(Clone)]
pub struct PrivateKey {
    pub id: KeyId,
    pub(crate) sign: SigningKey,
    pub ratchet: Ratchet,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("id", &self.id)
            .field("epoch", &self.ratchet.epoch)
            .finish_non_exhaustive()
    }
}

fn hex32(h: &str) -> Option<[u8; 32]> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(h.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

fn key_id(text: &str) -> Option<KeyId> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().map(KeyId)
}

fn epoch_of(text: &str) -> Option<Epoch> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().map(Epoch)
}

/// The token's fields after `prefix`, or `None`.
fn fields<'a>(text: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let mut parts = token_line(text)?.split(':');
    (parts.next()? == prefix).then(|| parts.collect())
}

fn kind_of(text: &str) -> &'static str {
    match token_line(text).and_then(|t| t.split(':').next()) {
        Some(PRIVATE_PREFIX) => "v2 private",
        Some(PUBLIC_PREFIX) => "v2 public",
        Some(RATCHET_PREFIX) => "v2 ratchet state",
        Some("vck1") => "v1 shared",
        _ => "unknown",
    }
}

fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

impl PrivateKey {
    /// A fresh key from the operating system's random source, its ratchet
    /// starting at the epoch of `now`.
    pub fn generate(id: KeyId, now: u64) -> Self {
        let mut seed = [0u8; 32];
        let mut ratchet = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source works");
        getrandom::fill(&mut ratchet).expect("the OS random source works");
        Self::from_secrets(id, seed, Ratchet::new(Epoch::at(now), ratchet))
    }

    /// The key from fixed bytes (published test vectors).
    pub fn from_secrets(id: KeyId, ed25519_seed: [u8; 32], ratchet: Ratchet) -> Self {
        PrivateKey {
            id,
            sign: SigningKey::from_bytes(&ed25519_seed),
            ratchet,
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            verify: self.sign.verifying_key(),
        }
    }

    /// The same key with its ratchet turned forward to `epoch` (or as it
    /// is, if it is there already or later).
    pub fn advanced(&self, epoch: Epoch) -> PrivateKey {
        PrivateKey {
            ratchet: self
                .ratchet
                .advance_to(epoch)
                .unwrap_or_else(|| self.ratchet.clone()),
            ..self.clone()
        }
    }

    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let f = fields(text, PRIVATE_PREFIX).ok_or(KeyError::Format)?;
        let [id, seed, epoch, ratchet] = f.as_slice() else {
            return Err(KeyError::Format);
        };
        Ok(Self::from_secrets(
            key_id(id).ok_or(KeyError::Format)?,
            hex32(seed).ok_or(KeyError::Format)?,
            Ratchet::new(
                epoch_of(epoch).ok_or(KeyError::Format)?,
                hex32(ratchet).ok_or(KeyError::Format)?,
            ),
        ))
    }

    pub fn to_token(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}:{}:{}:{}:{}",
            self.id.0,
            hex(self.sign.as_bytes()),
            self.ratchet.epoch,
            hex(self.ratchet.seed())
        )
    }

    /// Reads a private key file, refusing one that group or others can
    /// access (it signs the policy and opens reports).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_private_file(path)?;
        Self::parse(&text).map_err(|_| malformed(path, &text, "v2 private", PRIVATE_HINT))
    }

    /// A short, stable name for this key's ratchet file: its id and the
    /// start of its public key.
    fn ratchet_file(&self, dir: &Path) -> PathBuf {
        let public = self.sign.verifying_key();
        dir.join(format!(
            "{}-{}.ratchet",
            self.id.0,
            hex(&public.as_bytes()[..8])
        ))
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let f = fields(text, PUBLIC_PREFIX).ok_or(KeyError::Format)?;
        let [id, verify] = f.as_slice() else {
            return Err(KeyError::Format);
        };
        Ok(PublicKey {
            id: key_id(id).ok_or(KeyError::Format)?,
            verify: VerifyingKey::from_bytes(&hex32(verify).ok_or(KeyError::Format)?)
                .map_err(|_| KeyError::Format)?,
        })
    }

    pub fn to_token(&self) -> String {
        format!(
            "{PUBLIC_PREFIX}:{}:{}",
            self.id.0,
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
        found if found == "unknown" || found == expected => KeyError::Malformed {
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

/// One key id's keys on a name server: the signing key, and the sealing
/// keys of every epoch still kept, oldest first.
#[derive(Clone)]
pub struct ZoneKey {
    pub id: KeyId,
    pub(crate) sign: SigningKey,
    /// The seed of the oldest epoch kept: what is persisted, and what the
    /// next turn starts from.
    ratchet: Ratchet,
    held: Vec<EpochKey>,
}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneKey")
            .field("id", &self.id)
            .field(
                "held",
                &self.held.iter().map(|k| k.epoch.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ZoneKey {
    /// The keys of `key` kept at `now`: from the later of its ratchet's
    /// epoch and [`Epoch::oldest_kept`], through the epoch after `now`'s.
    pub fn at(key: &PrivateKey, now: u64) -> ZoneKey {
        let ratchet = key
            .ratchet
            .advance_to(Epoch::oldest_kept(now))
            .unwrap_or_else(|| key.ratchet.clone());
        let last = Epoch::at(now).next();
        let mut held = Vec::new();
        let mut r = ratchet.clone();
        while r.epoch <= last {
            held.push(r.epoch_key());
            if r.epoch == Epoch(u16::MAX) {
                break;
            }
            r = match r.advance_to(r.epoch.next()) {
                Some(next) => next,
                None => break,
            };
        }
        ZoneKey {
            id: key.id,
            sign: key.sign.clone(),
            ratchet,
            held,
        }
    }

    /// The sealing key of `epoch`, if kept.
    pub fn epoch(&self, epoch: Epoch) -> Option<&EpochKey> {
        self.held.iter().find(|k| k.epoch == epoch)
    }

    /// The ratchet as persisted: the seed of the oldest epoch kept.
    pub fn ratchet(&self) -> &Ratchet {
        &self.ratchet
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            verify: self.sign.verifying_key(),
        }
    }

    /// The private key as kept: its ratchet at the oldest epoch held.
    pub fn private(&self) -> PrivateKey {
        PrivateKey {
            id: self.id,
            sign: self.sign.clone(),
            ratchet: self.ratchet.clone(),
        }
    }
}

/// The keys a server holds for one zone, by id.
#[derive(Debug, Clone, Default)]
pub struct PrivateKeyring {
    keys: Vec<ZoneKey>,
}

impl PrivateKeyring {
    /// The keys of `keys` kept at `now`.
    pub fn new(keys: &[PrivateKey], now: u64) -> Result<Self, KeyError> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.id == k.id) {
                return Err(KeyError::DuplicateId(k.id.0));
            }
        }
        Ok(PrivateKeyring {
            keys: keys.iter().map(|k| ZoneKey::at(k, now)).collect(),
        })
    }

    /// The same keys at a later `now`: older epochs dropped, newer derived.
    pub fn at(&self, now: u64) -> Self {
        PrivateKeyring {
            keys: self
                .keys
                .iter()
                .map(|k| ZoneKey::at(&k.private(), now))
                .collect(),
        }
    }

    pub fn get(&self, id: KeyId) -> Option<&ZoneKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The sealing key for a frame's key id and epoch, if kept.
    pub fn epoch_key(&self, id: KeyId, epoch: Epoch) -> Option<&EpochKey> {
        self.get(id)?.epoch(epoch)
    }

    /// What a client seals to for key `id` in `epoch` (the policy carries
    /// it), if kept.
    pub fn seal_key(&self, id: KeyId, epoch: Epoch) -> Option<SealKey> {
        let key = self.epoch_key(id, epoch)?;
        Some(SealKey {
            key_id: id,
            epoch,
            public: key.public.clone(),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &ZoneKey> {
        self.keys.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where a name server keeps its own advanced copy of each key's ratchet
/// (its data folder), so that the seeds of past epochs are erased from
/// this server even though the key file it was given still holds one.
#[derive(Debug, Clone)]
pub struct RatchetStore {
    dir: PathBuf,
}

/// What [`RatchetStore::sync`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The key, its ratchet at the oldest epoch kept.
    pub key: PrivateKey,
    /// The key file's own seed is of an epoch older than that: whoever
    /// copies the file can open reports sealed since then.
    pub file_is_behind: bool,
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.sign.as_bytes() == other.sign.as_bytes()
            && self.ratchet == other.ratchet
    }
}

impl Eq for PrivateKey {}

impl RatchetStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RatchetStore { dir: dir.into() }
    }

    /// The key as this server holds it at `now`: the later of the key
    /// file's ratchet and the stored one (which must be the same chain),
    /// turned to [`Epoch::oldest_kept`]; the store is rewritten when it
    /// moved, erasing the older seed.
    pub fn sync(&self, key: &PrivateKey, now: u64) -> Result<Synced, KeyError> {
        let path = key.ratchet_file(&self.dir);
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let stored = match read_private_file(&path) {
            Ok(text) => Some(
                parse_ratchet(&text, key.id).ok_or_else(|| KeyError::Malformed {
                    path: path.display().to_string(),
                    expected: "vck2-ratchet:<id>:<epoch>:<64 hex digits>",
                })?,
            ),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(e),
        };
        let mut start = key.ratchet.clone();
        if let Some(stored) = stored {
            if stored.epoch >= start.epoch {
                // The stored seed must follow from the file's: a key file
                // replaced by another with the same public key is refused.
                if start.advance_to(stored.epoch).as_ref() != Some(&stored) {
                    return Err(KeyError::RatchetMismatch {
                        path: path.display().to_string(),
                    });
                }
                start = stored;
            }
        }
        let oldest = Epoch::oldest_kept(now);
        let now_at = start.advance_to(oldest).unwrap_or_else(|| start.clone());
        let file_is_behind = key.ratchet.epoch < now_at.epoch;
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        write_private(&path, &format!(
            "# vcheckd: this server's ratchet seed for key {} (older seeds erased)\n{RATCHET_PREFIX}:{}:{}:{}\n",
            key.id,
            key.id.0,
            now_at.epoch,
            hex(now_at.seed())
        ))
        .map_err(io)?;
        Ok(Synced {
            key: PrivateKey {
                ratchet: now_at,
                ..key.clone()
            },
            file_is_behind,
        })
    }
}

fn parse_ratchet(text: &str, id: KeyId) -> Option<Ratchet> {
    let f = fields(text, RATCHET_PREFIX)?;
    let [kid, epoch, seed] = f.as_slice() else {
        return None;
    };
    (key_id(kid)? == id).then_some(())?;
    Some(Ratchet::new(epoch_of(epoch)?, hex32(seed)?))
}

/// Writes `text` to `path` readable by its owner only, atomically (a temp
/// file synced and renamed over the old one, then the folder synced), so
/// that the old content is gone from the name even after a crash.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: u64 = EPOCH_SECS;

    #[test]
    fn tokens_round_trip() {
        let private = PrivateKey::generate(KeyId(3), 2_900 * WEEK);
        let again = PrivateKey::parse(&format!("# server only\n{}\n", private.to_token())).unwrap();
        assert_eq!(again, private);
        let public = private.public();
        assert_eq!(PublicKey::parse(&public.to_token()).unwrap(), public);
        assert!(PublicKey::parse("vck2-public:3:00").is_err());
        assert!(PrivateKey::parse(&public.to_token()).is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let private = PrivateKey::generate(KeyId(1), 0);
        let token = private.to_token();
        let shown = format!("{private:?} {:?}", private.ratchet);
        for secret in [
            token.split(':').nth(2).unwrap(),
            token.split(':').nth(4).unwrap(),
        ] {
            assert!(!shown.contains(secret));
        }
    }

    #[test]
    fn the_ratchet_turns_forward_only() {
        let r = Ratchet::new(Epoch(10), [5; 32]);
        let r12 = r.advance_to(Epoch(12)).unwrap();
        assert_eq!(
            r.advance_to(Epoch(11)).unwrap().advance_to(Epoch(12)),
            Some(r12.clone())
        );
        assert_eq!(r12.advance_to(Epoch(10)), None);
        assert_ne!(r.epoch_key().public_bytes(), r12.epoch_key().public_bytes());
    }

    #[test]
    fn a_server_keeps_the_accepted_epochs_and_a_day_more() {
        let key = PrivateKey::generate(KeyId(1), 100 * WEEK);
        // Mid-week 105: 104, 105 and 106 are accepted and kept.
        let ring =
            PrivateKeyring::new(std::slice::from_ref(&key), 105 * WEEK + 3 * 86_400).unwrap();
        let held: Vec<u16> = ring
            .get(KeyId(1))
            .unwrap()
            .held
            .iter()
            .map(|k| k.epoch.0)
            .collect();
        assert_eq!(held, [104, 105, 106]);
        // The first hours of week 105: 103 is kept a day past its week of
        // acceptance (104), for frames still in the journal.
        let early = PrivateKeyring::new(std::slice::from_ref(&key), 105 * WEEK + 3_600).unwrap();
        let held: Vec<u16> = early
            .get(KeyId(1))
            .unwrap()
            .held
            .iter()
            .map(|k| k.epoch.0)
            .collect();
        assert_eq!(held, [103, 104, 105, 106]);
        assert!(Epoch(104).accepted_at(105 * WEEK));
        assert!(!Epoch(103).accepted_at(105 * WEEK));
        // Every server derives the same keys: the same from a later start.
        let later = ring.at(106 * WEEK + 3 * 86_400);
        assert_eq!(
            later
                .epoch_key(KeyId(1), Epoch(106))
                .unwrap()
                .public_bytes(),
            ring.epoch_key(KeyId(1), Epoch(106)).unwrap().public_bytes()
        );
        assert!(later.epoch_key(KeyId(1), Epoch(104)).is_none());
    }

    #[test]
    fn the_store_erases_the_past_and_refuses_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = RatchetStore::new(dir.path().join("ratchet"));
        let key = PrivateKey::generate(KeyId(2), 100 * WEEK);
        let first = store.sync(&key, 100 * WEEK + 86_400 * 2).unwrap();
        assert!(!first.file_is_behind);
        assert_eq!(first.key.ratchet.epoch, Epoch(100));
        let later = store.sync(&key, 110 * WEEK + 86_400 * 2).unwrap();
        assert!(later.file_is_behind);
        assert_eq!(later.key.ratchet.epoch, Epoch(109));
        // The store moved on: the old seed is gone from it, and a restart
        // with the old key file starts from the store, not the file.
        let text = std::fs::read_to_string(key.ratchet_file(&dir.path().join("ratchet"))).unwrap();
        assert!(!text.contains(&hex(key.ratchet.seed())));
        let again = store.sync(&key, 110 * WEEK + 86_400 * 3).unwrap();
        assert_eq!(again.key, later.key);
        // A key file with the same id and signing key but another ratchet
        // seed is another chain: refused, not silently mixed.
        let forged = PrivateKey {
            ratchet: Ratchet::new(Epoch(100), [9; 32]),
            ..key.clone()
        };
        assert!(matches!(
            store.sync(&forged, 110 * WEEK + 86_400 * 3),
            Err(KeyError::RatchetMismatch { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn private_key_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zone.private");
        std::fs::write(&path, PrivateKey::generate(KeyId(1), 0).to_token()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = PrivateKey::load(&path).unwrap_err().to_string();
        assert!(text.contains("chmod 600"), "{text}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(PrivateKey::load(&path).is_ok());
    }

    #[test]
    fn wrong_kind_of_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.pub");
        std::fs::write(&path, PrivateKey::generate(KeyId(1), 0).to_token()).unwrap();
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

    #[test]
    fn keyring_rejects_duplicate_ids() {
        let a = PrivateKey::generate(KeyId(1), 0);
        let b = PrivateKey::generate(KeyId(1), 0);
        assert!(matches!(
            PrivateKeyring::new(&[a, b], 0),
            Err(KeyError::DuplicateId(1))
        ));
    }
}
