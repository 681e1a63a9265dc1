//! The Entra status check behind the user list (issue 6, lifecycle 9): opening a page of users
//! queues a job that looks those users up in Entra in batches (`directoryObjects/getByIds`,
//! 1,000 per request) without holding up the page; the next load shows the result.
//!
//! A user Entra no longer has is flagged `not_found` ("This user cannot be found in Microsoft
//! Entra."); one it has is `disabled` or `active` as its `accountEnabled` says (when the answer
//! leaves it out, a user flagged `not_found` becomes `active` again and others keep their status).
//!
//! For each user Paired with Entra that Entra still has, the check also reads the user's FIDO2
//! methods: a passkey keybridge registered that Entra no longer holds was removed there by
//! someone else (an admin in the Entra admin center, the user in My Security Info). Core's
//! `PasskeyRemovedInEntra` then applies: with no passkey left, the user is back to Paired with
//! keybridge, the step is audited (`user.passkey_removed_in_entra`) and the groups follow.
//! keybridge does not register a new passkey on its own after that (the removal was someone's
//! decision); turning native login off and on again asks the phone for a new one.

use std::collections::HashMap;
use std::time::Duration;

use keybridge_core::lifecycle::state_for;
use keybridge_core::{Command, EntraStatus, StoredUserFacts, UserFacts, UserState, apply};
use keybridge_graph::{GraphClient, GraphError};
use keybridge_store::{
    Credential, CredentialStatus, JobContext, JobError, NewAuditEvent, NewJob, Store, Timestamp,
    User,
};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::jobs::{QUEUE, STATUS_CHECK, graph_failure, store_failure};
use crate::services::facts::has_open_invite;
use crate::services::{is_method_of, job_integration};

/// Users checked less than this long ago are not checked again when the list is opened.
pub const RECHECK_AFTER: Duration = Duration::from_secs(10 * 60);

/// Whether `user` is due for a status check at `now`.
pub fn is_due(user: &User, now: Timestamp) -> bool {
    user.status_checked_at
        .is_none_or(|at| at.plus(RECHECK_AFTER) <= now)
}

/// The job checking these users (deduplicated for the same set while it is queued).
pub fn job(integration_id: &str, user_ids: &[String]) -> NewJob {
    let mut sorted = user_ids.to_vec();
    sorted.sort();
    let digest = Sha256::digest(sorted.join(",").as_bytes());
    let key: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    NewJob::new(
        QUEUE,
        STATUS_CHECK,
        serde_json::json!({ "integration_id": integration_id, "user_ids": sorted }),
    )
    .dedupe_key(format!("{STATUS_CHECK}:{integration_id}:{key}"))
    .max_attempts(3)
}

/// Runs one status check.
pub async fn run(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    let store = ctx.store();
    let integration_id = crate::jobs::integration_id(ctx)?;
    let user_ids: Vec<String> = ctx
        .job
        .payload
        .get("user_ids")
        .and_then(|v| v.as_array())
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let (integration, client) = job_integration(app, ctx, &integration_id).await?;
    let mut users: HashMap<String, User> = HashMap::new();
    for id in &user_ids {
        match store.users().get(id).await {
            Ok(user) if user.integration_id == integration.id => {
                users.insert(user.entra_object_id.clone(), user);
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(store_failure(e)),
        }
    }
    let object_ids: Vec<String> = users.keys().cloned().collect();
    let found = client
        .get_users_by_ids(&object_ids)
        .await
        .map_err(graph_failure)?;
    let mut found: HashMap<String, Option<bool>> = found
        .into_iter()
        .map(|u| (u.id, u.account_enabled))
        .collect();
    let now = Timestamp::now();
    let mut done = 0i64;
    for (object_id, user) in &users {
        let status = match found.remove(object_id) {
            None => EntraStatus::NotFound,
            Some(Some(true)) => EntraStatus::Active,
            Some(Some(false)) => EntraStatus::Disabled,
            Some(None) if user.entra_status == EntraStatus::NotFound => EntraStatus::Active,
            Some(None) => user.entra_status,
        };
        store
            .users()
            .set_entra_status(&user.id, status, now)
            .await
            .map_err(store_failure)?;
        if status != EntraStatus::NotFound && user.state == UserState::PairedWithEntra {
            notice_removed_passkeys(app, store, &client, user).await?;
        }
        done += 1;
    }
    ctx.set_progress(done, 0, done).await?;
    Ok(())
}

/// The passkeys keybridge registered for `user` (on phones not being unpaired).
async fn registered_passkeys(store: &Store, user: &User) -> Result<Vec<Credential>, JobError> {
    let mut found = Vec::new();
    for phone in store
        .phones()
        .list_for_user(&user.id)
        .await
        .map_err(store_failure)?
    {
        if phone.unpairing_at.is_some() {
            continue;
        }
        found.extend(
            store
                .credentials()
                .list_for_phone(&phone.id)
                .await
                .map_err(store_failure)?
                .into_iter()
                .filter(|c| c.status == CredentialStatus::Registered),
        );
    }
    Ok(found)
}

/// Applies `PasskeyRemovedInEntra` for each passkey of `user` that Entra no longer holds.
async fn notice_removed_passkeys(
    app: &App,
    store: &Store,
    client: &GraphClient,
    user: &User,
) -> Result<(), JobError> {
    // Read before Entra is, so that a passkey registered meanwhile is not taken as removed.
    let ours = registered_passkeys(store, user).await?;
    if ours.is_empty() {
        return Ok(());
    }
    let methods = match client.list_fido2_methods(&user.entra_object_id).await {
        Ok(methods) => methods,
        // Gone since the look-up above: the next check flags the account.
        Err(GraphError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(graph_failure(e)),
    };
    for credential in ours
        .iter()
        .filter(|c| !methods.iter().any(|m| is_method_of(c, &m.id)))
    {
        let phones = store
            .phones()
            .list_for_user(&user.id)
            .await
            .map_err(store_failure)?;
        let mut entra_passkeys = 0u32;
        for phone in &phones {
            let registered = store
                .credentials()
                .list_for_phone(&phone.id)
                .await
                .map_err(store_failure)?
                .iter()
                .any(|c| c.status == CredentialStatus::Registered);
            entra_passkeys += u32::from(registered);
        }
        let paired_phones = u32::try_from(phones.len()).unwrap_or(u32::MAX);
        let current = store.users().get(&user.id).await.map_err(store_failure)?;
        let invited = has_open_invite(store, &user.id, Timestamp::now())
            .await
            .map_err(store_failure)?;
        let facts = UserFacts::from_stored(StoredUserFacts {
            state: state_for(paired_phones, entra_passkeys),
            unpaired: false,
            entra_status: current.entra_status,
            invited,
            paired_phones,
            entra_passkeys,
        })
        .map_err(|e| JobError::Permanent(format!("user {}: {e}", user.id)))?;
        let transition = apply(&facts, Command::PasskeyRemovedInEntra)
            .map_err(|e| JobError::Permanent(format!("user {}: {e}", user.id)))?;
        let next = &transition.facts;
        let mut tx = store.begin().await.map_err(store_failure)?;
        tx.credentials()
            .mark_removed(&credential.id, Timestamp::now())
            .await
            .map_err(store_failure)?;
        tx.users()
            .set_state(&user.id, next.state(), next.is_unpaired())
            .await
            .map_err(store_failure)?;
        tx.audit()
            .append(
                NewAuditEvent::new("system", "user.passkey_removed_in_entra")
                    .target(format!("user:{}", user.id))
                    .details(serde_json::json!({
                        "phone_id": credential.phone_id,
                        "credential_id": credential.credential_id,
                        "entra_method_id": credential.entra_method_id,
                        "state": next.state().as_str(),
                    })),
            )
            .await
            .map_err(store_failure)?;
        if !transition.groups_to_add.is_empty() || !transition.groups_to_remove.is_empty() {
            tx.jobs()
                .enqueue(app.attempts(crate::jobs::group_sync(&user.integration_id)))
                .await
                .map_err(store_failure)?;
        }
        tx.commit().await.map_err(store_failure)?;
        tracing::info!(user = %user.id, credential = %credential.credential_id, "a passkey was removed in Entra by someone else");
    }
    Ok(())
}
