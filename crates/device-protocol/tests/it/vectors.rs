//! The test vectors written in `docs/device-protocol.md` §8, read from the document itself so
//! that the document and the code cannot drift apart, plus RFC 6979's published P-256 vector.

use keybridge_device_protocol::{
    DeviceInfo, EnrolmentRequest, IdentityKey, IdentityPublicKey, Nonce, PairingPayload,
    PairingReference, PairingSecret, RequestTarget, RequestVerifier, ServerUrl, ShortCode,
    SignInBinding, Signature, SignedHeaders, SignerKind, TlsPin, body_digest, canonical_request,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{doc_vector, hex, rfc6979_key};

const DEVICE_ID: &str = "5b0f0a58-4c1e-4b6e-9d0c-2f6f3c1f7a11";
const REQUEST_PATH: &str = "/device/v1/requests/0190c3d4-5e6f-7a8b-9cad-bedf01234567";
const TIMESTAMP: i64 = 1_795_615_200;

fn nonce() -> Nonce {
    Nonce::from_bytes(core::array::from_fn(|i| u8::try_from(i).expect("i < 16")))
}

/// RFC 6979 A.2.5: P-256 key, SHA-256, message "sample".
#[test]
fn rfc6979_p256_sha256_sample_vector() {
    let key = rfc6979_key();
    let public = key.public_key().to_sec1_bytes();
    assert_eq!(
        public[1..33],
        hex("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6")
    );
    assert_eq!(
        public[33..],
        hex("7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299")
    );
    let signature = key.sign(b"sample").to_bytes();
    assert_eq!(
        signature[..32],
        hex("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716")
    );
    assert_eq!(
        signature[32..],
        hex("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")
    );
    assert_eq!(
        key.public_key().to_base64url(),
        doc_vector("device-public-key").trim()
    );
}

#[test]
fn request_vector_matches_the_document() {
    let key = rfc6979_key();
    let body = doc_vector("request-body");
    let target = RequestTarget {
        method: "POST",
        path_and_query: REQUEST_PATH,
        body: body.as_bytes(),
    };
    let id = Uuid::parse_str(DEVICE_ID).expect("uuid");
    let canonical =
        canonical_request(SignerKind::Device, id, &target, TIMESTAMP, &nonce()).expect("canonical");
    assert_eq!(canonical, doc_vector("request-canonical"));

    let headers =
        SignedHeaders::sign_with_nonce(SignerKind::Device, id, &key, &target, TIMESTAMP, nonce())
            .expect("signs");
    let written: String = headers
        .to_header_pairs()
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(written, doc_vector("request-headers"));

    // The documented headers, read back, verify at the documented time.
    let documented = doc_vector("request-headers");
    let parsed = SignedHeaders::from_headers(SignerKind::Device, |name| {
        documented.lines().find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    })
    .expect("documented headers parse");
    let now = OffsetDateTime::from_unix_timestamp(TIMESTAMP + 10).expect("time");
    let public = IdentityPublicKey::parse(doc_vector("device-public-key").trim()).expect("key");
    let _verified = RequestVerifier::default()
        .verify_signature(&parsed, &public, &target, now)
        .expect("the documented signature verifies");
    assert_eq!(
        body_digest(b""),
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        "empty-body digest quoted in the document"
    );
}

#[test]
fn enrolment_vector_matches_the_document() {
    let key = rfc6979_key();
    let secret = PairingSecret::from_bytes([0x42; 32]);
    let request = EnrolmentRequest::build(
        PairingReference::Id(
            Uuid::parse_str("6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b").expect("uuid"),
        ),
        &secret.proof_key(),
        &ServerUrl::parse("https://keybridge.example.com").expect("url"),
        &key,
        DeviceInfo::new("Ana's phone", "Pixel 8", "Android 15").expect("device"),
    );
    assert_eq!(request.message(), doc_vector("enrolment-message"));
    let json = serde_json::to_value(&request).expect("serialises");
    let proofs = format!(
        "proof: {}\nsignature: {}",
        json["proof"].as_str().expect("proof"),
        json["signature"].as_str().expect("signature")
    );
    assert_eq!(proofs, doc_vector("enrolment-proofs"));
    let document = std::fs::read_to_string(crate::support::document()).expect("doc");
    assert!(document.contains(&format!(
        "Pairing key (base64url) `{}`",
        secret.proof_key().to_base64url()
    )));
    assert!(document.contains(&format!(
        "Confirmation code: `{}`.",
        request.confirmation_code()
    )));
    let code = ShortCode::parse("K7QX4M").expect("code");
    assert!(document.contains(&format!(
        "`K7QX4M` → pairing key `{}`",
        code.proof_key().to_base64url()
    )));
}

#[test]
fn binding_vector_matches_the_document() {
    let key = IdentityKey::from_secret_bytes(&[0x11; 32]).expect("key");
    let binding = SignInBinding::sign(
        &key,
        Uuid::parse_str("0190c3d4-5e6f-7a8b-9cad-bedf01234567").expect("uuid"),
        Uuid::parse_str("2a1e3f4d-5c6b-4a79-8e8f-9a0b1c2d3e4f").expect("uuid"),
        "login.microsoft.com",
        "Ana@Contoso.com",
        "TzEyMy5zaWduLWlu",
        OffsetDateTime::from_unix_timestamp(1_795_615_195).expect("time"),
    )
    .expect("binds");
    assert_eq!(binding.message(), doc_vector("binding-message"));
    assert_eq!(
        binding.signature,
        Signature::parse(doc_vector("binding-signature").trim()).expect("signature")
    );
    let document = std::fs::read_to_string(crate::support::document()).expect("doc");
    assert!(document.contains(&key.public_key().to_base64url()));
}

#[test]
fn pairing_uri_example_parses() {
    let uri = doc_vector("pairing-uri");
    let payload = PairingPayload::parse_ignoring_expiry(uri.trim()).expect("the example parses");
    assert_eq!(payload.server_url.as_str(), "https://keybridge.example.com");
    assert_eq!(payload.secret, PairingSecret::from_bytes([0x42; 32]));
    assert_eq!(payload.tls_pin, TlsPin::from_bytes([9; 32]));
    assert_eq!(payload.expires_at.unix_timestamp(), 1_795_615_260);
    assert_eq!(
        payload.encode(),
        uri.trim(),
        "our encoder writes the same text"
    );
}
