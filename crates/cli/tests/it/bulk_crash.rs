//! `kill -9` during a bulk provisioning run (issue 6, "Bad input and failure"): the real
//! `keybridge serve` binary as a child process, entra-sim over HTTPS, N users Paired with
//! keybridge whose phones (the real `keybridge device` binary) answer their inbox requests.
//! Native login is enabled; the server is killed with SIGKILL twice while passkeys are being
//! registered in entra-sim (its jobs mid-flight: requests in inboxes, answers being posted by
//! the phones, credentials recorded, POSTs to Graph under way), and restarted on the same
//! database each time while the phones go on answering. In the end every user
//! is Paired with Entra, entra-sim holds exactly one keybridge passkey per user, and no job
//! is dead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keybridge_authenticator::AAGUID_STRING;
use keybridge_entra_sim::{EntraSim, SimConfig};
use keybridge_graph::Cloud;
use keybridge_server::GraphSettings;
use keybridge_server::app::GraphFactory;
use keybridge_store::{KeyRing, Role, SecretKey, Store, StoreOptions};
use keybridge_testkit::TestDatabase;
use reqwest::Method;
use serde_json::json;
use tokio::task::JoinSet;

use crate::cli::stderr;
use crate::lifecycle::{Api, args, connect, entra_aaguids, invitation_payload, keybridge};

/// Users provisioned in the run.
const USERS: usize = 40;

/// A running `keybridge serve`, killed with SIGKILL when dropped (also when the test fails).
struct Serve(Child);

impl Serve {
    /// `kill -9`, and wait for the process to be gone.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `keybridge --config FILE serve` as a child process, its log in `log`.
fn serve(config_file: &Path, log: &Path) -> Serve {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keybridge"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYBRIDGE_") {
            command.env_remove(name);
        }
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    command
        .arg("--config")
        .arg(config_file)
        .arg("serve")
        .env("HOME", "/nonexistent-home")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Serve)
        .unwrap()
}

/// Waits until the server answers `/readyz`; returns a client trusting its CA.
async fn ready(base: &str, ca_file: &Path, server: &mut Serve) -> reqwest::Client {
    let started = Instant::now();
    loop {
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "keybridge serve exited"
        );
        if let Ok(pem) = std::fs::read(ca_file) {
            let http = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            if let Ok(answer) = http.get(format!("{base}/readyz")).send().await
                && answer.status().is_success()
            {
                return http;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "keybridge serve did not get ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Passkeys entra-sim has registered so far (`POST …/fido2Methods` answered 201).
fn registered(sim: &keybridge_entra_sim::RunningSim) -> u64 {
    let counters = sim.counters();
    let mut total = 0;
    for (endpoint, by_status) in &counters.requests {
        if endpoint.starts_with("POST") && endpoint.ends_with("fido2Methods") {
            total += by_status.get(&201).copied().unwrap_or(0);
        }
    }
    total
}

/// A phone for the user: a new key store paired through the invitation's QR payload.
async fn pair_phone(api: &Api, user_id: String, dir: PathBuf) -> (String, String) {
    let payload = invitation_payload(api, &user_id).await;
    let phone = dir.join(&user_id).display().to_string();
    let init = keybridge(args(&["device", "init", "--store", &phone])).await;
    assert!(init.status.success(), "{}", stderr(&init));
    let paired = keybridge(args(&["device", "pair", "--store", &phone, &payload])).await;
    assert!(paired.status.success(), "{}", stderr(&paired));
    (user_id, phone)
}

/// Answers the inboxes of the phones whose user is not Paired with Entra yet, over and over,
/// until `stop`; a phone whose server is down (killed, restarting) just fails that round, as
/// a real phone would.
async fn phone_farm(store: Store, phones: Vec<(String, String)>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let mut waiting = Vec::new();
        for (user_id, phone) in &phones {
            let user = store.users().get(user_id).await.unwrap();
            if user.state.as_str() != "paired_with_entra" {
                waiting.push(phone.clone());
            }
        }
        let mut rounds = JoinSet::new();
        for chunk in waiting.chunks(waiting.len().div_ceil(4).max(1)) {
            let chunk = chunk.to_vec();
            rounds.spawn(async move {
                for phone in chunk {
                    keybridge(args(&[
                        "device",
                        "inbox",
                        "--store",
                        &phone,
                        "--once",
                        "--wait",
                        "0",
                        "--approve-all",
                    ]))
                    .await;
                }
            });
        }
        while rounds.join_next().await.is_some() {}
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until entra-sim has registered at least `n` passkeys in the run.
async fn wait_registered(sim: &keybridge_entra_sim::RunningSim, n: u64, log: &Path) {
    let started = Instant::now();
    while registered(sim) < n {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {} passkeys registered; the server's log:\n{}",
            registered(sim),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn killed_twice_mid_run(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let mut sim_config = SimConfig::new(dir.path().join("sim"));
    sim_config.users = USERS * 2;
    let sim = EntraSim::start(sim_config).await.unwrap();
    let info = sim.info().clone();

    let key = SecretKey::generate();
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let base = format!("https://127.0.0.1:{port}");
    let data_dir = dir.path().join("server");
    std::fs::create_dir_all(&data_dir).unwrap();
    let config_file = dir.path().join("keybridge.toml");
    // A short lease, so the restarted server takes over the killed one's jobs quickly; no
    // client pacing of /authentication/ calls (entra-sim does not throttle here), so the run
    // is not stretched to Graph's 5 calls per 10 s.
    std::fs::write(
        &config_file,
        format!(
            "data_dir = {data_dir:?}\n\
             [database]\nurl = {url:?}\n\
             [secrets]\nkey = {key:?}\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}/\"\n\
             [entra]\nauthority_url = {authority:?}\ngraph_url = {graph:?}\nca_file = {ca:?}\nauthentication_requests_per_10s = 0\n\
             [jobs]\nworkers = 4\nlease_seconds = 5\n\
             [log]\nlevel = \"warn\"\n",
            data_dir = data_dir.display().to_string(),
            url = db.url(),
            key = key.to_base64().as_str(),
            authority = info.base_url.to_string(),
            graph = info.graph_url.to_string(),
            ca = info.ca_pem.display().to_string(),
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let ca_file = data_dir.join("tls/ca.pem");
    let mut server = serve(&config_file, &log);
    let http = ready(&base, &ca_file, &mut server).await;
    let store = Store::connect(db.url(), StoreOptions::new(KeyRing::new(key, Vec::new())))
        .await
        .unwrap();
    let (_, token) =
        keybridge_server::create_token_locally(&store, "crash test", Role::Admin, None)
            .await
            .unwrap();
    let api = Api { http, base, token };

    let integration_id = connect(&api, &info).await;

    // N active users, each with a phone paired through its invitation.
    let (_, list) = api
        .call(
            Method::GET,
            &format!("/integrations/{integration_id}/users?limit=200"),
            None,
        )
        .await;
    let users: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["entra_status"] == "active" && u["state"] == "pending")
        .filter(|u| u["username"].as_str().is_some_and(|n| !n.contains("#EXT#")))
        .take(USERS)
        .map(|u| {
            (
                u["id"].as_str().unwrap().to_owned(),
                u["entra_object_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(users.len(), USERS, "{list}");
    let phones_dir = tempfile::tempdir().unwrap();
    let api = Arc::new(api);
    let mut pairing = JoinSet::new();
    for chunk in users.chunks(USERS / 4) {
        let (api, chunk, dir) = (api.clone(), chunk.to_vec(), phones_dir.path().to_owned());
        pairing.spawn(async move {
            let mut phones = Vec::new();
            for (user_id, _) in chunk {
                phones.push(pair_phone(&api, user_id, dir.clone()).await);
            }
            phones
        });
    }
    let mut phones = Vec::new();
    while let Some(done) = pairing.join_next().await {
        phones.extend(done.unwrap());
    }
    assert_eq!(phones.len(), USERS);

    // Native login on; the phones answer; the server is killed twice mid-run.
    let before = registered(&sim);
    let (status, enabled) = api
        .call(
            Method::PUT,
            &format!("/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    // The phones keep answering through each kill: an answer lost in flight is kept on the
    // phone and sent again when the restarted server asks again.
    let stop = Arc::new(AtomicBool::new(false));
    let farm = tokio::spawn(phone_farm(store.clone(), phones.clone(), stop.clone()));
    for share in [5, 2] {
        wait_registered(&sim, before + (USERS / share) as u64, &log).await;
        server.kill();
        server = serve(&config_file, &log);
        ready(&api.base, &ca_file, &mut server).await;
    }

    // Everyone ends Paired with Entra, with one keybridge passkey each, and no job is dead.
    let started = Instant::now();
    for (user_id, _) in &users {
        loop {
            let user = api.user(user_id).await;
            if user["state"] == "paired_with_entra" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "not every user got there: {user}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    farm.await.unwrap();
    let graph = GraphFactory::new(GraphSettings {
        cloud: Cloud::custom(&info.base_url, &info.graph_url).unwrap(),
        ca_bundle_pem: Some(std::fs::read_to_string(&info.ca_pem).unwrap()),
        ..GraphSettings::default()
    })
    .for_integration(&store.integrations().get(&integration_id).await.unwrap())
    .unwrap();
    for (user_id, object_id) in &users {
        let aaguids = entra_aaguids(&graph, object_id).await;
        assert_eq!(
            aaguids.iter().filter(|a| *a == AAGUID_STRING).count(),
            1,
            "user {user_id}: {aaguids:?}"
        );
    }
    assert_eq!(store.jobs().counts().await.unwrap().dead, 0);

    server.kill();
    sim.shutdown().await.unwrap();
    store.close().await;
}

keybridge_testkit::both_databases! {
    a_server_killed_twice_mid_run_loses_no_user_and_duplicates_no_passkey => killed_twice_mid_run;
}
