//! The serials a server has signed v2 policies under, and what each stood
//! for: TUF's rule that one version number names one content.
//!
//! A client refuses a policy whose serial is lower than one it accepted,
//! but it cannot see that two policies of the same serial say different
//! things (releases edited, the serial not raised: one client learns "11.1.0
//! is available", the next "11.0.0 is up to date", both accepted). So the
//! server remembers, per zone, the highest serial it signed and the digest
//! of that serial's release section (advisory URL and releases: not the
//! sealing key, effort or times, which change under one serial), and
//! refuses to load releases that differ under the same serial, or a lower
//! serial. File: `<state dir>/policy-serials`, one line per zone:
//! `<zone> <serial> <SHA-256 of the release section, hex>`, rewritten
//! atomically when a serial is first signed.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SerialError {
    #[error("zone {zone}: the releases changed but the SOA serial {serial} did not: raise the serial in the zone file (policies signed under one serial must not change), then reload")]
    SameSerial { zone: String, serial: u32 },
    #[error("zone {zone}: the SOA serial {serial} is lower than serial {signed} already signed: clients that saw {signed} refuse it; set the serial above {signed}")]
    Backwards {
        zone: String,
        serial: u32,
        signed: u32,
    },
    #[error("cannot read or write {path}: check the state folder's permissions (it is the database's folder)")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Signed {
    zone: String,
    serial: u32,
    digest: String,
}

/// The file of signed serials.
#[derive(Debug)]
pub(crate) struct SignedSerials {
    path: PathBuf,
    entries: Vec<Signed>,
}

/// The digest of a release section.
pub(crate) fn digest(section: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(section))
}

impl SignedSerials {
    pub(crate) fn load(dir: &Path) -> Result<Self, SerialError> {
        let path = dir.join("policy-serials");
        let io = |source| SerialError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some(Signed {
                    zone: w.next()?.to_string(),
                    serial: w.next()?.parse().ok()?,
                    digest: w.next()?.to_string(),
                })
            })
            .collect();
        Ok(SignedSerials { path, entries })
    }

    /// Checks that `zone` may sign `serial` for a release section of
    /// `digest`, and records it if it is new. Returns whether the file must
    /// be saved.
    pub(crate) fn admit(
        &mut self,
        zone: &str,
        serial: u32,
        digest: &str,
    ) -> Result<bool, SerialError> {
        match self.entries.iter_mut().find(|e| e.zone == zone) {
            Some(e) if serial < e.serial => Err(SerialError::Backwards {
                zone: zone.to_string(),
                serial,
                signed: e.serial,
            }),
            Some(e) if serial == e.serial && e.digest != digest => Err(SerialError::SameSerial {
                zone: zone.to_string(),
                serial,
            }),
            Some(e) if serial == e.serial => Ok(false),
            Some(e) => {
                e.serial = serial;
                e.digest = digest.to_string();
                Ok(true)
            }
            None => {
                self.entries.push(Signed {
                    zone: zone.to_string(),
                    serial,
                    digest: digest.to_string(),
                });
                Ok(true)
            }
        }
    }

    pub(crate) fn save(&self) -> Result<(), SerialError> {
        let io = |source| SerialError::Io {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text: String = self
            .entries
            .iter()
            .map(|e| format!("{} {} {}\n", e.zone, e.serial, e.digest))
            .collect();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_serial_one_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SignedSerials::load(dir.path()).unwrap();
        assert!(s.admit("vc.example.com", 7, "aa").unwrap());
        s.save().unwrap();
        let mut s = SignedSerials::load(dir.path()).unwrap();
        assert!(!s.admit("vc.example.com", 7, "aa").unwrap());
        assert!(matches!(
            s.admit("vc.example.com", 7, "bb"),
            Err(SerialError::SameSerial { serial: 7, .. })
        ));
        assert!(matches!(
            s.admit("vc.example.com", 6, "aa"),
            Err(SerialError::Backwards { signed: 7, .. })
        ));
        assert!(s.admit("vc.example.com", 8, "bb").unwrap());
        assert!(s.admit("vc.example.org", 1, "cc").unwrap());
    }
}
