//! The release schedule: which version comes out on which simulated day.

use semver::Version;

use super::SimError;

/// A version released `day` days after the first simulated day (negative:
/// before the simulated history began).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: Version,
    pub day: i64,
}

impl Release {
    /// `VERSION@DAY`, e.g. `2.4.1@60` or `2.2.0@-30`.
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let err = || SimError::ReleaseSyntax(text.to_string());
        let (version, day) = text.trim().split_once('@').ok_or_else(err)?;
        let version = version.trim();
        let version = crate::hint::parse_version(version).map_err(|_| err())?;
        // Within ten years either side of the history's first day.
        let day: i64 = day.trim().parse().map_err(|_| err())?;
        if day.abs() > 3650 {
            return Err(err());
        }
        Ok(Release { version, day })
    }
}

/// A schedule for a release list such as a server's `[zone.releases]
/// versions`: the stable versions, oldest first, evenly spaced from a third
/// of the history before its first day to two thirds into it, so that the
/// fleet starts on the older releases and the newest has had time to spread.
/// Pre-releases and text that is not semver are left out (nobody rolls a
/// release candidate out to a fleet).
#[must_use]
pub fn derive(versions: &[String], days: u32) -> Vec<Release> {
    let mut stable: Vec<Version> = versions
        .iter()
        .filter_map(|v| Version::parse(v.trim()).ok())
        .filter(|v| v.pre.is_empty())
        .map(|v| Version {
            build: semver::BuildMetadata::EMPTY,
            ..v
        })
        .collect();
    stable.sort();
    stable.dedup();
    let days = i64::from(days);
    let (first, last) = (-days / 3, days * 2 / 3);
    let n = stable.len() as i64;
    stable
        .into_iter()
        .enumerate()
        .map(|(i, version)| Release {
            version,
            day: if n == 1 {
                last
            } else {
                first + (last - first) * i as i64 / (n - 1)
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_derive() {
        assert_eq!(
            Release::parse("v2.4.1@-3").unwrap(),
            Release {
                version: Version::new(2, 4, 1),
                day: -3
            }
        );
        assert!(Release::parse("2.4.1").is_err());
        assert!(Release::parse("2.4@1").is_err());
        let list: Vec<String> = ["2.4.1", "1.9.0", "2.5.0-rc.1", "2.3.0"]
            .map(String::from)
            .to_vec();
        let s = derive(&list, 90);
        let got: Vec<(String, i64)> = s.iter().map(|r| (r.version.to_string(), r.day)).collect();
        assert_eq!(
            got,
            vec![
                ("1.9.0".into(), -30),
                ("2.3.0".into(), 15),
                ("2.4.1".into(), 60)
            ]
        );
    }
}
