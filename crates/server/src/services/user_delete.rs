//! Deleting a user (issue 6, lifecycle 8): irreversible and confirmed by the username. The
//! request checks core's rules and queues a job; the job deletes, in Entra, every passkey
//! keybridge created for the user (found by their credential ids among the user's FIDO2
//! methods, so one whose registration answer was lost is found too) — passkeys others
//! created are left alone — takes the user out of keybridge's four groups, and then removes
//! the user with their phones, credentials and invitations from keybridge's database.

use axum::http::StatusCode;
use keybridge_core::{Command, apply};
use keybridge_graph::GraphError;
use keybridge_store::{CredentialStatus, JobContext, JobError, NewAuditEvent, NewJob, Timestamp};

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{DELETE_USER, QUEUE, graph_failure, store_failure};
use crate::services::facts::{has_open_invite, user_facts};

/// The job deleting one user.
pub fn job(user_id: &str, actor: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        DELETE_USER,
        serde_json::json!({ "user_id": user_id, "actor": actor }),
    )
    .dedupe_key(format!("{DELETE_USER}:{user_id}"))
}

/// Checks the confirmation and core's rules, audits the request and queues the job.
pub async fn request(
    app: &App,
    user_id: &str,
    confirm: &str,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<String> {
    let store = app.store();
    let user = store.users().get(user_id).await?;
    if !confirm.trim().eq_ignore_ascii_case(&user.upn) {
        return Err(ApiError::invalid(
            "confirm",
            format!(
                "deleting a user cannot be undone: confirm by sending the username {:?}",
                user.upn
            ),
        ));
    }
    let invited = has_open_invite(store, &user.id, Timestamp::now()).await?;
    let facts = user_facts(&user, invited).ok_or_else(|| {
        ApiError::internal(format!("user {} has inconsistent stored facts", user.id))
    })?;
    apply(&facts, Command::DeleteAccount).map_err(|e| {
        ApiError::new(StatusCode::CONFLICT, "not_allowed", e.to_string()).with_field("user")
    })?;
    let mut tx = store.begin().await?;
    let job = tx
        .jobs()
        .enqueue(app.attempts(job(&user.id, actor)))
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "user.delete.request")
                    .target(format!("user:{}", user.id))
                    .details(serde_json::json!({"upn": user.upn, "job_id": job.id()})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(job.id().to_owned())
}

/// Runs the deletion.
pub async fn run(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    let store = ctx.store();
    let user_id = crate::jobs::payload_str(ctx, "user_id")?;
    let actor = crate::jobs::actor(ctx);
    let user = match store.users().get(user_id).await {
        Ok(user) => user,
        // Deleted by an earlier attempt that lost its lease after the last step.
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(store_failure(e)),
    };
    let (integration, client) = super::job_integration(app, ctx, &user.integration_id).await?;

    // Our passkeys, by credential id; Entra's method id is base64url(credential id) plus a
    // padding digit.
    let ours: Vec<_> = store
        .credentials()
        .list_for_user(&user.id)
        .await
        .map_err(store_failure)?
        .into_iter()
        .filter(|c| c.status != CredentialStatus::Removed)
        .collect();
    let mut deleted_methods = Vec::new();
    if !ours.is_empty() {
        let methods = match client.list_fido2_methods(&user.entra_object_id).await {
            Ok(methods) => methods,
            Err(GraphError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(graph_failure(e)),
        };
        for method in methods {
            let matches = ours.iter().find(|c| {
                c.entra_method_id.as_deref() == Some(method.id.as_str())
                    || method
                        .id
                        .strip_prefix(c.credential_id.as_str())
                        .is_some_and(|rest| rest.len() <= 1)
            });
            if let Some(credential) = matches {
                match client
                    .delete_fido2_method(&user.entra_object_id, &method.id)
                    .await
                {
                    Ok(()) | Err(GraphError::NotFound(_)) => {}
                    Err(e) => return Err(graph_failure(e)),
                }
                store
                    .credentials()
                    .mark_removed(&credential.id, Timestamp::now())
                    .await
                    .map_err(store_failure)?;
                deleted_methods.push(method.id.clone());
            }
        }
    }

    let groups = &integration.groups;
    for group in [
        &groups.eligible,
        &groups.paired_keybridge,
        &groups.paired_entra,
        &groups.not_enrolled,
    ]
    .into_iter()
    .flatten()
    {
        let change = client
            .remove_group_members(group, std::slice::from_ref(&user.entra_object_id))
            .await
            .map_err(graph_failure)?;
        if let Some(failure) = change.failed.first() {
            return Err(JobError::Retry(format!(
                "removing the user from group {group} failed: {}",
                failure.error
            )));
        }
    }

    let mut tx = store.begin().await.map_err(store_failure)?;
    tx.users().delete(&user.id).await.map_err(store_failure)?;
    tx.audit()
        .append(
            NewAuditEvent::new(actor, "user.delete")
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({
                    "upn": user.upn,
                    "entra_object_id": user.entra_object_id,
                    "entra_passkeys_deleted": deleted_methods,
                })),
        )
        .await
        .map_err(store_failure)?;
    tx.commit().await.map_err(store_failure)?;
    ctx.set_progress(1, 0, 1).await.ok();
    Ok(())
}
