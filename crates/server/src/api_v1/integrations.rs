//! `/api/v1/integrations`: connect a tenant, read, change what may change, rotate the
//! credential, delete; native login and login settings; pre-flight and sync on demand.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{AdminAuth, AdminOnly, AnyRole, RequestMeta};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::services::integrations::{
    self as service, CreateIntegration, Created, CredentialInput, IntegrationView, NativeLoginView,
    PatchIntegration, RestrictDomainsSaved,
};
use crate::services::preflight::PreflightCheck;

/// The integrations routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/integrations", get(list).post(create))
        .route("/integrations/{id}", get(show).patch(patch).delete(delete))
        .route("/integrations/{id}/credential", post(rotate_credential))
        .route("/integrations/{id}/native-login", put(native_login))
        .route("/integrations/{id}/restrict-domains", put(restrict_domains))
        .route("/integrations/{id}/preflight", post(preflight))
        .route("/integrations/{id}/sync", post(sync))
        .route("/integrations/{id}/desktop-client", get(desktop_client))
}

async fn create(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<CreateIntegration>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let created = service::create(&app, body, &auth.actor(), &meta).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
) -> ApiResult<Json<Vec<IntegrationView>>> {
    let all = app.store().integrations().list().await?;
    Ok(Json(all.iter().map(IntegrationView::from).collect()))
}

async fn show(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationView>> {
    let integration = app.store().integrations().get(&id).await?;
    Ok(Json(IntegrationView::from(&integration)))
}

async fn patch(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchIntegration>,
) -> ApiResult<Json<IntegrationView>> {
    Ok(Json(
        service::patch(&app, &id, body, &auth.actor(), &meta).await?,
    ))
}

async fn rotate_credential(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CredentialInput>,
) -> ApiResult<Json<IntegrationView>> {
    Ok(Json(
        service::rotate_credential(&app, &id, body, &auth.actor(), &meta).await?,
    ))
}

async fn delete(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    service::delete(&app, &id, &auth.actor(), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../native-login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeLogin {
    /// On or off.
    pub enabled: bool,
}

async fn native_login(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NativeLogin>,
) -> ApiResult<Json<NativeLoginView>> {
    Ok(Json(
        service::set_native_login(&app, &id, body.enabled, &auth.actor(), &meta).await?,
    ))
}

/// `PUT .../restrict-domains`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictDomainsBody {
    /// Bare domain names (no scheme, no path); empty: no restriction.
    pub domains: Vec<String>,
}

async fn restrict_domains(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RestrictDomainsBody>,
) -> ApiResult<Json<RestrictDomainsSaved>> {
    Ok(Json(
        service::set_restrict_domains(&app, &id, &body.domains, &auth.actor(), &meta).await?,
    ))
}

/// The answer of `POST .../preflight`.
#[derive(Debug, Serialize)]
pub struct PreflightView {
    /// The checks.
    pub preflight: Vec<PreflightCheck>,
}

async fn preflight(
    State(app): State<App>,
    _auth: AdminAuth<AdminOnly>,
    Path(id): Path<String>,
) -> ApiResult<Json<PreflightView>> {
    Ok(Json(PreflightView {
        preflight: service::rerun_preflight(&app, &id).await?,
    }))
}

/// The answer of `POST .../sync`.
#[derive(Debug, Serialize)]
pub struct SyncQueued {
    /// The queued (or already queued) sync job.
    pub job_id: String,
}

async fn sync(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<SyncQueued>)> {
    let job_id = service::queue_sync(&app, &id, &auth.actor(), &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(SyncQueued { job_id })))
}

/// Query of the desktop-client download.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesktopClientQuery {
    /// Days the install token works (default 30, at most 365).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

async fn desktop_client(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DesktopClientQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let download = crate::services::desktop_client::build(
        &app,
        &id,
        query.expires_in_days,
        &auth.actor(),
        &meta,
    )
    .await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/zip".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", download.file_name),
            ),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        download.bytes,
    )
        .into_response())
}
