//! The Entra status check behind the user list (issue 6, lifecycle 9): opening a page of users
//! queues a job that looks those users up in Entra in batches (`directoryObjects/getByIds`,
//! 1,000 per request) without holding up the page; the next load shows the result.
//!
//! A user Entra no longer has is flagged `not_found` ("This user cannot be found in Microsoft
//! Entra."); one it has is `disabled` or `active` as its `accountEnabled` says (when the answer
//! leaves it out, a user flagged `not_found` becomes `active` again and others keep their status).

use std::collections::HashMap;
use std::time::Duration;

use keybridge_core::EntraStatus;
use keybridge_store::{JobContext, JobError, NewJob, Timestamp, User};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::jobs::{QUEUE, STATUS_CHECK, graph_failure, store_failure};
use crate::services::job_integration;

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
        done += 1;
    }
    ctx.set_progress(done, 0, done).await?;
    Ok(())
}
