//! Authentication methods, FIDO2 passkeys, creationOptions and the FIDO2 policy against
//! entra-sim.

use keybridge_graph::{Fido2PolicyPatch, GraphClient, GraphError, odata::fido2_method_id};
use reqwest::Method;

use crate::{passkey, sim};

const AAGUID: &str = "9c835346-796b-4c27-8898-d6032f515cc5";

async fn a_member(client: &GraphClient) -> String {
    let users = client
        .list_users(&["id", "userType", "accountEnabled"], 999)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    users
        .into_iter()
        .find(|u| !u.is_guest() && u.account_enabled == Some(true))
        .expect("a member")
        .id
}

#[tokio::test]
async fn methods_are_listed_read_and_deleted() {
    let sim = sim::start().await;
    let client = sim.client();
    let user = a_member(&client).await;
    let before = client.list_fido2_methods(&user).await.unwrap().len();
    let added = sim
        .control(
            Method::POST,
            &format!("/users/{user}/fido2Methods"),
            Some(serde_json::json!({"aaGuid": AAGUID, "displayName": "YubiKey 5"})),
        )
        .await;
    let method_id = added["id"].as_str().unwrap();
    let methods = client.list_fido2_methods(&user).await.unwrap();
    assert_eq!(methods.len(), before + 1);
    let all = client.list_authentication_methods(&user).await.unwrap();
    assert!(all.iter().any(
        |m| m.odata_type == "#microsoft.graph.fido2AuthenticationMethod" && m.id == method_id
    ));
    let method = client.get_fido2_method(&user, method_id).await.unwrap();
    assert_eq!(method.aa_guid.as_deref(), Some(AAGUID));
    assert_eq!(method.display_name.as_deref(), Some("YubiKey 5"));
    assert!(method.created().is_some());
    client.delete_fido2_method(&user, method_id).await.unwrap();
    assert_eq!(
        client.list_fido2_methods(&user).await.unwrap().len(),
        before
    );
    let again = client
        .delete_fido2_method(&user, method_id)
        .await
        .unwrap_err();
    assert!(matches!(again, GraphError::NotFound(_)), "{again:?}");
    let missing = client.get_fido2_method(&user, method_id).await.unwrap_err();
    assert!(matches!(missing, GraphError::NotFound(_)), "{missing:?}");
}

#[tokio::test]
async fn creation_options_v1_and_beta_with_a_timeout() {
    let sim = sim::start().await;
    let client = sim.client();
    let user = a_member(&client).await;
    let v1 = client.fido2_creation_options(&user, None).await.unwrap();
    assert_eq!(v1.public_key.rp.id, "login.microsoft.com");
    assert!(!v1.public_key.challenge.is_empty());
    assert!(
        v1.public_key
            .pub_key_cred_params
            .iter()
            .any(|p| p.alg == -7)
    );
    let expiry = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
            - time::OffsetDateTime::now_utc()
    };
    let v1_left = expiry(v1.challenge_timeout_date_time.as_deref().unwrap());
    assert!(
        v1_left <= time::Duration::minutes(5) && v1_left > time::Duration::minutes(4),
        "{v1_left}"
    );
    let beta = client
        .fido2_creation_options(&user, Some(60))
        .await
        .unwrap();
    let beta_left = expiry(beta.challenge_timeout_date_time.as_deref().unwrap());
    assert!(
        beta_left <= time::Duration::minutes(60) && beta_left > time::Duration::minutes(59),
        "{beta_left}"
    );
    let before = client.stats().requests;
    let refused = client
        .fido2_creation_options(&user, Some(1))
        .await
        .unwrap_err();
    assert!(matches!(refused, GraphError::InvalidArgument(_)));
    assert_eq!(client.stats().requests, before, "refused before sending");
}

#[tokio::test]
async fn a_passkey_is_registered_once_even_when_created_twice() {
    let sim = sim::start().await;
    for client in [
        sim.client(),
        GraphClient::new(sim.config(sim.certificate())).unwrap(),
    ] {
        let user = a_member(&client).await;
        let options = client.fido2_creation_options(&user, None).await.unwrap();
        let credential = passkey::new_credential(
            &options.public_key.challenge,
            AAGUID.parse().unwrap(),
            "keybridge phone",
        );
        let created = client
            .create_fido2_method(&user, &credential)
            .await
            .unwrap();
        assert_eq!(created.id, fido2_method_id(&credential.credential_id));
        assert_eq!(created.credential_id().unwrap(), credential.credential_id);
        assert_eq!(created.passkey_type.as_deref(), Some("deviceBound"));
        // Sending the same registration again (a job retried after its answer was lost) finds
        // the existing passkey instead of failing or adding one.
        let again = client
            .create_fido2_method(&user, &credential)
            .await
            .unwrap();
        assert_eq!(again.id, created.id);
        let ours = client
            .list_fido2_methods(&user)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.id == created.id)
            .count();
        assert_eq!(ours, 1);
    }
}

#[tokio::test]
async fn a_refused_registration_says_why() {
    let sim = sim::start().await;
    let client = sim.client();
    let user = a_member(&client).await;
    let credential =
        passkey::new_credential("bm90LWEtY2hhbGxlbmdl", AAGUID.parse().unwrap(), "phone");
    let error = client
        .create_fido2_method(&user, &credential)
        .await
        .unwrap_err();
    let GraphError::InvalidRequest(detail) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        detail.sub_code.as_deref(),
        Some("error_invalid_challenge"),
        "{detail:?}"
    );
}

#[tokio::test]
async fn the_fido2_policy_is_read_and_changed() {
    let sim = sim::start().await;
    let client = sim.client();
    let policy = client.fido2_policy().await.unwrap();
    assert!(policy.allows_provisioning(), "{policy:?}");
    assert!(policy.include_targets.iter().any(|t| t.id == "all_users"));
    // Without Policy.ReadWrite.AuthenticationMethod the PATCH is refused, naming it.
    let patch = Fido2PolicyPatch {
        is_self_service_registration_allowed: Some(false),
        ..Default::default()
    };
    let error = client.update_fido2_policy(&patch).await.unwrap_err();
    let GraphError::Forbidden {
        missing_permission, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        *missing_permission,
        Some("Policy.ReadWrite.AuthenticationMethod")
    );
    let mut roles: Vec<&str> = keybridge_entra_sim::DEFAULT_ROLES.to_vec();
    roles.push("Policy.ReadWrite.AuthenticationMethod");
    sim.roles(&roles).await;
    let client = sim.client();
    client.update_fido2_policy(&patch).await.unwrap();
    let policy = client.fido2_policy().await.unwrap();
    assert_eq!(policy.is_self_service_registration_allowed, Some(false));
    assert!(!policy.allows_provisioning());
    assert_eq!(
        policy.state.as_deref(),
        Some("enabled"),
        "other fields unchanged"
    );
}
