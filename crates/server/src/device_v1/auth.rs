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

/// How stale a phone's or workstation's "last seen" may get before a request refreshes it.
const LAST_SEEN_RESOLUTION_MILLIS: i64 = 60_000;

/// Whether the "last seen" time is recent enough to leave alone: refreshing it on every
/// request was a database write per long poll and per sign-in request, each queueing for
/// SQLite's write lock; to the minute is all the console shows.
pub(crate) fn seen_recently(last_seen: Option<Timestamp>, now: Timestamp) -> bool {
    last_seen.is_some_and(|seen| {
        (0..LAST_SEEN_RESOLUTION_MILLIS).contains(&(now.unix_millis() - seen.unix_millis()))
    })
}

/// A signed request taken apart: the request target it was sent to, its signature headers,
/// and its body (not yet read).
pub(crate) struct SignedRequest {
    method: axum::http::Method,
    path_and_query: String,
    /// The signature headers; `signer_id` says whose row to load.
    pub headers: SignedHeaders,
    body: axum::body::Body,
}

impl SignedRequest {
    /// Reads the signature headers of a request signed by `kind`.
    pub(crate) fn parse(request: Request, kind: SignerKind) -> Result<Self, ApiError> {
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
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let headers =
            SignedHeaders::from_headers(kind, |name| parts.headers.get(name)?.to_str().ok())
                .map_err(auth_error)?;
        Ok(SignedRequest {
            method: parts.method,
            path_and_query,
            headers,
            body,
        })
    }

    /// The 401 for a signer id the server does not know (`kind` names it in the message).
    pub(crate) fn unknown_signer(&self, kind: &'static str) -> ApiError {
        auth_error(RequestAuthError::UnknownSigner {
            kind,
            id: self.headers.signer_id,
        })
    }

    /// Reads the body, checks the signature with the signer's `key` and the nonce against the
    /// shared replay cache; answers the body exactly as signed.
    pub(crate) async fn verify(
        self,
        app: &App,
        key: &IdentityPublicKey,
    ) -> Result<Bytes, ApiError> {
        let body = axum::body::to_bytes(self.body, MAX_SIGNED_BODY)
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
                &self.headers,
                key,
                &RequestTarget {
                    method: self.method.as_str(),
                    path_and_query: &self.path_and_query,
                    body: &body,
                },
                OffsetDateTime::now_utc(),
            )
            .map_err(auth_error)?
            .check_replay(&StoreReplayCache(app.store()))
            .await
            .map_err(auth_error)?;
        Ok(body)
    }
}

impl FromRequest<App> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &App) -> Result<Self, ApiError> {
        let signed = SignedRequest::parse(request, SignerKind::Device)?;
        let phone = match app
            .store()
            .phones()
            .get(&signed.headers.signer_id.hyphenated().to_string())
            .await
        {
            Ok(phone) => phone,
            Err(e) if e.is_not_found() => return Err(signed.unknown_signer("device")),
            Err(e) => return Err(e.into()),
        };
        let key = IdentityPublicKey::parse(&phone.device_key).map_err(|e| {
            ApiError::internal(format!(
                "phone {} has an unreadable device key: {e}",
                phone.id
            ))
        })?;
        let body = signed.verify(app, &key).await?;
        let now = Timestamp::now();
        if !seen_recently(phone.last_seen_at, now) {
            app.store().phones().touch(&phone.id, now).await?;
        }
        Ok(DeviceAuth { phone, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_seen_is_refreshed_once_a_minute_and_after_a_clock_step_back() {
        let now = Timestamp::from_unix_millis(1_000_000);
        let ago = |ms: i64| Some(Timestamp::from_unix_millis(1_000_000 - ms));
        assert!(!seen_recently(None, now), "never seen");
        assert!(seen_recently(ago(0), now));
        assert!(seen_recently(ago(59_999), now));
        assert!(!seen_recently(ago(60_000), now));
        // A last-seen time in the future (the clock went back) is corrected.
        assert!(!seen_recently(ago(-5_000), now));
    }
}
