//! The phone's API, `/device/v1` (see `docs/device-protocol.md`), and the pairing session the
//! Device Manager page shows for an invitation (`GET /invite/{token}/pairing`).
//!
//! Every message and check is `keybridge-device-protocol`'s; this module finds the rows,
//! applies core's lifecycle, and answers in the server's error envelope.
//! - [`pairing`]: `GET /invite/{token}/pairing` (QR payload and short code) and
//!   `POST /device/v1/pair` (enrolment), with the short-code rate limits;
//! - [`auth`]: [`auth::DeviceAuth`], the signed-request extractor, and the store-backed
//!   replay cache;
//! - [`inbox`]: `GET /device/v1/inbox` (long poll), `POST /device/v1/requests/{id}`,
//!   `DELETE /device/v1/device` (unpair);
//! - workstation pairing (`/device/v1/workstations`) lives in [`crate::workstation_v1::phone`].

pub mod auth;
pub mod inbox;
pub mod pairing;

use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, post};
use keybridge_store::{StoreError, Timestamp};

use crate::app::App;

/// `/device/v1` (nested by the caller).
pub fn router() -> Router<App> {
    Router::new()
        .route("/pair", post(pairing::enrol))
        .route("/inbox", get(inbox::fetch))
        .route("/requests/{id}", post(inbox::answer))
        .route("/device", delete(inbox::unpair))
        .route(
            "/workstations",
            post(crate::workstation_v1::phone::pair).get(crate::workstation_v1::phone::list),
        )
        .route(
            "/workstations/{id}",
            delete(crate::workstation_v1::phone::unpair),
        )
        .route(
            "/workstations/{id}/recovery-pin",
            post(crate::workstation_v1::phone::escrow_recovery_pin),
        )
}

/// The Device Manager page's JSON, at the root (`/invite/{token}/pairing`).
pub fn invite_router() -> Router<App> {
    Router::new().route("/invite/{token}/pairing", get(pairing::start))
}

/// How long an expired pairing session is kept (for the audit trail's look-ups) before it is
/// deleted.
pub const EXPIRED_SESSION_RETENTION: Duration = Duration::from_secs(3600);

/// What one [`housekeep`] round removed or closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Replay-cache nonces past their window.
    pub nonces_purged: u64,
    /// Pairing sessions expired for longer than [`EXPIRED_SESSION_RETENTION`].
    pub sessions_purged: u64,
    /// Inbox requests that passed their expiry unanswered.
    pub requests_expired: u64,
}

/// Purges the replay cache and old pairing sessions and expires overdue inbox requests.
/// Safe to run on every instance at once: each statement is idempotent.
pub async fn housekeep(app: &App) -> Result<Housekeeping, StoreError> {
    let now = Timestamp::now();
    let store = app.store();
    Ok(Housekeeping {
        nonces_purged: store.request_nonces().purge_expired(now).await?,
        sessions_purged: store
            .pairing_sessions()
            .purge_expired(now.minus(EXPIRED_SESSION_RETENTION))
            .await?,
        requests_expired: store.device_requests().expire_due(now).await?,
    })
}

/// Runs [`housekeep`] every `interval` until aborted.
pub fn spawn_housekeeping(app: App, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = housekeep(&app).await {
                tracing::warn!(%error, "device housekeeping failed; trying again next time");
            }
        }
    })
}
