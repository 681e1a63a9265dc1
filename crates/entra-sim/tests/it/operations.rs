//! Faults, throttling, counters, the control token, and state across restarts.

use reqwest::Method;
use serde_json::json;

use crate::common::{client_for, graph_error, start, start_with};

#[tokio::test]
async fn control_api_needs_its_token() {
    let h = start(2).await;
    let response = h
        .http
        .get(format!("{}/counters", h.sim.info().control_url))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("control");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn faults_throttle_bursts_errors_drops_and_counters() {
    let h = start(5).await;
    let token = h.token().await;
    let (status, _) = h
        .control(Method::PUT, "/faults", Some(json!({"rules": [
            {"path": "/users", "method": "GET", "kind": "throttle", "retryAfter": 7, "count": 2},
            {"path": "/groups", "kind": "error", "status": 503, "retryAfter": 1, "count": 1},
            {"path": "/v1.0/directoryObjects", "kind": "drop", "count": 1},
        ]})))
        .await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        let (status, headers, body) = h.get("/v1.0/users", &token).await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "7");
        assert_eq!(graph_error(&body), "TooManyRequests");
        assert_eq!(body["error"]["innerError"]["status"], "429");
    }
    assert_eq!(
        h.get("/v1.0/users", &token).await.0,
        200,
        "the burst is spent"
    );
    let (status, headers, body) = h.get("/v1.0/groups", &token).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    graph_error(&body);
    let dropped = h
        .http
        .post(format!(
            "{}/directoryObjects/getByIds",
            h.sim.info().graph_url
        ))
        .bearer_auth(&token)
        .json(&json!({"ids": []}))
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the connection was dropped");

    let (_, counters) = h.control(Method::GET, "/counters", None).await;
    assert_eq!(counters["throttled"], 2);
    assert_eq!(counters["dropped"], 1);
    assert_eq!(counters["requests"]["GET /v1.0/users"]["429"], 2);
    assert_eq!(counters["requests"]["GET /v1.0/users"]["200"], 1);
    assert_eq!(counters["requests"]["GET /v1.0/groups"]["503"], 1);
}

/// POSTs a fresh credential for `uid` through Graph; `None` when the connection broke.
async fn post_new_credential(
    h: &crate::common::Harness,
    token: &str,
    uid: &str,
) -> (String, Option<u16>) {
    let (status, _, options) = h
        .get(
            &format!("/v1.0/users/{uid}/authentication/fido2Methods/creationOptions"),
            token,
        )
        .await;
    assert_eq!(status, 200, "{options}");
    let made = crate::registration::authenticator(json!({"op": "create",
        "options": options["publicKey"], "fmt": "packed-self", "alg": -7,
        "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8"}))
    .await;
    let credential_id = made["credential_id"].as_str().expect("id").to_owned();
    let sent = h
        .http
        .post(format!(
            "{}/users/{uid}/authentication/fido2Methods",
            h.sim.info().graph_url
        ))
        .bearer_auth(token)
        .json(&json!({"displayName": "phone", "publicKeyCredential": made["credential"]}))
        .send()
        .await;
    let status = match sent {
        Err(_) => None,
        Ok(response) => {
            let status = response.status().as_u16();
            response.bytes().await.ok().map(|_| status)
        }
    };
    (credential_id, status)
}

/// Ids of the user's FIDO2 methods as Graph lists them.
async fn fido2_method_ids(h: &crate::common::Harness, token: &str, uid: &str) -> Vec<String> {
    let (status, _, body) = h
        .get(
            &format!("/v1.0/users/{uid}/authentication/fido2Methods"),
            token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn drop_loses_the_request_and_drop_after_loses_only_the_answer() {
    let h = start(3).await;
    let token = h.token().await;
    let (_, _, users) = h.get("/v1.0/users?$select=id,userType", &token).await;
    let uid = users["value"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["userType"] == "Member")
        .expect("a member")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/users/{uid}/authentication/fido2Methods");
    let before = fido2_method_ids(&h, &token, &uid).await;

    h.control(
        Method::PUT,
        "/faults",
        Some(json!({"rules": [
            {"path": path, "method": "POST", "kind": "drop", "count": 1},
        ]})),
    )
    .await;
    let (lost, status) = post_new_credential(&h, &token, &uid).await;
    assert_eq!(status, None, "the connection was dropped");
    assert!(
        !fido2_method_ids(&h, &token, &uid)
            .await
            .iter()
            .any(|id| id.starts_with(&lost)),
        "drop: the request was never handled"
    );

    h.control(
        Method::PUT,
        "/faults",
        Some(json!({"rules": [
            {"path": path, "method": "POST", "kind": "dropAfter", "count": 1},
        ]})),
    )
    .await;
    let (made, status) = post_new_credential(&h, &token, &uid).await;
    assert_eq!(status, None, "the answer never came");
    let after = fido2_method_ids(&h, &token, &uid).await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(
        after.iter().filter(|id| id.starts_with(&made)).count(),
        1,
        "dropAfter: the method was registered once"
    );

    let (_, counters) = h.control(Method::GET, "/counters", None).await;
    assert_eq!(counters["dropped"], 2);
    assert_eq!(counters["faultsInjected"], 2);
    assert!(
        counters["requests"]
            .as_object()
            .expect("requests")
            .keys()
            .all(|endpoint| !endpoint.starts_with("POST /v1.0")),
        "dropped requests are not counted as answered: {counters}"
    );
}

#[tokio::test]
async fn drop_after_in_a_batch_item_makes_the_write_and_answers_504() {
    let h = start(3).await;
    let token = h.token().await;
    h.control(
        Method::PUT,
        "/faults",
        Some(json!({"rules": [
            {"path": "/groups", "method": "POST", "kind": "dropAfter", "count": 1},
        ]})),
    )
    .await;
    let batch = json!({"requests": [{"id": "1", "method": "POST", "url": "/groups",
        "headers": {"Content-Type": "application/json"},
        "body": {"displayName": "Lost answer", "mailEnabled": false, "mailNickname": "lost-answer",
                 "securityEnabled": true}}]});
    let (status, _, body) = h
        .graph(Method::POST, "/v1.0/$batch", &token, Some(batch))
        .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["responses"][0];
    assert_eq!(item["status"], 504, "{body}");
    assert_eq!(item["body"]["error"]["code"], "GatewayTimeout");
    let filter = "displayName%20eq%20%27Lost%20answer%27";
    let (_, _, found) = h
        .get(&format!("/v1.0/groups?$filter={filter}"), &token)
        .await;
    assert_eq!(
        found["value"].as_array().expect("value").len(),
        1,
        "{found}"
    );
}

#[tokio::test]
async fn several_rules_on_one_path_each_apply_in_order() {
    let h = start(3).await;
    let token = h.token().await;
    let (status, _) = h
        .control(Method::PUT, "/faults", Some(json!({"rules": [
            {"path": "/groups", "method": "POST", "kind": "error", "status": 502, "count": 1},
            {"path": "/groups", "method": "GET", "kind": "throttle", "retryAfter": 4, "count": 1},
            {"path": "/groups", "kind": "error", "status": 503, "count": 1},
        ]})))
        .await;
    assert_eq!(status, 200);
    let (status, headers, _) = h.get("/v1.0/groups", &token).await;
    assert_eq!(status, 429, "the first rule for GET");
    assert_eq!(headers["retry-after"], "4");
    assert_eq!(
        h.get("/v1.0/groups", &token).await.0,
        503,
        "the next rule that matches GET, not spent by the first"
    );
    assert_eq!(h.get("/v1.0/groups", &token).await.0, 200, "all spent");
    let group = json!({"displayName": "Turns", "mailEnabled": false, "mailNickname": "turns",
                       "securityEnabled": true});
    let post = |body: serde_json::Value| h.graph(Method::POST, "/v1.0/groups", &token, Some(body));
    assert_eq!(post(group.clone()).await.0, 502, "the rule for POST");
    assert_eq!(post(group).await.0, 201);
    let (_, rules) = h.control(Method::GET, "/faults", None).await;
    let counts: Vec<_> = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["count"].clone())
        .collect();
    assert_eq!(counts, [json!(0), json!(0), json!(0)]);
}

#[tokio::test]
async fn slow_responses_and_latency() {
    let h = start(2).await;
    let token = h.token().await;
    h.control(
        Method::PUT,
        "/faults",
        Some(json!({"rules": [{"path": "/users", "kind": "slow", "delayMs": 400}]})),
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(h.get("/v1.0/users", &token).await.0, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    h.control(Method::DELETE, "/faults", None).await;
    h.control(Method::PUT, "/latency", Some(json!({"ms": 300})))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(h.get("/v1.0/groups", &token).await.0, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn graph_throttling_follows_the_documented_quota() {
    // A tenant under 50 users: 3,500 RU per 10 s. GET /users costs 2; with $select and $top < 20
    // it costs 2 - 1 - 1, raised to the minimum of 1.
    let h = start_with(10, |c| {
        c.throttle = keybridge_entra_sim::ThrottleMode::Graph
    })
    .await;
    let token = h.token().await;
    let (status, headers, _) = h.get("/v1.0/users", &token).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-ms-resource-unit"], "2");
    let (_, headers, _) = h.get("/v1.0/users?$select=id&$top=5", &token).await;
    assert_eq!(headers["x-ms-resource-unit"], "1");
    // Spend a fresh budget with GETs of the group list (1 RU each), 50 at a time. The budget
    // is per 10 s of real time: on a machine too busy to send 3,500 requests in that window the
    // attempt is repeated with a fresh window.
    let mut throttled = None;
    for _attempt in 0..3 {
        h.sim.set_throttle(keybridge_entra_sim::ThrottleMode::Graph);
        let window = std::time::Instant::now();
        let mut sent = 0u32;
        while throttled.is_none() && window.elapsed() < std::time::Duration::from_secs(9) {
            let mut tasks = Vec::new();
            for _ in 0..50 {
                let http = h.http.clone();
                let url = format!("{}/groups", h.sim.info().graph_url);
                let token = token.clone();
                tasks.push(tokio::spawn(async move {
                    http.get(url).bearer_auth(token).send().await.expect("get")
                }));
            }
            for t in tasks {
                let r = t.await.expect("join");
                sent += 1;
                if r.status() == 429 && throttled.is_none() {
                    throttled = Some((sent, r.headers().clone()));
                }
            }
        }
        if throttled.is_some() && window.elapsed() < std::time::Duration::from_secs(10) {
            break;
        }
        throttled = None;
    }
    let (at, headers) = throttled.expect("throttled within the budget");
    assert!(
        (3_450..=3_550).contains(&at),
        "throttled after {at} requests"
    );
    assert!(
        headers["retry-after"]
            .to_str()
            .expect("ra")
            .parse::<u64>()
            .expect("n")
            <= 10
    );
    assert_eq!(
        headers["x-ms-throttle-information"],
        "ResourceUnitLimitExceeded"
    );
    assert!(
        headers["x-ms-throttle-scope"]
            .to_str()
            .expect("scope")
            .starts_with("Tenant_Application/Read/")
    );
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = keybridge_entra_sim::SimConfig::new(dir.path().to_path_buf());
    config.users = 7;
    let sim = keybridge_entra_sim::EntraSim::start(config.clone())
        .await
        .expect("start");
    let first = sim.info().clone();
    let http = client_for(&first.ca_pem);
    let response = http
        .post(format!("{}/users", first.control_url))
        .bearer_auth(&first.control_token)
        .json(&json!({"userPrincipalName": "restart.check@contoso.com", "displayName": "Restart Check"}))
        .send()
        .await
        .expect("add user");
    assert_eq!(response.status(), 201);
    sim.shutdown().await.expect("shutdown saves");

    config.users = 500; // ignored: the directory already holds a tenant
    let sim = keybridge_entra_sim::EntraSim::start(config)
        .await
        .expect("restart");
    let second = sim.info().clone();
    assert_eq!(second.tenant_id, first.tenant_id);
    assert_eq!(second.client_secret, first.client_secret);
    assert_eq!(second.control_token, first.control_token);
    let http = client_for(&second.ca_pem);
    let response = http
        .get(format!(
            "{}/users/restart.check@contoso.com",
            second.control_url
        ))
        .bearer_auth(&second.control_token)
        .send()
        .await
        .expect("get user");
    assert_eq!(response.status(), 200);
    let state: serde_json::Value = http
        .get(format!("{}/state", second.control_url))
        .bearer_auth(&second.control_token)
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(state["users"], 8);
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn token_endpoint_faults_use_the_aadsts_shape() {
    let h = start(2).await;
    h.control(Method::PUT, "/faults", Some(json!({"rules": [{"path": "/", "method": "POST", "kind": "error", "status": 503, "retryAfter": 3, "count": 1}]}))).await;
    let info = h.sim.info();
    let response = h
        .http
        .post(&info.token_endpoint)
        .form(&[
            ("client_id", info.client_id.to_string()),
            ("client_secret", info.client_secret.clone()),
            ("scope", "https://graph.microsoft.com/.default".to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "3");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["error_codes"], json!([90033]));
    // The rule is spent: the next request gets a token.
    assert!(!h.token().await.is_empty());
}

#[tokio::test]
async fn batch_items_are_faulted_and_throttled_alone() {
    let h = start(3).await;
    let token = h.token().await;
    h.control(Method::PUT, "/faults", Some(json!({"rules": [{"path": "/groups", "kind": "throttle", "retryAfter": 11, "count": 1}]}))).await;
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/groups"},
        {"id": "2", "method": "GET", "url": "/users?$top=1"},
    ]});
    let (status, _, body) = h
        .graph(Method::POST, "/v1.0/$batch", &token, Some(batch))
        .await;
    assert_eq!(status, 200);
    let responses = body["responses"].as_array().expect("responses");
    let item = |id: &str| {
        responses
            .iter()
            .find(|r| r["id"] == id)
            .expect("item")
            .clone()
    };
    assert_eq!(item("1")["status"], 429);
    assert_eq!(item("1")["headers"]["Retry-After"], "11");
    assert_eq!(item("1")["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(item("2")["status"], 200);
    let (_, counters) = h.control(Method::GET, "/counters", None).await;
    assert_eq!(
        counters["requests"]["$batch item GET /v1.0/groups"]["429"],
        1
    );
}

#[tokio::test]
async fn strict_throttling_paces_authentication_method_reads() {
    let h = start_with(3, |c| {
        c.throttle = keybridge_entra_sim::ThrottleMode::Strict
    })
    .await;
    let token = h.token().await;
    let (_, _, users) = h.get("/v1.0/users?$select=id&$top=1", &token).await;
    let uid = users["value"][0]["id"].as_str().expect("id").to_owned();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, headers, _) = h
            .get(
                &format!("/v1.0/users/{uid}/authentication/fido2Methods"),
                &token,
            )
            .await;
        statuses.push(status);
        if status == 429 {
            assert!(headers.contains_key("retry-after"));
        }
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 200, 429],
        "5 requests per 10 s"
    );
    // Other endpoints are not held back by that budget.
    assert_eq!(h.get("/v1.0/groups", &token).await.0, 200);
}

#[tokio::test]
async fn changes_reach_the_snapshot_without_a_shutdown() {
    // What a `kill -9` would leave behind: the debounced snapshot.
    let h = start(3).await;
    let (status, _) = h
        .control(Method::POST, "/users", Some(json!({"userPrincipalName": "snapshot.check@contoso.com", "displayName": "Snapshot Check"})))
        .await;
    assert_eq!(status, 201);
    let path = h.data_dir.path().join("state.json");
    let mut found = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let text = std::fs::read_to_string(&path).expect("snapshot");
        if text.contains("snapshot.check@contoso.com") {
            found = true;
            break;
        }
    }
    assert!(found, "the change was written within 3 s");
    assert!(
        !h.data_dir.path().join("state.json.tmp").exists(),
        "no temporary file left"
    );
}

#[tokio::test]
async fn seed_file_adds_users_groups_and_grants() {
    let files = tempfile::tempdir().expect("dir");
    let seed = files.path().join("seed.json");
    std::fs::write(
        &seed,
        json!({
            "grantedRoles": ["User.Read.All", "GroupMember.Read.All"],
            "users": [{"userPrincipalName": "ana@contoso.com", "displayName": "Ana Lima", "mail": "ana@contoso.com",
                       "fido2Methods": [{"aaGuid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "model": "YubiKey 5 Series"}]},
                      {"userPrincipalName": "guest_x.example#EXT#@contoso.onmicrosoft.com", "displayName": "Guest", "userType": "Guest", "accountEnabled": false}],
            "groups": [{"displayName": "Pilot", "members": ["ana@contoso.com"]}]
        })
        .to_string(),
    )
    .expect("write seed");
    let h = start_with(0, |c| c.seed = Some(seed.clone())).await;
    let token = h.token().await;
    let (status, _, ana) = h
        .get(
            "/v1.0/users/ana@contoso.com?$select=id,mail,accountEnabled",
            &token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ana["mail"], "ana@contoso.com");
    let (_, _, all) = h.get("/v1.0/users?$select=id", &token).await;
    assert_eq!(all["value"].as_array().expect("v").len(), 2);
    let filter =
        url::form_urlencoded::byte_serialize(b"displayName eq 'Pilot'").collect::<String>();
    let (_, _, groups) = h
        .get(&format!("/v1.0/groups?$filter={filter}"), &token)
        .await;
    let gid = groups["value"][0]["id"].as_str().expect("group").to_owned();
    let (_, _, members) = h
        .get(&format!("/v1.0/groups/{gid}/members?$select=id"), &token)
        .await;
    assert_eq!(members["value"][0]["id"], ana["id"]);
    // Only the seeded grants: methods cannot be read.
    let (status, _, _) = h
        .get(
            "/v1.0/users/ana@contoso.com/authentication/fido2Methods",
            &token,
        )
        .await;
    assert_eq!(status, 403);

    let broken = files.path().join("broken.json");
    std::fs::write(&broken, r#"{"users": [{"displayName": "no UPN"}]}"#).expect("write");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = keybridge_entra_sim::SimConfig::new(dir.path().to_path_buf());
    config.seed = Some(broken);
    let error = keybridge_entra_sim::EntraSim::start(config)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, keybridge_entra_sim::StartError::Seed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("userPrincipalName"), "{error}");
}

#[tokio::test]
async fn plain_http_only_on_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = keybridge_entra_sim::SimConfig::new(dir.path().to_path_buf());
    config.plain_http = true;
    config.listen = "0.0.0.0:0".parse().expect("addr");
    let error = keybridge_entra_sim::EntraSim::start(config.clone())
        .await
        .expect_err("refused");
    assert!(
        matches!(error, keybridge_entra_sim::StartError::Listen { .. }),
        "{error}"
    );
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let sim = keybridge_entra_sim::EntraSim::start(config)
        .await
        .expect("loopback");
    assert!(sim.info().token_endpoint.starts_with("http://localhost:"));
    let response = reqwest::get(&sim.info().openid_configuration)
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn in_process_controls_match_the_control_api() {
    let h = start(3).await;
    h.sim.set_granted_roles(&["Group.Read.All"]);
    let token = h.token().await;
    assert_eq!(h.get("/v1.0/users", &token).await.0, 403);
    assert_eq!(h.get("/v1.0/groups", &token).await.0, 200);
    h.sim.set_faults(vec![
        serde_json::from_value(json!({"path": "/groups", "kind": "error", "status": 504}))
            .expect("rule"),
    ]);
    assert_eq!(h.get("/v1.0/groups", &token).await.0, 504);
    h.sim.set_faults(Vec::new());
    h.sim.set_latency(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert_eq!(h.get("/v1.0/groups", &token).await.0, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    let counters = h.sim.counters();
    assert_eq!(counters.requests["GET /v1.0/groups"][&504], 1);
    assert_eq!(counters.requests["GET /v1.0/groups"][&200], 2);
}

#[tokio::test]
async fn new_groups_can_lag_behind_like_replication() {
    let h = start(3).await;
    let token = h.token().await;
    let (status, _) = h
        .control(
            Method::PUT,
            "/replication",
            Some(json!({"groupDelayMs": 60_000})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, _, group) = h
        .graph(Method::POST, "/v1.0/groups", &token, Some(json!({"displayName": "Fresh", "mailEnabled": false, "mailNickname": "fresh", "securityEnabled": true})))
        .await;
    let gid = group["id"].as_str().expect("id").to_owned();
    let (_, _, users) = h.get("/v1.0/users?$select=id&$top=1", &token).await;
    let uid = users["value"][0]["id"].as_str().expect("id").to_owned();
    let reference =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{uid}")});
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/groups/{gid}/members/$ref"),
            &token,
            Some(reference.clone()),
        )
        .await;
    assert_eq!(status, 404, "not replicated yet");
    assert_eq!(graph_error(&body), "Request_ResourceNotFound");
    // A minute later (on entra-sim's clock) the group has replicated.
    h.control(Method::PUT, "/clock", Some(json!({"offsetSeconds": 61})))
        .await;
    let token = h.token().await;
    let (status, _, _) = h
        .graph(
            Method::POST,
            &format!("/v1.0/groups/{gid}/members/$ref"),
            &token,
            Some(reference),
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn files_holding_secrets_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let h = start(1).await;
    let dir = h.data_dir.path().to_path_buf();
    h.sim.shutdown().await.expect("shutdown saves the state");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("data dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // The state holds the control token and the app's client secrets.
        let secret =
            path.file_name().is_some_and(|n| n == "state.json") || text.contains("PRIVATE KEY");
        if secret {
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
            checked.push(path);
        }
    }
    assert!(
        checked.iter().any(|p| p.ends_with("state.json")),
        "{checked:?}"
    );
}
