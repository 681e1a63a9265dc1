//! Small encoding helpers shared by the protocol's types: unpadded base64url, the protocol
//! version tag, and text that is safe to show on a terminal.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Unpadded base64url (RFC 4648 §5), the encoding of every binary field in this protocol.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url strictly: no padding, no standard-alphabet characters, no
/// whitespace, no non-canonical trailing bits.
pub(crate) fn from_b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes unpadded base64url into exactly `N` bytes.
pub(crate) fn from_b64url_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    from_b64url(text)?.try_into().ok()
}

/// The version of the protocol a message speaks. Only version 1 exists; a message with any
/// other `v` is refused with a message that says which side to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProtocolVersion;

impl ProtocolVersion {
    /// The version number this crate speaks.
    pub const CURRENT: u32 = 1;
}

impl Serialize for ProtocolVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(Self::CURRENT)
    }
}

impl<'de> Deserialize<'de> for ProtocolVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = u64::deserialize(deserializer)?;
        if number == u64::from(Self::CURRENT) {
            Ok(ProtocolVersion)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported keybridge device protocol version {number}: this side speaks version {}; \
                 update the older of the phone app and the server",
                Self::CURRENT
            )))
        }
    }
}

/// Text from the other side made safe to print: control characters (which could move the
/// cursor or rewrite earlier lines on a terminal) become U+FFFD, and the text is cut to
/// `max_chars` characters with an ellipsis.
pub fn display_safe(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    for (count, ch) in text.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        out.push(terminal_safe_char(ch));
    }
    out
}

/// Like [`display_safe`], without cutting: for names a user must see whole.
pub fn terminal_safe(text: &str) -> String {
    text.chars().map(terminal_safe_char).collect()
}

/// Bidirectional overrides and isolates, which can make text read differently from what it is.
pub(crate) fn is_bidi_control(ch: char) -> bool {
    matches!(ch, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn terminal_safe_char(ch: char) -> char {
    if ch.is_control() || is_bidi_control(ch) {
        '\u{FFFD}'
    } else {
        ch
    }
}

/// Serde helper for fixed-size byte arrays as unpadded base64url.
pub(crate) mod b64_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::b64url(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(deserializer)?;
        super::from_b64url_exact::<N>(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected {N} bytes as unpadded base64url, got {:?}",
                super::display_safe(&text, 60)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trip_and_strictness() {
        let bytes = [0xfb, 0xff, 0x00, 0x01];
        let text = b64url(&bytes);
        assert_eq!(text, "-_8AAQ");
        assert_eq!(from_b64url(&text), Some(bytes.to_vec()));
        assert_eq!(from_b64url("-_8AAQ=="), None, "padding is refused");
        assert_eq!(from_b64url("+/8AAQ"), None, "standard alphabet is refused");
        assert_eq!(from_b64url_exact::<3>(&text), None, "length is checked");
    }

    #[test]
    fn version_one_is_accepted_and_others_are_named() {
        let v: ProtocolVersion = serde_json::from_str("1").expect("version 1");
        assert_eq!(serde_json::to_string(&v).expect("serialises"), "1");
        let err = serde_json::from_str::<ProtocolVersion>("2").expect_err("version 2");
        assert!(
            err.to_string()
                .contains("unsupported keybridge device protocol version 2")
        );
    }

    #[test]
    fn display_safe_replaces_controls_and_cuts() {
        assert_eq!(
            display_safe("PC\u{1b}[2J-7\n", 40),
            "PC\u{FFFD}[2J-7\u{FFFD}"
        );
        assert_eq!(display_safe("abc\u{202E}def", 40), "abc\u{FFFD}def");
        assert_eq!(display_safe("abcdef", 3), "abc…");
    }
}
