//! Release information from the configuration, and the rule that turns a
//! client's running version into a [`Hint`].
//!
//! The rule, in order (docs/PROTOCOL.md repeats it for operators):
//! 1. the version's line (`MAJOR` or `MAJOR.MINOR`) is end of life: status 3;
//! 2. an advisory affects it: status 3. An advisory lists the versions that
//!    fix it, one per maintained line; a version is affected when it is below
//!    the newest fix and its own line has no fix at or below it;
//! 3. the version is not a listed release: status 0;
//! 4. a newer release exists: status 2;
//! 5. otherwise: status 1.

use std::fmt;
use std::str::FromStr;

use semver::Version;
use serde::Deserialize;
use thiserror::Error;

use super::{Hint, Status};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReleasesError {
    #[error("release list is empty: list at least the current version")]
    Empty,
    #[error("{0:?} is not a semver version")]
    Version(String),
    #[error("{0:?} is not a release line (MAJOR or MAJOR.MINOR)")]
    Line(String),
    #[error("advisory {0:?} lists no fixed version")]
    AdvisoryWithoutFix(String),
}

/// A release line: every `MAJOR.*` or every `MAJOR.MINOR.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Line {
    pub major: u64,
    pub minor: Option<u64>,
}

impl Line {
    fn contains(&self, v: &Version) -> bool {
        v.major == self.major && self.minor.is_none_or(|m| m == v.minor)
    }
}

impl FromStr for Line {
    type Err = ReleasesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ReleasesError::Line(s.to_string());
        let mut parts = s.trim().split('.');
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let minor = match parts.next() {
            None => None,
            Some(p) => Some(p.parse().map_err(|_| err())?),
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Line { major, minor })
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            Some(m) => write!(f, "{}.{}", self.major, m),
            None => write!(f, "{}", self.major),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    pub id: String,
    /// The fixing versions, sorted ascending; never empty.
    pub fixed: Vec<Version>,
}

impl Advisory {
    fn affects(&self, v: &Version) -> bool {
        let newest_fix = &self.fixed[self.fixed.len() - 1];
        let fixed_on_own_line = self
            .fixed
            .iter()
            .any(|f| f.major == v.major && f.minor == v.minor && f <= v);
        v < newest_fix && !fixed_on_own_line
    }

    /// The smallest upgrade that fixes it: the fix on the client's line if
    /// there is one, else the newest fix.
    fn upgrade_for(&self, v: &Version) -> &Version {
        self.fixed
            .iter()
            .find(|f| f.major == v.major && f.minor == v.minor && *f > v)
            .unwrap_or(&self.fixed[self.fixed.len() - 1])
    }
}

/// The configuration's form, before validation.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReleasesConfig {
    pub versions: Vec<String>,
    #[serde(default)]
    pub end_of_life: Vec<String>,
    #[serde(default)]
    pub advisory: Vec<AdvisoryConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryConfig {
    pub id: String,
    pub fixed: Vec<String>,
}

/// Validated release information for one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Releases {
    /// Sorted, without build metadata.
    pub(super) versions: Vec<Version>,
    latest: Version,
    pub(super) end_of_life: Vec<Line>,
    pub(super) advisories: Vec<Advisory>,
}

/// Build metadata (`+build.5`) does not make a different release (semver
/// §10), so it is dropped before any comparison.
fn release_of(v: &Version) -> Version {
    Version {
        build: semver::BuildMetadata::EMPTY,
        ..v.clone()
    }
}

fn parse_version(s: &str) -> Result<Version, ReleasesError> {
    Version::parse(s.trim())
        .map(|v| release_of(&v))
        .map_err(|_| ReleasesError::Version(s.to_string()))
}

impl TryFrom<&ReleasesConfig> for Releases {
    type Error = ReleasesError;

    fn try_from(c: &ReleasesConfig) -> Result<Self, Self::Error> {
        let versions = c
            .versions
            .iter()
            .map(|v| parse_version(v))
            .collect::<Result<Vec<_>, _>>()?;
        let end_of_life = c
            .end_of_life
            .iter()
            .map(|l| l.parse())
            .collect::<Result<Vec<Line>, _>>()?;
        let advisories = c
            .advisory
            .iter()
            .map(|a| {
                Ok(Advisory {
                    id: a.id.clone(),
                    fixed: a
                        .fixed
                        .iter()
                        .map(|v| parse_version(v))
                        .collect::<Result<Vec<_>, _>>()?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Releases::new(versions, end_of_life, advisories)
    }
}

impl Releases {
    /// Validates and normalises release information, from the configuration
    /// or from a compiled policy alike, so that both run the same rule.
    pub(super) fn new(
        mut versions: Vec<Version>,
        end_of_life: Vec<Line>,
        mut advisories: Vec<Advisory>,
    ) -> Result<Self, ReleasesError> {
        for v in &mut versions {
            *v = release_of(v);
        }
        versions.sort();
        versions.dedup();
        // Pre-releases are listed so that they count as known, but the
        // newest stable release is what everybody is pointed to.
        let latest = versions
            .iter()
            .rev()
            .find(|v| v.pre.is_empty())
            .or(versions.last())
            .cloned()
            .ok_or(ReleasesError::Empty)?;
        for a in &mut advisories {
            for f in &mut a.fixed {
                *f = release_of(f);
            }
            a.fixed.sort();
            if a.fixed.is_empty() {
                return Err(ReleasesError::AdvisoryWithoutFix(a.id.clone()));
            }
        }
        Ok(Releases {
            versions,
            latest,
            end_of_life,
            advisories,
        })
    }
}

impl Releases {
    /// The listed releases, sorted.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    pub fn latest(&self) -> &Version {
        &self.latest
    }

    /// The release rule (docs/PROTOCOL.md §11): end of life first, then
    /// the first advisory (in list order) that affects the release, then
    /// unknown, older, up to date.
    fn verdict(&self, running: &Version) -> Verdict<'_> {
        let release = release_of(running);
        if let Some(line) = self.end_of_life.iter().find(|l| l.contains(&release)) {
            Verdict::EndOfLife(line)
        } else if let Some(adv) = self.advisories.iter().find(|a| a.affects(&release)) {
            Verdict::Advisory(adv)
        } else if !self.versions.contains(&release) {
            Verdict::Unknown
        } else if release < self.latest {
            Verdict::Older
        } else {
            Verdict::Latest
        }
    }

    /// The advisory that makes `running` require an upgrade, if that is
    /// the reason (not end of life).
    pub fn advisory_for(&self, running: &Version) -> Option<&Advisory> {
        match self.verdict(running) {
            Verdict::Advisory(a) => Some(a),
            _ => None,
        }
    }

    pub fn hint_for(&self, running: &Version) -> Hint {
        let latest = self.latest.clone();
        let (status, message) = match self.verdict(running) {
            Verdict::EndOfLife(line) => (
                Status::UpgradeRequired,
                format!("{line} is end of life; upgrade to {latest}"),
            ),
            Verdict::Advisory(adv) => (
                Status::UpgradeRequired,
                format!(
                    "security fix {} in {}",
                    adv.id,
                    adv.upgrade_for(&release_of(running))
                ),
            ),
            Verdict::Unknown => (
                Status::Unknown,
                format!("{running} is not a known release; latest is {latest}"),
            ),
            Verdict::Older => (Status::UpgradeAvailable, format!("{latest} is available")),
            Verdict::Latest => (Status::UpToDate, "up to date".to_string()),
        };
        Hint {
            status,
            latest,
            message,
        }
    }
}

/// Which branch of the release rule a version falls in.
enum Verdict<'a> {
    EndOfLife(&'a Line),
    Advisory(&'a Advisory),
    Unknown,
    Older,
    Latest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn releases() -> Releases {
        let c = ReleasesConfig {
            versions: [
                "1.9.0",
                "2.2.0",
                "2.3.0",
                "2.3.1",
                "2.4.0",
                "2.4.1",
                "2.5.0-rc.1",
            ]
            .map(String::from)
            .to_vec(),
            end_of_life: vec!["1".into(), "2.2".into()],
            advisory: vec![AdvisoryConfig {
                id: "CVE-2026-0001".into(),
                fixed: vec!["2.4.1".into(), "2.3.1".into()],
            }],
        };
        Releases::try_from(&c).unwrap()
    }

    fn status(v: &str) -> (Status, String) {
        let h = releases().hint_for(&Version::parse(v).unwrap());
        assert_eq!(h.latest.to_string(), "2.4.1");
        (h.status, h.message)
    }

    #[test]
    fn the_rule() {
        assert_eq!(status("2.4.1").0, Status::UpToDate);
        assert_eq!(status("2.4.1+build.7").0, Status::UpToDate);
        // Build metadata in the configuration is ignored as well.
        let c = ReleasesConfig {
            versions: vec!["2.4.0".into(), "2.4.1+build.9".into()],
            end_of_life: vec![],
            advisory: vec![AdvisoryConfig {
                id: "X".into(),
                fixed: vec!["2.4.1+b5".into()],
            }],
        };
        let r = Releases::try_from(&c).unwrap();
        let h = r.hint_for(&Version::parse("2.4.1").unwrap());
        assert_eq!(
            (h.status, h.latest.to_string()),
            (Status::UpToDate, "2.4.1".into())
        );
        assert_eq!(status("2.3.1").0, Status::UpgradeAvailable);
        assert_eq!(
            status("2.3.0"),
            (
                Status::UpgradeRequired,
                "security fix CVE-2026-0001 in 2.3.1".into()
            )
        );
        assert_eq!(
            status("2.4.0"),
            (
                Status::UpgradeRequired,
                "security fix CVE-2026-0001 in 2.4.1".into()
            )
        );
        assert_eq!(
            status("2.2.0"),
            (
                Status::UpgradeRequired,
                "2.2 is end of life; upgrade to 2.4.1".into()
            )
        );
        assert_eq!(status("1.9.0").0, Status::UpgradeRequired);
        assert_eq!(status("2.5.0-rc.1").0, Status::UpToDate);
        assert_eq!(status("2.4.2").0, Status::Unknown);
        assert_eq!(status("3.0.0").0, Status::Unknown);
    }

    #[test]
    fn invalid_configs_are_named() {
        let mut c = ReleasesConfig::default();
        assert_eq!(Releases::try_from(&c), Err(ReleasesError::Empty));
        c.versions = vec!["2.x".into()];
        assert_eq!(
            Releases::try_from(&c),
            Err(ReleasesError::Version("2.x".into()))
        );
        c.versions = vec!["2.0.0".into()];
        c.end_of_life = vec!["2.0.0".into()];
        assert_eq!(
            Releases::try_from(&c),
            Err(ReleasesError::Line("2.0.0".into()))
        );
    }
}
