//! Initial directory sync of a large tenant: entra-sim (throttling off, no latency) and the
//! server in one process on a temporary SQLite database. Prints the time until every user is
//! in the store, the time until the job (users, then the four groups) has finished, and the
//! process's peak memory before and after. `KB_BENCH_USERS` sets the tenant size (default
//! 100000). Run with `cargo bench -p keybridge-server --bench initial_sync`.

#![allow(clippy::expect_used, missing_docs)]

#[path = "support/config.rs"]
mod bench_config;

use std::time::{Duration, Instant};

use keybridge_entra_sim::{EntraSim, SimConfig};
use keybridge_graph::Cloud;
use keybridge_server::{GraphSettings, Server, ServerOptions};
use keybridge_store::{KeyRing, Role, SecretKey, Store, StoreOptions};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let users: usize = std::env::var("KB_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(users));
}

async fn run(users: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut sim_config = SimConfig::new(dir.path().join("sim"));
    sim_config.users = users;
    let sim = EntraSim::start(sim_config).await.expect("sim");
    println!(
        "entra-sim with {users} users ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let info = sim.info().clone();

    let url = format!("sqlite://{}?mode=rwc", dir.path().join("kb.db").display());
    let store = Store::connect(
        &url,
        StoreOptions::new(KeyRing::new(SecretKey::generate(), Vec::new())),
    )
    .await
    .expect("store");
    // The benchmark hands the server entra-sim's endpoints through `ServerOptions::graph`.
    let mut config = bench_config::server_config(dir.path(), &url);
    config.jobs.workers = 2;
    config.log.level = "warn".to_owned();
    std::fs::create_dir_all(&config.data_dir).expect("dir");
    let options = ServerOptions {
        graph: GraphSettings {
            cloud: Cloud::custom(&info.base_url, &info.graph_url).expect("endpoints"),
            ca_bundle_pem: Some(std::fs::read_to_string(&info.ca_pem).expect("CA")),
            ..GraphSettings::default()
        },
        worker_poll_interval: Some(Duration::from_millis(20)),
        sync_interval: None,
        ..ServerOptions::default()
    };
    let server = Server::start(config, store.clone(), options)
        .await
        .expect("server");
    let (_, token) = keybridge_server::create_token_locally(&store, "bench", Role::Admin, None)
        .await
        .expect("token");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(server.ca_file.clone().expect("CA")).expect("CA"),
            )
            .expect("PEM"),
        )
        .build()
        .expect("client");
    let rss_before = peak_rss_mib();
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/integrations", server.base_url))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "Bench", "tenant_id": info.tenant_id.to_string(),
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
    let job_id = created["sync_job_id"].as_str().expect("job").to_owned();
    let t0 = Instant::now();
    let mut users_done = None;
    loop {
        if users_done.is_none() {
            let counts = store.users().count_by_state(&id).await.expect("counts");
            if counts.pending >= i64::try_from(users).expect("size") * 9 / 10 {
                users_done = Some(t0.elapsed());
            }
        }
        let job = store.jobs().get(&job_id).await.expect("job");
        match job.state.as_str() {
            "succeeded" => break,
            "dead" | "cancelled" => panic!("sync failed: {:?}", job.last_error),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let total = t0.elapsed();
    let counts = store.users().count_by_state(&id).await.expect("counts");
    println!(
        "users in the store ({} of {users}, guests skipped): {:.1} s after the job was queued",
        counts.pending,
        users_done.unwrap_or(total).as_secs_f64()
    );
    println!(
        "whole sync job (users, then the four groups): {:.1} s",
        total.as_secs_f64()
    );
    println!(
        "peak resident memory of the process (entra-sim included): {rss_before:.0} MiB before, {:.0} MiB after",
        peak_rss_mib()
    );
    server.shutdown().await.expect("stop");
    sim.shutdown().await.expect("sim stop");
}
