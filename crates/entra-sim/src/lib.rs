//! # keybridge-entra-sim
//!
//! entra-sim is a local emulator of the part of Microsoft Entra ID and Microsoft Graph that
//! keybridge uses, written from the public documentation (the project's
//! `reference/entra.md`): the identity platform's OpenID metadata, JWKS and client-credentials
//! token endpoint (client secret or certificate assertion), Graph v1.0 and beta for users,
//! groups, members, authentication methods, FIDO2 `creationOptions` and registration, the
//! FIDO2 policy and `$batch`, plus a documented sign-in ceremony stand-in, fault injection,
//! Graph's throttling quotas and request counters. It serves HTTPS with a CA it creates in its
//! data directory, and keeps its tenant in memory with a snapshot file there.
//!
//! ## What it must not do
//! It shares no code with a Graph client (`keybridge-graph`) and none with the authenticator
//! (`keybridge-authenticator`): it is an independent reading of the documents, so that a
//! misreading on one side cannot hide the same misreading on the other. WebAuthn verification
//! is `keybridge-webauthn`'s. Where the documents are silent, the behaviour is marked `\[I\]`
//! in the code and in docs/entra-sim.md.
//!
//! ## Main types
//! - [`EntraSim::start`] with a [`SimConfig`] → [`RunningSim`], whose [`StartInfo`] is what
//!   `keybridge entra-sim --json` prints: authority, token endpoint, Graph URLs, tenant, app
//!   credentials, CA path, control URL and token.
//! - [`StartError`]: why it could not start.
//! - [`FaultRule`], [`FaultKind`], [`ThrottleMode`], [`Counters`]: the control API's types.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keybridge_entra_sim::StartError> {
//! let dir = std::path::PathBuf::from("/tmp/entra-sim");
//! let sim = keybridge_entra_sim::EntraSim::start(keybridge_entra_sim::SimConfig::new(dir)).await?;
//! println!("token endpoint: {}", sim.info().token_endpoint);
//! sim.shutdown().await?;
//! # Ok(()) }
//! ```

mod control;
mod error;
mod fido2;
mod graph;
mod identity;
mod model;
mod persist;
mod pki;
mod seed;
mod signin;
mod sim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use uuid::Uuid;

pub use error::StartError;
pub use seed::{DEFAULT_ROLES, VENDOR_KEYS};
pub use sim::{Counters, FaultKind, FaultRule, ThrottleMode};

/// Largest request body accepted (larger ones get a Graph-shaped 413).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How to start entra-sim.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Data directory: CA, keys, app credential files and the state snapshot.
    pub data_dir: PathBuf,
    /// Users to generate in a new tenant (ignored when the data directory holds a tenant).
    pub users: usize,
    /// Seed file applied to a new tenant.
    pub seed: Option<PathBuf>,
    /// Latency added to every request (ms).
    pub latency_ms: u64,
    /// Throttling at start.
    pub throttle: ThrottleMode,
    /// FIDO MDS3 BLOB (JWS) to load.
    pub mds_blob: Option<PathBuf>,
    /// Root certificate (PEM or DER) the BLOB must chain to.
    pub mds_root: Option<PathBuf>,
    /// Serve plain HTTP (loopback only).
    pub plain_http: bool,
    /// Access-token lifetime in seconds (Entra: 3599 for app tokens).
    pub token_lifetime_secs: i64,
    /// Registration challenges usable once (Entra's are stateless and reusable until they
    /// expire \[I\]; also switchable through the control API).
    pub single_use_challenges: bool,
}

impl SimConfig {
    /// Defaults: `127.0.0.1:0`, 25 users, HTTPS, no throttling, no latency.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            users: 25,
            seed: None,
            latency_ms: 0,
            throttle: ThrottleMode::Off,
            mds_blob: None,
            mds_root: None,
            plain_http: false,
            token_lifetime_secs: 3599,
            single_use_challenges: false,
        }
    }
}

/// What a running entra-sim offers; printed as one JSON line by `keybridge entra-sim --json`.
#[derive(Debug, Clone, Serialize)]
pub struct StartInfo {
    /// `https://localhost:PORT/<tenant id>`.
    pub authority: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// `…/<tenant id>/v2.0/.well-known/openid-configuration`.
    pub openid_configuration: String,
    /// The JWKS.
    pub jwks_uri: String,
    /// Graph v1.0 base URL.
    pub graph_url: String,
    /// Graph beta base URL.
    pub graph_beta_url: String,
    /// Tenant id.
    pub tenant_id: Uuid,
    /// Tenant domain (`contoso.onmicrosoft.com`).
    pub tenant_domain: String,
    /// Verified domain UPNs use.
    pub verified_domain: String,
    /// App (client) id.
    pub client_id: Uuid,
    /// A valid client secret value.
    pub client_secret: String,
    /// Path of the app's certificate credential (PEM).
    pub client_cert_pem: PathBuf,
    /// Path of its private key (PEM, PKCS#8).
    pub client_key_pem: PathBuf,
    /// Path of the CA certificate to trust (PEM).
    pub ca_pem: PathBuf,
    /// Control API base URL.
    pub control_url: String,
    /// Bearer token of the control API.
    pub control_token: String,
    /// Sign-in ceremony base URL (`…/<tenant id>/fido/signin`).
    pub signin_url: String,
    /// `https://localhost:PORT`.
    pub base_url: String,
    /// Port listened on.
    pub port: u16,
}

/// A running emulator. Dropping it without [`RunningSim::shutdown`] stops serving when the
/// runtime ends but may skip the last snapshot.
pub struct RunningSim {
    info: StartInfo,
    handle: axum_server::Handle<SocketAddr>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    writer: tokio::task::JoinHandle<()>,
    sim: Arc<sim::Sim>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// URLs, ids and credentials of this instance.
    pub fn info(&self) -> &StartInfo {
        &self.info
    }

    /// Replaces the fault rules (as `PUT /_control/faults` does).
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        *self
            .sim
            .traffic
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = rules;
    }

    /// Sets the throttling mode and restarts the budgets (as `PUT /_control/throttle` does).
    pub fn set_throttle(&self, mode: ThrottleMode) {
        *self
            .sim
            .traffic
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = sim::Throttle {
            mode,
            ..sim::Throttle::default()
        };
    }

    /// Sets latency added to every request (as `PUT /_control/latency` does).
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.sim
            .traffic
            .latency_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Replaces the app's granted application permissions (as `PUT /_control/roles` does).
    pub fn set_granted_roles(&self, roles: &[&str]) {
        self.sim.write().app.granted_roles = roles.iter().map(|r| (*r).to_owned()).collect();
        self.sim.changed();
    }

    /// A copy of the request counters (as `GET /_control/counters` answers).
    pub fn counters(&self) -> Counters {
        self.sim
            .traffic
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s), and saves the state.
    ///
    /// # Errors
    /// [`StartError`] when the final snapshot cannot be written.
    pub async fn shutdown(self) -> Result<(), StartError> {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = self.server.await;
        self.writer.abort();
        let sim = Arc::clone(&self.sim);
        tokio::task::spawn_blocking(move || persist::save_now(&sim))
            .await
            .map_err(|e| StartError::State {
                path: self.sim.data_dir.join(persist::STATE_FILE),
                detail: e.to_string(),
            })?
    }
}

/// The emulator.
#[derive(Debug)]
pub struct EntraSim;

impl EntraSim {
    /// Starts entra-sim: creates or loads the data directory, binds, and serves in the
    /// current tokio runtime. Returns once it accepts connections.
    ///
    /// # Errors
    /// [`StartError`] naming what failed (data directory, certificates, seed, metadata, bind).
    pub async fn start(config: SimConfig) -> Result<RunningSim, StartError> {
        if config.plain_http && !config.listen.ip().is_loopback() {
            return Err(StartError::Listen {
                address: config.listen.to_string(),
                detail: "--plain-http is only allowed on a loopback address".to_owned(),
            });
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let dir = config.data_dir.clone();
        let pki = tokio::task::spawn_blocking(move || pki::load_or_create(&dir))
            .await
            .map_err(|e| StartError::Certificate {
                what: "key material",
                detail: e.to_string(),
            })??;
        let tenant = match persist::load(&config.data_dir)? {
            Some(mut t) => {
                // A certificate credential recreated in DIR (files deleted or expired) is
                // registered on the app, as an admin would upload the new one.
                use base64::Engine as _;
                let der = base64::engine::general_purpose::STANDARD.encode(&pki.client_cert_der);
                if !t.app.certificates.iter().any(|c| c.der_base64 == der) {
                    t.app.certificates.push(model::CertificateCredential {
                        key_id: Uuid::new_v4(),
                        der_base64: der,
                    });
                }
                t
            }
            None => {
                let t =
                    seed::new_tenant(config.users, config.seed.as_deref(), &pki.client_cert_der)?;
                persist::save_bytes(
                    &config.data_dir,
                    &serde_json::to_vec(&t).map_err(|e| StartError::State {
                        path: config.data_dir.join(persist::STATE_FILE),
                        detail: e.to_string(),
                    })?,
                )?;
                t
            }
        };
        let metadata = match (&config.mds_blob, &config.mds_root) {
            (Some(blob), Some(root)) => Some(fido2::load_metadata(blob, root)?),
            (None, None) => None,
            _ => {
                return Err(StartError::Metadata {
                    detail: "--mds-blob and --mds-root go together".to_owned(),
                });
            }
        };
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|e| StartError::Listen {
                address: config.listen.to_string(),
                detail: e.to_string(),
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| StartError::Listen {
                address: config.listen.to_string(),
                detail: e.to_string(),
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError::Listen {
                address: config.listen.to_string(),
                detail: e.to_string(),
            })?
            .port();
        let host = if config.listen.ip().is_loopback() || config.listen.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            config.listen.ip().to_string()
        };
        let scheme = if config.plain_http { "http" } else { "https" };
        let base_url = format!("{scheme}://{host}:{port}");

        let traffic = sim::Traffic::default();
        traffic
            .latency_ms
            .store(config.latency_ms, std::sync::atomic::Ordering::Relaxed);
        traffic
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mode = config.throttle;
        let tid = tenant.tenant_id;
        let info = StartInfo {
            authority: format!("{base_url}/{tid}"),
            token_endpoint: format!("{base_url}/{tid}/oauth2/v2.0/token"),
            openid_configuration: format!("{base_url}/{tid}/v2.0/.well-known/openid-configuration"),
            jwks_uri: format!("{base_url}/{tid}/discovery/v2.0/keys"),
            graph_url: format!("{base_url}/v1.0"),
            graph_beta_url: format!("{base_url}/beta"),
            tenant_id: tid,
            tenant_domain: tenant.initial_domain.clone(),
            verified_domain: tenant.verified_domain.clone(),
            client_id: tenant.app.client_id,
            client_secret: tenant
                .app
                .secrets
                .iter()
                .find(|s| s.end_date_time > time::OffsetDateTime::now_utc())
                .map(|s| s.value.clone())
                .unwrap_or_default(),
            client_cert_pem: pki.client_cert_pem_path.clone(),
            client_key_pem: pki.client_key_pem_path.clone(),
            ca_pem: pki.ca_pem_path.clone(),
            control_url: format!("{base_url}/_control"),
            control_token: tenant.control_token.clone(),
            signin_url: format!("{base_url}/{tid}/fido/signin"),
            base_url: base_url.clone(),
            port,
        };
        let sim = Arc::new(sim::Sim {
            tenant: std::sync::RwLock::new(tenant),
            dirty: tokio::sync::Notify::new(),
            data_dir: config.data_dir.clone(),
            base_url,
            signing: pki.signing,
            token_lifetime_secs: config.token_lifetime_secs,
            seen_assertion_ids: Default::default(),
            traffic,
            used_challenges: Default::default(),
            strict_single_use: std::sync::atomic::AtomicBool::new(config.single_use_challenges),
            sign_in_challenges: Default::default(),
            metadata,
            clock_offset_secs: Default::default(),
            group_replication_ms: Default::default(),
            registration_origins: std::sync::RwLock::new(
                keybridge_webauthn::relying_party::ENTRA_ORIGINS
                    .iter()
                    .map(|o| (*o).to_owned())
                    .collect(),
            ),
        });
        let app = router(Arc::clone(&sim));
        let handle = axum_server::Handle::new();
        let service = app.into_make_service();
        let server = if config.plain_http {
            let server = axum_server::from_tcp(listener)
                .map_err(|e| StartError::Listen {
                    address: config.listen.to_string(),
                    detail: e.to_string(),
                })?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await })
        } else {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
                pki.server_cert_pem.into_bytes(),
                pki.server_key_pem.into_bytes(),
            )
            .await
            .map_err(|e| StartError::Certificate {
                what: "TLS configuration",
                detail: e.to_string(),
            })?;
            let server = axum_server::from_tcp_rustls(listener, tls)
                .map_err(|e| StartError::Listen {
                    address: config.listen.to_string(),
                    detail: e.to_string(),
                })?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await })
        };
        if handle.listening().await.is_none() {
            return Err(StartError::Listen {
                address: config.listen.to_string(),
                detail: "the server did not start listening".to_owned(),
            });
        }
        let writer = tokio::spawn(persist::writer(Arc::clone(&sim)));
        Ok(RunningSim {
            info,
            handle,
            server,
            writer,
            sim,
        })
    }
}

fn router(sim: Arc<sim::Sim>) -> Router {
    let served = Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(identity::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(identity::jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route("/.well-known/webauthn", get(signin::related_origins))
        .route("/{tenant}/fido/signin/start", post(signin::start))
        .route("/{tenant}/fido/signin/finish", post(signin::finish))
        .route("/v1.0", any(graph::http_entry))
        .route("/v1.0/{*rest}", any(graph::http_entry))
        .route("/beta", any(graph::http_entry))
        .route("/beta/{*rest}", any(graph::http_entry))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&sim), traffic))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    served
        .merge(control::router(Arc::clone(&sim)))
        .with_state(sim)
}

async fn not_found(request: Request) -> Response {
    graph::to_http(
        graph::GraphError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NotFound",
            format!("No endpoint at '{}'.", request.uri().path()),
        )
        .into_graph(&Uuid::new_v4().to_string(), None),
    )
}

/// Counters, latency and injected faults for every served path (the control API is exempt).
async fn traffic(State(sim): State<Arc<sim::Sim>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let label = if let Some(rest) = path.strip_prefix("/v1.0") {
        graph::endpoint_label(&method, graph::Version::V1, rest)
    } else if let Some(rest) = path.strip_prefix("/beta") {
        graph::endpoint_label(&method, graph::Version::Beta, rest)
    } else {
        let rest = path.trim_start_matches('/');
        let rest = rest.split_once('/').map_or("", |(_, r)| r);
        format!("{method} /{{tenant}}/{rest}")
    };
    let is_graph = path.starts_with("/v1.0") || path.starts_with("/beta");
    let decision = sim.traffic.decide(method.as_str(), &path);
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    let request_id = Uuid::new_v4().to_string();
    let response = match decision.outcome {
        None => handle_in_limits(request, next, &request_id).await,
        Some(sim::FaultOutcome::Throttle { retry_after }) if !is_graph => {
            identity::transient_error(429, Some(retry_after))
        }
        Some(sim::FaultOutcome::Error {
            status,
            retry_after,
        }) if !is_graph => identity::transient_error(status, retry_after),
        Some(sim::FaultOutcome::Throttle { retry_after }) => {
            graph::to_http(graph::GraphError::throttled(retry_after).into_graph(&request_id, None))
        }
        Some(sim::FaultOutcome::Error {
            status,
            retry_after,
        }) => graph::to_http(graph::fault_error(status, retry_after).into_graph(&request_id, None)),
        Some(sim::FaultOutcome::Drop) => return dropped_connection(&sim),
        Some(sim::FaultOutcome::DropAfter) => {
            // The handler runs to the end (its writes are made), and its answer is thrown away.
            drop(handle_in_limits(request, next, &request_id).await);
            return dropped_connection(&sim);
        }
    };
    sim.traffic
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .record(&label, response.status().as_u16());
    response
}

/// Runs the handler, unless the declared body is over the limit.
async fn handle_in_limits(request: Request, next: Next, request_id: &str) -> Response {
    let too_big = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    if too_big {
        too_large(request_id)
    } else {
        next.run(request).await
    }
}

/// An answer that never completes: counted as dropped, not as an answered request.
fn dropped_connection(sim: &sim::Sim) -> Response {
    sim.traffic
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .dropped += 1;
    // A body that fails makes the server abort the connection without a full answer.
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by entra-sim",
        ))
    });
    Response::new(Body::from_stream(failing))
}

fn too_large(request_id: &str) -> Response {
    graph::to_http(
        graph::GraphError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body is larger than the limit of {MAX_BODY_BYTES} bytes."),
        )
        .into_graph(request_id, None),
    )
    .into_response()
}
