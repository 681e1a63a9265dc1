//! User Management in headless Chromium, end to end: an admin invites a user, the user's
//! Device Manager page shows the pairing payload, the real `keybridge device pair` binary
//! pairs with it, the phone answers the provisioning request (`keybridge device inbox`), and
//! the admin's User Management page shows the user Paired with Entra without a reload; the
//! admin expands the row, opens Device Details, unpairs the phone from the console and sees
//! the user back in Pending with the warning. Screenshots in
//! `<target dir>/console-screenshots/`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use keybridge_store::Role;
use keybridge_testkit::Backend;
use keybridge_testkit::browser::{TestBrowser, TestPage};
use reqwest::Method;
use serde_json::{Value, json};

use crate::console::{console_url, enrol};
use crate::support::{self, Harness};

const PHONE_PIN: &str = "135790";

/// The `keybridge` binary of this workspace, built when missing or stale (the server's tests
/// cannot name another crate's binary; a no-op build when CI built the workspace already).
fn keybridge_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // <target>/<profile>/deps/it-… → <target>/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("profile directory")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let built = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "keybridge-cli",
            "--bin",
            "keybridge",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building the keybridge binary failed");
    profile_dir.join("keybridge")
}

fn device(binary: &PathBuf, args: &[&str]) -> Output {
    let mut command = Command::new(binary);
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYBRIDGE_") {
            command.env_remove(name);
        }
    }
    command
        .env("KEYBRIDGE_DEVICE_PIN", PHONE_PIN)
        .env("HOME", "/nonexistent-home")
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("run keybridge")
}

fn assert_ok(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// An integration synced from entra-sim with native login enabled; its id.
async fn integration(h: &Harness) -> String {
    let (status, created) = h
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(h.integration_body("Contoso Passkeys")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let job = h
        .wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    id
}

async fn text_of(page: &TestPage, expression: &str) -> String {
    match page.eval(expression).await.expect("eval") {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Clicks through the DOM: the admin's tab is in the background while the user's Device
/// Manager tab is open, and background tabs do not get synthetic mouse input.
async fn press(page: &TestPage, selector: &str) {
    let selector_json = serde_json::to_string(selector).expect("JSON");
    let found = page
        .eval(&format!(
            "(() => {{ const e = document.querySelector({selector_json}); \
             if (e) {{ e.click(); return true; }} return false; }})()"
        ))
        .await
        .expect("eval");
    assert_eq!(found, Value::Bool(true), "nothing matches {selector}");
}

async fn shot(page: &TestPage, name: &str) {
    page.screenshot(name).await.expect("screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_pair_watch_expand_and_unpair_in_chromium() {
    let h = support::start_console(Backend::Sqlite).await;
    let binary = keybridge_binary();
    let integration_id = integration(&h).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?state=pending&limit=1"),
            None,
        )
        .await;
    let user = list["items"][0].clone();
    let user_id = user["id"].as_str().expect("id").to_owned();
    let upn = user["username"].as_str().expect("upn").to_owned();

    let browser = TestBrowser::launch()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (page, _authenticator, _) = enrol(&h, &browser, "alice", Role::Admin, None).await;
    shot(&page, "dashboard").await;

    // User Management: the Pending tab, searched down to the user.
    let users_url = console_url(
        &h,
        &format!("/console/users?integration={integration_id}&state=pending&search={upn}"),
    );
    page.goto(&users_url).await.expect("users page");
    assert_eq!(page.text("h1").await.expect("h1"), "User Management");
    let row = format!("#user-{user_id}");
    assert!(page.text(&row).await.expect("row").contains(&upn));
    shot(&page, "users-pending").await;

    // Invite: the link is shown once.
    page.click(&format!("{row} form[action$='/invite'] button"))
        .await
        .expect("invite");
    page.wait_for("document.getElementById('invite-link') !== null")
        .await
        .expect("the invitation page");
    let link = text_of(&page, "document.getElementById('invite-link').value").await;
    assert!(link.contains("/invite/"), "{link}");
    shot(&page, "user-invited").await;

    // The user's Device Manager page, in another tab: the payload from the page.
    let manager = browser.open(&link).await.expect("device manager");
    manager
        .wait_for("document.getElementById('qr') !== null")
        .await
        .expect("the QR code");
    assert_eq!(manager.text("h1").await.expect("h1"), "Pair your phone");
    let payload = text_of(
        &manager,
        "document.getElementById('qr').dataset.pairingPayload",
    )
    .await;
    assert!(payload.starts_with("keybridge:pair?v=1&"), "{payload}");
    assert!(
        manager.is_visible("svg.qr-code").await.expect("visibility"),
        "the QR code is shown"
    );
    shot(&manager, "device-manager").await;

    // The admin watches the user's row while the phone pairs.
    page.goto(&users_url).await.expect("users page");
    let state_cell = format!("document.querySelector('{row} [data-field=state]').textContent");
    assert_eq!(text_of(&page, &state_cell).await, "Pending");
    let marker = "window.__not_reloaded = true";
    page.eval(marker).await.expect("mark the page");

    let phone_dir = tempfile::tempdir().expect("phone dir");
    let store = phone_dir.path().join("phone");
    let store = store.to_str().expect("path");
    assert_ok(
        &device(&binary, &["device", "init", "--store", store]),
        "device init",
    );
    let paired = assert_ok(
        &device(
            &binary,
            &[
                "device",
                "pair",
                "--store",
                store,
                "--name",
                "Ana's phone",
                &payload,
            ],
        ),
        "device pair",
    );
    assert!(paired.contains(&upn), "{paired}");
    manager
        .wait_for("document.getElementById('status').dataset.status !== 'waiting'")
        .await
        .expect("the Device Manager page follows the pairing");
    assert!(
        manager
            .text("#status-text")
            .await
            .expect("status")
            .starts_with("Phone paired"),
    );
    shot(&manager, "device-manager-paired").await;

    // The phone answers the provisioning request; the worker registers the passkey.
    let answered = assert_ok(
        &device(
            &binary,
            &[
                "device",
                "inbox",
                "--store",
                store,
                "--once",
                "--wait",
                "30",
                "--approve-all",
            ],
        ),
        "device inbox",
    );
    assert!(answered.contains("1 request(s) answered."), "{answered}");
    page.wait_for(&format!("{state_cell} === 'Paired with Entra'"))
        .await
        .expect("the row shows Paired with Entra without a reload");
    assert_eq!(
        page.eval("window.__not_reloaded === true")
            .await
            .expect("eval"),
        Value::Bool(true),
        "the page was not reloaded"
    );
    assert_eq!(
        text_of(
            &page,
            "document.querySelector('[data-count=paired_with_entra]').textContent"
        )
        .await,
        "1"
    );
    shot(&page, "users-paired-with-entra").await;
    manager
        .wait_for("document.getElementById('status').dataset.status === 'done'")
        .await
        .expect("the Device Manager page says done");
    shot(&manager, "device-manager-done").await;

    // Expand the row: Entra's passkeys, ours marked.
    press(&page, &format!("{row} button[data-expand]")).await;
    page.wait_for(&format!(
        "document.querySelector('#expand-{user_id} .entra-methods tr.ours') !== null"
    ))
    .await
    .expect("our passkey in Entra's list");
    shot(&page, "user-expanded").await;

    // Device Details: the phone, its passkey and the account.
    page.goto(&console_url(
        &h,
        &format!("/console/users/{user_id}/devices"),
    ))
    .await
    .expect("device details");
    let devices = page.text("#mobile-devices").await.expect("table");
    assert!(devices.contains("login.microsoft.com"), "{devices}");
    assert!(devices.contains(&upn), "{devices}");
    shot(&page, "device-details").await;
    page.goto(&console_url(
        &h,
        &format!("/console/users/{user_id}/devices?tab=keys"),
    ))
    .await
    .expect("security keys");
    shot(&page, "device-details-security-keys").await;

    // Unpair from the console: the user goes back to Pending with the warning.
    page.goto(&console_url(
        &h,
        &format!("/console/users/{user_id}/devices"),
    ))
    .await
    .expect("device details");
    press(&page, "#mobile-devices details.confirm summary").await;
    shot(&page, "device-details-unpair-confirmation").await;
    press(&page, "#mobile-devices details.confirm button[type=submit]").await;
    page.wait_for("document.querySelector('.flash') !== null")
        .await
        .expect("the unpair was accepted");
    // The unpair job deletes the passkey in Entra first; the Pending tab lists the user once
    // it is done.
    let pending_url = console_url(
        &h,
        &format!("/console/users?integration={integration_id}&state=pending&search={upn}"),
    );
    let mut listed = false;
    for _ in 0..100 {
        page.goto(&pending_url).await.expect("users page");
        if page
            .eval(&format!("document.querySelector('{row}') !== null"))
            .await
            .expect("eval")
            == Value::Bool(true)
        {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(listed, "the user did not come back to Pending");
    assert_eq!(text_of(&page, &state_cell).await, "Pending");
    page.wait_for(&format!(
        "document.querySelector('{row} [data-field=warning]').textContent === \
         'This user unpaired from keybridge.'"
    ))
    .await
    .expect("the warning");
    shot(&page, "users-unpaired").await;
    browser.close().await;
    h.stop().await;
}
