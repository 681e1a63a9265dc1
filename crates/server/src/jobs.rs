//! The server's job kinds and their handlers, run by the store's [`WorkerPool`].
//!
//! | kind | payload | what it does |
//! |---|---|---|
//! | `directory_sync` | `{"integration_id"}` | users delta round (a full round the first time), upserts, flags vanished and disabled accounts, then brings the four groups in step |
//! | `group_sync` | `{"integration_id"}` | only the group step of the directory sync, queued after an invite |
//! | `status_check` | `{"integration_id","user_ids"}` | looks a page of the user list up in Entra in batches and records who is active, disabled or gone |
//! | `delete_user` | `{"user_id","actor"}` | deletes keybridge's Entra passkeys of the user, takes them out of the groups, removes them from the database |
//! | `provision_paired_users` | `{"integration_id"}` | queued when the native Entra login experience is enabled; queues `provision_user` for every user Paired with keybridge |
//! | `provision_user` | `{"user_id","phone_id"[,"renew_round"]}` | creationOptions, then a `provision_passkey` request in the phone's inbox; renews a lapsed challenge (see [`crate::services::provisioning`]) |
//! | `register_passkey` | `{"request_id"}` | queued by the phone's answer: records a refusal, or records the credential and registers it in Entra, then Paired with Entra |
//! | `bulk_invite` | `{"integration_id","actor","expires_in_hours","group_id"}` or `{…,"upns","lines"}` | invites a group's members or a checked CSV file's users, one result per user recorded with the invite, so a re-run invites nobody twice (see [`crate::services::bulk_invites`]) |
//! | `unpair_phone` | `{"phone_id","actor"}` | deletes the phone's passkey from Entra (a method already gone is fine), then removes the phone; the last one gone, the user is Pending with "This user unpaired from keybridge." (see [`crate::services::unpair`]) |
//!
//! Slow Graph work always runs here, never inside a request.

use std::time::Duration;

use keybridge_graph::GraphError;
use keybridge_store::{
    JobContext, JobError, JobFuture, JobHandler, NewJob, StoreError, WorkerConfig, WorkerPool,
};

use crate::app::App;

/// The queue the server's workers claim from.
pub const QUEUE: &str = "default";
/// Kind of the directory sync.
pub const DIRECTORY_SYNC: &str = "directory_sync";
/// Kind of the group reconciliation alone (after an invite or another state change).
pub const GROUP_SYNC: &str = "group_sync";
/// Kind of the status check of a page of the user list.
pub const STATUS_CHECK: &str = "status_check";
/// Kind of the deletion of one user.
pub const DELETE_USER: &str = "delete_user";
/// Kind of the provisioning run queued when native login is enabled.
pub const PROVISION_PAIRED_USERS: &str = "provision_paired_users";

/// A directory sync of one integration (deduplicated while one is queued or running).
pub fn directory_sync(integration_id: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        DIRECTORY_SYNC,
        serde_json::json!({ "integration_id": integration_id }),
    )
    .dedupe_key(format!("{DIRECTORY_SYNC}:{integration_id}"))
}

/// A group reconciliation of one integration (deduplicated while one is queued or running).
pub fn group_sync(integration_id: &str) -> NewJob {
    NewJob::new(
        QUEUE,
        GROUP_SYNC,
        serde_json::json!({ "integration_id": integration_id }),
    )
    .dedupe_key(format!("{GROUP_SYNC}:{integration_id}"))
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
        .register(GroupSync { app: app.clone() })
        .register(StatusCheck { app: app.clone() })
        .register(DeleteUser { app: app.clone() })
        .register(ProvisionPairedUsers { app: app.clone() })
        .register(ProvisionUser { app: app.clone() })
        .register(RegisterPasskey { app: app.clone() })
        .register(UnpairPhone { app: app.clone() })
        .register(BulkInvite { app: app.clone() })
}

/// The `integration_id` a job's payload names.
pub(crate) fn integration_id(ctx: &JobContext) -> Result<String, JobError> {
    payload_str(ctx, "integration_id").map(str::to_owned)
}

/// A text field the job's payload must hold (a job without it can never succeed).
pub(crate) fn payload_str<'a>(ctx: &'a JobContext, field: &str) -> Result<&'a str, JobError> {
    ctx.job
        .payload
        .get(field)
        .and_then(|v| v.as_str())
        .ok_or_else(|| JobError::Permanent(format!("the job has no {field}")))
}

/// Who asked for the job, for its audit events (`system` when nobody did).
pub(crate) fn actor(ctx: &JobContext) -> String {
    payload_str(ctx, "actor").unwrap_or("system").to_owned()
}

/// A Graph failure as a job result: transient ones are retried with backoff.
pub fn graph_failure(error: GraphError) -> JobError {
    if error.is_transient() {
        JobError::Retry(error.to_string())
    } else {
        JobError::Permanent(error.to_string())
    }
}

/// A store failure as a job result: a vanished record is permanent, the rest is retried.
pub fn store_failure(error: StoreError) -> JobError {
    if error.is_not_found() {
        JobError::Permanent(format!("{error} (deleted while the job was queued)"))
    } else {
        JobError::Retry(error.to_string())
    }
}

/// Runs [`DIRECTORY_SYNC`] through [`crate::services::directory_sync`].
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
            let report = crate::services::directory_sync::run(&self.app, &id, ctx).await?;
            tracing::info!(integration = %id, ?report, "directory sync finished");
            Ok(())
        })
    }
}

/// Runs [`GROUP_SYNC`] through [`crate::services::directory_sync::run_groups`].
pub struct GroupSync {
    app: App,
}

impl JobHandler for GroupSync {
    fn kind(&self) -> &str {
        GROUP_SYNC
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let id = integration_id(ctx)?;
            let report = crate::services::directory_sync::run_groups(&self.app, &id, ctx).await?;
            tracing::info!(integration = %id, ?report, "groups brought in step");
            Ok(())
        })
    }
}

/// Runs [`STATUS_CHECK`] through [`crate::services::status_check::run`].
pub struct StatusCheck {
    app: App,
}

impl JobHandler for StatusCheck {
    fn kind(&self) -> &str {
        STATUS_CHECK
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(crate::services::status_check::run(&self.app, ctx))
    }
}

/// Runs [`DELETE_USER`] through [`crate::services::user_delete::run`].
pub struct DeleteUser {
    app: App,
}

impl JobHandler for DeleteUser {
    fn kind(&self) -> &str {
        DELETE_USER
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(crate::services::user_delete::run(&self.app, ctx))
    }
}

/// Runs [`PROVISION_PAIRED_USERS`] through
/// [`crate::services::provisioning::provision_paired_users`].
pub struct ProvisionPairedUsers {
    app: App,
}

impl JobHandler for ProvisionPairedUsers {
    fn kind(&self) -> &str {
        PROVISION_PAIRED_USERS
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let id = integration_id(ctx)?;
            crate::services::provisioning::provision_paired_users(&self.app, ctx, &id).await
        })
    }
}

/// Runs [`crate::services::provisioning::PROVISION_USER`].
pub struct ProvisionUser {
    app: App,
}

impl JobHandler for ProvisionUser {
    fn kind(&self) -> &str {
        crate::services::provisioning::PROVISION_USER
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(crate::services::provisioning::run_provision_user(
            &self.app, ctx,
        ))
    }
}

/// Runs [`crate::services::provisioning::REGISTER_PASSKEY`].
pub struct RegisterPasskey {
    app: App,
}

impl JobHandler for RegisterPasskey {
    fn kind(&self) -> &str {
        crate::services::provisioning::REGISTER_PASSKEY
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(crate::services::provisioning::run_register_passkey(
            &self.app, ctx,
        ))
    }
}

/// Runs [`crate::services::unpair::UNPAIR_PHONE`].
pub struct UnpairPhone {
    app: App,
}

impl JobHandler for UnpairPhone {
    fn kind(&self) -> &str {
        crate::services::unpair::UNPAIR_PHONE
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(crate::services::unpair::run(&self.app, ctx))
    }
}

/// Runs [`crate::services::bulk_invites::BULK_INVITE`].
pub struct BulkInvite {
    app: App,
}

impl JobHandler for BulkInvite {
    fn kind(&self) -> &str {
        crate::services::bulk_invites::BULK_INVITE
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(crate::services::bulk_invites::run(&self.app, ctx))
    }
}

/// Queues a directory sync of every integration now and then every `interval` (on start and
/// on schedule). The dedupe key keeps one sync per integration queued, however many server
/// instances schedule them.
pub fn spawn_sync_scheduler(app: App, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = queue_all_syncs(&app).await {
                tracing::warn!(%error, "scheduling directory syncs failed; trying again next time");
            }
        }
    })
}

async fn queue_all_syncs(app: &App) -> Result<(), StoreError> {
    let integrations = app.store().integrations().list().await?;
    for integration in integrations {
        app.store()
            .jobs()
            .enqueue(app.attempts(directory_sync(&integration.id)))
            .await?;
    }
    Ok(())
}
