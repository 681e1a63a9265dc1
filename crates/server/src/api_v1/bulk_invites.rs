//! Bulk invitations: `POST /api/v1/integrations/{id}/invites/bulk` (a group or a CSV file,
//! queued as a job), `GET /api/v1/jobs/{id}/invite-results` and
//! `GET /api/v1/jobs/{id}/invite-links` (admins only, audited).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;

use crate::app::App;
use crate::auth::{AdminAuth, AdminOnly, AnyRole, HelpdeskOrAdmin, RequestMeta};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::services::bulk_invites::{self, BulkQueued, BulkResultView, BulkSource};

/// The bulk invitation routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/integrations/{id}/invites/bulk", post(start))
        .route("/jobs/{id}/invite-results", get(results))
        .route("/jobs/{id}/invite-links", get(links))
}

/// Query of a bulk invitation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkQuery {
    /// Hours until the links stop working (default 24, at most 720).
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
}

/// JSON body of a bulk invitation by group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// The Entra group's object id.
    pub group: String,
    /// Hours until the links stop working (default 24, at most 720).
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
}

fn source(headers: &HeaderMap, body: &Bytes) -> ApiResult<(BulkSource, Option<u32>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "text/csv" => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::invalid("csv", "the file is not UTF-8 text: save it as CSV UTF-8")
            })?;
            Ok((BulkSource::Csv(text.to_owned()), None))
        }
        "application/json" => {
            let parsed: GroupBody = serde_json::from_slice(body).map_err(|e| {
                ApiError::invalid(
                    "body",
                    format!("send {{\"group\": \"<Entra group object id>\"}}: {e}"),
                )
            })?;
            Ok((BulkSource::Group(parsed.group), parsed.expires_in_hours))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {other:?} is not accepted: send a CSV file as text/csv or {{\"group\": \"<id>\"}} as application/json"
            ),
        )),
    }
}

async fn start(
    State(app): State<App>,
    auth: AdminAuth<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<BulkQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<BulkQueued>)> {
    let (source, hours) = source(&headers, &body)?;
    let queued = bulk_invites::start(
        &app,
        &id,
        source,
        hours.or(query.expires_in_hours),
        &auth.actor(),
        &meta,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

async fn results(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<BulkResultView>>> {
    Ok(Json(bulk_invites::results(&app, &id).await?))
}

async fn links(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let csv = bulk_invites::links_csv(&app, &id, &auth.actor(), &meta).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"invite-links.csv\"",
            ),
        ],
        csv,
    ))
}
