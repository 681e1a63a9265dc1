//! Signed device requests: the [`DeviceAuth`] extractor and the replay cache on the store.

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::StatusCode;
use keybridge_device_protocol::{
    Freshness, IdentityPublicKey, NonceEntry, ReplayCache, ReplayCacheError, RequestAuthError,
    RequestTarget, RequestVerifier, SignedHeaders, SignerKind,
};
use keybridge_store::{Phone, Store, Timestamp};
use time::OffsetDateTime;

use crate::app::App;
use crate::error::ApiError;

/// The largest body a signed request may carry (it is buffered to be hashed).
pub const MAX_SIGNED_BODY: usize = 256 * 1024;

/// The replay cache shared by every server instance: `request_nonces`, one atomic insert
/// per nonce.
#[derive(Debug, Clone)]
pub struct StoreReplayCache<'a>(pub &'a Store);

impl ReplayCache for StoreReplayCache<'_> {
    async fn remember(&self, entry: &NonceEntry) -> Result<Freshness, ReplayCacheError> {
        let to_ts = |at: OffsetDateTime| {
            Timestamp::from_unix_millis(
                i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
            )
        };
        let fresh = self
            .0
            .request_nonces()
            .remember(
                &entry.storage_key(),
                to_ts(entry.remember_until),
                to_ts(entry.seen_at),
            )
            .await
            .map_err(|e| ReplayCacheError(Box::new(e)))?;
        Ok(if fresh {
            Freshness::Fresh
        } else {
            Freshness::Replayed
        })
    }
}

/// The protocol's refusal in the error envelope (401 with its code; 503 when the replay cache
/// failed).
pub fn auth_error(error: RequestAuthError) -> ApiError {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::new(status, error.code(), error.to_string())
}

/// A request signed by a paired phone: the phone's row and the body the signature covers.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    /// The phone (its id is the `KB-Device-Id`).
    pub phone: Phone,
    /// The request body, exactly as signed.
    pub body: Bytes,
}

impl FromRequest<App> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &App) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        // A nested router sees its prefix stripped from `uri`; the signature covers the
        // request target as sent.
        let target_uri = parts
            .extensions
            .get::<OriginalUri>()
            .map(|OriginalUri(uri)| uri.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let path_and_query = target_uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let headers = SignedHeaders::from_headers(SignerKind::Device, |name| {
            parts.headers.get(name)?.to_str().ok()
        })
        .map_err(auth_error)?;
        let unknown = || {
            auth_error(RequestAuthError::UnknownSigner {
                kind: "device",
                id: headers.signer_id,
            })
        };
        let phone = match app
            .store()
            .phones()
            .get(&headers.signer_id.hyphenated().to_string())
            .await
        {
            Ok(phone) => phone,
            Err(e) if e.is_not_found() => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        let key = IdentityPublicKey::parse(&phone.device_key).map_err(|e| {
            ApiError::internal(format!(
                "phone {} has an unreadable device key: {e}",
                phone.id
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
        let now = OffsetDateTime::now_utc();
        RequestVerifier::default()
            .verify_signature(
                &headers,
                &key,
                &RequestTarget {
                    method: parts.method.as_str(),
                    path_and_query,
                    body: &body,
                },
                now,
            )
            .map_err(auth_error)?
            .check_replay(&StoreReplayCache(app.store()))
            .await
            .map_err(auth_error)?;
        app.store()
            .phones()
            .touch(&phone.id, Timestamp::now())
            .await?;
        Ok(DeviceAuth { phone, body })
    }
}
