//! The durable job queue (`jobs` table).
//!
//! A job is `queued` (waiting for `available_at`), `running` (leased to one worker until
//! `available_at`), then `succeeded`, `dead` (out of attempts, last error kept) or `cancelled`.
//! A running job whose lease ran out (its worker died) is claimable again: the claim query
//! treats `queued` and `running` alike once `available_at` has passed, so one partial index
//! serves both. A job whose worker died on its last allowed attempt is not handed out again;
//! [`Jobs::reap_expired`] marks it dead.
//!
//! Claiming is one statement:
//! `UPDATE jobs SET … WHERE id = (SELECT id … ORDER BY available_at, id LIMIT 1 [FOR UPDATE SKIP
//! LOCKED]) RETURNING …`. On PostgreSQL `SKIP LOCKED` lets concurrent workers take different
//! rows without waiting; on SQLite the single writer serialises claims.
//!
//! Every lease-holder operation (heartbeat, complete, fail, progress) names the worker and
//! succeeds only while that worker still holds the lease, so a worker that lost its lease
//! can never overwrite the result of the worker that took over.
//!
//! Dedupe keys: while a job with the key is queued, enqueueing another returns it (the queued
//! run will read the latest input). While it is *running*, its attempt may already have read
//! its input, so the request is not simply folded into it: the job is flagged
//! `rerun_requested`, and [`Jobs::complete`] then queues it once more instead of finishing it
//! (any number of requests during one run give one extra run). A claim clears the flag, since
//! the attempt it starts reads the input afresh; so does a failure (a retry reads the input
//! afresh too; a dead job waits for an admin) and a cancel.

use std::time::Duration;

use rand::Rng;
use sqlx::any::AnyRow;

use crate::db::{Db, Dialect};
use crate::error::{Result, StoreError};
use crate::rows::{int, new_id, opt_text, opt_ts, require, text, ts};
use crate::timestamp::Timestamp;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to run.
    Queued,
    /// Leased to a worker.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Out of attempts (or failed permanently); `last_error` says why.
    Dead,
    /// Cancelled by an admin.
    Cancelled,
}

impl JobState {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<JobState> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "dead" => JobState::Dead,
            "cancelled" => JobState::Cancelled,
            other => return Err(crate::rows::corrupt("jobs", "state", other)),
        })
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Id (UUID v7).
    pub id: String,
    /// Queue name.
    pub queue: String,
    /// Kind: selects the handler.
    pub kind: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Dedupe key.
    pub dedupe_key: Option<String>,
    /// State.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Queued: runs after this. Running: the lease ends at this.
    pub available_at: Timestamp,
    /// The worker holding the lease.
    pub lease_owner: Option<String>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Bulk progress: items done.
    pub progress_done: i64,
    /// Bulk progress: items failed.
    pub progress_failed: i64,
    /// Bulk progress: items in total.
    pub progress_total: i64,
    /// Enqueued.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Last attempt started.
    pub started_at: Option<Timestamp>,
    /// Finished (succeeded, dead or cancelled).
    pub finished_at: Option<Timestamp>,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Queue (workers claim per queue).
    pub queue: String,
    /// Kind.
    pub kind: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// While a queued or running job has this key, enqueueing another returns the existing id
    /// (and a running one is run once more after it completes).
    pub dedupe_key: Option<String>,
    /// Attempts allowed (at least 1; default 5).
    pub max_attempts: i64,
    /// Do not run before this instant (default: now).
    pub run_after: Option<Timestamp>,
    /// Progress total for bulk runs.
    pub progress_total: i64,
}

impl NewJob {
    /// A job on `queue` of `kind` with `payload`, 5 attempts, runnable now.
    pub fn new(
        queue: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
    ) -> NewJob {
        NewJob {
            queue: queue.into(),
            kind: kind.into(),
            payload,
            dedupe_key: None,
            max_attempts: 5,
            run_after: None,
            progress_total: 0,
        }
    }

    /// Sets the dedupe key.
    pub fn dedupe_key(mut self, key: impl Into<String>) -> NewJob {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Sets the attempts allowed.
    pub fn max_attempts(mut self, n: i64) -> NewJob {
        self.max_attempts = n;
        self
    }

    /// Delays the first run.
    pub fn run_after(mut self, at: Timestamp) -> NewJob {
        self.run_after = Some(at);
        self
    }
}

/// Whether an enqueue created a job or found a live duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job.
    Created(String),
    /// A queued or running job with the same dedupe key already existed (a running one will
    /// run once more after it completes).
    Existing(String),
}

impl Enqueued {
    /// The job id either way.
    pub fn id(&self) -> &str {
        match self {
            Enqueued::Created(id) | Enqueued::Existing(id) => id,
        }
    }
}

/// Retry delays: `base * 2^(attempt-1)`, capped, with ±`jitter` (a fraction) so that jobs
/// failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// Random spread, 0.0..=1.0 (0.25 = ±25 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(3600),
            jitter: 0.25,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 = after the first failure), without jitter.
    pub fn nominal(&self, attempt: i64) -> Duration {
        let exp = u32::try_from(attempt.clamp(1, 32) - 1).unwrap_or(31);
        self.base
            .checked_mul(2u32.saturating_pow(exp))
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay with jitter applied.
    pub fn delay(&self, attempt: i64) -> Duration {
        let nominal = self.nominal(attempt).as_secs_f64();
        let spread = self.jitter.clamp(0.0, 1.0);
        let factor = if spread > 0.0 {
            rand::thread_rng().gen_range(1.0 - spread..=1.0 + spread)
        } else {
            1.0
        };
        Duration::from_secs_f64((nominal * factor).max(0.0))
    }
}

/// What [`Jobs::fail`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again to run at this instant.
    Retrying(Timestamp),
    /// Out of attempts (or permanent): dead.
    Dead,
}

/// Which jobs [`Jobs::list`] returns (newest first).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// Counts per state for the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Queued.
    pub queued: i64,
    /// Running.
    pub running: i64,
    /// Succeeded.
    pub succeeded: i64,
    /// Dead.
    pub dead: i64,
    /// Cancelled.
    pub cancelled: i64,
}

/// Repository for the job queue.
pub struct Jobs<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! job_cols {
    () => {
        "id, queue, kind, payload, dedupe_key, state, attempts, max_attempts, available_at, \
         lease_owner, last_error, progress_done, progress_failed, progress_total, created_at, \
         updated_at, started_at, finished_at"
    };
}

macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, available_at = $2, ",
            "attempts = attempts + 1, rerun_requested = 0, started_at = $3, updated_at = $3 ",
            "WHERE id = (SELECT id FROM jobs WHERE queue = $4 AND state IN ('queued', 'running') ",
            "AND available_at <= $3 AND (state = 'queued' OR attempts < max_attempts) ",
            "ORDER BY available_at, id LIMIT 1",
            $lock,
            ") RETURNING ",
            job_cols!()
        )
    };
}

const CLAIM_SQLITE: &str = claim_sql!("");
const CLAIM_POSTGRES: &str = claim_sql!(" FOR UPDATE SKIP LOCKED");

fn decode(row: &AnyRow) -> Result<Job> {
    let payload_text = text(row, "payload")?;
    Ok(Job {
        id: text(row, "id")?,
        queue: text(row, "queue")?,
        kind: text(row, "kind")?,
        payload: serde_json::from_str(&payload_text)
            .map_err(|_| crate::rows::corrupt("jobs", "payload", &payload_text))?,
        dedupe_key: opt_text(row, "dedupe_key")?,
        state: JobState::parse(&text(row, "state")?)?,
        attempts: int(row, "attempts")?,
        max_attempts: int(row, "max_attempts")?,
        available_at: ts(row, "available_at")?,
        lease_owner: opt_text(row, "lease_owner")?,
        last_error: opt_text(row, "last_error")?,
        progress_done: int(row, "progress_done")?,
        progress_failed: int(row, "progress_failed")?,
        progress_total: int(row, "progress_total")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        started_at: opt_ts(row, "started_at")?,
        finished_at: opt_ts(row, "finished_at")?,
    })
}

/// Error text is kept bounded so a huge error cannot bloat the table.
fn bounded(error: &str) -> String {
    const MAX: usize = 4000;
    if error.len() <= MAX {
        return error.to_string();
    }
    let mut end = MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &error[..end])
}

impl Jobs<'_> {
    /// Enqueues a job, or returns the live job with the same dedupe key.
    pub async fn enqueue(&mut self, job: NewJob) -> Result<Enqueued> {
        require("queue", &job.queue)?;
        require("kind", &job.kind)?;
        if job.max_attempts < 1 {
            return Err(StoreError::Invalid {
                field: "max attempts",
                reason: format!("{} is less than 1", job.max_attempts),
            });
        }
        let now = Timestamp::now();
        let payload = serde_json::to_string(&job.payload).unwrap_or_else(|_| "null".to_string());
        // A finished job with the same key may leave between the insert and the lookup; a
        // few rounds settle it.
        for _ in 0..5 {
            let id = new_id();
            let mut conn = self.db.conn().await?;
            // DO NOTHING without a target: the partial unique index on live dedupe keys is the
            // only one an insert with a fresh id can hit.
            let inserted: Option<String> = sqlx::query_scalar(
                "INSERT INTO jobs (id, queue, kind, payload, dedupe_key, state, max_attempts, \
                 available_at, progress_total, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $9) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&id)
            .bind(&job.queue)
            .bind(&job.kind)
            .bind(&payload)
            .bind(&job.dedupe_key)
            .bind(job.max_attempts)
            .bind(job.run_after.unwrap_or(now).unix_millis())
            .bind(job.progress_total)
            .bind(now.unix_millis())
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(id) = inserted {
                drop(conn);
                crate::notify::notify_on(&mut self.db, crate::notify::Channel::Jobs, &job.queue)
                    .await?;
                return Ok(Enqueued::Created(id));
            }
            // A running one may have read its input already: ask for one more run.
            let running: Option<String> = sqlx::query_scalar(
                "UPDATE jobs SET rerun_requested = 1 WHERE dedupe_key = $1 AND state = 'running' \
                 RETURNING id",
            )
            .bind(&job.dedupe_key)
            .fetch_optional(&mut *conn)
            .await?;
            let existing = match running {
                Some(id) => Some(id),
                None => {
                    sqlx::query_scalar(
                        "SELECT id FROM jobs WHERE dedupe_key = $1 AND state = 'queued'",
                    )
                    .bind(&job.dedupe_key)
                    .fetch_optional(&mut *conn)
                    .await?
                }
            };
            if let Some(id) = existing {
                return Ok(Enqueued::Existing(id));
            }
        }
        Err(StoreError::Duplicate {
            entity: "a live job",
            field: "dedupe key",
        })
    }

    /// Enqueues many jobs in one transaction (no dedupe keys). Returns their ids.
    pub async fn enqueue_many(&mut self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let now = Timestamp::now();
        let mut ids = Vec::with_capacity(jobs.len());
        let mut tx = self.db.begin().await?;
        for job in jobs {
            require("queue", &job.queue)?;
            require("kind", &job.kind)?;
            let id = new_id();
            sqlx::query(
                "INSERT INTO jobs (id, queue, kind, payload, dedupe_key, state, max_attempts, \
                 available_at, progress_total, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $9)",
            )
            .bind(&id)
            .bind(&job.queue)
            .bind(&job.kind)
            .bind(serde_json::to_string(&job.payload).unwrap_or_else(|_| "null".to_string()))
            .bind(&job.dedupe_key)
            .bind(job.max_attempts.max(1))
            .bind(job.run_after.unwrap_or(now).unix_millis())
            .bind(job.progress_total)
            .bind(now.unix_millis())
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        for queue in queues {
            crate::notify::notify_on(&mut self.db, crate::notify::Channel::Jobs, queue).await?;
        }
        Ok(ids)
    }

    /// Takes the next runnable job of `queue` for `owner`, leased for `lease`. A job whose
    /// previous lease expired counts as runnable.
    pub async fn claim(
        &mut self,
        queue: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>> {
        let now = Timestamp::now();
        let sql = match self.db.dialect() {
            Dialect::Sqlite => CLAIM_SQLITE,
            Dialect::Postgres => CLAIM_POSTGRES,
        };
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(sql)
            .bind(owner)
            .bind(now.plus(lease).unix_millis())
            .bind(now.unix_millis())
            .bind(queue)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Marks dead the running jobs of `queue` whose lease ended after their last allowed
    /// attempt: their worker stopped (crashed, killed) on every attempt, so the job is not
    /// handed out again (a job that kills its worker must not do so forever). Returns how
    /// many. The worker runtime calls this when its queue is idle.
    pub async fn reap_expired(&mut self, queue: &str) -> Result<u64> {
        let now = Timestamp::now().unix_millis();
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'dead', lease_owner = NULL, finished_at = $1, updated_at = $1, \
             last_error = 'the worker running it stopped responding (lease expired) on the last allowed attempt' \
             WHERE queue = $2 AND state = 'running' AND available_at <= $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .bind(queue)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }

    /// Extends the lease; only the current owner can. `Err(LeaseLost)` tells the worker to
    /// stop: the job was cancelled or taken over.
    pub async fn heartbeat(&mut self, id: &str, owner: &str, lease: Duration) -> Result<()> {
        let now = Timestamp::now();
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE jobs SET available_at = $1, updated_at = $2 WHERE id = $3 AND lease_owner = $4 \
             AND state = 'running'",
        )
        .bind(now.plus(lease).unix_millis())
        .bind(now.unix_millis())
        .bind(id)
        .bind(owner)
        .execute(&mut *conn)
        .await?;
        lease_held(done.rows_affected(), id, owner)
    }

    /// Marks the job succeeded (only by the lease owner), or, when it was asked for again
    /// while it ran (`rerun_requested`), queues it once more with fresh attempts.
    pub async fn complete(&mut self, id: &str, owner: &str) -> Result<()> {
        let now = Timestamp::now().unix_millis();
        let mut conn = self.db.conn().await?;
        // One statement, so an enqueue that flags the job either lands before it (and is
        // honoured here) or finds the job no longer running (and queues its own run).
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
             state = CASE WHEN rerun_requested = 1 THEN 'queued' ELSE 'succeeded' END, \
             attempts = CASE WHEN rerun_requested = 1 THEN 0 ELSE attempts END, \
             available_at = CASE WHEN rerun_requested = 1 THEN $1 ELSE available_at END, \
             finished_at = CASE WHEN rerun_requested = 1 THEN NULL ELSE $1 END, \
             lease_owner = NULL, rerun_requested = 0, updated_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running' RETURNING state",
        )
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        lease_held(u64::from(state.is_some()), id, owner)?;
        if state.as_deref() == Some("queued") {
            let queue = self.get(id).await?.queue;
            crate::notify::notify_on(&mut self.db, crate::notify::Channel::Jobs, &queue).await?;
        }
        Ok(())
    }

    /// Records a failed attempt: queued again after the backoff delay, or dead when the
    /// attempts are used up or `permanent` is set. The error is kept either way.
    pub async fn fail(
        &mut self,
        id: &str,
        owner: &str,
        error: &str,
        permanent: bool,
        backoff: &Backoff,
    ) -> Result<FailOutcome> {
        let now = Timestamp::now();
        let mut tx = self.db.begin().await?;
        // The updates below repeat the lease condition: on PostgreSQL this read takes no lock,
        // so a cancel or a takeover may commit between it and the update, which must then
        // change nothing (an update that matched by id alone revived cancelled jobs).
        let row = sqlx::query(
            "SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::LeaseLost {
                job_id: id.to_string(),
                owner: owner.to_string(),
            });
        };
        let attempts = int(&row, "attempts")?;
        let max_attempts = int(&row, "max_attempts")?;
        let outcome = if permanent || attempts >= max_attempts {
            let done = sqlx::query(
                "UPDATE jobs SET state = 'dead', lease_owner = NULL, last_error = $1, finished_at = $2, \
                 rerun_requested = 0, updated_at = $2 WHERE id = $3 AND lease_owner = $4 \
                 AND state = 'running'",
            )
            .bind(bounded(error))
            .bind(now.unix_millis())
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            lease_held(done.rows_affected(), id, owner)?;
            FailOutcome::Dead
        } else {
            let retry_at = now.plus(backoff.delay(attempts));
            let done = sqlx::query(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, last_error = $1, \
                 available_at = $2, rerun_requested = 0, updated_at = $3 WHERE id = $4 \
                 AND lease_owner = $5 AND state = 'running'",
            )
            .bind(bounded(error))
            .bind(retry_at.unix_millis())
            .bind(now.unix_millis())
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            lease_held(done.rows_affected(), id, owner)?;
            FailOutcome::Retrying(retry_at)
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Cancels a queued or running job. A running job's worker learns it at its next
    /// heartbeat or when it tries to complete.
    pub async fn cancel(&mut self, id: &str) -> Result<()> {
        let now = Timestamp::now().unix_millis();
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, finished_at = $1, updated_at = $1, \
             rerun_requested = 0 WHERE id = $2 AND state IN ('queued', 'running')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        drop(conn);
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let job = self.get(id).await?;
        Err(StoreError::JobState {
            job_id: id.to_string(),
            state: job.state.as_str().to_string(),
            action: "cancelling",
        })
    }

    /// Queues a dead or cancelled job again with fresh attempts (its last error is kept until
    /// it runs). Refused with [`StoreError::Duplicate`] when a live job has its dedupe key.
    pub async fn retry(&mut self, id: &str) -> Result<()> {
        let now = Timestamp::now().unix_millis();
        let mut conn = self.db.conn().await?;
        let queue: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'queued', attempts = 0, available_at = $1, finished_at = NULL, \
             updated_at = $1 WHERE id = $2 AND state IN ('dead', 'cancelled') RETURNING queue",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        if let Some(queue) = queue {
            crate::notify::notify_on(&mut self.db, crate::notify::Channel::Jobs, &queue).await?;
            return Ok(());
        }
        let job = self.get(id).await?;
        Err(StoreError::JobState {
            job_id: id.to_string(),
            state: job.state.as_str().to_string(),
            action: "retrying",
        })
    }

    /// Sets the progress counters of a bulk run (only by the lease owner).
    pub async fn set_progress(
        &mut self,
        id: &str,
        owner: &str,
        done: i64,
        failed: i64,
        total: i64,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET progress_done = $1, progress_failed = $2, progress_total = $3, \
             updated_at = $4 WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
        )
        .bind(done)
        .bind(failed)
        .bind(total)
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .bind(owner)
        .execute(&mut *conn)
        .await?;
        lease_held(updated.rows_affected(), id, owner)
    }

    /// Adds to the progress counters (only by the lease owner).
    pub async fn add_progress(
        &mut self,
        id: &str,
        owner: &str,
        done: i64,
        failed: i64,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET progress_done = progress_done + $1, progress_failed = progress_failed + $2, \
             updated_at = $3 WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
        )
        .bind(done)
        .bind(failed)
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .bind(owner)
        .execute(&mut *conn)
        .await?;
        lease_held(updated.rows_affected(), id, owner)
    }

    /// One job.
    pub async fn get(&mut self, id: &str) -> Result<Job> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("job", id))
    }

    /// Jobs matching `filter`, newest first, created before the job `before_id` (pass the last
    /// id of the previous page).
    pub async fn list(
        &mut self,
        filter: &JobFilter,
        before_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE ($1 = '' OR state = $1) AND ($2 = '' OR queue = $2) ",
            "AND ($3 = '' OR kind = $3) AND ($4 = '' OR id < $4) ORDER BY id DESC LIMIT $5"
        ))
        .bind(filter.state.map(JobState::as_str).unwrap_or(""))
        .bind(filter.queue.clone().unwrap_or_default())
        .bind(filter.kind.clone().unwrap_or_default())
        .bind(before_id.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Jobs per state.
    pub async fn counts(&mut self) -> Result<JobCounts> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&mut *conn)
            .await?;
        let mut counts = JobCounts::default();
        for row in rows {
            let n = int(&row, "n")?;
            match JobState::parse(&text(&row, "state")?)? {
                JobState::Queued => counts.queued = n,
                JobState::Running => counts.running = n,
                JobState::Succeeded => counts.succeeded = n,
                JobState::Dead => counts.dead = n,
                JobState::Cancelled => counts.cancelled = n,
            }
        }
        Ok(counts)
    }

    /// Deletes succeeded and cancelled jobs that finished before `before`.
    pub async fn purge_finished(&mut self, before: Timestamp) -> Result<u64> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('succeeded', 'cancelled') AND finished_at < $1",
        )
        .bind(before.unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }
}

fn lease_held(rows: u64, id: &str, owner: &str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::LeaseLost {
            job_id: id.to_string(),
            owner: owner.to_string(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_bounds() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            jitter: 0.25,
        };
        assert_eq!(b.nominal(1), Duration::from_secs(1));
        assert_eq!(b.nominal(2), Duration::from_secs(2));
        assert_eq!(b.nominal(4), Duration::from_secs(8));
        assert_eq!(b.nominal(5), Duration::from_secs(10));
        assert_eq!(b.nominal(1000), Duration::from_secs(10));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let d = b.delay(3).as_secs_f64();
            assert!((3.0..=5.0).contains(&d), "{d}");
            seen.insert((d * 10.0) as i64);
        }
        assert!(seen.len() > 3, "jitter spreads the delays");
    }

    #[test]
    fn claim_sql_differs_only_by_the_lock_clause() {
        assert!(CLAIM_POSTGRES.contains("LIMIT 1 FOR UPDATE SKIP LOCKED)"));
        assert!(!CLAIM_SQLITE.contains("FOR UPDATE"));
        assert_eq!(
            CLAIM_POSTGRES.replace(" FOR UPDATE SKIP LOCKED", ""),
            CLAIM_SQLITE
        );
    }

    #[test]
    fn long_errors_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(3000);
        let b = bounded(&long);
        assert!(b.len() <= 4000 + "…".len());
        assert!(b.ends_with('…'));
    }
}
