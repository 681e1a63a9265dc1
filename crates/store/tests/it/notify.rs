//! Wake-ups: new jobs and device requests reach listeners (LISTEN/NOTIFY on PostgreSQL,
//! in-process on SQLite), and idle workers start new jobs at once.

use std::time::Duration;

use keybridge_store::{
    Channel, DeviceRequestKind, JobState, NewDeviceRequest, NewJob, NewPhone, Notification, Store,
    WorkerConfig, WorkerPool,
};
use serde_json::json;

async fn next(listener: &mut keybridge_store::Listener) -> Notification {
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .unwrap()
}

async fn enqueues_and_inbox_requests_notify_listeners(store: Store) {
    let mut listener = store
        .listen(&[Channel::Jobs, Channel::DeviceInbox])
        .await
        .unwrap();
    store
        .jobs()
        .enqueue(NewJob::new("sync", "directory.sync", json!({})))
        .await
        .unwrap();
    assert_eq!(
        next(&mut listener).await,
        Notification {
            channel: Channel::Jobs,
            payload: "sync".into()
        }
    );

    let integ = crate::common::integration(&store, "Contoso").await;
    let user = crate::common::users(&store, &integ, 1).await.remove(0);
    let phone = store
        .phones()
        .create(NewPhone {
            user_id: user,
            device_key: "dev-9".into(),
            name: "n".into(),
            model: "m".into(),
            os: "o".into(),
        })
        .await
        .unwrap();
    store
        .device_requests()
        .create(NewDeviceRequest {
            phone_id: phone.id,
            kind: DeviceRequestKind::SignIn,
            payload: json!({}),
            workstation_id: None,
            ttl: Duration::from_secs(30),
        })
        .await
        .unwrap();
    assert_eq!(
        next(&mut listener).await,
        Notification {
            channel: Channel::DeviceInbox,
            payload: "dev-9".into()
        }
    );

    // Only the channels listened to.
    let mut jobs_only = store.listen(&[Channel::Jobs]).await.unwrap();
    store.notify(Channel::DeviceInbox, "other").await.unwrap();
    store.notify(Channel::Jobs, "q2").await.unwrap();
    assert_eq!(next(&mut jobs_only).await.payload, "q2");

    // On both databases: delivered at commit, not before (a listener woken earlier would not
    // find the row yet), and never for a rolled-back transaction.
    let mut tx = store.begin().await.unwrap();
    tx.notify(Channel::Jobs, "rolled-back").await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.notify(Channel::Jobs, "committed").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), jobs_only.recv())
            .await
            .is_err(),
        "nothing is delivered before the commit"
    );
    tx.commit().await.unwrap();
    assert_eq!(next(&mut jobs_only).await.payload, "committed");
}

async fn idle_workers_wake_up_for_new_jobs(store: Store) {
    #[derive(Clone)]
    struct Noop;
    impl keybridge_store::JobHandler for Noop {
        fn kind(&self) -> &str {
            "noop"
        }
        fn run<'a>(
            &'a self,
            _ctx: &'a keybridge_store::JobContext,
        ) -> keybridge_store::JobFuture<'a> {
            Box::pin(async { Ok(()) })
        }
    }
    let config = WorkerConfig {
        concurrency: 2,
        // Without the wake-up a job would wait up to 30 s.
        poll_interval: Duration::from_secs(30),
        ..WorkerConfig::new("fast")
    };
    let workers = WorkerPool::new(store.clone(), config)
        .register(Noop)
        .start();
    // Let the workers go idle (and the listener subscribe).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = store
        .jobs()
        .enqueue(NewJob::new("fast", "noop", json!({})))
        .await
        .unwrap()
        .id()
        .to_string();
    let started = std::time::Instant::now();
    while store.jobs().get(&id).await.unwrap().state != JobState::Succeeded {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the job waited for the poll interval"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers.shutdown(Duration::from_secs(5)).await;
}

crate::store_tests!(
    enqueues_and_inbox_requests_notify_listeners,
    idle_workers_wake_up_for_new_jobs,
);
