//! Runs whole registrations on arbitrary input: the first two bytes give the length of the
//! clientDataJSON that follows, the rest is the attestation object. The expected challenge
//! and origin are taken from the client data itself and unknown formats are accepted
//! unverified, so that the fuzzer reaches the authenticator-data and attestation checks
//! (seeds in `seeds/registration` are the W3C vectors, RP id `example.org`).

#![no_main]

use keybridge_webauthn::base64url::decode_lenient;
use keybridge_webauthn::{
    CollectedClientData, RegistrationExpectations, RegistrationResponse, RelyingParty, UnsupportedFormats,
    verify_registration,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let length = usize::from(u16::from_be_bytes(*length)).min(rest.len());
    let (client_data_json, attestation_object) = rest.split_at(length);
    let (challenge, origin) = match CollectedClientData::parse(client_data_json) {
        Ok(client_data) => (
            decode_lenient(&client_data.challenge).unwrap_or_default(),
            client_data.origin,
        ),
        Err(_) => (Vec::new(), String::new()),
    };
    let relying_party = RelyingParty::new("example.org", [origin]);
    let expectations = RegistrationExpectations {
        require_user_verification: false,
        unsupported_formats: UnsupportedFormats::AcceptUnverified,
        // Inside the validity of the W3C vectors' certificates.
        ..RegistrationExpectations::new(
            &relying_party,
            &challenge,
            time::OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        )
    };
    let _ = verify_registration(
        &RegistrationResponse {
            credential_id: None,
            client_data_json: client_data_json.to_vec(),
            attestation_object: attestation_object.to_vec(),
        },
        &expectations,
    );
});
