//! Signed workstation requests: the [`WorkstationAuth`] extractor (`KB-Workstation-Id`).

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::StatusCode;
use keybridge_device_protocol::{
    IdentityPublicKey, RequestAuthError, RequestTarget, RequestVerifier, SignedHeaders, SignerKind,
};
use keybridge_store::{Timestamp, Workstation, WorkstationStatus};
use time::OffsetDateTime;

use crate::app::App;
use crate::device_v1::auth::{MAX_SIGNED_BODY, StoreReplayCache, auth_error};
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
        let (parts, body) = request.into_parts();
        // The signature covers the request target as sent, prefix included.
        let target_uri = parts
            .extensions
            .get::<OriginalUri>()
            .map(|OriginalUri(uri)| uri.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let path_and_query = target_uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let headers = SignedHeaders::from_headers(SignerKind::Workstation, |name| {
            parts.headers.get(name)?.to_str().ok()
        })
        .map_err(auth_error)?;
        let unknown = || {
            auth_error(RequestAuthError::UnknownSigner {
                kind: "workstation",
                id: headers.signer_id,
            })
            .with_code("unknown_workstation")
        };
        let workstation = match app
            .store()
            .workstations()
            .get(&headers.signer_id.hyphenated().to_string())
            .await
        {
            Ok(workstation) => workstation,
            Err(e) if e.is_not_found() => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        let key = IdentityPublicKey::parse(&workstation.public_key).map_err(|e| {
            ApiError::internal(format!(
                "workstation {} has an unreadable key: {e}",
                workstation.id
            ))
        })?;
        let body = axum::body::to_bytes(body, MAX_SIGNED_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("a signed request's body may hold at most {MAX_SIGNED_BODY} bytes"),
                )
            })?;
        RequestVerifier::default()
            .verify_signature(
                &headers,
                &key,
                &RequestTarget {
                    method: parts.method.as_str(),
                    path_and_query,
                    body: &body,
                },
                OffsetDateTime::now_utc(),
            )
            .map_err(auth_error)?
            .check_replay(&StoreReplayCache(app.store()))
            .await
            .map_err(auth_error)?;
        // Checked after the signature, so that only the workstation itself learns it was revoked.
        if workstation.status == WorkstationStatus::Revoked {
            return Err(revoked());
        }
        app.store()
            .workstations()
            .touch(&workstation.id, Timestamp::now())
            .await?;
        Ok(WorkstationAuth {
            workstation,
            key,
            body,
        })
    }
}
