//! Jobs (`/console/jobs`): the background work with its progress and failures, retry and
//! cancel; the API's list and changes (`api_v1::jobs`) rendered.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::error::ConsoleError;
use super::flash::{Flash, IncomingFlash};
use super::page::{Layout, Section, render};
use super::session::{ConsoleSession, CsrfForm};
use crate::api_v1::jobs::{JobChange, JobView, ListQuery, change, list_page};
use crate::app::App;
use crate::auth::{AdminOnly, AnyRole, RequestMeta, RoleRequirement};

/// The list's query string.
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    /// Only this state (empty: all).
    #[serde(default)]
    pub state: Option<String>,
    /// The page after this job id.
    #[serde(default)]
    pub before: Option<String>,
}

struct Row {
    job: JobView,
    /// Percent done, when the job knows its total.
    percent: Option<i64>,
    can_retry: bool,
    can_cancel: bool,
}

struct StateFilter {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct JobsPage {
    layout: Layout,
    states: Vec<StateFilter>,
    rows: Vec<Row>,
    next_href: Option<String>,
    can_change: bool,
}

/// A readable name for a job kind.
fn kind_label(kind: &str) -> String {
    let mut label = kind.replace('_', " ");
    if let Some(first) = label.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    label
}

/// `GET /console/jobs`.
pub async fn list(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    IncomingFlash(flash): IncomingFlash,
    Query(query): Query<JobsQuery>,
) -> Result<Response, ConsoleError> {
    let state = query.state.filter(|s| !s.is_empty());
    let page = list_page(
        &app,
        ListQuery {
            state: state.clone(),
            before: query.before.filter(|b| !b.is_empty()),
            ..ListQuery::default()
        },
    )
    .await
    .map_err(|e| ConsoleError::BadRequest(e.message().to_owned()))?;
    let rows = page
        .items
        .into_iter()
        .map(|mut job| {
            let percent = (job.progress_total > 0).then(|| {
                ((job.progress_done + job.progress_failed) * 100 / job.progress_total).min(100)
            });
            let can_retry = matches!(job.state, "dead" | "cancelled");
            let can_cancel = matches!(job.state, "queued" | "running");
            job.kind = kind_label(&job.kind);
            Row {
                job,
                percent,
                can_retry,
                can_cancel,
            }
        })
        .collect();
    let states = [
        ("", "All"),
        ("queued", "Queued"),
        ("running", "Running"),
        ("succeeded", "Succeeded"),
        ("dead", "Failed"),
        ("cancelled", "Cancelled"),
    ]
    .into_iter()
    .map(|(value, label)| StateFilter {
        value,
        label,
        selected: state.as_deref().unwrap_or("") == value,
    })
    .collect();
    let next_href = page.next.map(|next| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(state) = &state {
            q.append_pair("state", state);
        }
        q.append_pair("before", &next);
        format!("/console/jobs?{}", q.finish())
    });
    let view = JobsPage {
        layout: session.layout("Jobs", Section::Jobs, flash),
        states,
        rows,
        next_href,
        can_change: AdminOnly::allows(session.session.role),
    };
    Ok(render(&view, &view.layout))
}

/// The retry and cancel forms: only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct ChangeForm {}

async fn apply(
    app: &App,
    session: &ConsoleSession<AdminOnly>,
    meta: &RequestMeta,
    id: &str,
    what: JobChange,
) -> Response {
    let done = match what {
        JobChange::Retry => "queued again",
        JobChange::Cancel => "cancelled",
    };
    match change(app, &session.actor(), meta, id, what).await {
        Ok(job) => Flash::success(format!(
            "Job {} ({}) {done}.",
            job.id,
            kind_label(&job.kind)
        ))
        .redirect("/console/jobs"),
        Err(error) => Flash::error(error.message().to_owned()).redirect("/console/jobs"),
    }
}

/// `POST /console/jobs/{id}/retry`.
pub async fn retry(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<ChangeForm>,
) -> Response {
    apply(&app, &session, &meta, &id, JobChange::Retry).await
}

/// `POST /console/jobs/{id}/cancel`.
pub async fn cancel(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<ChangeForm>,
) -> Response {
    apply(&app, &session, &meta, &id, JobChange::Cancel).await
}
