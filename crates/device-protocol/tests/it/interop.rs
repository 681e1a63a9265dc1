//! The protocol's signatures, proofs and encodings checked by an independent implementation:
//! `tests/interop/device_protocol_verify.py`, written from docs/device-protocol.md with Python's
//! `cryptography`, `hmac` and `urllib`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_device_protocol::{
    DeviceInfo, EnrolmentRequest, IdentityKey, Nonce, PairingPayload, PairingReference,
    PairingSecret, RequestAuthError, RequestTarget, RequestVerifier, ServerUrl, ShortCode,
    SignInBinding, Signature, SignedHeaders, SignerKind, TlsPin,
};
use rand_core::OsRng;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use crate::support::{RFC6979_KEY_HEX, rfc6979_key, run_python};

const NOW: OffsetDateTime = datetime!(2026-11-25 14:00:00 UTC);

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn request_json(headers: &SignedHeaders, public_key: &str, target: &RequestTarget<'_>) -> Value {
    json!({
        "public_key": public_key,
        "kind": match headers.kind { SignerKind::Device => "device", SignerKind::Workstation => "workstation" },
        "signer_id": headers.signer_id.to_string(),
        "method": target.method,
        "path_and_query": target.path_and_query,
        "timestamp": headers.timestamp,
        "nonce": headers.nonce.to_base64url(),
        "body": b64(target.body),
        "signature": headers.signature.to_base64url(),
    })
}

#[test]
fn python_verifies_our_request_signatures_and_rebuilds_the_canonical_string() {
    let key = IdentityKey::generate(&mut OsRng);
    let body = br#"{"v":1,"request_id":"0190c3d4-0000-7000-8000-000000000001","answer":"approved","assertion":{}}"#;
    for (kind, target) in [
        (
            SignerKind::Device,
            RequestTarget {
                method: "POST",
                path_and_query: "/device/v1/requests/0190c3d4-0000-7000-8000-000000000001",
                body,
            },
        ),
        (
            SignerKind::Device,
            RequestTarget {
                method: "GET",
                path_and_query: "/device/v1/inbox?wait=30",
                body: b"",
            },
        ),
        (
            SignerKind::Workstation,
            RequestTarget {
                method: "POST",
                path_and_query: "/kb/workstation/v1/sign-in?x=%2F",
                body: b"{}",
            },
        ),
    ] {
        let headers = SignedHeaders::sign(kind, Uuid::new_v4(), &key, &target, NOW, &mut OsRng)
            .expect("signs");
        let out = run_python(
            "verify-request",
            &request_json(&headers, &key.public_key().to_base64url(), &target),
        );
        assert_eq!(out["valid"], true, "python rejects {target:?}");
        let ours = keybridge_device_protocol::canonical_request(
            kind,
            headers.signer_id,
            &target,
            headers.timestamp,
            &headers.nonce,
        )
        .expect("canonical");
        assert_eq!(out["canonical"], ours.as_str());
    }
}

#[test]
fn python_rejects_a_tampered_request() {
    let key = IdentityKey::generate(&mut OsRng);
    let target = RequestTarget {
        method: "DELETE",
        path_and_query: "/device/v1/device",
        body: b"",
    };
    let headers = SignedHeaders::sign(
        SignerKind::Device,
        Uuid::new_v4(),
        &key,
        &target,
        NOW,
        &mut OsRng,
    )
    .expect("signs");
    let mut input = request_json(&headers, &key.public_key().to_base64url(), &target);
    input["path_and_query"] = json!("/device/v1/device?all=1");
    assert_eq!(run_python("verify-request", &input)["valid"], false);
}

#[test]
fn python_reproduces_our_deterministic_signature_of_the_documented_vector() {
    let key = rfc6979_key();
    let body = crate::support::doc_vector("request-body");
    let target = RequestTarget {
        method: "POST",
        path_and_query: "/device/v1/requests/0190c3d4-5e6f-7a8b-9cad-bedf01234567",
        body: body.as_bytes(),
    };
    let headers = SignedHeaders::sign_with_nonce(
        SignerKind::Device,
        Uuid::parse_str("5b0f0a58-4c1e-4b6e-9d0c-2f6f3c1f7a11").expect("uuid"),
        &key,
        &target,
        1_795_615_200,
        Nonce::from_bytes(core::array::from_fn(|i| u8::try_from(i).expect("small"))),
    )
    .expect("signs");
    let mut input = request_json(&headers, &key.public_key().to_base64url(), &target);
    input["private_key_hex"] = json!(RFC6979_KEY_HEX);
    let out = run_python("verify-request", &input);
    assert_eq!(out["valid"], true);
    assert_eq!(
        out["canonical"],
        crate::support::doc_vector("request-canonical").as_str()
    );
    assert_eq!(out["public_key"], key.public_key().to_base64url().as_str());
    assert_eq!(
        out["deterministic_signature"],
        headers.signature.to_base64url().as_str(),
        "cryptography's RFC 6979 signature equals ours"
    );
}

#[test]
fn we_verify_signatures_made_by_python_with_random_nonces() {
    // OpenSSL does not normalise s, so over 12 signatures both halves of the range occur
    // (with probability 1 - 2^-11): our verifier must accept high-s signatures.
    let key = rfc6979_key();
    let device_id = Uuid::new_v4();
    let mut high_s_seen = false;
    for round in 0..12 {
        let body = format!("{{\"round\":{round}}}");
        let target = RequestTarget {
            method: "POST",
            path_and_query: "/device/v1/requests/0190c3d4-0000-7000-8000-000000000009",
            body: body.as_bytes(),
        };
        let nonce = Nonce::generate(&mut OsRng);
        let out = run_python(
            "sign-request",
            &json!({
                "private_key_hex": RFC6979_KEY_HEX,
                "kind": "device",
                "signer_id": device_id.to_string(),
                "method": target.method,
                "path_and_query": target.path_and_query,
                "timestamp": NOW.unix_timestamp(),
                "nonce": nonce.to_base64url(),
                "body": b64(target.body),
            }),
        );
        let signature =
            Signature::parse(out["signature"].as_str().expect("signature")).expect("parses");
        high_s_seen |= signature.to_bytes()[32] >= 0x80;
        let headers = SignedHeaders {
            kind: SignerKind::Device,
            signer_id: device_id,
            timestamp: NOW.unix_timestamp(),
            nonce,
            signature,
        };
        let _verified = RequestVerifier::default()
            .verify_signature(&headers, &key.public_key(), &target, NOW)
            .expect("python's signature verifies");
        let tampered = RequestTarget {
            body: b"{}",
            ..target
        };
        assert!(matches!(
            RequestVerifier::default().verify_signature(
                &headers,
                &key.public_key(),
                &tampered,
                NOW
            ),
            Err(RequestAuthError::BadSignature)
        ));
    }
    assert!(
        high_s_seen,
        "some signature had s in the upper half (or the bytes were misread)"
    );
}

#[test]
fn python_checks_enrolment_proofs_for_qr_and_code() {
    let key = IdentityKey::generate(&mut OsRng);
    let server = ServerUrl::parse("https://keybridge.example.com:8443/").expect("url");
    let device = DeviceInfo::new("Ana's phone ☂", "Pixel 8", "Android 15").expect("device");
    let secret = PairingSecret::generate(&mut OsRng);
    let qr = EnrolmentRequest::build(
        PairingReference::Id(Uuid::new_v4()),
        &secret.proof_key(),
        &server,
        &key,
        device.clone(),
    );
    let out = run_python(
        "verify-enrolment",
        &json!({"secret": secret.to_base64url(), "enrolment": qr}),
    );
    assert_eq!(
        out,
        json!({"proof_valid": true, "signature_valid": true, "confirmation_code": qr.confirmation_code()})
    );

    let code = ShortCode::generate(&mut OsRng);
    let by_code = EnrolmentRequest::build(
        PairingReference::Code(code.clone()),
        &code.proof_key(),
        &server,
        &key,
        device,
    );
    let out = run_python(
        "verify-enrolment",
        &json!({"code": code.as_str(), "enrolment": by_code}),
    );
    assert_eq!(out["proof_valid"], true);
    assert_eq!(out["signature_valid"], true);
    assert_eq!(
        out["confirmation_code"],
        by_code.confirmation_code().as_str()
    );

    let other = PairingSecret::generate(&mut OsRng);
    let out = run_python(
        "verify-enrolment",
        &json!({"secret": other.to_base64url(), "enrolment": qr}),
    );
    assert_eq!(out["proof_valid"], false, "python notices a wrong secret");
}

#[test]
fn python_verifies_the_sign_in_binding() {
    let key = IdentityKey::generate(&mut OsRng);
    let challenge = b64(b"O.eyJhbGciOiJSUzI1NiJ9.challenge-bytes");
    let binding = SignInBinding::sign(
        &key,
        Uuid::new_v4(),
        Uuid::new_v4(),
        "login.microsoft.com",
        "Ana.Lopez@Contoso.com",
        &challenge,
        NOW,
    )
    .expect("binds");
    let input = json!({
        "public_key": key.public_key().to_base64url(),
        "binding": binding,
        "challenge": challenge,
    });
    assert_eq!(
        run_python("verify-binding", &input),
        json!({"challenge_matches": true, "valid": true})
    );
    let mut altered = input.clone();
    altered["binding"]["workstation_id"] = json!(Uuid::new_v4().to_string());
    assert_eq!(run_python("verify-binding", &altered)["valid"], false);
}

#[test]
fn tls_pin_equals_pythons_spki_hash_for_several_key_types() {
    for algorithm in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let key = rcgen::KeyPair::generate_for(algorithm).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["keybridge.example.com".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let ours = TlsPin::of_certificate_der(cert.der()).expect("pin");
        let out = run_python("spki-pin", &json!({"certificate": b64(cert.der())}));
        assert_eq!(out["pin"], ours.to_base64url().as_str(), "{algorithm:?}");
        assert_eq!(out["rfc7469"], ours.to_rfc7469().as_str());
        assert_eq!(
            TlsPin::parse(out["rfc7469"].as_str().expect("text")).expect("parses"),
            ours
        );
    }
}

#[test]
fn python_reads_the_pairing_uri_as_a_standard_query() {
    let payload = PairingPayload {
        server_url: ServerUrl::parse("https://kb.example.com:8443/base path/").expect("url"),
        pairing_id: Uuid::new_v4(),
        secret: PairingSecret::generate(&mut OsRng),
        tls_pin: TlsPin::from_bytes([0xfe; 32]),
        expires_at: NOW + time::Duration::seconds(60),
    };
    let out = run_python("parse-payload", &json!({"uri": payload.encode()}));
    assert_eq!(out["scheme"], "keybridge");
    assert_eq!(out["path"], "pair");
    assert_eq!(out["secret_bytes"], 32);
    assert_eq!(
        out["fields"],
        json!({
            "v": "1",
            "u": payload.server_url.as_str(),
            "id": payload.pairing_id.to_string(),
            "s": payload.secret.to_base64url(),
            "p": payload.tls_pin.to_base64url(),
            "exp": payload.expires_at.unix_timestamp().to_string(),
        })
    );
}
