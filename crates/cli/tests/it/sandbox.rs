//! `keybridge sandbox`: the README's first command, run as a user runs it.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn field<'a>(lines: &'a [String], label: &str) -> &'a str {
    let line = lines
        .iter()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{}", lines.join("\n")));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
}

#[tokio::test]
async fn sandbox_connects_a_seeded_tenant_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keybridge"))
        .args(["sandbox", "--port", "0", "--users", "30", "--dir"])
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
    let api = field(&lines, "keybridge API").to_string();
    let token = field(&lines, "admin API token").to_string();
    let ca = field(&lines, "server CA").to_string();
    assert!(
        field(&lines, "integration").starts_with("Sandbox"),
        "{lines:#?}"
    );

    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let integrations: serde_json::Value = http
        .get(format!("{api}/integrations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        integrations[0]["name"], "Sandbox Passkeys",
        "{integrations}"
    );
    assert_eq!(integrations[0]["native_login_enabled"], false);
    let unauthenticated = http
        .get(format!("{api}/integrations"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // No console passkey exists yet, so the sandbox prints a one-time link for the first
    // admin; opening it shows the enrolment page without using it up.
    let login = field(&lines, "console login").to_string();
    assert!(login.contains("/console/enrol/"), "{login}");
    for _ in 0..2 {
        let page = http.get(&login).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Register your passkey"));
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "sandbox exited with {status}");
    // The emulated tenant and the database survive for the next start.
    assert!(dir.path().join("entra-sim/state.json").exists());
    assert!(dir.path().join("keybridge/keybridge.db").exists());
}
