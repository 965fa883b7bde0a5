//! Binding, routing and stopping the HTTP listener.

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use super::{api, dashboard, exposition, Context};

/// How long requests in progress may run on after shutdown begins.
const GRACE: Duration = Duration::from_secs(5);

pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/metrics", get(exposition::metrics))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/versions", get(api::versions))
        .route("/api/v1/trend", get(api::trend))
        .route("/api/v1/adoption/{version}", get(api::adoption))
        .fallback(not_found)
        .with_state(ctx)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found: see / (dashboard), /metrics, /api/v1/{summary,versions,trend,adoption/VERSION}\n",
    )
        .into_response()
}

/// Serves until `stop` turns true (or its sender is gone), then lets
/// requests in progress finish for up to [`GRACE`].
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = axum::serve(listener, router(ctx)).with_graceful_shutdown(stopped(stop.clone()));
    tokio::select! {
        result = server.into_future() => {
            if let Err(e) = result {
                warn!(error = %e, "HTTP listener failed");
            }
        }
        _ = async { stopped(stop).await; tokio::time::sleep(GRACE).await } => {
            warn!("HTTP requests still running {GRACE:?} after shutdown; dropping them");
        }
    }
}
