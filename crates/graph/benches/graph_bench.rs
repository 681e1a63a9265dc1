//! keybridge-graph against entra-sim: the figures of issue 4 "Performance".
//!
//! ```text
//! cargo bench -p keybridge-graph --bench graph_bench -- paging      # 100k users
//! cargo bench -p keybridge-graph --bench graph_bench -- members     # 10,000 members
//! cargo bench -p keybridge-graph --bench graph_bench -- writes      # --throttle graph, 300 s
//! ```
//!
//! entra-sim runs in a child process (this binary, re-executed), so that the peak memory
//! measured here is the client's alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may fail loudly

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keybridge_graph::{ClientCredential, Cloud, GraphClient, GraphConfig, RateLimits, TenantSize};
use serde_json::Value;

const SIM_USERS: &str = "KB_GRAPH_BENCH_SIM_USERS";
const SIM_THROTTLE: &str = "KB_GRAPH_BENCH_SIM_THROTTLE";

fn main() {
    if let Ok(users) = std::env::var(SIM_USERS) {
        serve_sim(users.parse().expect("user count"));
        return;
    }
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let all = which.is_empty();
    if all || which.iter().any(|w| w == "paging") {
        runtime.block_on(paging());
    }
    if all || which.iter().any(|w| w == "members") {
        runtime.block_on(members());
    }
    if all || which.iter().any(|w| w == "writes") {
        runtime.block_on(writes());
    }
}

/// Child mode: run entra-sim until stdin closes, after printing its start JSON.
fn serve_sim(users: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = keybridge_entra_sim::SimConfig::new(dir.path().join("sim"));
        config.users = users;
        if std::env::var(SIM_THROTTLE).as_deref() == Ok("graph") {
            config.throttle = keybridge_entra_sim::ThrottleMode::Graph;
        }
        let sim = keybridge_entra_sim::EntraSim::start(config).await.unwrap();
        println!("{}", serde_json::to_string(sim.info()).unwrap());
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await
        .unwrap();
        drop(sim);
    });
}

struct SimProcess {
    child: std::process::Child,
    info: Value,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn start_sim(users: usize, throttle: bool) -> SimProcess {
    let started = Instant::now();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(SIM_USERS, users.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if throttle {
        command.env(SIM_THROTTLE, "graph");
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).expect("start JSON");
    eprintln!(
        "entra-sim with {users} users ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    SimProcess { child, info }
}

fn client(sim: &SimProcess, limits: RateLimits) -> GraphClient {
    let info = &sim.info;
    let text = |k: &str| info[k].as_str().unwrap().to_owned();
    let ca = std::fs::read_to_string(text("ca_pem")).unwrap();
    let config = GraphConfig::new(
        text("tenant_id"),
        text("client_id"),
        ClientCredential::secret(text("client_secret")).unwrap(),
    )
    .with_cloud(Cloud::custom(&text("base_url"), &text("graph_url")).unwrap())
    .with_ca_bundle_pem(ca)
    .with_rate_limits(limits);
    GraphClient::new(config).unwrap()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn paging() {
    let sim = start_sim(100_000, false);
    let client = client(&sim, RateLimits::documented(TenantSize::Large));
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let seen = client
        .for_each_user_page(keybridge_graph::DEFAULT_USER_SELECT, 999, |page| {
            std::hint::black_box(page);
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let stats = client.stats();
    println!(
        "paging: {seen} users in {:.2} s ({:.0} users/s), {} requests (+{} token), peak RSS {:.1} MiB (before: {:.1} MiB)",
        elapsed.as_secs_f64(),
        seen as f64 / elapsed.as_secs_f64(),
        stats.requests,
        stats.token_fetches,
        peak_rss_mib(),
        rss_before,
    );
}

async fn members() {
    let sim = start_sim(10_500, false);
    let client = client(&sim, RateLimits::documented(TenantSize::Large));
    let mut ids = Vec::new();
    let mut pages = client.list_users(&["id"], 999).unwrap();
    while let Some(page) = pages.next_page().await.unwrap() {
        ids.extend(page.into_iter().map(|u| u.id));
    }
    ids.truncate(10_000);
    let group = client
        .ensure_security_group("Bench (Eligible for Pairing)", None)
        .await
        .unwrap();
    let before = client.stats().requests;
    let started = Instant::now();
    let change = client.add_group_members(&group.id, &ids).await.unwrap();
    let elapsed = started.elapsed();
    let requests = client.stats().requests - before;
    assert_eq!(change.applied.len(), ids.len());
    println!(
        "members: {} users added in {:.2} s with {requests} requests = 1/{:.1} of one request per user",
        ids.len(),
        elapsed.as_secs_f64(),
        ids.len() as f64 / requests as f64
    );
}

async fn writes() {
    const RUN: Duration = Duration::from_secs(300);
    const WORKERS: usize = 16;
    let sim = start_sim(2_000, true);
    let client = client(&sim, RateLimits::documented(TenantSize::Large));
    let mut ids = Vec::new();
    let mut pages = client.list_users(&["id"], 999).unwrap();
    while let Some(page) = pages.next_page().await.unwrap() {
        ids.extend(page.into_iter().map(|u| u.id));
    }
    let group = client
        .ensure_security_group("Bench writes", None)
        .await
        .unwrap();
    let ids = Arc::new(ids);
    let accepted = Arc::new(AtomicU64::new(0));
    let before = client.stats();
    let started = Instant::now();
    let tasks: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let client = client.clone();
            let ids = ids.clone();
            let accepted = accepted.clone();
            let group = group.id.clone();
            tokio::spawn(async move {
                let mut n = worker;
                // Alternate add and remove of one member: one write per request.
                while started.elapsed() < RUN {
                    let id = ids[n % ids.len()].clone();
                    let add = (n / ids.len()) % 2 == 0;
                    let result = if add {
                        client.add_group_members(&group, &[id]).await
                    } else {
                        client.remove_group_members(&group, &[id]).await
                    };
                    if started.elapsed() <= RUN && result.is_ok_and(|c| c.is_complete()) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    n += WORKERS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().min(RUN).as_secs_f64();
    let stats = client.stats();
    let requests = stats.requests - before.requests;
    let throttled = stats.throttled - before.throttled;
    let writes = accepted.load(Ordering::Relaxed) as f64;
    let quota_per_s = 3_000.0 / 150.0;
    println!(
        "writes: {writes} writes in {elapsed:.0} s = {:.2}/s = {:.1} % of the documented 3,000/150 s; {requests} requests, {throttled} answered 429 ({:.2} %)",
        writes / elapsed,
        100.0 * writes / elapsed / quota_per_s,
        100.0 * throttled as f64 / requests.max(1) as f64
    );
}
