//! Workstations in the admin API: the phones of a user with the workstations paired with each
//! (`GET /api/v1/users/{id}/phones`), one workstation, revocation, and revealing an escrowed
//! recovery PIN (audited).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use keybridge_store::{NewAuditEvent, Timestamp, Workstation, WorkstationStatus};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{AdminAuth, AdminOnly, AnyRole, HelpdeskOrAdmin, RequestMeta};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::services::user_devices;

/// The workstation routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/users/{id}/phones", get(phones))
        .route("/workstations/{id}", get(show).delete(revoke))
        .route("/workstations/{id}/recovery-pin", get(reveal_recovery_pin))
}

/// A workstation as the API shows it.
#[derive(Debug, Serialize)]
pub struct WorkstationView {
    /// The Workstation ID.
    pub id: String,
    /// Computer name.
    pub name: String,
    /// `active` or `revoked`.
    pub status: &'static str,
    /// Installed (RFC 3339).
    pub created_at: String,
    /// First paired with a phone.
    pub paired_at: Option<String>,
    /// Revoked.
    pub revoked_at: Option<String>,
    /// Last request.
    pub last_seen_at: Option<String>,
    /// The phone pairings (Device IDs) it can sign in through.
    pub phone_ids: Vec<String>,
}

async fn view(app: &App, workstation: Workstation) -> ApiResult<WorkstationView> {
    let phone_ids = app.store().workstations().phones(&workstation.id).await?;
    Ok(WorkstationView {
        id: workstation.id,
        name: workstation.name,
        status: match workstation.status {
            WorkstationStatus::Active => "active",
            WorkstationStatus::Revoked => "revoked",
        },
        created_at: workstation.created_at.to_rfc3339(),
        paired_at: workstation.paired_at.map(Timestamp::to_rfc3339),
        revoked_at: workstation.revoked_at.map(Timestamp::to_rfc3339),
        last_seen_at: workstation.last_seen_at.map(Timestamp::to_rfc3339),
        phone_ids,
    })
}

/// A phone of a user, with its workstations.
#[derive(Debug, Serialize)]
pub struct PhoneView {
    /// The Device ID.
    pub id: String,
    /// Name, model, OS.
    pub name: String,
    /// Model.
    pub model: String,
    /// OS.
    pub os: String,
    /// Paired (RFC 3339).
    pub created_at: String,
    /// Last request.
    pub last_seen_at: Option<String>,
    /// Other accounts the same phone proved it holds when it paired a workstation (their
    /// Device IDs). Non-empty means one authenticator holds several accounts: sign-ins must
    /// name the account (the phone asks when several passkeys could answer).
    pub other_accounts_on_device: Vec<String>,
    /// A warning for the console, when there is one.
    pub warning: Option<String>,
    /// Workstations paired with this phone account.
    pub workstations: Vec<WorkstationView>,
}

async fn phones(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<PhoneView>>> {
    let store = app.store();
    store.users().get(&id).await?;
    let mut views = Vec::new();
    for phone in store.phones().list_for_user(&id).await? {
        let mut workstations = Vec::new();
        for workstation in store.workstations().list_for_phone(&phone.id).await? {
            workstations.push(view(&app, workstation).await?);
        }
        let others = user_devices::other_accounts_on_device(&app, &phone.id).await?;
        let warning = user_devices::several_accounts_warning(&others);
        views.push(PhoneView {
            id: phone.id,
            name: phone.name,
            model: phone.model,
            os: phone.os,
            created_at: phone.created_at.to_rfc3339(),
            last_seen_at: phone.last_seen_at.map(Timestamp::to_rfc3339),
            other_accounts_on_device: others,
            warning,
            workstations,
        });
    }
    Ok(Json(views))
}

async fn get_workstation(app: &App, id: &str) -> ApiResult<Workstation> {
    match app.store().workstations().get(id).await {
        Ok(workstation) => Ok(workstation),
        Err(e) if e.is_not_found() => Err(ApiError::not_found(format!("no workstation {id}"))),
        Err(e) => Err(e.into()),
    }
}

async fn show(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkstationView>> {
    let workstation = get_workstation(&app, &id).await?;
    Ok(Json(view(&app, workstation).await?))
}

/// `DELETE /api/v1/workstations/{id}`: revokes the workstation. It can no longer sign in or
/// pair; its record stays for the audit trail.
async fn revoke(
    State(app): State<App>,
    auth: AdminAuth<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let workstation = get_workstation(&app, &id).await?;
    if workstation.status == WorkstationStatus::Revoked {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut tx = app.store().begin().await?;
    tx.workstations().revoke(&id, Timestamp::now()).await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(auth.actor(), "workstation.revoke")
                    .target(format!("workstation:{id}"))
                    .details(serde_json::json!({"computer_name": workstation.name})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?user_id=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryQuery {
    /// The user whose PIN to reveal.
    pub user_id: String,
}

/// The revealed PIN.
#[derive(Debug, Serialize)]
pub struct RecoveryPin {
    /// The workstation.
    pub workstation_id: String,
    /// The user.
    pub user_id: String,
    /// The PIN.
    pub pin: String,
}

/// `GET /api/v1/workstations/{id}/recovery-pin?user_id=`: an admin reveals a user's escrowed
/// recovery PIN for the workstation; audited before it is returned.
async fn reveal_recovery_pin(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RecoveryQuery>,
) -> ApiResult<Json<RecoveryPin>> {
    let workstation = get_workstation(&app, &id).await?;
    let store = app.store();
    let pin = store
        .workstations()
        .recovery_pin(&workstation.id, &query.user_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "no recovery PIN is escrowed for this user on this workstation: the phone sets \
                 one when it pairs the workstation",
            )
        })?;
    store
        .audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(auth.actor(), "workstation.recovery_pin.reveal")
                    .target(format!("workstation:{id}"))
                    .details(serde_json::json!({"user_id": query.user_id})),
            ),
        )
        .await?;
    Ok(Json(RecoveryPin {
        workstation_id: workstation.id,
        user_id: query.user_id,
        pin: pin.expose().to_owned(),
    }))
}
