//! Authentication methods: the methods list, `fido2Methods` (list, get, delete, creationOptions,
//! POST with the checks of §4.4) and the FIDO2 policy (§3.4, §5).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_webauthn::{
    AttestationType, PublicKeyCredentialJson, RegistrationExpectations, RelyingParty,
    UnsupportedFormats,
};
use serde_json::{Map, Value, json};
use time::Duration;
use uuid::Uuid;

use super::query::Options;
use super::{Caller, GraphError, GraphRequest, GraphResponse, Version, base, json_body, roles};
use crate::fido2::{self, CredentialFacts, SealedChallenge};
use crate::model::{Fido2Method, Fido2Policy, User, graph_time, method_id_for};
use crate::sim::Sim;

/// Id of the password method every user has.
const PASSWORD_METHOD_ID: &str = "28c10230-6103-485e-b985-444c60001490";
/// Most FIDO2 methods per user (Graph's documented "about 20").
const MAX_METHODS_PER_USER: usize = 20;

/// Checks roles for an authentication-method call; a user token acting on itself gets the
/// self-service 405 (§4.8), another user's 403.
fn require_methods(
    caller: &Caller,
    allowed: &[&str],
    target: Option<Uuid>,
) -> Result<(), GraphError> {
    if caller.is_user() {
        if target.is_some_and(|t| caller.claims.oid == t.to_string()) {
            return Err(GraphError::method_not_allowed());
        }
        return Err(GraphError::methods_denied());
    }
    if caller.has_any(allowed) {
        Ok(())
    } else {
        Err(GraphError::methods_denied())
    }
}

fn find_user<'a>(tenant: &'a crate::model::Tenant, uid: &str) -> Result<&'a User, GraphError> {
    tenant
        .find_user(uid)
        .ok_or_else(|| GraphError::not_found(uid))
}

/// A method as Graph returns it (§4.7).
pub(crate) fn method_json(method: &Fido2Method, version: Version) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(method.id));
    out.insert("displayName".into(), json!(method.display_name));
    out.insert(
        "createdDateTime".into(),
        json!(graph_time(method.created_date_time)),
    );
    out.insert("aaGuid".into(), json!(method.aa_guid));
    out.insert("model".into(), json!(method.model));
    out.insert(
        "attestationCertificates".into(),
        json!(method.attestation_certificates),
    );
    out.insert("attestationLevel".into(), json!(method.attestation_level));
    out.insert("passkeyType".into(), json!(method.passkey_type));
    if version == Version::Beta {
        out.insert(
            "lastUsedDateTime".into(),
            json!(method.last_used_date_time.map(graph_time)),
        );
    }
    out
}

/// `GET /users/{id}/authentication/methods`.
pub(crate) fn list_methods(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    uid: &str,
) -> Result<GraphResponse, GraphError> {
    let tenant = sim.read();
    let user = find_user(&tenant, uid)?;
    require_methods(caller, roles::METHODS_READ, Some(user.id))?;
    let mut value = vec![json!({
        "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
        "id": PASSWORD_METHOD_ID,
        "password": null,
        "createdDateTime": graph_time(user.created_date_time),
    })];
    for method in &user.fido2_methods {
        let mut item = method_json(method, req.version);
        item.insert(
            "@odata.type".into(),
            json!("#microsoft.graph.fido2AuthenticationMethod"),
        );
        value.push(Value::Object(item));
    }
    Ok(GraphResponse::ok(json!({
        "@odata.context": format!("{}/$metadata#users('{}')/authentication/methods", base(sim, req.version), user.id),
        "value": value,
    })))
}

/// `GET /users/{id}/authentication/fido2Methods`.
pub(crate) fn list_fido2(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    uid: &str,
) -> Result<GraphResponse, GraphError> {
    let tenant = sim.read();
    let user = find_user(&tenant, uid)?;
    require_methods(caller, roles::FIDO2_READ, Some(user.id))?;
    let value: Vec<Value> = user
        .fido2_methods
        .iter()
        .map(|m| Value::Object(method_json(m, req.version)))
        .collect();
    Ok(GraphResponse::ok(json!({
        "@odata.context": format!("{}/$metadata#users('{}')/authentication/fido2Methods", base(sim, req.version), user.id),
        "value": value,
    })))
}

/// `GET /users/{id}/authentication/fido2Methods/{methodId}`.
pub(crate) fn get_fido2(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    uid: &str,
    method_id: &str,
) -> Result<GraphResponse, GraphError> {
    let tenant = sim.read();
    let user = find_user(&tenant, uid)?;
    require_methods(caller, roles::FIDO2_READ, Some(user.id))?;
    let method = user
        .fido2_methods
        .iter()
        .find(|m| m.id == method_id)
        .ok_or_else(|| GraphError::not_found(method_id))?;
    let mut body = method_json(method, req.version);
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#users('{}')/authentication/fido2Methods/$entity",
            base(sim, req.version),
            user.id
        )),
    );
    Ok(GraphResponse::ok(Value::Object(body)))
}

/// `DELETE /users/{id}/authentication/fido2Methods/{methodId}`.
pub(crate) fn delete_fido2(
    sim: &Arc<Sim>,
    caller: &Caller,
    uid: &str,
    method_id: &str,
) -> Result<GraphResponse, GraphError> {
    let mut tenant = sim.write();
    let user_id = find_user(&tenant, uid)?.id;
    require_methods(caller, roles::FIDO2_WRITE, Some(user_id))?;
    let seq = tenant.next_seq();
    let user = tenant
        .users
        .get_mut(&user_id)
        .ok_or_else(|| GraphError::not_found(uid))?;
    let before = user.fido2_methods.len();
    user.fido2_methods.retain(|m| m.id != method_id);
    if user.fido2_methods.len() == before {
        return Err(GraphError::not_found(method_id));
    }
    user.change_seq = seq;
    drop(tenant);
    sim.changed();
    Ok(GraphResponse::no_content())
}

/// The 400 shape of FIDO2 registration failures (§4.8): `error.message` is itself JSON.
pub(crate) fn ceremony_error(sub_code: &str, message: &str) -> GraphError {
    let inner = json!({"odata.error": {
        "code": sub_code,
        "message": {"lang": "en", "value": message},
        "values": [{"item": "subCode", "value": sub_code}],
    }});
    GraphError::bad_request("badRequest", inner.to_string())
}

/// The lifetime of a creationOptions challenge from the URL form and version (§3.3).
fn challenge_minutes(version: Version, op: &str, options: &Options) -> Result<i64, GraphError> {
    let inside = op.strip_prefix("creationOptions").unwrap_or_default();
    let parameter = match inside {
        "" | "()" => None,
        other => {
            let Some(inner) = other
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.strip_prefix("challengeTimeoutInMinutes="))
            else {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    format!("Resource not found for the segment '{op}'."),
                ));
            };
            if version == Version::V1 {
                // [I] v1.0 declares no parameter for creationOptions.
                return Err(GraphError::bad_request(
                    "BadRequest",
                    "The parameter 'challengeTimeoutInMinutes' is not in scope: creationOptions takes no parameter in v1.0.",
                ));
            }
            Some(inner.to_owned())
        }
    };
    if version == Version::V1 {
        // v1.0: fixed 5 minutes; the query form is an unknown custom option, ignored [I].
        return Ok(5);
    }
    let given = parameter.or_else(|| options.other.get("challengetimeoutinminutes").cloned());
    match given {
        None => Ok(5),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if (5..=43_200).contains(&n) => Ok(n),
            // [I] wording; the 5–43200 range is documented.
            _ => Err(GraphError::bad_request(
                "BadRequest",
                format!(
                    "Invalid value '{text}' for challengeTimeoutInMinutes: it must be between 5 and 43200."
                ),
            )),
        },
    }
}

fn refusal(r: fido2::PolicyRefusal) -> GraphError {
    ceremony_error(r.sub_code, &r.message)
}

/// `GET /users/{id}/authentication/fido2Methods/creationOptions` in its four forms.
pub(crate) fn creation_options(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    uid: &str,
    op: &str,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    let minutes = challenge_minutes(req.version, op, options)?;
    let tenant = sim.read();
    let user = find_user(&tenant, uid)?;
    require_methods(caller, roles::FIDO2_WRITE, Some(user.id))?;
    if user.user_type.eq_ignore_ascii_case("Guest") {
        return Err(ceremony_error(
            "error_guest_user_not_supported",
            "Passkeys cannot be registered for guest users.",
        ));
    }
    fido2::user_in_scope(&tenant, user.id).map_err(refusal)?;
    if !tenant.policy.is_self_service_registration_allowed {
        return Err(ceremony_error(
            "error_self_service_registration_disabled",
            "Self-service setup of FIDO2 security keys is not allowed by the authentication methods policy.",
        ));
    }
    let expires = sim.now() + Duration::minutes(minutes);
    let challenge = fido2::seal_challenge(
        &tenant.challenge_key,
        &SealedChallenge {
            tenant_id: tenant.tenant_id,
            user_id: user.id,
            expires: expires.unix_timestamp(),
        },
    );
    let exclude: Vec<Value> = user
        .fido2_methods
        .iter()
        .map(|m| json!({"id": m.credential_id, "type": "public-key", "transports": ["usb", "nfc", "ble", "hybrid", "internal"]}))
        .collect();
    Ok(GraphResponse::ok(json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.webauthnCredentialCreationOptions", base(sim, req.version)),
        "challengeTimeoutDateTime": graph_time(expires),
        "publicKey": {
            "challenge": challenge,
            "timeout": 60000,
            "attestation": "direct",
            "rp": {"id": keybridge_webauthn::relying_party::ENTRA_RP_ID, "name": "Microsoft"},
            "user": {"id": user.webauthn_user_id, "name": user.user_principal_name, "displayName": user.display_name},
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
            "excludeCredentials": exclude,
            "authenticatorSelection": {"authenticatorAttachment": "cross-platform", "requireResidentKey": true, "userVerification": "required"},
            "extensions": {"hmacCreateSecret": true, "enforceCredentialProtectionPolicy": true, "credentialProtectionPolicy": "userVerificationOptional"},
        },
    })))
}

/// Accepts `clientDataJson` as well as `clientDataJSON`, and standard base64 as base64url.
fn normalise_credential(credential: &Value) -> Value {
    let mut c = credential.clone();
    if let Some(response) = c.get_mut("response").and_then(Value::as_object_mut)
        && !response.contains_key("clientDataJSON")
        && let Some(v) = response.remove("clientDataJson")
    {
        response.insert("clientDataJSON".into(), v);
    }
    c
}

/// `POST /users/{id}/authentication/fido2Methods` with the checks of §4.4, in order.
pub(crate) fn register_fido2(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    uid: &str,
) -> Result<GraphResponse, GraphError> {
    let now = sim.now();
    // 1. Token, roles, the user.
    let (user_id, tenant_id, challenge_key) = {
        let tenant = sim.read();
        let user = find_user(&tenant, uid)?;
        require_methods(caller, roles::FIDO2_WRITE, Some(user.id))?;
        if user.user_type.eq_ignore_ascii_case("Guest") {
            return Err(ceremony_error(
                "error_guest_user_not_supported",
                "Passkeys cannot be registered for guest users.",
            ));
        }
        // 2. Policy: enabled, targeted, self-service.
        fido2::user_in_scope(&tenant, user.id).map_err(refusal)?;
        if !tenant.policy.is_self_service_registration_allowed {
            return Err(ceremony_error(
                "error_self_service_registration_disabled",
                "Self-service setup of FIDO2 security keys is not allowed by the authentication methods policy.",
            ));
        }
        (user.id, tenant.tenant_id, tenant.challenge_key.clone())
    };
    let invalid = |message: String| ceremony_error("error_invalid_request", &message);
    let body = json_body(req)?;
    let Some(fields) = body.as_object() else {
        return Err(invalid("The body must be a JSON object.".to_owned()));
    };
    let display_name = match fields.get("displayName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if (1..=256).contains(&s.chars().count()) => Some(s.clone()),
        Some(_) => {
            return Err(invalid(
                "displayName must be 1 to 256 characters.".to_owned(),
            ));
        }
    };
    let credential = fields
        .get("publicKeyCredential")
        .filter(|v| v.is_object())
        .ok_or_else(|| invalid("The body has no publicKeyCredential object.".to_owned()))?;
    let credential_text = serde_json::to_vec(&normalise_credential(credential)).unwrap_or_default();
    let parsed = PublicKeyCredentialJson::from_json(&credential_text)
        .map_err(|e| ceremony_error(e.code(), &e.to_string()))?;
    let response = parsed
        .to_registration()
        .map_err(|e| ceremony_error(e.code(), &e.to_string()))?;

    // 3. The challenge: issued for this user and tenant, unexpired (and unused in strict mode).
    let client_data = keybridge_webauthn::CollectedClientData::parse(&response.client_data_json)
        .map_err(|e| ceremony_error("error_invalid_client_data", &e.to_string()))?;
    let challenge_bytes = keybridge_webauthn::base64url::decode_lenient(&client_data.challenge)
        .map_err(|_| {
            ceremony_error("error_invalid_challenge", "The challenge is not base64url.")
        })?;
    let sealed = fido2::open_challenge(&challenge_key, &challenge_bytes).ok_or_else(|| {
        ceremony_error(
            "error_invalid_challenge",
            "The challenge was not issued by this tenant.",
        )
    })?;
    if sealed.tenant_id != tenant_id || sealed.user_id != user_id {
        return Err(ceremony_error(
            "error_invalid_challenge",
            "The challenge was issued for another user; request creationOptions for this user.",
        ));
    }
    if sealed.expires < now.unix_timestamp() {
        return Err(ceremony_error(
            "error_invalid_challenge",
            "The challenge has expired (challengeTimeoutDateTime passed); request new creationOptions.",
        ));
    }
    if sim
        .strict_single_use
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let mut used = sim
            .used_challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        used.retain(|_, exp| *exp >= now.unix_timestamp());
        if used
            .insert(client_data.challenge.clone(), sealed.expires)
            .is_some()
        {
            return Err(ceremony_error(
                "error_invalid_challenge",
                "The challenge was already used.",
            ));
        }
    }

    // 4–5. WebAuthn verification: client data, authData, flags, key, attestation signature.
    let (attestation_wanted, has_metadata) = {
        let tenant = sim.read();
        let profiles = fido2::user_in_scope(&tenant, user_id).map_err(refusal)?;
        (
            fido2::attestation_wanted(&tenant.policy, &profiles),
            sim.metadata.is_some(),
        )
    };
    let origins = sim
        .registration_origins
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let relying_party = RelyingParty::new(keybridge_webauthn::relying_party::ENTRA_RP_ID, origins);
    let mut expectations = RegistrationExpectations::new(&relying_party, &challenge_bytes, now);
    expectations.unsupported_formats = if attestation_wanted {
        UnsupportedFormats::Refuse
    } else {
        UnsupportedFormats::AcceptUnverified
    };
    let verified = keybridge_webauthn::verify_registration(&response, &expectations)
        .map_err(|e| ceremony_error(e.code(), &e.to_string()))?;

    // 7. Attestation against the metadata, when loaded.
    let mut attested = false;
    let mut model = None;
    if let Some(metadata) = &sim.metadata {
        match keybridge_webauthn::policy::enforce_attestation(&verified, &metadata.blob, now) {
            Ok(entry) => {
                attested = true;
                model = entry.description().map(str::to_owned);
            }
            Err(e) if attestation_wanted => return Err(ceremony_error(e.code(), &e.to_string())),
            Err(_) => {}
        }
    } else if attestation_wanted && !has_metadata {
        return Err(ceremony_error(
            "error_attestation_required",
            "Attestation is enforced but entra-sim has no FIDO metadata loaded (start it with --mds-blob and --mds-root).",
        ));
    }
    let synced = verified.flags.backup_eligible();
    let aaguid = Uuid::from_bytes(*verified.aaguid.as_bytes()).to_string();
    let facts = CredentialFacts {
        aaguid: aaguid.clone(),
        synced,
        attested,
    };
    let attestation_certificates = match &verified.attestation {
        AttestationType::Basic(chain) if attested => chain.sha1_thumbprints.clone(),
        AttestationType::Basic(chain) => chain.sha1_thumbprints.clone(),
        _ => Vec::new(),
    };

    let mut tenant = sim.write();
    // 6. The same credential twice is refused (anywhere in the tenant [I]).
    let credential_id_text = URL_SAFE_NO_PAD.encode(&verified.credential_id);
    if tenant.users.values().any(|u| {
        u.fido2_methods
            .iter()
            .any(|m| m.credential_id == credential_id_text)
    }) {
        return Err(ceremony_error(
            "error_credential_already_exists",
            "This credential is already registered.",
        ));
    }
    let profiles = fido2::user_in_scope(&tenant, user_id).map_err(refusal)?;
    fido2::check_credential(&tenant.policy, &profiles, &facts, true).map_err(refusal)?;
    let seq = tenant.next_seq();
    let user = tenant
        .users
        .get_mut(&user_id)
        .ok_or_else(|| GraphError::not_found(uid))?;
    if user.fido2_methods.len() >= MAX_METHODS_PER_USER {
        // [I] subCode for the documented limit of about 20 passkeys per user.
        return Err(ceremony_error(
            "error_too_many_methods",
            "The user already has the maximum number of passkeys.",
        ));
    }
    // 8. Create the method.
    let method = Fido2Method {
        id: method_id_for(&verified.credential_id),
        credential_id: credential_id_text,
        display_name: display_name
            .or_else(|| model.clone())
            .unwrap_or_else(|| "Passkey".to_owned()),
        aa_guid: aaguid,
        model,
        attestation_certificates,
        attestation_level: if attested { "attested" } else { "notAttested" }.to_owned(),
        passkey_type: if synced { "synced" } else { "deviceBound" }.to_owned(),
        created_date_time: now,
        last_used_date_time: None,
        public_key_cose: Some(URL_SAFE_NO_PAD.encode(verified.public_key.cose_bytes())),
        sign_count: verified.sign_count,
        backup_eligible: synced,
    };
    let mut body = method_json(&method, req.version);
    user.fido2_methods.push(method);
    user.change_seq = seq;
    let user_id = user.id;
    drop(tenant);
    sim.changed();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#users('{user_id}')/authentication/fido2Methods/$entity",
            base(sim, req.version)
        )),
    );
    Ok(GraphResponse::json(
        StatusCode::CREATED,
        Value::Object(body),
    ))
}

/// The policy as Graph returns it (§5).
pub(crate) fn policy_json(sim: &Sim, version: Version, policy: &Fido2Policy) -> Value {
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#policies/authenticationMethodsPolicy/authenticationMethodConfigurations/$entity", base(sim, version)),
        "@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration",
        "id": "Fido2",
        "state": policy.state,
        "isSelfServiceRegistrationAllowed": policy.is_self_service_registration_allowed,
        "isAttestationEnforced": policy.is_attestation_enforced,
        "excludeTargets": policy.exclude_targets.iter().map(|t| json!({"id": t.id, "targetType": t.target_type})).collect::<Vec<_>>(),
        "keyRestrictions": policy.key_restrictions,
        "includeTargets@odata.context": format!("{}/$metadata#policies/authenticationMethodsPolicy/authenticationMethodConfigurations('Fido2')/microsoft.graph.fido2AuthenticationMethodConfiguration/includeTargets", base(sim, version)),
        "includeTargets": policy.include_targets,
    });
    if !policy.passkey_profiles.is_empty() {
        body["defaultPasskeyProfile"] = json!(policy.default_passkey_profile);
        body["passkeyProfiles"] = json!(policy.passkey_profiles);
    }
    body
}

/// Applies a PATCH body to the policy (only the fields sent; collections replaced \[I\]).
pub(crate) fn apply_policy_patch(
    policy: &mut Fido2Policy,
    patch: &Value,
) -> Result<(), GraphError> {
    let Some(fields) = patch.as_object() else {
        return Err(GraphError::bad_body("The body is not a JSON object."));
    };
    let mut updated = serde_json::to_value(&*policy).unwrap_or(Value::Null);
    for (key, value) in fields {
        match key.as_str() {
            "@odata.type" => {
                if value.as_str() != Some("#microsoft.graph.fido2AuthenticationMethodConfiguration")
                {
                    return Err(GraphError::bad_request(
                        "BadRequest",
                        "The @odata.type must be '#microsoft.graph.fido2AuthenticationMethodConfiguration'.",
                    ));
                }
            }
            "id" => {}
            "state"
            | "excludeTargets"
            | "includeTargets"
            | "isSelfServiceRegistrationAllowed"
            | "isAttestationEnforced"
            | "keyRestrictions"
            | "defaultPasskeyProfile"
            | "passkeyProfiles" => {
                updated[key] = value.clone();
            }
            other => {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    format!(
                        "Property '{other}' does not exist as a declared property or extension property."
                    ),
                ));
            }
        }
    }
    let mut next: Fido2Policy = serde_json::from_value(updated)
        .map_err(|e| GraphError::bad_request("BadRequest", format!("Invalid FIDO2 policy: {e}")))?;
    if !matches!(next.state.as_str(), "enabled" | "disabled") {
        return Err(GraphError::bad_request(
            "BadRequest",
            format!("Invalid value '{}' for property 'state'.", next.state),
        ));
    }
    if !matches!(
        next.key_restrictions.enforcement_type.as_str(),
        "allow" | "block"
    ) {
        return Err(GraphError::bad_request(
            "BadRequest",
            "keyRestrictions.enforcementType must be 'allow' or 'block'.",
        ));
    }
    if next.passkey_profiles.len() > 3 {
        return Err(GraphError::bad_request(
            "BadRequest",
            "At most 3 passkey profiles are allowed.",
        ));
    }
    for a in &next.key_restrictions.aa_guids {
        if Uuid::parse_str(a).is_err() {
            return Err(GraphError::bad_request(
                "BadRequest",
                format!("'{a}' is not a valid AAGUID."),
            ));
        }
    }
    if !next.passkey_profiles.is_empty() && next.default_passkey_profile.is_none() {
        next.default_passkey_profile = next.passkey_profiles.first().map(|p| p.id.clone());
    }
    *policy = next;
    Ok(())
}

/// `GET`/`PATCH`/`DELETE` on the FIDO2 method configuration.
pub(crate) fn fido2_policy(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
) -> Result<GraphResponse, GraphError> {
    let deny = || {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "accessDenied",
            "Request Authorization failed",
        )
    };
    match req.method {
        Method::GET => {
            if !caller.has_any(roles::POLICY_READ) {
                return Err(deny());
            }
            let policy = sim.read().policy.clone();
            Ok(GraphResponse::ok(policy_json(sim, req.version, &policy)))
        }
        Method::PATCH => {
            if !caller.has_any(roles::POLICY_WRITE) {
                return Err(deny());
            }
            let body = json_body(req)?;
            let mut tenant = sim.write();
            apply_policy_patch(&mut tenant.policy, &body)?;
            drop(tenant);
            sim.changed();
            Ok(GraphResponse::no_content())
        }
        Method::DELETE => {
            if !caller.has_any(roles::POLICY_WRITE) {
                return Err(deny());
            }
            sim.write().policy = Fido2Policy::default();
            sim.changed();
            Ok(GraphResponse::no_content())
        }
        _ => Err(GraphError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_options_forms() {
        let none = Options::default();
        assert_eq!(
            challenge_minutes(Version::V1, "creationOptions", &none).expect("plain"),
            5
        );
        assert_eq!(
            challenge_minutes(Version::V1, "creationOptions()", &none).expect("()"),
            5
        );
        assert!(
            challenge_minutes(
                Version::V1,
                "creationOptions(challengeTimeoutInMinutes=10)",
                &none
            )
            .is_err()
        );
        let mut q = Options::default();
        q.other
            .insert("challengetimeoutinminutes".into(), "60".into());
        assert_eq!(
            challenge_minutes(Version::V1, "creationOptions", &q).expect("ignored"),
            5
        );
        assert_eq!(
            challenge_minutes(Version::Beta, "creationOptions", &q).expect("query"),
            60
        );
        assert_eq!(
            challenge_minutes(
                Version::Beta,
                "creationOptions(challengeTimeoutInMinutes=43200)",
                &none
            )
            .expect("max"),
            43_200
        );
        assert!(
            challenge_minutes(
                Version::Beta,
                "creationOptions(challengeTimeoutInMinutes=4)",
                &none
            )
            .is_err()
        );
        assert!(
            challenge_minutes(
                Version::Beta,
                "creationOptions(challengeTimeoutInMinutes=43201)",
                &none
            )
            .is_err()
        );
        assert!(challenge_minutes(Version::Beta, "creationOptionsX", &none).is_err());
    }

    #[test]
    fn ceremony_errors_carry_json_in_the_message() {
        let e = ceremony_error("error_invalid_challenge", "expired");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "badRequest");
        let inner: Value = serde_json::from_str(&e.message).expect("json message");
        assert_eq!(
            inner["odata.error"]["values"][0]["value"],
            "error_invalid_challenge"
        );
    }

    #[test]
    fn policy_patch_replaces_only_what_is_sent() {
        let mut p = Fido2Policy::default();
        apply_policy_patch(
            &mut p,
            &json!({"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "isAttestationEnforced": true}),
        )
        .expect("patch");
        assert!(p.is_attestation_enforced);
        assert!(p.is_self_service_registration_allowed);
        assert!(apply_policy_patch(&mut p, &json!({"state": "maybe"})).is_err());
        assert!(apply_policy_patch(&mut p, &json!({"bogus": 1})).is_err());
        assert!(p.is_attestation_enforced, "a refused patch changes nothing");
    }
}
