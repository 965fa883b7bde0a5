//! `clickhouse://HOST:PORT/DB`: where a ClickHouse database is (its HTTP
//! interface), as the CLI and the configuration name it.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{0:?}: expected clickhouse://HOST:PORT/DATABASE")]
    Form(String),
    #[error("{0:?}: the database name takes letters, digits and _ only")]
    Database(String),
}

/// A ClickHouse HTTP endpoint and database. The database name is checked
/// to be a plain identifier, so it can be written into SQL as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseUrl {
    /// `host:port` of the HTTP interface (8123 by default in ClickHouse).
    authority: String,
    database: String,
}

impl ClickHouseUrl {
    #[must_use]
    pub fn authority(&self) -> &str {
        &self.authority
    }

    #[must_use]
    pub fn database(&self) -> &str {
        &self.database
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl FromStr for ClickHouseUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let form = || UrlError::Form(text.to_string());
        let rest = text.strip_prefix("clickhouse://").ok_or_else(form)?;
        let (authority, database) = rest.split_once('/').ok_or_else(form)?;
        let (host, port) = authority.rsplit_once(':').ok_or_else(form)?;
        if host.is_empty()
            || host.contains(['/', '@', '?', '#', ' '])
            || port.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err(form());
        }
        if !is_identifier(database) {
            return Err(UrlError::Database(text.to_string()));
        }
        Ok(ClickHouseUrl {
            authority: authority.to_string(),
            database: database.to_string(),
        })
    }
}

impl fmt::Display for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "clickhouse://{}/{}", self.authority, self.database)
    }
}

impl serde::Serialize for ClickHouseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ClickHouseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_database_and_refuses_the_rest() {
        let u: ClickHouseUrl = "clickhouse://127.0.0.1:8123/vcheckd".parse().unwrap();
        assert_eq!((u.authority(), u.database()), ("127.0.0.1:8123", "vcheckd"));
        assert_eq!(u.to_string(), "clickhouse://127.0.0.1:8123/vcheckd");
        let v6: ClickHouseUrl = "clickhouse://[::1]:8123/db_2".parse().unwrap();
        assert_eq!(v6.authority(), "[::1]:8123");
        for bad in [
            "http://h:1/db",
            "clickhouse://h/db",
            "clickhouse://h:0/db",
            "clickhouse://h:x/db",
            "clickhouse://:1/db",
            "clickhouse://h:1",
        ] {
            assert!(
                matches!(bad.parse::<ClickHouseUrl>(), Err(UrlError::Form(_))),
                "{bad}"
            );
        }
        for bad in [
            "clickhouse://h:1/",
            "clickhouse://h:1/a-b",
            "clickhouse://h:1/x;DROP",
        ] {
            assert!(
                matches!(bad.parse::<ClickHouseUrl>(), Err(UrlError::Database(_))),
                "{bad}"
            );
        }
    }
}
