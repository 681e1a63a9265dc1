//! The phone's side of workstation pairing: `POST /device/v1/workstations` (pair the
//! workstation whose code the phone scanned or typed), `DELETE /device/v1/workstations/{id}`
//! (unpair it), and `POST /device/v1/workstations/{id}/recovery-pin` (escrow the account's
//! recovery PIN for it).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keybridge_device_protocol::{
    IdentityPublicKey, PairWorkstation, PairedWorkstation, PairingKey, PairingReference,
    ProtocolVersion, RecoveryPinEscrow, WorkstationOfPhone, WorkstationsOfPhone,
};
use keybridge_store::{
    NewAuditEvent, PairingKind, PairingSession, SecretString, StoreError, Timestamp, Workstation,
    WorkstationStatus,
};

use crate::app::App;
use crate::auth::RequestMeta;
use crate::device_v1::auth::DeviceAuth;
use crate::device_v1::pairing::MAX_FAILED_ENROLMENTS;
use crate::error::{ApiError, ApiResult};

fn pairing_not_found() -> ApiError {
    ApiError::not_found(
        "no live workstation pairing matches: the code expired (it lasts 60 s), was used, or was \
         typed wrong; run `keybridge workstation pair` again",
    )
    .with_code("pairing_not_found")
}

fn too_many(seconds: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed pairing attempts: wait {seconds} s, then try again"),
    )
}

async fn find_session(
    app: &App,
    reference: &PairingReference,
    now: Timestamp,
) -> ApiResult<(PairingSession, PairingKey)> {
    let store = app.store();
    let session = match reference {
        PairingReference::Id(id) => match store
            .pairing_sessions()
            .get(&id.hyphenated().to_string())
            .await
        {
            Ok(session) => session,
            Err(e) if e.is_not_found() => return Err(pairing_not_found()),
            Err(e) => return Err(e.into()),
        },
        PairingReference::Code(code) => store
            .pairing_sessions()
            .find_live_by_code(code.as_str(), now)
            .await?
            .ok_or_else(pairing_not_found)?,
    };
    if session.kind != PairingKind::Workstation
        || session.expires_at <= now
        || session.completed_at.is_some()
        || session.failed_attempts >= MAX_FAILED_ENROLMENTS
    {
        return Err(pairing_not_found());
    }
    let key = match reference {
        PairingReference::Code(code) => code.proof_key(),
        PairingReference::Id(_) => {
            let stored = store.pairing_sessions().proof_key(&session.id).await?;
            PairingKey::from_base64url(&stored).ok_or_else(|| {
                ApiError::internal(format!(
                    "pairing session {} has an unreadable key",
                    session.id
                ))
            })?
        }
    };
    Ok((session, key))
}

/// `POST /device/v1/workstations`: the phone (the signing pairing, i.e. one account) pairs the
/// workstation. Single use, 60 s, proof of the code, same integration.
pub async fn pair(
    State(app): State<App>,
    meta: RequestMeta,
    auth: DeviceAuth,
) -> ApiResult<(StatusCode, Json<PairedWorkstation>)> {
    let request: PairWorkstation = serde_json::from_slice(&auth.body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("the pairing request cannot be read: {e}"),
        )
    })?;
    let address = meta.source_addr.clone().unwrap_or_default();
    let by_code = matches!(request.pairing, PairingReference::Code(_));
    if let Some(seconds) = app.pairing_limits().retry_after(&address, by_code) {
        return Err(too_many(seconds));
    }
    let now = Timestamp::now();
    let (session, key) = match find_session(&app, &request.pairing, now).await {
        Ok(found) => found,
        Err(error) => {
            app.pairing_limits().record_failure(&address, by_code);
            return Err(error);
        }
    };
    let device_id = uuid::Uuid::try_parse(&auth.phone.id)
        .map_err(|_| ApiError::internal("a phone id is not a UUID"))?;
    if !request.verify(&key, device_id) {
        app.store()
            .pairing_sessions()
            .record_failed_attempt(&session.id)
            .await?;
        app.pairing_limits().record_failure(&address, by_code);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_pairing_proof",
            "the pairing proof does not match the workstation's code: scan the code again",
        ));
    }
    let store = app.store();
    let workstation_id = session
        .workstation_id
        .clone()
        .ok_or_else(|| ApiError::internal("a workstation pairing session names no workstation"))?;
    let workstation = store.workstations().get(&workstation_id).await?;
    if workstation.status == WorkstationStatus::Revoked {
        return Err(pairing_not_found());
    }
    let user = store.users().get(&auth.phone.user_id).await?;
    if user.integration_id != workstation.integration_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_integration",
            format!(
                "this workstation belongs to another organisation than {}: pair it with the \
                 account of that organisation",
                user.upn
            ),
        ));
    }
    // Further accounts of the same phone, each proven with its own device key.
    let mut phones = vec![auth.phone.clone()];
    for proof in &request.accounts {
        let refused = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_account_proof",
                format!(
                    "the proof for account {} does not verify: pair again",
                    proof.device_id
                ),
            )
        };
        let phone = match store
            .phones()
            .get(&proof.device_id.hyphenated().to_string())
            .await
        {
            Ok(phone) => phone,
            Err(e) if e.is_not_found() => return Err(refused()),
            Err(e) => return Err(e.into()),
        };
        let key = IdentityPublicKey::parse(&phone.device_key).map_err(|_| refused())?;
        if !proof.verify(&request.pairing, &key) {
            return Err(refused());
        }
        let other = store.users().get(&phone.user_id).await?;
        if other.integration_id != workstation.integration_id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_integration",
                format!(
                    "{} belongs to another organisation than this workstation: leave it out",
                    other.upn
                ),
            ));
        }
        if !phones.iter().any(|p| p.id == phone.id) {
            phones.push(phone);
        }
    }
    let mut tx = store.begin().await?;
    match tx
        .pairing_sessions()
        .complete_verified(&session.id, &auth.phone.id, MAX_FAILED_ENROLMENTS, now)
        .await
    {
        Ok(_) => {}
        Err(StoreError::TokenRejected { .. }) => return Err(pairing_not_found()),
        Err(e) => return Err(e.into()),
    }
    // A new pairing replaces the previous one.
    tx.workstations().clear_phones(&workstation.id, now).await?;
    for phone in &phones {
        tx.workstations()
            .add_phone(&workstation.id, &phone.id, now)
            .await?;
    }
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(format!("phone:{}", auth.phone.id), "workstation.pair")
                    .target(format!("workstation:{}", workstation.id))
                    .details(serde_json::json!({
                        "user_id": user.id,
                        "phone_ids": phones.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
                        "computer_name": workstation.name,
                        "by": if by_code { "code" } else { "qr" },
                    })),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(PairedWorkstation {
            v: ProtocolVersion,
            workstation_id: uuid::Uuid::try_parse(&workstation.id)
                .map_err(|_| ApiError::internal("a workstation id is not a UUID"))?,
            workstation_key: IdentityPublicKey::parse(&workstation.public_key)
                .map_err(|e| ApiError::internal(format!("a workstation key is unreadable: {e}")))?,
            computer_name: workstation.name,
        }),
    ))
}

/// The workstation `id`, when it is paired with the signing phone pairing.
async fn own_workstation(app: &App, auth: &DeviceAuth, id: &str) -> ApiResult<Workstation> {
    let not_found =
        || ApiError::not_found(format!("no workstation {id} is paired with this phone"));
    let workstation = match app.store().workstations().get(id).await {
        Ok(workstation) => workstation,
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let phones = app.store().workstations().phones(&workstation.id).await?;
    if phones.contains(&auth.phone.id) {
        Ok(workstation)
    } else {
        Err(not_found())
    }
}

/// `DELETE /device/v1/workstations/{id}`: the phone unpairs the workstation.
pub async fn unpair(
    State(app): State<App>,
    Path(id): Path<String>,
    meta: RequestMeta,
    auth: DeviceAuth,
) -> ApiResult<StatusCode> {
    let workstation = own_workstation(&app, &auth, &id).await?;
    let mut tx = app.store().begin().await?;
    tx.workstations()
        .clear_phones(&workstation.id, Timestamp::now())
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(format!("phone:{}", auth.phone.id), "workstation.unpair")
                    .target(format!("workstation:{}", workstation.id))
                    .details(serde_json::json!({"by": "phone"})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The shortest and longest recovery PIN.
pub const RECOVERY_PIN_DIGITS: std::ops::RangeInclusive<usize> = 8..=12;

/// `POST /device/v1/workstations/{id}/recovery-pin`: the phone escrows a new recovery PIN for
/// its account on the workstation (sealed at rest; the old one stops working).
pub async fn escrow_recovery_pin(
    State(app): State<App>,
    Path(id): Path<String>,
    meta: RequestMeta,
    auth: DeviceAuth,
) -> ApiResult<StatusCode> {
    let escrow: RecoveryPinEscrow = serde_json::from_slice(&auth.body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("the recovery PIN request cannot be read: {e}"),
        )
    })?;
    if !RECOVERY_PIN_DIGITS.contains(&escrow.pin.len())
        || !escrow.pin.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::invalid(
            "pin",
            format!(
                "a recovery PIN has {} to {} digits",
                RECOVERY_PIN_DIGITS.start(),
                RECOVERY_PIN_DIGITS.end()
            ),
        ));
    }
    let workstation = own_workstation(&app, &auth, &id).await?;
    let mut tx = app.store().begin().await?;
    tx.workstations()
        .set_recovery_pin(
            &workstation.id,
            &auth.phone.user_id,
            &SecretString::new(escrow.pin),
        )
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(
                    format!("phone:{}", auth.phone.id),
                    "workstation.recovery_pin.escrow",
                )
                .target(format!("workstation:{}", workstation.id))
                .details(serde_json::json!({"user_id": auth.phone.user_id})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /device/v1/workstations`: the workstations paired with the signing phone account, and
/// whether its recovery PIN for each is still escrowed (it is gone once used).
pub async fn list(
    State(app): State<App>,
    auth: DeviceAuth,
) -> ApiResult<Json<WorkstationsOfPhone>> {
    let store = app.store();
    let mut workstations = Vec::new();
    for workstation in store.workstations().list_for_phone(&auth.phone.id).await? {
        if workstation.status == WorkstationStatus::Revoked
            || !store
                .workstations()
                .phones(&workstation.id)
                .await?
                .contains(&auth.phone.id)
        {
            continue;
        }
        let escrowed = store
            .workstations()
            .recovery_pin(&workstation.id, &auth.phone.user_id)
            .await?
            .is_some();
        workstations.push(WorkstationOfPhone {
            workstation_id: uuid::Uuid::try_parse(&workstation.id)
                .map_err(|_| ApiError::internal("a workstation id is not a UUID"))?,
            computer_name: workstation.name,
            recovery_pin_escrowed: escrowed,
        });
    }
    Ok(Json(WorkstationsOfPhone {
        v: ProtocolVersion,
        workstations,
    }))
}
