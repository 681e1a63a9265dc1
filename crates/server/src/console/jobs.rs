//! Jobs (`/console/jobs`): the background work with its progress and failures, retry and
//! cancel; the API's list and changes (`api_v1::jobs`) rendered.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::error::ConsoleError;
use super::flash::{Flash, IncomingFlash};
use super::page::{Layout, Section, render, render_fragment};
use super::session::{ConsoleSession, CsrfForm};
use crate::api_v1::jobs::{JobChange, JobView, ListQuery, change, list_page};
use crate::app::App;
use crate::auth::{AdminOnly, AnyRole, RequestMeta, RoleRequirement};
use crate::services::bulk_invites::{self, BULK_INVITE, BulkResultView, InviteLink};

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

impl Row {
    fn new(mut job: JobView) -> Row {
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
    }
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
    let rows = page.items.into_iter().map(Row::new).collect();
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

/// `2026-01-02T03:04:05.678Z` as `2026-01-02 03:04` (the page says the times are UTC).
fn minutes(rfc3339: &str) -> String {
    rfc3339.get(..16).unwrap_or(rfc3339).replace('T', " ")
}

/// Failures listed on a job's page (the rest are counted).
const MAX_FAILURES_SHOWN: usize = 200;

/// A job's progress and, for a bulk invitation, who could not be invited: the part of the
/// job's page that refreshes itself.
#[derive(Template)]
#[template(path = "console/job_status.html")]
struct JobStatus {
    row: Row,
    bulk: bool,
    invited: usize,
    failures: Vec<BulkResultView>,
    more_failures: usize,
}

#[derive(Template)]
#[template(path = "console/job.html")]
struct JobPage {
    layout: Layout,
    status: JobStatus,
    finished: bool,
    created: String,
    can_change: bool,
    can_see_links: bool,
    links: Option<Vec<LinkRow>>,
    /// SMTP is configured: the job e-mails the links as well.
    emailed: bool,
}

struct LinkRow {
    address: String,
    link: String,
    expires_at: String,
}

async fn job_status(app: &App, id: &str) -> Result<JobStatus, ConsoleError> {
    let job = app.store().jobs().get(id).await?;
    let bulk = job.kind == BULK_INVITE;
    let (invited, failures, more_failures) = if bulk {
        let results = bulk_invites::results(app, id)
            .await
            .map_err(|e| ConsoleError::Internal(e.message().to_owned()))?;
        let invited = results.iter().filter(|r| r.outcome == "invited").count();
        let mut failures: Vec<BulkResultView> = results
            .into_iter()
            .filter(|r| r.outcome != "invited")
            .collect();
        let more = failures.len().saturating_sub(MAX_FAILURES_SHOWN);
        failures.truncate(MAX_FAILURES_SHOWN);
        (invited, failures, more)
    } else {
        (0, Vec::new(), 0)
    };
    Ok(JobStatus {
        row: Row::new(JobView::from(&job)),
        bulk,
        invited,
        failures,
        more_failures,
    })
}

async fn job_page<R: RoleRequirement>(
    app: &App,
    session: &ConsoleSession<R>,
    flash: Option<Flash>,
    id: &str,
    links: Option<Vec<InviteLink>>,
) -> Result<Response, ConsoleError> {
    let status = job_status(app, id).await?;
    let finished = matches!(status.row.job.state, "succeeded" | "dead" | "cancelled");
    let created = minutes(&status.row.job.created_at);
    let page = JobPage {
        layout: session.layout(
            format!("Job: {}", status.row.job.kind),
            Section::Jobs,
            flash,
        ),
        can_change: AdminOnly::allows(session.session.role),
        can_see_links: status.bulk && status.invited > 0 && AdminOnly::allows(session.session.role),
        links: links.map(|links| {
            links
                .into_iter()
                .map(|l| LinkRow {
                    address: l.address,
                    link: l.link.expose().to_owned(),
                    expires_at: minutes(&l.expires_at.to_rfc3339()),
                })
                .collect()
        }),
        finished,
        created,
        emailed: app.mailer().is_some(),
        status,
    };
    Ok(render(&page, &page.layout))
}

/// `GET /console/jobs/{id}`: one job's progress and failures (for a bulk invitation, each
/// user who could not be invited and why).
pub async fn show(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    IncomingFlash(flash): IncomingFlash,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    job_page(&app, &session, flash, &id, None).await
}

/// `GET /console/jobs/{id}/status`: the job page's live part, as an HTML fragment.
pub async fn status(
    State(app): State<App>,
    _session: ConsoleSession<AnyRole>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    Ok(render_fragment(&job_status(&app, &id).await?))
}

/// `POST /console/jobs/{id}/invite-links`: the links a bulk invitation made, shown once on the
/// answer (admins only, audited as the API's download is; never in a URL or a cookie).
pub async fn invite_links(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<ChangeForm>,
) -> Result<Response, ConsoleError> {
    let links = bulk_invites::links(&app, &id, &session.actor(), &meta)
        .await
        .map_err(|e| {
            if e.status().is_client_error() {
                ConsoleError::BadRequest(e.message().to_owned())
            } else {
                ConsoleError::Internal(e.message().to_owned())
            }
        })?;
    job_page(&app, &session, None, &id, Some(links)).await
}
