//! Outputs checked by independent verifiers (py_webauthn, python-fido2, cryptography).

use keybridge_authenticator::{
    AAGUID_STRING, AttestationPreference, CredentialStore, MakeCredentialSettings, RequestOptions,
    b64url, pki::der_to_pem,
};
use serde_json::{Value, json};

use crate::support::*;

fn settings(attestation: AttestationPreference) -> MakeCredentialSettings {
    MakeCredentialSettings {
        attestation,
        tenant: Some("contoso.onmicrosoft.com".into()),
    }
}

fn registration_request(
    credential: &Value,
    challenge: &str,
    root_pem: Option<&str>,
    fmt: &str,
    x5c: bool,
) -> Value {
    json!({
        "credential": credential,
        "challenge": challenge,
        "origin": ORIGIN,
        "rp_id": RP_ID,
        "root_pem": root_pem,
        "expect_fmt": fmt,
        "expect_x5c": x5c,
    })
}

#[test]
fn packed_x5c_registration_and_assertions_pass_py_webauthn_and_fido2() {
    let (mut phone, root_pem) = memory_phone();
    let user_id = rand_bytes(48);
    let (options, challenge) = graph_options("ana@contoso.com", &user_id);
    let created = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::Packed),
        )
        .expect("credential created");
    let credential = created.to_json();

    let result = verify_ok(
        "registration",
        &registration_request(&credential, &challenge, Some(&root_pem), "packed", true),
    );
    assert_eq!(result["fmt"], "packed");
    assert_eq!(result["attestation_type"], "BASIC");
    assert_eq!(result["aaguid"], AAGUID_STRING);
    assert_eq!(result["fido2_aaguid"], AAGUID_STRING);
    assert_eq!(result["user_verified"], true);
    assert_eq!(result["credential_device_type"], "single_device");
    assert_eq!(result["credential_backed_up"], false);
    assert_eq!(result["sign_count"], 0);
    assert_eq!(result["credential_id"], credential["id"]);
    assert_eq!(
        result["flags"],
        json!({"up": true, "uv": true, "be": false, "bs": false, "at": true, "ed": true})
    );
    assert_eq!(
        result["extensions"],
        json!({"credProtect": 1, "hmac-secret": true})
    );
    assert_eq!(
        credential["clientExtensionResults"],
        json!({"hmacCreateSecret": true})
    );

    // Two sign-ins: the counter goes 1, 2 and each is accepted against the previous value.
    let public_key = result["public_key"]
        .as_str()
        .expect("public key")
        .to_owned();
    for (previous, expected) in [(0, 1), (1, 2)] {
        let challenge = b64url(&rand_bytes(32));
        let request = RequestOptions::from_json(&request_options(&challenge, &[]).to_string())
            .expect("options");
        let assertion = phone
            .get_assertion(&request, ORIGIN, None)
            .expect("assertion")
            .to_json();
        let checked = verify_ok(
            "assertion",
            &json!({"credential": assertion, "challenge": challenge, "origin": ORIGIN, "rp_id": RP_ID,
                    "public_key": public_key, "sign_count": previous}),
        );
        assert_eq!(checked["new_sign_count"], expected);
        assert_eq!(checked["user_verified"], true);
        assert_eq!(checked["credential_backed_up"], false);
        assert_eq!(
            checked["flags"],
            json!({"up": true, "uv": true, "be": false, "bs": false, "at": false, "ed": false})
        );
        assert_eq!(checked["user_handle"], json!(b64url(&user_id)));
    }
}

#[test]
fn the_verifier_refuses_a_foreign_root_and_a_tampered_signature() {
    // These show that the checks above can fail: the same verifier, wrong trust or bytes.
    let (mut phone, _) = memory_phone();
    let foreign_root = der_to_pem("CERTIFICATE", &organisation().root_certificate);
    let (options, challenge) = graph_options("ana@contoso.com", &rand_bytes(16));
    let credential = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::Packed),
        )
        .expect("created")
        .to_json();
    let error = verify(
        "registration",
        &registration_request(&credential, &challenge, Some(&foreign_root), "packed", true),
    )
    .expect_err("a chain to another root must fail");
    assert!(!error.is_empty());

    let challenge = b64url(&rand_bytes(32));
    let request =
        RequestOptions::from_json(&request_options(&challenge, &[]).to_string()).expect("options");
    let assertion = phone
        .get_assertion(&request, ORIGIN, None)
        .expect("assertion");
    let mut tampered = assertion.clone();
    let last = tampered.signature.len() - 1;
    tampered.signature[last] ^= 1;
    let public_key = b64url(
        &phone.store().credentials()[0]
            .public_key()
            .to_cose_key()
            .expect("cose"),
    );
    let request = |credential: Value| {
        json!({"credential": credential, "challenge": challenge, "origin": ORIGIN, "rp_id": RP_ID,
               "public_key": public_key, "sign_count": 0})
    };
    verify_ok("assertion", &request(assertion.to_json()));
    assert!(verify("assertion", &request(tampered.to_json())).is_err());
}

#[test]
fn self_attestation_passes() {
    let (mut phone, _) = memory_phone();
    let (options, challenge) = graph_options("bob@contoso.com", &rand_bytes(48));
    let credential = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::SelfAttestation),
        )
        .expect("created")
        .to_json();
    let result = verify_ok(
        "registration",
        &registration_request(&credential, &challenge, None, "packed", false),
    );
    assert_eq!(result["attestation_type"], "SELF");
    assert_eq!(result["aaguid"], AAGUID_STRING);
    assert_eq!(result["user_verified"], true);
}

#[test]
fn none_attestation_when_the_rp_or_the_caller_asks() {
    let (mut phone, _) = memory_phone();
    // The relying party asks for none.
    let (mut options, challenge) = graph_options("carol@contoso.com", &rand_bytes(48));
    options["publicKey"]["attestation"] = json!("none");
    let credential = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::Packed),
        )
        .expect("created")
        .to_json();
    let result = verify_ok(
        "registration",
        &registration_request(&credential, &challenge, None, "none", false),
    );
    assert_eq!(result["fmt"], "none");
    assert_eq!(result["user_verified"], true);
    assert_eq!(result["credential_backed_up"], false);

    // The caller prefers none although the relying party asks for direct.
    let (options, challenge) = graph_options("dave@contoso.com", &rand_bytes(48));
    let credential = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::None),
        )
        .expect("created")
        .to_json();
    let result = verify_ok(
        "registration",
        &registration_request(&credential, &challenge, None, "none", false),
    );
    assert_eq!(result["fmt"], "none");
}

#[test]
fn mds_blob_verifies_and_vouches_for_our_registrations_only() {
    let material = organisation();
    let blob = material.mds_blob.clone();
    let mds_root = der_to_pem("CERTIFICATE", &material.mds_root_certificate);
    let root_pem = der_to_pem("CERTIFICATE", &material.root_certificate);
    let mut phone = keybridge_authenticator::Authenticator::new(
        keybridge_authenticator::MemoryStore::with_attestation(material.into_identity()),
        verified as Approver,
    );
    let (options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    let created = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::Packed),
        )
        .expect("created");
    let registration = json!({
        "attestation_object": b64url(&created.attestation_object),
        "client_data_json": b64url(&created.client_data_json),
    });
    let request = |registration: &Value, mds_root: &str| {
        json!({"blob": blob, "mds_root_pem": mds_root, "attestation_root_pem": root_pem,
               "aaguid": AAGUID_STRING, "registration": registration})
    };
    let result = verify_ok("mds", &request(&registration, &mds_root));
    assert_eq!(result["status"], json!(["FIDO_CERTIFIED_L1"]));
    assert_eq!(result["attestation_types"], json!(["basic_full"]));
    assert_eq!(result["registration_entry_aaguid"], AAGUID_STRING);
    let info = &result["get_info"];
    assert_eq!(info["versions"], json!(["FIDO_2_0", "FIDO_2_1"]));
    assert_eq!(info["options"]["rk"], true);
    assert_eq!(info["options"]["uv"], true);
    assert_eq!(info["extensions"], json!(["credProtect", "hmac-secret"]));
    assert!(result["no"].as_i64().expect("no") > 0);

    // Another organisation's MDS root does not verify the BLOB.
    let other = organisation();
    let other_mds_root = der_to_pem("CERTIFICATE", &other.mds_root_certificate);
    assert!(verify("mds", &request(&Value::Null, &other_mds_root)).is_err());

    // A registration attested by another organisation's batch is not vouched for.
    let mut foreign = keybridge_authenticator::Authenticator::new(
        keybridge_authenticator::MemoryStore::with_attestation(other.into_identity()),
        verified as Approver,
    );
    let (options, _) = graph_options("eve@contoso.com", &rand_bytes(48));
    let foreign_created = foreign
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::Packed),
        )
        .expect("created");
    let foreign_registration = json!({
        "attestation_object": b64url(&foreign_created.attestation_object),
        "client_data_json": b64url(&foreign_created.client_data_json),
    });
    let error = verify("mds", &request(&foreign_registration, &mds_root)).expect_err("untrusted");
    assert!(error.contains("no trusted entry"), "{error}");
}

#[test]
fn device_local_attestation_chains_to_the_device_root() {
    let identity =
        keybridge_authenticator::pki::generate_device_local(time::OffsetDateTime::now_utc())
            .expect("identity");
    assert_eq!(
        identity.source,
        keybridge_authenticator::AttestationSource::DeviceLocal
    );
    let root_pem = identity.root_certificate_pem();
    let mut phone = keybridge_authenticator::Authenticator::new(
        keybridge_authenticator::MemoryStore::with_attestation(identity),
        verified as Approver,
    );
    let (options, challenge) = graph_options("ana@contoso.com", &rand_bytes(48));
    let credential = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &settings(AttestationPreference::Packed),
        )
        .expect("created")
        .to_json();
    let result = verify_ok(
        "registration",
        &registration_request(&credential, &challenge, Some(&root_pem), "packed", true),
    );
    assert_eq!(result["attestation_type"], "BASIC");
    assert_eq!(result["aaguid"], AAGUID_STRING);
}
