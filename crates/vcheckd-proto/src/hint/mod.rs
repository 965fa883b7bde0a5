//! The latest-version hint: what the server answers and what the client shows.
//!
//! One type, [`Hint`], with its three wire forms (TXT text, A address, AAAA
//! address), so that the server's encoder and the client's parser cannot
//! drift apart.

mod compact;
mod releases;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use semver::Version;
use thiserror::Error;

pub use compact::CompactError;
pub use releases::{Advisory, AdvisoryConfig, Line, Releases, ReleasesConfig, ReleasesError};

/// A version as people type it: semver, with an optional leading "v"
/// (`v2.4.1`), as tags often carry.
pub fn parse_version(text: &str) -> Result<Version, semver::Error> {
    let text = text.trim();
    Version::parse(text.strip_prefix('v').unwrap_or(text))
}

/// Status codes as operators know them from PowerDNS security polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// The running version is not in the release list.
    Unknown = 0,
    UpToDate = 1,
    UpgradeAvailable = 2,
    /// A security fix or end of life: the running version should not stay.
    UpgradeRequired = 3,
}

/// As its code, the form the JSON API and the tables hold.
impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

/// From its code; any other number is an error.
impl<'de> serde::Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = u8::deserialize(d)?;
        Status::from_code(code)
            .ok_or_else(|| serde::de::Error::custom(format!("{code} is no status code")))
    }
}

impl Status {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Status::Unknown),
            1 => Some(Status::UpToDate),
            2 => Some(Status::UpgradeAvailable),
            3 => Some(Status::UpgradeRequired),
            _ => None,
        }
    }

    /// For people: "up to date", "upgrade required", ...
    pub fn label(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::UpToDate => "up to date",
            Status::UpgradeAvailable => "upgrade available",
            Status::UpgradeRequired => "upgrade required",
        }
    }

    /// For programs (JSON): "up-to-date", "upgrade-required", ...
    pub fn name(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::UpToDate => "up-to-date",
            Status::UpgradeAvailable => "upgrade-available",
            Status::UpgradeRequired => "upgrade-required",
        }
    }
}

/// What the server tells one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub status: Status,
    /// The version the client should run: the newest release.
    pub latest: Version,
    /// Short human text; never contains a newline.
    pub message: String,
}

/// The TXT record's protocol marker; a client ignores TXT strings without it.
pub const TXT_MARKER: &str = "v=vc1";

/// AAAA hints live under this ULA prefix: `fd76:6364::/32` ("vc" in hex).
pub const AAAA_PREFIX: [u16; 2] = [0xfd76, 0x6364];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HintError {
    #[error("TXT answer is not a vcheckd hint (no '{TXT_MARKER}')")]
    NotAHint,
    #[error("TXT hint lacks the field {0}")]
    Missing(&'static str),
    #[error("TXT hint has an invalid {0}")]
    Invalid(&'static str),
}

impl Hint {
    /// `v=vc1 status=2 latest=2.4.1 msg=<free text to the end>`.
    ///
    /// Fields are separated by single spaces; `msg` comes last and runs to the
    /// end, so later protocol versions add fields before it and old clients
    /// skip what they do not know.
    pub fn to_txt(&self) -> String {
        format!(
            "{TXT_MARKER} status={} latest={} msg={}",
            self.status.code(),
            self.latest,
            self.message
        )
    }

    /// [`Self::to_txt`] cut into DNS character-strings of at most 255 bytes
    /// (at character boundaries); a client concatenates them (RFC 7208 style).
    pub fn to_txt_strings(&self) -> Vec<String> {
        let text = self.to_txt();
        let mut out = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut cut = rest.len().min(255);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (head, tail) = rest.split_at(cut);
            out.push(head.to_string());
            rest = tail;
        }
        out
    }

    pub fn parse_txt(text: &str) -> Result<Self, HintError> {
        let (fields, message) = match text.split_once(" msg=") {
            Some((f, m)) => (f, m.to_string()),
            None => (text, String::new()),
        };
        let mut words = fields.split(' ');
        if words.next() != Some(TXT_MARKER) {
            return Err(HintError::NotAHint);
        }
        let (mut status, mut latest) = (None, None);
        for word in words {
            match word.split_once('=') {
                Some(("status", v)) => {
                    status = Some(
                        (v.len() == 1)
                            .then(|| v.parse::<u8>().ok())
                            .flatten()
                            .and_then(Status::from_code)
                            .ok_or(HintError::Invalid("status"))?,
                    )
                }
                Some(("latest", v)) => {
                    latest = Some(Version::parse(v).map_err(|_| HintError::Invalid("latest"))?)
                }
                _ => {} // a field from a later protocol version
            }
        }
        Ok(Hint {
            status: status.ok_or(HintError::Missing("status"))?,
            latest: latest.ok_or(HintError::Missing("latest"))?,
            message,
        })
    }

    /// `127.MAJOR.MINOR.PATCH`. A component above 254 cannot be shown, and the
    /// whole address is then `127.255.255.255`: "ask TXT".
    pub fn to_a(&self) -> Ipv4Addr {
        let v = &self.latest;
        match (
            u8::try_from(v.major),
            u8::try_from(v.minor),
            u8::try_from(v.patch),
        ) {
            (Ok(a), Ok(b), Ok(c)) if a < 255 && b < 255 && c < 255 => Ipv4Addr::new(127, a, b, c),
            _ => Ipv4Addr::new(127, 255, 255, 255),
        }
    }

    /// `fd76:6364:STATUS:MAJOR:MINOR:PATCH::`; components above 65534 are
    /// shown as `ffff` ("ask TXT").
    pub fn to_aaaa(&self) -> Ipv6Addr {
        let clamp = |n: u64| {
            u16::try_from(n)
                .ok()
                .filter(|n| *n < 0xffff)
                .unwrap_or(0xffff)
        };
        let v = &self.latest;
        Ipv6Addr::new(
            AAAA_PREFIX[0],
            AAAA_PREFIX[1],
            u16::from(self.status.code()),
            clamp(v.major),
            clamp(v.minor),
            clamp(v.patch),
            0,
            0,
        )
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_txt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(status: Status, latest: &str, message: &str) -> Hint {
        Hint {
            status,
            latest: Version::parse(latest).unwrap(),
            message: message.into(),
        }
    }

    #[test]
    fn txt_round_trip() {
        let h = hint(
            Status::UpgradeRequired,
            "2.4.1",
            "security fix CVE-1 in 2.4.1",
        );
        assert_eq!(
            h.to_txt(),
            "v=vc1 status=3 latest=2.4.1 msg=security fix CVE-1 in 2.4.1"
        );
        assert_eq!(Hint::parse_txt(&h.to_txt()).unwrap(), h);
    }

    #[test]
    fn txt_ignores_unknown_fields_and_rejects_foreign_text() {
        let h = Hint::parse_txt("v=vc1 sig=abc status=1 latest=1.0.0 msg=ok").unwrap();
        assert_eq!(h, hint(Status::UpToDate, "1.0.0", "ok"));
        assert_eq!(Hint::parse_txt("v=spf1 -all"), Err(HintError::NotAHint));
        assert_eq!(
            Hint::parse_txt("v=vc1 status=9 latest=1.0.0"),
            Err(HintError::Invalid("status"))
        );
        assert_eq!(
            Hint::parse_txt("v=vc1 latest=1.0.0"),
            Err(HintError::Missing("status"))
        );
    }

    #[test]
    fn long_hints_are_split_into_character_strings() {
        let h = hint(Status::UpgradeRequired, "2.4.1", &"é".repeat(200));
        let parts = h.to_txt_strings();
        assert!(parts.len() >= 2 && parts.iter().all(|p| p.len() <= 255));
        assert_eq!(Hint::parse_txt(&parts.concat()).unwrap(), h);
        assert_eq!(
            hint(Status::UpToDate, "1.0.0", "ok").to_txt_strings().len(),
            1
        );
    }

    #[test]
    fn address_forms() {
        let h = hint(Status::UpgradeAvailable, "2.4.1", "");
        assert_eq!(h.to_a(), Ipv4Addr::new(127, 2, 4, 1));
        assert_eq!(h.to_aaaa().to_string(), "fd76:6364:2:2:4:1::");
        let big = hint(Status::UpToDate, "2026.300.1", "");
        assert_eq!(big.to_a(), Ipv4Addr::new(127, 255, 255, 255));
        assert_eq!(big.to_aaaa().to_string(), "fd76:6364:1:7ea:12c:1::");
    }
}
