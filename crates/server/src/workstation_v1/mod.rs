//! The workstation's API, `/workstation/v1` (see `docs/workstation.md`), and the phone's side
//! of workstation pairing under `/device/v1/workstations`.
//!
//! - [`auth`]: [`auth::WorkstationAuth`], the signed-request extractor;
//! - `POST /workstation/v1/enrol`: the install token exchanged for a workstation registration;
//! - `POST /workstation/v1/pairing`, `DELETE /workstation/v1/pairing`, `GET /workstation/v1/status`;
//! - `POST /workstation/v1/sign-in` and `GET /workstation/v1/sign-in/{id}?wait=N`: the
//!   approval request routed to the paired phone's inbox, and its outcome (long poll);
//! - [`phone`]: `POST /device/v1/workstations` (the phone pairs a workstation),
//!   `DELETE /device/v1/workstations/{id}`, `POST /device/v1/workstations/{id}/recovery-pin`.

pub mod auth;
pub mod phone;

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keybridge_device_protocol::{
    Account, Answer, ApproveSignIn, ENTRA_RP_ID, InboxItem, InboxRequest, ProtocolVersion,
    RequestAnswer, ServerUrl, ShortCode, SignInAccepted, SignInOutcome, SignInStart, SignInStatus,
    WorkstationAccount, WorkstationEnrolled, WorkstationEnrolment, WorkstationPairingSession,
    WorkstationPairingStart, WorkstationState,
};
use keybridge_store::{
    DeviceRequestKind, DeviceRequestStatus, NewAuditEvent, NewDeviceRequest, NewPairingSession,
    PairingKind, Phone, StoreError, Timestamp, User, WorkstationStatus,
};
use rand_core::OsRng;
use serde::Deserialize;

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use auth::WorkstationAuth;

/// How long a workstation's pairing code works.
pub const PAIRING_TTL: Duration = Duration::from_secs(60);
/// How long the phone has to approve a sign-in.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(120);
/// The longest a sign-in status poll is held.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// `/workstation/v1` (nested by the caller).
pub fn router() -> Router<App> {
    Router::new()
        .route("/enrol", post(enrol))
        .route("/pairing", post(start_pairing).delete(unpair))
        .route("/status", get(status))
        .route("/sign-in", post(sign_in))
        .route("/sign-in/{id}", get(sign_in_status))
        .route("/recovery", post(recover))
}

fn this_server(app: &App) -> ApiResult<ServerUrl> {
    ServerUrl::parse(app.config().server.public_url.as_str())
        .map_err(|e| ApiError::internal(format!("server.public_url is unusable: {e}")))
}

fn read_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("the {what} cannot be read: {e}"),
        )
    })
}

fn parse_uuid(id: &str, what: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::try_parse(id).map_err(|_| ApiError::internal(format!("{what} {id} is not a UUID")))
}

fn install_token_error(error: StoreError) -> ApiError {
    match error {
        StoreError::TokenRejected { reason, .. } => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "install_token_rejected",
            format!(
                "the install token in keybridge.json {reason}: download the desktop client again from the console"
            ),
        ),
        e if e.is_not_found() => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "install_token_rejected",
            "the install token in keybridge.json is not known to this server: download the \
             desktop client again from the console",
        ),
        e => e.into(),
    }
}

/// `POST /workstation/v1/enrol`: checks the request's signature, redeems the install token and
/// registers the workstation, in one transaction.
pub async fn enrol(State(app): State<App>, meta: RequestMeta, body: Bytes) -> Response {
    match enrol_inner(&app, &meta, &body).await {
        Ok(enrolled) => (StatusCode::CREATED, Json(enrolled)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn enrol_inner(app: &App, meta: &RequestMeta, body: &[u8]) -> ApiResult<WorkstationEnrolled> {
    let address = meta.source_addr.clone().unwrap_or_default();
    // Install tokens are long random secrets, but failed exchanges still count against the
    // address like failed pairings do.
    if let Some(seconds) = app.pairing_limits().retry_after(&address, false) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed attempts from this address: wait {seconds} s"),
        ));
    }
    let request: WorkstationEnrolment = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the enrolment request cannot be read: {e}"),
        )
    })?;
    request.verify(&this_server(app)?).map_err(|e| {
        let status = match e {
            keybridge_device_protocol::WorkstationError::BadComputerName { .. }
            | keybridge_device_protocol::WorkstationError::BadInstallToken => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, e.code(), e.to_string())
    })?;
    let public_key = request.public_key.to_base64url();
    let store = app.store();
    if store
        .workstations()
        .find_by_public_key(&public_key)
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_registered",
            "this workstation key is already registered: the install token is exchanged once per \
             workstation key",
        ));
    }
    let now = Timestamp::now();
    let mut tx = store.begin().await?;
    let token = match tx
        .install_tokens()
        .redeem(&request.install_token, now)
        .await
    {
        Ok(token) => token,
        Err(error) => {
            drop(tx);
            app.pairing_limits().record_failure(&address, false);
            let event = NewAuditEvent::new("workstation", "workstation.enrol.failed")
                .details(serde_json::json!({"computer_name": request.computer_name}));
            if let Err(e) = store.audit().append(meta.stamp(event)).await {
                tracing::warn!(error = %e, "could not audit a failed workstation enrolment");
            }
            return Err(install_token_error(error));
        }
    };
    let integration = tx.integrations().get(&token.integration_id).await?;
    let workstation = tx
        .workstations()
        .create(&integration.id, &request.computer_name, &public_key)
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(
                    format!("workstation:{}", workstation.id),
                    "workstation.enrol",
                )
                .target(format!("integration:{}", integration.id))
                .details(serde_json::json!({
                    "workstation_id": workstation.id,
                    "computer_name": workstation.name,
                    "install_token_id": token.id,
                })),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(WorkstationEnrolled {
        v: ProtocolVersion,
        workstation_id: parse_uuid(&workstation.id, "workstation")?,
        integration_id: integration.internal_id.clone(),
        tenant_id: uuid::Uuid::try_parse(&integration.tenant_id)
            .map_err(|_| ApiError::internal("the integration's tenant id is not a GUID"))?,
    })
}

/// `POST /workstation/v1/pairing`: a pairing session for the workstation's QR code. The
/// workstation keeps the secret; the server stores the key derived from it.
pub async fn start_pairing(
    State(app): State<App>,
    auth: WorkstationAuth,
) -> ApiResult<(StatusCode, Json<WorkstationPairingSession>)> {
    let start: WorkstationPairingStart = read_json(&auth.body, "pairing request")?;
    let store = app.store();
    let now = Timestamp::now();
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
    let proof_key = keybridge_device_protocol::PairingKey::from_bytes(start.proof_key);
    let session = store
        .pairing_sessions()
        .create_with_proof_key(
            NewPairingSession {
                kind: PairingKind::Workstation,
                user_id: None,
                invite_id: None,
                workstation_id: Some(auth.workstation.id.clone()),
                short_code: code.as_str().to_owned(),
                ttl: PAIRING_TTL,
            },
            &proof_key.to_base64url(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkstationPairingSession {
            v: ProtocolVersion,
            pairing_id: parse_uuid(&session.id, "pairing session")?,
            short_code: code,
            expires_at: session.expires_at.to_offset_date_time(),
        }),
    ))
}

/// The phone pairings (accounts) the workstation is paired with, in its integration, the
/// first-paired account first.
async fn paired_accounts(app: &App, auth: &WorkstationAuth) -> ApiResult<Vec<(Phone, User)>> {
    let store = app.store();
    let mut accounts = Vec::new();
    for phone_id in store.workstations().phones(&auth.workstation.id).await? {
        let phone = match store.phones().get(&phone_id).await {
            Ok(phone) => phone,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let user = store.users().get(&phone.user_id).await?;
        if user.integration_id == auth.workstation.integration_id {
            accounts.push((phone, user));
        }
    }
    Ok(accounts)
}

fn not_paired() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_paired",
        "this workstation is not paired with a phone (or the phone was unpaired): run \
         `keybridge workstation pair` and scan the code with the phone",
    )
}

/// `GET /workstation/v1/status`.
pub async fn status(
    State(app): State<App>,
    auth: WorkstationAuth,
) -> ApiResult<Json<WorkstationState>> {
    let accounts = paired_accounts(&app, &auth)
        .await?
        .into_iter()
        .map(|(phone, user)| WorkstationAccount {
            upn: user.upn,
            phone_name: phone.name,
        })
        .collect();
    Ok(Json(WorkstationState {
        v: ProtocolVersion,
        workstation_id: parse_uuid(&auth.workstation.id, "workstation")?,
        computer_name: auth.workstation.name.clone(),
        status: match auth.workstation.status {
            WorkstationStatus::Active => "active",
            WorkstationStatus::Revoked => "revoked",
        }
        .to_owned(),
        accounts,
    }))
}

/// `DELETE /workstation/v1/pairing`: the workstation unpairs from its phone.
pub async fn unpair(
    State(app): State<App>,
    meta: RequestMeta,
    auth: WorkstationAuth,
) -> ApiResult<StatusCode> {
    let phones = app
        .store()
        .workstations()
        .phones(&auth.workstation.id)
        .await?;
    if phones.is_empty() {
        return Err(not_paired());
    }
    let mut tx = app.store().begin().await?;
    tx.workstations()
        .clear_phones(&auth.workstation.id, Timestamp::now())
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(
                    format!("workstation:{}", auth.workstation.id),
                    "workstation.unpair",
                )
                .details(serde_json::json!({"by": "workstation", "phone_ids": phones})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /workstation/v1/sign-in`: puts an `approve_sign_in` request in the paired phone's
/// inbox. The request id, options and binding are the workstation's, copied unchanged; the
/// server checks the binding too, so that a broken or foreign request fails here and not only
/// on the phone.
pub async fn sign_in(
    State(app): State<App>,
    meta: RequestMeta,
    auth: WorkstationAuth,
) -> ApiResult<(StatusCode, Json<SignInAccepted>)> {
    let start: SignInStart = read_json(&auth.body, "sign-in request")?;
    let workstation_id = parse_uuid(&auth.workstation.id, "workstation")?;
    let binding = &start.binding;
    if binding.request_id != start.request_id
        || binding.workstation_id != workstation_id
        || binding.upn.to_lowercase() != start.upn.to_lowercase()
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "binding_mismatch",
            "the sign-in binding names another request, workstation or account than the request",
        ));
    }
    if !binding.verify(&auth.key) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_binding",
            "the sign-in binding is not signed by this workstation's key",
        ));
    }
    let challenge = start
        .request_options
        .get("challenge")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !binding.covers_challenge(challenge) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "binding_mismatch",
            "the sign-in binding does not cover the challenge in the request options: the \
             request was altered",
        ));
    }
    let rp_id = start.request_options.get("rpId").and_then(|v| v.as_str());
    if rp_id != Some(ENTRA_RP_ID) || binding.rp_id != ENTRA_RP_ID {
        return Err(ApiError::invalid(
            "request_options",
            format!("the request options must be for {ENTRA_RP_ID}"),
        ));
    }
    let accounts = paired_accounts(&app, &auth).await?;
    if accounts.is_empty() {
        return Err(not_paired());
    }
    let (phone, user) = accounts
        .into_iter()
        .find(|(_, user)| user.upn.eq_ignore_ascii_case(&start.upn))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "account_not_on_phone",
                format!(
                    "{} has no account on the phone paired with this workstation: sign in as one of \
                     the accounts `keybridge workstation status` lists",
                    keybridge_device_protocol::display_safe(&start.upn, 120)
                ),
            )
        })?;
    let store = app.store();
    let request_id = start.request_id.hyphenated().to_string();
    let integration = store.integrations().get(&user.integration_id).await?;
    let account = Account {
        upn: user.upn.clone(),
        tenant_id: uuid::Uuid::try_parse(&integration.tenant_id)
            .map_err(|_| ApiError::internal("the integration's tenant id is not a GUID"))?,
        entra_user_id: uuid::Uuid::try_parse(&user.entra_object_id)
            .map_err(|_| ApiError::internal("the user's Entra object id is not a GUID"))?,
    };
    let now = Timestamp::now();
    let expires_at = now.plus(SIGN_IN_TTL);
    let item = InboxItem::new(InboxRequest::ApproveSignIn(ApproveSignIn {
        request_id: start.request_id,
        account,
        // The name registered at enrolment, not what the request says.
        computer_name: auth.workstation.name.clone(),
        workstation_id,
        source_address: meta
            .source_addr
            .clone()
            .unwrap_or_else(|| "unknown".to_owned()),
        requested_at: now.to_offset_date_time(),
        expires_at: expires_at.to_offset_date_time(),
        request_options: start.request_options.clone(),
        binding: start.binding.clone(),
    }));
    let payload = serde_json::to_value(&item)
        .map_err(|e| ApiError::internal(format!("cannot store the sign-in request: {e}")))?;
    let mut tx = store.begin().await?;
    let created = tx
        .device_requests()
        .create_with_id(
            &request_id,
            NewDeviceRequest {
                phone_id: phone.id.clone(),
                kind: DeviceRequestKind::SignIn,
                payload,
                workstation_id: Some(auth.workstation.id.clone()),
                ttl: SIGN_IN_TTL,
            },
        )
        .await;
    let created = match created {
        Ok(created) => created,
        // A replay: the request id is the table's key, so the insert itself refuses it (one
        // round trip fewer than looking first, and no gap between the look and the insert).
        Err(e) if e.is_duplicate() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "replayed_request",
                "a sign-in request with this id was already made: each sign-in needs a new \
                 request id and a new challenge",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(
                    format!("workstation:{}", auth.workstation.id),
                    "workstation.sign_in.request",
                )
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({
                    "request_id": request_id,
                    "phone_id": phone.id,
                })),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SignInAccepted {
            v: ProtocolVersion,
            request_id: start.request_id,
            expires_at: created.expires_at.to_offset_date_time(),
        }),
    ))
}

/// `?wait=N`.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds to hold the request while the phone has not answered (0–30; default 30).
    pub wait: Option<u64>,
}

async fn outcome(app: &App, id: &str, workstation_id: &str) -> ApiResult<Option<SignInOutcome>> {
    let not_found = || {
        ApiError::not_found(format!(
            "no sign-in request {id} was made by this workstation"
        ))
    };
    let request = match app.store().device_requests().get(id).await {
        Ok(request) if request.workstation_id.as_deref() == Some(workstation_id) => request,
        Ok(_) => return Err(not_found()),
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    Ok(match request.status {
        DeviceRequestStatus::Pending | DeviceRequestStatus::Delivered => {
            if request.expires_at <= Timestamp::now() {
                Some(SignInOutcome::Expired)
            } else {
                None
            }
        }
        DeviceRequestStatus::Expired | DeviceRequestStatus::Cancelled => {
            Some(SignInOutcome::Expired)
        }
        DeviceRequestStatus::Approved | DeviceRequestStatus::Denied => {
            let answer: RequestAnswer = request
                .response
                .clone()
                .and_then(|r| serde_json::from_value(r).ok())
                .ok_or_else(|| {
                    ApiError::internal(format!("the answer to request {id} is unreadable"))
                })?;
            Some(match answer.answer {
                Answer::Approved { assertion } => SignInOutcome::Approved { assertion },
                Answer::Denied { reason, message } | Answer::Refused { reason, message } => {
                    SignInOutcome::Denied { reason, message }
                }
                Answer::Credential { .. } => {
                    return Err(ApiError::internal(format!(
                        "request {id} was answered with a credential"
                    )));
                }
            })
        }
    })
}

/// `GET /workstation/v1/sign-in/{id}?wait=N`: the phone's answer, at once when there is one,
/// else when it arrives or after `wait` seconds (`pending`).
pub async fn sign_in_status(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    auth: WorkstationAuth,
) -> ApiResult<Json<SignInStatus>> {
    let wait = query.wait.unwrap_or(MAX_WAIT_SECONDS);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::invalid(
            "wait",
            format!("{wait} s is more than the longest poll, {MAX_WAIT_SECONDS} s"),
        ));
    }
    let request_id = uuid::Uuid::try_parse(&id)
        .map_err(|_| ApiError::not_found(format!("no sign-in request {id}")))?;
    // Register before looking, so that an answer in between still wakes the poll.
    let watch = app
        .wakeups()
        .watch(keybridge_store::Channel::DeviceAnswer, &id);
    let notified = watch.notify().notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut found = outcome(&app, &id, &auth.workstation.id).await?;
    while found.is_none() && wait > 0 {
        // Notifications are hints; look again at least every few seconds (expiry has none).
        let tick = (tokio::time::Instant::now() + Duration::from_secs(5)).min(deadline);
        match tokio::time::timeout_at(tick, notified.as_mut()).await {
            Err(_) if tick >= deadline => break,
            Err(_) => {}
            Ok(()) => {
                notified.set(watch.notify().notified());
                notified.as_mut().enable();
            }
        }
        found = outcome(&app, &id, &auth.workstation.id).await?;
    }
    Ok(Json(SignInStatus {
        v: ProtocolVersion,
        request_id,
        outcome: found.unwrap_or(SignInOutcome::Pending),
    }))
}

/// `POST /workstation/v1/recovery`: the user's recovery PIN for this workstation, when the
/// phone is not at hand. Compared in constant time; failures count against the address; a PIN
/// that worked is deleted, and the phone escrows a new one (`keybridge device inbox`).
pub async fn recover(
    State(app): State<App>,
    meta: RequestMeta,
    auth: WorkstationAuth,
) -> ApiResult<Json<serde_json::Value>> {
    let request: keybridge_device_protocol::RecoveryPinUse =
        read_json(&auth.body, "recovery request")?;
    let address = meta.source_addr.clone().unwrap_or_default();
    if let Some(seconds) = app.pairing_limits().retry_after(&address, false) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many wrong recovery PINs: wait {seconds} s"),
        ));
    }
    let accounts = paired_accounts(&app, &auth).await?;
    let (_, user) = accounts
        .into_iter()
        .find(|(_, user)| user.upn.eq_ignore_ascii_case(&request.upn))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "account_not_on_phone",
                "this account is not paired with this workstation",
            )
        })?;
    let store = app.store();
    let escrowed = store
        .workstations()
        .recovery_pin(&auth.workstation.id, &user.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_recovery_pin",
                "no recovery PIN is set for this account on this workstation (a used PIN is \
                 replaced when the phone next opens its inbox)",
            )
        })?;
    let matches = bool::from(subtle::ConstantTimeEq::ct_eq(
        escrowed.expose().as_bytes(),
        request.pin.as_bytes(),
    ));
    let actor = format!("workstation:{}", auth.workstation.id);
    if !matches {
        app.pairing_limits().record_failure(&address, false);
        store
            .audit()
            .append(
                meta.stamp(
                    NewAuditEvent::new(actor, "workstation.recovery_pin.failed")
                        .target(format!("user:{}", user.id)),
                ),
            )
            .await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_recovery_pin",
            "the recovery PIN is wrong",
        ));
    }
    let mut tx = store.begin().await?;
    // Used once: gone before the answer, so a second use fails.
    if !tx
        .workstations()
        .delete_recovery_pin(&auth.workstation.id, &user.id)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_recovery_pin",
            "this recovery PIN was just used",
        ));
    }
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "workstation.recovery_pin.use")
                    .target(format!("user:{}", user.id)),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(Json(
        serde_json::json!({"v": 1, "upn": user.upn, "recovered": true}),
    ))
}
