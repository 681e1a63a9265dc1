//! The audit log and the job list through the API.

use keybridge_store::{NewJob, Role, Timestamp};
use keybridge_testkit::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{self, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_list_and_export() {
    let h = support::start(Backend::Sqlite).await;
    let response = h
        .http
        .post(h.url("/api/v1/integrations"))
        .bearer_auth(&h.admin_token)
        .header("x-request-id", "create-contoso-1")
        .json(&h.integration_body("Contoso"))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let (status, _) = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci", "role": "auditor"})),
        )
        .await;
    assert_eq!(status, 201);

    let auditor = h.token(Role::Auditor).await;
    let (status, page) = h
        .call_as(&auditor, Method::GET, "/api/v1/audit?limit=2", None)
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["seq"].as_i64() > items[1]["seq"].as_i64(),
        "newest first"
    );
    let next = page["next"].as_i64().expect("more pages");
    let (_, older) = h
        .call_as(
            &auditor,
            Method::GET,
            &format!("/api/v1/audit?limit=500&before={next}"),
            None,
        )
        .await;
    assert!(older["items"].as_array().is_some_and(|o| !o.is_empty()));
    assert!(older["next"].is_null());

    let (_, created) = h
        .call(Method::GET, "/api/v1/audit?action=integration.create", None)
        .await;
    let events = created["items"].as_array().expect("items");
    assert_eq!(events.len(), 1, "{created}");
    assert_eq!(events[0]["request_id"], "create-contoso-1");
    assert_eq!(events[0]["details"]["name"], "Contoso");
    assert!(
        events[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("token:"))
    );

    // Exports: every event, oldest first.
    let total = {
        let (_, all) = h.call(Method::GET, "/api/v1/audit?limit=500", None).await;
        all["items"].as_array().expect("items").len()
    };
    let csv = h
        .http
        .get(h.url("/api/v1/audit/export?format=csv"))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/csv"))
    );
    let text = csv.text().await.expect("text");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("seq,at,actor,action,target,source_addr,request_id,details,prev_hash,hash")
    );
    // Details hold commas inside quotes; count records by their leading sequence numbers.
    let records = text
        .lines()
        .skip(1)
        .filter(|l| {
            l.split(',')
                .next()
                .is_some_and(|s| s.parse::<i64>().is_ok())
        })
        .count();
    assert_eq!(records, total);
    let jsonl = h
        .http
        .get(h.url("/api/v1/audit/export"))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("json")
        .text()
        .await
        .expect("text");
    let seqs: Vec<i64> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("a JSON line")["seq"]
                .as_i64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs.len(), total);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first");

    let (status, body) = h
        .call(Method::GET, "/api/v1/audit?from=yesterday", None)
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("from"));
    let (status, body) = h
        .call(Method::GET, "/api/v1/audit/export?format=xml", None)
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("format"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_retry_and_cancel() {
    let h = support::start(Backend::Sqlite).await;
    // A sync of an integration that does not exist dies at once, with its reason.
    let dead = h
        .store
        .jobs()
        .enqueue(keybridge_server::jobs::directory_sync(
            "no-such-integration",
        ))
        .await
        .expect("queued")
        .id()
        .to_owned();
    let job = h.wait_for_job(&dead).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not found")),
        "{job}"
    );

    let (status, page) = h.call(Method::GET, "/api/v1/jobs?state=dead", None).await;
    assert_eq!(status, 200);
    assert!(
        page["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|j| j["id"] == dead.as_str()))
    );
    let (status, page) = h
        .call(Method::GET, "/api/v1/jobs?kind=status_check", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([]));

    let auditor = h.token(Role::Auditor).await;
    let (status, _) = h
        .call_as(
            &auditor,
            Method::POST,
            &format!("/api/v1/jobs/{dead}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, retried) = h
        .call(Method::POST, &format!("/api/v1/jobs/{dead}/retry"), None)
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(h.wait_for_job(&dead).await["attempts"], 1, "fresh attempts");

    // A job waiting for later can be cancelled; a finished one cannot.
    let later = h
        .store
        .jobs()
        .enqueue(
            NewJob::new("default", "directory_sync", json!({"integration_id": "x"}))
                .run_after(Timestamp::now().plus(std::time::Duration::from_secs(3600))),
        )
        .await
        .expect("queued")
        .id()
        .to_owned();
    let (status, cancelled) = h
        .call(Method::POST, &format!("/api/v1/jobs/{later}/cancel"), None)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (status, body) = h
        .call(Method::POST, &format!("/api/v1/jobs/{dead}/cancel"), None)
        .await;
    assert_error(status, &body, 409, "job_state", None);
    let (status, body) = h.call(Method::GET, "/api/v1/jobs?state=done", None).await;
    assert_error(status, &body, 422, "invalid_input", Some("state"));
    let (status, body) = h.call(Method::GET, "/api/v1/jobs/nope", None).await;
    assert_error(status, &body, 404, "not_found", None);
    h.stop().await;
}
