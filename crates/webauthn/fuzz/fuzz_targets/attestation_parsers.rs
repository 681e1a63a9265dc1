//! Feeds arbitrary bytes to every byte-level parser: attestation object (CBOR map, authData,
//! attestation statement), authenticator data alone, COSE keys, certificates and client data.
//! Any panic is a bug: bad input must come back as a typed error.

#![no_main]

use keybridge_webauthn::{AttestationObject, AuthenticatorData, CollectedClientData, CredentialPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = AttestationObject::parse(data) {
        let _ = object.statement();
        if let Some(credential) = &object.authenticator_data.attested_credential_data {
            let _ = CredentialPublicKey::from_cose(&credential.credential_public_key);
        }
        let _ = object.authenticator_data.extension_identifiers();
    }
    let _ = AuthenticatorData::parse(data);
    if let Ok(key) = CredentialPublicKey::from_cose(data) {
        let _ = key.verify(b"message", data);
    }
    let _ = CollectedClientData::parse(data);
    let _ = keybridge_webauthn::certificate::verify_chain(&[data.to_vec()], &[], time::OffsetDateTime::UNIX_EPOCH);
});
