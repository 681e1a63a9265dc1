//! The Device Manager page (`/invite/{token}`): what an invited user opens from the invitation
//! link to pair a phone.
//!
//! The page shows the pairing session of [`pairing::new_session`] as a QR code (inline SVG),
//! the 6-character fallback code and the server address to type with it, a countdown and the
//! live status of the enrolment, styled by the console's stylesheet (one look, one file:
//! [`crate::console::assets::css_url`]). A small script of our own
//! (`/assets/device-manager.js`, no inline script or style, so the page runs under a strict
//! CSP) renews the code before it
//! expires (`/invite/{token}/code`, an HTML fragment) and polls `/invite/{token}/status`.
//! Without the script the page still works for one code and says to reload for another.
//!
//! The invitation link is the credential, as for `GET /invite/{token}/pairing`; the status
//! endpoint also answers for a used link so that the page keeps showing the progress after the
//! phone paired. A link that cannot pair (unknown, used, revoked, expired, a domain that is not
//! allowed) gets a page saying so and what to do, with the matching 4xx status.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keybridge_core::UserState;
use keybridge_store::{Invite, Timestamp};
use qrcode::{EcLevel, QrCode};
use serde::Serialize;

use crate::app::App;
use crate::device_v1::pairing::{self, PairingView};
use crate::error::{ApiError, ApiResult};
use crate::services::provisioning;

/// The page's script.
const SCRIPT: &str = include_str!("../assets/device-manager.js");

/// The Content-Security-Policy of every page here: nothing but our own script, stylesheet
/// and same-origin requests.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `/invite/{token}` and what the page loads (merged at the root).
pub fn router() -> Router<App> {
    Router::new()
        .route("/invite/{token}", get(page))
        .route("/invite/{token}/code", get(code_fragment))
        .route("/invite/{token}/status", get(status))
        .route("/assets/device-manager.js", get(script))
}

/// The QR code, the short code and the countdown: one pairing session.
#[derive(Template)]
#[template(path = "device_manager/code.html")]
struct CodeFragment {
    qr_svg: String,
    payload: String,
    short_code: String,
    server_url: String,
    expires_at: String,
    seconds_left: i64,
}

#[derive(Template)]
#[template(path = "device_manager/page.html")]
struct DeviceManagerPage {
    upn: String,
    token: String,
    code_html: String,
}

/// A link that cannot pair, or an enrolment already done.
#[derive(Template)]
#[template(path = "device_manager/problem.html")]
struct ProblemPage {
    title: String,
    message: String,
    advice: String,
    /// Set for a used link: the page keeps showing the enrolment's progress.
    status_token: Option<String>,
}

/// Where an invited user's enrolment stands, as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnrolmentStatus {
    /// `waiting` (for the phone), `paired` (native login off: nothing more to do),
    /// `registering` (the passkey is being registered in Entra), `done`, `failed` (Entra
    /// refused; provisioning asks again), `unpaired`, `expired` or `revoked`.
    pub status: &'static str,
    /// The sentence the page shows.
    pub message: String,
    /// Whether the page should keep polling.
    pub final_state: bool,
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(body) => {
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            secure_headers(headers);
            response
        }
        Err(error) => {
            ApiError::internal(format!("a page could not be rendered: {error}")).into_response()
        }
    }
}

/// Headers of every response here: the link's token is in the URL, so nothing is cached or
/// sent on as a referrer; no framing; the strict CSP.
fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The QR code of `payload` as an SVG element for inline use, labelled for screen readers.
pub fn qr_svg(payload: &str) -> ApiResult<String> {
    let code =
        QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M).map_err(|e| {
            ApiError::internal(format!("the pairing payload does not fit a QR code: {e}"))
        })?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    // Inline in HTML: no XML declaration; a role and a name for assistive technology.
    let svg = svg.split_once("<svg").map(|(_, rest)| rest).unwrap_or(&svg);
    Ok(format!(
        "<svg role=\"img\" aria-label=\"QR code to scan with the keybridge app on your phone\" \
         class=\"qr-code\"{svg}"
    ))
}

fn code_fragment_for(app: &App, view: PairingView) -> ApiResult<CodeFragment> {
    let expires = time::OffsetDateTime::parse(
        &view.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| ApiError::internal(format!("a pairing expiry is unreadable: {e}")))?;
    let seconds_left = (expires - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0);
    Ok(CodeFragment {
        qr_svg: qr_svg(&view.qr_payload)?,
        payload: view.qr_payload,
        short_code: view.short_code,
        server_url: app
            .config()
            .server
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        expires_at: view.expires_at,
        seconds_left,
    })
}

/// `GET /invite/{token}`: the Device Manager page, or a page saying why the link cannot pair.
pub async fn page(State(app): State<App>, Path(token): Path<String>) -> Response {
    let view = match pairing::new_session(&app, &token).await {
        Ok(view) => view,
        Err(error) => return problem(&app, &token, error).await,
    };
    let upn = view.upn.clone();
    let code_html = match code_fragment_for(&app, view).map(|code| code.render()) {
        Ok(Ok(code_html)) => code_html,
        Ok(Err(error)) => return html(StatusCode::OK, Err(error)),
        Err(error) => return error.into_response(),
    };
    html(
        StatusCode::OK,
        DeviceManagerPage {
            upn,
            token,
            code_html,
        }
        .render(),
    )
}

/// `GET /invite/{token}/code`: a new pairing session as the page's code fragment (the script
/// swaps it in before the previous one expires).
pub async fn code_fragment(State(app): State<App>, Path(token): Path<String>) -> Response {
    let fragment = pairing::new_session(&app, &token)
        .await
        .and_then(|view| code_fragment_for(&app, view));
    match fragment {
        Ok(fragment) => html(StatusCode::OK, fragment.render()),
        Err(error) => error.into_response(),
    }
}

async fn problem(app: &App, token: &str, error: ApiError) -> Response {
    let contact = "Ask your administrator for a new invitation link.";
    let (status, title, message, advice, status_token) = match error.code() {
        "invite_not_found" => (
            StatusCode::NOT_FOUND,
            "This invitation link is not valid",
            "keybridge does not know this link.".to_owned(),
            format!("Check that the whole link was copied from your invitation. {contact}"),
            None,
        ),
        "invite_unusable" => {
            let invite = app.store().invites().find(token).await.ok().flatten();
            match invite {
                Some(invite) if invite.revoked_at.is_some() => (
                    StatusCode::GONE,
                    "This invitation link was withdrawn",
                    "Your administrator withdrew this invitation.".to_owned(),
                    contact.to_owned(),
                    None,
                ),
                Some(invite) if invite.used_at.is_some() => (
                    StatusCode::GONE,
                    "This invitation link was already used",
                    "A phone was paired with this link; each link pairs one phone.".to_owned(),
                    format!(
                        "To pair another phone, or if it was not you, contact your administrator. {contact}"
                    ),
                    Some(token.to_owned()),
                ),
                _ => (
                    StatusCode::GONE,
                    "This invitation link has expired",
                    "Invitation links work for a limited time, and this one has run out."
                        .to_owned(),
                    contact.to_owned(),
                    None,
                ),
            }
        }
        "domain_not_allowed" => (
            StatusCode::FORBIDDEN,
            "Your account cannot pair a phone",
            format!(
                "Your organisation allows only some email domains to use keybridge, and this \
                 account is not among them ({}).",
                error.message()
            ),
            "If you think this is wrong, contact your administrator.".to_owned(),
            None,
        ),
        "not_allowed" => (
            StatusCode::CONFLICT,
            "Your account cannot pair a phone now",
            error.message().to_owned(),
            "If you think this is wrong, contact your administrator.".to_owned(),
            None,
        ),
        _ => return error.into_response(),
    };
    html(
        status,
        ProblemPage {
            title: title.to_owned(),
            message,
            advice,
            status_token,
        }
        .render(),
    )
}

/// `GET /invite/{token}/status`: where the enrolment of the link's user stands.
pub async fn status(State(app): State<App>, Path(token): Path<String>) -> ApiResult<Response> {
    let store = app.store();
    let invite = store.invites().find(&token).await?.ok_or_else(|| {
        ApiError::not_found(
            "this invitation link is not known: check that it was copied whole, or ask your \
             administrator for a new invitation",
        )
        .with_code("invite_not_found")
    })?;
    let user = store.users().get(&invite.user_id).await?;
    let integration = store.integrations().get(&user.integration_id).await?;
    let status = enrolment_status(
        &invite,
        user.state,
        integration.native_login_enabled,
        user.provisioning_error.as_deref(),
        Timestamp::now(),
    );
    let mut response = Json(status).into_response();
    secure_headers(response.headers_mut());
    Ok(response)
}

/// What the page says for an invitation and its user's state.
pub fn enrolment_status(
    invite: &Invite,
    state: UserState,
    native_login: bool,
    provisioning_error: Option<&str>,
    now: Timestamp,
) -> EnrolmentStatus {
    let status = |status, message: &str, final_state| EnrolmentStatus {
        status,
        message: message.to_owned(),
        final_state,
    };
    match state {
        UserState::PairedWithEntra => status(
            "done",
            "Done: your phone is now your passkey for signing in with Microsoft.",
            true,
        ),
        UserState::PairedWithKeybridge => match provisioning_error {
            // Entra's reason is for the admin (User Management shows it), not for this page.
            Some(error) if !provisioning::is_waiting_for_phone(error) => status(
                "failed",
                "Phone paired, but Microsoft did not accept the passkey yet. keybridge will ask \
                 your phone again; keep the keybridge app installed.",
                false,
            ),
            _ if native_login => status(
                "registering",
                "Phone paired. Registering your passkey with Microsoft…",
                false,
            ),
            _ => status(
                "paired",
                "Phone paired. Your passkey will be registered with Microsoft once your \
                 administrator turns on passkey sign-in; you can close this page.",
                true,
            ),
        },
        UserState::Pending => {
            if invite.revoked_at.is_some() {
                status("revoked", "This invitation was withdrawn.", true)
            } else if invite.used_at.is_some() {
                status(
                    "unpaired",
                    "The phone paired with this link was unpaired since.",
                    true,
                )
            } else if invite.expires_at <= now {
                status("expired", "This invitation link has expired.", true)
            } else {
                status(
                    "waiting",
                    "Waiting for your phone: scan the QR code with the keybridge app.",
                    false,
                )
            }
        }
    }
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn invite(used: bool, revoked: bool, expired: bool) -> Invite {
        let now = Timestamp::now();
        Invite {
            id: "i".to_owned(),
            user_id: "u".to_owned(),
            created_by: "admin:1".to_owned(),
            created_at: now.minus(Duration::from_secs(600)),
            expires_at: if expired {
                now.minus(Duration::from_secs(1))
            } else {
                now.plus(Duration::from_secs(600))
            },
            used_at: used.then_some(now),
            revoked_at: revoked.then_some(now),
        }
    }

    fn status_of(
        invite: &Invite,
        state: UserState,
        native: bool,
        error: Option<&str>,
    ) -> &'static str {
        enrolment_status(invite, state, native, error, Timestamp::now()).status
    }

    #[test]
    fn the_page_follows_the_user_from_waiting_to_done() {
        let open = invite(false, false, false);
        let used = invite(true, false, false);
        assert_eq!(status_of(&open, UserState::Pending, true, None), "waiting");
        assert_eq!(
            status_of(&used, UserState::PairedWithKeybridge, false, None),
            "paired"
        );
        assert_eq!(
            status_of(&used, UserState::PairedWithKeybridge, true, None),
            "registering"
        );
        assert_eq!(
            status_of(
                &used,
                UserState::PairedWithKeybridge,
                true,
                Some("Waiting for the phone \"Pixel\" to create the passkey")
            ),
            "registering"
        );
        assert_eq!(
            status_of(
                &used,
                UserState::PairedWithKeybridge,
                true,
                Some("Entra refused the passkey: attestation not allowed")
            ),
            "failed"
        );
        let done = enrolment_status(
            &used,
            UserState::PairedWithEntra,
            true,
            None,
            Timestamp::now(),
        );
        assert_eq!((done.status, done.final_state), ("done", true));
        assert!(done.message.starts_with("Done"), "{}", done.message);
        let registering = enrolment_status(
            &used,
            UserState::PairedWithKeybridge,
            true,
            None,
            Timestamp::now(),
        );
        assert_eq!(
            registering.message,
            "Phone paired. Registering your passkey with Microsoft…"
        );
        assert!(!registering.final_state);
    }

    #[test]
    fn links_that_can_no_longer_pair_say_why() {
        assert_eq!(
            status_of(&invite(false, true, false), UserState::Pending, true, None),
            "revoked"
        );
        assert_eq!(
            status_of(&invite(false, false, true), UserState::Pending, true, None),
            "expired"
        );
        assert_eq!(
            status_of(&invite(true, false, false), UserState::Pending, true, None),
            "unpaired"
        );
    }

    #[test]
    fn the_qr_code_is_an_inline_labelled_svg() {
        let svg = qr_svg("keybridge:pair?v=1&u=https%3A%2F%2Fkb.example").expect("fits");
        assert!(svg.starts_with("<svg role=\"img\" aria-label=\""), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("<?xml"));
    }
}
