//! Several workers in two separate pools (as two keybridge instances would have) drain a
//! queue: every job runs exactly once. A worker killed mid-job leads to exactly one re-run
//! once its lease ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keybridge_store::{
    JobContext, JobFuture, JobHandler, JobState, NewJob, Store, StoreOptions, WorkerConfig,
    WorkerPool,
};
use keybridge_testkit::{Backend, TestDatabase};
use serde_json::json;

#[derive(Clone, Default)]
struct Count {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    hang: bool,
}

impl JobHandler for Count {
    fn kind(&self) -> &str {
        "count"
    }
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            *self
                .runs
                .lock()
                .unwrap()
                .entry(ctx.job.id.clone())
                .or_insert(0) += 1;
            if self.hang {
                // Stands for a worker stuck or killed mid-job.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok(())
        })
    }
}

fn config(queue: &str, lease: Duration) -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        lease,
        heartbeat: lease / 4,
        poll_interval: Duration::from_millis(10),
        ..WorkerConfig::new(queue)
    }
}

async fn connect(db: &TestDatabase) -> Store {
    Store::connect(
        db.url(),
        StoreOptions::new(crate::common::keyring()).max_connections(10),
    )
    .await
    .unwrap()
}

async fn drain(db: TestDatabase, total: usize) {
    let a = connect(&db).await;
    let b = connect(&db).await;
    let jobs: Vec<NewJob> = (0..total)
        .map(|n| NewJob::new("bulk", "count", json!({"n": n})))
        .collect();
    for chunk in jobs.chunks(1000) {
        a.jobs().enqueue_many(chunk).await.unwrap();
    }
    let handler = Count::default();
    let started = Instant::now();
    let wa = WorkerPool::new(a.clone(), config("bulk", Duration::from_secs(30)))
        .register(handler.clone())
        .start();
    let wb = WorkerPool::new(b.clone(), config("bulk", Duration::from_secs(30)))
        .register(handler.clone())
        .start();
    loop {
        let counts = a.jobs().counts().await.unwrap();
        if counts.succeeded as usize == total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "queue not drained: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wa.shutdown(Duration::from_secs(5)).await;
    wb.shutdown(Duration::from_secs(5)).await;
    let runs = handler.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), total, "every job ran");
    let repeats: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeats.is_empty(), "jobs run more than once: {repeats:?}");
    let counts = a.jobs().counts().await.unwrap();
    assert_eq!(
        (
            counts.succeeded as usize,
            counts.queued,
            counts.running,
            counts.dead
        ),
        (total, 0, 0, 0)
    );
    eprintln!(
        "drained {total} jobs with 8 workers in {:?}",
        started.elapsed()
    );
    a.close().await;
    b.close().await;
}

#[test]
fn two_pools_drain_10000_jobs_exactly_once_postgres() {
    keybridge_testkit::run(Backend::Postgres, |db| drain(db, 10_000));
}

#[test]
fn two_pools_drain_2000_jobs_exactly_once_sqlite() {
    keybridge_testkit::run(Backend::Sqlite, |db| drain(db, 2_000));
}

async fn killed_worker(db: TestDatabase) {
    let lease = Duration::from_millis(800);
    let a = connect(&db).await;
    let b = connect(&db).await;
    let id = a
        .jobs()
        .enqueue(NewJob::new("kill", "count", json!({})))
        .await
        .unwrap()
        .id()
        .to_string();
    let stuck = Count {
        hang: true,
        ..Count::default()
    };
    let wa = WorkerPool::new(a.clone(), config("kill", lease))
        .register(stuck.clone())
        .start();
    let started = Instant::now();
    while stuck.runs.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "worker A never started the job"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Heartbeats keep the lease while A lives: B must not take the job.
    let healthy = Count::default();
    let wb = WorkerPool::new(b.clone(), config("kill", lease))
        .register(healthy.clone())
        .start();
    tokio::time::sleep(lease * 2).await;
    assert!(
        healthy.runs.lock().unwrap().is_empty(),
        "a live lease was taken over"
    );
    // Kill A mid-job: no completion, no failure, no more heartbeats.
    wa.abort();
    let killed_at = Instant::now();
    loop {
        if a.jobs().get(&id).await.unwrap().state == JobState::Succeeded {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "the job was not taken over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A little longer: nobody runs it a third time.
    tokio::time::sleep(lease * 2).await;
    wb.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stuck.runs.lock().unwrap().get(&id), Some(&1));
    assert_eq!(
        healthy.runs.lock().unwrap().get(&id),
        Some(&1),
        "exactly one re-run"
    );
    let job = a.jobs().get(&id).await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 2));
    a.close().await;
    b.close().await;
}

#[test]
fn a_killed_worker_leads_to_exactly_one_rerun_postgres() {
    keybridge_testkit::run(Backend::Postgres, killed_worker);
}

#[test]
fn a_killed_worker_leads_to_exactly_one_rerun_sqlite() {
    keybridge_testkit::run(Backend::Sqlite, killed_worker);
}
