//! Users, delta, groups and members against entra-sim.

use std::collections::HashSet;
use std::ops::ControlFlow;

use keybridge_graph::{BatchRequest, DEFAULT_USER_SELECT, DeltaStart, GraphError, UserChange};
use reqwest::Method;

use crate::sim;

#[tokio::test]
async fn users_page_through_many_pages_without_repeats() {
    let sim = sim::start_with(sim::Options {
        users: 2_100,
        ..Default::default()
    })
    .await;
    let client = sim.client();
    let state = sim.control(Method::GET, "/state", None).await;
    let expected = state["users"].as_u64().unwrap();
    let mut pages = client.list_users(DEFAULT_USER_SELECT, 999).unwrap();
    let mut ids = HashSet::new();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
        for user in page {
            assert!(
                user.user_principal_name.is_some() && user.account_enabled.is_some(),
                "{user:?}"
            );
            assert!(ids.insert(user.id), "a user came twice");
        }
    }
    assert_eq!(ids.len() as u64, expected);
    assert_eq!(sizes.len(), expected.div_ceil(999) as usize, "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|s| *s == 999),
        "{sizes:?}"
    );
    // The callback form sees the same users and can stop early.
    let mut pages_seen = 0;
    let seen = client
        .for_each_user_page(&["id"], 500, |_| {
            pages_seen += 1;
            if pages_seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .unwrap();
    assert_eq!(seen, 1_000);
    assert!(matches!(
        client.list_users(&["id"], 1000),
        Err(GraphError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn users_by_id_and_by_upn_including_guests() {
    let sim = sim::start().await;
    let client = sim.client();
    let all = client
        .list_users(DEFAULT_USER_SELECT, 999)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    let member = all.iter().find(|u| !u.is_guest()).unwrap();
    let by_id = client
        .get_user(&member.id, DEFAULT_USER_SELECT)
        .await
        .unwrap();
    assert_eq!(by_id.user_principal_name, member.user_principal_name);
    let by_upn = client
        .get_user(member.user_principal_name.as_deref().unwrap(), &["id"])
        .await
        .unwrap();
    assert_eq!(by_upn.id, member.id);
    let guest_upn = format!("o'neil_fabrikam.example#EXT#@{}", sim.info.tenant_domain);
    let guest = sim
        .control(
            Method::POST,
            "/users",
            Some(serde_json::json!({"userPrincipalName": guest_upn, "displayName": "Guest", "userType": "Guest"})),
        )
        .await;
    let by_guest_upn = client
        .get_user(&guest_upn, &["id", "userType"])
        .await
        .unwrap();
    assert_eq!(by_guest_upn.id, guest["id"].as_str().unwrap());
    assert!(by_guest_upn.is_guest());
    let error = client
        .get_user("nobody@contoso.com", &[])
        .await
        .unwrap_err();
    let GraphError::NotFound(detail) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(detail.code, "Request_ResourceNotFound");
    assert!(
        detail.ids.request_id.is_some() && detail.ids.client_request_id.is_some(),
        "{detail:?}"
    );
    let found = client
        .get_users_by_ids(&[member.id.clone(), uuid::Uuid::new_v4().to_string()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, member.id);
}

#[tokio::test]
async fn delta_reports_changes_and_removals_after_the_first_round() {
    let sim = sim::start_with(sim::Options {
        users: 60,
        ..Default::default()
    })
    .await;
    let client = sim.client();
    let select: Vec<String> = DEFAULT_USER_SELECT
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut delta = client.users_delta(DeltaStart::Initial { select }).unwrap();
    let mut initial = Vec::new();
    let mut link = None;
    while let Some(page) = delta.next_page().await.unwrap() {
        initial.extend(page.changes);
        link = page.delta_link.or(link);
    }
    let link = link.expect("a delta link at the end");
    assert!(initial.len() >= 60, "{}", initial.len());
    let ids: Vec<String> = initial
        .iter()
        .filter_map(|c| match c {
            UserChange::Updated(u) => Some(u.id.clone()),
            UserChange::Removed { .. } => None,
        })
        .collect();
    sim.control(
        Method::PATCH,
        &format!("/users/{}", ids[0]),
        Some(serde_json::json!({"displayName": "Renamed"})),
    )
    .await;
    sim.control(Method::DELETE, &format!("/users/{}", ids[1]), None)
        .await;
    let mut resumed = client.users_delta(DeltaStart::Resume(link)).unwrap();
    let mut changes = Vec::new();
    let mut next_link = None;
    while let Some(page) = resumed.next_page().await.unwrap() {
        changes.extend(page.changes);
        next_link = page.delta_link.or(next_link);
    }
    assert!(next_link.is_some());
    assert!(
        changes.iter().any(|c| matches!(c, UserChange::Updated(u) if u.id == ids[0] && u.display_name.as_deref() == Some("Renamed"))),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, UserChange::Removed { id, .. } if *id == ids[1])),
        "{changes:?}"
    );
    assert!(changes.len() < 10, "only what changed: {changes:?}");
}

#[tokio::test]
async fn groups_are_found_created_once_and_quoted_safely() {
    let sim = sim::start().await;
    let client = sim.client();
    let name = "O'Brien's Team (Client Paired with Entra)";
    assert!(client.find_groups_by_name(name).await.unwrap().is_empty());
    let created = client
        .ensure_security_group(name, Some("keybridge: paired with Entra"))
        .await
        .unwrap();
    assert_eq!(created.display_name.as_deref(), Some(name));
    assert_eq!(created.security_enabled, Some(true));
    assert_eq!(created.mail_enabled, Some(false));
    let again = client.ensure_security_group(name, None).await.unwrap();
    assert_eq!(again.id, created.id, "no second group");
    let found = client.find_groups_by_name(name).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        client
            .find_groups_by_name("O'Brien's Team")
            .await
            .unwrap()
            .is_empty(),
        "eq, not startswith"
    );
}

#[tokio::test]
async fn members_are_added_and_removed_in_batches_of_twenty() {
    let sim = sim::start_with(sim::Options {
        users: 80,
        ..Default::default()
    })
    .await;
    let client = sim.client();
    let users = client
        .list_users(&["id", "userType"], 999)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).take(60).collect();
    let group = client
        .ensure_security_group("Acme (Eligible for Pairing)", None)
        .await
        .unwrap();
    let before = client.stats().requests;
    let added = client
        .add_group_members(&group.id, &ids[..45])
        .await
        .unwrap();
    assert_eq!(added.applied.len(), 45);
    assert!(added.is_complete());
    assert_eq!(
        client.stats().requests - before,
        3,
        "45 members in 3 PATCHes"
    );
    // 5 already in, 5 new: the chunk falls back to item-by-item and counts the 5 as done.
    let mixed: Vec<String> = ids[40..50].to_vec();
    let change = client.add_group_members(&group.id, &mixed).await.unwrap();
    assert_eq!(change.unchanged.len(), 5, "{change:?}");
    assert_eq!(change.applied.len(), 5, "{change:?}");
    let members = client
        .list_group_members(&group.id)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(members.len(), 50);
    // Removing 10 members and 2 that are not members.
    let mut gone: Vec<String> = ids[..10].to_vec();
    gone.extend(ids[55..57].iter().cloned());
    let removed = client.remove_group_members(&group.id, &gone).await.unwrap();
    assert_eq!(removed.applied.len(), 10, "{removed:?}");
    assert_eq!(removed.unchanged.len(), 2, "{removed:?}");
    let members = client
        .list_group_members(&group.id)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(members.len(), 40);
    // An unknown member fails alone.
    let unknown = uuid::Uuid::new_v4().to_string();
    let change = client
        .add_group_members(&group.id, &[ids[58].clone(), unknown.clone()])
        .await
        .unwrap();
    assert_eq!(change.applied, vec![ids[58].clone()]);
    assert_eq!(change.failed.len(), 1);
    assert_eq!(change.failed[0].member_id, unknown);
    assert!(
        matches!(change.failed[0].error, GraphError::NotFound(_)),
        "{:?}",
        change.failed[0].error
    );
    // An unknown group is one error, not one failure per member.
    let error = client
        .add_group_members(&uuid::Uuid::new_v4().to_string(), &ids[..3])
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::NotFound(_)), "{error:?}");
}

#[tokio::test]
async fn batch_answers_every_request_in_order() {
    let sim = sim::start().await;
    let client = sim.client();
    let users = client
        .list_users(&["id"], 30)
        .unwrap()
        .next_page()
        .await
        .unwrap()
        .unwrap();
    let mut requests: Vec<BatchRequest> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            BatchRequest::new(
                format!("r{i}"),
                "GET",
                format!("/users/{}?$select=id,displayName", u.id),
            )
        })
        .collect();
    requests.push(BatchRequest::new(
        "missing",
        "GET",
        format!("/users/{}", uuid::Uuid::new_v4()),
    ));
    let answers = client.batch(requests).await.unwrap();
    assert_eq!(answers.len(), users.len() + 1);
    for (answer, user) in answers.iter().zip(&users) {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body.as_ref().unwrap()["id"], user.id.as_str());
    }
    let last = answers.last().unwrap();
    assert_eq!(last.id, "missing");
    assert!(matches!(last.error(None), Some(GraphError::NotFound(_))));
    let duplicate = client
        .batch(vec![
            BatchRequest::new("a", "GET", "/users"),
            BatchRequest::new("A", "GET", "/users"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(duplicate, GraphError::InvalidArgument(_)));
}
