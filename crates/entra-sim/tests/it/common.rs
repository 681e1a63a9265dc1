//! Starting entra-sim in-process and talking to it like a client would.

use keybridge_entra_sim::{EntraSim, RunningSim, SimConfig};
use serde_json::Value;

pub struct Harness {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    pub data_dir: tempfile::TempDir,
}

pub fn client_for(ca_pem: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).expect("read CA");
    let ca = reqwest::Certificate::from_pem(&pem).expect("CA parses");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client")
}

pub async fn start_with(users: usize, tweak: impl FnOnce(&mut SimConfig)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SimConfig::new(dir.path().to_path_buf());
    config.users = users;
    tweak(&mut config);
    let sim = EntraSim::start(config).await.expect("entra-sim starts");
    let http = client_for(&sim.info().ca_pem);
    Harness {
        sim,
        http,
        data_dir: dir,
    }
}

pub async fn start(users: usize) -> Harness {
    start_with(users, |_| {}).await
}

impl Harness {
    pub async fn token(&self) -> String {
        let info = self.sim.info();
        let response = self
            .http
            .post(&info.token_endpoint)
            .form(&[
                ("client_id", info.client_id.to_string()),
                ("client_secret", info.client_secret.clone()),
                ("scope", "https://graph.microsoft.com/.default".to_owned()),
                ("grant_type", "client_credentials".to_owned()),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn graph(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.sim.info().base_url)
        };
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("graph request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.graph(reqwest::Method::GET, path, token, None).await
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let info = self.sim.info();
        let mut request = self
            .http
            .request(method, format!("{}{path}", info.control_url))
            .bearer_auth(&info.control_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).expect("control json")
            },
        )
    }
}

/// Asserts Graph's error shape and returns the code.
pub fn graph_error(body: &Value) -> String {
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    let inner = &error["innerError"];
    assert!(inner["request-id"].is_string(), "{body}");
    let date = inner["date"].as_str().expect("date");
    assert_eq!(date.len(), 19, "no zone or fraction: {date}");
    error["code"].as_str().expect("code").to_owned()
}
