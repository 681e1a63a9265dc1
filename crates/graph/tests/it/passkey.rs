//! A minimal WebAuthn authenticator for the tests: `none` attestation of a fresh P-256 key,
//! built byte by byte from the WebAuthn spec (§6.1 authenticator data, §6.5 attestation
//! object), so that entra-sim's registration checks get real input.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use ciborium::Value;
use keybridge_graph::NewFido2Method;

pub const RP_ID: &str = "login.microsoft.com";
pub const ORIGIN: &str = "https://login.microsoft.com";

/// A new credential answering `challenge` (copied verbatim from creationOptions).
pub fn new_credential(challenge: &str, aaguid: uuid::Uuid, display_name: &str) -> NewFido2Method {
    let rng = SystemRandom::new();
    let document =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, document.as_ref()).expect("key");
    let point = key.public_key().as_ref().to_vec(); // 0x04 || x || y
    let cose_key = Value::Map(vec![
        (Value::Integer(1.into()), Value::Integer(2.into())),
        (Value::Integer(3.into()), Value::Integer((-7).into())),
        (Value::Integer((-1).into()), Value::Integer(1.into())),
        (
            Value::Integer((-2).into()),
            Value::Bytes(point[1..33].to_vec()),
        ),
        (
            Value::Integer((-3).into()),
            Value::Bytes(point[33..65].to_vec()),
        ),
    ]);
    let mut credential_id = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut credential_id).expect("random");
    let mut auth_data = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, RP_ID.as_bytes())
        .as_ref()
        .to_vec();
    auth_data.push(0x01 | 0x04 | 0x40); // UP | UV | AT, not backup-eligible
    auth_data.extend_from_slice(&0u32.to_be_bytes());
    auth_data.extend_from_slice(aaguid.as_bytes());
    auth_data.extend_from_slice(&(credential_id.len() as u16).to_be_bytes());
    auth_data.extend_from_slice(&credential_id);
    ciborium::into_writer(&cose_key, &mut auth_data).expect("cbor");
    let attestation = Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text("none".into())),
        (Value::Text("attStmt".into()), Value::Map(Vec::new())),
        (Value::Text("authData".into()), Value::Bytes(auth_data)),
    ]);
    let mut attestation_object = Vec::new();
    ciborium::into_writer(&attestation, &mut attestation_object).expect("cbor");
    let client_data_json = serde_json::to_vec(&serde_json::json!({
        "type": "webauthn.create", "challenge": challenge, "origin": ORIGIN, "crossOrigin": false
    }))
    .expect("json");
    NewFido2Method {
        display_name: Some(display_name.to_owned()),
        credential_id,
        client_data_json,
        attestation_object,
        client_extension_results: serde_json::json!({}),
        aaguid: Some(aaguid),
    }
}
