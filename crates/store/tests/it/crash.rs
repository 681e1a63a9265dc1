//! A process killed (SIGKILL) in the middle of a multi-row transaction leaves nothing behind.
//!
//! The test re-runs its own test binary as a child, selecting this very test with an
//! environment variable set: the child opens the store, writes many rows inside one
//! transaction, creates a marker file and waits; the parent kills it before it commits and checks the
//! database.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keybridge_store::{DirectoryUser, KeyRing, NewAuditEvent, SecretKey, Store, StoreOptions};
use keybridge_testkit::{Backend, TestDatabase};

const CHILD_URL: &str = "KEYBRIDGE_STORE_CRASH_CHILD_URL";
const CHILD_KEY: &str = "KEYBRIDGE_STORE_CRASH_CHILD_KEY";
const CHILD_READY: &str = "KEYBRIDGE_STORE_CRASH_CHILD_READY";

fn child(url: &str, key: &str, ready_file: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ring = KeyRing::new(SecretKey::from_base64(key).unwrap(), vec![]);
        let store = Store::connect(url, StoreOptions::new(ring)).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let integ = tx
            .integrations()
            .create(crate::common::new_integration("Crashing"))
            .await
            .unwrap();
        let users: Vec<DirectoryUser> = (0..500).map(crate::common::directory_user).collect();
        tx.users()
            .upsert_from_directory(&integ.id, &users)
            .await
            .unwrap();
        tx.audit()
            .append(NewAuditEvent::new("system", "sync.finish"))
            .await
            .unwrap();
        // A file, not stdout: the test harness may capture the child's output.
        std::fs::write(ready_file, b"ready").unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
        tx.commit().await.unwrap();
    });
}

fn crash_test(backend: Backend, test_name: &str) {
    if let (Ok(url), Ok(key), Ok(ready)) = (
        std::env::var(CHILD_URL),
        std::env::var(CHILD_KEY),
        std::env::var(CHILD_READY),
    ) {
        return child(&url, &key, &ready);
    }
    let db = TestDatabase::new(backend);
    let key = SecretKey::generate();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Migrate first, so that the child's transaction is the only writer.
    runtime.block_on(async {
        let store = Store::connect(
            db.url(),
            StoreOptions::new(KeyRing::new(key.clone(), vec![])),
        )
        .await
        .unwrap();
        store
            .audit()
            .append(NewAuditEvent::new("system", "before"))
            .await
            .unwrap();
        store.close().await;
    });

    let marker_dir = tempfile::tempdir().unwrap();
    let ready_file = marker_dir.path().join("ready");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, db.url())
        .env(CHILD_KEY, key.to_base64().as_str())
        .env(CHILD_READY, &ready_file)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready_file.exists() {
        if started.elapsed() > Duration::from_secs(120) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the child never reached the middle of its transaction");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());

    runtime.block_on(async {
        let store = Store::connect(db.url(), StoreOptions::new(KeyRing::new(key, vec![])))
            .await
            .unwrap();
        assert!(
            store.integrations().list().await.unwrap().is_empty(),
            "a half-written integration survived"
        );
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
        assert_eq!(users, 0, "half-written users survived");
        let report = store.audit().verify().await.unwrap();
        assert!(report.is_intact(), "{:?}", report.first_break);
        assert_eq!(report.head_seq, 1);
        // And the store is still writable.
        store
            .integrations()
            .create(crate::common::new_integration("After"))
            .await
            .unwrap();
        store.close().await;
    });
}

#[test]
fn crash_mid_transaction_sqlite() {
    crash_test(Backend::Sqlite, "crash::crash_mid_transaction_sqlite");
}

#[test]
fn crash_mid_transaction_postgres() {
    crash_test(Backend::Postgres, "crash::crash_mid_transaction_postgres");
}
