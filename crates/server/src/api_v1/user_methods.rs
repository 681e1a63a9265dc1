//! `/api/v1/users/{id}/fido2-methods`: every FIDO2 method Entra holds for a user (ours
//! marked), and deleting one (admins only; keybridge's own passkey is unpaired instead).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};

use crate::app::App;
use crate::auth::{AdminAuth, AdminOnly, AnyRole, RequestMeta};
use crate::error::ApiResult;
use crate::services::method_delete::{self, MethodDeletion};
use crate::services::user_devices::{self, EntraMethod};

/// The routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/users/{id}/fido2-methods", get(list))
        .route("/users/{id}/fido2-methods/{method_id}", delete(remove))
}

async fn list(
    State(app): State<App>,
    _auth: AdminAuth<AnyRole>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<EntraMethod>>> {
    Ok(Json(user_devices::entra_methods(&app, &id).await?))
}

async fn remove(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path((id, method_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<MethodDeletion>)> {
    let outcome = method_delete::delete(&app, &id, &method_id, &auth.actor(), &meta).await?;
    let status = match outcome {
        MethodDeletion::Deleted { .. } => StatusCode::OK,
        MethodDeletion::Unpairing { .. } => StatusCode::ACCEPTED,
    };
    Ok((status, Json(outcome)))
}
