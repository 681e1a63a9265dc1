//! Phones, credentials and workstations.

use keybridge_store::{
    CredentialStatus, NewCredential, NewPhone, SecretString, Store, StoreError, Timestamp,
    WorkstationStatus,
};

use crate::common::{integration, users};

fn phone(user_id: &str, key: &str) -> NewPhone {
    NewPhone {
        user_id: user_id.to_string(),
        device_key: key.to_string(),
        name: "Ada's phone".into(),
        model: "Pixel 9".into(),
        os: "Android 16".into(),
    }
}

async fn phones_pair_list_and_cascade(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 2).await;
    let p1 = store
        .phones()
        .create(phone(&ids[0], "devkey-A"))
        .await
        .unwrap();
    // The same device paired for a second user (several accounts on one phone).
    let p2 = store
        .phones()
        .create(phone(&ids[1], "devkey-A"))
        .await
        .unwrap();
    assert_eq!(store.phones().get(&p1.id).await.unwrap(), p1);
    let same_device = store.phones().find_by_device_key("devkey-A").await.unwrap();
    assert_eq!(
        same_device.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![p1.id.clone(), p2.id.clone()]
    );
    assert_eq!(
        store.phones().list_for_user(&ids[0]).await.unwrap(),
        vec![p1.clone()]
    );

    let err = store
        .phones()
        .create(phone(&ids[0], "devkey-A"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                field: "device key",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .phones()
        .create(phone("no-such-user", "devkey-B"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MissingReference { .. }),
        "{err:?}"
    );
    let err = store
        .phones()
        .create(phone(&ids[0], " "))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "device key",
                ..
            }
        ),
        "{err:?}"
    );

    let t = Timestamp::from_unix_millis(1_700_000_000_000);
    store.phones().touch(&p1.id, t).await.unwrap();
    assert_eq!(
        store.phones().get(&p1.id).await.unwrap().last_seen_at,
        Some(t)
    );

    store.users().delete(&ids[0]).await.unwrap();
    assert!(store.phones().get(&p1.id).await.unwrap_err().is_not_found());
    assert!(store.phones().get(&p2.id).await.is_ok());
    store.phones().delete(&p2.id).await.unwrap();
    assert!(
        store
            .phones()
            .delete(&p2.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn credentials_follow_their_entra_registration(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 1).await;
    let p = store.phones().create(phone(&ids[0], "k")).await.unwrap();
    let new = NewCredential {
        user_id: ids[0].clone(),
        phone_id: p.id.clone(),
        credential_id: "AQIDBAUGBwg".into(),
        rp_id: "login.microsoft.com".into(),
        aaguid: "8c3f7b1e-0000-4000-8000-000000000001".into(),
        display_name: "keybridge on Pixel 9".into(),
    };
    let c = store.credentials().create(new.clone()).await.unwrap();
    assert_eq!(c.status, CredentialStatus::Created);
    assert_eq!(c.entra_method_id, None);
    let err = store.credentials().create(new).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                field: "credential id",
                ..
            }
        ),
        "{err:?}"
    );

    let t = Timestamp::from_unix_millis(1_700_000_000_000);
    store
        .credentials()
        .mark_registered(&c.id, "method-123", t)
        .await
        .unwrap();
    let r = store
        .credentials()
        .find_by_credential_id("AQIDBAUGBwg")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, CredentialStatus::Registered);
    assert_eq!(r.entra_method_id.as_deref(), Some("method-123"));
    assert_eq!(r.registered_at, Some(t));
    store.credentials().touch_used(&c.id, t).await.unwrap();
    store.credentials().mark_removed(&c.id, t).await.unwrap();
    let r = store.credentials().get(&c.id).await.unwrap();
    assert_eq!(
        (r.status, r.removed_at, r.last_used_at),
        (CredentialStatus::Removed, Some(t), Some(t))
    );
    store
        .credentials()
        .mark_failed(&c.id, "attestation refused")
        .await
        .unwrap();
    assert_eq!(
        store
            .credentials()
            .get(&c.id)
            .await
            .unwrap()
            .last_error
            .as_deref(),
        Some("attestation refused")
    );
    assert_eq!(
        store
            .credentials()
            .list_for_user(&ids[0])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .credentials()
            .list_for_phone(&p.id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .credentials()
            .mark_registered("missing", "m", t)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn workstations_pair_revoke_and_escrow_pins(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 1).await;
    let p = store.phones().create(phone(&ids[0], "k")).await.unwrap();
    let w = store
        .workstations()
        .create(&integ, "DESKTOP-42", "ws-pubkey")
        .await
        .unwrap();
    assert_eq!(w.status, WorkstationStatus::Active);
    assert_eq!(w.phone_id, None);
    let err = store
        .workstations()
        .create(&integ, "OTHER", "ws-pubkey")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                field: "public key",
                ..
            }
        ),
        "{err:?}"
    );

    let t = Timestamp::from_unix_millis(1_700_000_000_000);
    store
        .workstations()
        .set_phone(&w.id, Some(&p.id), t)
        .await
        .unwrap();
    assert_eq!(
        store
            .workstations()
            .list_for_phone(&p.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let paired = store
        .workstations()
        .find_by_public_key("ws-pubkey")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (paired.phone_id.as_deref(), paired.paired_at),
        (Some(p.id.as_str()), Some(t))
    );

    assert_eq!(
        store
            .workstations()
            .recovery_pin(&w.id, &ids[0])
            .await
            .unwrap(),
        None
    );
    store
        .workstations()
        .set_recovery_pin(&w.id, &ids[0], &SecretString::new("493817"))
        .await
        .unwrap();
    store
        .workstations()
        .set_recovery_pin(&w.id, &ids[0], &SecretString::new("102938"))
        .await
        .unwrap();
    let pin = store
        .workstations()
        .recovery_pin(&w.id, &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pin.expose(), "102938");

    store.workstations().revoke(&w.id, t).await.unwrap();
    store.workstations().touch(&w.id, t).await.unwrap();
    let revoked = store.workstations().get(&w.id).await.unwrap();
    assert_eq!(
        (revoked.status, revoked.revoked_at, revoked.last_seen_at),
        (WorkstationStatus::Revoked, Some(t), Some(t))
    );

    // Deleting the phone unpairs the workstation but keeps it.
    store.phones().delete(&p.id).await.unwrap();
    assert_eq!(
        store.workstations().get(&w.id).await.unwrap().phone_id,
        None
    );
    store.workstations().delete(&w.id).await.unwrap();
    assert!(
        store
            .workstations()
            .get(&w.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

crate::store_tests!(
    phones_pair_list_and_cascade,
    credentials_follow_their_entra_registration,
    workstations_pair_revoke_and_escrow_pins,
);
