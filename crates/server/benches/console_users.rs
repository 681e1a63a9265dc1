//! The console's User Management page at 100,000 users, on SQLite and PostgreSQL: the time
//! of one page request through the running server (HTTPS on loopback, keep-alive, a signed-in
//! session), so an upper bound on the server's time. Prints p50 and p99 per page shape.
//!
//! `cargo bench -p keybridge-server --bench console_users`
//! Environment: `KEYBRIDGE_BENCH_USERS` (default 100000), `KEYBRIDGE_BENCH_SAMPLES` (requests
//! per shape, default 300).

#![allow(clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keybridge_config::{
    Config, ConsoleConfig, DatabaseConfig, EntraCloud, EntraConfig, JobsConfig, LogConfig,
    LogFormat, SecretKeySource, SecretsConfig, ServerConfig,
};
use keybridge_core::UserState;
use keybridge_server::{Server, ServerOptions};
use keybridge_store::{
    DirectoryUser, KeyRing, NewIntegration, Role, SecretKey, SecretString, Store, StoreOptions,
    UserQuery,
};
use keybridge_testkit::{Backend, TestDatabase};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn seed(store: &Store, users: usize) -> String {
    let integration = store
        .integrations()
        .create(NewIntegration {
            name: "Bench".into(),
            internal_id: "Bench".into(),
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "8a7b6c5d-1111-2222-3333-444455556666".into(),
            credential: keybridge_store::IntegrationCredential::ClientSecret(SecretString::new(
                "s",
            )),
            support_email: None,
        })
        .await
        .expect("integration")
        .id;
    let all: Vec<DirectoryUser> = (0..users)
        .map(|n| DirectoryUser {
            entra_object_id: format!("obj-{n:08}"),
            upn: format!("user{n:07}@contoso.example"),
            email: Some(format!("first.last{n}@contoso.example")),
            display_name: format!("Person {:07}", (n * 7919) % users),
            account_enabled: true,
        })
        .collect();
    for chunk in all.chunks(2000) {
        store
            .users()
            .upsert_from_directory(&integration, chunk)
            .await
            .expect("upsert");
    }
    // A third of the users paired, a tenth registered in Entra (as the store's benchmark).
    for n in (0..users).step_by(3) {
        let user = store
            .users()
            .find_by_object_id(&integration, &format!("obj-{n:08}"))
            .await
            .expect("find")
            .expect("user");
        let state = if n % 10 == 0 {
            UserState::PairedWithEntra
        } else {
            UserState::PairedWithKeybridge
        };
        store
            .users()
            .set_state(&user.id, state, false)
            .await
            .expect("state");
    }
    integration
}

fn config(dir: &std::path::Path, url: &str) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        database: DatabaseConfig {
            url: url.to_owned(),
            max_connections: 5,
        },
        secrets: SecretsConfig {
            current: SecretKeySource::File(dir.join("key")),
            previous_key_files: Vec::new(),
        },
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: url::Url::parse("https://127.0.0.1/").expect("URL"),
            tls_cert: None,
            tls_key: None,
        },
        entra: EntraConfig {
            cloud: EntraCloud::Global,
            ca_file: None,
            authentication_requests_per_10s: None,
        },
        jobs: JobsConfig {
            workers: 2,
            max_attempts: 3,
            lease_seconds: 60,
        },
        console: ConsoleConfig {
            session_idle: Duration::from_secs(3600),
            session_max: Duration::from_secs(7200),
        },
        log: LogConfig {
            format: LogFormat::Pretty,
            level: "warn".to_owned(),
        },
        smtp: None,
    }
}

fn main() {
    let users = env_number("KEYBRIDGE_BENCH_USERS", 100_000);
    let samples = env_number("KEYBRIDGE_BENCH_SAMPLES", 300).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("console User Management: {users} users, 50 per page, {samples} requests per shape");
    println!("| backend    | page                                | p50 ms | p99 ms |");
    println!("|------------|-------------------------------------|--------|--------|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend);
        runtime.block_on(run(backend, &db, users, samples));
    }
}

async fn run(backend: Backend, db: &TestDatabase, users: usize, samples: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(
        db.url(),
        StoreOptions::new(KeyRing::new(SecretKey::generate(), vec![])),
    )
    .await
    .expect("connect");
    let seeding = Instant::now();
    let integration = seed(&store, users).await;
    eprintln!(
        "{backend:?}: seeded {users} users in {:?}",
        seeding.elapsed()
    );
    let maintenance = match store.dialect() {
        keybridge_store::Dialect::Sqlite => "ANALYZE",
        keybridge_store::Dialect::Postgres => "VACUUM ANALYZE users",
    };
    sqlx::query(maintenance)
        .execute(store.raw_pool())
        .await
        .expect("maintenance");
    let admin = store
        .admins()
        .create("bench", "Bench admin", Role::Admin)
        .await
        .expect("admin");
    let (_, session) = store
        .admins()
        .create_session(
            &admin.id,
            Duration::from_secs(3600),
            Duration::from_secs(7200),
            None,
            None,
        )
        .await
        .expect("session");
    let server = Server::start(
        config(dir.path(), db.url()),
        store.clone(),
        ServerOptions {
            run_workers: false,
            sync_interval: None,
            ..ServerOptions::default()
        },
    )
    .await
    .expect("server");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(server.ca_file.clone().expect("CA")).expect("CA"),
            )
            .expect("PEM"),
        )
        .build()
        .expect("client");
    let cookie = format!("__Host-kb_session={session}");

    // A cursor in the middle of the Pending tab, as "Next page" links carry it.
    let mut deep = UserQuery::new(&integration, Some(UserState::Pending));
    deep.limit = 500;
    for _ in 0..((users / 3) / 500).max(1) {
        match store.users().list(&deep).await.expect("walk").next {
            Some(next) => deep.after = Some(next),
            None => break,
        }
    }
    let middle = deep.after.map(|c| c.to_string()).unwrap_or_default();
    let base = format!(
        "{}/console/users?integration={integration}",
        server.base_url
    );
    let first_ids: Vec<String> = {
        let mut q = UserQuery::new(&integration, Some(UserState::Pending));
        q.limit = 50;
        store
            .users()
            .list(&q)
            .await
            .expect("page")
            .items
            .into_iter()
            .map(|i| i.user.id)
            .collect()
    };
    let shapes = [
        ("Pending, first page", format!("{base}&state=pending")),
        (
            "Pending, page in the middle",
            format!("{base}&state=pending&after={middle}"),
        ),
        (
            "Paired with Entra, first page",
            format!("{base}&state=paired_with_entra"),
        ),
        (
            "search (substring of e-mail)",
            format!("{base}&state=pending&search=last12345"),
        ),
        (
            "live refresh of 50 rows (JSON)",
            format!(
                "{}/console/users/live?integration={integration}&ids={}",
                server.base_url,
                first_ids.join(",")
            ),
        ),
    ];
    for (name, url) in shapes {
        let mut times = Vec::with_capacity(samples);
        for n in 0..samples + 10 {
            let started = Instant::now();
            let response = http
                .get(&url)
                .header("cookie", &cookie)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 200, "{name}");
            let body = response.text().await.expect("body");
            let elapsed = started.elapsed();
            assert!(body.len() > 100, "{name}: {body}");
            // The first requests warm the connection and caches.
            if n >= 10 {
                times.push(elapsed);
            }
        }
        times.sort();
        println!(
            "| {:<10} | {:<35} | {:>6.2} | {:>6.2} |",
            format!("{backend:?}"),
            name,
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0
        );
    }
    server.shutdown().await.expect("shutdown");
    store.close().await;
}
