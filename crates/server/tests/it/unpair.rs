//! Unpairing a phone whose passkey is in Entra (issue 6, lifecycle 8): a job deletes
//! keybridge's passkey from entra-sim (and only it), survives an attempt whose deletion Entra
//! made but never confirmed, removes the phone and returns the user to Pending with "This user
//! unpaired from keybridge."; the groups follow. And a passkey removed in Entra by someone else
//! moves the user back to Paired with keybridge at the next status check.

use std::time::Duration;

use keybridge_authenticator::AAGUID_STRING;
use keybridge_entra_sim::{FaultKind, FaultRule};
use keybridge_graph::{ClientCredential, GraphClient, RetryPolicy};
use keybridge_server::ServerOptions;
use keybridge_store::{AuditFilter, CredentialStatus};
use keybridge_testkit::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::provisioning::{
    Phone, answer, integration, make_passkey, pair, provisioning_request, signed, user_view,
    wait_for_user,
};
use crate::support::{self, Harness};

/// Another vendor's security key the users hold, which keybridge must leave alone.
pub(crate) const OTHER_AAGUID: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";

/// Two quick attempts per Graph request, so that a lost answer reaches the job soon.
fn quick_graph_retries(options: &mut ServerOptions) {
    options.graph.retry = Some(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(60),
    });
}

/// The server's Graph client for the integration (reads what Entra holds).
async fn graph(h: &Harness, integration_id: &str) -> GraphClient {
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

/// The AAGUIDs of the user's FIDO2 methods in Entra.
async fn entra_aaguids(graph: &GraphClient, object_id: &str) -> Vec<String> {
    graph
        .list_fido2_methods(object_id)
        .await
        .expect("methods")
        .into_iter()
        .map(|m| m.aa_guid.unwrap_or_default())
        .collect()
}

/// The AAGUIDs that are not keybridge's.
fn without_ours(aaguids: Vec<String>) -> Vec<String> {
    aaguids.into_iter().filter(|a| a != AAGUID_STRING).collect()
}

/// Which of keybridge's four groups hold the user, named by role.
async fn groups_of(h: &Harness, integration_id: &str, object_id: &str) -> Vec<&'static str> {
    let graph = graph(h, integration_id).await;
    let groups = h
        .store
        .integrations()
        .get(integration_id)
        .await
        .expect("integration")
        .groups;
    let mut found = Vec::new();
    for (role, group) in [
        ("eligible", groups.eligible),
        ("paired_keybridge", groups.paired_keybridge),
        ("paired_entra", groups.paired_entra),
        ("not_enrolled", groups.not_enrolled),
    ] {
        let members = graph
            .list_group_members(&group.expect("group"))
            .expect("members")
            .collect_all()
            .await
            .expect("members");
        if members.iter().any(|m| m.id == object_id) {
            found.push(role);
        }
    }
    found
}

/// Waits until the user is in exactly these groups (90 s at most: after the test's dropped
/// Graph answers, the client's retries and pacing can hold group changes back for a while on a
/// loaded machine).
async fn wait_for_groups(h: &Harness, integration_id: &str, object_id: &str, want: &[&str]) {
    let mut found = Vec::new();
    for _ in 0..450 {
        found = groups_of(h, integration_id, object_id).await;
        if found == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the user's groups are {found:?}, not {want:?}");
}

/// Pairs the user's phone and registers its passkey in Entra; the user also holds another
/// vendor's key. Returns the phone.
pub(crate) async fn paired_with_entra(h: &Harness, integration_id: &str, user_id: &str) -> Phone {
    let object_id = h
        .store
        .users()
        .get(user_id)
        .await
        .expect("user")
        .entra_object_id;
    let status = h
        .control(
            Method::POST,
            &format!("/users/{object_id}/fido2Methods"),
            Some(json!({"aaGuid": OTHER_AAGUID, "displayName": "Security key"})),
        )
        .await;
    assert!((200..300).contains(&status), "vendor key added: {status}");
    let phone = pair(h, user_id).await;
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let request = provisioning_request(h, &phone).await;
    let credential = make_passkey(&phone, &request);
    answer(
        h,
        &phone,
        request.request_id,
        keybridge_device_protocol::Answer::Credential { credential },
    )
    .await;
    wait_for_user(h, user_id, |u| u["state"] == "paired_with_entra").await;
    phone
}

async fn audit_actions(h: &Harness) -> Vec<(String, Value)> {
    h.store
        .audit()
        .list(&AuditFilter::default(), None, 500)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| {
            let details = serde_json::from_str(&e.details).unwrap_or(Value::Null);
            (e.action, details)
        })
        .collect()
}

async fn unpair_deletes_the_entra_passkey(backend: Backend) {
    let h = support::start_reachable_with(backend, quick_graph_retries).await;
    let integration_id = integration(&h).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=2"),
            None,
        )
        .await;
    let user_id = list["items"][0]["id"].as_str().expect("a user").to_owned();
    let other_user_id = list["items"][1]["id"].as_str().expect("a user").to_owned();
    let phone = paired_with_entra(&h, &integration_id, &user_id).await;
    let object_id = h
        .store
        .users()
        .get(&user_id)
        .await
        .expect("user")
        .entra_object_id;
    let graph = graph(&h, &integration_id).await;
    let before = entra_aaguids(&graph, &object_id).await;
    assert!(before.iter().any(|a| a == AAGUID_STRING), "{before:?}");
    assert!(before.iter().any(|a| a == OTHER_AAGUID), "{before:?}");
    let others_keys = without_ours(before);
    wait_for_groups(&h, &integration_id, &object_id, &["paired_entra"]).await;

    // Entra deletes the passkey but its answer is lost, twice (every attempt of the request):
    // the job's attempt fails, and the retry finds the passkey gone and carries on.
    h.sim.set_faults(vec![FaultRule {
        path: "/users".to_owned(),
        method: Some("DELETE".to_owned()),
        kind: FaultKind::DropAfter,
        fraction: 1.0,
        count: Some(2),
    }]);
    let (status, body) = signed(&h, &phone, Method::DELETE, "/device/v1/device", b"").await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().expect("the job").to_owned();
    // While it is being unpaired the phone's answers are refused.
    let (status, refused) = signed(
        &h,
        &phone,
        Method::POST,
        &format!("/device/v1/requests/{}", uuid::Uuid::new_v4()),
        b"{}",
    )
    .await;
    // (Unless the job was quicker and the phone is already forgotten.)
    assert!(
        (status == 409 && refused["error"]["code"] == "unpairing") || status == 401,
        "no answers while unpairing: {status} {refused}"
    );
    let job = h.wait_for_job(&job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "unpair_phone", "{job}");
    assert_eq!(
        job["attempts"], 2,
        "the first attempt lost Entra's answers: {job}"
    );
    assert_eq!(h.sim.counters().dropped, 2);

    // Entra: keybridge's passkey is gone, the other vendors' keys are still there.
    assert_eq!(entra_aaguids(&graph, &object_id).await, others_keys);
    let user = user_view(&h, &user_id).await;
    assert_eq!(user["state"], "pending", "{user}");
    assert_eq!(
        user["warning"], "This user unpaired from keybridge.",
        "{user}"
    );
    assert_eq!(user["device_count"], 0, "{user}");
    wait_for_groups(&h, &integration_id, &object_id, &["not_enrolled"]).await;
    let actions = audit_actions(&h).await;
    assert!(
        actions.iter().any(|(a, _)| a == "device.unpair.request"),
        "{actions:?}"
    );
    let (_, details) = actions
        .iter()
        .find(|(a, _)| a == "device.unpair")
        .expect("the unpairing is audited");
    assert_eq!(details["state"], "pending", "{details}");
    assert_eq!(
        details["entra_passkeys_removed"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default(),
        1,
        "{details}"
    );
    // The phone is forgotten.
    let (status, _) = signed(&h, &phone, Method::GET, "/device/v1/inbox?wait=0", b"").await;
    assert!(status == 401 || status == 404, "{status}");

    // Running the job again (as after a crash that lost its completion) changes nothing.
    let again = h
        .store
        .jobs()
        .enqueue(keybridge_server::services::unpair::job(
            &phone.device_id.to_string(),
            "admin:test",
        ))
        .await
        .expect("queued");
    let job = h.wait_for_job(again.id()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(user_view(&h, &user_id).await["state"], "pending");
    assert_eq!(entra_aaguids(&graph, &object_id).await, others_keys);

    // An admin unpairs the other user's phone through the API: 202 with the job, same result.
    let other_phone = paired_with_entra(&h, &integration_id, &other_user_id).await;
    let other_phone_id = other_phone.device_id.to_string();
    let other_object_id = h
        .store
        .users()
        .get(&other_user_id)
        .await
        .expect("user")
        .entra_object_id;
    let other_keys = without_ours(entra_aaguids(&graph, &other_object_id).await);
    let path = format!("/api/v1/users/{other_user_id}/phones/{other_phone_id}");
    let auditor = h.token(keybridge_store::Role::Auditor).await;
    let (status, body) = h.call_as(&auditor, Method::DELETE, &path, None).await;
    support::assert_error(status, &body, 403, "forbidden", None);
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{user_id}/phones/{other_phone_id}"),
            None,
        )
        .await;
    support::assert_error(status, &body, 404, "not_found", None);
    let (status, body) = h.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 202, "{body}");
    let job = h
        .wait_for_job(body["job_id"].as_str().expect("the job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(entra_aaguids(&graph, &other_object_id).await, other_keys);
    let other = user_view(&h, &other_user_id).await;
    assert_eq!(other["state"], "pending", "{other}");
    assert_eq!(
        other["warning"], "This user unpaired from keybridge.",
        "{other}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpair_deletes_the_entra_passkey_on_sqlite() {
    unpair_deletes_the_entra_passkey(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpair_deletes_the_entra_passkey_on_postgres() {
    unpair_deletes_the_entra_passkey(Backend::Postgres).await;
}

async fn a_passkey_removed_in_entra_moves_the_user_back(backend: Backend) {
    let h = support::start_reachable(backend).await;
    let integration_id = integration(&h).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=2"),
            None,
        )
        .await;
    let user_id = list["items"][0]["id"].as_str().expect("a user").to_owned();
    let kept_user_id = list["items"][1]["id"].as_str().expect("a user").to_owned();
    paired_with_entra(&h, &integration_id, &user_id).await;
    paired_with_entra(&h, &integration_id, &kept_user_id).await;
    let user = h.store.users().get(&user_id).await.expect("user");
    let object_id = user.entra_object_id.clone();
    wait_for_groups(&h, &integration_id, &object_id, &["paired_entra"]).await;

    // Another admin deletes keybridge's passkey through Graph, with their own client.
    let info = h.sim.info();
    let ca = std::fs::read_to_string(&info.ca_pem).expect("sim CA");
    let other_admin = GraphClient::new(
        keybridge_graph::GraphConfig::new(
            info.tenant_id.to_string(),
            info.client_id.to_string(),
            ClientCredential::secret(info.client_secret.clone()).expect("secret"),
        )
        .with_cloud(keybridge_graph::Cloud::custom(&info.base_url, &info.graph_url).expect("sim"))
        .with_ca_bundle_pem(ca),
    )
    .expect("another admin's client");
    let ours = other_admin
        .list_fido2_methods(&object_id)
        .await
        .expect("methods")
        .into_iter()
        .find(|m| m.aa_guid.as_deref() == Some(AAGUID_STRING))
        .expect("keybridge's passkey");
    other_admin
        .delete_fido2_method(&object_id, &ours.id)
        .await
        .expect("deleted in Entra");

    // The status check of both users notices it for the one, and not for the other.
    let queued = h
        .store
        .jobs()
        .enqueue(keybridge_server::services::status_check::job(
            &integration_id,
            &[user_id.clone(), kept_user_id.clone()],
        ))
        .await
        .expect("queued");
    let job = h.wait_for_job(queued.id()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let shown = user_view(&h, &user_id).await;
    assert_eq!(shown["state"], "paired_with_keybridge", "{shown}");
    assert_eq!(shown["warning"], Value::Null, "{shown}");
    assert_eq!(shown["device_count"], 1, "{shown}");
    assert_eq!(
        user_view(&h, &kept_user_id).await["state"],
        "paired_with_entra"
    );
    let credentials = h
        .store
        .credentials()
        .list_for_user(&user_id)
        .await
        .expect("credentials");
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0].status, CredentialStatus::Removed);
    wait_for_groups(
        &h,
        &integration_id,
        &object_id,
        &["paired_keybridge", "not_enrolled"],
    )
    .await;
    let actions = audit_actions(&h).await;
    let removed: Vec<&Value> = actions
        .iter()
        .filter(|(a, _)| a == "user.passkey_removed_in_entra")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(removed.len(), 1, "{actions:?}");
    assert_eq!(removed[0]["state"], "paired_with_keybridge");
    assert_eq!(removed[0]["entra_method_id"], ours.id.as_str());

    // Checking again changes nothing.
    let queued = h
        .store
        .jobs()
        .enqueue(keybridge_server::services::status_check::job(
            &integration_id,
            std::slice::from_ref(&user_id),
        ))
        .await
        .expect("queued");
    let job = h.wait_for_job(queued.id()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        user_view(&h, &user_id).await["state"],
        "paired_with_keybridge"
    );
    let removed = audit_actions(&h)
        .await
        .iter()
        .filter(|(a, _)| a == "user.passkey_removed_in_entra")
        .count();
    assert_eq!(removed, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_removed_in_entra_moves_the_user_back_on_sqlite() {
    a_passkey_removed_in_entra_moves_the_user_back(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_removed_in_entra_moves_the_user_back_on_postgres() {
    a_passkey_removed_in_entra_moves_the_user_back(Backend::Postgres).await;
}

/// A phone whose unpairing was requested is asked for no passkey when native login is
/// enabled meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_being_unpaired_is_not_asked_for_a_passkey() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let integration_id = integration(&h).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=1"),
            None,
        )
        .await;
    let user_id = list["items"][0]["id"].as_str().expect("a user").to_owned();
    let phone = pair(&h, &user_id).await;
    // As the unpair request does before its job runs.
    h.store
        .phones()
        .mark_unpairing(
            &phone.device_id.to_string(),
            keybridge_store::Timestamp::now(),
        )
        .await
        .expect("marked");
    let (status, enabled) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    let job = h
        .wait_for_job(enabled["provisioning_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (status, page) = signed(&h, &phone, Method::GET, "/device/v1/inbox?wait=2", b"").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["requests"], json!([]), "{page}");
    let user = user_view(&h, &user_id).await;
    assert_eq!(user["state"], "paired_with_keybridge", "{user}");
    assert_eq!(user["provisioning_error"], Value::Null, "{user}");
    // Device Details shows the phone as being unpaired.
    let devices =
        keybridge_server::services::user_devices::mobile_devices(h.server.app(), &user_id)
            .await
            .expect("devices");
    assert_eq!(devices.len(), 1);
    assert!(devices[0].unpairing_since.is_some(), "{devices:?}");
    h.stop().await;
}
