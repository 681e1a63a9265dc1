//! Integrations and API tokens in the console, in headless Chromium against entra-sim: adding
//! an integration (an invalid name is refused inline), pre-flight results, enabling native
//! login after a confirmation, restrict domains (an invalid entry is refused inline), the
//! desktop-client download, API tokens created and revoked, and a helpdesk session kept out
//! of integration settings.

use keybridge_store::Role;
use keybridge_testkit::Backend;
use keybridge_testkit::browser::TestPage;

use crate::console::{console_url, enrol, launch};
use crate::support;

/// Sets a form field's value as if typed.
async fn fill(page: &TestPage, id: &str, value: &str) {
    let id = serde_json::to_string(id).expect("json");
    let value = serde_json::to_string(value).expect("json");
    page.eval(&format!("document.getElementById({id}).value = {value}"))
        .await
        .expect("fill");
}

async fn submit_and_wait(page: &TestPage, button: &str) {
    page.eval("window.__kbBefore = document.body; true")
        .await
        .expect("mark");
    page.click(button).await.expect("click");
    page.wait_for("document.readyState === 'complete' && window.__kbBefore === undefined")
        .await
        .expect("next page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_settings_and_api_tokens_in_chromium() {
    let h = support::start_console(Backend::Sqlite).await;
    let info = h.sim.info().clone();
    let browser = launch().await;
    let (page, _, _) = enrol(&h, &browser, "ada", Role::Admin, None).await;

    page.goto(&console_url(&h, "/console/integrations"))
        .await
        .unwrap();
    assert!(
        page.text(".empty")
            .await
            .unwrap()
            .contains("No integrations yet")
    );
    page.click("#add-integration").await.unwrap();
    page.wait_for_path("/console/integrations/new")
        .await
        .unwrap();

    // The name rules are core's, checked by the service; the refusal sits next to the field.
    fill(&page, "name", "Contoso/Passkeys!").await;
    fill(&page, "tenant_id", &info.tenant_id.to_string()).await;
    fill(&page, "client_id", &info.client_id.to_string()).await;
    fill(&page, "client_secret", &info.client_secret).await;
    submit_and_wait(&page, "#create-integration").await;
    let error = page.text("#name-error").await.unwrap();
    assert!(error.starts_with("the application name "), "{error}");
    assert_eq!(
        page.eval("document.getElementById('name').getAttribute('aria-invalid')")
            .await
            .unwrap(),
        "true"
    );
    // What was typed stays, except the secret.
    assert_eq!(
        page.eval("document.getElementById('tenant_id').value")
            .await
            .unwrap(),
        info.tenant_id.to_string()
    );
    assert_eq!(
        page.eval("document.getElementById('client_secret').value")
            .await
            .unwrap(),
        ""
    );
    page.screenshot("integration-new-invalid-name")
        .await
        .unwrap();

    fill(&page, "name", "Contoso Passkeys").await;
    fill(&page, "client_secret", &info.client_secret).await;
    submit_and_wait(&page, "#create-integration").await;
    assert_eq!(page.text("h1").await.unwrap(), "Contoso Passkeys");
    assert!(
        page.text(".flash")
            .await
            .unwrap()
            .contains("Integration \"Contoso Passkeys\" added"),
        "created"
    );
    let rows = page
        .eval("document.querySelectorAll('#preflight tbody tr').length")
        .await
        .unwrap();
    assert!(rows.as_u64().unwrap_or(0) >= 3, "pre-flight rows: {rows}");
    let method = page
        .text("#preflight tr[data-check='method_enabled']")
        .await
        .unwrap();
    assert!(method.contains("OK"), "{method}");
    // Name, tenant and client are shown read-only.
    for (id, value) in [
        ("ro-name", "Contoso Passkeys".to_owned()),
        ("ro-tenant", info.tenant_id.to_string()),
        ("ro-client", info.client_id.to_string()),
    ] {
        let field = page
            .eval(&format!(
                "(() => {{ const e = document.getElementById('{id}'); return [e.value, e.readOnly]; }})()"
            ))
            .await
            .unwrap();
        assert_eq!(field, serde_json::json!([value, true]), "{id}");
    }
    page.screenshot("integration-settings").await.unwrap();
    let integration = h.store.integrations().list().await.unwrap().remove(0);
    let settings = format!("/console/integrations/{}", integration.id);

    // Native login: shown disabled, enabled only after the confirmation.
    assert_eq!(page.text("#native-state").await.unwrap(), "Disabled");
    page.click("#enable-native-login").await.unwrap();
    page.wait_for("document.getElementById('confirm-dialog').open === true")
        .await
        .unwrap();
    let question = page.text("#confirm-dialog-text").await.unwrap();
    assert!(
        question.contains("gets a passkey registered in Microsoft Entra"),
        "{question}"
    );
    page.screenshot("native-login-confirm").await.unwrap();
    page.click("#confirm-dialog-cancel").await.unwrap();
    assert!(
        !h.store
            .integrations()
            .get(&integration.id)
            .await
            .unwrap()
            .native_login_enabled,
        "cancelled"
    );
    page.click("#enable-native-login").await.unwrap();
    page.wait_for("document.getElementById('confirm-dialog').open === true")
        .await
        .unwrap();
    page.click("#confirm-dialog-ok").await.unwrap();
    page.wait_for("(document.getElementById('native-state') || {}).innerText === 'Enabled'")
        .await
        .unwrap();
    assert!(
        page.text(".flash")
            .await
            .unwrap()
            .contains("Native Entra login experience enabled"),
        "flash"
    );
    assert!(
        h.store
            .integrations()
            .get(&integration.id)
            .await
            .unwrap()
            .native_login_enabled
    );

    // Restrict domains: an invalid entry is refused inline, a good list is saved.
    fill(&page, "domains", "contoso.com\nhttps://fabrikam.com/path").await;
    submit_and_wait(&page, "#save-domains").await;
    let error = page.text("#domains-error").await.unwrap();
    assert!(error.contains("fabrikam"), "{error}");
    assert_eq!(
        page.eval("document.getElementById('domains').value")
            .await
            .unwrap(),
        "contoso.com\nhttps://fabrikam.com/path"
    );
    page.screenshot("restrict-domains-invalid").await.unwrap();
    assert!(
        h.store
            .integrations()
            .get(&integration.id)
            .await
            .unwrap()
            .restrict_domains
            .is_empty()
    );
    fill(&page, "domains", "fabrikam.com\nContoso.com").await;
    submit_and_wait(&page, "#save-domains").await;
    assert_eq!(
        page.text(".flash").await.unwrap(),
        "Restrict domains saved successfully"
    );
    assert_eq!(
        page.eval("document.getElementById('domains').value")
            .await
            .unwrap(),
        "contoso.com\nfabrikam.com"
    );
    page.screenshot("restrict-domains-saved").await.unwrap();

    // Download Desktop Client is a CSRF-checked POST answering a zip.
    let download = page
        .eval(
            "fetch(document.querySelector('form[action$=\"/desktop-client\"]').action, {method: 'POST', \
             headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'csrf_token=' + \
             encodeURIComponent(document.querySelector('meta[name=csrf-token]').content)}) \
             .then(r => [r.status, r.headers.get('content-type')])",
        )
        .await
        .unwrap();
    assert_eq!(download, serde_json::json!([200, "application/zip"]));

    // Pre-flight can be run again from the settings page.
    page.goto(&console_url(&h, &settings)).await.unwrap();
    assert!(page.is_visible("#run-preflight").await.unwrap());
    submit_and_wait(&page, "#run-preflight").await;
    assert!(
        page.text("#preflight-summary").await.unwrap().len() > 10,
        "summary shown"
    );

    // API tokens: created (shown once), usable, then revoked after a confirmation.
    page.goto(&console_url(&h, "/console/tokens"))
        .await
        .unwrap();
    fill(&page, "token-name", "").await;
    submit_and_wait(&page, "#create-token").await;
    assert!(
        page.text("#token-name-error")
            .await
            .unwrap()
            .contains("give the token a name"),
        "inline name error"
    );
    fill(&page, "token-name", "ci-export").await;
    fill(&page, "token-days", "30").await;
    submit_and_wait(&page, "#create-token").await;
    let secret = page.text("#new-token").await.unwrap();
    assert!(secret.starts_with("kbt_"), "{secret}");
    page.screenshot("tokens-created").await.unwrap();
    let (status, _) = h
        .call_as(&secret, reqwest::Method::GET, "/api/v1/integrations", None)
        .await;
    assert_eq!(status, 200);
    page.goto(&console_url(&h, "/console/tokens"))
        .await
        .unwrap();
    assert!(!page.is_visible("#new-token").await.unwrap(), "shown once");
    page.click("tr[data-token='ci-export'] button")
        .await
        .unwrap();
    page.wait_for("document.getElementById('confirm-dialog').open === true")
        .await
        .unwrap();
    page.click("#confirm-dialog-ok").await.unwrap();
    page.wait_for(
        "(document.querySelector('.flash') || {}).innerText === 'API token \"ci-export\" revoked.'",
    )
    .await
    .unwrap();
    assert_eq!(
        page.text("tr[data-token='ci-export'] .state")
            .await
            .unwrap(),
        "revoked"
    );
    let (status, _) = h
        .call_as(&secret, reqwest::Method::GET, "/api/v1/integrations", None)
        .await;
    assert_eq!(status, 401);
    browser.close().await;

    // A helpdesk admin sees the list but not the settings.
    let helpdesk_browser = launch().await;
    let (helpdesk, _, _) = enrol(&h, &helpdesk_browser, "hank", Role::Helpdesk, None).await;
    helpdesk
        .goto(&console_url(&h, "/console/integrations"))
        .await
        .unwrap();
    assert!(
        helpdesk
            .text("#integrations")
            .await
            .unwrap()
            .contains("Contoso Passkeys"),
        "list"
    );
    assert!(!helpdesk.is_visible("#add-integration").await.unwrap());
    helpdesk.goto(&console_url(&h, &settings)).await.unwrap();
    assert_eq!(helpdesk.text("h1").await.unwrap(), "Not allowed");
    assert!(
        helpdesk
            .text("#error-message")
            .await
            .unwrap()
            .contains("needs the role admin"),
        "403 names the role"
    );
    helpdesk
        .screenshot("integration-settings-helpdesk-refused")
        .await
        .unwrap();
    helpdesk.goto(&console_url(&h, "/console")).await.unwrap();
    let status = helpdesk
        .eval(&format!(
            "fetch('{settings}/native-login', {{method: 'POST', headers: {{'content-type': \
             'application/x-www-form-urlencoded'}}, body: 'enabled=false&csrf_token=' + \
             encodeURIComponent(document.querySelector('meta[name=csrf-token]').content)}}).then(r => r.status)"
        ))
        .await
        .unwrap();
    assert_eq!(status, 403, "helpdesk cannot change native login");
    assert!(
        h.store
            .integrations()
            .get(&integration.id)
            .await
            .unwrap()
            .native_login_enabled
    );
    helpdesk_browser.close().await;
}
