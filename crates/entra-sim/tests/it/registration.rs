//! FIDO2 registration (POST fido2Methods) and the sign-in ceremony, with credentials made by an
//! independent software authenticator (`tests/interop/entra_sim_authenticator.py`, written on
//! `cryptography` and `cbor2`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Harness, graph_error, start, start_with};
use keybridge_testkit::interop::python;

pub async fn authenticator(request: Value) -> Value {
    use tokio::io::AsyncWriteExt as _;
    let script = keybridge_testkit::interop::script("entra_sim_authenticator.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.to_string().as_bytes())
        .await
        .expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("output");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json answer")
}

pub struct Registered {
    pub method: Value,
    pub key_pem: String,
    pub credential_id: String,
    pub alg: i64,
}

async fn options_for(h: &Harness, token: &str, uid: &str) -> Value {
    let (status, _, body) = h
        .get(
            &format!("/v1.0/users/{uid}/authentication/fido2Methods/creationOptions"),
            token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["publicKey"].clone()
}

/// Creates a credential for `options` with `tweak` applied and POSTs it.
async fn post(h: &Harness, token: &str, uid: &str, create: Value) -> (u16, Value, Value) {
    let made = authenticator(create).await;
    let body = json!({"displayName": "keybridge phone", "publicKeyCredential": made["credential"]});
    let (status, _, answer) = h
        .graph(
            Method::POST,
            &format!("/v1.0/users/{uid}/authentication/fido2Methods"),
            token,
            Some(body),
        )
        .await;
    (status, answer, made)
}

fn sub_code(body: &Value) -> String {
    assert_eq!(graph_error(body), "badRequest", "{body}");
    let inner: Value = serde_json::from_str(body["error"]["message"].as_str().expect("message"))
        .expect("JSON message");
    inner["odata.error"]["values"][0]["value"]
        .as_str()
        .expect("subCode")
        .to_owned()
}

pub async fn register(h: &Harness, token: &str, uid: &str, fmt: &str, alg: i64) -> Registered {
    let options = options_for(h, token, uid).await;
    let (status, method, made) = post(
        h,
        token,
        uid,
        json!({"op": "create", "options": options, "fmt": fmt, "alg": alg,
        "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8"}),
    )
    .await;
    assert_eq!(status, 201, "{method}");
    Registered {
        method,
        key_pem: made["key_pem"].as_str().expect("key").to_owned(),
        credential_id: made["credential_id"].as_str().expect("id").to_owned(),
        alg,
    }
}

async fn users(h: &Harness, token: &str) -> Vec<Value> {
    let (_, _, body) = h
        .get(
            "/v1.0/users?$select=id,userType,accountEnabled&$top=999",
            token,
        )
        .await;
    body["value"].as_array().expect("users").clone()
}

#[tokio::test]
async fn registration_creates_methods_shaped_like_graph() {
    let h = start(10).await;
    let token = h.token().await;
    let all = users(&h, &token).await;
    let uid = all
        .iter()
        .find(|u| u["userType"] == "Member")
        .expect("member")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let packed = register(&h, &token, &uid, "packed-self", -7).await;
    let m = &packed.method;
    assert!(
        m["@odata.context"]
            .as_str()
            .expect("c")
            .ends_with("/authentication/fido2Methods/$entity")
    );
    let id = m["id"].as_str().expect("id");
    assert_eq!(id.len(), 44, "32-byte credential id: 43 characters + 1");
    assert!(id.ends_with('1'));
    assert!(id.starts_with(&packed.credential_id));
    assert_eq!(m["displayName"], "keybridge phone");
    assert_eq!(m["aaGuid"], "cb69481e-8ff7-4039-93ec-0a2729a154a8");
    assert_eq!(m["attestationLevel"], "notAttested");
    assert_eq!(m["passkeyType"], "deviceBound");
    assert_eq!(m["attestationCertificates"], json!([]));
    assert!(m.get("publicKeyCredential").is_none());

    let none_rs256 = register(&h, &token, &uid, "none", -257).await;
    assert_eq!(none_rs256.method["attestationLevel"], "notAttested");

    // Synced (BE) passkeys are recorded as such.
    let options = options_for(&h, &token, &uid).await;
    let (status, synced, _) = post(&h, &token, &uid, json!({"op": "create", "options": options, "fmt": "none", "flags": {"be": true, "bs": true}})).await;
    assert_eq!(status, 201, "{synced}");
    assert_eq!(synced["passkeyType"], "synced");

    let (_, _, list) = h
        .get(
            &format!("/v1.0/users/{uid}/authentication/fido2Methods"),
            &token,
        )
        .await;
    assert_eq!(list["value"].as_array().expect("v").len(), 3);

    // The exclude list now names the credentials.
    let options = options_for(&h, &token, &uid).await;
    let excluded: Vec<&str> = options["excludeCredentials"]
        .as_array()
        .expect("ex")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert!(excluded.contains(&packed.credential_id.as_str()));
}

#[tokio::test]
async fn registration_errors_name_the_failed_check() {
    let h = start(60).await;
    let token = h.token().await;
    let all = users(&h, &token).await;
    let members: Vec<String> = all
        .iter()
        .filter(|u| u["userType"] == "Member")
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .collect();
    let guest = all
        .iter()
        .find(|u| u["userType"] == "Guest")
        .expect("a guest")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (alice, bob) = (&members[0], &members[1]);

    // Another user's challenge.
    let bobs_options = options_for(&h, &token, bob).await;
    let (status, body, _) = post(
        &h,
        &token,
        alice,
        json!({"op": "create", "options": bobs_options, "fmt": "none"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_invalid_challenge");

    let options = options_for(&h, &token, alice).await;
    let cases = [
        (
            json!({"origin": "https://evil.example"}),
            "error_invalid_client_data",
        ),
        (json!({"type": "webauthn.get"}), "error_invalid_client_data"),
        (
            json!({"rpId": "login.microsoftonline.com"}),
            "error_invalid_rp_id",
        ),
        (
            json!({"flags": {"uv": false}}),
            "error_user_verification_required",
        ),
        (
            json!({"flags": {"up": false}}),
            "error_user_verification_required",
        ),
        (json!({"flags": {"bs": true}}), "error_invalid_request"),
    ];
    for (tweak, expected) in cases {
        let mut request = json!({"op": "create", "options": options, "fmt": "packed-self"});
        for (k, v) in tweak.as_object().expect("tweak") {
            request[k] = v.clone();
        }
        let (status, body, _) = post(&h, &token, alice, request).await;
        assert_eq!(status, 400, "{tweak}: {body}");
        assert_eq!(sub_code(&body), expected, "{tweak}");
    }

    // A garbled attestation object and bad base64url.
    let made =
        authenticator(json!({"op": "create", "options": options, "fmt": "packed-self"})).await;
    let mut credential = made["credential"].clone();
    credential["response"]["attestationObject"] = json!("o2NmbXRkbm9uZQ");
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/users/{alice}/authentication/fido2Methods"),
            &token,
            Some(json!({"publicKeyCredential": credential})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_invalid_request");
    credential["response"]["attestationObject"] = json!("!!!not base64!!!");
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/users/{alice}/authentication/fido2Methods"),
            &token,
            Some(json!({"publicKeyCredential": credential})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_invalid_request");
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/users/{alice}/authentication/fido2Methods"),
            &token,
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_invalid_request");

    // Lenient where Entra is: no rawId/type, padded base64url, clientDataJson spelling.
    let mut lenient = made["credential"].clone();
    let object = lenient.as_object_mut().expect("object");
    object.remove("rawId");
    object.remove("type");
    let cdj = lenient["response"]["clientDataJSON"]
        .as_str()
        .expect("cdj")
        .to_owned();
    let padded = format!("{cdj}{}", "=".repeat((4 - cdj.len() % 4) % 4));
    lenient["response"]
        .as_object_mut()
        .expect("response")
        .remove("clientDataJSON");
    lenient["response"]["clientDataJson"] = json!(padded);
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/users/{alice}/authentication/fido2Methods"),
            &token,
            Some(json!({"publicKeyCredential": lenient})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["displayName"], "Passkey",
        "default name without model or displayName"
    );

    // The same credential twice.
    let (status, _, body) = h
        .graph(
            Method::POST,
            &format!("/v1.0/users/{alice}/authentication/fido2Methods"),
            &token,
            Some(json!({"publicKeyCredential": made["credential"]})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_credential_already_exists");

    // Strict single-use challenges.
    h.control(Method::PUT, "/challenges", Some(json!({"singleUse": true})))
        .await;
    let options = options_for(&h, &token, bob).await;
    let (status, _, _) = post(
        &h,
        &token,
        bob,
        json!({"op": "create", "options": options, "fmt": "none"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body, _) = post(
        &h,
        &token,
        bob,
        json!({"op": "create", "options": options, "fmt": "none"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_invalid_challenge");
    h.control(
        Method::PUT,
        "/challenges",
        Some(json!({"singleUse": false})),
    )
    .await;

    // Guests cannot get passkeys.
    let (status, _, body) = h
        .get(
            &format!("/v1.0/users/{guest}/authentication/fido2Methods/creationOptions"),
            &token,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_guest_user_not_supported");

    // Policy: key restrictions, attestation enforcement, exclusion, passkey profiles.
    let carol = &members[2];
    let options = options_for(&h, &token, carol).await;
    h.control(Method::PATCH, "/policy", Some(json!({"keyRestrictions": {"isEnforced": true, "enforcementType": "block", "aaGuids": ["cb69481e-8ff7-4039-93ec-0a2729a154a8"]}}))).await;
    let (status, body, _) = post(&h, &token, carol, json!({"op": "create", "options": options, "fmt": "none", "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8"})).await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_aaguid_restricted");
    h.control(Method::PATCH, "/policy", Some(json!({"keyRestrictions": {"isEnforced": false, "enforcementType": "block", "aaGuids": []}, "isAttestationEnforced": true}))).await;
    let (status, body, _) = post(
        &h,
        &token,
        carol,
        json!({"op": "create", "options": options, "fmt": "packed-self"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_attestation_required");
    h.control(Method::PATCH, "/policy", Some(json!({"isAttestationEnforced": false, "excludeTargets": [{"id": carol, "targetType": "user"}]}))).await;
    let (status, body, _) = post(
        &h,
        &token,
        carol,
        json!({"op": "create", "options": options, "fmt": "none"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        sub_code(&body),
        "error_user_group_restriction_policy_failure"
    );
    h.control(Method::PATCH, "/policy", Some(json!({"excludeTargets": [], "passkeyProfiles": [
        {"id": "00000000-0000-0000-0000-000000000001", "name": "Default", "passkeyTypes": "deviceBound", "attestationEnforcement": "disabled",
         "keyRestrictions": {"isEnforced": false, "enforcementType": "block", "aaGuids": []}}]}))).await;
    let (status, body, _) = post(
        &h,
        &token,
        carol,
        json!({"op": "create", "options": options, "fmt": "none", "flags": {"be": true}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_passkey_type_not_allowed");
    let (status, body, _) = post(
        &h,
        &token,
        carol,
        json!({"op": "create", "options": options, "fmt": "none"}),
    )
    .await;
    assert_eq!(status, 201, "device-bound passes the profile: {body}");
    h.control(Method::PATCH, "/policy", Some(json!({"state": "disabled"})))
        .await;
    let (status, _, body) = h
        .get(
            &format!("/v1.0/users/{carol}/authentication/fido2Methods/creationOptions"),
            &token,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_fido2_method_disabled");
}

async fn sign_in(h: &Harness, user: &str, registered: &Registered, counter: u32) -> (u16, Value) {
    let info = h.sim.info();
    let started: Value = h
        .http
        .post(format!("{}/start", info.signin_url))
        .json(&json!({"user": user}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    assert_eq!(started["rpId"], "login.microsoft.com");
    let challenge = started["challenge"].as_str().expect("challenge");
    let decoded = keybridge_webauthn::base64url::decode_lenient(challenge).expect("b64");
    assert!(decoded.starts_with(b"O."), "challenge is \"O.\" + JWT");
    let assertion = authenticator(json!({"op": "get", "challenge": challenge, "rpId": "login.microsoft.com",
        "key_pem": registered.key_pem, "credential_id": registered.credential_id, "counter": counter, "alg": registered.alg})).await;
    let response = h
        .http
        .post(format!("{}/finish", info.signin_url))
        .json(&json!({"credential": assertion["credential"]}))
        .send()
        .await
        .expect("finish");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn sign_in_ceremony_checks_the_counter() {
    let h = start_with(5, |_| {}).await;
    let token = h.token().await;
    let all = users(&h, &token).await;
    let uid = all
        .iter()
        .find(|u| u["userType"] == "Member" && u["accountEnabled"] == true)
        .expect("member")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let registered = register(&h, &token, &uid, "packed-self", -7).await;

    let (status, body) = sign_in(&h, &uid, &registered, 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userId"], uid.as_str());
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(
        body["access_token"].as_str().expect("token"),
    )
    .expect("claims")
    .claims;
    assert_eq!(claims["idtyp"], "user");
    assert_eq!(claims["oid"], uid.as_str());

    let (status, body) = sign_in(&h, &uid, &registered, 1).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"], json!([135017]), "{body}");
    let (status, _) = sign_in(&h, &uid, &registered, 5).await;
    assert_eq!(status, 200);

    let (_, log) = h.control(Method::GET, "/sign-ins", None).await;
    let entries = log["value"].as_array().expect("log");
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .any(|e| e["possibleClone"] == true && e["status"] == "failure")
    );
    let method_id = registered.method["id"].as_str().expect("id");
    let (_, _, method) = h
        .get(
            &format!("/beta/users/{uid}/authentication/fido2Methods/{method_id}"),
            &token,
        )
        .await;
    assert!(method["lastUsedDateTime"].is_string(), "{method}");

    // Another user's credential is refused.
    let other = all
        .iter()
        .filter(|u| u["userType"] == "Member")
        .nth(1)
        .expect("other")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, body) = sign_in(&h, &other, &registered, 9).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn key_restrictions_apply_again_at_sign_in() {
    let h = start(5).await;
    let token = h.token().await;
    let all = users(&h, &token).await;
    let uid = all
        .iter()
        .find(|u| u["userType"] == "Member" && u["accountEnabled"] == true)
        .expect("member")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let registered = register(&h, &token, &uid, "none", -257).await;
    assert_eq!(
        sign_in(&h, &uid, &registered, 1).await.0,
        200,
        "RS256 signs in"
    );
    h.control(Method::PATCH, "/policy", Some(json!({"keyRestrictions": {"isEnforced": true, "enforcementType": "allow", "aaGuids": ["2fc0579f-8113-47ea-b116-bb5a8db9202a"]}}))).await;
    let (status, body) = sign_in(&h, &uid, &registered, 2).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .expect("d")
            .contains("error_aaguid_restricted"),
        "{body}"
    );
    // A disabled account cannot sign in.
    h.control(Method::PATCH, "/policy", Some(json!({"keyRestrictions": {"isEnforced": false, "enforcementType": "allow", "aaGuids": []}}))).await;
    h.control(
        Method::PATCH,
        &format!("/users/{uid}"),
        Some(json!({"accountEnabled": false})),
    )
    .await;
    let (status, body) = sign_in(&h, &uid, &registered, 3).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"], json!([50057]));
}

#[tokio::test]
async fn expiry_of_tokens_and_challenges() {
    let h = start(5).await;
    let token = h.token().await;
    let all = users(&h, &token).await;
    let uid = all
        .iter()
        .find(|u| u["userType"] == "Member" && u["accountEnabled"] == true)
        .expect("member")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let registered = register(&h, &token, &uid, "packed-self", -7).await;
    let options = options_for(&h, &token, &uid).await;
    let info = h.sim.info().clone();
    let started: Value = h
        .http
        .post(format!("{}/start", info.signin_url))
        .json(&json!({"user": uid}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");

    // Six minutes later: the registration challenge (5 min) and the sign-in challenge (300 s)
    // have expired; the access token (3599 s) has not.
    let (status, _) = h
        .control(Method::PUT, "/clock", Some(json!({"offsetSeconds": 360})))
        .await;
    assert_eq!(status, 200);
    let (status, body, _) = post(
        &h,
        &token,
        &uid,
        json!({"op": "create", "options": options, "fmt": "none"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_invalid_challenge");
    let assertion = authenticator(
        json!({"op": "get", "challenge": started["challenge"], "rpId": "login.microsoft.com",
        "key_pem": registered.key_pem, "credential_id": registered.credential_id, "counter": 1}),
    )
    .await;
    let response = h
        .http
        .post(format!("{}/finish", info.signin_url))
        .json(&json!({"credential": assertion["credential"]}))
        .send()
        .await
        .expect("finish");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error_codes"], json!([135018]));

    // Two hours later the access token has expired.
    h.control(Method::PUT, "/clock", Some(json!({"offsetSeconds": 7200})))
        .await;
    let (status, headers, body) = h.get("/v1.0/users", &token).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(
        body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    // A new token works at the new time.
    let fresh = h.token().await;
    assert_eq!(h.get("/v1.0/users", &fresh).await.0, 200);
}

#[tokio::test]
async fn registration_origins_are_configurable() {
    let h = start(5).await;
    let token = h.token().await;
    let all = users(&h, &token).await;
    let uid = all
        .iter()
        .find(|u| u["userType"] == "Member")
        .expect("member")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = h
        .control(
            Method::PUT,
            "/origins",
            Some(json!({"registration": ["https://login.microsoftonline.com"]})),
        )
        .await;
    assert_eq!(status, 200);
    let options = options_for(&h, &token, &uid).await;
    let (status, body, _) = post(&h, &token, &uid, json!({"op": "create", "options": options, "fmt": "none", "origin": "https://login.microsoft.com"})).await;
    assert_eq!(status, 400);
    assert_eq!(sub_code(&body), "error_invalid_client_data");
    let (status, _, _) = post(&h, &token, &uid, json!({"op": "create", "options": options, "fmt": "none", "origin": "https://login.microsoftonline.com"})).await;
    assert_eq!(status, 201);
    let related: Value = h
        .http
        .get(format!("{}/.well-known/webauthn", h.sim.info().base_url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        related["origins"],
        json!([
            "https://login.live.com",
            "https://login.microsoftonline.com"
        ])
    );
}
