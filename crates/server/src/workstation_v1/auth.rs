//! Signed workstation requests: the [`WorkstationAuth`] extractor (`KB-Workstation-Id`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use keybridge_device_protocol::{IdentityPublicKey, SignerKind};
use keybridge_store::{Timestamp, Workstation, WorkstationStatus};

use crate::app::App;
use crate::device_v1::auth::{SignedRequest, seen_recently};
use crate::error::ApiError;

/// A request signed by a registered, active workstation.
#[derive(Debug, Clone)]
pub struct WorkstationAuth {
    /// The workstation's row.
    pub workstation: Workstation,
    /// Its public key.
    pub key: IdentityPublicKey,
    /// The request body, exactly as signed.
    pub body: Bytes,
}

/// The answer to a workstation an administrator revoked.
pub fn revoked() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "workstation_revoked",
        "this workstation was revoked by an administrator and can no longer sign in: ask your \
         administrator, then install the desktop client again",
    )
}

impl FromRequest<App> for WorkstationAuth {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &App) -> Result<Self, ApiError> {
        let signed = SignedRequest::parse(request, SignerKind::Workstation)?;
        let workstation = match app
            .store()
            .workstations()
            .get(&signed.headers.signer_id.hyphenated().to_string())
            .await
        {
            Ok(workstation) => workstation,
            Err(e) if e.is_not_found() => {
                return Err(signed
                    .unknown_signer("workstation")
                    .with_code("unknown_workstation"));
            }
            Err(e) => return Err(e.into()),
        };
        let key = IdentityPublicKey::parse(&workstation.public_key).map_err(|e| {
            ApiError::internal(format!(
                "workstation {} has an unreadable key: {e}",
                workstation.id
            ))
        })?;
        let body = signed.verify(app, &key).await?;
        // Checked after the signature, so that only the workstation itself learns it was revoked.
        if workstation.status == WorkstationStatus::Revoked {
            return Err(revoked());
        }
        let now = Timestamp::now();
        if !seen_recently(workstation.last_seen_at, now) {
            app.store()
                .workstations()
                .touch(&workstation.id, now)
                .await?;
        }
        Ok(WorkstationAuth {
            workstation,
            key,
            body,
        })
    }
}
