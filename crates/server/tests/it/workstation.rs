//! Workstation sign-in end to end (issue 8): one phone (keybridge's authenticator on a memory
//! store) paired for two accounts, both passkeys provisioned in entra-sim; the desktop client
//! downloaded, enrolled with its install token and paired with the phone by its QR code; then
//! sign-ins through the phone, checked in entra-sim's sign-in log, and every refusal.

use std::sync::Arc;
use std::time::Duration;

use keybridge_authenticator::{
    AccountSelector, Approval, ApprovalRequest, AttestationPreference, Authenticator,
    CreationOptions, Declined, MakeCredentialSettings, MemoryStore, OriginPolicy, RequestOptions,
};
use keybridge_device_protocol::{
    Account, AccountProof, Answer, ApproveSignIn, ENTRA_RP_ID, IdentityKey, IdentityPublicKey,
    InboxPage, InboxRequest, PairWorkstation, PairedWorkstation, PairingReference, ProtocolVersion,
    RecoveryPinEscrow, RefusalReason, RequestAnswer, RequestCheckError, RequestTarget,
    SignInBinding, SignInStart, SignedHeaders, SignerKind, WorkstationPairingPayload,
    check_provision_request, check_sign_in_request,
};
use keybridge_testkit::Backend;
use keybridge_workstation::{DesktopConfig, EntraSignIn, Error, SignInMode, SignedIn, Workstation};
use rand_core::OsRng;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{self, Harness};

type Presence = fn(&ApprovalRequest<'_>) -> Result<Approval, Declined>;

fn unlocked(_: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
    Ok(Approval {
        user_verified: true,
    })
}

const ORIGIN: &str = "https://login.microsoft.com";

/// One account of the phone: its pairing with the server.
struct Pairing {
    key: IdentityKey,
    device_id: Uuid,
    account: Account,
    user_id: String,
}

async fn signed(
    h: &Harness,
    pairing: &Pairing,
    method: Method,
    path: &str,
    body: &[u8],
) -> (u16, Value) {
    let headers = SignedHeaders::sign(
        SignerKind::Device,
        pairing.device_id,
        &pairing.key,
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

async fn pair_phone(h: &Harness, user_id: &str) -> Pairing {
    let phone = crate::provisioning::pair(h, user_id).await;
    Pairing {
        key: phone.key,
        device_id: phone.device_id,
        account: phone.account,
        user_id: user_id.to_owned(),
    }
}

async fn inbox(h: &Harness, pairing: &Pairing, wait: u64) -> Vec<InboxRequest> {
    let (status, page) = signed(
        h,
        pairing,
        Method::GET,
        &format!("/device/v1/inbox?wait={wait}"),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let page: InboxPage = serde_json::from_value(page).expect("inbox page");
    page.requests.into_iter().map(|item| item.request).collect()
}

async fn answer(h: &Harness, pairing: &Pairing, request_id: Uuid, answer: Answer) -> (u16, Value) {
    let body = serde_json::to_vec(&RequestAnswer::new(request_id, answer)).expect("JSON");
    signed(
        h,
        pairing,
        Method::POST,
        &format!("/device/v1/requests/{request_id}"),
        &body,
    )
    .await
}

async fn wait_for_entra(h: &Harness, user_id: &str) {
    for _ in 0..300 {
        let (_, user) = h
            .call(Method::GET, &format!("/api/v1/users/{user_id}"), None)
            .await;
        if user["state"] == "paired_with_entra" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("user {user_id} did not reach Paired with Entra");
}

/// The phone answers its provisioning request with a passkey from the shared authenticator.
async fn provision(
    h: &Harness,
    phone: &mut Authenticator<MemoryStore, Presence>,
    pairing: &Pairing,
) {
    let mut request = None;
    for _ in 0..5 {
        if let Some(InboxRequest::ProvisionPasskey(found)) = inbox(h, pairing, 10).await.pop() {
            request = Some(found);
            break;
        }
    }
    let request = request.expect("a provisioning request");
    check_provision_request(&request, &pairing.account, OffsetDateTime::now_utc())
        .expect("passes the phone's checks");
    let options =
        CreationOptions::from_json(&request.creation_options.to_string()).expect("options");
    let credential = phone
        .make_credential(
            &options,
            ORIGIN,
            &MakeCredentialSettings {
                attestation: AttestationPreference::Packed,
                tenant: Some(pairing.account.tenant_id.hyphenated().to_string()),
            },
        )
        .expect("passkey made")
        .to_json();
    let (status, body) = answer(
        h,
        pairing,
        request.request_id,
        Answer::Credential { credential },
    )
    .await;
    assert_eq!(status, 204, "{body}");
    wait_for_entra(h, &pairing.user_id).await;
}

/// The next sign-in approval request in the pairing's inbox.
async fn approval_request(h: &Harness, pairing: &Pairing) -> ApproveSignIn {
    for _ in 0..5 {
        for request in inbox(h, pairing, 10).await {
            if let InboxRequest::ApproveSignIn(request) = request {
                return request;
            }
        }
    }
    panic!("no sign-in request reached the phone");
}

/// What keybridge's phone does on approval: the checks, then an assertion from the named
/// account's passkey.
fn approve(
    phone: &mut Authenticator<MemoryStore, Presence>,
    pairing: &Pairing,
    workstation_key: &IdentityPublicKey,
    request: &ApproveSignIn,
) -> Value {
    check_sign_in_request(
        request,
        &pairing.account,
        Some(workstation_key),
        OffsetDateTime::now_utc(),
    )
    .expect("the request passes the phone's checks");
    let options = RequestOptions::from_json(&request.request_options.to_string()).expect("options");
    phone
        .get_assertion(
            &options,
            ORIGIN,
            Some(&AccountSelector::UserName(request.account.upn.clone())),
        )
        .expect("assertion")
        .to_json()
}

async fn sign_ins(h: &Harness) -> Vec<Value> {
    let info = h.sim.info();
    let log: Value = h
        .http
        .get(format!("{}/sign-ins", info.control_url))
        .bearer_auth(&info.control_token)
        .send()
        .await
        .expect("control API")
        .json()
        .await
        .expect("JSON");
    log["value"].as_array().cloned().unwrap_or_default()
}

async fn entra_object_id(h: &Harness, user_id: &str) -> String {
    h.store
        .users()
        .get(user_id)
        .await
        .expect("user")
        .entra_object_id
}

/// Starts a sign-in on the workstation in the background; the phone side runs in the test.
fn start_sign_in(
    workstation: &Arc<Workstation>,
    entra: &EntraSignIn,
    upn: &str,
    mode: SignInMode,
    timeout: Duration,
) -> tokio::task::JoinHandle<Result<SignedIn, Error>> {
    let workstation = workstation.clone();
    let entra = entra.clone();
    let upn = upn.to_owned();
    tokio::spawn(async move { workstation.sign_in(&entra, &upn, mode, timeout).await })
}

async fn desktop_config(h: &Harness, integration_id: &str) -> DesktopConfig {
    let response = h
        .http
        .get(h.url(&format!(
            "/api/v1/integrations/{integration_id}/desktop-client"
        )))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.expect("zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("zip");
    let mut json = Vec::new();
    std::io::Read::read_to_end(
        &mut archive.by_name("keybridge.json").expect("keybridge.json"),
        &mut json,
    )
    .expect("read");
    DesktopConfig::parse(&json).expect("keybridge.json parses")
}

/// The phone scans the workstation's QR code and pairs it for all its accounts.
async fn pair_workstation(
    h: &Harness,
    workstation: &Workstation,
    first: &Pairing,
    further: &[&Pairing],
) -> IdentityPublicKey {
    let code = workstation.start_pairing().await.expect("pairing code");
    let payload = WorkstationPairingPayload::parse(&code.payload, OffsetDateTime::now_utc())
        .expect("the QR payload parses");
    assert_eq!(payload.workstation_id, workstation.state().workstation_id);
    let reference = PairingReference::Id(payload.pairing_id);
    let mut request = PairWorkstation::build(
        reference.clone(),
        &payload.secret.proof_key(),
        first.device_id,
    );
    for other in further {
        request
            .accounts
            .push(AccountProof::sign(&reference, other.device_id, &other.key));
    }
    let body = serde_json::to_vec(&request).expect("JSON");
    let (status, paired) = signed(h, first, Method::POST, "/device/v1/workstations", &body).await;
    assert_eq!(status, 201, "{paired}");
    let paired: PairedWorkstation = serde_json::from_value(paired).expect("answer");
    assert_eq!(paired.workstation_key, payload.workstation_key);
    assert_eq!(paired.computer_name, "DESKTOP-7");
    // The same code cannot pair twice.
    let (status, again) = signed(h, first, Method::POST, "/device/v1/workstations", &body).await;
    support::assert_error(status, &again, 404, "pairing_not_found", None);
    payload.workstation_key
}

async fn workstation_sign_in(backend: Backend) {
    let h = support::start_reachable(backend).await;
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
    let integration_id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{integration_id}/users?limit=3"),
            None,
        )
        .await;
    let user = |n: usize| list["items"][n]["id"].as_str().expect("user").to_owned();
    let (ana_id, ben_id, carl_id) = (user(0), user(1), user(2));

    // One phone, two accounts; both passkeys provisioned in Entra.
    let mut phone: Authenticator<MemoryStore, Presence> = Authenticator::new(
        MemoryStore::with_attestation(
            keybridge_authenticator::pki::generate_device_local(OffsetDateTime::now_utc())
                .expect("attestation"),
        ),
        unlocked as Presence,
    )
    .with_origin_policy(OriginPolicy::with_microsoft_related_origins());
    let ana = pair_phone(&h, &ana_id).await;
    let ben = pair_phone(&h, &ben_id).await;
    let (status, enabled) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{integration_id}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    provision(&h, &mut phone, &ana).await;
    provision(&h, &mut phone, &ben).await;

    // The desktop client: keybridge.json from the download, the install token exchanged once.
    let config = desktop_config(&h, &integration_id).await;
    let state = tempfile::tempdir().expect("temp dir");
    let dir = state.path().join("workstation");
    let enrolled = Workstation::enrol(&config, &dir, "DESKTOP-7")
        .await
        .expect("enrolled");
    assert_eq!(enrolled.state().computer_name, "DESKTOP-7");
    let mode = std::fs::metadata(dir.join(keybridge_workstation::state::STATE_FILE))
        .expect("state file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(matches!(
        Workstation::enrol(&config, &dir, "DESKTOP-7").await,
        Err(Error::AlreadyEnrolled { .. })
    ));
    let mut forged = config.clone();
    forged.install_token = "kbi_not-a-real-token".to_owned();
    let refused = Workstation::enrol(&forged, &state.path().join("other"), "PC-2")
        .await
        .expect_err("unknown install token");
    assert!(refused.to_string().contains("install token"), "{refused}");
    let workstation = Arc::new(Workstation::open(&dir).expect("reopens"));
    assert!(matches!(
        workstation
            .sign_in(
                &EntraSignIn::new(
                    &h.sim.info().base_url,
                    Some(&std::fs::read(&h.sim.info().ca_pem).expect("CA"))
                )
                .expect("entra"),
                &ana.account.upn,
                SignInMode::Windows,
                Duration::from_secs(5)
            )
            .await,
        Err(Error::NotPaired)
    ));

    let workstation_key = pair_workstation(&h, &workstation, &ana, &[&ben]).await;
    let status = workstation.status().await.expect("status");
    let upns: Vec<&str> = status.accounts.iter().map(|a| a.upn.as_str()).collect();
    assert_eq!(upns, [ana.account.upn.as_str(), ben.account.upn.as_str()]);

    // The workstation appears under the phone, with the multi-account warning.
    let (status_code, phones) = h
        .call(Method::GET, &format!("/api/v1/users/{ana_id}/phones"), None)
        .await;
    assert_eq!(status_code, 200, "{phones}");
    assert_eq!(
        phones[0]["workstations"][0]["id"],
        workstation.state().workstation_id.to_string()
    );
    assert_eq!(phones[0]["workstations"][0]["name"], "DESKTOP-7");
    assert!(phones[0]["warning"].as_str().is_some(), "{phones}");
    // The console's Device Details shows admins the same warning.
    let helpdesk = crate::console_pages::session(&h, "desk", keybridge_store::Role::Helpdesk).await;
    let (status_code, page, _) =
        crate::console_pages::get(&h, &helpdesk, &format!("/console/users/{ana_id}/devices")).await;
    assert_eq!(status_code, 200, "{page}");
    assert!(
        page.contains("data-several-accounts") && page.contains("This phone holds 2 accounts"),
        "{page}"
    );

    let info = h.sim.info();
    let entra = EntraSignIn::new(
        &info.base_url,
        Some(&std::fs::read(&info.ca_pem).expect("CA")),
    )
    .expect("entra client");

    // Sign in as Ana: the phone approves, Entra accepts, the subject is Ana's object id.
    let task = start_sign_in(
        &workstation,
        &entra,
        &ana.account.upn,
        SignInMode::Windows,
        Duration::from_secs(60),
    );
    let request = approval_request(&h, &ana).await;
    assert_eq!(request.computer_name, "DESKTOP-7");
    assert_eq!(request.binding.rp_id, ENTRA_RP_ID);
    assert!(
        request.summary().contains("DESKTOP-7"),
        "{}",
        request.summary()
    );
    let assertion = approve(&mut phone, &ana, &workstation_key, &request);
    let credential_id = assertion["id"].as_str().expect("id").to_owned();
    let (status, body) = answer(
        &h,
        &ana,
        request.request_id,
        Answer::Approved {
            assertion: assertion.clone(),
        },
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let signed_in = task.await.expect("task").expect("signed in");
    assert_eq!(signed_in.subject, entra_object_id(&h, &ana_id).await);
    assert_eq!(signed_in.upn, ana.account.upn);
    let log = sign_ins(&h).await;
    let last = log.last().expect("a sign-in was logged");
    assert_eq!(last["status"], "success", "{last}");
    assert_eq!(
        last["userId"].as_str(),
        Some(signed_in.subject.as_str()),
        "{last}"
    );
    assert_eq!(
        last["methodId"]
            .as_str()
            .map(|m| m.starts_with(&credential_id)),
        Some(true),
        "{last}"
    );
    assert_eq!(
        last["signCount"].as_u64(),
        Some(signed_in.sign_count),
        "{last}"
    );
    let first_count = signed_in.sign_count;
    assert!(
        first_count >= 1,
        "the counter rose above registration: {first_count}"
    );

    // A second answer to the same request is refused; so is an answer replayed later.
    let (status, body) = answer(&h, &ana, request.request_id, Answer::Approved { assertion }).await;
    support::assert_error(status, &body, 409, "already_answered", None);

    // Again: the counter grows.
    let task = start_sign_in(
        &workstation,
        &entra,
        &ana.account.upn,
        SignInMode::Windows,
        Duration::from_secs(60),
    );
    let request = approval_request(&h, &ana).await;
    let assertion = approve(&mut phone, &ana, &workstation_key, &request);
    answer(&h, &ana, request.request_id, Answer::Approved { assertion }).await;
    let again = task.await.expect("task").expect("signed in again");
    assert!(
        again.sign_count > first_count,
        "{} then {}",
        first_count,
        again.sign_count
    );

    // Ben on the same phone: his own passkey answers.
    let task = start_sign_in(
        &workstation,
        &entra,
        &ben.account.upn,
        SignInMode::Windows,
        Duration::from_secs(60),
    );
    let request = approval_request(&h, &ben).await;
    assert_eq!(request.account.upn, ben.account.upn);
    let assertion = approve(&mut phone, &ben, &workstation_key, &request);
    assert_ne!(assertion["id"].as_str(), Some(credential_id.as_str()));
    answer(&h, &ben, request.request_id, Answer::Approved { assertion }).await;
    let signed_in = task.await.expect("task").expect("Ben signed in");
    assert_eq!(signed_in.subject, entra_object_id(&h, &ben_id).await);

    // Web (usernameless): Entra lists no credentials; the phone signs with the named account's
    // passkey, not with the one added last (Ben's).
    let task = start_sign_in(
        &workstation,
        &entra,
        &ana.account.upn,
        SignInMode::Web,
        Duration::from_secs(60),
    );
    let request = approval_request(&h, &ana).await;
    assert_eq!(request.request_options["allowCredentials"], json!([]));
    let assertion = approve(&mut phone, &ana, &workstation_key, &request);
    assert_eq!(assertion["id"].as_str(), Some(credential_id.as_str()));
    answer(&h, &ana, request.request_id, Answer::Approved { assertion }).await;
    let signed_in = task.await.expect("task").expect("web sign-in");
    assert_eq!(signed_in.subject, entra_object_id(&h, &ana_id).await);

    // Denied on the phone.
    let task = start_sign_in(
        &workstation,
        &entra,
        &ana.account.upn,
        SignInMode::Windows,
        Duration::from_secs(60),
    );
    let request = approval_request(&h, &ana).await;
    answer(
        &h,
        &ana,
        request.request_id,
        Answer::Denied {
            reason: RefusalReason::UserDeclined,
            message: "Not me".into(),
        },
    )
    .await;
    let denied = task.await.expect("task").expect_err("denied");
    assert!(
        matches!(
            denied,
            Error::Denied {
                reason: RefusalReason::UserDeclined,
                ..
            }
        ),
        "{denied}"
    );
    assert_eq!(denied.exit_code(), 4);
    assert!(denied.to_string().contains("Not me"), "{denied}");

    // Nobody answers: the workstation gives up with a timeout.
    let timed_out = workstation
        .sign_in(
            &entra,
            &ana.account.upn,
            SignInMode::Windows,
            Duration::from_secs(2),
        )
        .await
        .expect_err("timeout");
    assert!(matches!(timed_out, Error::TimedOut), "{timed_out}");
    assert_eq!(timed_out.exit_code(), 5);
    // (The unanswered request stays in Ana's inbox until it lapses; answer it away.)
    let stale = approval_request(&h, &ana).await;
    answer(
        &h,
        &ana,
        stale.request_id,
        Answer::Denied {
            reason: RefusalReason::UserDeclined,
            message: "late".into(),
        },
    )
    .await;

    // An account the phone does not hold.
    let carl_upn = h.store.users().get(&carl_id).await.expect("user").upn;
    let missing = workstation
        .sign_in(
            &entra,
            &carl_upn,
            SignInMode::Windows,
            Duration::from_secs(5),
        )
        .await
        .expect_err("not on the phone");
    assert!(matches!(missing, Error::AccountNotOnPhone(_)), "{missing}");
    assert_eq!(missing.exit_code(), 7);

    // A replayed request (same id) and an altered one (challenge swapped after binding) are
    // refused by the server; so is a binding made with another workstation's key (a relay).
    let options = entra
        .start(
            &workstation.state().tenant_id,
            &ana.account.upn,
            SignInMode::Windows,
        )
        .await
        .expect("challenge");
    let challenge = options["challenge"].as_str().expect("challenge").to_owned();
    let start_with = |key: &IdentityKey, options: Value| {
        let request_id = Uuid::new_v4();
        SignInStart {
            v: ProtocolVersion,
            request_id,
            upn: ana.account.upn.clone(),
            computer_name: "DESKTOP-7".into(),
            request_options: options,
            binding: SignInBinding::sign(
                key,
                request_id,
                workstation.state().workstation_id,
                ENTRA_RP_ID,
                &ana.account.upn,
                &challenge,
                OffsetDateTime::now_utc(),
            )
            .expect("binding"),
        }
    };
    let start = start_with(workstation.key(), options.clone());
    workstation
        .send_sign_in(&start)
        .await
        .expect("first time accepted");
    let replayed = workstation.send_sign_in(&start).await.expect_err("replay");
    assert!(matches!(replayed, Error::Replayed(_)), "{replayed}");
    assert_eq!(replayed.exit_code(), 8);
    let mut altered_options = options.clone();
    altered_options["challenge"] = json!("b3RoZXItY2hhbGxlbmdl");
    let altered = workstation
        .send_sign_in(&start_with(workstation.key(), altered_options))
        .await
        .expect_err("altered");
    assert!(
        matches!(altered, Error::Replayed(ref m) if m.contains("altered")),
        "{altered}"
    );
    let relay = workstation
        .send_sign_in(&start_with(
            &IdentityKey::generate(&mut OsRng),
            options.clone(),
        ))
        .await
        .expect_err("foreign key");
    assert!(matches!(relay, Error::Replayed(_)), "{relay}");
    // The phone checks too: the accepted request passes, and the same request with another
    // challenge, or checked against another workstation's key, is refused.
    let request = approval_request(&h, &ana).await;
    assert_eq!(request.request_id, start.request_id);
    let mut swapped = request.clone();
    swapped.request_options["challenge"] = json!("b3RoZXItY2hhbGxlbmdl");
    assert!(matches!(
        check_sign_in_request(
            &swapped,
            &ana.account,
            Some(&workstation_key),
            OffsetDateTime::now_utc()
        ),
        Err(RequestCheckError::BindingMismatch { field: "challenge" })
    ));
    let other_key = IdentityKey::generate(&mut OsRng).public_key();
    assert!(matches!(
        check_sign_in_request(
            &request,
            &ana.account,
            Some(&other_key),
            OffsetDateTime::now_utc()
        ),
        Err(RequestCheckError::BadBindingSignature)
    ));
    assert!(
        check_sign_in_request(
            &request,
            &ben.account,
            Some(&workstation_key),
            OffsetDateTime::now_utc()
        )
        .is_err()
    );
    answer(
        &h,
        &ana,
        request.request_id,
        Answer::Denied {
            reason: RefusalReason::BadBinding,
            message: "test".into(),
        },
    )
    .await;

    // Recovery PIN: escrowed by the phone, revealed by an admin with an audit event.
    let ws_id = workstation.state().workstation_id;
    let escrow = serde_json::to_vec(&RecoveryPinEscrow {
        v: ProtocolVersion,
        pin: "12345678".into(),
    })
    .expect("JSON");
    let (status, body) = signed(
        &h,
        &ana,
        Method::POST,
        &format!("/device/v1/workstations/{ws_id}/recovery-pin"),
        &escrow,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let short = serde_json::to_vec(&RecoveryPinEscrow {
        v: ProtocolVersion,
        pin: "12ab".into(),
    })
    .expect("JSON");
    let (status, body) = signed(
        &h,
        &ana,
        Method::POST,
        &format!("/device/v1/workstations/{ws_id}/recovery-pin"),
        &short,
    )
    .await;
    support::assert_error(status, &body, 422, "invalid_input", Some("pin"));
    let helpdesk = h.token(keybridge_store::Role::Helpdesk).await;
    let (status, body) = h
        .call_as(
            &helpdesk,
            Method::GET,
            &format!("/api/v1/workstations/{ws_id}/recovery-pin?user_id={ana_id}"),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, revealed) = h
        .call(
            Method::GET,
            &format!("/api/v1/workstations/{ws_id}/recovery-pin?user_id={ana_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed["pin"], "12345678");
    let (_, audit) = h
        .call(
            Method::GET,
            "/api/v1/audit?action=workstation.recovery_pin.reveal",
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");

    // The PIN at the workstation: a wrong one is refused; the right one works once; the phone
    // then sees that it is gone and escrows a new one.
    let wrong = workstation
        .recover(&ana.account.upn, "87654321")
        .await
        .expect_err("wrong PIN");
    assert!(matches!(wrong, Error::RecoveryRefused(_)), "{wrong}");
    workstation
        .recover(&ana.account.upn, "12345678")
        .await
        .expect("recovered");
    let used = workstation
        .recover(&ana.account.upn, "12345678")
        .await
        .expect_err("used");
    assert!(used.to_string().contains("no recovery PIN"), "{used}");
    let (status, listed) = signed(&h, &ana, Method::GET, "/device/v1/workstations", b"").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["workstations"][0]["workstation_id"],
        ws_id.to_string()
    );
    assert_eq!(
        listed["workstations"][0]["recovery_pin_escrowed"], false,
        "{listed}"
    );
    let renewed = serde_json::to_vec(&RecoveryPinEscrow {
        v: ProtocolVersion,
        pin: "24681357".into(),
    })
    .expect("JSON");
    let (status, body) = signed(
        &h,
        &ana,
        Method::POST,
        &format!("/device/v1/workstations/{ws_id}/recovery-pin"),
        &renewed,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    workstation
        .recover(&ana.account.upn, "24681357")
        .await
        .expect("the new PIN works");
    let (_, audit) = h
        .call(
            Method::GET,
            "/api/v1/audit?action=workstation.recovery_pin.use",
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(2), "{audit}");

    // Unpaired from the phone: the workstation says so.
    let (status, body) = signed(
        &h,
        &ana,
        Method::DELETE,
        &format!("/device/v1/workstations/{ws_id}"),
        b"",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let unpaired = workstation
        .sign_in(
            &entra,
            &ana.account.upn,
            SignInMode::Windows,
            Duration::from_secs(5),
        )
        .await
        .expect_err("unpaired");
    assert!(matches!(unpaired, Error::NotPaired), "{unpaired}");
    assert_eq!(unpaired.exit_code(), 7);
    // Paired again, then unpaired from the workstation's side.
    pair_workstation(&h, &workstation, &ana, &[]).await;
    workstation
        .unpair()
        .await
        .expect("unpaired by the workstation");
    assert!(
        workstation
            .status()
            .await
            .expect("status")
            .accounts
            .is_empty()
    );

    // Revoked by an admin: every request is refused with a clear message.
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("/api/v1/workstations/{ws_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let revoked = workstation.status().await.expect_err("revoked");
    assert!(matches!(revoked, Error::Revoked), "{revoked}");
    assert_eq!(revoked.exit_code(), 6);
    let (_, shown) = h
        .call(Method::GET, &format!("/api/v1/workstations/{ws_id}"), None)
        .await;
    assert_eq!(shown["status"], "revoked", "{shown}");

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workstation_sign_in_on_sqlite() {
    workstation_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workstation_sign_in_on_postgres() {
    workstation_sign_in(Backend::Postgres).await;
}
