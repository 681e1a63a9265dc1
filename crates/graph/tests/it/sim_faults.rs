//! Throttling, injected server errors and dropped connections from entra-sim.

use keybridge_graph::{GraphError, odata::fido2_method_id};
use reqwest::Method;
use serde_json::json;

use crate::{passkey, sim};

const AAGUID: &str = "9c835346-796b-4c27-8898-d6032f515cc5";

/// The ids of the tenant's members (guests left out).
async fn members(sim: &sim::Sim) -> Vec<String> {
    let client = sim.client();
    let users = client
        .list_users(&["id", "userType"], 999)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    users
        .into_iter()
        .filter(|u| !u.is_guest())
        .map(|u| u.id)
        .collect()
}

/// The passkeys entra-sim holds for `user` that match, read through its control API rather
/// than through the client.
async fn held_passkeys(
    sim: &sim::Sim,
    user: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let held = sim
        .control(Method::GET, &format!("/users/{user}"), None)
        .await;
    held["fido2Methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| matches(m))
        .cloned()
        .collect()
}

async fn first_user(sim: &sim::Sim) -> String {
    members(sim).await.remove(0)
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let sim = sim::start().await;
    let user = first_user(&sim).await;
    sim.faults(json!([{"path": "/users", "method": "GET", "kind": "throttle", "retryAfter": 1, "count": 1}])).await;
    let client = sim.client();
    let started = std::time::Instant::now();
    assert_eq!(client.get_user(&user, &["id"]).await.unwrap().id, user);
    assert!(started.elapsed() >= std::time::Duration::from_millis(950));
    assert_eq!(client.stats().throttled, 1);
    assert_eq!(sim.counters().await["throttled"], 1);
}

#[tokio::test]
async fn injected_server_errors_and_dropped_connections_on_reads_are_retried() {
    let sim = sim::start().await;
    let user = first_user(&sim).await;
    let client = sim.client();
    let mut retries = 0;
    for (rule, expected_retries) in [
        (
            json!({"path": "/users", "method": "GET", "kind": "error", "status": 503, "count": 2}),
            2,
        ),
        (
            json!({"path": "/users", "method": "GET", "kind": "drop", "count": 1}),
            1,
        ),
        (
            json!({"path": "/users", "method": "GET", "kind": "error", "status": 504, "count": 1}),
            1,
        ),
    ] {
        sim.faults(json!([rule])).await;
        assert_eq!(client.get_user(&user, &["id"]).await.unwrap().id, user);
        retries += expected_retries;
        assert_eq!(client.stats().retries, retries, "after {rule}");
    }
    assert_eq!(sim.counters().await["dropped"], 1);
}

#[tokio::test]
async fn persistent_server_errors_end_as_a_service_error() {
    let sim = sim::start().await;
    let user = first_user(&sim).await;
    sim.faults(json!([{"path": "/users", "method": "GET", "kind": "error", "status": 500}]))
        .await;
    let error = sim.client().get_user(&user, &["id"]).await.unwrap_err();
    assert!(
        matches!(&error, GraphError::Service(d) if d.status == 500),
        "{error:?}"
    );
}

#[tokio::test]
async fn token_endpoint_outages_are_retried() {
    let sim = sim::start().await;
    let tenant = sim.info.tenant_id;
    sim.faults(
        json!([{"path": format!("/{tenant}/oauth2"), "kind": "error", "status": 503, "count": 2}]),
    )
    .await;
    let report = sim.client().check_permissions().await.unwrap();
    assert!(report.missing_required().is_empty());
}

#[tokio::test]
async fn batch_items_throttled_by_the_service_are_resent() {
    let sim = sim::start().await;
    let client = sim.client();
    let users = client
        .list_users(&["id"], 20)
        .unwrap()
        .next_page()
        .await
        .unwrap()
        .unwrap();
    sim.faults(json!([{"path": "/users/", "method": "GET", "kind": "throttle", "retryAfter": 1, "count": 3}])).await;
    let requests = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            keybridge_graph::BatchRequest::new(i.to_string(), "GET", format!("/users/{}", u.id))
        })
        .collect();
    let answers = client.batch(requests).await.unwrap();
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(client.stats().throttled, 3);
}

#[tokio::test]
async fn a_dropped_post_is_looked_up_then_sent_again_and_registers_one_passkey() {
    let sim = sim::start().await;
    let user = first_user(&sim).await;
    let client = sim.client();
    let options = client.fido2_creation_options(&user, None).await.unwrap();
    let credential = passkey::new_credential(
        &options.public_key.challenge,
        AAGUID.parse().unwrap(),
        "phone",
    );
    // entra-sim drops the connection before acting on the request.
    sim.faults(json!([{"path": "/users", "method": "POST", "kind": "drop", "count": 1}]))
        .await;
    let created = client
        .create_fido2_method(&user, &credential)
        .await
        .unwrap();
    assert_eq!(created.id, fido2_method_id(&credential.credential_id));
    let methods = client.list_fido2_methods(&user).await.unwrap();
    assert_eq!(methods.iter().filter(|m| m.id == created.id).count(), 1);
    let counters = sim.counters().await;
    assert_eq!(counters["dropped"], 1);
}

#[tokio::test]
async fn a_post_processed_before_the_connection_dropped_is_not_sent_again() {
    let sim = sim::start().await;
    let user = first_user(&sim).await;
    let client = sim.client();
    let options = client.fido2_creation_options(&user, None).await.unwrap();
    let credential = passkey::new_credential(
        &options.public_key.challenge,
        AAGUID.parse().unwrap(),
        "phone",
    );
    let expected_id = fido2_method_id(&credential.credential_id);
    // entra-sim registers the passkey, then drops the connection instead of answering: the
    // client must find the passkey, not post again.
    sim.faults(
        json!([{"path": format!("/users/{user}/authentication/fido2Methods"),
        "method": "POST", "kind": "dropAfter", "count": 1}]),
    )
    .await;
    let before = client.stats().requests;
    let returned = client
        .create_fido2_method(&user, &credential)
        .await
        .unwrap();
    assert_eq!(
        client.stats().requests - before,
        2,
        "one POST (dropped after it was handled) and one list, no second POST"
    );
    assert_eq!(sim.counters().await["dropped"], 1);
    let ours = held_passkeys(&sim, &user, |m| m["id"] == expected_id.as_str()).await;
    assert_eq!(ours.len(), 1, "exactly one passkey registered: {ours:?}");
    assert_eq!(returned.id, expected_id, "the client returned that passkey");
    assert_eq!(
        ours[0]["displayName"],
        returned.display_name.as_deref().unwrap()
    );
    assert_eq!(ours[0]["aaGuid"], AAGUID);
}

#[tokio::test]
async fn documented_pacing_keeps_authentication_calls_under_the_strict_budget() {
    let (sim, users, client) = throttled(keybridge_entra_sim::ThrottleMode::Strict, 1).await;
    let user = &users[0];
    let started = std::time::Instant::now();
    for _ in 0..6 {
        client.list_fido2_methods(user).await.unwrap();
    }
    // 5 per 10 s at 95 % leaves 4 per window: the last two calls wait for the next window.
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.stats().throttled, 0);
    assert_eq!(sim.counters().await["throttled"], 0);
}

/// Registers one passkey for each user at once, each `creationOptions` then `POST`, and returns
/// the passkey ids.
async fn provision_all(client: &keybridge_graph::GraphClient, users: &[String]) -> Vec<String> {
    let mut provisions = tokio::task::JoinSet::new();
    for (i, user) in users.iter().enumerate() {
        let client = client.clone();
        let user = user.clone();
        provisions.spawn(async move {
            let options = client.fido2_creation_options(&user, None).await.unwrap();
            let credential = passkey::new_credential(
                &options.public_key.challenge,
                AAGUID.parse().unwrap(),
                "phone",
            );
            (
                i,
                client
                    .create_fido2_method(&user, &credential)
                    .await
                    .unwrap()
                    .id,
            )
        });
    }
    let mut ids = provisions.join_all().await;
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

/// entra-sim in a throttling mode, `n` of its members, and a client pacing to Graph's
/// documented quotas for a small tenant (the reports budget included).
async fn throttled(
    mode: keybridge_entra_sim::ThrottleMode,
    n: usize,
) -> (sim::Sim, Vec<String>, keybridge_graph::GraphClient) {
    let sim = sim::start_with(sim::Options {
        throttle: mode,
        ..Default::default()
    })
    .await;
    let mut users = members(&sim).await;
    users.truncate(n);
    let config =
        sim.config(sim.secret())
            .with_rate_limits(keybridge_graph::RateLimits::documented(
                keybridge_graph::TenantSize::Small,
            ));
    let client = keybridge_graph::GraphClient::new(config).unwrap();
    (sim, users, client)
}

/// Successful answers entra-sim counted for an endpoint label.
fn answered(counters: &serde_json::Value, endpoint: &str) -> u64 {
    counters["requests"][endpoint]["200"].as_u64().unwrap_or(0)
        + counters["requests"][endpoint]["201"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn under_graph_quotas_provisioning_calls_are_not_paced_to_the_reports_budget() {
    let (sim, users, client) = throttled(keybridge_entra_sim::ThrottleMode::Graph, 6).await;
    let started = std::time::Instant::now();
    let ids = provision_all(&client, &users).await;
    let window = started.elapsed();
    assert_eq!(ids.len(), 6);
    // 12 FIDO2 calls inside one 10-second window: more than the reports budget's 5, which a
    // client pacing them to it could not send in less than 20 s.
    let counters = sim.counters().await;
    let options = answered(
        &counters,
        "GET /v1.0/users/{id}/authentication/fido2Methods/creationOptions",
    );
    let posts = answered(
        &counters,
        "POST /v1.0/users/{id}/authentication/fido2Methods",
    );
    assert_eq!((options, posts), (6, 6), "{counters}");
    assert!(
        window < std::time::Duration::from_secs(10),
        "12 FIDO2 calls took {window:?}"
    );
    assert!(!client.fido2_on_reports_budget());
    assert_eq!(client.stats().throttled, 0);
}

#[tokio::test]
async fn under_strict_throttling_a_429_paces_fido2_calls_and_provisioning_completes() {
    let (sim, users, client) = throttled(keybridge_entra_sim::ThrottleMode::Strict, 4).await;
    let ids = provision_all(&client, &users).await;
    // The sixth FIDO2 call in the window was refused; the client switched to the budget.
    assert!(client.fido2_on_reports_budget());
    let throttled = client.stats().throttled;
    assert!(
        (1..=4).contains(&throttled),
        "only the calls already on their way when the first 429 came are refused: {throttled}"
    );
    assert_eq!(sim.counters().await["throttled"].as_u64(), Some(throttled));
    // Every user holds exactly the one passkey registered, read from entra-sim's own state.
    for (user, id) in users.iter().zip(&ids) {
        let ours = held_passkeys(&sim, user, |m| m["aaGuid"] == AAGUID).await;
        assert_eq!(ours.len(), 1, "one passkey for {user}: {ours:?}");
        assert_eq!(ours[0]["id"], id.as_str());
    }
}
