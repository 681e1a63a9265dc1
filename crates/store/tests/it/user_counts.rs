//! The tab counts kept in `user_counts` by triggers: after every kind of change to `users`
//! they equal a `COUNT(*)` of the users, also with changes from several connections at once.

use keybridge_core::{EntraStatus, UserState};
use keybridge_store::{DirectoryUser, StateCounts, Store, Timestamp};

use crate::common::{directory_user, integration, users};

/// The counts as a full count of `users` gives them.
async fn counted(store: &Store, integration_id: &str) -> StateCounts {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*) FROM users WHERE integration_id = $1 GROUP BY state",
    )
    .bind(integration_id)
    .fetch_all(store.raw_pool())
    .await
    .unwrap();
    let mut counts = StateCounts::default();
    for (state, n) in rows {
        match state.as_str() {
            "pending" => counts.pending = n,
            "paired_with_keybridge" => counts.paired_with_keybridge = n,
            "paired_with_entra" => counts.paired_with_entra = n,
            other => panic!("state {other}"),
        }
    }
    counts
}

/// Asserts that the kept counts of each integration equal the full count, and returns them.
async fn agree(store: &Store, integrations: &[&str], step: &str) -> Vec<StateCounts> {
    let mut all = Vec::new();
    for id in integrations {
        let kept = store.users().count_by_state(id).await.unwrap();
        assert_eq!(
            kept,
            counted(store, id).await,
            "after {step}, integration {id}"
        );
        all.push(kept);
    }
    all
}

async fn counts_follow_every_change(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let other = integration(&store, "Other").await;
    let both = [integ.as_str(), other.as_str()];
    agree(&store, &both, "nothing").await;

    let ids = users(&store, &integ, 12).await;
    users(&store, &other, 5).await;
    agree(&store, &both, "inserts by upsert").await;

    // An upsert that refreshes known users (and adds one) leaves their states alone.
    let mut again: Vec<DirectoryUser> = (0..13).map(directory_user).collect();
    again[0].display_name = "Renamed".into();
    again[1].account_enabled = false;
    store
        .users()
        .upsert_from_directory(&integ, &again)
        .await
        .unwrap();
    agree(&store, &both, "refreshing upsert").await;

    for (n, state) in [
        (0, UserState::PairedWithKeybridge),
        (1, UserState::PairedWithKeybridge),
        (2, UserState::PairedWithEntra),
        (3, UserState::PairedWithEntra),
    ] {
        store
            .users()
            .set_state(&ids[n], state, false)
            .await
            .unwrap();
    }
    agree(&store, &both, "pairing").await;
    // The same state again, and back to Pending with the unpaired warning.
    store
        .users()
        .set_state(&ids[0], UserState::PairedWithKeybridge, false)
        .await
        .unwrap();
    store
        .users()
        .set_state(&ids[2], UserState::Pending, true)
        .await
        .unwrap();
    agree(&store, &both, "same state and unpairing").await;

    // Changes that are not of the state.
    store
        .users()
        .set_entra_status(&ids[4], EntraStatus::Disabled, Timestamp::now())
        .await
        .unwrap();
    store
        .users()
        .set_last_active(&ids[5], Timestamp::now())
        .await
        .unwrap();
    store
        .users()
        .set_provisioning_error(&ids[3], Some("phone offline"))
        .await
        .unwrap();
    store
        .users()
        .mark_unseen_not_found(
            &integ,
            Timestamp::now().plus(std::time::Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let after_other_changes = agree(&store, &both, "status, activity and errors").await;
    assert_eq!(
        after_other_changes[0],
        StateCounts {
            pending: 10,
            paired_with_keybridge: 2,
            paired_with_entra: 1
        }
    );

    // A state change rolled back leaves nothing behind; a committed one counts.
    let mut tx = store.begin().await.unwrap();
    tx.users()
        .set_state(&ids[6], UserState::PairedWithEntra, false)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    agree(&store, &both, "a rolled-back change").await;
    let mut tx = store.begin().await.unwrap();
    tx.users()
        .set_state(&ids[6], UserState::PairedWithKeybridge, false)
        .await
        .unwrap();
    // Inside the transaction the counts include its own change.
    assert_eq!(
        tx.users()
            .count_by_state(&integ)
            .await
            .unwrap()
            .paired_with_keybridge,
        3
    );
    tx.commit().await.unwrap();
    agree(&store, &both, "a committed transaction").await;

    store.users().delete(&ids[0]).await.unwrap();
    store.users().delete(&ids[7]).await.unwrap();
    agree(&store, &both, "deleting users").await;

    // Deleting an integration takes its users (by cascade) and counts; the other keeps its own.
    store.integrations().delete(&integ).await.unwrap();
    let left = agree(&store, &both, "deleting an integration").await;
    assert_eq!(left[0], StateCounts::default());
    assert_eq!(left[1].pending, 5);
    let again = integration(&store, "Contoso").await;
    users(&store, &again, 3).await;
    agree(&store, &[again.as_str(), other.as_str()], "adding it again").await;
}

/// Pairing and unpairing from several connections at once, while others read (on PostgreSQL
/// reads fold the per-statement rows meanwhile), ends with exact counts.
async fn concurrent_changes_and_reads_keep_exact_counts(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 40).await;
    let mut tasks = Vec::new();
    for (n, chunk) in ids.chunks(10).enumerate() {
        let store = store.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for round in 0..3 {
                for id in &chunk {
                    let state = match (n + round) % 3 {
                        0 => UserState::PairedWithKeybridge,
                        1 => UserState::PairedWithEntra,
                        _ => UserState::Pending,
                    };
                    store.users().set_state(id, state, false).await.unwrap();
                }
            }
        }));
    }
    for _ in 0..3 {
        let store = store.clone();
        let integ = integ.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let counts = store.users().count_by_state(&integ).await.unwrap();
                assert_eq!(
                    counts.pending + counts.paired_with_keybridge + counts.paired_with_entra,
                    40
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    agree(&store, &[integ.as_str()], "concurrent changes").await;
    // A read folds the rows once there are many, so the table stays small however many
    // changes came (SQLite keeps one row throughout).
    store.users().count_by_state(&integ).await.unwrap();
    let parts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM user_counts WHERE integration_id = $1")
            .bind(&integ)
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert!((1..=16).contains(&parts), "{parts} rows");
}

crate::store_tests!(
    counts_follow_every_change,
    concurrent_changes_and_reads_keep_exact_counts,
);
