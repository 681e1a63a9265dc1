//! `/api/v1/audit`: the hash-chained audit log, filtered and paged, and exported as JSON lines
//! or CSV (any role: auditors read it).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keybridge_store::{AuditEvent, AuditFilter, ExportFormat, Timestamp};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{AdminAuth, AnyRole};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

/// The audit routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/export", get(export))
}

/// Filters of the audit list and export.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action, e.g. `integration.create`.
    #[serde(default)]
    pub action: Option<String>,
    /// Only this actor, e.g. `token:<id>`.
    #[serde(default)]
    pub actor: Option<String>,
    /// From this instant (RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    /// Until this instant (RFC 3339).
    #[serde(default)]
    pub to: Option<String>,
    /// List only: events before this `seq` (the `next` of the previous page).
    #[serde(default)]
    pub before: Option<i64>,
    /// List only: page size, 1–500 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Export only: `json` (JSON lines, default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// An audit event.
#[derive(Debug, Serialize)]
pub struct AuditEventView {
    /// Position in the chain.
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// Client address.
    pub source_addr: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Details (JSON).
    pub details: serde_json::Value,
    /// This event's hash.
    pub hash: String,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> AuditEventView {
        AuditEventView {
            seq: e.seq,
            at: e.at.to_rfc3339(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            source_addr: e.source_addr.clone(),
            request_id: e.request_id.clone(),
            details: serde_json::from_str(&e.details)
                .unwrap_or_else(|_| serde_json::Value::String(e.details.clone())),
            hash: e.hash.clone(),
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize)]
pub struct AuditPage {
    /// The events.
    pub items: Vec<AuditEventView>,
    /// Pass as `before` for the next page.
    pub next: Option<i64>,
}

fn instant(field: &'static str, text: Option<&str>) -> ApiResult<Option<Timestamp>> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(Timestamp::from)
                .map_err(|_| {
                    ApiError::invalid(
                        field,
                        format!("{t:?} is not an RFC 3339 instant such as 2026-11-25T14:00:00Z"),
                    )
                })
        })
        .transpose()
}

fn filter(query: &AuditQuery) -> ApiResult<AuditFilter> {
    Ok(AuditFilter {
        action: query.action.clone().filter(|a| !a.is_empty()),
        actor: query.actor.clone().filter(|a| !a.is_empty()),
        from: instant("from", query.from.as_deref())?,
        to: instant("to", query.to.as_deref())?,
    })
}

async fn list(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    Ok(Json(list_page(&app, &query).await?))
}

/// One page of events, newest first (the API's list and the console's Audit page).
pub async fn list_page(app: &App, query: &AuditQuery) -> ApiResult<AuditPage> {
    let limit = match query.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid(
                "limit",
                format!("{n} is outside 1..=500"),
            ));
        }
    };
    let events = app
        .store()
        .audit()
        .list(&filter(query)?, query.before, limit)
        .await?;
    let next = (events.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(AuditPage {
        items: events.iter().map(AuditEventView::from).collect(),
        next,
    })
}

async fn export(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    export_download(&app, &query).await
}

/// The export as a file download (`keybridge-audit.jsonl` or `.csv`), for the API and the
/// console's Audit page.
pub async fn export_download(app: &App, query: &AuditQuery) -> ApiResult<Response> {
    let (format, content_type, extension) = match query.format.as_deref() {
        None | Some("json") => (ExportFormat::JsonLines, "application/jsonl", "jsonl"),
        Some("csv") => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("{other:?} is not an export format: use json or csv"),
            ));
        }
    };
    let filter = filter(query)?;
    let mut out: Vec<u8> = Vec::new();
    app.store()
        .audit()
        .export(&filter, format, &mut out)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"keybridge-audit.{extension}\""),
            ),
        ],
        out,
    )
        .into_response())
}
