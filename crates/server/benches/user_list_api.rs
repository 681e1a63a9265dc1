//! The user list API at 100,000 users, on SQLite and PostgreSQL: `GET
//! /api/v1/integrations/{id}/users` over HTTPS on loopback (keep-alive), timed at the client,
//! against the store's own list query in the same run (the handler's main query; the handler
//! also counts the tabs and queues the Entra status check of the page).
//!
//! `cargo bench -p keybridge-server --bench user_list_api`
//! Environment: `KB_BENCH_USERS` (default 100000), `KB_BENCH_SAMPLES` (requests per shape,
//! default 200), `KEYBRIDGE_TEST_DATABASE_URL` (else the testkit's throwaway PostgreSQL).

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
    UserQuery, UserSort,
};
use keybridge_testkit::{Backend, TestDatabase};

/// A query shape: its name, the API's query parameters, the store's query.
type Shape = (&'static str, Vec<(&'static str, String)>, UserQuery);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
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
    // A third of the users paired, a tenth of those registered in Entra.
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

fn main() {
    let users = env_number("KB_BENCH_USERS", 100_000);
    let samples = env_number("KB_BENCH_SAMPLES", 200).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("user list API: {users} users, 50 per page, {samples} requests per shape");
    println!(
        "| backend | query | store list p50 / p99 ms | API request p50 / p99 ms | API p99 / store p99 |"
    );
    println!("|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend);
        runtime.block_on(run(backend, db.url(), users, samples));
    }
}

#[allow(clippy::too_many_lines)]
async fn run(backend: Backend, url: &str, users: usize, samples: usize) {
    let store = Store::connect(
        url,
        StoreOptions::new(KeyRing::new(SecretKey::generate(), vec![])),
    )
    .await
    .expect("connect");
    let integration = seed(&store, users).await;
    // Steady state: what autovacuum / a periodic ANALYZE would have done by now.
    let maintenance = match store.dialect() {
        keybridge_store::Dialect::Sqlite => "ANALYZE",
        keybridge_store::Dialect::Postgres => "VACUUM ANALYZE users",
    };
    sqlx::query(maintenance)
        .execute(store.raw_pool())
        .await
        .expect("maintenance");

    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        data_dir: dir.path().join("server"),
        database: DatabaseConfig {
            url: url.to_owned(),
            max_connections: 5,
        },
        secrets: SecretsConfig {
            current: SecretKeySource::File(dir.path().join("key")),
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
            workers: 1,
            max_attempts: 3,
            lease_seconds: 60,
        },
        console: ConsoleConfig {
            session_idle: Duration::from_secs(900),
            session_max: Duration::from_secs(8 * 3600),
        },
        log: LogConfig {
            format: LogFormat::Pretty,
            level: "error".to_owned(),
        },
        smtp: None,
    };
    std::fs::create_dir_all(&config.data_dir).expect("dir");
    // No workers: the status-check jobs the list queues stay queued (no Entra here).
    let options = ServerOptions {
        run_workers: false,
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
    let base = format!(
        "{}/api/v1/integrations/{integration}/users",
        server.base_url
    );

    // A cursor in the middle of the Pending tab, from the API itself.
    let mut after = None::<String>;
    for _ in 0..((users / 3) / 500).max(1) {
        let mut request = http
            .get(&base)
            .bearer_auth(&token)
            .query(&[("state", "pending"), ("limit", "500")]);
        if let Some(cursor) = &after {
            request = request.query(&[("after", cursor)]);
        }
        let page: serde_json::Value = request
            .send()
            .await
            .expect("walk")
            .json()
            .await
            .expect("json");
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let middle = after.expect("a cursor in the middle");
    let mut store_middle = UserQuery::new(&integration, Some(UserState::Pending));
    store_middle.after = Some(middle.parse().expect("cursor"));

    let first = UserQuery::new(&integration, Some(UserState::Pending));
    let mut by_name_desc = first.clone();
    by_name_desc.sort = UserSort::DisplayName;
    by_name_desc.descending = true;
    let mut all_by_activity = UserQuery::new(&integration, None);
    all_by_activity.sort = UserSort::LastActive;
    let mut search = UserQuery::new(&integration, None);
    search.search = Some("last12345".into());
    let shapes: Vec<Shape> = vec![
        (
            "Pending, first page, by username",
            vec![("state", "pending".into())],
            first,
        ),
        (
            "Pending, page in the middle",
            vec![("state", "pending".into()), ("after", middle)],
            store_middle,
        ),
        (
            "Pending, by name descending",
            vec![
                ("state", "pending".into()),
                ("sort", "name".into()),
                ("order", "desc".into()),
            ],
            by_name_desc,
        ),
        (
            "all states, by last active",
            vec![("sort", "last_active".into())],
            all_by_activity,
        ),
        (
            "search (part of an e-mail)",
            vec![("search", "last12345".into())],
            search,
        ),
    ];
    for (name, params, query) in shapes {
        // Interleaved, so that both sides see the same machine load.
        let mut store_times = Vec::with_capacity(samples);
        let mut api_times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let page = store.users().list(&query).await.expect("list");
            store_times.push(started.elapsed());
            assert!(!page.items.is_empty());
            let started = Instant::now();
            let response = http
                .get(&base)
                .bearer_auth(&token)
                .query(&params)
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status().as_u16(), 200);
            let body = response.bytes().await.expect("body");
            api_times.push(started.elapsed());
            assert!(body.len() > 100);
        }
        store_times.sort();
        api_times.sort();
        println!(
            "| {backend:?} | {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1}x |",
            percentile(&store_times, 0.5),
            percentile(&store_times, 0.99),
            percentile(&api_times, 0.5),
            percentile(&api_times, 0.99),
            percentile(&api_times, 0.99) / percentile(&store_times, 0.99),
        );
    }
    server.shutdown().await.expect("stop");
    store.close().await;
}
