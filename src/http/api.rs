//! `/api/v1/...`: the `vcheckd stats` subcommands as JSON, with the same
//! structures, defaults and numbers (`--format json` prints the same).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use semver::Version;
use serde::Serialize;

use super::query::{Failure, Params, RawParams};
use super::Context;
use crate::stats::Bucket;

const WINDOW: &[&str] = &["since", "until", "zone"];
const TREND: &[&str] = &["since", "until", "zone", "by"];

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body + "\n").into_response(),
        Err(e) => Failure {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        }
        .into_response(),
    }
}

fn respond<T: Serialize>(result: Result<T, Failure>) -> Response {
    match result {
        Ok(value) => json(&value),
        Err(failure) => failure.into_response(),
    }
}

/// `GET /api/v1/summary?since&until&zone` (default: the last 7 days).
pub async fn summary(State(ctx): State<Arc<Context>>, raw: RawParams) -> Response {
    respond(
        async {
            let w = Params::parse(raw, WINDOW)?.window(7)?;
            ctx.with_source(move |source| {
                w.zones(source)?
                    .iter()
                    .map(|zone| Ok(source.summary(zone, w.since, w.until)?))
                    .collect::<Result<Vec<_>, Failure>>()
            })
            .await
        }
        .await,
    )
}

/// `GET /api/v1/versions?since&until&zone` (default: the last 7 days).
pub async fn versions(State(ctx): State<Arc<Context>>, raw: RawParams) -> Response {
    respond(
        async {
            let w = Params::parse(raw, WINDOW)?.window(7)?;
            ctx.with_source(move |source| {
                w.zones(source)?
                    .iter()
                    .map(|zone| Ok(source.versions(zone, w.since, w.until)?))
                    .collect::<Result<Vec<_>, Failure>>()
            })
            .await
        }
        .await,
    )
}

/// `GET /api/v1/trend?since&until&zone&by=day|week` (default: the last 30
/// days, by day).
pub async fn trend(State(ctx): State<Arc<Context>>, raw: RawParams) -> Response {
    respond(
        async {
            let params = Params::parse(raw, TREND)?;
            let w = params.window(30)?;
            let bucket = match params.get("by") {
                None | Some("day") => Bucket::Day,
                Some("week") => Bucket::Week,
                Some(other) => {
                    return Err(Failure::bad_request(format!(
                        "by={other:?}: expected day or week"
                    )))
                }
            };
            ctx.with_source(move |source| {
                let mut points = Vec::new();
                for zone in w.zones(source)? {
                    points.extend(source.trend(&zone, w.since, w.until, bucket)?);
                }
                Ok(points)
            })
            .await
        }
        .await,
    )
}

/// Parses a version as the CLI does (a leading "v" is accepted).
pub fn parse_version(text: &str) -> Result<Version, Failure> {
    crate::hint::parse_version(text)
        .map_err(|_| Failure::bad_request(format!("{:?} is not a semver version", text.trim())))
}

/// `GET /api/v1/adoption/{version}?until&zone`: days from the version's
/// first report until 50% and 90% of active clusters run it or newer.
pub async fn adoption(
    State(ctx): State<Arc<Context>>,
    Path(version): Path<String>,
    raw: RawParams,
) -> Response {
    respond(
        async {
            let w = Params::parse(raw, WINDOW)?.window(1)?;
            let version = parse_version(&version)?;
            ctx.with_source(move |source| {
                let mut found = Vec::new();
                for zone in w.zones(source)? {
                    found.extend(source.adoption(&zone, &version, w.until)?);
                }
                if found.is_empty() {
                    return Err(Failure::not_found(format!(
                        "no report has carried version {version} yet"
                    )));
                }
                Ok(found)
            })
            .await
        }
        .await,
    )
}
