//! `/api/v1/integrations/{id}/users` and `/api/v1/users/{id}`: the user list (tabs with
//! counts, search, sort, keyset pagination) and one user. Read-only for now: invites,
//! pairing and deletion come with the device protocol.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use keybridge_core::UserState;
use keybridge_store::{Timestamp, User, UserCursor, UserQuery, UserSort};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{AdminAuth, AnyRole, HelpdeskOrAdmin, RequestMeta};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::services::invites::{self, InviteListItem};

/// The users routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/integrations/{id}/users", get(list))
        .route("/users/{id}", get(show).delete(delete_user))
        .route(
            "/users/{id}/invites",
            post(invite).get(list_invites).delete(revoke_invite),
        )
        .route("/users/{id}/phones/{phone_id}", delete(unpair_phone))
}

/// Largest page.
pub const MAX_PAGE: u32 = 500;

/// Query of the user list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Tab: `pending`, `paired_with_keybridge` or `paired_with_entra` (none: all).
    #[serde(default)]
    pub state: Option<String>,
    /// Case-insensitive part of the e-mail, username or name.
    #[serde(default)]
    pub search: Option<String>,
    /// `username` (default), `name` or `last_active`.
    #[serde(default)]
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub order: Option<String>,
    /// The `next` cursor of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// Page size, 1–500 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A user as the list shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    /// Id.
    pub id: String,
    /// Integration.
    pub integration_id: String,
    /// Entra object id.
    pub entra_object_id: String,
    /// E-mail.
    pub email: Option<String>,
    /// Username (UPN).
    pub username: String,
    /// Display name.
    pub name: String,
    /// `pending`, `paired_with_keybridge` or `paired_with_entra`.
    pub state: &'static str,
    /// `active`, `disabled` or `not_found`.
    pub entra_status: &'static str,
    /// "This user cannot be found in Microsoft Entra." or "This user unpaired from keybridge."
    pub warning: Option<&'static str>,
    /// Paired phones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_count: Option<i64>,
    /// Last activity (RFC 3339).
    pub last_active: Option<String>,
    /// Why provisioning last failed.
    pub provisioning_error: Option<String>,
}

/// The view of a stored user (with its phone count when known).
pub fn view(user: &User, device_count: Option<i64>) -> UserView {
    UserView {
        id: user.id.clone(),
        integration_id: user.integration_id.clone(),
        entra_object_id: user.entra_object_id.clone(),
        email: user.email.clone(),
        username: user.upn.clone(),
        name: user.display_name.clone(),
        state: user.state.as_str(),
        entra_status: user.entra_status.as_str(),
        warning: warning(user),
        device_count,
        last_active: user.last_active_at.map(Timestamp::to_rfc3339),
        provisioning_error: user.provisioning_error.clone(),
    }
}

/// Core decides the warning.
fn warning(user: &User) -> Option<&'static str> {
    crate::services::facts::user_facts(user, false).and_then(|facts| facts.warning())
}

/// The tab counts.
#[derive(Debug, Serialize)]
pub struct Counts {
    /// Pending.
    pub pending: i64,
    /// Paired with keybridge.
    pub paired_with_keybridge: i64,
    /// Paired with Entra.
    pub paired_with_entra: i64,
}

/// One page of the list.
#[derive(Debug, Serialize)]
pub struct UserPageView {
    /// Users per tab.
    pub counts: Counts,
    /// This page.
    pub items: Vec<UserView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
    /// The job checking this page's users in Entra, when some were due (the next load shows
    /// its result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_check_job_id: Option<String>,
}

fn parse_query(integration_id: &str, query: ListQuery) -> ApiResult<UserQuery> {
    let state = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<UserState>())
        .transpose()
        .map_err(|e| ApiError::invalid("state", e))?;
    let mut parsed = UserQuery::new(integration_id, state);
    parsed.search = query.search.filter(|s| !s.trim().is_empty());
    parsed.sort = match query.sort.as_deref() {
        None | Some("username") => UserSort::Upn,
        Some("name") => UserSort::DisplayName,
        Some("last_active") => UserSort::LastActive,
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!("{other:?} is not a sort column: use username, name or last_active"),
            ));
        }
    };
    parsed.descending = match query.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "order",
                format!("{other:?} is not an order: use asc or desc"),
            ));
        }
    };
    parsed.after = query
        .after
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<UserCursor>())
        .transpose()
        .map_err(|_| {
            ApiError::invalid(
                "after",
                "not a cursor from this list: pass the `next` value of the previous page",
            )
        })?;
    parsed.limit = match query.limit {
        None => 50,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid(
                "limit",
                format!("{n} is outside 1..={MAX_PAGE}"),
            ));
        }
    };
    Ok(parsed)
}

async fn list(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<UserPageView>> {
    Ok(Json(list_page(&app, &id, query).await?))
}

/// One page of an integration's user list with the tab counts, as the API and the console's
/// User Management page show it; queues a status check of the page's users that are due.
pub async fn list_page(app: &App, id: &str, query: ListQuery) -> ApiResult<UserPageView> {
    app.store().integrations().get(id).await?;
    let query = parse_query(id, query)?;
    let page = app.store().users().list(&query).await?;
    let counts = app.store().users().count_by_state(id).await?;
    let now = keybridge_store::Timestamp::now();
    let due: Vec<String> = page
        .items
        .iter()
        .filter(|item| crate::services::status_check::is_due(&item.user, now))
        .map(|item| item.user.id.clone())
        .collect();
    let status_check_job_id = if due.is_empty() {
        None
    } else {
        let job = crate::services::status_check::job(id, &due);
        Some(app.store().jobs().enqueue(job).await?.id().to_owned())
    };
    Ok(UserPageView {
        counts: Counts {
            pending: counts.pending,
            paired_with_keybridge: counts.paired_with_keybridge,
            paired_with_entra: counts.paired_with_entra,
        },
        items: page
            .items
            .iter()
            .map(|item| view(&item.user, Some(item.device_count)))
            .collect(),
        next: page.next.map(|c| c.to_string()),
        status_check_job_id,
    })
}

async fn show(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let user = app.store().users().get(&id).await?;
    let phones = app.store().phones().list_for_user(&id).await?;
    Ok(Json(view(
        &user,
        Some(i64::try_from(phones.len()).unwrap_or(i64::MAX)),
    )))
}

/// `POST /api/v1/users/{id}/invites`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Hours until the link stops working (default 24, at most 720).
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
}

async fn invite(
    State(app): State<App>,
    auth: AdminAuth<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<invites::Delivered>)> {
    let invited =
        invites::invite_and_deliver(&app, &id, body.expires_in_hours, &auth.actor(), &meta).await?;
    Ok((StatusCode::CREATED, Json(invited)))
}

async fn list_invites(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<InviteListItem>>> {
    Ok(Json(invites::list(&app, &id).await?))
}

async fn revoke_invite(
    State(app): State<App>,
    auth: AdminAuth<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    invites::revoke(&app, &id, &auth.actor(), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// The user's username (UPN), to confirm an irreversible deletion.
    pub confirm: String,
}

/// The answer to a deletion request.
#[derive(Debug, Serialize)]
pub struct DeletionQueued {
    /// The job doing it.
    pub job_id: String,
}

async fn delete_user(
    State(app): State<App>,
    auth: AdminAuth<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> ApiResult<(StatusCode, Json<DeletionQueued>)> {
    let job_id =
        crate::services::user_delete::request(&app, &id, &body.confirm, &auth.actor(), &meta)
            .await?;
    Ok((StatusCode::ACCEPTED, Json(DeletionQueued { job_id })))
}

/// `DELETE /api/v1/users/{id}/phones/{phone_id}`: an admin unpairs one of the user's phones.
/// A job deletes the phone's passkey from Entra, then the phone (202 with the job).
async fn unpair_phone(
    State(app): State<App>,
    auth: AdminAuth<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path((id, phone_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeletionQueued>)> {
    let job_id =
        crate::services::unpair::request_by_admin(&app, &id, &phone_id, &auth.actor(), &meta)
            .await?;
    Ok((StatusCode::ACCEPTED, Json(DeletionQueued { job_id })))
}
