//! The test harness around entra-sim: an in-process emulator over real HTTPS with its own CA,
//! a client for its control API, and GraphClients for both credential kinds.

use std::time::Duration;

use keybridge_entra_sim::{EntraSim, RunningSim, SimConfig, StartInfo, ThrottleMode};
use keybridge_graph::{
    CertificateCredential, ClientCredential, Cloud, GraphClient, GraphConfig, RateLimits,
    RetryPolicy,
};
use serde_json::Value;

pub struct Sim {
    pub running: Option<RunningSim>,
    pub info: StartInfo,
    control: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub struct Options {
    pub users: usize,
    pub token_lifetime_secs: i64,
    pub throttle: ThrottleMode,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            users: 25,
            token_lifetime_secs: 3599,
            throttle: ThrottleMode::Off,
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Stop serving; the snapshot of a throwaway directory does not matter.
            drop(running);
        }
    }
}

pub async fn start() -> Sim {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> Sim {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = SimConfig::new(dir.path().join("sim"));
    config.users = options.users;
    config.token_lifetime_secs = options.token_lifetime_secs;
    config.throttle = options.throttle;
    let running = EntraSim::start(config).await.expect("entra-sim starts");
    let info = running.info().clone();
    let ca = std::fs::read(&info.ca_pem).expect("CA file");
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
        .build()
        .expect("client");
    Sim {
        running: Some(running),
        info,
        control,
        _dir: dir,
    }
}

impl Sim {
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.info.ca_pem).expect("CA file")
    }

    pub fn cloud(&self) -> Cloud {
        Cloud::custom(&self.info.base_url, &self.info.graph_url).expect("sim URLs")
    }

    pub fn config(&self, credential: ClientCredential) -> GraphConfig {
        GraphConfig::new(
            self.info.tenant_id.to_string(),
            self.info.client_id.to_string(),
            credential,
        )
        .with_cloud(self.cloud())
        .with_ca_bundle_pem(self.ca_pem())
        .with_rate_limits(RateLimits::unlimited())
        .with_retry(fast_retry())
        .with_request_timeout(Duration::from_secs(20))
    }

    pub fn secret(&self) -> ClientCredential {
        ClientCredential::secret(self.info.client_secret.clone()).expect("secret")
    }

    pub fn certificate(&self) -> ClientCredential {
        let cert = std::fs::read_to_string(&self.info.client_cert_pem).expect("cert file");
        let key = std::fs::read_to_string(&self.info.client_key_pem).expect("key file");
        ClientCredential::Certificate(Box::new(
            CertificateCredential::from_pem_parts(&key, &cert).expect("cert"),
        ))
    }

    /// A client with the app's client secret.
    pub fn client(&self) -> GraphClient {
        GraphClient::new(self.config(self.secret())).expect("client")
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{}", self.info.control_url, path);
        let mut request = self
            .control
            .request(method.clone(), &url)
            .bearer_auth(&self.info.control_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control API");
        let status = response.status();
        let text = response.text().await.expect("control body");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("control JSON")
        }
    }

    pub async fn faults(&self, rules: Value) {
        self.control(
            reqwest::Method::PUT,
            "/faults",
            Some(serde_json::json!({ "rules": rules })),
        )
        .await;
    }

    pub async fn roles(&self, roles: &[&str]) {
        self.control(
            reqwest::Method::PUT,
            "/roles",
            Some(serde_json::json!({ "roles": roles })),
        )
        .await;
    }

    pub async fn counters(&self) -> Value {
        self.control(reqwest::Method::GET, "/counters", None).await
    }
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(300),
        max_retry_after: Duration::from_secs(10),
    }
}
