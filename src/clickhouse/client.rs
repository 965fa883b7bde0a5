//! A small ClickHouse client over its HTTP interface: statements, queries
//! answered as JSONEachRow and decoded by column name into a row type of
//! each query's own, and inserts as JSONEachRow.
//!
//! Blocking (ureq), because its callers are threads: the shipper, and the
//! statistics, which run on blocking threads already. The HTTP interface is
//! the one every ClickHouse release since 2016 speaks unchanged.

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use thiserror::Error;

use super::url::ClickHouseUrl;

#[derive(Debug, Error)]
pub enum ClickHouseError {
    #[error("cannot reach ClickHouse at {url}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("ClickHouse at {url} answered HTTP {status}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from ClickHouse: {0}")]
    Answer(String),
    #[error("ClickHouse schema version {found} is newer than this vcheckd understands ({known}); upgrade vcheckd")]
    TooNew { found: u32, known: u32 },
    /// Statistics asked for a day the rollup has not computed.
    #[error("day {day} is not rolled up in ClickHouse ({}): run `vcheckd clickhouse rollup --config FILE`, or let a name server with [clickhouse] rollup = true do it", match .through { Some(d) => format!("rolled up through day {d}"), None => "nothing rolled up yet".to_string() })]
    NotRolledUp { day: i64, through: Option<i64> },
    /// Another process holds the rollup lease (one rollup at a time).
    #[error("the ClickHouse rollup is being run by {holder} (its lease expires at {} unless renewed): try again when that run ends, at the latest then", crate::clock::utc(*.expires))]
    RollupBusy { holder: String, expires: i64 },
}

/// One ClickHouse database over HTTP; cheap to clone (connections are
/// pooled and kept alive).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    url: ClickHouseUrl,
}

impl Client {
    /// `timeout` bounds each request, connect included.
    #[must_use]
    pub fn new(url: &ClickHouseUrl, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .new_agent();
        Client {
            agent,
            endpoint: format!("http://{}/", url.authority()),
            url: url.clone(),
        }
    }

    #[must_use]
    pub fn url(&self) -> &ClickHouseUrl {
        &self.url
    }

    #[must_use]
    pub fn database(&self) -> &str {
        self.url.database()
    }

    /// Sends `body` with the URL parameters `params` (the database given as
    /// `database=`, unless `no_database`), and returns the answer's text.
    fn post(
        &self,
        params: &[(&str, &str)],
        body: &[u8],
        no_database: bool,
    ) -> Result<String, ClickHouseError> {
        let mut text = String::new();
        self.send(params, body, no_database, |reader| {
            reader.read_to_string(&mut text).map(drop)
        })?;
        Ok(text)
    }

    /// Sends `body` (see [`post`](Self::post)) and hands an answer of
    /// status 200 to `read`; any other answer is an error with its text.
    fn send(
        &self,
        params: &[(&str, &str)],
        body: &[u8],
        no_database: bool,
        read: impl FnOnce(&mut dyn Read) -> std::io::Result<()>,
    ) -> Result<(), ClickHouseError> {
        let mut request = self.agent.post(&self.endpoint);
        if !no_database {
            request = request.query("database", self.url.database());
        }
        for (k, v) in params {
            request = request.query(*k, *v);
        }
        let transport = |source: ureq::Error| ClickHouseError::Transport {
            url: self.url.to_string(),
            source: Box::new(source),
        };
        let mut response = request.send(body).map_err(transport)?;
        let status = response.status().as_u16();
        // No size limit: the rollup reads one row per node.
        let mut reader = response.body_mut().as_reader();
        if status != 200 {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .map_err(|e| transport(ureq::Error::Io(e)))?;
            return Err(ClickHouseError::Server {
                url: self.url.to_string(),
                status,
                message: text.trim().to_string(),
            });
        }
        read(&mut reader).map_err(|e| transport(ureq::Error::Io(e)))
    }

    /// Runs a statement (DDL, or a query whose answer is not wanted).
    pub fn execute(&self, sql: &str) -> Result<(), ClickHouseError> {
        self.post(&[], sql.as_bytes(), false).map(drop)
    }

    /// Runs a statement before the database exists (`CREATE DATABASE`).
    pub(crate) fn execute_without_database(&self, sql: &str) -> Result<(), ClickHouseError> {
        self.post(&[], sql.as_bytes(), true).map(drop)
    }

    /// Runs a query and returns its rows as TabSeparated fields: for
    /// checks by hand and tests (vcheckd's own queries decode typed rows,
    /// [`rows`](Self::rows)). Numbers and hex or identifier-like text only,
    /// which TabSeparated writes unescaped.
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, ClickHouseError> {
        let text = self.post(&[], format!("{sql} FORMAT TabSeparated").as_bytes(), false)?;
        Ok(text
            .lines()
            .map(|line| line.split('\t').map(str::to_string).collect())
            .collect())
    }

    /// Runs a query and returns its rows, each decoded into a `T` by
    /// column name (the names, or aliases, of its SELECT list).
    pub(crate) fn rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, ClickHouseError> {
        let mut out = Vec::new();
        self.each(sql, |row| {
            out.push(row);
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs a query and hands each row, decoded as [`rows`](Self::rows)
    /// does, to `each` as it arrives (for answers of a row per node: no
    /// copy of the whole answer). Returns the rows read. An error in
    /// `each`, or a row that does not decode, ends the read.
    pub(crate) fn each<T: DeserializeOwned>(
        &self,
        sql: &str,
        mut each: impl FnMut(T) -> Result<(), ClickHouseError>,
    ) -> Result<u64, ClickHouseError> {
        use std::io::BufRead;
        let mut rows = 0;
        let mut failed = None;
        let body = format!("{sql} FORMAT JSONEachRow");
        // 64-bit numbers as JSON numbers, not strings (18.16 knows it).
        let params = [("output_format_json_quote_64bit_integers", "0")];
        self.send(&params, body.as_bytes(), false, |reader| {
            let mut lines = std::io::BufReader::with_capacity(1 << 16, reader);
            let mut line = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let decoded = serde_json::from_str::<T>(&line).map_err(|e| {
                    ClickHouseError::Answer(format!("{e} in the row {:?}", line.trim_end()))
                });
                if let Err(e) = decoded.and_then(&mut each) {
                    failed = Some(e);
                    return Ok(());
                }
                rows += 1;
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Inserts JSONEachRow `rows` (one JSON object a line) into `table`.
    /// `settings` are ClickHouse settings for this insert (URL parameters).
    pub fn insert_json(
        &self,
        table: &str,
        rows: &[u8],
        settings: &[(&str, &str)],
    ) -> Result<(), ClickHouseError> {
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        let mut params = vec![("query", query.as_str())];
        params.extend_from_slice(settings);
        self.post(&params, rows, false).map(drop)
    }
}

/// Decodes a cluster or node id, stored as 32 hex digits (a column's
/// `deserialize_with`).
pub(crate) fn hex16<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
    let hex = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    id16(&hex).map_err(serde::de::Error::custom)
}

/// A cluster or node id, stored as 32 hex digits.
pub(crate) fn id16(hex: &str) -> Result<[u8; 16], ClickHouseError> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| ClickHouseError::Answer(format!("not a 16-byte id: {hex:?}")))
}

/// The one row of an answer that has one (`count()`, `max(..)`).
pub(crate) fn one<T>(rows: Vec<T>) -> Result<T, ClickHouseError> {
    rows.into_iter()
        .next()
        .ok_or_else(|| ClickHouseError::Answer("no row where one was due".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Row {
        #[serde(deserialize_with = "hex16")]
        cluster: [u8; 16],
        n: u64,
    }

    #[test]
    fn rows_decode_by_name_and_bad_ones_are_errors_not_panics() {
        let row: Row =
            serde_json::from_str(r#"{"n":7,"cluster":"0102030405060708090a0b0c0d0e0f10"}"#)
                .unwrap();
        assert_eq!((row.cluster[0], row.cluster[15], row.n), (1, 16, 7));
        assert!(serde_json::from_str::<Row>(r#"{"n":7,"cluster":"abc"}"#).is_err());
        assert!(
            serde_json::from_str::<Row>(r#"{"cluster":"0102030405060708090a0b0c0d0e0f10"}"#)
                .is_err()
        );
        assert!(id16("abc").is_err());
        assert!(one::<u8>(Vec::new()).is_err());
    }
}
