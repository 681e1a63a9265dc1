//! Prometheus metrics: request counts and latency by route and status, job counts.
//!
//! The `metrics` facade has one global recorder per process; every server started in the
//! process (tests start several) shares it through [`handle`].

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by method, route and status.
pub const REQUESTS_TOTAL: &str = "keybridge_http_requests_total";
/// Request latency in seconds, by method, route and status.
pub const REQUEST_DURATION: &str = "keybridge_http_request_duration_seconds";
/// Jobs by state (refreshed on every scrape).
pub const JOBS: &str = "keybridge_jobs";

/// The process's Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(REQUEST_DURATION.to_owned()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                Err(error) => {
                    // Another recorder owns the process: serve an empty exposition rather
                    // than fail to start.
                    tracing::warn!(%error, "metrics recorder not installed; /metrics stays empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Middleware: counts and times each request by its route pattern (not its concrete path, so
/// ids do not explode the label set).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}
