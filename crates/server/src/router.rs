//! Every route of the server: the area routers merged, and the layers every request passes.
//!
//! Layers, outermost first: a request id (`x-request-id`, kept when the caller sends one, else
//! a new UUID) and its echo on the answer, a tracing span per request, request metrics by
//! route, and the error envelope (which writes the request id into error bodies).

use axum::Router;
use axum::http::{HeaderName, Request};
use axum::middleware;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::error::{ApiError, error_envelope};

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Every route but the console's pages (whose router needs the app), before the layers and
/// the state: the routing table [`router`] serves, which the OpenAPI document's test walks.
pub fn routes() -> Router<App> {
    Router::new()
        .merge(crate::health::router())
        .nest("/api/v1", crate::api_v1::router())
        .nest("/device/v1", crate::device_v1::router())
        .nest("/workstation/v1", crate::workstation_v1::router())
        .merge(crate::device_v1::invite_router())
        .merge(crate::device_manager::router())
}

/// The whole application.
pub fn router(app: App) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    routes()
        .merge(crate::console::router(app.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(crate::metrics::track_requests))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        let id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            path = %request.uri().path(),
                            request_id = %id,
                        )
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(middleware::from_fn(error_envelope)),
        )
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see /api/v1/openapi.json for the API's endpoints")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method: see /api/v1/openapi.json",
    )
}
