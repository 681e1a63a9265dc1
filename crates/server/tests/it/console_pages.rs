//! The console's Jobs, Audit and Dashboard pages and User Management's refusals over HTTPS,
//! with a session made in the store (the passkey sign-in itself is `console.rs`'s test).

use std::time::Duration;

use keybridge_store::Role;
use keybridge_testkit::Backend;
use reqwest::Method;
use serde_json::Value;

use crate::support::{self, Harness};

pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) async fn session(h: &Harness, username: &str, role: Role) -> Session {
    let admin = h
        .store
        .admins()
        .create(username, username, role)
        .await
        .expect("admin");
    let (session, token) = h
        .store
        .admins()
        .create_session(
            &admin.id,
            Duration::from_secs(600),
            Duration::from_secs(3600),
            None,
            None,
        )
        .await
        .expect("session");
    Session {
        cookie: format!("__Host-kb_session={token}"),
        csrf: session.csrf_token,
    }
}

pub(crate) async fn get(
    h: &Harness,
    s: &Session,
    path: &str,
) -> (u16, String, reqwest::header::HeaderMap) {
    let response = h
        .http
        .get(h.url(path))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.expect("body"), headers)
}

/// POSTs a form without following a redirect; the raw answer.
pub(crate) async fn post_form_answer(
    h: &Harness,
    s: &Session,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(h.server.ca_file.clone().expect("CA")).expect("CA"),
            )
            .expect("PEM"),
        )
        .build()
        .expect("client");
    client
        .post(h.url(path))
        .header("cookie", &s.cookie)
        .form(form)
        .send()
        .await
        .expect("sent")
}

/// POSTs a form; returns the status, the body and the flash cookie the answer set.
pub(crate) async fn post_form(
    h: &Harness,
    s: &Session,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let response = post_form_answer(h, s, path, form).await;
    let status = response.status().as_u16();
    let flash = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-kb_flash="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (status, response.text().await.expect("body"), flash)
}

pub(crate) async fn synced_integration(h: &Harness) -> String {
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
    created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn user_management_lists_pages_and_guards_its_actions(backend: Backend) {
    let h = support::start(backend).await;
    let integration_id = synced_integration(&h).await;
    let admin = session(&h, "alice", Role::Admin).await;
    let auditor = session(&h, "olga", Role::Auditor).await;
    let (_, api) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?state=pending&limit=5"),
            None,
        )
        .await;

    let (status, body, _) = get(
        &h,
        &admin,
        &format!("/console/users?integration={integration_id}&state=pending&limit=5"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pending = api["counts"]["pending"].as_i64().expect("count");
    assert!(
        body.contains(&format!(
            "<span class=\"count\" data-count=\"pending\">{pending}</span>"
        )),
        "{body}"
    );
    // The first page is the API's first page, in the same order.
    let ids: Vec<&str> = api["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    let shown: Vec<&str> = body
        .split("data-user-id=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').expect("end")])
        .collect();
    assert_eq!(shown, ids);
    for column in [
        "Email",
        "Username",
        "Name",
        "Device Count",
        "Last Active",
        "Actions",
    ] {
        assert!(
            body.contains(&format!("<th scope=\"col\">{column}</th>")),
            "{column}"
        );
    }
    // The next page continues where the first ended.
    let next = api["next"].as_str().expect("a second page");
    assert!(body.contains("rel=\"next\""), "{body}");
    let (status, second, _) = get(
        &h,
        &admin,
        &format!("/console/users?integration={integration_id}&state=pending&limit=5&after={next}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(second.matches("data-user-id=\"").count(), 5, "{second}");
    for id in &ids {
        assert!(
            !second.contains(&format!("data-user-id=\"{id}\"")),
            "{id} twice"
        );
    }
    // Search narrows to one user.
    let upn = api["items"][3]["username"].as_str().expect("upn");
    let (_, found, _) = get(
        &h,
        &admin,
        &format!("/console/users?integration={integration_id}&state=pending&search={upn}"),
    )
    .await;
    assert_eq!(found.matches("data-user-id=\"").count(), 1, "{found}");
    assert!(found.contains(upn));

    // The live refresh's JSON: counts and the rows' state.
    let (status, live, _) = get(
        &h,
        &admin,
        &format!(
            "/console/users/live?integration={integration_id}&ids={}",
            ids[0]
        ),
    )
    .await;
    assert_eq!(status, 200, "{live}");
    let live: Value = serde_json::from_str(&live).expect("JSON");
    assert_eq!(live["counts"]["pending"], pending);
    assert_eq!(live["users"][0]["state_label"], "Pending");

    // Invitations: the admin gets the link once; a forged CSRF token and an auditor are refused.
    let path = format!("/console/users/{}/invite", ids[0]);
    let (status, page, _) = post_form(&h, &admin, &path, &[("csrf_token", &admin.csrf)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("/invite/"), "{page}");
    let (status, _, _) = post_form(&h, &admin, &path, &[("csrf_token", "forged")]).await;
    assert_eq!(status, 403);
    let (status, page, _) = post_form(&h, &auditor, &path, &[("csrf_token", &auditor.csrf)]).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("helpdesk"), "{page}");
    // The auditor sees the list without the buttons that change things.
    let (_, list, _) = get(&h, &auditor, "/console/users").await;
    assert!(!list.contains("/invite\""), "{list}");

    // Deletion needs the typed username: a wrong one is refused with the API's message.
    let (status, _, flash_cookie) = post_form(
        &h,
        &admin,
        &format!("/console/users/{}/delete", ids[1]),
        &[("csrf_token", &admin.csrf), ("confirm", "someone-else")],
    )
    .await;
    assert_eq!(status, 303);
    // The message travels in the flash cookie to the page the answer redirects to.
    let flash = flash_cookie.expect("a flash message");
    let with_flash = Session {
        cookie: format!("{}; {flash}", admin.cookie),
        csrf: admin.csrf.clone(),
    };
    let (_, after, _) = get(&h, &with_flash, "/console/users").await;
    assert!(after.contains("flash-error"), "{after}");
    assert!(after.contains("cannot be undone"), "{after}");
    h.stop().await;
}

async fn jobs_audit_and_dashboard_pages(backend: Backend) {
    let h = support::start(backend).await;
    synced_integration(&h).await;
    let admin = session(&h, "alice", Role::Admin).await;

    let (status, jobs, _) = get(&h, &admin, "/console/jobs").await;
    assert_eq!(status, 200, "{jobs}");
    assert!(jobs.contains("Directory sync"), "{jobs}");
    assert!(jobs.contains("state-succeeded"), "{jobs}");
    let (status, body, _) = get(&h, &admin, "/console/jobs?state=nonsense").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not a job state"), "{body}");

    let (status, audit, _) = get(&h, &admin, "/console/audit?action=integration.create").await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.contains("<code>integration.create</code>"), "{audit}");
    assert!(!audit.contains("<code>integration.sync</code>"), "{audit}");
    let (status, csv, headers) = get(
        &h,
        &admin,
        "/console/audit/export?action=integration.create&format=csv",
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("header")
            .contains("attachment"),
    );
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .expect("row")
            .contains("integration.create")
    );

    let (status, dashboard, _) = get(&h, &admin, "/console").await;
    assert_eq!(status, 200, "{dashboard}");
    assert!(dashboard.contains("Enrolment funnel"), "{dashboard}");
    assert!(dashboard.contains("<svg "), "{dashboard}");
    assert!(dashboard.contains("data-stage=\"pending\""), "{dashboard}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_management_lists_pages_and_guards_its_actions_on_sqlite() {
    user_management_lists_pages_and_guards_its_actions(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_management_lists_pages_and_guards_its_actions_on_postgres() {
    user_management_lists_pages_and_guards_its_actions(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_audit_and_dashboard_pages_on_sqlite() {
    jobs_audit_and_dashboard_pages(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_audit_and_dashboard_pages_on_postgres() {
    jobs_audit_and_dashboard_pages(Backend::Postgres).await;
}
