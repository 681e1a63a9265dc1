//! Sign-in request latency with many phones connected: the server on a temporary SQLite
//! database or on a fresh database of the testkit's PostgreSQL cluster, N phones each holding an inbox long poll (`GET /device/v1/inbox?wait=30`) over
//! its own HTTPS connection, and one workstation paired with phone 0. Each sample: phone 0 is
//! polling, the workstation sends `POST /workstation/v1/sign-in`, and the time until phone 0's
//! poll returns with the request is recorded; the phone then denies it. Prints p50/p99 per N
//! and the server process's resident memory per connected phone: the N phones run in a child
//! process (this benchmark started again with `KB_BENCH_LOAD_FILE`), so that their side of
//! the connections is not counted and each process stays within its file-descriptor limit.
//!
//! `KB_BENCH_PHONES` (default `0,1000,10000`; 0 is the baseline with no other phone connected),
//! `KB_BENCH_SAMPLES` (default 200), `KB_BENCH_DATABASES` (default `sqlite,postgres`). Run with `cargo bench -p keybridge-server --bench
//! sign_in_latency`. Needs about 2 file descriptors per phone (`ulimit -n`).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

#[path = "support/config.rs"]
mod bench_config;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keybridge_device_protocol::{
    ENTRA_RP_ID, IdentityKey, InboxPage, ProtocolVersion, RefusalReason, RequestAnswer,
    RequestTarget, SignInBinding, SignInStart, SignedHeaders, SignerKind,
};
use keybridge_server::{Server, ServerOptions};
use keybridge_store::{
    DirectoryUser, IntegrationCredential, KeyRing, NewIntegration, NewPhone, SecretKey,
    SecretString, Store, StoreOptions, Timestamp,
};
use keybridge_testkit::{Backend, TestDatabase};
use rand_core::OsRng;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Signer {
    kind: SignerKind,
    id: Uuid,
    key: IdentityKey,
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    signer: &Signer,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let headers = SignedHeaders::sign(
        signer.kind,
        signer.id,
        &signer.key,
        &RequestTarget {
            method: method.as_str(),
            path_and_query: path,
            body: &body,
        },
        OffsetDateTime::now_utc(),
        &mut OsRng,
    )
    .expect("signed");
    let mut request = http.request(method, format!("{base}{path}"));
    for (name, value) in headers.to_header_pairs() {
        request = request.header(name, value);
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = request.body(body).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The child process: holds the long polls of the phones listed in the load file.
fn load(file: &str) {
    let text = std::fs::read_to_string(file).expect("load file");
    let spec: serde_json::Value = serde_json::from_str(&text).expect("load JSON");
    let base = spec["base"].as_str().expect("base").to_owned();
    let ca = std::fs::read(spec["ca"].as_str().expect("ca")).expect("CA");
    let signers: Vec<Arc<Signer>> = spec["phones"]
        .as_array()
        .expect("phones")
        .iter()
        .map(|p| {
            let key = base64_decode(p["key"].as_str().expect("key"));
            Arc::new(Signer {
                kind: SignerKind::Device,
                id: Uuid::try_parse(p["id"].as_str().expect("id")).expect("uuid"),
                key: IdentityKey::from_secret_bytes(&key).expect("key"),
            })
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
            .timeout(Duration::from_secs(90))
            .build()
            .expect("client");
        let sent = Arc::new(AtomicUsize::new(0));
        let total = signers.len();
        for signer in signers {
            let http = http.clone();
            let base = base.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                loop {
                    sent.fetch_add(1, Ordering::Relaxed);
                    if send(
                        &http,
                        &base,
                        &signer,
                        reqwest::Method::GET,
                        "/device/v1/inbox?wait=30",
                        Vec::new(),
                    )
                    .await
                    .is_err()
                    {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            });
        }
        while sent.load(Ordering::Relaxed) < total {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("sent");
        // Runs until the parent kills it.
        std::future::pending::<()>().await;
    });
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

fn main() {
    if let Ok(file) = std::env::var("KB_BENCH_LOAD_FILE") {
        load(&file);
        return;
    }
    let phones: Vec<usize> = std::env::var("KB_BENCH_PHONES")
        .unwrap_or_else(|_| "0,1000,10000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let samples: usize = std::env::var("KB_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let databases: Vec<Backend> = std::env::var("KB_BENCH_DATABASES")
        .unwrap_or_else(|_| "sqlite,postgres".to_owned())
        .split(',')
        .map(|name| match name.trim() {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => panic!("KB_BENCH_DATABASES: unknown database {other:?}"),
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "database | connected phones | p50 ms | p99 ms | max ms | 202 p50 ms | 202 p99 ms | RSS before | RSS connected | KiB per phone"
    );
    for backend in databases {
        for &n in &phones {
            runtime.block_on(run(backend, n, samples));
        }
    }
}

async fn run(backend: Backend, others: usize, samples: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::new(backend);
    let url = database.url().to_owned();
    let store = Store::connect(
        &url,
        StoreOptions::new(KeyRing::new(SecretKey::generate(), Vec::new())),
    )
    .await
    .expect("store");
    let tenant = Uuid::new_v4();
    let integration = store
        .integrations()
        .create(NewIntegration {
            name: "Bench".into(),
            internal_id: "Bench".into(),
            tenant_id: tenant.to_string(),
            client_id: Uuid::new_v4().to_string(),
            credential: IntegrationCredential::ClientSecret(SecretString::new("unused")),
            support_email: None,
        })
        .await
        .expect("integration");
    let users: Vec<DirectoryUser> = (0..=others)
        .map(|i| DirectoryUser {
            entra_object_id: Uuid::new_v4().to_string(),
            upn: format!("user{i}@bench.example"),
            email: None,
            display_name: format!("User {i}"),
            account_enabled: true,
        })
        .collect();
    for chunk in users.chunks(1000) {
        store
            .users()
            .upsert_from_directory(&integration.id, chunk)
            .await
            .expect("users");
    }
    let mut signers = Vec::with_capacity(others + 1);
    for user in &users {
        let stored = store
            .users()
            .find_by_upn(&integration.id, &user.upn)
            .await
            .expect("lookup")
            .expect("user");
        let key = IdentityKey::generate(&mut OsRng);
        let phone = store
            .phones()
            .create(NewPhone {
                user_id: stored.id,
                device_key: key.public_key().to_base64url(),
                name: "Bench phone".into(),
                model: "bench".into(),
                os: "bench".into(),
            })
            .await
            .expect("phone");
        signers.push(Arc::new(Signer {
            kind: SignerKind::Device,
            id: Uuid::try_parse(&phone.id).expect("uuid"),
            key,
        }));
    }
    let workstation_key = IdentityKey::generate(&mut OsRng);
    let workstation = store
        .workstations()
        .create(
            &integration.id,
            "BENCH-PC",
            &workstation_key.public_key().to_base64url(),
        )
        .await
        .expect("workstation");
    store
        .workstations()
        .add_phone(
            &workstation.id,
            &signers[0].id.to_string(),
            Timestamp::now(),
        )
        .await
        .expect("paired");
    let workstation = Signer {
        kind: SignerKind::Workstation,
        id: Uuid::try_parse(&workstation.id).expect("uuid"),
        key: workstation_key,
    };

    let mut config = bench_config::server_config(dir.path(), &url);
    config.jobs.lease_seconds = 30;
    let server = Server::start(config, store.clone(), ServerOptions::default())
        .await
        .expect("server");
    let ca = std::fs::read(server.ca_file.clone().expect("CA")).expect("CA file");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
        .timeout(Duration::from_secs(90))
        .build()
        .expect("client");
    let base = server.base_url.trim_end_matches('/').to_owned();

    // The other phones, in a child process: each holds a long poll, again and again.
    let rss_before = rss_mib();
    let connecting = Instant::now();
    let mut child = None;
    if others > 0 {
        use base64::Engine as _;
        let phones: Vec<serde_json::Value> = signers[1..]
            .iter()
            .map(|s| {
                json!({
                    "id": s.id.to_string(),
                    "key": base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(s.key.to_secret_bytes().as_ref()),
                })
            })
            .collect();
        let load_file = dir.path().join("load.json");
        std::fs::write(
            &load_file,
            serde_json::to_vec(&json!({
                "base": base,
                "ca": server.ca_file.clone().expect("CA"),
                "phones": phones,
            }))
            .expect("JSON"),
        )
        .expect("load file");
        let mut process = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env("KB_BENCH_LOAD_FILE", &load_file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("load process");
        let stdout = process.stdout.take().expect("stdout");
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                .expect("load process output");
        })
        .await
        .expect("waited");
        child = Some(process);
        // Let the last handshakes and verifications land before measuring.
        tokio::time::sleep(Duration::from_secs(if others >= 5000 { 10 } else { 3 })).await;
    }
    let connect_secs = connecting.elapsed().as_secs_f64();
    let rss_connected = rss_mib();

    let phone = signers[0].clone();
    let options = json!({
        "challenge": "TzEyMy5iZW5jaC1jaGFsbGVuZ2U",
        "rpId": ENTRA_RP_ID,
        "allowCredentials": [],
        "userVerification": "required",
    });
    let mut latencies = Vec::with_capacity(samples);
    let mut accepted = Vec::with_capacity(samples);
    for _ in 0..samples {
        let poll = {
            let http = http.clone();
            let base = base.clone();
            let phone = phone.clone();
            tokio::spawn(async move {
                let answer = send(
                    &http,
                    &base,
                    &phone,
                    reqwest::Method::GET,
                    "/device/v1/inbox?wait=30",
                    Vec::new(),
                )
                .await;
                (Instant::now(), answer)
            })
        };
        // The poll is waiting on the server before the request is made.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let request_id = Uuid::new_v4();
        let start = SignInStart {
            v: ProtocolVersion,
            request_id,
            upn: "user0@bench.example".into(),
            computer_name: "BENCH-PC".into(),
            request_options: options.clone(),
            binding: SignInBinding::sign(
                &workstation.key,
                request_id,
                workstation.id,
                ENTRA_RP_ID,
                "user0@bench.example",
                "TzEyMy5iZW5jaC1jaGFsbGVuZ2U",
                OffsetDateTime::now_utc(),
            )
            .expect("binding"),
        };
        let started = Instant::now();
        let (status, body) = send(
            &http,
            &base,
            &workstation,
            reqwest::Method::POST,
            "/workstation/v1/sign-in",
            serde_json::to_vec(&start).expect("JSON"),
        )
        .await
        .expect("sign-in sent");
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        accepted.push(started.elapsed().as_secs_f64() * 1000.0);
        let (received_at, answer) = poll.await.expect("poll task");
        let (status, page) = answer.expect("poll answered");
        assert_eq!(status, 200);
        let page: InboxPage = serde_json::from_slice(&page).expect("page");
        assert_eq!(page.requests.len(), 1, "the request reached the phone");
        latencies.push(received_at.duration_since(started).as_secs_f64() * 1000.0);
        let denied = RequestAnswer::new(
            request_id,
            keybridge_device_protocol::Answer::Denied {
                reason: RefusalReason::UserDeclined,
                message: "bench".into(),
            },
        );
        let (status, _) = send(
            &http,
            &base,
            &phone,
            reqwest::Method::POST,
            &format!("/device/v1/requests/{request_id}"),
            serde_json::to_vec(&denied).expect("JSON"),
        )
        .await
        .expect("answer");
        assert_eq!(status, 204);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    accepted.sort_by(|a, b| a.total_cmp(b));
    let per_phone_kib = if others > 0 {
        (rss_connected - rss_before) * 1024.0 / others as f64
    } else {
        0.0
    };
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!(
        "{name:>8} | {others:>16} | {:>6.2} | {:>6.2} | {:>6.2} | {:>10.2} | {:>10.2} | {:>7.1} MiB | {:>9.1} MiB | {per_phone_kib:>8.1}   (connected in {connect_secs:.1} s)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        percentile(&accepted, 0.5),
        percentile(&accepted, 0.99),
        rss_before,
        rss_connected,
    );
    if let Some(mut process) = child {
        process.kill().expect("stop the load process");
        process.wait().expect("load process ended");
    }
    server.shutdown().await.expect("shutdown");
    store.close().await;
    drop(database);
}
