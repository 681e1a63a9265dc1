//! The admin API under `/api/v1`. Every endpoint takes an [`crate::auth::AdminAuth`].

pub mod audit;
pub mod bulk_invites;
pub mod integrations;
pub mod jobs;
pub mod tokens;
pub mod user_methods;
pub mod users;
pub mod workstations;

use axum::Json;
use axum::Router;
use axum::routing::get;

use crate::app::App;

/// The `/api/v1` routes (nested under `/api/v1` by [`crate::router`]).
pub fn router() -> Router<App> {
    Router::new()
        .merge(tokens::router())
        .merge(integrations::router())
        .merge(jobs::router())
        .merge(users::router())
        .merge(user_methods::router())
        .merge(audit::router())
        .merge(workstations::router())
        .merge(bulk_invites::router())
        .route("/openapi.json", get(openapi))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
