//! Property tests: parsers never panic on any input, and encoders round-trip.

use keybridge_device_protocol::{
    EnrolmentRequest, IdentityPublicKey, InboxItem, InboxPage, Nonce, PairingPayload,
    PairingSecret, RequestAnswer, RequestTarget, ServerUrl, ShortCode, Signature, SignedHeaders,
    SignerKind, TlsPin, canonical_request, display_safe,
};
use proptest::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

fn valid_payload_text() -> String {
    PairingPayload {
        server_url: ServerUrl::parse("https://keybridge.example.com").expect("url"),
        pairing_id: Uuid::from_u128(42),
        secret: PairingSecret::from_bytes([3; 32]),
        tls_pin: TlsPin::from_bytes([4; 32]),
        expires_at: OffsetDateTime::from_unix_timestamp(1_795_615_260).expect("time"),
    }
    .encode()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_parsers_never_panic(text in "\\PC{0,200}") {
        let _ = PairingPayload::parse_ignoring_expiry(&text);
        let _ = PairingPayload::parse_ignoring_expiry(&format!("keybridge:pair?{text}"));
        let _ = ShortCode::parse(&text);
        let _ = TlsPin::parse(&text);
        let _ = TlsPin::parse(&format!("sha256/{text}"));
        let _ = IdentityPublicKey::parse(&text);
        let _ = Signature::parse(&text);
        let _ = ServerUrl::parse(&text);
        let _ = Nonce::parse(&text);
        let _ = display_safe(&text, 10);
    }

    #[test]
    fn mutated_payloads_never_panic(position in 0usize..400, replacement in any::<char>()) {
        let text = valid_payload_text();
        let mut chars: Vec<char> = text.chars().collect();
        let index = position % chars.len();
        chars[index] = replacement;
        let mutated: String = chars.into_iter().collect();
        if let Ok(payload) = PairingPayload::parse_ignoring_expiry(&mutated) {
            // Whatever still parses re-encodes to something that parses to the same payload.
            prop_assert_eq!(
                PairingPayload::parse_ignoring_expiry(&payload.encode()),
                Ok(payload)
            );
        }
    }

    #[test]
    fn payloads_round_trip(
        // A label starting with `xn--` is punycode and only valid when it decodes,
        // so random ones are left out.
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,6}){1,2}"
            .prop_filter("not a punycode label", |host| !host.starts_with("xn--")),
        port in proptest::option::of(1u16..),
        path in "(/[a-zA-Z0-9 ._~-]{1,10}){0,2}",
        id in any::<u128>(),
        secret in any::<[u8; 32]>(),
        pin in any::<[u8; 32]>(),
        expiry in 0i64..4_000_000_000,
    ) {
        let url = match port {
            Some(port) => format!("https://{host}:{port}{path}"),
            None => format!("https://{host}{path}"),
        };
        let payload = PairingPayload {
            server_url: ServerUrl::parse(&url).expect("generated URLs are valid"),
            pairing_id: Uuid::from_u128(id),
            secret: PairingSecret::from_bytes(secret),
            tls_pin: TlsPin::from_bytes(pin),
            expires_at: OffsetDateTime::from_unix_timestamp(expiry).expect("in range"),
        };
        let text = payload.encode();
        prop_assert_eq!(PairingPayload::parse_ignoring_expiry(&text), Ok(payload));
    }

    #[test]
    fn short_codes_round_trip_in_any_case_and_grouping(bytes in proptest::collection::vec(0u8..31, 6)) {
        let text: String = bytes
            .iter()
            .map(|b| char::from(keybridge_device_protocol::SHORT_CODE_ALPHABET[usize::from(*b)]))
            .collect();
        let code = ShortCode::parse(&text).expect("alphabet characters");
        prop_assert_eq!(ShortCode::parse(&code.grouped().to_lowercase()), Ok(code.clone()));
        prop_assert_eq!(code.as_str(), text.as_str());
    }

    #[test]
    fn header_parser_never_panics(
        id in "\\PC{0,60}",
        timestamp in "\\PC{0,30}",
        nonce in "\\PC{0,40}",
        signature in "\\PC{0,100}",
    ) {
        let _ = SignedHeaders::from_headers(SignerKind::Device, |name| match name {
            "KB-Device-Id" => Some(id.as_str()),
            "KB-Timestamp" => Some(timestamp.as_str()),
            "KB-Nonce" => Some(nonce.as_str()),
            "KB-Signature" => Some(signature.as_str()),
            _ => None,
        });
    }

    #[test]
    fn canonical_request_never_panics_and_has_eight_lines(
        method in "\\PC{0,10}",
        path in "\\PC{0,80}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
        timestamp in any::<i64>(),
    ) {
        let target = RequestTarget { method: &method, path_and_query: &path, body: &body };
        if let Ok(text) = canonical_request(SignerKind::Device, Uuid::nil(), &target, timestamp, &Nonce::from_bytes([0; 16])) {
            prop_assert_eq!(text.lines().count(), 8);
        }
    }

    #[test]
    fn json_messages_never_panic(text in "\\PC{0,300}") {
        let _ = serde_json::from_str::<InboxItem>(&text);
        let _ = serde_json::from_str::<InboxPage>(&text);
        let _ = serde_json::from_str::<RequestAnswer>(&text);
        let _ = serde_json::from_str::<EnrolmentRequest>(&text);
    }

    #[test]
    fn json_with_plausible_shapes_never_panics(
        v in prop_oneof![Just(serde_json::json!(1)), any::<i64>().prop_map(serde_json::Value::from), Just(serde_json::json!("1"))],
        kind in prop_oneof![Just("provision_passkey".to_owned()), Just("approve_sign_in".to_owned()), "[a-z_]{0,20}"],
        expires in "\\PC{0,30}",
        key in "\\PC{0,90}",
    ) {
        let item = serde_json::json!({
            "v": v, "type": kind, "request_id": Uuid::nil(), "expires_at": expires,
            "account": {"upn": "a@b.c", "tenant_id": Uuid::nil(), "entra_user_id": Uuid::nil()},
            "rp_id": "login.microsoft.com", "creation_options": {}
        });
        let _ = serde_json::from_value::<InboxItem>(item);
        let enrolment = serde_json::json!({
            "v": 1, "pairing": {"code": expires}, "server": "https://x", "device_public_key": key,
            "device": {"name": "n", "model": "m", "os": "o"}, "proof": key, "signature": key
        });
        let _ = serde_json::from_value::<EnrolmentRequest>(enrolment);
    }
}
