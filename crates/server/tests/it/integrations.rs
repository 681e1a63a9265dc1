//! Integrations against entra-sim: the lifecycle (on SQLite and PostgreSQL) and every bad
//! input.

use keybridge_store::Role;
use keybridge_testkit::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{self, Harness, assert_error};

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

async fn integration_lifecycle(backend: Backend) {
    let h = support::start(backend).await;
    let info = h.sim.info().clone();

    // Create with the client secret.
    let (status, created) = h
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(h.integration_body("Contoso Passkeys")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let integration = &created["integration"];
    let id = integration["id"].as_str().expect("id").to_owned();
    assert_eq!(integration["internal_id"], "ContosoPasskeys");
    assert_eq!(integration["tenant_id"], info.tenant_id.to_string());
    assert_eq!(
        integration["native_login_enabled"], false,
        "disabled by default"
    );
    assert_eq!(integration["credential"]["kind"], "client_secret");
    for group in [
        "eligible_for_pairing",
        "paired_with_keybridge",
        "paired_with_entra",
        "not_yet_enrolled",
    ] {
        assert!(
            integration["groups"][group].is_string(),
            "{group}: {integration}"
        );
    }
    assert!(
        !created.to_string().contains(&info.client_secret),
        "the secret is never returned"
    );
    // entra-sim's new tenant passes every pre-flight check.
    let checks = created["preflight"].as_array().expect("checks");
    assert!(!checks.is_empty());
    assert!(checks.iter().all(|c| c["status"] == "ok"), "{checks:?}");
    assert_eq!(created["permissions"]["known"], true);

    // The four groups exist in the tenant, named after the application.
    let graph = h
        .server
        .app()
        .graph()
        .for_integration(&h.store.integrations().get(&id).await.expect("stored"))
        .expect("client");
    for name in [
        "Contoso Passkeys (Eligible for Pairing)",
        "Contoso Passkeys (Client Paired with keybridge)",
        "Contoso Passkeys (Client Paired with Entra)",
        "Users Not Yet Enrolled",
    ] {
        let found = graph.find_groups_by_name(name).await.expect("search");
        assert_eq!(found.len(), 1, "{name}");
    }

    // The first directory sync ran: the sim's users are in the store.
    let job = h
        .wait_for_job(created["sync_job_id"].as_str().expect("job id"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(
        job["progress_done"].as_i64().is_some_and(|n| n >= 20),
        "{job}"
    );
    assert_eq!(
        job["max_attempts"], 3,
        "jobs.max_attempts from the configuration"
    );
    let counts = h.store.users().count_by_state(&id).await.expect("counts");
    assert!(counts.pending >= 20, "{counts:?}");
    let (status, shown) = h
        .call(Method::GET, &format!("/api/v1/integrations/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(shown["last_sync_at"].is_string(), "{shown}");

    // Sync on demand.
    let (status, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let job = h
        .wait_for_job(queued["job_id"].as_str().expect("job id"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // Listing never shows secrets.
    let (status, list) = h.call(Method::GET, "/api/v1/integrations", None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(!list.to_string().contains(&info.client_secret));

    // A duplicate name, and a name equal once spaces are removed: 409 naming the field.
    let (status, body) = h
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(h.integration_body("Contoso Passkeys")),
        )
        .await;
    assert_error(status, &body, 409, "duplicate", Some("name"));
    let (status, body) = h
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(h.integration_body("ContosoPass keys")),
        )
        .await;
    assert_error(status, &body, 409, "duplicate", Some("name"));
    assert!(message(&body).contains("ContosoPasskeys"), "{body}");

    // Name, tenant id and client id never change; the support e-mail does.
    let path = format!("/api/v1/integrations/{id}");
    for (field, value) in [
        ("name", json!("Fabrikam")),
        ("tenant_id", json!("11111111-2222-4333-8444-555555555555")),
        ("client_id", json!("11111111-2222-4333-8444-555555555555")),
    ] {
        let (status, body) = h
            .call(Method::PATCH, &path, Some(json!({ field: value })))
            .await;
        assert_error(status, &body, 422, "immutable_field", Some(field));
        assert!(
            message(&body).contains("cannot be changed: delete the integration and add it again"),
            "{body}"
        );
    }
    let (status, body) = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({"tenant_id": info.tenant_id.to_string().to_uppercase(), "support_email": "help@contoso.com"})),
        )
        .await;
    assert_eq!(
        status, 200,
        "the same tenant id in another case is no change: {body}"
    );
    assert_eq!(body["support_email"], "help@contoso.com");

    // Rotation: a wrong secret is refused and the stored one kept; a good one is saved.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("{path}/credential"),
            Some(json!({"client_secret": "wrong-secret-value"})),
        )
        .await;
    assert_error(
        status,
        &body,
        422,
        "credential_rejected",
        Some("client_secret"),
    );
    let (status, _) = h
        .call(Method::POST, &format!("{path}/preflight"), None)
        .await;
    assert_eq!(status, 200, "the old credential still works");
    let certificate_pem = std::fs::read_to_string(&info.client_cert_pem).expect("cert");
    let private_key_pem = std::fs::read_to_string(&info.client_key_pem).expect("key");
    let (status, body) = h
        .call(
            Method::POST,
            &format!("{path}/credential"),
            Some(json!({"certificate_pem": certificate_pem, "private_key_pem": private_key_pem})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["credential"]["kind"], "certificate");
    assert!(body["credential"]["certificate_thumbprint"].is_string());
    assert!(!body.to_string().contains("PRIVATE KEY"));
    let (status, body) = h
        .call(Method::POST, &format!("{path}/preflight"), None)
        .await;
    assert_eq!(status, 200, "the rotated credential works: {body}");

    // Restrict domains: normalised and de-duplicated, or every bad entry listed.
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("{path}/restrict-domains"),
            Some(json!({"domains": ["Contoso.COM", "fabrikam.example", "contoso.com"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Restrict domains saved successfully");
    assert_eq!(body["domains"], json!(["contoso.com", "fabrikam.example"]));
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("{path}/restrict-domains"),
            Some(json!({"domains": ["ok.example", "https://contoso.com", "contoso.com/login"]})),
        )
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("domains"));
    let details = body["error"]["details"].as_array().expect("details");
    let fields: Vec<&str> = details.iter().filter_map(|d| d["field"].as_str()).collect();
    assert_eq!(fields, ["domains[1]", "domains[2]"], "{body}");
    let (_, shown) = h.call(Method::GET, &path, None).await;
    assert_eq!(
        shown["restrict_domains"],
        json!(["contoso.com", "fabrikam.example"]),
        "kept"
    );

    // Native login: enabling queues provisioning; disabling says what happens.
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("{path}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["native_login_enabled"], true);
    let job = h
        .wait_for_job(body["provisioning_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["kind"], "provision_paired_users");
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("{path}/native-login"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("stay in Entra")),
        "{body}"
    );

    // A helpdesk token cannot change integration settings.
    let helpdesk = h.token(Role::Helpdesk).await;
    let (status, _) = h
        .call_as(
            &helpdesk,
            Method::PUT,
            &format!("{path}/native-login"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 403);

    // Delete.
    let (status, _) = h.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = h.call(Method::GET, &path, None).await;
    assert_error(status, &body, 404, "not_found", None);
    let actions: Vec<String> = h
        .store
        .audit()
        .list(&Default::default(), None, 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in [
        "integration.create",
        "integration.update",
        "integration.credential.rotate",
        "integration.restrict_domains",
        "integration.native_login",
        "integration.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not audited: {actions:?}"
        );
    }
    assert!(h.store.audit().verify().await.expect("verify").is_intact());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_lifecycle_sqlite() {
    integration_lifecycle(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_lifecycle_postgres() {
    integration_lifecycle(Backend::Postgres).await;
}

async fn create(h: &Harness, body: Value) -> (u16, Value) {
    h.call(Method::POST, "/api/v1/integrations", Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_and_nothing_is_half_created() {
    let h = support::start(Backend::Sqlite).await;
    let info = h.sim.info().clone();
    let good = h.integration_body("Contoso");
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };

    let (status, body) = create(&h, with("tenant_id", json!("contoso-tenant"))).await;
    assert_error(status, &body, 422, "invalid_input", Some("tenant_id"));
    assert!(message(&body).starts_with("tenant_id: "), "{body}");
    let (status, body) = create(&h, with("client_id", json!("1234"))).await;
    assert_error(status, &body, 422, "invalid_input", Some("client_id"));
    let (status, body) = create(&h, with("name", json!("Contoso/Passkeys"))).await;
    assert_error(status, &body, 422, "invalid_input", Some("name"));
    assert!(message(&body).contains("letters"), "{body}");
    let (status, body) = create(&h, with("name", json!("An Application Name Far Too Long"))).await;
    assert_error(status, &body, 422, "invalid_input", Some("name"));
    assert!(message(&body).contains("23"), "{body}");
    let (status, body) = create(&h, with("support_email", json!("not an address"))).await;
    assert_error(status, &body, 422, "invalid_input", Some("support_email"));

    // A wrong secret: Entra's AADSTS7000215, with what to fix.
    let (status, body) = create(&h, with("client_secret", json!("not-the-secret"))).await;
    assert_error(
        status,
        &body,
        422,
        "credential_rejected",
        Some("client_secret"),
    );
    assert!(
        message(&body).contains("AADSTS7000215") && message(&body).contains("Value"),
        "{body}"
    );
    // An unknown app.
    let (status, body) = create(
        &h,
        with("client_id", json!("0b1c9a52-1111-4000-8000-000000000001")),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("AADSTS"), "{body}");

    // Certificate problems.
    let certificate_pem = std::fs::read_to_string(&info.client_cert_pem).expect("cert");
    let private_key_pem = std::fs::read_to_string(&info.client_key_pem).expect("key");
    let mut cert_body = good.clone();
    cert_body
        .as_object_mut()
        .expect("object")
        .remove("client_secret");
    let with_cert = |cert: &str, key: &str| {
        let mut body = cert_body.clone();
        body["certificate_pem"] = json!(cert);
        body["private_key_pem"] = json!(key);
        body
    };
    let (status, body) = create(&h, with_cert("garbage", &private_key_pem)).await;
    assert_error(status, &body, 422, "invalid_credential", None);
    assert!(
        body["error"]["field"] == "certificate_pem" || body["error"]["field"] == "private_key_pem",
        "{body}"
    );
    let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .expect("RSA key")
        .serialize_pem();
    let (status, body) = create(&h, with_cert(&certificate_pem, &other_key)).await;
    assert_error(
        status,
        &body,
        422,
        "invalid_credential",
        Some("private_key_pem"),
    );
    assert!(
        message(&body).contains("does not belong to the certificate"),
        "{body}"
    );
    let mut no_key = cert_body.clone();
    no_key["certificate_pem"] = json!(certificate_pem);
    let (status, body) = create(&h, no_key).await;
    assert_error(status, &body, 422, "invalid_input", Some("private_key_pem"));
    let (status, body) = create(&h, with("certificate_pem", json!(certificate_pem))).await;
    assert_error(status, &body, 422, "invalid_input", Some("credential"));

    // A missing permission, named.
    h.sim.set_granted_roles(&[
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
        "Policy.Read.AuthenticationMethod",
    ]);
    let (status, body) = create(&h, good.clone()).await;
    assert_error(
        status,
        &body,
        422,
        "permission_missing",
        Some("permissions"),
    );
    assert!(
        message(&body).contains("UserAuthenticationMethod.ReadWrite.All"),
        "{body}"
    );
    assert!(message(&body).contains("admin consent"), "{body}");

    // Nothing was created by any of these.
    let (_, list) = h.call(Method::GET, "/api/v1/integrations", None).await;
    assert_eq!(list, json!([]));

    // With the permission back, the certificate credential connects.
    h.sim.set_granted_roles(keybridge_entra_sim::DEFAULT_ROLES);
    let (status, body) = create(&h, with_cert(&certificate_pem, &private_key_pem)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["integration"]["credential"]["kind"], "certificate");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_the_policy_settings_that_block_keybridge() {
    let h = support::start(Backend::Sqlite).await;
    // Make the tenant's policy hostile, through Graph as an admin would.
    let mut roles: Vec<&str> = keybridge_entra_sim::DEFAULT_ROLES.to_vec();
    roles.push("Policy.ReadWrite.AuthenticationMethod");
    h.sim.set_granted_roles(&roles);
    let info = h.sim.info().clone();
    let admin_client = h
        .server
        .app()
        .graph()
        .client(
            &info.tenant_id.to_string(),
            &info.client_id.to_string(),
            keybridge_graph::ClientCredential::secret(info.client_secret.clone()).expect("secret"),
        )
        .expect("client");
    admin_client
        .update_fido2_policy(&keybridge_graph::Fido2PolicyPatch {
            is_self_service_registration_allowed: Some(false),
            is_attestation_enforced: Some(true),
            key_restrictions: Some(keybridge_graph::KeyRestrictions {
                aa_guids: vec![
                    keybridge_server::services::integrations::KEYBRIDGE_AAGUID.to_uppercase(),
                ],
                enforcement_type: Some("block".to_owned()),
                is_enforced: Some(true),
            }),
            ..Default::default()
        })
        .await
        .expect("policy changed");

    let (status, created) = create(&h, h.integration_body("Contoso")).await;
    assert_eq!(status, 201, "blockers are reported, not refused: {created}");
    let checks = created["preflight"].as_array().expect("checks");
    let status_of = |id: &str| {
        checks
            .iter()
            .find(|c| c["check"] == id)
            .map(|c| {
                (
                    c["status"].clone(),
                    c["fix"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .unwrap_or_else(|| panic!("no {id} check in {checks:?}"))
    };
    let (status, fix) = status_of("self_service_setup");
    assert_eq!(status, "blocking");
    assert!(fix.contains("Allow self-service set up: Yes"), "{fix}");
    let (status, fix) = status_of("attestation");
    assert_eq!(status, "blocking");
    assert!(fix.contains("Enforce attestation: No"), "{fix}");
    let (status, fix) = status_of("key_restrictions");
    assert_eq!(status, "blocking");
    assert!(
        fix.contains(keybridge_server::services::integrations::KEYBRIDGE_AAGUID),
        "{fix}"
    );
    assert_eq!(status_of("method_enabled").0, "ok");
    h.stop().await;
}

async fn directory_sync_follows_the_tenant(backend: Backend) {
    let h = support::start(backend).await;
    let (status, created) = create(&h, h.integration_body("Contoso")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let job = h
        .wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let integration = h.store.integrations().get(&id).await.expect("stored");
    let saved_link = integration
        .delta_link
        .clone()
        .expect("the first round keeps a delta link");

    // A delta link saved for another Graph host (the Graph URL changed since) is not followed:
    // the next round is a full one, and a link on today's host is saved.
    h.store
        .integrations()
        .record_sync(
            &id,
            Some("https://graph.example.invalid/v1.0/users/delta?$deltatoken=old"),
            keybridge_store::Timestamp::now(),
        )
        .await
        .expect("saved");
    let (status, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let job = h
        .wait_for_job(queued["job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let relinked = h.store.integrations().get(&id).await.expect("stored");
    let relinked = relinked.delta_link.expect("a new delta link");
    assert!(
        relinked.starts_with(saved_link.split("/v1.0").next().expect("host")),
        "{relinked} is on the Graph host of {saved_link}"
    );
    let integration = h.store.integrations().get(&id).await.expect("stored");
    let graph = h
        .server
        .app()
        .graph()
        .for_integration(&integration)
        .expect("client");
    let groups = integration.groups.clone();
    let members = |group: String| {
        let graph = graph.clone();
        async move {
            let mut ids: Vec<String> = graph
                .list_group_members(&group)
                .expect("members")
                .collect_all()
                .await
                .expect("members")
                .into_iter()
                .map(|m| m.id)
                .collect();
            ids.sort();
            ids
        }
    };

    // Every synced (pending, present) user is in "Users Not Yet Enrolled", nobody elsewhere.
    let mut stored = Vec::new();
    let mut query = keybridge_store::UserQuery::new(&id, None);
    query.limit = 500;
    for item in h.store.users().list(&query).await.expect("users").items {
        if item.user.entra_status != keybridge_core::EntraStatus::NotFound {
            stored.push(item.user.entra_object_id.clone());
        }
    }
    stored.sort();
    assert!(stored.len() >= 20, "{}", stored.len());
    let not_enrolled = groups.not_enrolled.clone().expect("group");
    assert_eq!(members(not_enrolled.clone()).await, stored);
    assert!(
        members(groups.paired_entra.clone().expect("group"))
            .await
            .is_empty()
    );

    // Changes in the tenant: a stray member, a new user, a disabled and a deleted account.
    let paired_entra = groups.paired_entra.clone().expect("group");
    graph
        .add_group_members(&paired_entra, &[stored[0].clone()])
        .await
        .expect("stray added");
    let new_id = "0b1c9a52-7777-4000-8000-000000000001";
    let upn = format!("newcomer@{}", h.sim.info().verified_domain);
    assert_eq!(
        h.control(
            Method::POST,
            "/users",
            Some(json!({"id": new_id, "userPrincipalName": upn, "displayName": "New Comer"}))
        )
        .await,
        201
    );
    let (disabled, deleted) = (stored[1].clone(), stored[2].clone());
    assert_eq!(
        h.control(
            Method::PATCH,
            &format!("/users/{disabled}"),
            Some(json!({"accountEnabled": false}))
        )
        .await,
        200
    );
    assert_eq!(
        h.control(Method::DELETE, &format!("/users/{deleted}"), None)
            .await,
        204
    );

    let (status, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let job = h
        .wait_for_job(queued["job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let newcomer = h
        .store
        .users()
        .find_by_object_id(&id, new_id)
        .await
        .expect("lookup")
        .expect("the new user was synced by the delta round");
    assert_eq!(newcomer.state, keybridge_core::UserState::Pending);
    let status_of = |object_id: String| {
        let store = h.store.clone();
        let id = id.clone();
        async move {
            store
                .users()
                .find_by_object_id(&id, &object_id)
                .await
                .expect("lookup")
                .expect("known")
                .entra_status
        }
    };
    assert_eq!(
        status_of(disabled.clone()).await,
        keybridge_core::EntraStatus::Disabled
    );
    assert_eq!(
        status_of(deleted.clone()).await,
        keybridge_core::EntraStatus::NotFound
    );
    assert!(
        members(paired_entra).await.is_empty(),
        "the stray member was removed from keybridge's group"
    );
    let now_not_enrolled = members(not_enrolled).await;
    assert!(now_not_enrolled.contains(&new_id.to_owned()));
    assert!(
        now_not_enrolled.contains(&disabled),
        "a disabled account keeps its groups"
    );
    assert!(!now_not_enrolled.contains(&deleted));

    // The user list: counts, keyset pages, search, warnings, bad parameters.
    let base = format!("/api/v1/integrations/{id}/users");
    let (status, first) = h.call(Method::GET, &format!("{base}?limit=10"), None).await;
    assert_eq!(status, 200, "{first}");
    let pending = first["counts"]["pending"].as_i64().expect("count");
    assert!(pending > 20, "{first}");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(10));
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for item in page["items"].as_array().expect("items") {
            seen.push(item["username"].as_str().expect("username").to_owned());
        }
        let Some(next) = page["next"].as_str() else {
            break;
        };
        let (status, next_page) = h
            .call(Method::GET, &format!("{base}?limit=10&after={next}"), None)
            .await;
        assert_eq!(status, 200, "{next_page}");
        page = next_page;
    }
    let mut sorted = seen.clone();
    sorted.sort_by_key(|u| u.to_lowercase());
    sorted.dedup();
    assert_eq!(seen.len(), sorted.len(), "no user twice across pages");
    assert_eq!(
        i64::try_from(seen.len()).expect("small"),
        pending,
        "every pending user once"
    );
    let (status, found) = h
        .call(Method::GET, &format!("{base}?search=NEWCOMER"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["items"][0]["username"], upn);
    let (status, none) = h
        .call(
            Method::GET,
            &format!("{base}?state=paired_with_entra"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(none["items"], json!([]));
    let gone = h
        .store
        .users()
        .find_by_object_id(&id, &deleted)
        .await
        .expect("lookup")
        .expect("known");
    let (status, shown) = h
        .call(Method::GET, &format!("/api/v1/users/{}", gone.id), None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["warning"],
        "This user cannot be found in Microsoft Entra."
    );
    assert_eq!(shown["entra_status"], "not_found");
    for (query, field) in [
        ("sort=age", "sort"),
        ("order=up", "order"),
        ("state=paired", "state"),
        ("after=garbage", "after"),
        ("limit=0", "limit"),
    ] {
        let (status, body) = h.call(Method::GET, &format!("{base}?{query}"), None).await;
        assert_error(status, &body, 422, "invalid_input", Some(field));
    }
    for query in ["limit=many", "colour=red"] {
        let (status, body) = h.call(Method::GET, &format!("{base}?{query}"), None).await;
        assert_error(status, &body, 400, "bad_request", Some("query"));
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_sync_follows_the_tenant_sqlite() {
    directory_sync_follows_the_tenant(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_sync_follows_the_tenant_postgres() {
    directory_sync_follows_the_tenant(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_server_queues_a_sync_of_every_integration() {
    let h = support::start(Backend::Sqlite).await;
    let (status, created) = create(&h, h.integration_body("Contoso")).await;
    assert_eq!(status, 201, "{created}");
    let first = created["sync_job_id"].as_str().expect("job").to_owned();
    assert_eq!(h.wait_for_job(&first).await["state"], "succeeded");
    let h = h.restart().await;
    let filter = keybridge_store::JobFilter {
        kind: Some("directory_sync".to_owned()),
        ..Default::default()
    };
    let mut scheduled = None;
    for _ in 0..200 {
        let jobs = h.store.jobs().list(&filter, None, 10).await.expect("jobs");
        if let Some(job) = jobs.iter().find(|j| j.id != first) {
            scheduled = Some(job.id.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let scheduled = scheduled.expect("a sync was queued at start");
    assert_eq!(h.wait_for_job(&scheduled).await["state"], "succeeded");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inviting_one_user() {
    let h = support::start(Backend::Sqlite).await;
    let (status, created) = create(&h, h.integration_body("Contoso")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let job = h
        .wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded");
    let integration = h.store.integrations().get(&id).await.expect("stored");
    let (_, list) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{id}/users?limit=3"),
            None,
        )
        .await;
    let user_ids: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .collect();
    let (alice, bob, carol) = (&user_ids[0], &user_ids[1], &user_ids[2]);

    // An active user: a single-use link to the Device Manager page, valid 24 h.
    let (status, invited) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{alice}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let link = invited["link"].as_str().expect("link");
    let token = link
        .strip_prefix("https://127.0.0.1/invite/")
        .unwrap_or_else(|| panic!("link {link}"));
    let invite = h
        .store
        .invites()
        .check(token, keybridge_store::Timestamp::now())
        .await
        .expect("the link's token is a live invite");
    assert_eq!(&invite.user_id, alice);
    let hours = (invite.expires_at.unix_millis() - invite.created_at.unix_millis()) / 3_600_000;
    assert_eq!(hours, 24);

    // The group step runs and puts the user in "(Eligible for Pairing)".
    let filter = keybridge_store::JobFilter {
        kind: Some("group_sync".to_owned()),
        ..Default::default()
    };
    let group_job = h.store.jobs().list(&filter, None, 5).await.expect("jobs");
    let group_job = group_job.first().expect("a group sync was queued");
    assert_eq!(h.wait_for_job(&group_job.id).await["state"], "succeeded");
    let graph = h
        .server
        .app()
        .graph()
        .for_integration(&integration)
        .expect("client");
    let eligible: Vec<String> = graph
        .list_group_members(integration.groups.eligible.as_deref().expect("group"))
        .expect("members")
        .collect_all()
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.id)
        .collect();
    let alice_object = h
        .store
        .users()
        .get(alice)
        .await
        .expect("user")
        .entra_object_id;
    assert_eq!(eligible, [alice_object]);

    // A second invitation replaces the first.
    let (status, again) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{alice}/invites"),
            Some(json!({"expires_in_hours": 2})),
        )
        .await;
    assert_eq!(status, 201, "{again}");
    let refused = h
        .store
        .invites()
        .check(token, keybridge_store::Timestamp::now())
        .await
        .expect_err("the first link no longer works");
    assert!(refused.to_string().contains("revoked"), "{refused}");

    let (status, invites) = h
        .call(Method::GET, &format!("/api/v1/users/{alice}/invites"), None)
        .await;
    assert_eq!(status, 200);
    let statuses: Vec<&str> = invites
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["status"].as_str())
        .collect();
    assert_eq!(statuses, ["open", "revoked"], "newest first: {invites}");
    assert!(
        !invites.to_string().contains(token),
        "links are never listed"
    );
    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{alice}/invites"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{alice}/invites"),
            None,
        )
        .await;
    assert_error(status, &body, 409, "not_allowed", Some("user"));
    assert!(message(&body).contains("no open invitation"), "{body}");

    // Disabled and deleted accounts cannot be invited; core's message says why.
    let bob_object = h
        .store
        .users()
        .get(bob)
        .await
        .expect("user")
        .entra_object_id;
    assert_eq!(
        h.control(
            Method::PATCH,
            &format!("/users/{bob_object}"),
            Some(json!({"accountEnabled": false}))
        )
        .await,
        200
    );
    let carol_object = h
        .store
        .users()
        .get(carol)
        .await
        .expect("user")
        .entra_object_id;
    assert_eq!(
        h.control(Method::DELETE, &format!("/users/{carol_object}"), None)
            .await,
        204
    );
    let (_, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/sync"),
            None,
        )
        .await;
    h.wait_for_job(queued["job_id"].as_str().expect("job"))
        .await;
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{bob}/invites"),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, 409, "not_allowed", Some("user"));
    assert!(
        message(&body).contains("disabled in Microsoft Entra"),
        "{body}"
    );
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{carol}/invites"),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, 409, "not_allowed", Some("user"));
    assert!(
        message(&body).contains("cannot be found in Microsoft Entra"),
        "{body}"
    );

    // Users outside the restricted domains cannot be invited.
    let (status, _) = h
        .call(
            Method::PUT,
            &format!("/api/v1/integrations/{id}/restrict-domains"),
            Some(json!({"domains": ["fabrikam.example"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{alice}/invites"),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, 422, "domain_not_allowed", Some("user"));
    assert!(message(&body).contains("fabrikam.example"), "{body}");

    // Bad input and roles.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{alice}/invites"),
            Some(json!({"expires_in_hours": 0})),
        )
        .await;
    assert_error(
        status,
        &body,
        422,
        "invalid_input",
        Some("expires_in_hours"),
    );
    let auditor = h.token(Role::Auditor).await;
    let (status, _) = h
        .call_as(
            &auditor,
            Method::POST,
            &format!("/api/v1/users/{alice}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = h
        .call(
            Method::POST,
            "/api/v1/users/no-such-user/invites",
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, 404, "not_found", None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_client_download() {
    use base64::Engine as _;
    use std::io::Read as _;
    let h = support::start(Backend::Sqlite).await;
    let mut body = h.integration_body("Contoso Passkeys");
    body["support_email"] = json!("help@contoso.com");
    let (status, created) = create(&h, body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/integrations/{id}/desktop-client");

    let response = h
        .http
        .get(h.url(&path))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"keybridge-ContosoPasskeys.zip\""
    );
    let bytes = response.bytes().await.expect("zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.expect("entry name").into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["keybridge", "keybridge.json"]);
    let mut program = Vec::new();
    let mut entry = archive.by_name("keybridge").expect("client");
    assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
    entry.read_to_end(&mut program).expect("read");
    drop(entry);
    assert_eq!(program, support::CLIENT_STAND_IN);
    // Python's zipfile reads the same archive: CRCs, modes, contents.
    let read = crate::interop::run(
        "read-zip",
        &json!({"zip_b64": base64::engine::general_purpose::STANDARD.encode(&bytes)}),
    );
    assert_eq!(read["crc_ok"], true, "{read}");
    assert_eq!(read["entries"]["keybridge"]["mode"], 0o755);
    assert_eq!(read["entries"]["keybridge.json"]["mode"], 0o600);
    assert_eq!(read["entries"]["keybridge"]["compressed"], true);
    assert_eq!(
        read["entries"]["keybridge"]["content_b64"],
        base64::engine::general_purpose::STANDARD.encode(support::CLIENT_STAND_IN)
    );
    let mut text = String::new();
    archive
        .by_name("keybridge.json")
        .expect("config")
        .read_to_string(&mut text)
        .expect("read");
    let config: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(config["version"], 1);
    assert_eq!(config["server_url"], "https://127.0.0.1/");
    assert_eq!(config["integration_id"], id);
    assert_eq!(config["tls_pin"], h.server.tls_pin);
    assert_eq!(config["support_email"], "help@contoso.com");
    let token = config["install_token"].as_str().expect("token");
    assert!(token.starts_with("kbi_"), "{token}");
    let redeemed = h
        .store
        .install_tokens()
        .redeem(token, keybridge_store::Timestamp::now())
        .await
        .expect("the install token works");
    assert_eq!(redeemed.integration_id, id);
    let days = (redeemed.expires_at.unix_millis() - redeemed.created_at.unix_millis()) / 86_400_000;
    assert_eq!(days, 30);

    let (status, body) = h
        .call(Method::GET, &format!("{path}?expires_in_days=0"), None)
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("expires_in_days"));
    let helpdesk = h.token(Role::Helpdesk).await;
    let (status, _) = h.call_as(&helpdesk, Method::GET, &path, None).await;
    assert_eq!(status, 403);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_user_list_checks_entra_status_in_the_background() {
    let h = support::start(Backend::Sqlite).await;
    let (status, created) = create(&h, h.integration_body("Contoso")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let job = h
        .wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded");
    let base = format!("/api/v1/integrations/{id}/users?limit=500");
    let (_, page) = h.call(Method::GET, &base, None).await;
    let users: Vec<Value> = page["items"].as_array().expect("items").clone();
    let first_check = page["status_check_job_id"]
        .as_str()
        .expect("a check was queued");
    assert_eq!(h.wait_for_job(first_check).await["state"], "succeeded");

    // Entra changes without a sync: one account deleted, one disabled.
    let (gone, off) = (&users[3], &users[4]);
    let object = |u: &Value| u["entra_object_id"].as_str().expect("object id").to_owned();
    assert_eq!(
        h.control(Method::DELETE, &format!("/users/{}", object(gone)), None)
            .await,
        204
    );
    assert_eq!(
        h.control(
            Method::PATCH,
            &format!("/users/{}", object(off)),
            Some(json!({"accountEnabled": false}))
        )
        .await,
        200
    );
    // Checked a moment ago: opening the list again does not check again.
    let (_, page) = h.call(Method::GET, &base, None).await;
    assert!(page.get("status_check_job_id").is_none(), "{page}");
    // Once due, the next load queues a check whose result the load after shows.
    let mut due = 0;
    for user in &users {
        let uid = user["id"].as_str().expect("id");
        h.store
            .users()
            .set_entra_status(
                uid,
                if user["entra_status"] == "disabled" {
                    keybridge_core::EntraStatus::Disabled
                } else {
                    keybridge_core::EntraStatus::Active
                },
                keybridge_store::Timestamp::now().minus(std::time::Duration::from_secs(3600)),
            )
            .await
            .expect("backdated");
        due += 1;
    }
    assert!(due > 5);
    let (_, page) = h.call(Method::GET, &base, None).await;
    let check = page["status_check_job_id"]
        .as_str()
        .expect("a check was queued");
    assert_eq!(h.wait_for_job(check).await["state"], "succeeded");
    let (_, shown) = h
        .call(
            Method::GET,
            &format!("/api/v1/users/{}", gone["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(shown["entra_status"], "not_found");
    assert_eq!(
        shown["warning"],
        "This user cannot be found in Microsoft Entra."
    );
    let (_, shown) = h
        .call(
            Method::GET,
            &format!("/api/v1/users/{}", off["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(shown["entra_status"], "disabled");
    h.stop().await;
}

async fn deleting_a_user(backend: Backend) {
    let h = support::start(backend).await;
    let (status, created) = create(&h, h.integration_body("Contoso")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    h.wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    let integration = h.store.integrations().get(&id).await.expect("stored");
    let graph = h
        .server
        .app()
        .graph()
        .for_integration(&integration)
        .expect("client");
    let (_, page) = h
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{id}/users?limit=1"),
            None,
        )
        .await;
    let user_id = page["items"][0]["id"].as_str().expect("id").to_owned();
    let user = h.store.users().get(&user_id).await.expect("user");
    let object_id = user.entra_object_id.clone();

    // The user holds a passkey from keybridge (registered in Entra) and a security key of
    // another vendor; the group sync put them in "(Client Paired with Entra)".
    let ours_credential = "a2V5YnJpZGdlLXRlc3QtY3JlZGVudGlhbC0wMDAx";
    let status = h
        .control(
            Method::POST,
            &format!("/users/{object_id}/fido2Methods"),
            Some(
                json!({"aaGuid": keybridge_server::services::integrations::KEYBRIDGE_AAGUID,
                        "displayName": "keybridge on Pixel", "credentialId": ours_credential}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let status = h
        .control(
            Method::POST,
            &format!("/users/{object_id}/fido2Methods"),
            Some(
                json!({"aaGuid": keybridge_entra_sim::VENDOR_KEYS[0].0, "displayName": "YubiKey"}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let methods = graph.list_fido2_methods(&object_id).await.expect("methods");
    let mut others: Vec<String> = methods
        .iter()
        .filter(|m| !m.id.starts_with(ours_credential))
        .map(|m| m.id.clone())
        .collect();
    others.sort();
    assert!(!others.is_empty());
    let ours_method = methods
        .iter()
        .find(|m| m.id.starts_with(ours_credential))
        .expect("our method")
        .id
        .clone();
    let phone = h
        .store
        .phones()
        .create(keybridge_store::NewPhone {
            user_id: user_id.clone(),
            device_key: "test-device-key".to_owned(),
            name: "Pixel".to_owned(),
            model: "Pixel 8".to_owned(),
            os: "Android 15".to_owned(),
        })
        .await
        .expect("phone");
    let credential = h
        .store
        .credentials()
        .create(keybridge_store::NewCredential {
            user_id: user_id.clone(),
            phone_id: phone.id.clone(),
            credential_id: ours_credential.to_owned(),
            rp_id: "login.microsoft.com".to_owned(),
            aaguid: keybridge_server::services::integrations::KEYBRIDGE_AAGUID.to_owned(),
            display_name: "keybridge on Pixel".to_owned(),
        })
        .await
        .expect("credential");
    h.store
        .credentials()
        .mark_registered(
            &credential.id,
            &ours_method,
            keybridge_store::Timestamp::now(),
        )
        .await
        .expect("registered");
    h.store
        .users()
        .set_state(&user_id, keybridge_core::UserState::PairedWithEntra, false)
        .await
        .expect("state");
    let (_, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/sync"),
            None,
        )
        .await;
    h.wait_for_job(queued["job_id"].as_str().expect("job"))
        .await;
    let in_group = |group: Option<String>| {
        let graph = graph.clone();
        let object_id = object_id.clone();
        async move {
            graph
                .list_group_members(&group.expect("group"))
                .expect("members")
                .collect_all()
                .await
                .expect("members")
                .iter()
                .any(|m| m.id == object_id)
        }
    };
    assert!(in_group(integration.groups.paired_entra.clone()).await);

    // Confirmation is required, by username.
    let path = format!("/api/v1/users/{user_id}");
    let (status, body) = h
        .call(Method::DELETE, &path, Some(json!({"confirm": "yes"})))
        .await;
    assert_error(status, &body, 422, "invalid_input", Some("confirm"));
    assert!(message(&body).contains(&user.upn), "{body}");
    let auditor = h.token(Role::Auditor).await;
    let (status, _) = h
        .call_as(
            &auditor,
            Method::DELETE,
            &path,
            Some(json!({"confirm": user.upn})),
        )
        .await;
    assert_eq!(status, 403);

    let (status, body) = h
        .call(
            Method::DELETE,
            &path,
            Some(json!({"confirm": user.upn.to_uppercase()})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job = h.wait_for_job(body["job_id"].as_str().expect("job")).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // Our passkey is gone from Entra, the other vendor's key stays; no group holds the user;
    // keybridge has forgotten them.
    let mut left: Vec<String> = graph
        .list_fido2_methods(&object_id)
        .await
        .expect("methods")
        .into_iter()
        .map(|m| m.id)
        .collect();
    left.sort();
    assert_eq!(left, others, "only keybridge's passkey was deleted");
    for group in [
        integration.groups.eligible.clone(),
        integration.groups.paired_keybridge.clone(),
        integration.groups.paired_entra.clone(),
        integration.groups.not_enrolled.clone(),
    ] {
        assert!(!in_group(group).await);
    }
    let (status, body) = h.call(Method::GET, &path, None).await;
    assert_error(status, &body, 404, "not_found", None);
    let events = h
        .store
        .audit()
        .list(&Default::default(), None, 100)
        .await
        .expect("audit");
    let deleted = events
        .iter()
        .find(|e| e.action == "user.delete")
        .expect("audited");
    assert!(
        deleted.details.contains(&ours_method),
        "{}",
        deleted.details
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_sqlite() {
    deleting_a_user(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_postgres() {
    deleting_a_user(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deleted_in_entra_is_made_again_by_the_sync() {
    let h = support::start(Backend::Sqlite).await;
    let (status, created) = create(&h, h.integration_body("Contoso")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    h.wait_for_job(created["sync_job_id"].as_str().expect("job"))
        .await;
    let integration = h.store.integrations().get(&id).await.expect("stored");
    let old = integration.groups.not_enrolled.clone().expect("group");
    let graph = h
        .server
        .app()
        .graph()
        .for_integration(&integration)
        .expect("client");
    let token = graph.access_token().await.expect("token");
    let response = h
        .http
        .delete(format!("{}/groups/{old}", h.sim.info().graph_url))
        .bearer_auth(token.secret())
        .send()
        .await
        .expect("deleted in Entra");
    assert_eq!(response.status(), 204);

    let (_, queued) = h
        .call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/sync"),
            None,
        )
        .await;
    let job = h
        .wait_for_job(queued["job_id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let integration = h.store.integrations().get(&id).await.expect("stored");
    let new = integration.groups.not_enrolled.clone().expect("group");
    assert_ne!(new, old, "a new group was made and recorded");
    let found = graph
        .find_groups_by_name("Users Not Yet Enrolled")
        .await
        .expect("search");
    assert_eq!(
        found.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        [new.as_str()]
    );
    let members = graph
        .list_group_members(&new)
        .expect("members")
        .collect_all()
        .await
        .expect("members");
    assert!(members.len() >= 20, "filled again: {}", members.len());
    h.stop().await;
}
