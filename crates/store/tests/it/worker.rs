//! The worker runtime: handlers per kind, retries, permanent failures, panics, unknown kinds,
//! graceful shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keybridge_store::{
    Backoff, JobContext, JobError, JobFuture, JobHandler, JobState, NewJob, Store, WorkerConfig,
    WorkerPool,
};
use serde_json::json;

/// Records every run by job id; fails or panics on request (payload `mode`).
#[derive(Clone, Default)]
struct Recorder {
    runs: Arc<Mutex<HashMap<String, u32>>>,
}

impl JobHandler for Recorder {
    fn kind(&self) -> &str {
        "record"
    }
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let n = {
                let mut runs = self.runs.lock().unwrap();
                let n = runs.entry(ctx.job.id.clone()).or_insert(0);
                *n += 1;
                *n
            };
            match ctx.job.payload["mode"].as_str() {
                Some("fail-once") if n == 1 => Err(JobError::Retry("transient".into())),
                Some("permanent") => Err(JobError::Permanent("user no longer exists".into())),
                Some("panic-once") if n == 1 => panic!("handler bug"),
                Some("slow") => {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    ctx.add_progress(1, 0).await?;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }
}

fn config(queue: &str) -> WorkerConfig {
    WorkerConfig {
        concurrency: 3,
        lease: Duration::from_secs(5),
        heartbeat: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        backoff: Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            jitter: 0.1,
        },
        ..WorkerConfig::new(queue)
    }
}

async fn wait_until_settled(store: &Store, ids: &[String]) {
    for _ in 0..500 {
        let mut settled = true;
        for id in ids {
            let state = store.jobs().get(id).await.unwrap().state;
            if matches!(state, JobState::Queued | JobState::Running) {
                settled = false;
            }
        }
        if settled {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("jobs did not settle");
}

async fn handlers_run_retry_fail_and_survive_panics(store: Store) {
    let recorder = Recorder::default();
    let workers = WorkerPool::new(store.clone(), config("q"))
        .register(recorder.clone())
        .start();
    let mut ids = Vec::new();
    for mode in ["ok", "fail-once", "permanent", "panic-once"] {
        ids.push(
            store
                .jobs()
                .enqueue(NewJob::new("q", "record", json!({"mode": mode})))
                .await
                .unwrap()
                .id()
                .to_string(),
        );
    }
    ids.push(
        store
            .jobs()
            .enqueue(NewJob::new("q", "no-such-kind", json!({})))
            .await
            .unwrap()
            .id()
            .to_string(),
    );
    wait_until_settled(&store, &ids).await;
    workers.shutdown(Duration::from_secs(5)).await;

    let runs = recorder.runs.lock().unwrap().clone();
    let job = |i: usize| ids[i].clone();
    let state = |i: usize| {
        let store = store.clone();
        let id = job(i);
        async move { store.jobs().get(&id).await.unwrap() }
    };
    let ok = state(0).await;
    assert_eq!(
        (ok.state, ok.attempts, runs[&job(0)]),
        (JobState::Succeeded, 1, 1)
    );
    let retried = state(1).await;
    assert_eq!(
        (retried.state, retried.attempts, runs[&job(1)]),
        (JobState::Succeeded, 2, 2)
    );
    assert_eq!(retried.last_error.as_deref(), Some("transient"));
    let permanent = state(2).await;
    assert_eq!((permanent.state, permanent.attempts), (JobState::Dead, 1));
    assert_eq!(
        permanent.last_error.as_deref(),
        Some("user no longer exists")
    );
    let panicked = state(3).await;
    assert_eq!(
        (panicked.state, panicked.attempts),
        (JobState::Succeeded, 2)
    );
    assert_eq!(
        panicked.last_error.as_deref(),
        Some("the job handler panicked")
    );
    let unknown = state(4).await;
    assert_eq!(unknown.state, JobState::Dead);
    assert_eq!(
        unknown.last_error.as_deref(),
        Some("no handler is registered for job kind \"no-such-kind\"")
    );
}

async fn shutdown_lets_running_jobs_finish(store: Store) {
    let recorder = Recorder::default();
    let workers = WorkerPool::new(store.clone(), config("q"))
        .register(recorder.clone())
        .start();
    let id = store
        .jobs()
        .enqueue(NewJob::new("q", "record", json!({"mode": "slow"})))
        .await
        .unwrap()
        .id()
        .to_string();
    for _ in 0..200 {
        if store.jobs().get(&id).await.unwrap().state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers.shutdown(Duration::from_secs(10)).await;
    let job = store.jobs().get(&id).await.unwrap();
    assert_eq!((job.state, job.progress_done), (JobState::Succeeded, 1));
    // After shutdown nothing claims new work.
    let later = store
        .jobs()
        .enqueue(NewJob::new("q", "record", json!({})))
        .await
        .unwrap()
        .id()
        .to_string();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        store.jobs().get(&later).await.unwrap().state,
        JobState::Queued
    );
}

/// Works until told that its lease is gone.
#[derive(Clone, Default)]
struct Patient {
    saw_lease_lost: Arc<Mutex<bool>>,
}

impl JobHandler for Patient {
    fn kind(&self) -> &str {
        "patient"
    }
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            for _ in 0..500 {
                if ctx.lease_lost() {
                    *self.saw_lease_lost.lock().unwrap() = true;
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(JobError::Retry("never told".into()))
        })
    }
}

async fn a_cancelled_running_job_tells_its_handler_and_stays_cancelled(store: Store) {
    let handler = Patient::default();
    let workers = WorkerPool::new(store.clone(), config("q"))
        .register(handler.clone())
        .start();
    let id = store
        .jobs()
        .enqueue(NewJob::new("q", "patient", json!({})))
        .await
        .unwrap()
        .id()
        .to_string();
    for _ in 0..200 {
        if store.jobs().get(&id).await.unwrap().state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.jobs().cancel(&id).await.unwrap();
    for _ in 0..200 {
        if *handler.saw_lease_lost.lock().unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        *handler.saw_lease_lost.lock().unwrap(),
        "the handler was told"
    );
    workers.shutdown(Duration::from_secs(5)).await;
    // Its Ok(()) after losing the lease did not overwrite the cancellation.
    assert_eq!(
        store.jobs().get(&id).await.unwrap().state,
        JobState::Cancelled
    );
}

crate::store_tests!(
    handlers_run_retry_fail_and_survive_panics,
    shutdown_lets_running_jobs_finish,
    a_cancelled_running_job_tells_its_handler_and_stays_cancelled,
);
