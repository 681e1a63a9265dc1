//! Authenticator data, attestation object and clientDataJSON bytes against the spec layout
//! (WebAuthn L3 §6.1, §6.5.1, §8.2; CTAP 2.1 §6 canonical CBOR), parsed by hand.

use ciborium::Value as Cbor;
use keybridge_authenticator::{
    AAGUID, AttestationPreference, MakeCredentialSettings, RequestOptions, b64url,
};

use crate::support::*;

/// SHA-256("login.microsoft.com"), from reference/entra.md §0.
const MICROSOFT_RP_ID_HASH: &str =
    "356c9ed4a09321b9695f1eaf918203f1b55f689da61fbc96184c157dda680c81";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn registration_bytes_follow_the_spec_layout() {
    let (mut phone, _) = memory_phone();
    let (options, challenge) = graph_options("ana@contoso.com", &rand_bytes(48));
    let created = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect("created");
    let data = &created.authenticator_data;

    assert_eq!(hex(&data[0..32]), MICROSOFT_RP_ID_HASH);
    // UP 0x01 | UV 0x04 | AT 0x40 | ED 0x80; BE 0x08 and BS 0x10 clear.
    assert_eq!(data[32], 0xc5, "flags {:08b}", data[32]);
    assert_eq!(&data[33..37], &[0, 0, 0, 0], "signCount starts at 0");
    assert_eq!(&data[37..53], &AAGUID);
    let id_len = usize::from(u16::from_be_bytes([data[53], data[54]]));
    assert_eq!(id_len, 32);
    assert_eq!(&data[55..55 + id_len], created.credential_id.as_slice());
    let cose = &data[55 + id_len..55 + id_len + 77];
    assert_eq!(
        &cose[..10],
        &[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]
    );
    assert_eq!(&cose[42..45], &[0x22, 0x58, 0x20]);
    // Extensions: {"credProtect": 1, "hmac-secret": true} in canonical order.
    let mut extensions = vec![0xa2, 0x6b];
    extensions.extend_from_slice(b"credProtect");
    extensions.extend_from_slice(&[0x01, 0x6b]);
    extensions.extend_from_slice(b"hmac-secret");
    extensions.push(0xf5);
    assert_eq!(&data[55 + id_len + 77..], extensions.as_slice());

    // The attestation object: {"fmt", "attStmt", "authData"} in that (canonical) order.
    let object: Cbor = ciborium::from_reader(created.attestation_object.as_slice()).expect("CBOR");
    let map = object.as_map().expect("a map");
    let keys: Vec<&str> = map
        .iter()
        .map(|(k, _)| k.as_text().expect("text key"))
        .collect();
    assert_eq!(keys, ["fmt", "attStmt", "authData"]);
    assert_eq!(map[0].1.as_text(), Some("packed"));
    assert_eq!(map[2].1.as_bytes(), Some(data));
    let statement = map[1].1.as_map().expect("attStmt map");
    let keys: Vec<&str> = statement
        .iter()
        .map(|(k, _)| k.as_text().expect("text key"))
        .collect();
    assert_eq!(keys, ["alg", "sig", "x5c"]);
    assert_eq!(statement[0].1, Cbor::Integer((-7).into()));
    assert_eq!(
        statement[2].1.as_array().map(Vec::len),
        Some(1),
        "x5c holds the batch certificate only"
    );

    let expected_client_data = format!(
        r#"{{"type":"webauthn.create","challenge":"{challenge}","origin":"https://login.microsoft.com","crossOrigin":false}}"#
    );
    assert_eq!(
        String::from_utf8(created.client_data_json.clone()).expect("utf-8"),
        expected_client_data
    );

    let json = created.to_json();
    assert_eq!(json["id"], b64url(&created.credential_id));
    assert_eq!(json["rawId"], json["id"]);
    assert_eq!(json["type"], "public-key");
    for field in ["clientDataJSON", "attestationObject"] {
        let text = json["response"][field].as_str().expect("string");
        assert!(
            !text.contains('=') && !text.contains('+') && !text.contains('/'),
            "{field} is base64url unpadded"
        );
    }
}

#[test]
fn no_extensions_means_no_ed_flag_and_none_is_an_empty_statement() {
    let (mut phone, _) = memory_phone();
    let (mut options, _) = graph_options("bob@contoso.com", &rand_bytes(48));
    options["publicKey"]["extensions"] = serde_json::json!({"unknownExtension": 5});
    options["publicKey"]["attestation"] = serde_json::json!("none");
    let created = phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings {
                attestation: AttestationPreference::Packed,
                tenant: None,
            },
        )
        .expect("created");
    assert_eq!(created.authenticator_data[32], 0x45, "UP|UV|AT only");
    assert_eq!(created.authenticator_data.len(), 37 + 16 + 2 + 32 + 77);
    assert_eq!(created.client_extension_results, serde_json::json!({}));
    let object: Cbor = ciborium::from_reader(created.attestation_object.as_slice()).expect("CBOR");
    let map = object.as_map().expect("map");
    assert_eq!(map[0].1.as_text(), Some("none"));
    assert_eq!(map[1].1.as_map().map(Vec::len), Some(0));
}

#[test]
fn assertion_bytes_follow_the_spec_layout() {
    let (mut phone, _) = memory_phone();
    let user_id = rand_bytes(48);
    let (options, _) = graph_options("ana@contoso.com", &user_id);
    phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect("created");
    for expected_count in 1u32..=3 {
        let challenge = b64url(&rand_bytes(32));
        let request = RequestOptions::from_json(&request_options(&challenge, &[]).to_string())
            .expect("options");
        let assertion = phone
            .get_assertion(&request, ORIGIN, None)
            .expect("assertion");
        let data = &assertion.authenticator_data;
        assert_eq!(data.len(), 37);
        assert_eq!(hex(&data[..32]), MICROSOFT_RP_ID_HASH);
        assert_eq!(data[32], 0x05, "UP|UV, no BE/BS/AT/ED");
        assert_eq!(
            u32::from_be_bytes([data[33], data[34], data[35], data[36]]),
            expected_count
        );
        assert_eq!(assertion.user_handle, user_id);
        assert_eq!(
            String::from_utf8(assertion.client_data_json.clone()).expect("utf-8"),
            format!(
                r#"{{"type":"webauthn.get","challenge":"{challenge}","origin":"https://login.microsoft.com","crossOrigin":false}}"#
            )
        );
        // DER ECDSA: SEQUENCE of two INTEGERs.
        assert_eq!(assertion.signature[0], 0x30);
        assert_eq!(
            usize::from(assertion.signature[1]) + 2,
            assertion.signature.len()
        );
    }
}
