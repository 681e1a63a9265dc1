//! A small async worker runtime over the job queue.
//!
//! Register one [`JobHandler`] per job kind on a [`WorkerPool`], start it, and it runs
//! `concurrency` workers on one queue. Each worker claims a job with a lease, keeps the lease
//! alive from a heartbeat task while the handler runs, then completes or fails the job
//! (retry with backoff, or dead). A panicking handler counts as a retryable failure. When
//! the lease is lost (cancelled, or taken over after a stall) the handler is told through
//! [`JobContext::lease_lost`] and its result is discarded.
//!
//! [`RunningWorkers::shutdown`] stops claiming and waits for running jobs (up to a grace
//! period); jobs still running then are abandoned and become claimable when their lease ends.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Store;
use crate::error::StoreError;
use crate::jobs::{Backoff, FailOutcome, Job};
use crate::notify::Channel;

/// How a handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network trouble, throttling...).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed: the job goes dead at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> JobError {
        JobError::Retry(e.to_string())
    }
}

/// The future a handler returns.
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// Runs jobs of one kind.
pub trait JobHandler: Send + Sync + 'static {
    /// The kind this handler runs.
    fn kind(&self) -> &str;
    /// Runs one attempt.
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a>;
}

/// What a handler gets: the job, the store, and lease status.
pub struct JobContext {
    /// The claimed job (`attempts` counts this attempt).
    pub job: Job,
    store: Store,
    owner: String,
    lease_lost: watch::Receiver<bool>,
}

impl JobContext {
    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The worker id holding the lease.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether the lease is lost (cancelled or taken over): stop work, nothing will be saved.
    pub fn lease_lost(&self) -> bool {
        *self.lease_lost.borrow()
    }

    /// Adds to the bulk progress counters.
    pub async fn add_progress(&self, done: i64, failed: i64) -> Result<(), StoreError> {
        self.store
            .jobs()
            .add_progress(&self.job.id, &self.owner, done, failed)
            .await
    }

    /// Sets the bulk progress counters.
    pub async fn set_progress(&self, done: i64, failed: i64, total: i64) -> Result<(), StoreError> {
        self.store
            .jobs()
            .set_progress(&self.job.id, &self.owner, done, failed, total)
            .await
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queue to claim from.
    pub queue: String,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Lease length.
    pub lease: Duration,
    /// Heartbeat period (well under the lease).
    pub heartbeat: Duration,
    /// Longest sleep when the queue is empty (new jobs wake workers earlier).
    pub poll_interval: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// Prefix of worker ids (e.g. host name and pid).
    pub name: String,
}

impl WorkerConfig {
    /// Defaults for `queue`: 4 workers, 60 s lease, 15 s heartbeat, 500 ms poll.
    pub fn new(queue: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            queue: queue.into(),
            concurrency: 4,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            poll_interval: Duration::from_millis(500),
            backoff: Backoff::default(),
            name: format!("pid{}", std::process::id()),
        }
    }
}

/// Handlers plus settings, not yet running.
pub struct WorkerPool {
    store: Store,
    config: WorkerConfig,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl WorkerPool {
    /// A pool on `store` with `config` and no handlers.
    pub fn new(store: Store, config: WorkerConfig) -> WorkerPool {
        WorkerPool {
            store,
            config,
            handlers: HashMap::new(),
        }
    }

    /// Adds the handler for its kind (replacing an earlier one).
    pub fn register(mut self, handler: impl JobHandler) -> WorkerPool {
        self.handlers
            .insert(handler.kind().to_string(), Arc::new(handler));
        self
    }

    /// Starts the workers on the current tokio runtime.
    pub fn start(self) -> RunningWorkers {
        let (stop_tx, stop_rx) = watch::channel(false);
        let handlers = Arc::new(self.handlers);
        let config = Arc::new(self.config);
        let wake = Arc::new(tokio::sync::Notify::new());
        // New jobs wake idle workers at once (LISTEN/NOTIFY on PostgreSQL); polling stays as
        // the fallback for lost notifications.
        let listener = {
            let store = self.store.clone();
            let wake = wake.clone();
            let queue = config.queue.clone();
            tokio::spawn(async move {
                let mut listener = match store.listen(&[Channel::Jobs]).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for new jobs; polling only");
                        return;
                    }
                };
                loop {
                    match listener.recv().await {
                        Ok(n) if n.payload == queue || n.payload.is_empty() => {
                            wake.notify_waiters()
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for new jobs failed; polling only");
                            return;
                        }
                    }
                }
            })
        };
        let run = uuid::Uuid::new_v4().simple().to_string();
        let tasks = (0..config.concurrency.max(1))
            .map(|i| {
                let worker = Worker {
                    store: self.store.clone(),
                    config: config.clone(),
                    handlers: handlers.clone(),
                    wake: wake.clone(),
                    owner: format!("{}-{}-{i}", config.name, &run[..8]),
                };
                tokio::spawn(worker.run(stop_rx.clone()))
            })
            .collect();
        RunningWorkers {
            stop: stop_tx,
            tasks,
            listener: AbortOnDrop(listener.abort_handle()),
        }
    }
}

/// Started workers.
pub struct RunningWorkers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Stops the job listener when the workers go.
    #[allow(dead_code)]
    listener: AbortOnDrop,
}

impl RunningWorkers {
    /// Stops claiming, waits up to `grace` for running jobs, then abandons the rest (their
    /// leases expire and another worker takes them).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Stops every worker at once, mid-job, as a crash would: nothing is completed or failed.
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Aborts a spawned task when dropped, so that aborting a worker (shutdown timeout, crash
/// simulation) also stops its heartbeat and its handler instead of leaving them detached.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Worker {
    store: Store,
    config: Arc<WorkerConfig>,
    handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>,
    wake: Arc<tokio::sync::Notify>,
    owner: String,
}

impl Worker {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self
                .store
                .jobs()
                .claim(&self.config.queue, &self.owner, self.config.lease)
                .await
            {
                Ok(Some(job)) => self.run_one(job).await,
                Ok(None) => {
                    if let Err(e) = self.store.jobs().reap_expired(&self.config.queue).await {
                        tracing::warn!(worker = %self.owner, error = %e, "reaping expired jobs failed");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = self.wake.notified() => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %self.owner, error = %e, "claiming a job failed");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    async fn run_one(&self, job: Job) {
        let (lost_tx, lost_rx) = watch::channel(false);
        let heartbeat = {
            let store = self.store.clone();
            let id = job.id.clone();
            let owner = self.owner.clone();
            let every = self.config.heartbeat;
            let lease = self.config.lease;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match store.jobs().heartbeat(&id, &owner, lease).await {
                        Ok(()) => {}
                        Err(StoreError::LeaseLost { .. }) => {
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!(job = %id, error = %e, "heartbeat failed"),
                    }
                }
            })
        };
        let _heartbeat_guard = AbortOnDrop(heartbeat.abort_handle());
        let id = job.id.clone();
        let kind = job.kind.clone();
        let handler = self.handlers.get(&kind).cloned();
        let ctx = JobContext {
            job,
            store: self.store.clone(),
            owner: self.owner.clone(),
            lease_lost: lost_rx,
        };
        let Some(handler) = handler else {
            heartbeat.abort();
            let error = format!("no handler is registered for job kind {kind:?}");
            self.record(&id, &kind, Err(JobError::Permanent(error)))
                .await;
            return;
        };
        // Its own task, so that a panic is caught as a JoinError.
        let task = tokio::spawn(async move { handler.run(&ctx).await });
        let _handler_guard = AbortOnDrop(task.abort_handle());
        let result = match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(JobError::Retry("the job handler panicked".into())),
            Err(_) => Err(JobError::Retry("the job handler was cancelled".into())),
        };
        heartbeat.abort();
        self.record(&id, &kind, result).await;
    }

    async fn record(&self, id: &str, kind: &str, result: Result<(), JobError>) {
        let mut jobs = self.store.jobs();
        let outcome = match &result {
            Ok(()) => jobs.complete(id, &self.owner).await.map(|()| None),
            Err(JobError::Retry(e)) => jobs
                .fail(id, &self.owner, e, false, &self.config.backoff)
                .await
                .map(Some),
            Err(JobError::Permanent(e)) => jobs
                .fail(id, &self.owner, e, true, &self.config.backoff)
                .await
                .map(Some),
        };
        match outcome {
            Ok(None) => tracing::debug!(job = %id, kind = %kind, "job succeeded"),
            Ok(Some(FailOutcome::Retrying(at))) => {
                tracing::info!(job = %id, kind = %kind, retry_at = at.unix_millis(), "job failed, will retry")
            }
            Ok(Some(FailOutcome::Dead)) => tracing::warn!(job = %id, kind = %kind, "job is dead"),
            Err(StoreError::LeaseLost { .. }) => {
                tracing::info!(job = %id, kind = %kind, "lease lost: result discarded")
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "recording the job result failed"),
        }
    }
}
