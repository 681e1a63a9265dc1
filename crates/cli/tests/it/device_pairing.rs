//! `keybridge device pair | inbox | unpair` against a running server: the sandbox (entra-sim
//! and the server), an invitation made through the API, and the pairing payload fetched as the
//! Device Manager page fetches it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{keybridge_with_env, stderr, stdout};

pub(crate) const STORE_PIN: &str = "246810";

pub(crate) struct Sandbox {
    child: Child,
    pub(crate) api: String,
    pub(crate) token: String,
    pub(crate) tls_pin: String,
    pub(crate) http: reqwest::Client,
    pub(crate) lines: Vec<String>,
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

pub(crate) fn field(lines: &[String], label: &str) -> String {
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

pub(crate) fn start_sandbox() -> Sandbox {
    start_sandbox_with(&[])
}

/// [`start_sandbox`] with these `KEYBRIDGE_*` settings in its environment.
pub(crate) fn start_sandbox_with(env: &[(&str, &str)]) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keybridge"))
        .args(["sandbox", "--port", "0", "--users", "20", "--dir"])
        .arg(dir.path())
        .env("KEYBRIDGE_DATA_DIR", dir.path().join("data"))
        .env("KEYBRIDGE_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
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
        tls_pin: field(&lines, "TLS pin"),
        http,
        lines,
        _dir: dir,
    }
}

impl Sandbox {
    /// The sandbox's directory (entra-sim's state, the server's data).
    pub(crate) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
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

    /// The body of an authenticated GET (a download).
    pub(crate) async fn call_raw(&self, path: &str) -> Vec<u8> {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await.unwrap().to_vec()
    }

    /// The sandbox's database, opened beside the running server (SQLite in WAL mode), to put
    /// requests in a phone's inbox as the provisioning step will.
    async fn store(&self) -> keybridge_store::Store {
        let db = self._dir.path().join("keybridge/keybridge.db");
        keybridge_store::Store::connect(
            &format!("sqlite://{}", db.display()),
            keybridge_store::StoreOptions::new(keybridge_store::KeyRing::new(
                keybridge_store::SecretKey::generate(),
                Vec::new(),
            )),
        )
        .await
        .unwrap()
    }

    /// The first synced user (the first directory sync runs after the sandbox starts).
    pub(crate) async fn a_user(&self) -> Value {
        self.nth_user(0).await
    }

    pub(crate) async fn nth_user(&self, n: usize) -> Value {
        let (_, integrations) = self.call(reqwest::Method::GET, "/integrations", None).await;
        let id = integrations[0]["id"].as_str().unwrap().to_owned();
        let started = Instant::now();
        loop {
            let (_, users) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/integrations/{id}/users?limit=5"),
                    None,
                )
                .await;
            if let Some(user) = users["items"].as_array().and_then(|items| items.get(n)) {
                return user.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no user synced"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn user(&self, id: &str) -> Value {
        let (status, user) = self
            .call(reqwest::Method::GET, &format!("/users/{id}"), None)
            .await;
        assert_eq!(status, 200, "{user}");
        user
    }
}

/// A provisioning request as the server will queue it: Graph's creation options for `rp`.
fn provision_request(id: uuid::Uuid, account: &Value, rp: &str, upn: &str) -> Value {
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "v": 1,
        "type": "provision_passkey",
        "request_id": id,
        "account": account,
        "rp_id": rp,
        "creation_options": {
            "challengeTimeoutDateTime": expires,
            "publicKey": {
                "rp": {"id": rp, "name": "Microsoft"},
                "user": {"id": "dXNlci1oYW5kbGUtMTIz", "name": upn, "displayName": "Test User"},
                "challenge": "Y2hhbGxlbmdlLWZyb20tZ3JhcGg",
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
                "timeout": 60000,
                "excludeCredentials": [],
                "authenticatorSelection": {"authenticatorAttachment": "cross-platform", "requireResidentKey": true, "userVerification": "required"},
                "attestation": "direct",
                "extensions": {"hmacCreateSecret": true, "enforceCredentialProtectionPolicy": true, "credentialProtectionPolicy": "userVerificationOptional"}
            }
        },
        "expires_at": expires,
    })
}

pub(crate) fn device(args: &[&str]) -> std::process::Output {
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
    let store_path = store_dir.path().join("phone");
    let store_path = store_path.to_str().unwrap();
    let init = device(&["device", "init", "--store", store_path]);
    assert!(init.status.success(), "{}", stderr(&init));

    // A payload whose pin is not the server's: the phone refuses to talk to it.
    let (before, after) = payload.split_once("&p=").unwrap();
    let rest = &after[43..];
    let wrong_pin = format!("{before}&p={}{rest}", "A".repeat(43));
    let refused = device(&["device", "pair", "--store", store_path, &wrong_pin]);
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
        store_path,
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

    let info = device(&["device", "info", "--store", store_path, "--json"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let info: Value = serde_json::from_str(&stdout(&info)).unwrap();
    assert_eq!(info["pairings"][0]["upn"], user["username"], "{info}");
    assert_eq!(
        info["pairings"][0]["tlsPin"].as_str().unwrap().len(),
        43,
        "{info}"
    );
    assert!(
        !info.to_string().contains("deviceKey"),
        "no key material: {info}"
    );

    // Nothing waits in the inbox yet.
    let inbox = device(&[
        "device",
        "inbox",
        "--store",
        store_path,
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

    // Requests in the inbox: one for Entra is checked, shown and answered with a credential;
    // one for another relying party is refused without signing.
    let device_id = out
        .lines()
        .find_map(|l| l.strip_prefix("Device id: "))
        .unwrap()
        .trim()
        .to_owned();
    let (_, integration) = sandbox
        .call(
            reqwest::Method::GET,
            &format!("/integrations/{}", user["integration_id"].as_str().unwrap()),
            None,
        )
        .await;
    let tenant_id = integration["tenant_id"]
        .as_str()
        .or_else(|| integration["integration"]["tenant_id"].as_str())
        .unwrap_or_else(|| panic!("{integration}"))
        .to_owned();
    let upn = user["username"].as_str().unwrap().to_owned();
    let account = json!({
        "upn": upn,
        "tenant_id": tenant_id,
        "entra_user_id": user["entra_object_id"],
    });
    let store = sandbox.store().await;
    let entra_request = uuid::Uuid::now_v7();
    let foreign_request = uuid::Uuid::now_v7();
    // A request this phone answered before (as if the server sent it again): never signed twice.
    let replayed_request = uuid::Uuid::now_v7();
    // A request this phone answered while the server was down (the answer never arrived): the
    // kept answer is sent again as it was, without signing anything anew.
    let lost_answer_request = uuid::Uuid::now_v7();
    let kept_answer = keybridge_device_protocol::RequestAnswer::new(
        lost_answer_request,
        keybridge_device_protocol::Answer::Refused {
            reason: keybridge_device_protocol::RefusalReason::UserDeclined,
            message: "declined before the server went down".to_owned(),
        },
    );
    {
        let mut phone =
            keybridge_authenticator::FileStore::open(std::path::Path::new(store_path), STORE_PIN)
                .unwrap();
        phone
            .record_answered(&replayed_request.to_string(), 0, "{}")
            .unwrap();
        phone
            .record_answer_received(&replayed_request.to_string())
            .unwrap();
        phone
            .record_answered(
                &lost_answer_request.to_string(),
                0,
                &serde_json::to_string(&kept_answer).unwrap(),
            )
            .unwrap();
    }
    for (id, rp) in [
        (replayed_request, "login.microsoft.com"),
        (lost_answer_request, "login.microsoft.com"),
        (entra_request, "login.microsoft.com"),
        (foreign_request, "evil.example"),
    ] {
        store
            .device_requests()
            .create_with_id(
                &id.to_string(),
                keybridge_store::NewDeviceRequest {
                    phone_id: device_id.clone(),
                    kind: keybridge_store::DeviceRequestKind::Provision,
                    payload: provision_request(id, &account, rp, &upn),
                    workstation_id: None,
                    ttl: Duration::from_secs(300),
                },
            )
            .await
            .unwrap();
    }
    let inbox = device(&[
        "device",
        "inbox",
        "--store",
        store_path,
        "--once",
        "--wait",
        "0",
        "--approve-all",
    ]);
    assert!(inbox.status.success(), "{}", stderr(&inbox));
    let printed = stdout(&inbox);
    assert!(
        printed.contains(&upn),
        "the summary names the account: {printed}"
    );
    assert!(
        printed.contains("Passkey created and sent to the server."),
        "{printed}"
    );
    assert!(printed.contains("Refused a request"), "{printed}");
    assert!(printed.contains("3 request(s) answered."), "{printed}");
    assert!(
        printed.contains(&format!(
            "Sent the answer to request {lost_answer_request} again"
        )),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("Skipped request {replayed_request}")),
        "{printed}"
    );
    let replayed = store
        .device_requests()
        .get(&replayed_request.to_string())
        .await
        .unwrap();
    assert_eq!(
        replayed.status,
        keybridge_store::DeviceRequestStatus::Delivered
    );
    assert!(replayed.response.is_none());
    let answered = store
        .device_requests()
        .get(&entra_request.to_string())
        .await
        .unwrap();
    assert_eq!(
        answered.status,
        keybridge_store::DeviceRequestStatus::Approved
    );
    let response = answered.response.unwrap();
    assert_eq!(response["answer"], "credential", "{response}");
    let credential = &response["credential"];
    assert_eq!(credential["type"], "public-key");
    assert!(
        credential["response"]["attestationObject"]
            .as_str()
            .is_some_and(|a| a.len() > 100),
        "{credential}"
    );
    let refused = store
        .device_requests()
        .get(&foreign_request.to_string())
        .await
        .unwrap();
    assert_eq!(refused.status, keybridge_store::DeviceRequestStatus::Denied);
    assert_eq!(refused.response.unwrap()["reason"], "foreign_relying_party");
    let resent = store
        .device_requests()
        .get(&lost_answer_request.to_string())
        .await
        .unwrap();
    assert_eq!(resent.status, keybridge_store::DeviceRequestStatus::Denied);
    assert_eq!(
        resent.response.unwrap(),
        serde_json::to_value(&kept_answer).unwrap(),
        "the kept bytes, not a new answer"
    );
    let phone =
        keybridge_authenticator::FileStore::open(std::path::Path::new(store_path), STORE_PIN)
            .unwrap();
    assert_eq!(
        phone.unsent_answer(&lost_answer_request.to_string()),
        None,
        "dropped once the server had it"
    );
    drop(phone);
    store.close().await;

    // Unpair: back to Pending with the warning, and the device key is gone.
    let unpaired = device(&["device", "unpair", "--store", store_path]);
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
        store_path,
        "--once",
        "--wait",
        "0",
        "--deny-all",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not paired"), "{}", stderr(&again));

    // The short code, with the server's address and pin typed in.
    let second = sandbox.nth_user(1).await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let (_, invited) = sandbox
        .call(
            reqwest::Method::POST,
            &format!("/users/{second_id}/invites"),
            Some(json!({})),
        )
        .await;
    let link = invited["link"].as_str().unwrap();
    let view: Value = sandbox
        .http
        .get(format!("{link}/pairing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = view["short_code"].as_str().unwrap();
    let server = sandbox.api.trim_end_matches("/api/v1").to_owned();
    let other_store = store_dir.path().join("second-phone");
    let other_store = other_store.to_str().unwrap();
    let init = device(&["device", "init", "--store", other_store]);
    assert!(init.status.success(), "{}", stderr(&init));
    let by_code = device(&[
        "device",
        "pair",
        "--store",
        other_store,
        "--code",
        &code.to_lowercase(),
        "--server",
        &server,
        "--pin",
        &sandbox.tls_pin,
    ]);
    assert!(by_code.status.success(), "{}", stderr(&by_code));
    assert_eq!(
        sandbox.user(&second_id).await["state"],
        "paired_with_keybridge"
    );
}
