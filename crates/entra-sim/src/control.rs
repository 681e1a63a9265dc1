//! The control API under `/_control`, guarded by the control token: what an Entra admin would
//! do in the portal (users, their methods, granted permissions, the FIDO2 policy) and what a
//! test needs (faults, latency, throttling, counters, sign-in log). Documented in
//! docs/entra-sim.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::graph::Version;
use crate::graph::methods::{apply_policy_patch, method_json, policy_json};
use crate::model::{ClientSecret, graph_time};
use crate::sim::{FaultRule, Sim, ThrottleMode};

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "message": message.into()}})),
    )
        .into_response()
}

async fn guard(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = sim.read().control_token.clone();
    let ok: bool = subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), expected.as_bytes()).into();
    if !ok {
        return problem(
            StatusCode::UNAUTHORIZED,
            "The control API needs 'Authorization: Bearer <control_token>' (control_token is in the start JSON).",
        );
    }
    next.run(request).await
}

/// The control routes, with the token guard.
pub(crate) fn router(sim: Arc<Sim>) -> Router<Arc<Sim>> {
    Router::new()
        .route("/_control/state", get(state))
        .route("/_control/roles", get(get_roles).put(put_roles))
        .route("/_control/users", post(add_user))
        .route(
            "/_control/users/{id}",
            get(get_user).patch(patch_user).delete(delete_user),
        )
        .route("/_control/users/{id}/restore", post(restore_user))
        .route("/_control/users/{id}/fido2Methods", post(add_method))
        .route(
            "/_control/users/{id}/fido2Methods/{method}",
            delete(delete_method),
        )
        .route("/_control/app/secrets", post(add_secret))
        .route(
            "/_control/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/_control/latency", put(put_latency))
        .route("/_control/throttle", get(get_throttle).put(put_throttle))
        .route(
            "/_control/counters",
            get(get_counters).delete(reset_counters),
        )
        .route("/_control/policy", get(get_policy).patch(patch_policy))
        .route("/_control/challenges", put(put_challenges))
        .route("/_control/sign-ins", get(sign_ins))
        .route("/_control/clock", get(get_clock).put(put_clock))
        .route("/_control/origins", get(get_origins).put(put_origins))
        .route("/_control/replication", put(put_replication))
        .route_layer(middleware::from_fn_with_state(sim, guard))
}

// The error is a ready response; it is built once per bad request, so its size does not matter.
#[allow(clippy::result_large_err)]
fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn state(State(sim): State<Arc<Sim>>) -> Response {
    let t = sim.read();
    let throttle = sim
        .traffic
        .throttle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .mode;
    axum::Json(json!({
        "tenantId": t.tenant_id,
        "users": t.users.values().filter(|u| u.deleted_date_time.is_none()).count(),
        "deletedUsers": t.users.values().filter(|u| u.deleted_date_time.is_some()).count(),
        "groups": t.groups.len(),
        "grantedRoles": t.app.granted_roles,
        "throttle": throttle,
        "latencyMs": sim.traffic.latency_ms.load(Ordering::Relaxed),
        "metadataLoaded": sim.metadata.is_some(),
    }))
    .into_response()
}

async fn get_roles(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(json!({"roles": sim.read().app.granted_roles})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    roles: Vec<String>,
}

async fn put_roles(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let roles: Roles = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    sim.write().app.granted_roles = roles.roles.clone();
    sim.changed();
    axum::Json(json!({"roles": roles.roles})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUser {
    #[serde(default)]
    id: Option<Uuid>,
    user_principal_name: String,
    display_name: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    user_type: Option<String>,
}

fn control_user_json(user: &crate::model::User) -> Value {
    let mut v = crate::graph::directory::user_json(user, None, Version::Beta);
    v.insert("accountEnabled".into(), json!(user.account_enabled));
    v.insert(
        "fido2Methods".into(),
        json!(
            user.fido2_methods
                .iter()
                .map(|m| Value::Object(method_json(m, Version::Beta)))
                .collect::<Vec<_>>()
        ),
    );
    Value::Object(v)
}

async fn add_user(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let new: NewUser = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut t = sim.write();
    if t.upn_index
        .contains_key(&new.user_principal_name.to_lowercase())
    {
        return problem(
            StatusCode::CONFLICT,
            format!("a user with UPN {} exists", new.user_principal_name),
        );
    }
    let id = new.id.unwrap_or_else(Uuid::new_v4);
    if t.users.contains_key(&id) {
        return problem(StatusCode::CONFLICT, format!("a user with id {id} exists"));
    }
    let mut handle = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut handle);
    let mut user = crate::seed::new_user(
        id,
        &new.user_principal_name,
        &new.display_name,
        OffsetDateTime::now_utc(),
        &handle,
    );
    user.mail = new.mail;
    user.account_enabled = new.account_enabled.unwrap_or(true);
    user.user_type = new.user_type.unwrap_or_else(|| "Member".to_owned());
    user.change_seq = t.next_seq();
    let json = control_user_json(&user);
    t.upn_index
        .insert(user.user_principal_name.to_lowercase(), id);
    t.users.insert(id, user);
    drop(t);
    sim.changed();
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

fn resolve(t: &crate::model::Tenant, key: &str) -> Option<Uuid> {
    match Uuid::parse_str(key) {
        Ok(id) if t.users.contains_key(&id) => Some(id),
        Ok(_) => None,
        Err(_) => t.upn_index.get(&key.to_lowercase()).copied(),
    }
}

async fn get_user(State(sim): State<Arc<Sim>>, Path(key): Path<String>) -> Response {
    let t = sim.read();
    match resolve(&t, &key).and_then(|id| t.users.get(&id)) {
        Some(u) => {
            let mut v = control_user_json(u);
            v["deletedDateTime"] = json!(u.deleted_date_time.map(graph_time));
            axum::Json(v).into_response()
        }
        None => problem(StatusCode::NOT_FOUND, format!("no user {key}")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserPatch {
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    mail: Option<Option<String>>,
    #[serde(default)]
    user_type: Option<String>,
}

async fn patch_user(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let patch: UserPatch = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut t = sim.write();
    let Some(id) = resolve(&t, &key) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    if let Some(upn) = &patch.user_principal_name
        && t.upn_index
            .get(&upn.to_lowercase())
            .is_some_and(|other| *other != id)
    {
        return problem(
            StatusCode::CONFLICT,
            format!("a user with UPN {upn} exists"),
        );
    }
    let seq = t.next_seq();
    let Some(user) = t.users.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    let old_upn = user.user_principal_name.to_lowercase();
    if let Some(v) = patch.account_enabled {
        user.account_enabled = v;
    }
    if let Some(v) = patch.display_name {
        user.display_name = v;
    }
    if let Some(v) = patch.user_principal_name {
        user.user_principal_name = v;
    }
    if let Some(v) = patch.mail {
        user.mail = v;
    }
    if let Some(v) = patch.user_type {
        user.user_type = v;
    }
    user.change_seq = seq;
    let json = control_user_json(user);
    let new_upn = user.user_principal_name.to_lowercase();
    t.upn_index.remove(&old_upn);
    t.upn_index.insert(new_upn, id);
    drop(t);
    sim.changed();
    axum::Json(json).into_response()
}

async fn delete_user(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let permanent = query.get("permanent").is_some_and(|v| v == "true");
    let mut t = sim.write();
    let Some(id) = resolve(&t, &key) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    let seq = t.next_seq();
    for group in t.groups.values_mut() {
        group.members.remove(&id);
    }
    if permanent {
        if let Some(user) = t.users.remove(&id) {
            t.upn_index.remove(&user.user_principal_name.to_lowercase());
        }
        t.tombstones.insert(id, seq);
    } else if let Some(user) = t.users.get_mut(&id) {
        user.deleted_date_time = Some(OffsetDateTime::now_utc());
        user.change_seq = seq;
    }
    drop(t);
    sim.changed();
    StatusCode::NO_CONTENT.into_response()
}

async fn restore_user(State(sim): State<Arc<Sim>>, Path(key): Path<String>) -> Response {
    let mut t = sim.write();
    let Some(id) = resolve(&t, &key) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    let seq = t.next_seq();
    let Some(user) = t.users.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    if user.deleted_date_time.is_none() {
        return problem(StatusCode::CONFLICT, format!("user {key} is not deleted"));
    }
    user.deleted_date_time = None;
    user.change_seq = seq;
    drop(t);
    sim.changed();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewMethod {
    aa_guid: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    passkey_type: Option<String>,
    /// Credential id, base64url; random when absent.
    #[serde(default)]
    credential_id: Option<String>,
}

async fn add_method(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let new: NewMethod = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if Uuid::parse_str(&new.aa_guid).is_err() {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("aaGuid '{}' is not a GUID", new.aa_guid),
        );
    }
    let credential = match new.credential_id.as_deref() {
        Some(text) => match keybridge_webauthn::base64url::decode_lenient(text) {
            Ok(bytes) if !bytes.is_empty() => bytes,
            _ => return problem(StatusCode::BAD_REQUEST, "credentialId is not base64url"),
        },
        None => {
            let mut bytes = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut bytes);
            bytes
        }
    };
    let mut t = sim.write();
    let Some(id) = resolve(&t, &key) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    let seq = t.next_seq();
    let Some(user) = t.users.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    let method = crate::seed::vendor_method(
        &credential,
        &new.aa_guid,
        new.model,
        new.display_name,
        new.passkey_type,
        OffsetDateTime::now_utc(),
    );
    let json = Value::Object(method_json(&method, Version::Beta));
    user.fido2_methods.push(method);
    user.change_seq = seq;
    drop(t);
    sim.changed();
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

async fn delete_method(
    State(sim): State<Arc<Sim>>,
    Path((key, method)): Path<(String, String)>,
) -> Response {
    let mut t = sim.write();
    let Some(id) = resolve(&t, &key) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    let seq = t.next_seq();
    let Some(user) = t.users.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, format!("no user {key}"));
    };
    let before = user.fido2_methods.len();
    user.fido2_methods.retain(|m| m.id != method);
    if user.fido2_methods.len() == before {
        return problem(StatusCode::NOT_FOUND, format!("no method {method}"));
    }
    user.change_seq = seq;
    drop(t);
    sim.changed();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewSecret {
    #[serde(default, with = "time::serde::rfc3339::option")]
    end_date_time: Option<OffsetDateTime>,
}

async fn add_secret(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let new: NewSecret = if body.is_empty() {
        NewSecret {
            end_date_time: None,
        }
    } else {
        match parse_json(&body) {
            Ok(r) => r,
            Err(e) => return e,
        }
    };
    let secret = ClientSecret {
        key_id: Uuid::new_v4(),
        value: format!("kbS8Q~{}", crate::seed::random_token(27)),
        end_date_time: new
            .end_date_time
            .unwrap_or_else(|| OffsetDateTime::now_utc() + time::Duration::days(365)),
    };
    let json = json!({"keyId": secret.key_id, "secretText": secret.value, "endDateTime": graph_time(secret.end_date_time)});
    sim.write().app.secrets.push(secret);
    sim.changed();
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Response {
    let rules = sim
        .traffic
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    axum::Json(json!({"rules": rules})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Faults {
    rules: Vec<FaultRule>,
}

async fn put_faults(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if faults
        .rules
        .iter()
        .any(|r| !(0.0..=1.0).contains(&r.fraction))
    {
        return problem(StatusCode::BAD_REQUEST, "fraction must be between 0 and 1");
    }
    *sim.traffic.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults.rules.clone();
    axum::Json(json!({"rules": faults.rules})).into_response()
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    sim.traffic
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Latency {
    ms: u64,
}

async fn put_latency(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let latency: Latency = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    sim.traffic.latency_ms.store(latency.ms, Ordering::Relaxed);
    axum::Json(json!({"ms": latency.ms})).into_response()
}

async fn get_throttle(State(sim): State<Arc<Sim>>) -> Response {
    let mode = sim
        .traffic
        .throttle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .mode;
    axum::Json(json!({"mode": mode})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Throttle {
    mode: ThrottleMode,
}

async fn put_throttle(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let throttle: Throttle = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut state = sim
        .traffic
        .throttle
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *state = crate::sim::Throttle {
        mode: throttle.mode,
        ..crate::sim::Throttle::default()
    };
    axum::Json(json!({"mode": throttle.mode})).into_response()
}

async fn get_counters(State(sim): State<Arc<Sim>>) -> Response {
    let counters = sim
        .traffic
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    axum::Json(json!(*counters)).into_response()
}

async fn reset_counters(State(sim): State<Arc<Sim>>) -> Response {
    *sim.traffic
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = crate::sim::Counters::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_policy(State(sim): State<Arc<Sim>>) -> Response {
    let policy = sim.read().policy.clone();
    axum::Json(policy_json(&sim, Version::V1, &policy)).into_response()
}

async fn patch_policy(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let patch: Value = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut t = sim.write();
    if let Err(e) = apply_policy_patch(&mut t.policy, &patch) {
        return problem(StatusCode::BAD_REQUEST, e.message);
    }
    let policy = t.policy.clone();
    drop(t);
    sim.changed();
    axum::Json(policy_json(&sim, Version::V1, &policy)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Challenges {
    single_use: bool,
}

async fn put_challenges(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let c: Challenges = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    sim.strict_single_use.store(c.single_use, Ordering::Relaxed);
    axum::Json(json!({"singleUse": c.single_use})).into_response()
}

async fn sign_ins(State(sim): State<Arc<Sim>>) -> Response {
    let t = sim.read();
    axum::Json(json!({"value": t.sign_ins})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Clock {
    offset_seconds: i64,
}

async fn get_clock(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(json!({
        "offsetSeconds": sim.clock_offset_secs.load(Ordering::Relaxed),
        "now": graph_time(sim.now()),
    }))
    .into_response()
}

async fn put_clock(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let clock: Clock = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    sim.clock_offset_secs
        .store(clock.offset_seconds, Ordering::Relaxed);
    axum::Json(json!({"offsetSeconds": clock.offset_seconds, "now": graph_time(sim.now())}))
        .into_response()
}

async fn get_origins(State(sim): State<Arc<Sim>>) -> Response {
    let origins = sim
        .registration_origins
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    axum::Json(json!({"registration": origins})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Origins {
    registration: Vec<String>,
}

async fn put_origins(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let origins: Origins = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if origins
        .registration
        .iter()
        .any(|o| url::Url::parse(o).is_err())
    {
        return problem(
            StatusCode::BAD_REQUEST,
            "every origin must be a URL like https://login.microsoft.com",
        );
    }
    *sim.registration_origins
        .write()
        .unwrap_or_else(|p| p.into_inner()) = origins.registration.clone();
    axum::Json(json!({"registration": origins.registration})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Replication {
    group_delay_ms: u64,
}

async fn put_replication(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let replication: Replication = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    sim.group_replication_ms
        .store(replication.group_delay_ms, Ordering::Relaxed);
    axum::Json(json!({"groupDelayMs": replication.group_delay_ms})).into_response()
}
