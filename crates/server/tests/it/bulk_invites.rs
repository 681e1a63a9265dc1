//! Bulk invitations (issue 6, lifecycle 5): a CSV file checked whole, an Entra group read by
//! the job, one result per user, a job run again after a crash invites nobody twice, and the
//! links downloaded by an admin only.

use keybridge_graph::GraphClient;
use keybridge_store::{JobFilter, Role, Timestamp};
use keybridge_testkit::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::provisioning::integration;
use crate::support::{self, Harness, assert_error};

pub(crate) async fn graph(h: &Harness, integration_id: &str) -> GraphClient {
    let integration = h
        .store
        .integrations()
        .get(integration_id)
        .await
        .expect("integration");
    h.server
        .app()
        .graph()
        .for_integration(&integration)
        .expect("client")
}

/// Active, pending members of the verified domain: (user id, username, Entra object id).
pub(crate) async fn members(
    h: &Harness,
    integration_id: &str,
    n: usize,
) -> Vec<(String, String, String)> {
    let (status, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let found: Vec<(String, String, String)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|u| {
            u["entra_status"] == "active"
                && u["state"] == "pending"
                && u["username"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("@contoso.com"))
        })
        .take(n)
        .map(|u| {
            (
                u["id"].as_str().expect("id").to_owned(),
                u["username"].as_str().expect("username").to_owned(),
                u["entra_object_id"].as_str().expect("object id").to_owned(),
            )
        })
        .collect();
    assert_eq!(found.len(), n, "the seeded tenant has {n} such users");
    found
}

pub(crate) async fn post_csv(h: &Harness, integration_id: &str, csv: &str) -> (u16, Value) {
    let response = h
        .http
        .post(h.url(&format!(
            "/api/v1/integrations/{integration_id}/invites/bulk"
        )))
        .bearer_auth(&h.admin_token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

async fn invites_of(h: &Harness, user_id: &str) -> usize {
    h.store
        .invites()
        .list_for_user(user_id)
        .await
        .expect("invites")
        .len()
}

pub(crate) async fn results(h: &Harness, job_id: &str) -> Vec<Value> {
    let (status, body) = h
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{job_id}/invite-results"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("results").clone()
}

/// Puts a finished job back in the queue as a crash would leave it: running under a lease
/// that expired, so a worker takes it over and runs the handler again from the start.
pub(crate) async fn as_if_crashed(h: &Harness, job_id: &str) {
    sqlx::query(
        "UPDATE jobs SET state = 'running', lease_owner = 'killed-instance', available_at = 0, \
         finished_at = NULL WHERE id = $1",
    )
    .bind(job_id)
    .execute(h.store.raw_pool())
    .await
    .expect("job reset");
}

pub(crate) async fn wait_until_run_again(h: &Harness, job_id: &str) -> Value {
    for _ in 0..600 {
        let job = h.store.jobs().get(job_id).await.expect("job");
        if job.state.as_str() == "succeeded" && job.attempts >= 2 {
            return h.wait_for_job(job_id).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {job_id} was not taken over");
}

async fn bulk_invite_by_csv(backend: Backend) {
    let h = support::start(backend).await;
    let integration_id = integration(&h).await;
    let users = members(&h, &integration_id, 2).await;
    let (alice, bob) = (&users[0], &users[1]);

    // A bad file is refused whole, every bad line named, and nobody is invited.
    let bad = format!(
        "name,email\nAlice,{}\nNobody,not-an-address\nBob,{}\nAgain,{}\n",
        alice.1, bob.1, alice.1
    );
    let (status, body) = post_csv(&h, &integration_id, &bad).await;
    assert_error(status, &body, 422, "invalid_csv", Some("csv"));
    let lines: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(lines, ["line 3", "line 5"], "{body}");
    assert_eq!(invites_of(&h, &alice.0).await, 0);
    assert_eq!(invites_of(&h, &bob.0).await, 0);
    let filter = JobFilter {
        kind: Some("bulk_invite".to_owned()),
        ..Default::default()
    };
    assert!(
        h.store
            .jobs()
            .list(&filter, None, 10)
            .await
            .expect("jobs")
            .is_empty(),
        "a refused file queues nothing"
    );

    // A good file: two users invited, an address the directory does not hold reported.
    let good = format!("email\n{}\n{}\nghost.user@contoso.com\n", alice.1, bob.1);
    let (status, queued) = post_csv(&h, &integration_id, &good).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["users"], 3);
    let job_id = queued["job_id"].as_str().expect("job").to_owned();
    let job = h.wait_for_job(&job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        (
            &job["progress_done"],
            &job["progress_failed"],
            &job["progress_total"]
        ),
        (&json!(2), &json!(1), &json!(3)),
        "{job}"
    );
    let first = results(&h, &job_id).await;
    let outcomes: Vec<(&str, &str)> = first
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (alice.1.as_str(), "invited"),
            (bob.1.as_str(), "invited"),
            ("ghost.user@contoso.com", "failed")
        ]
    );
    assert!(
        first[2]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not in keybridge's copy of the directory")),
        "{first:?}"
    );
    assert!(
        !Value::Array(first.clone()).to_string().contains("/invite/"),
        "no links in results"
    );

    // Killed and run again: nobody is invited a second time, the links stay valid.
    as_if_crashed(&h, &job_id).await;
    let again = wait_until_run_again(&h, &job_id).await;
    assert_eq!(
        (&again["progress_done"], &again["progress_failed"]),
        (&json!(2), &json!(1)),
        "{again}"
    );
    assert_eq!(invites_of(&h, &alice.0).await, 1);
    assert_eq!(invites_of(&h, &bob.0).await, 1);
    assert_eq!(results(&h, &job_id).await, first);

    // The links: admins only, as CSV, every download audited.
    let auditor = h.token(Role::Auditor).await;
    let (status, body) = h
        .call_as(
            &auditor,
            Method::GET,
            &format!("/api/v1/jobs/{job_id}/invite-links"),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let helpdesk = h.token(Role::Helpdesk).await;
    let (status, _) = h
        .call_as(
            &helpdesk,
            Method::GET,
            &format!("/api/v1/jobs/{job_id}/invite-links"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let response = h
        .http
        .get(h.url(&format!("/api/v1/jobs/{job_id}/invite-links")))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/csv")
    );
    let csv = response.text().await.expect("body");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert_eq!(rows[0], "email,link,expires_at");
    for (row, user) in rows[1..].iter().zip([alice, bob]) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[0], user.1);
        let token = fields[1]
            .rsplit_once("/invite/")
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("link {row}"));
        let invite = h
            .store
            .invites()
            .check(token, Timestamp::now())
            .await
            .expect("the downloaded link is a live invite");
        assert_eq!(invite.user_id, user.0);
        assert_eq!(fields[2], invite.expires_at.to_rfc3339());
    }
    let (_, audit) = h
        .call(Method::GET, "/api/v1/audit?action=invites.bulk.links", None)
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");
    // The links are sealed at rest: the database holds no link in clear.
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT link_enc FROM bulk_invite_results WHERE link_enc IS NOT NULL")
            .fetch_all(h.store.raw_pool())
            .await
            .expect("rows");
    assert_eq!(stored.len(), 2);
    let token = rows[1]
        .split(',')
        .nth(1)
        .and_then(|l| l.rsplit_once("/invite/"))
        .map(|(_, t)| t)
        .expect("token");
    assert!(
        stored
            .iter()
            .all(|s| !String::from_utf8_lossy(s).contains(token))
    );

    // Wrong input: another content type, a group id that is not a GUID.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{integration_id}/invites/bulk"),
            Some(json!({"group": "everyone"})),
        )
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("group"));
    let response = h
        .http
        .post(h.url(&format!(
            "/api/v1/integrations/{integration_id}/invites/bulk"
        )))
        .bearer_auth(&h.admin_token)
        .header("content-type", "text/plain")
        .body("email\n")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 415);
    h.stop().await;
}

async fn bulk_invite_by_group(backend: Backend) {
    let h = support::start(backend).await;
    // A user of another domain, which restrict-domains will leave out.
    assert_eq!(
        h.control(
            Method::POST,
            "/users",
            Some(json!({"userPrincipalName": "outsider@fabrikam.example", "displayName": "Out Sider"}))
        )
        .await,
        201
    );
    let integration_id = integration(&h).await;
    let mut users = members(&h, &integration_id, 2).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?search=outsider"),
            None,
        )
        .await;
    let outsider = &list["items"][0];
    assert_eq!(outsider["username"], "outsider@fabrikam.example", "{list}");
    users.push((
        outsider["id"].as_str().expect("id").to_owned(),
        outsider["username"].as_str().expect("username").to_owned(),
        outsider["entra_object_id"]
            .as_str()
            .expect("object id")
            .to_owned(),
    ));
    let graph = graph(&h, &integration_id).await;
    let group = graph
        .create_security_group("Passkey pilot", None)
        .await
        .expect("group created in entra-sim");
    let ids: Vec<String> = users.iter().map(|u| u.2.clone()).collect();
    graph
        .add_group_members(&group.id, &ids)
        .await
        .expect("members added");
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{integration_id}/restrict-domains"),
            Some(json!({"domains": ["contoso.com"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{integration_id}/invites/bulk"),
            Some(json!({"group": group.id})),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let job_id = queued["job_id"].as_str().expect("job").to_owned();
    let job = h.wait_for_job(&job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        (
            &job["progress_done"],
            &job["progress_failed"],
            &job["progress_total"]
        ),
        (&json!(2), &json!(1), &json!(3)),
        "{job}"
    );
    let got = results(&h, &job_id).await;
    let by_user = |user_id: &str| {
        got.iter()
            .find(|r| r["user_id"] == user_id)
            .cloned()
            .unwrap_or_else(|| panic!("no result for {user_id}: {got:?}"))
    };
    assert_eq!(by_user(&users[0].0)["outcome"], "invited");
    assert_eq!(by_user(&users[1].0)["outcome"], "invited");
    let outsider = &users[2];
    let refused = by_user(&outsider.0);
    assert_eq!(refused["outcome"], "failed");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is not one of this integration's restricted domains")),
        "{refused}"
    );
    assert_eq!(invites_of(&h, &users[0].0).await, 1);
    assert_eq!(invites_of(&h, &outsider.0).await, 0);

    // Run again as after a crash: the group is read again, nobody is invited twice.
    as_if_crashed(&h, &job_id).await;
    wait_until_run_again(&h, &job_id).await;
    assert_eq!(invites_of(&h, &users[0].0).await, 1);
    assert_eq!(invites_of(&h, &users[1].0).await, 1);
    assert_eq!(results(&h, &job_id).await, got);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_invite_by_csv_on_sqlite() {
    bulk_invite_by_csv(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_invite_by_csv_on_postgres() {
    bulk_invite_by_csv(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_invite_by_group_on_sqlite() {
    bulk_invite_by_group(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_invite_by_group_on_postgres() {
    bulk_invite_by_group(Backend::Postgres).await;
}
