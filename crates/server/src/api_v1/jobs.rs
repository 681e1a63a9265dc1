//! `/api/v1/jobs`: the background jobs (sync, status checks, deletions, provisioning) with
//! their state, progress and failures; retry and cancel.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use keybridge_store::{Job, JobFilter, JobState, NewAuditEvent, Timestamp};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{AdminAuth, AdminOnly, AnyRole, RequestMeta};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

/// The jobs routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(show))
        .route("/jobs/{id}/retry", post(retry))
        .route("/jobs/{id}/cancel", post(cancel))
}

/// Query of the job list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this state.
    #[serde(default)]
    pub state: Option<String>,
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// The `next` value of the previous page.
    #[serde(default)]
    pub before: Option<String>,
    /// Page size, 1–200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize)]
pub struct JobPage {
    /// The jobs.
    pub items: Vec<JobView>,
    /// Pass as `before` for the next page.
    pub next: Option<String>,
}

fn parse_state(text: &str) -> Result<JobState, ApiError> {
    [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
    .ok_or_else(|| {
        ApiError::invalid(
            "state",
            format!(
                "{text:?} is not a job state: use queued, running, succeeded, dead or cancelled"
            ),
        )
    })
}

async fn list(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobPage>> {
    Ok(Json(list_page(&app, query).await?))
}

/// One page of jobs, newest first (the API's list and the console's Jobs page).
pub async fn list_page(app: &App, query: ListQuery) -> ApiResult<JobPage> {
    let limit = match query.limit {
        None => 50,
        Some(n) if (1..=200).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid(
                "limit",
                format!("{n} is outside 1..=200"),
            ));
        }
    };
    let filter = JobFilter {
        state: query.state.as_deref().map(parse_state).transpose()?,
        queue: None,
        kind: query.kind.filter(|k| !k.is_empty()),
    };
    let jobs = app
        .store()
        .jobs()
        .list(&filter, query.before.as_deref(), limit)
        .await?;
    let next = (jobs.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| jobs.last().map(|j| j.id.clone()))
        .flatten();
    Ok(JobPage {
        items: jobs.iter().map(JobView::from).collect(),
        next,
    })
}

async fn retry(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    change(&app, &auth.actor(), &meta, &id, JobChange::Retry)
        .await
        .map(Json)
}

async fn cancel(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    change(&app, &auth.actor(), &meta, &id, JobChange::Cancel)
        .await
        .map(Json)
}

/// What an admin does to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// Run a dead or cancelled job again.
    Retry,
    /// Stop a queued or running job.
    Cancel,
}

/// Retries or cancels a job, audited as `job.retry` / `job.cancel` (the API and the console).
pub async fn change(
    app: &App,
    actor: &str,
    meta: &RequestMeta,
    id: &str,
    change: JobChange,
) -> ApiResult<JobView> {
    let mut tx = app.store().begin().await?;
    let (result, action) = match change {
        JobChange::Retry => (tx.jobs().retry(id).await, "job.retry"),
        JobChange::Cancel => (tx.jobs().cancel(id).await, "job.cancel"),
    };
    result.map_err(|e| match e {
        keybridge_store::StoreError::JobState { .. } => {
            ApiError::new(axum::http::StatusCode::CONFLICT, "job_state", e.to_string())
        }
        other => ApiError::from(other),
    })?;
    tx.audit()
        .append(meta.stamp(NewAuditEvent::new(actor, action).target(format!("job:{id}"))))
        .await?;
    tx.commit().await?;
    Ok(JobView::from(&app.store().jobs().get(id).await?))
}

/// A job as the API shows it.
#[derive(Debug, Serialize)]
pub struct JobView {
    /// Id.
    pub id: String,
    /// Kind, e.g. `directory_sync`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `dead` or `cancelled`.
    pub state: &'static str,
    /// Attempts so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Items done.
    pub progress_done: i64,
    /// Items failed.
    pub progress_failed: i64,
    /// Items in all (0 when unknown).
    pub progress_total: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub finished_at: Option<String>,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> JobView {
        JobView {
            id: job.id.clone(),
            kind: job.kind.clone(),
            state: job.state.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            progress_done: job.progress_done,
            progress_failed: job.progress_failed,
            progress_total: job.progress_total,
            last_error: job.last_error.clone(),
            created_at: job.created_at.to_rfc3339(),
            finished_at: job.finished_at.map(Timestamp::to_rfc3339),
        }
    }
}

async fn show(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(JobView::from(&app.store().jobs().get(&id).await?)))
}
