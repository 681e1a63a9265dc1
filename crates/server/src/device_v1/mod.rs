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
//!   `DELETE /device/v1/device` (unpair).

pub mod auth;
pub mod inbox;
pub mod pairing;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::app::App;

/// `/device/v1` (nested by the caller).
pub fn router() -> Router<App> {
    Router::new()
        .route("/pair", post(pairing::enrol))
        .route("/inbox", get(inbox::fetch))
        .route("/requests/{id}", post(inbox::answer))
        .route("/device", delete(inbox::unpair))
}

/// The Device Manager page's JSON, at the root (`/invite/{token}/pairing`).
pub fn invite_router() -> Router<App> {
    Router::new().route("/invite/{token}/pairing", get(pairing::start))
}
