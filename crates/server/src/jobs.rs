//! The server's job kinds and their handlers, run by the store's [`WorkerPool`].
//!
//! | kind | payload | what it does |
//! |---|---|---|
//! | `directory_sync` | `{"integration_id"}` | pages through the tenant's users and upserts them; users the sync no longer sees are flagged "not found" |
//! | `provision_paired_users` | `{"integration_id"}` | queued when the native Entra login experience is enabled; registers the paired users' passkeys. Provisioning itself comes with the device protocol: until then the handler records that there is nothing it can do yet and finishes |
//!
//! Slow Graph work always runs here, never inside a request.

use std::time::Duration;

use keybridge_graph::{DEFAULT_USER_SELECT, GraphError};
use keybridge_store::{
    DirectoryUser, JobContext, JobError, JobFuture, JobHandler, NewJob, StoreError, Timestamp,
    WorkerConfig, WorkerPool,
};

use crate::app::App;

/// The queue the server's workers claim from.
pub const QUEUE: &str = "default";
/// Kind of the directory sync.
pub const DIRECTORY_SYNC: &str = "directory_sync";
/// Kind of the provisioning run queued when native login is enabled.
pub const PROVISION_PAIRED_USERS: &str = "provision_paired_users";

/// Users asked for per page (Graph's maximum).
const USER_PAGE_SIZE: u16 = 999;

/// A directory sync of one integration (deduplicated while one is queued or running).
pub fn directory_sync(integration_id: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        DIRECTORY_SYNC,
        serde_json::json!({ "integration_id": integration_id }),
    )
    .dedupe_key(format!("{DIRECTORY_SYNC}:{integration_id}"))
}

/// Provisioning of every paired user of one integration.
pub fn provision_paired_users(integration_id: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        PROVISION_PAIRED_USERS,
        serde_json::json!({ "integration_id": integration_id }),
    )
    .dedupe_key(format!("{PROVISION_PAIRED_USERS}:{integration_id}"))
}

/// The worker pool with every handler registered.
pub fn worker_pool(app: &App, poll_interval: Option<Duration>) -> WorkerPool {
    let jobs = &app.config().jobs;
    let mut config = WorkerConfig::new(QUEUE);
    config.concurrency = usize::try_from(jobs.workers).unwrap_or(1).max(1);
    config.lease = Duration::from_secs(jobs.lease_seconds.max(5));
    config.heartbeat = config.lease / 4;
    if let Some(poll) = poll_interval {
        config.poll_interval = poll;
    }
    WorkerPool::new(app.store().clone(), config)
        .register(DirectorySync { app: app.clone() })
        .register(ProvisionPairedUsers)
}

fn integration_id(ctx: &JobContext) -> Result<String, JobError> {
    ctx.job
        .payload
        .get("integration_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| JobError::Permanent("the job has no integration_id".to_owned()))
}

fn graph_failure(error: GraphError) -> JobError {
    if error.is_transient() {
        JobError::Retry(error.to_string())
    } else {
        JobError::Permanent(error.to_string())
    }
}

fn store_failure(error: StoreError) -> JobError {
    if error.is_not_found() {
        JobError::Permanent(format!("{error} (deleted while the job was queued)"))
    } else {
        JobError::Retry(error.to_string())
    }
}

/// Runs [`DIRECTORY_SYNC`].
pub struct DirectorySync {
    app: App,
}

impl JobHandler for DirectorySync {
    fn kind(&self) -> &str {
        DIRECTORY_SYNC
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let id = integration_id(ctx)?;
            let store = ctx.store();
            let integration = store.integrations().get(&id).await.map_err(store_failure)?;
            let client = self
                .app
                .graph()
                .for_integration(&integration)
                .map_err(graph_failure)?;
            let started = Timestamp::now();
            let mut pages = client
                .list_users(DEFAULT_USER_SELECT, USER_PAGE_SIZE)
                .map_err(graph_failure)?;
            let mut seen: i64 = 0;
            while let Some(users) = pages.next_page().await.map_err(graph_failure)? {
                if ctx.lease_lost() {
                    return Err(JobError::Retry("the lease was lost mid-sync".to_owned()));
                }
                let batch: Vec<DirectoryUser> = users
                    .into_iter()
                    .filter(|u| !u.is_guest())
                    .filter_map(|u| {
                        let upn = u.user_principal_name?;
                        Some(DirectoryUser {
                            display_name: u.display_name.unwrap_or_else(|| upn.clone()),
                            upn,
                            email: u.mail,
                            account_enabled: u.account_enabled.unwrap_or(true),
                            entra_object_id: u.id,
                        })
                    })
                    .collect();
                store
                    .users()
                    .upsert_from_directory(&id, &batch)
                    .await
                    .map_err(store_failure)?;
                seen += i64::try_from(batch.len()).unwrap_or(i64::MAX);
                ctx.set_progress(seen, 0, seen).await?;
            }
            let vanished = store
                .users()
                .mark_unseen_not_found(&id, started)
                .await
                .map_err(store_failure)?;
            store
                .integrations()
                .record_sync(&id, None, Timestamp::now())
                .await
                .map_err(store_failure)?;
            tracing::info!(integration = %id, users = seen, vanished, "directory sync finished");
            Ok(())
        })
    }
}

/// Runs [`PROVISION_PAIRED_USERS`] (see the module docs).
pub struct ProvisionPairedUsers;

impl JobHandler for ProvisionPairedUsers {
    fn kind(&self) -> &str {
        PROVISION_PAIRED_USERS
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let id = integration_id(ctx)?;
            tracing::info!(
                integration = %id,
                "native login enabled: passkey provisioning runs once phones can pair (device protocol)"
            );
            Ok(())
        })
    }
}
