//! The sign-in ceremony stand-in (§7). Entra's FIDO sign-in has no public API, so these
//! endpoints are entra-sim's own (documented in docs/entra-sim.md); the relying-party rules
//! they apply are Entra's: challenge `"O." + JWT` valid 300 s, rp `login.microsoft.com`, UV,
//! signature, counter must grow (AADSTS135017), policy re-checked.
//!
//! - `POST /{tenant}/fido/signin/start` `{"user": "<upn or id>"}` (or `{}` for usernameless)
//! - `POST /{tenant}/fido/signin/finish` `{"credential": <PublicKeyCredential JSON>}`

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_webauthn::{
    AssertionError, AssertionExpectations, CredentialPublicKey, PublicKeyCredentialJson,
    RelyingParty, StoredCredential,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::fido2::{self, CredentialFacts};
use crate::identity::{Aadsts, AccessClaims};
use crate::model::{SignInRecord, graph_time};
use crate::sim::Sim;

/// Challenge lifetime (§0).
const CHALLENGE_SECS: i64 = 300;
/// Origins a sign-in may come from (§0).
const SIGN_IN_ORIGINS: [&str; 3] = [
    "https://login.microsoftonline.com",
    "https://login.live.com",
    "https://login.microsoft.com",
];

/// `GET /.well-known/webauthn`: the related origins of `login.microsoft.com` (§7).
pub(crate) async fn related_origins() -> Response {
    axum::Json(json!({"origins": ["https://login.live.com", "https://login.microsoftonline.com"]}))
        .into_response()
}

/// A sign-in that was started and not yet expired.
#[derive(Debug, Clone)]
pub(crate) struct PendingSignIn {
    pub user_id: Option<Uuid>,
    pub expires: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChallengeClaims {
    aud: String,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

fn error(status: StatusCode, error: &'static str, code: u32, text: impl Into<String>) -> Aadsts {
    Aadsts {
        status,
        error,
        code,
        text: text.into(),
    }
}

/// `POST /{tenant}/fido/signin/start`.
pub(crate) async fn start(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    format!("The body must be JSON like {{\"user\": \"<UPN or id>\"}}: {e}"),
                )
                .into_response_with(None);
            }
        }
    };
    let t = sim.read();
    if !t.is_tenant(&tenant) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            format!("Tenant '{tenant}' not found."),
        )
        .into_response_with(None);
    }
    let user = match request.get("user").and_then(Value::as_str) {
        None => None,
        Some(name) => match t.find_user(name) {
            Some(u) => Some(u),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50034,
                    format!("The user account {name} does not exist in the {tenant} directory."),
                )
                .into_response_with(None);
            }
        },
    };
    let now = sim.now().unix_timestamp();
    let claims = ChallengeClaims {
        aud: "urn:microsoft:fido:challenge".to_owned(),
        iss: "https://login.microsoft.com".to_owned(),
        iat: now,
        nbf: now,
        exp: now + CHALLENGE_SECS,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(sim.signing.kid.clone());
    let Ok(jwt) = jsonwebtoken::encode(&header, &claims, &sim.signing.encoding) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            50000,
            "Cannot sign the challenge.",
        )
        .into_response_with(None);
    };
    let challenge = URL_SAFE_NO_PAD.encode(format!("O.{jwt}"));
    let mut pending = sim
        .sign_in_challenges
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Expired challenges are of no use any more; dropping them bounds the map.
    pending.retain(|_, p| p.expires >= now);
    pending.insert(
        challenge.clone(),
        PendingSignIn {
            user_id: user.map(|u| u.id),
            expires: now + CHALLENGE_SECS,
        },
    );
    drop(pending);
    let allow: Vec<Value> = user
        .map(|u| {
            u.fido2_methods
                .iter()
                .filter(|m| m.public_key_cose.is_some())
                .map(|m| json!({"type": "public-key", "id": m.credential_id}))
                .collect()
        })
        .unwrap_or_default();
    axum::Json(json!({
        "challenge": challenge,
        "timeout": CHALLENGE_SECS * 1000,
        "rpId": keybridge_webauthn::relying_party::ENTRA_RP_ID,
        "allowCredentials": allow,
        "userVerification": "required",
        "expiresDateTime": graph_time(OffsetDateTime::from_unix_timestamp(now + CHALLENGE_SECS).unwrap_or(OffsetDateTime::now_utc())),
    }))
    .into_response()
}

fn record(sim: &Sim, record: SignInRecord) {
    let mut t = sim.write();
    t.sign_ins.push(record);
    // Keep the log bounded.
    let excess = t.sign_ins.len().saturating_sub(10_000);
    if excess > 0 {
        t.sign_ins.drain(..excess);
    }
    drop(t);
    sim.changed();
}

/// `POST /{tenant}/fido/signin/finish`.
pub(crate) async fn finish(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let correlation = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match finish_inner(&sim, &tenant, &body) {
        Ok(r) => r,
        Err(e) => e.into_response_with(correlation.as_deref()),
    }
}

fn finish_inner(sim: &Sim, tenant: &str, body: &[u8]) -> Result<Response, Aadsts> {
    let now = sim.now();
    if !sim.read().is_tenant(tenant) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            format!("Tenant '{tenant}' not found."),
        ));
    }
    let bad = |text: String| error(StatusCode::BAD_REQUEST, "invalid_request", 135011, text);
    let request: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("The body is not JSON: {e}")))?;
    let credential = request
        .get("credential")
        .ok_or_else(|| bad("The body has no 'credential'.".to_owned()))?;
    let text = serde_json::to_vec(credential).unwrap_or_default();
    let assertion = PublicKeyCredentialJson::from_json(&text)
        .and_then(|c| c.to_assertion())
        .map_err(|e| bad(format!("The credential is malformed: {e}")))?;

    // The challenge: one this emulator issued, unexpired.
    let client_data = keybridge_webauthn::CollectedClientData::parse(&assertion.client_data_json)
        .map_err(|e| bad(e.to_string()))?;
    let invalid_challenge = || {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            135018,
            "Invalid challenge received from fido assertion.",
        )
    };
    let pending = sim
        .sign_in_challenges
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&client_data.challenge)
        .cloned()
        .ok_or_else(invalid_challenge)?;
    if pending.expires < now.unix_timestamp() {
        return Err(invalid_challenge());
    }
    let challenge_bytes = URL_SAFE_NO_PAD
        .decode(&client_data.challenge)
        .map_err(|_| invalid_challenge())?;

    // 1. The credential is known and belongs to the user being signed in.
    let credential_id_text = URL_SAFE_NO_PAD.encode(&assertion.credential_id);
    let (user_id, upn, method, registered_user_handle) = {
        let t = sim.read();
        let found = t.users.values().find_map(|u| {
            u.fido2_methods
                .iter()
                .find(|m| m.credential_id == credential_id_text)
                .map(|m| {
                    (
                        u.id,
                        u.user_principal_name.clone(),
                        m.clone(),
                        u.account_enabled && u.deleted_date_time.is_none(),
                        u.webauthn_user_id.clone(),
                    )
                })
        });
        let Some((user_id, upn, method, active, registered_user_handle)) = found else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                135010,
                "The FIDO credential is not registered for any user of this tenant.",
            ));
        };
        if pending.user_id.is_some_and(|u| u != user_id) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                135010,
                "The FIDO credential does not belong to the user signing in.",
            ));
        }
        if !active {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50057,
                "The user account is disabled.",
            ));
        }
        (user_id, upn, method, registered_user_handle)
    };
    // Credentials are registered with the owner's `user.id` (creation options); a returned
    // userHandle must name that same user.
    let registered_user_handle =
        keybridge_webauthn::base64url::decode_lenient(&registered_user_handle).map_err(|e| {
            bad(format!(
                "The stored WebAuthn user id of this user is unreadable: {e}"
            ))
        })?;
    let key_bytes = method
        .public_key_cose
        .as_deref()
        .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
        .ok_or_else(|| {
            bad("This method was seeded without a public key and cannot sign in.".to_owned())
        })?;
    let public_key = CredentialPublicKey::from_cose(&key_bytes)
        .map_err(|e| bad(format!("The stored key is unreadable: {e}")))?;
    let relying_party = RelyingParty::new(
        keybridge_webauthn::relying_party::ENTRA_RP_ID,
        SIGN_IN_ORIGINS,
    );
    let stored = StoredCredential {
        credential_id: &assertion.credential_id,
        public_key: &public_key,
        sign_count: method.sign_count,
        backup_eligible: method.backup_eligible,
        user_handle: Some(&registered_user_handle),
    };
    let expectations = AssertionExpectations {
        relying_party: &relying_party,
        challenge: &challenge_bytes,
        require_user_verification: true,
    };
    let base_record =
        |status: &str, code: Option<u32>, reason: Option<String>, clone: bool, count: u32| {
            SignInRecord {
                id: Uuid::new_v4(),
                user_id,
                user_principal_name: upn.clone(),
                method_id: Some(method.id.clone()),
                aa_guid: Some(method.aa_guid.clone()),
                created_date_time: now,
                status: status.to_owned(),
                error_code: code,
                failure_reason: reason,
                possible_clone: clone,
                sign_count: count,
            }
        };
    let verified = match keybridge_webauthn::verify_assertion(&assertion, &stored, &expectations) {
        Ok(v) => v,
        Err(AssertionError::PossibleClone { stored, received }) => {
            record(
                sim,
                base_record(
                    "failure",
                    Some(135017),
                    Some(format!("counter {received} not above {stored}")),
                    true,
                    received,
                ),
            );
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                135017,
                "Unexpected Signature Counter received from authenticator.",
            ));
        }
        Err(AssertionError::ChallengeMismatch) => return Err(invalid_challenge()),
        Err(e) => {
            record(
                sim,
                base_record("failure", Some(135011), Some(e.to_string()), false, 0),
            );
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                135011,
                format!("The FIDO assertion was refused: {e} ({})", e.code()),
            ));
        }
    };

    // 6. Policy again (no attestation at sign-in).
    {
        let t = sim.read();
        let facts = CredentialFacts {
            aaguid: method.aa_guid.clone(),
            synced: method.passkey_type == "synced",
            attested: method.attestation_level == "attested",
        };
        let outcome = fido2::user_in_scope(&t, user_id)
            .and_then(|profiles| fido2::check_credential(&t.policy, &profiles, &facts, false));
        drop(t);
        if let Err(refusal) = outcome {
            record(
                sim,
                base_record(
                    "failure",
                    Some(135011),
                    Some(refusal.message.clone()),
                    false,
                    verified.sign_count,
                ),
            );
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                135011,
                format!("{} ({})", refusal.message, refusal.sub_code),
            ));
        }
    }

    // Store the counter and last use, log the sign-in, hand out a user token.
    {
        let mut t = sim.write();
        if let Some(user) = t.users.get_mut(&user_id)
            && let Some(m) = user.fido2_methods.iter_mut().find(|m| m.id == method.id)
        {
            m.sign_count = verified.sign_count;
            m.last_used_date_time = Some(now);
        }
    }
    record(
        sim,
        base_record("success", None, None, false, verified.sign_count),
    );
    let (tid, client_id) = {
        let t = sim.read();
        (t.tenant_id, t.app.client_id)
    };
    let claims = AccessClaims {
        aud: "https://graph.microsoft.com".to_owned(),
        iss: format!("https://sts.windows.net/{tid}/"),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: now.unix_timestamp() + sim.token_lifetime_secs,
        tid: tid.to_string(),
        appid: Some(client_id.to_string()),
        appidacr: Some("0".to_owned()),
        app_displayname: None,
        oid: user_id.to_string(),
        sub: user_id.to_string(),
        idtyp: "user".to_owned(),
        ver: "1.0".to_owned(),
        uti: URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes()),
        roles: None,
        scp: Some("openid profile email".to_owned()),
        upn: Some(upn.clone()),
        amr: Some(vec!["fido".to_owned(), "mfa".to_owned()]),
    };
    let token = crate::identity::sign(sim, &claims).unwrap_or_default();
    Ok(axum::Json(json!({
        "status": "success",
        "userId": user_id,
        "userPrincipalName": upn,
        "methodId": method.id,
        "signCount": verified.sign_count,
        "token_type": "Bearer",
        "expires_in": sim.token_lifetime_secs,
        "access_token": token,
    }))
    .into_response())
}
