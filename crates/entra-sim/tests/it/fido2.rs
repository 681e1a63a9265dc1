//! FIDO2 methods, creationOptions, the policy.

use reqwest::Method;
use serde_json::json;

use crate::common::{graph_error, start};

#[tokio::test]
async fn vendor_methods_list_get_delete() {
    let h = start(30).await;
    let token = h.token().await;
    let (_, _, users) = h.get("/v1.0/users?$select=id&$top=30", &token).await;
    let uid = users["value"][0]["id"].as_str().expect("id").to_owned();
    let (status, method) = h
        .control(Method::POST, &format!("/users/{uid}/fido2Methods"), Some(json!({"aaGuid": "CB69481E-8FF7-4039-93EC-0A2729A154A8", "model": "YubiKey 5 Series", "credentialId": "AAECAwQFBgcICQoLDA0ODw"})))
        .await;
    assert_eq!(status, 201, "{method}");
    assert_eq!(
        method["id"], "AAECAwQFBgcICQoLDA0ODw2",
        "16-byte id: 22 characters + padding digit 2"
    );
    let (status, _, list) = h
        .get(
            &format!("/v1.0/users/{uid}/authentication/fido2Methods"),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    let item = list["value"]
        .as_array()
        .expect("v")
        .iter()
        .find(|m| m["id"] == "AAECAwQFBgcICQoLDA0ODw2")
        .expect("listed")
        .clone();
    assert_eq!(item["aaGuid"], "cb69481e-8ff7-4039-93ec-0a2729a154a8");
    assert_eq!(item["model"], "YubiKey 5 Series");
    assert!(item.get("publicKeyCredential").is_none());
    let (status, _, got) = h
        .get(
            &format!("/beta/users/{uid}/authentication/fido2Methods/AAECAwQFBgcICQoLDA0ODw2"),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        got.get("lastUsedDateTime").is_some(),
        "beta carries lastUsedDateTime"
    );
    let (status, _, _) = h
        .graph(
            Method::DELETE,
            &format!("/v1.0/users/{uid}/authentication/fido2Methods/AAECAwQFBgcICQoLDA0ODw2"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, body) = h
        .graph(
            Method::DELETE,
            &format!("/v1.0/users/{uid}/authentication/fido2Methods/AAECAwQFBgcICQoLDA0ODw2"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    graph_error(&body);
}

#[tokio::test]
async fn creation_options_in_all_four_forms() {
    let h = start(5).await;
    let token = h.token().await;
    let (_, _, users) = h
        .get("/v1.0/users?$select=id,userPrincipalName&$top=1", &token)
        .await;
    let uid = users["value"][0]["id"].as_str().expect("id").to_owned();
    let upn = users["value"][0]["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_owned();
    let minutes = |body: &serde_json::Value| {
        let until = time::OffsetDateTime::parse(
            body["challengeTimeoutDateTime"].as_str().expect("t"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("time");
        (until - time::OffsetDateTime::now_utc()).whole_minutes()
    };
    let base = format!("/v1.0/users/{uid}/authentication/fido2Methods");
    for form in [
        "creationOptions",
        "creationOptions()",
        "creationOptions?challengeTimeoutInMinutes=60",
    ] {
        let (status, _, body) = h.get(&format!("{base}/{form}"), &token).await;
        assert_eq!(status, 200, "{form}: {body}");
        assert!(
            (4..=5).contains(&minutes(&body)),
            "v1.0 is fixed at 5 minutes ({form})"
        );
        let pk = &body["publicKey"];
        assert_eq!(
            pk["rp"],
            json!({"id": "login.microsoft.com", "name": "Microsoft"})
        );
        assert_eq!(pk["user"]["name"], upn.as_str());
        assert_eq!(pk["attestation"], "direct");
        assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
        assert_eq!(
            pk["pubKeyCredParams"],
            json!([{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}])
        );
        let user_id =
            keybridge_webauthn::base64url::decode_lenient(pk["user"]["id"].as_str().expect("uid"))
                .expect("b64");
        assert_eq!(user_id.len(), 48);
    }
    let (status, _, body) = h
        .get(
            &format!("{base}/creationOptions(challengeTimeoutInMinutes=60)"),
            &token,
        )
        .await;
    assert_eq!(status, 400);
    graph_error(&body);
    let beta = format!("/beta/users/{uid}/authentication/fido2Methods");
    let (_, _, body) = h
        .get(
            &format!("{beta}/creationOptions(challengeTimeoutInMinutes=60)"),
            &token,
        )
        .await;
    assert!((59..=60).contains(&minutes(&body)));
    let (_, _, body) = h
        .get(
            &format!("{beta}/creationOptions?challengeTimeoutInMinutes=120"),
            &token,
        )
        .await;
    assert!((119..=120).contains(&minutes(&body)));
    let (status, _, _) = h
        .get(
            &format!("{beta}/creationOptions(challengeTimeoutInMinutes=43201)"),
            &token,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _, _) = h
        .get(
            &format!(
                "/v1.0/users/{}/authentication/fido2Methods/creationOptions",
                uuid::Uuid::new_v4()
            ),
            &token,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn policy_get_patch_and_its_effect() {
    let h = start(5).await;
    let token = h.token().await;
    let path =
        "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/fido2";
    let (status, _, policy) = h.get(path, &token).await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(
        policy["@odata.type"],
        "#microsoft.graph.fido2AuthenticationMethodConfiguration"
    );
    assert_eq!(policy["state"], "enabled");
    assert_eq!(policy["includeTargets"][0]["id"], "all_users");
    assert_eq!(policy["isSelfServiceRegistrationAllowed"], true);
    // Default roles cannot write the policy.
    let patch = json!({"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "isSelfServiceRegistrationAllowed": false});
    let (status, _, body) = h
        .graph(Method::PATCH, path, &token, Some(patch.clone()))
        .await;
    assert_eq!(status, 403);
    graph_error(&body);
    h.control(Method::PUT, "/roles", Some(json!({"roles": ["UserAuthenticationMethod.ReadWrite.All", "Policy.ReadWrite.AuthenticationMethod", "User.Read.All"]}))).await;
    let writer = h.token().await;
    let (status, _, body) = h.graph(Method::PATCH, "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations('Fido2')", &writer, Some(patch)).await;
    assert_eq!(status, 204, "{body}");
    let (_, _, policy) = h.get(path, &writer).await;
    assert_eq!(policy["isSelfServiceRegistrationAllowed"], false);
    let (_, _, users) = h.get("/v1.0/users?$select=id&$top=1", &writer).await;
    let uid = users["value"][0]["id"].as_str().expect("id");
    let (status, _, body) = h
        .get(
            &format!("/v1.0/users/{uid}/authentication/fido2Methods/creationOptions"),
            &writer,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(graph_error(&body), "badRequest");
    let inner: serde_json::Value =
        serde_json::from_str(body["error"]["message"].as_str().expect("m")).expect("json message");
    assert_eq!(
        inner["odata.error"]["values"][0]["value"],
        "error_self_service_registration_disabled"
    );
    let (status, _, _) = h
        .graph(
            Method::PATCH,
            path,
            &writer,
            Some(json!({"state": "sideways"})),
        )
        .await;
    assert_eq!(status, 400);
}
