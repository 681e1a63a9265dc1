//! Load benchmark: Graph GETs per second on loopback over HTTPS, throttling off.
//!
//! `cargo bench -p keybridge-entra-sim --bench load` (env `LOAD_SECONDS`, `LOAD_CLIENTS`,
//! `LOAD_USERS`). The client runs in the same process, sharing the machine's cores with the
//! server, as a co-located test would.
//!
//! `LOAD_MODE=memory` instead starts a tenant of `LOAD_USERS` (default 100,000) users, pages
//! through all of them, and reports start time and resident memory.

#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var("LOAD_MODE").is_ok_and(|m| m == "memory") {
        runtime.block_on(memory());
    } else {
        runtime.block_on(run());
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn memory() {
    let users = usize::try_from(env("LOAD_USERS", 100_000)).expect("users");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = keybridge_entra_sim::SimConfig::new(dir.path().to_path_buf());
    config.users = users;
    let before = rss_mib();
    let started = Instant::now();
    let sim = keybridge_entra_sim::EntraSim::start(config.clone())
        .await
        .expect("start");
    println!(
        "started with {users} users in {:.2} s; RSS {:.0} MiB (process baseline {before:.0} MiB)",
        started.elapsed().as_secs_f64(),
        rss_mib()
    );
    let info = sim.info().clone();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(&info.ca_pem).expect("ca")).expect("pem");
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let token: serde_json::Value = http
        .post(&info.token_endpoint)
        .form(&[
            ("client_id", info.client_id.to_string()),
            ("client_secret", info.client_secret.clone()),
            ("scope", "https://graph.microsoft.com/.default".to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let mut next = Some(format!(
        "{}/users?$select=id,userPrincipalName,displayName,mail,accountEnabled,userType&$top=999",
        info.graph_url
    ));
    let mut seen = 0usize;
    let paging = Instant::now();
    while let Some(url) = next {
        let page: serde_json::Value = http
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        seen += page["value"].as_array().expect("value").len();
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    println!(
        "paged {seen} users (999 a page) in {:.2} s; RSS {:.0} MiB",
        paging.elapsed().as_secs_f64(),
        rss_mib()
    );
    let stopping = Instant::now();
    sim.shutdown().await.expect("shutdown");
    println!(
        "shutdown with snapshot in {:.2} s; snapshot {} MiB",
        stopping.elapsed().as_secs_f64(),
        std::fs::metadata(dir.path().join("state.json"))
            .map(|m| m.len() / (1024 * 1024))
            .unwrap_or(0)
    );
    let restarted = Instant::now();
    let sim = keybridge_entra_sim::EntraSim::start(config)
        .await
        .expect("restart");
    println!(
        "restarted from the snapshot in {:.2} s; RSS {:.0} MiB",
        restarted.elapsed().as_secs_f64(),
        rss_mib()
    );
    sim.shutdown().await.expect("shutdown");
}

async fn run() {
    let seconds = env("LOAD_SECONDS", 10);
    let clients = env("LOAD_CLIENTS", 32);
    let users = usize::try_from(env("LOAD_USERS", 1000)).expect("users");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = keybridge_entra_sim::SimConfig::new(dir.path().to_path_buf());
    config.users = users;
    let sim = keybridge_entra_sim::EntraSim::start(config)
        .await
        .expect("start");
    let info = sim.info().clone();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(&info.ca_pem).expect("ca")).expect("pem");
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let token: serde_json::Value = http
        .post(&info.token_endpoint)
        .form(&[
            ("client_id", info.client_id.to_string()),
            ("client_secret", info.client_secret.clone()),
            ("scope", "https://graph.microsoft.com/.default".to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let page: serde_json::Value = http
        .get(format!("{}/users?$select=id&$top=999", info.graph_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    let ids: Arc<Vec<String>> = Arc::new(
        page["value"]
            .as_array()
            .expect("value")
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_owned())
            .collect(),
    );
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, token, ids, done, failed, graph) = (
            http.clone(),
            token.clone(),
            Arc::clone(&ids),
            Arc::clone(&done),
            Arc::clone(&failed),
            info.graph_url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = usize::try_from(client).expect("index");
            while Instant::now() < deadline {
                let id = &ids[i % ids.len()];
                i += 7;
                let url = format!(
                    "{graph}/users/{id}?$select=id,userPrincipalName,displayName,accountEnabled"
                );
                match http.get(url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = done.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let rate = ok as f64 / elapsed;
    println!(
        "GET /v1.0/users/{{id}}: {ok} ok, {} failed in {elapsed:.1} s with {clients} clients = {rate:.0} requests/s",
        failed.load(Ordering::Relaxed)
    );
    sim.shutdown().await.expect("shutdown");
}
