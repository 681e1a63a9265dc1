//! Deleting another vendor's security key from User Management's expanded row in Chromium:
//! the confirmation names the device and says it cannot be undone, and the key is gone from
//! Entra afterwards.

use keybridge_store::Role;
use keybridge_testkit::Backend;
use reqwest::Method;
use serde_json::json;

use crate::bulk_invites::members;
use crate::console::{console_url, enrol, launch};
use crate::console_pages::synced_integration;
use crate::support;
use crate::unpair::OTHER_AAGUID;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_another_vendors_key_from_the_expanded_row_in_chromium() {
    let h = support::start_console(Backend::Sqlite).await;
    let integration_id = synced_integration(&h).await;
    let (user_id, upn, object_id) = members(&h, &integration_id, 1).await.remove(0);
    let status = h
        .control(
            Method::POST,
            &format!("/users/{object_id}/fido2Methods"),
            Some(json!({"aaGuid": OTHER_AAGUID, "displayName": "Desk YubiKey", "model": "YubiKey 5 NFC"})),
        )
        .await;
    assert_eq!(status, 201);
    let browser = launch().await;
    let (page, _, _) = enrol(&h, &browser, "alice", Role::Admin, None).await;

    // Device Details' Security Keys tab offers Delete too.
    page.goto(&console_url(
        &h,
        &format!("/console/users/{user_id}/devices?tab=keys"),
    ))
    .await
    .expect("device details");
    assert!(
        page.text("#security-keys")
            .await
            .expect("keys")
            .contains("Desk YubiKey")
    );
    assert!(
        page.is_visible("#security-keys button.danger")
            .await
            .expect("visible")
    );
    page.screenshot("device-details-security-keys-delete")
        .await
        .expect("screenshot");

    let list = format!("/console/users?integration={integration_id}&state=pending&search={upn}");
    page.goto(&console_url(&h, &list)).await.expect("users");
    page.click("button[data-expand]").await.expect("expand");
    page.wait_for("!!document.querySelector('tr.expansion tr[data-method-id] form')")
        .await
        .expect("the methods with their Delete");
    page.click("tr.expansion tr[data-method-id] form button")
        .await
        .expect("delete");
    page.wait_for("document.getElementById('confirm-dialog').open")
        .await
        .expect("the confirmation");
    let question = page.text("#confirm-dialog-text").await.expect("text");
    assert!(
        question.contains("“Desk YubiKey” (YubiKey 5 NFC)"),
        "{question}"
    );
    assert!(
        question.contains(&upn) && question.contains("cannot be undone"),
        "{question}"
    );
    page.screenshot("users-delete-security-key-confirm")
        .await
        .expect("screenshot");
    page.click("#confirm-dialog-ok").await.expect("confirm");
    page.wait_for("!!document.querySelector('.flash') && document.querySelector('.flash').textContent.includes('was deleted')")
        .await
        .expect("the success message");
    page.screenshot("users-security-key-deleted")
        .await
        .expect("screenshot");
    let (_, methods) = h
        .call(
            Method::GET,
            &format!("/api/v1/users/{user_id}/fido2-methods"),
            None,
        )
        .await;
    assert_eq!(methods, json!([]), "Entra no longer holds the key");
    page.click("button[data-expand]")
        .await
        .expect("expand again");
    page.wait_for(
        "document.querySelector('tr.expansion').textContent.includes('holds no FIDO2 passkey')",
    )
    .await
    .expect("no key left");
    browser.close().await;
    h.stop().await;
}
