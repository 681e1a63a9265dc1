//! base64url helpers.
//!
//! WebAuthn JSON carries binary values as base64url without padding, and that is what keybridge
//! writes. Graph has been seen to send standard base64, padded base64url, and a "padding digit"
//! form (unpadded base64url followed by one digit = the number of `=` removed), so reading is
//! lenient (see `reference/entra.md` §4.1).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Encodes bytes as base64url without padding, the WebAuthn JSON form.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url or standard base64, with or without padding.
///
/// Returns `None` when the text is none of these forms.
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD_NO_PAD, &STANDARD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Every byte string that `text` may stand for, for matching credential ids.
///
/// A 32-byte id in the padding-digit form (`<43 chars>1`) is also a valid 44-character unpadded
/// base64url string of 33 bytes, so both readings are returned and the caller compares each.
pub fn decode_credential_id_candidates(text: &str) -> Vec<Vec<u8>> {
    let text = text.trim();
    let mut candidates = Vec::new();
    if let Some(bytes) = decode_lenient(text) {
        candidates.push(bytes);
    }
    let digit = text
        .chars()
        .last()
        .and_then(|last| last.to_digit(10))
        .filter(|d| *d <= 2);
    if let Some(digit) = digit {
        let stem = &text[..text.len() - 1];
        let padded_len = stem.len() + usize::try_from(digit).unwrap_or(0);
        if padded_len.is_multiple_of(4)
            && let Some(bytes) = decode_lenient(stem)
            && !candidates.contains(&bytes)
        {
            candidates.push(bytes);
        }
    }
    candidates
}

/// True when `text` is exactly the unpadded base64url encoding of some bytes (what a browser
/// writes into clientDataJSON).
pub fn is_canonical_b64url(text: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(text)
        .map(|bytes| URL_SAFE_NO_PAD.encode(bytes) == text)
        .unwrap_or(false)
}

/// Standard base64 with padding (X.509 `x5c` entries and MDS fields use this form).
pub fn b64_standard(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_unpadded_base64url() {
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64url(b""), "");
    }

    #[test]
    fn reads_every_form_graph_has_sent() {
        let bytes = vec![0xfb, 0xff, 0x01, 0x02];
        for text in ["-_8BAg", "-_8BAg==", "+/8BAg", "+/8BAg=="] {
            assert_eq!(decode_lenient(text), Some(bytes.clone()), "{text}");
        }
        assert_eq!(decode_lenient("not base64!"), None);
    }

    #[test]
    fn padding_digit_form_yields_the_short_reading_too() {
        let id = [7u8; 32];
        let text = format!("{}1", b64url(&id));
        let candidates = decode_credential_id_candidates(&text);
        assert!(candidates.contains(&id.to_vec()), "{candidates:?}");
        let id16 = [9u8; 16];
        let text = format!("{}2", b64url(&id16));
        assert!(decode_credential_id_candidates(&text).contains(&id16.to_vec()));
        // A plain id still decodes to itself.
        assert_eq!(
            decode_credential_id_candidates(&b64url(&id)),
            vec![id.to_vec()]
        );
    }

    #[test]
    fn canonical_check() {
        assert!(is_canonical_b64url("-_8BAg"));
        assert!(!is_canonical_b64url("-_8BAg=="));
        assert!(!is_canonical_b64url("+/8BAg"));
    }
}
