//! Tokens and credentials against entra-sim.

use keybridge_graph::{ClientCredential, GraphClient, GraphError, PermissionReport};

use crate::sim;

#[tokio::test]
async fn both_credential_kinds_get_a_token_with_every_permission() {
    let sim = sim::start().await;
    for credential in [sim.secret(), sim.certificate()] {
        let client = GraphClient::new(sim.config(credential)).unwrap();
        let report = client.check_permissions().await.unwrap();
        let PermissionReport::Known { granted, missing } = &report else {
            panic!("{report:?}")
        };
        assert!(missing.is_empty(), "{report:?}");
        assert!(
            granted
                .iter()
                .any(|r| r == "UserAuthenticationMethod.ReadWrite.All")
        );
        // And the token works on Graph.
        let mut pages = client.list_users(&["id"], 5).unwrap();
        assert_eq!(pages.next_page().await.unwrap().unwrap().len(), 5);
    }
}

#[tokio::test]
async fn wrong_secret_unknown_app_and_unknown_tenant_name_the_fix() {
    let sim = sim::start().await;
    let wrong =
        GraphClient::new(sim.config(ClientCredential::secret("not-the-secret").unwrap())).unwrap();
    let GraphError::Unauthorized(failure) = wrong.check_permissions().await.unwrap_err() else {
        panic!()
    };
    assert_eq!(failure.aadsts, Some(7000215), "{failure}");
    assert!(failure.to_string().contains("not its Secret ID"));

    let mut config = sim.config(sim.secret());
    config.client_id = uuid::Uuid::new_v4().to_string();
    let GraphError::Unauthorized(failure) = GraphClient::new(config)
        .unwrap()
        .check_permissions()
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(failure.aadsts, Some(700016), "{failure}");

    let mut config = sim.config(sim.secret());
    config.tenant = uuid::Uuid::new_v4().to_string();
    let GraphError::Unauthorized(failure) = GraphClient::new(config)
        .unwrap()
        .check_permissions()
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(failure.aadsts, Some(90002), "{failure}");
    assert!(failure.to_string().contains("tenant"), "{failure}");
}

#[tokio::test]
async fn an_expired_secret_is_reported_as_expired() {
    let sim = sim::start().await;
    let created = sim
        .control(
            reqwest::Method::POST,
            "/app/secrets",
            Some(serde_json::json!({"endDateTime": "2020-01-01T00:00:00Z"})),
        )
        .await;
    let expired = created["secretText"].as_str().unwrap();
    let client = GraphClient::new(sim.config(ClientCredential::secret(expired).unwrap())).unwrap();
    let GraphError::Unauthorized(failure) = client.check_permissions().await.unwrap_err() else {
        panic!()
    };
    assert_eq!(failure.aadsts, Some(7000222), "{failure}");
    assert!(failure.to_string().contains("expired"));
}

#[tokio::test]
async fn a_certificate_not_registered_for_the_app_is_refused() {
    let sim = sim::start().await;
    let key = KEY_PKCS8;
    let certificate = {
        let key_pair =
            rcgen::KeyPair::from_pem_and_sign_algo(key, &rcgen::PKCS_RSA_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["other.test".into()]).unwrap();
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        params.self_signed(&key_pair).unwrap().pem()
    };
    let credential = ClientCredential::certificate_pem(&format!("{certificate}{key}")).unwrap();
    let client = GraphClient::new(sim.config(credential)).unwrap();
    let GraphError::Unauthorized(failure) = client.check_permissions().await.unwrap_err() else {
        panic!()
    };
    assert_eq!(failure.aadsts, Some(700027), "{failure}");
    assert!(
        failure.to_string().contains("upload the certificate"),
        "{failure}"
    );
}

const KEY_PKCS8: &str = include_str!("../../src/testdata/other-rsa-pkcs8.pem");

#[tokio::test]
async fn missing_permissions_are_named_and_a_403_names_the_role() {
    let sim = sim::start().await;
    sim.roles(&["User.ReadWrite.All"]).await;
    let client = sim.client();
    let report = client.check_permissions().await.unwrap();
    let messages = report.messages();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("UserAuthenticationMethod.ReadWrite.All is not granted")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Directory.ReadWrite.All is not granted"))
    );
    let users = client
        .list_users(&["id"], 1)
        .unwrap()
        .next_page()
        .await
        .unwrap()
        .unwrap();
    let error = client.list_fido2_methods(&users[0].id).await.unwrap_err();
    let GraphError::Forbidden {
        missing_permission, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert!(
        missing_permission
            .unwrap()
            .contains("UserAuthenticationMethod.ReadWrite.All")
    );
    assert!(error.to_string().contains("admin consent"), "{error}");
}

#[tokio::test]
async fn the_narrow_passkey_permission_is_enough() {
    let sim = sim::start().await;
    sim.roles(&[
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
        "UserAuthMethod-Passkey.ReadWrite.All",
    ])
    .await;
    let report = sim.client().check_permissions().await.unwrap();
    assert!(report.missing_required().is_empty(), "{report:?}");
}

#[tokio::test]
async fn without_the_ca_bundle_tls_fails() {
    let sim = sim::start().await;
    let mut config = sim.config(sim.secret());
    config.ca_bundle_pem = None;
    let error = GraphClient::new(config)
        .unwrap()
        .check_permissions()
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::Transport { .. }), "{error:?}");
}

#[tokio::test]
async fn an_expired_token_is_replaced_after_graph_refuses_it() {
    // A fake clock that never moves keeps the client from refreshing early, so the 2-second
    // token really expires on the server's side and Graph answers 401.
    let sim = sim::start_with(sim::Options {
        token_lifetime_secs: 2,
        ..Default::default()
    })
    .await;
    let clock = std::sync::Arc::new(keybridge_graph::FakeClock::new());
    let client = GraphClient::with_clock(sim.config(sim.secret()), clock).unwrap();
    let first = client
        .list_users(&["id"], 1)
        .unwrap()
        .next_page()
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let user = client.get_user(&first[0].id, &["id"]).await.unwrap();
    assert_eq!(user.id, first[0].id);
    assert_eq!(client.stats().token_fetches, 2);
}

#[tokio::test]
async fn concurrent_first_calls_share_one_token() {
    let sim = sim::start().await;
    let client = GraphClient::new(sim.config(sim.certificate())).unwrap();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list_users(&["id"], 3).unwrap().next_page().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().unwrap().len(), 3);
    }
    assert_eq!(client.stats().token_fetches, 1);
}
