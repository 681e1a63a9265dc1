//! The whole lifecycle of an enterprise passkey, end to end, on SQLite and on PostgreSQL:
//! entra-sim over HTTPS and the keybridge server, driven through `/api/v1` as an admin would,
//! with the phone played by the real `keybridge device` binary.
//!
//! connect the integration → directory sync → invite → `keybridge device pair` → enable native
//! login → `keybridge device inbox` answers the provisioning request → the passkey is in
//! entra-sim and the user is Paired with Entra → `keybridge device unpair` → the passkey is
//! gone from entra-sim and the user is Pending with "This user unpaired from keybridge.".

use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use keybridge_authenticator::AAGUID_STRING;
use keybridge_entra_sim::{EntraSim, SimConfig};
use keybridge_graph::{Cloud, GraphClient};
use keybridge_server::{GraphSettings, Server, ServerOptions};
use keybridge_store::{KeyRing, Role, SecretKey, Store, StoreOptions};
use keybridge_testkit::TestDatabase;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{keybridge_with_env, stderr, stdout};

pub(crate) const STORE_PIN: &str = "135790";

/// Runs `keybridge` off the async runtime (the server under test runs on it).
pub(crate) async fn keybridge(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        keybridge_with_env(&args, &[("KEYBRIDGE_DEVICE_PIN", STORE_PIN)])
    })
    .await
    .unwrap()
}

pub(crate) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Api {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn wait_for_job(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, job) = self.call(Method::GET, &format!("/jobs/{id}"), None).await;
            assert_eq!(status, 200, "{job}");
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "dead" | "cancelled")
            ) {
                return job;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "job {id} did not finish: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn user(&self, id: &str) -> Value {
        let (status, user) = self.call(Method::GET, &format!("/users/{id}"), None).await;
        assert_eq!(status, 200, "{user}");
        user
    }

    /// Polls the user until `done` holds (60 s at most).
    async fn wait_for_user(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let user = self.user(id).await;
            if done(&user) {
                return user;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the user did not get there: {user}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Creates the integration for entra-sim's tenant and waits for its first directory sync;
/// returns its id.
pub(crate) async fn connect(api: &Api, info: &keybridge_entra_sim::StartInfo) -> String {
    let (status, created) = api
        .call(
            Method::POST,
            "/integrations",
            Some(json!({
                "name": "Contoso Passkeys",
                "tenant_id": info.tenant_id.to_string(),
                "client_id": info.client_id.to_string(),
                "client_secret": info.client_secret,
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let sync = api
        .wait_for_job(created["sync_job_id"].as_str().unwrap())
        .await;
    assert_eq!(sync["state"], "succeeded", "{sync}");
    created["integration"]["id"].as_str().unwrap().to_owned()
}

/// Invites the user and fetches the QR payload as the Device Manager page does.
pub(crate) async fn invitation_payload(api: &Api, user_id: &str) -> String {
    let (status, invited) = api
        .call(
            Method::POST,
            &format!("/users/{user_id}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let link = invited["link"].as_str().unwrap();
    let view: Value = api
        .http
        .get(format!("{link}/pairing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    view["qr_payload"].as_str().unwrap().to_owned()
}

/// The AAGUIDs of the user's FIDO2 methods in entra-sim.
pub(crate) async fn entra_aaguids(graph: &GraphClient, object_id: &str) -> Vec<String> {
    graph
        .list_fido2_methods(object_id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.aa_guid.unwrap_or_default())
        .collect()
}

async fn whole_lifecycle(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let sim = EntraSim::start(SimConfig::new(dir.path().join("sim")))
        .await
        .unwrap();
    let info = sim.info();
    let sim_ca = std::fs::read_to_string(&info.ca_pem).unwrap();

    // The server, configured through its TOML file, on a port the phone can reach.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let data_dir = dir.path().join("server");
    std::fs::create_dir_all(&data_dir).unwrap();
    let config_file = dir.path().join("keybridge.toml");
    std::fs::write(
        &config_file,
        format!(
            "data_dir = {data_dir:?}\n\
             [database]\nurl = {url:?}\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"https://127.0.0.1:{port}/\"\n\
             [jobs]\nworkers = 2\nmax_attempts = 3\nlease_seconds = 30\n",
            data_dir = data_dir.display().to_string(),
            url = db.url(),
        ),
    )
    .unwrap();
    let config = keybridge_config::Config::load(Some(&config_file)).unwrap();
    let store = Store::connect(
        db.url(),
        StoreOptions::new(KeyRing::new(SecretKey::generate(), Vec::new())),
    )
    .await
    .unwrap();
    let server = Server::start(
        config,
        store.clone(),
        ServerOptions {
            graph: GraphSettings {
                cloud: Cloud::custom(&info.base_url, &info.graph_url).unwrap(),
                ca_bundle_pem: Some(sim_ca.clone()),
                ..GraphSettings::default()
            },
            worker_poll_interval: Some(Duration::from_millis(50)),
            shutdown_grace: Duration::from_secs(5),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(server.addr, SocketAddr::from(([127, 0, 0, 1], port)));
    let server_ca = std::fs::read(server.ca_file.clone().unwrap()).unwrap();
    let (_, token) = keybridge_server::create_token_locally(&store, "e2e", Role::Admin, None)
        .await
        .unwrap();
    let api = Api {
        http: reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&server_ca).unwrap())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        base: server.base_url.clone(),
        token,
    };

    // Connect the tenant; the first directory sync runs.
    let integration_id = connect(&api, info).await;
    let (_, list) = api
        .call(
            Method::GET,
            &format!("/integrations/{integration_id}/users?limit=1"),
            None,
        )
        .await;
    let user = list["items"][0].clone();
    let user_id = user["id"].as_str().unwrap().to_owned();
    let object_id = user["entra_object_id"].as_str().unwrap().to_owned();
    let graph = server
        .app()
        .graph()
        .for_integration(&store.integrations().get(&integration_id).await.unwrap())
        .unwrap();
    let others_keys = entra_aaguids(&graph, &object_id).await;
    assert!(!others_keys.iter().any(|a| a == AAGUID_STRING));

    // Invite; the Device Manager page's JSON gives the QR payload.
    let payload = invitation_payload(&api, &user_id).await;

    // The phone: a new key store, then pairing through the QR payload.
    let phone_dir = tempfile::tempdir().unwrap();
    let phone = phone_dir.path().join("phone").display().to_string();
    let init = keybridge(args(&["device", "init", "--store", &phone])).await;
    assert!(init.status.success(), "{}", stderr(&init));
    let paired = keybridge(args(&[
        "device",
        "pair",
        "--store",
        &phone,
        "--name",
        "E2E phone",
        &payload,
    ]))
    .await;
    assert!(paired.status.success(), "{}", stderr(&paired));
    let shown = api.user(&user_id).await;
    assert_eq!(shown["state"], "paired_with_keybridge", "{shown}");
    assert_eq!(shown["device_count"], 1, "{shown}");

    // Native Entra login on: the phone's inbox gets the provisioning request and answers it.
    let (status, enabled) = api
        .call(
            Method::PUT,
            &format!("/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    let mut answered = String::new();
    for _ in 0..3 {
        let inbox = keybridge(args(&[
            "device",
            "inbox",
            "--store",
            &phone,
            "--once",
            "--wait",
            "20",
            "--approve-all",
        ]))
        .await;
        assert!(inbox.status.success(), "{}", stderr(&inbox));
        answered = stdout(&inbox);
        if !answered.contains("0 request(s) answered.") {
            break;
        }
    }
    assert!(
        answered.contains("Passkey created and sent to the server."),
        "{answered}"
    );
    assert!(answered.contains("1 request(s) answered."), "{answered}");

    // The passkey is in entra-sim, once, with keybridge's AAGUID; the user is Paired with Entra.
    let shown = api
        .wait_for_user(&user_id, |u| u["state"] == "paired_with_entra")
        .await;
    assert_eq!(shown["provisioning_error"], Value::Null, "{shown}");
    let aaguids = entra_aaguids(&graph, &object_id).await;
    assert_eq!(
        aaguids.iter().filter(|a| *a == AAGUID_STRING).count(),
        1,
        "{aaguids:?}"
    );

    // The phone unpairs: the passkey leaves entra-sim, the user is Pending with the warning.
    let unpaired = keybridge(args(&["device", "unpair", "--store", &phone])).await;
    assert!(unpaired.status.success(), "{}", stderr(&unpaired));
    assert!(
        stdout(&unpaired).contains("deleting this phone's passkey from Microsoft Entra"),
        "{}",
        stdout(&unpaired)
    );
    let shown = api
        .wait_for_user(&user_id, |u| u["state"] == "pending")
        .await;
    assert_eq!(
        shown["warning"], "This user unpaired from keybridge.",
        "{shown}"
    );
    assert_eq!(shown["device_count"], 0, "{shown}");
    assert_eq!(entra_aaguids(&graph, &object_id).await, others_keys);
    let after = keybridge(args(&[
        "device",
        "inbox",
        "--store",
        &phone,
        "--once",
        "--wait",
        "0",
        "--deny-all",
    ]))
    .await;
    assert_eq!(after.status.code(), Some(2), "{}", stdout(&after));

    server.shutdown().await.unwrap();
    sim.shutdown().await.unwrap();
    store.close().await;
}

keybridge_testkit::both_databases! {
    whole_lifecycle_with_the_device_cli => whole_lifecycle;
}
