//! Deleting any of a user's FIDO2 methods in Entra (`DELETE /api/v1/users/{id}/fido2-methods/
//! {method_id}`, and the console's Delete): another vendor's key is deleted and audited, a
//! method already gone is a clear 404, keybridge's own passkey unpairs its phone, and only
//! admins may.

use keybridge_store::Role;
use keybridge_testkit::Backend;
use reqwest::Method;
use serde_json::Value;

use crate::bulk_invites::members;
use crate::console_pages::{post_form, session};
use crate::provisioning::{integration, wait_for_user};
use crate::support::{self, Harness};
use crate::unpair::{OTHER_AAGUID, paired_with_entra};

async fn methods(h: &Harness, user_id: &str) -> Vec<Value> {
    let (status, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/users/{user_id}/fido2-methods"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    list.as_array().expect("a list").clone()
}

fn find(list: &[Value], ours: bool) -> Value {
    list.iter()
        .find(|m| m["ours"] == ours)
        .cloned()
        .unwrap_or_else(|| panic!("no method with ours = {ours} in {list:?}"))
}

async fn delete(h: &Harness, token: &str, user_id: &str, method_id: &str) -> (u16, Value) {
    h.call_as(
        token,
        Method::DELETE,
        &format!("/api/v1/users/{user_id}/fido2-methods/{method_id}"),
        None,
    )
    .await
}

async fn deleting_a_users_fido2_methods(backend: Backend) {
    let h = support::start_reachable(backend).await;
    let integration_id = integration(&h).await;
    let (user_id, _, _) = members(&h, &integration_id, 1).await.remove(0);
    paired_with_entra(&h, &integration_id, &user_id).await;
    let before = methods(&h, &user_id).await;
    assert_eq!(before.len(), 2, "{before:?}");
    let other = find(&before, false);
    assert_eq!(other["aaguid"], OTHER_AAGUID);
    let other_id = other["id"].as_str().expect("id").to_owned();
    let ours_id = find(&before, true)["id"].as_str().expect("id").to_owned();

    // Only admins; bad and unknown ids get clear answers; nothing changes.
    let admin = h.admin_token.clone();
    let helpdesk = h.token(Role::Helpdesk).await;
    let (status, body) = delete(&h, &helpdesk, &user_id, &other_id).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = delete(&h, &admin, &user_id, "not*an*id").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not an Entra FIDO2 method id")),
        "{body}"
    );
    let (status, body) = delete(&h, &admin, &user_id, "AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "method_not_found", "{body}");
    let (status, body) = delete(&h, &admin, "no-such-user", &other_id).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(methods(&h, &user_id).await.len(), 2);

    // Another vendor's key: deleted from Entra now, audited; a second try says it is gone.
    let (status, body) = delete(&h, &admin, &user_id, &other_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "deleted", "{body}");
    assert_eq!(body["device_name"], "Security key", "{body}");
    let after = methods(&h, &user_id).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["ours"], true);
    let (status, audit) = h
        .call(
            Method::GET,
            "/api/v1/audit?action=user.fido2_method.delete",
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(
        audit["items"][0]["target"],
        format!("user:{user_id}"),
        "{audit}"
    );
    let (status, body) = delete(&h, &admin, &user_id, &other_id).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no longer holds")),
        "{body}"
    );
    // The user is still paired: only their own passkey counts.
    let (_, user) = h
        .call(Method::GET, &format!("/api/v1/users/{user_id}"), None)
        .await;
    assert_eq!(user["state"], "paired_with_entra", "{user}");

    // The console refuses helpdesk and a forged token, and leaves keybridge's passkey alone.
    let console_path = format!("/console/users/{user_id}/methods/{ours_id}/delete");
    let hank = session(&h, "hank", Role::Helpdesk).await;
    let (status, _, _) = post_form(&h, &hank, &console_path, &[("csrf_token", &hank.csrf)]).await;
    assert_eq!(status, 403);
    let alice = session(&h, "alice", Role::Admin).await;
    let (status, _, _) = post_form(&h, &alice, &console_path, &[("csrf_token", "forged")]).await;
    assert_eq!(status, 403);
    assert_eq!(methods(&h, &user_id).await.len(), 1);

    // keybridge's own passkey: its phone is unpaired (state and groups follow), not a raw delete.
    let (status, body) = delete(&h, &admin, &user_id, &ours_id).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["outcome"], "unpairing", "{body}");
    let job = h.wait_for_job(body["job_id"].as_str().expect("job")).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    wait_for_user(&h, &user_id, |u| u["state"] == "pending").await;
    assert!(methods(&h, &user_id).await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_users_fido2_methods_on_sqlite() {
    deleting_a_users_fido2_methods(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_users_fido2_methods_on_postgres() {
    deleting_a_users_fido2_methods(Backend::Postgres).await;
}
