//! Request parameters (`since`, `until`, `zone`, ...), errors, and running a
//! statistic on a blocking thread with a read-only connection of its own.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Context;
use crate::protocol::ZoneName;
use crate::stats::{Source, StatsError};
use crate::store::StoreError;

/// Longest window any request may ask for, in days.
pub const MAX_WINDOW_DAYS: i64 = 3_660;

/// A request that could not be answered, shown as JSON by the API.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::internal(e.to_string())
    }
}

impl From<StatsError> for Failure {
    fn from(e: StatsError) -> Self {
        match e {
            StatsError::Store(e) => e.into(),
            unknown @ StatsError::UnknownZone { .. } => Failure::bad_request(unknown.to_string()),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string() + "\n";
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The query string's `name=value` pairs, checked against the names a
/// route accepts so that a typo is an error rather than a silent default.
pub struct Params(Vec<(String, String)>);

pub type RawParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

impl Params {
    pub fn parse(raw: RawParams, allowed: &[&str]) -> Result<Self, Failure> {
        let Query(pairs) = raw.map_err(|e| Failure::bad_request(e.body_text()))?;
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            return Err(Failure::bad_request(format!(
                "unknown parameter {name:?} (expected one of: {})",
                allowed.join(", ")
            )));
        }
        Ok(Params(pairs))
    }

    /// The last non-empty value given for `name` (an empty form field is
    /// the same as none).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, v)| n == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    fn day(&self, name: &str) -> Result<Option<i64>, Failure> {
        self.get(name)
            .map(|text| {
                crate::clock::day_of_date(text).ok_or_else(|| {
                    Failure::bad_request(format!("{name}={text:?}: expected YYYY-MM-DD"))
                })
            })
            .transpose()
    }

    /// `since`, `until` and `zone`, with the CLI's defaults: until today,
    /// since `default_days - 1` days before until.
    pub fn window(&self, default_days: i64) -> Result<Window, Failure> {
        let until = self.day("until")?.unwrap_or_else(today);
        let since = self.day("since")?.unwrap_or(until - default_days + 1);
        if since > until {
            return Err(Failure::bad_request("since is after until"));
        }
        // No data exists after today; a far future would only cost work
        // (adoption runs from a release day to `until`).
        if until > today() + 1 {
            return Err(Failure::bad_request("until is in the future"));
        }
        if until - since + 1 > MAX_WINDOW_DAYS {
            return Err(Failure::bad_request(format!(
                "the window is longer than {MAX_WINDOW_DAYS} days"
            )));
        }
        Ok(Window {
            since,
            until,
            zone: self.get("zone").map(str::to_string),
        })
    }

    /// A positive integer parameter, with a default and a ceiling.
    pub fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, Failure> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(Failure::bad_request(format!(
                    "{name}={text:?}: expected a whole number from 1 to {max}"
                ))),
            },
        }
    }
}

/// Days (UTC, both ends included) and zone of a statistic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub since: i64,
    pub until: i64,
    pub zone: Option<String>,
}

impl Window {
    /// The zones the window covers: the one asked for, or all.
    pub fn zones(&self, source: &Source) -> Result<Vec<ZoneName>, Failure> {
        Ok(source.select_zones(self.zone.as_deref())?)
    }

    pub fn days(&self) -> i64 {
        self.until - self.since + 1
    }
}

/// Today's UTC day number.
pub fn today() -> i64 {
    crate::clock::today().0
}

impl Context {
    /// Runs `f` on a blocking thread with a fresh read-only connection to
    /// the database; at most a few at once.
    pub async fn with_source<T, F>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Source) -> Result<T, Failure> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::internal("shutting down"))?;
        let path = self.database.clone();
        let clickhouse = self.clickhouse.clone();
        // The permit lives as long as the computation, not the request: a
        // client that hangs up does not free a slot while work goes on.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let source = match clickhouse {
                Some((url, timeout)) => Source::clickhouse(&url, timeout),
                None => Source::open(std::slice::from_ref(&path))?,
            };
            f(&source)
        })
        .await
        .map_err(|e| Failure::internal(format!("statistics task failed: {e}")))?
    }
}
