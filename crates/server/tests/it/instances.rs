//! Several server instances on one PostgreSQL database: a job runs on one instance at a
//! time, and a crashed instance's job is taken over when its lease ends.

use std::time::Duration;

use keybridge_entra_sim::{EntraSim, SimConfig};
use keybridge_server::Server;
use keybridge_store::{KeyRing, Role, SecretKey, Store, StoreOptions};
use keybridge_testkit::TestDatabase;
use serde_json::Value;

use crate::support;

async fn store_with_key(url: &str, key_b64: &str) -> Store {
    let key = SecretKey::from_base64(key_b64).expect("key");
    Store::connect(url, StoreOptions::new(KeyRing::new(key, Vec::new())))
        .await
        .expect("store connects")
}

async fn job(store: &Store, id: &str) -> keybridge_store::Job {
    store.jobs().get(id).await.expect("job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instances_sync_is_taken_over_by_another() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = EntraSim::start(SimConfig::new(dir.path().join("sim")))
        .await
        .expect("sim");
    let db = TestDatabase::postgres();
    let key = SecretKey::generate().to_base64().to_string();
    let store_a = store_with_key(db.url(), &key).await;
    let store_b = store_with_key(db.url(), &key).await;
    let mut config_a = support::config(&dir.path().join("a"), db.url());
    config_a.jobs.lease_seconds = 5;
    let mut config_b = support::config(&dir.path().join("b"), db.url());
    config_b.jobs.lease_seconds = 5;
    std::fs::create_dir_all(&config_a.data_dir).expect("dir a");
    std::fs::create_dir_all(&config_b.data_dir).expect("dir b");

    let a = Server::start(config_a, store_a.clone(), support::options(&sim))
        .await
        .expect("instance A");
    let http = support::http_client(&[&a.ca_file.clone().expect("CA")]);
    let (_, token) = keybridge_server::create_token_locally(&store_a, "admin", Role::Admin, None)
        .await
        .expect("token");
    let info = sim.info().clone();
    let created: Value = http
        .post(format!("{}/api/v1/integrations", a.base_url))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "Contoso", "tenant_id": info.tenant_id.to_string(),
            "client_id": info.client_id.to_string(), "client_secret": info.client_secret,
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let first = created["sync_job_id"].as_str().expect("job").to_owned();
    for _ in 0..400 {
        if job(&store_a, &first).await.state.as_str() == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job(&store_a, &first).await.state.as_str(), "succeeded");

    // A slow tenant: instance A claims the next sync and is killed in the middle of it.
    sim.set_latency(Duration::from_secs(3));
    let queued = store_a
        .jobs()
        .enqueue(keybridge_server::jobs::directory_sync(&id))
        .await
        .expect("queued");
    let second = queued.id().to_owned();
    let mut running = false;
    for _ in 0..200 {
        if job(&store_a, &second).await.state.as_str() == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(running, "instance A claimed the sync");
    a.abort();
    sim.set_latency(Duration::ZERO);

    // Instance B starts, waits for A's lease to end, and finishes the job.
    let b = Server::start(config_b, store_b.clone(), support::options(&sim))
        .await
        .expect("instance B");
    let mut finished = None;
    for _ in 0..600 {
        let current = job(&store_b, &second).await;
        if current.state.as_str() == "succeeded" {
            finished = Some(current);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = finished.expect("instance B took the sync over within 30 s");
    assert_eq!(finished.attempts, 2, "one abandoned attempt, one by B");
    let live = store_b
        .jobs()
        .list(
            &keybridge_store::JobFilter {
                kind: Some("directory_sync".to_owned()),
                ..Default::default()
            },
            None,
            50,
        )
        .await
        .expect("jobs");
    assert!(
        live.iter().all(|j| j.state.as_str() != "running"),
        "nothing is left running: {live:?}"
    );
    b.shutdown().await.expect("B stops");
    sim.shutdown().await.expect("sim stops");
    store_a.close().await;
    store_b.close().await;
}
