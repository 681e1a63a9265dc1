//! `/api/v1/jobs/{id}`: a job's state and progress (sync, provisioning, bulk runs).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use keybridge_store::{Job, Timestamp};
use serde::Serialize;

use crate::app::App;
use crate::auth::{AdminAuth, AnyRole};
use crate::error::ApiResult;

/// The jobs routes.
pub fn router() -> Router<App> {
    Router::new().route("/jobs/{id}", get(show))
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
