//! Inviting a group or a CSV file from User Management: the preview before anything is
//! created, a bad or oversized file refused inline, the job's progress and failures on its
//! page, and the links shown to admins only (over HTTPS on both databases, and in Chromium).

use keybridge_store::{JobFilter, Role};
use keybridge_testkit::Backend;
use keybridge_testkit::browser::TestPage;
use reqwest::Method;
use serde_json::Value;

use crate::bulk_invites::{graph, members};
use crate::console::{console_url, enrol, launch};
use crate::console_pages::{
    Session, get, post_form, post_form_answer, session, synced_integration,
};
use crate::support::{self, Harness};

fn csv_form<'a>(
    token: &'a str,
    integration: &'a str,
    csv: &'a str,
    step: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("csrf_token", token),
        ("integration", integration),
        ("csv", csv),
        ("step", step),
    ]
}

async fn bulk_jobs(h: &Harness) -> usize {
    let filter = JobFilter {
        state: None,
        queue: None,
        kind: Some("bulk_invite".to_owned()),
    };
    h.store
        .jobs()
        .list(&filter, None, 100)
        .await
        .expect("jobs")
        .len()
}

/// Posts a confirmation and returns the job page it redirects to.
async fn confirm(h: &Harness, s: &Session, path: &str, form: &[(&str, &str)]) -> String {
    let answer = post_form_answer(h, s, path, form).await;
    assert_eq!(answer.status().as_u16(), 303);
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_owned();
    assert!(location.starts_with("/console/jobs/"), "{location}");
    location
}

async fn finished(h: &Harness, job_page: &str) -> Value {
    let job = h
        .wait_for_job(job_page.trim_start_matches("/console/jobs/"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    job
}

const CSV: &str = "/console/users/invite/csv";
const GROUP: &str = "/console/users/invite/group";

/// Posts the CSV form as `s`, with `s`'s token.
async fn send_csv(
    h: &Harness,
    s: &Session,
    integration: &str,
    csv: &str,
    step: &str,
) -> (u16, String) {
    let (status, body, _) = post_form(h, s, CSV, &csv_form(&s.csrf, integration, csv, step)).await;
    (status, body)
}

/// Posts the group form as `s`, with `s`'s token: `field` is `group` (typed) or `group_id`.
async fn send_group(
    h: &Harness,
    s: &Session,
    integration: &str,
    (field, value): (&str, &str),
    step: &str,
) -> (u16, String) {
    let form = [
        ("csrf_token", s.csrf.as_str()),
        ("integration", integration),
        (field, value),
        ("step", step),
    ];
    let (status, body, _) = post_form(h, s, GROUP, &form).await;
    (status, body)
}

async fn bulk_invites_from_user_management(backend: Backend) {
    let h = support::start(backend).await;
    let integration_id = synced_integration(&h).await;
    let admin = session(&h, "alice", Role::Admin).await;
    let helpdesk = session(&h, "hank", Role::Helpdesk).await;
    let auditor = session(&h, "olga", Role::Auditor).await;
    let users = members(&h, &integration_id, 5).await;
    let integration = integration_id.as_str();

    // The page: helpdesk and admins (as the API), not auditors.
    let page = format!("/console/users/invite?integration={integration_id}");
    let (status, body, _) = get(&h, &admin, &page).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("By Entra group") && body.contains("From a CSV file"));
    assert_eq!(get(&h, &helpdesk, &page).await.0, 200);
    let (status, body, _) = get(&h, &auditor, &page).await;
    assert_eq!(status, 403, "{body}");
    let (_, list, _) = get(&h, &admin, "/console/users").await;
    assert!(list.contains("id=\"invite-users\""), "{list}");

    // A bad file, previewed or confirmed: every bad line with its reason, nothing created.
    let bad = format!("email\n{}\nnot an address\n{}\n", users[0].1, users[0].1);
    for step in ["preview", "confirm"] {
        let (status, body) = send_csv(&h, &admin, integration, &bad, step).await;
        assert_eq!(status, 422, "{step}: {body}");
        assert!(body.contains("id=\"csv-error\""), "{step}: {body}");
        assert!(
            body.contains("<td>3</td><td>not an address</td>"),
            "{step}: {body}"
        );
        assert!(
            body.contains("listed twice (first on line 2)"),
            "{step}: {body}"
        );
        assert!(
            body.contains("<strong class=\"csv-valid\">1</strong> valid line(s), <strong class=\"csv-invalid\">2</strong> invalid"),
            "{step}: {body}"
        );
    }
    let (status, body) = send_csv(&h, &admin, integration, "name\nbob\n", "preview").await;
    assert_eq!(status, 422);
    assert!(body.contains("has no address column"), "{body}");
    // Too large: refused with the limit, before it is read.
    let huge = format!("email\n{}", "a".repeat(1024 * 1024));
    let (status, body) = send_csv(&h, &admin, integration, &huge, "confirm").await;
    assert_eq!(status, 422);
    assert!(
        body.contains("at most 1.0 MiB can be sent at once"),
        "{body}"
    );
    assert_eq!(bulk_jobs(&h).await, 0, "a refused file creates nothing");

    // A good file: a preview of its rows, still nothing created.
    let good = format!(
        "name,email\nA,{}\nB,{}\nC,{}\nN,nobody-here@contoso.com\n",
        users[0].1, users[1].1, users[2].1
    );
    let (status, body) = send_csv(&h, &admin, integration, &good, "preview").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<strong class=\"csv-valid\">4</strong> valid line(s)"),
        "{body}"
    );
    assert!(body.contains(&users[2].1) && body.contains("id=\"csv-confirm\""));
    assert_eq!(bulk_jobs(&h).await, 0, "a preview creates nothing");
    // A forged token and an auditor are refused and create nothing.
    let form = |token| csv_form(token, integration, &good, "confirm");
    let (status, _, _) = post_form(&h, &admin, CSV, &form("forged")).await;
    assert_eq!(status, 403);
    let (status, _) = send_csv(&h, &auditor, integration, &good, "confirm").await;
    assert_eq!(status, 403);
    assert_eq!(bulk_jobs(&h).await, 0);

    // Confirmed: the job, and its page with progress and who was not invited, and why.
    let job_page = confirm(&h, &admin, CSV, &form(&admin.csrf)).await;
    let job = finished(&h, &job_page).await;
    assert_eq!(
        (&job["progress_done"], &job["progress_failed"]),
        (&Value::from(3), &Value::from(1))
    );
    let (status, body, _) = get(&h, &helpdesk, &job_page).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<strong>3</strong> user(s) invited"),
        "{body}"
    );
    assert!(
        body.contains("<td>5</td><td>nobody-here@contoso.com</td>"),
        "{body}"
    );
    assert!(
        body.contains("copy of the directory: check the address"),
        "{body}"
    );
    // The links: admins only, shown on a POST's answer, audited.
    assert!(
        !body.contains("id=\"show-links\""),
        "helpdesk is not offered the links"
    );
    assert!(!body.contains("/invite/"), "{body}");
    let links_path = format!("{job_page}/invite-links");
    let (status, _, _) = post_form(
        &h,
        &helpdesk,
        &links_path,
        &[("csrf_token", &helpdesk.csrf)],
    )
    .await;
    assert_eq!(status, 403);
    let (_, body, _) = get(&h, &admin, &job_page).await;
    assert!(body.contains("id=\"show-links\""), "{body}");
    let (status, _, _) = post_form(&h, &admin, &links_path, &[("csrf_token", "forged")]).await;
    assert_eq!(status, 403);
    let (status, body, _) =
        post_form(&h, &admin, &links_path, &[("csrf_token", &admin.csrf)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("/invite/").count(), 3, "{body}");
    assert_eq!(body.matches("data-copy-target=").count(), 3, "{body}");
    let (status, audit) = h
        .call(Method::GET, "/api/v1/audit?action=invites.bulk.links", None)
        .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["items"][0]["actor"], "admin:alice", "{audit}");

    // A group: found by name or object id with its member count, then invited by helpdesk.
    let graph = graph(&h, &integration_id).await;
    let group = graph
        .create_security_group("Console pilot", None)
        .await
        .expect("group");
    let ids: Vec<String> = users[3..5].iter().map(|u| u.2.clone()).collect();
    graph
        .add_group_members(&group.id, &ids)
        .await
        .expect("members");
    let upper = group.id.to_uppercase();
    for typed in ["Console pilot", upper.as_str()] {
        let (status, body) =
            send_group(&h, &helpdesk, integration, ("group", typed), "preview").await;
        assert_eq!(status, 200, "{typed}: {body}");
        assert!(
            body.contains("<td class=\"group-name\">Console pilot</td>"),
            "{body}"
        );
        assert!(
            body.contains("<td class=\"group-members\">2</td>"),
            "{body}"
        );
        assert!(body.contains("<td class=\"group-users\">2</td>"), "{body}");
        assert!(body.contains(&group.id));
    }
    for (field, typed, step, message) in [
        (
            "group",
            "No such group",
            "preview",
            "no group named or with the object id",
        ),
        ("group", "", "preview", "give the group"),
        (
            "group_id",
            "not-a-group",
            "confirm",
            "is not an Entra group object id",
        ),
    ] {
        let (status, body) = send_group(&h, &helpdesk, integration, (field, typed), step).await;
        assert_eq!(status, 422, "{typed}: {body}");
        assert!(
            body.contains("id=\"group-error\"") && body.contains(message),
            "{body}"
        );
    }
    assert_eq!(bulk_jobs(&h).await, 1);
    let form = [
        ("csrf_token", helpdesk.csrf.as_str()),
        ("integration", integration),
        ("group_id", group.id.as_str()),
        ("step", "confirm"),
    ];
    let job_page = confirm(&h, &helpdesk, GROUP, &form).await;
    let job = finished(&h, &job_page).await;
    assert_eq!(job["progress_done"], 2, "{job}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_invites_from_user_management_on_sqlite() {
    bulk_invites_from_user_management(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_invites_from_user_management_on_postgres() {
    bulk_invites_from_user_management(Backend::Postgres).await;
}

/// Gives the file input a file as a person choosing one would.
async fn choose_file(page: &TestPage, name: &str, text: &str) {
    let text = serde_json::to_string(text).expect("JSON");
    let name = serde_json::to_string(name).expect("JSON");
    page.eval(&format!(
        "(() => {{ const input = document.getElementById('csv-file'); \
         const files = new DataTransfer(); files.items.add(new File([{text}], {name}, {{ type: 'text/csv' }})); \
         input.files = files.files; input.dispatchEvent(new Event('change')); return true; }})()"
    ))
    .await
    .expect("file chosen");
}

async fn shot(page: &TestPage, name: &str) {
    page.screenshot(name).await.expect("screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_a_csv_file_and_a_group_in_chromium() {
    let h = support::start_console(Backend::Sqlite).await;
    let integration_id = synced_integration(&h).await;
    let users = members(&h, &integration_id, 4).await;
    let browser = launch().await;
    let (page, _, _) = enrol(&h, &browser, "alice", Role::Admin, None).await;

    page.goto(&console_url(
        &h,
        &format!("/console/users?integration={integration_id}"),
    ))
    .await
    .expect("users");
    page.click("#invite-users").await.expect("invite button");
    page.wait_for_path(&format!(
        "/console/users/invite?integration={integration_id}"
    ))
    .await
    .expect("invite page");
    assert_eq!(page.text("h1").await.expect("h1"), "Invite users");
    shot(&page, "users-invite").await;

    // A file over the limit is refused before anything is sent.
    choose_file(&page, "everyone.csv", &"x".repeat(1024 * 1024 + 1)).await;
    page.wait_for("!document.getElementById('csv-size-error').hidden")
        .await
        .expect("size error shown");
    assert!(
        page.text("#csv-size-error")
            .await
            .expect("text")
            .contains("everyone.csv is 1025 KiB; at most 1024 KiB")
    );
    assert_eq!(
        page.eval("document.getElementById('csv').value")
            .await
            .expect("eval"),
        ""
    );

    // A bad file: the lines and reasons, nothing created.
    choose_file(
        &page,
        "bad.csv",
        &format!("email\n{}\nnot an address\n", users[0].1),
    )
    .await;
    page.wait_for("document.getElementById('csv').value.includes('not an address')")
        .await
        .expect("file read");
    page.click("#csv-form button[type=submit]")
        .await
        .expect("check");
    page.wait_for("!!document.getElementById('csv-problems')")
        .await
        .expect("problems listed");
    assert!(
        page.text("#csv-problems")
            .await
            .expect("text")
            .contains("1 valid line(s), 1 invalid")
    );
    shot(&page, "users-invite-csv-errors").await;
    assert_eq!(bulk_jobs(&h).await, 0);

    // A good file: its preview, then the job's page with progress, failures and links.
    let good = format!(
        "email\n{}\n{}\nnobody-here@contoso.com\n",
        users[0].1, users[1].1
    );
    page.eval("document.getElementById('csv').value = ''")
        .await
        .expect("clear");
    choose_file(&page, "pilot.csv", &good).await;
    page.wait_for("document.getElementById('csv').value.includes('nobody-here')")
        .await
        .expect("file read");
    page.click("#csv-form button[type=submit]")
        .await
        .expect("check");
    page.wait_for("!!document.getElementById('csv-preview')")
        .await
        .expect("preview");
    assert!(
        page.text("#csv-preview")
            .await
            .expect("text")
            .contains("3 valid line(s), 0 invalid")
    );
    shot(&page, "users-invite-csv-preview").await;
    page.click("#csv-confirm button").await.expect("invite");
    page.click("#confirm-dialog-ok").await.expect("confirm");
    page.wait_for(
        "location.pathname.startsWith('/console/jobs/') && !!document.getElementById('job-state')",
    )
    .await
    .expect("job page");
    page.wait_for("document.getElementById('job-state').textContent === 'succeeded'")
        .await
        .expect("the job finishes while the page is open");
    assert!(
        page.text("#invite-failures")
            .await
            .expect("failures")
            .contains("nobody-here@contoso.com")
    );
    shot(&page, "job-bulk-invite").await;
    page.goto(&page.url().await.expect("url"))
        .await
        .expect("reload");
    page.click("#show-links").await.expect("show links");
    page.wait_for("!!document.getElementById('invite-links')")
        .await
        .expect("links");
    let first = page
        .eval("document.getElementById('link-1').value")
        .await
        .expect("link");
    assert!(
        first.as_str().is_some_and(|l| l.contains("/invite/")),
        "{first}"
    );
    page.click("button[data-copy-target='link-1']")
        .await
        .expect("copy");
    page.wait_for(
        "document.querySelector(\"button[data-copy-target='link-1']\").textContent === 'Copied'",
    )
    .await
    .expect("copied");
    shot(&page, "job-invite-links").await;

    // A group typed by name: its name and member count before confirming.
    let graph = graph(&h, &integration_id).await;
    let group = graph
        .create_security_group("Browser pilot", None)
        .await
        .expect("group");
    graph
        .add_group_members(&group.id, &[users[2].2.clone(), users[3].2.clone()])
        .await
        .expect("members");
    page.goto(&console_url(
        &h,
        &format!("/console/users/invite?integration={integration_id}"),
    ))
    .await
    .expect("invite page");
    page.type_into("#group", "Browser pilot")
        .await
        .expect("type");
    page.click("#group-form button[type=submit]")
        .await
        .expect("find");
    page.wait_for("!!document.getElementById('group-preview')")
        .await
        .expect("group preview");
    assert_eq!(
        page.text("#group-preview .group-members")
            .await
            .expect("count"),
        "2"
    );
    shot(&page, "users-invite-group-preview").await;
    page.click("#group-preview form button")
        .await
        .expect("invite");
    page.click("#confirm-dialog-ok").await.expect("confirm");
    page.wait_for("location.pathname.startsWith('/console/jobs/') && !!document.getElementById('job-state') && document.getElementById('job-state').textContent === 'succeeded'")
        .await
        .expect("group job done");
    assert!(
        page.text("#invited-count")
            .await
            .expect("count")
            .contains("2 user(s) invited")
    );
    browser.close().await;
    h.stop().await;
}
