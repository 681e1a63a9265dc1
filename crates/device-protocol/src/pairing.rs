//! What the Device Manager page shows: the QR pairing payload and the 6-character fallback code.
//!
//! The QR code holds a URI:
//!
//! ```text
//! keybridge:pair?v=1&u=https%3A%2F%2Fkeybridge.example.com&id=<pairing id>&s=<secret>&p=<pin>&exp=<unix seconds>
//! ```
//!
//! - `v`: protocol version, `1`;
//! - `u`: the server's base URL, percent-encoded (https; http only for `localhost`, `127.0.0.1`, `[::1]`);
//! - `id`: the pairing session's UUID (hyphenated, lower case);
//! - `s`: the one-time secret, 32 random bytes as unpadded base64url;
//! - `p`: the server's [`TlsPin`] as unpadded base64url;
//! - `exp`: when the session expires, in Unix seconds.
//!
//! Every field appears exactly once; unknown fields are refused (a new field means a new
//! version). The fallback [`ShortCode`] names the same kind of session when the camera cannot
//! be used; the user also types the server's address.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::encoding::{b64url, display_safe, from_b64url_exact};
use crate::pin::{PinError, TlsPin};

/// The URI scheme and path every pairing payload starts with.
pub const PAIRING_URI_PREFIX: &str = "keybridge:pair?";

/// Why a server URL, pairing payload or short code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// The text does not start with `keybridge:pair?`.
    #[error(
        "this is not a keybridge pairing code: it must start with `keybridge:pair?` (scan the QR code on the Device Manager page)"
    )]
    NotAPairingPayload,
    /// The payload's version is not one this side speaks.
    #[error(
        "this pairing code uses protocol version {found:?}, but this device speaks version 1: update the keybridge app"
    )]
    UnsupportedVersion {
        /// The version found.
        found: String,
    },
    /// A field is missing.
    #[error("the pairing code has no `{field}` field: scan the QR code again")]
    MissingField {
        /// The field name.
        field: &'static str,
    },
    /// A field appears twice.
    #[error("the pairing code has the field `{field}` more than once: scan the QR code again")]
    DuplicateField {
        /// The field name.
        field: String,
    },
    /// A field this version does not know.
    #[error("the pairing code has an unknown field `{field}`: update the keybridge app")]
    UnknownField {
        /// The field name (shortened).
        field: String,
    },
    /// A field's value cannot be read.
    #[error("the pairing code's `{field}` field is malformed: {reason}")]
    MalformedField {
        /// The field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The TLS pin is not a SHA-256 pin.
    #[error("the pairing code's TLS pin is malformed: {0}")]
    MalformedPin(#[from] PinError),
    /// The session has expired.
    #[error(
        "this pairing code expired at {expired_at} (now {now}): reload the Device Manager page for a new one"
    )]
    Expired {
        /// When it expired.
        expired_at: OffsetDateTime,
        /// The device's clock.
        now: OffsetDateTime,
    },
    /// The server URL is not https (and not a loopback http URL).
    #[error("the server address {url:?} must use https (plain http is allowed only for localhost)")]
    NotHttps {
        /// The URL (shortened).
        url: String,
    },
    /// The server URL cannot be used.
    #[error("the server address {url:?} cannot be used: {reason}")]
    BadServerUrl {
        /// The URL (shortened).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The short code is not 6 characters of the code alphabet.
    #[error(
        "the pairing code {given:?} is not valid: it has 6 characters from 23456789ABCDEFGHJKMNPQRSTUVWXYZ (no 0, O, 1, I or L); {reason}"
    )]
    BadShortCode {
        /// The text given (shortened).
        given: String,
        /// What is wrong.
        reason: String,
    },
}

/// The server's base URL: https (or http on a loopback host), no user info, query or fragment,
/// no trailing slash. Endpoints are this URL plus `/device/v1/...`.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl(url::Url);

impl ServerUrl {
    /// Checks and normalises a base URL.
    pub fn parse(text: &str) -> Result<ServerUrl, PairingError> {
        let shown = || display_safe(text, 120);
        let bad = |reason: &str| PairingError::BadServerUrl {
            url: shown(),
            reason: reason.to_owned(),
        };
        let mut parsed =
            url::Url::parse(text).map_err(|error| bad(&format!("not a URL ({error})")))?;
        let loopback = match parsed.host() {
            Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(bad("it has no host")),
        };
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(PairingError::NotHttps { url: shown() }),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("it must not contain a user name or password"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("it must not have a query (?) or fragment (#)"));
        }
        let trimmed = parsed.path().trim_end_matches('/').to_owned();
        parsed.set_path(&trimmed);
        Ok(ServerUrl(parsed))
    }

    /// The base URL as text (no trailing slash).
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// `scheme://host[:port]`, the form bound into an enrolment proof.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    /// The URL of an endpoint: `path` must start with `/`, e.g. `/device/v1/inbox?wait=30`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.as_str(), path)
    }

    /// The URL's path prefix (empty when the server is at the root), for the path a signature
    /// covers: a request to [`ServerUrl::endpoint`]`("/device/v1/inbox")` is signed over
    /// `base_path() + "/device/v1/inbox"`.
    pub fn base_path(&self) -> &str {
        self.0.path().trim_end_matches('/')
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({})", self.as_str())
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerUrl {
    type Err = PairingError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServerUrl::parse(text)
    }
}

impl Serialize for ServerUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ServerUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ServerUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The one-time pairing secret in the QR code: 32 random bytes (256 bits).
#[derive(Clone, PartialEq, Eq)]
pub struct PairingSecret([u8; 32]);

impl PairingSecret {
    /// A new random secret.
    pub fn generate(rng: &mut impl CryptoRngCore) -> PairingSecret {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        PairingSecret(bytes)
    }

    /// The secret from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> PairingSecret {
        PairingSecret(bytes)
    }

    /// The text form in the QR code (unpadded base64url).
    pub fn to_base64url(&self) -> String {
        b64url(&self.0)
    }

    /// The key that proves possession of this secret in an enrolment request:
    /// `SHA-256("keybridge-pairing-secret-v1\n" || secret)`. The server keeps this key (not
    /// the secret) with the pairing session.
    pub fn proof_key(&self) -> PairingKey {
        PairingKey::derive(b"keybridge-pairing-secret-v1\n", &self.0)
    }
}

impl fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingSecret(..)")
    }
}

/// The HMAC key of an enrolment proof, derived from a [`PairingSecret`] or a [`ShortCode`].
///
/// The server stores it with the pairing session (e.g. in `pairing_sessions.secret_hash`, as
/// base64url). It is itself a secret while the session lives: whoever reads it can pair.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingKey([u8; 32]);

impl PairingKey {
    fn derive(label: &[u8], input: &[u8]) -> PairingKey {
        let mut hash = Sha256::new();
        hash.update(label);
        hash.update(input);
        PairingKey(hash.finalize().into())
    }

    /// The key from its stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> PairingKey {
        PairingKey(bytes)
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Storage text form (unpadded base64url).
    pub fn to_base64url(&self) -> String {
        b64url(&self.0)
    }

    /// Reads the storage text form.
    pub fn from_base64url(text: &str) -> Option<PairingKey> {
        from_b64url_exact::<32>(text).map(PairingKey)
    }
}

impl fmt::Debug for PairingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingKey(..)")
    }
}

/// Everything the QR code carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingPayload {
    /// The server's base URL.
    pub server_url: ServerUrl,
    /// The pairing session.
    pub pairing_id: Uuid,
    /// The one-time secret.
    pub secret: PairingSecret,
    /// The server's TLS pin.
    pub tls_pin: TlsPin,
    /// When the session expires (whole seconds).
    pub expires_at: OffsetDateTime,
}

impl PairingPayload {
    /// The URI for the QR code.
    pub fn encode(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("v", "1")
            .append_pair("u", self.server_url.as_str())
            .append_pair("id", &self.pairing_id.hyphenated().to_string())
            .append_pair("s", &self.secret.to_base64url())
            .append_pair("p", &self.tls_pin.to_base64url())
            .append_pair("exp", &self.expires_at.unix_timestamp().to_string())
            .finish();
        format!("{PAIRING_URI_PREFIX}{query}")
    }

    /// Reads a scanned payload and refuses it when it has expired at `now`.
    pub fn parse(text: &str, now: OffsetDateTime) -> Result<PairingPayload, PairingError> {
        let payload = PairingPayload::parse_ignoring_expiry(text)?;
        if payload.expires_at <= now {
            return Err(PairingError::Expired {
                expired_at: payload.expires_at,
                now,
            });
        }
        Ok(payload)
    }

    /// Reads a payload without looking at the clock (for the server's own tests and tools).
    pub fn parse_ignoring_expiry(text: &str) -> Result<PairingPayload, PairingError> {
        let query = text
            .trim()
            .strip_prefix(PAIRING_URI_PREFIX)
            .ok_or(PairingError::NotAPairingPayload)?;
        let mut version = None;
        let mut url = None;
        let mut id = None;
        let mut secret = None;
        let mut pin = None;
        let mut expiry = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "v" => &mut version,
                "u" => &mut url,
                "id" => &mut id,
                "s" => &mut secret,
                "p" => &mut pin,
                "exp" => &mut expiry,
                other => {
                    return Err(PairingError::UnknownField {
                        field: display_safe(other, 20),
                    });
                }
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(PairingError::DuplicateField {
                    field: key.into_owned(),
                });
            }
        }
        // The version decides how to read the rest, so it is checked first.
        let version = version.ok_or(PairingError::MissingField { field: "v" })?;
        if version != "1" {
            return Err(PairingError::UnsupportedVersion {
                found: display_safe(&version, 10),
            });
        }
        let server_url = ServerUrl::parse(&url.ok_or(PairingError::MissingField { field: "u" })?)?;
        let id = id.ok_or(PairingError::MissingField { field: "id" })?;
        let pairing_id = Uuid::try_parse(&id).map_err(|_| PairingError::MalformedField {
            field: "id",
            reason: "expected a UUID".to_owned(),
        })?;
        let secret = secret.ok_or(PairingError::MissingField { field: "s" })?;
        let secret = from_b64url_exact::<32>(&secret)
            .map(PairingSecret)
            .ok_or_else(|| PairingError::MalformedField {
                field: "s",
                reason: "expected 32 bytes as unpadded base64url".to_owned(),
            })?;
        let pin = pin.ok_or(PairingError::MissingField { field: "p" })?;
        let tls_pin = TlsPin::parse(&pin)?;
        let expiry = expiry.ok_or(PairingError::MissingField { field: "exp" })?;
        let expires_at = expiry
            .parse::<i64>()
            .ok()
            .filter(|_| expiry.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
            .ok_or_else(|| PairingError::MalformedField {
                field: "exp",
                reason: "expected Unix seconds".to_owned(),
            })?;
        Ok(PairingPayload {
            server_url,
            pairing_id,
            secret,
            tls_pin,
            expires_at,
        })
    }
}

/// The characters of a [`ShortCode`]: digits and capitals without the look-alikes 0/O, 1/I/L.
pub const SHORT_CODE_ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// The number of characters in a [`ShortCode`].
pub const SHORT_CODE_LENGTH: usize = 6;

/// The 6-character fallback pairing code (31^6 ≈ 8.9 × 10^8 codes, about 29.7 bits).
///
/// It is a lookup key for a live pairing session *and* the secret of its proof (see
/// [`ShortCode::proof_key`]). With so few bits it is safe only because the server limits
/// guesses; see `docs/device-protocol.md` for the limits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ShortCode([u8; SHORT_CODE_LENGTH]);

impl ShortCode {
    /// A uniformly random code (rejection sampling, so no character is more likely).
    pub fn generate(rng: &mut impl CryptoRngCore) -> ShortCode {
        let mut code = [0u8; SHORT_CODE_LENGTH];
        let mut filled = 0;
        while filled < SHORT_CODE_LENGTH {
            let mut byte = [0u8; 1];
            rng.fill_bytes(&mut byte);
            // 248 = 8 × 31: values at or above it would favour the first characters.
            if byte[0] < 248 {
                code[filled] = SHORT_CODE_ALPHABET[usize::from(byte[0] % 31)];
                filled += 1;
            }
        }
        ShortCode(code)
    }

    /// Reads a typed code: case-insensitive, spaces and hyphens ignored.
    pub fn parse(text: &str) -> Result<ShortCode, PairingError> {
        let bad = |reason: String| PairingError::BadShortCode {
            given: display_safe(text, 20),
            reason,
        };
        let mut code = [0u8; SHORT_CODE_LENGTH];
        let mut count = 0;
        for ch in text.chars() {
            if ch == ' ' || ch == '-' {
                continue;
            }
            let upper = ch.to_ascii_uppercase();
            let Some(byte) = u8::try_from(upper)
                .ok()
                .filter(|b| SHORT_CODE_ALPHABET.contains(b))
            else {
                let hint = match upper {
                    '0' | 'O' | '1' | 'I' | 'L' => " (it is never used, to avoid confusion)",
                    _ => "",
                };
                return Err(bad(format!(
                    "{:?} is not in the alphabet{hint}",
                    display_safe(&ch.to_string(), 1)
                )));
            };
            if count == SHORT_CODE_LENGTH {
                return Err(bad("it has more than 6 characters".to_owned()));
            }
            code[count] = byte;
            count += 1;
        }
        if count < SHORT_CODE_LENGTH {
            return Err(bad(format!("it has only {count} characters")));
        }
        Ok(ShortCode(code))
    }

    /// The code as 6 capitals, e.g. `K7QX4M`.
    pub fn as_str(&self) -> &str {
        // Every byte comes from SHORT_CODE_ALPHABET, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The code as shown to people: `K7Q-X4M`.
    pub fn grouped(&self) -> String {
        let text = self.as_str();
        format!("{}-{}", &text[..3], &text[3..])
    }

    /// The HMAC key of an enrolment proof made with this code:
    /// `SHA-256("keybridge-pairing-code-v1\n" || CODE)`.
    pub fn proof_key(&self) -> PairingKey {
        PairingKey::derive(b"keybridge-pairing-code-v1\n", &self.0)
    }
}

impl fmt::Debug for ShortCode {
    // Redacted: while its session lives the code is the secret of the enrolment proof.
    // Display (and `as_str`) show it where it is meant to be seen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShortCode(..)")
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShortCode {
    type Err = PairingError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ShortCode::parse(text)
    }
}

impl Serialize for ShortCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ShortCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ShortCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 14:00:00 UTC);

    fn payload() -> PairingPayload {
        PairingPayload {
            server_url: ServerUrl::parse("https://keybridge.example.com:8443/kb/").expect("url"),
            pairing_id: Uuid::from_u128(0x6f1c_2a3b_4c5d_4e6f_8a9b_0c1d_2e3f_4a5b),
            secret: PairingSecret::from_bytes([7; 32]),
            tls_pin: TlsPin::from_bytes([9; 32]),
            expires_at: datetime!(2026-11-25 14:01:00 UTC),
        }
    }

    fn with_field(field: &str, value: &str) -> String {
        let text = payload().encode();
        let prefix = format!("{field}=");
        let rest = text.strip_prefix(PAIRING_URI_PREFIX).expect("prefix");
        let fields: Vec<String> = rest
            .split('&')
            .map(|pair| {
                if pair.starts_with(&prefix) {
                    format!("{field}={value}")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        format!("{PAIRING_URI_PREFIX}{}", fields.join("&"))
    }

    #[test]
    fn payload_round_trips_and_is_compact() {
        let text = payload().encode();
        assert_eq!(
            text,
            "keybridge:pair?v=1&u=https%3A%2F%2Fkeybridge.example.com%3A8443%2Fkb\
             &id=6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b\
             &s=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc\
             &p=CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk&exp=1795615260"
        );
        assert!(text.len() < 256, "fits a small QR code");
        assert_eq!(PairingPayload::parse(&text, NOW), Ok(payload()));
    }

    #[test]
    fn expired_payload_is_refused() {
        let text = payload().encode();
        let later = datetime!(2026-11-25 14:01:00 UTC);
        assert_eq!(
            PairingPayload::parse(&text, later),
            Err(PairingError::Expired {
                expired_at: later,
                now: later
            })
        );
    }

    #[test]
    fn wrong_prefix_version_and_fields_are_named() {
        assert_eq!(
            PairingPayload::parse("https://example.com/?v=1", NOW),
            Err(PairingError::NotAPairingPayload)
        );
        assert_eq!(
            PairingPayload::parse(&with_field("v", "2"), NOW),
            Err(PairingError::UnsupportedVersion { found: "2".into() })
        );
        let text = payload().encode();
        let no_pin = text.replace(&format!("&p={}", TlsPin::from_bytes([9; 32])), "");
        assert_eq!(
            PairingPayload::parse(&no_pin, NOW),
            Err(PairingError::MissingField { field: "p" })
        );
        assert_eq!(
            PairingPayload::parse(&format!("{text}&v=1"), NOW),
            Err(PairingError::DuplicateField { field: "v".into() })
        );
        assert_eq!(
            PairingPayload::parse(&format!("{text}&x=1"), NOW),
            Err(PairingError::UnknownField { field: "x".into() })
        );
        assert!(matches!(
            PairingPayload::parse(&with_field("id", "not-a-uuid"), NOW),
            Err(PairingError::MalformedField { field: "id", .. })
        ));
        assert!(matches!(
            PairingPayload::parse(&with_field("s", "c2hvcnQ"), NOW),
            Err(PairingError::MalformedField { field: "s", .. })
        ));
        assert!(matches!(
            PairingPayload::parse(&with_field("exp", "-5"), NOW),
            Err(PairingError::MalformedField { field: "exp", .. })
        ));
        assert!(matches!(
            PairingPayload::parse(&with_field("p", "AAAA"), NOW),
            Err(PairingError::MalformedPin(PinError::Malformed { .. }))
        ));
    }

    #[test]
    fn server_must_be_https_except_loopback() {
        assert!(matches!(
            PairingPayload::parse(&with_field("u", "http%3A%2F%2Fkeybridge.example.com"), NOW),
            Err(PairingError::NotHttps { .. })
        ));
        for ok in [
            "http://localhost:8080",
            "http://127.0.0.1:3000",
            "http://[::1]:1",
        ] {
            assert!(ServerUrl::parse(ok).is_ok(), "{ok} is loopback");
        }
        assert!(matches!(
            ServerUrl::parse("ftp://example.com"),
            Err(PairingError::NotHttps { .. })
        ));
        for bad in [
            "https://user:pw@example.com",
            "https://example.com/?q=1",
            "https://example.com/#f",
            "not a url",
        ] {
            assert!(
                matches!(
                    ServerUrl::parse(bad),
                    Err(PairingError::BadServerUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn server_url_parts() {
        let url = ServerUrl::parse("https://KB.example.com:443/base/").expect("url");
        assert_eq!(url.as_str(), "https://kb.example.com/base");
        assert_eq!(url.origin(), "https://kb.example.com");
        assert_eq!(url.base_path(), "/base");
        assert_eq!(
            url.endpoint("/device/v1/inbox?wait=30"),
            "https://kb.example.com/base/device/v1/inbox?wait=30"
        );
        let root = ServerUrl::parse("https://kb.example.com").expect("url");
        assert_eq!(root.base_path(), "");
        assert_eq!(
            root.endpoint("/device/v1/pair"),
            "https://kb.example.com/device/v1/pair"
        );
    }

    #[test]
    fn short_code_generation_uses_only_the_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let code = ShortCode::generate(&mut OsRng);
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| SHORT_CODE_ALPHABET.contains(&b))
            );
            seen.extend(code.as_str().bytes());
            assert_eq!(ShortCode::parse(code.as_str()), Ok(code));
        }
        assert_eq!(seen.len(), 31, "every character appears over 12,000 draws");
        for ambiguous in b"01OIL" {
            assert!(!SHORT_CODE_ALPHABET.contains(ambiguous));
        }
    }

    #[test]
    fn short_code_parsing_is_forgiving_about_case_and_grouping_only() {
        let code = ShortCode::parse("k7q-x4m").expect("valid");
        assert_eq!(code.as_str(), "K7QX4M");
        assert_eq!(code.grouped(), "K7Q-X4M");
        assert_eq!(ShortCode::parse(" K7Q X4M "), Ok(code));
        let err = ShortCode::parse("K7QX4O").expect_err("O is excluded");
        assert!(err.to_string().contains("never used"), "{err}");
        assert!(matches!(
            ShortCode::parse("K7QX4"),
            Err(PairingError::BadShortCode { .. })
        ));
        assert!(matches!(
            ShortCode::parse("K7QX4MM"),
            Err(PairingError::BadShortCode { .. })
        ));
        assert!(matches!(
            ShortCode::parse("K7QX4É"),
            Err(PairingError::BadShortCode { .. })
        ));
    }

    /// A live short code is the secret of its enrolment proof, like the QR secret: a `{:?}` in
    /// a log line must not hand it to whoever reads the log.
    #[test]
    fn debug_output_never_shows_a_secret() {
        let code = ShortCode::parse("K7QX4M").expect("code");
        let secret = PairingSecret::from_bytes([7; 32]);
        for shown in [
            format!("{code:?}"),
            format!(
                "{:?}",
                crate::enrolment::PairingReference::Code(code.clone())
            ),
            format!("{:?}", code.proof_key()),
        ] {
            assert!(!shown.contains("K7QX4M"), "{shown}");
        }
        for shown in [format!("{secret:?}"), format!("{:?}", payload())] {
            assert!(!shown.contains(&secret.to_base64url()), "{shown}");
        }
        assert_eq!(code.to_string(), "K7QX4M", "Display still shows the code");
    }

    #[test]
    fn proof_keys_are_domain_separated() {
        let secret = PairingSecret::from_bytes([7; 32]);
        let expected: [u8; 32] =
            Sha256::digest([b"keybridge-pairing-secret-v1\n".as_slice(), &[7; 32]].concat()).into();
        assert_eq!(secret.proof_key().as_bytes(), &expected);
        let code = ShortCode::parse("K7QX4M").expect("valid");
        let expected: [u8; 32] = Sha256::digest(b"keybridge-pairing-code-v1\nK7QX4M").into();
        assert_eq!(code.proof_key().as_bytes(), &expected);
        let stored = secret.proof_key().to_base64url();
        assert_eq!(
            PairingKey::from_base64url(&stored),
            Some(secret.proof_key())
        );
    }
}
