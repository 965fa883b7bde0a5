//! A small ClickHouse client over its HTTP interface: statements, queries
//! answered as TabSeparated text, and inserts as JSONEachRow.
//!
//! Blocking (ureq), because its callers are threads: the shipper, and the
//! statistics, which run on blocking threads already. The HTTP interface is
//! the one every ClickHouse release since 2016 speaks unchanged.

use std::io::Read;
use std::time::Duration;

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

    pub fn url(&self) -> &ClickHouseUrl {
        &self.url
    }

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

    /// Runs a query and returns its rows as TabSeparated fields. Callers
    /// select numbers and hex or identifier-like text only, which
    /// TabSeparated writes unescaped.
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, ClickHouseError> {
        let text = self.post(&[], format!("{sql} FORMAT TabSeparated").as_bytes(), false)?;
        Ok(text
            .lines()
            .map(|line| line.split('\t').map(str::to_string).collect())
            .collect())
    }

    /// Runs a query and hands each row's TabSeparated fields to `each`, as
    /// they arrive (for answers of a row per node: no copy of the whole
    /// answer). Returns the rows read. An error in `each` ends the read.
    pub(crate) fn query_each(
        &self,
        sql: &str,
        mut each: impl FnMut(&[&str]) -> Result<(), ClickHouseError>,
    ) -> Result<u64, ClickHouseError> {
        use std::io::BufRead;
        let mut rows = 0;
        let mut failed = None;
        let body = format!("{sql} FORMAT TabSeparated");
        self.send(&[], body.as_bytes(), false, |reader| {
            let mut lines = std::io::BufReader::with_capacity(1 << 16, reader);
            let mut line = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
                if let Err(e) = each(&fields) {
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

/// A field parsed as a number, or a clear error naming it.
pub(crate) fn field<T: std::str::FromStr>(row: &[String], i: usize) -> Result<T, ClickHouseError> {
    row.get(i)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| ClickHouseError::Answer(format!("field {i} of {row:?}")))
}

/// A field as text.
pub(crate) fn text(row: &[String], i: usize) -> Result<&str, ClickHouseError> {
    row.get(i)
        .map(String::as_str)
        .ok_or_else(|| ClickHouseError::Answer(format!("field {i} of {row:?}")))
}

/// Field `i` of a streamed row (see [`Client::query_each`]) as a number.
pub(crate) fn num<T: std::str::FromStr>(row: &[&str], i: usize) -> Result<T, ClickHouseError> {
    row.get(i)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| ClickHouseError::Answer(format!("field {i} of {row:?}")))
}

/// Field `i` of a streamed row as text.
pub(crate) fn str_at<'a>(row: &[&'a str], i: usize) -> Result<&'a str, ClickHouseError> {
    row.get(i)
        .copied()
        .ok_or_else(|| ClickHouseError::Answer(format!("field {i} of {row:?}")))
}

/// A cluster or node id, stored as 32 hex digits.
pub(crate) fn id16(hex: &str) -> Result<[u8; 16], ClickHouseError> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| ClickHouseError::Answer(format!("not a 16-byte id: {hex:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_rows_are_errors_not_panics() {
        let row = ["20500", "vc.example.com"];
        assert_eq!(num::<i64>(&row, 0).unwrap(), 20_500);
        assert_eq!(str_at(&row, 1).unwrap(), "vc.example.com");
        assert!(str_at(&row, 2).is_err());
        assert!(num::<u64>(&row, 5).is_err());
        assert!(id16("abc").is_err());
    }
}
