//! Passkey login on the server's own relying party, passkey enrolment through a one-time
//! link, and logout.
//!
//! The RP id is the host of `server.public_url` and the only accepted origin is that URL's
//! origin. Both ceremonies require user verification. Challenges are random 32 bytes kept
//! in the database (`console_challenges`) under a random handle the page sends back; taking a
//! challenge deletes it, so each can be answered once, whichever instance answers.
//!
//! - Login: `POST /console/login/begin` (optional username) gives the request options;
//!   `POST /console/login/finish` checks the assertion with `keybridge-webauthn` (signature,
//!   UV, origin, RP id, counter), records the new counter (a counter that does not grow is
//!   refused), opens a session and sets its cookie. Failures are counted per source address
//!   ([`LoginLimits`]) and audited.
//! - Enrolment: `GET /console/enrol/{token}` shows whom the link is for (or why it cannot be
//!   used) without using it; `begin` gives the creation options; `finish` verifies the
//!   registration, then uses the link (once), stores the passkey and signs the admin in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keybridge_store::{
    Admin, AdminLoginLink, ChallengePurpose, NewAdminPasskey, NewAuditEvent, StoreError, Timestamp,
};
use keybridge_webauthn::base64url::{decode_lenient, encode_url};
use keybridge_webauthn::{
    AssertionExpectations, CredentialPublicKey, PublicKeyCredentialJson, RegistrationExpectations,
    RelyingParty, StoredCredential, verify_assertion, verify_registration,
};
use rand_core::{OsRng, RngCore as _};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ConsoleError;
use super::flash::{Flash, IncomingFlash};
use super::page::{Layout, render};
use super::session::{CLEAR_SESSION, ConsoleSession, CsrfForm, session_token, set_session_cookie};
use crate::app::App;
use crate::auth::RequestMeta;

/// How long a ceremony may take between begin and finish.
const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);

/// Failed logins allowed per source address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 10;

/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed console logins per source address, for the rate limit.
#[derive(Debug, Default)]
pub struct LoginLimits {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimits {
    fn key(meta: &RequestMeta) -> String {
        meta.source_addr.clone().unwrap_or_default()
    }

    /// Whether this source may try again; `Err(seconds)` until the oldest failure counted
    /// leaves the window.
    pub fn check(&self, meta: &RequestMeta) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let entry = map.entry(Self::key(meta)).or_default();
        entry.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
        if entry.len() >= MAX_FAILURES {
            let oldest = entry.first().copied().unwrap_or(now);
            let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        Ok(())
    }

    /// Counts a failure.
    pub fn fail(&self, meta: &RequestMeta) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(Self::key(meta)).or_default().push(Instant::now());
    }
}

/// A refused ceremony step, answered as JSON `{"error": {"code", "message"}}` to the page's
/// script, which shows the message.
#[derive(Debug)]
pub struct CeremonyError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl CeremonyError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        CeremonyError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for CeremonyError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<StoreError> for CeremonyError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::TokenRejected { .. } | StoreError::NotFound { .. } => CeremonyError::new(
                StatusCode::GONE,
                "link_rejected",
                format!("{error}; ask an admin for a new link (keybridge admin login-link)"),
            ),
            StoreError::Duplicate { .. } => CeremonyError::new(
                StatusCode::CONFLICT,
                "duplicate",
                "this passkey is already registered; sign in with it instead",
            ),
            _ => {
                tracing::error!(%error, "console ceremony failed");
                CeremonyError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not finish this step; the details are in its log",
                )
            }
        }
    }
}

/// The console's relying party: RP id = the public URL's host, origin = its origin.
pub fn relying_party(app: &App) -> RelyingParty {
    let host = app
        .config()
        .server
        .public_url
        .host_str()
        .unwrap_or("localhost")
        .to_owned();
    RelyingParty::new(host, [super::public_origin(app)])
}

fn new_challenge() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Only console paths are followed after login (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with("/console")
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.starts_with("/console/login") =>
        {
            path.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
}

/// `?next=` of the login page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /console/login`.
pub async fn login_page(
    State(app): State<App>,
    Query(query): Query<NextQuery>,
    headers: HeaderMap,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, ConsoleError> {
    let next = safe_next(query.next.as_deref());
    if let Some(token) = session_token(&headers)
        && app
            .store()
            .admins()
            .session(&token, Timestamp::now())
            .await?
            .is_some()
    {
        return Ok(axum::response::Redirect::to(&next).into_response());
    }
    let mut layout = Layout::anonymous("Sign in");
    layout.flash = flash;
    let page = LoginPage { layout, next };
    Ok(render(&page, &page.layout))
}

/// Body of `POST /console/login/begin`.
#[derive(Debug, Deserialize)]
pub struct LoginBegin {
    /// Username, for a username-first login; empty or absent for a discoverable passkey.
    #[serde(default)]
    pub username: Option<String>,
}

/// `POST /console/login/begin`: the request options and the ceremony handle.
pub async fn login_begin(
    State(app): State<App>,
    meta: RequestMeta,
    Json(body): Json<LoginBegin>,
) -> Result<Json<Value>, CeremonyError> {
    too_many(&app, &meta)?;
    let mut allow = Vec::new();
    let username = body
        .username
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(username) = username {
        // An unknown name gets an empty allow list rather than an error, so the answer does
        // not tell who has an account; the assertion then fails like any unknown passkey.
        if let Some(admin) = app.store().admins().find_by_username(username).await? {
            for passkey in app.store().admins().passkeys(&admin.id).await? {
                allow.push(json!({"type": "public-key", "id": passkey.credential_id}));
            }
        }
    }
    let challenge = new_challenge();
    let handle = app
        .store()
        .admins()
        .create_challenge(
            ChallengePurpose::Login,
            None,
            &encode_url(&challenge),
            CEREMONY_TTL,
        )
        .await?;
    let rp = relying_party(&app);
    Ok(Json(json!({
        "ceremony": handle,
        "publicKey": {
            "challenge": encode_url(&challenge),
            "rpId": rp.id(),
            "timeout": CEREMONY_TTL.as_millis() as u64,
            "userVerification": "required",
            "allowCredentials": allow,
        }
    })))
}

/// Body of `POST /console/login/finish`.
#[derive(Debug, Deserialize)]
pub struct LoginFinish {
    /// The handle from `begin`.
    pub ceremony: String,
    /// The assertion (`PublicKeyCredential.toJSON()`).
    pub credential: PublicKeyCredentialJson,
    /// Where to go afterwards.
    #[serde(default)]
    pub next: Option<String>,
}

fn too_many(app: &App, meta: &RequestMeta) -> Result<(), CeremonyError> {
    app.console_login_limits().check(meta).map_err(|seconds| {
        CeremonyError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many failed sign-ins from this address; try again in {} minutes",
                seconds.div_ceil(60)
            ),
        )
    })
}

/// `POST /console/login/finish`: verifies the assertion and opens a session.
pub async fn login_finish(
    State(app): State<App>,
    meta: RequestMeta,
    headers: HeaderMap,
    Json(body): Json<LoginFinish>,
) -> Result<Response, CeremonyError> {
    too_many(&app, &meta)?;
    match check_assertion(&app, &body).await {
        Ok(admin) => {
            let user_agent = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            let next = safe_next(body.next.as_deref());
            open_session(&app, &meta, &admin, user_agent, &next).await
        }
        Err(refusal) => {
            app.console_login_limits().fail(&meta);
            app.store()
                .audit()
                .append(
                    meta.stamp(
                        NewAuditEvent::new("anonymous", "console.login.failed")
                            .details(json!({"reason": refusal.code})),
                    ),
                )
                .await?;
            Err(refusal)
        }
    }
}

async fn check_assertion(app: &App, body: &LoginFinish) -> Result<Admin, CeremonyError> {
    let challenge = app
        .store()
        .admins()
        .take_challenge(&body.ceremony, ChallengePurpose::Login, Timestamp::now())
        .await?
        .ok_or_else(|| {
            CeremonyError::new(
                StatusCode::BAD_REQUEST,
                "ceremony_expired",
                "this sign-in expired or was already finished; reload the page and try again",
            )
        })?;
    let challenge = decode_lenient(&challenge.challenge).map_err(|e| {
        CeremonyError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?;
    let response = body.credential.to_assertion().map_err(|e| {
        CeremonyError::new(StatusCode::BAD_REQUEST, "bad_credential", e.to_string())
    })?;
    let unknown = || {
        CeremonyError::new(
            StatusCode::UNAUTHORIZED,
            "unknown_passkey",
            "this passkey is not registered for the keybridge console; use the passkey you \
             enrolled, or ask an admin for a login link",
        )
    };
    let passkey = app
        .store()
        .admins()
        .find_passkey(&encode_url(&response.credential_id))
        .await?
        .ok_or_else(unknown)?;
    let admin = app.store().admins().get(&passkey.admin_id).await?;
    if admin.disabled {
        return Err(CeremonyError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "this console account is disabled; ask another admin to enable it",
        ));
    }
    let public_key = CredentialPublicKey::from_cose(&passkey.public_key).map_err(|e| {
        CeremonyError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?;
    let rp = relying_party(app);
    let stored = StoredCredential {
        credential_id: &response.credential_id,
        public_key: &public_key,
        sign_count: u32::try_from(passkey.sign_count).unwrap_or(u32::MAX),
        backup_eligible: passkey.backup_eligible,
        user_handle: Some(admin.id.as_bytes()),
    };
    let expectations = AssertionExpectations {
        relying_party: &rp,
        challenge: &challenge,
        require_user_verification: true,
    };
    let verified = verify_assertion(&response, &stored, &expectations).map_err(|e| {
        CeremonyError::new(
            StatusCode::UNAUTHORIZED,
            e.code(),
            format!("sign-in refused: {e}"),
        )
    })?;
    let recorded = app
        .store()
        .admins()
        .record_passkey_use(
            &passkey.id,
            i64::from(verified.sign_count),
            Timestamp::now(),
        )
        .await?;
    if !recorded {
        return Err(CeremonyError::new(
            StatusCode::UNAUTHORIZED,
            "error_possible_clone",
            "sign-in refused: the passkey's signature counter did not increase, so it may have \
             been cloned; ask an admin to remove it and enrol a new one",
        ));
    }
    Ok(admin)
}

/// Opens a session for `admin`, audits the login and answers `{"redirect": next}` with the
/// session cookie set.
async fn open_session(
    app: &App,
    meta: &RequestMeta,
    admin: &Admin,
    user_agent: Option<&str>,
    next: &str,
) -> Result<Response, CeremonyError> {
    let console = &app.config().console;
    let (_, token) = app
        .store()
        .admins()
        .create_session(
            &admin.id,
            console.session_idle,
            console.session_max,
            meta.source_addr.as_deref(),
            user_agent,
        )
        .await?;
    app.store()
        .audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(format!("admin:{}", admin.username), "console.login")
                    .target(format!("admin:{}", admin.id))
                    .details(json!({"role": admin.role.as_str()})),
            ),
        )
        .await?;
    let mut response = Json(json!({"redirect": next})).into_response();
    set_session_cookie(&mut response, &token, console.session_max.as_secs());
    Ok(response)
}

/// The (empty) logout form.
#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// `POST /console/logout`: revokes the session and clears the cookie.
pub async fn logout(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    app.store()
        .admins()
        .revoke_session(session.token(), Timestamp::now())
        .await?;
    app.store()
        .audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(session.actor(), "console.logout")
                    .target(format!("admin:{}", session.admin.id)),
            ),
        )
        .await?;
    let mut response = Flash::success("You are signed out.").redirect("/console/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        axum::http::HeaderValue::from_static(CLEAR_SESSION),
    );
    Ok(response)
}

#[derive(Template)]
#[template(path = "console/enrol.html")]
struct EnrolPage {
    layout: Layout,
    token: String,
    username: String,
    role: &'static str,
    expires: String,
}

async fn link_admin(app: &App, link: &AdminLoginLink) -> Result<Admin, ConsoleError> {
    let Some(admin_id) = &link.admin_id else {
        return Err(ConsoleError::LinkRejected(
            "this link names no console account; make one with `keybridge admin login-link \
             --username NAME --role admin`"
                .to_owned(),
        ));
    };
    Ok(app.store().admins().get(admin_id).await?)
}

fn link_message(error: StoreError) -> ConsoleError {
    match &error {
        StoreError::NotFound { .. } => ConsoleError::LinkRejected(
            "This link is not valid. Ask an admin for a new one (keybridge admin login-link)."
                .to_owned(),
        ),
        StoreError::TokenRejected { reason, .. } => ConsoleError::LinkRejected(format!(
            "This link {reason}: each link works once and for a limited time. Ask an admin for \
             a new one (keybridge admin login-link)."
        )),
        _ => error.into(),
    }
}

/// `GET /console/enrol/{token}`: the enrolment page (the link is not used up by looking).
pub async fn enrol_page(
    State(app): State<App>,
    Path(token): Path<String>,
) -> Result<Response, ConsoleError> {
    let link = app
        .store()
        .admins()
        .check_login_link(&token, Timestamp::now())
        .await
        .map_err(link_message)?;
    let admin = link_admin(&app, &link).await?;
    let page = EnrolPage {
        layout: Layout::anonymous("Register your passkey"),
        token,
        username: admin.username,
        role: admin.role.as_str(),
        expires: link.expires_at.to_rfc3339(),
    };
    Ok(render(&page, &page.layout))
}

/// `POST /console/enrol/{token}/begin`: the creation options.
pub async fn enrol_begin(
    State(app): State<App>,
    meta: RequestMeta,
    Path(token): Path<String>,
) -> Result<Json<Value>, CeremonyError> {
    too_many(&app, &meta)?;
    let link = app
        .store()
        .admins()
        .check_login_link(&token, Timestamp::now())
        .await?;
    let admin = link_admin(&app, &link).await.map_err(|_| {
        CeremonyError::new(
            StatusCode::GONE,
            "link_rejected",
            "this link names no console account",
        )
    })?;
    let existing: Vec<Value> = app
        .store()
        .admins()
        .passkeys(&admin.id)
        .await?
        .into_iter()
        .map(|p| json!({"type": "public-key", "id": p.credential_id}))
        .collect();
    let challenge = new_challenge();
    let handle = app
        .store()
        .admins()
        .create_challenge(
            ChallengePurpose::Enrol,
            Some(&admin.id),
            &encode_url(&challenge),
            CEREMONY_TTL,
        )
        .await?;
    let rp = relying_party(&app);
    let display_name = if admin.display_name.is_empty() {
        admin.username.clone()
    } else {
        admin.display_name.clone()
    };
    Ok(Json(json!({
        "ceremony": handle,
        "publicKey": {
            "challenge": encode_url(&challenge),
            "rp": {"id": rp.id(), "name": "keybridge console"},
            "user": {
                "id": encode_url(admin.id.as_bytes()),
                "name": admin.username,
                "displayName": display_name,
            },
            "pubKeyCredParams": [
                {"type": "public-key", "alg": -7},
                {"type": "public-key", "alg": -257},
            ],
            "authenticatorSelection": {
                "residentKey": "required",
                "requireResidentKey": true,
                "userVerification": "required",
            },
            "attestation": "none",
            "excludeCredentials": existing,
            "timeout": CEREMONY_TTL.as_millis() as u64,
        }
    })))
}

/// Body of `POST /console/enrol/{token}/finish`.
#[derive(Debug, Deserialize)]
pub struct EnrolFinish {
    /// The handle from `begin`.
    pub ceremony: String,
    /// The new credential (`PublicKeyCredential.toJSON()`).
    pub credential: PublicKeyCredentialJson,
}

/// `POST /console/enrol/{token}/finish`: verifies the registration, uses the link, stores
/// the passkey and signs the admin in.
pub async fn enrol_finish(
    State(app): State<App>,
    meta: RequestMeta,
    headers: HeaderMap,
    Path(token): Path<String>,
    Json(body): Json<EnrolFinish>,
) -> Result<Response, CeremonyError> {
    too_many(&app, &meta)?;
    let result = finish_enrolment(&app, &token, &body).await;
    let admin = match result {
        Ok(admin) => admin,
        Err(refusal) => {
            app.console_login_limits().fail(&meta);
            return Err(refusal);
        }
    };
    app.store()
        .audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(format!("admin:{}", admin.username), "console.enrol")
                    .target(format!("admin:{}", admin.id)),
            ),
        )
        .await?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    open_session(&app, &meta, &admin, user_agent, "/console").await
}

async fn finish_enrolment(
    app: &App,
    token: &str,
    body: &EnrolFinish,
) -> Result<Admin, CeremonyError> {
    let expired = || {
        CeremonyError::new(
            StatusCode::BAD_REQUEST,
            "ceremony_expired",
            "this registration expired or was already finished; reload the page and try again",
        )
    };
    let challenge = app
        .store()
        .admins()
        .take_challenge(&body.ceremony, ChallengePurpose::Enrol, Timestamp::now())
        .await?
        .ok_or_else(expired)?;
    let challenge_bytes = decode_lenient(&challenge.challenge).map_err(|e| {
        CeremonyError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?;
    let response = body.credential.to_registration().map_err(|e| {
        CeremonyError::new(StatusCode::BAD_REQUEST, "bad_credential", e.to_string())
    })?;
    let rp = relying_party(app);
    let expectations =
        RegistrationExpectations::new(&rp, &challenge_bytes, time::OffsetDateTime::now_utc());
    let verified = verify_registration(&response, &expectations).map_err(|e| {
        CeremonyError::new(
            StatusCode::BAD_REQUEST,
            e.code(),
            format!("registration refused: {e}"),
        )
    })?;
    // Verified first, used second: a failed ceremony leaves the link usable for a retry.
    let link = app
        .store()
        .admins()
        .consume_login_link(token, Timestamp::now())
        .await?;
    if link.admin_id.is_none() || link.admin_id != challenge.admin_id {
        return Err(CeremonyError::new(
            StatusCode::BAD_REQUEST,
            "link_mismatch",
            "this registration was started from another link; reload the page and try again",
        ));
    }
    let admin = app
        .store()
        .admins()
        .get(challenge.admin_id.as_deref().unwrap_or_default())
        .await?;
    app.store()
        .admins()
        .add_passkey(NewAdminPasskey {
            admin_id: admin.id.clone(),
            credential_id: encode_url(&verified.credential_id),
            public_key: verified.public_key.cose_bytes().to_vec(),
            sign_count: i64::from(verified.sign_count),
            aaguid: verified.aaguid.to_string(),
            name: format!("Passkey added {}", Timestamp::now().to_rfc3339()),
            backup_eligible: verified.flags.backup_eligible(),
        })
        .await?;
    Ok(admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/console/users?tab=paired")),
            "/console/users?tab=paired"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/console");
        assert_eq!(safe_next(Some("//evil.example/console")), "/console");
        assert_eq!(safe_next(Some("/console/login")), "/console");
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn failures_past_the_limit_are_refused() {
        let limits = LoginLimits::default();
        let meta = RequestMeta {
            request_id: None,
            source_addr: Some("192.0.2.1".to_owned()),
        };
        let other = RequestMeta {
            request_id: None,
            source_addr: Some("192.0.2.2".to_owned()),
        };
        for _ in 0..MAX_FAILURES {
            assert!(limits.check(&meta).is_ok());
            limits.fail(&meta);
        }
        assert!(limits.check(&meta).is_err());
        assert!(limits.check(&other).is_ok());
    }
}

/// How long a login link printed by `serve`, `sandbox` or `keybridge admin login-link` works.
pub const LOGIN_LINK_TTL: Duration = Duration::from_secs(24 * 3600);

/// A console login link made on the server's machine.
#[derive(Debug, Clone)]
pub struct IssuedLoginLink {
    /// The console account it is for.
    pub admin: Admin,
    /// Whether the account was made for this link.
    pub created_admin: bool,
    /// The URL to open (shown once).
    pub url: String,
}

/// Makes a one-time link that registers a passkey for the console account `username`,
/// creating the account with `role` when it does not exist (an existing account keeps its
/// role). Used by `keybridge admin login-link` and, for the first admin, by `serve` and
/// `sandbox`.
pub async fn issue_login_link(
    store: &keybridge_store::Store,
    public_url: &url::Url,
    username: &str,
    role: keybridge_store::Role,
    actor: &str,
) -> Result<IssuedLoginLink, StoreError> {
    let username = username.trim();
    let (admin, created_admin) = match store.admins().find_by_username(username).await? {
        Some(admin) => (admin, false),
        None => (store.admins().create(username, username, role).await?, true),
    };
    let token = store
        .admins()
        .create_login_link(Some(&admin.id), None, LOGIN_LINK_TTL)
        .await?;
    store
        .audit()
        .append(
            NewAuditEvent::new(actor, "console.login_link.create")
                .target(format!("admin:{}", admin.id))
                .details(
                    json!({"username": admin.username, "role": admin.role.as_str(),
                    "created_admin": created_admin}),
                ),
        )
        .await?;
    let base = public_url.as_str().trim_end_matches('/');
    Ok(IssuedLoginLink {
        url: format!("{base}/console/enrol/{token}"),
        admin,
        created_admin,
    })
}

/// When no console passkey exists yet, a login link for the account `admin` (made with the
/// admin role if missing), for `serve` and `sandbox` to print; `None` once anyone can log in.
pub async fn bootstrap_login_link(
    store: &keybridge_store::Store,
    public_url: &url::Url,
) -> Result<Option<IssuedLoginLink>, StoreError> {
    if store.admins().passkey_count().await? > 0 {
        return Ok(None);
    }
    issue_login_link(
        store,
        public_url,
        "admin",
        keybridge_store::Role::Admin,
        "system",
    )
    .await
    .map(Some)
}
