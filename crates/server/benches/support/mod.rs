//! What the user list benchmarks share: the 100,000-user database, the running server on it
//! and the HTTPS client that talks to it.

mod config;

pub use config::server_config;

use std::time::Duration;

use keybridge_core::UserState;
use keybridge_server::{RunningServer, Server, ServerOptions};
use keybridge_store::{
    DirectoryUser, IntegrationCredential, KeyRing, NewIntegration, SecretKey, SecretString, Store,
    StoreOptions,
};

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// An integration with `users` directory users: a third paired, a tenth of those registered in
/// Entra (as the store's benchmark seeds them). Returns the integration id.
async fn seed(store: &Store, users: usize) -> String {
    let integration = store
        .integrations()
        .create(NewIntegration {
            name: "Bench".into(),
            internal_id: "Bench".into(),
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "8a7b6c5d-1111-2222-3333-444455556666".into(),
            credential: IntegrationCredential::ClientSecret(SecretString::new("s")),
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

/// The seeded database with the server running on it.
pub struct Bench {
    /// The store (the benchmark's own pool, beside the server's).
    pub store: Store,
    /// The seeded integration.
    pub integration: String,
    /// The server (workers off).
    pub server: RunningServer,
    /// An HTTPS client trusting the server's certificate.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// Seeds `users` users into the database at `url`, brings it to a steady state (what
    /// autovacuum or a periodic ANALYZE would have done) and starts the server on it without
    /// workers, so the status-check jobs the list queues stay queued (no Entra here).
    pub async fn start(url: &str, users: usize) -> Bench {
        let store = Store::connect(
            url,
            StoreOptions::new(KeyRing::new(SecretKey::generate(), vec![])),
        )
        .await
        .expect("connect");
        let seeding = std::time::Instant::now();
        let integration = seed(&store, users).await;
        eprintln!("seeded {users} users in {:?}", seeding.elapsed());
        let maintenance = match store.dialect() {
            keybridge_store::Dialect::Sqlite => "ANALYZE",
            keybridge_store::Dialect::Postgres => "VACUUM ANALYZE",
        };
        sqlx::query(maintenance)
            .execute(store.raw_pool())
            .await
            .expect("maintenance");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = server_config(dir.path(), url);
        std::fs::create_dir_all(&config.data_dir).expect("dir");
        let options = ServerOptions {
            run_workers: false,
            sync_interval: None,
            ..ServerOptions::default()
        };
        let server = Server::start(config, store.clone(), options)
            .await
            .expect("server");
        let ca = std::fs::read(server.ca_file.clone().expect("CA")).expect("CA");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM"))
            .build()
            .expect("client");
        Bench {
            store,
            integration,
            server,
            http,
            _dir: dir,
        }
    }

    /// Stops the server and closes the store.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("stop");
        self.store.close().await;
    }
}
