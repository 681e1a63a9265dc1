//! Connecting and migrating.

use keybridge_core::UserState;
use keybridge_store::{
    Dialect, SCHEMA_VERSION, StateCounts, Store, StoreError, StoreOptions, UserQuery,
};
use keybridge_testkit::TestDatabase;

use crate::common::{connect_with, keyring};

async fn migrations_run_twice_without_change(db: TestDatabase) {
    let first = connect_with(&db, keyring()).await;
    assert_eq!(first.schema_version().await.unwrap(), SCHEMA_VERSION);
    let id = crate::common::integration(&first, "Contoso").await;
    first.close().await;
    let ring = keyring();
    let second = Store::connect(db.url(), StoreOptions::new(ring))
        .await
        .unwrap();
    assert_eq!(second.schema_version().await.unwrap(), SCHEMA_VERSION);
    // Data survives the second start; the secret is under the first key, hence the error.
    assert!(second.integrations().get(&id).await.is_err());
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM integrations")
        .fetch_one(second.raw_pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
    second.close().await;
}

async fn a_newer_database_is_refused(db: TestDatabase) {
    let store = connect_with(&db, keyring()).await;
    let insert = match store.dialect() {
        Dialect::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', 1, X'00', 1)"
        }
        Dialect::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', TRUE, '\\x00'::bytea, 1)"
        }
    };
    sqlx::query(insert).execute(store.raw_pool()).await.unwrap();
    store.close().await;
    let err = Store::connect(db.url(), StoreOptions::new(keyring()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, known } if known == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the database was migrated by a newer keybridge (schema version 99, this binary knows up to {SCHEMA_VERSION}): upgrade keybridge or restore a backup"
        )
    );
}

/// A database migrated before the tab counts and the SQLite search index existed gets both
/// filled from its users when 0011 and 0012 run.
async fn counts_and_search_index_are_backfilled(db: TestDatabase) {
    let store = connect_with(&db, keyring()).await;
    let integ = crate::common::integration(&store, "Contoso").await;
    let ids = crate::common::users(&store, &integ, 30).await;
    for id in &ids[..7] {
        store
            .users()
            .set_state(id, UserState::PairedWithKeybridge, false)
            .await
            .unwrap();
    }
    let expected = store.users().count_by_state(&integ).await.unwrap();
    assert_eq!(expected.paired_with_keybridge, 7);
    // Back to the schema as it was before them.
    let undo: &[&'static str] = match store.dialect() {
        Dialect::Sqlite => &[
            "DROP TRIGGER user_counts_new_integration",
            "DROP TRIGGER user_counts_insert",
            "DROP TRIGGER user_counts_delete",
            "DROP TRIGGER user_counts_update",
            "DROP TABLE user_counts",
            "DROP TRIGGER user_search_insert",
            "DROP TRIGGER user_search_update",
            "DROP TRIGGER user_search_delete",
            "DROP TABLE user_search",
            "DROP TABLE user_search_keys",
            "DELETE FROM _sqlx_migrations WHERE version IN (11, 12)",
        ],
        Dialect::Postgres => &[
            "DROP FUNCTION user_counts_record() CASCADE",
            "DROP TABLE user_counts",
            "DROP TYPE user_count_change",
            "DELETE FROM _sqlx_migrations WHERE version IN (11, 12)",
        ],
    };
    for &sql in undo {
        sqlx::query(sql).execute(store.raw_pool()).await.unwrap();
    }
    store.close().await;

    let store = connect_with(&db, keyring()).await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.users().count_by_state(&integ).await.unwrap(),
        expected
    );
    let mut query = UserQuery::new(&integ, None);
    query.search = Some("user00017@".into());
    let page = store.users().list(&query).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].user.id, ids[17]);
    // And the triggers work from there on.
    store.users().delete(&ids[0]).await.unwrap();
    assert_eq!(
        store.users().count_by_state(&integ).await.unwrap(),
        StateCounts {
            pending: 23,
            paired_with_keybridge: 6,
            paired_with_entra: 0
        }
    );
    store.close().await;
}

keybridge_testkit::both_databases! {
    counts_and_search_backfilled => counts_and_search_index_are_backfilled;
    migrations_twice => migrations_run_twice_without_change;
    newer_schema_refused => a_newer_database_is_refused;
}

#[tokio::test]
async fn an_unreachable_postgres_names_the_host_and_hides_the_password() {
    let err = Store::connect(
        "postgres://kb:TopSecret42@127.0.0.1:1/keybridge",
        StoreOptions::new(keyring()),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(text.contains("kb@127.0.0.1:1/keybridge"), "{text}");
    assert!(!text.contains("TopSecret42"), "{text}");
    assert!(!format!("{err:?}").contains("TopSecret42"));
}

#[tokio::test]
async fn an_unopenable_sqlite_file_names_the_path() {
    let err = Store::connect(
        "sqlite:///nonexistent-dir-kb/sub/keybridge.db?mode=rwc",
        StoreOptions::new(keyring()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("/nonexistent-dir-kb/sub/keybridge.db"),
        "{err}"
    );
}

#[tokio::test]
async fn other_url_schemes_are_refused() {
    let err = Store::connect("mysql://root:pw@localhost/kb", StoreOptions::new(keyring()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
    let err = Store::connect("not a url", StoreOptions::new(keyring()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout() {
    let db = TestDatabase::sqlite();
    let store = connect_with(&db, keyring()).await;
    let pool = store.raw_pool();
    // Several connections: each one must have the settings.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(pool.acquire().await.unwrap());
    }
    for conn in &mut conns {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(busy, 5000);
    }
}
