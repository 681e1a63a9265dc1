//! Pairing a phone and its signed `/device/v1` requests, over HTTPS, with the messages built
//! by `keybridge-device-protocol` as a phone builds them.

use std::time::Duration;

use keybridge_device_protocol::{
    Answer, DeviceInfo, EnrolmentRequest, EnrolmentResponse, IdentityKey, InboxPage, Nonce,
    PairingKey, PairingPayload, PairingReference, PairingSecret, RefusalReason, RequestAnswer,
    RequestTarget, ServerUrl, ShortCode, SignedHeaders, SignerKind, TlsPin,
};
use keybridge_store::{DeviceRequestKind, NewDeviceRequest};
use keybridge_testkit::Backend;
use rand_core::OsRng;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{self, Harness, assert_error};

/// An integration synced from entra-sim, and one invited user: (user id, invite token).
pub(crate) async fn invited_user(h: &Harness) -> (String, String) {
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
    let id = created["integration"]["id"].as_str().expect("id");
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{id}/users?limit=1"),
            None,
        )
        .await;
    let user_id = list["items"][0]["id"].as_str().expect("a user").to_owned();
    let token = invite(h, &user_id).await;
    (user_id, token)
}

pub(crate) async fn invite(h: &Harness, user_id: &str) -> String {
    let (status, invited) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{user_id}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let link = invited["link"].as_str().expect("link");
    link.rsplit('/').next().expect("token").to_owned()
}

/// What the Device Manager page fetches (no admin token: the invitation is the credential).
async fn pairing_view(h: &Harness, token: &str) -> (u16, Value) {
    let response = h
        .http
        .get(h.url(&format!("/invite/{token}/pairing")))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

pub(crate) async fn post_enrolment(h: &Harness, request: &EnrolmentRequest) -> (u16, Value) {
    let response = h
        .http
        .post(h.url("/device/v1/pair"))
        .json(request)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

pub(crate) fn enrolment(
    reference: PairingReference,
    key: &PairingKey,
    server: &ServerUrl,
    device_key: &IdentityKey,
) -> EnrolmentRequest {
    EnrolmentRequest::build(
        reference,
        key,
        server,
        device_key,
        DeviceInfo::new("Ana's phone", "Pixel 8", "Android 15").expect("device"),
    )
}

struct PairedPhone {
    key: IdentityKey,
    device_id: Uuid,
}

async fn send_signed(
    h: &Harness,
    method: Method,
    path: &str,
    body: &[u8],
    headers: &SignedHeaders,
) -> (u16, Value) {
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

fn sign(phone: &PairedPhone, method: &Method, path: &str, body: &[u8]) -> SignedHeaders {
    SignedHeaders::sign(
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
    .expect("signed")
}

async fn signed(
    h: &Harness,
    phone: &PairedPhone,
    method: Method,
    path: &str,
    body: &[u8],
) -> (u16, Value) {
    let headers = sign(phone, &method, path, body);
    send_signed(h, method, path, body, &headers).await
}

pub(crate) async fn user_view(h: &Harness, user_id: &str) -> Value {
    let (status, user) = h
        .call(Method::GET, &format!("/api/v1/users/{user_id}"), None)
        .await;
    assert_eq!(status, 200, "{user}");
    user
}

fn provision_payload(request_id: Uuid, account: &Value) -> Value {
    let expires = (OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    json!({
        "v": 1,
        "type": "provision_passkey",
        "request_id": request_id,
        "account": account,
        "rp_id": "login.microsoft.com",
        "creation_options": {"publicKey": {"rp": {"id": "login.microsoft.com", "name": "Microsoft"}}},
        "expires_at": expires,
    })
}

/// The main flow: QR pairing, signed requests, the inbox, unpair.
async fn pairing_by_qr_then_inbox_and_unpair(backend: Backend) {
    let h = support::start_reachable(backend).await;
    let (user_id, token) = invited_user(&h).await;
    let (status, view) = pairing_view(&h, &token).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["short_code"].as_str().expect("code").len(),
        7,
        "{view}"
    );
    let payload = PairingPayload::parse(
        view["qr_payload"].as_str().expect("payload"),
        OffsetDateTime::now_utc(),
    )
    .expect("the QR payload parses");
    assert_eq!(
        payload.server_url.origin(),
        h.server.base_url.trim_end_matches('/')
    );
    let server_pin = TlsPin::parse(&h.server.tls_pin).expect("pin");
    assert!(payload.tls_pin.matches(&server_pin));
    let lifetime = payload.expires_at - OffsetDateTime::now_utc();
    assert!(
        lifetime <= time::Duration::seconds(60) && lifetime > time::Duration::seconds(50),
        "{lifetime}"
    );

    let device_key = IdentityKey::generate(&mut OsRng);
    let request = enrolment(
        PairingReference::Id(payload.pairing_id),
        &payload.secret.proof_key(),
        &payload.server_url,
        &device_key,
    );
    let (status, body) = post_enrolment(&h, &request).await;
    assert_eq!(status, 201, "{body}");
    let response: EnrolmentResponse = serde_json::from_value(body.clone()).expect("response");
    response
        .confirm_pin(&payload.tls_pin)
        .expect("the pin is confirmed");
    assert_eq!(response.integration_id, "ContosoPasskeys");
    let user = user_view(&h, &user_id).await;
    assert_eq!(user["state"], "paired_with_keybridge", "{user}");
    assert_eq!(user["device_count"], 1, "{user}");
    assert_eq!(
        response.account.upn,
        user["username"].as_str().expect("upn")
    );
    let phone_row = h
        .store
        .phones()
        .get(&response.device_id.to_string())
        .await
        .expect("phone");
    assert_eq!(phone_row.device_key, device_key.public_key().to_base64url());
    assert_eq!(
        (phone_row.name.as_str(), phone_row.model.as_str()),
        ("Ana's phone", "Pixel 8")
    );

    // Single use: the same QR code again, and the used invitation.
    let again = enrolment(
        PairingReference::Id(payload.pairing_id),
        &payload.secret.proof_key(),
        &payload.server_url,
        &IdentityKey::generate(&mut OsRng),
    );
    let (status, body) = post_enrolment(&h, &again).await;
    assert_error(status, &body, 409, "pairing_used", None);
    let (status, body) = pairing_view(&h, &token).await;
    assert_error(status, &body, 410, "invite_unusable", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("was already used"),
        "{body}"
    );

    let phone = PairedPhone {
        key: device_key,
        device_id: response.device_id,
    };
    let (status, page) = signed(&h, &phone, Method::GET, "/device/v1/inbox?wait=0", b"").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["requests"], json!([]));

    // Replayed, stale, badly signed, unknown device.
    let headers = sign(&phone, &Method::GET, "/device/v1/inbox?wait=0", b"");
    let (status, _) = send_signed(&h, Method::GET, "/device/v1/inbox?wait=0", b"", &headers).await;
    assert_eq!(status, 200);
    let (status, body) =
        send_signed(&h, Method::GET, "/device/v1/inbox?wait=0", b"", &headers).await;
    assert_error(status, &body, 401, "replayed_nonce", None);
    let stale = SignedHeaders::sign_with_nonce(
        SignerKind::Device,
        phone.device_id,
        &phone.key,
        &RequestTarget {
            method: "GET",
            path_and_query: "/device/v1/inbox?wait=0",
            body: b"",
        },
        OffsetDateTime::now_utc().unix_timestamp() - 400,
        Nonce::generate(&mut OsRng),
    )
    .expect("signed");
    let (status, body) = send_signed(&h, Method::GET, "/device/v1/inbox?wait=0", b"", &stale).await;
    assert_error(status, &body, 401, "stale_timestamp", None);
    let impostor = PairedPhone {
        key: IdentityKey::generate(&mut OsRng),
        device_id: phone.device_id,
    };
    let (status, body) = signed(&h, &impostor, Method::GET, "/device/v1/inbox?wait=0", b"").await;
    assert_error(status, &body, 401, "bad_signature", None);
    // Signed for another path than the one requested.
    let elsewhere = sign(&phone, &Method::GET, "/device/v1/inbox?wait=1", b"");
    let (status, body) =
        send_signed(&h, Method::GET, "/device/v1/inbox?wait=0", b"", &elsewhere).await;
    assert_error(status, &body, 401, "bad_signature", None);
    let stranger = PairedPhone {
        key: IdentityKey::generate(&mut OsRng),
        device_id: Uuid::new_v4(),
    };
    let (status, body) = signed(&h, &stranger, Method::GET, "/device/v1/inbox?wait=0", b"").await;
    assert_error(status, &body, 401, "unknown_device", None);
    let unsigned = h
        .http
        .get(h.url("/device/v1/inbox"))
        .send()
        .await
        .expect("sent");
    let status = unsigned.status().as_u16();
    let body: Value = unsigned.json().await.expect("JSON");
    assert_error(status, &body, 401, "unsigned_request", None);

    // The long poll wakes when a request arrives.
    let request_id = Uuid::now_v7();
    let account = serde_json::to_value(&response.account).expect("account");
    let poll = {
        let http = h.http.clone();
        let url = h.url("/device/v1/inbox?wait=20");
        let headers = sign(&phone, &Method::GET, "/device/v1/inbox?wait=20", b"");
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut request = http.get(url);
            for (name, value) in headers.to_header_pairs() {
                request = request.header(name, value);
            }
            let response = request.send().await.expect("poll");
            let status = response.status().as_u16();
            let page: InboxPage = response.json().await.expect("page");
            (status, page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = h
        .store
        .device_requests()
        .create_with_id(
            &request_id.to_string(),
            NewDeviceRequest {
                phone_id: response.device_id.to_string(),
                kind: DeviceRequestKind::Provision,
                payload: provision_payload(request_id, &account),
                workstation_id: None,
                ttl: Duration::from_secs(300),
            },
        )
        .await
        .expect("request queued");
    let (status, page, waited) = poll.await.expect("poll task");
    assert_eq!(status, 200);
    assert_eq!(page.requests.len(), 1);
    assert_eq!(page.requests[0].request.request_id(), request_id);
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(stored.user_id, user_id);

    // The answer is kept once.
    let refusal = RequestAnswer::new(
        request_id,
        Answer::Refused {
            reason: RefusalReason::UserDeclined,
            message: "Not now".to_owned(),
        },
    );
    let body = serde_json::to_vec(&refusal).expect("JSON");
    let path = format!("/device/v1/requests/{request_id}");
    let (status, answer) = signed(&h, &phone, Method::POST, &path, &body).await;
    assert_eq!(status, 204, "{answer}");
    let (status, answer) = signed(&h, &phone, Method::POST, &path, &body).await;
    assert_error(status, &answer, 409, "already_answered", None);
    let approval = serde_json::to_vec(&RequestAnswer::new(
        request_id,
        Answer::Approved {
            assertion: json!({}),
        },
    ))
    .expect("JSON");
    let (status, answer) = signed(&h, &phone, Method::POST, &path, &approval).await;
    assert_error(status, &answer, 422, "answer_does_not_fit", None);

    // Unpair: back to Pending with the warning; the device is unknown afterwards.
    let (status, body) = signed(&h, &phone, Method::DELETE, "/device/v1/device", b"").await;
    assert_eq!(status, 204, "{body}");
    let user = user_view(&h, &user_id).await;
    assert_eq!(user["state"], "pending", "{user}");
    assert_eq!(
        user["warning"], "This user unpaired from keybridge.",
        "{user}"
    );
    assert_eq!(user["device_count"], 0, "{user}");
    let (status, body) = signed(&h, &phone, Method::GET, "/device/v1/inbox?wait=0", b"").await;
    assert_error(status, &body, 401, "unknown_device", None);
    let events = h
        .store
        .audit()
        .list(&keybridge_store::AuditFilter::default(), None, 100)
        .await
        .expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "device.pair",
        "device.pair.failed",
        "device.request.answer",
        "device.unpair",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    let paired = events
        .iter()
        .find(|e| e.action == "device.pair")
        .expect("pair event");
    assert_eq!(
        paired.target.as_deref(),
        Some(format!("user:{user_id}").as_str())
    );
    assert_eq!(paired.source_addr.as_deref(), Some("127.0.0.1"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_by_qr_then_inbox_and_unpair_on_sqlite() {
    pairing_by_qr_then_inbox_and_unpair(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_by_qr_then_inbox_and_unpair_on_postgres() {
    pairing_by_qr_then_inbox_and_unpair(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_by_short_code_and_what_is_refused() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let (user_id, token) = invited_user(&h).await;
    let server = ServerUrl::parse(&h.server.base_url).expect("server URL");
    let (_, view) = pairing_view(&h, &token).await;
    let code = ShortCode::parse(view["short_code"].as_str().expect("code")).expect("code parses");
    let payload = PairingPayload::parse(
        view["qr_payload"].as_str().expect("payload"),
        OffsetDateTime::now_utc(),
    )
    .expect("payload");

    // A wrong secret for the right session, another server, an unknown code.
    let wrong = enrolment(
        PairingReference::Id(payload.pairing_id),
        &PairingSecret::generate(&mut OsRng).proof_key(),
        &server,
        &IdentityKey::generate(&mut OsRng),
    );
    let (status, body) = post_enrolment(&h, &wrong).await;
    assert_error(status, &body, 401, "bad_pairing_proof", None);
    let elsewhere = ServerUrl::parse("https://keybridge.example.com").expect("URL");
    let (status, body) = post_enrolment(
        &h,
        &enrolment(
            PairingReference::Code(code.clone()),
            &code.proof_key(),
            &elsewhere,
            &IdentityKey::generate(&mut OsRng),
        ),
    )
    .await;
    assert_error(status, &body, 401, "wrong_server", None);
    let unknown = ShortCode::generate(&mut OsRng);
    let (status, body) = post_enrolment(
        &h,
        &enrolment(
            PairingReference::Code(unknown.clone()),
            &unknown.proof_key(),
            &server,
            &IdentityKey::generate(&mut OsRng),
        ),
    )
    .await;
    assert_error(status, &body, 404, "pairing_not_found", None);
    let failed = h
        .store
        .pairing_sessions()
        .get(&payload.pairing_id.to_string())
        .await
        .expect("session");
    assert_eq!(failed.failed_attempts, 1);

    // The code pairs (the typed form is case-insensitive).
    let typed = ShortCode::parse(&code.grouped().to_lowercase()).expect("typed");
    let device_key = IdentityKey::generate(&mut OsRng);
    let (status, body) = post_enrolment(
        &h,
        &enrolment(
            PairingReference::Code(typed.clone()),
            &typed.proof_key(),
            &server,
            &device_key,
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        user_view(&h, &user_id).await["state"],
        "paired_with_keybridge"
    );
    let code_phone = PairedPhone {
        key: device_key,
        device_id: Uuid::try_parse(body["device_id"].as_str().expect("device id")).expect("uuid"),
    };
    // A used code reads like an unknown one.
    let (status, body) = post_enrolment(
        &h,
        &enrolment(
            PairingReference::Code(code.clone()),
            &code.proof_key(),
            &server,
            &IdentityKey::generate(&mut OsRng),
        ),
    )
    .await;
    assert_error(status, &body, 404, "pairing_not_found", None);

    // An expired session, and one closed by five wrong proofs: both read as unknown.
    let second_user = h
        .store
        .users()
        .list(&keybridge_store::UserQuery::new(
            h.store
                .users()
                .get(&user_id)
                .await
                .expect("user")
                .integration_id,
            Some(keybridge_core::UserState::Pending),
        ))
        .await
        .expect("users")
        .items
        .into_iter()
        .map(|item| item.user)
        .find(|u| u.id != user_id)
        .expect("another pending user");
    let secret = PairingSecret::generate(&mut OsRng);
    let short_lived = h
        .store
        .pairing_sessions()
        .create_with_proof_key(
            keybridge_store::NewPairingSession {
                kind: keybridge_store::PairingKind::Phone,
                user_id: Some(second_user.id.clone()),
                invite_id: None,
                workstation_id: None,
                short_code: ShortCode::generate(&mut OsRng).as_str().to_owned(),
                ttl: Duration::from_millis(1),
            },
            &secret.proof_key().to_base64url(),
        )
        .await
        .expect("session");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let short_lived_id = Uuid::try_parse(&short_lived.id).expect("uuid");
    let (status, body) = post_enrolment(
        &h,
        &enrolment(
            PairingReference::Id(short_lived_id),
            &secret.proof_key(),
            &server,
            &IdentityKey::generate(&mut OsRng),
        ),
    )
    .await;
    assert_error(status, &body, 404, "pairing_not_found", None);
    let second_token = invite(&h, &second_user.id).await;
    let (_, view) = pairing_view(&h, &second_token).await;
    let payload = PairingPayload::parse(
        view["qr_payload"].as_str().expect("payload"),
        OffsetDateTime::now_utc(),
    )
    .expect("payload");
    for _ in 0..5 {
        let (status, body) = post_enrolment(
            &h,
            &enrolment(
                PairingReference::Id(payload.pairing_id),
                &PairingSecret::generate(&mut OsRng).proof_key(),
                &server,
                &IdentityKey::generate(&mut OsRng),
            ),
        )
        .await;
        assert_error(status, &body, 401, "bad_pairing_proof", None);
    }
    let (status, body) = post_enrolment(
        &h,
        &enrolment(
            PairingReference::Id(payload.pairing_id),
            &payload.secret.proof_key(),
            &server,
            &IdentityKey::generate(&mut OsRng),
        ),
    )
    .await;
    assert_error(status, &body, 404, "pairing_not_found", None);
    assert_eq!(user_view(&h, &second_user.id).await["state"], "pending");

    // Too many failures from one address: 429 with Retry-After.
    let mut last = 0;
    for _ in 0..12 {
        let guess = ShortCode::generate(&mut OsRng);
        let response = h
            .http
            .post(h.url("/device/v1/pair"))
            .json(&enrolment(
                PairingReference::Code(guess.clone()),
                &guess.proof_key(),
                &server,
                &IdentityKey::generate(&mut OsRng),
            ))
            .send()
            .await
            .expect("sent");
        last = response.status().as_u16();
        if last == 429 {
            assert!(response.headers().contains_key("retry-after"));
            break;
        }
    }
    assert_eq!(last, 429, "guessing is limited per address");

    // A phone with a passkey recorded is unpaired by a job, which first deletes the passkey
    // from Entra (this one never reached Entra: nothing to delete there).
    h.store
        .credentials()
        .create(keybridge_store::NewCredential {
            user_id: user_id.clone(),
            phone_id: code_phone.device_id.to_string(),
            credential_id: "Y3JlZGVudGlhbC1pZA".to_owned(),
            rp_id: "login.microsoft.com".to_owned(),
            aaguid: "f6773e06-415d-4c83-ba1c-c91297b3d387".to_owned(),
            display_name: "keybridge".to_owned(),
        })
        .await
        .expect("credential recorded");
    let (status, body) = signed(&h, &code_phone, Method::DELETE, "/device/v1/device", b"").await;
    assert_eq!(status, 202, "{body}");
    let job = h
        .wait_for_job(body["job_id"].as_str().expect("the job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let user = user_view(&h, &user_id).await;
    assert_eq!(user["state"], "pending", "{user}");
    assert_eq!(
        user["warning"], "This user unpaired from keybridge.",
        "{user}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_not_allowed_and_expired_invites_cannot_pair() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let (user_id, token) = invited_user(&h).await;
    let user = h.store.users().get(&user_id).await.expect("user");
    let integration_id = user.integration_id.clone();
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{integration_id}/restrict-domains"),
            Some(json!({"domains": ["fabrikam.example"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = pairing_view(&h, &token).await;
    assert_error(status, &body, 403, "domain_not_allowed", None);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("{} is not allowed to pair", user.upn)),
        "{message}"
    );

    let (status, body) = pairing_view(&h, "not-a-real-token").await;
    assert_error(status, &body, 404, "invite_not_found", None);
    let (_, short) = h
        .store
        .invites()
        .create(&user_id, "admin:test", Duration::from_millis(1))
        .await
        .expect("invite");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, body) = pairing_view(&h, &short).await;
    assert_error(status, &body, 410, "invite_unusable", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("has expired"),
        "{body}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_purges_nonces_past_their_window() {
    let h = support::start_reachable(Backend::Sqlite).await;
    let now = keybridge_store::Timestamp::now();
    let past = now.minus(Duration::from_secs(10));
    assert!(
        h.store
            .request_nonces()
            .remember(
                "device:old:AAAAAAAAAAAAAAAAAAAAAA",
                past,
                past.minus(Duration::from_secs(300))
            )
            .await
            .expect("remembered")
    );
    assert!(
        h.store
            .request_nonces()
            .remember(
                "device:live:AAAAAAAAAAAAAAAAAAAAAA",
                now.plus(Duration::from_secs(300)),
                now
            )
            .await
            .expect("remembered")
    );
    let done = keybridge_server::device_v1::housekeep(h.server.app())
        .await
        .expect("housekeeping");
    // The server's own periodic housekeeping may have purged it first: either way it is gone,
    // so the same nonce is fresh again.
    assert!(done.nonces_purged <= 1, "{done:?}");
    assert!(
        h.store
            .request_nonces()
            .remember(
                "device:old:AAAAAAAAAAAAAAAAAAAAAA",
                past,
                past.minus(Duration::from_secs(300))
            )
            .await
            .expect("checked"),
        "the nonce past its window was purged"
    );
    // The live nonce is still remembered: a replay of it is refused.
    assert!(
        !h.store
            .request_nonces()
            .remember(
                "device:live:AAAAAAAAAAAAAAAAAAAAAA",
                now.plus(Duration::from_secs(300)),
                now
            )
            .await
            .expect("checked")
    );
    h.stop().await;
}
