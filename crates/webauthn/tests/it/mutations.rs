//! Mutated vectors: each change must give its own specific error.

use ciborium::Value;
use keybridge_webauthn::assertion::AssertionError;
use keybridge_webauthn::attestation::AttestationObjectError;
use keybridge_webauthn::authenticator_data::AuthenticatorDataError;
use keybridge_webauthn::certificate::CertificateError;
use keybridge_webauthn::cose::SignatureError;
use keybridge_webauthn::{
    AssertionExpectations, AssertionResponse, CborError, CredentialPublicKey, RegistrationError,
    RegistrationExpectations, RegistrationResponse, RelyingParty, StoredCredential,
    VerifiedAssertion, verify_assertion, verify_registration,
};
use time::OffsetDateTime;

use crate::support::{Vector, bytes, now, vector};

fn register(
    vector: &Vector,
    response: &RegistrationResponse,
    rp: &RelyingParty,
    require_uv: bool,
    anchors: &[Vec<u8>],
    when: OffsetDateTime,
) -> Result<keybridge_webauthn::VerifiedRegistration, RegistrationError> {
    let challenge = bytes(&vector.challenge);
    verify_registration(
        response,
        &RegistrationExpectations {
            require_user_verification: require_uv,
            trust_anchors: anchors,
            ..RegistrationExpectations::new(rp, &challenge, when)
        },
    )
}

fn register_default(
    vector: &Vector,
    response: &RegistrationResponse,
) -> Result<keybridge_webauthn::VerifiedRegistration, RegistrationError> {
    register(
        vector,
        response,
        &vector.relying_party(),
        false,
        &vector.anchors(),
        now(),
    )
}

fn assert_with(
    vector: &Vector,
    response: &AssertionResponse,
    stored_count: u32,
    backup_eligible: bool,
    require_uv: bool,
) -> Result<VerifiedAssertion, AssertionError> {
    let key = CredentialPublicKey::from_cose(&bytes(&vector.credential_public_key)).unwrap();
    let credential_id = bytes(&vector.credential_id);
    let challenge = bytes(&vector.authentication.challenge);
    verify_assertion(
        response,
        &StoredCredential {
            credential_id: &credential_id,
            public_key: &key,
            sign_count: stored_count,
            backup_eligible,
            user_handle: None,
        },
        &AssertionExpectations {
            relying_party: &vector.relying_party(),
            challenge: &challenge,
            require_user_verification: require_uv,
        },
    )
}

fn decode(bytes: &[u8]) -> Vec<(Value, Value)> {
    match ciborium::de::from_reader::<Value, _>(bytes).unwrap() {
        Value::Map(entries) => entries,
        other => panic!("not a map: {other:?}"),
    }
}

fn encode(entries: Vec<(Value, Value)>) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Map(entries), &mut out).unwrap();
    out
}

/// Rewrites one member of an attestation object.
fn with_member(attestation_object: &[u8], key: &str, change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut entries = decode(attestation_object);
    let slot = entries
        .iter_mut()
        .find(|(k, _)| *k == Value::Text(key.into()))
        .map(|(_, v)| v)
        .unwrap();
    change(slot);
    encode(entries)
}

/// Rewrites authData inside an attestation object.
fn with_auth_data(attestation_object: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    with_member(attestation_object, "authData", |value| {
        let Value::Bytes(auth_data) = value else {
            panic!("authData is bytes")
        };
        change(auth_data);
    })
}

#[test]
fn changed_registration_challenge_is_refused() {
    let vector = vector("packed.ES256");
    let mut other = vector.clone();
    other.challenge = vector.authentication.challenge.clone();
    let result = register_default(&other, &vector.registration_response());
    assert_eq!(result, Err(RegistrationError::ChallengeMismatch));
    assert_eq!(result.unwrap_err().code(), "error_invalid_challenge");
}

#[test]
fn changed_assertion_challenge_is_refused() {
    let vector = vector("none.ES256");
    let mut other = vector.clone();
    other.authentication.challenge = vector.challenge.clone();
    let result = assert_with(&other, &vector.assertion_response(), 0, true, false);
    assert_eq!(result, Err(AssertionError::ChallengeMismatch));
}

#[test]
fn unexpected_origin_is_refused_in_both_ceremonies() {
    let vector = vector("packed.ES256");
    let mut other = vector.clone();
    other.origin = "https://evil.example".into();
    assert_eq!(
        register_default(&other, &vector.registration_response()),
        Err(RegistrationError::OriginNotAllowed(
            "https://example.org".into()
        ))
    );
    assert_eq!(
        assert_with(&other, &vector.assertion_response(), 0, true, false),
        Err(AssertionError::OriginNotAllowed(
            "https://example.org".into()
        ))
    );
}

#[test]
fn wrong_ceremony_type_is_refused() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.client_data_json = bytes(&vector.authentication.client_data_json);
    let mut other = vector.clone();
    other.challenge = vector.authentication.challenge.clone();
    assert_eq!(
        register_default(&other, &response),
        Err(RegistrationError::WrongCeremonyType("webauthn.get".into()))
    );
}

#[test]
fn another_rp_id_is_refused_by_its_hash() {
    let vector = vector("packed.ES256");
    let mut other = vector.clone();
    other.rp_id = "example.com".into();
    let result = register_default(&other, &vector.registration_response());
    assert_eq!(
        result,
        Err(RegistrationError::RpIdHashMismatch("example.com".into()))
    );
    assert_eq!(result.unwrap_err().code(), "error_invalid_rp_id");
    assert_eq!(
        assert_with(&other, &vector.assertion_response(), 0, true, false),
        Err(AssertionError::RpIdHashMismatch("example.com".into()))
    );
}

#[test]
fn flipped_assertion_signature_bit_is_refused() {
    let vector = vector("packed.ES256");
    let mut response = vector.assertion_response();
    let last = response.signature.len() - 1;
    response.signature[last] ^= 0x01;
    assert_eq!(
        assert_with(&vector, &response, 0, true, false),
        Err(AssertionError::Signature(SignatureError::Invalid))
    );
    let rsa = crate::support::vector("packed.RS256");
    let mut response = rsa.assertion_response();
    response.signature[10] ^= 0x80;
    assert_eq!(
        assert_with(&rsa, &response, 0, true, false),
        Err(AssertionError::Signature(SignatureError::Invalid))
    );
}

#[test]
fn flipped_attestation_signature_bit_is_refused() {
    for name in ["packed.ES256", "packed-self.ES256"] {
        let vector = vector(name);
        let mut response = vector.registration_response();
        response.attestation_object =
            with_member(&response.attestation_object, "attStmt", |stmt| {
                let Value::Map(entries) = stmt else { panic!() };
                let (_, Value::Bytes(sig)) = entries
                    .iter_mut()
                    .find(|(k, _)| *k == Value::Text("sig".into()))
                    .unwrap()
                else {
                    panic!()
                };
                let last = sig.len() - 1;
                sig[last] ^= 0x01;
            });
        assert_eq!(
            register_default(&vector, &response),
            Err(RegistrationError::AttestationSignature(
                SignatureError::Invalid
            )),
            "{name}"
        );
    }
}

#[test]
fn chain_to_an_unrelated_root_is_refused() {
    let vector = vector("packed.ES256");
    let unrelated = crate::generated::unrelated_root_der();
    let result = register(
        &vector,
        &vector.registration_response(),
        &vector.relying_party(),
        false,
        &[unrelated],
        now(),
    );
    assert_eq!(
        result,
        Err(RegistrationError::UntrustedAttestation(
            CertificateError::UntrustedRoot(1)
        ))
    );
    assert_eq!(result.unwrap_err().code(), "error_attestation_required");
}

#[test]
fn attestation_certificate_outside_its_validity_is_refused() {
    let vector = vector("packed.ES256");
    let before_issue = OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
    let result = register(
        &vector,
        &vector.registration_response(),
        &vector.relying_party(),
        false,
        &vector.anchors(),
        before_issue,
    );
    assert!(
        matches!(
            result,
            Err(RegistrationError::UntrustedAttestation(
                CertificateError::OutsideValidity { index: 0, .. }
            ))
        ),
        "{result:?}"
    );
}

#[test]
fn truncated_attestation_object_is_refused() {
    let vector = vector("packed.ES256");
    let mut response = vector.registration_response();
    for cut in [
        1,
        10,
        response.attestation_object.len() / 2,
        response.attestation_object.len() - 1,
    ] {
        response.attestation_object =
            vector.registration_response().attestation_object[..cut].to_vec();
        let result = register_default(&vector, &response);
        assert!(
            matches!(
                result,
                Err(RegistrationError::AttestationObject(
                    AttestationObjectError::Cbor(CborError::Malformed(_))
                ))
            ),
            "cut at {cut}: {result:?}"
        );
        assert_eq!(result.unwrap_err().code(), "error_invalid_request");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.attestation_object.push(0);
    assert_eq!(
        register_default(&vector, &response),
        Err(RegistrationError::AttestationObject(
            AttestationObjectError::Cbor(CborError::TrailingBytes(1))
        ))
    );
    let mut response = vector.registration_response();
    response.attestation_object = with_auth_data(&response.attestation_object, |auth_data| {
        auth_data.extend_from_slice(&[1, 2])
    });
    assert_eq!(
        register_default(&vector, &response),
        Err(RegistrationError::AttestationObject(
            AttestationObjectError::AuthenticatorData(AuthenticatorDataError::TrailingBytes(2))
        ))
    );
    let mut assertion = vector.assertion_response();
    assertion.authenticator_data.push(0);
    assert_eq!(
        assert_with(&vector, &assertion, 0, true, false),
        Err(AssertionError::AuthenticatorData(
            AuthenticatorDataError::TrailingBytes(1)
        ))
    );
}

#[test]
fn attestation_alg_that_does_not_match_the_key_is_refused() {
    for name in ["packed-self.ES256", "packed.ES256"] {
        let vector = vector(name);
        let mut response = vector.registration_response();
        response.attestation_object =
            with_member(&response.attestation_object, "attStmt", |stmt| {
                let Value::Map(entries) = stmt else { panic!() };
                entries
                    .iter_mut()
                    .find(|(k, _)| *k == Value::Text("alg".into()))
                    .unwrap()
                    .1 = Value::from(-257);
            });
        assert!(
            matches!(
                register_default(&vector, &response),
                Err(RegistrationError::AttestationAlgorithmMismatch {
                    statement_alg: -257,
                    ..
                })
            ),
            "{name}"
        );
    }
}

#[test]
fn missing_user_verification_is_refused_when_required() {
    let vector = vector("none.ES256");
    let result = register(
        &vector,
        &vector.registration_response(),
        &vector.relying_party(),
        true,
        &[],
        now(),
    );
    assert_eq!(result, Err(RegistrationError::UserNotVerified));
    assert_eq!(
        result.unwrap_err().code(),
        "error_user_verification_required"
    );
    assert_eq!(
        assert_with(&vector, &vector.assertion_response(), 0, true, true),
        Err(AssertionError::UserNotVerified)
    );
}

#[test]
fn missing_user_presence_is_refused() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.attestation_object = with_auth_data(&response.attestation_object, |auth_data| {
        auth_data[32] &= !0x01;
    });
    assert_eq!(
        register_default(&vector, &response),
        Err(RegistrationError::UserNotPresent)
    );
}

#[test]
fn backup_state_without_eligibility_is_refused() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.attestation_object = with_auth_data(&response.attestation_object, |auth_data| {
        auth_data[32] = (auth_data[32] & !0x08) | 0x10;
    });
    assert_eq!(
        register_default(&vector, &response),
        Err(RegistrationError::BackupStateWithoutEligibility)
    );
    let mut assertion = vector.assertion_response();
    assertion.authenticator_data[32] = (assertion.authenticator_data[32] & !0x08) | 0x10;
    assert_eq!(
        assert_with(&vector, &assertion, 0, true, false),
        Err(AssertionError::BackupStateWithoutEligibility)
    );
}

#[test]
fn backup_eligibility_must_stay_as_registered() {
    let vector = vector("none.ES256");
    assert_eq!(
        assert_with(&vector, &vector.assertion_response(), 0, false, false),
        Err(AssertionError::BackupEligibilityChanged {
            registered: false,
            asserted: true
        })
    );
}

#[test]
fn counter_that_does_not_increase_is_a_possible_clone() {
    let vector = vector("packed.ES256");
    let result = assert_with(&vector, &vector.assertion_response(), 5, true, false);
    assert_eq!(
        result,
        Err(AssertionError::PossibleClone {
            stored: 5,
            received: 0
        })
    );
    assert_eq!(result.unwrap_err().code(), "error_possible_clone");
    // Both zero: the authenticator does not use a counter, which is allowed.
    assert!(assert_with(&vector, &vector.assertion_response(), 0, true, false).is_ok());
}

#[test]
fn missing_attested_credential_data_is_refused() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.attestation_object = with_auth_data(&response.attestation_object, |auth_data| {
        auth_data.truncate(37);
        auth_data[32] &= !0x40;
    });
    assert_eq!(
        register_default(&vector, &response),
        Err(RegistrationError::NoAttestedCredentialData)
    );
}

#[test]
fn credential_id_over_1023_bytes_is_refused() {
    let vector = vector("none.ES256.long-credential-id");
    let mut response = vector.registration_response();
    response.credential_id = None;
    response.attestation_object = with_auth_data(&response.attestation_object, |auth_data| {
        // Grow the id by one byte and its length field with it.
        let length = u16::from_be_bytes([auth_data[53], auth_data[54]]) + 1;
        auth_data[53..55].copy_from_slice(&length.to_be_bytes());
        auth_data.insert(55, 0x42);
    });
    assert_eq!(
        register_default(&vector, &response),
        Err(RegistrationError::CredentialIdTooLong(1024))
    );
}

#[test]
fn client_credential_id_must_match_authenticator_data() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.credential_id = Some(vec![1, 2, 3]);
    assert_eq!(
        register_default(&vector, &response),
        Err(RegistrationError::CredentialIdMismatch)
    );
    let mut assertion = vector.assertion_response();
    assertion.credential_id = vec![1, 2, 3];
    assert_eq!(
        assert_with(&vector, &assertion, 0, true, false),
        Err(AssertionError::CredentialMismatch)
    );
}

#[test]
fn none_format_with_a_statement_is_refused() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.attestation_object = with_member(&response.attestation_object, "attStmt", |stmt| {
        *stmt = Value::Map(vec![(Value::Text("sig".into()), Value::Bytes(vec![1]))]);
    });
    assert!(matches!(
        register_default(&vector, &response),
        Err(RegistrationError::AttestationStatement(_))
    ));
}

#[test]
fn malformed_client_data_is_refused() {
    let vector = vector("none.ES256");
    let mut response = vector.registration_response();
    response.client_data_json = b"{\"type\":".to_vec();
    let result = register_default(&vector, &response);
    assert!(
        matches!(result, Err(RegistrationError::ClientData(_))),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().code(), "error_invalid_client_data");
}

/// Verifies `response` against the vector's credential registered for `registered_user`.
fn assert_for_user(
    vector: &Vector,
    response: &AssertionResponse,
    registered_user: Option<&[u8]>,
) -> Result<VerifiedAssertion, AssertionError> {
    let key = CredentialPublicKey::from_cose(&bytes(&vector.credential_public_key)).unwrap();
    let credential_id = bytes(&vector.credential_id);
    let challenge = bytes(&vector.authentication.challenge);
    verify_assertion(
        response,
        &StoredCredential {
            credential_id: &credential_id,
            public_key: &key,
            sign_count: 0,
            backup_eligible: true,
            user_handle: registered_user,
        },
        &AssertionExpectations {
            relying_party: &vector.relying_party(),
            challenge: &challenge,
            require_user_verification: false,
        },
    )
}

// WebAuthn L3 §7.2 step 6: a returned userHandle must be the user the credential was registered for.
#[test]
fn user_handle_of_another_user_is_refused() {
    let vector = vector("packed.ES256");
    let mut response = vector.assertion_response();
    response.user_handle = Some(b"mallory".to_vec());
    let result = assert_for_user(&vector, &response, Some(b"alice"));
    assert_eq!(result, Err(AssertionError::UserHandleMismatch));
    assert_eq!(result.unwrap_err().code(), "error_user_handle_mismatch");
}

#[test]
fn user_handle_is_accepted_when_it_matches_or_either_side_is_absent() {
    let vector = vector("packed.ES256");
    let mut response = vector.assertion_response();
    response.user_handle = Some(b"alice".to_vec());
    let verified = assert_for_user(&vector, &response, Some(b"alice")).unwrap();
    assert_eq!(verified.user_handle.as_deref(), Some(&b"alice"[..]));
    // Not registered with a handle: nothing to compare against.
    assert!(assert_for_user(&vector, &response, None).is_ok());
    // An authenticator may omit userHandle when the allow list named the credential.
    response.user_handle = None;
    assert!(assert_for_user(&vector, &response, Some(b"alice")).is_ok());
}
