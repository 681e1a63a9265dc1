//! Refusals of the ceremonies: each gives its specific error and changes nothing.

use keybridge_authenticator::{
    AccountSelector, Approval, ApprovalRequest, AttestationPreference, Authenticator,
    AuthenticatorError, CredentialStore, Declined, MakeCredentialSettings, MemoryStore,
    OriginPolicy, RequestOptions, b64url,
};
use serde_json::json;

use crate::support::*;

fn create(phone: &mut Authenticator<MemoryStore, Approver>, user: &str) -> Vec<u8> {
    let (options, _) = graph_options(user, &rand_bytes(48));
    phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect("created")
        .credential_id
}

fn request(allow: &[&[u8]]) -> RequestOptions {
    RequestOptions::from_json(&request_options(&b64url(&rand_bytes(32)), allow).to_string())
        .expect("options")
}

#[test]
fn foreign_relying_party_is_refused_on_both_ceremonies() {
    let (mut phone, _) = memory_phone();
    let (options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    let error = phone
        .make_credential(
            &parse_creation(&options),
            "https://login.evil.example",
            &MakeCredentialSettings::default(),
        )
        .expect_err("foreign origin");
    assert!(
        matches!(error, AuthenticatorError::RpIdMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("login.microsoft.com"), "{error}");
    assert!(phone.store().credentials().is_empty(), "nothing was stored");

    create(&mut phone, "ana@contoso.com");
    let error = phone
        .get_assertion(&request(&[]), "https://microsoft.com.evil.example", None)
        .expect_err("foreign origin");
    assert!(
        matches!(error, AuthenticatorError::RpIdMismatch { .. }),
        "{error}"
    );
    assert_eq!(
        phone.store().credentials()[0].sign_count,
        0,
        "counter untouched"
    );

    // Entra's browser origin is refused by default, allowed as a published related origin.
    let error = phone
        .get_assertion(&request(&[]), "https://login.microsoftonline.com", None)
        .expect_err("not related by default");
    assert!(matches!(error, AuthenticatorError::RpIdMismatch { .. }));
    let mut phone = phone.with_origin_policy(OriginPolicy::with_microsoft_related_origins());
    let assertion = phone
        .get_assertion(&request(&[]), "https://login.microsoftonline.com", None)
        .expect("related origin");
    assert!(
        String::from_utf8_lossy(&assertion.client_data_json)
            .contains(r#""origin":"https://login.microsoftonline.com""#)
    );
}

#[test]
fn exclude_credentials_hit_is_refused_and_nothing_is_added() {
    let (mut phone, _) = memory_phone();
    let existing = create(&mut phone, "ana@contoso.com");
    // Graph's padding-digit form of the id (43 chars + "1").
    for text in [b64url(&existing), format!("{}1", b64url(&existing))] {
        let (mut options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
        options["publicKey"]["excludeCredentials"] =
            json!([{"type": "public-key", "id": text, "transports": ["hybrid"]}]);
        let error = phone
            .make_credential(
                &parse_creation(&options),
                ORIGIN,
                &MakeCredentialSettings::default(),
            )
            .expect_err("excluded");
        match &error {
            AuthenticatorError::CredentialExcluded {
                user_name,
                credential_id,
                ..
            } => {
                assert_eq!(user_name, "ana@contoso.com");
                assert_eq!(credential_id, &b64url(&existing));
            }
            other => panic!("{other}"),
        }
        assert_eq!(phone.store().credentials().len(), 1);
    }
    // An unrelated excluded id does not stop creation.
    let (mut options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    options["publicKey"]["excludeCredentials"] =
        json!([{"type": "public-key", "id": b64url(&rand_bytes(32))}]);
    phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect("created");
    assert_eq!(phone.store().credentials().len(), 2);
}

#[test]
fn rs256_only_relying_party_is_refused() {
    let (mut phone, _) = memory_phone();
    let (mut options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    options["publicKey"]["pubKeyCredParams"] = json!([{"type": "public-key", "alg": -257}]);
    let error = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect_err("no ES256");
    assert!(
        matches!(&error, AuthenticatorError::UnsupportedAlgorithm { offered } if offered == &[-257]),
        "{error}"
    );
    assert!(error.to_string().contains("ES256 (-7)"));
    assert!(phone.store().credentials().is_empty());
}

#[test]
fn expired_graph_challenge_is_refused() {
    let (mut phone, _) = memory_phone();
    let (mut options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    options["challengeTimeoutDateTime"] = json!("2020-01-01T00:00:00Z");
    let error = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect_err("expired");
    assert!(
        matches!(error, AuthenticatorError::ChallengeExpired { .. }),
        "{error}"
    );
}

#[test]
fn several_accounts_need_an_explicit_choice() {
    let (mut phone, _) = memory_phone();
    let ana = create(&mut phone, "ana@contoso.com");
    let bob = create(&mut phone, "bob@fabrikam.com");

    let error = phone
        .get_assertion(&request(&[]), ORIGIN, None)
        .expect_err("ambiguous");
    match &error {
        AuthenticatorError::AmbiguousAccount { candidates, .. } => {
            let names: Vec<&str> = candidates.iter().map(|c| c.user_name.as_str()).collect();
            assert_eq!(names, ["ana@contoso.com", "bob@fabrikam.com"]);
        }
        other => panic!("{other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("--account") && message.contains(&b64url(&bob)),
        "{message}"
    );
    assert!(
        phone
            .store()
            .credentials()
            .iter()
            .all(|c| c.sign_count == 0),
        "nobody signed"
    );

    // allowCredentials narrows it down.
    let assertion = phone
        .get_assertion(&request(&[&bob]), ORIGIN, None)
        .expect("narrowed");
    assert_eq!(assertion.credential_id, bob);
    // So does a selector, by user name or credential id.
    let by_name = AccountSelector::parse("ANA@contoso.com");
    assert_eq!(
        phone
            .get_assertion(&request(&[]), ORIGIN, Some(&by_name))
            .expect("chosen")
            .credential_id,
        ana
    );
    let by_id = AccountSelector::parse(&b64url(&bob));
    assert_eq!(by_id, AccountSelector::CredentialId(b64url(&bob)));
    assert_eq!(
        phone
            .get_assertion(&request(&[]), ORIGIN, Some(&by_id))
            .expect("chosen")
            .credential_id,
        bob
    );
    let nobody = AccountSelector::parse("carol@contoso.com");
    let error = phone
        .get_assertion(&request(&[]), ORIGIN, Some(&nobody))
        .expect_err("no such account");
    assert!(
        matches!(error, AuthenticatorError::AccountNotFound { .. }),
        "{error}"
    );

    // Unknown allowCredentials: no credential.
    let error = phone
        .get_assertion(&request(&[&rand_bytes(32)]), ORIGIN, None)
        .expect_err("none");
    assert!(
        matches!(error, AuthenticatorError::NoCredential { allowed: 1, .. }),
        "{error}"
    );
}

fn unverified(_: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
    Ok(Approval {
        user_verified: false,
    })
}

fn decline(request: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
    Err(Declined {
        reason: format!("the user tapped Deny for {request}"),
    })
}

#[test]
fn user_verification_and_declines() {
    let identity = organisation().into_identity();
    let mut phone = Authenticator::new(
        MemoryStore::with_attestation(identity),
        unverified as Approver,
    );
    let (options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    let error = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect_err("UV required");
    assert!(
        matches!(error, AuthenticatorError::UserVerificationRequired),
        "{error}"
    );

    // Without the requirement, the credential is made and UV is honestly clear.
    let (mut options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    options["publicKey"]["authenticatorSelection"]["userVerification"] = json!("preferred");
    options["publicKey"]["extensions"]["credentialProtectionPolicy"] =
        json!("userVerificationRequired");
    let created = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect("created");
    assert_eq!(created.authenticator_data[32] & 0x04, 0, "UV flag clear");
    // credProtect 3: no assertion without UV even though the RP does not require it.
    let mut lenient = request(&[]);
    lenient.user_verification = keybridge_authenticator::UserVerificationRequirement::Preferred;
    let error = phone
        .get_assertion(&lenient, ORIGIN, None)
        .expect_err("credProtect 3");
    assert!(matches!(
        error,
        AuthenticatorError::UserVerificationRequired
    ));
    assert_eq!(phone.store().credentials()[0].sign_count, 0);

    let identity = organisation().into_identity();
    let mut phone =
        Authenticator::new(MemoryStore::with_attestation(identity), decline as Approver);
    let (options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    let error = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect_err("declined");
    assert!(
        error.to_string().contains(
            "tapped Deny for create a passkey for ana@contoso.com at login.microsoft.com"
        ),
        "{error}"
    );
    assert!(phone.store().credentials().is_empty());
}

#[test]
fn packed_without_a_batch_certificate_is_refused_self_still_works() {
    let mut phone = Authenticator::new(MemoryStore::new(), verified as Approver);
    let (options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    let error = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect_err("no batch");
    assert!(
        matches!(error, AuthenticatorError::NoAttestationCertificate),
        "{error}"
    );
    assert!(phone.store().credentials().is_empty());
    phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings {
                attestation: AttestationPreference::SelfAttestation,
                tenant: None,
            },
        )
        .expect("self attestation needs no batch");
}

#[test]
fn a_user_name_that_looks_like_base64url_still_selects_its_account() {
    let (mut phone, _) = memory_phone();
    let alice = create(&mut phone, "alice");
    create(&mut phone, "bob");
    let selector = AccountSelector::parse("alice");
    let assertion = phone
        .get_assertion(&request(&[]), ORIGIN, Some(&selector))
        .expect("chosen");
    assert_eq!(assertion.credential_id, alice);
}
