//! Integrations repository.

use keybridge_store::{
    IntegrationCredential, IntegrationGroups, SecretString, Store, StoreError, Timestamp,
};

use crate::common::new_integration;

async fn create_read_update_delete(store: Store) {
    let created = store
        .integrations()
        .create(new_integration("Contoso Passkeys"))
        .await
        .unwrap();
    assert_eq!(created.internal_id, "ContosoPasskeys");
    assert!(
        !created.native_login_enabled,
        "native login starts disabled"
    );
    assert!(created.restrict_domains.is_empty());
    assert_eq!(
        created.credential,
        IntegrationCredential::ClientSecret(SecretString::new("secret-of-Contoso Passkeys"))
    );
    let mut repo = store.integrations();
    assert_eq!(repo.get(&created.id).await.unwrap(), created);
    assert_eq!(
        repo.find_by_internal_id("ContosoPasskeys")
            .await
            .unwrap()
            .unwrap()
            .id,
        created.id
    );
    assert!(repo.find_by_internal_id("Nope").await.unwrap().is_none());

    repo.set_native_login(&created.id, true).await.unwrap();
    repo.set_restrict_domains(&created.id, &["contoso.com".into(), "fabrikam.com".into()])
        .await
        .unwrap();
    repo.set_support_email(&created.id, Some("help@contoso.com"))
        .await
        .unwrap();
    let groups = IntegrationGroups {
        eligible: Some("g1".into()),
        paired_keybridge: Some("g2".into()),
        paired_entra: Some("g3".into()),
        not_enrolled: Some("g4".into()),
    };
    repo.set_groups(&created.id, &groups).await.unwrap();
    let at = Timestamp::from_unix_millis(1_760_000_000_000);
    repo.record_sync(&created.id, Some("https://graph/delta?token=x"), at)
        .await
        .unwrap();
    let cert = IntegrationCredential::Certificate {
        certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        private_key_pem: SecretString::new(
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        ),
    };
    repo.rotate_credential(&created.id, &cert).await.unwrap();

    let read = repo.get(&created.id).await.unwrap();
    assert!(read.native_login_enabled);
    assert_eq!(read.restrict_domains, vec!["contoso.com", "fabrikam.com"]);
    assert_eq!(read.support_email.as_deref(), Some("help@contoso.com"));
    assert_eq!(read.groups, groups);
    assert_eq!(
        read.delta_link.as_deref(),
        Some("https://graph/delta?token=x")
    );
    assert_eq!(read.last_sync_at, Some(at));
    assert_eq!(read.credential, cert);
    assert_eq!(read.name, "Contoso Passkeys");

    let second = repo.create(new_integration("Fabrikam")).await.unwrap();
    let names: Vec<String> = repo
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["Contoso Passkeys", "Fabrikam"]);

    repo.delete(&second.id).await.unwrap();
    assert!(repo.get(&second.id).await.unwrap_err().is_not_found());
    assert!(repo.delete(&second.id).await.unwrap_err().is_not_found());
    assert!(
        repo.set_native_login("missing", true)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn duplicates_and_bad_input_are_refused(store: Store) {
    let mut repo = store.integrations();
    repo.create(new_integration("Contoso")).await.unwrap();
    let err = repo.create(new_integration("Contoso")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Duplicate { field: "name", .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "an integration with this name already exists"
    );

    let mut same_internal = new_integration("Con toso");
    same_internal.internal_id = "Contoso".into();
    let err = repo.create(same_internal).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                field: "internal id",
                ..
            }
        ),
        "{err:?}"
    );

    let mut empty = new_integration("X");
    empty.tenant_id = "  ".into();
    let err = repo.create(empty).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "tenant id",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(repo.list().await.unwrap().len(), 1);
}

async fn deleting_an_integration_removes_its_users(store: Store) {
    let id = crate::common::integration(&store, "Contoso").await;
    let users = crate::common::users(&store, &id, 3).await;
    store.integrations().delete(&id).await.unwrap();
    for u in users {
        assert!(store.users().get(&u).await.unwrap_err().is_not_found());
    }
}

crate::store_tests!(
    create_read_update_delete,
    duplicates_and_bad_input_are_refused,
    deleting_an_integration_removes_its_users,
);
