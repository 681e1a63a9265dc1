//! The harness: one entra-sim, one server on a fresh database, an HTTPS client that trusts
//! both, and a bootstrap admin token.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use keybridge_config::Config;
use keybridge_entra_sim::{EntraSim, RunningSim, SimConfig};
use keybridge_graph::Cloud;
use keybridge_server::{GraphSettings, RunningServer, Server, ServerOptions};
use keybridge_store::{KeyRing, Role, SecretKey, Store, StoreOptions};
use keybridge_testkit::{Backend, TestDatabase};
use serde_json::Value;

/// The program the test servers offer as their workstation client.
pub const CLIENT_STAND_IN: &[u8] = b"#!/bin/sh\necho 'keybridge workstation client stand-in'\n";

pub struct Harness {
    pub sim: RunningSim,
    pub server: RunningServer,
    pub store: Store,
    pub http: reqwest::Client,
    pub admin_token: String,
    _dir: tempfile::TempDir,
    _db: TestDatabase,
}

/// The tests hand the server entra-sim's endpoints through `ServerOptions::graph`.
pub fn config(data_dir: &Path, database_url: &str) -> Config {
    keybridge_testkit::loopback_server_config(data_dir, database_url)
}

pub fn options(sim: &RunningSim) -> ServerOptions {
    let info = sim.info();
    ServerOptions {
        graph: GraphSettings {
            cloud: Cloud::custom(&info.base_url, &info.graph_url).expect("sim endpoints"),
            ca_bundle_pem: Some(std::fs::read_to_string(&info.ca_pem).expect("sim CA")),
            ..GraphSettings::default()
        },
        worker_poll_interval: Some(Duration::from_millis(50)),
        shutdown_grace: Duration::from_secs(5),
        ..ServerOptions::default()
    }
}

pub async fn connect_store(url: &str) -> Store {
    Store::connect(
        url,
        StoreOptions::new(KeyRing::new(SecretKey::generate(), Vec::new())),
    )
    .await
    .expect("store connects")
}

/// An HTTPS client trusting the given CA files.
pub fn http_client(ca_files: &[&Path]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
    for file in ca_files {
        let pem = std::fs::read(file).expect("read CA");
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA parses"));
    }
    builder.build().expect("client")
}

pub async fn start(backend: Backend) -> Harness {
    start_with(backend, None).await
}

/// A harness whose `server.public_url` names the port it listens on, as phones need: the
/// pairing payload carries that URL and enrolments are checked against it.
pub async fn start_reachable(backend: Backend) -> Harness {
    start_with(backend, Some("127.0.0.1")).await
}

/// [`start_reachable`] with the server's options changed by `tweak` first.
pub async fn start_reachable_with(
    backend: Backend,
    tweak: impl FnOnce(&mut ServerOptions),
) -> Harness {
    start_tweaked(backend, Some("127.0.0.1"), tweak).await
}

/// A harness whose `server.public_url` is `https://localhost:PORT`, as the console's passkey
/// login needs (WebAuthn takes `localhost`, not an IP address, as RP id).
pub async fn start_console(backend: Backend) -> Harness {
    start_with(backend, Some("localhost")).await
}

async fn start_with(backend: Backend, public_host: Option<&str>) -> Harness {
    start_tweaked(backend, public_host, |_| {}).await
}

/// [`start_reachable`] with invitation e-mails sent through `smtp`.
pub async fn start_with_smtp(backend: Backend, smtp: keybridge_config::SmtpConfig) -> Harness {
    start_configured(backend, Some("127.0.0.1"), |_| {}, |c| c.smtp = Some(smtp)).await
}

async fn start_tweaked(
    backend: Backend,
    public_host: Option<&str>,
    tweak: impl FnOnce(&mut ServerOptions),
) -> Harness {
    start_configured(backend, public_host, tweak, |_| {}).await
}

async fn start_configured(
    backend: Backend,
    public_host: Option<&str>,
    tweak: impl FnOnce(&mut ServerOptions),
    configure: impl FnOnce(&mut Config),
) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = EntraSim::start(SimConfig::new(dir.path().join("sim")))
        .await
        .expect("entra-sim starts");
    let db = TestDatabase::new(backend);
    let store = connect_store(db.url()).await;
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).expect("server dir");
    let client = dir.path().join("client-stand-in");
    std::fs::write(&client, CLIENT_STAND_IN).expect("stand-in client");
    let mut server_options = options(&sim);
    server_options.desktop_client_binary = Some(client);
    tweak(&mut server_options);
    let mut server_config = config(&server_dir, db.url());
    if let Some(host) = public_host {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        server_config.server.listen = SocketAddr::from(([127, 0, 0, 1], port));
        server_config.server.public_url =
            url::Url::parse(&format!("https://{host}:{port}/")).expect("URL");
    }
    configure(&mut server_config);
    let server = Server::start(server_config, store.clone(), server_options)
        .await
        .expect("server starts");
    let ca = server.ca_file.clone().expect("self-made certificate");
    let http = http_client(&[&ca, &sim.info().ca_pem]);
    let (_, admin_token) =
        keybridge_server::create_token_locally(&store, "test admin", Role::Admin, None)
            .await
            .expect("bootstrap token");
    Harness {
        sim,
        server,
        store,
        http,
        admin_token,
        _dir: dir,
        _db: db,
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    pub async fn token(&self, role: Role) -> String {
        keybridge_server::create_token_locally(&self.store, role.as_str(), role, None)
            .await
            .expect("token")
            .1
    }

    /// Sends a request with the admin token; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(&self.admin_token, method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Calls entra-sim's control API.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
        let info = self.sim.info();
        let mut request = self
            .http
            .request(method, format!("{}{path}", info.control_url))
            .bearer_auth(&info.control_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("control API").status().as_u16()
    }

    /// The body of a creation with the sim's client secret.
    pub fn integration_body(&self, name: &str) -> Value {
        let info = self.sim.info();
        serde_json::json!({
            "name": name,
            "tenant_id": info.tenant_id.to_string(),
            "client_id": info.client_id.to_string(),
            "client_secret": info.client_secret,
        })
    }

    /// Waits until a job finishes; returns its final view.
    pub async fn wait_for_job(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self
                .call(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await;
            assert_eq!(status, 200, "{job}");
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "dead" | "cancelled")
            ) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish in 30 s");
    }

    /// Stops the server and starts a new one on the same database and data directory.
    pub async fn restart(self) -> Harness {
        let Harness {
            sim,
            server,
            store,
            http,
            admin_token,
            _dir,
            _db,
        } = self;
        server.shutdown().await.expect("clean shutdown");
        let server = Server::start(
            config(&_dir.path().join("server"), _db.url()),
            store.clone(),
            options(&sim),
        )
        .await
        .expect("server restarts");
        Harness {
            sim,
            server,
            store,
            http,
            admin_token,
            _dir,
            _db,
        }
    }

    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
        self.sim.shutdown().await.expect("sim stops");
        self.store.close().await;
    }
}

/// Asserts an error envelope: status, code, field, and that the request id is there.
pub fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, field: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "no request id: {body}"
    );
}
