//! `/healthz` and `/readyz` without authentication, for load balancers; `/metrics` for
//! Prometheus, with an API token of any role unless `server.public_metrics` is on (the request
//! counts by route and the job counts tell an outsider more than a load balancer needs).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keybridge_store::SCHEMA_VERSION;
use serde::Serialize;

use crate::app::App;
use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::metrics::JOBS;

/// The health area's routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
}

/// Answer of `/healthz` and `/readyz`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// What is wrong, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The process is up and serving.
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        reason: None,
    })
}

/// The database answers and its schema is the one this binary knows.
async fn readyz(State(app): State<App>) -> Response {
    match app.store().schema_version().await {
        Ok(version) if version == SCHEMA_VERSION => Json(Health {
            status: "ok",
            reason: None,
        })
        .into_response(),
        Ok(version) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                reason: Some(format!(
                    "the database schema is at version {version}, this server needs {SCHEMA_VERSION}"
                )),
            }),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    reason: Some("the database is not reachable".to_owned()),
                }),
            )
                .into_response()
        }
    }
}

/// Prometheus text exposition.
async fn metrics_text(
    State(app): State<App>,
    auth: Result<AdminAuth, ApiError>,
) -> Result<Response, ApiError> {
    if !app.config().server.public_metrics {
        auth?;
    }
    match app.store().jobs().counts().await {
        Ok(counts) => {
            for (state, value) in [
                ("queued", counts.queued),
                ("running", counts.running),
                ("succeeded", counts.succeeded),
                ("dead", counts.dead),
                ("cancelled", counts.cancelled),
            ] {
                #[allow(clippy::cast_precision_loss)] // job counts stay far below 2^52
                metrics::gauge!(JOBS, "state" => state).set(value as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: job counts unavailable"),
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics().render(),
    )
        .into_response())
}
