//! Benchmarks of registration verification (`packed` with x5c, ES256, chain checked to its
//! root) and assertion verification (ES256), on the W3C WebAuthn Level 3 vector `packed.ES256`.
//! Results and the command are in `BENCHMARK-NOTES.md`.

use criterion::{Criterion, criterion_main};
use keybridge_webauthn::base64url::decode_lenient;
use keybridge_webauthn::{
    AssertionExpectations, AssertionResponse, CredentialPublicKey, RegistrationExpectations,
    RegistrationResponse, RelyingParty, StoredCredential, verify_assertion, verify_registration,
};
use time::OffsetDateTime;

struct Fixture {
    relying_party: RelyingParty,
    registration_challenge: Vec<u8>,
    registration: RegistrationResponse,
    anchors: Vec<Vec<u8>>,
    assertion_challenge: Vec<u8>,
    assertion: AssertionResponse,
    public_key: CredentialPublicKey,
}

fn field<'a>(value: &'a serde_json::Value, path: &[&str]) -> &'a str {
    let mut current = value;
    for key in path {
        current = &current[*key];
    }
    current
        .as_str()
        .unwrap_or_else(|| panic!("vector field {path:?} is a string"))
}

fn bytes(value: &serde_json::Value, path: &[&str]) -> Vec<u8> {
    decode_lenient(field(value, path)).unwrap_or_else(|error| panic!("{path:?}: {error}"))
}

fn fixture() -> Fixture {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../tests/it/data/w3c-webauthn-l3.json"))
            .unwrap_or_else(|error| panic!("vectors parse: {error}"));
    let vector = all
        .into_iter()
        .find(|v| v["name"] == "packed.ES256")
        .unwrap_or_else(|| panic!("packed.ES256 is in the vectors"));
    let credential_id = bytes(&vector, &["credential_id"]);
    Fixture {
        relying_party: RelyingParty::new(field(&vector, &["rp_id"]), [field(&vector, &["origin"])]),
        registration_challenge: bytes(&vector, &["challenge"]),
        registration: RegistrationResponse {
            credential_id: Some(credential_id.clone()),
            client_data_json: bytes(&vector, &["registration", "clientDataJSON"]),
            attestation_object: bytes(&vector, &["registration", "attestationObject"]),
        },
        anchors: vec![bytes(&vector, &["attestation_ca_cert_der"])],
        assertion_challenge: bytes(&vector, &["authentication", "challenge"]),
        assertion: AssertionResponse {
            credential_id,
            client_data_json: bytes(&vector, &["authentication", "clientDataJSON"]),
            authenticator_data: bytes(&vector, &["authentication", "authenticatorData"]),
            signature: bytes(&vector, &["authentication", "signature"]),
            user_handle: None,
        },
        public_key: CredentialPublicKey::from_cose(&bytes(&vector, &["credential_public_key"]))
            .unwrap_or_else(|error| panic!("credential key: {error}")),
    }
}

fn benchmarks(c: &mut Criterion) {
    let fixture = fixture();
    let now = OffsetDateTime::from_unix_timestamp(1_780_000_000)
        .unwrap_or_else(|error| panic!("timestamp: {error}"));
    let registration = RegistrationExpectations {
        require_user_verification: true,
        trust_anchors: &fixture.anchors,
        ..RegistrationExpectations::new(
            &fixture.relying_party,
            &fixture.registration_challenge,
            now,
        )
    };
    c.bench_function("verify_registration packed x5c ES256", |b| {
        b.iter(|| {
            verify_registration(&fixture.registration, &registration)
                .unwrap_or_else(|error| panic!("registration: {error}"))
        })
    });
    let stored = StoredCredential {
        credential_id: &fixture.assertion.credential_id,
        public_key: &fixture.public_key,
        sign_count: 0,
        backup_eligible: true,
        user_handle: None,
    };
    let assertion = AssertionExpectations {
        relying_party: &fixture.relying_party,
        challenge: &fixture.assertion_challenge,
        require_user_verification: true,
    };
    c.bench_function("verify_assertion ES256", |b| {
        b.iter(|| {
            verify_assertion(&fixture.assertion, &stored, &assertion)
                .unwrap_or_else(|error| panic!("assertion: {error}"))
        })
    });
}

/// criterion's generated entry point, kept private.
mod group {
    criterion::criterion_group!(benches, super::benchmarks);
}

criterion_main!(group::benches);
