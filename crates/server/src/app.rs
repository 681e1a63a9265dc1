//! The shared state every handler and job reaches: store, configuration, Graph clients and
//! the metrics handle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keybridge_config::Config;
use keybridge_graph::{
    CertificateCredential, ClientCredential, Cloud, Fido2Pacing, GraphClient, GraphConfig,
    GraphError, RateLimits, RetryPolicy,
};
use keybridge_store::{Integration, IntegrationCredential, Store};
use metrics_exporter_prometheus::PrometheusHandle;

/// How the server reaches Entra: the cloud (or custom endpoints such as entra-sim) and the
/// extra CA to trust.
#[derive(Debug, Clone, Default)]
pub struct GraphSettings {
    /// Global cloud by default; `Cloud::custom(authority, graph)` for entra-sim.
    pub cloud: Cloud,
    /// Extra trusted CA certificates (PEM), e.g. entra-sim's test CA.
    pub ca_bundle_pem: Option<String>,
    /// Client-side pacing (Graph's documented quotas by default).
    pub rate_limits: Option<RateLimits>,
    /// When FIDO2 calls other than lists are paced to the reports budget (`entra.fido2_pacing`).
    pub fido2_pacing: Fido2Pacing,
    /// Retry policy (the client's default when unset).
    pub retry: Option<RetryPolicy>,
    /// Time limit of one Graph request.
    pub request_timeout: Option<Duration>,
}

/// Integration id → (fingerprint of tenant, app and credential; its client).
type ClientCache = HashMap<String, ([u8; 32], GraphClient)>;

/// Makes Graph clients, one per integration and credential, and caches them (a client holds
/// its token and its share of the tenant's quota, so it must be reused).
#[derive(Clone)]
pub struct GraphFactory {
    settings: GraphSettings,
    cache: Arc<Mutex<ClientCache>>,
}

impl std::fmt::Debug for GraphFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphFactory")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl GraphFactory {
    /// A factory for these settings.
    pub fn new(settings: GraphSettings) -> GraphFactory {
        GraphFactory {
            settings,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A new client for a tenant, app and credential (not cached: used to verify input).
    pub fn client(
        &self,
        tenant_id: &str,
        client_id: &str,
        credential: ClientCredential,
    ) -> Result<GraphClient, GraphError> {
        let mut config = GraphConfig::new(tenant_id, client_id, credential)
            .with_cloud(self.settings.cloud.clone())
            .with_fido2_pacing(self.settings.fido2_pacing);
        if let Some(pem) = &self.settings.ca_bundle_pem {
            config = config.with_ca_bundle_pem(pem.clone());
        }
        if let Some(limits) = &self.settings.rate_limits {
            config = config.with_rate_limits(limits.clone());
        }
        if let Some(retry) = &self.settings.retry {
            config = config.with_retry(retry.clone());
        }
        if let Some(timeout) = self.settings.request_timeout {
            config = config.with_request_timeout(timeout);
        }
        GraphClient::new(config)
    }

    /// The cached client of a stored integration (re-made when its credential changed, and
    /// only then: the client keeps its token and its pacing state between jobs).
    pub fn for_integration(&self, integration: &Integration) -> Result<GraphClient, GraphError> {
        let version = fingerprint(integration);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached_version, client)) = cache.get(&integration.id)
            && *cached_version == version
        {
            return Ok(client.clone());
        }
        let client = self.client(
            &integration.tenant_id,
            &integration.client_id,
            graph_credential(&integration.credential)?,
        )?;
        cache.insert(integration.id.clone(), (version, client.clone()));
        Ok(client)
    }

    /// Drops the cached client of an integration (deleted or credential rotated).
    pub fn forget(&self, integration_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(integration_id);
    }
}

fn fingerprint(integration: &Integration) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [
        integration.tenant_id.as_str(),
        integration.client_id.as_str(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    match &integration.credential {
        IntegrationCredential::ClientSecret(secret) => {
            hash.update(b"secret\0");
            hash.update(secret.expose().as_bytes());
        }
        IntegrationCredential::Certificate {
            certificate_pem,
            private_key_pem,
        } => {
            hash.update(b"certificate\0");
            hash.update(certificate_pem.as_bytes());
            hash.update([0]);
            hash.update(private_key_pem.expose().as_bytes());
        }
    }
    hash.finalize().into()
}

/// The Graph form of a stored credential.
pub fn graph_credential(
    credential: &IntegrationCredential,
) -> Result<ClientCredential, GraphError> {
    Ok(match credential {
        IntegrationCredential::ClientSecret(secret) => ClientCredential::secret(secret.expose())?,
        IntegrationCredential::Certificate {
            certificate_pem,
            private_key_pem,
        } => ClientCredential::Certificate(Box::new(CertificateCredential::from_pem_parts(
            certificate_pem,
            private_key_pem.expose(),
        )?)),
    })
}

/// The application state, cheap to clone; handlers get it through `State<App>`.
#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
struct AppInner {
    store: Store,
    config: Config,
    graph: GraphFactory,
    metrics: PrometheusHandle,
    tls_pin: String,
    desktop_client: Option<std::path::PathBuf>,
    pairing_limits: crate::device_v1::pairing::PairingLimits,
    console_login_limits: crate::console::login::LoginLimits,
    wakeups: crate::wakeups::Wakeups,
    mailer: Option<crate::mail::Mailer>,
}

impl App {
    /// The state for one server.
    pub fn new(
        store: Store,
        config: Config,
        graph: GraphFactory,
        metrics: PrometheusHandle,
        tls_pin: String,
        desktop_client: Option<std::path::PathBuf>,
        mailer: Option<crate::mail::Mailer>,
    ) -> App {
        App {
            inner: Arc::new(AppInner {
                wakeups: crate::wakeups::Wakeups::new(store.clone()),
                store,
                config,
                graph,
                metrics,
                tls_pin,
                desktop_client,
                pairing_limits: Default::default(),
                console_login_limits: Default::default(),
                mailer,
            }),
        }
    }

    /// The workstation client program put in the desktop-client download, if any.
    pub fn desktop_client(&self) -> Option<&std::path::Path> {
        self.inner.desktop_client.as_deref()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Graph clients.
    pub fn graph(&self) -> &GraphFactory {
        &self.inner.graph
    }

    /// The Prometheus handle.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// `job` with the configured number of attempts (`jobs.max_attempts`).
    pub fn attempts(&self, job: keybridge_store::NewJob) -> keybridge_store::NewJob {
        job.max_attempts(i64::from(self.inner.config.jobs.max_attempts.max(1)))
    }

    /// Failed pairing attempts, for the short-code rate limits.
    pub fn pairing_limits(&self) -> &crate::device_v1::pairing::PairingLimits {
        &self.inner.pairing_limits
    }

    /// Failed console logins, for their rate limit.
    pub fn console_login_limits(&self) -> &crate::console::login::LoginLimits {
        &self.inner.console_login_limits
    }

    /// The instance's fan-out of inbox and answer notifications to waiting long polls.
    pub fn wakeups(&self) -> &crate::wakeups::Wakeups {
        &self.inner.wakeups
    }

    /// Invitation e-mails, when `[smtp]` is configured.
    pub fn mailer(&self) -> Option<&crate::mail::Mailer> {
        self.inner.mailer.as_ref()
    }

    /// The TLS pin phones and workstations check.
    pub fn tls_pin(&self) -> &str {
        &self.inner.tls_pin
    }
}
