//! The admin console in headless Chromium: passkey enrolment through a one-time link, login
//! and logout with a CDP virtual authenticator, assertions the server must refuse (bogus
//! signature, UV=false, a signature counter that went back), CSRF and cross-site refusals,
//! roles, and used or expired links.
//! Screenshots land in `<target dir>/console-screenshots/`.

use std::time::Duration;

use keybridge_server::console::login::issue_login_link;
use keybridge_store::{AuditFilter, Role};
use keybridge_testkit::Backend;
use keybridge_testkit::browser::{
    AuthenticatorSetup, CookieSameSite, TestBrowser, TestPage, VirtualAuthenticatorId,
};

use crate::support::{self, Harness};

pub(crate) fn public_url(h: &Harness) -> url::Url {
    url::Url::parse(&format!("https://localhost:{}/", h.server.addr.port())).expect("URL")
}

pub(crate) fn console_url(h: &Harness, path: &str) -> String {
    format!("https://localhost:{}{path}", h.server.addr.port())
}

pub(crate) async fn launch() -> TestBrowser {
    TestBrowser::launch()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Opens a login link for `username` in a new tab with a virtual authenticator, registers a
/// passkey and waits for the dashboard.
pub(crate) async fn enrol(
    h: &Harness,
    browser: &TestBrowser,
    username: &str,
    role: Role,
    screenshot: Option<&str>,
) -> (TestPage, VirtualAuthenticatorId, String) {
    let link = issue_login_link(&h.store, &public_url(h), username, role, "test")
        .await
        .expect("login link");
    assert!(link.created_admin);
    let page = browser.open(&link.url).await.expect("enrol page");
    let authenticator = page
        .add_authenticator(AuthenticatorSetup::default())
        .await
        .expect("virtual authenticator");
    assert_eq!(page.text("h1").await.expect("h1"), "Register your passkey");
    assert!(page.text("main").await.expect("main").contains(username));
    if let Some(name) = screenshot {
        page.screenshot(name).await.expect("screenshot");
    }
    page.click("#enrol-button").await.expect("click register");
    page.wait_for_path("/console")
        .await
        .expect("dashboard after enrolment");
    assert_eq!(page.text("h1").await.expect("h1"), "Dashboard");
    (page, authenticator, link.url)
}

pub(crate) async fn sign_out(page: &TestPage) {
    page.click("form[action='/console/logout'] button")
        .await
        .expect("click sign out");
    page.wait_for_path("/console/login")
        .await
        .expect("login page");
}

pub(crate) async fn sign_in(page: &TestPage) {
    page.click("#login-button").await.expect("click sign in");
}

async fn refusal(page: &TestPage) -> String {
    page.wait_for("(() => { const e = document.getElementById('ceremony-error'); return !!e && !e.hidden; })()")
        .await
        .expect("an error is shown");
    page.text("#ceremony-error").await.expect("error text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_enrolment_logout_and_login_in_chromium_sqlite() {
    passkey_enrolment_logout_and_login(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_enrolment_logout_and_login_in_chromium_postgres() {
    passkey_enrolment_logout_and_login(Backend::Postgres).await;
}

/// Enrolment, the session cookie, sign-out, a used link, and two sign-ins (username-first and
/// discoverable), with their audit events: the console's whole login path on one backend.
async fn passkey_enrolment_logout_and_login(backend: Backend) {
    let h = support::start_console(backend).await;
    let browser = launch().await;
    let (page, authenticator, link_url) =
        enrol(&h, &browser, "alice", Role::Admin, Some("enrol")).await;
    let header = page.text("header").await.expect("step");
    assert!(
        header.contains("Signed in as alice") && header.contains("Admin"),
        "{header}"
    );
    page.screenshot("dashboard").await.expect("step");

    // One resident credential in the authenticator, one passkey on the server.
    let credentials = page.credentials(&authenticator).await.expect("step");
    assert_eq!(credentials.len(), 1);
    assert!(credentials[0].is_resident_credential);
    let admin = h
        .store
        .admins()
        .find_by_username("alice")
        .await
        .expect("step")
        .expect("admin");
    assert_eq!(
        h.store
            .admins()
            .passkeys(&admin.id)
            .await
            .expect("step")
            .len(),
        1
    );

    // The session cookie is __Host-, Secure, HttpOnly, SameSite=Strict, for the whole site.
    let cookies = page.inner().get_cookies().await.expect("step");
    let session = cookies
        .iter()
        .find(|c| c.name == "__Host-kb_session")
        .expect("session cookie");
    assert!(session.secure && session.http_only);
    assert_eq!(session.path, "/");
    assert_eq!(session.same_site, Some(CookieSameSite::Strict));

    // Sign out: the session is revoked, pages send you to the login page.
    sign_out(&page).await;
    assert!(
        page.text(".flash")
            .await
            .expect("step")
            .contains("You are signed out."),
        "flash after sign-out"
    );
    page.goto(&console_url(&h, "/console/tokens"))
        .await
        .expect("step");
    page.wait_for_path("/console/login?next=%2Fconsole%2Ftokens")
        .await
        .expect("redirected to login");
    page.screenshot("login").await.expect("step");

    // The enrolment link worked once.
    page.goto(&link_url).await.expect("step");
    assert_eq!(
        page.text("h1").await.expect("step"),
        "This link cannot be used"
    );
    assert!(
        page.text("#error-message")
            .await
            .expect("step")
            .contains("was already used"),
        "used link"
    );
    page.screenshot("enrol-link-used").await.expect("step");

    // Sign in again with the same passkey (username-first this time), back to the page asked for.
    page.goto(&console_url(&h, "/console/login?next=%2Fconsole%2Ftokens"))
        .await
        .expect("step");
    page.type_into("#username", "alice").await.expect("step");
    sign_in(&page).await;
    page.wait_for_path("/console/tokens")
        .await
        .expect("tokens page after login");
    assert_eq!(page.text("h1").await.expect("step"), "API tokens");
    page.screenshot("tokens").await.expect("step");

    // And once more with a discoverable passkey (no username).
    sign_out(&page).await;
    sign_in(&page).await;
    page.wait_for_path("/console")
        .await
        .expect("dashboard after login");

    let events = h
        .store
        .audit()
        .list(&AuditFilter::default(), None, 100)
        .await
        .expect("step");
    let count = |action: &str| events.iter().filter(|e| e.action == action).count();
    assert_eq!(count("console.enrol"), 1);
    assert_eq!(count("console.login"), 3);
    assert_eq!(count("console.logout"), 2);
    assert!(
        events
            .iter()
            .filter(|e| e.action == "console.login" || e.action == "console.logout")
            .all(|e| e.actor == "admin:alice")
    );
    browser.close().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_signature_and_missing_user_verification_are_refused() {
    let h = support::start_console(Backend::Sqlite).await;
    let browser = launch().await;
    let (page, authenticator, _) = enrol(&h, &browser, "bob", Role::Admin, None).await;
    sign_out(&page).await;

    page.override_responses(&authenticator, true, false)
        .await
        .unwrap();
    sign_in(&page).await;
    let message = refusal(&page).await;
    assert!(message.contains("signature"), "{message}");
    assert_eq!(page.url().await.unwrap(), console_url(&h, "/console/login"));
    page.screenshot("login-refused").await.unwrap();

    page.override_responses(&authenticator, false, true)
        .await
        .unwrap();
    page.goto(&console_url(&h, "/console/login")).await.unwrap();
    sign_in(&page).await;
    let message = refusal(&page).await;
    assert!(
        message.contains("user verification is required"),
        "{message}"
    );

    // A signature counter that went backwards (a cloned authenticator) is refused too.
    page.override_responses(&authenticator, false, false)
        .await
        .unwrap();
    sqlx::query("UPDATE admin_passkeys SET sign_count = 1000000")
        .execute(h.store.raw_pool())
        .await
        .unwrap();
    page.goto(&console_url(&h, "/console/login")).await.unwrap();
    sign_in(&page).await;
    let message = refusal(&page).await;
    assert!(message.contains("may be cloned"), "{message}");
    sqlx::query("UPDATE admin_passkeys SET sign_count = 0")
        .execute(h.store.raw_pool())
        .await
        .unwrap();

    // No session came of any of these attempts.
    page.goto(&console_url(&h, "/console")).await.unwrap();
    page.wait_for_path("/console/login?next=%2Fconsole")
        .await
        .unwrap();

    // The honest authenticator still gets in.
    sign_in(&page).await;
    page.wait_for_path("/console").await.expect("dashboard");

    let failed = h
        .store
        .audit()
        .list(
            &AuditFilter {
                action: Some("console.login.failed".to_owned()),
                ..AuditFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    let reasons: Vec<&str> = failed.iter().map(|e| e.details.as_str()).collect();
    assert_eq!(failed.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|d| d.contains("error_possible_clone")));
    assert!(
        reasons
            .iter()
            .any(|d| d.contains("error_invalid_signature"))
    );
    assert!(
        reasons
            .iter()
            .any(|d| d.contains("error_user_verification_required"))
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_csrf_and_spent_links_get_refusal_pages() {
    let h = support::start_console(Backend::Sqlite).await;
    let browser = launch().await;
    let (page, _, _) = enrol(&h, &browser, "hank", Role::Helpdesk, None).await;

    // A helpdesk session cannot open an admin-only page.
    page.goto(&console_url(&h, "/console/tokens"))
        .await
        .unwrap();
    assert_eq!(page.text("h1").await.unwrap(), "Not allowed");
    let message = page.text("#error-message").await.unwrap();
    assert!(
        message.contains("needs the role admin") && message.contains("helpdesk"),
        "{message}"
    );
    page.screenshot("forbidden").await.unwrap();

    // A same-origin POST with a forged CSRF token is refused, and the session stays.
    let status = page
        .eval(
            "fetch('/console/logout', {method: 'POST', headers: {'content-type': \
             'application/x-www-form-urlencoded'}, body: 'csrf_token=forged'}).then(r => r.status)",
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    let status = page
        .eval("fetch('/console/logout', {method: 'POST'}).then(r => r.status)")
        .await
        .unwrap();
    assert_eq!(status, 403, "no token at all");
    page.goto(&console_url(&h, "/console")).await.unwrap();
    assert_eq!(page.text("h1").await.unwrap(), "Dashboard");

    // The right token from another site's page is refused by the Origin check.
    let cookies = page.inner().get_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name == "__Host-kb_session")
        .expect("session cookie");
    let csrf = page
        .eval("document.querySelector('meta[name=csrf-token]').content")
        .await
        .unwrap();
    let csrf = csrf.as_str().expect("csrf token").to_owned();
    let ca = h.server.ca_file.clone().expect("server CA");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let logout = |origin: Option<&'static str>| {
        let mut request = http
            .post(console_url(&h, "/console/logout"))
            .header("cookie", format!("__Host-kb_session={}", session.value))
            .form(&[("csrf_token", csrf.as_str())]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let response = logout(Some("https://evil.example")).await.unwrap();
    assert_eq!(response.status(), 403);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(csp, keybridge_server::console::CONTENT_SECURITY_POLICY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("did not come from a keybridge console page")
    );
    // With its own origin and the right token, the same request logs out.
    let own_origin = format!("https://localhost:{}", h.server.addr.port());
    let response = http
        .post(console_url(&h, "/console/logout"))
        .header("cookie", format!("__Host-kb_session={}", session.value))
        .header("origin", own_origin)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    page.goto(&console_url(&h, "/console")).await.unwrap();
    page.wait_for_path("/console/login?next=%2Fconsole")
        .await
        .unwrap();

    // An expired link and an unknown one get their own pages.
    let admin = h
        .store
        .admins()
        .find_by_username("hank")
        .await
        .unwrap()
        .expect("admin");
    let expired = h
        .store
        .admins()
        .create_login_link(Some(&admin.id), None, Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    page.goto(&console_url(&h, &format!("/console/enrol/{expired}")))
        .await
        .unwrap();
    assert!(
        page.text("#error-message")
            .await
            .unwrap()
            .contains("has expired"),
        "expired link"
    );
    page.screenshot("enrol-link-expired").await.unwrap();
    page.goto(&console_url(&h, "/console/enrol/not-a-link"))
        .await
        .unwrap();
    assert!(
        page.text("#error-message")
            .await
            .unwrap()
            .contains("not valid"),
        "unknown link"
    );

    // Static assets: content-hashed, cached for a year, under the same CSP.
    let css = page
        .eval("document.querySelector('link[rel=stylesheet]').getAttribute('href')")
        .await
        .unwrap();
    let css = css.as_str().expect("stylesheet href");
    assert!(css.starts_with("/console/static/console-") && css.ends_with(".css"));
    let response = http.get(console_url(&h, css)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    browser.close().await;
}
