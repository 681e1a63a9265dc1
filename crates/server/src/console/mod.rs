//! The admin web console under `/console`: server-rendered pages for admins, helpdesk and
//! auditors. `docs/console.md` says how to add a page.
//!
//! - Pages are askama templates in `crates/server/templates/console/`, each extending
//!   `base.html` and carrying a [`page::Layout`] (title, navigation, signed-in admin, flash
//!   message, CSRF token, asset URLs). Handlers render them with [`page::render`].
//! - [`session::ConsoleSession`] is the extractor every page and action takes: it finds the
//!   admin's session from the `__Host-kb_session` cookie (redirecting to the login page when
//!   there is none) and checks the role with the same [`crate::auth::RoleRequirement`]s as the
//!   API (a 403 page naming the role otherwise).
//! - Every POST is checked twice against cross-site requests: the `Origin` and
//!   `Sec-Fetch-Site` headers ([`origin_check`], on the whole router), and the session's CSRF
//!   token in the form field `csrf_token` ([`session::CsrfForm`]) or the `x-csrf-token` header
//!   of a script's fetch ([`session::CsrfJson`]).
//! - One CSS and one JS file, embedded in the binary ([`assets`]), under a content-hashed name
//!   with a year-long cache. Every answer carries a strict Content-Security-Policy
//!   ([`security_headers`]): no inline script or style, nothing from elsewhere.
//! - Login is a passkey on the server's own relying party ([`login`]), checked by
//!   `keybridge-webauthn`; the first passkey comes from a one-time link.
//!
//! Handlers stay thin here as in the API: rules come from `keybridge-core`, queries from
//! `keybridge-store`, Entra work from the services and jobs.

pub mod assets;
pub mod audit;
pub mod bulk_invite;
pub mod chart;
pub mod dashboard;
pub mod error;
pub mod flash;
pub mod forms;
pub mod integrations;
pub mod jobs;
pub mod login;
pub mod method_delete;
pub mod page;
pub mod session;
pub mod tokens;
pub mod users;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::App;
use error::ConsoleError;

/// The Content-Security-Policy of every console answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (merged into the server's router).
pub fn router(app: App) -> Router<App> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(dashboard::show))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login::login_page))
        .route("/console/login/begin", post(login::login_begin))
        .route("/console/login/finish", post(login::login_finish))
        .route("/console/logout", post(login::logout))
        .route("/console/enrol/{token}", get(login::enrol_page))
        .route("/console/enrol/{token}/begin", post(login::enrol_begin))
        .route("/console/enrol/{token}/finish", post(login::enrol_finish))
        .route(
            "/console/integrations",
            get(integrations::list).post(integrations::create),
        )
        .route("/console/integrations/new", get(integrations::new_form))
        .route("/console/integrations/{id}", get(integrations::settings))
        .route(
            "/console/integrations/{id}/preflight",
            post(integrations::preflight),
        )
        .route(
            "/console/integrations/{id}/native-login",
            post(integrations::native_login),
        )
        .route(
            "/console/integrations/{id}/restrict-domains",
            post(integrations::restrict_domains),
        )
        .route(
            "/console/integrations/{id}/credential",
            post(integrations::rotate_credential),
        )
        .route(
            "/console/integrations/{id}/desktop-client",
            post(integrations::desktop_client),
        )
        .route("/console/tokens", get(tokens::list).post(tokens::create))
        .route("/console/tokens/{id}/revoke", post(tokens::revoke))
        .route("/console/users", get(users::list))
        .route("/console/users/live", get(users::live))
        .route("/console/users/invite", get(bulk_invite::page))
        .route("/console/users/invite/group", post(bulk_invite::group))
        .route("/console/users/invite/csv", post(bulk_invite::csv))
        .route("/console/users/{id}/methods", get(users::methods))
        .route("/console/users/{id}/devices", get(users::devices))
        .route(
            "/console/users/{id}/methods/{method_id}/delete",
            post(method_delete::delete),
        )
        .route("/console/users/{id}/invite", post(users::invite))
        .route("/console/users/{id}/delete", post(users::delete))
        .route(
            "/console/users/{id}/phones/{phone_id}/unpair",
            post(users::unpair),
        )
        .route("/console/jobs", get(jobs::list))
        .route("/console/jobs/{id}", get(jobs::show))
        .route("/console/jobs/{id}/status", get(jobs::status))
        .route("/console/jobs/{id}/invite-links", post(jobs::invite_links))
        .route("/console/jobs/{id}/retry", post(jobs::retry))
        .route("/console/jobs/{id}/cancel", post(jobs::cancel))
        .route("/console/audit", get(audit::list))
        .route("/console/audit/export", get(audit::export))
        .route("/console/static/{name}", get(assets::serve))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(middleware::from_fn_with_state(app, origin_check))
        .layer(middleware::from_fn(security_headers))
}

async fn not_found() -> ConsoleError {
    ConsoleError::NotFound
}

/// Refuses a state-changing request that another site started: `Sec-Fetch-Site` must be
/// `same-origin` (or absent, for clients that do not send it) and `Origin`, when present,
/// must be the server's public origin (or `null` from a same-origin page, see below). The CSRF token is checked as well, by the handler's
/// extractor; either alone would stop a forged form.
pub async fn origin_check(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    let headers = request.headers();
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|site| site != "same-origin") {
        return ConsoleError::CrossSite.into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let expected = public_origin(&app);
        // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` on their own
        // forms' POSTs; that is accepted only with the browser's own `Sec-Fetch-Site:
        // same-origin`, which a page cannot forge.
        let own_null = origin.as_bytes() == b"null" && site == Some("same-origin");
        if origin.as_bytes() != expected.as_bytes() && !own_null {
            return ConsoleError::CrossSite.into_response();
        }
    }
    next.run(request).await
}

/// The server's public origin (`https://host[:port]`), the console's WebAuthn origin.
pub fn public_origin(app: &App) -> String {
    app.config()
        .server
        .public_url
        .origin()
        .ascii_serialization()
}

/// Adds the console's security headers to every answer under it.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}
