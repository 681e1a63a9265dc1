//! Deleting one of a user's FIDO2 methods in Entra, whoever made it (another vendor's security
//! key, or a passkey registered outside keybridge). The method is read again first, so a
//! method that is already gone is reported as such rather than "deleted". A method that is
//! one of keybridge's own passkeys is not deleted raw: its phone is unpaired
//! ([`crate::services::unpair`]), so that the user's state and groups follow.

use axum::http::StatusCode;
use keybridge_graph::{GraphClient, GraphError};
use keybridge_store::{CredentialStatus, NewAuditEvent, User};
use serde::Serialize;

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult, graph_error};
use crate::services::{is_method_of, unpair};

/// Longest method id accepted (Entra's are base64url credential ids: far shorter).
const MAX_METHOD_ID: usize = 512;

/// What deleting a method did.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MethodDeletion {
    /// Another vendor's method, deleted from Entra now.
    Deleted {
        /// Entra's method id.
        method_id: String,
        /// Its display name in Entra.
        device_name: String,
    },
    /// keybridge's own passkey: its phone is being unpaired by a job.
    Unpairing {
        /// Entra's method id.
        method_id: String,
        /// The phone holding the passkey.
        phone_id: String,
        /// The unpair job.
        job_id: String,
    },
}

fn check_method_id(method_id: &str) -> ApiResult<()> {
    let ok = !method_id.is_empty()
        && method_id.len() <= MAX_METHOD_ID
        && method_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '+'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "method_id",
            format!(
                "{method_id:?} is not an Entra FIDO2 method id: copy it from \
                 GET /api/v1/users/{{id}}/fido2-methods"
            ),
        ))
    }
}

fn gone(user: &User, method_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "method_not_found",
        format!(
            "Microsoft Entra no longer holds the FIDO2 method {method_id} for {}: it was \
             already deleted; reload the list of the user's methods",
            user.upn
        ),
    )
}

fn unavailable(user: &User, error: &GraphError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "entra_unavailable",
        format!(
            "Entra's FIDO2 methods for {} could not be changed: {error}; try again in a moment",
            user.upn
        ),
    )
}

async fn client_for(app: &App, user: &User) -> ApiResult<GraphClient> {
    let integration = app.store().integrations().get(&user.integration_id).await?;
    app.graph()
        .for_integration(&integration)
        .map_err(|e| graph_error(e, "credential"))
}

/// Deletes the user's FIDO2 method `method_id` from Entra (another vendor's key), or unpairs
/// the phone when it is keybridge's own passkey. Audited as `user.fido2_method.delete`.
pub async fn delete(
    app: &App,
    user_id: &str,
    method_id: &str,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<MethodDeletion> {
    check_method_id(method_id)?;
    let store = app.store();
    let user = store.users().get(user_id).await?;
    let client = client_for(app, &user).await?;
    let method = match client
        .get_fido2_method(&user.entra_object_id, method_id)
        .await
    {
        Ok(method) => method,
        Err(GraphError::NotFound(_)) => return Err(gone(&user, method_id)),
        Err(e) => return Err(unavailable(&user, &e)),
    };
    let ours = store
        .credentials()
        .list_for_user(user_id)
        .await?
        .into_iter()
        .find(|c| c.status != CredentialStatus::Removed && is_method_of(c, &method.id));
    if let Some(credential) = ours {
        let job_id =
            unpair::request_by_admin(app, user_id, &credential.phone_id, actor, meta).await?;
        return Ok(MethodDeletion::Unpairing {
            method_id: method.id,
            phone_id: credential.phone_id,
            job_id,
        });
    }
    match client
        .delete_fido2_method(&user.entra_object_id, &method.id)
        .await
    {
        Ok(()) => {}
        Err(GraphError::NotFound(_)) => return Err(gone(&user, method_id)),
        Err(e) => return Err(unavailable(&user, &e)),
    }
    let device_name = method.display_name.clone().unwrap_or_default();
    store
        .audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "user.fido2_method.delete")
                    .target(format!("user:{}", user.id))
                    .details(serde_json::json!({
                        "method_id": method.id,
                        "device_name": device_name,
                        "model": method.model,
                        "aaguid": method.aa_guid,
                    })),
            ),
        )
        .await?;
    Ok(MethodDeletion::Deleted {
        method_id: method.id,
        device_name,
    })
}
