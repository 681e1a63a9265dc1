//! Users repository: upsert, state, list pagination, search and counts.

use std::collections::HashSet;

use keybridge_core::{EntraStatus, UserState};
use keybridge_store::{
    DirectoryUser, NewPhone, StateCounts, Store, StoreError, Timestamp, UpsertSummary, UserCursor,
    UserQuery, UserSort,
};

use crate::common::{directory_user, integration, users};

async fn upsert_inserts_then_refreshes(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let batch: Vec<DirectoryUser> = (0..3).map(directory_user).collect();
    let summary = store
        .users()
        .upsert_from_directory(&integ, &batch)
        .await
        .unwrap();
    assert_eq!(
        summary,
        UpsertSummary {
            inserted: 3,
            updated: 0
        }
    );

    let mut changed = batch.clone();
    changed[1].display_name = "Renamed Person".into();
    changed[1].account_enabled = false;
    changed.push(directory_user(3));
    let summary = store
        .users()
        .upsert_from_directory(&integ, &changed)
        .await
        .unwrap();
    assert_eq!(
        summary,
        UpsertSummary {
            inserted: 1,
            updated: 3
        }
    );

    let u = store
        .users()
        .find_by_object_id(&integ, &batch[1].entra_object_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.display_name, "Renamed Person");
    assert_eq!(u.entra_status, EntraStatus::Disabled);
    assert_eq!(u.state, UserState::Pending);
    assert!(!u.unpaired);
    assert_eq!(u.last_active_at, None);
    let by_upn = store
        .users()
        .find_by_upn(&integ, &batch[1].upn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_upn, u);

    // Listed twice in one batch: one user, the last entry wins.
    let mut twice = directory_user(7);
    let first_entry = twice.clone();
    twice.display_name = "Second Entry".into();
    let summary = store
        .users()
        .upsert_from_directory(&integ, &[first_entry, twice])
        .await
        .unwrap();
    assert_eq!(
        summary,
        UpsertSummary {
            inserted: 1,
            updated: 0
        }
    );
    assert_eq!(
        store
            .users()
            .find_by_upn(&integ, &directory_user(7).upn)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Second Entry"
    );
    // Non-ASCII and quotes travel intact through the JSON batch.
    let mut odd = directory_user(6);
    odd.display_name = "Zoë \"Q\" O'Brien – 李".into();
    odd.email = None;
    store
        .users()
        .upsert_from_directory(&integ, &[odd.clone()])
        .await
        .unwrap();
    let stored = store
        .users()
        .find_by_upn(&integ, &odd.upn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.display_name.as_str(), stored.email.as_deref()),
        (odd.display_name.as_str(), None)
    );

    let mut bad = directory_user(9);
    bad.upn = String::new();
    let err = store
        .users()
        .upsert_from_directory(&integ, &[directory_user(8), bad])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { field: "UPN", .. }),
        "{err:?}"
    );
    // The batch is one transaction: user 8 was not kept either.
    assert!(
        store
            .users()
            .find_by_upn(&integ, &directory_user(8).upn)
            .await
            .unwrap()
            .is_none()
    );

    let err = store
        .users()
        .upsert_from_directory("no-such-integration", &[directory_user(5)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MissingReference { .. }),
        "{err:?}"
    );
}

async fn state_status_activity_and_delete(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 2).await;
    let mut repo = store.users();
    repo.set_state(&ids[0], UserState::PairedWithKeybridge, false)
        .await
        .unwrap();
    repo.set_state(&ids[1], UserState::Pending, true)
        .await
        .unwrap();
    let t = Timestamp::from_unix_millis(1_750_000_000_000);
    repo.set_entra_status(&ids[0], EntraStatus::NotFound, t)
        .await
        .unwrap();
    repo.set_last_active(&ids[0], t).await.unwrap();
    repo.set_provisioning_error(&ids[0], Some("phone offline"))
        .await
        .unwrap();
    let a = repo.get(&ids[0]).await.unwrap();
    assert_eq!(a.state, UserState::PairedWithKeybridge);
    assert_eq!(a.entra_status, EntraStatus::NotFound);
    assert_eq!(a.status_checked_at, Some(t));
    assert_eq!(a.last_active_at, Some(t));
    assert_eq!(a.provisioning_error.as_deref(), Some("phone offline"));
    assert!(repo.get(&ids[1]).await.unwrap().unpaired);
    repo.set_provisioning_error(&ids[0], None).await.unwrap();
    assert_eq!(repo.get(&ids[0]).await.unwrap().provisioning_error, None);

    assert!(
        repo.set_state("missing", UserState::Pending, false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    repo.delete(&ids[1]).await.unwrap();
    assert!(repo.get(&ids[1]).await.unwrap_err().is_not_found());
}

async fn counts_by_state(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let other = integration(&store, "Other").await;
    let ids = users(&store, &integ, 10).await;
    users(&store, &other, 4).await;
    for id in &ids[..3] {
        store
            .users()
            .set_state(id, UserState::PairedWithKeybridge, false)
            .await
            .unwrap();
    }
    store
        .users()
        .set_state(&ids[3], UserState::PairedWithEntra, false)
        .await
        .unwrap();
    assert_eq!(
        store.users().count_by_state(&integ).await.unwrap(),
        StateCounts {
            pending: 6,
            paired_with_keybridge: 3,
            paired_with_entra: 1
        }
    );
}

async fn collect_pages(store: &Store, mut query: UserQuery) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let page = store.users().list(&query).await.unwrap();
        assert!(page.items.len() <= query.limit as usize);
        out.extend(page.items.into_iter().map(|i| i.user.id));
        match page.next {
            // Through its text form, as a client would.
            Some(next) => query.after = Some(next.to_string().parse().unwrap()),
            None => return out,
        }
    }
}

async fn keyset_pages_cover_every_user_once_in_every_order(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 130).await;
    for (i, id) in ids.iter().enumerate() {
        if i % 3 == 0 {
            store
                .users()
                .set_state(id, UserState::PairedWithEntra, false)
                .await
                .unwrap();
        }
        // Ties on last_active (many share a value) exercise the id tie-breaker.
        if i % 2 == 0 {
            store
                .users()
                .set_last_active(id, Timestamp::from_unix_millis(1_000 + (i % 7) as i64))
                .await
                .unwrap();
        }
    }
    for sort in [UserSort::Upn, UserSort::DisplayName, UserSort::LastActive] {
        for descending in [false, true] {
            for state in [None, Some(UserState::PairedWithEntra)] {
                let mut query = UserQuery::new(&integ, state);
                query.sort = sort;
                query.descending = descending;
                query.limit = 500;
                let all = collect_pages(&store, query.clone()).await;
                let expected = if state.is_some() { 44 } else { 130 };
                assert_eq!(all.len(), expected, "{sort:?} {descending} {state:?}");
                query.limit = 17;
                let paged = collect_pages(&store, query).await;
                assert_eq!(paged, all, "{sort:?} desc={descending} {state:?}");
                assert_eq!(paged.iter().collect::<HashSet<_>>().len(), expected);
            }
        }
    }
    // Ascending by UPN is plain user number order.
    let mut q = UserQuery::new(&integ, None);
    q.limit = 5;
    let first = store.users().list(&q).await.unwrap();
    let upns: Vec<&str> = first.items.iter().map(|i| i.user.upn.as_str()).collect();
    assert_eq!(
        upns,
        vec![
            "user00000@contoso.example",
            "user00001@contoso.example",
            "user00002@contoso.example",
            "user00003@contoso.example",
            "user00004@contoso.example",
        ]
    );
    let mut q = UserQuery::new(&integ, None);
    q.descending = true;
    q.limit = 1;
    assert_eq!(
        store.users().list(&q).await.unwrap().items[0].user.upn,
        "user00129@contoso.example"
    );
}

async fn search_matches_upn_mail_and_name_case_insensitively(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let mut people = vec![
        DirectoryUser {
            entra_object_id: "o1".into(),
            upn: "ada@contoso.example".into(),
            email: Some("a.lovelace@mail.example".into()),
            display_name: "Ada Lovelace".into(),
            account_enabled: true,
        },
        DirectoryUser {
            entra_object_id: "o2".into(),
            upn: "alan@contoso.example".into(),
            email: None,
            display_name: "Alan Turing".into(),
            account_enabled: true,
        },
        DirectoryUser {
            entra_object_id: "o3".into(),
            upn: "grace_h@contoso.example".into(),
            email: None,
            display_name: "Grace 100% Hopper".into(),
            account_enabled: true,
        },
    ];
    people.extend((10..20).map(directory_user));
    store
        .users()
        .upsert_from_directory(&integ, &people)
        .await
        .unwrap();
    let search = |s: &str| {
        let mut q = UserQuery::new(&integ, None);
        q.search = Some(s.to_string());
        q
    };
    let names = |page: keybridge_store::UserPage| {
        page.items
            .into_iter()
            .map(|i| i.user.display_name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.users().list(&search("LOVELACE")).await.unwrap()),
        vec!["Ada Lovelace"]
    );
    assert_eq!(
        names(store.users().list(&search("turing")).await.unwrap()),
        vec!["Alan Turing"]
    );
    assert_eq!(
        names(store.users().list(&search("mail.example")).await.unwrap()),
        vec!["Ada Lovelace"]
    );
    // Wildcards are literal.
    assert_eq!(
        names(store.users().list(&search("100%")).await.unwrap()),
        vec!["Grace 100% Hopper"]
    );
    assert_eq!(
        names(store.users().list(&search("_h@")).await.unwrap()),
        vec!["Grace 100% Hopper"]
    );
    assert_eq!(
        names(store.users().list(&search("%")).await.unwrap()),
        vec!["Grace 100% Hopper"]
    );
    assert!(
        store
            .users()
            .list(&search("nobody"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store
            .users()
            .list(&search("   "))
            .await
            .unwrap()
            .items
            .len(),
        13
    );
}

async fn list_shows_device_counts_and_refuses_bad_paging(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let ids = users(&store, &integ, 2).await;
    for n in 0..2 {
        store
            .phones()
            .create(NewPhone {
                user_id: ids[0].clone(),
                device_key: format!("key-{n}"),
                name: "Pixel".into(),
                model: "Pixel 9".into(),
                os: "Android 16".into(),
            })
            .await
            .unwrap();
    }
    let page = store
        .users()
        .list(&UserQuery::new(&integ, None))
        .await
        .unwrap();
    let counts: Vec<i64> = page.items.iter().map(|i| i.device_count).collect();
    assert_eq!(counts, vec![2, 0]);
    assert!(page.next.is_none());

    let mut q = UserQuery::new(&integ, None);
    q.limit = 0;
    assert!(matches!(
        store.users().list(&q).await.unwrap_err(),
        StoreError::Invalid { field: "limit", .. }
    ));
    let mut q = UserQuery::new(&integ, None);
    q.limit = 1;
    let next = store.users().list(&q).await.unwrap().next.unwrap();
    q.after = Some(next);
    q.sort = UserSort::LastActive;
    assert!(matches!(
        store.users().list(&q).await.unwrap_err(),
        StoreError::Invalid {
            field: "cursor",
            ..
        }
    ));
    assert!("garbage".parse::<UserCursor>().is_err());

    // The rows of a page again, by id: in the order asked, with device counts, without ids
    // that are unknown or of another integration.
    let other = integration(&store, "Other").await;
    let stranger = users(&store, &other, 1).await;
    let many = store
        .users()
        .get_many(&integ, &[&ids[1], "no-such-user", &stranger[0], &ids[0]])
        .await
        .unwrap();
    let got: Vec<(&str, i64)> = many
        .iter()
        .map(|i| (i.user.id.as_str(), i.device_count))
        .collect();
    assert_eq!(got, vec![(ids[1].as_str(), 0), (ids[0].as_str(), 2)]);
    assert!(
        store
            .users()
            .get_many(&integ, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let too_many = vec!["x"; 501];
    assert!(matches!(
        store.users().get_many(&integ, &too_many).await.unwrap_err(),
        StoreError::Invalid {
            field: "user ids",
            ..
        }
    ));
}

async fn users_a_full_sync_did_not_see_are_flagged_not_found(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let other = integration(&store, "Other").await;
    users(&store, &integ, 5).await;
    users(&store, &other, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let sync_started = Timestamp::now();
    // The next full sync sees users 0..3 only.
    let seen: Vec<DirectoryUser> = (0..3).map(directory_user).collect();
    store
        .users()
        .upsert_from_directory(&integ, &seen)
        .await
        .unwrap();
    assert_eq!(
        store
            .users()
            .mark_unseen_not_found(&integ, sync_started)
            .await
            .unwrap(),
        2
    );
    for n in 0..5 {
        let u = store
            .users()
            .find_by_object_id(&integ, &directory_user(n).entra_object_id)
            .await
            .unwrap()
            .unwrap();
        let expected = if n < 3 {
            EntraStatus::Active
        } else {
            EntraStatus::NotFound
        };
        assert_eq!(u.entra_status, expected, "user {n}");
    }
    // Other integrations are untouched, and a second pass changes nothing.
    let o = store
        .users()
        .find_by_object_id(&other, &directory_user(0).entra_object_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.entra_status, EntraStatus::Active);
    assert_eq!(
        store
            .users()
            .mark_unseen_not_found(&integ, sync_started)
            .await
            .unwrap(),
        0
    );
    // Seen again later: active again.
    store
        .users()
        .upsert_from_directory(&integ, &[directory_user(4)])
        .await
        .unwrap();
    let back = store
        .users()
        .find_by_object_id(&integ, &directory_user(4).entra_object_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.entra_status, EntraStatus::Active);
}

crate::store_tests!(
    users_a_full_sync_did_not_see_are_flagged_not_found,
    upsert_inserts_then_refreshes,
    state_status_activity_and_delete,
    counts_by_state,
    keyset_pages_cover_every_user_once_in_every_order,
    search_matches_upn_mail_and_name_case_insensitively,
    list_shows_device_counts_and_refuses_bad_paging,
);
