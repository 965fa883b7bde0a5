//! The compact binary form of [`Releases`], as a signed policy carries it.
//!
//! It has to fit one UDP answer (1232 bytes) together with the question
//! and a signature for a realistic history (100 releases, 20 advisories
//! with fixes on 5 lines), so numbers are LEB128 varints and an
//! advisory's fixes point into the release list. Layout:
//!
//! ```text
//! releases   count, then per version: major, minor, patch * 2 + (1 if a pre-release tag
//!            follows) (varints), [pre-release tag (text)]
//! eol lines  count, then per line: major (varint), minor + 1 (varint; 0 = whole major)
//! advisories count, then per advisory: id (text), fix count, per fix:
//!            index into releases (varint), or count-of-releases followed by a version inline
//! ```
//!
//! A text is a varint length, then UTF-8. Build metadata is never carried (it does not make a release, semver §10).

use semver::{Prerelease, Version};
use thiserror::Error;

use super::releases::{Advisory, Line, Releases, ReleasesError};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompactError {
    #[error("compiled release list is truncated")]
    Truncated,
    #[error("compiled release list has {0} trailing bytes")]
    Trailing(usize),
    #[error("compiled release list holds an invalid {0}")]
    Invalid(&'static str),
    #[error("compiled release list: {0}")]
    Releases(#[from] ReleasesError),
    #[error("{0} is too large for a compiled release list")]
    TooLarge(&'static str),
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_varint(out, count(text.len()));
    out.extend_from_slice(text.as_bytes());
}

fn put_version(out: &mut Vec<u8>, v: &Version) -> Result<(), CompactError> {
    let patch = v
        .patch
        .checked_mul(2)
        .ok_or(CompactError::TooLarge("a patch number"))?;
    put_varint(out, v.major);
    put_varint(out, v.minor);
    if v.pre.is_empty() {
        put_varint(out, patch);
        Ok(())
    } else {
        put_varint(out, patch | 1);
        put_text(out, v.pre.as_str());
        Ok(())
    }
}

fn count(n: usize) -> u64 {
    // usize always fits u64 on the platforms Rust supports.
    n as u64
}

impl Releases {
    /// Appends the compact form to `out`.
    pub fn to_compact(&self, out: &mut Vec<u8>) -> Result<(), CompactError> {
        put_varint(out, count(self.versions.len()));
        for v in &self.versions {
            put_version(out, v)?;
        }
        put_varint(out, count(self.end_of_life.len()));
        for line in &self.end_of_life {
            put_varint(out, line.major);
            put_varint(out, line.minor.map_or(0, |m| m.saturating_add(1)));
        }
        put_varint(out, count(self.advisories.len()));
        for a in &self.advisories {
            put_text(out, &a.id);
            put_varint(out, count(a.fixed.len()));
            for fix in &a.fixed {
                match self.versions.binary_search(fix) {
                    Ok(i) => put_varint(out, count(i)),
                    Err(_) => {
                        put_varint(out, count(self.versions.len()));
                        put_version(out, fix)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads a compact form that must fill `bytes` exactly, and validates
    /// it as the configuration is validated.
    pub fn from_compact(bytes: &[u8]) -> Result<Releases, CompactError> {
        let mut r = Cursor(bytes);
        let n = r.len()?;
        let mut versions = Vec::with_capacity(n.min(bytes.len()));
        for _ in 0..n {
            versions.push(r.version()?);
        }
        let n = r.len()?;
        let mut end_of_life = Vec::with_capacity(n.min(bytes.len()));
        for _ in 0..n {
            let major = r.varint()?;
            let minor = r.varint()?.checked_sub(1);
            end_of_life.push(Line { major, minor });
        }
        let n = r.len()?;
        let mut advisories = Vec::with_capacity(n.min(bytes.len()));
        for _ in 0..n {
            let id = r.text()?.to_string();
            let fixes = r.len()?;
            let mut fixed = Vec::with_capacity(fixes.min(bytes.len()));
            for _ in 0..fixes {
                let i = r.varint()?;
                let fix = match usize::try_from(i).ok().and_then(|i| versions.get(i)) {
                    Some(v) => v.clone(),
                    None if i == count(versions.len()) => r.version()?,
                    None => return Err(CompactError::Invalid("fix index")),
                };
                fixed.push(fix);
            }
            advisories.push(Advisory { id, fixed });
        }
        if !r.0.is_empty() {
            return Err(CompactError::Trailing(r.0.len()));
        }
        Ok(Releases::new(versions, end_of_life, advisories)?)
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, CompactError> {
        let (&b, rest) = self.0.split_first().ok_or(CompactError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, CompactError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f)
                .checked_shl(shift)
                .filter(|v| v >> shift == u64::from(b & 0x7f))
                .ok_or(CompactError::Invalid("number"))?;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CompactError::Invalid("number"))
    }

    /// A count: never more than the bytes left could describe.
    fn len(&mut self) -> Result<usize, CompactError> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.0.len())
            .ok_or(CompactError::Truncated)
    }

    fn text(&mut self) -> Result<&'a str, CompactError> {
        let len = self.len()?;
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).map_err(|_| CompactError::Invalid("text"))
    }

    fn version(&mut self) -> Result<Version, CompactError> {
        let (major, minor, patch) = (self.varint()?, self.varint()?, self.varint()?);
        let mut v = Version::new(major, minor, patch >> 1);
        if patch & 1 == 1 {
            v.pre = Prerelease::new(self.text()?)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or(CompactError::Invalid("pre-release tag"))?;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::{AdvisoryConfig, ReleasesConfig};

    pub(crate) fn realistic() -> ReleasesConfig {
        // 100 releases over 5 maintained lines, 20 advisories each fixed
        // on every line.
        let mut versions = Vec::new();
        for minor in 0..5 {
            for patch in 0..20 {
                versions.push(format!("3.{minor}.{patch}"));
            }
        }
        let advisory = (0..20)
            .map(|i| AdvisoryConfig {
                id: format!("CVE-2026-{:05}", 31_000 + i),
                fixed: (0..5)
                    .map(|minor| format!("3.{minor}.{}", i % 20))
                    .collect(),
            })
            .collect();
        ReleasesConfig {
            versions,
            end_of_life: vec!["1".into(), "2".into(), "3.0".into()],
            advisory,
        }
    }

    #[test]
    fn round_trip() {
        let r = Releases::try_from(&realistic()).unwrap();
        let mut bytes = Vec::new();
        r.to_compact(&mut bytes).unwrap();
        assert_eq!(Releases::from_compact(&bytes).unwrap(), r);
        // The budget the policy answer is sized for (see policy tests).
        assert!(bytes.len() < 800, "{} bytes", bytes.len());
    }

    #[test]
    fn pre_releases_and_fixes_off_the_list_survive() {
        let c = ReleasesConfig {
            versions: vec!["2.0.0".into(), "2.1.0-rc.1".into()],
            end_of_life: vec!["1.4".into()],
            advisory: vec![AdvisoryConfig {
                id: "X".into(),
                fixed: vec!["2.0.9".into()],
            }],
        };
        let r = Releases::try_from(&c).unwrap();
        let mut bytes = Vec::new();
        r.to_compact(&mut bytes).unwrap();
        assert_eq!(Releases::from_compact(&bytes).unwrap(), r);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let r = Releases::try_from(&realistic()).unwrap();
        let mut bytes = Vec::new();
        r.to_compact(&mut bytes).unwrap();
        for n in 0..bytes.len() {
            assert!(Releases::from_compact(&bytes[..n]).is_err(), "length {n}");
        }
        bytes.push(0);
        assert_eq!(
            Releases::from_compact(&bytes),
            Err(CompactError::Trailing(1))
        );
    }
}
