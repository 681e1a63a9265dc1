//! The job queue: enqueue and dedupe, claim and lease, heartbeat, complete, backoff, dead
//! letter, cancel, retry, progress, listing.

use std::time::Duration;

use keybridge_store::{
    Backoff, Enqueued, FailOutcome, JobFilter, JobState, NewJob, Store, StoreError, Timestamp,
};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

fn job(kind: &str) -> NewJob {
    NewJob::new("default", kind, json!({"user": "u1"}))
}

async fn enqueue_dedupes_live_jobs_only(store: Store) {
    let first = store
        .jobs()
        .enqueue(job("provision").dedupe_key("provision:u1"))
        .await
        .unwrap();
    assert!(matches!(first, Enqueued::Created(_)));
    let again = store
        .jobs()
        .enqueue(job("provision").dedupe_key("provision:u1"))
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Existing(first.id().to_string()));
    // Still deduped while running (the run asked for again is the next test's subject).
    let claimed = store
        .jobs()
        .claim("default", "w1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, first.id());
    store.jobs().complete(&claimed.id, "w1").await.unwrap();
    assert_eq!(
        store.jobs().get(first.id()).await.unwrap().state,
        JobState::Succeeded
    );
    // Finished: a new one may be queued.
    let fresh = store
        .jobs()
        .enqueue(job("provision").dedupe_key("provision:u1"))
        .await
        .unwrap();
    assert!(matches!(&fresh, Enqueued::Created(id) if id != first.id()));
    let other = store
        .jobs()
        .enqueue(job("provision").dedupe_key("provision:u2"))
        .await
        .unwrap();
    assert!(matches!(other, Enqueued::Created(_)));

    let err = store
        .jobs()
        .enqueue(job("x").max_attempts(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "max attempts",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .jobs()
        .enqueue(NewJob::new("", "x", json!(null)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { field: "queue", .. }),
        "{err:?}"
    );
}

async fn claim_leases_one_job_to_one_worker(store: Store) {
    let id = store
        .jobs()
        .enqueue(job("sync"))
        .await
        .unwrap()
        .id()
        .to_string();
    store
        .jobs()
        .enqueue(NewJob::new("other-queue", "sync", json!({})))
        .await
        .unwrap();
    let later = store
        .jobs()
        .enqueue(job("later").run_after(Timestamp::now().plus(Duration::from_secs(3600))))
        .await
        .unwrap();
    let j = store
        .jobs()
        .claim("default", "w1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.id, id);
    assert_eq!(
        (j.state, j.attempts, j.lease_owner.as_deref()),
        (JobState::Running, 1, Some("w1"))
    );
    assert_eq!(j.payload, json!({"user": "u1"}));
    assert!(j.available_at.unix_millis() >= Timestamp::now().unix_millis() + 29_000);
    // Nothing else runnable on this queue: the delayed job waits, the other queue is separate.
    assert!(
        store
            .jobs()
            .claim("default", "w2", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.jobs().get(later.id()).await.unwrap().state,
        JobState::Queued
    );

    assert!(matches!(
        store.jobs().heartbeat(&id, "w2", LEASE).await.unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
    assert!(matches!(
        store.jobs().complete(&id, "w2").await.unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
    store
        .jobs()
        .heartbeat(&id, "w1", Duration::from_secs(90))
        .await
        .unwrap();
    assert!(
        store
            .jobs()
            .get(&id)
            .await
            .unwrap()
            .available_at
            .unix_millis()
            >= Timestamp::now().unix_millis() + 89_000
    );
    store.jobs().complete(&id, "w1").await.unwrap();
    let done = store.jobs().get(&id).await.unwrap();
    assert_eq!((done.state, done.lease_owner), (JobState::Succeeded, None));
    assert!(done.finished_at.is_some());
    assert!(matches!(
        store.jobs().complete(&id, "w1").await.unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
}

async fn an_expired_lease_makes_the_job_claimable_again(store: Store) {
    let id = store
        .jobs()
        .enqueue(job("sync"))
        .await
        .unwrap()
        .id()
        .to_string();
    let first = store
        .jobs()
        .claim("default", "dead-worker", Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.attempts, 1);
    assert!(
        store
            .jobs()
            .claim("default", "w2", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = store
        .jobs()
        .claim("default", "w2", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            second.id.as_str(),
            second.attempts,
            second.lease_owner.as_deref()
        ),
        (id.as_str(), 2, Some("w2"))
    );
    // The first worker wakes up: it can no longer touch the job.
    assert!(matches!(
        store
            .jobs()
            .heartbeat(&id, "dead-worker", LEASE)
            .await
            .unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
    assert!(matches!(
        store
            .jobs()
            .fail(&id, "dead-worker", "late", false, &Backoff::default())
            .await
            .unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
    store.jobs().complete(&id, "w2").await.unwrap();
}

async fn failures_back_off_then_go_dead_keeping_the_error(store: Store) {
    let backoff = Backoff {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(600),
        jitter: 0.2,
    };
    let id = store
        .jobs()
        .enqueue(job("provision").max_attempts(3))
        .await
        .unwrap()
        .id()
        .to_string();
    let expected_nominal = [10.0f64, 20.0];
    for attempt in 1..=2 {
        let j = store
            .jobs()
            .claim("default", "w", LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.attempts, attempt);
        let before = Timestamp::now().unix_millis();
        let outcome = store
            .jobs()
            .fail(
                &id,
                "w",
                &format!("Graph said 503 (try {attempt})"),
                false,
                &backoff,
            )
            .await
            .unwrap();
        let FailOutcome::Retrying(at) = outcome else {
            panic!("expected a retry, got {outcome:?}")
        };
        let delay = (at.unix_millis() - before) as f64 / 1000.0;
        let nominal = expected_nominal[(attempt - 1) as usize];
        assert!(
            delay >= nominal * 0.8 - 0.05 && delay <= nominal * 1.2 + 0.05,
            "attempt {attempt}: {delay}s"
        );
        let j = store.jobs().get(&id).await.unwrap();
        assert_eq!(
            (j.state, j.lease_owner.as_deref()),
            (JobState::Queued, None)
        );
        assert_eq!(
            j.last_error.as_deref(),
            Some(format!("Graph said 503 (try {attempt})").as_str())
        );
        // Not runnable before its time.
        assert!(
            store
                .jobs()
                .claim("default", "w", LEASE)
                .await
                .unwrap()
                .is_none()
        );
        sqlx::query("UPDATE jobs SET available_at = 0 WHERE id = $1")
            .bind(id.clone())
            .execute(store.raw_pool())
            .await
            .unwrap();
    }
    store
        .jobs()
        .claim("default", "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .jobs()
            .fail(&id, "w", "still 503", false, &backoff)
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    let dead = store.jobs().get(&id).await.unwrap();
    assert_eq!(
        (dead.state, dead.attempts, dead.last_error.as_deref()),
        (JobState::Dead, 3, Some("still 503"))
    );
    assert!(
        store
            .jobs()
            .claim("default", "w", LEASE)
            .await
            .unwrap()
            .is_none()
    );

    // Retry a dead job: fresh attempts.
    store.jobs().retry(&id).await.unwrap();
    let again = store
        .jobs()
        .claim("default", "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (id.as_str(), 1));
    // Permanent failure: dead at once.
    assert_eq!(
        store
            .jobs()
            .fail(&id, "w", "user deleted", true, &backoff)
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    let err = store.jobs().retry("missing").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

async fn cancel_and_retry_follow_the_state(store: Store) {
    let queued = store
        .jobs()
        .enqueue(job("invite").dedupe_key("k"))
        .await
        .unwrap()
        .id()
        .to_string();
    store.jobs().cancel(&queued).await.unwrap();
    assert_eq!(
        store.jobs().get(&queued).await.unwrap().state,
        JobState::Cancelled
    );
    assert!(
        store
            .jobs()
            .claim("default", "w", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    let err = store.jobs().cancel(&queued).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::JobState {
                action: "cancelling",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("job {queued} is cancelled: cancelling is not possible")
    );

    // A running job cancelled: its worker loses the lease.
    let running = store
        .jobs()
        .enqueue(job("invite"))
        .await
        .unwrap()
        .id()
        .to_string();
    store
        .jobs()
        .claim("default", "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    store.jobs().cancel(&running).await.unwrap();
    assert!(matches!(
        store
            .jobs()
            .heartbeat(&running, "w", LEASE)
            .await
            .unwrap_err(),
        StoreError::LeaseLost { .. }
    ));

    // Retrying the cancelled deduped job while another live job holds its key is refused.
    store
        .jobs()
        .enqueue(job("invite").dedupe_key("k"))
        .await
        .unwrap();
    let err = store.jobs().retry(&queued).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                field: "dedupe key",
                ..
            }
        ),
        "{err:?}"
    );
    let queued_job = store.jobs().enqueue(job("x")).await.unwrap();
    let err = store.jobs().retry(queued_job.id()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::JobState {
                action: "retrying",
                ..
            }
        ),
        "{err:?}"
    );
}

async fn progress_listing_and_counts(store: Store) {
    let mut bulk = job("invite.bulk");
    bulk.progress_total = 10;
    let id = store.jobs().enqueue(bulk).await.unwrap().id().to_string();
    store
        .jobs()
        .claim("default", "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    store.jobs().add_progress(&id, "w", 3, 1).await.unwrap();
    store.jobs().add_progress(&id, "w", 2, 0).await.unwrap();
    let j = store.jobs().get(&id).await.unwrap();
    assert_eq!(
        (j.progress_done, j.progress_failed, j.progress_total),
        (5, 1, 10)
    );
    store.jobs().set_progress(&id, "w", 9, 1, 10).await.unwrap();
    assert!(matches!(
        store
            .jobs()
            .add_progress(&id, "intruder", 1, 0)
            .await
            .unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
    store.jobs().complete(&id, "w").await.unwrap();

    let ids = store
        .jobs()
        .enqueue_many(
            &(0..5)
                .map(|n| NewJob::new("default", "sync", json!({"n": n})))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 5);
    let counts = store.jobs().counts().await.unwrap();
    assert_eq!((counts.queued, counts.succeeded), (5, 1));
    let page1 = store
        .jobs()
        .list(
            &JobFilter {
                state: Some(JobState::Queued),
                ..JobFilter::default()
            },
            None,
            3,
        )
        .await
        .unwrap();
    assert_eq!(page1.len(), 3);
    assert_eq!(page1[0].id, ids[4], "newest first");
    let page2 = store
        .jobs()
        .list(
            &JobFilter {
                state: Some(JobState::Queued),
                ..JobFilter::default()
            },
            Some(&page1[2].id),
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[0].clone()]
    );
    let bulk_only = store
        .jobs()
        .list(
            &JobFilter {
                kind: Some("invite.bulk".into()),
                ..JobFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(bulk_only.len(), 1);
    assert_eq!(
        store
            .jobs()
            .purge_finished(Timestamp::now().plus(Duration::from_secs(1)))
            .await
            .unwrap(),
        1
    );
    assert!(store.jobs().get(&id).await.unwrap_err().is_not_found());
}

async fn a_job_whose_worker_died_on_its_last_attempt_goes_dead(store: Store) {
    let id = store
        .jobs()
        .enqueue(job("poison").max_attempts(2))
        .await
        .unwrap()
        .id()
        .to_string();
    for attempt in 1..=2 {
        let j = store
            .jobs()
            .claim(
                "default",
                &format!("w{attempt}"),
                Duration::from_millis(100),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.attempts, attempt);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Both workers died mid-job: not handed out a third time.
    assert!(
        store
            .jobs()
            .claim("default", "w3", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.jobs().reap_expired("other-queue").await.unwrap(), 0);
    assert_eq!(store.jobs().reap_expired("default").await.unwrap(), 1);
    let dead = store.jobs().get(&id).await.unwrap();
    assert_eq!(
        (dead.state, dead.attempts, dead.lease_owner),
        (JobState::Dead, 2, None)
    );
    assert!(dead.last_error.unwrap().contains("lease expired"));
    assert_eq!(store.jobs().reap_expired("default").await.unwrap(), 0);
}

/// An admin cancels a running job while its worker records a failure: the cancel's
/// transaction holds the row when the worker reads it, and commits before the worker writes.
/// The worker must find its lease gone, and the job must stay cancelled (not be queued again).
async fn a_failure_racing_a_cancel_leaves_the_job_cancelled(store: Store) {
    for permanent in [false, true] {
        let id = store
            .jobs()
            .enqueue(job("sync"))
            .await
            .unwrap()
            .id()
            .to_string();
        let claimed = store
            .jobs()
            .claim("default", "w1", LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, id);
        let mut cancel = store.begin().await.unwrap();
        cancel.jobs().cancel(&id).await.unwrap();
        let failing = {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                store
                    .jobs()
                    .fail(&id, "w1", "Graph timed out", permanent, &Backoff::default())
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.commit().await.unwrap();
        let outcome = failing.await.unwrap();
        assert!(
            matches!(outcome, Err(StoreError::LeaseLost { .. })),
            "permanent {permanent}: {outcome:?}"
        );
        let after = store.jobs().get(&id).await.unwrap();
        assert_eq!(after.state, JobState::Cancelled, "permanent {permanent}");
        assert_eq!(after.last_error, None);
        assert!(
            store
                .jobs()
                .claim("default", "w2", LEASE)
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// Claims the next job of the default queue for `owner`; it must be `id`.
async fn claim_expecting(store: &Store, owner: &str, id: &str) {
    let claimed = store.jobs().claim("default", owner, LEASE).await.unwrap();
    assert_eq!(claimed.map(|j| j.id).as_deref(), Some(id));
}

/// Asks for the group sync of integration i1 (one dedupe key).
async fn sync_request(store: &Store) -> Enqueued {
    store
        .jobs()
        .enqueue(job("group_sync").dedupe_key("group_sync:i1"))
        .await
        .unwrap()
}

async fn a_request_while_the_job_runs_gets_one_more_run(store: Store) {
    let id = sync_request(&store).await.id().to_owned();
    claim_expecting(&store, "w1", &id).await;
    // A change arrives while the run may already have read its input: the request is not
    // lost in the running attempt, the job runs once more after it.
    let again = sync_request(&store).await;
    assert_eq!(again, Enqueued::Existing(id.clone()));
    store.jobs().complete(&id, "w1").await.unwrap();
    let requeued = store.jobs().get(&id).await.unwrap();
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!((requeued.attempts, requeued.finished_at), (0, None));
    // While queued, a request joins the queued run (it will read the latest input).
    assert_eq!(sync_request(&store).await, Enqueued::Existing(id.clone()));
    claim_expecting(&store, "w2", &id).await;
    store.jobs().complete(&id, "w2").await.unwrap();
    assert_eq!(
        store.jobs().get(&id).await.unwrap().state,
        JobState::Succeeded
    );

    // Two requests during one run give one extra run, not two.
    let second = sync_request(&store).await;
    assert!(matches!(&second, Enqueued::Created(new) if *new != id));
    let second = second.id().to_owned();
    claim_expecting(&store, "w1", &second).await;
    for _ in 0..2 {
        assert_eq!(
            sync_request(&store).await,
            Enqueued::Existing(second.clone())
        );
    }
    store.jobs().complete(&second, "w1").await.unwrap();
    claim_expecting(&store, "w2", &second).await;
    store.jobs().complete(&second, "w2").await.unwrap();
    assert_eq!(
        store.jobs().get(&second).await.unwrap().state,
        JobState::Succeeded
    );
    assert!(
        store
            .jobs()
            .claim("default", "w3", LEASE)
            .await
            .unwrap()
            .is_none(),
        "no third run"
    );

    // A request during a run that then fails: the retry reads the input afresh, and its
    // completion finishes the job.
    let third = sync_request(&store).await.id().to_owned();
    claim_expecting(&store, "w1", &third).await;
    sync_request(&store).await;
    let no_wait = Backoff {
        base: Duration::ZERO,
        cap: Duration::ZERO,
        jitter: 0.0,
    };
    store
        .jobs()
        .fail(&third, "w1", "Graph was unreachable", false, &no_wait)
        .await
        .unwrap();
    claim_expecting(&store, "w2", &third).await;
    store.jobs().complete(&third, "w2").await.unwrap();
    assert_eq!(
        store.jobs().get(&third).await.unwrap().state,
        JobState::Succeeded
    );
}

crate::store_tests!(
    a_request_while_the_job_runs_gets_one_more_run,
    a_failure_racing_a_cancel_leaves_the_job_cancelled,
    a_job_whose_worker_died_on_its_last_attempt_goes_dead,
    enqueue_dedupes_live_jobs_only,
    claim_leases_one_job_to_one_worker,
    an_expired_lease_makes_the_job_claimable_again,
    failures_back_off_then_go_dead_keeping_the_error,
    cancel_and_retry_follow_the_state,
    progress_listing_and_counts,
);
