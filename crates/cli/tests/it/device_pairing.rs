//! `keybridge device pair | inbox | unpair` against a running server: the sandbox (entra-sim
//! and the server), an invitation made through the API, and the pairing payload fetched as the
//! Device Manager page fetches it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{keybridge_with_env, stderr, stdout};

const STORE_PIN: &str = "246810";

struct Sandbox {
    child: Child,
    api: String,
    token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn field(lines: &[String], label: &str) -> String {
    let line = lines
        .iter()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{}", lines.join("\n")));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn start_sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keybridge"))
        .args(["sandbox", "--port", "0", "--users", "20", "--dir"])
        .arg(dir.path())
        .env("KEYBRIDGE_DATA_DIR", dir.path().join("data"))
        .env("KEYBRIDGE_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let started = Instant::now();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.starts_with("The web console");
        lines.push(line);
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sandbox did not start"
        );
    }
    let ca = field(&lines, "server CA");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    Sandbox {
        child,
        api: field(&lines, "keybridge API"),
        token: field(&lines, "admin API token"),
        http,
        _dir: dir,
    }
}

impl Sandbox {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The first synced user (the first directory sync runs after the sandbox starts).
    async fn a_user(&self) -> Value {
        let (_, integrations) = self.call(reqwest::Method::GET, "/integrations", None).await;
        let id = integrations[0]["id"].as_str().unwrap().to_owned();
        let started = Instant::now();
        loop {
            let (_, users) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/integrations/{id}/users?limit=1"),
                    None,
                )
                .await;
            if let Some(user) = users["items"].as_array().and_then(|items| items.first()) {
                return user.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no user synced"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn user(&self, id: &str) -> Value {
        let (status, user) = self
            .call(reqwest::Method::GET, &format!("/users/{id}"), None)
            .await;
        assert_eq!(status, 200, "{user}");
        user
    }
}

fn device(args: &[&str]) -> std::process::Output {
    keybridge_with_env(args, &[("KEYBRIDGE_DEVICE_PIN", STORE_PIN)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_pairs_through_the_qr_payload_and_unpairs() {
    let sandbox = start_sandbox();
    let user = sandbox.a_user().await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (status, invited) = sandbox
        .call(
            reqwest::Method::POST,
            &format!("/users/{user_id}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let link = invited["link"].as_str().unwrap();
    // What the Device Manager page fetches: no admin token, the link is the credential.
    let view: Value = sandbox
        .http
        .get(format!("{link}/pairing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = view["qr_payload"]
        .as_str()
        .unwrap_or_else(|| panic!("{view}"))
        .to_owned();

    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("phone");
    let store = store.to_str().unwrap();
    let init = device(&["device", "init", "--store", store]);
    assert!(init.status.success(), "{}", stderr(&init));

    // A payload whose pin is not the server's: the phone refuses to talk to it.
    let (before, after) = payload.split_once("&p=").unwrap();
    let rest = &after[43..];
    let wrong_pin = format!("{before}&p={}{rest}", "A".repeat(43));
    let refused = device(&["device", "pair", "--store", store, &wrong_pin]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(message.contains("not the pinned"), "{message}");
    assert!(message.contains("nothing was sent"), "{message}");
    assert_eq!(sandbox.user(&user_id).await["state"], "pending");

    // The real payload pairs.
    let paired = device(&[
        "device",
        "pair",
        "--store",
        store,
        "--name",
        "Test phone",
        &payload,
    ]);
    assert!(paired.status.success(), "{}", stderr(&paired));
    let out = stdout(&paired);
    assert!(
        out.contains(&format!("as {}", user["username"].as_str().unwrap())),
        "{out}"
    );
    assert!(out.contains("Confirmation code: "), "{out}");
    let shown = sandbox.user(&user_id).await;
    assert_eq!(shown["state"], "paired_with_keybridge", "{shown}");
    assert_eq!(shown["device_count"], 1, "{shown}");

    // Nothing waits in the inbox yet.
    let inbox = device(&[
        "device",
        "inbox",
        "--store",
        store,
        "--once",
        "--wait",
        "0",
        "--deny-all",
    ]);
    assert!(inbox.status.success(), "{}", stderr(&inbox));
    assert!(
        stdout(&inbox).contains("0 request(s) answered."),
        "{}",
        stdout(&inbox)
    );

    // Unpair: back to Pending with the warning, and the device key is gone.
    let unpaired = device(&["device", "unpair", "--store", store]);
    assert!(unpaired.status.success(), "{}", stderr(&unpaired));
    let shown = sandbox.user(&user_id).await;
    assert_eq!(shown["state"], "pending", "{shown}");
    assert_eq!(
        shown["warning"], "This user unpaired from keybridge.",
        "{shown}"
    );
    let again = device(&[
        "device",
        "inbox",
        "--store",
        store,
        "--once",
        "--wait",
        "0",
        "--deny-all",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not paired"), "{}", stderr(&again));
}
