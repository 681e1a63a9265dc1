//! Every W3C WebAuthn Level 3 registration vector, and its paired assertion.

use keybridge_webauthn::{
    AssertionExpectations, AttestationType, ChainTrust, CoseAlgorithm, CredentialPublicKey,
    RegistrationError, RegistrationExpectations, RelyingParty, StoredCredential,
    UnsupportedFormats, verify_assertion, verify_registration,
};
use sha1::Digest as _;

use crate::support::{Vector, bytes, now, vector, vectors};

/// The vectors this verifier supports: ES256 or RS256 credentials, `none` or `packed`.
pub const SUPPORTED: [&str; 7] = [
    "none.ES256",
    "packed-self.ES256",
    "none.ES256.crossOrigin",
    "none.ES256.topOrigin",
    "none.ES256.long-credential-id",
    "packed.ES256",
    "packed.RS256",
];

fn expectations<'a>(
    vector: &Vector,
    rp: &'a RelyingParty,
    challenge: &'a [u8],
    anchors: &'a [Vec<u8>],
) -> RegistrationExpectations<'a> {
    let _ = vector;
    RegistrationExpectations {
        require_user_verification: false,
        trust_anchors: anchors,
        ..RegistrationExpectations::new(rp, challenge, now())
    }
}

#[test]
fn supported_vectors_register_with_the_expected_fields() {
    for name in SUPPORTED {
        let vector = vector(name);
        let rp = vector.relying_party();
        let challenge = bytes(&vector.challenge);
        let anchors = vector.anchors();
        let verified = verify_registration(
            &vector.registration_response(),
            &expectations(&vector, &rp, &challenge, &anchors),
        )
        .unwrap_or_else(|error| panic!("{name}: {error}"));

        assert_eq!(
            verified.credential_id,
            bytes(&vector.credential_id),
            "{name}"
        );
        assert_eq!(
            verified.public_key.cose_bytes(),
            bytes(&vector.credential_public_key),
            "{name}"
        );
        assert_eq!(verified.algorithm.id(), vector.expected.alg, "{name}");
        assert_eq!(verified.aaguid.to_string(), vector.aaguid, "{name}");
        assert_eq!(verified.fmt, vector.expected.fmt, "{name}");
        assert_eq!(
            verified.sign_count, vector.expected.flags.sign_count,
            "{name}"
        );
        let flags = verified.flags;
        assert_eq!(
            flags.user_present(),
            vector.expected.flags.user_present,
            "{name}"
        );
        assert_eq!(
            flags.user_verified(),
            vector.expected.flags.user_verified,
            "{name}"
        );
        assert_eq!(
            flags.backup_eligible(),
            vector.expected.flags.backup_eligible,
            "{name}"
        );
        assert_eq!(
            flags.backup_state(),
            vector.expected.flags.backup_state,
            "{name}"
        );
        match (
            &verified.attestation,
            vector.expected.fmt.as_str(),
            vector.expected.x5c,
        ) {
            (AttestationType::None, "none", false) => {}
            (AttestationType::SelfAttestation, "packed", false) => {
                assert_eq!(vector.expected.attestation_alg, Some(vector.expected.alg));
            }
            (AttestationType::Basic(chain), "packed", true) => {
                assert_eq!(
                    chain.trust,
                    ChainTrust::Anchored { anchor_index: 0 },
                    "{name}"
                );
                let expected_thumbprints: Vec<String> = chain
                    .certificates
                    .iter()
                    .map(|der| hex::encode(sha1::Sha1::digest(der)))
                    .collect();
                assert_eq!(chain.sha1_thumbprints, expected_thumbprints);
                assert_eq!(chain.sha1_thumbprints[0].len(), 40);
                assert!(
                    chain.sha1_thumbprints[0]
                        .chars()
                        .all(|c| !c.is_ascii_uppercase())
                );
            }
            (other, fmt, x5c) => panic!("{name}: attestation {other:?} for fmt {fmt}, x5c {x5c}"),
        }
    }
}

#[test]
fn supported_vectors_assertions_verify_with_the_registered_key() {
    for name in SUPPORTED {
        let vector = vector(name);
        let rp = vector.relying_party();
        let public_key = CredentialPublicKey::from_cose(&bytes(&vector.credential_public_key))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let credential_id = bytes(&vector.credential_id);
        let challenge = bytes(&vector.authentication.challenge);
        let verified = verify_assertion(
            &vector.assertion_response(),
            &StoredCredential {
                credential_id: &credential_id,
                public_key: &public_key,
                sign_count: 0,
                backup_eligible: vector.expected.flags.backup_eligible,
                user_handle: None,
            },
            &AssertionExpectations {
                relying_party: &rp,
                challenge: &challenge,
                require_user_verification: false,
            },
        )
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        let expected = vector.authentication.expected;
        assert_eq!(verified.sign_count, expected.sign_count, "{name}");
        assert_eq!(
            verified.flags.user_present(),
            expected.user_present,
            "{name}"
        );
        assert_eq!(
            verified.flags.user_verified(),
            expected.user_verified,
            "{name}"
        );
        assert_eq!(
            verified.flags.backup_eligible(),
            expected.backup_eligible,
            "{name}"
        );
        assert_eq!(
            verified.flags.backup_state(),
            expected.backup_state,
            "{name}"
        );
        assert_eq!(verified.user_handle, None, "{name}");
        assert_eq!(verified.credential_id, credential_id);
    }
}

#[test]
fn long_credential_id_is_the_longest_allowed() {
    let vector = vector("none.ES256.long-credential-id");
    assert_eq!(bytes(&vector.credential_id).len(), 1023);
}

#[test]
fn rs256_vector_yields_an_rsa_key() {
    let vector = vector("packed.RS256");
    let key = CredentialPublicKey::from_cose(&bytes(&vector.credential_public_key)).unwrap();
    assert_eq!(key.algorithm(), CoseAlgorithm::Rs256);
}

#[test]
fn cross_origin_vectors_are_refused_by_a_relying_party_that_does_not_expect_iframes() {
    for name in ["none.ES256.crossOrigin", "none.ES256.topOrigin"] {
        let vector = vector(name);
        let rp = RelyingParty::new(vector.rp_id.clone(), [vector.origin.clone()]);
        let challenge = bytes(&vector.challenge);
        let result = verify_registration(
            &vector.registration_response(),
            &expectations(&vector, &rp, &challenge, &[]),
        );
        assert_eq!(result, Err(RegistrationError::CrossOriginRefused), "{name}");
        assert_eq!(result.unwrap_err().code(), "error_invalid_client_data");
    }
}

#[test]
fn top_origin_outside_the_expected_set_is_refused() {
    let vector = vector("none.ES256.topOrigin");
    let rp = RelyingParty::new(vector.rp_id.clone(), [vector.origin.clone()]).with_cross_origin(
        keybridge_webauthn::CrossOriginPolicy::Allow {
            top_origins: vec!["https://portal.example".into()],
        },
    );
    let challenge = bytes(&vector.challenge);
    let result = verify_registration(
        &vector.registration_response(),
        &expectations(&vector, &rp, &challenge, &[]),
    );
    assert_eq!(
        result,
        Err(RegistrationError::TopOriginNotAllowed(
            "https://example.com".into()
        ))
    );
}

#[test]
fn cross_origin_call_without_top_origin_is_refused_when_top_origins_are_listed() {
    // crossOrigin is true and topOrigin is absent: the relying party cannot tell which page
    // embedded the ceremony, so a listed set of top origins cannot be satisfied.
    let vector = vector("none.ES256.crossOrigin");
    let rp = RelyingParty::new(vector.rp_id.clone(), [vector.origin.clone()]).with_cross_origin(
        keybridge_webauthn::CrossOriginPolicy::Allow {
            top_origins: vec!["https://portal.example".into()],
        },
    );
    let challenge = bytes(&vector.challenge);
    let result = verify_registration(
        &vector.registration_response(),
        &expectations(&vector, &rp, &challenge, &[]),
    );
    assert_eq!(result, Err(RegistrationError::TopOriginMissing));
    assert_eq!(result.unwrap_err().code(), "error_invalid_client_data");
}

#[test]
fn a_top_origin_is_checked_even_without_cross_origin() {
    // WebAuthn §7.1 step 10: when topOrigin is present the relying party must expect to be
    // embedded, and in that page. `none` attestation signs nothing over clientDataJSON, so a
    // client can add the member to a real vector.
    let vector = vector("none.ES256");
    let challenge = bytes(&vector.challenge);
    let mut response = vector.registration_response();
    let mut client_data: serde_json::Value =
        serde_json::from_slice(&response.client_data_json).expect("JSON");
    assert_ne!(client_data["crossOrigin"], serde_json::json!(true));
    client_data["topOrigin"] = serde_json::json!("https://evil.example");
    response.client_data_json = serde_json::to_vec(&client_data).expect("JSON");

    let refusing = vector.relying_party();
    assert_eq!(
        verify_registration(
            &response,
            &expectations(&vector, &refusing, &challenge, &[])
        ),
        Err(RegistrationError::TopOriginNotAllowed(
            "https://evil.example".into()
        ))
    );
    let listing = RelyingParty::new(vector.rp_id.clone(), [vector.origin.clone()])
        .with_cross_origin(keybridge_webauthn::CrossOriginPolicy::Allow {
            top_origins: vec!["https://portal.example".into()],
        });
    assert_eq!(
        verify_registration(&response, &expectations(&vector, &listing, &challenge, &[])),
        Err(RegistrationError::TopOriginNotAllowed(
            "https://evil.example".into()
        ))
    );
    client_data["topOrigin"] = serde_json::json!("https://portal.example");
    response.client_data_json = serde_json::to_vec(&client_data).expect("JSON");
    assert!(
        verify_registration(&response, &expectations(&vector, &listing, &challenge, &[])).is_ok()
    );
}

#[test]
fn other_algorithms_are_refused_with_a_typed_error() {
    for (name, alg) in [
        ("packed.ES384", -35),
        ("packed.ES512", -36),
        ("packed.EdDSA", -8),
        ("packed.Ed448", -53),
    ] {
        let vector = vector(name);
        let rp = vector.relying_party();
        let challenge = bytes(&vector.challenge);
        let anchors = vector.anchors();
        let result = verify_registration(
            &vector.registration_response(),
            &expectations(&vector, &rp, &challenge, &anchors),
        );
        assert_eq!(
            result,
            Err(RegistrationError::UnsupportedAlgorithm(alg)),
            "{name}"
        );
        assert_eq!(result.unwrap_err().code(), "error_unsupported_algorithm");
    }
}

#[test]
fn other_formats_are_refused_or_accepted_unverified_by_policy() {
    for name in [
        "tpm.ES256",
        "android-key.ES256",
        "apple.ES256",
        "fido-u2f.ES256",
    ] {
        let vector = vector(name);
        let fmt = vector.expected.fmt.clone();
        let rp = vector.relying_party();
        let challenge = bytes(&vector.challenge);
        let anchors = vector.anchors();
        let strict = expectations(&vector, &rp, &challenge, &anchors);
        let result = verify_registration(&vector.registration_response(), &strict);
        assert_eq!(
            result,
            Err(RegistrationError::UnsupportedFormat(fmt.clone())),
            "{name}"
        );
        assert_eq!(result.unwrap_err().code(), "error_attestation_required");

        let lenient = RegistrationExpectations {
            unsupported_formats: UnsupportedFormats::AcceptUnverified,
            ..strict
        };
        let verified = verify_registration(&vector.registration_response(), &lenient)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            verified.attestation,
            AttestationType::Unverified { fmt },
            "{name}"
        );
        assert_eq!(verified.credential_id, bytes(&vector.credential_id));
    }
}

#[test]
fn every_vector_is_either_supported_or_refused_without_panicking() {
    for vector in vectors() {
        let rp = vector.relying_party();
        let challenge = bytes(&vector.challenge);
        let anchors = vector.anchors();
        let result = verify_registration(
            &vector.registration_response(),
            &expectations(&vector, &rp, &challenge, &anchors),
        );
        assert_eq!(
            result.is_ok(),
            SUPPORTED.contains(&vector.name.as_str()),
            "{}",
            vector.name
        );
    }
}

#[test]
fn lenient_json_forms_carry_the_same_registration_and_assertion() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use keybridge_webauthn::PublicKeyCredentialJson;

    let vector = vector("packed.ES256");
    let registration = vector.registration_response();
    // Padded standard base64, no rawId or type, `clientDataJson` spelling, extension results.
    let json = serde_json::json!({
        "id": URL_SAFE.encode(bytes(&vector.credential_id)),
        "response": {
            "clientDataJson": STANDARD.encode(&registration.client_data_json),
            "attestationObject": STANDARD.encode(&registration.attestation_object),
        },
        "clientExtensionResults": {"credProtect": 1, "hmac-secret": true},
        "authenticatorAttachment": "cross-platform",
    });
    let parsed = PublicKeyCredentialJson::from_json(json.to_string().as_bytes())
        .unwrap()
        .to_registration()
        .unwrap();
    assert_eq!(parsed, registration);
    let rp = vector.relying_party();
    let challenge = bytes(&vector.challenge);
    let anchors = vector.anchors();
    assert!(
        verify_registration(&parsed, &expectations(&vector, &rp, &challenge, &anchors)).is_ok()
    );

    let assertion = vector.assertion_response();
    let json = serde_json::json!({
        "id": crate::support::b64(&assertion.credential_id),
        "rawId": STANDARD.encode(&assertion.credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": URL_SAFE.encode(&assertion.client_data_json),
            "authenticatorData": STANDARD.encode(&assertion.authenticator_data),
            "signature": crate::support::b64(&assertion.signature),
            "userHandle": null,
        },
    });
    let parsed = PublicKeyCredentialJson::from_json(json.to_string().as_bytes())
        .unwrap()
        .to_assertion()
        .unwrap();
    assert_eq!(parsed, assertion);
}
