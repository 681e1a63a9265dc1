//! Unpairing a phone (issue 6, lifecycle 8), by the phone itself or by an admin.
//!
//! A phone whose passkey may be in Entra is unpaired by a job, one per phone
//! ([`UNPAIR_PHONE`]): the request marks the phone as unpairing (from then on keybridge asks
//! it for nothing and registers nothing for it) and queues the job, which
//! 1. reads the user's FIDO2 methods in Entra and deletes the ones that are this phone's
//!    passkeys (found by credential id, so one whose registration answer was lost is found
//!    too; others' passkeys are left alone). A method already gone counts as deleted. Each
//!    credential is marked removed as soon as Entra no longer holds it: that is the job's
//!    progress record, and a rerun after a crash reads Entra again rather than trusting it;
//! 2. removes the phone and applies core's `UnpairPhone` in one transaction: the user's last
//!    phone gone, the user is Pending with "This user unpaired from keybridge."; the groups
//!    follow through a queued group step.
//!
//! A phone that never had a passkey recorded is unpaired at once by the phone's own request
//! (step 2 alone).

use axum::http::StatusCode;
use keybridge_core::lifecycle::state_for;
use keybridge_core::{
    Command, InconsistentFacts, StoredUserFacts, TransitionError, UserFacts, apply,
};
use keybridge_graph::GraphError;
use keybridge_store::{
    Credential, CredentialStatus, JobContext, JobError, NewAuditEvent, NewJob, Phone, Store,
    StoreError, Timestamp,
};

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, QUEUE, graph_failure, store_failure};
use crate::services::facts::has_open_invite;
use crate::services::{is_method_of, job_integration};

/// Kind of the job unpairing one phone.
pub const UNPAIR_PHONE: &str = "unpair_phone";

/// The job unpairing `phone_id` (one queued or running per phone).
pub fn job(phone_id: &str, actor: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        UNPAIR_PHONE,
        serde_json::json!({ "phone_id": phone_id, "actor": actor }),
    )
    .dedupe_key(format!("{UNPAIR_PHONE}:{phone_id}"))
}

/// What an unpairing request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpairing {
    /// The phone had no passkey recorded and is already removed.
    Done,
    /// The job deleting its Entra passkey and then the phone.
    Queued {
        /// The job id.
        job_id: String,
    },
}

/// Why the last step of an unpairing failed.
#[derive(Debug, thiserror::Error)]
enum FinishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refused(#[from] TransitionError),
    #[error("the user's phones and passkeys contradict each other: {0}")]
    Inconsistent(#[from] InconsistentFacts),
}

impl From<FinishError> for ApiError {
    fn from(error: FinishError) -> ApiError {
        match error {
            FinishError::Store(e) => e.into(),
            FinishError::Refused(e) => {
                ApiError::new(StatusCode::CONFLICT, "not_allowed", e.to_string())
            }
            FinishError::Inconsistent(e) => ApiError::internal(e),
        }
    }
}

fn finish_failure(error: FinishError) -> JobError {
    match error {
        FinishError::Store(e) => store_failure(e),
        FinishError::Refused(e) => JobError::Permanent(e.to_string()),
        FinishError::Inconsistent(e) => JobError::Permanent(e.to_string()),
    }
}

/// Credentials of the phone that Entra may hold (not yet seen removed).
async fn live_credentials(store: &Store, phone_id: &str) -> Result<Vec<Credential>, StoreError> {
    Ok(store
        .credentials()
        .list_for_phone(phone_id)
        .await?
        .into_iter()
        .filter(|c| c.status != CredentialStatus::Removed)
        .collect())
}

/// Starts unpairing `phone`: at once when it never had a passkey recorded and `always_job` is
/// false, else by marking it and queueing [`job`].
pub async fn request(
    app: &App,
    phone: &Phone,
    actor: &str,
    meta: &RequestMeta,
    always_job: bool,
) -> ApiResult<Unpairing> {
    let store = app.store();
    let live = live_credentials(store, &phone.id).await?;
    if live.is_empty() && !always_job && phone.unpairing_at.is_none() {
        finish(app, store, phone, actor, Some(meta)).await?;
        return Ok(Unpairing::Done);
    }
    let user = store.users().get(&phone.user_id).await?;
    let mut tx = store.begin().await?;
    tx.phones()
        .mark_unpairing(&phone.id, Timestamp::now())
        .await?;
    let queued = tx
        .jobs()
        .enqueue(app.attempts(job(&phone.id, actor)))
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "device.unpair.request")
                    .target(format!("user:{}", user.id))
                    .details(serde_json::json!({
                        "phone_id": phone.id,
                        "name": phone.name,
                        "job_id": queued.id(),
                    })),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(Unpairing::Queued {
        job_id: queued.id().to_owned(),
    })
}

/// An admin's unpairing of one of a user's phones (always a job).
pub async fn request_by_admin(
    app: &App,
    user_id: &str,
    phone_id: &str,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<String> {
    let store = app.store();
    store.users().get(user_id).await?;
    let phone = match store.phones().get(phone_id).await {
        Ok(phone) if phone.user_id == user_id => phone,
        Ok(_) => {
            return Err(ApiError::not_found(format!(
                "user {user_id} has no phone {phone_id}: see GET /api/v1/users/{user_id}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    match request(app, &phone, actor, meta, true).await? {
        Unpairing::Queued { job_id } => Ok(job_id),
        Unpairing::Done => Err(ApiError::internal("an admin's unpairing ran without a job")),
    }
}

/// Runs [`UNPAIR_PHONE`].
pub async fn run(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    let store = ctx.store();
    let phone_id = crate::jobs::payload_str(ctx, "phone_id")?;
    let actor = crate::jobs::actor(ctx);
    let mut phone = match store.phones().get(phone_id).await {
        Ok(phone) => phone,
        // Removed by an earlier attempt (or with its user).
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(store_failure(e)),
    };
    if phone.unpairing_at.is_none() {
        let now = Timestamp::now();
        store
            .phones()
            .mark_unpairing(&phone.id, now)
            .await
            .map_err(store_failure)?;
        phone.unpairing_at = Some(now);
    }
    let user = store
        .users()
        .get(&phone.user_id)
        .await
        .map_err(store_failure)?;
    let live = live_credentials(store, &phone.id)
        .await
        .map_err(store_failure)?;
    let total = i64::try_from(live.len()).unwrap_or(i64::MAX) + 1;
    let mut deleted = Vec::new();
    if !live.is_empty() {
        let (_, client) = job_integration(app, ctx, &user.integration_id).await?;
        let methods = match client.list_fido2_methods(&user.entra_object_id).await {
            Ok(methods) => methods,
            // The account is gone from Entra, and its passkeys with it.
            Err(GraphError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(graph_failure(e)),
        };
        for credential in &live {
            for method in methods.iter().filter(|m| is_method_of(credential, &m.id)) {
                match client
                    .delete_fido2_method(&user.entra_object_id, &method.id)
                    .await
                {
                    // Gone already (deleted by an attempt that lost its answer): done.
                    Ok(()) | Err(GraphError::NotFound(_)) => deleted.push(method.id.clone()),
                    Err(e) => return Err(graph_failure(e)),
                }
            }
            store
                .credentials()
                .mark_removed(&credential.id, Timestamp::now())
                .await
                .map_err(store_failure)?;
            ctx.add_progress(1, 0).await.ok();
        }
    }
    finish(app, store, &phone, &actor, None)
        .await
        .map_err(finish_failure)?;
    ctx.set_progress(total, 0, total).await.ok();
    tracing::info!(phone = %phone.id, user = %user.id, deleted = deleted.len(), "phone unpaired");
    Ok(())
}

/// Removes the phone and moves the user on by core's `UnpairPhone`, in one transaction.
async fn finish(
    app: &App,
    store: &Store,
    phone: &Phone,
    actor: &str,
    meta: Option<&RequestMeta>,
) -> Result<(), FinishError> {
    let user = store.users().get(&phone.user_id).await?;
    let phones = store.phones().list_for_user(&user.id).await?;
    // Passkeys per phone, counted from the credentials: a phone has one while Entra holds a
    // credential of it, and this phone also when this unpairing removed it.
    let mut entra_passkeys = 0u32;
    let mut had_entra_passkey = false;
    let mut removed_credentials = Vec::new();
    for each in &phones {
        let credentials = store.credentials().list_for_phone(&each.id).await?;
        let registered = credentials
            .iter()
            .any(|c| c.status == CredentialStatus::Registered);
        let mut removed_now = false;
        if each.id == phone.id {
            for c in &credentials {
                let by_this_unpairing = c.status == CredentialStatus::Removed
                    && matches!(
                        (c.removed_at, each.unpairing_at),
                        (Some(removed), Some(unpairing)) if removed >= unpairing
                    );
                if by_this_unpairing {
                    removed_credentials.push(c.credential_id.clone());
                    removed_now |= c.registered_at.is_some();
                }
            }
        }
        if registered || removed_now {
            entra_passkeys += 1;
            if each.id == phone.id {
                had_entra_passkey = true;
            }
        }
    }
    let paired_phones = u32::try_from(phones.len()).unwrap_or(u32::MAX);
    let invited = has_open_invite(store, &user.id, Timestamp::now()).await?;
    let facts = UserFacts::from_stored(StoredUserFacts {
        state: state_for(paired_phones, entra_passkeys),
        unpaired: false,
        entra_status: user.entra_status,
        invited,
        paired_phones,
        entra_passkeys,
    })?;
    let transition = apply(&facts, Command::UnpairPhone { had_entra_passkey })?;
    let next = &transition.facts;
    let event = NewAuditEvent::new(actor, "device.unpair")
        .target(format!("user:{}", user.id))
        .details(serde_json::json!({
            "phone_id": phone.id,
            "name": phone.name,
            "state": next.state().as_str(),
            "warning": next.warning(),
            // Credential ids (the FIDO ids) of the phone's passkeys no longer in Entra.
            "entra_passkeys_removed": removed_credentials,
        }));
    let event = match meta {
        Some(meta) => meta.stamp(event),
        None => event,
    };
    let mut tx = store.begin().await?;
    tx.phones().delete(&phone.id).await?;
    tx.users()
        .set_state(&user.id, next.state(), next.is_unpaired())
        .await?;
    tx.audit().append(event).await?;
    if !transition.groups_to_add.is_empty() || !transition.groups_to_remove.is_empty() {
        tx.jobs()
            .enqueue(app.attempts(jobs::group_sync(&user.integration_id)))
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
