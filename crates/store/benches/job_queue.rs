//! Job queue throughput: claim + complete, on SQLite and PostgreSQL, with 1, 4 and 16
//! concurrent workers. Prints a table of jobs/s (median of several runs).
//!
//! `cargo bench -p keybridge-store --bench job_queue`
//! Environment: `KEYBRIDGE_BENCH_JOBS` (jobs per run, default 2000), `KEYBRIDGE_BENCH_RUNS`
//! (runs per cell, default 5), `KEYBRIDGE_TEST_DATABASE_URL` (use this PostgreSQL server
//! instead of the throwaway cluster).

// A benchmark binary: any failure should stop it loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use keybridge_store::{KeyRing, NewJob, SecretKey, Store, StoreOptions, Timestamp};
use keybridge_testkit::{Backend, TestDatabase};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn one_run(store: &Store, workers: usize, jobs: usize) -> f64 {
    let batch: Vec<NewJob> = (0..jobs)
        .map(|n| NewJob::new("bench", "noop", serde_json::json!({ "n": n })))
        .collect();
    for chunk in batch.chunks(1000) {
        store.jobs().enqueue_many(chunk).await.expect("enqueue");
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let owner = format!("bench-{w}");
                let mut done = 0usize;
                while let Some(job) = store
                    .jobs()
                    .claim("bench", &owner, Duration::from_secs(60))
                    .await
                    .expect("claim")
                {
                    store
                        .jobs()
                        .complete(&job.id, &owner)
                        .await
                        .expect("complete");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("worker task");
    }
    let elapsed = started.elapsed();
    assert_eq!(total, jobs, "every job ran once");
    store
        .jobs()
        .purge_finished(Timestamp::now().plus(Duration::from_secs(1)))
        .await
        .expect("purge");
    jobs as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported here.
    let jobs = env_number("KEYBRIDGE_BENCH_JOBS", 2000);
    let runs = env_number("KEYBRIDGE_BENCH_RUNS", 5).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("job queue: claim + complete, {jobs} jobs per run, median of {runs} runs");
    println!("| backend    | workers | jobs/s (median) | min     | max     |");
    println!("|------------|---------|-----------------|---------|---------|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend);
        runtime.block_on(async {
            for workers in [1usize, 4, 16] {
                let store = Store::connect(
                    db.url(),
                    StoreOptions::new(KeyRing::new(SecretKey::generate(), vec![]))
                        .max_connections(u32::try_from(workers + 2).unwrap_or(18)),
                )
                .await
                .expect("connect");
                // One warm-up run, not counted.
                one_run(&store, workers, jobs / 4).await;
                let mut results = Vec::new();
                for _ in 0..runs {
                    results.push(one_run(&store, workers, jobs).await);
                }
                let min = results.iter().copied().fold(f64::MAX, f64::min);
                let max = results.iter().copied().fold(0.0, f64::max);
                println!(
                    "| {:<10} | {:>7} | {:>15.0} | {:>7.0} | {:>7.0} |",
                    format!("{backend:?}"),
                    workers,
                    median(results),
                    min,
                    max
                );
                store.close().await;
            }
        });
    }
}
