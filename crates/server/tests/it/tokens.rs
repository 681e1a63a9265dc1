//! Admin API tokens: 401 for a missing, malformed, unknown, expired or revoked token; 403 for
//! a role too low; creation shows the token once.

use std::time::Duration;

use keybridge_store::{Role, Timestamp};
use keybridge_testkit::Backend;
use reqwest::Method;

use crate::support::{self, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_authentication_and_roles() {
    let h = support::start(Backend::Sqlite).await;
    let path = "/api/v1/integrations";

    // Missing.
    let response = h.http.get(h.url(path)).send().await.expect("sent");
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .is_ok_and(|v| v.starts_with("Bearer"))
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_error(401, &body, 401, "missing_token", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("keybridge admin token create")),
        "{body}"
    );

    // Not the Bearer scheme.
    let response = h
        .http
        .get(h.url(path))
        .header("authorization", format!("Basic {}", h.admin_token))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);

    // Wrong token, right shape.
    let (status, body) = h
        .call_as(
            "kbt_thisisnotarealtokenatallbutlooksright",
            Method::GET,
            path,
            None,
        )
        .await;
    assert_error(status, &body, 401, "invalid_token", None);
    // Not even our prefix.
    let (status, body) = h.call_as("ghp_abc", Method::GET, path, None).await;
    assert_error(status, &body, 401, "invalid_token", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("kbt_")),
        "{body}"
    );

    // Expired.
    let (_, expired) = h
        .store
        .api_tokens()
        .create(
            "expired",
            Role::Admin,
            "test",
            Some(Timestamp::now().minus(Duration::from_secs(1))),
        )
        .await
        .expect("token");
    let (status, body) = h.call_as(&expired, Method::GET, path, None).await;
    assert_error(status, &body, 401, "invalid_token", None);

    // Roles: an auditor reads, but may not change; a helpdesk token may not manage tokens.
    let auditor = h.token(Role::Auditor).await;
    let (status, _) = h.call_as(&auditor, Method::GET, path, None).await;
    assert_eq!(status, 200);
    let (status, body) = h
        .call_as(
            &auditor,
            Method::POST,
            path,
            Some(h.integration_body("Contoso")),
        )
        .await;
    assert_error(status, &body, 403, "forbidden", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("needs the role admin") && m.contains("auditor")),
        "{body}"
    );
    let helpdesk = h.token(Role::Helpdesk).await;
    let (status, body) = h
        .call_as(&helpdesk, Method::GET, "/api/v1/tokens", None)
        .await;
    assert_error(status, &body, 403, "forbidden", None);

    // Create through the API: shown once, listed without the secret, then revoked.
    let (status, created) = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(
                serde_json::json!({"name": "ci export", "role": "auditor", "expires_in_days": 30}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["token"].as_str().expect("token text").to_owned();
    assert!(secret.starts_with("kbt_"), "{secret}");
    assert_eq!(created["api_token"]["role"], "auditor");
    assert!(created["api_token"]["expires_at"].is_string());
    let (status, listed) = h.call(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains(&secret),
        "a secret leaked into the list"
    );
    assert!(
        listed
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t["name"] == "ci export"))
    );
    let (status, _) = h.call_as(&secret, Method::GET, path, None).await;
    assert_eq!(status, 200, "the new token works");
    let id = created["api_token"]["id"].as_str().expect("id");
    let (status, _) = h
        .call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = h.call_as(&secret, Method::GET, path, None).await;
    assert_error(status, &body, 401, "invalid_token", None);
    let (status, body) = h
        .call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_error(status, &body, 404, "not_found", None);

    // Bad input.
    let (status, body) = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "x", "role": "root"})),
        )
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("role"));
    let (status, body) = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "x", "role": "admin", "expires_in_days": 0})),
        )
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("expires_in_days"));

    // Every change is audited with the request id.
    let events = h
        .store
        .audit()
        .list(&Default::default(), None, 100)
        .await
        .expect("audit");
    let revoke = events
        .iter()
        .find(|e| e.action == "api_token.revoke")
        .expect("revocation audited");
    assert!(revoke.request_id.as_deref().is_some_and(|r| !r.is_empty()));
    assert_eq!(revoke.source_addr.as_deref(), Some("127.0.0.1"));
    h.stop().await;
}
