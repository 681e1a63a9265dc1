//! Throttling, injected server errors and dropped connections from entra-sim.

use keybridge_graph::{GraphError, odata::fido2_method_id};
use reqwest::Method;
use serde_json::json;

use crate::{passkey, sim};

const AAGUID: &str = "9c835346-796b-4c27-8898-d6032f515cc5";

async fn first_user(sim: &sim::Sim) -> String {
    let client = sim.client();
    let users = client
        .list_users(&["id", "userType"], 999)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    users.into_iter().find(|u| !u.is_guest()).unwrap().id
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
    // What entra-sim holds, read through its control API rather than through the client.
    let held = sim
        .control(Method::GET, &format!("/users/{user}"), None)
        .await;
    let ours: Vec<_> = held["fido2Methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] == expected_id.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "exactly one passkey registered: {held}");
    assert_eq!(returned.id, expected_id, "the client returned that passkey");
    assert_eq!(
        ours[0]["displayName"],
        returned.display_name.as_deref().unwrap()
    );
    assert_eq!(ours[0]["aaGuid"], AAGUID);
}

#[tokio::test]
async fn documented_pacing_keeps_authentication_calls_under_the_strict_budget() {
    let sim = sim::start_with(sim::Options {
        throttle: keybridge_entra_sim::ThrottleMode::Strict,
        ..Default::default()
    })
    .await;
    let user = first_user(&sim).await;
    let config =
        sim.config(sim.secret())
            .with_rate_limits(keybridge_graph::RateLimits::documented(
                keybridge_graph::TenantSize::Small,
            ));
    let client = keybridge_graph::GraphClient::new(config).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..6 {
        client.list_fido2_methods(&user).await.unwrap();
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
