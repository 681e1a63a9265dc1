//! Helpers shared by the test modules.

use std::future::Future;

use keybridge_store::{
    DirectoryUser, IntegrationCredential, KeyRing, NewIntegration, SecretKey, SecretString, Store,
    StoreOptions,
};
use keybridge_testkit::{Backend, TestDatabase};

/// Generates `name::sqlite` and `name::postgres` tests calling `async fn name(store: Store)`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                $crate::common::with_store(keybridge_testkit::Backend::Sqlite, super::$name)
            }
            #[test]
            fn postgres() {
                $crate::common::with_store(keybridge_testkit::Backend::Postgres, super::$name)
            }
        }
    )*};
}

/// A key ring with one fresh key.
pub fn keyring() -> KeyRing {
    KeyRing::new(SecretKey::generate(), vec![])
}

/// Connects to a test database.
pub async fn connect_with(db: &TestDatabase, ring: KeyRing) -> Store {
    Store::connect(db.url(), StoreOptions::new(ring).max_connections(5))
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", db.url()))
}

/// Runs `body` with a migrated store on `backend`.
pub fn with_store<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    keybridge_testkit::run(backend, |db| async move {
        let store = connect_with(&db, keyring()).await;
        body(store.clone()).await;
        store.close().await;
        drop(db);
    })
}

/// A new integration with a client secret.
pub fn new_integration(name: &str) -> NewIntegration {
    NewIntegration {
        name: name.to_string(),
        internal_id: name.replace(' ', ""),
        tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".to_string(),
        client_id: "8a7b6c5d-1111-2222-3333-444455556666".to_string(),
        credential: IntegrationCredential::ClientSecret(SecretString::new(format!(
            "secret-of-{name}"
        ))),
        support_email: None,
    }
}

/// Creates an integration and returns its id.
pub async fn integration(store: &Store, name: &str) -> String {
    store
        .integrations()
        .create(new_integration(name))
        .await
        .unwrap()
        .id
}

/// A directory user `n`.
pub fn directory_user(n: usize) -> DirectoryUser {
    DirectoryUser {
        entra_object_id: format!("00000000-0000-0000-0000-{n:012}"),
        upn: format!("user{n:05}@contoso.example"),
        email: Some(format!("user{n:05}@contoso.example")),
        display_name: format!("User {n:05}"),
        account_enabled: true,
    }
}

/// Creates `count` users in an integration; returns their ids in UPN order.
pub async fn users(store: &Store, integration_id: &str, count: usize) -> Vec<String> {
    let batch: Vec<DirectoryUser> = (0..count).map(directory_user).collect();
    store
        .users()
        .upsert_from_directory(integration_id, &batch)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for u in &batch {
        ids.push(
            store
                .users()
                .find_by_object_id(integration_id, &u.entra_object_id)
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    ids
}
