//! The phones' inbox and install tokens.

use std::time::Duration;

use keybridge_store::{
    DeviceRequestKind, DeviceRequestStatus, NewDeviceRequest, NewPhone, Store, StoreError,
    Timestamp,
};
use serde_json::json;

use crate::common::{integration, users};

fn rejected(err: &StoreError) -> &'static str {
    match err {
        StoreError::TokenRejected { reason, .. } => reason,
        other => panic!("expected TokenRejected, got {other:?}"),
    }
}

async fn requests_reach_the_device_once_and_are_answered_once(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 2).await;
    // One device paired for two accounts.
    let mut phones = Vec::new();
    for user in &ids {
        phones.push(
            store
                .phones()
                .create(NewPhone {
                    user_id: user.clone(),
                    device_key: "device-1".into(),
                    name: "Pixel".into(),
                    model: "Pixel 9".into(),
                    os: "Android".into(),
                })
                .await
                .unwrap(),
        );
    }
    let ws = store
        .workstations()
        .create(&integ, "PC-7", "ws-key")
        .await
        .unwrap();
    let sign_in = store
        .device_requests()
        .create(NewDeviceRequest {
            phone_id: phones[1].id.clone(),
            kind: DeviceRequestKind::SignIn,
            payload: json!({"computer": "PC-7", "challenge": "abc"}),
            workstation_id: Some(ws.id.clone()),
            ttl: Duration::from_secs(60),
        })
        .await
        .unwrap();
    assert_eq!(
        (sign_in.status, sign_in.user_id.as_str()),
        (DeviceRequestStatus::Pending, ids[1].as_str())
    );
    let provision = store
        .device_requests()
        .create(NewDeviceRequest {
            phone_id: phones[0].id.clone(),
            kind: DeviceRequestKind::Provision,
            payload: json!({"rp": "login.microsoft.com"}),
            workstation_id: None,
            ttl: Duration::from_secs(60),
        })
        .await
        .unwrap();
    assert!(
        store
            .device_requests()
            .create(NewDeviceRequest {
                phone_id: "no-such-phone".into(),
                kind: DeviceRequestKind::SignIn,
                payload: json!({}),
                workstation_id: None,
                ttl: Duration::from_secs(60),
            })
            .await
            .unwrap_err()
            .is_not_found()
    );

    let now = Timestamp::now();
    let inbox = store
        .device_requests()
        .fetch_inbox("device-1", now)
        .await
        .unwrap();
    assert_eq!(
        inbox.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![sign_in.id.clone(), provision.id.clone()]
    );
    assert!(
        inbox
            .iter()
            .all(|r| r.status == DeviceRequestStatus::Delivered && r.delivered_at == Some(now))
    );
    // Marked in the database too, and a second fetch returns the same requests unchanged.
    let stored = store.device_requests().get(&provision.id).await.unwrap();
    assert_eq!(
        (stored.status, stored.delivered_at),
        (DeviceRequestStatus::Delivered, Some(now))
    );
    let later = now.plus(Duration::from_secs(1));
    let again = store
        .device_requests()
        .fetch_inbox("device-1", later)
        .await
        .unwrap();
    assert_eq!(again, inbox);
    assert!(
        store
            .device_requests()
            .fetch_inbox("other-device", now)
            .await
            .unwrap()
            .is_empty()
    );

    // Another device cannot answer it, and learns nothing about it.
    assert!(
        store
            .device_requests()
            .answer(&sign_in.id, "other-device", true, None, now)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let answer = json!({"signature": "c2ln"});
    let answered = store
        .device_requests()
        .answer(&sign_in.id, "device-1", true, Some(&answer), now)
        .await
        .unwrap();
    assert_eq!(
        (answered.status, answered.response.as_ref()),
        (DeviceRequestStatus::Approved, Some(&answer))
    );
    let err = store
        .device_requests()
        .answer(&sign_in.id, "device-1", false, None, now)
        .await
        .unwrap_err();
    assert_eq!(rejected(&err), "was already answered");
    assert_eq!(
        store
            .device_requests()
            .get(&sign_in.id)
            .await
            .unwrap()
            .status,
        DeviceRequestStatus::Approved
    );

    // Expiry and cancellation.
    let late = now.plus(Duration::from_secs(61));
    assert_eq!(
        rejected(
            &store
                .device_requests()
                .answer(&provision.id, "device-1", true, None, late)
                .await
                .unwrap_err()
        ),
        "has expired"
    );
    assert!(
        store
            .device_requests()
            .fetch_inbox("device-1", late)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.device_requests().expire_due(late).await.unwrap(), 1);
    assert_eq!(
        store
            .device_requests()
            .get(&provision.id)
            .await
            .unwrap()
            .status,
        DeviceRequestStatus::Expired
    );
    let third = store
        .device_requests()
        .create(NewDeviceRequest {
            phone_id: phones[0].id.clone(),
            kind: DeviceRequestKind::SignIn,
            payload: json!({}),
            workstation_id: None,
            ttl: Duration::from_secs(60),
        })
        .await
        .unwrap();
    assert!(store.device_requests().cancel(&third.id).await.unwrap());
    assert!(!store.device_requests().cancel(&third.id).await.unwrap());
    assert_eq!(
        rejected(
            &store
                .device_requests()
                .answer(&third.id, "device-1", true, None, Timestamp::now())
                .await
                .unwrap_err()
        ),
        "was cancelled"
    );
}

async fn install_tokens_redeem_until_expiry_or_revocation(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let (token, secret) = store
        .install_tokens()
        .create(&integ, "admin:1", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(secret.starts_with("kbi_"));
    let now = Timestamp::now();
    assert_eq!(
        store
            .install_tokens()
            .redeem(&secret, now)
            .await
            .unwrap()
            .uses,
        1
    );
    let used = store.install_tokens().redeem(&secret, now).await.unwrap();
    assert_eq!(
        (used.uses, used.last_used_at, used.integration_id.as_str()),
        (2, Some(now), integ.as_str())
    );
    let late = now.plus(Duration::from_secs(3601));
    assert_eq!(
        rejected(
            &store
                .install_tokens()
                .redeem(&secret, late)
                .await
                .unwrap_err()
        ),
        "has expired"
    );
    store.install_tokens().revoke(&token.id, now).await.unwrap();
    assert_eq!(
        rejected(
            &store
                .install_tokens()
                .redeem(&secret, now)
                .await
                .unwrap_err()
        ),
        "was revoked"
    );
    assert!(
        store
            .install_tokens()
            .redeem("kbi_forged", now)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .install_tokens()
            .revoke(&token.id, now)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(store.install_tokens().list(&integ).await.unwrap().len(), 1);
}

async fn a_request_can_carry_the_id_its_payload_names(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 1).await;
    let phone = store
        .phones()
        .create(NewPhone {
            user_id: ids[0].clone(),
            device_key: "device-1".into(),
            name: "Pixel".into(),
            model: "Pixel 9".into(),
            os: "Android".into(),
        })
        .await
        .unwrap();
    let new = || NewDeviceRequest {
        phone_id: phone.id.clone(),
        kind: DeviceRequestKind::Provision,
        payload: json!({"request_id": "0190c3d4-5e6f-7a8b-9cad-bedf01234567"}),
        workstation_id: None,
        ttl: Duration::from_secs(60),
    };
    let id = "0190c3d4-5e6f-7a8b-9cad-bedf01234567";
    let made = store
        .device_requests()
        .create_with_id(id, new())
        .await
        .unwrap();
    assert_eq!(made.id, id);
    assert_eq!(store.device_requests().get(id).await.unwrap(), made);
    let inbox = store
        .device_requests()
        .fetch_inbox("device-1", Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        inbox.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [id]
    );
    // The id is the primary key: a second request under it is refused.
    assert!(
        store
            .device_requests()
            .create_with_id(id, new())
            .await
            .is_err()
    );
    assert!(matches!(
        store
            .device_requests()
            .create_with_id(" ", new())
            .await
            .unwrap_err(),
        StoreError::Invalid {
            field: "request id",
            ..
        }
    ));
}

crate::store_tests!(
    a_request_can_carry_the_id_its_payload_names,
    requests_reach_the_device_once_and_are_answered_once,
    install_tokens_redeem_until_expiry_or_revocation,
);
