//! Registering a paired phone's passkey in Entra (issue 6, lifecycle 7), while the
//! integration's native Entra login experience is enabled.
//!
//! Two job kinds, so that no job waits on a phone:
//! - [`PROVISION_USER`] (one per user and phone) reads Graph's `creationOptions` and puts a
//!   `provision_passkey` request in the phone's inbox, then finishes. The user's
//!   `provisioning_error` says the phone is being waited for. A follow-up of the same kind is
//!   scheduled at the request's expiry: when the phone has not answered by then, the challenge
//!   is renewed (new creationOptions, new inbox request).
//! - [`REGISTER_PASSKEY`] (one per inbox request), queued when the phone answers: a refusal
//!   is recorded on the user with its reason; a credential is recorded in `credentials`
//!   *before* the `POST fido2Methods`, so that a crash or an ambiguous failure is resolved by
//!   reading the user's methods (the Graph client does) and never creates a second passkey.
//!   Entra's acceptance applies core's `PasskeyRegistered`: the user is Paired with Entra, the
//!   step is audited and the groups are brought in step.
//!
//! Inbox request ids are derived from the phone and a round number, so a rerun of the job
//! finds the round already asked instead of asking the phone twice.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_core::{Command, UserState, apply};
use keybridge_device_protocol::{
    Account, Answer, ENTRA_RP_ID, InboxItem, InboxRequest, ProvisionPasskey, RequestAnswer,
};
use keybridge_graph::{GraphClient, NewFido2Method};
use keybridge_store::{
    CredentialStatus, DeviceRequestKind, DeviceRequestStatus, JobContext, JobError, NewAuditEvent,
    NewCredential, NewDeviceRequest, NewJob, Phone, Store, StoreError, Timestamp, User, UserQuery,
};
use sha2::{Digest as _, Sha256};

use crate::app::App;
use crate::jobs::{self, QUEUE, graph_failure, store_failure};
use crate::services::facts::user_facts;
use crate::services::job_integration;

/// Kind of the job asking one user's phone for a passkey.
pub const PROVISION_USER: &str = "provision_user";
/// Kind of the job registering a phone's answered credential in Entra.
pub const REGISTER_PASSKEY: &str = "register_passkey";

/// How the user's `provisioning_error` starts while the phone is being waited for.
const WAITING: &str = "Waiting for the phone";

/// Whether a user's `provisioning_error` only says that the phone is being waited for (the
/// registration is under way), rather than why it failed.
pub fn is_waiting_for_phone(provisioning_error: &str) -> bool {
    provisioning_error.starts_with(WAITING)
}
/// Most rounds looked through for one phone (each renewal or refusal is one round).
const MAX_ROUNDS: u32 = 10_000;
/// Taken off the challenge's lifetime so the phone's answer reaches Graph before it lapses.
const CHALLENGE_MARGIN: Duration = Duration::from_secs(20);
/// Below this, a challenge's lifetime is not shortened by [`CHALLENGE_MARGIN`].
const MIN_REQUEST_LIFETIME: Duration = Duration::from_secs(30);
/// Used when Graph gives no challenge expiry (v1.0 challenges last 5 minutes).
const DEFAULT_CHALLENGE_LIFETIME: Duration = Duration::from_secs(300);

/// The interval between two users' provisioning when many are queued at once: one
/// registration (one Graph write) per 53 ms is 95 % of Graph's 3,000 writes per 150 s.
const ASK_SPACING: Duration = Duration::from_millis(53);

/// The job asking `phone_id`'s phone for `user_id`'s passkey (one queued per user and phone).
pub fn provision_user(user_id: &str, phone_id: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        PROVISION_USER,
        serde_json::json!({ "user_id": user_id, "phone_id": phone_id }),
    )
    .dedupe_key(format!("{PROVISION_USER}:{user_id}:{phone_id}"))
}

/// The follow-up renewing round `round` if it lapses unanswered, run at `at`.
fn renewal(user_id: &str, phone_id: &str, round: u32, at: Timestamp) -> NewJob {
    NewJob::new(
        QUEUE,
        PROVISION_USER,
        serde_json::json!({ "user_id": user_id, "phone_id": phone_id, "renew_round": round }),
    )
    .dedupe_key(format!(
        "{PROVISION_USER}:{user_id}:{phone_id}:renew:{round}"
    ))
    .run_after(at)
}

/// The job registering the credential the phone answered request `request_id` with.
pub fn register_passkey(request_id: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        REGISTER_PASSKEY,
        serde_json::json!({ "request_id": request_id }),
    )
    .dedupe_key(format!("{REGISTER_PASSKEY}:{request_id}"))
}

/// The inbox request id of `round` for a phone: stable, so a rerun finds it.
fn request_id(phone_id: &str, round: u32) -> String {
    let digest = Sha256::digest(format!("keybridge provision {phone_id} {round}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn payload_text(ctx: &JobContext, field: &str) -> Result<String, JobError> {
    ctx.job
        .payload
        .get(field)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| JobError::Permanent(format!("the job has no {field}")))
}

/// Queues [`provision_user`] for the oldest phone of every user Paired with keybridge in the
/// integration (the `provision_paired_users` job, queued when native login is enabled).
pub async fn provision_paired_users(
    app: &App,
    ctx: &JobContext,
    integration_id: &str,
) -> Result<(), JobError> {
    let store = ctx.store();
    let mut query = UserQuery::new(integration_id, Some(UserState::PairedWithKeybridge));
    query.limit = 500;
    let mut queued = 0u64;
    let start = Timestamp::now();
    loop {
        let page = store.users().list(&query).await.map_err(store_failure)?;
        for item in &page.items {
            let phones = store
                .phones()
                .list_for_user(&item.user.id)
                .await
                .map_err(store_failure)?;
            // The oldest phone not being unpaired.
            if let Some(phone) = phones.iter().find(|p| p.unpairing_at.is_none()) {
                // Spread at the pace Graph's write quota lets passkeys be registered: all asked
                // at once, the registrations would queue behind the asks and their challenges
                // lapse before Entra sees them.
                let at = start
                    .plus(ASK_SPACING.saturating_mul(u32::try_from(queued).unwrap_or(u32::MAX)));
                store
                    .jobs()
                    .enqueue(app.attempts(provision_user(&item.user.id, &phone.id).run_after(at)))
                    .await
                    .map_err(store_failure)?;
                queued += 1;
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    tracing::info!(integration = %integration_id, queued, "passkey provisioning queued for the paired users");
    Ok(())
}

/// Runs [`PROVISION_USER`].
pub async fn run_provision_user(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    let store = ctx.store();
    let user_id = payload_text(ctx, "user_id")?;
    let phone_id = payload_text(ctx, "phone_id")?;
    let renew_round = ctx
        .job
        .payload
        .get("renew_round")
        .and_then(|v| v.as_u64())
        .and_then(|n| u32::try_from(n).ok());
    let Some(user) = found(store.users().get(&user_id).await)? else {
        return Ok(());
    };
    let Some(phone) = found(store.phones().get(&phone_id).await)? else {
        return Ok(());
    };
    if user.state != UserState::PairedWithKeybridge || phone.unpairing_at.is_some() {
        return Ok(());
    }
    let (integration, client) = job_integration(app, ctx, &user.integration_id).await?;
    if !integration.native_login_enabled {
        // Disabled since: nothing new is asked, and the user no longer shows as waiting.
        if user
            .provisioning_error
            .as_deref()
            .is_some_and(|text| text.starts_with(WAITING))
        {
            store
                .users()
                .set_provisioning_error(&user.id, None)
                .await
                .map_err(store_failure)?;
        }
        return Ok(());
    }
    let credentials = store
        .credentials()
        .list_for_phone(&phone.id)
        .await
        .map_err(store_failure)?;
    if credentials
        .iter()
        .any(|c| c.status == CredentialStatus::Registered)
    {
        return Ok(());
    }

    let now = Timestamp::now();
    let tenant_id = integration.tenant_id.clone();
    let is_open = |request: &keybridge_store::DeviceRequest| {
        matches!(
            request.status,
            DeviceRequestStatus::Pending | DeviceRequestStatus::Delivered
        ) && request.expires_at > now
    };
    if let Some(asked) = renew_round {
        // A scheduled renewal: only when round `asked` lapsed unanswered is it asked again.
        let Some(request) = found(
            store
                .device_requests()
                .get(&request_id(&phone.id, asked))
                .await,
        )?
        else {
            return Ok(());
        };
        let lapsed = !is_open(&request)
            && matches!(
                request.status,
                DeviceRequestStatus::Pending
                    | DeviceRequestStatus::Delivered
                    | DeviceRequestStatus::Expired
            );
        let next = asked + 1;
        if !lapsed
            || found(
                store
                    .device_requests()
                    .get(&request_id(&phone.id, next))
                    .await,
            )?
            .is_some()
        {
            return Ok(());
        }
        return ask_phone(app, ctx, &client, &user, &phone, &tenant_id, next).await;
    }
    for round in 0..MAX_ROUNDS {
        let id = request_id(&phone.id, round);
        let Some(request) = found(store.device_requests().get(&id).await)? else {
            return ask_phone(app, ctx, &client, &user, &phone, &tenant_id, round).await;
        };
        if is_open(&request) {
            // Still waiting for the phone; its renewal is scheduled (again, if a crash lost it).
            store
                .jobs()
                .enqueue(app.attempts(renewal(
                    &user.id,
                    &phone.id,
                    round,
                    request.expires_at.plus(Duration::from_secs(1)),
                )))
                .await
                .map_err(store_failure)?;
            return Ok(());
        }
        if request.status == DeviceRequestStatus::Approved
            && !refused_by_entra(store, request.response.as_ref()).await?
        {
            store
                .jobs()
                .enqueue(app.attempts(register_passkey(&id)))
                .await
                .map_err(store_failure)?;
            return Ok(());
        }
        // Refused (by the phone or by Entra), lapsed or withdrawn: this run asks again in the
        // next round.
    }
    Err(JobError::Permanent(format!(
        "phone {} was asked {MAX_ROUNDS} times: remove and pair it again",
        phone.id
    )))
}

/// Whether the credential a phone answered with was refused by Entra (a new run asks the phone
/// for a new one rather than offering Entra the same again).
async fn refused_by_entra(
    store: &Store,
    response: Option<&serde_json::Value>,
) -> Result<bool, JobError> {
    let Some(Answer::Credential { credential }) = response
        .cloned()
        .and_then(|r| serde_json::from_value::<RequestAnswer>(r).ok())
        .map(|a| a.answer)
    else {
        return Ok(false);
    };
    let Ok(parsed) = read_credential(&credential) else {
        return Ok(true);
    };
    let row = store
        .credentials()
        .find_by_credential_id(&URL_SAFE_NO_PAD.encode(&parsed.credential_id))
        .await
        .map_err(store_failure)?;
    Ok(row.is_some_and(|c| c.status == CredentialStatus::Failed))
}

fn found<T>(result: Result<T, StoreError>) -> Result<Option<T>, JobError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(store_failure(e)),
    }
}

/// New creationOptions and a `provision_passkey` request (round `round`) in the phone's inbox.
async fn ask_phone(
    app: &App,
    ctx: &JobContext,
    client: &GraphClient,
    user: &User,
    phone: &Phone,
    tenant_id: &str,
    round: u32,
) -> Result<(), JobError> {
    let store = ctx.store();
    let options = client
        .fido2_creation_options(&user.entra_object_id, None)
        .await
        .map_err(graph_failure)?;
    let now = time::OffsetDateTime::now_utc();
    let challenge_expiry = options
        .challenge_timeout_date_time
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .unwrap_or(now + DEFAULT_CHALLENGE_LIFETIME);
    let lifetime: Duration = (challenge_expiry - now)
        .try_into()
        .unwrap_or(Duration::ZERO);
    // Leave the phone's answer time to reach Graph; a short challenge (or a Graph clock ahead
    // of ours) is used as it is, within bounds, so renewal neither waits long nor spins.
    let ttl = if lifetime >= MIN_REQUEST_LIFETIME + CHALLENGE_MARGIN {
        lifetime - CHALLENGE_MARGIN
    } else {
        lifetime.clamp(Duration::from_secs(10), MIN_REQUEST_LIFETIME)
    };
    let expires_at = now + ttl;
    let id = request_id(&phone.id, round);
    let account = Account {
        upn: user.upn.clone(),
        tenant_id: uuid::Uuid::try_parse(tenant_id).map_err(|_| {
            JobError::Permanent("the integration's tenant id is not a GUID".to_owned())
        })?,
        entra_user_id: uuid::Uuid::try_parse(&user.entra_object_id).map_err(|_| {
            JobError::Permanent(format!("user {}'s Entra object id is not a GUID", user.id))
        })?,
    };
    let request_uuid = uuid::Uuid::try_parse(&id)
        .map_err(|_| JobError::Permanent("a derived request id is not a UUID".to_owned()))?;
    let creation_options = serde_json::to_value(&options)
        .map_err(|e| JobError::Permanent(format!("creationOptions cannot be kept: {e}")))?;
    let item = InboxItem::new(InboxRequest::ProvisionPasskey(ProvisionPasskey {
        request_id: request_uuid,
        account,
        rp_id: ENTRA_RP_ID.to_owned(),
        creation_options,
        expires_at,
    }));
    let payload = serde_json::to_value(&item)
        .map_err(|e| JobError::Permanent(format!("the inbox request cannot be kept: {e}")))?;
    let expires = Timestamp::now().plus(ttl);
    // One transaction with the user's waiting state, the renewal and the audit event: the
    // phone's long poll is woken when it commits (on both databases), so the phone never sees a
    // request that the rest does not know about yet, and a crash leaves none of it.
    let mut tx = store.begin().await.map_err(store_failure)?;
    match tx
        .device_requests()
        .create_with_id(
            &id,
            NewDeviceRequest {
                phone_id: phone.id.clone(),
                kind: DeviceRequestKind::Provision,
                payload,
                workstation_id: None,
                ttl,
            },
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(store_failure(e)),
    }
    tx.users()
        .set_provisioning_error(
            &user.id,
            Some(&format!(
                "{WAITING} \"{}\" to create the passkey (asked at {}; renewed at {} if \
                 the phone stays offline).",
                phone.name,
                Timestamp::now().to_rfc3339(),
                expires.to_rfc3339()
            )),
        )
        .await
        .map_err(store_failure)?;
    tx.jobs()
        .enqueue(app.attempts(renewal(
            &user.id,
            &phone.id,
            round,
            expires.plus(Duration::from_secs(1)),
        )))
        .await
        .map_err(store_failure)?;
    tx.audit()
        .append(
            NewAuditEvent::new("system", "user.provision.request")
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({
                    "phone_id": phone.id,
                    "request_id": id,
                    "round": round,
                    "expires_at": expires.to_rfc3339(),
                })),
        )
        .await
        .map_err(store_failure)?;
    tx.commit().await.map_err(store_failure)?;
    Ok(())
}

/// Whether the phone is gone or being unpaired.
async fn unpaired_meanwhile(store: &Store, phone_id: &str) -> Result<bool, JobError> {
    Ok(found(store.phones().get(phone_id).await)?.is_none_or(|p| p.unpairing_at.is_some()))
}

/// Records a per-user failure reason and audits it.
async fn record_failure(
    store: &Store,
    user: &User,
    action: &str,
    reason: &str,
    details: serde_json::Value,
) -> Result<(), JobError> {
    let mut tx = store.begin().await.map_err(store_failure)?;
    tx.users()
        .set_provisioning_error(&user.id, Some(reason))
        .await
        .map_err(store_failure)?;
    tx.audit()
        .append(
            NewAuditEvent::new("system", action)
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({ "reason": reason, "details": details })),
        )
        .await
        .map_err(store_failure)?;
    tx.commit().await.map_err(store_failure)?;
    Ok(())
}

struct PhoneCredential {
    credential_id: Vec<u8>,
    client_data_json: Vec<u8>,
    attestation_object: Vec<u8>,
    client_extension_results: serde_json::Value,
}

fn read_credential(credential: &serde_json::Value) -> Result<PhoneCredential, String> {
    let field = |pointer: &str| -> Result<Vec<u8>, String> {
        let text = credential
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the phone's credential has no {pointer}"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("the phone's credential {pointer} is not base64url: {e}"))
    };
    Ok(PhoneCredential {
        credential_id: field("/rawId").or_else(|_| field("/id"))?,
        client_data_json: field("/response/clientDataJSON")?,
        attestation_object: field("/response/attestationObject")?,
        client_extension_results: credential
            .get("clientExtensionResults")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    })
}

/// Runs [`REGISTER_PASSKEY`].
pub async fn run_register_passkey(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    let store = ctx.store();
    let request_id = payload_text(ctx, "request_id")?;
    let Some(request) = found(store.device_requests().get(&request_id).await)? else {
        return Ok(());
    };
    let Some(user) = found(store.users().get(&request.user_id).await)? else {
        return Ok(());
    };
    let answer = request
        .response
        .clone()
        .and_then(|r| serde_json::from_value::<RequestAnswer>(r).ok());
    match (request.status, answer.map(|a| a.answer)) {
        (DeviceRequestStatus::Denied, Some(Answer::Refused { reason, message })) => {
            let reason_code = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "other".to_owned());
            let text =
                format!("The phone refused to create the passkey ({reason_code}): {message}");
            return record_failure(
                store,
                &user,
                "user.provision.refused",
                &text,
                serde_json::json!({ "request_id": request_id, "reason": reason_code }),
            )
            .await;
        }
        (DeviceRequestStatus::Approved, Some(Answer::Credential { credential })) => {
            register(app, ctx, &user, &request.phone_id, &request_id, &credential).await
        }
        // Not answered, or answered in a way that asks nothing of Entra.
        _ => Ok(()),
    }
}

async fn register(
    app: &App,
    ctx: &JobContext,
    user: &User,
    phone_id: &str,
    request_id: &str,
    credential: &serde_json::Value,
) -> Result<(), JobError> {
    let store = ctx.store();
    if user.state == UserState::PairedWithEntra {
        return Ok(());
    }
    let (integration, client) = job_integration(app, ctx, &user.integration_id).await?;
    if !integration.native_login_enabled {
        return record_failure(
            store,
            user,
            "user.provision.failed",
            "The native Entra login experience was disabled before the phone answered: the \
             passkey was not registered in Microsoft Entra.",
            serde_json::json!({ "request_id": request_id }),
        )
        .await;
    }
    let parsed = match read_credential(credential) {
        Ok(parsed) => parsed,
        Err(reason) => {
            let text = format!("The phone's passkey cannot be read: {reason}");
            return record_failure(
                store,
                user,
                "user.provision.failed",
                &text,
                serde_json::json!({ "request_id": request_id }),
            )
            .await;
        }
    };
    let credential_id = URL_SAFE_NO_PAD.encode(&parsed.credential_id);
    let Some(phone) = found(store.phones().get(phone_id).await)? else {
        return Ok(());
    };
    if phone.unpairing_at.is_some() {
        // Being unpaired: nothing is registered for it any more.
        return Ok(());
    }
    let display_name = format!("keybridge - {}", phone.name);
    // Recorded before the POST: after a crash the row names the credential to look for.
    let row = match store
        .credentials()
        .find_by_credential_id(&credential_id)
        .await
        .map_err(store_failure)?
    {
        Some(row) => row,
        None => store
            .credentials()
            .create(NewCredential {
                user_id: user.id.clone(),
                phone_id: phone.id.clone(),
                credential_id: credential_id.clone(),
                rp_id: ENTRA_RP_ID.to_owned(),
                aaguid: keybridge_authenticator::AAGUID_STRING.to_owned(),
                display_name: display_name.clone(),
            })
            .await
            .map_err(store_failure)?,
    };
    let method_id = match (row.status, row.entra_method_id.clone()) {
        (CredentialStatus::Registered, Some(method_id)) => method_id,
        (CredentialStatus::Failed | CredentialStatus::Removed, _) => return Ok(()),
        _ => {
            let method = NewFido2Method {
                display_name: Some(display_name),
                credential_id: parsed.credential_id,
                client_data_json: parsed.client_data_json,
                attestation_object: parsed.attestation_object,
                client_extension_results: parsed.client_extension_results,
                aaguid: uuid::Uuid::try_parse(keybridge_authenticator::AAGUID_STRING).ok(),
            };
            match client
                .create_fido2_method(&user.entra_object_id, &method)
                .await
            {
                Ok(created) => {
                    if unpaired_meanwhile(store, &phone.id).await? {
                        // The phone's unpairing began while Entra registered the passkey:
                        // nobody will hold it, so it goes again (the unpair job may already
                        // have read the user's methods without it).
                        match client
                            .delete_fido2_method(&user.entra_object_id, &created.id)
                            .await
                        {
                            Ok(()) | Err(keybridge_graph::GraphError::NotFound(_)) => {}
                            Err(e) => return Err(graph_failure(e)),
                        }
                        match store
                            .credentials()
                            .mark_removed(&row.id, Timestamp::now())
                            .await
                        {
                            Ok(()) => {}
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(store_failure(e)),
                        }
                        return Ok(());
                    }
                    store
                        .credentials()
                        .mark_registered(&row.id, &created.id, Timestamp::now())
                        .await
                        .map_err(store_failure)?;
                    created.id
                }
                Err(error) if error.is_transient() => return Err(graph_failure(error)),
                Err(error) => {
                    store
                        .credentials()
                        .mark_failed(&row.id, &error.to_string())
                        .await
                        .map_err(store_failure)?;
                    let text = format!("Microsoft Entra refused the passkey: {error}");
                    return record_failure(
                        store,
                        user,
                        "user.provision.failed",
                        &text,
                        serde_json::json!({ "request_id": request_id, "credential_id": credential_id }),
                    )
                    .await;
                }
            }
        }
    };

    let Some(facts) = user_facts(user, false) else {
        return Err(JobError::Permanent(format!(
            "user {} has inconsistent stored facts",
            user.id
        )));
    };
    let transition = apply(&facts, Command::PasskeyRegistered)
        .map_err(|e| JobError::Permanent(format!("the passkey is in Entra, but {e}")))?;
    let next = &transition.facts;
    let mut tx = store.begin().await.map_err(store_failure)?;
    tx.users()
        .set_state(&user.id, next.state(), next.is_unpaired())
        .await
        .map_err(store_failure)?;
    tx.users()
        .set_provisioning_error(&user.id, None)
        .await
        .map_err(store_failure)?;
    tx.audit()
        .append(
            NewAuditEvent::new("system", "user.passkey_registered")
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({
                    "phone_id": phone.id,
                    "request_id": request_id,
                    "credential_id": credential_id,
                    "entra_method_id": method_id,
                    "state": next.state().as_str(),
                })),
        )
        .await
        .map_err(store_failure)?;
    if !transition.groups_to_add.is_empty() || !transition.groups_to_remove.is_empty() {
        tx.jobs()
            .enqueue(app.attempts(jobs::group_sync(&user.integration_id)))
            .await
            .map_err(store_failure)?;
    }
    tx.commit().await.map_err(store_failure)?;
    ctx.set_progress(1, 0, 1).await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_stable_per_phone_and_round() {
        let first = request_id("phone-1", 0);
        assert_eq!(first, request_id("phone-1", 0));
        assert_ne!(first, request_id("phone-1", 1));
        assert_ne!(first, request_id("phone-2", 0));
        let parsed = uuid::Uuid::try_parse(&first).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn a_phone_credential_is_read_from_its_json() {
        let credential = serde_json::json!({
            "id": "AQID", "rawId": "AQID", "type": "public-key",
            "response": {"clientDataJSON": "e30", "attestationObject": "oA"},
            "clientExtensionResults": {},
        });
        let parsed = read_credential(&credential).expect("readable");
        assert_eq!(parsed.credential_id, vec![1, 2, 3]);
        assert_eq!(parsed.client_data_json, b"{}".to_vec());
        assert_eq!(parsed.attestation_object, vec![0xa0]);
    }

    #[test]
    fn an_unreadable_credential_says_what_is_wrong() {
        let missing = serde_json::json!({"id": "AQID", "response": {"clientDataJSON": "e30"}});
        let error = read_credential(&missing).err().expect("refused");
        assert!(error.contains("/response/attestationObject"), "{error}");
        let garbled = serde_json::json!({
            "id": "AQID",
            "response": {"clientDataJSON": "not base64!", "attestationObject": "oA"},
        });
        let error = read_credential(&garbled).err().expect("refused");
        assert!(error.contains("not base64url"), "{error}");
    }
}
