//! Provisioning end to end (issue 6, lifecycle 7): a phone paired while native login is
//! disabled gets nothing; enabling native login puts a `provision_passkey` request in its
//! inbox; the phone (keybridge's authenticator on a memory store) answers with a passkey made
//! from Graph's creationOptions; the server registers it in entra-sim and the user is Paired
//! with Entra. Running the jobs again creates no second passkey. A phone's refusal is visible
//! on the user with its reason.

use std::time::Duration;

use keybridge_authenticator::{
    AAGUID_STRING, Approval, ApprovalRequest, AttestationPreference, Authenticator,
    CreationOptions, Declined, MakeCredentialSettings, MemoryStore, OriginPolicy,
};
use keybridge_device_protocol::{
    Account, Answer, DeviceInfo, EnrolmentRequest, EnrolmentResponse, IdentityKey, InboxPage,
    InboxRequest, PairingPayload, PairingReference, ProvisionPasskey, RefusalReason, RequestAnswer,
    RequestTarget, SignedHeaders, SignerKind, check_provision_request,
};
use keybridge_entra_sim::{FaultKind, FaultRule};
use keybridge_server::services::provisioning;
use keybridge_testkit::Backend;
use rand_core::OsRng;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{self, Harness};

pub(crate) struct Phone {
    pub(crate) key: IdentityKey,
    pub(crate) device_id: Uuid,
    pub(crate) account: Account,
}

pub(crate) async fn signed(
    h: &Harness,
    phone: &Phone,
    method: Method,
    path: &str,
    body: &[u8],
) -> (u16, Value) {
    let headers = SignedHeaders::sign(
        SignerKind::Device,
        phone.device_id,
        &phone.key,
        &RequestTarget {
            method: method.as_str(),
            path_and_query: path,
            body,
        },
        OffsetDateTime::now_utc(),
        &mut OsRng,
    )
    .expect("signed");
    let mut request = h.http.request(method, h.url(path)).body(body.to_vec());
    for (name, value) in headers.to_header_pairs() {
        request = request.header(name, value);
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Creates the integration and waits for its first sync; returns its id.
pub(crate) async fn integration(h: &Harness) -> String {
    let (status, created) = h
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(h.integration_body("Contoso Passkeys")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let job = h
        .wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Invites the user and pairs a phone through the QR payload, as `keybridge device pair` does.
pub(crate) async fn pair(h: &Harness, user_id: &str) -> Phone {
    let (status, invited) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{user_id}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let token = invited["link"]
        .as_str()
        .expect("link")
        .rsplit('/')
        .next()
        .expect("token")
        .to_owned();
    let view: Value = h
        .http
        .get(h.url(&format!("/invite/{token}/pairing")))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let payload = PairingPayload::parse(
        view["qr_payload"].as_str().expect("payload"),
        OffsetDateTime::now_utc(),
    )
    .expect("the QR payload parses");
    let key = IdentityKey::generate(&mut OsRng);
    let request = EnrolmentRequest::build(
        PairingReference::Id(payload.pairing_id),
        &payload.secret.proof_key(),
        &payload.server_url,
        &key,
        DeviceInfo::new("Ana's phone", "Pixel 8", "Android 15").expect("device"),
    );
    let response = h
        .http
        .post(h.url("/device/v1/pair"))
        .json(&request)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 201);
    let enrolled: EnrolmentResponse = response.json().await.expect("response");
    Phone {
        key,
        device_id: enrolled.device_id,
        account: enrolled.account,
    }
}

pub(crate) async fn user_view(h: &Harness, user_id: &str) -> Value {
    let (status, user) = h
        .call(Method::GET, &format!("/api/v1/users/{user_id}"), None)
        .await;
    assert_eq!(status, 200, "{user}");
    user
}

pub(crate) async fn inbox(h: &Harness, phone: &Phone, wait: u64) -> Vec<InboxRequest> {
    let path = format!("/device/v1/inbox?wait={wait}");
    let (status, page) = signed(h, phone, Method::GET, &path, b"").await;
    assert_eq!(status, 200, "{page}");
    let page: InboxPage = serde_json::from_value(page).expect("an inbox page");
    page.requests.into_iter().map(|item| item.request).collect()
}

/// The phone's one provisioning request, waiting for it to arrive.
pub(crate) async fn provisioning_request(h: &Harness, phone: &Phone) -> ProvisionPasskey {
    for _ in 0..3 {
        let mut requests = inbox(h, phone, 10).await;
        if let Some(InboxRequest::ProvisionPasskey(request)) = requests.pop() {
            assert!(requests.is_empty(), "one request at a time: {requests:?}");
            return request;
        }
    }
    panic!("no provisioning request reached the phone in 30 s");
}

/// What keybridge's phone app does with the request: check it, make the passkey.
pub(crate) fn make_passkey(phone: &Phone, request: &ProvisionPasskey) -> Value {
    check_provision_request(request, &phone.account, OffsetDateTime::now_utc())
        .expect("the request passes the phone's checks");
    let options = CreationOptions::from_json(&request.creation_options.to_string())
        .expect("Graph's creationOptions are understood");
    // As `keybridge device init` does: a device-local attestation identity.
    let attestation =
        keybridge_authenticator::pki::generate_device_local(OffsetDateTime::now_utc())
            .expect("an attestation identity");
    let presence = |_: &ApprovalRequest<'_>| -> Result<Approval, Declined> {
        Ok(Approval {
            user_verified: true,
        })
    };
    let mut authenticator =
        Authenticator::new(MemoryStore::with_attestation(attestation), presence)
            .with_origin_policy(OriginPolicy::with_microsoft_related_origins());
    authenticator
        .make_credential(
            &options,
            "https://login.microsoft.com",
            &MakeCredentialSettings {
                attestation: AttestationPreference::Packed,
                tenant: Some(phone.account.tenant_id.hyphenated().to_string()),
            },
        )
        .expect("the passkey is made")
        .to_json()
}

pub(crate) async fn answer(h: &Harness, phone: &Phone, request_id: Uuid, answer: Answer) {
    let body = serde_json::to_vec(&RequestAnswer::new(request_id, answer)).expect("JSON");
    let path = format!("/device/v1/requests/{request_id}");
    let (status, reply) = signed(h, phone, Method::POST, &path, &body).await;
    assert_eq!(status, 204, "{reply}");
}

/// Polls the user until `done` holds (30 s at most).
pub(crate) async fn wait_for_user(
    h: &Harness,
    user_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut user = user_view(h, user_id).await;
    for _ in 0..300 {
        if done(&user) {
            return user;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        user = user_view(h, user_id).await;
    }
    panic!("the user did not reach the expected state in 30 s: {user}");
}

async fn provisioning_end_to_end(backend: Backend) {
    let h = support::start_reachable(backend).await;
    let integration_id = integration(&h).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=3"),
            None,
        )
        .await;
    let user_id = list["items"][0]["id"].as_str().expect("a user").to_owned();
    let refusing_user_id = list["items"][1]["id"].as_str().expect("a user").to_owned();
    let blocked_user_id = list["items"][2]["id"].as_str().expect("a user").to_owned();
    let phone = pair(&h, &user_id).await;
    let user = user_view(&h, &user_id).await;
    assert_eq!(user["state"], "paired_with_keybridge", "{user}");

    // Native login disabled (the default): nothing is asked of the phone.
    assert!(inbox(&h, &phone, 1).await.is_empty());

    let (status, enabled) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    let job = h
        .wait_for_job(enabled["provisioning_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // The phone is asked; until it answers the user shows as waiting.
    let request = provisioning_request(&h, &phone).await;
    assert_eq!(request.account.entra_user_id, phone.account.entra_user_id);
    let waiting = user_view(&h, &user_id).await;
    assert_eq!(waiting["state"], "paired_with_keybridge", "{waiting}");
    assert!(
        waiting["provisioning_error"]
            .as_str()
            .is_some_and(|text| text.starts_with("Waiting for the phone")),
        "{waiting}"
    );
    let credential = make_passkey(&phone, &request);
    let credential_id = credential["id"].as_str().expect("id").to_owned();
    // Entra registers the passkey but the answer is lost: the uncertain POST is resolved by
    // reading the user's methods, not by posting again.
    h.sim.set_faults(vec![FaultRule {
        path: "/users".to_owned(),
        method: Some("POST".to_owned()),
        kind: FaultKind::DropAfter,
        fraction: 1.0,
        count: Some(1),
    }]);
    answer(
        &h,
        &phone,
        request.request_id,
        Answer::Credential { credential },
    )
    .await;

    let user = wait_for_user(&h, &user_id, |u| u["state"] == "paired_with_entra").await;
    assert_eq!(user["provisioning_error"], Value::Null, "{user}");
    assert_eq!(
        h.sim.counters().dropped,
        1,
        "the registration's answer was dropped"
    );

    // Entra holds exactly one passkey for the user: keybridge's AAGUID, this credential.
    let stored_user = h.store.users().get(&user_id).await.expect("user");
    let stored_integration = h
        .store
        .integrations()
        .get(&integration_id)
        .await
        .expect("integration");
    let graph = h
        .server
        .app()
        .graph()
        .for_integration(&stored_integration)
        .expect("client");
    let methods = graph
        .list_fido2_methods(&stored_user.entra_object_id)
        .await
        .expect("methods");
    assert_eq!(methods.len(), 1, "{methods:?}");
    assert_eq!(methods[0].aa_guid.as_deref(), Some(AAGUID_STRING));
    assert!(methods[0].id.starts_with(&credential_id), "{methods:?}");
    let credentials = h
        .store
        .credentials()
        .list_for_user(&user_id)
        .await
        .expect("credentials");
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0].credential_id, credential_id);
    assert_eq!(
        credentials[0].entra_method_id.as_deref(),
        Some(methods[0].id.as_str())
    );

    // The queued group step moves the user to "(Client Paired with Entra)" and out of
    // "Users Not Yet Enrolled".
    let groups = stored_integration.groups.clone();
    let members = |group: Option<String>| {
        let graph = graph.clone();
        async move {
            graph
                .list_group_members(&group.expect("group"))
                .expect("members")
                .collect_all()
                .await
                .expect("members")
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<String>>()
        }
    };
    let object_id = stored_user.entra_object_id.clone();
    let mut in_step = false;
    for _ in 0..300 {
        in_step = members(groups.paired_entra.clone())
            .await
            .contains(&object_id)
            && !members(groups.not_enrolled.clone())
                .await
                .contains(&object_id)
            && !members(groups.paired_keybridge.clone())
                .await
                .contains(&object_id);
        if in_step {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_step, "the user's groups follow Paired with Entra");

    // Running the jobs again (as after a crash that lost the state change): no second
    // passkey, no second question to the phone, and the user ends Paired with Entra.
    h.store
        .users()
        .set_state(
            &user_id,
            keybridge_core::UserState::PairedWithKeybridge,
            false,
        )
        .await
        .expect("state reset");
    let again = h
        .store
        .jobs()
        .enqueue(provisioning::register_passkey(
            &request.request_id.to_string(),
        ))
        .await
        .expect("queued");
    let job = h.wait_for_job(again.id()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let phone_row = h
        .store
        .phones()
        .get(&phone.device_id.to_string())
        .await
        .expect("phone");
    let again = h
        .store
        .jobs()
        .enqueue(provisioning::provision_user(&user_id, &phone_row.id))
        .await
        .expect("queued");
    let job = h.wait_for_job(again.id()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let user = user_view(&h, &user_id).await;
    assert_eq!(user["state"], "paired_with_entra", "{user}");
    let methods = graph
        .list_fido2_methods(&stored_user.entra_object_id)
        .await
        .expect("methods");
    assert_eq!(methods.len(), 1, "still one passkey: {methods:?}");
    assert!(inbox(&h, &phone, 0).await.is_empty());

    // Pairing while native login is enabled asks the new phone at once; a refusal is
    // recorded on the user with its reason, and nothing is created in Entra.
    let refusing = pair(&h, &refusing_user_id).await;
    let request = provisioning_request(&h, &refusing).await;
    answer(
        &h,
        &refusing,
        request.request_id,
        Answer::Refused {
            reason: RefusalReason::UserDeclined,
            message: "The user declined.".to_owned(),
        },
    )
    .await;
    let user = wait_for_user(&h, &refusing_user_id, |u| {
        u["provisioning_error"]
            .as_str()
            .is_some_and(|text| text.starts_with("The phone refused"))
    })
    .await;
    assert_eq!(user["state"], "paired_with_keybridge", "{user}");
    assert!(
        user["provisioning_error"].as_str().is_some_and(
            |text| text.contains("user_declined") && text.contains("The user declined.")
        ),
        "{user}"
    );
    let refusing_entra_id = h
        .store
        .users()
        .get(&refusing_user_id)
        .await
        .expect("user")
        .entra_object_id;
    let methods = graph
        .list_fido2_methods(&refusing_entra_id)
        .await
        .expect("methods");
    // (The seeded user may hold another vendor's security key.)
    assert!(
        methods
            .iter()
            .all(|m| m.aa_guid.as_deref() != Some(AAGUID_STRING)),
        "{methods:?}"
    );

    // Entra refuses the passkey (a key restriction blocks keybridge's AAGUID): the reason is
    // on the user, who stays Paired with keybridge.
    let status = h
        .control(
            Method::PATCH,
            "/policy",
            Some(json!({"keyRestrictions": {
                "isEnforced": true, "enforcementType": "block", "aaGuids": [AAGUID_STRING]
            }})),
        )
        .await;
    assert_eq!(status, 200);
    let blocked = pair(&h, &blocked_user_id).await;
    let request = provisioning_request(&h, &blocked).await;
    let credential = make_passkey(&blocked, &request);
    answer(
        &h,
        &blocked,
        request.request_id,
        Answer::Credential { credential },
    )
    .await;
    let user = wait_for_user(&h, &blocked_user_id, |u| {
        u["provisioning_error"]
            .as_str()
            .is_some_and(|text| text.starts_with("Microsoft Entra refused the passkey"))
    })
    .await;
    assert_eq!(user["state"], "paired_with_keybridge", "{user}");
    let blocked_credentials = h
        .store
        .credentials()
        .list_for_user(&blocked_user_id)
        .await
        .expect("credentials");
    assert_eq!(blocked_credentials.len(), 1);
    assert_eq!(
        blocked_credentials[0].status,
        keybridge_store::CredentialStatus::Failed
    );

    // The admin lifts the restriction and turns native login off and on: the phone is asked
    // for a new passkey, which Entra now takes.
    let status = h
        .control(
            Method::PATCH,
            "/policy",
            Some(json!({"keyRestrictions": {
                "isEnforced": false, "enforcementType": "block", "aaGuids": []
            }})),
        )
        .await;
    assert_eq!(status, 200);
    for enabled in [false, true] {
        let (status, body) = h
            .call(
                Method::PUT,
                &format!("/api/v1/integrations/{integration_id}/native-login"),
                Some(json!({ "enabled": enabled })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let asked_again = provisioning_request(&h, &blocked).await;
    assert_ne!(asked_again.request_id, request.request_id);
    let credential = make_passkey(&blocked, &asked_again);
    answer(
        &h,
        &blocked,
        asked_again.request_id,
        Answer::Credential { credential },
    )
    .await;
    wait_for_user(&h, &blocked_user_id, |u| u["state"] == "paired_with_entra").await;
    let blocked_entra_id = h
        .store
        .users()
        .get(&blocked_user_id)
        .await
        .expect("user")
        .entra_object_id;
    let ours = graph
        .list_fido2_methods(&blocked_entra_id)
        .await
        .expect("methods")
        .into_iter()
        .filter(|m| m.aa_guid.as_deref() == Some(AAGUID_STRING))
        .count();
    assert_eq!(ours, 1);

    let events = h
        .store
        .audit()
        .list(&keybridge_store::AuditFilter::default(), None, 200)
        .await
        .expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "user.provision.request",
        "user.passkey_registered",
        "user.provision.refused",
        "user.provision.failed",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_end_to_end_on_sqlite() {
    provisioning_end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_end_to_end_on_postgres() {
    provisioning_end_to_end(Backend::Postgres).await;
}

/// An offline phone leaves its request waiting; once the challenge lapses unanswered, the
/// request is renewed with a new challenge, and answering the renewed one registers the
/// passkey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_challenge_is_renewed() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let integration_id = integration(&h).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=1"),
            None,
        )
        .await;
    let user_id = list["items"][0]["id"].as_str().expect("a user").to_owned();
    let phone = pair(&h, &user_id).await;
    // Entra's clock 285 s behind: its 5-minute challenge lapses 15 s from now.
    let status = h
        .control(Method::PUT, "/clock", Some(json!({"offsetSeconds": -285})))
        .await;
    assert_eq!(status, 200);
    let (status, enabled) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    let first = provisioning_request(&h, &phone).await;
    let lifetime = first.expires_at - OffsetDateTime::now_utc();
    assert!(
        lifetime <= time::Duration::seconds(16),
        "the request lapses with its challenge: {lifetime}"
    );
    let status = h
        .control(Method::PUT, "/clock", Some(json!({"offsetSeconds": 0})))
        .await;
    assert_eq!(status, 200);

    // The phone stays offline past the expiry; then a new request is waiting.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let renewed = provisioning_request(&h, &phone).await;
    assert_ne!(renewed.request_id, first.request_id);
    assert_ne!(
        renewed.creation_options["publicKey"]["challenge"],
        first.creation_options["publicKey"]["challenge"],
        "a new challenge"
    );
    assert!(renewed.expires_at - OffsetDateTime::now_utc() > time::Duration::minutes(4));

    // The lapsed request can no longer be answered; the renewed one registers the passkey.
    let body = serde_json::to_vec(&RequestAnswer::new(
        first.request_id,
        Answer::Credential {
            credential: make_passkey(&phone, &renewed),
        },
    ))
    .expect("JSON");
    let path = format!("/device/v1/requests/{}", first.request_id);
    let (status, reply) = signed(&h, &phone, Method::POST, &path, &body).await;
    assert_eq!(status, 410, "{reply}");
    let credential = make_passkey(&phone, &renewed);
    answer(
        &h,
        &phone,
        renewed.request_id,
        Answer::Credential { credential },
    )
    .await;
    wait_for_user(&h, &user_id, |u| u["state"] == "paired_with_entra").await;
    let stored_user = h.store.users().get(&user_id).await.expect("user");
    let stored_integration = h
        .store
        .integrations()
        .get(&integration_id)
        .await
        .expect("integration");
    let methods = h
        .server
        .app()
        .graph()
        .for_integration(&stored_integration)
        .expect("client")
        .list_fido2_methods(&stored_user.entra_object_id)
        .await
        .expect("methods");
    let ours = methods
        .iter()
        .filter(|m| m.aa_guid.as_deref() == Some(AAGUID_STRING))
        .count();
    assert_eq!(ours, 1, "{methods:?}");
    h.stop().await;
}

/// Disabling native login stops provisioning: a phone answering afterwards gets nothing
/// registered, and the user says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_native_login_before_the_phone_answers_registers_nothing() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let integration_id = integration(&h).await;
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=1"),
            None,
        )
        .await;
    let user_id = list["items"][0]["id"].as_str().expect("a user").to_owned();
    let phone = pair(&h, &user_id).await;
    let native_login_path = format!("/api/v1/integrations/{integration_id}/native-login");
    let native_login = |enabled: bool| {
        h.call(
            Method::PUT,
            &native_login_path,
            Some(json!({ "enabled": enabled })),
        )
    };
    let (status, body) = native_login(true).await;
    assert_eq!(status, 200, "{body}");
    let request = provisioning_request(&h, &phone).await;
    let (status, body) = native_login(false).await;
    assert_eq!(status, 200, "{body}");
    let credential = make_passkey(&phone, &request);
    answer(
        &h,
        &phone,
        request.request_id,
        Answer::Credential { credential },
    )
    .await;
    let user = wait_for_user(&h, &user_id, |u| {
        u["provisioning_error"]
            .as_str()
            .is_some_and(|text| text.contains("was disabled before the phone answered"))
    })
    .await;
    assert_eq!(user["state"], "paired_with_keybridge", "{user}");
    let stored_user = h.store.users().get(&user_id).await.expect("user");
    let stored_integration = h
        .store
        .integrations()
        .get(&integration_id)
        .await
        .expect("integration");
    let methods = h
        .server
        .app()
        .graph()
        .for_integration(&stored_integration)
        .expect("client")
        .list_fido2_methods(&stored_user.entra_object_id)
        .await
        .expect("methods");
    assert!(
        methods
            .iter()
            .all(|m| m.aa_guid.as_deref() != Some(AAGUID_STRING)),
        "{methods:?}"
    );
    h.stop().await;
}
