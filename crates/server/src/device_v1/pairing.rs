//! Pairing a phone (issue 6, lifecycle 6): the pairing session behind the Device Manager
//! page's QR code and short code, and the enrolment that registers the phone.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keybridge_core::{Command, RestrictDomains, Upn, UserState, apply};
use keybridge_device_protocol::{
    Account, EnrolmentError, EnrolmentRequest, EnrolmentResponse, PairingKey, PairingPayload,
    PairingReference, PairingSecret, ProtocolVersion, ServerUrl, ShortCode, TlsPin,
};
use keybridge_store::{
    Integration, NewAuditEvent, NewPairingSession, NewPhone, PairingKind, PairingSession,
    StoreError, Timestamp, User,
};
use rand_core::OsRng;
use serde::Serialize;

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::jobs;
use crate::services::facts::{has_open_invite, user_facts};
use crate::services::provisioning;

/// How long a QR code and its short code work (the page renews them).
pub const PAIRING_TTL: Duration = Duration::from_secs(60);
/// Failed enrolments that close a session.
pub const MAX_FAILED_ENROLMENTS: i64 = 5;
/// Failed code look-ups or proofs allowed per source address in [`ADDRESS_WINDOW`].
pub const MAX_FAILURES_PER_ADDRESS: usize = 10;
/// The window of [`MAX_FAILURES_PER_ADDRESS`].
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed code attempts allowed server-wide in [`GLOBAL_WINDOW`]; above it code pairing is
/// suspended (QR pairing keeps working).
pub const MAX_FAILURES_GLOBAL: usize = 1_000;
/// Addresses tracked before quiet ones are dropped.
const MAX_TRACKED_ADDRESSES: usize = 10_000;
/// The window of [`MAX_FAILURES_GLOBAL`].
pub const GLOBAL_WINDOW: Duration = Duration::from_secs(3600);

/// Counts failed pairing attempts per source address and server-wide (in memory: each
/// instance limits what it sees).
#[derive(Debug, Default)]
pub struct PairingLimits {
    inner: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    by_address: HashMap<String, VecDeque<Instant>>,
    global: VecDeque<Instant>,
}

fn prune(queue: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while queue
        .front()
        .is_some_and(|at| now.duration_since(*at) > window)
    {
        queue.pop_front();
    }
}

impl PairingLimits {
    /// `Some(seconds to wait)` when `address` (or, for codes, the whole server) is over its
    /// limit.
    pub fn retry_after(&self, address: &str, by_code: bool) -> Option<u64> {
        let now = Instant::now();
        let mut failures = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let wait = |queue: &VecDeque<Instant>, window: Duration| {
            queue
                .front()
                .map(|first| window.saturating_sub(now.duration_since(*first)).as_secs() + 1)
        };
        if by_code {
            prune(&mut failures.global, GLOBAL_WINDOW, now);
            if failures.global.len() >= MAX_FAILURES_GLOBAL {
                return wait(&failures.global, GLOBAL_WINDOW);
            }
        }
        let queue = failures.by_address.entry(address.to_owned()).or_default();
        prune(queue, ADDRESS_WINDOW, now);
        if queue.len() >= MAX_FAILURES_PER_ADDRESS {
            return wait(queue, ADDRESS_WINDOW);
        }
        None
    }

    /// Counts one failure from `address`.
    pub fn record_failure(&self, address: &str, by_code: bool) {
        let now = Instant::now();
        let mut failures = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if by_code {
            failures.global.push_back(now);
        }
        failures
            .by_address
            .entry(address.to_owned())
            .or_default()
            .push_back(now);
        // Keep the map bounded under a spread-out guessing run: drop quiet addresses.
        if failures.by_address.len() > MAX_TRACKED_ADDRESSES {
            failures.by_address.retain(|_, queue| {
                prune(queue, ADDRESS_WINDOW, now);
                !queue.is_empty()
            });
        }
    }
}

/// What the Device Manager page shows.
#[derive(Debug, Serialize)]
pub struct PairingView {
    /// The pairing session's id.
    pub pairing_id: String,
    /// The QR code's text (`keybridge:pair?v=1&...`).
    pub qr_payload: String,
    /// The fallback code, grouped (`K7Q-X4M`).
    pub short_code: String,
    /// When both stop working (RFC 3339); the page asks again before.
    pub expires_at: String,
    /// The account being paired.
    pub upn: String,
}

fn invite_error(error: StoreError) -> ApiError {
    match &error {
        StoreError::TokenRejected { reason, .. } => ApiError::new(
            StatusCode::GONE,
            "invite_unusable",
            format!("this invitation link {reason}: ask your administrator for a new invitation"),
        ),
        StoreError::NotFound { .. } => ApiError::not_found(
            "this invitation link is not known: check that it was copied whole, or ask your \
             administrator for a new invitation",
        )
        .with_code("invite_not_found"),
        _ => error.into(),
    }
}

fn domain_check(user: &User, integration: &Integration) -> ApiResult<()> {
    let restrict = RestrictDomains::parse(&integration.restrict_domains)
        .map_err(|e| ApiError::internal(format!("stored restrict domains are invalid: {e}")))?;
    let refused = |detail: String| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "domain_not_allowed",
            format!("{} is not allowed to pair a phone: {detail}", user.upn),
        )
    };
    let upn = Upn::parse(&user.upn).map_err(|e| refused(e.to_string()))?;
    restrict.check(&upn).map_err(|e| refused(e.to_string()))
}

fn this_server(app: &App) -> ApiResult<ServerUrl> {
    ServerUrl::parse(app.config().server.public_url.as_str()).map_err(|e| {
        ApiError::internal(format!(
            "server.public_url cannot be put in a pairing code: {e}"
        ))
    })
}

fn server_pin(app: &App) -> ApiResult<TlsPin> {
    TlsPin::parse(app.tls_pin())
        .map_err(|e| ApiError::internal(format!("the server's TLS pin is unreadable: {e}")))
}

/// `GET /invite/{token}/pairing`: a new pairing session (QR payload and short code) for the
/// invited user. The invitation link is the credential; each call renews the codes.
pub async fn start(
    State(app): State<App>,
    Path(token): Path<String>,
) -> ApiResult<Json<PairingView>> {
    new_session(&app, &token).await.map(Json)
}

/// A new pairing session for the invitation `token` (the JSON endpoint and the Device Manager
/// page share it). Errors: `invite_not_found` (404), `invite_unusable` (410: used, revoked or
/// expired), `domain_not_allowed` (403), `not_allowed` (409: the user's state forbids pairing).
pub async fn new_session(app: &App, token: &str) -> ApiResult<PairingView> {
    let store = app.store();
    let now = Timestamp::now();
    let invite = store
        .invites()
        .check(token, now)
        .await
        .map_err(invite_error)?;
    let user = store.users().get(&invite.user_id).await?;
    let integration = store.integrations().get(&user.integration_id).await?;
    domain_check(&user, &integration)?;
    let facts = user_facts(&user, true).ok_or_else(|| {
        ApiError::internal(format!("user {} has inconsistent stored facts", user.id))
    })?;
    apply(&facts, Command::PairPhone)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "not_allowed", e.to_string()))?;

    let server_url = this_server(app)?;
    let tls_pin = server_pin(app)?;
    let secret = PairingSecret::generate(&mut OsRng);
    // The code is the look-up key of a live session: draw again on a clash.
    let mut code = ShortCode::generate(&mut OsRng);
    for _ in 0..8 {
        if store
            .pairing_sessions()
            .find_live_by_code(code.as_str(), now)
            .await?
            .is_none()
        {
            break;
        }
        code = ShortCode::generate(&mut OsRng);
    }
    let session = store
        .pairing_sessions()
        .create_with_proof_key(
            NewPairingSession {
                kind: PairingKind::Phone,
                user_id: Some(user.id.clone()),
                invite_id: Some(invite.id.clone()),
                workstation_id: None,
                short_code: code.as_str().to_owned(),
                ttl: PAIRING_TTL,
            },
            &secret.proof_key().to_base64url(),
        )
        .await?;
    let pairing_id = uuid::Uuid::try_parse(&session.id)
        .map_err(|_| ApiError::internal("a pairing session id is not a UUID"))?;
    let payload = PairingPayload {
        server_url,
        pairing_id,
        secret,
        tls_pin,
        expires_at: session.expires_at.to_offset_date_time(),
    };
    Ok(PairingView {
        pairing_id: session.id,
        qr_payload: payload.encode(),
        short_code: code.grouped(),
        expires_at: session.expires_at.to_rfc3339(),
        upn: user.upn,
    })
}

fn pairing_not_found() -> ApiError {
    ApiError::not_found(
        "no live pairing session matches: the QR code or code expired, was used, or was typed \
         wrong; show a new one on the Device Manager page",
    )
    .with_code("pairing_not_found")
}

fn enrolment_error(error: &EnrolmentError) -> ApiError {
    let status = match error {
        EnrolmentError::BadDeviceField { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    };
    ApiError::new(status, error.code(), error.to_string())
}

fn too_many(retry_after: u64) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!(
            "too many failed pairing attempts: wait {retry_after} s, then scan the QR code or \
             type the code again"
        ),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Finds the live session an enrolment names and its pairing key.
async fn find_session(
    app: &App,
    reference: &PairingReference,
    now: Timestamp,
) -> ApiResult<(PairingSession, PairingKey)> {
    let store = app.store();
    match reference {
        PairingReference::Id(id) => {
            let session = match store
                .pairing_sessions()
                .get(&id.hyphenated().to_string())
                .await
            {
                Ok(session) => session,
                Err(e) if e.is_not_found() => return Err(pairing_not_found()),
                Err(e) => return Err(e.into()),
            };
            if session.kind != PairingKind::Phone
                || session.expires_at <= now
                || session.failed_attempts >= MAX_FAILED_ENROLMENTS
            {
                return Err(pairing_not_found());
            }
            if session.completed_at.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "pairing_used",
                    "this QR code was already used to pair a phone: show a new one on the Device \
                     Manager page",
                ));
            }
            let stored = store.pairing_sessions().proof_key(&session.id).await?;
            let key = PairingKey::from_base64url(&stored).ok_or_else(|| {
                ApiError::internal(format!(
                    "pairing session {} has an unreadable key",
                    session.id
                ))
            })?;
            Ok((session, key))
        }
        PairingReference::Code(code) => {
            let session = store
                .pairing_sessions()
                .find_live_by_code(code.as_str(), now)
                .await?
                .filter(|s| {
                    s.kind == PairingKind::Phone && s.failed_attempts < MAX_FAILED_ENROLMENTS
                })
                .ok_or_else(pairing_not_found)?;
            Ok((session, code.proof_key()))
        }
    }
}

/// `POST /device/v1/pair`: checks the enrolment against its pairing session, registers the
/// phone, moves the user to Paired with keybridge (the invitation is used up), audits, and
/// queues the group step.
pub async fn enrol(State(app): State<App>, meta: RequestMeta, body: Bytes) -> Response {
    match enrol_inner(&app, &meta, &body).await {
        Ok(response) => (StatusCode::CREATED, Json(response)).into_response(),
        Err(Refusal::Api(error)) => error.into_response(),
        Err(Refusal::TooMany(seconds)) => too_many(seconds),
    }
}

enum Refusal {
    Api(ApiError),
    TooMany(u64),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal::Api(error)
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Refusal {
        Refusal::Api(error.into())
    }
}

async fn audit_failure(app: &App, meta: &RequestMeta, session: Option<&str>, code: &str) {
    let event = NewAuditEvent::new("device", "device.pair.failed").details(serde_json::json!({
        "pairing_id": session,
        "reason": code,
    }));
    if let Err(e) = app.store().audit().append(meta.stamp(event)).await {
        tracing::warn!(error = %e, "could not audit a failed pairing");
    }
}

async fn enrol_inner(
    app: &App,
    meta: &RequestMeta,
    body: &[u8],
) -> Result<EnrolmentResponse, Refusal> {
    let request: EnrolmentRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_device",
            format!("the enrolment request cannot be read: {e}"),
        )
    })?;
    let address = meta.source_addr.clone().unwrap_or_default();
    let by_code = matches!(request.pairing, PairingReference::Code(_));
    if let Some(seconds) = app.pairing_limits().retry_after(&address, by_code) {
        return Err(Refusal::TooMany(seconds));
    }
    let now = Timestamp::now();
    let (session, key) = match find_session(app, &request.pairing, now).await {
        Ok(found) => found,
        Err(error) => {
            if error.code() == "pairing_not_found" {
                app.pairing_limits().record_failure(&address, by_code);
            }
            if matches!(error.code(), "pairing_not_found" | "pairing_used") {
                audit_failure(app, meta, None, error.code()).await;
            }
            return Err(error.into());
        }
    };
    let verified = match request.verify(&key, &this_server(app)?) {
        Ok(verified) => verified,
        Err(error) => {
            if matches!(
                error,
                EnrolmentError::BadProof | EnrolmentError::BadSignature
            ) {
                app.store()
                    .pairing_sessions()
                    .record_failed_attempt(&session.id)
                    .await?;
                app.pairing_limits().record_failure(&address, by_code);
            }
            audit_failure(app, meta, Some(&session.id), error.code()).await;
            return Err(enrolment_error(&error).into());
        }
    };

    let store = app.store();
    let user_id = session
        .user_id
        .clone()
        .ok_or_else(|| ApiError::internal("a phone pairing session names no user"))?;
    let user = store.users().get(&user_id).await?;
    let integration = store.integrations().get(&user.integration_id).await?;
    domain_check(&user, &integration)?;
    let invited = has_open_invite(store, &user.id, now).await?;
    let facts = user_facts(&user, invited).ok_or_else(|| {
        ApiError::internal(format!("user {} has inconsistent stored facts", user.id))
    })?;
    let transition = apply(&facts, Command::PairPhone)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "not_allowed", e.to_string()))?;
    let account = Account {
        upn: user.upn.clone(),
        tenant_id: uuid::Uuid::try_parse(&integration.tenant_id)
            .map_err(|_| ApiError::internal("the integration's tenant id is not a GUID"))?,
        entra_user_id: uuid::Uuid::try_parse(&user.entra_object_id)
            .map_err(|_| ApiError::internal("the user's Entra object id is not a GUID"))?,
    };

    let mut tx = store.begin().await?;
    let phone = tx
        .phones()
        .create(NewPhone {
            user_id: user.id.clone(),
            device_key: verified.device_public_key.to_base64url(),
            name: verified.device.name().to_owned(),
            model: verified.device.model().to_owned(),
            os: verified.device.os().to_owned(),
        })
        .await?;
    // The conditional update makes the session single-use even against a concurrent
    // enrolment with the same proof.
    match tx
        .pairing_sessions()
        .complete_verified(&session.id, &phone.id, MAX_FAILED_ENROLMENTS, now)
        .await
    {
        Ok(_) => {}
        Err(StoreError::TokenRejected { .. }) => {
            return Err(match request.pairing {
                PairingReference::Id(_) => ApiError::new(
                    StatusCode::CONFLICT,
                    "pairing_used",
                    "this QR code was already used to pair a phone: show a new one on the Device \
                     Manager page",
                ),
                PairingReference::Code(_) => pairing_not_found(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(invite_id) = &session.invite_id {
        tx.invites()
            .consume_by_id(invite_id, now)
            .await
            .map_err(invite_error)?;
    }
    let next = &transition.facts;
    tx.users()
        .set_state(&user.id, next.state(), next.is_unpaired())
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(format!("phone:{}", phone.id), "device.pair")
                    .target(format!("user:{}", user.id))
                    .details(serde_json::json!({
                        "phone_id": phone.id,
                        "pairing_id": session.id,
                        "by": if by_code { "code" } else { "qr" },
                        "name": phone.name,
                        "model": phone.model,
                        "os": phone.os,
                        "confirmation_code": request.confirmation_code(),
                        "groups_to_add": transition.groups_to_add.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                        "groups_to_remove": transition.groups_to_remove.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                    })),
            ),
        )
        .await?;
    if !transition.groups_to_add.is_empty() || !transition.groups_to_remove.is_empty() {
        tx.jobs()
            .enqueue(app.attempts(jobs::group_sync(&integration.id)))
            .await?;
    }
    if integration.native_login_enabled && next.state() == UserState::PairedWithKeybridge {
        tx.jobs()
            .enqueue(app.attempts(provisioning::provision_user(&user.id, &phone.id)))
            .await?;
    }
    tx.commit().await?;

    Ok(EnrolmentResponse {
        v: ProtocolVersion,
        device_id: uuid::Uuid::try_parse(&phone.id)
            .map_err(|_| ApiError::internal("a phone id is not a UUID"))?,
        account,
        integration_id: integration.internal_id,
        tls_pin: server_pin(app)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address() {
        let limits = PairingLimits::default();
        for _ in 0..MAX_FAILURES_PER_ADDRESS - 1 {
            limits.record_failure("192.0.2.1", true);
        }
        assert_eq!(limits.retry_after("192.0.2.1", true), None);
        limits.record_failure("192.0.2.1", false);
        let wait = limits
            .retry_after("192.0.2.1", false)
            .expect("over the limit");
        assert!(wait > 0 && wait <= ADDRESS_WINDOW.as_secs() + 1, "{wait}");
        // Another address is not affected.
        assert_eq!(limits.retry_after("192.0.2.2", true), None);
    }

    #[test]
    fn code_failures_are_limited_globally_and_qr_pairing_keeps_working() {
        let limits = PairingLimits::default();
        for n in 0..MAX_FAILURES_GLOBAL {
            limits.record_failure(&format!("198.51.100.{}", n % 250), true);
        }
        // Any address, by code: suspended; by QR code: still allowed.
        assert!(limits.retry_after("203.0.113.9", true).is_some());
        assert_eq!(limits.retry_after("203.0.113.9", false), None);
    }
}
