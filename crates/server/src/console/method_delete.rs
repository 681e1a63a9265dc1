//! Deleting one of a user's FIDO2 methods from User Management's expanded row or Device
//! Details' Security Keys (admins only): the API's `services::method_delete`, which re-reads the
//! method first and unpairs the phone when the method is keybridge's own passkey.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::flash::Flash;
use super::session::{ConsoleSession, CsrfForm};
use super::users::back_to;
use crate::app::App;
use crate::auth::{AdminOnly, RequestMeta};
use crate::services::method_delete::{self, MethodDeletion};

/// The form: the CSRF token and the page to go back to.
#[derive(Debug, Deserialize)]
pub struct DeleteMethodForm {
    /// The page to go back to.
    #[serde(default)]
    pub back: Option<String>,
}

/// `POST /console/users/{id}/methods/{method_id}/delete`.
pub async fn delete(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    meta: RequestMeta,
    Path((id, method_id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<DeleteMethodForm>,
) -> Response {
    let back = back_to(form.back.as_deref());
    match method_delete::delete(&app, &id, &method_id, &session.actor(), &meta).await {
        Ok(MethodDeletion::Deleted { device_name, .. }) => Flash::success(format!(
            "The security key “{device_name}” was deleted from Microsoft Entra."
        ))
        .redirect(&back),
        Ok(MethodDeletion::Unpairing { job_id, .. }) => Flash::success(format!(
            "The passkey is keybridge's: its phone is being unpaired (job {job_id}), which \
             deletes the passkey from Microsoft Entra and moves the user back to Pending."
        ))
        .redirect(&back),
        Err(error) => Flash::error(error.message().to_owned()).redirect(&back),
    }
}
