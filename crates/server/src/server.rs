//! Starting and stopping the server in-process: [`Server::start`] → [`RunningServer`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use keybridge_config::Config;
use keybridge_store::{RunningWorkers, Store};

use crate::app::{App, GraphFactory, GraphSettings};
use crate::tls::{TlsError, TlsMaterial};

/// Choices beyond the configuration file, for tests and the sandbox.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How to reach Entra (global cloud by default).
    pub graph: GraphSettings,
    /// Run the job workers in this process (default: yes).
    pub run_workers: bool,
    /// How often idle workers look for jobs (the store's default when unset).
    pub worker_poll_interval: Option<Duration>,
    /// How long shutdown waits for requests and jobs in flight.
    pub shutdown_grace: Duration,
    /// Directory syncs of every integration are queued at start and then this often (only
    /// where the workers run; `None`: never by schedule).
    pub sync_interval: Option<Duration>,
    /// The workstation client program for the desktop-client download (`keybridge serve`
    /// offers its own executable; without one the download answers 503).
    pub desktop_client_binary: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            graph: GraphSettings::default(),
            run_workers: true,
            worker_poll_interval: None,
            shutdown_grace: Duration::from_secs(10),
            sync_interval: Some(DEFAULT_SYNC_INTERVAL),
            desktop_client_binary: None,
        }
    }
}

/// How often the replay cache, old pairing sessions and overdue inbox requests are cleaned up.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// How often directory syncs are scheduled by default.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TLS configuration was refused (e.g. the key does not match the certificate).
    #[error("the TLS certificate and key cannot be used: {0}")]
    TlsConfig(String),
    /// The address could not be listened on.
    #[error("cannot listen on {address}: {source} (set server.listen to a free address and port)")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The `[smtp]` settings cannot be used.
    #[error("invitation e-mail: {0}")]
    Mail(#[from] crate::mail::MailSetupError),
    /// The server task failed.
    #[error("the HTTPS server stopped with an error: {0}")]
    Serve(std::io::Error),
}

/// The server.
#[derive(Debug)]
pub struct Server;

/// A started server.
pub struct RunningServer {
    /// The address listened on (the real port when `server.listen` asked for port 0).
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` (or the listen address) for local clients and tests.
    pub base_url: String,
    /// `sha256/<base64>` of the certificate's public key.
    pub tls_pin: String,
    /// The self-made CA certificate to trust, when the certificate is self-made.
    pub ca_file: Option<PathBuf>,
    handle: axum_server::Handle<SocketAddr>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Option<RunningWorkers>,
    scheduler: Option<tokio::task::JoinHandle<()>>,
    housekeeping: Option<tokio::task::JoinHandle<()>>,
    grace: Duration,
    app: App,
}

impl Server {
    /// Loads the certificate, binds `config.server.listen`, starts the workers and serves.
    /// The store is expected to be connected (migrations applied).
    pub async fn start(
        config: Config,
        store: Store,
        options: ServerOptions,
    ) -> Result<RunningServer, ServerError> {
        let tls = TlsMaterial::load(
            config.server.tls_cert.as_deref(),
            config.server.tls_key.as_deref(),
            &config.data_dir.join("tls"),
            config.server.public_url.host_str(),
        )?;
        let rustls = RustlsConfig::from_pem(
            tls.cert_chain_pem.clone().into_bytes(),
            tls.key_pem.clone().into_bytes(),
        )
        .await
        .map_err(|e| ServerError::TlsConfig(e.to_string()))?;
        let listen = config.server.listen;
        let listener =
            std::net::TcpListener::bind(listen).map_err(|source| ServerError::Listen {
                address: listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Listen {
                address: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                address: listen,
                source,
            })?;

        let mailer = config
            .smtp
            .as_ref()
            .map(crate::mail::Mailer::new)
            .transpose()?;
        let app = App::new(
            store,
            config,
            GraphFactory::new(options.graph.clone()),
            crate::metrics::handle(),
            tls.pin.clone(),
            options.desktop_client_binary.clone(),
            mailer,
        );
        let router = crate::router::router(app.clone());
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, rustls)
            .map_err(|source| ServerError::Listen {
                address: listen,
                source,
            })?
            .handle(handle.clone());
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move { server.serve(service).await });
        let workers = options
            .run_workers
            .then(|| crate::jobs::worker_pool(&app, options.worker_poll_interval).start());
        let scheduler = options
            .sync_interval
            .filter(|_| options.run_workers)
            .map(|interval| crate::jobs::spawn_sync_scheduler(app.clone(), interval));
        let housekeeping = options
            .run_workers
            .then(|| crate::device_v1::spawn_housekeeping(app.clone(), HOUSEKEEPING_INTERVAL));

        let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
            "127.0.0.1".to_owned()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let base_url = format!("https://{host}:{}", addr.port());
        tracing::info!(%addr, tls_pin = %tls.pin, "keybridge server listening");
        Ok(RunningServer {
            addr,
            base_url,
            tls_pin: tls.pin,
            ca_file: tls.ca_file,
            handle,
            server,
            workers,
            scheduler,
            housekeeping,
            grace: options.shutdown_grace,
            app,
        })
    }
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url)
            .field("tls_pin", &self.tls_pin)
            .field("workers", &self.workers.is_some())
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The application state (store, configuration, Graph clients).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Stops at once, as a crash would: connections are dropped, running jobs are abandoned
    /// mid-way and nothing is recorded for them (another instance takes them over when their
    /// leases end). For tests of several instances.
    pub fn abort(self) {
        if let Some(scheduler) = &self.scheduler {
            scheduler.abort();
        }
        if let Some(housekeeping) = &self.housekeeping {
            housekeeping.abort();
        }
        if let Some(workers) = self.workers {
            workers.abort();
        }
        self.handle.shutdown();
        self.server.abort();
    }

    /// Stops accepting connections, lets requests in flight finish and running jobs end (up to
    /// the grace period; unfinished jobs are taken over by another instance when their lease
    /// ends), then returns.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        if let Some(scheduler) = &self.scheduler {
            scheduler.abort();
        }
        if let Some(housekeeping) = &self.housekeeping {
            housekeeping.abort();
        }
        self.handle.graceful_shutdown(Some(self.grace));
        if let Some(workers) = self.workers {
            workers.shutdown(self.grace).await;
        }
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServerError::Serve(e)),
            Err(e) => Err(ServerError::Serve(std::io::Error::other(e.to_string()))),
        }
    }
}
