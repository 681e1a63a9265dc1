//! `keybridge workstation` and `keybridge device` as a user runs them against the sandbox: the
//! phone pairs and its passkey is provisioned in entra-sim, the desktop client's keybridge.json
//! is downloaded, the workstation enrols and pairs with the phone, and signs in when the phone
//! approves; a denial ends with its own exit code.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{keybridge_with_env, stderr, stdout};
use crate::device_pairing::{Sandbox, device, field, start_sandbox};

fn workstation(state: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["workstation", "--state", state];
    all.extend_from_slice(args);
    keybridge_with_env(&all, &[])
}

/// `keybridge workstation sign-in` running in the background.
fn spawn_sign_in(sandbox: &Sandbox, state: &str, upn: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_keybridge"))
        .args(["workstation", "--state", state, "sign-in", "--user", upn])
        .args(["--authority", &field(&sandbox.lines, "entra-sim")])
        .args(["--authority-ca", &field(&sandbox.lines, "entra-sim CA")])
        .args(["--timeout", "60"])
        .env("HOME", "/nonexistent-home")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workstation_signs_in_through_the_phone() {
    let sandbox = start_sandbox();
    let user = sandbox.a_user().await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let upn = user["username"].as_str().unwrap().to_owned();
    let integration_id = user["integration_id"].as_str().unwrap().to_owned();

    // The phone pairs from an invitation.
    let (status, invited) = sandbox
        .call(
            reqwest::Method::POST,
            &format!("/users/{user_id}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let view: Value = sandbox
        .http
        .get(format!("{}/pairing", invited["link"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let temp = tempfile::tempdir().unwrap();
    let store = temp.path().join("phone");
    let store = store.to_str().unwrap();
    let init = device(&["device", "init", "--store", store]);
    assert!(init.status.success(), "{}", stderr(&init));
    let paired = device(&[
        "device",
        "pair",
        "--store",
        store,
        view["qr_payload"].as_str().unwrap(),
    ]);
    assert!(paired.status.success(), "{}", stderr(&paired));

    // Native login on: the phone creates the passkey, the server registers it in entra-sim.
    let (status, enabled) = sandbox
        .call(
            reqwest::Method::PUT,
            &format!("/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    let started = Instant::now();
    loop {
        let inbox = device(&[
            "device",
            "inbox",
            "--store",
            store,
            "--once",
            "--wait",
            "10",
            "--approve",
        ]);
        assert!(inbox.status.success(), "{}", stderr(&inbox));
        if sandbox.user(&user_id).await["state"] == "paired_with_entra" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the passkey was not provisioned: {}",
            stdout(&inbox)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The desktop client's keybridge.json, from the download.
    let response = sandbox
        .call_raw(&format!("/integrations/{integration_id}/desktop-client"))
        .await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(response)).unwrap();
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("keybridge.json").unwrap(), &mut json).unwrap();
    let config = temp.path().join("keybridge.json");
    std::fs::write(&config, json).unwrap();
    let state = temp.path().join("workstation");
    let state = state.to_str().unwrap();

    let enrolled = workstation(
        state,
        &[
            "enrol",
            "--config",
            config.to_str().unwrap(),
            "--name",
            "DESKTOP-7",
        ],
    );
    assert!(enrolled.status.success(), "{}", stderr(&enrolled));
    assert!(
        stdout(&enrolled).contains("Workstation ID: "),
        "{}",
        stdout(&enrolled)
    );
    let again = workstation(state, &["enrol", "--config", config.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already enrolled"),
        "{}",
        stderr(&again)
    );

    // Not paired yet: sign-in says so with its exit code.
    let mut early = spawn_sign_in(&sandbox, state, &upn);
    let status = early.wait().unwrap();
    assert_eq!(status.code(), Some(7));

    // Pair: the workstation shows the code, the phone scans it.
    let code = workstation(state, &["pair", "--text", "--no-wait"]);
    assert!(code.status.success(), "{}", stderr(&code));
    let printed = stdout(&code);
    let payload = printed.lines().next().unwrap().to_owned();
    assert!(
        payload.starts_with("keybridge:workstation?v=1&"),
        "{printed}"
    );
    assert!(printed.contains("Code: "), "{printed}");
    let scanned = device(&["device", "pair-workstation", "--store", store, &payload]);
    assert!(scanned.status.success(), "{}", stderr(&scanned));
    let out = stdout(&scanned);
    assert!(out.contains("Paired workstation DESKTOP-7"), "{out}");
    assert!(out.contains("with its key from the QR code"), "{out}");
    let pin = out
        .lines()
        .find_map(|l| l.split("on this computer: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert_eq!(pin.len(), 8, "{out}");
    let status = workstation(state, &["status"]);
    assert!(
        stdout(&status).contains(&format!("account {upn}")),
        "{}",
        stdout(&status)
    );

    // Sign in: the phone approves, Entra accepts.
    let sign_in = spawn_sign_in(&sandbox, state, &upn);
    let inbox = device(&[
        "device",
        "inbox",
        "--store",
        store,
        "--once",
        "--wait",
        "20",
        "--approve",
    ]);
    assert!(inbox.status.success(), "{}", stderr(&inbox));
    let shown = stdout(&inbox);
    assert!(shown.contains(&format!("Sign in as {upn}")), "{shown}");
    assert!(shown.contains("on computer: DESKTOP-7"), "{shown}");
    assert!(shown.contains("Approved"), "{shown}");
    let done = sign_in.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let said = stdout(&done);
    assert!(said.contains(&format!("Signed in as {upn}")), "{said}");
    assert!(
        said.contains(&format!(
            "subject {}",
            user["entra_object_id"].as_str().unwrap()
        )),
        "{said}"
    );
    let accounts = device(&["device", "accounts", "--store", store]);
    assert!(
        stdout(&accounts).contains("counter 1"),
        "the assertion counted: {}",
        stdout(&accounts)
    );

    // Denied on the phone: exit code 4.
    let sign_in = spawn_sign_in(&sandbox, state, &upn);
    let inbox = device(&[
        "device", "inbox", "--store", store, "--once", "--wait", "20", "--deny",
    ]);
    assert!(inbox.status.success(), "{}", stderr(&inbox));
    let done = sign_in.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(4), "{}", stderr(&done));
    assert!(
        stderr(&done).contains("denied on the phone (user_declined)"),
        "{}",
        stderr(&done)
    );

    // The admin reveals the recovery PIN the phone escrowed.
    let (status, phones) = sandbox
        .call(
            reqwest::Method::GET,
            &format!("/users/{user_id}/phones"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{phones}");
    let workstation_id = phones[0]["workstations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, revealed) = sandbox
        .call(
            reqwest::Method::GET,
            &format!("/workstations/{workstation_id}/recovery-pin?user_id={user_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed["pin"], pin);

    // At the workstation without the phone: the PIN works once; the phone's next inbox run
    // escrows a new one, which the admin sees.
    let recovered = keybridge_with_env(
        &["workstation", "--state", state, "recover", "--user", &upn],
        &[("KEYBRIDGE_RECOVERY_PIN", &pin)],
    );
    assert!(recovered.status.success(), "{}", stderr(&recovered));
    let reused = keybridge_with_env(
        &["workstation", "--state", state, "recover", "--user", &upn],
        &[("KEYBRIDGE_RECOVERY_PIN", &pin)],
    );
    assert_eq!(reused.status.code(), Some(8), "{}", stderr(&reused));
    let inbox = device(&[
        "device", "inbox", "--store", store, "--once", "--wait", "0", "--deny",
    ]);
    assert!(inbox.status.success(), "{}", stderr(&inbox));
    let renewed = stdout(&inbox)
        .lines()
        .find_map(|l| l.split("on DESKTOP-7: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{}", stdout(&inbox)))
        .to_owned();
    assert_ne!(renewed, pin);
    let (_, revealed) = sandbox
        .call(
            reqwest::Method::GET,
            &format!("/workstations/{workstation_id}/recovery-pin?user_id={user_id}"),
            None,
        )
        .await;
    assert_eq!(revealed["pin"], renewed);

    // Unpaired from the phone: the workstation is told to pair again.
    let unpaired = device(&[
        "device",
        "unpair-workstation",
        "--store",
        store,
        &workstation_id,
    ]);
    assert!(unpaired.status.success(), "{}", stderr(&unpaired));
    let mut after = spawn_sign_in(&sandbox, state, &upn);
    assert_eq!(after.wait().unwrap().code(), Some(7));

    // Revoked: exit code 6.
    let (status, _) = sandbox
        .call(
            reqwest::Method::DELETE,
            &format!("/workstations/{workstation_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let revoked = workstation(state, &["status"]);
    assert_eq!(revoked.status.code(), Some(6), "{}", stderr(&revoked));
    assert!(stderr(&revoked).contains("revoked"), "{}", stderr(&revoked));
}
