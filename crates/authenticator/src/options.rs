//! WebAuthn JSON options, as the relying party sends them.
//!
//! [`CreationOptions`] reads Graph's `webauthnCredentialCreationOptions`
//! (`{"challengeTimeoutDateTime": ..., "publicKey": {...}}`), `{"publicKey": {...}}`, or a bare
//! `PublicKeyCredentialCreationOptionsJSON` (WebAuthn L3 §5.4, §5.1.11). [`RequestOptions`] reads
//! `{"publicKey": {...}}` or a bare `PublicKeyCredentialRequestOptionsJSON`. Unknown members
//! (Graph's `@odata.type`s, `hints` ...) are ignored; `null` counts as absent.

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::encoding::{b64url, decode_lenient, is_canonical_b64url};
use crate::error::AuthenticatorError;
use crate::store::CredProtect;

/// The largest user handle WebAuthn allows (§5.4.3).
const MAX_USER_ID_LEN: usize = 64;

/// `userVerification` (§5.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerificationRequirement {
    /// `required`
    Required,
    /// `preferred` (the default)
    Preferred,
    /// `discouraged`
    Discouraged,
}

impl UserVerificationRequirement {
    fn parse(text: Option<&str>) -> Self {
        // Unknown values are ignored per spec and the default applies.
        match text {
            Some("required") => Self::Required,
            Some("discouraged") => Self::Discouraged,
            _ => Self::Preferred,
        }
    }
}

/// `attestation` conveyance preference (§5.4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationConveyance {
    /// `none` (the default): the relying party wants no attestation.
    None,
    /// `indirect`
    Indirect,
    /// `direct`
    Direct,
    /// `enterprise` (answered like `direct`: keybridge has no enterprise attestation)
    Enterprise,
}

/// The extensions keybridge acts on; others are ignored, as the spec allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreationExtensions {
    /// `credentialProtectionPolicy` (or CTAP's `credProtect` integer).
    pub cred_protect: Option<CredProtect>,
    /// `enforceCredentialProtectionPolicy`.
    pub enforce_cred_protect: bool,
    /// `hmacCreateSecret: true` (or CTAP's `hmac-secret: true`).
    pub hmac_create_secret: bool,
    /// `prf` present: answered by creating the hmac-secret it is built on.
    pub prf: bool,
    /// `credProps: true`.
    pub cred_props: bool,
}

/// Creation options, checked and decoded.
#[derive(Debug, Clone)]
pub struct CreationOptions {
    /// `rp.id`; absent means the origin's host.
    pub rp_id: Option<String>,
    /// `rp.name`.
    pub rp_name: String,
    /// `user.id`, decoded.
    pub user_id: Vec<u8>,
    /// `user.name`.
    pub user_name: String,
    /// `user.displayName`.
    pub user_display_name: String,
    /// The challenge as it goes into clientDataJSON (the options' text when it is already
    /// unpadded base64url, which Entra's always is).
    pub challenge: String,
    /// `alg` values of `public-key` entries of `pubKeyCredParams`, in the RP's order.
    pub algorithms: Vec<i64>,
    /// Texts of the `excludeCredentials` ids (decoded leniently when compared).
    pub exclude_credentials: Vec<String>,
    /// `authenticatorSelection.userVerification`.
    pub user_verification: UserVerificationRequirement,
    /// `attestation`.
    pub attestation: AttestationConveyance,
    /// Recognised extensions.
    pub extensions: CreationExtensions,
    /// Graph's `challengeTimeoutDateTime`, when given.
    pub challenge_expires_at: Option<OffsetDateTime>,
}

/// Request (sign-in) options, checked and decoded.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// `rpId`; absent means the origin's host.
    pub rp_id: Option<String>,
    /// The challenge as it goes into clientDataJSON.
    pub challenge: String,
    /// Texts of the `allowCredentials` ids; empty for a discoverable request.
    pub allow_credentials: Vec<String>,
    /// `userVerification`.
    pub user_verification: UserVerificationRequirement,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRp {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    id: Option<String>,
    name: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParam {
    #[serde(rename = "type")]
    kind: Option<String>,
    alg: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSelection {
    user_verification: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCreation {
    rp: Option<RawRp>,
    user: Option<RawUser>,
    challenge: Option<String>,
    pub_key_cred_params: Option<Vec<RawParam>>,
    exclude_credentials: Option<Vec<RawDescriptor>>,
    authenticator_selection: Option<RawSelection>,
    attestation: Option<String>,
    extensions: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    rp_id: Option<String>,
    challenge: Option<String>,
    allow_credentials: Option<Vec<RawDescriptor>>,
    user_verification: Option<String>,
}

fn invalid(reason: impl Into<String>) -> AuthenticatorError {
    AuthenticatorError::InvalidOptions {
        reason: reason.into(),
    }
}

/// Splits `{"publicKey": {...}, ...}` from a bare options object.
fn unwrap_public_key(text: &str) -> Result<(Value, Option<Value>), AuthenticatorError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON ({e})")))?;
    let Value::Object(mut object) = value else {
        return Err(invalid("expected a JSON object"));
    };
    match object.remove("publicKey") {
        Some(inner @ Value::Object(_)) => {
            let expiry = object.remove("challengeTimeoutDateTime");
            Ok((inner, expiry))
        }
        Some(_) => Err(invalid("`publicKey` must be an object")),
        None => Ok((Value::Object(object), None)),
    }
}

/// The challenge text for clientDataJSON: copied verbatim when it is already unpadded
/// base64url (never decoded and re-encoded), otherwise normalised as a browser would after
/// decoding the options.
fn challenge_text(challenge: Option<String>) -> Result<String, AuthenticatorError> {
    let challenge = challenge.ok_or_else(|| invalid("`challenge` is missing"))?;
    if challenge.is_empty() {
        return Err(invalid("`challenge` is empty"));
    }
    if is_canonical_b64url(&challenge) {
        return Ok(challenge);
    }
    decode_lenient(&challenge)
        .map(|bytes| b64url(&bytes))
        .ok_or_else(|| invalid("`challenge` is not base64url"))
}

fn descriptor_ids(
    list: Option<Vec<RawDescriptor>>,
    what: &str,
) -> Result<Vec<String>, AuthenticatorError> {
    list.unwrap_or_default()
        .into_iter()
        // Descriptors of other types are ignored (§5.1.3 step 11, §5.10.3).
        .filter(|d| d.kind.as_deref().is_none_or(|k| k == "public-key"))
        .map(|d| {
            d.id.ok_or_else(|| invalid(format!("an entry of `{what}` has no `id`")))
        })
        .collect()
}

fn parse_extensions(
    extensions: Option<Map<String, Value>>,
) -> Result<CreationExtensions, AuthenticatorError> {
    let mut out = CreationExtensions::default();
    let Some(map) = extensions else {
        return Ok(out);
    };
    match map.get("credentialProtectionPolicy") {
        None | Some(Value::Null) => {}
        Some(Value::String(policy)) => {
            out.cred_protect = Some(match policy.as_str() {
                "userVerificationOptional" => CredProtect::UserVerificationOptional,
                "userVerificationOptionalWithCredentialIDList" => {
                    CredProtect::UserVerificationOptionalWithCredentialIdList
                }
                "userVerificationRequired" => CredProtect::UserVerificationRequired,
                other => {
                    return Err(invalid(format!(
                        "unknown credentialProtectionPolicy {other:?}"
                    )));
                }
            });
        }
        Some(_) => return Err(invalid("`credentialProtectionPolicy` must be a string")),
    }
    if out.cred_protect.is_none()
        && let Some(level) = map.get("credProtect").and_then(Value::as_u64)
    {
        out.cred_protect = u8::try_from(level).ok().and_then(CredProtect::from_level);
        if out.cred_protect.is_none() {
            return Err(invalid(format!("unknown credProtect level {level}")));
        }
    }
    out.enforce_cred_protect = map
        .get("enforceCredentialProtectionPolicy")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    out.hmac_create_secret = map
        .get("hmacCreateSecret")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || map
            .get("hmac-secret")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    out.prf = map.get("prf").is_some_and(Value::is_object);
    out.cred_props = map
        .get("credProps")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(out)
}

fn parse_expiry(value: Option<Value>) -> Result<Option<OffsetDateTime>, AuthenticatorError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            OffsetDateTime::parse(&text, &Rfc3339)
                .map(Some)
                .map_err(|e| {
                    invalid(format!(
                        "`challengeTimeoutDateTime` {text:?} is not an RFC 3339 time ({e})"
                    ))
                })
        }
        Some(_) => Err(invalid("`challengeTimeoutDateTime` must be a string")),
    }
}

impl CreationOptions {
    /// Reads creation options JSON (Graph's wrapper, `{"publicKey":...}`, or bare).
    pub fn from_json(text: &str) -> Result<Self, AuthenticatorError> {
        let (inner, expiry) = unwrap_public_key(text)?;
        let raw: RawCreation =
            serde_json::from_value(inner).map_err(|e| invalid(format!("creation options: {e}")))?;
        let rp = raw.rp.ok_or_else(|| invalid("`rp` is missing"))?;
        let user = raw.user.ok_or_else(|| invalid("`user` is missing"))?;
        let user_id_text = user.id.ok_or_else(|| invalid("`user.id` is missing"))?;
        let user_id =
            decode_lenient(&user_id_text).ok_or_else(|| invalid("`user.id` is not base64url"))?;
        if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN {
            return Err(invalid(format!(
                "`user.id` has {} bytes; WebAuthn allows 1 to {MAX_USER_ID_LEN}",
                user_id.len()
            )));
        }
        let user_name = user.name.ok_or_else(|| invalid("`user.name` is missing"))?;
        let algorithms = raw
            .pub_key_cred_params
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.kind.as_deref() == Some("public-key"))
            .filter_map(|p| p.alg)
            .collect();
        let attestation = match raw.attestation.as_deref() {
            Some("direct") => AttestationConveyance::Direct,
            Some("indirect") => AttestationConveyance::Indirect,
            Some("enterprise") => AttestationConveyance::Enterprise,
            // Absent or unknown values mean "none" (§5.4.7).
            _ => AttestationConveyance::None,
        };
        Ok(Self {
            rp_id: rp.id,
            rp_name: rp.name.unwrap_or_default(),
            user_id,
            user_display_name: user.display_name.unwrap_or_else(|| user_name.clone()),
            user_name,
            challenge: challenge_text(raw.challenge)?,
            algorithms,
            exclude_credentials: descriptor_ids(raw.exclude_credentials, "excludeCredentials")?,
            user_verification: UserVerificationRequirement::parse(
                raw.authenticator_selection
                    .as_ref()
                    .and_then(|s| s.user_verification.as_deref()),
            ),
            attestation,
            extensions: parse_extensions(raw.extensions)?,
            challenge_expires_at: parse_expiry(expiry)?,
        })
    }
}

impl RequestOptions {
    /// Reads request options JSON (`{"publicKey":...}` or bare).
    pub fn from_json(text: &str) -> Result<Self, AuthenticatorError> {
        let (inner, _) = unwrap_public_key(text)?;
        let raw: RawRequest =
            serde_json::from_value(inner).map_err(|e| invalid(format!("request options: {e}")))?;
        Ok(Self {
            rp_id: raw.rp_id,
            challenge: challenge_text(raw.challenge)?,
            allow_credentials: descriptor_ids(raw.allow_credentials, "allowCredentials")?,
            user_verification: UserVerificationRequirement::parse(raw.user_verification.as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a real Graph creationOptions answer (reference/entra.md §4.1), shortened.
    const GRAPH_OPTIONS: &str = r##"{
      "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.webauthnCredentialCreationOptions",
      "challengeTimeoutDateTime": "2026-05-01T10:20:30.1234567Z",
      "publicKey": {
        "@odata.type": "#microsoft.graph.webauthnPublicKeyCredentialCreationOptions",
        "rp": {"id": "login.microsoft.com", "name": "Microsoft"},
        "user": {"id": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v", "name": "ana@contoso.com", "displayName": "Ana Lima"},
        "challenge": "ZXlKaGJHY2lPaUpTVTBFdFQwRkZVQzB5TlRZaQ",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
        "timeout": 60000,
        "excludeCredentials": [{"id": "Xd-q6r1BdYMX35ikRUkK66uS9jF7ZWEnfG9dJWBJMko", "type": "public-key", "transports": ["usb"]}],
        "authenticatorSelection": {"authenticatorAttachment": "cross-platform", "requireResidentKey": true, "userVerification": "required"},
        "attestation": "direct",
        "extensions": {"hmacCreateSecret": true, "enforceCredentialProtectionPolicy": true, "credentialProtectionPolicy": "userVerificationOptional"}
      }
    }"##;

    #[test]
    fn reads_graph_creation_options() {
        let options = CreationOptions::from_json(GRAPH_OPTIONS).expect("parses");
        assert_eq!(options.rp_id.as_deref(), Some("login.microsoft.com"));
        assert_eq!(options.user_id, (0u8..48).collect::<Vec<_>>());
        assert_eq!(options.user_name, "ana@contoso.com");
        assert_eq!(options.challenge, "ZXlKaGJHY2lPaUpTVTBFdFQwRkZVQzB5TlRZaQ");
        assert_eq!(options.algorithms, vec![-7, -257]);
        assert_eq!(options.exclude_credentials.len(), 1);
        assert_eq!(
            options.user_verification,
            UserVerificationRequirement::Required
        );
        assert_eq!(options.attestation, AttestationConveyance::Direct);
        assert_eq!(
            options.extensions,
            CreationExtensions {
                cred_protect: Some(CredProtect::UserVerificationOptional),
                enforce_cred_protect: true,
                hmac_create_secret: true,
                prf: false,
                cred_props: false
            }
        );
        assert_eq!(
            options.challenge_expires_at.map(|t| t.unix_timestamp()),
            Some(1_777_630_830)
        );
    }

    #[test]
    fn bare_options_and_nulls() {
        let options = CreationOptions::from_json(
            r#"{"rp":{"name":"Example","id":null},"user":{"id":"AQI","name":"bob"},"challenge":"AAAA",
                "pubKeyCredParams":null,"excludeCredentials":null,"authenticatorSelection":null,"extensions":null}"#,
        )
        .expect("parses");
        assert_eq!(options.rp_id, None);
        assert_eq!(options.user_display_name, "bob");
        assert_eq!(options.attestation, AttestationConveyance::None);
        assert!(options.algorithms.is_empty());
    }

    #[test]
    fn padded_challenge_is_normalised_like_a_browser() {
        let options = CreationOptions::from_json(
            r#"{"rp":{"id":"example.com"},"user":{"id":"AQI","name":"bob"},"challenge":"+/8BAg=="}"#,
        )
        .expect("parses");
        assert_eq!(options.challenge, "-_8BAg");
    }

    #[test]
    fn missing_members_are_named() {
        for (json, needle) in [
            (
                r#"{"user":{"id":"AQI","name":"b"},"challenge":"AA"}"#,
                "`rp`",
            ),
            (r#"{"rp":{},"challenge":"AA"}"#, "`user`"),
            (r#"{"rp":{},"user":{"id":"AQI","name":"b"}}"#, "`challenge`"),
            (
                r#"{"rp":{},"user":{"name":"b"},"challenge":"AA"}"#,
                "`user.id`",
            ),
            (
                r#"{"rp":{},"user":{"id":"!!","name":"b"},"challenge":"AA"}"#,
                "`user.id`",
            ),
            (r#"[1]"#, "object"),
            (r#"{"publicKey": 3}"#, "publicKey"),
            ("nope", "JSON"),
        ] {
            match CreationOptions::from_json(json) {
                Err(AuthenticatorError::InvalidOptions { reason }) => {
                    assert!(reason.contains(needle), "{json}: {reason}")
                }
                other => panic!("{json}: {other:?}"),
            }
        }
        let long_id = b64url(&[1u8; 65]);
        let json =
            format!(r#"{{"rp":{{}},"user":{{"id":"{long_id}","name":"b"}},"challenge":"AA"}}"#);
        assert!(CreationOptions::from_json(&json).is_err());
    }

    #[test]
    fn reads_request_options() {
        let options = RequestOptions::from_json(
            r#"{"publicKey":{"challenge":"AAAA","rpId":"login.microsoft.com","allowCredentials":[{"type":"public-key","id":"AQI"},{"type":"other","id":"x"}],"userVerification":"required"}}"#,
        )
        .expect("parses");
        assert_eq!(options.rp_id.as_deref(), Some("login.microsoft.com"));
        assert_eq!(options.allow_credentials, vec!["AQI".to_owned()]);
        assert_eq!(
            options.user_verification,
            UserVerificationRequirement::Required
        );
        let bare = RequestOptions::from_json(r#"{"challenge":"AAAA"}"#).expect("parses");
        assert!(bare.allow_credentials.is_empty());
        assert_eq!(
            bare.user_verification,
            UserVerificationRequirement::Preferred
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z0-9_=+/-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("publicKey".to_owned()),
                        Just("rp".to_owned()),
                        Just("user".to_owned()),
                        Just("id".to_owned()),
                        Just("name".to_owned()),
                        Just("challenge".to_owned()),
                        Just("pubKeyCredParams".to_owned()),
                        Just("excludeCredentials".to_owned()),
                        Just("allowCredentials".to_owned()),
                        Just("extensions".to_owned()),
                        Just("credProtect".to_owned()),
                        Just("credentialProtectionPolicy".to_owned()),
                        Just("challengeTimeoutDateTime".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Options JSON of any shape gives options or a typed error, never a panic.
        #[test]
        fn any_json_shape_is_handled(value in json_value()) {
            let text = value.to_string();
            let _ = CreationOptions::from_json(&text);
            let _ = RequestOptions::from_json(&text);
        }

        /// Arbitrary text too.
        #[test]
        fn any_text_is_handled(text in ".{0,200}") {
            // Without an object there are no options.
            let is_object = text.contains('{');
            prop_assert!(CreationOptions::from_json(&text).is_err() || is_object);
            let _ = RequestOptions::from_json(&text);
        }
    }
}
