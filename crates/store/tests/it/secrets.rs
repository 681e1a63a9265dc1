//! Secrets at rest: round trip, nothing in clear in the database, wrong key, swapped
//! ciphertexts, rotation.

use keybridge_store::{
    IntegrationCredential, KeyRing, SecretError, SecretKey, SecretString, Store, StoreError,
    StoreOptions,
};
use keybridge_testkit::TestDatabase;

use crate::common::new_integration;

async fn connect(db: &TestDatabase, ring: KeyRing) -> Store {
    Store::connect(db.url(), StoreOptions::new(ring).max_connections(3))
        .await
        .unwrap()
}

async fn sealed(store: &Store, id: &str) -> Vec<u8> {
    sqlx::query_scalar("SELECT client_secret_enc FROM integrations WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(store.raw_pool())
        .await
        .unwrap()
}

async fn secrets_round_trip_and_stay_sealed(db: TestDatabase) {
    let key = SecretKey::generate();
    let store = connect(&db, KeyRing::new(key.clone(), vec![])).await;
    let created = store
        .integrations()
        .create(new_integration("Contoso"))
        .await
        .unwrap();
    let ciphertext = sealed(&store, &created.id).await;
    assert!(!String::from_utf8_lossy(&ciphertext).contains("secret-of-Contoso"));
    assert_eq!(ciphertext[0], b'K');
    assert_eq!(
        &ciphertext[3..3 + 8],
        key.id().as_bytes(),
        "the key id is in the header"
    );
    let read = store.integrations().get(&created.id).await.unwrap();
    assert_eq!(
        read.credential,
        IntegrationCredential::ClientSecret(SecretString::new("secret-of-Contoso"))
    );
    let debug = format!("{read:?}");
    assert!(!debug.contains("secret-of-Contoso"), "{debug}");
    assert!(debug.contains("[redacted]"));
    store.close().await;

    // Another key cannot read it, and says which key it needs.
    let other = connect(&db, KeyRing::new(SecretKey::generate(), vec![])).await;
    let err = other.integrations().get(&created.id).await.unwrap_err();
    match &err {
        StoreError::Secret(SecretError::UnknownKey {
            key_id,
            table,
            column,
            ..
        }) => {
            assert_eq!(
                (key_id.as_str(), *table, *column),
                (key.id(), "integrations", "client_secret_enc")
            );
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    assert!(!err.to_string().contains("secret-of-Contoso"));
    other.close().await;
}

async fn a_ciphertext_moved_to_another_row_does_not_open(db: TestDatabase) {
    let store = connect(&db, KeyRing::new(SecretKey::generate(), vec![])).await;
    let a = store
        .integrations()
        .create(new_integration("Alpha"))
        .await
        .unwrap();
    let b = store
        .integrations()
        .create(new_integration("Bravo"))
        .await
        .unwrap();
    let from_a = sealed(&store, &a.id).await;
    sqlx::query("UPDATE integrations SET client_secret_enc = $1 WHERE id = $2")
        .bind(from_a)
        .bind(b.id.clone())
        .execute(store.raw_pool())
        .await
        .unwrap();
    let err = store.integrations().get(&b.id).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Tampered { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "integrations.client_secret_enc of {} does not decrypt: the value was altered or copied from another row",
            b.id
        )
    );
    // The untouched row still reads.
    assert!(store.integrations().get(&a.id).await.is_ok());
    store.close().await;
}

async fn rotation_reencrypts_everything_under_the_new_key(db: TestDatabase) {
    let old = SecretKey::generate();
    let store = connect(&db, KeyRing::new(old.clone(), vec![])).await;
    let a = store
        .integrations()
        .create(new_integration("Alpha"))
        .await
        .unwrap();
    let mut cert = new_integration("Bravo");
    cert.credential = IntegrationCredential::Certificate {
        certificate_pem: "CERT".into(),
        private_key_pem: SecretString::new("PRIVATE KEY"),
    };
    let b = store.integrations().create(cert).await.unwrap();
    let users = crate::common::users(&store, &a.id, 1).await;
    let ws = store
        .workstations()
        .create(&a.id, "PC-1", "pk")
        .await
        .unwrap();
    store
        .workstations()
        .set_recovery_pin(&ws.id, &users[0], &SecretString::new("246810"))
        .await
        .unwrap();
    assert_eq!(
        store.secret_key_usage().await.unwrap(),
        vec![(old.id().to_string(), 3)]
    );
    store.close().await;

    let new = SecretKey::generate();
    let rotating = connect(&db, KeyRing::new(new.clone(), vec![old.clone()])).await;
    // Before rotating, the old values still open through the previous key.
    assert!(rotating.integrations().get(&a.id).await.is_ok());
    let report = rotating.rotate_secrets().await.unwrap();
    assert_eq!((report.reencrypted, report.moved_from_old_keys), (3, 3));
    assert_eq!(report.current_key_id, new.id());
    assert_eq!(
        rotating.secret_key_usage().await.unwrap(),
        vec![(new.id().to_string(), 3)]
    );
    // Rotating again is harmless.
    let again = rotating.rotate_secrets().await.unwrap();
    assert_eq!((again.reencrypted, again.moved_from_old_keys), (3, 0));
    rotating.close().await;

    // The old key can go.
    let after = connect(&db, KeyRing::new(new, vec![])).await;
    assert_eq!(
        after.integrations().get(&a.id).await.unwrap().credential,
        IntegrationCredential::ClientSecret(SecretString::new("secret-of-Alpha"))
    );
    assert!(matches!(
        after.integrations().get(&b.id).await.unwrap().credential,
        IntegrationCredential::Certificate { ref private_key_pem, .. } if private_key_pem.expose() == "PRIVATE KEY"
    ));
    assert_eq!(
        after
            .workstations()
            .recovery_pin(&ws.id, &users[0])
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "246810"
    );
    after.close().await;
}

async fn a_failed_rotation_changes_nothing(db: TestDatabase) {
    let old = SecretKey::generate();
    let store = connect(&db, KeyRing::new(old.clone(), vec![])).await;
    let a = store
        .integrations()
        .create(new_integration("Alpha"))
        .await
        .unwrap();
    let b = store
        .integrations()
        .create(new_integration("Bravo"))
        .await
        .unwrap();
    // Corrupt the second row: rotation must fail on it and leave the first row alone.
    let mut broken = sealed(&store, &b.id).await;
    let last = broken.len() - 1;
    broken[last] ^= 0xff;
    sqlx::query("UPDATE integrations SET client_secret_enc = $1 WHERE id = $2")
        .bind(broken)
        .bind(b.id.clone())
        .execute(store.raw_pool())
        .await
        .unwrap();
    let before = sealed(&store, &a.id).await;
    store.close().await;
    let rotating = connect(&db, KeyRing::new(SecretKey::generate(), vec![old])).await;
    let err = rotating.rotate_secrets().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Tampered { .. })),
        "{err:?}"
    );
    assert_eq!(
        sealed(&rotating, &a.id).await,
        before,
        "nothing was rewritten"
    );
    rotating.close().await;
}

/// An admin replaces an integration's secret while a key rotation runs: the admin's
/// transaction holds the row when the rotation reads it and commits before the rotation
/// writes. The new secret must survive (the rotation must not write back the old one).
async fn a_rotation_does_not_undo_a_concurrent_credential_change(db: TestDatabase) {
    let new_key = SecretKey::generate();
    let store = connect(&db, KeyRing::new(new_key.clone(), vec![])).await;
    let created = store
        .integrations()
        .create(new_integration("Alpha"))
        .await
        .unwrap();
    let rotating = connect(&db, KeyRing::new(new_key, vec![])).await;
    let mut change = store.begin().await.unwrap();
    change
        .integrations()
        .rotate_credential(
            &created.id,
            &IntegrationCredential::ClientSecret(SecretString::new("the-new-secret")),
        )
        .await
        .unwrap();
    let rotation = {
        let rotating = rotating.clone();
        tokio::spawn(async move { rotating.rotate_secrets().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    change.commit().await.unwrap();
    rotation.await.unwrap().unwrap();
    assert_eq!(
        store
            .integrations()
            .get(&created.id)
            .await
            .unwrap()
            .credential,
        IntegrationCredential::ClientSecret(SecretString::new("the-new-secret"))
    );
    rotating.close().await;
    store.close().await;
}

keybridge_testkit::both_databases! {
    rotation_race => a_rotation_does_not_undo_a_concurrent_credential_change;
    round_trip => secrets_round_trip_and_stay_sealed;
    swapped_rows => a_ciphertext_moved_to_another_row_does_not_open;
    rotation => rotation_reencrypts_everything_under_the_new_key;
    failed_rotation => a_failed_rotation_changes_nothing;
}
