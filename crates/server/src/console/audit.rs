//! Audit (`/console/audit`): the hash-chained audit log with filters and pages, and its
//! export as a download; the API's list and export (`api_v1::audit`) rendered.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::error::ConsoleError;
use super::flash::IncomingFlash;
use super::page::{Layout, Section, render};
use super::session::ConsoleSession;
use crate::api_v1::audit::{AuditEventView, AuditQuery, export_download, list_page};
use crate::app::App;
use crate::auth::AnyRole;

struct Row {
    event: AuditEventView,
    details: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    action: String,
    actor: String,
    from: String,
    to: String,
    rows: Vec<Row>,
    next_href: Option<String>,
    export_csv: String,
    export_json: String,
    problem: Option<String>,
}

fn filter_query(query: &AuditQuery) -> url::form_urlencoded::Serializer<'static, String> {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("action", &query.action),
        ("actor", &query.actor),
        ("from", &query.from),
        ("to", &query.to),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            q.append_pair(key, value);
        }
    }
    q
}

/// The date inputs send `YYYY-MM-DD`; the API's filter takes RFC 3339 instants.
fn as_instant(date: Option<&str>, end_of_day: bool) -> Option<String> {
    let date = date.map(str::trim).filter(|d| !d.is_empty())?;
    if date.contains('T') {
        return Some(date.to_owned());
    }
    Some(if end_of_day {
        format!("{date}T23:59:59.999Z")
    } else {
        format!("{date}T00:00:00Z")
    })
}

/// `GET /console/audit`.
pub async fn list(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    IncomingFlash(flash): IncomingFlash,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    let api_query = AuditQuery {
        from: as_instant(query.from.as_deref(), false),
        to: as_instant(query.to.as_deref(), true),
        action: query.action.clone(),
        actor: query.actor.clone(),
        before: query.before,
        limit: Some(50),
        format: None,
    };
    let (rows, next, problem) = match list_page(&app, &api_query).await {
        Ok(page) => (
            page.items
                .into_iter()
                .map(|event| Row {
                    details: if event.details == serde_json::json!({}) {
                        String::new()
                    } else {
                        event.details.to_string()
                    },
                    event,
                })
                .collect(),
            page.next,
            None,
        ),
        Err(error) => (Vec::new(), None, Some(error.message().to_owned())),
    };
    let next_href = next.map(|seq| {
        let mut q = filter_query(&query);
        q.append_pair("before", &seq.to_string());
        format!("/console/audit?{}", q.finish())
    });
    let export = |format: &str| {
        let mut q = filter_query(&AuditQuery {
            from: api_query.from.clone(),
            to: api_query.to.clone(),
            action: query.action.clone(),
            actor: query.actor.clone(),
            ..AuditQuery::default()
        });
        q.append_pair("format", format);
        format!("/console/audit/export?{}", q.finish())
    };
    let page = AuditPage {
        layout: session.layout("Audit", Section::Audit, flash),
        action: query.action.clone().unwrap_or_default(),
        actor: query.actor.clone().unwrap_or_default(),
        from: query.from.clone().unwrap_or_default(),
        to: query.to.clone().unwrap_or_default(),
        rows,
        next_href,
        export_csv: export("csv"),
        export_json: export("json"),
        problem,
    };
    Ok(render(&page, &page.layout))
}

/// `GET /console/audit/export?format=csv|json&…`: the filtered log as a download.
pub async fn export(
    State(app): State<App>,
    _session: ConsoleSession<AnyRole>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    export_download(&app, &query)
        .await
        .map_err(|e| ConsoleError::BadRequest(e.message().to_owned()))
        .map(IntoResponse::into_response)
}
