//! The Device Manager page (`/invite/{token}`) over HTTPS: the page a user opens from the
//! invitation, its code renewal and status, and the pages for links that cannot pair.

use std::time::Duration;

use keybridge_device_protocol::{IdentityKey, PairingPayload, PairingReference};
use keybridge_server::device_manager::CONTENT_SECURITY_POLICY;
use keybridge_testkit::Backend;
use rand_core::OsRng;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::devices::{enrolment, invited_user, post_enrolment, user_view};
use crate::support::{self, Harness};

struct Page {
    status: u16,
    content_type: String,
    csp: String,
    cache: String,
    body: String,
}

async fn get_page(h: &Harness, path: &str) -> Page {
    let response = h.http.get(h.url(path)).send().await.expect("sent");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, csp, cache) = (
        header("content-type"),
        header("content-security-policy"),
        header("cache-control"),
    );
    Page {
        status: response.status().as_u16(),
        content_type,
        csp,
        cache,
        body: response.text().await.expect("body"),
    }
}

async fn status_of(h: &Harness, token: &str) -> (u16, Value) {
    let response = h
        .http
        .get(h.url(&format!("/invite/{token}/status")))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// Undoes the HTML escaping of an attribute or text value.
fn unescape(text: &str) -> String {
    text.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// The value after `marker` up to the next `end`, unescaped.
fn between(body: &str, marker: &str, end: char) -> String {
    let start = body
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page: {body}"))
        + marker.len();
    let rest = &body[start..];
    unescape(&rest[..rest.find(end).expect("end of value")])
}

fn payload_of(body: &str) -> PairingPayload {
    let text = between(body, "data-pairing-payload=\"", '"');
    // The visible machine-readable copy says the same.
    assert_eq!(between(body, "<code id=\"pairing-payload\">", '<'), text);
    PairingPayload::parse(&text, OffsetDateTime::now_utc()).expect("the page's payload parses")
}

fn assert_strict_html(page: &Page) {
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert_eq!(page.csp, CONTENT_SECURITY_POLICY);
    assert_eq!(page.cache, "no-store");
    // Nothing the CSP would block: no inline script, handler or style.
    for forbidden in ["<script>", " onclick=", " onload=", " style=", "<style"] {
        assert!(
            !page.body.contains(forbidden),
            "{forbidden} in {}",
            page.body
        );
    }
}

async fn page_pairs_a_phone_and_follows_the_enrolment(backend: Backend) {
    let h = support::start_reachable(backend).await;
    let (user_id, token) = invited_user(&h).await;
    let user = h.store.users().get(&user_id).await.expect("user");

    let page = get_page(&h, &format!("/invite/{token}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_strict_html(&page);
    assert!(
        page.body.contains("<h1>Pair your phone</h1>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&user.upn), "{}", page.body);
    // The QR code is an inline SVG with an accessible name.
    assert!(
        page.body.contains(
            "<svg role=\"img\" aria-label=\"QR code to scan with the keybridge app on your phone\""
        ),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<?xml"), "{}", page.body);
    let payload = payload_of(&page.body);
    assert_eq!(
        payload.server_url.origin(),
        h.server.base_url.trim_end_matches('/')
    );
    let short_code = between(
        &page.body,
        "<code id=\"short-code\" class=\"short-code\">",
        '<',
    );
    assert_eq!(short_code.len(), 7, "{short_code}");
    assert_eq!(
        between(&page.body, "<code id=\"server-url\">", '<'),
        h.server.base_url.trim_end_matches('/')
    );
    let seconds: i64 = between(&page.body, "<span id=\"countdown-seconds\">", '<')
        .parse()
        .expect("seconds");
    assert!((50..=60).contains(&seconds), "{seconds}");
    assert!(page.body.contains("src=\"/assets/device-manager.js\""));

    let (status, body) = status_of(&h, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "waiting", "{body}");
    assert_eq!(body["final_state"], false, "{body}");

    // Renewal: a new session with a new code.
    let renewed = get_page(&h, &format!("/invite/{token}/code")).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert!(renewed.body.starts_with("<section id=\"pairing-code\""));
    let renewed_payload = payload_of(&renewed.body);
    assert_ne!(renewed_payload.pairing_id, payload.pairing_id);

    // Pair with what the page shows.
    let request = enrolment(
        PairingReference::Id(renewed_payload.pairing_id),
        &renewed_payload.secret.proof_key(),
        &renewed_payload.server_url,
        &IdentityKey::generate(&mut OsRng),
    );
    let (status, body) = post_enrolment(&h, &request).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        user_view(&h, &user_id).await["state"],
        "paired_with_keybridge"
    );

    // Native login is off: paired, nothing more happens, the page can stop.
    let (status, body) = status_of(&h, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "paired", "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("Phone paired."),
        "{body}"
    );
    assert_eq!(body["final_state"], true, "{body}");

    // The used link: a page that says so and keeps following the status; no new code.
    let used = get_page(&h, &format!("/invite/{token}")).await;
    assert_eq!(used.status, 410, "{}", used.body);
    assert_strict_html(&used);
    assert!(
        used.body.contains("This invitation link was already used"),
        "{}",
        used.body
    );
    assert!(
        used.body
            .contains(&format!("data-status-url=\"/invite/{token}/status\"")),
        "{}",
        used.body
    );
    assert!(!used.body.contains("data-pairing-payload"), "{}", used.body);
    let code = h
        .http
        .get(h.url(&format!("/invite/{token}/code")))
        .send()
        .await
        .expect("sent");
    assert_eq!(code.status().as_u16(), 410);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_pairs_a_phone_and_follows_the_enrolment_on_sqlite() {
    page_pairs_a_phone_and_follows_the_enrolment(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_pairs_a_phone_and_follows_the_enrolment_on_postgres() {
    page_pairs_a_phone_and_follows_the_enrolment(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_that_cannot_pair_get_a_page_that_says_why() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let (user_id, token) = invited_user(&h).await;

    let unknown = get_page(&h, "/invite/not-a-real-token").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_strict_html(&unknown);
    assert!(
        unknown.body.contains("This invitation link is not valid"),
        "{}",
        unknown.body
    );
    let (status, body) = status_of(&h, "not-a-real-token").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("invite_not_found"))
    );

    let (_, short) = h
        .store
        .invites()
        .create(&user_id, "admin:test", Duration::from_millis(1))
        .await
        .expect("invite");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let expired = get_page(&h, &format!("/invite/{short}")).await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert!(
        expired.body.contains("This invitation link has expired"),
        "{}",
        expired.body
    );
    assert!(
        expired
            .body
            .contains("Ask your administrator for a new invitation link."),
        "{}",
        expired.body
    );
    let (_, body) = status_of(&h, &short).await;
    assert_eq!(body["status"], "expired", "{body}");

    let user = h.store.users().get(&user_id).await.expect("user");
    let (status, body) = h
        .call(
            Method::PUT,
            &format!(
                "/api/v1/integrations/{}/restrict-domains",
                user.integration_id
            ),
            Some(json!({"domains": ["fabrikam.example"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = get_page(&h, &format!("/invite/{token}")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_strict_html(&refused);
    assert!(
        refused.body.contains("Your account cannot pair a phone"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(&user.upn), "{}", refused.body);
    assert!(!refused.body.contains("data-pairing-payload"));

    // The admin withdraws the user's open invitations (the domain check above used the same link).
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{user_id}/invites"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let withdrawn = get_page(&h, &format!("/invite/{token}")).await;
    assert_eq!(withdrawn.status, 410, "{}", withdrawn.body);
    assert!(
        withdrawn
            .body
            .contains("This invitation link was withdrawn"),
        "{}",
        withdrawn.body
    );
    let (_, body) = status_of(&h, &token).await;
    assert_eq!(body["status"], "revoked", "{body}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_and_stylesheet_are_served_as_what_they_are() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let response = h
        .http
        .get(h.url("/assets/device-manager.js"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("header")
            .starts_with("text/javascript")
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("data-status-url")
    );
    // The page's one stylesheet is the console's (one look, no second copy of the rules).
    let (_, token) = invited_user(&h).await;
    let page = get_page(&h, &format!("/invite/{token}")).await;
    let links: Vec<&str> = page
        .body
        .split("<link rel=\"stylesheet\" href=\"")
        .skip(1)
        .collect();
    assert_eq!(links.len(), 1, "{}", page.body);
    let href = &links[0][..links[0].find('"').expect("end")];
    assert!(
        href.starts_with("/console/static/console-") && href.ends_with(".css"),
        "{href}"
    );
    let response = h.http.get(h.url(href)).send().await.expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("header")
            .starts_with("text/css")
    );
    let css = response.text().await.expect("body");
    assert!(css.contains(".qr-code") && css.contains(".topbar"), "{css}");
    let old = h
        .http
        .get(h.url("/assets/device-manager.css"))
        .send()
        .await
        .expect("sent");
    assert_eq!(old.status().as_u16(), 404);
    h.stop().await;
}
